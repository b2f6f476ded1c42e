//! Fault injection for tests (cargo feature `fault-injection`; never on in
//! a normal build, where the hooks compile to nothing).
//!
//! A test arms a plan for the files whose path contains a given string and
//! one kind of call; the next calls of that kind on those files take the
//! plan's faults in order, one per system call, before reaching the kernel
//! (or [`crate::testing::fake::FakePhysMem`], which has its own paths). Faults act
//! below the retry policy of [`crate::sys`], so an injected `EINTR` shows
//! that it is retried, and a short transfer shows that callers loop.
//!
//! ```
//! # #[cfg(feature = "fault-injection")] {
//! use damon_ops_common::testing::faults::{inject, Call, Fault};
//! use damon_ops_common::sys::KFile;
//! let plan = inject("/proc/self/status", Call::Pread, [Fault::Errno(libc::EINTR)]);
//! let mut f = KFile::open_read("/proc/self/status").unwrap();
//! let mut buf = Vec::new();
//! f.read_all(&mut buf).unwrap(); // EINTR was retried
//! assert_eq!(plan.hits(), 1);
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

/// The kind of call a plan applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `open` of a kernel file.
    Open,
    /// `pread`.
    Pread,
    /// `pwrite`.
    Pwrite,
    /// `process_madvise` (the plan's path is `pid N`).
    ProcessMadvise,
}

/// What one call does instead of (or to) the real call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fails with this errno; nothing is transferred or applied.
    Errno(i32),
    /// Transfers at most this many bytes (the real call, shortened).
    Short(usize),
    /// Transfers 0 bytes (as at the end of a file).
    Zero,
    /// `process_madvise`: only the first N ranges reach the kernel, as when
    /// it stops at a range it cannot advise.
    FirstRanges(usize),
}

struct Plan {
    pattern: String,
    call: Call,
    faults: std::collections::VecDeque<Fault>,
    hits: Arc<AtomicUsize>,
    id: u64,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static PLANS: Mutex<Vec<Plan>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An armed plan; disarmed on drop.
#[derive(Debug)]
#[must_use = "the plan is disarmed when the guard is dropped"]
pub struct FaultGuard {
    id: u64,
    hits: Arc<AtomicUsize>,
}

impl FaultGuard {
    /// Faults injected so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Acquire)
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
        plans.retain(|p| p.id != self.id);
        ARMED.store(!plans.is_empty(), Ordering::Release);
    }
}

/// Arms `faults` for the next `call`s on paths containing `pattern`.
pub fn inject(pattern: &str, call: Call, faults: impl IntoIterator<Item = Fault>) -> FaultGuard {
    let hits = Arc::new(AtomicUsize::new(0));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    plans.push(Plan {
        pattern: pattern.to_string(),
        call,
        faults: faults.into_iter().collect(),
        hits: hits.clone(),
        id,
    });
    ARMED.store(true, Ordering::Release);
    FaultGuard { id, hits }
}

/// True while any plan is armed (one atomic load).
pub(crate) fn armed() -> bool {
    ARMED.load(Ordering::Acquire)
}

/// The fault the next `call` on `path` takes, if a plan has one left.
pub(crate) fn take(path: &str, call: Call) -> Option<Fault> {
    if !ARMED.load(Ordering::Acquire) {
        return None;
    }
    let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    let plan = plans
        .iter_mut()
        .find(|p| p.call == call && !p.faults.is_empty() && path.contains(&p.pattern))?;
    let f = plan.faults.pop_front();
    if f.is_some() {
        plan.hits.fetch_add(1, Ordering::AcqRel);
    }
    f
}
