//! After warm-up, a vaddr sample (prepare + check: pagemap translation and
//! page_idle pass) allocates nothing. Uses this process's own pagemap and
//! the fake page_idle.

use damon_core::testing::alloc::CountingAlloc;
use damon_core::{AddrRange, Attrs, Operations, OpsCtx, Rng, Target};
use damon_ops_common::sys::Advice;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_vaddr::VaddrOps;

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

const WARM_SAMPLES: usize = 500;

#[test]
fn fvaddr_samples_without_allocating() {
    let mut m = AnonMapping::new(32 << 20, 2 << 20).unwrap();
    m.advise(Advice::Nohugepage).unwrap();
    m.write_pages(0..m.len(), 1);
    // a fake page_idle as large as the machine's System RAM, so that a
    // page the kernel migrates during the test (compaction) still has a
    // PFN below the fake's max_pfn (an ENXIO would allocate its error)
    let ram_end_pfn = damon_ops_common::testing::zones_end_pfn();
    let mut pm = damon_ops_common::pagemap::PagemapFile::open(None).unwrap();
    let mut entries = vec![0u64; m.len() / 4096];
    pm.read_entries(m.addr() / 4096, &mut entries).unwrap();
    let max_pfn = entries
        .iter()
        .filter_map(|&e| damon_ops_common::pagemap::PagemapEntry(e).pfn())
        .max()
        .unwrap_or(0)
        .max(ram_end_pfn)
        + 1;
    let mut ops = VaddrOps::with_io(
        true,
        Box::new(FakePhysMem::new(max_pfn.next_multiple_of(64))),
    );
    let ranges: Vec<AddrRange> = (0..512u64)
        .map(|i| AddrRange::new(m.addr() + (i << 16), m.addr() + ((i + 1) << 16)))
        .collect();
    let attrs = Attrs::default();
    let mut rng = Rng::new(9);
    let mut targets = vec![Target::with_ranges(u64::from(std::process::id()), &ranges)];
    let mut ctx = OpsCtx::new(&attrs, &mut rng, &mut targets);
    ops.init(&mut ctx).unwrap();
    // One sample sizes every buffer; run lengths vary with the random
    // sampling addresses and physical placement, so many samples after it
    // must still allocate nothing.
    ops.prepare_access_checks(&mut ctx).unwrap();
    ops.check_accesses(&mut ctx).unwrap();
    let allocs0 = CountingAlloc::allocations();
    CountingAlloc::count_this_thread(true);
    for _ in 0..WARM_SAMPLES {
        ops.prepare_access_checks(&mut ctx).unwrap();
        ops.check_accesses(&mut ctx).unwrap();
    }
    CountingAlloc::count_this_thread(false);
    assert_eq!(
        CountingAlloc::allocations() - allocs0,
        0,
        "allocations in {WARM_SAMPLES} warm samples (sampler: {:?})",
        ops.stats()
    );
    drop(m);
}
