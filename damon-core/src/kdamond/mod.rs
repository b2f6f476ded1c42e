//! The monitoring loop (the kernel's `kdamond_fn` and its steps),
//! steppable on its own so tests can drive it on virtual time without a
//! thread.
//!
//! * this module: [`Kdamond`] itself, its construction and `init`;
//! * `step`: one iteration of the loop as the kernel's named
//!   steps (sample, aggregate, call, apply schemes, adapt regions, update);
//! * `call`: `kdamond_call`, the point where requests from handles run;
//! * `commit`: `damon_commit_ctx` on a running loop;
//! * `exit`: why a loop ends, the callbacks it runs, and `terminate`.

mod call;
mod commit;
mod exit;
mod step;

pub(crate) use call::Cmd;
pub use call::RepeatFn;
pub(crate) use commit::check_schemes;
pub(crate) use exit::panic_message;
pub use exit::ExitReason;
pub use step::reset_aggregated;

use crate::adapt::{apply_min_nr_regions, validate_regions};
use crate::clock::{Clock, RealClock, Wake};
use crate::context::Callbacks;
use crate::context::Context;
use crate::engine::DamosEngine;
use crate::error::{OpsError, StartError};
use crate::ops::{Operations, OpsCtx};
use crate::region::Region;
use crate::rng::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

pub(crate) use ops_ctx;

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
            // kdamond_need_stop: no target is valid when there is none,
            // for backends that check validity at all.
            return self
                .ops
                .validates_targets()
                .then(|| ExitReason::AllTargetsInvalid {
                    detail: "the context has no target".into(),
                });
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

    /// Sets or clears `pause`.
    pub fn set_pause(&mut self, pause: bool) {
        self.ctx.pause = pause;
    }
}
