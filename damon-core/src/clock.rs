//! Injected time: a real monotonic clock for production and a virtual clock
//! that tests advance, so the engine never has to be waited for.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wakes a sleeping worker early (on stop, call or commit).
#[derive(Debug, Default)]
pub struct Wake {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    /// Signals the sleeper; the signal is kept until consumed by a sleep.
    pub fn notify(&self) {
        *self.flag.lock() = true;
        self.cv.notify_all();
    }

    /// Sleeps until `deadline` or a notification, whichever is first.
    /// Returns true if woken by a notification.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut f = self.flag.lock();
        while !*f {
            if self.cv.wait_until(&mut f, deadline).timed_out() {
                break;
            }
        }
        std::mem::replace(&mut *f, false)
    }

    /// Consumes a pending notification without sleeping.
    pub fn take(&self) -> bool {
        std::mem::replace(&mut *self.flag.lock(), false)
    }
}

/// A monotonic microsecond clock the engine sleeps on.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since an arbitrary origin; never decreases.
    fn now_us(&self) -> u64;
    /// Sleeps `us` microseconds or until `wake` fires. Virtual clocks advance
    /// time instead of sleeping. Returns true if woken early.
    fn sleep(&self, us: u64, wake: &Wake) -> bool;
}

/// Wall-clock time (`Instant`).
#[derive(Debug, Clone)]
pub struct RealClock {
    origin: Instant,
}

impl Default for RealClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl RealClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for RealClock {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
    fn sleep(&self, us: u64, wake: &Wake) -> bool {
        wake.wait_until(Instant::now() + Duration::from_micros(us))
    }
}

/// Virtual time: `sleep` advances it instantly; tests can also advance it.
/// Cloning shares the same time line.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    now: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A virtual clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves time forward by `us`.
    pub fn advance(&self, us: u64) {
        self.now.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_us(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep(&self, us: u64, wake: &Wake) -> bool {
        self.advance(us);
        wake.take()
    }
}
