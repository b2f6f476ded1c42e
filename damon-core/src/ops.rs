//! The operations vtable (`struct damon_operations`) as an object-safe trait.

use crate::attrs::Attrs;
use crate::damos::{Action, FilterKind, GoalMetric, Scheme, DAMOS_MAX_SCORE};
use crate::error::OpsError;
use crate::region::Region;
use crate::rng::Rng;
use crate::target::Target;

/// What a backend sees of its context in a call. Every call covers the whole
/// context, so a backend can batch its I/O across targets and regions.
pub struct OpsCtx<'a> {
    /// Current attributes.
    pub attrs: &'a Attrs,
    /// Alignment unit of region boundaries (a power of two).
    pub min_region_sz: u64,
    /// Core address × `addr_unit` = real address (only paddr honours it).
    pub addr_unit: u64,
    /// The loop's clock in sampling intervals.
    pub passed_sample_intervals: u64,
    /// The injected clock's time (µs).
    pub now_us: u64,
    /// The context's random source (`damon_rand`).
    pub rng: &'a mut Rng,
    /// The targets, with their regions.
    pub targets: &'a mut [Target],
}

impl<'a> OpsCtx<'a> {
    /// A view for calling a backend outside the loop (tests, tools): the
    /// loop's defaults of a fresh [`crate::Context`] (`min_region_sz`
    /// 4096, `addr_unit` 1) at time zero.
    ///
    /// ```
    /// use damon_core::{Attrs, Operations, OpsCtx, Rng, SimOps, SimPattern, Target};
    /// let mut ops = SimOps::new(SimPattern::uniform(1 << 30, 0.5));
    /// let (attrs, mut rng) = (Attrs::default(), Rng::new(1));
    /// let mut targets = vec![Target::new(0)];
    /// ops.init(&mut OpsCtx::new(&attrs, &mut rng, &mut targets)).unwrap();
    /// assert!(!targets[0].regions.is_empty());
    /// ```
    pub fn new(attrs: &'a Attrs, rng: &'a mut Rng, targets: &'a mut [Target]) -> Self {
        Self {
            attrs,
            min_region_sz: 4096,
            addr_unit: 1,
            passed_sample_intervals: 0,
            now_us: 0,
            rng,
            targets,
        }
    }
}

/// The result of applying an action to one region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Bytes the action was applied to (may be less than the region on
    /// partial application).
    pub applied: u64,
    /// Bytes that passed the backend's (ops) filters.
    pub sz_filter_passed: u64,
}

/// A monitoring backend: how to find regions and check accesses in one kind
/// of address space (`struct damon_operations`).
///
/// Required: [`prepare_access_checks`](Operations::prepare_access_checks) and
/// [`check_accesses`](Operations::check_accesses). Everything else has the
/// kernel's "callback not set" behaviour as default.
///
/// An `Err` from `init`, `update`, `prepare_access_checks` or
/// `check_accesses` stops the context and is reported through its handle;
/// a backend should instead treat a vanished target as "not accessed" and
/// report it through [`target_valid`](Operations::target_valid).
pub trait Operations: Send + 'static {
    /// Once before the loop: build initial regions for targets that have none.
    fn init(&mut self, _ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        Ok(())
    }
    /// Every `ops_update_interval`: refresh regions to the current layout.
    fn update(&mut self, _ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        Ok(())
    }
    /// Start of every sample: pick each region's `sampling_addr` and clear
    /// its accessed state.
    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError>;
    /// After the sampling sleep: call [`crate::update_region_access_rate`]
    /// for every region and return the largest `nr_accesses`.
    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError>;
    /// At every aggregation reset.
    fn reset_aggregated(&mut self, _ctx: &mut OpsCtx<'_>) {}
    /// DAMOS prioritization score in `[0, 99]`; higher is applied first.
    fn get_scheme_score(
        &self,
        _attrs: &Attrs,
        _target: &Target,
        _region: &Region,
        _scheme: &Scheme,
    ) -> u32 {
        DAMOS_MAX_SCORE
    }
    /// Whether the backend can perform `action`; schemes with an action it
    /// cannot perform are refused when installed, never silently skipped.
    fn check_action(&self, action: Action) -> Result<(), OpsError> {
        if action == Action::Stat {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("DAMOS action {}", action.name()),
                hint: "this backend only supports stat".into(),
            })
        }
    }
    /// Whether the backend can evaluate filter `kind`. Core filters (addr,
    /// target) are the engine's; by default every page-level (ops) filter
    /// is refused, naming it, so a scheme never silently ignores a filter.
    fn check_filter(&self, kind: &FilterKind) -> Result<(), OpsError> {
        if kind.is_core() {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("DAMOS filter {}", kind.name()),
                hint: "this backend cannot evaluate page-level filters".into(),
            })
        }
    }
    /// Whether the backend can measure quota goal `metric` where the
    /// kernel has the operations set measure it: by default every metric
    /// but `node_eligible_mem_bp`, which the kernel accepts only on paddr.
    fn check_goal_metric(&self, metric: GoalMetric) -> Result<(), OpsError> {
        if metric == GoalMetric::NodeEligibleMemBp {
            Err(OpsError::Unsupported {
                what: format!("quota goal metric {}", metric.name()),
                hint: "only the paddr backend measures it, as in the kernel".into(),
            })
        } else {
            Ok(())
        }
    }
    /// `node_eligible_mem_bp`'s walk over one eligible region: (bytes on
    /// node `nid`, bytes on any node) of the LRU folios in `region`, in
    /// core address units (`damos_calc_eligible_bytes`).
    fn node_eligible_bytes(&mut self, _region: &Region, _nid: i32) -> Result<(u64, u64), OpsError> {
        Err(OpsError::Unsupported {
            what: "node_eligible_mem_bp".into(),
            hint: "only the paddr backend measures it, as in the kernel".into(),
        })
    }
    /// Checks that depend on the targets, after [`check_action`] and
    /// [`check_filter`] passed (e.g. advice only the calling process can
    /// take, or a privilege acting on other processes needs). Called at
    /// start and at every commit; the default accepts.
    ///
    /// [`check_action`]: Operations::check_action
    /// [`check_filter`]: Operations::check_filter
    fn check_scheme(&self, _scheme: &Scheme, _targets: &[Target]) -> Result<(), OpsError> {
        Ok(())
    }
    /// Applies the scheme's action to `region` of `target`. Page-level
    /// (ops) filters of `scheme` are the backend's to evaluate, per page,
    /// with [`crate::damos::ops_filters_pass`]; when a core allow-filter
    /// already decided, the engine passes the scheme without them.
    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        _target: &Target,
        region: &Region,
        scheme: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        match scheme.action {
            Action::Stat => Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed: region.size(),
            }),
            a => Err(OpsError::Unsupported {
                what: format!("DAMOS action {}", a.name()),
                hint: "not implemented by this backend".into(),
            }),
        }
    }
    /// False once the target is gone; the loop stops when every target is invalid.
    fn target_valid(&mut self, _target: &Target) -> bool {
        true
    }
    /// Whether this backend can tell a target invalid, as the kernel's
    /// backends that set `ops.target_valid` (vaddr) can and paddr cannot.
    /// `kdamond_need_stop` then also stops a context with no target at all;
    /// a backend without it monitors on.
    fn validates_targets(&self) -> bool {
        false
    }
    /// Before a target is dropped (stop, or removal by a commit).
    fn cleanup_target(&mut self, _target: &Target) {}
    /// System calls this backend made so far, if it counts them (for
    /// benchmarks reporting system calls per region-sample).
    fn syscalls(&self) -> Option<u64> {
        None
    }
    /// Why targets became invalid, for the exit report (e.g. "pid 42 exited").
    fn invalid_reason(&self) -> Option<String> {
        None
    }
}
