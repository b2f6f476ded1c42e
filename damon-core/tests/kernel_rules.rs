//! Smaller rules of the kernel's core the engine now follows (issue: DAMOS
//! and the core, item 8), each checked where it shows.

use damon_core::*;
use std::sync::Arc;

fn sim_ctx(targets: &[u64]) -> Context {
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::uniform(1 << 30, 0.1)).with_seed(3)),
    );
    for &t in targets {
        ctx.targets.push(Target::new(t));
    }
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(1);
    ctx
}

/// A backend like the kernel's paddr: no `target_valid`.
#[derive(Debug)]
struct NoValidity;

impl Operations for NoValidity {
    fn prepare_access_checks(&mut self, _ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        Ok(())
    }
    fn check_accesses(&mut self, _ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        Ok(0)
    }
}

#[test]
fn a_context_with_no_target_stops_when_its_backend_validates_targets() {
    let mut kd = Kdamond::new(sim_ctx(&[])).expect("valid");
    kd.init().expect("init");
    match kd.step() {
        Some(ExitReason::AllTargetsInvalid { detail }) => {
            assert!(detail.contains("no target"), "{detail}")
        }
        other => panic!("kdamond_need_stop stops a target-less vaddr-like context: {other:?}"),
    }
}

#[test]
fn a_context_with_no_target_runs_on_when_its_backend_cannot_validate_them() {
    let mut ctx = Context::new();
    ctx.set_ops("paddr-like", Box::new(NoValidity));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    for _ in 0..100 {
        assert!(kd.step().is_none(), "a paddr-like context monitors on");
    }
}

#[test]
fn worker_threads_are_numbered_after_the_contexts_already_running() {
    let name = |h: &DamonHandle| {
        h.call(|_| std::thread::current().name().map(str::to_owned))
            .expect("call")
            .expect("named")
    };
    let a = damon_start(vec![sim_ctx(&[0])], false).expect("start a");
    let b = damon_start(vec![sim_ctx(&[0])], false).expect("start b");
    let (na, nb) = (name(&a[0]), name(&b[0]));
    assert!(na.starts_with("kdamond.") && nb.starts_with("kdamond."));
    assert_eq!(
        (na.as_str(), nb.as_str()),
        ("kdamond.0", "kdamond.1"),
        "numbered after the contexts already running, as the kernel's nr_running_ctxs"
    );
}

#[test]
fn an_intervals_goal_with_access_bp_zero_is_accepted_as_the_kernel_does() {
    let a = Attrs {
        intervals_goal: IntervalsGoal {
            access_bp: 0,
            aggrs: 3,
            min_sample_us: 5_000,
            max_sample_us: 10_000_000,
        },
        ..Attrs::default()
    };
    a.validate().expect("the kernel accepts access_bp 0");
    let mut ctx = sim_ctx(&[0]);
    ctx.attrs = a;
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    for _ in 0..2000 {
        assert!(kd.step().is_none(), "tuning toward 0 events runs");
    }
    assert!(kd.ctx().attrs.sample_interval >= 5_000);
}
