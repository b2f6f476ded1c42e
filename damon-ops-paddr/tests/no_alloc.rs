//! After warm-up, a sample (prepare + check) allocates nothing: buffers,
//! run plans and verdicts are reused. Runs paddr on the fake page_idle.

use damon_core::testing::alloc::CountingAlloc;
use damon_core::{AddrRange, Attrs, Operations, OpsCtx, Rng, Target};
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_paddr::{PaddrOps, PaddrRegions};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

#[test]
fn paddr_samples_without_allocating() {
    let mut mem = FakePhysMem::new(1 << 16);
    mem.add_hot(1000..9000, 0.5);
    mem.add_thp(20480, 512);
    mem.add_hot(20480..20992, 1.0);
    mem.set_untracked(40000..41000);
    let mut ops = PaddrOps::with_io(PaddrRegions::default(), Box::new(mem), 4096);
    let ranges: Vec<AddrRange> = (0..500u64)
        .map(|i| AddrRange::new(i << 19, (i + 1) << 19))
        .collect();
    let attrs = Attrs::default();
    let mut rng = Rng::new(9);
    let mut targets = vec![Target::with_ranges(0, &ranges)];
    let mut ctx = OpsCtx::new(&attrs, &mut rng, &mut targets);
    for _ in 0..300 {
        ops.prepare_access_checks(&mut ctx).unwrap();
        ops.check_accesses(&mut ctx).unwrap();
    }
    let allocs0 = CountingAlloc::allocations();
    CountingAlloc::count_this_thread(true);
    for _ in 0..100 {
        ops.prepare_access_checks(&mut ctx).unwrap();
        ops.check_accesses(&mut ctx).unwrap();
    }
    CountingAlloc::count_this_thread(false);
    assert_eq!(
        CountingAlloc::allocations() - allocs0,
        0,
        "allocations in 100 warm samples"
    );
    assert!(
        ops.stats().accessed > 0 && ops.stats().idle > 0 && ops.stats().untracked > 0,
        "{:?}",
        ops.stats()
    );
}
