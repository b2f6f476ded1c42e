//! (e) Without CONFIG_IDLE_PAGE_TRACKING, vaddr and fvaddr refuse to start
//! with an error naming the option; with it, the probe reports it present.

use damon_ops_common::{testing, ProbeReport};
use damon_ops_vaddr::VaddrOps;

#[test]
fn page_idle_absent_is_reported_with_the_config_option() {
    let report = ProbeReport::run();
    if report.page_idle_present {
        if report.root {
            report.require_vaddr().expect("vaddr requirements met");
            VaddrOps::new().expect("vaddr opens");
            VaddrOps::fixed().expect("fvaddr opens");
        }
        return;
    }
    assert!(
        !testing::in_vm_suite(),
        "the VM suite's kernel must have page_idle:\n{report}"
    );
    for e in [VaddrOps::new().unwrap_err(), VaddrOps::fixed().unwrap_err()] {
        let e = e.to_string();
        assert!(e.contains("CONFIG_IDLE_PAGE_TRACKING"), "{e}");
    }
    damon_ops_vaddr::register();
    for id in ["vaddr", "fvaddr"] {
        let mut ctx = damon_core::Context::new();
        let e = damon_core::damon_select_ops(&mut ctx, id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CONFIG_IDLE_PAGE_TRACKING"), "{id}: {e}");
    }
}
