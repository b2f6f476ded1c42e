//! (f) The conformance suite against the simulated backend, paddr on fake
//! memory (always) and paddr on real memory (needs page_idle).

use damon_core::testing::conformance::{conformance_suite, SuiteConfig};
use damon_core::{AddrRange, HotRange, Operations, SimOps, SimPattern, Target};
use damon_ops_common::testing;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_paddr::{PaddrOps, PaddrRegions};

#[test]
fn conformance_sim() {
    let make = || {
        let hot = vec![
            HotRange {
                range: AddrRange::new(16 << 20, 48 << 20),
                probability: 0.9,
            },
            HotRange {
                range: AddrRange::new(512 << 20, 520 << 20),
                probability: 0.3,
            },
        ];
        let ops = SimOps::new(SimPattern::with_hot(1 << 30, hot));
        Ok((
            Box::new(ops) as Box<dyn Operations>,
            vec![Target::new(0), Target::new(1)],
        ))
    };
    let reports = conformance_suite(&SuiteConfig::virtual_time(600), make).unwrap();
    for r in &reports {
        assert!(r.aggregations >= 20, "{r:?}");
        assert!(r.accessed_regions > 0, "{r:?}");
    }
}

#[test]
fn conformance_paddr_fake_memory() {
    let make = || {
        let mut mem = FakePhysMem::new(1 << 16);
        mem.add_hot(4096..8192, 0.8);
        mem.add_thp(20480, 512);
        mem.add_hot(20480..20992, 1.0);
        mem.set_untracked(30000..31000);
        let ranges = vec![
            AddrRange::new(0, 128 << 20),
            AddrRange::new(160 << 20, 256 << 20),
        ];
        let ops = PaddrOps::with_io(PaddrRegions::Ranges(ranges), Box::new(mem), 4096);
        Ok((Box::new(ops) as Box<dyn Operations>, vec![Target::new(0)]))
    };
    let reports = conformance_suite(&SuiteConfig::virtual_time(600), make).unwrap();
    assert!(
        reports.iter().all(|r| r.accessed_regions > 0),
        "{reports:?}"
    );
}

#[test]
fn conformance_paddr_real() {
    if !testing::require_paddr("conformance_paddr_real") {
        return;
    }
    let make = || {
        Ok((
            Box::new(PaddrOps::new(PaddrRegions::LargestSystemRam)?) as Box<dyn Operations>,
            vec![Target::new(0)],
        ))
    };
    let reports = conformance_suite(&SuiteConfig::real_time(200), make).unwrap();
    eprintln!("conformance_paddr_real: {reports:?}");
}
