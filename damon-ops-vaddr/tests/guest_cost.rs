//! Cost of the vaddr backend per region-sample, measured where it runs for
//! real (the guest VM suite; skipped by name elsewhere): microseconds and
//! system calls per region-sample at 100 and 1000 regions. Times are
//! printed, not asserted (the guest is emulated). The system-call count is
//! asserted: at most 1.0 per region-sample at 1000 regions (the target),
//! and below the naive 3 (pagemap read, bitmap write, bitmap read) at 100
//! regions, where sampled pages are too far apart in physical memory to
//! share a call: merging across such gaps would make the kernel scan up to
//! 32768 PFNs per call to save one call, trading time for a smaller count.
//! paddr's figures come from damon-ops-paddr's `guest_cost`;
//! `benches/backends.rs` has the criterion version.

mod common;

use damon_core::testing::cost::{measure, sampling_loop, steps_for};
use damon_core::*;
use damon_ops_common::testing;
use damon_ops_vaddr::VaddrOps;

#[test]
fn child_workload_entry() {
    common::child_main();
}

#[test]
fn backend_cost_per_region_sample() {
    if !testing::require_vaddr("backend_cost_per_region_sample") {
        return;
    }
    let w = common::spawn_workload(256 << 20, 64 << 20, common::UNTIL_KILLED_MS);
    let buf = AddrRange::new(w.addr, w.addr + w.len);
    for n in [100u32, 1000] {
        let mut kd = sampling_loop(
            Box::new(VaddrOps::new().unwrap()),
            Target::with_ranges(w.pid, &[buf]),
            n,
        );
        let (us, calls) = measure(&mut kd, steps_for(n));
        println!("backend-cost vaddr/{n}: regions={} us_per_region_sample={us:.3} syscalls_per_region_sample={calls:.3}", kd.ctx().nr_regions());
        let limit = if n >= 1000 { 1.0 } else { 3.0 };
        assert!(
            calls <= limit,
            "vaddr/{n}: {calls:.3} system calls per region-sample (limit {limit})"
        );
    }
}
