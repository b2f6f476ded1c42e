//! The kernel engine's cost, in the guest, against the bare kernel and our
//! user-space engine on the same workload and attributes, in one boot
//! (`kernel_engine_cost`): CPU per aggregation of (1) the kdamond started
//! through sysfs and nothing of ours running, (2) the kernel engine driven
//! by our library (the kdamond plus our trace reader and callback
//! threads), (3) our user-space vaddr engine. Ends with
//! `kernel-engine cost: ours-over-bare=R`.

use damon_core::{damon_start, Context, Control};
use damon_sysfs::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod guest;
use guest::{in_guest, workload, workload_ctx};

const RUN: Duration = Duration::from_secs(20);

/// CPU time of a thread or process, ns: `schedstat` where the kernel keeps
/// it, else `stat`'s utime + stime in clock ticks (100 Hz).
fn cpu_ns(proc_dir: &str) -> u64 {
    if let Ok(s) = std::fs::read_to_string(format!("{proc_dir}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return ns;
        }
    }
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // fields 14 and 15 of stat; `after` starts at field 3
    (f[11] + f[12]) * 10_000_000
}

/// CPU time of every live thread of this process, ns (`schedstat` of a
/// process directory is its main thread's alone).
fn threads_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|t| cpu_ns(&t.path().to_string_lossy()))
        .sum()
}

/// CPU time of each live thread of this process by name, ns.
fn threads_by_name() -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        *m.entry(name.trim().to_string()).or_insert(0) += cpu_ns(&t.path().to_string_lossy());
    }
    m
}

/// CPU time of this process, ns, dead threads included: `stat`'s utime +
/// stime (10 ms ticks).
fn process_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    (f[11] + f[12]) * 10_000_000
}

/// A line on the console even while libtest captures output.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// ns of CPU per aggregation.
fn per_aggr(cpu: u64, aggrs: u64) -> f64 {
    cpu as f64 / aggrs.max(1) as f64
}

#[test]
fn kernel_engine_cost() {
    const T: &str = "kernel_engine_cost";
    if !in_guest(T) {
        return;
    }
    std::fs::create_dir_all("/run/lock").unwrap();
    let (child, pid, _hot) = workload();

    // (1) bare: the kdamond, nothing of ours running meanwhile
    let kd = KernelKdamond::start(
        Admin::kernel(),
        "vaddr",
        &workload_ctx(pid),
        &StartOptions::default(),
    )
    .unwrap();
    let kpid = kd.pid().unwrap();
    let k0 = cpu_ns(&format!("/proc/{kpid}"));
    let t0 = Instant::now();
    std::thread::sleep(RUN);
    let bare_cpu = cpu_ns(&format!("/proc/{kpid}")) - k0;
    let bare_aggrs = (t0.elapsed().as_micros() / 100_000) as u64;
    kd.stop().unwrap();

    // (2) the kernel engine with a callback: the kdamond plus our threads
    let seen = Arc::new(AtomicU64::new(0));
    let mut ctx = workload_ctx(pid);
    let s = seen.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
        assert!(!c.targets[0].regions.is_empty());
        s.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }));
    let run = KernelRun::start(
        Admin::kernel(),
        "vaddr",
        &mut ctx,
        &KernelRunOptions::default(),
    )
    .unwrap();
    let kpid = run.kdamond().pid().unwrap();
    // every thread of ours lives through the window: their sum
    let (k0, m0, by0) = (
        cpu_ns(&format!("/proc/{kpid}")),
        threads_cpu_ns(),
        threads_by_name(),
    );
    let t0 = Instant::now();
    std::thread::sleep(RUN);
    let kernel_cpu = cpu_ns(&format!("/proc/{kpid}")) - k0;
    let ours_cpu = threads_cpu_ns().saturating_sub(m0);
    for (name, ns) in threads_by_name() {
        let d = ns.saturating_sub(by0.get(&name).copied().unwrap_or(0));
        say!("{T}:   thread {name}: {} us in {RUN:?}", d / 1000);
    }
    let engine_aggrs = (t0.elapsed().as_micros() / 100_000) as u64;
    let traced = seen.load(Ordering::Relaxed);
    run.stop();

    // (3) our user-space engine
    damon_ops_vaddr::register();
    let mut ctx = workload_ctx(pid);
    damon_core::damon_select_ops(&mut ctx, "vaddr").unwrap();
    let n = Arc::new(AtomicU64::new(0));
    let n2 = n.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        n2.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }));
    // the worker thread ends before it is measured: the process's total
    let m0 = process_cpu_ns();
    let handles = damon_start(vec![ctx], false).unwrap();
    std::thread::sleep(RUN);
    handles[0].stop();
    let user_cpu = process_cpu_ns() - m0;
    let user_aggrs = n.load(Ordering::Relaxed);
    drop(child);

    let bare = per_aggr(bare_cpu, bare_aggrs);
    let engine = per_aggr(kernel_cpu + ours_cpu, engine_aggrs);
    let user = per_aggr(user_cpu, user_aggrs);
    say!("{T}: CPU per aggregation (100 ms, 5 ms samples, 64 MiB workload):");
    say!(
        "{T}:   bare kernel kdamond: {:.0} us ({bare_aggrs} aggregations)",
        bare / 1e3
    );
    say!(
        "{T}:   kernel engine: {:.0} us (kdamond {:.0} + ours {:.0}; {traced} of {engine_aggrs} aggregations traced)",
        engine / 1e3,
        per_aggr(kernel_cpu, engine_aggrs) / 1e3,
        per_aggr(ours_cpu, engine_aggrs) / 1e3
    );
    say!(
        "{T}:   user-space engine: {:.0} us ({user_aggrs} aggregations)",
        user / 1e3
    );
    say!("{T}: user-over-bare={:.2}", user / bare.max(1.0));
    say!(
        "kernel-engine cost: ours-over-bare={:.2}",
        engine / bare.max(1.0)
    );
    assert!(traced > 0, "the callback saw aggregations");
    assert!(user_aggrs > 0);
}
