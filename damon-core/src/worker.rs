//! One OS thread per running context, and the handle that controls it
//! (`damon_start`, `damon_stop`, `damon_call`, `damon_commit_ctx`).

use crate::callbacks::Control;
use crate::clock::Wake;
use crate::context::Context;
use crate::error::{CallError, CommitError, StartError, StopError};
use crate::kdamond::{panic_message, Cmd, ExitReason, Kdamond};
use parking_lot::Mutex;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};

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
}

impl Inner {
    fn on_worker(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify();
        if self.on_worker() {
            // Asked from a callback: the loop sees the flag when the callback
            // returns; joining here would wait for ourselves.
            return;
        }
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            // The worker catches panics itself; a join error cannot carry news.
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Controls one running context. Clones share the context; dropping the last
/// clone stops the worker and joins its thread.
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
    /// True while the worker runs (`damon_is_running`).
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

    /// Stops the worker and waits for it; idempotent. From inside a callback
    /// it only requests the stop (no deadlock).
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Waits until the worker ends by itself (targets gone, callback stop)
    /// and returns why. Do not call it from the worker thread.
    pub fn wait(&self) -> Option<ExitReason> {
        if self.inner.on_worker() {
            return None;
        }
        let handle = self.inner.thread.lock().take();
        if let Some(h) = handle {
            let _ = h.join();
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

    /// Runs `f` once on the worker between two loop steps and returns its
    /// value (`damon_call`, `repeat=false`).
    ///
    /// Errors: [`CallError::Cancelled`] if the worker ends before running
    /// it, [`CallError::WouldDeadlock`] from the worker thread itself,
    /// [`CallError::Panicked`] if `f` panics (the context keeps running).
    #[doc(alias = "damon_call")]
    pub fn call<R, F>(&self, f: F) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        if self.inner.on_worker() {
            return Err(CallError::WouldDeadlock);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Box<dyn FnOnce(&Context) + Send> = Box::new(move |ctx: &Context| {
            let r =
                catch_unwind(AssertUnwindSafe(|| f(ctx))).map_err(|p| panic_message(p.as_ref()));
            let _ = tx.send(r);
        });
        if !self.is_running() {
            return Err(CallError::Cancelled);
        }
        self.inner
            .cmd_tx
            .send(Cmd::Call(job))
            .map_err(|_| CallError::Cancelled)?;
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(CallError::Panicked(msg)),
            Err(_) => Err(CallError::Cancelled),
        }
    }

    /// Runs `f` on the worker at every loop iteration until the context
    /// ends or `f` returns [`Control::Stop`] (which stops the context)
    /// (`damon_call`, `repeat=true`). A panic in `f` stops the context and
    /// is reported by [`DamonHandle::exit_reason`].
    pub fn call_repeat<F>(&self, f: F) -> Result<(), CallError>
    where
        F: FnMut(&Context) -> Control + Send + 'static,
    {
        if !self.is_running() {
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
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Box<dyn FnOnce(&mut Kdamond) + Send> = Box::new(move |kd| {
            let _ = tx.send(f(kd));
        });
        if !self.is_running() {
            return None;
        }
        self.inner.cmd_tx.send(Cmd::Control(job)).ok()?;
        rx.recv().ok()
    }

    /// Updates the running context's parameters from `src`
    /// (`damon_commit_ctx` via `damon_call`). On error the running context
    /// is exactly as it was.
    #[doc(alias = "damon_commit_ctx")]
    pub fn commit(&self, src: Context) -> Result<(), CommitError> {
        if self.inner.on_worker() {
            return Err(CommitError::WouldDeadlock);
        }
        self.control(move |kd| kd.commit(src))
            .unwrap_or(Err(CommitError::NotRunning))
    }

    /// Pauses monitoring; learned state is kept. Returns false if not running.
    pub fn pause(&self) -> bool {
        !self.inner.on_worker() && self.control(|kd| kd.set_pause(true)).is_some()
    }

    /// Resumes a paused context. Returns false if not running.
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
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kdamond.{index}"))
        .spawn(move || worker_main(kd, sh, init_tx))
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
        }),
    })
}

fn worker_main(
    mut kd: Kdamond,
    shared: Arc<Shared>,
    init_tx: crossbeam_channel::Sender<Result<(), crate::error::OpsError>>,
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
}

/// Stops every context of `handles` (`damon_stop`); fails on the first one
/// that is not running, as the kernel does.
pub fn damon_stop(handles: &[DamonHandle]) -> Result<(), StopError> {
    for (index, h) in handles.iter().enumerate() {
        if !h.is_running() {
            return Err(StopError::NotRunning { index });
        }
        h.stop();
    }
    Ok(())
}
