//! Why a loop ends, the user callbacks the loop runs (each caught if it
//! panics), and the end of the loop (`terminate`).

use super::Kdamond;
use crate::context::Context;
use crate::context::Control;
use crate::error::OpsError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Why a context stopped.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ExitReason {
    /// `damon_stop`, `stop()` or the last handle dropped.
    Stopped,
    /// Every target became invalid (e.g. all monitored processes exited).
    AllTargetsInvalid {
        /// The backend's explanation.
        detail: String,
    },
    /// A callback returned [`Control::Stop`].
    CallbackStopped {
        /// Which callback.
        callback: &'static str,
    },
    /// A callback (or repeating call) panicked; the context was stopped.
    CallbackPanicked {
        /// Which callback.
        callback: &'static str,
        /// The panic message.
        message: String,
    },
    /// The backend failed.
    OpsFailed(Arc<OpsError>),
    /// The worker itself panicked (a bug in a backend or in this crate).
    WorkerPanicked(String),
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Stopped => write!(f, "stopped"),
            ExitReason::AllTargetsInvalid { detail } => {
                write!(f, "every target is invalid: {detail}")
            }
            ExitReason::CallbackStopped { callback } => {
                write!(f, "{callback} callback asked to stop")
            }
            ExitReason::CallbackPanicked { callback, message } => {
                write!(f, "{callback} callback panicked: {message}")
            }
            ExitReason::OpsFailed(e) => write!(f, "operations failed: {e}"),
            ExitReason::WorkerPanicked(m) => write!(f, "worker panicked: {m}"),
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The callbacks the loop runs at its named points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callback {
    /// After every sample (`after_sampling`).
    AfterSampling,
    /// At every aggregation, after merging (`after_aggregation`).
    AfterAggregation,
}

impl Callback {
    /// The name [`ExitReason`] reports.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Callback::AfterSampling => "after_sampling",
            Callback::AfterAggregation => "after_aggregation",
        }
    }
}

impl Kdamond {
    /// Runs one callback if it is set; a panic or a [`Control::Stop`] ends
    /// the loop with the callback's name.
    pub(super) fn run_callback(&mut self, which: Callback) -> Result<(), ExitReason> {
        let ctx = &self.ctx;
        let cb = match which {
            Callback::AfterSampling => self.callbacks.after_sampling.as_mut(),
            Callback::AfterAggregation => self.callbacks.after_aggregation.as_mut(),
        };
        let Some(cb) = cb else { return Ok(()) };
        match catch_unwind(AssertUnwindSafe(|| cb(ctx))) {
            Ok(Control::Continue) => Ok(()),
            Ok(Control::Stop) => Err(ExitReason::CallbackStopped {
                callback: which.name(),
            }),
            Err(p) => Err(ExitReason::CallbackPanicked {
                callback: which.name(),
                message: panic_message(p.as_ref()),
            }),
        }
    }

    /// Ends the loop: cancels the requests still queued (their callers get
    /// [`crate::CallError::Cancelled`]) and drops the repeating calls, runs
    /// `before_terminate`, then `cleanup_target` for every target. Returns
    /// the final context (without its backend).
    pub fn terminate(mut self) -> Context {
        // Closing the queue discards what it holds and makes later sends
        // fail, so no caller waits on a request that will never run.
        drop(self.cmds.take());
        self.repeats.clear();
        if let Some(cb) = self.callbacks.before_terminate.as_mut() {
            let ctx = &self.ctx;
            let _ = catch_unwind(AssertUnwindSafe(|| cb(ctx)));
        }
        for t in &self.ctx.targets {
            self.ops.cleanup_target(t);
        }
        self.ctx
    }
}
