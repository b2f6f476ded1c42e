//! A child workload for the vaddr tests: this very test binary, re-run with
//! `DAMON_TEST_CHILD=1` and filtered to its `child_workload_entry` test, maps
//! a buffer, populates it with pure writes, prints
//! `DAMON_WORKLOAD_READY addr=0x.. len=N hot_len=N` on stdout, then keeps
//! writing every page of the first `hot_len` bytes until `exit_ms` passed.
//!
//! With `DAMON_WORKLOAD_BIN` set, that program is run instead, with the same
//! environment variables (`DAMON_CHILD_SIZE`, `DAMON_CHILD_HOT`,
//! `DAMON_CHILD_EXIT_MS`), and must print the same line.
#![allow(dead_code)]

use damon_ops_paddr::sys::{Advice, AnonMapping};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child workload; killed and reaped on drop.
pub struct Workload {
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
pub fn child_main() {
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
    let mut v = 1u8;
    while start.elapsed() < Duration::from_millis(exit_ms) {
        v = v.wrapping_add(1);
        m.write_pages(0..hot, v);
    }
    std::process::exit(0);
}

/// Starts a workload child and waits for its ready line.
pub fn spawn_workload(size: u64, hot: u64, exit_ms: u64) -> Workload {
    let mut cmd = match std::env::var("DAMON_WORKLOAD_BIN") {
        Ok(bin) => Command::new(bin),
        Err(_) => {
            let mut c = Command::new(std::env::current_exe().expect("current_exe"));
            c.args([
                "--exact",
                "child_workload_entry",
                "--nocapture",
                "--test-threads=1",
            ]);
            c.env("DAMON_TEST_CHILD", "1");
            c
        }
    };
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
