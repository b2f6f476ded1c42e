//! One OS thread per running context, and the handle that controls it
//! (`damon_start`, `damon_stop`, `damon_call`, `damon_commit_ctx`).
//!
//! # Stopping
//!
//! A context's worker runs the loop of [`Kdamond::step`] on its own thread,
//! named `kdamond.N`, N being the number of contexts already running in
//! the process when it starts, as the kernel numbers kdamonds. Stopping it is a request the loop honours between
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
//! [`crate::CallError::Cancelled`], as the kernel's `kdamond_call(ctx, true)`
//! cancels pending `damon_call` requests with `-ECANCELED`. A request made
//! after the stop was requested is refused without being queued.
//! Repeating closures are dropped when the worker ends.
//!
//! [`DamonHandle::call`] waits for the worker like `damon_call` does;
//! [`DamonHandle::call_timeout`] gives up after a bound instead, and then
//! guarantees the closure will not start later.

use crate::clock::Wake;
use crate::context::Context;
use crate::error::{StartError, StopError};
use crate::kdamond::{panic_message, Cmd, ExitReason, Kdamond};

mod handle;

use crossbeam_channel::RecvTimeoutError;
pub use handle::DamonHandle;
use parking_lot::Mutex;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
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

pub(super) struct Shared {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) wake: Arc<Wake>,
    pub(super) running: AtomicBool,
    pub(super) tid: AtomicI32,
    pub(super) thread_id: OnceLock<ThreadId>,
    pub(super) exit: Mutex<Option<ExitReason>>,
    pub(super) final_ctx: Mutex<Option<Context>>,
}

pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) cmd_tx: crossbeam_channel::Sender<Cmd>,
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
    /// Never carries a message: the worker drops its sender as the very
    /// last thing it does, so a receive returns `Disconnected` once the
    /// worker has ended, and times out while it runs. Any number of
    /// threads can wait on it at once, with or without a deadline.
    pub(super) done_rx: crossbeam_channel::Receiver<()>,
}

impl Inner {
    pub(super) fn on_worker(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    /// Whether a new request may be queued: the worker runs and no stop
    /// was requested.
    pub(super) fn accepting(&self) -> bool {
        self.shared.running.load(Ordering::Acquire) && !self.shared.stop.load(Ordering::Acquire)
    }

    pub(super) fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify();
    }

    /// Waits for the worker to end, at most `timeout` (`None`: no bound),
    /// then reaps its thread. Returns whether it ended. Never waits on the
    /// worker thread itself.
    pub(super) fn wait_end(&self, timeout: Option<Duration>) -> bool {
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

    pub(super) fn stop(&self) {
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
    let kds = prepare(ctxs)?;
    let slots = RunSlots::reserve(kds.len(), exclusive)?;
    spawn_all(kds, slots)
}

/// Starts `ctxs` in running slots reserved beforehand with
/// [`RunSlots::reserve`], one slot per context, as [`damon_start`] does
/// otherwise. A caller that runs some contexts of a group elsewhere (the
/// kernel's DAMON) reserves the whole group at once, so the group's
/// exclusive rules hold across both, and starts the rest here. On an error
/// the slots are given back.
pub fn damon_start_reserved(
    ctxs: Vec<Context>,
    slots: RunSlots,
) -> Result<Vec<DamonHandle>, StartError> {
    if ctxs.is_empty() {
        return Err(StartError::Empty);
    }
    if ctxs.len() != slots.n {
        return Err(StartError::Slots {
            contexts: ctxs.len(),
            slots: slots.n,
        });
    }
    let kds = prepare(ctxs)?;
    spawn_all(kds, slots)
}

/// Checks every context and makes its loop, before any starts.
fn prepare(ctxs: Vec<Context>) -> Result<Vec<Kdamond>, StartError> {
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
    Ok(kds)
}

/// Running slots taken before their contexts start: while held they count
/// as running contexts ([`damon_nr_running_ctxs`]) under `damon_start`'s
/// exclusive rules; dropping them gives back those not handed to a worker.
/// The kernel holds `damon_lock` across a group's start; this is the same
/// guarantee for a group started in parts (some contexts on the kernel's
/// DAMON, the rest here).
#[derive(Debug)]
#[must_use = "slots are given back when dropped"]
pub struct RunSlots {
    first: usize,
    n: usize,
}

impl RunSlots {
    /// Reserves `n` slots: with `exclusive`, refuses while any context runs
    /// (or holds a slot); without, refuses while an exclusive group runs.
    pub fn reserve(n: usize, exclusive: bool) -> Result<Self, StartError> {
        if n == 0 {
            return Err(StartError::Empty);
        }
        let mut rs = RUN_STATE.lock();
        if exclusive && rs.nr_running > 0 {
            return Err(StartError::Busy(
                "an exclusive group cannot start while contexts run",
            ));
        }
        if !exclusive && rs.running_exclusive {
            return Err(StartError::Busy("an exclusive group is running"));
        }
        // The kernel names each kdamond after nr_running_ctxs when it
        // starts: the contexts already running, plus this one's place.
        let first = rs.nr_running;
        rs.nr_running += n;
        if exclusive {
            rs.running_exclusive = true;
        }
        Ok(Self { first, n })
    }

    /// Slots held.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Splits `k` slots off the front (fewer if fewer are held), each
    /// given back when the returned value drops.
    pub fn split_off(&mut self, k: usize) -> RunSlots {
        let k = k.min(self.n);
        let head = RunSlots {
            first: self.first,
            n: k,
        };
        self.first += k;
        self.n -= k;
        head
    }

    /// The kdamond number of the first slot (`kdamond.N`).
    pub fn first_number(&self) -> usize {
        self.first
    }
}

impl Drop for RunSlots {
    fn drop(&mut self) {
        release_slots(self.n);
    }
}

/// Spawns one worker per loop, each taking one of `slots` (a worker gives
/// its slot back when it ends).
fn spawn_all(kds: Vec<Kdamond>, mut slots: RunSlots) -> Result<Vec<DamonHandle>, StartError> {
    let mut handles: Vec<DamonHandle> = Vec::with_capacity(kds.len());
    for (index, kd) in kds.into_iter().enumerate() {
        match spawn_one(kd, index, slots.first) {
            Ok(h) => {
                handles.push(h);
                // the worker holds this slot now
                std::mem::forget(slots.split_off(1));
            }
            Err(e) => {
                if matches!(e, StartError::Init { .. }) {
                    // that worker ran and gave its slot back as it ended
                    std::mem::forget(slots.split_off(1));
                }
                // `slots` gives back the rest as it drops
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

fn spawn_one(mut kd: Kdamond, index: usize, number: usize) -> Result<DamonHandle, StartError> {
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
        .name(format!("kdamond.{number}"))
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
