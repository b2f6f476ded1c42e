//! User callbacks run on the worker thread, and the DAMOS engine hook.

use crate::attrs::Attrs;
use crate::context::Context;
use crate::damos::Scheme;
use crate::error::OpsError;
use crate::ops::Operations;
use crate::region::Region;
use crate::target::Target;

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
/// Called by the schemes engine for every region an action is about to be
/// tried on: (target index, target, region, scheme index, scheme).
pub type BeforeDamosApplyFn = Box<dyn FnMut(usize, &Target, &Region, usize, &Scheme) + Send>;

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

/// What the DAMOS engine gets at each loop iteration.
pub struct DamosEnv<'a> {
    /// Current attributes.
    pub attrs: &'a Attrs,
    /// The loop clock (sampling intervals).
    pub passed_sample_intervals: u64,
    /// The injected clock (µs) when the step started.
    pub now_us: u64,
    /// The clock, to time applications (the time quota's throughput).
    pub clock: &'a dyn crate::clock::Clock,
    /// Region alignment.
    pub min_region_sz: u64,
    /// Targets; the engine may split regions at quota and filter boundaries.
    pub targets: &'a mut [Target],
    /// Schemes, whose `stat` the engine updates.
    pub schemes: &'a mut [Scheme],
    /// The backend.
    pub ops: &'a mut dyn Operations,
    /// The user's per-region hook.
    pub before_damos_apply: Option<&'a mut BeforeDamosApplyFn>,
}

/// The DAMOS engine as the loop sees it (implemented by `damon-schemes`).
pub trait DamosEngine: Send {
    /// `kdamond_wait_activation`: microseconds to wait before monitoring
    /// resumes because every scheme is watermark-inactive; 0 = go on.
    fn wait_activation_us(&mut self, schemes: &mut [Scheme], now_us: u64) -> u64;
    /// `kdamond_apply_schemes`.
    fn apply(&mut self, env: DamosEnv<'_>);
    /// The attributes changed (recompute apply schedules).
    fn attrs_changed(&mut self, schemes: &[Scheme], attrs: &Attrs, passed_sample_intervals: u64);
    /// Schemes were committed by position: `old_len` before, `new_len` after.
    fn schemes_committed(
        &mut self,
        old_len: usize,
        new_len: usize,
        schemes: &[Scheme],
        attrs: &Attrs,
        passed: u64,
    );
    /// Refuses schemes this engine and backend cannot run.
    fn check(&self, schemes: &[Scheme], ops: &dyn Operations) -> Result<(), OpsError>;
}
