//! Helpers shared by the integration tests: a loop on virtual time over the
//! simulated backend, stepped until a number of aggregations has passed.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers; `expect` would fail in the binaries that use them all"
)]

use damon_core::*;
use std::sync::Arc;

pub(crate) const G: u64 = 1 << 30;
pub(crate) const M: u64 = 1 << 20;

/// A started loop over `pattern` with default attributes on virtual time.
pub(crate) fn sim_loop(pattern: SimPattern, seed: u64, attrs: Attrs) -> Kdamond {
    let mut ctx = Context::new();
    ctx.attrs = attrs;
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(pattern).with_seed(seed ^ 0xA5A5)),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(seed);
    let mut kd = Kdamond::new(ctx).expect("valid context");
    kd.init().expect("sim init");
    kd
}

/// Steps until one more aggregation has completed (its reset ran), and
/// returns the number of steps taken.
pub(crate) fn step_aggregation(kd: &mut Kdamond) -> u64 {
    let start = kd.ctx().loop_state().next_aggregation_sis;
    let mut steps = 0;
    while kd.ctx().loop_state().next_aggregation_sis == start {
        assert!(kd.step().is_none(), "loop ended unexpectedly");
        steps += 1;
    }
    steps
}

/// (share of hot bytes in accessed regions, cold-but-accessed bytes / space)
/// for the aggregation that just completed (its counts are in `last_nr_accesses`).
pub(crate) fn score(kd: &Kdamond, pattern: &SimPattern, t_us: u64) -> (f64, f64) {
    let mut hot_found = 0u64;
    let mut cold_accessed = 0u64;
    for r in &kd.ctx().targets[0].regions {
        if r.last_nr_accesses > 0 {
            let h = pattern.hot_bytes(t_us, r.ar);
            hot_found += h;
            cold_accessed += r.size() - h;
        }
    }
    (
        hot_found as f64 / pattern.total_hot_bytes(t_us).max(1) as f64,
        cold_accessed as f64 / pattern.space_bytes() as f64,
    )
}
