//! (f) The conformance suite against vaddr and fvaddr: on real page_idle
//! (skipped without it) and, on any host where PFNs are visible, with the
//! fake page_idle (exercising pagemap, maps and pidfd handling for real).

mod common;

use damon_core::testing::conformance::{conformance_suite, SuiteConfig};
use damon_core::{AddrRange, Operations, Target};
use damon_ops_common::probe::{PfnVisibility, ProbeReport};
use damon_ops_common::testing;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_vaddr::VaddrOps;

#[test]
fn child_workload_entry() {
    common::child_main();
}

#[test]
fn conformance_vaddr_real() {
    if !testing::require_vaddr("conformance_vaddr_real") {
        return;
    }
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let make = || {
        Ok((
            Box::new(VaddrOps::new()?) as Box<dyn Operations>,
            vec![Target::new(w.pid)],
        ))
    };
    let reports = conformance_suite(&SuiteConfig::real_time(200), make).unwrap();
    eprintln!("conformance_vaddr_real: {reports:?}");
    // A run that saw no access at all fails, with a diagnosis printed. (It
    // used to happen under qemu when the guest had two vCPUs: see the
    // comment on the qemu command line in xtask/src/qemu.rs.)
    if reports.iter().all(|r| r.accessed_regions == 0) {
        let why = diagnose(w.pid, AddrRange::new(w.addr, w.addr + w.hot_len));
        panic!("conformance_vaddr_real: no access seen in any scenario: {why}");
    }
}

#[test]
fn conformance_fvaddr_real() {
    if !testing::require_vaddr("conformance_fvaddr_real") {
        return;
    }
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let range = AddrRange::new(w.addr, w.addr + w.len);
    let make = || {
        Ok((
            Box::new(VaddrOps::fixed()?) as Box<dyn Operations>,
            vec![Target::with_ranges(w.pid, &[range])],
        ))
    };
    let reports = conformance_suite(&SuiteConfig::real_time(200), make).unwrap();
    eprintln!("conformance_fvaddr_real: {reports:?}");
    assert!(
        reports.iter().any(|r| r.accessed_regions > 0),
        "{reports:?}"
    );
}

fn pfns_visible(test: &str) -> bool {
    let ok = ProbeReport::run().pagemap_pfns == PfnVisibility::Visible;
    testing::require(
        ok,
        test,
        "PFNs are hidden in /proc/PID/pagemap (needs root or CAP_SYS_ADMIN)",
    )
}

#[test]
fn conformance_vaddr_fake_page_idle() {
    if !pfns_visible("conformance_vaddr_fake_page_idle") {
        return;
    }
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let make = || {
        let ops = VaddrOps::with_io(false, Box::new(FakePhysMem::new(1 << 16)));
        Ok((
            Box::new(ops) as Box<dyn Operations>,
            vec![Target::new(w.pid), Target::new(std::process::id().into())],
        ))
    };
    let cfg = SuiteConfig {
        check_bounds: false,
        ..SuiteConfig::virtual_time(300)
    };
    let reports = conformance_suite(&cfg, make).unwrap();
    assert!(reports.iter().all(|r| r.aggregations > 0), "{reports:?}");
}

#[test]
fn conformance_fvaddr_fake_page_idle() {
    if !pfns_visible("conformance_fvaddr_fake_page_idle") {
        return;
    }
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let range = AddrRange::new(w.addr, w.addr + w.len);
    let make = || {
        let ops = VaddrOps::with_io(true, Box::new(FakePhysMem::new(1 << 16)));
        Ok((
            Box::new(ops) as Box<dyn Operations>,
            vec![Target::with_ranges(w.pid, &[range])],
        ))
    };
    let reports = conformance_suite(&SuiteConfig::virtual_time(300), make).unwrap();
    assert!(reports.iter().all(|r| r.aggregations > 0), "{reports:?}");
}

/// What a vaddr backend sees of `pid` over 40 samples: its initial regions,
/// maps, and the sampler's verdict counts (printed when a test fails).
fn diagnose(pid: u64, hot: AddrRange) -> String {
    let mut ops = VaddrOps::new().unwrap();
    let mut targets = vec![Target::new(pid)];
    let attrs = damon_core::Attrs::default();
    let mut rng = damon_core::Rng::new(1);
    let mut ctx = damon_core::OpsCtx::new(&attrs, &mut rng, &mut targets);
    let mut out = String::new();
    if let Err(e) = ops.init(&mut ctx) {
        return format!("init failed: {e}");
    }
    out += &format!(
        "hot {hot}, initial regions {:x?}\n",
        ctx.targets[0].ranges()
    );
    let _ = damon_core::backend::set_regions(&mut ctx.targets[0], &[hot], 4096);
    for _ in 0..40 {
        ops.prepare_access_checks(&mut ctx).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        ops.check_accesses(&mut ctx).unwrap();
    }
    out += &format!("sampling the hot range 40 times: {:?}\n", ops.stats());
    out += &std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    out
}
