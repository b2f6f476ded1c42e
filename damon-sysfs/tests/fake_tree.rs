//! The writer, reader, probe and ownership rules on fake admin trees in a
//! temporary directory (the host's real tree belongs to the machine: these
//! tests never write to it; one only reads it).

mod fake;

use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, Quota, QuotaGoal, Scheme, Watermarks,
    WmarkMetric,
};
use damon_core::{AddrRange, Context, Target};
use damon_sysfs::*;
use fake::{FakeKernel, Profile};

fn admin(k: &FakeKernel) -> Admin {
    Admin::at(&k.root, k.io())
}

/// A context using what a 6.18 kernel's tree can say.
fn rich() -> Context {
    let mut ctx = Context::new();
    ctx.attrs.sample_interval = 10_000;
    ctx.attrs.aggr_interval = 200_000;
    ctx.attrs.ops_update_interval = 2_000_000;
    ctx.attrs.min_nr_regions = 20;
    ctx.attrs.max_nr_regions = 2000;
    ctx.attrs.intervals_goal.access_bp = 400;
    ctx.attrs.intervals_goal.aggrs = 3;
    ctx.attrs.intervals_goal.min_sample_us = 5_000;
    ctx.attrs.intervals_goal.max_sample_us = 10_000_000;
    ctx.targets.push(Target::with_ranges(
        4321,
        &[
            AddrRange::new(0x1000, 0x9000),
            AddrRange::new(0x10000, 0x20000),
        ],
    ));
    ctx.targets.push(Target::new(4322));
    let mut s = Scheme::new(
        AccessPattern {
            min_sz_region: 4096,
            max_sz_region: 1 << 30,
            min_nr_accesses: 0,
            max_nr_accesses: 2,
            min_age_region: 5,
            max_age_region: 100,
        },
        Action::Pageout,
    );
    s.apply_interval_us = 1_000_000;
    s.quota = Quota {
        reset_interval: 1000,
        ms: 10,
        sz: 128 << 20,
        weight_sz: 1,
        weight_nr_accesses: 2,
        weight_age: 3,
        goals: vec![
            QuotaGoal {
                metric: GoalMetric::UserInput,
                target_value: 1000,
                current_value: 200,
                nid: 0,
                memcg_id: 0,
            },
            QuotaGoal {
                metric: GoalMetric::NodeMemFreeBp,
                target_value: 3000,
                current_value: 0,
                nid: 1,
                memcg_id: 0,
            },
        ],
        ..Quota::default()
    };
    s.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 5_000_000,
        high: 500,
        mid: 400,
        low: 200,
    };
    // core filters first: the kernel installs core_filters before ops_filters
    s.filters = vec![
        Filter {
            kind: FilterKind::Addr(AddrRange::new(0x1000, 0x5000)),
            matching: true,
            allow: true,
        },
        Filter {
            kind: FilterKind::Target { target_idx: 1 },
            matching: false,
            allow: false,
        },
        Filter {
            kind: FilterKind::Anon,
            matching: true,
            allow: false,
        },
        Filter {
            kind: FilterKind::HugepageSize {
                min: 2 << 20,
                max: 2 << 20,
            },
            matching: true,
            allow: true,
        },
    ];
    let mut migrate = Scheme::new(AccessPattern::default(), Action::MigrateCold);
    migrate.target_nid = 1;
    ctx.schemes = vec![s, migrate];
    ctx
}

#[test]
fn a_context_round_trips_through_a_6_18_tree() {
    let k = FakeKernel::new("roundtrip", Profile::v6_18());
    let a = admin(&k);
    let f = Features::probe(&a, k.profile.release).unwrap();
    let idx = claim_kdamond(&a, false, None).unwrap();
    let ctx = rich();
    write_context(&a, &f, idx, "vaddr", &ctx).unwrap();
    assert_eq!(k.get("kdamonds/0/contexts/0/operations"), "vaddr");
    assert_eq!(
        k.get("kdamonds/0/contexts/0/targets/0/regions/1/end"),
        "131072"
    );
    assert_eq!(
        k.get("kdamonds/0/contexts/0/schemes/0/core_filters/nr_filters"),
        "2"
    );
    assert_eq!(
        k.get("kdamonds/0/contexts/0/schemes/0/ops_filters/1/type"),
        "hugepage_size"
    );
    assert_eq!(
        k.get("kdamonds/0/contexts/0/schemes/0/quotas/goals/1/nid"),
        "1"
    );
    assert_eq!(k.get("kdamonds/0/contexts/0/schemes/1/target_nid"), "1");
    let (ops, back) = read_context(&a, idx).unwrap();
    assert_eq!(ops, "vaddr");
    assert_eq!(back.attrs, ctx.attrs);
    assert_eq!(back.targets.len(), 2);
    assert_eq!(back.targets[0].ranges(), ctx.targets[0].ranges());
    assert_eq!(
        back.targets.iter().map(|t| t.id).collect::<Vec<_>>(),
        [4321, 4322]
    );
    assert_eq!(back.schemes, ctx.schemes, "every scheme field round-trips");
    // paddr: no pid written, target ids read back as 0
    let mut p = rich();
    p.schemes.clear();
    p.addr_unit = 4096;
    write_context(&a, &f, idx, "paddr", &p).unwrap();
    assert_eq!(k.get("kdamonds/0/contexts/0/targets/0/pid_target"), "0");
    let (_, back) = read_context(&a, idx).unwrap();
    assert_eq!(back.addr_unit, 4096);
    release_kdamond(&a, idx).unwrap();
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0");
}

#[test]
fn what_an_older_kernel_lacks_is_named_with_its_version() {
    let k = FakeKernel::new("old", Profile::v6_6());
    let a = admin(&k);
    let f = Features::probe(&a, k.profile.release).unwrap();
    let idx = claim_kdamond(&a, false, None).unwrap();
    let missing = |ctx: &Context| match write_context(&a, &f, idx, "vaddr", ctx).unwrap_err() {
        SysfsError::Missing {
            feature,
            since,
            release,
        } => {
            assert_eq!(release, "6.6.0");
            (feature, since)
        }
        e => panic!("expected Missing, got {e}"),
    };
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(1));
    ctx.attrs.intervals_goal.aggrs = 3;
    let (feat, since) = missing(&ctx);
    assert!(
        feat.contains("intervals_goal") && since == "6.15",
        "{feat} {since}"
    );

    let mut ctx = Context::new();
    ctx.addr_unit = 4096;
    let (feat, since) = missing(&ctx);
    assert!(feat.contains("addr_unit") && since == "6.18", "{feat}");

    let young = |allow| {
        let mut ctx = Context::new();
        let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
        s.filters.push(Filter {
            kind: FilterKind::Young,
            matching: true,
            allow,
        });
        ctx.schemes.push(s);
        ctx
    };
    let (feat, since) = missing(&young(false));
    assert!(
        feat.contains("\"young\"") && since == "6.10",
        "{feat}: the kernel's EINVAL, worded"
    );
    let mut ctx = young(true);
    ctx.schemes[0].filters[0].kind = FilterKind::Anon;
    let (feat, since) = missing(&ctx);
    assert!(feat.contains("allow") && since == "6.14", "{feat}");
    // without allow, the old single directory takes the filter
    let mut ctx = young(false);
    ctx.schemes[0].filters[0].kind = FilterKind::Anon;
    write_context(&a, &f, idx, "vaddr", &ctx).unwrap();
    assert_eq!(
        k.get("kdamonds/0/contexts/0/schemes/0/filters/0/type"),
        "anon"
    );

    let mut ctx = Context::new();
    let mut s = Scheme::new(AccessPattern::default(), Action::MigrateHot);
    s.target_nid = 1;
    ctx.schemes.push(s);
    let (feat, since) = missing(&ctx);
    assert!(feat.contains("migrate_hot") && since == "6.11", "{feat}");

    let mut ctx = Context::new();
    let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
    s.quota.goals.push(QuotaGoal {
        metric: GoalMetric::UserInput,
        target_value: 1,
        current_value: 0,
        nid: 0,
        memcg_id: 0,
    });
    ctx.schemes.push(s);
    let (feat, since) = missing(&ctx);
    assert!(feat.contains("goals") && since == "6.8", "{feat}");
}

#[test]
fn operations_the_kernel_cannot_run_are_refused() {
    let mut p = Profile::v6_18();
    p.avail_operations = "paddr";
    let k = FakeKernel::new("ops", p);
    let a = admin(&k);
    let f = Features::probe(&a, k.profile.release).unwrap();
    let idx = claim_kdamond(&a, false, None).unwrap();
    let e = write_context(&a, &f, idx, "vaddr", &Context::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("vaddr operations set (avail_operations: paddr)"),
        "{e}"
    );
    let e = write_context(&a, &f, idx, "sim", &Context::new()).unwrap_err();
    assert!(e.to_string().contains("user-space backend"), "{e}");
}

#[test]
fn actions_the_kernels_operations_do_not_apply_are_refused() {
    let mut ctx = Context::new();
    ctx.schemes
        .push(Scheme::new(AccessPattern::default(), Action::LruPrio));
    // the kernel would take it and its vaddr would never act on it
    let e = kernel_can_run(&ctx, "vaddr").unwrap_err();
    assert!(
        e.to_string()
            .contains("vaddr operations do not apply the lru_prio action"),
        "{e}"
    );
    assert!(kernel_can_run(&ctx, "paddr").is_ok());
    ctx.schemes[0].action = Action::Willneed;
    assert!(kernel_can_run(&ctx, "fvaddr").is_ok());
    let e = kernel_can_run(&ctx, "paddr").unwrap_err();
    assert!(e.to_string().contains("willneed"), "{e}");
    for action in [Action::Pageout, Action::Stat, Action::MigrateCold] {
        ctx.schemes[0].action = action;
        assert!(kernel_can_run(&ctx, "paddr").is_ok() && kernel_can_run(&ctx, "vaddr").is_ok());
    }
}

#[test]
fn kdamonds_of_others_are_never_touched() {
    let k = FakeKernel::new("foreign", Profile::v6_18());
    let a = admin(&k);
    // someone else's kdamond, configured and running
    a.write("kdamonds/nr_kdamonds", 1).unwrap();
    a.write("kdamonds/0/contexts/nr_contexts", 1).unwrap();
    a.write("kdamonds/0/contexts/0/operations", "paddr")
        .unwrap();
    k.run_foreign(0, 1234);
    let e = claim_kdamond(&a, true, None).unwrap_err();
    assert!(matches!(e, SysfsError::Foreign(_)), "{e}");
    assert!(e.to_string().contains("pid 1234"), "{e}");
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "1", "nothing renumbered");
    assert_eq!(k.get("kdamonds/0/state"), "on", "nothing stopped");
    assert_eq!(k.get("kdamonds/0/contexts/0/operations"), "paddr");
    // configured but off: refused unless taking over is allowed
    a.write("kdamonds/0/state", "off").unwrap();
    let e = claim_kdamond(&a, false, None).unwrap_err();
    assert!(e.to_string().contains("configured (but off)"), "{e}");
    assert_eq!(k.get("kdamonds/0/contexts/0/operations"), "paddr", "kept");
    assert_eq!(claim_kdamond(&a, true, None).unwrap(), 0);
    assert!(!kdamonds(&a).unwrap()[0].configured);
}

#[test]
fn the_lock_keeps_a_second_user_out() {
    let path = std::env::temp_dir().join(format!("damon-sysfs-lock-{}", std::process::id()));
    let first = SysfsLock::take(&path).unwrap();
    let e = SysfsLock::take(&path).unwrap_err();
    assert!(matches!(e, SysfsError::Locked { .. }), "{e}");
    drop(first);
    SysfsLock::take(&path).expect("free again once dropped");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_probe_reads_this_machines_tree() {
    // read only: the host's tree belongs to the machine
    let admin = Admin::kernel();
    match Features::probe(&admin, &kernel_release()) {
        Ok(f) => {
            assert!(f.version.is_some(), "{f:?}");
            if let Some(ops) = &f.avail_operations {
                assert!(!ops.is_empty(), "{f:?}");
            }
        }
        Err(SysfsError::NoInterface { .. }) => {
            println!("skipped: the_probe_reads_this_machines_tree: no DAMON sysfs interface here");
        }
        Err(e) => panic!("{e}"),
    }
}

fn no_lock() -> StartOptions {
    StartOptions {
        take_over_off: false,
        lock: None,
        owner: None,
        probe_scheme: false,
    }
}

#[test]
fn a_kdamond_of_ours_starts_reports_commits_and_goes() {
    let k = FakeKernel::new("kdamond", Profile::v6_18());
    let mut ctx = rich();
    ctx.schemes.truncate(1);
    let mut kd = KernelKdamond::start(admin(&k), "vaddr", &ctx, &no_lock()).unwrap();
    assert!(kd.is_running());
    assert_eq!(kd.pid(), Some(4242));
    // stats as the kernel leaves them after update_schemes_stats
    std::fs::write(
        k.root
            .join("kdamonds/0/contexts/0/schemes/0/stats/nr_tried"),
        "7\n",
    )
    .unwrap();
    std::fs::write(
        k.root
            .join("kdamonds/0/contexts/0/schemes/0/stats/sz_applied"),
        "8192\n",
    )
    .unwrap();
    let st = kd.stats().unwrap();
    assert_eq!((st[0].nr_tried, st[0].sz_applied), (7, 8192));
    let tried = kd.tried_regions().unwrap();
    assert_eq!(tried[0].0, 12288);
    assert_eq!(tried[0].1.len(), 2);
    assert_eq!(tried[0].1[0].range, AddrRange::new(0x1000, 0x3000));
    assert_eq!((tried[0].1[1].nr_accesses, tried[0].1[1].age), (3, 7));
    assert_eq!(tried[0].1[1].sz_filter_passed, Some(4096));
    assert_eq!(kd.effective_quotas().unwrap(), vec![0]);
    assert!(kd.tuned_intervals().is_ok());
    // pause is a 7.2 feature: named, not faked
    let e = kd.set_pause(true).unwrap_err();
    assert!(matches!(e, SysfsError::Missing { since: "7.2", .. }), "{e}");

    // a commit the kernel takes
    let mut next = rich();
    next.schemes.truncate(1);
    next.attrs.aggr_interval = 300_000;
    next.schemes[0].quota.sz = 1 << 20;
    kd.commit(&next).unwrap();
    assert_eq!(
        k.get("kdamonds/0/contexts/0/monitoring_attrs/intervals/aggr_us"),
        "300000"
    );
    // one it refuses: the tree is written back to what runs
    let mut bad = rich();
    bad.schemes.truncate(1);
    bad.attrs.min_nr_regions = 5000;
    let e = kd.commit(&bad).unwrap_err();
    assert!(e.to_string().contains("commit"), "{e}");
    assert_eq!(
        kd.read_back().unwrap().attrs,
        next.attrs,
        "the tree matches the running kdamond"
    );
    assert_eq!(kd.read_back().unwrap().schemes, next.schemes);

    drop(kd);
    assert_eq!(
        k.get("kdamonds/nr_kdamonds"),
        "0",
        "dropped: nothing of ours left"
    );
}

#[test]
fn a_kdamond_the_kernel_refuses_leaves_nothing_behind() {
    let k = FakeKernel::new("refused", Profile::v6_18());
    let mut ctx = rich();
    ctx.attrs.min_nr_regions = 2; // the kernel wants at least 3
    let e = KernelKdamond::start(admin(&k), "vaddr", &ctx, &no_lock()).unwrap_err();
    assert!(e.to_string().contains("write \"on\""), "{e}");
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0");
    // and a foreign running kdamond: nothing written at all
    let a = admin(&k);
    a.write("kdamonds/nr_kdamonds", 1).unwrap();
    a.write("kdamonds/0/contexts/nr_contexts", 1).unwrap();
    k.run_foreign(0, 99);
    let e = KernelKdamond::start(admin(&k), "vaddr", &rich(), &no_lock()).unwrap_err();
    assert!(e.to_string().contains("pid 99"), "{e}");
    assert_eq!(k.get("kdamonds/0/state"), "on");
    assert_eq!(
        k.get("kdamonds/0/contexts/0/operations"),
        "vaddr",
        "default, untouched"
    );
}

fn run_opts(tracefs: &std::path::Path) -> KernelRunOptions {
    KernelRunOptions {
        start: no_lock(),
        tracefs: tracefs.to_path_buf(),
        queue: 4,
    }
}

#[test]
fn a_context_runs_on_the_kernel_engine_with_its_callbacks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let k = FakeKernel::new("run", Profile::v6_18());
    let nowhere = k.root.join("no-tracefs");
    // callbacks that would have to run inside the kernel are refused
    let mut ctx = rich();
    ctx.callbacks.after_sampling = Some(Box::new(|_| damon_core::Control::Continue));
    let e = KernelRun::start(admin(&k), "vaddr", &mut ctx, &run_opts(&nowhere)).unwrap_err();
    assert!(
        e.to_string()
            .contains("after_sampling cannot run with the kernel engine"),
        "{e}"
    );
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0", "refused before writing");
    // after_aggregation needs the trace event: said, and nothing left behind
    let mut ctx = rich();
    ctx.callbacks.after_aggregation = Some(Box::new(|_| damon_core::Control::Continue));
    let e = KernelRun::start(admin(&k), "vaddr", &mut ctx, &run_opts(&nowhere)).unwrap_err();
    assert!(e.to_string().contains("damon_aggregated"), "{e}");
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0");
    assert!(
        ctx.callbacks.after_aggregation.is_some(),
        "a refused Context keeps its callbacks, for the user engine"
    );
    // no per-aggregation callback: runs, and before_terminate ends it
    let ends = Arc::new(AtomicUsize::new(0));
    let mut ctx = rich();
    let e2 = ends.clone();
    ctx.callbacks.before_terminate = Some(Box::new(move |c| {
        assert_eq!(c.targets.len(), 2);
        e2.fetch_add(1, Ordering::SeqCst);
    }));
    let run = KernelRun::start(admin(&k), "vaddr", &mut ctx, &run_opts(&nowhere)).unwrap();
    assert!(run.is_running());
    assert_eq!(run.kdamond().stats().unwrap().len(), 2);
    run.stop();
    assert_eq!(ends.load(Ordering::SeqCst), 1);
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0", "stopped: removed");
    assert!("kernel".parse::<Engine>().is_ok() && "gpu".parse::<Engine>().is_err());
}

#[test]
fn a_kdamond_a_killed_process_of_ours_left_is_taken_back() {
    let k = FakeKernel::new("orphan", Profile::v6_18());
    let a = admin(&k);
    let owner = k.root.join("owner");
    a.write("kdamonds/nr_kdamonds", 1).unwrap();
    a.write("kdamonds/0/contexts/nr_contexts", 1).unwrap();
    k.run_foreign(0, 4242);
    // no record, or a record of a live process, or of another kdamond: not ours
    let e = claim_kdamond(&a, false, Some(&owner)).unwrap_err();
    assert!(e.to_string().contains("pid 4242"), "{e}");
    std::fs::write(&owner, format!("4242 {}\n", std::process::id())).unwrap();
    assert!(
        claim_kdamond(&a, false, Some(&owner)).is_err(),
        "its owner lives"
    );
    std::fs::write(&owner, "4243 2147483646\n").unwrap();
    assert!(
        claim_kdamond(&a, false, Some(&owner)).is_err(),
        "another kdamond"
    );
    assert_eq!(k.get("kdamonds/0/state"), "on");
    // recorded as started by a process that is gone: ours, taken back
    std::fs::write(&owner, "4242 2147483646\n").unwrap();
    assert_eq!(claim_kdamond(&a, false, Some(&owner)).unwrap(), 0);
    assert!(!owner.exists(), "the stale record is cleared");
    assert!(!kdamonds(&a).unwrap()[0].on);
}

#[test]
fn without_tracefs_aggregations_come_from_a_hidden_stat_scheme() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let k = FakeKernel::new("probe", Profile::v6_18());
    let nowhere = k.root.join("no-tracefs");
    let mut ctx = rich();
    ctx.targets.truncate(1);
    ctx.schemes.truncate(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |m: &Context| {
        // the fake kernel's two tried regions, as target 0's regions
        assert_eq!(m.targets[0].regions.len(), 2);
        assert_eq!(m.targets[0].regions[1].nr_accesses, 3);
        c.fetch_add(1, Ordering::SeqCst);
        damon_core::Control::Continue
    }));
    let run = KernelRun::start(admin(&k), "vaddr", &mut ctx, &run_opts(&nowhere)).unwrap();
    assert_eq!(
        k.get("kdamonds/0/contexts/0/schemes/nr_schemes"),
        "2",
        "the user's scheme and the hidden probe"
    );
    for _ in 0..200 {
        if calls.load(Ordering::SeqCst) >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(calls.load(Ordering::SeqCst) >= 3, "aggregations delivered");
    assert_eq!(run.latest().len(), 1);
    assert_eq!(
        run.kdamond().stats().unwrap().len(),
        1,
        "the probe stays hidden"
    );
    assert_eq!(run.kdamond().read_back().unwrap().schemes.len(), 1);
    run.stop();
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0");
}
