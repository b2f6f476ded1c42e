//! Guest-VM tests on the `workload` example (`$DAMON_WORKLOAD_BIN`, packed
//! into the initramfs): accuracy per phase and following a phase change,
//! and a side-by-side run with the guest kernel's own DAMON. They need real
//! idle page tracking, so they skip by name on hosts without it.

mod common;

use common::{kernel_damon_regions, start, wait_phase, ADMIN};
use damon_core::*;
use damon_ops_common::testing;
use damon_ops_vaddr::VaddrOps;
use std::time::{Duration, Instant};

/// (share of the hot range in regions with accesses, share of the buffer's
/// cold bytes in regions with accesses), for the aggregation just finished.
fn score(
    regions: &[Region],
    buf: AddrRange,
    hot: AddrRange,
    accessed: impl Fn(&Region) -> bool,
) -> (f64, f64) {
    let (mut hot_found, mut cold_reported) = (0u64, 0u64);
    for r in regions.iter().filter(|r| accessed(r)) {
        let h = r.ar.overlap(&hot);
        hot_found += h;
        cold_reported += r.ar.overlap(&buf) - h;
    }
    (
        hot_found as f64 / hot.len() as f64,
        cold_reported as f64 / (buf.len() - hot.len()) as f64,
    )
}

fn vaddr_loop(pid: u64) -> Kdamond {
    let mut ctx = Context::new();
    ctx.set_ops("vaddr", Box::new(VaddrOps::new().expect("vaddr")));
    ctx.targets.push(Target::new(pid));
    ctx.seed = Some(7);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    kd
}

fn step_aggregation(kd: &mut Kdamond) {
    let start = kd.ctx().loop_state().next_aggregation_sis;
    while kd.ctx().loop_state().next_aggregation_sis == start {
        assert!(kd.step().is_none(), "the loop stopped");
    }
}

/// With default attributes, the hot range of each phase is found (at least
/// 80% of its bytes in regions with accesses, at most 10% of the cold bytes
/// reported), and the findings follow a phase change within 10 aggregations.
#[test]
fn vaddr_follows_the_workload_phases() {
    let name = "vaddr_follows_the_workload_phases";
    if !testing::require_vaddr(name) {
        return;
    }
    let Some(w) =
        start("region buf 64M nothp; phase 8s buf:0-16M:write; phase 300s buf:40M-56M:write")
    else {
        assert!(
            !testing::in_vm_suite(),
            "DAMON_WORKLOAD_BIN must be set in the VM suite"
        );
        return testing::skip(name, "DAMON_WORKLOAD_BIN not set");
    };
    let hot0 = wait_phase(&w, 0);
    let mut kd = vaddr_loop(w.pid);
    // settle for 4 s of phase 0, then require the accuracy at an aggregation
    let t0 = Instant::now();
    let mut best0 = (0.0, 1.0);
    while t0.elapsed() < Duration::from_secs(6) {
        step_aggregation(&mut kd);
        if t0.elapsed() > Duration::from_secs(3) {
            let s = score(&kd.ctx().targets[0].regions, w.buf, hot0, |r| {
                r.last_nr_accesses > 0
            });
            if s.0 >= 0.8 && s.1 <= 0.1 {
                best0 = s;
                break;
            }
            best0 = s;
        }
    }
    eprintln!(
        "phase 0: hot found {:.0}%, cold reported {:.1}%",
        best0.0 * 100.0,
        best0.1 * 100.0
    );
    assert!(
        best0.0 >= 0.8 && best0.1 <= 0.1,
        "phase 0 not found: {best0:?}"
    );
    let hot1 = wait_phase(&w, 1);
    let mut followed = None;
    for i in 1..=10 {
        step_aggregation(&mut kd);
        let s = score(&kd.ctx().targets[0].regions, w.buf, hot1, |r| {
            r.last_nr_accesses > 0
        });
        eprintln!(
            "after the change, aggregation {i}: hot found {:.0}%, cold reported {:.1}%",
            s.0 * 100.0,
            s.1 * 100.0
        );
        if s.0 >= 0.8 && s.1 <= 0.1 {
            followed = Some(i);
            break;
        }
    }
    assert!(
        followed.is_some(),
        "did not follow the phase change within 10 aggregations"
    );
}

/// The guest kernel's DAMON and ours monitor the same workload in the same
/// run: both find the hot range (at least 80% of it in regions with
/// accesses). Both region lists are printed.
#[test]
fn kernel_damon_and_ours_agree_on_the_hot_range() {
    let name = "kernel_damon_and_ours_agree_on_the_hot_range";
    if !testing::require_vaddr(name) {
        return;
    }
    let ops = std::fs::read_to_string(format!("{ADMIN}/kdamonds/nr_kdamonds"));
    if ops.is_err() {
        assert!(
            !testing::in_vm_suite(),
            "the guest kernel must have CONFIG_DAMON_SYSFS"
        );
        return testing::skip(name, "no DAMON sysfs interface (CONFIG_DAMON_SYSFS)");
    }
    let Some(w) = start("region buf 64M nothp; phase 300s buf:0-16M:write") else {
        assert!(
            !testing::in_vm_suite(),
            "DAMON_WORKLOAD_BIN must be set in the VM suite"
        );
        return testing::skip(name, "DAMON_WORKLOAD_BIN not set");
    };
    let hot = wait_phase(&w, 0);
    // the kernel first, then ours, on the same process (the two would
    // otherwise clear each other's accessed bits)
    let theirs = kernel_damon_regions(w.pid, 8);
    let mut kd = vaddr_loop(w.pid);
    for _ in 0..60 {
        step_aggregation(&mut kd);
    }
    let ours: Vec<(AddrRange, u32)> = kd.ctx().targets[0]
        .regions
        .iter()
        .map(|r| (r.ar, r.last_nr_accesses))
        .collect();
    let print = |who: &str, rs: &[(AddrRange, u32)]| {
        eprintln!("{who}: {} regions", rs.len());
        for (r, n) in rs.iter().filter(|(r, _)| r.intersects(&w.buf)) {
            eprintln!("  {r} ({} KiB) nr_accesses={n}", r.len() / 1024);
        }
    };
    print("kernel DAMON", &theirs);
    print("user-space DAMON", &ours);
    let found = |rs: &[(AddrRange, u32)]| -> f64 {
        rs.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, _)| r.overlap(&hot))
            .sum::<u64>() as f64
            / hot.len() as f64
    };
    let (k, u) = (found(&theirs), found(&ours));
    eprintln!(
        "hot range {hot}: kernel finds {:.0}%, we find {:.0}%",
        k * 100.0,
        u * 100.0
    );
    assert!(!theirs.is_empty(), "the kernel reported no region");
    assert!(
        k >= 0.8,
        "kernel DAMON found only {:.0}% of the hot range",
        k * 100.0
    );
    assert!(u >= 0.8, "we found only {:.0}% of the hot range", u * 100.0);
}
