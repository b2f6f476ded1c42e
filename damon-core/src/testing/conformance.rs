//! One conformance suite for every backend: drives an [`Operations`]
//! implementation through [`Kdamond`] and checks the engine's invariants
//! after every step.
//!
//! Invariants checked:
//! * regions of every target are non-empty, sorted and disjoint;
//! * with `check_bounds`, they stay within the span the target had after `init`;
//! * every `sampling_addr` lies in its region when a sample is checked;
//! * `nr_accesses` and `last_nr_accesses` never exceed `max_nr_accesses`;
//! * after every aggregation the region count is at most `max_nr_regions`
//!   and at least `min_nr_regions` (or what the size limit allows when the
//!   targets are too small to hold that many aligned regions);
//! * the loop never stops by itself and every target stays valid.
//!
//! ```
//! use damon_core::{AddrRange, HotRange, SimOps, SimPattern, Target};
//! use damon_core::testing::conformance::{conformance_suite, SuiteConfig};
//! let make = || {
//!     let hot = HotRange { range: AddrRange::new(0, 8 << 20), probability: 0.7 };
//!     let ops = SimOps::new(SimPattern::with_hot(256 << 20, vec![hot]));
//!     Ok((Box::new(ops) as Box<dyn damon_core::Operations>, vec![Target::new(0)]))
//! };
//! let reports = conformance_suite(&SuiteConfig::virtual_time(300), make).unwrap();
//! assert!(reports.iter().all(|r| r.aggregations > 0));
//! ```

use crate::AddrRange;
use crate::{
    Attrs, Context, Control, Kdamond, Operations, OpsError, RealClock, Target, VirtualClock,
};
use std::sync::{Arc, Mutex};

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Loop steps (samples) per scenario.
    pub steps: usize,
    /// Real time (for real backends, whose pages must have time to be
    /// accessed) or virtual time (simulated backends: no sleeping).
    pub real_time: bool,
    /// Check that regions stay within the span each target had after init
    /// (false for backends whose layout may legitimately grow, like vaddr
    /// across an ops update).
    pub check_bounds: bool,
    /// `Context::min_region_sz`.
    pub min_region_sz: u64,
    /// RNG seed.
    pub seed: u64,
}

impl SuiteConfig {
    /// Virtual time (for simulated or fake backends).
    pub fn virtual_time(steps: usize) -> Self {
        Self {
            steps,
            real_time: false,
            check_bounds: true,
            min_region_sz: 4096,
            seed: 42,
        }
    }

    /// Real time (for backends on real memory).
    pub fn real_time(steps: usize) -> Self {
        Self {
            steps,
            real_time: true,
            ..Self::virtual_time(steps)
        }
    }
}

/// What one scenario saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: &'static str,
    /// Steps run.
    pub steps: usize,
    /// Aggregations seen.
    pub aggregations: usize,
    /// Most regions seen at once.
    pub max_regions: usize,
    /// Fewest regions seen after an aggregation.
    pub min_regions: usize,
    /// Regions with a non-zero `last_nr_accesses` at the end.
    pub accessed_regions: usize,
}

/// A broken invariant or a failure to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// The context could not be built or initialised.
    #[error("scenario {scenario}: setup failed: {detail}")]
    Setup {
        /// Scenario name.
        scenario: &'static str,
        /// What failed.
        detail: String,
    },
    /// The backend factory failed.
    #[error("scenario {scenario}: backend: {source}")]
    Backend {
        /// Scenario name.
        scenario: &'static str,
        /// The backend's error.
        #[source]
        source: OpsError,
    },
    /// The loop stopped by itself.
    #[error("scenario {scenario}: loop stopped at step {step}: {reason}")]
    Stopped {
        /// Scenario name.
        scenario: &'static str,
        /// Step number.
        step: usize,
        /// The exit reason.
        reason: String,
    },
    /// An invariant was broken.
    #[error("scenario {scenario}: step {step}: {detail}")]
    Violation {
        /// Scenario name.
        scenario: &'static str,
        /// Step number.
        step: usize,
        /// Which invariant and the offending values.
        detail: String,
    },
}

/// The scenarios: kernel defaults, a tight region budget, a wide one.
pub fn scenarios() -> Vec<(&'static str, Attrs)> {
    let default = Attrs::default();
    let tight = Attrs {
        min_nr_regions: 3,
        max_nr_regions: 12,
        ..Attrs::default()
    };
    let wide = Attrs {
        min_nr_regions: 50,
        max_nr_regions: 400,
        aggr_interval: 50_000,
        ..Attrs::default()
    };
    vec![("default", default), ("tight", tight), ("wide", wide)]
}

/// Runs every scenario of [`scenarios`] with a fresh backend from `make`.
pub fn conformance_suite<F>(
    cfg: &SuiteConfig,
    make: F,
) -> Result<Vec<ScenarioReport>, ConformanceError>
where
    F: Fn() -> Result<(Box<dyn Operations>, Vec<Target>), OpsError>,
{
    scenarios()
        .into_iter()
        .map(|(name, attrs)| run_scenario(name, attrs, cfg, &make))
        .collect()
}

/// Checks the static invariants of `ctx`; `bounds` (one span per target) if given.
pub fn check_invariants(ctx: &Context, bounds: Option<&[AddrRange]>) -> Result<(), String> {
    let max_nr = ctx.attrs.max_nr_accesses();
    for (ti, t) in ctx.targets.iter().enumerate() {
        for (ri, r) in t.regions.iter().enumerate() {
            if r.ar.is_empty() {
                return Err(format!("targets[{ti}].regions[{ri}] {} is empty", r.ar));
            }
            if ri > 0 && t.regions[ri - 1].ar.end > r.ar.start {
                return Err(format!(
                    "targets[{ti}].regions[{ri}] {} overlaps or precedes {}",
                    r.ar,
                    t.regions[ri - 1].ar
                ));
            }
            if r.nr_accesses > max_nr || r.last_nr_accesses > max_nr {
                return Err(format!(
                    "targets[{ti}].regions[{ri}] nr_accesses {} / last {} above max_nr_accesses {max_nr}",
                    r.nr_accesses, r.last_nr_accesses
                ));
            }
            if let Some(b) = bounds.and_then(|b| b.get(ti)) {
                if r.ar.start < b.start || r.ar.end > b.end {
                    return Err(format!(
                        "targets[{ti}].regions[{ri}] {} is outside the target's span {b}",
                        r.ar
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The fewest regions `apply_min_nr_regions` guarantees.
fn min_regions_floor(ctx: &Context) -> usize {
    let total: u64 = ctx.targets.iter().map(Target::total_bytes).sum();
    let min_nr = u64::from(ctx.attrs.min_nr_regions.max(1));
    let align = ctx.min_region_sz.max(1);
    let limit = (total / min_nr).max(align).next_multiple_of(align);
    total.div_ceil(limit).min(min_nr) as usize
}

/// Runs one scenario.
pub fn run_scenario<F>(
    name: &'static str,
    attrs: Attrs,
    cfg: &SuiteConfig,
    make: &F,
) -> Result<ScenarioReport, ConformanceError>
where
    F: Fn() -> Result<(Box<dyn Operations>, Vec<Target>), OpsError>,
{
    let (ops, targets) = make().map_err(|source| ConformanceError::Backend {
        scenario: name,
        source,
    })?;
    let mut ctx = Context::new();
    ctx.attrs = attrs;
    ctx.min_region_sz = cfg.min_region_sz;
    ctx.seed = Some(cfg.seed);
    ctx.set_ops("conformance", ops);
    ctx.targets = targets;
    if cfg.real_time {
        ctx.clock = Some(Arc::new(RealClock::new()));
    } else {
        ctx.clock = Some(Arc::new(VirtualClock::new()));
    }
    let sampling_violation: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let sv = sampling_violation.clone();
    ctx.callbacks.after_sampling = Some(Box::new(move |ctx: &Context| {
        for (ti, t) in ctx.targets.iter().enumerate() {
            for (ri, r) in t.regions.iter().enumerate() {
                if !r.ar.contains(r.sampling_addr) {
                    let mut g = sv.lock().unwrap_or_else(|p| p.into_inner());
                    g.get_or_insert_with(|| {
                        format!(
                            "targets[{ti}].regions[{ri}] sampling_addr {:#x} outside {}",
                            r.sampling_addr, r.ar
                        )
                    });
                }
            }
        }
        Control::Continue
    }));
    let setup = |detail: String| ConformanceError::Setup {
        scenario: name,
        detail,
    };
    let mut kd = Kdamond::new(ctx).map_err(|e| setup(e.to_string()))?;
    kd.init().map_err(|source| ConformanceError::Backend {
        scenario: name,
        source,
    })?;
    let violation = |step: usize, detail: String| ConformanceError::Violation {
        scenario: name,
        step,
        detail,
    };
    check_invariants(kd.ctx(), None).map_err(|d| violation(0, format!("after init: {d}")))?;
    let bounds: Option<Vec<AddrRange>> = cfg.check_bounds.then(|| {
        kd.ctx()
            .targets
            .iter()
            .map(|t| match (t.regions.first(), t.regions.last()) {
                (Some(f), Some(l)) => AddrRange::new(f.ar.start, l.ar.end),
                _ => AddrRange::new(0, 0),
            })
            .collect()
    });
    let mut report = ScenarioReport {
        name,
        min_regions: usize::MAX,
        ..Default::default()
    };
    for step in 1..=cfg.steps {
        let before = kd.ctx().loop_state().next_aggregation_sis;
        if let Some(reason) = kd.step() {
            return Err(ConformanceError::Stopped {
                scenario: name,
                step,
                reason: reason.to_string(),
            });
        }
        let ctx = kd.ctx();
        check_invariants(ctx, bounds.as_deref()).map_err(|d| violation(step, d))?;
        if let Some(d) = sampling_violation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(violation(step, d));
        }
        let nr = ctx.nr_regions();
        report.max_regions = report.max_regions.max(nr);
        if ctx.loop_state().next_aggregation_sis != before {
            report.aggregations += 1;
            report.min_regions = report.min_regions.min(nr);
            if nr > ctx.attrs.max_nr_regions as usize {
                return Err(violation(
                    step,
                    format!(
                        "{nr} regions after aggregation, above max_nr_regions {}",
                        ctx.attrs.max_nr_regions
                    ),
                ));
            }
            let floor = min_regions_floor(ctx);
            if nr < floor {
                return Err(violation(
                    step,
                    format!(
                        "{nr} regions after aggregation, below the min_nr_regions floor {floor}"
                    ),
                ));
            }
        }
        report.steps = step;
    }
    report.accessed_regions = kd
        .ctx()
        .targets
        .iter()
        .flat_map(|t| &t.regions)
        .filter(|r| r.last_nr_accesses > 0)
        .count();
    if report.min_regions == usize::MAX {
        report.min_regions = kd.ctx().nr_regions();
    }
    drop(kd.terminate());
    Ok(report)
}
