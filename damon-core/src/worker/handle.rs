//! The handle of a running context: its requests (calls, commits, pause)
//! and its stop.

use super::Inner;
use crate::context::{Context, Control};
use crate::error::{CallError, CallTimeoutError, CommitError};
use crate::kdamond::{panic_message, Cmd, ExitReason, Kdamond};
use crossbeam_channel::RecvTimeoutError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Claim states of a [`DamonHandle::call_timeout`] closure: the worker
/// moves `PENDING` to `STARTED` before running it, a caller that timed out
/// moves `PENDING` to `ABANDONED`; whoever wins decides whether it runs.
pub(super) const CALL_PENDING: u8 = 0;
const CALL_STARTED: u8 = 1;
const CALL_ABANDONED: u8 = 2;

/// Controls one running context. Clones share the context; dropping the last
/// clone stops the worker and waits for it, as [`DamonHandle::stop`] does
/// (so it waits for a callback that is blocked; see the [module
/// docs](crate::worker#stopping)).
#[derive(Clone)]
pub struct DamonHandle {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for DamonHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DamonHandle")
            .field("running", &self.is_running())
            .field("tid", &self.thread_id())
            .finish()
    }
}

impl DamonHandle {
    /// True while the worker runs (`damon_is_running`); still true after a
    /// stop was requested, until the worker has actually ended.
    #[doc(alias = "damon_is_running")]
    pub fn is_running(&self) -> bool {
        self.inner.shared.running.load(Ordering::Acquire)
    }

    /// The worker's kernel thread id while it runs (`damon_kdamond_pid`).
    #[doc(alias = "damon_kdamond_pid")]
    pub fn thread_id(&self) -> Option<i32> {
        self.is_running()
            .then(|| self.inner.shared.tid.load(Ordering::Acquire))
    }

    /// Why the worker ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.inner.shared.exit.lock().clone()
    }

    /// Asks the worker to stop and returns at once; idempotent, and safe
    /// from a callback. A sleeping worker wakes at once; a busy one stops
    /// when its current callback, call or backend operation returns. From
    /// now on no queued or new request runs (they return
    /// [`CallError::Cancelled`]). The worker reports
    /// [`ExitReason::Stopped`] unless it was already ending for another
    /// reason.
    pub fn request_stop(&self) {
        self.inner.request_stop();
    }

    /// Stops the worker and waits for it to end; idempotent, and any
    /// number of threads may wait at once (`damon_stop` for one context,
    /// which waits like `kthread_stop()`).
    ///
    /// A callback that never returns keeps its thread (a thread cannot be
    /// killed) and then this never returns either; use
    /// [`DamonHandle::stop_timeout`] to bound the wait. From inside a
    /// callback it only requests the stop (no deadlock).
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Requests the stop, then waits at most `timeout` for the worker to
    /// end. Returns true if it has ended (now or before), false if it is
    /// still running, e.g. blocked in a callback; the request stays, so
    /// the worker ends as soon as that returns, and the caller may wait
    /// again ([`DamonHandle::stop_timeout`], [`DamonHandle::stop`],
    /// [`DamonHandle::wait`]) or give up. From inside a callback it returns
    /// false at once, since the worker cannot end before the callback does.
    pub fn stop_timeout(&self, timeout: Duration) -> bool {
        self.inner.request_stop();
        self.inner.wait_end(Some(timeout))
    }

    /// Waits until the worker ends by itself (targets gone, callback stop)
    /// or by a stop requested elsewhere, and returns why. Returns `None` at
    /// once from the worker thread itself.
    pub fn wait(&self) -> Option<ExitReason> {
        if !self.inner.wait_end(None) {
            return None;
        }
        self.exit_reason()
    }

    /// Takes the context as it was when the worker ended (targets with
    /// their last regions, scheme stats); `None` while running or if taken.
    pub fn take_final_context(&self) -> Option<Context> {
        if self.is_running() {
            return None;
        }
        self.inner.shared.final_ctx.lock().take()
    }

    /// Requests (calls, repeating calls, commits, pause, resume) queued
    /// for the worker and not yet taken. The worker takes every queued
    /// request at each loop step, so this stays near zero while it runs; a
    /// count that grows means it is stuck, e.g. in a blocking callback.
    /// Zero once the worker has ended (its queue is discarded).
    pub fn nr_pending_calls(&self) -> usize {
        self.inner.cmd_tx.len()
    }

    /// Queues `f` for the worker; the receiver gets its value or panic
    /// message, or is disconnected if `f` is cancelled. With `claim`, the
    /// worker runs `f` only if it can move the claim from pending to
    /// started (see [`DamonHandle::call_timeout`]).
    fn submit<R, F>(
        &self,
        f: F,
        claim: Option<Arc<AtomicU8>>,
    ) -> Result<crossbeam_channel::Receiver<Result<R, String>>, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        if self.inner.on_worker() {
            return Err(CallError::WouldDeadlock);
        }
        if !self.inner.accepting() {
            return Err(CallError::Cancelled);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Box<dyn FnOnce(&Context) + Send> = Box::new(move |ctx: &Context| {
            if let Some(c) = &claim {
                let won = c.compare_exchange(
                    CALL_PENDING,
                    CALL_STARTED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if won.is_err() {
                    return; // the caller gave up: dropping `tx` is enough
                }
            }
            let r =
                catch_unwind(AssertUnwindSafe(|| f(ctx))).map_err(|p| panic_message(p.as_ref()));
            let _ = tx.send(r);
        });
        self.inner
            .cmd_tx
            .send(Cmd::Call(job))
            .map_err(|_| CallError::Cancelled)?;
        Ok(rx)
    }

    /// Runs `f` once on the worker between two loop steps and returns its
    /// value (`damon_call`, `repeat=false`). Waits for as long as the
    /// worker takes to get there; see [`DamonHandle::call_timeout`] to
    /// bound the wait.
    ///
    /// Errors: [`CallError::Cancelled`] if a stop was requested or the
    /// worker ended before running `f` (then `f` never runs),
    /// [`CallError::WouldDeadlock`] from the worker thread itself,
    /// [`CallError::Panicked`] if `f` panics (the context keeps running).
    #[doc(alias = "damon_call")]
    pub fn call<R, F>(&self, f: F) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        match self.submit(f, None)?.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(CallError::Panicked(msg)),
            Err(_) => Err(CallError::Cancelled),
        }
    }

    /// [`DamonHandle::call`], waiting at most `timeout` for `f` to
    /// complete, so a caller cannot hang on a worker stuck in a callback.
    ///
    /// On [`CallTimeoutError::Timeout`], `f` is withdrawn: if the worker
    /// had not started it, it never will, even after the worker gets
    /// going again. If it had started, it runs to completion on the worker
    /// and its value is dropped (a closure is never interrupted). Other
    /// errors are [`DamonHandle::call`]'s, wrapped in
    /// [`CallTimeoutError::Call`].
    ///
    /// Deviation: the kernel's `damon_call` has no timeout.
    pub fn call_timeout<R, F>(&self, timeout: Duration, f: F) -> Result<R, CallTimeoutError>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        let claim = Arc::new(AtomicU8::new(CALL_PENDING));
        let rx = self.submit(f, Some(claim.clone()))?;
        let got = match rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => {
                let withdrawn = claim
                    .compare_exchange(
                        CALL_PENDING,
                        CALL_ABANDONED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                // Lost the race: `f` started, and may have just finished.
                match (withdrawn, rx.try_recv()) {
                    (false, Ok(v)) => Ok(v),
                    _ => return Err(CallTimeoutError::Timeout(timeout)),
                }
            }
            Err(RecvTimeoutError::Disconnected) => Err(()),
            Ok(v) => Ok(v),
        };
        match got {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(CallError::Panicked(msg).into()),
            Err(()) => Err(CallError::Cancelled.into()),
        }
    }

    /// Runs `f` on the worker at every loop iteration until the context
    /// ends or `f` returns [`Control::Stop`] (which stops the context)
    /// (`damon_call`, `repeat=true`). A panic in `f` stops the context and
    /// is reported by [`DamonHandle::exit_reason`]. `f` is not run once a
    /// stop is requested, and is dropped when the worker ends.
    ///
    /// Errors: [`CallError::Cancelled`] if a stop was requested or the
    /// worker ended (`f` is dropped unrun).
    pub fn call_repeat<F>(&self, f: F) -> Result<(), CallError>
    where
        F: FnMut(&Context) -> Control + Send + 'static,
    {
        if !self.inner.accepting() {
            return Err(CallError::Cancelled);
        }
        self.inner
            .cmd_tx
            .send(Cmd::Repeat(Box::new(f)))
            .map_err(|_| CallError::Cancelled)
    }

    fn control<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Kdamond) -> R + Send + 'static,
    ) -> Option<R> {
        if !self.inner.accepting() {
            return None;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Box<dyn FnOnce(&mut Kdamond) + Send> = Box::new(move |kd| {
            let _ = tx.send(f(kd));
        });
        self.inner.cmd_tx.send(Cmd::Control(job)).ok()?;
        rx.recv().ok()
    }

    /// Updates the running context's parameters from `src`
    /// (`damon_commit_ctx` via `damon_call`). On error the running context
    /// is exactly as it was. Waits for the worker like
    /// [`DamonHandle::call`]; [`CommitError::NotRunning`] once a stop was
    /// requested.
    #[doc(alias = "damon_commit_ctx")]
    pub fn commit(&self, src: Context) -> Result<(), CommitError> {
        if self.inner.on_worker() {
            return Err(CommitError::WouldDeadlock);
        }
        self.control(move |kd| kd.commit(src))
            .unwrap_or(Err(CommitError::NotRunning))
    }

    /// Pauses monitoring; learned state is kept. Returns false if not
    /// running or stopping. Waits for the worker like [`DamonHandle::call`].
    pub fn pause(&self) -> bool {
        !self.inner.on_worker() && self.control(|kd| kd.set_pause(true)).is_some()
    }

    /// Resumes a paused context. Returns false if not running or stopping.
    /// Waits for the worker like [`DamonHandle::call`].
    pub fn resume(&self) -> bool {
        !self.inner.on_worker() && self.control(|kd| kd.set_pause(false)).is_some()
    }
}
