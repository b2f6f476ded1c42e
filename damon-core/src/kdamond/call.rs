//! `kdamond_call`: the point of the loop where requests from handles
//! (calls, repeating calls, commits, pauses) run.

use super::exit::panic_message;
use super::{ExitReason, Kdamond};
use crate::context::Context;
use crate::context::Control;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

/// A repeating `damon_call` closure.
pub type RepeatFn = Box<dyn FnMut(&Context) -> Control + Send>;

/// A request handled at the loop's `kdamond_call` point.
pub(crate) enum Cmd {
    /// One-shot closure (already wrapped with its reply channel).
    Call(Box<dyn FnOnce(&Context) + Send>),
    /// Repeating closure.
    Repeat(RepeatFn),
    /// Internal control (commit, pause) on the whole loop.
    Control(Box<dyn FnOnce(&mut Kdamond) + Send>),
}

impl Kdamond {
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// `kdamond_call`: runs pending calls, commits and controls, then every
    /// repeating call.
    ///
    /// Once a stop is requested (checked before each request, so also when
    /// it arrives while a callback or an earlier request runs), nothing
    /// more runs: the loop ends and [`Kdamond::terminate`] cancels what is
    /// still queued, as the kernel's `kdamond_call(ctx, true)` does.
    pub(super) fn kdamond_call(&mut self) -> Option<ExitReason> {
        // Taken out (not cloned: no refcount traffic every sample) because
        // a control command borrows the whole loop mutably.
        if let Some(rx) = self.cmds.take() {
            while !self.stop_requested() {
                let Ok(cmd) = rx.try_recv() else { break };
                match cmd {
                    Cmd::Call(f) => f(&self.ctx),
                    Cmd::Repeat(f) => self.repeats.push(f),
                    Cmd::Control(f) => f(self),
                }
            }
            self.cmds = Some(rx);
        }
        if self.stop_requested() {
            return Some(self.exit.take().unwrap_or(ExitReason::Stopped));
        }
        let mut i = 0;
        while i < self.repeats.len() {
            let ctx = &self.ctx;
            let f = &mut self.repeats[i];
            match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
                Ok(Control::Continue) => i += 1,
                Ok(Control::Stop) => {
                    drop(self.repeats.remove(i));
                    return Some(ExitReason::CallbackStopped {
                        callback: "damon_call",
                    });
                }
                Err(p) => {
                    drop(self.repeats.remove(i));
                    return Some(ExitReason::CallbackPanicked {
                        callback: "damon_call",
                        message: panic_message(p.as_ref()),
                    });
                }
            }
        }
        self.exit.take()
    }

    /// Adds a repeating call directly (no thread needed).
    pub fn add_repeat(&mut self, f: RepeatFn) {
        self.repeats.push(f);
    }
}
