//! The loop does not allocate with DAMOS installed: after warm-up, steps
//! with schemes (quotas of size, time and a goal; watermarks; core
//! filters; a stat and an acting scheme) touch the allocator zero times.

use damon_core::damos::*;
use damon_core::testing::alloc::CountingAlloc;
use damon_core::*;
use damon_schemes::SimMetrics;
use std::sync::Arc;

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

#[test]
fn no_allocation_per_step_with_schemes_quotas_filters_and_goals() {
    let mut ctx = Context::new();
    let hot = vec![HotRange {
        range: AddrRange::new(G, G + 256 * M),
        probability: 0.8,
    }];
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(4 * G, hot)).with_seed(5)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(5);

    let cold = AccessPattern {
        max_nr_accesses: 0,
        ..AccessPattern::default()
    };
    let mut pageout = Scheme::new(cold, Action::Pageout);
    pageout.quota = Quota {
        sz: 64 * M,
        ms: 10,
        reset_interval: 200,
        weight_age: 1,
        goals: vec![QuotaGoal {
            metric: GoalMetric::UserInput,
            target_value: 10_000,
            current_value: 5_000,
            nid: 0,
            memcg_id: 0,
        }],
        ..Quota::default()
    };
    pageout.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 100_000,
        high: 900,
        mid: 800,
        low: 10,
    };
    pageout.filters.push(Filter {
        kind: FilterKind::Addr(AddrRange::new(0, 2 * G)),
        matching: true,
        allow: true,
    });
    let mut stat = Scheme::new(AccessPattern::default(), Action::Stat);
    stat.filters.push(Filter {
        kind: FilterKind::Target { target_idx: 0 },
        matching: false,
        allow: false,
    });
    stat.apply_interval_us = 300_000;
    ctx.schemes = vec![pageout, stat];
    let metrics = SimMetrics::new();
    metrics.set(|v| v.free_mem_rate = 500);
    damon_schemes::install(&mut ctx, metrics);

    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    // warm-up: region vectors, histograms and status buffers reach their size
    for _ in 0..4000 {
        assert!(kd.step().is_none());
    }
    let passed = kd.ctx().passed_sample_intervals();
    let applied0 = kd.ctx().schemes[0].stat.nr_tried;
    CountingAlloc::trace(std::env::var_os("ALLOC_TRACE").is_some());
    let ((), allocs) = CountingAlloc::counted(|| {
        for _ in 0..4000 {
            assert!(kd.step().is_none());
        }
    });
    assert_eq!(kd.ctx().passed_sample_intervals(), passed + 4000);
    assert!(
        kd.ctx().schemes[0].stat.nr_tried > applied0 && kd.ctx().schemes[1].stat.nr_tried > 0,
        "both schemes were applied while measured: {:?}",
        kd.ctx().schemes.iter().map(|s| s.stat).collect::<Vec<_>>()
    );
    assert_eq!(allocs, 0, "allocations in 4000 steps with schemes");
}
