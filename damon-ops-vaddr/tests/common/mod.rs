//! A child workload for the vaddr tests: this very test binary, re-run with
//! `DAMON_TEST_CHILD=1` and filtered to its `child_workload_entry` test, maps
//! a buffer, populates it with pure writes, prints
//! `DAMON_WORKLOAD_READY addr=0x.. len=N hot_len=N` on stdout, then keeps
//! writing every page of the first `hot_len` bytes until `exit_ms` passed.
//!
//! This is the only child workload of the tests (the `workload` example is
//! a workload of its own, with a config language and ground truth, that
//! the guest tests run as such): host and guest start the same code.
//!
//! Two more modes of this binary's own child ([`spawn_self`]):
//! * `DAMON_CHILD_EXEC_MS=N`: after N ms it `execve`s itself with
//!   `DAMON_CHILD_SIZE`/`HOT` taken from `DAMON_CHILD_EXEC_SIZE`/`HOT`, so
//!   the same pid prints a second ready line for its new address space;
//! * `DAMON_CHILD_CHURN=1`: between passes over the hot range it maps,
//!   grows with `mremap`, splits with `mprotect` and unmaps a scratch
//!   mapping, so its maps change under sampling all the time.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers; `expect` would fail in the binaries that use them all"
)]

use damon_core::AddrRange;
use damon_ops_common::sys::Advice;
use damon_ops_common::testing::anon::AnonMapping;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A running child workload; killed and reaped on drop.
pub(crate) struct Workload {
    pub child: Child,
    pub pid: u64,
    pub addr: u64,
    pub len: u64,
    pub hot_len: u64,
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The body of the child (called from each test binary's `child_workload_entry`).
pub(crate) fn child_main() {
    if std::env::var("DAMON_TEST_CHILD").is_err() {
        return;
    }
    let size = env_u64("DAMON_CHILD_SIZE", 64 << 20) as usize;
    let hot = env_u64("DAMON_CHILD_HOT", 16 << 20) as usize;
    let exit_ms = env_u64("DAMON_CHILD_EXIT_MS", 60_000);
    let mut m = AnonMapping::new(size, 2 << 20).expect("child mmap");
    m.advise(Advice::Nohugepage).expect("child madvise");
    m.write_pages(0..size, 1);
    let mut out = std::io::stdout();
    writeln!(
        out,
        "DAMON_WORKLOAD_READY addr={:#x} len={} hot_len={}",
        m.addr(),
        m.len(),
        hot
    )
    .unwrap();
    out.flush().unwrap();
    let start = Instant::now();
    let exec_ms = std::env::var("DAMON_CHILD_EXEC_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    let churn = std::env::var("DAMON_CHILD_CHURN").is_ok();
    // A child outlives its test only if the test binary died without
    // unwinding (a killed run): then it must not keep writing for minutes.
    let parent = std::os::unix::process::parent_id();
    let mut v = 1u8;
    while start.elapsed() < Duration::from_millis(exit_ms)
        && std::os::unix::process::parent_id() == parent
    {
        v = v.wrapping_add(1);
        m.write_pages(0..hot, v);
        if hot == 0 && !churn {
            std::thread::sleep(Duration::from_millis(10));
        }
        if churn {
            churn_once(v);
        }
        if exec_ms.is_some_and(|ms| start.elapsed() >= Duration::from_millis(ms)) {
            exec_self();
        }
    }
    std::process::exit(0);
}

/// One round of maps churn: mmap, populate, mremap (may move), mprotect
/// half (splits the VMA), read, munmap.
fn churn_once(v: u8) {
    let mut s = AnonMapping::new(1 << 20, 4096).expect("churn mmap");
    s.write_pages(0..s.len(), v);
    s.remap(3 << 20).expect("churn mremap");
    s.write_pages(0..s.len(), v);
    s.protect_read_only(0..(1 << 20)).expect("churn mprotect");
    std::hint::black_box(
        s.as_slice()
            .iter()
            .step_by(4096)
            .map(|&b| b as u64)
            .sum::<u64>(),
    );
}

/// Replaces this process's image with a fresh run of the same child.
fn exec_self() -> ! {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env_remove("DAMON_CHILD_EXEC_MS");
    for (from, to) in [
        ("DAMON_CHILD_EXEC_SIZE", "DAMON_CHILD_SIZE"),
        ("DAMON_CHILD_EXEC_HOT", "DAMON_CHILD_HOT"),
    ] {
        if let Ok(v) = std::env::var(from) {
            cmd.env(to, v);
        }
    }
    let e = cmd.exec();
    panic!("exec: {e}");
}

/// This test binary's own child, with extra
/// environment; its ready lines (one per image) arrive on `ready`.
pub(crate) struct SelfChild {
    pub child: Child,
    pub pid: u64,
    pub ready: std::sync::mpsc::Receiver<ReadyLine>,
}

/// One `DAMON_WORKLOAD_READY` line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyLine {
    pub addr: u64,
    pub len: u64,
    pub hot_len: u64,
}

impl Drop for SelfChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SelfChild {
    /// The next ready line, waiting at most `secs`.
    pub(crate) fn next_ready(&self, secs: u64) -> ReadyLine {
        self.ready
            .recv_timeout(Duration::from_secs(secs))
            .expect("child ready line")
    }
}

/// Starts this binary's child workload with `env` added.
pub(crate) fn spawn_self(size: u64, hot: u64, exit_ms: u64, env: &[(&str, String)]) -> SelfChild {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "child_workload_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DAMON_TEST_CHILD", "1")
    .env("DAMON_CHILD_SIZE", size.to_string())
    .env("DAMON_CHILD_HOT", hot.to_string())
    .env("DAMON_CHILD_EXIT_MS", exit_ms.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn self child");
    let pid = u64::from(child.id());
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { break };
            if let Some(r) = parse_ready(&l) {
                let _ = tx.send(r);
            }
        }
    });
    SelfChild { child, pid, ready }
}

fn parse_ready(line: &str) -> Option<ReadyLine> {
    let rest = &line[line.find("DAMON_WORKLOAD_READY")?..];
    let field = |k: &str| -> Option<u64> {
        let v = rest.split_whitespace().find_map(|f| f.strip_prefix(k))?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    };
    Some(ReadyLine {
        addr: field("addr=")?,
        len: field("len=")?,
        hot_len: field("hot_len=")?,
    })
}

/// How long a child runs when the test means to end it (on drop): ten
/// minutes, far past any test's monitoring (so the speed of the monitor,
/// slow under emulation, never decides a result); a child whose test
/// binary died exits at once (see `child_main`).
pub(crate) const UNTIL_KILLED_MS: u64 = 600_000;

/// Starts a workload child and waits for its ready line.
pub(crate) fn spawn_workload(size: u64, hot: u64, exit_ms: u64) -> Workload {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "child_workload_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DAMON_TEST_CHILD", "1");
    cmd.env("DAMON_CHILD_SIZE", size.to_string())
        .env("DAMON_CHILD_HOT", hot.to_string())
        .env("DAMON_CHILD_EXIT_MS", exit_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn workload");
    let pid = u64::from(child.id());
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = loop {
        match lines.next() {
            // libtest may print "test child_workload_entry ... " on the same line
            Some(Ok(l)) if l.contains("DAMON_WORKLOAD_READY") => break l,
            Some(Ok(_)) => continue,
            _ => panic!("workload exited before it was ready"),
        }
    };
    let field = |k: &str| -> u64 {
        let v = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .expect("ready line field");
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("hex"),
            None => v.parse().expect("number"),
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Workload {
        pid,
        addr: field("addr="),
        len: field("len="),
        hot_len: field("hot_len="),
        child,
    }
}

/// The guest kernel's DAMON admin tree (written only in the guest suite).
pub(crate) const ADMIN: &str = "/sys/kernel/mm/damon/admin";

fn kwrite(path: &str, v: &str) {
    std::fs::write(format!("{ADMIN}/{path}"), v)
        .unwrap_or_else(|e| panic!("write {v:?} to {path}: {e}"));
}

fn kread(path: &str) -> String {
    std::fs::read_to_string(format!("{ADMIN}/{path}"))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .to_string()
}

struct KernelDamonOff;
impl Drop for KernelDamonOff {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{ADMIN}/kdamonds/0/state"), "off");
        let _ = std::fs::write(format!("{ADMIN}/kdamonds/nr_kdamonds"), "0");
    }
}

/// Runs the guest kernel's own DAMON (sysfs, vaddr, default attributes) on
/// `pid` for `secs`, and returns its regions (via a stat scheme's tried
/// regions) as (range, nr_accesses).
pub(crate) fn kernel_damon_regions(pid: u64, secs: u64) -> Vec<(AddrRange, u32)> {
    let _off = KernelDamonOff;
    let c = "kdamonds/0/contexts/0";
    let s = "kdamonds/0/contexts/0/schemes/0";
    kwrite("kdamonds/nr_kdamonds", "1");
    kwrite("kdamonds/0/contexts/nr_contexts", "1");
    kwrite(&format!("{c}/operations"), "vaddr");
    kwrite(&format!("{c}/targets/nr_targets"), "1");
    kwrite(&format!("{c}/targets/0/pid_target"), &pid.to_string());
    kwrite(&format!("{c}/schemes/nr_schemes"), "1");
    kwrite(&format!("{s}/action"), "stat");
    // access pattern ranges default to 0..0: open them all
    kwrite(&format!("{s}/access_pattern/sz/max"), &u64::MAX.to_string());
    kwrite(
        &format!("{s}/access_pattern/nr_accesses/max"),
        &u32::MAX.to_string(),
    );
    kwrite(
        &format!("{s}/access_pattern/age/max"),
        &u32::MAX.to_string(),
    );
    kwrite("kdamonds/0/state", "on");
    std::thread::sleep(Duration::from_secs(secs));
    kwrite("kdamonds/0/state", "update_schemes_tried_regions");
    let mut out = Vec::new();
    for i in 0.. {
        let r = format!("{s}/tried_regions/{i}");
        if !std::path::Path::new(&format!("{ADMIN}/{r}")).exists() {
            break;
        }
        let n = |f: &str| kread(&format!("{r}/{f}")).parse::<u64>().expect("number");
        out.push((
            AddrRange::new(n("start"), n("end")),
            n("nr_accesses") as u32,
        ));
    }
    out
}

/// The `workload` example (`$DAMON_WORKLOAD_BIN`) running with its ground truth.
pub(crate) struct ExampleWorkload {
    /// The process.
    pub child: Child,
    /// Its pid.
    pub pid: u64,
    /// Its buffer.
    pub buf: AddrRange,
    /// Its truth lines.
    pub truth: Receiver<String>,
}

impl Drop for ExampleWorkload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex address")
}

/// Starts the workload with `config` and waits for its region line. The
/// last phase of every config here lasts 300 s, far past the test's
/// monitoring: the workload runs until the test ends it (on drop), so how
/// fast the monitor is never decides a result.
pub(crate) fn start(config: &str) -> Option<ExampleWorkload> {
    let bin = std::env::var("DAMON_WORKLOAD_BIN").ok()?;
    let mut child = Command::new(bin)
        .args(["--print-truth", "--config-str", config])
        .stdout(Stdio::piped())
        .spawn()
        .expect("workload starts");
    let pid = u64::from(child.id());
    let (tx, rx) = channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut buf = None;
    while buf.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("region line");
        if let Some(rest) = line.strip_prefix("truth region ") {
            let f = |k: &str| {
                rest.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .map(hex)
                    .expect("field")
            };
            buf = Some(AddrRange::new(f("start="), f("end=")));
        }
    }
    Some(ExampleWorkload {
        child,
        pid,
        buf: buf.expect("set"),
        truth: rx,
    })
}

/// Waits for the truth line of phase `n` and returns its hot range.
pub(crate) fn wait_phase(w: &ExampleWorkload, n: u32) -> AddrRange {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = w
            .truth
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("phase line");
        if line.starts_with(&format!("truth phase={n} ")) {
            let hot = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("hot="))
                .expect("hot=");
            let (s, e) = hot.split_once('-').expect("range");
            return AddrRange::new(hex(s), hex(e));
        }
    }
}
