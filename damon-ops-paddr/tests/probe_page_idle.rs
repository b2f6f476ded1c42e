//! (e) Without CONFIG_IDLE_PAGE_TRACKING the backend refuses to start with
//! an error naming the option; with it (the VM suite), the probe reports it.

use damon_ops_common::{testing, ProbeReport};
use damon_ops_paddr::{PaddrOps, PaddrRegions};

#[test]
fn page_idle_absent_is_reported_with_the_config_option() {
    let report = ProbeReport::run();
    eprintln!("probe:\n{report}");
    if report.page_idle_present {
        assert!(
            report.kpageflags_present,
            "kpageflags comes with page_idle kernels"
        );
        if report.root {
            assert!(report.page_idle_writable, "root can write the bitmap");
            report.require_paddr().expect("paddr requirements met");
            PaddrOps::new(PaddrRegions::LargestSystemRam).expect("paddr opens");
        }
        return;
    }
    assert!(
        !testing::in_vm_suite(),
        "the VM suite's kernel must have page_idle:\n{report}"
    );
    let err = PaddrOps::new(PaddrRegions::LargestSystemRam)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CONFIG_IDLE_PAGE_TRACKING"), "{err}");
    assert!(err.contains("/sys/kernel/mm/page_idle/bitmap"), "{err}");
    damon_ops_paddr::register();
    let mut ctx = damon_core::Context::new();
    let err = damon_core::damon_select_ops(&mut ctx, "paddr")
        .unwrap_err()
        .to_string();
    assert!(err.contains("CONFIG_IDLE_PAGE_TRACKING"), "{err}");
}
