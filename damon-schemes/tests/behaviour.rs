//! DAMOS behaviour on the simulated backend, on virtual time.

use damon_core::damos::*;
use damon_core::*;
use damon_schemes::{SimMetrics, TriedRegion};
use parking_lot::Mutex;
use std::sync::Arc;

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

struct Setup {
    kd: Kdamond,
    clock: VirtualClock,
    control: damon_schemes::DamosControl,
    tried: Arc<Mutex<Vec<(usize, AddrRange, u32)>>>,
}

fn setup(
    pattern: SimPattern,
    schemes: Vec<Scheme>,
    metrics: SimMetrics,
    apply_us_per_mib: Option<u64>,
) -> Setup {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    let mut ops = SimOps::new(pattern).with_seed(3);
    if let Some(c) = apply_us_per_mib {
        ops = ops.with_apply_cost(clock.clone(), c);
    }
    ctx.set_ops("sim", Box::new(ops));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.seed = Some(1);
    ctx.schemes = schemes;
    let tried = Arc::new(Mutex::new(Vec::new()));
    let t2 = tried.clone();
    ctx.callbacks.before_damos_apply = Some(Box::new(move |_ti, _t, r, si, _s| {
        t2.lock().push((si, r.ar, r.age))
    }));
    let control = damon_schemes::install(&mut ctx, metrics);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    Setup {
        kd,
        clock,
        control,
        tried,
    }
}

fn run_until(s: &mut Setup, t_us: u64) {
    while s.clock.now_us() < t_us {
        assert!(s.kd.step().is_none());
    }
}

fn cold_half() -> SimPattern {
    SimPattern::with_hot(
        G,
        vec![HotRange {
            range: AddrRange::new(0, G / 2),
            probability: 1.0,
        }],
    )
}

#[test]
fn size_quota_is_never_exceeded_per_window() {
    let mut scheme = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..AccessPattern::default()
        },
        Action::Pageout,
    );
    scheme.quota = Quota {
        sz: 64 * M,
        reset_interval: 1000,
        weight_age: 1,
        ..Quota::default()
    };
    let mut s = setup(cold_half(), vec![scheme], SimMetrics::new(), None);
    let mut last = 0;
    // the first window starts at the first apply (first aggregation, 100 ms)
    for w in 1..=8u64 {
        // stop 50 ms before the window ends: the next step cannot reach it
        run_until(&mut s, 100_000 + w * 1_000_000 - 50_000);
        let tried = s.kd.ctx().schemes[0].stat.sz_tried;
        let in_window = tried - last;
        assert!(in_window <= 64 * M, "window {w}: {in_window} bytes > quota");
        assert!(
            in_window >= 63 * M,
            "window {w}: quota not used ({in_window}) though 512 MiB are cold"
        );
        last = tried;
    }
    let stat = s.kd.ctx().schemes[0].stat;
    assert!(
        stat.qt_exceeds >= 7,
        "every window hit the quota: {}",
        stat.qt_exceeds
    );
    assert_eq!(s.control.status()[0].esz, 64 * M);
}

#[test]
fn under_a_size_quota_the_coldest_regions_go_first() {
    // everything matches; prioritization alone must pick the idle half
    let mut scheme = Scheme::new(AccessPattern::default(), Action::Pageout);
    scheme.quota = Quota {
        sz: 32 * M,
        reset_interval: 1000,
        weight_nr_accesses: 1,
        weight_age: 1,
        ..Quota::default()
    };
    let mut s = setup(cold_half(), vec![scheme], SimMetrics::new(), None);
    run_until(&mut s, 5_000_000);
    let tried = s.tried.lock().clone();
    assert!(!tried.is_empty());
    let hot_bytes: u64 = tried
        .iter()
        .map(|(_, r, _)| r.overlap(&AddrRange::new(0, G / 2)))
        .sum();
    let total: u64 = tried.iter().map(|(_, r, _)| r.len()).sum();
    assert!(
        hot_bytes * 100 <= total,
        "{hot_bytes} of {total} tried bytes were hot"
    );
}

#[test]
fn watermarks_follow_the_kernel_band() {
    let m = SimMetrics::new();
    let mut scheme = Scheme::new(AccessPattern::default(), Action::Stat);
    scheme.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 10_000,
        high: 500,
        mid: 400,
        low: 200,
    };
    let mut s = setup(cold_half(), vec![scheme], m.clone(), None);
    let mut t = 0;
    let mut phase = |s: &mut Setup, rate: u64, expect_active: bool| {
        m.set(|v| v.free_mem_rate = rate);
        let (tried0, passed0) = (
            s.kd.ctx().schemes[0].stat.nr_tried,
            s.kd.ctx().passed_sample_intervals(),
        );
        t += 1_000_000;
        run_until(s, t);
        let (tried1, passed1) = (
            s.kd.ctx().schemes[0].stat.nr_tried,
            s.kd.ctx().passed_sample_intervals(),
        );
        assert_eq!(
            tried1 > tried0,
            expect_active,
            "free rate {rate}: active should be {expect_active}"
        );
        assert_eq!(
            passed1 > passed0,
            expect_active,
            "monitoring pauses while every scheme is inactive"
        );
        assert_eq!(s.control.status()[0].activated, expect_active);
    };
    phase(&mut s, 900, false); // above high
    phase(&mut s, 450, false); // inactive stays inactive in [mid, high]
    phase(&mut s, 300, true); // below mid: activate
    phase(&mut s, 450, true); // active stays active within the band
    phase(&mut s, 100, false); // below low
    phase(&mut s, 200, true); // low is inclusive
}

#[test]
fn time_quota_tracks_the_measured_throughput() {
    let mut scheme = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..AccessPattern::default()
        },
        Action::Pageout,
    );
    scheme.quota = Quota {
        ms: 10,
        reset_interval: 1000,
        weight_age: 1,
        ..Quota::default()
    };
    // acting costs 1000 µs per MiB: throughput 1 MiB/ms, so 10 ms buy 10 MiB
    let mut s = setup(cold_half(), vec![scheme], SimMetrics::new(), Some(1000));
    run_until(&mut s, 150_000);
    assert_eq!(
        s.control.status()[0].esz,
        4 * M * 10,
        "first window: the default 4 MiB/ms"
    );
    // acting on 40 MiB took 40 ms of (virtual) time, so the loop's
    // aggregations, and the second window, start 40 ms later
    run_until(&mut s, 1_300_000);
    let esz = s.control.status()[0].esz;
    assert!(
        esz.abs_diff(10 * M) <= 64 * 1024,
        "after measuring: {esz} ~ 10 MiB"
    );
    let mut last = s.kd.ctx().schemes[0].stat.sz_tried;
    for w in 2..6u64 {
        run_until(&mut s, 100_000 + w * 1_000_000 + 50_000);
        let tried = s.kd.ctx().schemes[0].stat.sz_tried;
        assert!(tried - last <= s.control.status()[0].esz.max(esz) + 4096);
        last = tried;
    }
}

#[test]
fn goal_tuning_converges_toward_the_target() {
    // Goal: act on 32 MiB per window. The user feeds back what was acted on
    // in the last window (user_input); the consist tuner must converge.
    let target = 32 * M;
    let mut scheme = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..AccessPattern::default()
        },
        Action::Pageout,
    );
    scheme.quota = Quota {
        reset_interval: 1000,
        goals: vec![QuotaGoal {
            metric: GoalMetric::UserInput,
            target_value: target,
            current_value: 0,
            nid: 0,
            memcg_id: 0,
        }],
        weight_age: 1,
        ..Quota::default()
    };
    let mut s = setup(
        SimPattern::uniform(64 * G, 0.0),
        vec![scheme.clone()],
        SimMetrics::new(),
        None,
    );
    let mut last = 0;
    let mut per_window = Vec::new();
    for w in 1..=40u64 {
        run_until(&mut s, 100_000 + w * 1_000_000 - 1);
        let tried = s.kd.ctx().schemes[0].stat.sz_tried;
        per_window.push(tried - last);
        let mut src = Context::new();
        src.targets.push(Target::new(0));
        let mut sch = scheme.clone();
        sch.quota.goals[0].current_value = tried - last;
        src.schemes.push(sch);
        s.kd.commit(src).unwrap();
        last = tried;
    }
    let tail = &per_window[30..];
    for &v in tail {
        let err = v.abs_diff(target) as f64 / target as f64;
        assert!(
            err < 0.1,
            "window bytes {v} not within 10% of {target}: {per_window:?}"
        );
    }
    assert!(per_window[0] < target / 2, "it started far from the goal");
}

#[test]
fn stats_add_up_and_stat_keeps_ages() {
    let mut stat_scheme = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..AccessPattern::default()
        },
        Action::Stat,
    );
    stat_scheme.apply_interval_us = 200_000;
    let cold = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            min_age_region: 5,
            ..AccessPattern::default()
        },
        Action::Cold,
    );
    let mut s = setup(
        cold_half(),
        vec![stat_scheme, cold],
        SimMetrics::new(),
        None,
    );
    run_until(&mut s, 3_000_000);
    let tried = s.tried.lock().clone();
    for (si, scheme) in s.kd.ctx().schemes.iter().enumerate() {
        let st = scheme.stat;
        let mine: Vec<_> = tried.iter().filter(|t| t.0 == si).collect();
        assert_eq!(st.nr_tried, mine.len() as u64);
        assert_eq!(st.sz_tried, mine.iter().map(|t| t.1.len()).sum::<u64>());
        assert!(st.nr_applied <= st.nr_tried && st.sz_applied <= st.sz_tried);
        assert_eq!(
            st.sz_ops_filter_passed, st.sz_tried,
            "the simulator passes every byte"
        );
        assert!(st.nr_snapshots > 0);
    }
    assert_eq!(
        s.kd.ctx().schemes[0].stat.sz_applied,
        0,
        "stat applies nothing"
    );
    assert!(s.kd.ctx().schemes[1].stat.sz_applied > 0);
    // cold resets ages of what it acted on, so cold never sees age >= 5 twice in a row for the same bytes
    assert!(s.kd.ctx().targets[0]
        .regions
        .iter()
        .any(|r| r.ar.start >= G / 2 && r.age < 5));
}

#[test]
fn tried_regions_match_what_the_engine_tried() {
    let scheme = Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..AccessPattern::default()
        },
        Action::Stat,
    );
    let mut s = setup(cold_half(), vec![scheme], SimMetrics::new(), None);
    run_until(&mut s, 1_000_000);
    let rx = s.control.request_tried_regions().unwrap();
    assert_eq!(
        s.control.request_tried_regions().unwrap_err(),
        damon_schemes::WalkError::Busy
    );
    s.tried.lock().clear();
    let got = loop {
        assert!(s.kd.step().is_none());
        if let Ok(t) = rx.try_recv() {
            break t;
        }
    };
    let expect: Vec<TriedRegion> = s
        .tried
        .lock()
        .iter()
        .map(|&(_, r, age)| TriedRegion {
            target_idx: 0,
            range: r,
            nr_accesses: 0,
            age,
            sz_filter_passed: r.len(),
        })
        .collect();
    assert_eq!(got.schemes[0], expect);
    assert!(
        got.total_bytes(0) >= 400 * M,
        "the idle half: {}",
        got.total_bytes(0)
    );
}

#[test]
fn bad_schemes_are_refused_naming_the_field() {
    let ctx_with = |s: Scheme| {
        let mut ctx = Context::new();
        ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(G, 0.0))));
        ctx.targets.push(Target::new(0));
        ctx.schemes.push(s);
        damon_schemes::install(&mut ctx, SimMetrics::new());
        ctx
    };
    let err = |s: Scheme| Kdamond::new(ctx_with(s)).unwrap_err().to_string();
    let mut s = Scheme::new(
        AccessPattern {
            min_nr_accesses: 5,
            max_nr_accesses: 1,
            ..AccessPattern::default()
        },
        Action::Stat,
    );
    assert!(err(s.clone()).contains("schemes[0].pattern.nr_accesses"));
    s.pattern = AccessPattern {
        min_sz_region: 10,
        max_sz_region: 1,
        ..AccessPattern::default()
    };
    assert!(err(s.clone()).contains("schemes[0].pattern.sz"));
    s.pattern = AccessPattern::default();
    s.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 1,
        high: 100,
        mid: 200,
        low: 50,
    };
    assert!(err(s.clone()).contains("schemes[0].wmarks"));
    s.wmarks = Watermarks::default();
    s.quota.goals.push(QuotaGoal {
        metric: GoalMetric::UserInput,
        target_value: 0,
        current_value: 0,
        nid: 0,
        memcg_id: 0,
    });
    s.quota.reset_interval = 1000;
    assert!(err(s.clone()).contains("schemes[0].quota.goals[0].target_value"));
    s.quota.goals.clear();
    s.filters.push(Filter {
        kind: FilterKind::Young,
        matching: true,
        allow: false,
    });
    let e = err(s.clone());
    assert!(
        e.contains("schemes[0].filters[0]") && e.contains("young"),
        "{e}"
    );
    // a scheme without an engine is refused rather than silently ignored
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(G, 0.0))));
    ctx.schemes
        .push(Scheme::new(AccessPattern::default(), Action::Stat));
    assert!(Kdamond::new(ctx)
        .unwrap_err()
        .to_string()
        .contains("DAMOS engine"));
}

#[test]
fn reclaim_preset_pages_out_only_idle_memory_when_memory_is_short() {
    use damon_schemes::presets::ReclaimParams;
    let p = ReclaimParams {
        min_age: 1_000_000,
        quota_ms: 0,
        quota_sz: 0,
        wmarks_interval: 100_000,
        ..ReclaimParams::default()
    };
    let m = SimMetrics::new();
    m.set(|v| v.free_mem_rate = 900); // plenty of free memory: inactive
    let mut s = setup(cold_half(), vec![p.scheme()], m.clone(), None);
    run_until(&mut s, 3_000_000);
    assert_eq!(
        s.kd.ctx().schemes[0].stat.nr_tried,
        0,
        "inactive above the high watermark"
    );
    m.set(|v| v.free_mem_rate = 300); // below mid: activate
    run_until(&mut s, 6_000_000);
    let tried = s.tried.lock().clone();
    assert!(!tried.is_empty());
    for (_, r, age) in &tried {
        assert!(r.start >= G / 2, "hot memory {r} paged out");
        assert!(*age >= 10, "younger than min_age: {age}");
    }
    assert!(s.kd.ctx().schemes[0].stat.sz_applied >= 400 * M);
}
