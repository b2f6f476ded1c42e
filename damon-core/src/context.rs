//! The monitoring context (`struct damon_ctx`): parameters, targets,
//! schemes, the selected backend, and the user callbacks the loop runs.

use crate::adapt::validate_regions;
use crate::attrs::Attrs;
use crate::clock::Clock;
use crate::damos::Scheme;
use crate::engine::{BeforeDamosApplyFn, DamosEngine};
use crate::error::InvalidParam;
use crate::ops::Operations;
use crate::target::Target;
use std::sync::Arc;

/// A monitoring context. Build it, select a backend, then pass it to
/// [`crate::damon_start`] (or drive it with [`crate::Kdamond`] in tests).
///
/// ```
/// use damon_core::{Context, SimOps, SimPattern, Target};
/// let mut ctx = Context::new();
/// ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(1 << 30, 0.1))));
/// ctx.targets.push(Target::new(0));
/// ctx.validate().unwrap();
/// ```
pub struct Context {
    /// Monitoring attributes.
    pub attrs: Attrs,
    /// Monitoring targets.
    pub targets: Vec<Target>,
    /// DAMOS schemes (applied by the engine installed with [`Context::set_damos_engine`]).
    pub schemes: Vec<Scheme>,
    /// Region boundaries are multiples of this (a power of two; the kernel
    /// uses `PAGE_SIZE`, its unit tests 1).
    pub min_region_sz: u64,
    /// Core address × `addr_unit` = real address (paddr only).
    pub addr_unit: u64,
    /// A paused context keeps its state and does only calls, commits and stop checks.
    pub pause: bool,
    /// Callbacks, run on the worker.
    pub callbacks: Callbacks,
    /// RNG seed for `damon_rand`; `None` seeds from entropy.
    pub seed: Option<u64>,
    /// Clock; `None` uses real time.
    pub clock: Option<Arc<dyn Clock>>,
    pub(crate) ops: Option<Box<dyn Operations>>,
    pub(crate) ops_id: Option<String>,
    pub(crate) damos_engine: Option<Box<dyn DamosEngine>>,
    pub(crate) state: LoopState,
}

/// What a callback wants the loop to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep monitoring.
    Continue,
    /// Stop the context cleanly (the handle reports [`crate::ExitReason::CallbackStopped`]).
    Stop,
}

/// Called after every sample.
pub type AfterSamplingFn = Box<dyn FnMut(&Context) -> Control + Send>;
/// Called at every aggregation, after merging and before the reset, with
/// read access to every target's regions.
pub type AfterAggregationFn = Box<dyn FnMut(&Context) -> Control + Send>;
/// Called once when the worker ends.
pub type BeforeTerminateFn = Box<dyn FnMut(&Context) + Send>;

/// The callbacks of a context (the kernel's former `struct damon_callback`).
#[derive(Default)]
pub struct Callbacks {
    /// See [`AfterSamplingFn`].
    pub after_sampling: Option<AfterSamplingFn>,
    /// See [`AfterAggregationFn`].
    pub after_aggregation: Option<AfterAggregationFn>,
    /// See [`BeforeTerminateFn`].
    pub before_terminate: Option<BeforeTerminateFn>,
    /// See [`BeforeDamosApplyFn`].
    pub before_damos_apply: Option<BeforeDamosApplyFn>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("after_sampling", &self.after_sampling.is_some())
            .field("after_aggregation", &self.after_aggregation.is_some())
            .field("before_terminate", &self.before_terminate.is_some())
            .field("before_damos_apply", &self.before_damos_apply.is_some())
            .finish()
    }
}

/// The loop's private clocks (kernel `damon_ctx` private fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopState {
    /// Sampling intervals passed since start.
    pub passed_sample_intervals: u64,
    /// When the current aggregation ends.
    pub next_aggregation_sis: u64,
    /// When the next ops update is due.
    pub next_ops_update_sis: u64,
    /// When intervals are next tuned.
    pub next_intervals_tune_sis: u64,
    /// Region count at the last split (a function-static in the kernel).
    pub last_nr_regions: usize,
    /// Rotating offset of partial splits above half of `max_nr_regions`
    /// (a function-static in the kernel's `damon_split_some_regions`).
    pub split_rotation: u64,
    /// The merge size limit from the last `min_nr_regions` enforcement.
    pub sz_limit: u64,
    /// Samples per aggregation; set from the attributes by external
    /// updates and kept across interval tuning (`attrs.aggr_samples`).
    pub aggr_samples: u64,
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("ops", &self.ops_id)
            .field("attrs", &self.attrs)
            .field("targets", &self.targets.len())
            .field("nr_regions", &self.nr_regions())
            .field("schemes", &self.schemes.len())
            .field("min_region_sz", &self.min_region_sz)
            .field("pause", &self.pause)
            .field("state", &self.state)
            .finish()
    }
}

impl Context {
    /// A context with the kernel's default attributes, `min_region_sz` 4096,
    /// no targets, no schemes and no backend.
    pub fn new() -> Self {
        Self {
            attrs: Attrs::default(),
            targets: Vec::new(),
            schemes: Vec::new(),
            min_region_sz: 4096,
            addr_unit: 1,
            pause: false,
            callbacks: Callbacks::default(),
            seed: None,
            clock: None,
            ops: None,
            ops_id: None,
            damos_engine: None,
            state: LoopState::default(),
        }
    }

    /// Installs a backend instance under `id`.
    pub fn set_ops(&mut self, id: &str, ops: Box<dyn Operations>) {
        self.ops = Some(ops);
        self.ops_id = Some(id.to_string());
    }

    /// Names the operations set `id` without installing a backend (any
    /// installed one is dropped). Our engine cannot start such a context
    /// ([`crate::StartError::NoOps`]); an engine switch that may run it on
    /// the kernel's DAMON (which has its own `vaddr`, `fvaddr` and `paddr`)
    /// selects our backend of that id only when it runs the context here.
    pub fn name_ops(&mut self, id: &str) {
        self.ops = None;
        self.ops_id = Some(id.to_string());
    }

    /// The selected backend's id.
    pub fn ops_id(&self) -> Option<&str> {
        self.ops_id.as_deref()
    }

    /// The selected backend.
    pub fn ops(&self) -> Option<&dyn Operations> {
        self.ops.as_deref()
    }

    /// Installs the DAMOS engine that applies [`Context::schemes`].
    pub fn set_damos_engine(&mut self, engine: Box<dyn DamosEngine>) {
        self.damos_engine = Some(engine);
    }

    /// Total regions over all targets.
    pub fn nr_regions(&self) -> usize {
        self.targets.iter().map(|t| t.regions.len()).sum()
    }

    /// The loop's private clocks.
    pub fn loop_state(&self) -> LoopState {
        self.state
    }

    /// Sampling intervals passed since start.
    pub fn passed_sample_intervals(&self) -> u64 {
        self.state.passed_sample_intervals
    }

    /// Checks every parameter; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        self.attrs.validate()?;
        if !self.min_region_sz.is_power_of_two() {
            return Err(InvalidParam::new(
                "min_region_sz",
                format!("{} is not a power of two", self.min_region_sz),
            ));
        }
        if self.addr_unit == 0 {
            return Err(InvalidParam::new("addr_unit", "must be non-zero"));
        }
        for (i, t) in self.targets.iter().enumerate() {
            validate_regions(t, &format!("targets[{i}].regions"))?;
        }
        for (i, s) in self.schemes.iter().enumerate() {
            validate_scheme(s, &format!("schemes[{i}]"))?;
        }
        Ok(())
    }
}

/// Checks the parts of a scheme the core can judge: ranges and watermarks in order.
pub fn validate_scheme(s: &Scheme, field: &str) -> Result<(), InvalidParam> {
    let p = &s.pattern;
    if p.min_sz_region > p.max_sz_region {
        return Err(InvalidParam::new(
            format!("{field}.pattern.sz"),
            format!("min {} > max {}", p.min_sz_region, p.max_sz_region),
        ));
    }
    if p.min_nr_accesses > p.max_nr_accesses {
        return Err(InvalidParam::new(
            format!("{field}.pattern.nr_accesses"),
            format!("min {} > max {}", p.min_nr_accesses, p.max_nr_accesses),
        ));
    }
    if p.min_age_region > p.max_age_region {
        return Err(InvalidParam::new(
            format!("{field}.pattern.age"),
            format!("min {} > max {}", p.min_age_region, p.max_age_region),
        ));
    }
    let w = &s.wmarks;
    if w.metric != crate::damos::WmarkMetric::None && !(w.high >= w.mid && w.mid >= w.low) {
        return Err(InvalidParam::new(
            format!("{field}.wmarks"),
            format!(
                "need high >= mid >= low, got {}/{}/{}",
                w.high, w.mid, w.low
            ),
        ));
    }
    for (j, f) in s.filters.iter().enumerate() {
        if let crate::damos::FilterKind::Addr(r) = f.kind {
            if r.is_empty() {
                return Err(InvalidParam::new(
                    format!("{field}.filters[{j}].addr"),
                    format!("range {r} is empty or inverted"),
                ));
            }
        }
    }
    Ok(())
}
