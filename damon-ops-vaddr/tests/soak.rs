//! Hardening tests in the guest VM (issue "hardening"): a long soak of the
//! reclaim preset on a verifying workload with periodic commits, and
//! monitoring under cgroup memory pressure. Both need real idle page
//! tracking, swap and `$DAMON_WORKLOAD_BIN`; on a host without them they
//! say they are skipped, by name, and return.
//!
//! This binary counts live heap bytes of every thread with its own global
//! allocator, so that the library's memory can be compared over time.
//! `cargo xtask vm-test` runs it after every other binary (it takes about
//! 11 minutes; `DAMON_SOAK_SECS` shortens the soak).

use damon_core::testing::alloc::CountingAlloc;
use damon_core::{damon_start, damon_stop, Context, Control, DamonHandle, ExitReason, Target};
use damon_ops_common::testing;
use damon_ops_vaddr::VaddrOps;
use damon_schemes::presets::ReclaimParams;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

/// Live heap bytes read on the monitoring thread between two loop steps,
/// so that none of the loop's transient buffers are counted; the calling
/// thread holds nothing but the call's closure and channel while it waits.
fn live_heap_at_rest(h: &DamonHandle) -> usize {
    h.call(|_| CountingAlloc::live_bytes())
        .expect("the context answers calls")
}

/// Bytes the current test wrote with `eprintln!` through [`progress`]:
/// libtest keeps captured output in a growing buffer on the heap, whose
/// capacity stays below twice what was written. (Without that output, the
/// soak's live heap stayed the same from the warm-up to the end of a 180 s
/// run in the guest; with it, it grew by 13-14 KB in 600 s.)
static CAPTURED: AtomicUsize = AtomicUsize::new(0);

/// A progress line for the serial console. libtest captures `eprintln!`
/// (kept for the failure report); the raw stderr write reaches the console
/// at once, and the VM harness stops a guest silent for 300 s.
fn progress(msg: &str) {
    eprintln!("{msg}");
    CAPTURED.fetch_add(msg.len() + 1, Ordering::Relaxed);
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Heap growth allowed between two measurements of the same test: `slack`
/// plus what libtest's capture of our own output may have added. The slack
/// covers the backend's per-region sampling vectors (page numbers, runs,
/// pagemap entries, the sampler's queues), which keep the capacity of the
/// highest region count seen so far: a new peak of the region count grows
/// them (by doubling) without a leak.
fn allowed_growth(slack: usize) -> usize {
    slack + 2 * CAPTURED.load(Ordering::Relaxed)
}

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

fn meminfo_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    field_kb(&s, key).unwrap_or(0)
}

/// `KEY:   123 kB` in a /proc status-like text.
fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    field_kb(&s, key).unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// A `KEY VALUE` line of /proc/vmstat or a cgroup's memory.stat/events.
fn keyed(path: &str, key: &str) -> u64 {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    s.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {key} in {path}"))
}

fn vmstat(key: &str) -> u64 {
    keyed("/proc/vmstat", key)
}

fn nr_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn nr_threads() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: in /proc/self/status")
}

/// What the tests need besides the vaddr backend: swap and the workload.
/// `None` (after saying so) when the test cannot run here.
fn require_swap_and_workload(test: &str) -> Option<String> {
    if !testing::require_vaddr(test) {
        return None;
    }
    if !testing::require(
        meminfo_kb("SwapTotal") > 0,
        test,
        "no swap configured (the VM suite has zram)",
    ) {
        return None;
    }
    let bin = std::env::var("DAMON_WORKLOAD_BIN").ok();
    if !testing::require(bin.is_some(), test, "DAMON_WORKLOAD_BIN not set") {
        return None;
    }
    bin
}

/// A workload child started with `--pid-file` (which it writes once its
/// regions are populated); sent SIGKILL and reaped on drop if still running.
struct Workload {
    child: Child,
    pid: u32,
}

impl Workload {
    fn spawn(bin: &str, name: &str, config: &str, verify: bool) -> Workload {
        let pid_file = format!("/tmp/{name}-{}.pid", std::process::id());
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = Command::new(bin);
        cmd.args(["--pid-file", &pid_file, "--config-str", config]);
        if verify {
            cmd.arg("--verify");
        }
        // stderr: only the verify line (and at most 10 corruption lines)
        // at exit, far below a pipe's capacity; read after the exit.
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {bin}: {e}"));
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("workload {name} exited before it was populated: {status}; stderr: {err}");
            }
            if std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim() == pid.to_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "workload {name} not populated after 240 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(&pid_file);
        Workload { child, pid }
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what}: the workload exited early ({status}); stderr: {err}");
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 192 MiB, every page with a known pattern; a 16 MiB hot range moves
/// through four places (15 s each) so that ranges are paged out when they
/// cool down and swapped back in when they are hot again; 128 MiB are
/// never touched after populating.
const SOAK_WORKLOAD: &str = "region buf 192M nothp; \
    phase 15s buf:0-16M:write; phase 15s buf:64M+16M:write; \
    phase 15s buf:128M+16M:write; phase 15s buf:176M+16M:write; loop";
const SOAK_WORKLOAD_PAGES: u64 = 192 * MIB / PAGE;

/// The reclaim preset, made active on the guest (whose free memory is far
/// above the preset's watermarks) and quick to act; `variant` alternates
/// the aggregation interval, the scheme's min_age and its size quota.
fn reclaim_params(variant: u64) -> ReclaimParams {
    let odd = variant % 2 == 1;
    ReclaimParams {
        min_age: if odd { 5_000_000 } else { 3_000_000 },
        aggr_interval: if odd { 200_000 } else { 100_000 },
        quota_sz: if odd { 32 * MIB } else { 64 * MIB },
        // emulated page-out is slow: 10 ms of 1 s would page out little
        quota_ms: 200,
        quota_reset_interval_ms: 1000,
        // the free-memory rate is always in [low, high] and never above
        // mid: the scheme stays active
        wmarks_high: 1000,
        wmarks_mid: 1000,
        wmarks_low: 0,
        wmarks_interval: 1_000_000,
        ..ReclaimParams::default()
    }
}

/// The parameters a commit of `reclaim_params(variant)` must leave in the
/// running context: (aggregation interval, min_age in aggregations, quota).
fn expected_params(variant: u64) -> (u64, u32, u64) {
    let p = reclaim_params(variant);
    let s = p.scheme();
    (p.aggr_interval, s.pattern.min_age_region, s.quota.sz)
}

fn reclaim_ctx(pid: u32, variant: u64) -> Context {
    let p = reclaim_params(variant);
    let mut ctx = Context::new();
    ctx.attrs = p.attrs();
    ctx.schemes = vec![p.scheme()];
    ctx.targets.push(Target::new(u64::from(pid)));
    ctx
}

fn soak_secs() -> u64 {
    match std::env::var("DAMON_SOAK_SECS") {
        Ok(v) => {
            let secs: u64 = v
                .parse()
                .unwrap_or_else(|_| panic!("DAMON_SOAK_SECS={v:?} is not a number of seconds"));
            assert!(secs >= 30, "DAMON_SOAK_SECS={secs}: at least 30 s");
            secs
        }
        Err(_) => 600,
    }
}

/// What is compared between the end of the warm-up and the end.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    live_heap: usize,
    fds: usize,
    threads: u64,
}

fn footprint(h: &DamonHandle) -> Footprint {
    Footprint {
        live_heap: live_heap_at_rest(h),
        fds: nr_fds(),
        threads: nr_threads(),
    }
}

/// The `verify: N pages checked, M corrupt` line of the workload's stderr.
fn verify_counts(stderr: &str) -> Option<(u64, u64)> {
    let rest = stderr
        .lines()
        .find_map(|l| l.split_once("verify: ").map(|(_, r)| r))?;
    let mut words = rest.split_whitespace();
    let pages = words.next()?.parse().ok()?;
    let corrupt = words.nth(2)?.parse().ok()?;
    Some((pages, corrupt))
}

/// DAMON_SOAK_SECS (default 600) of the reclaim preset on a verifying
/// 192 MiB workload whose hot range moves, with a commit every 10 s that
/// alternates the aggregation interval, the scheme's min_age and its quota
/// (each checked in the running context). At the end every page of the
/// workload holds its pattern after being paged out to zram and back,
/// pages really went out and came back (pswpout, pswpin), and the
/// process's live heap (after a warm-up), fds and threads did not grow.
#[test]
fn soak_reclaim_with_periodic_commits_keeps_data_intact() {
    let name = "soak_reclaim_with_periodic_commits_keeps_data_intact";
    let Some(bin) = require_swap_and_workload(name) else {
        return;
    };
    CAPTURED.store(0, Ordering::Relaxed);
    let secs = soak_secs();
    let soak = Duration::from_secs(secs);
    let warm_up = Duration::from_secs((secs / 3).min(60));
    const COMMIT_EVERY: Duration = Duration::from_secs(10);
    const PROGRESS_EVERY: Duration = Duration::from_secs(30);

    let pswpout0 = vmstat("pswpout");
    let pswpin0 = vmstat("pswpin");
    let mut w = Workload::spawn(&bin, "soak-workload", SOAK_WORKLOAD, true);
    let pid = w.pid;
    progress(&format!(
        "soak: {secs} s of reclaim on workload {pid} (192 MiB), commit every 10 s, \
         warm-up {} s",
        warm_up.as_secs()
    ));

    let mut ctx = reclaim_ctx(pid, 0);
    ctx.set_ops("vaddr", Box::new(VaddrOps::new().expect("vaddr backend")));
    let aggregations = Arc::new(AtomicU64::new(0));
    let counter = aggregations.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }));
    damon_schemes::install(&mut ctx, damon_schemes::ProcMetrics);
    let handles = damon_start(vec![ctx], false).expect("damon_start");
    let h = &handles[0];

    let started = Instant::now();
    let mut variant = 0u64;
    let mut next_commit = started + COMMIT_EVERY;
    let mut next_progress = started + PROGRESS_EVERY;
    let mut last_aggregations = 0;
    let mut warm: Option<Footprint> = None;
    while started.elapsed() < soak {
        std::thread::sleep(Duration::from_millis(500));
        assert!(h.is_running(), "the context ended: {:?}", h.exit_reason());
        w.assert_running("during the soak");
        let now = Instant::now();
        if now >= next_commit {
            variant += 1;
            h.commit(reclaim_ctx(pid, variant))
                .unwrap_or_else(|e| panic!("commit {variant}: {e}"));
            let got = h
                .call(|c| {
                    let s = &c.schemes[0];
                    (c.attrs.aggr_interval, s.pattern.min_age_region, s.quota.sz)
                })
                .expect("call");
            assert_eq!(
                got,
                expected_params(variant),
                "commit {variant} took effect"
            );
            next_commit += COMMIT_EVERY;
        }
        if warm.is_none() && now >= started + warm_up {
            let f = footprint(h);
            progress(&format!("soak: warm-up done: {f:?}"));
            warm = Some(f);
        }
        if now >= next_progress {
            let n = aggregations.load(Ordering::Relaxed);
            let (stat, nr_regions) = h
                .call(|c| (c.schemes[0].stat, c.nr_regions()))
                .expect("call");
            let live = live_heap_at_rest(h);
            progress(&format!(
                "soak: {}/{secs} s: {n} aggregations, {nr_regions} regions, {variant} commits, \
                 sz_applied {} MiB, \
                 pswpout +{} MiB, pswpin +{} MiB, workload VmRSS {} MiB VmSwap {} MiB, \
                 live heap {live} B",
                started.elapsed().as_secs(),
                stat.sz_applied / MIB,
                (vmstat("pswpout") - pswpout0) * PAGE / MIB,
                (vmstat("pswpin") - pswpin0) * PAGE / MIB,
                status_kb(pid, "VmRSS") / 1024,
                status_kb(pid, "VmSwap") / 1024,
            ));
            assert!(
                n > last_aggregations,
                "no aggregation in the last {} s",
                PROGRESS_EVERY.as_secs()
            );
            last_aggregations = n;
            next_progress += PROGRESS_EVERY;
        }
    }
    let run_time = started.elapsed();
    let warm = warm.expect("the warm-up ended before the soak");
    let end = footprint(h);
    let stat = h.call(|c| c.schemes[0].stat).expect("call");
    let n = aggregations.load(Ordering::Relaxed);
    let swapped_kb = status_kb(pid, "VmSwap");
    let (pswpout1, pswpin1) = (vmstat("pswpout"), vmstat("pswpin"));
    damon_stop(&handles).expect("damon_stop");
    let exit = h.exit_reason();
    assert!(
        matches!(exit, Some(ExitReason::Stopped)),
        "the context ended with {exit:?}"
    );

    // SIGTERM: the workload stops its phases and verifies every page,
    // faulting the swapped ones back in.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&w.child),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM to the workload");
    let verify_started = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            verify_started.elapsed() < Duration::from_secs(240),
            "the workload did not exit within 240 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let verify_time = verify_started.elapsed();
    let mut stderr = String::new();
    w.child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("reading the workload's stderr");
    let pswpin_verify = vmstat("pswpin") - pswpin1;

    progress(&format!(
        "soak: done after {:.0} s: {n} aggregations, {variant} commits, stat {stat:?}; \
         pswpout +{} pages, pswpin +{} pages during the soak, +{pswpin_verify} during verify \
         ({:.1} s); workload VmSwap {swapped_kb} kB before SIGTERM; live heap {} B after \
         warm-up, {} B at the end ({:+} B); fds {} -> {}, threads {} -> {}; workload: {} {}",
        run_time.as_secs_f64(),
        pswpout1 - pswpout0,
        pswpin1 - pswpin0,
        verify_time.as_secs_f64(),
        warm.live_heap,
        end.live_heap,
        end.live_heap as i64 - warm.live_heap as i64,
        warm.fds,
        end.fds,
        warm.threads,
        end.threads,
        status,
        stderr.trim()
    ));

    // the data survived
    assert!(status.success(), "workload: {status}; stderr: {stderr}");
    assert_eq!(
        verify_counts(&stderr),
        Some((SOAK_WORKLOAD_PAGES, 0)),
        "the workload's verify line: {stderr}"
    );
    // every commit happened and the loop kept aggregating
    assert!(
        variant >= secs / COMMIT_EVERY.as_secs() - 1,
        "only {variant} commits in {secs} s"
    );
    assert!(n > 0 && n >= last_aggregations);
    // real page-out: the scheme applied, the kernel wrote at least the
    // never-touched 128 MiB to swap, and pages came back in while the
    // workload ran (its hot range returning) and when it verified
    assert!(
        stat.sz_applied >= 128 * MIB,
        "sz_applied is only {} MiB",
        stat.sz_applied / MIB
    );
    assert!(
        (pswpout1 - pswpout0) * PAGE >= 128 * MIB,
        "only {} pages swapped out",
        pswpout1 - pswpout0
    );
    assert!(
        (pswpin1 - pswpin0) * PAGE >= 16 * MIB,
        "only {} pages swapped in while the workload ran",
        pswpin1 - pswpin0
    );
    assert!(
        swapped_kb * 1024 >= 64 * MIB,
        "only {swapped_kb} kB of the workload in swap at the end"
    );
    assert!(
        pswpin_verify * PAGE * 10 >= swapped_kb * 1024 * 9,
        "verify swapped in {pswpin_verify} pages, {swapped_kb} kB were in swap"
    );
    // no growth: heap (but for our captured output and per-region vectors
    // reaching a new peak region count), fds, threads
    let allowed = allowed_growth(256 * 1024);
    assert!(
        end.live_heap <= warm.live_heap + allowed,
        "live heap grew from {} to {} B (allowed {allowed} B)",
        warm.live_heap,
        end.live_heap
    );
    assert_eq!(end.fds, warm.fds, "open fds changed");
    assert_eq!(end.threads, warm.threads, "thread count changed");
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Two cgroups (workload, monitor) and the processes put in them. Dropping
/// it (also on a panic) kills the children, moves this process back to the
/// root cgroup and removes the groups; [`Groups::remove`] does the same
/// and reports failures.
struct Groups {
    dirs: Vec<PathBuf>,
    children: Vec<Workload>,
}

impl Groups {
    fn create(names: &[&str]) -> Groups {
        let mut g = Groups {
            dirs: Vec::new(),
            children: Vec::new(),
        };
        for name in names {
            let dir = Path::new(CGROUP_ROOT).join(name);
            // a leftover of an aborted run
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            g.dirs.push(dir);
        }
        g
    }

    fn write(&self, group: usize, file: &str, value: &str) {
        let path = self.dirs[group].join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("writing {value:?} to {}: {e}", path.display()));
    }

    fn path(&self, group: usize, file: &str) -> String {
        self.dirs[group].join(file).display().to_string()
    }

    /// Moves this whole process (every thread) into `group`.
    fn enter(&self, group: usize) {
        self.write(group, "cgroup.procs", &std::process::id().to_string());
    }

    fn remove(&mut self) -> Result<(), String> {
        self.children.clear();
        std::fs::write(
            Path::new(CGROUP_ROOT).join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .map_err(|e| format!("moving back to the root cgroup: {e}"))?;
        for dir in std::mem::take(&mut self.dirs) {
            // a killed child's exit may need a moment to leave the group
            let mut tries = 0;
            while let Err(e) = std::fs::remove_dir(&dir) {
                tries += 1;
                if tries == 50 {
                    return Err(format!("rmdir {}: {e}", dir.display()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// A workload (96 MiB: a 16 MiB hot range plus writes to 5% of the rest)
/// in a cgroup with memory.max 32 MiB, so it is reclaimed and swapped all
/// the time; this process (the library) with a 40 MiB balloon in a second
/// group with memory.max 32 MiB, so the monitor's own memory is reclaimed
/// too. For 40 s of monitoring with vaddr: aggregations advance in every
/// 5 s window, the context never ends, the region count stays within its
/// bounds, the library's live heap stays below a bound set by
/// max_nr_regions and does not grow from the middle to the end, and both
/// groups were really under reclaim (swap use, reclaimed pages, no OOM
/// kill). The groups are removed afterwards.
#[test]
fn monitoring_keeps_running_under_memory_pressure() {
    let name = "monitoring_keeps_running_under_memory_pressure";
    let Some(bin) = require_swap_and_workload(name) else {
        return;
    };
    let controllers = std::fs::read_to_string(format!("{CGROUP_ROOT}/cgroup.subtree_control"))
        .unwrap_or_default();
    if !testing::require(
        controllers.split_whitespace().any(|c| c == "memory"),
        name,
        "no cgroup v2 memory controller at /sys/fs/cgroup",
    ) {
        return;
    }
    CAPTURED.store(0, Ordering::Relaxed);
    const RUN: Duration = Duration::from_secs(40);
    const WINDOW: Duration = Duration::from_secs(5);
    const WORKLOAD: usize = 0;
    const MONITOR: usize = 1;
    let me = std::process::id();
    let mut groups = Groups::create(&[
        &format!("damon-pressure-workload-{me}"),
        &format!("damon-pressure-monitor-{me}"),
    ]);
    groups.write(WORKLOAD, "memory.max", &(32 * MIB).to_string());
    groups.write(MONITOR, "memory.max", &(32 * MIB).to_string());
    // children inherit the cgroup of the process that forks them
    groups.enter(WORKLOAD);
    let workload = Workload::spawn(
        &bin,
        "pressure-workload",
        "region buf 96M nothp; phase 60m buf:0-16M:write buf:16M-96M:write@5%",
        false,
    );
    let pid = workload.pid;
    groups.children.push(workload);
    groups.enter(MONITOR);
    let balloon = Workload::spawn(
        &bin,
        "pressure-balloon",
        "region balloon 40M nothp; phase 60m balloon:write",
        false,
    );
    groups.children.push(balloon);
    let events0 = (
        keyed(&groups.path(WORKLOAD, "memory.stat"), "pgsteal"),
        keyed(&groups.path(MONITOR, "memory.stat"), "pgsteal"),
    );

    let baseline = CountingAlloc::live_bytes();
    let mut ctx = Context::new();
    ctx.set_ops("vaddr", Box::new(VaddrOps::new().expect("vaddr backend")));
    ctx.targets.push(Target::new(u64::from(pid)));
    let (min_nr, max_nr) = (ctx.attrs.min_nr_regions, ctx.attrs.max_nr_regions);
    let aggregations = Arc::new(AtomicU64::new(0));
    let counter = aggregations.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }));
    let handles = damon_start(vec![ctx], false).expect("damon_start");
    let h = &handles[0];
    // the library's share: the context, its backend, the worker and its
    // channels, dominated by the region vectors reserved at max_nr_regions
    // (measured in the guest: about 170 KB with the default 1000)
    let bound = max_nr as usize * 160 + 128 * 1024;
    progress(&format!(
        "pressure: monitoring workload {pid} (96 MiB, memory.max 32 MiB) from a group with a \
         40 MiB balloon (memory.max 32 MiB) for {} s; library heap bound {bound} B",
        RUN.as_secs()
    ));

    let started = Instant::now();
    let mut last = 0u64;
    let mut mid = None;
    let mut lib_heap = 0;
    let mut windows = 0;
    while started.elapsed() < RUN {
        std::thread::sleep(WINDOW);
        windows += 1;
        assert!(
            h.is_running(),
            "the context ended under pressure: {:?}",
            h.exit_reason()
        );
        let n = aggregations.load(Ordering::Relaxed);
        let nr_regions = h.call(|c| c.nr_regions()).expect("call");
        lib_heap = live_heap_at_rest(h).saturating_sub(baseline);
        progress(&format!(
            "pressure: {} s: {n} aggregations (+{}), {nr_regions} regions, library heap {lib_heap} B, \
             workload VmRSS {} kB VmSwap {} kB",
            started.elapsed().as_secs(),
            n - last,
            status_kb(pid, "VmRSS"),
            status_kb(pid, "VmSwap"),
        ));
        assert!(n > last, "no aggregation in {} s", WINDOW.as_secs());
        assert!(
            (min_nr as usize..=max_nr as usize).contains(&nr_regions),
            "{nr_regions} regions, bounds {min_nr}..={max_nr}"
        );
        assert!(
            lib_heap <= bound,
            "the library holds {lib_heap} B of heap, bound {bound} B"
        );
        last = n;
        if windows == (RUN.as_secs() / WINDOW.as_secs()) / 2 {
            mid = Some(lib_heap);
        }
    }
    let mid = mid.expect("a middle measurement");
    for (i, c) in groups.children.iter_mut().enumerate() {
        c.assert_running(&format!("child {i} at the end"));
    }
    let events1 = (
        keyed(&groups.path(WORKLOAD, "memory.stat"), "pgsteal"),
        keyed(&groups.path(MONITOR, "memory.stat"), "pgsteal"),
    );
    let swap = (
        std::fs::read_to_string(groups.path(WORKLOAD, "memory.swap.current"))
            .expect("memory.swap.current")
            .trim()
            .parse::<u64>()
            .expect("a number"),
        std::fs::read_to_string(groups.path(MONITOR, "memory.swap.current"))
            .expect("memory.swap.current")
            .trim()
            .parse::<u64>()
            .expect("a number"),
    );
    let oom_kills = (
        keyed(&groups.path(WORKLOAD, "memory.events"), "oom_kill"),
        keyed(&groups.path(MONITOR, "memory.events"), "oom_kill"),
    );
    damon_stop(&handles).expect("damon_stop");
    let exit = h.exit_reason();
    drop(handles);
    let cleanup = groups.remove();
    progress(&format!(
        "pressure: done: {last} aggregations in {:.0} s; library heap {mid} B at the middle, \
         {lib_heap} B at the end; pages reclaimed (workload, monitor groups) {:?}; swap in use \
         {:?} B; OOM kills {oom_kills:?}; cleanup {cleanup:?}",
        started.elapsed().as_secs_f64(),
        (events1.0 - events0.0, events1.1 - events0.1),
        swap
    ));
    assert!(
        matches!(exit, Some(ExitReason::Stopped)),
        "the context ended with {exit:?}"
    );
    let allowed = allowed_growth(32 * 1024);
    assert!(
        lib_heap <= mid + allowed,
        "the library's heap grew from {mid} B (middle) to {lib_heap} B (end), \
         allowed {allowed} B"
    );
    // the pressure was real in both groups
    assert!(
        swap.0 >= 32 * MIB,
        "only {} B of the workload's group in swap",
        swap.0
    );
    assert!(
        events1.0 > events0.0 && events1.1 > events0.1,
        "reclaim did not go on in both groups: pgsteal {events0:?} -> {events1:?}"
    );
    assert_eq!(oom_kills, (0, 0), "OOM kills in the groups");
    cleanup.expect("the cgroups are removed");
}
