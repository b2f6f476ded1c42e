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
    /// When the current aggregation ends (for the moving sum,
    /// [`crate::access::nr_accesses_mvsum`]).
    pub next_aggregation_sis: u64,
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
    /// The user's per-region hook, run with panics caught.
    pub before_damos_apply: BeforeApplyHook<'a>,
}

/// The user's `before_damos_apply` callback as the engine calls it: a panic
/// is caught like every other callback's, the hook stops calling the user,
/// and the loop stops the context with
/// [`crate::ExitReason::CallbackPanicked`] once the engine returns.
pub struct BeforeApplyHook<'a> {
    f: Option<&'a mut BeforeDamosApplyFn>,
    panicked: &'a mut Option<String>,
}

impl<'a> BeforeApplyHook<'a> {
    /// A hook calling `f` (if any); a panic message lands in `panicked`.
    pub fn new(f: Option<&'a mut BeforeDamosApplyFn>, panicked: &'a mut Option<String>) -> Self {
        Self { f, panicked }
    }

    /// Runs the callback for one region. False once it has panicked: the
    /// engine must then stop applying (the context is being stopped).
    pub fn call(
        &mut self,
        target_idx: usize,
        t: &Target,
        r: &Region,
        scheme_idx: usize,
        s: &Scheme,
    ) -> bool {
        if self.panicked.is_some() {
            return false;
        }
        let Some(f) = self.f.as_mut() else {
            return true;
        };
        let run = std::panic::AssertUnwindSafe(|| f(target_idx, t, r, scheme_idx, s));
        match std::panic::catch_unwind(run) {
            Ok(()) => true,
            Err(p) => {
                *self.panicked = Some(crate::kdamond::panic_message(p.as_ref()));
                false
            }
        }
    }
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
    /// Targets were committed: `remap[i]` is the new index of the target
    /// that was at index `i`, or `None` when it was destroyed. The kernel
    /// resets every quota resume point (`charge_target_from`) that named a
    /// destroyed target and keeps it for targets that only moved.
    fn targets_committed(&mut self, remap: &[Option<usize>]) {
        let _ = remap;
    }
    /// `damos_walk_cancel`: the loop is paused, so a pending walk (tried
    /// regions) cannot complete; the kernel's pause loop cancels it.
    fn walk_cancel(&mut self) {}
    /// Refuses schemes this engine and backend cannot run.
    fn check(&self, schemes: &[Scheme], ops: &dyn Operations) -> Result<(), OpsError>;
}
