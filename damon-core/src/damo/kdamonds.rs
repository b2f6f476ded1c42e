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
//! than dropped: `probes`, non-default `sample_control`, `dests`, memcg
//! filters (damo names a cgroup path; [`FilterKind::Memcg`] takes an id),
//! quota goal `complement`/`memcg_path`, fail-charge ratios.
//!
//! The sysfs spelling `monitoring_attrs: {intervals: {sample_us, aggr_us,
//! update_us}, nr_regions}` is accepted in place of damo's `intervals` and
//! `nr_regions`. [`save_kdamonds`] writes damo's keys with plain numbers,
//! `"N samples"` and `"N aggr_intervals"`, so that loading it gives back
//! exactly the same parameters.

use super::value::{self, array, boolean, expected, join, Obj};
use super::DamoError;
use crate::attrs::{Attrs, IntervalsGoal};
use crate::context::Context;
use crate::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, GoalTuner, Quota, QuotaGoal, Scheme,
    Stat, Watermarks, WmarkMetric,
};
use crate::region::AddrRange;
use crate::target::Target;
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
/// [`ContextParams::ops`] (e.g. with [`crate::damon_select_ops`]).
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

// ------------------------------------------------------------------ load

/// Parses damo's kdamonds JSON (see the module docs). Never panics.
pub fn parse_kdamonds(text: &str) -> Result<KdamondsConfig, DamoError> {
    let v: Value = serde_json::from_str(text).map_err(|e| DamoError::Syntax(e.to_string()))?;
    let top = Obj::new(&v, "", &["kdamonds"])?;
    let kds = array(top.req("kdamonds")?, "kdamonds")?;
    let kdamonds = kds
        .iter()
        .enumerate()
        .map(|(i, k)| parse_kdamond(k, &format!("kdamonds[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KdamondsConfig { kdamonds })
}

fn parse_kdamond(v: &Value, path: &str) -> Result<KdamondParams, DamoError> {
    let o = Obj::new(v, path, &["state", "pid", "refresh_ms", "contexts"])?;
    if let Some(s) = o.opt("state") {
        let st = value::string(s, &o.child("state"))?;
        if st != "on" && st != "off" {
            return Err(expected(&o.child("state"), "\"on\" or \"off\"", s));
        }
    }
    if let Some(p) = o.opt("pid") {
        value::nr(p, &o.child("pid"))?;
    }
    let refresh_ms = opt_or(&o, "refresh_ms", 0, value::time_ms)?;
    let cp = o.child("contexts");
    let contexts = match o.opt("contexts") {
        Some(c) => array(c, &cp)?
            .iter()
            .enumerate()
            .map(|(i, c)| parse_context(c, &format!("{cp}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(KdamondParams {
        refresh_ms,
        contexts,
    })
}

/// `key`'s value parsed by `f`, or `default` when absent or null.
fn opt_or<T>(
    o: &Obj<'_>,
    key: &str,
    default: T,
    f: impl FnOnce(&Value, &str) -> Result<T, DamoError>,
) -> Result<T, DamoError> {
    match o.opt(key) {
        Some(v) => f(v, &o.child(key)),
        None => Ok(default),
    }
}

fn u32_of(v: &Value, path: &str) -> Result<u32, DamoError> {
    value::to_u32(value::nr(v, path)?, path, v)
}

fn u32_permil(v: &Value, path: &str) -> Result<u32, DamoError> {
    value::to_u32(value::permil(v, path)?, path, v)
}

fn parse_context(v: &Value, path: &str) -> Result<ContextParams, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "ops",
            "addr_unit",
            "targets",
            "intervals",
            "nr_regions",
            "monitoring_attrs",
            "probes",
            "sample_control",
            "pause",
            "schemes",
        ],
    )?;
    let ops_v = o.req("ops")?;
    let ops = value::string(ops_v, &o.child("ops"))?;
    if ops.is_empty()
        || !ops
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(expected(
            &o.child("ops"),
            "an operations set id (vaddr, fvaddr, paddr, ...)",
            ops_v,
        ));
    }
    let addr_unit = opt_or(&o, "addr_unit", 1, value::bytes)?;
    if addr_unit == 0 {
        return Err(value::err(&o.child("addr_unit"), "must be non-zero"));
    }
    if let Some(p) = o.opt("probes") {
        if !array(p, &o.child("probes"))?.is_empty() {
            return Err(DamoError::Unsupported(format!(
                "{}: access probes are not supported",
                o.child("probes")
            )));
        }
    }
    if let Some(sc) = o.opt("sample_control") {
        check_sample_control(sc, &o.child("sample_control"))?;
    }
    let pause = opt_or(&o, "pause", false, boolean)?;

    // attributes: damo's keys, or the sysfs-shaped monitoring_attrs
    let mut attrs = damo_default_attrs();
    let (iv, nrr, attrs_prefix) = match o.opt("monitoring_attrs") {
        Some(ma) => {
            if o.opt("intervals").is_some() || o.opt("nr_regions").is_some() {
                return Err(value::err(
                    &o.child("monitoring_attrs"),
                    "give either monitoring_attrs or intervals/nr_regions, not both",
                ));
            }
            let mp = o.child("monitoring_attrs");
            let mo = Obj::new(ma, &mp, &["intervals", "nr_regions"])?;
            (mo.opt("intervals"), mo.opt("nr_regions"), mp)
        }
        None => (o.opt("intervals"), o.opt("nr_regions"), path.to_string()),
    };
    if let Some(iv) = iv {
        parse_intervals(iv, &join(&attrs_prefix, "intervals"), &mut attrs)?;
    }
    if let Some(nr) = nrr {
        let np = join(&attrs_prefix, "nr_regions");
        let no = Obj::new(nr, &np, &["min", "max"])?;
        attrs.min_nr_regions = u32_of(no.req("min")?, &no.child("min"))?;
        attrs.max_nr_regions = u32_of(no.req("max")?, &no.child("max"))?;
    }

    let tp = o.child("targets");
    let targets = match o.opt("targets") {
        Some(t) => array(t, &tp)?
            .iter()
            .enumerate()
            .map(|(i, t)| parse_target(t, &format!("{tp}[{i}]"), ops))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let sp = o.child("schemes");
    let schemes = match o.opt("schemes") {
        Some(s) => array(s, &sp)?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_scheme(s, &format!("{sp}[{i}]"), &attrs))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let params = ContextParams {
        ops: ops.to_string(),
        addr_unit,
        attrs,
        targets,
        schemes,
        pause,
    };
    // DAMON's own checks, with the field mapped back to its JSON path
    params
        .to_context()
        .validate()
        .map_err(|e| value::err(&json_path_of(path, &attrs_prefix, &e.field), e.reason))?;
    Ok(params)
}

/// Maps a [`crate::InvalidParam`] field of a context to its JSON path.
fn json_path_of(ctx_path: &str, attrs_prefix: &str, field: &str) -> String {
    const ATTRS: [(&str, &str); 5] = [
        ("attrs.sample_interval", "intervals.sample_us"),
        ("attrs.aggr_interval", "intervals.aggr_us"),
        ("attrs.ops_update_interval", "intervals.ops_update_us"),
        ("attrs.min_nr_regions", "nr_regions.min"),
        ("attrs.intervals_goal", "intervals.intervals_goal"),
    ];
    for (from, to) in ATTRS {
        if let Some(rest) = field.strip_prefix(from) {
            return format!("{}{rest}", join(attrs_prefix, to));
        }
    }
    let f = field
        .replace(".pattern.sz", ".access_pattern.sz_bytes")
        .replace(".pattern.", ".access_pattern.")
        .replace(".wmarks", ".watermarks");
    let f = match f.strip_suffix(".addr") {
        Some(p) if f.contains(".filters[") => format!("{p}.address_range"),
        _ => f,
    };
    join(ctx_path, &f)
}

fn check_sample_control(v: &Value, path: &str) -> Result<(), DamoError> {
    let o = Obj::new(v, path, &["primitives_enabled", "sample_filters"])?;
    if let Some(pe) = o.opt("primitives_enabled") {
        let pp = o.child("primitives_enabled");
        let po = Obj::new(pe, &pp, &["page_table", "page_fault"])?;
        let pt = opt_or(&po, "page_table", true, boolean)?;
        let pf = opt_or(&po, "page_fault", false, boolean)?;
        if !pt || pf {
            return Err(DamoError::Unsupported(format!(
                "{pp}: only page-table access checks (page_table true, page_fault false) are supported"
            )));
        }
    }
    if let Some(sf) = o.opt("sample_filters") {
        if !array(sf, &o.child("sample_filters"))?.is_empty() {
            return Err(DamoError::Unsupported(format!(
                "{}: sample filters are not supported",
                o.child("sample_filters")
            )));
        }
    }
    Ok(())
}

fn parse_intervals(v: &Value, path: &str, attrs: &mut Attrs) -> Result<(), DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "sample_us",
            "aggr_us",
            "ops_update_us",
            "update_us",
            "intervals_goal",
        ],
    )?;
    attrs.sample_interval = value::time_us(o.req("sample_us")?, &o.child("sample_us"))?;
    attrs.aggr_interval = value::time_us(o.req("aggr_us")?, &o.child("aggr_us"))?;
    let upd = match (o.opt("ops_update_us"), o.opt("update_us")) {
        (Some(_), Some(_)) => {
            return Err(value::err(
                &o.child("update_us"),
                "give either ops_update_us or update_us, not both",
            ))
        }
        (Some(u), None) => value::time_us(u, &o.child("ops_update_us"))?,
        (None, Some(u)) => value::time_us(u, &o.child("update_us"))?,
        (None, None) => return Err(value::err(&o.child("ops_update_us"), "missing (required)")),
    };
    attrs.ops_update_interval = upd;
    if let Some(g) = o.opt("intervals_goal") {
        let gp = o.child("intervals_goal");
        let go = Obj::new(
            g,
            &gp,
            &["access_bp", "aggrs", "min_sample_us", "max_sample_us"],
        )?;
        attrs.intervals_goal = IntervalsGoal {
            access_bp: value::bp(go.req("access_bp")?, &go.child("access_bp"))?,
            aggrs: value::nr(go.req("aggrs")?, &go.child("aggrs"))?,
            min_sample_us: value::time_us(go.req("min_sample_us")?, &go.child("min_sample_us"))?,
            max_sample_us: value::time_us(go.req("max_sample_us")?, &go.child("max_sample_us"))?,
        };
    }
    Ok(())
}

fn parse_range(v: &Value, path: &str) -> Result<AddrRange, DamoError> {
    let o = Obj::new(v, path, &["start", "end"])?;
    let start = value::bytes(o.req("start")?, &o.child("start"))?;
    let end = value::bytes(o.req("end")?, &o.child("end"))?;
    if start >= end {
        return Err(value::err(
            path,
            format!("empty or inverted range: start {start} >= end {end}"),
        ));
    }
    Ok(AddrRange::new(start, end))
}

fn parse_target(v: &Value, path: &str, ops: &str) -> Result<TargetParams, DamoError> {
    let o = Obj::new(v, path, &["pid", "obsolete", "regions"])?;
    let pid = match o.opt("pid") {
        Some(p) => Some(value::nr(p, &o.child("pid"))?),
        None => None,
    };
    if pid.is_none() && (ops == "vaddr" || ops == "fvaddr") {
        return Err(value::err(
            &o.child("pid"),
            format!("missing (a {ops} target needs a process id)"),
        ));
    }
    let obsolete = opt_or(&o, "obsolete", false, boolean)?;
    let rp = o.child("regions");
    let mut regions = Vec::new();
    if let Some(rs) = o.opt("regions") {
        for (i, r) in array(rs, &rp)?.iter().enumerate() {
            let p = format!("{rp}[{i}]");
            let r = parse_range(r, &p)?;
            if let Some(prev) = regions.last() {
                let prev: &AddrRange = prev;
                if prev.end > r.start {
                    return Err(value::err(
                        &p,
                        format!("region {r} overlaps or precedes {prev}"),
                    ));
                }
            }
            regions.push(r);
        }
    }
    Ok(TargetParams {
        pid,
        regions,
        obsolete,
    })
}

/// A bound of an access pattern's `nr_accesses`: a percentage (number,
/// `"x %"`, `min`, `max`) or `"N samples"`; converted to samples.
fn nr_accesses_bound(v: &Value, path: &str, attrs: &Attrs) -> Result<u32, DamoError> {
    if let Some(s) = v.as_str() {
        if let Some(n) = s.trim().strip_suffix("samples") {
            let nv = Value::String(n.trim().to_string());
            let x = value::nr(&nv, path).map_err(|_| {
                expected(path, "a percentage (e.g. \"10 %\") or \"<N> samples\"", v)
            })?;
            return value::to_u32(x, path, v);
        }
    }
    let pc = value::ratio(v, path, 100, "percent")
        .map_err(|_| expected(path, "a percentage (e.g. \"10 %\") or \"<N> samples\"", v))?;
    // damo: int(percent * (aggr / sample) / 100)
    let max = attrs.aggr_interval as f64 / attrs.sample_interval.max(1) as f64;
    let samples = pc.to_f64() * max / 100.0;
    Ok(if samples >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        samples as u32
    })
}

/// A bound of an access pattern's `age`: a time (number = µs, time string,
/// `min`, `max`) or `"N aggr_intervals"`; converted to aggregation intervals.
fn age_bound(v: &Value, path: &str, attrs: &Attrs) -> Result<u32, DamoError> {
    if let Some(s) = v.as_str() {
        if let Some(n) = s.trim().strip_suffix("aggr_intervals") {
            let nv = Value::String(n.trim().to_string());
            let x = value::nr(&nv, path).map_err(|_| {
                expected(path, "a time (e.g. \"5 s\") or \"<N> aggr_intervals\"", v)
            })?;
            return value::to_u32(x, path, v);
        }
    }
    let us = value::time_us(v, path)
        .map_err(|_| expected(path, "a time (e.g. \"5 s\") or \"<N> aggr_intervals\"", v))?;
    // damo: int(usec / aggr)
    let aggrs = us as f64 / attrs.aggr_interval.max(1) as f64;
    Ok(if aggrs >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        aggrs as u32
    })
}

fn min_max<'a>(o: &Obj<'a>, key: &str) -> Result<(Obj<'a>, &'a Value, &'a Value), DamoError> {
    let p = o.child(key);
    let mo = Obj::new(o.req(key)?, &p, &["min", "max"])?;
    let (mn, mx) = (mo.req("min")?, mo.req("max")?);
    Ok((mo, mn, mx))
}

fn parse_pattern(v: &Value, path: &str, attrs: &Attrs) -> Result<AccessPattern, DamoError> {
    let o = Obj::new(v, path, &["sz_bytes", "nr_accesses", "age"])?;
    let mut p = AccessPattern::default();
    if o.opt("sz_bytes").is_some() {
        let (mo, mn, mx) = min_max(&o, "sz_bytes")?;
        p.min_sz_region = value::bytes(mn, &mo.child("min"))?;
        p.max_sz_region = value::bytes(mx, &mo.child("max"))?;
    }
    if o.opt("nr_accesses").is_some() {
        let (mo, mn, mx) = min_max(&o, "nr_accesses")?;
        p.min_nr_accesses = nr_accesses_bound(mn, &mo.child("min"), attrs)?;
        p.max_nr_accesses = nr_accesses_bound(mx, &mo.child("max"), attrs)?;
    }
    if o.opt("age").is_some() {
        let (mo, mn, mx) = min_max(&o, "age")?;
        p.min_age_region = age_bound(mn, &mo.child("min"), attrs)?;
        p.max_age_region = age_bound(mx, &mo.child("max"), attrs)?;
    }
    Ok(p)
}

fn metric_of(name: &str) -> Option<GoalMetric> {
    Some(match name {
        "user_input" => GoalMetric::UserInput,
        "some_mem_psi_us" => GoalMetric::SomeMemPsiUs,
        "node_mem_used_bp" => GoalMetric::NodeMemUsedBp,
        "node_mem_free_bp" => GoalMetric::NodeMemFreeBp,
        "active_mem_bp" => GoalMetric::ActiveMemBp,
        "inactive_mem_bp" => GoalMetric::InactiveMemBp,
        _ => return None,
    })
}

fn metric_name(m: GoalMetric) -> &'static str {
    match m {
        GoalMetric::UserInput => "user_input",
        GoalMetric::SomeMemPsiUs => "some_mem_psi_us",
        GoalMetric::NodeMemUsedBp => "node_mem_used_bp",
        GoalMetric::NodeMemFreeBp => "node_mem_free_bp",
        GoalMetric::ActiveMemBp => "active_mem_bp",
        GoalMetric::InactiveMemBp => "inactive_mem_bp",
    }
}

fn parse_goal(v: &Value, path: &str) -> Result<QuotaGoal, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "metric",
            "complement",
            "nid",
            "memcg_path",
            "target_value",
            "current_value",
            "target_value_bp",
            "current_value_bp",
        ],
    )?;
    if o.opt("target_value_bp").is_some() {
        // damo's old spelling: a user_input goal
        for k in ["metric", "target_value", "current_value"] {
            if o.opt(k).is_some() {
                return Err(value::err(
                    &o.child(k),
                    "not allowed with the old target_value_bp spelling",
                ));
            }
        }
        return Ok(QuotaGoal {
            metric: GoalMetric::UserInput,
            target_value: value::nr(o.req("target_value_bp")?, &o.child("target_value_bp"))?,
            current_value: opt_or(&o, "current_value_bp", 0, value::nr)?,
            nid: 0,
        });
    }
    let mp = o.child("metric");
    let mv = o.req("metric")?;
    let m = value::string(mv, &mp)?;
    let metric = metric_of(m).ok_or_else(|| match m {
        "node_memcg_used_bp" | "node_memcg_free_bp" | "node_eligible_mem_bp" => {
            DamoError::Unsupported(format!("{mp}: quota goal metric {m:?} is not supported"))
        }
        _ => expected(
            &mp,
            "a goal metric (user_input, some_mem_psi_us, node_mem_used_bp, node_mem_free_bp, active_mem_bp, inactive_mem_bp)",
            mv,
        ),
    })?;
    if opt_or(&o, "complement", false, boolean)? {
        return Err(DamoError::Unsupported(format!(
            "{}: complement goals are not supported",
            o.child("complement")
        )));
    }
    if o.opt("memcg_path").is_some() {
        return Err(DamoError::Unsupported(format!(
            "{}: memcg goals are not supported",
            o.child("memcg_path")
        )));
    }
    let tp = o.child("target_value");
    let tv = o.req("target_value")?;
    let target_value = match metric {
        GoalMetric::SomeMemPsiUs => value::time_us(tv, &tp)?,
        GoalMetric::UserInput => value::nr(tv, &tp)?,
        _ => value::bp(tv, &tp)?,
    };
    Ok(QuotaGoal {
        metric,
        target_value,
        current_value: opt_or(&o, "current_value", 0, value::nr)?,
        nid: opt_or(&o, "nid", 0, value::int_i32)?,
    })
}

fn parse_quotas(v: &Value, path: &str) -> Result<Quota, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "time_ms",
            "sz_bytes",
            "reset_interval_ms",
            "fail_charge_num",
            "fail_charge_denom",
            "goals",
            "goal_tuner",
            "effective_sz_bytes",
            "weights",
        ],
    )?;
    let mut q = damo_default_quota();
    q.ms = opt_or(&o, "time_ms", 0, value::time_ms)?;
    q.sz = opt_or(&o, "sz_bytes", 0, value::bytes)?;
    q.reset_interval = opt_or(&o, "reset_interval_ms", u64::MAX, value::time_ms)?;
    for k in ["fail_charge_num", "fail_charge_denom"] {
        if opt_or(&o, k, 0, value::nr)? != 0 {
            return Err(DamoError::Unsupported(format!(
                "{}: fail charge ratios are not supported",
                o.child(k)
            )));
        }
    }
    if let Some(g) = o.opt("goals") {
        let gp = o.child("goals");
        q.goals = array(g, &gp)?
            .iter()
            .enumerate()
            .map(|(i, g)| parse_goal(g, &format!("{gp}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
    }
    if let Some(t) = o.opt("goal_tuner") {
        let tp = o.child("goal_tuner");
        q.goal_tuner = match value::string(t, &tp)? {
            "consist" => GoalTuner::Consist,
            "temporal" => GoalTuner::Temporal,
            _ => return Err(expected(&tp, "\"consist\" or \"temporal\"", t)),
        };
    }
    if let Some(e) = o.opt("effective_sz_bytes") {
        value::bytes(e, &o.child("effective_sz_bytes"))?; // output only
    }
    if let Some(w) = o.opt("weights") {
        let wp = o.child("weights");
        let wo = Obj::new(w, &wp, &["sz_permil", "nr_accesses_permil", "age_permil"])?;
        q.weight_sz = opt_or(&wo, "sz_permil", 0, u32_permil)?;
        q.weight_nr_accesses = opt_or(&wo, "nr_accesses_permil", 0, u32_permil)?;
        q.weight_age = opt_or(&wo, "age_permil", 0, u32_permil)?;
    }
    Ok(q)
}

/// damo's default quota (`DamosQuotas()`): no limit, reset interval `max`.
fn damo_default_quota() -> Quota {
    Quota {
        reset_interval: u64::MAX,
        ..Quota::default()
    }
}

fn parse_watermarks(v: &Value, path: &str) -> Result<Watermarks, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "metric",
            "interval_us",
            "high_permil",
            "mid_permil",
            "low_permil",
        ],
    )?;
    let metric = match o.opt("metric") {
        None => WmarkMetric::None,
        Some(m) => {
            let mp = o.child("metric");
            match value::string(m, &mp)? {
                "none" => WmarkMetric::None,
                "free_mem_rate" => WmarkMetric::FreeMemRate,
                _ => return Err(expected(&mp, "\"none\" or \"free_mem_rate\"", m)),
            }
        }
    };
    Ok(Watermarks {
        metric,
        interval: opt_or(&o, "interval_us", 0, value::time_us)?,
        high: opt_or(&o, "high_permil", 0, value::permil)?,
        mid: opt_or(&o, "mid_permil", 0, value::permil)?,
        low: opt_or(&o, "low_permil", 0, value::permil)?,
    })
}

fn parse_filter(v: &Value, path: &str) -> Result<Filter, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "filter_type",
            "matching",
            "allow",
            "filter_pass",
            "memcg_path",
            "address_range",
            "damon_target_idx",
            "hugepage_size",
            "probe_hits_wsum_range",
        ],
    )?;
    let tp = o.child("filter_type");
    let tv = o.req("filter_type")?;
    let ty = value::string(tv, &tp)?;
    let matching = boolean(o.req("matching")?, &o.child("matching"))?;
    let allow = match (o.opt("allow"), o.opt("filter_pass")) {
        (Some(_), Some(_)) => {
            return Err(value::err(
                &o.child("filter_pass"),
                "give either allow or its old name filter_pass, not both",
            ))
        }
        (Some(a), None) => boolean(a, &o.child("allow"))?,
        (None, Some(a)) => boolean(a, &o.child("filter_pass"))?,
        (None, None) => false,
    };
    // argument keys must be unset unless the type uses them
    let uses: &[&str] = match ty {
        "memcg" => &["memcg_path"],
        "addr" => &["address_range"],
        "target" => &["damon_target_idx"],
        "hugepage_size" => &["hugepage_size"],
        _ => &[],
    };
    for k in [
        "memcg_path",
        "address_range",
        "damon_target_idx",
        "hugepage_size",
        "probe_hits_wsum_range",
    ] {
        // damo writes "" for the memcg path of non-memcg filters
        let unset = match o.opt(k) {
            None => true,
            Some(Value::String(s)) if k == "memcg_path" => s.is_empty(),
            Some(_) => false,
        };
        if !uses.contains(&k) && !unset {
            return Err(value::err(
                &o.child(k),
                format!("not used by a {ty:?} filter (must be null)"),
            ));
        }
    }
    let kind = match ty {
        "anon" => FilterKind::Anon,
        "active" => FilterKind::Active,
        "young" => FilterKind::Young,
        "unmapped" => FilterKind::Unmapped,
        "memcg" => {
            return Err(DamoError::Unsupported(format!(
                "{}: memcg filters name a cgroup path, which this crate cannot resolve (its memcg filter takes a cgroup id)",
                o.child("memcg_path")
            )))
        }
        "addr" => FilterKind::Addr(parse_range(
            o.req("address_range")?,
            &o.child("address_range"),
        )?),
        "target" => FilterKind::Target {
            target_idx: usize::try_from(value::nr(
                o.req("damon_target_idx")?,
                &o.child("damon_target_idx"),
            )?)
            .map_err(|_| value::err(&o.child("damon_target_idx"), "out of range"))?,
        },
        "hugepage_size" => {
            let hp = o.child("hugepage_size");
            let hv = o.req("hugepage_size")?;
            let arr = array(hv, &hp)?;
            if arr.len() != 2 {
                return Err(expected(&hp, "[min, max]", hv));
            }
            let min = value::bytes(&arr[0], &format!("{hp}[0]"))?;
            let max = value::bytes(&arr[1], &format!("{hp}[1]"))?;
            if min > max {
                return Err(value::err(&hp, format!("min {min} > max {max}")));
            }
            FilterKind::HugepageSize { min, max }
        }
        "probe_hits_wsum" => {
            return Err(DamoError::Unsupported(format!(
                "{tp}: probe_hits_wsum filters are not supported"
            )))
        }
        _ => {
            return Err(expected(
                &tp,
                "a filter type (anon, active, memcg, young, hugepage_size, unmapped, addr, target)",
                tv,
            ))
        }
    };
    Ok(Filter {
        kind,
        matching,
        allow,
    })
}

fn parse_stats(v: &Value, path: &str, s: &mut Scheme) -> Result<(), DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "nr_tried",
            "sz_tried",
            "nr_applied",
            "sz_applied",
            "sz_ops_filter_passed",
            "qt_exceeds",
            "nr_snapshots",
            "max_nr_snapshots",
        ],
    )?;
    s.stat = Stat {
        nr_tried: opt_or(&o, "nr_tried", 0, value::nr)?,
        sz_tried: opt_or(&o, "sz_tried", 0, value::bytes)?,
        nr_applied: opt_or(&o, "nr_applied", 0, value::nr)?,
        sz_applied: opt_or(&o, "sz_applied", 0, value::bytes)?,
        sz_ops_filter_passed: opt_or(&o, "sz_ops_filter_passed", 0, value::bytes)?,
        qt_exceeds: opt_or(&o, "qt_exceeds", 0, value::nr)?,
        nr_snapshots: opt_or(&o, "nr_snapshots", 0, value::nr)?,
    };
    s.max_nr_snapshots = opt_or(&o, "max_nr_snapshots", 0, value::nr)?;
    Ok(())
}

fn parse_scheme(v: &Value, path: &str, attrs: &Attrs) -> Result<Scheme, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "action",
            "dests",
            "target_nid",
            "access_pattern",
            "apply_interval_us",
            "quotas",
            "watermarks",
            "filters",
            "stats",
        ],
    )?;
    let action = match o.opt("action") {
        None => Action::Stat,
        Some(a) => {
            let ap = o.child("action");
            let name = value::string(a, &ap)?;
            Action::from_name(name).ok_or_else(|| {
                let all: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                expected(&ap, &format!("an action ({})", all.join(", ")), a)
            })?
        }
    };
    let pattern = match o.opt("access_pattern") {
        Some(p) => parse_pattern(p, &o.child("access_pattern"), attrs)?,
        None => AccessPattern::default(),
    };
    let mut s = Scheme::new(pattern, action);
    s.quota = damo_default_quota();
    if let Some(d) = o.opt("dests") {
        if !array(d, &o.child("dests"))?.is_empty() {
            return Err(DamoError::Unsupported(format!(
                "{}: migration destinations are not supported (use target_nid)",
                o.child("dests")
            )));
        }
    }
    s.target_nid = opt_or(&o, "target_nid", -1, value::int_i32)?;
    s.apply_interval_us = opt_or(&o, "apply_interval_us", 0, value::time_us)?;
    if let Some(q) = o.opt("quotas") {
        s.quota = parse_quotas(q, &o.child("quotas"))?;
    }
    if let Some(w) = o.opt("watermarks") {
        s.wmarks = parse_watermarks(w, &o.child("watermarks"))?;
    }
    if let Some(f) = o.opt("filters") {
        let fp = o.child("filters");
        s.filters = array(f, &fp)?
            .iter()
            .enumerate()
            .map(|(i, f)| parse_filter(f, &format!("{fp}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
    }
    if let Some(st) = o.opt("stats") {
        parse_stats(st, &o.child("stats"), &mut s)?;
    }
    Ok(s)
}

// ------------------------------------------------------------------ save

fn range_json(r: &AddrRange) -> Value {
    json!({"start": r.start, "end": r.end})
}

fn scheme_json(s: &Scheme, path: &str) -> Result<Value, DamoError> {
    let p = &s.pattern;
    let filters = s
        .filters
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let (addr, tidx, hp) = match f.kind {
                FilterKind::Addr(r) => (range_json(&r), Value::Null, Value::Null),
                FilterKind::Target { target_idx } => (Value::Null, json!(target_idx), Value::Null),
                FilterKind::HugepageSize { min, max } => (Value::Null, Value::Null, json!([min, max])),
                FilterKind::Memcg { memcg_id } => {
                    return Err(DamoError::Unsupported(format!(
                        "{path}.filters[{j}]: memcg filter {memcg_id}: damo names cgroups by path, not id"
                    )))
                }
                _ => (Value::Null, Value::Null, Value::Null),
            };
            Ok(json!({
                "filter_type": f.kind.name(),
                "matching": f.matching,
                "allow": f.allow,
                "memcg_path": null,
                "address_range": addr,
                "damon_target_idx": tidx,
                "hugepage_size": hp,
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let goals: Vec<Value> = s
        .quota
        .goals
        .iter()
        .map(|g| {
            json!({
                "metric": metric_name(g.metric),
                "complement": false,
                "nid": g.nid,
                "memcg_path": null,
                "target_value": g.target_value,
                "current_value": g.current_value,
            })
        })
        .collect();
    let q = &s.quota;
    let w = &s.wmarks;
    let st = &s.stat;
    Ok(json!({
        "action": s.action.name(),
        "dests": [],
        "target_nid": if s.target_nid == -1 { Value::Null } else { json!(s.target_nid) },
        "access_pattern": {
            "sz_bytes": {"min": p.min_sz_region, "max": p.max_sz_region},
            "nr_accesses": {
                "min": format!("{} samples", p.min_nr_accesses),
                "max": format!("{} samples", p.max_nr_accesses),
            },
            "age": {
                "min": format!("{} aggr_intervals", p.min_age_region),
                "max": format!("{} aggr_intervals", p.max_age_region),
            },
        },
        "apply_interval_us": s.apply_interval_us,
        "quotas": {
            "time_ms": q.ms,
            "sz_bytes": q.sz,
            "reset_interval_ms": q.reset_interval,
            "goals": goals,
            "goal_tuner": match q.goal_tuner { GoalTuner::Consist => "consist", GoalTuner::Temporal => "temporal" },
            "weights": {
                "sz_permil": q.weight_sz,
                "nr_accesses_permil": q.weight_nr_accesses,
                "age_permil": q.weight_age,
            },
        },
        "watermarks": {
            "metric": match w.metric { WmarkMetric::None => "none", WmarkMetric::FreeMemRate => "free_mem_rate" },
            "interval_us": w.interval,
            "high_permil": w.high,
            "mid_permil": w.mid,
            "low_permil": w.low,
        },
        "filters": filters,
        "stats": {
            "nr_tried": st.nr_tried,
            "sz_tried": st.sz_tried,
            "nr_applied": st.nr_applied,
            "sz_applied": st.sz_applied,
            "sz_ops_filter_passed": st.sz_ops_filter_passed,
            "qt_exceeds": st.qt_exceeds,
            "nr_snapshots": st.nr_snapshots,
            "max_nr_snapshots": s.max_nr_snapshots,
        },
    }))
}

fn context_json(c: &ContextParams, path: &str) -> Result<Value, DamoError> {
    let a = &c.attrs;
    let g = &a.intervals_goal;
    let targets: Vec<Value> = c
        .targets
        .iter()
        .map(|t| {
            json!({
                "pid": t.pid,
                "obsolete": t.obsolete,
                "regions": t.regions.iter().map(range_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let schemes = c
        .schemes
        .iter()
        .enumerate()
        .map(|(i, s)| scheme_json(s, &format!("{path}.schemes[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "ops": c.ops,
        "addr_unit": c.addr_unit,
        "targets": targets,
        "intervals": {
            "sample_us": a.sample_interval,
            "aggr_us": a.aggr_interval,
            "ops_update_us": a.ops_update_interval,
            "intervals_goal": {
                "access_bp": g.access_bp,
                "aggrs": g.aggrs,
                "min_sample_us": g.min_sample_us,
                "max_sample_us": g.max_sample_us,
            },
        },
        "nr_regions": {"min": a.min_nr_regions, "max": a.max_nr_regions},
        "pause": c.pause,
        "schemes": schemes,
    }))
}

/// Writes `cfg` as damo's kdamonds JSON (plain numbers; access pattern
/// bounds as `"N samples"` and `"N aggr_intervals"`), which
/// [`parse_kdamonds`] and damo both read back. Fails only for parameters
/// damo's format cannot express (memcg filters by id).
pub fn save_kdamonds(cfg: &KdamondsConfig) -> Result<String, DamoError> {
    let kds = cfg
        .kdamonds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let ctxs = k
                .contexts
                .iter()
                .enumerate()
                .map(|(j, c)| context_json(c, &format!("kdamonds[{i}].contexts[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"refresh_ms": k.refresh_ms, "contexts": ctxs}))
        })
        .collect::<Result<Vec<_>, DamoError>>()?;
    serde_json::to_string_pretty(&json!({ "kdamonds": kds }))
        .map_err(|e| DamoError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap_ctx(ctx: &str) -> String {
        format!(r#"{{"kdamonds": [{{"contexts": [{ctx}]}}]}}"#)
    }

    fn wrap_scheme(scheme: &str) -> String {
        wrap_ctx(&format!(
            r#"{{"ops": "paddr", "targets": [{{"pid": null, "regions": [{{"start": 4096, "end": "1 GiB"}}]}}], "schemes": [{{"action": "stat"}}, {scheme}]}}"#
        ))
    }

    fn err_of(text: &str) -> String {
        parse_kdamonds(text).unwrap_err().to_string()
    }

    /// The output of `damo args damon paddr --damos_action stat
    /// --damos_access_rate 0% 0% --damos_sz_region 4K max --damos_age 5s
    /// max --damos_quotas 10ms 1G 1s 0 3 7` (damo 3.4.3), trimmed of the
    /// region end the host decides.
    const DAMO_ARGS_OUTPUT: &str = r#"{
    "kdamonds": [{
        "refresh_ms": 0,
        "contexts": [{
            "ops": "paddr",
            "addr_unit": "1 B",
            "targets": [{"pid": null, "obsolete": false,
                         "regions": [{"start": "4,096", "end": "26,843,545,600"}]}],
            "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s",
                          "intervals_goal": {"access_bp": "0 %", "aggrs": "0",
                                             "min_sample_us": "0 ns", "max_sample_us": "0 ns"}},
            "nr_regions": {"min": "10", "max": "1,000"},
            "probes": [],
            "sample_control": {"primitives_enabled": {"page_table": true, "page_fault": false},
                               "sample_filters": []},
            "pause": false,
            "schemes": [{
                "action": "stat",
                "dests": [],
                "access_pattern": {"sz_bytes": {"min": "4.000 KiB", "max": "max"},
                                   "nr_accesses": {"min": "0 %", "max": "0 %"},
                                   "age": {"min": "5 s", "max": "max"}},
                "apply_interval_us": "0 ns",
                "quotas": {"time_ms": "10 ms", "sz_bytes": "1024.000 MiB",
                           "reset_interval_ms": "1 s", "fail_charge_num": "0",
                           "fail_charge_denom": "0", "goals": [], "goal_tuner": "consist",
                           "effective_sz_bytes": "0 B",
                           "weights": {"sz_permil": "0 %", "nr_accesses_permil": "0.3 %",
                                       "age_permil": "0.7 %"}},
                "watermarks": {"metric": "none", "interval_us": "0 ns", "high_permil": "0 %",
                               "mid_permil": "0 %", "low_permil": "0 %"},
                "filters": []
            }]
        }]
    }]
}"#;

    #[test]
    fn reads_damo_args_output() {
        let cfg = parse_kdamonds(DAMO_ARGS_OUTPUT).unwrap();
        let c = &cfg.kdamonds[0].contexts[0];
        assert_eq!(c.ops, "paddr");
        assert_eq!(c.attrs, damo_default_attrs());
        assert_eq!(c.targets[0].pid, None);
        assert_eq!(
            c.targets[0].regions,
            vec![AddrRange::new(4096, 26_843_545_600)]
        );
        let s = &c.schemes[0];
        assert_eq!(s.action, Action::Stat);
        assert_eq!(s.pattern.min_sz_region, 4096);
        assert_eq!(s.pattern.max_sz_region, u64::MAX);
        assert_eq!(
            (s.pattern.min_nr_accesses, s.pattern.max_nr_accesses),
            (0, 0)
        );
        // 5 s / 100 ms = 50 aggregations; max saturates
        assert_eq!(
            (s.pattern.min_age_region, s.pattern.max_age_region),
            (50, u32::MAX)
        );
        assert_eq!(
            (s.quota.ms, s.quota.sz, s.quota.reset_interval),
            (10, 1 << 30, 1000)
        );
        assert_eq!(
            (
                s.quota.weight_sz,
                s.quota.weight_nr_accesses,
                s.quota.weight_age
            ),
            (0, 3, 7)
        );
        assert_eq!(s.wmarks, Watermarks::default());
        let ctx = c.to_context();
        assert_eq!(ctx.targets[0].regions.len(), 1);
        ctx.validate().unwrap();
    }

    #[test]
    fn percent_and_time_patterns_convert_like_damo() {
        // 20 samples per aggregation: 10 % -> 2 samples, 33 % -> int(6.6) = 6
        let t = wrap_scheme(
            r#"{"access_pattern": {"nr_accesses": {"min": "10 %", "max": 33}, "age": {"min": 250000, "max": "2 aggr_intervals"}}}"#,
        );
        let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
        let p = &c.schemes[1].pattern;
        assert_eq!((p.min_nr_accesses, p.max_nr_accesses), (2, 6));
        // 250 ms / 100 ms = int(2.5) = 2
        assert_eq!((p.min_age_region, p.max_age_region), (2, 2));
        let t = wrap_scheme(
            r#"{"access_pattern": {"nr_accesses": {"min": "3 samples", "max": "max"}}}"#,
        );
        let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
        assert_eq!(c.schemes[1].pattern.min_nr_accesses, 3);
        assert_eq!(c.schemes[1].pattern.max_nr_accesses, u32::MAX);
    }

    #[test]
    fn errors_name_their_path() {
        let e = err_of(&wrap_scheme(r#"{"quotas": {"time_ms": "ten"}}"#));
        assert_eq!(
            e,
            "kdamonds[0].contexts[0].schemes[1].quotas.time_ms: expected a non-negative integer or a time string (e.g. \"5 ms\"), got \"ten\""
        );
        let e = err_of(&wrap_scheme(r#"{"quota": {}}"#));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].schemes[1].quota: unknown key"),
            "{e}"
        );
        let e = err_of(&wrap_scheme(r#"{"action": "explode"}"#));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].schemes[1].action: expected an action"),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"access_pattern": {"sz_bytes": {"min": "4 KX", "max": "max"}}}"#,
        ));
        assert!(
            e.starts_with(
                "kdamonds[0].contexts[0].schemes[1].access_pattern.sz_bytes.min: expected"
            ),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"access_pattern": {"sz_bytes": {"min": "8K", "max": "4K"}}}"#,
        ));
        assert!(
            e.starts_with(
                "kdamonds[0].contexts[0].schemes[1].access_pattern.sz_bytes: min 8192 > max 4096"
            ),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"watermarks": {"metric": "free_mem_rate", "high_permil": 100, "mid_permil": 200, "low_permil": 50}}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].schemes[1].watermarks: need high >= mid >= low"),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"filters": [{"filter_type": "anon", "matching": "maybe"}]}"#,
        ));
        assert!(
            e.starts_with(
                "kdamonds[0].contexts[0].schemes[1].filters[0].matching: expected a boolean"
            ),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"filters": [{"filter_type": "anon", "matching": true, "address_range": {"start": 0, "end": 1}}]}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].schemes[1].filters[0].address_range: not used"),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"quotas": {"weights": {"sz_permil": [1]}}}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].schemes[1].quotas.weights.sz_permil: expected"),
            "{e}"
        );
        let e = err_of(&wrap_scheme(
            r#"{"access_pattern": {"nr_accesses": {"min": "5 sample", "max": 0}}}"#,
        ));
        assert!(
            e.contains("access_pattern.nr_accesses.min: expected a percentage"),
            "{e}"
        );
    }

    #[test]
    fn attribute_errors_name_their_path() {
        let ctx = |iv: &str| {
            err_of(&wrap_ctx(&format!(
                r#"{{"ops": "vaddr", "intervals": {iv}}}"#
            )))
        };
        let e = ctx(r#"{"sample_us": 0, "aggr_us": 100, "ops_update_us": 1}"#);
        assert!(
            e.starts_with("kdamonds[0].contexts[0].intervals.sample_us: must be at least 1"),
            "{e}"
        );
        let e = ctx(r#"{"sample_us": "10 ms", "aggr_us": "5 ms", "ops_update_us": 1}"#);
        assert!(
            e.starts_with("kdamonds[0].contexts[0].intervals.aggr_us:"),
            "{e}"
        );
        let e = ctx(r#"{"sample_us": "5 ms", "aggr_us": "100 ms"}"#);
        assert_eq!(
            e,
            "kdamonds[0].contexts[0].intervals.ops_update_us: missing (required)"
        );
        let e = err_of(&wrap_ctx(
            r#"{"ops": "paddr", "nr_regions": {"min": 100, "max": 10}}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].nr_regions.min: 100 exceeds"),
            "{e}"
        );
        let e = err_of(&wrap_ctx(
            r#"{"ops": "paddr", "nr_regions": {"min": "1e20", "max": 10}}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].nr_regions.min: "),
            "{e}"
        );
        let e = err_of(&wrap_ctx(
            r#"{"ops": "vaddr", "targets": [{"regions": []}]}"#,
        ));
        assert_eq!(
            e,
            "kdamonds[0].contexts[0].targets[0].pid: missing (a vaddr target needs a process id)"
        );
        let e = err_of(&wrap_ctx(
            r#"{"ops": "fvaddr", "targets": [{"pid": 1, "regions": [{"start": 0, "end": 8192}, {"start": 4096, "end": 9000}]}]}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].targets[0].regions[1]: region"),
            "{e}"
        );
        let e = err_of(&wrap_ctx(r#"{"ops": "Paddr!"}"#));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].ops: expected an operations set id"),
            "{e}"
        );
        let e = err_of(r#"{"kdamonds": [{"contexts": [{"ops": "paddr"}], "extra": 1}]}"#);
        assert!(e.starts_with("kdamonds[0].extra: unknown key"), "{e}");
        let e = err_of("{\"kdamonds\": [");
        assert!(e.starts_with("syntax error"), "{e}");
        let e = err_of(r#"[1, 2]"#);
        assert!(
            e.starts_with("(top level): expected an object, got [1,2]"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_features_are_refused() {
        let e = err_of(&wrap_scheme(
            r#"{"filters": [{"filter_type": "memcg", "matching": true, "memcg_path": "/a"}]}"#,
        ));
        assert!(e.contains("filters[0].memcg_path: memcg filters"), "{e}");
        let e = err_of(&wrap_scheme(r#"{"dests": [{"id": 0, "weight": 1}]}"#));
        assert!(e.contains("schemes[1].dests"), "{e}");
        let e = err_of(&wrap_ctx(r#"{"ops": "paddr", "probes": [{}]}"#));
        assert!(e.contains("contexts[0].probes"), "{e}");
        let e = err_of(&wrap_scheme(
            r#"{"quotas": {"goals": [{"metric": "node_memcg_used_bp", "target_value": 1, "current_value": 0}]}}"#,
        ));
        assert!(e.contains("goals[0].metric"), "{e}");
    }

    #[test]
    fn sysfs_spelling_of_attributes() {
        let t = wrap_ctx(
            r#"{"ops": "vaddr", "targets": [{"pid": 42}], "monitoring_attrs": {"intervals": {"sample_us": 1000, "aggr_us": 20000, "update_us": 500000}, "nr_regions": {"min": 5, "max": 50}}}"#,
        );
        let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
        assert_eq!(
            (
                c.attrs.sample_interval,
                c.attrs.aggr_interval,
                c.attrs.ops_update_interval
            ),
            (1000, 20000, 500_000)
        );
        assert_eq!((c.attrs.min_nr_regions, c.attrs.max_nr_regions), (5, 50));
        let e = err_of(&wrap_ctx(
            r#"{"ops": "vaddr", "monitoring_attrs": {"intervals": {"sample_us": 0, "aggr_us": 20000, "update_us": 1}}}"#,
        ));
        assert!(
            e.starts_with("kdamonds[0].contexts[0].monitoring_attrs.intervals.sample_us:"),
            "{e}"
        );
    }

    fn rich() -> KdamondsConfig {
        let mut c = ContextParams::new("vaddr");
        c.attrs.intervals_goal = IntervalsGoal {
            access_bp: 400,
            aggrs: 3,
            min_sample_us: 1000,
            max_sample_us: 10_000_000,
        };
        c.addr_unit = 1;
        c.pause = true;
        c.targets.push(TargetParams {
            pid: Some(1234),
            regions: vec![AddrRange::new(0, 4096), AddrRange::new(8192, 1 << 30)],
            obsolete: false,
        });
        c.targets.push(TargetParams {
            pid: Some(99),
            regions: vec![],
            obsolete: true,
        });
        let mut s = Scheme::new(
            AccessPattern {
                min_sz_region: 4096,
                max_sz_region: u64::MAX,
                min_nr_accesses: 0,
                max_nr_accesses: 3,
                min_age_region: 7,
                max_age_region: u32::MAX,
            },
            Action::MigrateCold,
        );
        s.target_nid = 1;
        s.apply_interval_us = 1_000_000;
        s.quota = Quota {
            reset_interval: 1000,
            ms: 10,
            sz: 128 << 20,
            goals: vec![
                QuotaGoal {
                    metric: GoalMetric::SomeMemPsiUs,
                    target_value: 1000,
                    current_value: 5,
                    nid: 0,
                },
                QuotaGoal {
                    metric: GoalMetric::NodeMemFreeBp,
                    target_value: 2500,
                    current_value: 0,
                    nid: 1,
                },
            ],
            goal_tuner: GoalTuner::Temporal,
            weight_sz: 1,
            weight_nr_accesses: 3,
            weight_age: 7,
        };
        s.wmarks = Watermarks {
            metric: WmarkMetric::FreeMemRate,
            interval: 5_000_000,
            high: 500,
            mid: 400,
            low: 50,
        };
        s.filters = vec![
            Filter {
                kind: FilterKind::Anon,
                matching: true,
                allow: false,
            },
            Filter {
                kind: FilterKind::Addr(AddrRange::new(0, 1 << 20)),
                matching: false,
                allow: true,
            },
            Filter {
                kind: FilterKind::Target { target_idx: 1 },
                matching: true,
                allow: true,
            },
            Filter {
                kind: FilterKind::HugepageSize {
                    min: 2 << 20,
                    max: 2 << 20,
                },
                matching: true,
                allow: false,
            },
            Filter {
                kind: FilterKind::Young,
                matching: true,
                allow: false,
            },
        ];
        s.max_nr_snapshots = 10;
        s.stat.nr_tried = 5;
        s.stat.sz_applied = 4096;
        c.schemes.push(s);
        c.schemes
            .push(Scheme::new(AccessPattern::default(), Action::Pageout));
        let mut p = ContextParams::new("paddr");
        p.targets.push(TargetParams {
            pid: None,
            regions: vec![AddrRange::new(4096, 1 << 34)],
            obsolete: false,
        });
        KdamondsConfig {
            kdamonds: vec![
                KdamondParams {
                    refresh_ms: 1000,
                    contexts: vec![c],
                },
                KdamondParams {
                    refresh_ms: 0,
                    contexts: vec![p],
                },
            ],
        }
    }

    #[test]
    fn save_round_trips() {
        let cfg = rich();
        let text = save_kdamonds(&cfg).unwrap();
        let back = parse_kdamonds(&text).unwrap();
        assert_eq!(back, cfg);
        // and again from the loaded one, byte for byte
        assert_eq!(save_kdamonds(&back).unwrap(), text);
        let loaded = parse_kdamonds(DAMO_ARGS_OUTPUT).unwrap();
        assert_eq!(
            parse_kdamonds(&save_kdamonds(&loaded).unwrap()).unwrap(),
            loaded
        );
    }

    #[test]
    fn contexts_convert_both_ways() {
        let cfg = rich();
        let c = &cfg.kdamonds[0].contexts[0];
        let ctx = c.to_context();
        assert_eq!(ctx.targets[0].id, 1234);
        assert!(ctx.targets[1].obsolete);
        assert_eq!(ctx.schemes, c.schemes);
        assert_eq!(ContextParams::from_context("vaddr", &ctx), *c);
        let p = &cfg.kdamonds[1].contexts[0];
        assert_eq!(ContextParams::from_context("paddr", &p.to_context()), *p);
    }

    #[test]
    fn memcg_filters_cannot_be_saved() {
        let mut cfg = rich();
        cfg.kdamonds[0].contexts[0].schemes[0].filters.push(Filter {
            kind: FilterKind::Memcg { memcg_id: 7 },
            matching: true,
            allow: true,
        });
        let e = save_kdamonds(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("kdamonds[0].contexts[0].schemes[0].filters[5]"),
            "{e}"
        );
    }
}
