//! After warm-up, a sample (prepare + check) allocates nothing: buffers,
//! run plans and verdicts are reused. Runs paddr on the fake page_idle.

use damon_core::{AddrRange, Attrs, Operations, OpsCtx, Rng, Target};
use damon_ops_paddr::fake::FakePhysMem;
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static COUNT: AtomicU64 = AtomicU64::new(0);
thread_local! {
    // Only the measuring thread counts: the test harness's other threads
    // may allocate at any moment.
    static ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counting() -> bool {
    ON.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counting() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if counting() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

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
    ON.with(|c| c.set(true));
    for _ in 0..100 {
        ops.prepare_access_checks(&mut ctx).unwrap();
        ops.check_accesses(&mut ctx).unwrap();
    }
    ON.with(|c| c.set(false));
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        0,
        "allocations in 100 warm samples"
    );
    assert!(
        ops.stats().accessed > 0 && ops.stats().idle > 0 && ops.stats().untracked > 0,
        "{:?}",
        ops.stats()
    );
}
