//! damo's kdamonds JSON: the DAMON parameters `damo args damon` prints and
//! `damo start --kdamonds FILE` takes, shaped like the sysfs hierarchy.
//!
//! ```text
//! {"kdamonds": [{"refresh_ms": 0, "contexts": [{
//!     "ops": "paddr", "addr_unit": 1,
//!     "targets": [{"pid": null, "obsolete": false, "regions": [{"start": 4096, "end": "16 GiB"}]}],
//!     "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s",
//!                   "intervals_goal": {"access_bp": "4 %", "aggrs": 3,
//!                                      "min_sample_us": "5 ms", "max_sample_us": "10 s"}},
//!     "nr_regions": {"min": 10, "max": 1000},
//!     "pause": false,
//!     "schemes": [{"action": "pageout", "target_nid": null, "dests": [],
//!         "access_pattern": {"sz_bytes": {"min": "4.000 KiB", "max": "max"},
//!                            "nr_accesses": {"min": "0 %", "max": "0 %"},
//!                            "age": {"min": "5 s", "max": "max"}},
//!         "apply_interval_us": 0,
//!         "quotas": {"time_ms": "10 ms", "sz_bytes": "128 MiB", "reset_interval_ms": "1 s",
//!                    "goals": [{"metric": "some_mem_psi_us", "target_value": "1 ms",
//!                               "current_value": 0, "nid": null}],
//!                    "goal_tuner": "consist", "effective_sz_bytes": 0,
//!                    "weights": {"sz_permil": "0 %", "nr_accesses_permil": "0.3 %",
//!                                "age_permil": 7}},
//!         "watermarks": {"metric": "free_mem_rate", "interval_us": "5 s",
//!                        "high_permil": "50 %", "mid_permil": 400, "low_permil": "5 %"},
//!         "filters": [{"filter_type": "anon", "matching": true, "allow": false}],
//!         "stats": {"max_nr_snapshots": 0}}]}]}]}
//! ```
//!
//! # Values
//!
//! Every number may be a JSON number or one of damo's strings: sizes
//! (`"4,096"`, `"4.000 KiB"`, `"2M"`, `"max"`), times (`"5 ms"`,
//! `"1 s 500 ms"`; a bare number is in the key's unit: `_us`, `_ms`),
//! ratios (`"0.3 %"`; a bare number is in the key's unit: `_permil`,
//! `_bp`). As in damo, an access pattern's `nr_accesses` is a percentage
//! of the samples per aggregation (a bare number too) or `"N samples"`,
//! and its `age` a time (a bare number is µs) or `"N aggr_intervals"`;
//! percentages and times are converted with the context's intervals and
//! truncated as damo does. Missing keys take damo's defaults (intervals
//! 5 ms / 100 ms / 1 s, 10..1000 regions, no quota with a `max` reset
//! interval, an access pattern matching everything, action `stat`).
//!
//! # Strictness
//!
//! An unknown key, a wrong type, a bad unit, an out-of-range value or a
//! parameter set DAMON would refuse is an error naming its JSON path, e.g.
//! `kdamonds[0].contexts[0].schemes[1].quotas.time_ms: expected a
//! non-negative integer or a time string (e.g. "5 ms"), got "ten"`.
//! damo features this crate cannot honour are refused the same way rather
//! than dropped: `probes`, non-default `sample_control`, `dests`, quota
//! goal `complement`. A `memcg_path` (of a memcg filter or a memcg goal)
//! is resolved to the cgroup's id ([`FilterKind::Memcg`], `QuotaGoal::memcg_id`)
//! on this machine, and saved back as its path; a path that names no memory
//! cgroup here is an error naming it.
//!
//! The sysfs spelling `monitoring_attrs: {intervals: {sample_us, aggr_us,
//! update_us}, nr_regions}` is accepted in place of damo's `intervals` and
//! `nr_regions`. [`save_kdamonds`] writes damo's keys with plain numbers,
//! `"N samples"` and `"N aggr_intervals"`, so that loading it gives back
//! exactly the same parameters.

use super::value::{self, array, boolean, expected, join, Obj};
use crate::DamoError;
use damon_core::attrs::{Attrs, IntervalsGoal};
use damon_core::context::Context;
use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, GoalTuner, Quota, QuotaGoal, Scheme,
    Stat, Watermarks, WmarkMetric,
};
use damon_core::region::AddrRange;
use damon_core::target::Target;
use serde_json::{json, Value};

/// A set of kdamonds, as in damo's `{"kdamonds": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KdamondsConfig {
    /// The kdamonds, in order.
    pub kdamonds: Vec<KdamondParams>,
}

impl KdamondsConfig {
    /// Every context of every kdamond, in order.
    pub fn contexts(&self) -> impl Iterator<Item = &ContextParams> {
        self.kdamonds.iter().flat_map(|k| k.contexts.iter())
    }
}

/// One kdamond (one worker thread in the kernel).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KdamondParams {
    /// Period of automatic stats refresh (ms; 0 = off). Kept for round trips.
    pub refresh_ms: u64,
    /// Its contexts (the kernel runs at most one per kdamond).
    pub contexts: Vec<ContextParams>,
}

/// One monitoring context's parameters; [`ContextParams::to_context`]
/// builds the [`Context`], and the caller selects the backend named by
/// [`ContextParams::ops`] (e.g. with [`damon_core::damon_select_ops`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Operations set id (`vaddr`, `fvaddr`, `paddr`, or another registered id).
    pub ops: String,
    /// Address unit (bytes per core address; paddr only).
    pub addr_unit: u64,
    /// Monitoring attributes.
    pub attrs: Attrs,
    /// Targets.
    pub targets: Vec<TargetParams>,
    /// DAMOS schemes (statistics included, for round trips of a status dump).
    pub schemes: Vec<Scheme>,
    /// Start paused.
    pub pause: bool,
}

/// One target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetParams {
    /// Process id (`vaddr`, `fvaddr`); `None` for `paddr`.
    pub pid: Option<u64>,
    /// Initial monitoring regions, sorted and disjoint (may be empty for vaddr).
    pub regions: Vec<AddrRange>,
    /// Marks a target to remove on commit.
    pub obsolete: bool,
}

/// damo's default attributes (its `DamonIntervals()` and
/// `DamonNrRegionsRange()`): 5 ms, 100 ms, 1 s, 10..1000 regions.
pub fn damo_default_attrs() -> Attrs {
    Attrs {
        sample_interval: 5_000,
        aggr_interval: 100_000,
        ops_update_interval: 1_000_000,
        intervals_goal: IntervalsGoal::default(),
        min_nr_regions: 10,
        max_nr_regions: 1000,
    }
}

impl ContextParams {
    /// A context for `ops` with damo's default attributes and nothing else.
    pub fn new(ops: &str) -> Self {
        Self {
            ops: ops.to_string(),
            addr_unit: 1,
            attrs: damo_default_attrs(),
            targets: Vec::new(),
            schemes: Vec::new(),
            pause: false,
        }
    }

    /// A [`Context`] with these parameters and no backend: select
    /// `self.ops` into it before starting. A target's id is its pid (0 without).
    pub fn to_context(&self) -> Context {
        let mut ctx = Context::new();
        ctx.attrs = self.attrs;
        ctx.addr_unit = self.addr_unit;
        ctx.pause = self.pause;
        ctx.targets = self
            .targets
            .iter()
            .map(|t| {
                let mut target = Target::with_ranges(t.pid.unwrap_or(0), &t.regions);
                target.obsolete = t.obsolete;
                target
            })
            .collect();
        ctx.schemes = self.schemes.clone();
        ctx
    }

    /// The parameters of `ctx`, to be run with backend `ops`. Target
    /// regions are the context's current regions (its initial ones before
    /// start); target ids become pids except for `paddr`.
    pub fn from_context(ops: &str, ctx: &Context) -> Self {
        Self {
            ops: ops.to_string(),
            addr_unit: ctx.addr_unit,
            attrs: ctx.attrs,
            targets: ctx
                .targets
                .iter()
                .map(|t| TargetParams {
                    pid: (ops != "paddr").then_some(t.id),
                    regions: t.ranges(),
                    obsolete: t.obsolete,
                })
                .collect(),
            schemes: ctx.schemes.clone(),
            pause: ctx.pause,
        }
    }
}

mod emit;
mod memcg_path;
mod parse;
mod parse_scheme;
#[cfg(test)]
mod tests;

pub use emit::save_kdamonds;
pub use parse::parse_kdamonds;
