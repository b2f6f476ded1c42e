//! DAMOS defects found by review against the kernel's `core.c`, each
//! reproduced on the simulated backend on virtual time (issue: DAMOS and
//! the core). Every test here failed before its fix.

use damon_core::damos::*;
use damon_core::*;
use damon_schemes::SimMetrics;
use std::sync::Arc;

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

/// Idle memory of any age, every region.
fn idle() -> AccessPattern {
    AccessPattern {
        max_nr_accesses: 0,
        ..AccessPattern::default()
    }
}

/// A stat scheme on idle memory with a size quota per 1 s window.
fn quota_scheme(sz: u64) -> Scheme {
    let mut s = Scheme::new(idle(), Action::Stat);
    s.quota = Quota {
        sz,
        reset_interval: 1000,
        ..Quota::default()
    };
    s
}

/// A stepped loop over `ops` with one target per id, and the given schemes.
fn stepped(ops: SimOps, ids: &[u64], schemes: Vec<Scheme>) -> (Kdamond, VirtualClock) {
    stepped_with(ops, ids, schemes, None)
}

/// [`stepped`] with a `before_damos_apply` callback.
fn stepped_with(
    ops: SimOps,
    ids: &[u64],
    schemes: Vec<Scheme>,
    hook: Option<BeforeDamosApplyFn>,
) -> (Kdamond, VirtualClock) {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(ops));
    for &id in ids {
        ctx.targets.push(Target::new(id));
    }
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.seed = Some(7);
    ctx.schemes = schemes;
    ctx.callbacks.before_damos_apply = hook;
    damon_schemes::install(&mut ctx, SimMetrics::new());
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    (kd, clock)
}

fn run_until(kd: &mut Kdamond, clock: &VirtualClock, t_us: u64) {
    while clock.now_us() < t_us {
        assert!(kd.step().is_none(), "the loop stopped");
    }
}

fn sz_tried(kd: &Kdamond) -> u64 {
    kd.ctx().schemes[0].stat.sz_tried
}

/// Two idle 1 GiB targets.
fn two_idle_targets() -> SimOps {
    SimOps::new(SimPattern::uniform(G, 0.0))
        .with_target(1, SimPattern::uniform(G, 0.0))
        .with_seed(3)
}

#[test]
fn a_commit_that_drops_the_marked_target_does_not_stall_the_scheme() {
    // 1.5 GiB per window over two 1 GiB targets: the first window charges
    // all of target 0 and half of target 1, so the resume marker points
    // into target 1 when the commit removes it.
    let (mut kd, clock) = stepped(two_idle_targets(), &[0, 1], vec![quota_scheme(3 * G / 2)]);
    run_until(&mut kd, &clock, 500_000);
    assert!(sz_tried(&kd) >= 3 * G / 2 - 64 * M);
    let mut keep_first = Context::new();
    keep_first.targets.push(Target::new(0));
    keep_first.schemes = vec![quota_scheme(3 * G / 2)];
    kd.commit(keep_first).expect("commit keeping target 0");
    run_until(&mut kd, &clock, 2_000_000);
    let before = sz_tried(&kd);
    run_until(&mut kd, &clock, 5_000_000);
    assert!(
        sz_tried(&kd) >= before + 2 * G,
        "the scheme keeps trying target 0 in the windows after the commit: \
         sz_tried {before} -> {}",
        sz_tried(&kd)
    );
}

#[test]
fn a_commit_that_drops_a_lower_target_keeps_the_marker_on_the_target_it_named() {
    // Three 1 GiB targets and 2.5 GiB per window: the first window charges
    // targets 0 and 1 and half of target 2, so the marker points into
    // target 2. The commit removes target 1 (obsolete), moving target 2 to
    // index 1: the next window must resume there, where the marker is.
    let ops = SimOps::new(SimPattern::uniform(G, 0.0))
        .with_target(1, SimPattern::uniform(G, 0.0))
        .with_target(2, SimPattern::uniform(G, 0.0))
        .with_seed(3);
    let tried: Arc<parking_lot::Mutex<Vec<(usize, AddrRange)>>> = Arc::default();
    let t2 = tried.clone();
    let hook: BeforeDamosApplyFn = Box::new(move |ti, _, r, _, _| t2.lock().push((ti, r.ar)));
    let (mut kd, clock) = stepped_with(ops, &[0, 1, 2], vec![quota_scheme(5 * G / 2)], Some(hook));
    run_until(&mut kd, &clock, 500_000);
    let last_of_first_window = *tried.lock().last().expect("the first window tried regions");
    assert_eq!(
        last_of_first_window.0, 2,
        "the first window ends inside target 2"
    );
    let mark = last_of_first_window.1.end;
    let mut src = Context::new();
    src.targets.push(Target::new(0));
    let mut obsolete = Target::new(1);
    obsolete.obsolete = true;
    src.targets.push(obsolete);
    src.targets.push(Target::new(2));
    src.schemes = vec![quota_scheme(5 * G / 2)];
    kd.commit(src).expect("commit removing target 1");
    assert_eq!(kd.ctx().targets.len(), 2);
    let seen = tried.lock().len();
    run_until(&mut kd, &clock, 1_500_000);
    let next_window = tried.lock()[seen..].to_vec();
    let first = next_window.first().expect("the next window tried regions");
    assert_eq!(
        (first.0, first.1.start),
        (1, mark),
        "resumes in target 2 (now index 1) where the first window stopped"
    );
}

#[test]
fn an_invalid_target_holding_the_marker_does_not_stall_the_others() {
    // 256 MiB per window: the marker stays inside target 0 for four
    // windows; target 0 exits at 1.5 s while holding it.
    let mut exiting = SimPattern::uniform(G, 0.0);
    exiting.exit_after_us = Some(1_500_000);
    let ops = SimOps::new(exiting)
        .with_target(1, SimPattern::uniform(G, 0.0))
        .with_seed(3);
    let (mut kd, clock) = stepped(ops, &[0, 1], vec![quota_scheme(G / 4)]);
    run_until(&mut kd, &clock, 2_500_000);
    let before = sz_tried(&kd);
    run_until(&mut kd, &clock, 6_000_000);
    assert!(
        sz_tried(&kd) >= before + 3 * (G / 4) - 64 * M,
        "target 1 is tried in every window after target 0 exited: sz_tried {before} -> {}",
        sz_tried(&kd)
    );
}

#[test]
fn tried_regions_record_each_scheme_for_one_apply_interval_only() {
    // A fast (100 ms) and a slow (1 s) stat scheme over 64 MiB: the walk
    // completes after the slow scheme's interval, by when the fast one
    // applied ten times; it must report its regions once.
    let mut fast = Scheme::new(idle(), Action::Stat);
    fast.apply_interval_us = 100_000;
    let mut slow = Scheme::new(idle(), Action::Stat);
    slow.apply_interval_us = 1_000_000;
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(64 * M, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.seed = Some(7);
    ctx.schemes = vec![fast, slow];
    let control = damon_schemes::install(&mut ctx, SimMetrics::new());
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    run_until(&mut kd, &clock, 1_050_000);
    let rx = control.request_tried_regions().expect("no walk pending");
    let got = loop {
        assert!(kd.step().is_none());
        if let Ok(t) = rx.try_recv() {
            break t;
        }
    };
    assert!(
        got.total_bytes(0) <= 64 * M,
        "fast scheme: {} bytes in {} regions",
        got.total_bytes(0),
        got.schemes[0].len()
    );
    let mut ranges: Vec<AddrRange> = got.schemes[0].iter().map(|r| r.range).collect();
    ranges.sort_by_key(|r| r.start);
    assert!(
        ranges.windows(2).all(|w| w[0].end <= w[1].start),
        "no region reported twice"
    );
    assert!(got.total_bytes(1) > 0 && got.total_bytes(1) <= 64 * M);
}

#[test]
fn a_panic_in_before_damos_apply_stops_the_context_cleanly() {
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.schemes = vec![Scheme::new(idle(), Action::Stat)];
    let terminated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t2 = terminated.clone();
    ctx.callbacks.before_terminate = Some(Box::new(move |_| {
        t2.store(true, std::sync::atomic::Ordering::SeqCst)
    }));
    ctx.callbacks.before_damos_apply = Some(Box::new(|_, _, _, _, _| panic!("hook failed")));
    damon_schemes::install(&mut ctx, SimMetrics::new());
    let handles = damon_start(vec![ctx], false).expect("start");
    let reason = handles[0].wait().expect("the context ended");
    match &reason {
        ExitReason::CallbackPanicked { callback, message } => {
            assert_eq!(*callback, "before_damos_apply");
            assert!(message.contains("hook failed"), "{message}");
        }
        other => panic!("ended with {other:?}, not a caught callback panic"),
    }
    assert!(
        terminated.load(std::sync::atomic::Ordering::SeqCst),
        "before_terminate ran: the context was cleaned up"
    );
}

#[test]
fn a_psi_goal_on_a_kernel_without_psi_still_acts() {
    // /proc/pressure/memory missing (psi=0): the kernel reads 0 stall and
    // grows the quota (doubling from one byte per 100 ms window here);
    // before, the unreadable metric left esz at 0 for good.
    let mut s = Scheme::new(idle(), Action::Stat);
    s.quota = Quota {
        reset_interval: 100,
        goals: vec![QuotaGoal {
            metric: GoalMetric::SomeMemPsiUs,
            target_value: 1000,
            current_value: 0,
            nid: 0,
            memcg_id: 0,
        }],
        ..Quota::default()
    };
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.schemes = vec![s];
    let metrics = SimMetrics::new();
    metrics.set(|v| v.psi_missing = true);
    let control = damon_schemes::install(&mut ctx, metrics);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    run_until(&mut kd, &clock, 5_000_000);
    assert!(sz_tried(&kd) > 0, "{:?}", kd.ctx().schemes[0].stat);
    assert!(control.status()[0].esz > 0);
}

#[test]
fn a_goal_on_a_numa_node_that_does_not_exist_is_refused_at_install() {
    let mut s = Scheme::new(idle(), Action::Stat);
    s.quota = Quota {
        reset_interval: 1000,
        goals: vec![QuotaGoal {
            metric: GoalMetric::NodeMemFreeBp,
            target_value: 2000,
            current_value: 0,
            nid: 7,
            memcg_id: 0,
        }],
        ..Quota::default()
    };
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(G, 0.0))));
    ctx.targets.push(Target::new(0));
    ctx.schemes = vec![s];
    let metrics = SimMetrics::new();
    metrics.set(|v| v.nodes = vec![(0, 4 * G, G)]);
    damon_schemes::install(&mut ctx, metrics);
    let e = Kdamond::new(ctx)
        .expect_err("node 7 does not exist")
        .to_string();
    assert!(e.contains("schemes[0].quota.goals[0].nid"), "{e}");
    assert!(e.contains("node 7"), "{e}");
}

fn wmark_scheme(interval: u64) -> Scheme {
    let mut s = Scheme::new(idle(), Action::Stat);
    s.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval,
        high: 900,
        mid: 800,
        low: 100,
    };
    s
}

fn wmark_loop(scheme: Scheme, metrics: SimMetrics) -> (Kdamond, VirtualClock) {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.schemes = vec![scheme];
    damon_schemes::install(&mut ctx, metrics);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    (kd, clock)
}

#[test]
fn a_zero_watermark_interval_keeps_monitoring_with_the_scheme_inactive() {
    let metrics = SimMetrics::new();
    metrics.set(|v| v.free_mem_rate = 950); // above high: inactive
    let (mut kd, _clock) = wmark_loop(wmark_scheme(0), metrics);
    for _ in 0..1000 {
        assert!(kd.step().is_none());
    }
    assert_eq!(
        kd.ctx().passed_sample_intervals(),
        1000,
        "every step sampled: the kernel keeps monitoring while a 0-interval scheme is inactive"
    );
    assert_eq!(
        kd.ctx().schemes[0].stat.nr_tried,
        0,
        "the scheme is inactive"
    );
}

#[test]
fn a_commit_reactivates_watermarks_as_the_kernel_does() {
    let metrics = SimMetrics::new();
    metrics.set(|v| v.free_mem_rate = 950); // above high: deactivated
    let (mut kd, clock) = wmark_loop(wmark_scheme(100_000), metrics.clone());
    run_until(&mut kd, &clock, 1_000_000);
    assert_eq!(kd.ctx().schemes[0].stat.nr_tried, 0);
    // In the band between mid and high an inactive scheme stays inactive...
    metrics.set(|v| v.free_mem_rate = 850);
    run_until(&mut kd, &clock, 2_000_000);
    assert_eq!(kd.ctx().schemes[0].stat.nr_tried, 0);
    // ...but a commit makes it activated again, and in the band it stays so.
    let mut src = Context::new();
    src.targets.push(Target::new(0));
    src.schemes = vec![wmark_scheme(100_000)];
    kd.commit(src).expect("commit");
    run_until(&mut kd, &clock, 3_000_000);
    assert!(
        kd.ctx().schemes[0].stat.nr_tried > 0,
        "re-activated by the commit"
    );
}

#[test]
fn lru_sort_with_autotuned_intervals_starts_from_5_ms_and_100_ms() {
    let p = damon_schemes::presets::LruSortParams {
        autotune_monitoring_intervals: true,
        sample_interval: 20_000,
        aggr_interval: 400_000,
        ..Default::default()
    };
    let a = p.attrs();
    assert_eq!((a.sample_interval, a.aggr_interval), (5_000, 100_000));
    assert_ne!(a.intervals_goal.aggrs, 0);
}

#[test]
fn a_tried_regions_request_is_cancelled_while_the_context_is_paused() {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.schemes = vec![Scheme::new(idle(), Action::Stat)];
    let control = damon_schemes::install(&mut ctx, SimMetrics::new());
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    run_until(&mut kd, &clock, 300_000);
    kd.set_pause(true);
    let rx = control.request_tried_regions().expect("no walk pending");
    for _ in 0..10 {
        assert!(kd.step().is_none());
    }
    assert!(
        matches!(
            rx.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        ),
        "the paused loop cancels the walk, as the kernel's pause loop does"
    );
    assert!(
        control.request_tried_regions().is_ok(),
        "a new request can be made"
    );
}

#[test]
fn an_addr_filter_split_charges_and_counts_each_byte_once() {
    // Deliberate deviation (engine.rs, ARCHITECTURE.md): the kernel charges
    // and counts the size a region had before the address filter split it,
    // and leaves the split-off tail for the next pass; here the head counts
    // its own size and the tail is decided in the same pass, so sz_tried
    // is exactly the bytes the filter let through.
    let mut s = Scheme::new(idle(), Action::Stat);
    s.apply_interval_us = 1_000_000;
    s.filters.push(Filter {
        kind: FilterKind::Addr(AddrRange::new(0, 300 * M)),
        matching: true,
        allow: true,
    });
    let (mut kd, clock) = stepped(
        SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3),
        &[0],
        vec![s],
    );
    run_until(&mut kd, &clock, 1_500_000);
    let stat = kd.ctx().schemes[0].stat;
    assert_eq!(stat.nr_snapshots, 1, "one apply interval passed");
    assert_eq!(stat.sz_tried, 300 * M, "{stat:?}");
}

#[test]
fn a_quota_with_less_than_a_region_left_counts_as_full() {
    // 10 pages and 100 bytes per window: after 10 pages the 100 bytes left
    // fit no region, so the window is full (the mm tree's
    // damos_quota_is_full) and counts in qt_exceeds; before, the scheme
    // kept "trying" zero-byte pieces and the quota never counted as full.
    let (mut kd, clock) = stepped(
        SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3),
        &[0],
        vec![quota_scheme(10 * 4096 + 100)],
    );
    run_until(&mut kd, &clock, 5_500_000);
    let stat = kd.ctx().schemes[0].stat;
    assert!(stat.qt_exceeds >= 4, "{stat:?}");
    assert_eq!(stat.sz_tried % 4096, 0);
}

#[test]
fn a_fail_charge_ratio_charges_unapplied_bytes_at_its_fraction() {
    // stat applies nothing: with a 1/4 fail-charge ratio (v7.2) a window of
    // 64 MiB tries up to four times as many bytes.
    let mut s = quota_scheme(64 * M);
    s.quota.fail_charge_num = 1;
    s.quota.fail_charge_denom = 4;
    let (mut kd, clock) = stepped(
        SimOps::new(SimPattern::uniform(G, 0.0)).with_seed(3),
        &[0],
        vec![s],
    );
    run_until(&mut kd, &clock, 500_000); // inside the first window
    let tried = sz_tried(&kd);
    assert!(
        tried > 192 * M && tried <= 256 * M,
        "{} MiB tried in the first window",
        tried / M
    );
}

#[test]
fn a_resumed_window_tries_the_last_region_after_the_resume_point() {
    // Ten stable 100 MiB regions and 130 MiB per window (one window per
    // aggregation): a window ends at 910 MiB, inside the last region. The
    // next one must try [910 MiB, 1 GiB) before starting over; the
    // baseline skipped the last region whenever a resume point was set,
    // so with this quota bytes past 910 MiB were never tried at all.
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(1000 * M, 0.0)).with_seed(3)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.attrs.min_nr_regions = 10;
    ctx.attrs.max_nr_regions = 10;
    let mut s = quota_scheme(130 * M);
    s.quota.reset_interval = 100;
    ctx.schemes = vec![s];
    let tried: Arc<parking_lot::Mutex<Vec<AddrRange>>> = Arc::default();
    let t2 = tried.clone();
    ctx.callbacks.before_damos_apply = Some(Box::new(move |_, _, r, _, _| t2.lock().push(r.ar)));
    damon_schemes::install(&mut ctx, SimMetrics::new());
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    run_until(&mut kd, &clock, 3_000_000);
    let tried = tried.lock();
    assert!(
        tried.iter().any(|r| r.contains(950 * M)),
        "950 MiB was never tried: {:?}",
        tried.iter().take(20).collect::<Vec<_>>()
    );
}
