//! The sampling loop does not allocate: after warm-up, neither sampling
#![allow(unsafe_code)] // a counting global allocator for the test
//! steps nor aggregation steps (merge, reset, split) touch the allocator.

use damon_core::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;
static TRACE: AtomicBool = AtomicBool::new(false);
thread_local! {
    // Only the measuring thread counts: the test harness's own threads may
    // allocate at any time.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(|c| c.get()).unwrap_or(false)
}

fn set_counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY-free: delegates to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            if TRACE.load(Ordering::Relaxed) {
                set_counting(false);
                eprintln!(
                    "alloc of {} bytes at:\n{}",
                    l.size(),
                    std::backtrace::Backtrace::force_capture()
                );
            }
        }
        // SAFETY: forwarding the caller's contract to System.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarding the caller's contract to System.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarding the caller's contract to System.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_sample_or_aggregation_after_warm_up() {
    let mut ctx = Context::new();
    let g = 1u64 << 30;
    let hot = vec![
        HotRange {
            range: AddrRange::new(g, 2 * g),
            probability: 0.7,
        },
        HotRange {
            range: AddrRange::new(6 * g, 6 * g + (64 << 20)),
            probability: 1.0,
        },
    ];
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(16 * g, hot))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(5);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    // warm-up: scratch buffers and region vectors reach their working size
    for _ in 0..2000 {
        assert!(kd.step().is_none());
    }
    let passed = kd.ctx().passed_sample_intervals();
    TRACE.store(std::env::var_os("ALLOC_TRACE").is_some(), Ordering::SeqCst);
    set_counting(true);
    for _ in 0..2000 {
        assert!(kd.step().is_none());
    }
    set_counting(false);
    assert_eq!(
        kd.ctx().passed_sample_intervals(),
        passed + 2000,
        "100 aggregations were measured"
    );
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations in the sampling loop"
    );
}
