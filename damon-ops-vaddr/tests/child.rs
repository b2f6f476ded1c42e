//! (b) vaddr finds the hot part of a child's buffer; (d) a target that exits
//! mid-run stops the context with AllTargetsInvalid. Need root and
//! CONFIG_IDLE_PAGE_TRACKING.

mod common;

use damon_core::{damon_start, AddrRange, Context, ExitReason, Kdamond, RealClock, Target};
use damon_ops_common::testing;
use damon_ops_vaddr::VaddrOps;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn child_workload_entry() {
    common::child_main();
}

/// (fraction of hot bytes in regions seen accessed, fraction of cold bytes in them)
fn score(regions: &[damon_core::Region], hot: AddrRange, cold: AddrRange) -> (f64, f64) {
    let seen = regions.iter().filter(|r| r.last_nr_accesses > 0);
    let (h, c) = seen.fold((0, 0), |(h, c), r| {
        (h + r.ar.overlap(&hot), c + r.ar.overlap(&cold))
    });
    (h as f64 / hot.len() as f64, c as f64 / cold.len() as f64)
}

fn run_child_accuracy(test: &str, fixed: bool) {
    if !testing::require_vaddr(test) {
        return;
    }
    let w = common::spawn_workload(64 << 20, 16 << 20, common::UNTIL_KILLED_MS);
    let hot = AddrRange::new(w.addr, w.addr + w.hot_len);
    let cold = AddrRange::new(w.addr + w.hot_len, w.addr + w.len);
    let mut ctx = Context::new();
    if fixed {
        ctx.set_ops("fvaddr", Box::new(VaddrOps::fixed().expect("fvaddr")));
        ctx.targets.push(Target::with_ranges(
            w.pid,
            &[AddrRange::new(w.addr, w.addr + w.len)],
        ));
    } else {
        ctx.set_ops("vaddr", Box::new(VaddrOps::new().expect("vaddr")));
        ctx.targets.push(Target::new(w.pid));
    }
    ctx.clock = Some(Arc::new(RealClock::new()));
    let mut kd = Kdamond::new(ctx).expect("context");
    kd.init().expect("init");
    let start = Instant::now();
    let mut scores = Vec::new();
    while start.elapsed() < Duration::from_secs(6) {
        let before = kd.ctx().loop_state().next_aggregation_sis;
        assert!(kd.step().is_none(), "the loop stopped");
        if kd.ctx().loop_state().next_aggregation_sis != before
            && start.elapsed() > Duration::from_secs(2)
        {
            scores.push(score(&kd.ctx().targets[0].regions, hot, cold));
        }
    }
    let last: Vec<(f64, f64)> = scores.iter().rev().take(10).copied().collect();
    let n = last.len().max(1) as f64;
    let (h, c) = last
        .iter()
        .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x / n, b + y / n));
    eprintln!(
        "{test}: hot seen {h:.3}, cold seen {c:.3} over {} aggregations; {} regions",
        last.len(),
        kd.ctx().nr_regions()
    );
    assert!(
        h >= 0.8,
        "only {h:.3} of the hot bytes were in regions seen accessed"
    );
    assert!(
        c <= 0.1,
        "{c:.3} of the cold bytes were in regions seen accessed"
    );
}

#[test]
fn vaddr_finds_the_hot_range_of_a_child() {
    run_child_accuracy("vaddr_finds_the_hot_range_of_a_child", false);
}

#[test]
fn fvaddr_finds_the_hot_range_of_a_child() {
    run_child_accuracy("fvaddr_finds_the_hot_range_of_a_child", true);
}

#[test]
fn target_exit_stops_the_context() {
    if !testing::require_vaddr("target_exit_stops_the_context") {
        return;
    }
    let w = common::spawn_workload(8 << 20, 4 << 20, 1500);
    let mut ctx = Context::new();
    ctx.set_ops("vaddr", Box::new(VaddrOps::new().expect("vaddr")));
    ctx.targets.push(Target::new(w.pid));
    let handles = damon_start(vec![ctx], false).expect("start");
    let start = Instant::now();
    while handles[0].is_running() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !handles[0].is_running(),
        "the context still runs 30 s after its target exited"
    );
    match handles[0].wait() {
        Some(ExitReason::AllTargetsInvalid { detail }) => {
            assert!(detail.contains(&w.pid.to_string()), "{detail}");
        }
        other => panic!("unexpected exit: {other:?}"),
    }
}
