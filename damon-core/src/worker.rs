//! One OS thread per running context, and the handle that controls it
//! (`damon_start`, `damon_stop`, `damon_call`, `damon_commit_ctx`).
//!
//! # Stopping
//!
//! A context's worker runs the loop of [`Kdamond::step`] on its own thread,
//! named `kdamond.N`. Stopping it is a request the loop honours between
//! two of its own steps, so the caller chooses how long to wait:
//!
//! * [`DamonHandle::request_stop`] only asks and returns at once;
//! * [`DamonHandle::stop_timeout`] asks, then waits at most a given time
//!   and reports whether the worker ended;
//! * [`DamonHandle::stop`] (and [`damon_stop`], and dropping the last
//!   handle) asks, then waits for as long as it takes, as the kernel's
//!   `kthread_stop()` does.
//!
//! The request wakes a sleeping worker at once, but a worker busy in a
//! callback (or in a [`DamonHandle::call`] closure, or in the backend) sees
//! it only when that returns. A thread cannot be killed: a callback that
//! never returns keeps its worker thread for good, [`DamonHandle::stop`]
//! then never returns, and only [`DamonHandle::stop_timeout`] lets the
//! caller give up waiting (the thread stays). Other contexts are not
//! affected: each has its own thread, clock and request queue, and no
//! lock is held while a callback runs.
//!
//! # Calls and stop
//!
//! Requests ([`DamonHandle::call`], [`DamonHandle::call_repeat`], commits,
//! pause and resume) are queued and run at the loop's `kdamond_call`
//! point. Once a stop is requested, the loop runs no further request and
//! no repeating call: a request still queued when the worker ends is
//! cancelled, and a one-shot call waiting for it returns
//! [`CallError::Cancelled`], as the kernel's `kdamond_call(ctx, true)`
//! cancels pending `damon_call` requests with `-ECANCELED`. A request made
//! after the stop was requested is refused without being queued.
//! Repeating closures are dropped when the worker ends.
//!
//! [`DamonHandle::call`] waits for the worker like `damon_call` does;
//! [`DamonHandle::call_timeout`] gives up after a bound instead, and then
//! guarantees the closure will not start later.

use crate::clock::Wake;
use crate::context::Context;
use crate::context::Control;
use crate::error::{CallError, CallTimeoutError, CommitError, StartError, StopError};
use crate::kdamond::{panic_message, Cmd, ExitReason, Kdamond};
use crossbeam_channel::RecvTimeoutError;
use parking_lot::Mutex;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// The kernel's `damon_lock`-protected globals: the running count and
/// whether the running group is exclusive.
struct RunState {
    nr_running: usize,
    running_exclusive: bool,
}

static RUN_STATE: Mutex<RunState> = Mutex::new(RunState {
    nr_running: 0,
    running_exclusive: false,
});

/// Number of contexts running in this process (`damon_nr_running_ctxs`).
pub fn damon_nr_running_ctxs() -> usize {
    RUN_STATE.lock().nr_running
}

/// Claim states of a [`DamonHandle::call_timeout`] closure: the worker
/// moves `PENDING` to `STARTED` before running it, a caller that timed out
/// moves `PENDING` to `ABANDONED`; whoever wins decides whether it runs.
const CALL_PENDING: u8 = 0;
const CALL_STARTED: u8 = 1;
const CALL_ABANDONED: u8 = 2;

struct Shared {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    running: AtomicBool,
    tid: AtomicI32,
    thread_id: OnceLock<ThreadId>,
    exit: Mutex<Option<ExitReason>>,
    final_ctx: Mutex<Option<Context>>,
}

struct Inner {
    shared: Arc<Shared>,
    cmd_tx: crossbeam_channel::Sender<Cmd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Never carries a message: the worker drops its sender as the very
    /// last thing it does, so a receive returns `Disconnected` once the
    /// worker has ended, and times out while it runs. Any number of
    /// threads can wait on it at once, with or without a deadline.
    done_rx: crossbeam_channel::Receiver<()>,
}

impl Inner {
    fn on_worker(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    /// Whether a new request may be queued: the worker runs and no stop
    /// was requested.
    fn accepting(&self) -> bool {
        self.shared.running.load(Ordering::Acquire) && !self.shared.stop.load(Ordering::Acquire)
    }

    fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify();
    }

    /// Waits for the worker to end, at most `timeout` (`None`: no bound),
    /// then reaps its thread. Returns whether it ended. Never waits on the
    /// worker thread itself.
    fn wait_end(&self, timeout: Option<Duration>) -> bool {
        if self.on_worker() {
            return false;
        }
        let ended = match timeout {
            None => self.done_rx.recv().is_err(),
            Some(t) => matches!(
                self.done_rx.recv_timeout(t),
                Err(RecvTimeoutError::Disconnected)
            ),
        };
        if ended {
            let handle = self.thread.lock().take();
            if let Some(h) = handle {
                // The worker has finished its work and only has to return,
                // so this join is short. It catches panics itself; a join
                // error cannot carry news.
                let _ = h.join();
            }
        }
        ended
    }

    fn stop(&self) {
        self.request_stop();
        // From a callback this only requests: the loop sees the flag when
        // the callback returns; waiting here would wait for ourselves.
        self.wait_end(None);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Controls one running context. Clones share the context; dropping the last
/// clone stops the worker and waits for it, as [`DamonHandle::stop`] does
/// (so it waits for a callback that is blocked; see the [module
/// docs](self#stopping)).
#[derive(Clone)]
pub struct DamonHandle {
    inner: Arc<Inner>,
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

/// Starts one worker thread per context (`damon_start`). With `exclusive`,
/// refuses while any context runs; without, refuses while an exclusive
/// group runs. Every context is checked before any starts; if a backend's
/// `init` fails, the contexts already started in this call are stopped.
///
/// ```
/// use damon_core::{damon_start, Context, SimOps, SimPattern, Target, VirtualClock};
/// use std::sync::Arc;
/// let mut ctx = Context::new();
/// ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(1 << 30, 0.2))));
/// ctx.targets.push(Target::new(0));
/// ctx.clock = Some(Arc::new(VirtualClock::new()));
/// let handles = damon_start(vec![ctx], false).unwrap();
/// let nr = handles[0].call(|ctx| ctx.nr_regions()).unwrap();
/// assert!(nr >= 10);
/// damon_core::damon_stop(&handles).unwrap();
/// ```
pub fn damon_start(ctxs: Vec<Context>, exclusive: bool) -> Result<Vec<DamonHandle>, StartError> {
    if ctxs.is_empty() {
        return Err(StartError::Empty);
    }
    let mut kds = Vec::with_capacity(ctxs.len());
    for (index, ctx) in ctxs.into_iter().enumerate() {
        let kd = Kdamond::new(ctx).map_err(|e| match e {
            StartError::Invalid { source, .. } => StartError::Invalid { index, source },
            StartError::NoOps { .. } => StartError::NoOps { index },
            StartError::Init { source, .. } => StartError::Init { index, source },
            other => other,
        })?;
        kds.push(kd);
    }
    {
        let mut rs = RUN_STATE.lock();
        if exclusive && rs.nr_running > 0 {
            return Err(StartError::Busy(
                "an exclusive group cannot start while contexts run",
            ));
        }
        if !exclusive && rs.running_exclusive {
            return Err(StartError::Busy("an exclusive group is running"));
        }
        rs.nr_running += kds.len();
        if exclusive {
            rs.running_exclusive = true;
        }
    }
    let total = kds.len();
    let mut handles: Vec<DamonHandle> = Vec::with_capacity(total);
    for (index, kd) in kds.into_iter().enumerate() {
        match spawn_one(kd, index) {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Contexts never spawned give back their running slots.
                release_slots(
                    total
                        - index
                        - if matches!(e, StartError::Init { .. }) {
                            1
                        } else {
                            0
                        },
                );
                for h in &handles {
                    h.stop();
                }
                return Err(e);
            }
        }
    }
    Ok(handles)
}

fn release_slots(n: usize) {
    if n == 0 {
        return;
    }
    let mut rs = RUN_STATE.lock();
    rs.nr_running -= n;
    if rs.nr_running == 0 {
        rs.running_exclusive = false;
    }
}

fn spawn_one(mut kd: Kdamond, index: usize) -> Result<DamonHandle, StartError> {
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    kd.cmds = Some(cmd_rx);
    let shared = Arc::new(Shared {
        stop: kd.stop.clone(),
        wake: kd.wake.clone(),
        running: AtomicBool::new(true),
        tid: AtomicI32::new(0),
        thread_id: OnceLock::new(),
        exit: Mutex::new(None),
        final_ctx: Mutex::new(None),
    });
    let (init_tx, init_rx) = crossbeam_channel::bounded(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kdamond.{index}"))
        .spawn(move || worker_main(kd, sh, init_tx, done_tx))
        .map_err(StartError::Spawn)?;
    let _ = shared.thread_id.set(thread.thread().id());
    match init_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(StartError::Init { index, source: e });
        }
        Err(_) => {
            let _ = thread.join();
            let reason = shared
                .exit
                .lock()
                .clone()
                .map(|r| r.to_string())
                .unwrap_or_default();
            return Err(StartError::Init {
                index,
                source: crate::error::OpsError::Unsupported {
                    what: "worker start".into(),
                    hint: reason,
                },
            });
        }
    }
    Ok(DamonHandle {
        inner: Arc::new(Inner {
            shared,
            cmd_tx,
            thread: Mutex::new(Some(thread)),
            done_rx,
        }),
    })
}

fn worker_main(
    mut kd: Kdamond,
    shared: Arc<Shared>,
    init_tx: crossbeam_channel::Sender<Result<(), crate::error::OpsError>>,
    done_tx: crossbeam_channel::Sender<()>,
) {
    shared.tid.store(
        rustix::thread::gettid().as_raw_nonzero().get(),
        Ordering::Release,
    );
    let result = catch_unwind(AssertUnwindSafe(|| match kd.init() {
        Err(e) => {
            let _ = init_tx.send(Err(e));
            (None, kd)
        }
        Ok(()) => {
            let _ = init_tx.send(Ok(()));
            let reason = loop {
                if let Some(r) = kd.step() {
                    break r;
                }
            };
            (Some(reason), kd)
        }
    }));
    let (reason, final_ctx) = match result {
        Ok((Some(reason), kd)) => (Some(reason), Some(kd.terminate())),
        Ok((None, kd)) => {
            let _ = kd.terminate();
            (None, None)
        }
        Err(p) => (
            Some(ExitReason::WorkerPanicked(panic_message(p.as_ref()))),
            None,
        ),
    };
    if let Some(r) = &reason {
        if !matches!(r, ExitReason::Stopped) {
            tracing::warn!(target: "damon", reason = %r, "kdamond exited");
        }
    }
    *shared.exit.lock() = reason;
    *shared.final_ctx.lock() = final_ctx;
    shared.running.store(false, Ordering::Release);
    release_slots(1);
    // Last: waiters in `Inner::wait_end` see the worker has ended.
    drop(done_tx);
}

/// Stops every context of `handles` (`damon_stop`), one after the other,
/// waiting for each to end as [`DamonHandle::stop`] does (so a context
/// blocked in a callback holds up the rest; request every stop first with
/// [`DamonHandle::request_stop`] and wait with
/// [`DamonHandle::stop_timeout`] to bound it). Fails on the first one that
/// is not running, as the kernel does; the ones before it are stopped.
pub fn damon_stop(handles: &[DamonHandle]) -> Result<(), StopError> {
    for (index, h) in handles.iter().enumerate() {
        if !h.is_running() {
            return Err(StopError::NotRunning { index });
        }
        h.stop();
    }
    Ok(())
}
