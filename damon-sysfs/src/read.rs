//! A kdamond's directory back into a [`Context`]: what the kernel holds,
//! for round trips and for reporting what a commit changed.

use crate::tree::{paths, Admin};
use crate::SysfsError;
use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, GoalTuner, Quota, QuotaGoal, Scheme,
    Watermarks, WmarkMetric,
};
use damon_core::{AddrRange, Context, Target};

fn parse_kw<T>(
    admin: &Admin,
    rel: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &'static str,
) -> Result<T, SysfsError> {
    let text = admin.read(rel)?;
    // some files show every keyword with the chosen one in brackets
    let chosen = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or(text.trim())
        .to_string();
    parse(&chosen).ok_or_else(|| SysfsError::Parse {
        path: admin.path(rel),
        text,
        expected,
    })
}

fn opt_u64(admin: &Admin, rel: &str, default: u64) -> Result<u64, SysfsError> {
    if admin.exists(rel) {
        admin.read_u64(rel)
    } else {
        Ok(default)
    }
}

fn to_u32(admin: &Admin, rel: &str) -> Result<u32, SysfsError> {
    let v = admin.read_u64(rel)?;
    u32::try_from(v).map_err(|_| SysfsError::Parse {
        path: admin.path(rel),
        text: v.to_string(),
        expected: "a number below 2^32",
    })
}

/// The operations set and the [`Context`] in kdamond `k`'s directory
/// (targets' ids are their pids, 0 for `paddr`).
pub fn read_context(admin: &Admin, k: usize) -> Result<(String, Context), SysfsError> {
    let c = paths::ctx(k);
    let ops = parse_kw(
        admin,
        &format!("{c}/operations"),
        |s| Some(s.to_string()),
        "an operations set",
    )?;
    let mut ctx = Context::new();
    ctx.addr_unit = opt_u64(admin, &format!("{c}/addr_unit"), 1)?;
    ctx.pause = admin.exists(&format!("{c}/pause")) && admin.read_bool(&format!("{c}/pause"))?;
    let iv = format!("{c}/monitoring_attrs/intervals");
    ctx.attrs.sample_interval = admin.read_u64(&format!("{iv}/sample_us"))?;
    ctx.attrs.aggr_interval = admin.read_u64(&format!("{iv}/aggr_us"))?;
    ctx.attrs.ops_update_interval = admin.read_u64(&format!("{iv}/update_us"))?;
    let goal = format!("{iv}/intervals_goal");
    if admin.exists(&goal) {
        let g = &mut ctx.attrs.intervals_goal;
        g.access_bp = admin.read_u64(&format!("{goal}/access_bp"))?;
        g.aggrs = admin.read_u64(&format!("{goal}/aggrs"))?;
        g.min_sample_us = admin.read_u64(&format!("{goal}/min_sample_us"))?;
        g.max_sample_us = admin.read_u64(&format!("{goal}/max_sample_us"))?;
    }
    let nr = format!("{c}/monitoring_attrs/nr_regions");
    ctx.attrs.min_nr_regions = to_u32(admin, &format!("{nr}/min"))?;
    ctx.attrs.max_nr_regions = to_u32(admin, &format!("{nr}/max"))?;

    let nr_targets = admin.read_u64(&format!("{c}/targets/nr_targets"))? as usize;
    for t in 0..nr_targets {
        let td = paths::target(k, t);
        let id = if ops == "paddr" {
            0
        } else {
            admin.read_u64(&format!("{td}/pid_target"))?
        };
        let n = admin.read_u64(&format!("{td}/regions/nr_regions"))? as usize;
        let mut ranges = Vec::with_capacity(n);
        for j in 0..n {
            ranges.push(AddrRange::new(
                admin.read_u64(&format!("{td}/regions/{j}/start"))?,
                admin.read_u64(&format!("{td}/regions/{j}/end"))?,
            ));
        }
        let mut target = Target::with_ranges(id, &ranges);
        target.obsolete = admin.exists(&format!("{td}/obsolete_target"))
            && admin.read_bool(&format!("{td}/obsolete_target"))?;
        ctx.targets.push(target);
    }
    let nr_schemes = admin.read_u64(&format!("{c}/schemes/nr_schemes"))? as usize;
    for s in 0..nr_schemes {
        ctx.schemes.push(read_scheme(admin, &paths::scheme(k, s))?);
    }
    Ok((ops, ctx))
}

fn read_scheme(admin: &Admin, d: &str) -> Result<Scheme, SysfsError> {
    let ap = format!("{d}/access_pattern");
    let pattern = AccessPattern {
        min_sz_region: admin.read_u64(&format!("{ap}/sz/min"))?,
        max_sz_region: admin.read_u64(&format!("{ap}/sz/max"))?,
        min_nr_accesses: to_u32(admin, &format!("{ap}/nr_accesses/min"))?,
        max_nr_accesses: to_u32(admin, &format!("{ap}/nr_accesses/max"))?,
        min_age_region: to_u32(admin, &format!("{ap}/age/min"))?,
        max_age_region: to_u32(admin, &format!("{ap}/age/max"))?,
    };
    let action = parse_kw(
        admin,
        &format!("{d}/action"),
        Action::from_name,
        "a DAMOS action",
    )?;
    let mut s = Scheme::new(pattern, action);
    if admin.exists(&format!("{d}/target_nid")) {
        s.target_nid = admin.read_i64(&format!("{d}/target_nid"))? as i32;
    }
    s.apply_interval_us = opt_u64(admin, &format!("{d}/apply_interval_us"), 0)?;

    let qd = format!("{d}/quotas");
    let mut q = Quota {
        ms: admin.read_u64(&format!("{qd}/ms"))?,
        sz: admin.read_u64(&format!("{qd}/bytes"))?,
        reset_interval: admin.read_u64(&format!("{qd}/reset_interval_ms"))?,
        weight_sz: to_u32(admin, &format!("{qd}/weights/sz_permil"))?,
        weight_nr_accesses: to_u32(admin, &format!("{qd}/weights/nr_accesses_permil"))?,
        weight_age: to_u32(admin, &format!("{qd}/weights/age_permil"))?,
        fail_charge_num: opt_u64(admin, &format!("{qd}/fail_charge_num"), 0)?,
        fail_charge_denom: opt_u64(admin, &format!("{qd}/fail_charge_denom"), 0)?,
        ..Quota::default()
    };
    if admin.exists(&format!("{qd}/goal_tuner")) {
        q.goal_tuner = parse_kw(
            admin,
            &format!("{qd}/goal_tuner"),
            |s| match s {
                "consist" => Some(GoalTuner::Consist),
                "temporal" => Some(GoalTuner::Temporal),
                _ => None,
            },
            "consist or temporal",
        )?;
    }
    if admin.exists(&format!("{qd}/goals/nr_goals")) {
        let n = admin.read_u64(&format!("{qd}/goals/nr_goals"))? as usize;
        for i in 0..n {
            let gd = format!("{qd}/goals/{i}");
            let metric = parse_kw(
                admin,
                &format!("{gd}/target_metric"),
                GoalMetric::from_name,
                "a quota goal metric",
            )?;
            let mut g = QuotaGoal {
                metric,
                target_value: admin.read_u64(&format!("{gd}/target_value"))?,
                current_value: admin.read_u64(&format!("{gd}/current_value"))?,
                nid: 0,
                memcg_id: 0,
            };
            if admin.exists(&format!("{gd}/nid")) {
                g.nid = admin.read_i64(&format!("{gd}/nid"))? as i32;
            }
            if metric.uses_memcg() && admin.exists(&format!("{gd}/path")) {
                g.memcg_id = memcg_id(admin, &format!("{gd}/path"))?;
            }
            q.goals.push(g);
        }
    }
    s.quota = q;

    let wd = format!("{d}/watermarks");
    s.wmarks = Watermarks {
        metric: parse_kw(
            admin,
            &format!("{wd}/metric"),
            |m| match m {
                "none" => Some(WmarkMetric::None),
                "free_mem_rate" => Some(WmarkMetric::FreeMemRate),
                _ => None,
            },
            "none or free_mem_rate",
        )?,
        interval: admin.read_u64(&format!("{wd}/interval_us"))?,
        high: admin.read_u64(&format!("{wd}/high"))?,
        mid: admin.read_u64(&format!("{wd}/mid"))?,
        low: admin.read_u64(&format!("{wd}/low"))?,
    };
    for dir in ["core_filters", "ops_filters", "filters"] {
        let fd = format!("{d}/{dir}");
        if !admin.exists(&format!("{fd}/nr_filters")) {
            continue;
        }
        let n = admin.read_u64(&format!("{fd}/nr_filters"))? as usize;
        for i in 0..n {
            s.filters.push(read_filter(admin, &format!("{fd}/{i}"))?);
        }
    }
    s.max_nr_snapshots = opt_u64(admin, &format!("{d}/stats/max_nr_snapshots"), 0)?;
    Ok(s)
}

fn memcg_id(admin: &Admin, rel: &str) -> Result<u64, SysfsError> {
    let path = admin.read(rel)?;
    match damon_schemes::memcg::memcg_id_at(&path) {
        Ok(Some(id)) => Ok(id),
        _ => Err(SysfsError::Parse {
            path: admin.path(rel),
            text: path,
            expected: "the path of an existing memory cgroup",
        }),
    }
}

fn read_filter(admin: &Admin, fd: &str) -> Result<Filter, SysfsError> {
    let ty = admin.read(&format!("{fd}/type"))?;
    let kind = match ty.trim() {
        "anon" => FilterKind::Anon,
        "active" => FilterKind::Active,
        "young" => FilterKind::Young,
        "unmapped" => FilterKind::Unmapped,
        "memcg" => FilterKind::Memcg {
            memcg_id: memcg_id(admin, &format!("{fd}/memcg_path"))?,
        },
        "addr" => FilterKind::Addr(AddrRange::new(
            admin.read_u64(&format!("{fd}/addr_start"))?,
            admin.read_u64(&format!("{fd}/addr_end"))?,
        )),
        "hugepage_size" => FilterKind::HugepageSize {
            min: admin.read_u64(&format!("{fd}/min"))?,
            max: admin.read_u64(&format!("{fd}/max"))?,
        },
        "target" => FilterKind::Target {
            target_idx: admin.read_u64(&format!("{fd}/damon_target_idx"))? as usize,
        },
        _ => {
            return Err(SysfsError::Parse {
                path: admin.path(&format!("{fd}/type")),
                text: ty,
                expected: "a DAMOS filter type",
            })
        }
    };
    Ok(Filter {
        kind,
        matching: admin.read_bool(&format!("{fd}/matching"))?,
        allow: admin.exists(&format!("{fd}/allow")) && admin.read_bool(&format!("{fd}/allow"))?,
    })
}
