//! The sampling loop does not allocate: after warm-up, neither sampling
//! steps nor aggregation steps (merge, reset, split) touch the allocator.

use damon_core::testing::alloc::CountingAlloc;
use damon_core::*;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn no_allocation_per_sample_or_aggregation_after_warm_up() {
    let mut ctx = Context::new();
    let g = 1u64 << 30;
    let hot = vec![
        HotRange {
            range: AddrRange::new(g, 2 * g),
            probability: 0.7,
        },
        HotRange {
            range: AddrRange::new(6 * g, 6 * g + (64 << 20)),
            probability: 1.0,
        },
    ];
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(16 * g, hot))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(5);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    // warm-up: scratch buffers and region vectors reach their working size
    for _ in 0..2000 {
        assert!(kd.step().is_none());
    }
    let passed = kd.ctx().passed_sample_intervals();
    CountingAlloc::trace(std::env::var_os("ALLOC_TRACE").is_some());
    let ((), allocs) = CountingAlloc::counted(|| {
        for _ in 0..2000 {
            assert!(kd.step().is_none());
        }
    });
    assert_eq!(
        kd.ctx().passed_sample_intervals(),
        passed + 2000,
        "100 aggregations were measured"
    );
    assert_eq!(allocs, 0, "allocations in the sampling loop");
}
