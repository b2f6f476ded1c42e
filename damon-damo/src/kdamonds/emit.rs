//! Writing kdamonds JSON that damo (and [`super::parse_kdamonds`]) read back.

use super::*;

pub(super) fn range_json(r: &AddrRange) -> Value {
    json!({"start": r.start, "end": r.end})
}

pub(super) fn scheme_json(s: &Scheme, path: &str) -> Result<Value, DamoError> {
    let p = &s.pattern;
    let filters = s
        .filters
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut memcg_path = Value::Null;
            let (addr, tidx, hp) = match f.kind {
                FilterKind::Addr(r) => (range_json(&r), Value::Null, Value::Null),
                FilterKind::Target { target_idx } => (Value::Null, json!(target_idx), Value::Null),
                FilterKind::HugepageSize { min, max } => {
                    (Value::Null, Value::Null, json!([min, max]))
                }
                FilterKind::Memcg { memcg_id } => {
                    let jp = format!("{path}.filters[{j}]");
                    memcg_path = json!(super::memcg_path::path_of_id(memcg_id, &jp)?);
                    (Value::Null, Value::Null, Value::Null)
                }
                _ => (Value::Null, Value::Null, Value::Null),
            };
            Ok(json!({
                "filter_type": f.kind.name(),
                "matching": f.matching,
                "allow": f.allow,
                "memcg_path": memcg_path,
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
        .enumerate()
        .map(|(j, g)| {
            let memcg_path = if g.metric.uses_memcg() {
                let jp = format!("{path}.quotas.goals[{j}]");
                json!(super::memcg_path::path_of_id(g.memcg_id, &jp)?)
            } else {
                Value::Null
            };
            Ok(json!({
                "metric": GoalMetric::name(g.metric),
                "complement": false,
                "nid": g.nid,
                "memcg_path": memcg_path,
                "target_value": g.target_value,
                "current_value": g.current_value,
            }))
        })
        .collect::<Result<_, DamoError>>()?;
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
            "fail_charge_num": q.fail_charge_num,
            "fail_charge_denom": q.fail_charge_denom,
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

pub(super) fn context_json(c: &ContextParams, path: &str) -> Result<Value, DamoError> {
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
/// damo's format cannot express (a memory cgroup id that names no
/// cgroup on this machine, as damo names cgroups by path).
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
