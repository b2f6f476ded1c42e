//! A [`Context`] run on the kernel's DAMON with the Context's own
//! callbacks: `after_aggregation` is called with a mirror of the Context
//! whose targets hold the regions of each aggregation, read from the
//! `damon_aggregated` trace event (so a callback sees every aggregation,
//! once it is traced, not at the kernel's instant), or, without tracefs,
//! from a hidden `stat` scheme's tried regions (one target only, as the
//! kernel does not say which target a tried region is of; at the
//! granularity of the kernel's scheme applications, so aggregations can be
//! skipped), and `before_terminate` once at the end. `after_sampling` and `before_damos_apply` would have to run
//! inside the kernel: a Context with them is refused, saying so.

use crate::kdamond::{KernelKdamond, StartOptions};
use crate::trace::{AggregationTrace, TargetSnapshot};
use crate::tree::Admin;
use crate::SysfsError;
use damon_core::context::Callbacks;
use damon_core::{Context, Control, Region, RunSlots};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which engine runs a Context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The kernel's DAMON, through sysfs.
    Kernel,
    /// This library's user-space engine.
    User,
    /// The kernel's when it can run the whole Context, else ours.
    Auto,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kernel" => Ok(Engine::Kernel),
            "user" => Ok(Engine::User),
            "auto" => Ok(Engine::Auto),
            _ => Err(format!("engine {s:?}: expected kernel, user or auto")),
        }
    }
}

/// Where a kernel run reads and writes.
#[derive(Clone, Debug)]
pub struct KernelRunOptions {
    /// Kdamond options (lock, taking over).
    pub start: StartOptions,
    /// The tracefs mount, for `after_aggregation`.
    pub tracefs: PathBuf,
    /// Aggregations that may wait for the callback thread.
    pub queue: usize,
}

impl Default for KernelRunOptions {
    fn default() -> Self {
        Self {
            start: StartOptions::default(),
            tracefs: PathBuf::from(crate::TRACEFS),
            queue: 16,
        }
    }
}

/// A Context running on a kdamond of ours.
#[derive(Debug)]
pub struct KernelRun {
    kd: Arc<Mutex<KernelKdamond>>,
    stop: Arc<AtomicBool>,
    latest: Arc<Mutex<Vec<TargetSnapshot>>>,
    thread: Option<JoinHandle<()>>,
}

/// Whether a Context can run on the kernel's DAMON at all (before any
/// file is written): its callbacks and its operations set.
pub fn kernel_can_run(ctx: &Context, ops: &str) -> Result<(), SysfsError> {
    if ctx.callbacks.after_sampling.is_some() {
        return Err(SysfsError::Unsupported(
            "after_sampling cannot run with the kernel engine: the kernel samples in kernel space and calls nothing of ours per sample (use the user engine)".into(),
        ));
    }
    if ctx.callbacks.before_damos_apply.is_some() {
        return Err(SysfsError::Unsupported(
            "before_damos_apply cannot run with the kernel engine: DAMOS actions are applied inside the kernel (use the user engine)".into(),
        ));
    }
    if !matches!(ops, "vaddr" | "fvaddr" | "paddr") {
        return Err(SysfsError::Unsupported(format!(
            "the kernel's DAMON runs only vaddr, fvaddr and paddr; {ops:?} is a user-space backend (use the user engine)"
        )));
    }
    // The kernel accepts any action for any operations set, and its
    // `apply_scheme` returns 0 for one the set does not implement: the
    // scheme would silently do nothing, so it is refused here.
    if let Some(s) = ctx.schemes.iter().find(|s| !kernel_applies(ops, s.action)) {
        return Err(SysfsError::Unsupported(format!(
            "the kernel's {ops} operations do not apply the {} action (its scheme would try regions and never act; use the user engine)",
            s.action.name()
        )));
    }
    Ok(())
}

/// Whether the kernel's `ops` implements `action` in its `apply_scheme`
/// (mm/damon/vaddr.c and paddr.c).
fn kernel_applies(ops: &str, action: damon_core::damos::Action) -> bool {
    use damon_core::damos::Action as A;
    match action {
        A::Stat | A::Pageout | A::MigrateHot | A::MigrateCold => true,
        A::Willneed | A::Cold | A::Hugepage | A::Nohugepage | A::Collapse => ops != "paddr",
        A::LruPrio | A::LruDeprio => ops == "paddr",
        // an action added later: the kernel engine has not learnt it
        _ => false,
    }
}

impl KernelRun {
    /// Starts `ctx` with operations set `ops` on a kdamond of ours; its
    /// callbacks move to a thread of ours. On an error `ctx` is left as it
    /// was (callbacks included), so the caller can run it on the user
    /// engine instead. The run counts as a running context of this process
    /// ([`damon_core::damon_nr_running_ctxs`]) until it ends, so it is
    /// refused while an exclusive group runs, as `damon_start` would refuse
    /// it ([`crate::damon_start_on`] starts whole groups, exclusive ones too).
    pub fn start(
        admin: Admin,
        ops: &str,
        ctx: &mut Context,
        opts: &KernelRunOptions,
    ) -> Result<Self, SysfsError> {
        let mut slot = RunSlots::reserve(1, false).map_err(|e| {
            SysfsError::Unsupported(format!("this process cannot start a context now: {e}"))
        })?;
        Self::start_in(admin, ops, ctx, opts, &mut slot)
    }

    /// [`KernelRun::start`] in one of the running slots reserved by the
    /// caller, taken only once the kdamond runs (a failed start leaves
    /// `slots` as they were); the slot is given back when the run ends.
    pub(crate) fn start_in(
        admin: Admin,
        ops: &str,
        ctx: &mut Context,
        opts: &KernelRunOptions,
        slots: &mut RunSlots,
    ) -> Result<Self, SysfsError> {
        kernel_can_run(ctx, ops)?;
        let traced = opts.tracefs.join("events/damon/damon_aggregated").exists();
        let mut start = opts.start.clone();
        let probe = ctx.callbacks.after_aggregation.is_some() && !traced;
        if probe {
            // without the trace event: a stat scheme's tried regions, as
            // damo does; they do not say which target a region is of
            if ctx.targets.len() != 1 {
                return Err(SysfsError::Unsupported(format!(
                    "no damon:damon_aggregated event under {} (tracefs not mounted?): aggregations then come from tried regions, which do not say which target a region is of, so only a one-target context can have after_aggregation",
                    opts.tracefs.display()
                )));
            }
            start.probe_scheme = true;
        }
        let kd = KernelKdamond::start(admin, ops, ctx, &start)?;
        let trace = if ctx.callbacks.after_aggregation.is_some() && !probe {
            let pid = kd.pid().ok_or_else(|| {
                SysfsError::Unsupported("the kdamond runs without a pid to trace".into())
            })?;
            Some(AggregationTrace::start(&opts.tracefs, pid, opts.queue)?)
        } else {
            None
        };
        let mut callbacks = std::mem::take(&mut ctx.callbacks);
        let mirror = crate::kdamond::params_of(ctx);
        let kd = Arc::new(Mutex::new(kd));
        let stop = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (kd, stop, latest) = (kd.clone(), stop.clone(), latest.clone());
            let slot = slots.split_off(1);
            std::thread::Builder::new()
                .name("udamon-kernel".into())
                .spawn(move || {
                    run(mirror, &mut callbacks, trace, probe, &kd, &stop, &latest);
                    // the context has ended: its running slot goes back
                    drop(slot);
                })
                .map_err(|e| {
                    SysfsError::Unsupported(format!("cannot start the callback thread: {e}"))
                })?
        };
        Ok(Self {
            kd,
            stop,
            latest,
            thread: Some(thread),
        })
    }

    /// The kdamond, for commits, statistics and tried regions.
    pub fn kdamond(&self) -> MutexGuard<'_, KernelKdamond> {
        self.kd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The regions of the last complete aggregation, per target.
    pub fn latest(&self) -> Vec<TargetSnapshot> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether it still runs (a callback may have stopped it).
    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.kdamond().is_running()
    }

    /// Stops: `before_terminate` runs, the kdamond and trace instance go.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KernelRun {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Puts one aggregation's regions into the mirror and calls
/// `after_aggregation` with it.
fn deliver(
    mirror: &mut Context,
    cb: &mut Callbacks,
    done: Vec<TargetSnapshot>,
    latest: &Mutex<Vec<TargetSnapshot>>,
) -> Control {
    for (target, s) in mirror.targets.iter_mut().zip(&done) {
        target.regions = s
            .regions
            .iter()
            .map(|&(ar, nr, age)| {
                let mut r = Region::new(ar.start, ar.end);
                r.nr_accesses = nr;
                r.last_nr_accesses = nr;
                r.age = age;
                r
            })
            .collect();
    }
    *latest.lock().unwrap_or_else(|p| p.into_inner()) = done;
    match cb.after_aggregation.as_mut() {
        Some(f) => f(mirror),
        None => Control::Continue,
    }
}

fn run(
    mut mirror: Context,
    cb: &mut Callbacks,
    trace: Option<AggregationTrace>,
    probe: bool,
    kd: &Mutex<KernelKdamond>,
    stop: &AtomicBool,
    latest: &Mutex<Vec<TargetSnapshot>>,
) {
    let nr_targets = mirror.targets.len().max(1);
    let mut pending: Vec<Option<TargetSnapshot>> = vec![None; nr_targets];
    let running = || kd.lock().map(|k| k.is_running()).unwrap_or(false);
    while !stop.load(Ordering::Relaxed) {
        let Some(t) = &trace else {
            if !probe {
                std::thread::sleep(Duration::from_millis(100));
                if !running() {
                    break;
                }
                continue;
            }
            // one update waits for the kernel's next scheme application
            let regions = match kd.lock().map(|k| k.probe_regions()) {
                Ok(Ok(r)) => r,
                _ => break,
            };
            let snap = TargetSnapshot {
                time_ns: 0,
                target_idx: 0,
                regions,
            };
            if deliver(&mut mirror, cb, vec![snap], latest) == Control::Stop {
                break;
            }
            // the update above waited for the kernel; a breath for the handle
            std::thread::sleep(Duration::from_micros(mirror.attrs.aggr_interval / 4));
            continue;
        };
        let snap = match t.receiver().recv_timeout(Duration::from_millis(200)) {
            Ok(s) => s,
            Err(_) => {
                if !running() {
                    break;
                }
                continue;
            }
        };
        let i = snap.target_idx as usize;
        if i >= nr_targets {
            continue;
        }
        pending[i] = Some(snap);
        if pending.iter().any(Option::is_none) {
            continue;
        }
        let done: Vec<TargetSnapshot> = pending.iter_mut().filter_map(Option::take).collect();
        if deliver(&mut mirror, cb, done, latest) == Control::Stop {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(trace);
    if let Some(f) = cb.before_terminate.as_mut() {
        f(&mirror);
    }
    if let Ok(mut k) = kd.lock() {
        // off and removed now; the handle's drop finds nothing left
        let _ = k.shutdown();
    }
}
