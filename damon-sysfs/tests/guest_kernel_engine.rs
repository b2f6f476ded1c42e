//! The sysfs writer and reader on the guest kernel's real DAMON tree
//! (`kernel_engine_*`). The host's tree belongs to the machine, so these
//! run only in the guest VM suite and say they are skipped elsewhere.

use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, Quota, QuotaGoal, Scheme, Watermarks,
    WmarkMetric,
};
use damon_core::{AddrRange, Context, Target};
use damon_sysfs::*;
use std::path::Path;

mod guest;
use guest::*;

fn lock() -> SysfsLock {
    std::fs::create_dir_all("/run/lock").unwrap();
    SysfsLock::take(Path::new(LOCK_PATH)).unwrap()
}

/// What a 6.12 kernel's tree can say (no allow filters, no intervals
/// goal, no node metrics): schemes with quotas, goals, watermarks and
/// filters of every type it has.
fn context(kv: Option<KernelVersion>) -> Context {
    let at_least = |major, minor| kv.is_some_and(|v| v >= KernelVersion { major, minor });
    let me = u64::from(std::process::id());
    let mut ctx = Context::new();
    ctx.attrs.sample_interval = 10_000;
    ctx.attrs.aggr_interval = 200_000;
    ctx.attrs.ops_update_interval = 1_000_000;
    ctx.attrs.min_nr_regions = 10;
    ctx.attrs.max_nr_regions = 500;
    ctx.targets.push(Target::with_ranges(
        me,
        &[
            AddrRange::new(0x10000, 0x20000),
            AddrRange::new(0x40000, 0x80000),
        ],
    ));
    let mut s = Scheme::new(
        AccessPattern {
            min_sz_region: 4096,
            max_sz_region: 1 << 30,
            min_nr_accesses: 0,
            max_nr_accesses: 3,
            min_age_region: 2,
            max_age_region: 1000,
        },
        Action::Pageout,
    );
    s.apply_interval_us = 400_000;
    s.quota = Quota {
        reset_interval: 1000,
        ms: 5,
        sz: 64 << 20,
        weight_sz: 10,
        weight_nr_accesses: 20,
        weight_age: 30,
        goals: vec![
            QuotaGoal {
                metric: GoalMetric::UserInput,
                target_value: 100,
                current_value: 10,
                nid: 0,
                memcg_id: 0,
            },
            QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: 1000,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            },
        ],
        ..Quota::default()
    };
    s.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 1_000_000,
        high: 900,
        mid: 800,
        low: 50,
    };
    let allow = at_least(6, 14);
    s.filters = vec![
        Filter {
            kind: FilterKind::Addr(AddrRange::new(0x10000, 0x18000)),
            matching: true,
            allow: false,
        },
        Filter {
            kind: FilterKind::Target { target_idx: 0 },
            matching: false,
            allow: false,
        },
        Filter {
            kind: FilterKind::Anon,
            matching: false,
            allow,
        },
        Filter {
            kind: FilterKind::Young,
            matching: true,
            allow: false,
        },
    ];
    let mut m = Scheme::new(AccessPattern::default(), Action::MigrateCold);
    m.target_nid = 1;
    ctx.schemes = vec![s, m, Scheme::new(AccessPattern::default(), Action::Stat)];
    ctx
}

#[test]
fn kernel_engine_every_field_round_trips_through_the_kernels_tree() {
    const T: &str = "kernel_engine_every_field_round_trips_through_the_kernels_tree";
    if !in_guest(T) {
        return;
    }
    let _lock = lock();
    let admin = Admin::kernel();
    let f = Features::probe(&admin, &kernel_release()).unwrap();
    let k = claim_kdamond(&admin, false, None).unwrap();
    let ctx = context(f.version);
    write_context(&admin, &f, k, "vaddr", &ctx).unwrap();
    let (ops, back) = read_context(&admin, k).unwrap();
    assert_eq!(ops, "vaddr");
    assert_eq!(back.attrs, ctx.attrs);
    assert_eq!(back.targets[0].id, ctx.targets[0].id);
    assert_eq!(back.targets[0].ranges(), ctx.targets[0].ranges());
    assert_eq!(
        back.schemes, ctx.schemes,
        "the kernel holds every field as written"
    );
    // and the kernel accepts it: it starts, with a kdamond thread
    admin.write(&format!("kdamonds/{k}/state"), "on").unwrap();
    let st = kdamonds(&admin).unwrap();
    assert!(st[k].on && st[k].pid.is_some_and(|p| p > 0), "{st:?}");
    release_kdamond(&admin, k).unwrap();
    assert_eq!(
        admin.read_u64("kdamonds/nr_kdamonds").unwrap(),
        0,
        "nothing of ours left"
    );
    println!(
        "{T}: {} ({}): 3 schemes, 4 filters, 2 goals round-trip; the kdamond ran",
        f.release, ops
    );
}

#[test]
fn kernel_engine_refuses_what_this_kernel_lacks_by_name_and_version() {
    const T: &str = "kernel_engine_refuses_what_this_kernel_lacks_by_name_and_version";
    if !in_guest(T) {
        return;
    }
    let _lock = lock();
    let admin = Admin::kernel();
    let f = Features::probe(&admin, &kernel_release()).unwrap();
    let k = claim_kdamond(&admin, false, None).unwrap();
    let newer = |major, minor| {
        f.version
            .is_some_and(|v| v < KernelVersion { major, minor })
    };
    let mut checked = 0;
    if newer(6, 15) {
        let mut ctx = Context::new();
        ctx.attrs.intervals_goal.aggrs = 3;
        let e = write_context(&admin, &f, k, "vaddr", &ctx).unwrap_err();
        assert!(
            matches!(&e, SysfsError::Missing { since: "6.15", feature, .. } if feature.contains("intervals_goal")),
            "{e}"
        );
        let mut ctx = Context::new();
        let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
        s.filters.push(Filter {
            kind: FilterKind::Unmapped,
            matching: true,
            allow: false,
        });
        ctx.schemes.push(s);
        let e = write_context(&admin, &f, k, "vaddr", &ctx).unwrap_err();
        assert!(
            matches!(&e, SysfsError::Missing { since: "6.15", feature, .. } if feature.contains("unmapped")),
            "the kernel's EINVAL, worded: {e}"
        );
        checked += 2;
    }
    if newer(7, 2) {
        let mut ctx = Context::new();
        ctx.schemes
            .push(Scheme::new(AccessPattern::default(), Action::Collapse));
        let e = write_context(&admin, &f, k, "vaddr", &ctx).unwrap_err();
        assert!(
            matches!(&e, SysfsError::Missing { since: "7.2", .. }),
            "{e}"
        );
        checked += 1;
    }
    let e = write_context(&admin, &f, k, "sim", &Context::new()).unwrap_err();
    assert!(matches!(e, SysfsError::Unsupported(_)), "{e}");
    release_kdamond(&admin, k).unwrap();
    assert!(
        checked > 0,
        "{}: a kernel with every feature; nothing to refuse",
        f.release
    );
    println!(
        "{T}: {}: {checked} missing features named with their versions",
        f.release
    );
}

#[test]
fn kernel_engine_does_not_touch_a_running_kdamond_of_others() {
    const T: &str = "kernel_engine_does_not_touch_a_running_kdamond_of_others";
    if !in_guest(T) {
        return;
    }
    let _lock = lock();
    let admin = Admin::kernel();
    // "someone else's" kdamond: set up and started by hand, as damo would
    admin.write("kdamonds/nr_kdamonds", 1).unwrap();
    admin.write("kdamonds/0/contexts/nr_contexts", 1).unwrap();
    admin
        .write("kdamonds/0/contexts/0/operations", "paddr")
        .unwrap();
    admin
        .write("kdamonds/0/contexts/0/targets/nr_targets", 1)
        .unwrap();
    admin.write("kdamonds/0/state", "on").unwrap();
    let pid = kdamonds(&admin).unwrap()[0].pid.unwrap();
    let e = claim_kdamond(&admin, true, None).unwrap_err();
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
    let st = kdamonds(&admin).unwrap();
    assert!(
        st.len() == 1 && st[0].on && st[0].pid == Some(pid),
        "untouched: {st:?}"
    );
    // the kernel itself refuses renumbering while it runs, as we said
    assert!(admin.write("kdamonds/nr_kdamonds", 2).is_err());
    admin.write("kdamonds/0/state", "off").unwrap();
    admin.write("kdamonds/nr_kdamonds", 0).unwrap();
    println!("{T}: kdamond pid {pid} named and left running");
}

#[test]
fn kernel_engine_finds_the_hot_range_through_tracefs() {
    const T: &str = "kernel_engine_finds_the_hot_range_through_tracefs";
    if !in_guest(T) {
        return;
    }
    let (child, pid, hot) = workload();
    let ctx = workload_ctx(pid);
    let kd =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
    // an instance a killed process of ours left: removed by the next start
    let stale = Path::new(TRACEFS).join("instances/udamon-2147483646-1");
    std::fs::create_dir(&stale).unwrap();
    // the binary per-CPU pipes, then the text pipe: both find it
    for binary in [true, false] {
        let trace =
            AggregationTrace::start_reading(Path::new(TRACEFS), kd.pid().unwrap(), 64, binary)
                .unwrap();
        assert!(!stale.exists(), "a stale instance of ours is removed");
        assert_eq!(
            trace.binary(),
            binary,
            "the guest kernel has the binary pipes: {:?}",
            trace.text_reason()
        );
        let mut best = 0.0f64;
        let mut got = 0;
        let mut last = Vec::new();
        while got < 30 {
            let snap = trace
                .receiver()
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("an aggregation within a minute");
            got += 1;
            let found: u64 = snap
                .regions
                .iter()
                .filter(|r| r.1 > 0)
                .map(|r| r.0.overlap(&hot))
                .sum();
            best = best.max(found as f64 / hot.len() as f64);
            last = snap.regions;
        }
        for (r, n, age) in last
            .iter()
            .filter(|(r, _, _)| r.overlap(&hot) > 0 || r.start < hot.end + (48 << 20))
        {
            eprintln!("  {r} ({} KiB) nr_accesses={n} age={age}", r.len() / 1024);
        }
        eprintln!(
            "{T}: {} pipe: hot range {hot}: found {:.0}% (best of {got} aggregations), {} lost",
            if binary { "binary" } else { "text" },
            best * 100.0,
            trace.lost()
        );
        drop(trace);
        assert!(
            best >= 0.8,
            "the kernel engine ({}) found only {:.0}% of the hot range",
            if binary { "binary" } else { "text" },
            best * 100.0
        );
    }
    kd.stop().unwrap();
    drop(child);
    assert_eq!(
        Admin::kernel().read_u64("kdamonds/nr_kdamonds").unwrap(),
        0,
        "nothing of ours left"
    );
    let instances = std::fs::read_dir(Path::new(TRACEFS).join("instances"))
        .unwrap()
        .count();
    assert_eq!(instances, 0, "our tracefs instance is gone");
}

#[test]
fn kernel_engine_runs_a_contexts_callbacks() {
    const T: &str = "kernel_engine_runs_a_contexts_callbacks";
    if !in_guest(T) {
        return;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let (child, pid, hot) = workload();
    let mut ctx = workload_ctx(pid);
    let seen = Arc::new(AtomicU64::new(0));
    let best = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(AtomicU64::new(0));
    let (s, b, e) = (seen.clone(), best.clone(), ended.clone());
    ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
        b.fetch_max(hot_percent(&c.targets[0].regions, hot), Ordering::SeqCst);
        // stop from the callback after 25 aggregations
        if s.fetch_add(1, Ordering::SeqCst) + 1 >= 25 {
            damon_core::Control::Stop
        } else {
            damon_core::Control::Continue
        }
    }));
    ctx.callbacks.before_terminate = Some(Box::new(move |_| {
        e.fetch_add(1, Ordering::SeqCst);
    }));
    let run = KernelRun::start(
        Admin::kernel(),
        "vaddr",
        &mut ctx,
        &KernelRunOptions::default(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while run.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!run.is_running(), "the callback's Stop ends the run");
    run.stop();
    drop(child);
    eprintln!(
        "{T}: {} aggregations, hot range found up to {}%",
        seen.load(Ordering::SeqCst),
        best.load(Ordering::SeqCst)
    );
    assert_eq!(seen.load(Ordering::SeqCst), 25);
    assert_eq!(ended.load(Ordering::SeqCst), 1);
    assert!(
        best.load(Ordering::SeqCst) >= 80,
        "hot range found by the callback's view"
    );
    assert_eq!(Admin::kernel().read_u64("kdamonds/nr_kdamonds").unwrap(), 0);
}

#[test]
fn kernel_engine_records_a_damo_record() {
    const T: &str = "kernel_engine_records_a_damo_record";
    if !in_guest(T) {
        return;
    }
    use damon_damo::{read_record_file, RecordFormat, RecordWriter, Recorder};
    let (child, pid, hot) = workload();
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(pid));
    ctx.attrs = damon_damo::kdamonds::damo_default_attrs();
    let out = std::env::temp_dir().join("kernel-engine.data");
    let writer = RecordWriter::create(&out, RecordFormat::JsonCompressed).unwrap();
    let rec = Recorder::new()
        .with_clock(std::sync::Arc::new(damon_core::RealClock::new()))
        .with_writer(writer)
        .install(&mut ctx);
    let run = KernelRun::start(
        Admin::kernel(),
        "vaddr",
        &mut ctx,
        &KernelRunOptions::default(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while rec.lock().nr_snapshots() < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run.stop();
    drop(child);
    let summary = rec.lock().finish().unwrap().unwrap();
    let records = read_record_file(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(summary.nr_snapshots >= 20, "{summary:?}");
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].target_id, 0,
        "damo's target id: the target's index"
    );
    let last = records[0].snapshots.last().unwrap();
    let found: u64 = last
        .regions
        .iter()
        .filter(|g| g.nr_accesses > 0)
        .map(|g| AddrRange::new(g.start, g.end).overlap(&hot))
        .sum();
    eprintln!(
        "{T}: {} snapshots, last has {} regions, {}% of the hot range accessed",
        records[0].snapshots.len(),
        last.regions.len(),
        found * 100 / hot.len()
    );
    assert!(!last.regions.is_empty());
    assert_eq!(
        records[0].intervals.map(|iv| iv.aggr_us),
        Some(100_000),
        "the record carries the kernel kdamond's intervals"
    );
}

#[test]
fn kernel_engine_takes_back_a_kdamond_its_killed_process_left() {
    const T: &str = "kernel_engine_takes_back_a_kdamond_its_killed_process_left";
    if let Ok(target) = std::env::var("UDAMON_ORPHAN_TARGET") {
        // the child: start a kdamond of ours, say so, and wait to be killed
        let mut ctx = Context::new();
        ctx.targets.push(Target::new(target.parse().unwrap()));
        let kd =
            KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
        // not println!: libtest may capture it; this reaches the pipe
        {
            use std::io::Write as _;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "ORPHAN-STARTED {}", kd.pid().unwrap());
            let _ = out.flush();
        }
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    if !in_guest(T) {
        return;
    }
    use std::io::{BufRead, BufReader};
    std::fs::create_dir_all("/run/lock").unwrap();
    let mut child = Reaped(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", T, "--nocapture", "--test-threads=1"])
            .env("UDAMON_ORPHAN_TARGET", std::process::id().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let kd_pid: i64 = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            // libtest's "test NAME ... " may lead the line
            l.split("ORPHAN-STARTED ")
                .nth(1)
                .map(|p| p.trim().parse().unwrap())
        })
        .expect("the child started a kdamond");
    // SIGKILL: no drop, no cleanup
    drop(child);
    let admin = Admin::kernel();
    let st = kdamonds(&admin).unwrap();
    assert!(
        st.len() == 1 && st[0].on && st[0].pid == Some(kd_pid),
        "left running: {st:?}"
    );
    // the next start knows it as ours and takes it back
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(u64::from(std::process::id())));
    let kd =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
    assert!(kd.is_running() && kd.pid() != Some(kd_pid));
    kd.stop().unwrap();
    assert_eq!(admin.read_u64("kdamonds/nr_kdamonds").unwrap(), 0);
    assert!(!Path::new(OWNER_PATH).exists());
    println!("{T}: kdamond pid {kd_pid} of a killed process taken back");
}

#[test]
fn kernel_engine_lets_one_process_at_a_time() {
    const T: &str = "kernel_engine_lets_one_process_at_a_time";
    if !in_guest(T) {
        return;
    }
    std::fs::create_dir_all("/run/lock").unwrap();
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(u64::from(std::process::id())));
    let kd =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
    // a second user (here: the same process, a second lock): the lock says so
    let e =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap_err();
    assert!(matches!(e, SysfsError::Locked { .. }), "{e}");
    // without the lock, the kernel's own rule: a running kdamond is in the way
    let no_lock = StartOptions {
        lock: None,
        owner: None,
        ..StartOptions::default()
    };
    let e = KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &no_lock).unwrap_err();
    assert!(e.to_string().contains("is running and is not ours"), "{e}");
    assert!(kd.is_running(), "the first one runs on");
    kd.stop().unwrap();
}

fn rss_kib(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn kernel_engine_commits_and_reports_stats_and_tried_regions() {
    const T: &str = "kernel_engine_commits_and_reports_stats_and_tried_regions";
    if !in_guest(T) {
        return;
    }
    let (child, pid, _hot) = workload();
    let mut ctx = workload_ctx(pid);
    // count every region
    ctx.schemes
        .push(Scheme::new(AccessPattern::default(), Action::Stat));
    let mut kd =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
    assert!(
        wait_for(60, || kd.stats().unwrap()[0].nr_tried > 0),
        "the stat scheme tries regions"
    );
    let tried = kd.tried_regions().unwrap();
    let (total, regions) = &tried[0];
    let sum: u64 = regions.iter().map(|r| r.range.len()).sum();
    assert!(!regions.is_empty());
    assert_eq!(*total, sum, "total_bytes is the sum of the tried regions");
    let before = regions.len();
    // commit more regions: the kernel splits to reach the new minimum
    ctx.attrs.min_nr_regions = 60;
    ctx.attrs.max_nr_regions = 600;
    kd.commit(&ctx).unwrap();
    assert!(kd.is_running());
    assert_eq!(kd.read_back().unwrap().attrs.min_nr_regions, 60);
    let mut after = 0;
    assert!(
        wait_for(60, || {
            after = kd.tried_regions().unwrap()[0].1.len();
            after >= 60
        }),
        "after the commit the kernel reports {after} regions (before: {before})"
    );
    // pause: added in 7.2
    let pause = kd.set_pause(true);
    if kd
        .features()
        .version
        .is_some_and(|v| v < KernelVersion { major: 7, minor: 2 })
    {
        let e = pause.unwrap_err();
        assert!(matches!(e, SysfsError::Missing { since: "7.2", .. }), "{e}");
    } else {
        pause.unwrap();
        kd.set_pause(false).unwrap();
    }
    kd.stop().unwrap();
    drop(child);
    println!("{T}: {before} regions, {after} after committing min_nr_regions 60");
}

#[test]
fn kernel_engine_pageout_lowers_the_resident_memory() {
    const T: &str = "kernel_engine_pageout_lowers_the_resident_memory";
    if !in_guest(T) {
        return;
    }
    let (child, pid, _hot) = workload();
    let rss0 = rss_kib(pid);
    let mut ctx = workload_ctx(pid);
    // page out what stayed idle for a second
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            min_sz_region: 4096,
            max_sz_region: u64::MAX,
            min_nr_accesses: 0,
            max_nr_accesses: 0,
            min_age_region: 10,
            max_age_region: u32::MAX,
        },
        Action::Pageout,
    ));
    let kd =
        KernelKdamond::start(Admin::kernel(), "vaddr", &ctx, &StartOptions::default()).unwrap();
    let mut rss = rss0;
    let dropped = wait_for(60, || {
        rss = rss_kib(pid);
        rss + 16 * 1024 <= rss0
    });
    let st = kd.stats().unwrap();
    kd.stop().unwrap();
    drop(child);
    eprintln!(
        "{T}: VmRSS {rss0} KiB -> {rss} KiB; sz_applied {} KiB",
        st[0].sz_applied / 1024
    );
    assert!(
        dropped,
        "pageout through the kernel engine: VmRSS {rss0} -> {rss} KiB"
    );
    assert!(st[0].sz_applied > 0);
}

#[test]
fn kernel_engine_without_tracefs_uses_tried_regions() {
    const T: &str = "kernel_engine_without_tracefs_uses_tried_regions";
    if !in_guest(T) {
        return;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let (child, pid, hot) = workload();
    let mut ctx = workload_ctx(pid);
    let (seen, best) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, b) = (seen.clone(), best.clone());
    ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
        b.fetch_max(hot_percent(&c.targets[0].regions, hot), Ordering::SeqCst);
        s.fetch_add(1, Ordering::SeqCst);
        damon_core::Control::Continue
    }));
    let opts = KernelRunOptions {
        tracefs: "/nonexistent/tracefs".into(),
        ..KernelRunOptions::default()
    };
    let run = KernelRun::start(Admin::kernel(), "vaddr", &mut ctx, &opts).unwrap();
    assert!(
        wait_for(120, || seen.load(Ordering::SeqCst) >= 20),
        "20 deliveries"
    );
    run.stop();
    drop(child);
    eprintln!(
        "{T}: {} deliveries from tried regions, hot range found up to {}%",
        seen.load(Ordering::SeqCst),
        best.load(Ordering::SeqCst)
    );
    assert!(best.load(Ordering::SeqCst) >= 80);
}
