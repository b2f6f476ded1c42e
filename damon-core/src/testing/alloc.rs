//! One counting global allocator for the no-allocation and heap-bound
//! tests: it forwards every request to [`System`] unchanged and counts.
//!
//! * allocations (`alloc`, `alloc_zeroed`, `realloc`) made on threads that
//!   turned counting on ([`CountingAlloc::count_this_thread`]), so the test
//!   harness's own threads never disturb the figure;
//! * the live heap bytes of the whole process ([`CountingAlloc::live_bytes`]);
//! * with [`CountingAlloc::trace`], a backtrace of every counted allocation.
//!
//! ```ignore
//! use damon_core::testing::alloc::CountingAlloc;
//! #[global_allocator]
//! static A: CountingAlloc = CountingAlloc;
//!
//! let (_, n) = CountingAlloc::counted(|| work());
//! assert_eq!(n, 0);
//! ```
#![expect(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The counting allocator; install it with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

fn note_counted(size: usize) {
    if !counting() {
        return;
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) {
        // Printing allocates: stop counting on this thread while it does.
        COUNTING.with(|c| c.set(false));
        eprintln!(
            "alloc of {size} bytes at:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        COUNTING.with(|c| c.set(true));
    }
}

impl CountingAlloc {
    /// Turns counting on or off for the calling thread.
    pub fn count_this_thread(on: bool) {
        COUNTING.with(|c| c.set(on));
    }

    /// Allocations counted so far (on every thread that counted).
    pub fn allocations() -> u64 {
        ALLOCS.load(Ordering::SeqCst)
    }

    /// Live heap bytes of the whole process (all threads).
    pub fn live_bytes() -> usize {
        LIVE.load(Ordering::SeqCst)
    }

    /// Prints a backtrace for every counted allocation from now on
    /// (tests turn it on with an environment variable to find the culprit).
    pub fn trace(on: bool) {
        TRACE.store(on, Ordering::SeqCst);
    }

    /// Runs `f` with counting on for this thread; returns its value and the
    /// allocations it made on this thread.
    pub fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = Self::allocations();
        Self::count_this_thread(true);
        let out = f();
        Self::count_this_thread(false);
        (out, Self::allocations() - before)
    }
}

// SAFETY: every method forwards the caller's request to the system
// allocator unchanged, under the same contract; the counters are atomics
// and the thread-local flag is read without allocating.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarding the caller's contract to System.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
            note_counted(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarding the caller's contract to System.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
            note_counted(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarding the caller's contract to System.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarding the caller's contract to System.
        let q = unsafe { System.realloc(p, l, new_size) };
        // On failure the old block stays allocated: nothing changes.
        if !q.is_null() {
            if new_size >= l.size() {
                LIVE.fetch_add(new_size - l.size(), Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new_size, Ordering::Relaxed);
            }
            note_counted(new_size);
        }
        q
    }
}
