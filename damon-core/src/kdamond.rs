//! The monitoring loop (`kdamond_fn` and its steps), steppable on its own so
//! tests can drive it on virtual time without a thread.

use crate::access::update_monitoring_result;
use crate::adapt::{
    apply_min_nr_regions, merge_regions, set_regions, split_regions, validate_regions,
};
use crate::attrs::Attrs;
use crate::callbacks::{Callbacks, Control, DamosEngine, DamosEnv};
use crate::clock::{Clock, RealClock, Wake};
use crate::context::{validate_scheme, Context};
use crate::error::{CommitError, InvalidParam, OpsError, StartError};
use crate::ops::{Operations, OpsCtx};
use crate::region::{Region, BP_PER_ACCESS};
use crate::rng::Rng;
use crate::target::Target;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One context's monitoring loop. [`crate::damon_start`] runs it on a
/// thread; tests can [`init`](Kdamond::init) and [`step`](Kdamond::step) it directly.
///
/// ```
/// use damon_core::{Context, Kdamond, SimOps, SimPattern, Target, VirtualClock};
/// use std::sync::Arc;
/// let mut ctx = Context::new();
/// ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(1 << 30, 0.5))));
/// ctx.targets.push(Target::new(0));
/// ctx.clock = Some(Arc::new(VirtualClock::new()));
/// ctx.seed = Some(1);
/// let mut kd = Kdamond::new(ctx).unwrap();
/// kd.init().unwrap();
/// for _ in 0..40 { assert!(kd.step().is_none()); }
/// assert!(kd.ctx().nr_regions() >= 10);
/// ```
pub struct Kdamond {
    ctx: Context,
    ops: Box<dyn Operations>,
    engine: Option<Box<dyn DamosEngine>>,
    callbacks: Callbacks,
    clock: Arc<dyn Clock>,
    rng: Rng,
    scratch: Vec<Region>,
    repeats: Vec<RepeatFn>,
    pub(crate) wake: Arc<Wake>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) cmds: Option<crossbeam_channel::Receiver<Cmd>>,
    exit: Option<ExitReason>,
}

impl std::fmt::Debug for Kdamond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kdamond").field("ctx", &self.ctx).finish()
    }
}

/// Builds an [`OpsCtx`] from disjoint borrows of the loop.
macro_rules! ops_ctx {
    ($self:ident) => {
        OpsCtx {
            attrs: &$self.ctx.attrs,
            min_region_sz: $self.ctx.min_region_sz,
            addr_unit: $self.ctx.addr_unit,
            passed_sample_intervals: $self.ctx.state.passed_sample_intervals,
            now_us: $self.clock.now_us(),
            rng: &mut $self.rng,
            targets: &mut $self.ctx.targets,
        }
    };
}

impl Kdamond {
    /// Takes ownership of a context with a selected backend, after checking it.
    pub fn new(mut ctx: Context) -> Result<Self, StartError> {
        ctx.validate()
            .map_err(|source| StartError::Invalid { index: 0, source })?;
        let ops = ctx.ops.take().ok_or(StartError::NoOps { index: 0 })?;
        let engine = ctx.damos_engine.take();
        check_schemes(&ctx.schemes, &ctx.targets, ops.as_ref(), engine.as_deref()).map_err(
            |e| StartError::Init {
                index: 0,
                source: e,
            },
        )?;
        let callbacks = std::mem::take(&mut ctx.callbacks);
        let clock: Arc<dyn Clock> = ctx
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(RealClock::new()));
        let rng = ctx.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        Ok(Self {
            ctx,
            ops,
            engine,
            callbacks,
            clock,
            rng,
            scratch: Vec::new(),
            repeats: Vec::new(),
            wake: Arc::new(Wake::default()),
            stop: Arc::new(AtomicBool::new(false)),
            cmds: None,
            exit: None,
        })
    }

    /// The context as the loop currently holds it.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The backend.
    pub fn ops(&self) -> &dyn Operations {
        self.ops.as_ref()
    }

    /// Mutable access to the backend (for tests that script a backend).
    pub fn ops_mut(&mut self) -> &mut dyn Operations {
        self.ops.as_mut()
    }

    /// `kdamond_init_ctx` + `ops.init` + the first `damon_apply_min_nr_regions`.
    pub fn init(&mut self) -> Result<(), OpsError> {
        let si = self.ctx.attrs.sample_interval.max(1);
        let st = &mut self.ctx.state;
        st.passed_sample_intervals = 0;
        st.next_aggregation_sis = self.ctx.attrs.aggr_interval / si;
        st.next_ops_update_sis = self.ctx.attrs.ops_update_interval / si;
        st.next_intervals_tune_sis = st.next_aggregation_sis * self.ctx.attrs.intervals_goal.aggrs;
        st.aggr_samples = self.ctx.attrs.aggr_interval / si;
        if let Some(e) = self.engine.as_mut() {
            e.schemes_committed(
                0,
                self.ctx.schemes.len(),
                &self.ctx.schemes,
                &self.ctx.attrs,
                0,
            );
        }
        self.ops.init(&mut ops_ctx!(self))?;
        for (i, t) in self.ctx.targets.iter().enumerate() {
            validate_regions(t, &format!("targets[{i}].regions")).map_err(OpsError::Invalid)?;
        }
        self.ctx.state.sz_limit = apply_min_nr_regions(
            &mut self.ctx.targets,
            &mut self.scratch,
            self.ctx.attrs.min_nr_regions,
            self.ctx.min_region_sz,
        );
        self.reserve_region_capacity();
        Ok(())
    }

    /// Reserves room for `max_nr_regions` (capped at 64 Ki) regions in every
    /// target and in the scratch vector, so region vectors never grow
    /// inside the loop: merge and split then run without allocating.
    fn reserve_region_capacity(&mut self) {
        let want = (self.ctx.attrs.max_nr_regions as usize).clamp(16, 1 << 16) + 1;
        for v in self
            .ctx
            .targets
            .iter_mut()
            .map(|t| &mut t.regions)
            .chain(std::iter::once(&mut self.scratch))
        {
            if v.capacity() < want {
                v.reserve(want - v.len());
            }
        }
    }

    fn need_stop(&mut self) -> Option<ExitReason> {
        if let Some(e) = self.exit.take() {
            return Some(e);
        }
        if self.stop.load(Ordering::Acquire) {
            return Some(ExitReason::Stopped);
        }
        if self.ctx.targets.is_empty() {
            return None;
        }
        let ops = &mut self.ops;
        let any_valid = self.ctx.targets.iter().any(|t| ops.target_valid(t));
        if !any_valid {
            let detail = self
                .ops
                .invalid_reason()
                .unwrap_or_else(|| "no target is valid".into());
            return Some(ExitReason::AllTargetsInvalid { detail });
        }
        None
    }

    fn sleep(&mut self, us: u64) {
        self.clock.sleep(us, &self.wake);
    }

    fn run_callback(&mut self, which: &'static str) -> Option<ExitReason> {
        let ctx = &self.ctx;
        let cb = match which {
            "after_sampling" => self.callbacks.after_sampling.as_mut(),
            _ => self.callbacks.after_aggregation.as_mut(),
        }?;
        match catch_unwind(AssertUnwindSafe(|| cb(ctx))) {
            Ok(Control::Continue) => None,
            Ok(Control::Stop) => Some(ExitReason::CallbackStopped { callback: which }),
            Err(p) => Some(ExitReason::CallbackPanicked {
                callback: which,
                message: panic_message(p.as_ref()),
            }),
        }
    }

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
    fn kdamond_call(&mut self) -> Option<ExitReason> {
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

    /// One iteration of the kernel's main loop; returns why the loop must
    /// end, or `None` to continue.
    pub fn step(&mut self) -> Option<ExitReason> {
        if let Some(r) = self.need_stop() {
            return Some(r);
        }
        if self.ctx.pause {
            let si = self.ctx.attrs.sample_interval;
            self.sleep(si);
            return self.kdamond_call().or_else(|| self.need_stop());
        }
        let next_aggregation_sis = self.ctx.state.next_aggregation_sis;
        let next_ops_update_sis = self.ctx.state.next_ops_update_sis;
        let mut sample_interval = self.ctx.attrs.sample_interval.max(1);

        // kdamond_wait_activation
        if let Some(engine) = self.engine.as_mut() {
            let now = self.clock.now_us();
            let wait = engine.wait_activation_us(&mut self.ctx.schemes, now);
            if wait > 0 {
                self.sleep(wait);
                return self.kdamond_call().or_else(|| self.need_stop());
            }
        }

        if let Err(e) = self.ops.prepare_access_checks(&mut ops_ctx!(self)) {
            return Some(ExitReason::OpsFailed(Arc::new(e)));
        }
        self.sleep(sample_interval);
        if self.stop.load(Ordering::Acquire) {
            return Some(ExitReason::Stopped);
        }
        self.ctx.state.passed_sample_intervals += 1;
        let max_nr_accesses = match self.ops.check_accesses(&mut ops_ctx!(self)) {
            Ok(m) => m,
            Err(e) => return Some(ExitReason::OpsFailed(Arc::new(e))),
        };
        if let Some(r) = self.run_callback("after_sampling") {
            return Some(r);
        }

        let passed = self.ctx.state.passed_sample_intervals;
        let aggregation_done = passed >= next_aggregation_sis;
        if aggregation_done {
            let attrs = self.ctx.attrs;
            let max_thres = attrs.aggr_interval / attrs.sample_interval.max(1);
            merge_regions(
                &mut self.ctx.targets,
                max_nr_accesses / 10,
                self.ctx.state.sz_limit,
                attrs.max_nr_regions,
                max_thres,
            );
            self.ctx.state.sz_limit = apply_min_nr_regions(
                &mut self.ctx.targets,
                &mut self.scratch,
                attrs.min_nr_regions,
                self.ctx.min_region_sz,
            );
            if let Some(r) = self.run_callback("after_aggregation") {
                return Some(r);
            }
        }

        if let Some(r) = self.kdamond_call() {
            return Some(r);
        }

        if !self.ctx.schemes.is_empty() {
            if let Some(engine) = self.engine.as_mut() {
                let now_us = self.clock.now_us();
                engine.apply(DamosEnv {
                    attrs: &self.ctx.attrs,
                    passed_sample_intervals: self.ctx.state.passed_sample_intervals,
                    now_us,
                    clock: self.clock.as_ref(),
                    min_region_sz: self.ctx.min_region_sz,
                    targets: &mut self.ctx.targets,
                    schemes: &mut self.ctx.schemes,
                    ops: self.ops.as_mut(),
                    before_damos_apply: self.callbacks.before_damos_apply.as_mut(),
                });
            }
        }

        if aggregation_done {
            let goal = self.ctx.attrs.intervals_goal;
            if goal.aggrs != 0 && passed >= self.ctx.state.next_intervals_tune_sis {
                // Restore the snapshot so set_attrs() does not think this is
                // the middle of an aggregation (see the kernel's comment).
                self.ctx.state.next_aggregation_sis = next_aggregation_sis;
                self.ctx.state.next_intervals_tune_sis += self.ctx.state.aggr_samples * goal.aggrs;
                self.tune_intervals();
                sample_interval = self.ctx.attrs.sample_interval.max(1);
            }
            self.ctx.state.next_aggregation_sis =
                next_aggregation_sis + self.ctx.attrs.aggr_interval / sample_interval;
            self.reset_aggregated();
            self.ops.reset_aggregated(&mut ops_ctx!(self));
            split_regions(
                &mut self.ctx.targets,
                &mut self.scratch,
                self.ctx.attrs.max_nr_regions,
                self.ctx.min_region_sz,
                &mut self.ctx.state.last_nr_regions,
                &mut self.rng,
            );
        }

        if passed >= next_ops_update_sis {
            self.ctx.state.next_ops_update_sis =
                next_ops_update_sis + self.ctx.attrs.ops_update_interval / sample_interval;
            if let Err(e) = self.ops.update(&mut ops_ctx!(self)) {
                return Some(ExitReason::OpsFailed(Arc::new(e)));
            }
        }
        None
    }

    fn reset_aggregated(&mut self) {
        reset_aggregated(&mut self.ctx.targets);
    }

    /// `kdamond_tune_intervals`.
    fn tune_intervals(&mut self) {
        if let Some(new) = crate::tune::tuned_attrs(
            &self.ctx.targets,
            &self.ctx.attrs,
            self.ctx.state.aggr_samples,
        ) {
            tracing::debug!(
                target: "damon::damon_monitor_intervals_tune",
                sample_us = new.sample_interval,
                "damon_monitor_intervals_tune"
            );
            self.set_attrs(new, true);
        }
    }

    /// `damon_set_attrs` on a running loop: re-bases the deadlines on now
    /// and rescales every region's results. `new` must be valid.
    /// `from_tuning` keeps `aggr_samples` (the kernel's "core-internal call").
    fn set_attrs(&mut self, new: Attrs, from_tuning: bool) {
        let si = new.sample_interval.max(1);
        let st = &mut self.ctx.state;
        let aggregating = st.passed_sample_intervals < st.next_aggregation_sis;
        if !from_tuning {
            st.aggr_samples = new.aggr_interval / si;
        }
        st.next_aggregation_sis = st.passed_sample_intervals + new.aggr_interval / si;
        st.next_ops_update_sis = st.passed_sample_intervals + new.ops_update_interval / si;
        let old = self.ctx.attrs;
        for t in self.ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                update_monitoring_result(r, &old, &new, aggregating);
            }
        }
        self.ctx.attrs = new;
        if let Some(e) = self.engine.as_mut() {
            e.attrs_changed(
                &self.ctx.schemes,
                &self.ctx.attrs,
                self.ctx.state.passed_sample_intervals,
            );
        }
    }

    /// `damon_commit_ctx`: applies `src`'s parameters to the running loop
    /// with the kernel's rules (schemes and targets by position, a target
    /// committed without regions keeps its results, changed attributes
    /// rescale results). Everything is checked before anything changes, so
    /// an error leaves the loop exactly as it was.
    ///
    /// Deviation: the backend cannot be switched on a running context (the
    /// kernel copies the ops vtable); a different ops id is refused.
    pub fn commit(&mut self, mut src: Context) -> Result<(), CommitError> {
        src.validate()?;
        if let Some(id) = src.ops_id.as_deref() {
            if Some(id) != self.ctx.ops_id.as_deref() {
                return Err(InvalidParam::new(
                    "ops",
                    format!(
                        "cannot switch a running context from {:?} to {id:?}; stop and start it",
                        self.ctx.ops_id
                    ),
                )
                .into());
            }
        }
        let n_dst = self.ctx.targets.len();
        for (i, t) in src.targets.iter().enumerate().skip(n_dst) {
            if t.obsolete {
                return Err(InvalidParam::new(
                    format!("targets[{i}].obsolete"),
                    "an obsolete target has no running target to remove",
                )
                .into());
            }
        }
        check_schemes(
            &src.schemes,
            &src.targets,
            self.ops.as_ref(),
            self.engine.as_deref(),
        )?;

        // New targets get their regions from the backend before anything changes.
        let mut new_targets: Vec<Target> =
            src.targets.drain(n_dst.min(src.targets.len())..).collect();
        if new_targets.iter().any(|t| t.regions.is_empty()) {
            let r = self.ops.init(&mut OpsCtx {
                attrs: &src.attrs,
                min_region_sz: src.min_region_sz,
                addr_unit: src.addr_unit,
                passed_sample_intervals: self.ctx.state.passed_sample_intervals,
                now_us: self.clock.now_us(),
                rng: &mut self.rng,
                targets: &mut new_targets,
            });
            if let Err(e) = r {
                for t in &new_targets {
                    self.ops.cleanup_target(t);
                }
                return Err(e.into());
            }
        }

        // From here on nothing can fail.
        let old_nr_schemes = self.ctx.schemes.len();
        let n_src_schemes = src.schemes.len();
        self.ctx.schemes.truncate(n_src_schemes);
        for (d, s) in self.ctx.schemes.iter_mut().zip(src.schemes.iter()) {
            d.commit_from(s);
        }
        let n_kept = self.ctx.schemes.len();
        self.ctx
            .schemes
            .extend(src.schemes.drain(n_kept..).map(|mut s| {
                s.stat = Default::default();
                s
            }));

        let mut kept = Vec::with_capacity(n_dst + new_targets.len());
        let mut src_iter = src.targets.into_iter();
        for mut dst in std::mem::take(&mut self.ctx.targets) {
            match src_iter.next() {
                Some(s) if !s.obsolete => {
                    if !s.regions.is_empty() {
                        let ranges: Vec<_> = s.regions.iter().map(|r| r.ar).collect();
                        // validated above: sorted, disjoint, non-empty
                        let _ = set_regions(&mut dst, &ranges, src.min_region_sz);
                    }
                    if dst.id != s.id {
                        self.ops.cleanup_target(&dst);
                        dst.id = s.id;
                    }
                    kept.push(dst);
                }
                _ => self.ops.cleanup_target(&dst),
            }
        }
        kept.extend(new_targets);
        self.ctx.targets = kept;

        if !self.ctx.attrs.same_params(&src.attrs) {
            self.set_attrs(src.attrs, false);
            // Deviation: the kernel keeps kdamond_fn's local sz_limit until
            // the next merge and enforces a new min_nr_regions only after
            // it, so the first aggregation after such a commit can end with
            // more than max_nr_regions (regions sized for the old minimum
            // are cut after merging). Enforcing the new bounds here makes
            // them hold from the next aggregation on.
            self.ctx.state.sz_limit = apply_min_nr_regions(
                &mut self.ctx.targets,
                &mut self.scratch,
                self.ctx.attrs.min_nr_regions,
                src.min_region_sz,
            );
        }
        self.ctx.min_region_sz = src.min_region_sz;
        self.ctx.addr_unit = src.addr_unit;
        self.ctx.pause = src.pause;
        self.reserve_region_capacity();
        if let Some(e) = self.engine.as_mut() {
            e.schemes_committed(
                old_nr_schemes,
                self.ctx.schemes.len(),
                &self.ctx.schemes,
                &self.ctx.attrs,
                self.ctx.state.passed_sample_intervals,
            );
        }
        Ok(())
    }

    /// Sets or clears `pause`.
    pub fn set_pause(&mut self, pause: bool) {
        self.ctx.pause = pause;
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

/// `kdamond_reset_aggregated`: for every region, emits the
/// `damon_aggregated` event, repairs `nr_accesses_bp` if it drifted from
/// `nr_accesses * 10000`, then moves `nr_accesses` into `last_nr_accesses`.
pub fn reset_aggregated(targets: &mut [Target]) {
    let trace = tracing::enabled!(target: "damon::damon_aggregated", tracing::Level::TRACE);
    for (ti, t) in targets.iter_mut().enumerate() {
        let nr_regions = t.regions.len();
        for r in t.regions.iter_mut() {
            if trace {
                tracing::trace!(
                    target: "damon::damon_aggregated",
                    target_id = ti,
                    nr_regions,
                    start = r.ar.start,
                    end = r.ar.end,
                    nr_accesses = r.nr_accesses,
                    age = r.age,
                    "damon_aggregated"
                );
            }
            // damon_warn_fix_nr_accesses_corruption
            let expect = r.nr_accesses.saturating_mul(BP_PER_ACCESS);
            if r.nr_accesses_bp != expect {
                r.nr_accesses_bp = expect;
            }
            r.last_nr_accesses = r.nr_accesses;
            r.nr_accesses = 0;
        }
    }
}

/// Prefixes an unsupported-feature error with the field it came from.
fn with_field(e: OpsError, field: &str) -> OpsError {
    match e {
        OpsError::Unsupported { what, hint } => OpsError::Unsupported {
            what: format!("{field}: {what}"),
            hint,
        },
        other => other,
    }
}

fn check_schemes(
    schemes: &[crate::damos::Scheme],
    targets: &[Target],
    ops: &dyn Operations,
    engine: Option<&dyn DamosEngine>,
) -> Result<(), OpsError> {
    for (i, s) in schemes.iter().enumerate() {
        validate_scheme(s, &format!("schemes[{i}]"))?;
        ops.check_action(s.action)
            .map_err(|e| with_field(e, &format!("schemes[{i}].action")))?;
        for (j, f) in s.filters.iter().enumerate() {
            ops.check_filter(&f.kind)
                .map_err(|e| with_field(e, &format!("schemes[{i}].filters[{j}]")))?;
        }
        ops.check_scheme(s, targets)
            .map_err(|e| with_field(e, &format!("schemes[{i}]")))?;
    }
    if let Some(e) = engine {
        e.check(schemes, ops)?;
    } else if !schemes.is_empty() {
        return Err(OpsError::Unsupported {
            what: "schemes".into(),
            hint: "install a DAMOS engine (damon-schemes) with Context::set_damos_engine".into(),
        });
    }
    Ok(())
}
