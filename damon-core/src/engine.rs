//! The DAMOS engine as the monitoring loop sees it: the loop calls it at
//! `kdamond_apply_schemes` (and on activation checks, attribute changes and
//! commits); `damon-schemes` implements it.

use crate::attrs::Attrs;
use crate::damos::Scheme;
use crate::error::OpsError;
use crate::ops::Operations;
use crate::region::Region;
use crate::target::Target;

/// Called by the schemes engine for every region an action is about to be
/// tried on: (target index, target, region, scheme index, scheme).
pub type BeforeDamosApplyFn = Box<dyn FnMut(usize, &Target, &Region, usize, &Scheme) + Send>;

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
