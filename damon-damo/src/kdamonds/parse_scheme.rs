//! Parsing one DAMOS scheme of a kdamonds JSON: access pattern, quotas
//! and goals, watermarks, filters, stats.

use super::parse::{opt_or, parse_range, u32_permil};
use super::*;

/// A bound of an access pattern's `nr_accesses`: a percentage (number,
/// `"x %"`, `min`, `max`) or `"N samples"`; converted to samples.
pub(super) fn nr_accesses_bound(v: &Value, path: &str, attrs: &Attrs) -> Result<u32, DamoError> {
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
pub(super) fn age_bound(v: &Value, path: &str, attrs: &Attrs) -> Result<u32, DamoError> {
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

pub(super) fn min_max<'a>(
    o: &Obj<'a>,
    key: &str,
) -> Result<(Obj<'a>, &'a Value, &'a Value), DamoError> {
    let p = o.child(key);
    let mo = Obj::new(o.req(key)?, &p, &["min", "max"])?;
    let (mn, mx) = (mo.req("min")?, mo.req("max")?);
    Ok((mo, mn, mx))
}

pub(super) fn parse_pattern(
    v: &Value,
    path: &str,
    attrs: &Attrs,
) -> Result<AccessPattern, DamoError> {
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

pub(super) fn parse_goal(v: &Value, path: &str) -> Result<QuotaGoal, DamoError> {
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
            memcg_id: 0,
        });
    }
    let mp = o.child("metric");
    let mv = o.req("metric")?;
    let m = value::string(mv, &mp)?;
    let metric = GoalMetric::from_name(m).ok_or_else(|| {
        expected(
            &mp,
            "a goal metric (user_input, some_mem_psi_us, node_mem_used_bp, node_mem_free_bp, node_memcg_used_bp, node_memcg_free_bp, active_mem_bp, inactive_mem_bp, node_eligible_mem_bp, hugepage_mem_bp)",
            mv,
        )
    })?;
    if opt_or(&o, "complement", false, boolean)? {
        return Err(DamoError::Unsupported(format!(
            "{}: complement goals are not supported",
            o.child("complement")
        )));
    }
    let cp = o.child("memcg_path");
    let memcg_id = match (metric.uses_memcg(), o.opt("memcg_path")) {
        (true, Some(p)) => super::memcg_path::id_of_path(value::string(p, &cp)?, &cp)?,
        (true, None) => return Err(value::err(&cp, "required by a memcg goal metric")),
        (false, Some(p)) if !is_zero_fill(p) => {
            return Err(value::err(&cp, format!("not used by {m} (must be null)")))
        }
        (false, _) => 0,
    };
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
        memcg_id,
    })
}

pub(super) fn parse_quotas(v: &Value, path: &str) -> Result<Quota, DamoError> {
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
    q.fail_charge_num = opt_or(&o, "fail_charge_num", 0, value::nr)?;
    q.fail_charge_denom = opt_or(&o, "fail_charge_denom", 0, value::nr)?;
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
pub(super) fn damo_default_quota() -> Quota {
    Quota {
        reset_interval: u64::MAX,
        ..Quota::default()
    }
}

pub(super) fn parse_watermarks(v: &Value, path: &str) -> Result<Watermarks, DamoError> {
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

/// A value that says nothing: null, "", or zero in every number it holds
/// (as a JSON number or one of damo's number or size strings), which is
/// what damo writes for a filter's unused fields when it reads sysfs.
pub(super) fn is_zero_fill(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty() || value::bytes(v, "").is_ok_and(|n| n == 0),
        Value::Number(n) => n.as_u64() == Some(0) || n.as_f64() == Some(0.0),
        Value::Array(a) => a.iter().all(is_zero_fill),
        Value::Object(o) => o.values().all(is_zero_fill),
        Value::Bool(_) => false,
    }
}

pub(super) fn parse_filter(v: &Value, path: &str) -> Result<Filter, DamoError> {
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
        // damo's status dumps fill the fields a filter does not use with
        // what sysfs holds: "", "0", {"start": "0", "end": "0"}, ["0", "0"]
        let unset = o.opt(k).is_none_or(is_zero_fill);
        if !uses.contains(&k) && !unset {
            return Err(value::err(
                &o.child(k),
                format!("not used by a {ty:?} filter (must be null)"),
            ));
        }
    }
    let kind =
        match ty {
            "anon" => FilterKind::Anon,
            "active" => FilterKind::Active,
            "young" => FilterKind::Young,
            "unmapped" => FilterKind::Unmapped,
            "memcg" => {
                let cp = o.child("memcg_path");
                let p = value::string(o.req("memcg_path")?, &cp)?;
                FilterKind::Memcg {
                    memcg_id: super::memcg_path::id_of_path(p, &cp)?,
                }
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
            _ => return Err(expected(
                &tp,
                "a filter type (anon, active, memcg, young, hugepage_size, unmapped, addr, target)",
                tv,
            )),
        };
    Ok(Filter {
        kind,
        matching,
        allow,
    })
}

pub(super) fn parse_stats(v: &Value, path: &str, s: &mut Scheme) -> Result<(), DamoError> {
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

pub(super) fn parse_scheme(v: &Value, path: &str, attrs: &Attrs) -> Result<Scheme, DamoError> {
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
