//! A backend's cost per region-sample, for the guest cost tests and
//! benchmarks: a context that only samples (no aggregation, no ops update)
//! on a virtual clock, so a step does the sampling work without sleeping.

use crate::{Context, Kdamond, Operations, Target, VirtualClock};
use std::sync::Arc;

/// A ready [`Kdamond`] over `ops` with exactly `nr_regions` regions on
/// `target`, whose steps only sample.
///
/// # Panics
/// If the context is refused or `ops.init` fails (a test's setup error).
pub fn sampling_loop(ops: Box<dyn Operations>, target: Target, nr_regions: u32) -> Kdamond {
    let mut ctx = Context::new();
    ctx.attrs.min_nr_regions = nr_regions;
    ctx.attrs.max_nr_regions = nr_regions;
    ctx.attrs.aggr_interval = u64::MAX / 4;
    ctx.attrs.ops_update_interval = u64::MAX / 4;
    ctx.set_ops("cost", ops);
    ctx.targets.push(target);
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(1);
    let mut kd = Kdamond::new(ctx).expect("a valid sampling context");
    kd.init().expect("the backend's init");
    kd
}

/// Sampling steps for about 50 000 region-samples (at least 20).
pub fn steps_for(nr_regions: u32) -> u64 {
    (50_000 / u64::from(nr_regions.max(1))).max(20)
}

/// (µs, system calls) per region-sample over `steps` sampling steps, after
/// 20 warm-up steps.
///
/// # Panics
/// If the loop stops or the backend does not count its system calls.
pub fn measure(kd: &mut Kdamond, steps: u64) -> (f64, f64) {
    for _ in 0..20 {
        assert!(kd.step().is_none(), "the loop stopped during warm-up");
    }
    let calls0 = kd.ops().syscalls().expect("the backend counts its calls");
    let t = std::time::Instant::now();
    for _ in 0..steps {
        assert!(kd.step().is_none(), "the loop stopped");
    }
    let el = t.elapsed();
    let calls = kd.ops().syscalls().expect("counted") - calls0;
    let rs = (steps * kd.ctx().nr_regions() as u64) as f64;
    (el.as_secs_f64() * 1e6 / rs, calls as f64 / rs)
}
