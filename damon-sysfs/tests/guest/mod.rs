//! Helpers of the guest tests: the VM-suite check, the workload example
//! with its hot range, a context on it with damo's intervals, and waiting.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers; `expect` would fail in the binaries that use them all"
)]

use damon_core::{AddrRange, Context, Region, Target};

/// Whether this runs in the guest VM suite; elsewhere says `test` is skipped.
pub(crate) fn in_guest(test: &str) -> bool {
    if std::env::var("DAMON_VM_SUITE").as_deref() == Ok("1") {
        return true;
    }
    println!("skipped: {test}: writes the kernel's DAMON sysfs tree, which on this machine is not ours; runs in the guest VM suite");
    false
}

/// A child process, killed and reaped when dropped.
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workload example with a 16 MiB hot range in a 64 MiB buffer:
/// `(child, pid, hot range)`.
pub(crate) fn workload() -> (Reaped, u64, AddrRange) {
    use std::io::{BufRead, BufReader};
    let bin = std::env::var("DAMON_WORKLOAD_BIN").expect("DAMON_WORKLOAD_BIN in the VM suite");
    let mut child = Reaped(
        std::process::Command::new(bin)
            .args([
                "--print-truth",
                "--config-str",
                "region buf 64M nothp; phase 300s buf:0-16M:write",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("workload starts"),
    );
    let pid = u64::from(child.0.id());
    let out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    for line in out.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("truth phase=0 ") {
            let hot = rest
                .split_whitespace()
                .find_map(|f| f.strip_prefix("hot="))
                .expect("hot=");
            let (s, e) = hot.split_once('-').expect("range");
            return (child, pid, AddrRange::new(hex(s), hex(e)));
        }
    }
    panic!("the workload printed no phase line");
}

pub(crate) fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// A context on process `pid` with 5 ms samples, 100 ms aggregations and
/// a 1 s ops update, as the guest tests use.
pub(crate) fn workload_ctx(pid: u64) -> Context {
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(pid));
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 100_000;
    ctx.attrs.ops_update_interval = 1_000_000;
    ctx
}

/// Percent of `hot` inside regions that saw accesses.
pub(crate) fn hot_percent(regions: &[Region], hot: AddrRange) -> u64 {
    let found: u64 = regions
        .iter()
        .filter(|r| r.nr_accesses > 0)
        .map(|r| r.ar.overlap(&hot))
        .sum();
    found * 100 / hot.len()
}
