//! A [`Context`] into a kdamond's directory, file by file as the kernel
//! documents the tree (`Documentation/admin-guide/mm/damon/usage.rst`).
//! What this kernel lacks is refused with the version that added it:
//! files by their absence in our freshly made directories, keywords by the
//! kernel's `EINVAL`, operations sets by `avail_operations`.

use crate::features::{action_since, file_since, filter_since, metric_since, Features};
use crate::tree::{paths, Admin};
use crate::SysfsError;
use damon_core::damos::{Filter, FilterKind, GoalTuner, Scheme, WmarkMetric};
use damon_core::Context;

/// The kernel's keyword of a goal tuner.
pub(crate) fn tuner_name(t: GoalTuner) -> &'static str {
    match t {
        GoalTuner::Consist => "consist",
        GoalTuner::Temporal => "temporal",
    }
}

/// The kernel's keyword of a watermark metric.
pub(crate) fn wmark_name(m: WmarkMetric) -> &'static str {
    match m {
        WmarkMetric::None => "none",
        WmarkMetric::FreeMemRate => "free_mem_rate",
    }
}

fn is_einval(e: &SysfsError) -> bool {
    matches!(e, SysfsError::Io { source, .. } if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()))
}

/// Writes a keyword; the kernel's `EINVAL` means it does not know it.
fn keyword(
    admin: &Admin,
    f: &Features,
    rel: &str,
    kw: &str,
    what: &str,
    since: &'static str,
) -> Result<(), SysfsError> {
    admin.write(rel, kw).map_err(|e| {
        if is_einval(&e) {
            f.missing(format!("{what} {kw:?}"), since)
        } else {
            e
        }
    })
}

/// Writes `value` to `dir/file` if the kernel has the file; without it,
/// fails only if `needed` (the value is not the kernel's default).
fn optional(
    admin: &Admin,
    f: &Features,
    dir: &str,
    file: &str,
    value: impl std::fmt::Display,
    needed: bool,
) -> Result<(), SysfsError> {
    let rel = format!("{dir}/{file}");
    if admin.exists(&rel) {
        admin.write(&rel, value)
    } else if needed {
        Err(f.missing(format!("the sysfs file {file}"), file_since(file)))
    } else {
        Ok(())
    }
}

/// The operations sets the kernel can run, and the version that added each.
fn ops_since(ops: &str) -> Option<&'static str> {
    match ops {
        "vaddr" | "paddr" => Some("5.18"),
        "fvaddr" => Some("5.19"),
        _ => None,
    }
}

/// Writes `ctx`, run with operations set `ops`, into kdamond `k` (which
/// must exist and be off): one context, its attributes, targets with
/// their regions, and schemes.
pub fn write_context(
    admin: &Admin,
    f: &Features,
    k: usize,
    ops: &str,
    ctx: &Context,
) -> Result<(), SysfsError> {
    let Some(since) = ops_since(ops) else {
        return Err(SysfsError::Unsupported(format!(
            "the kernel's DAMON runs only vaddr, fvaddr and paddr; {ops:?} is a user-space backend (use the user engine)"
        )));
    };
    admin.write(&format!("{}/contexts/nr_contexts", paths::kdamond(k)), 1)?;
    let c = paths::ctx(k);
    if let Ok(avail) = admin.read(&format!("{c}/avail_operations")) {
        if !avail.split_whitespace().any(|o| o == ops) {
            return Err(f.missing(
                format!("the {ops} operations set (avail_operations: {avail})"),
                since,
            ));
        }
    }
    admin.write(&format!("{c}/operations"), ops)?;
    optional(admin, f, &c, "addr_unit", ctx.addr_unit, ctx.addr_unit != 1)?;
    optional(
        admin,
        f,
        &c,
        "pause",
        if ctx.pause { "Y" } else { "N" },
        ctx.pause,
    )?;

    let a = &ctx.attrs;
    let iv = format!("{c}/monitoring_attrs/intervals");
    admin.write(&format!("{iv}/sample_us"), a.sample_interval)?;
    admin.write(&format!("{iv}/aggr_us"), a.aggr_interval)?;
    admin.write(&format!("{iv}/update_us"), a.ops_update_interval)?;
    let goal = format!("{iv}/intervals_goal");
    if admin.exists(&goal) {
        let g = a.intervals_goal;
        admin.write(&format!("{goal}/access_bp"), g.access_bp)?;
        admin.write(&format!("{goal}/aggrs"), g.aggrs)?;
        admin.write(&format!("{goal}/min_sample_us"), g.min_sample_us)?;
        admin.write(&format!("{goal}/max_sample_us"), g.max_sample_us)?;
    } else if a.intervals_goal.aggrs != 0 {
        return Err(f.missing(
            "the sysfs directory intervals_goal",
            file_since("intervals_goal"),
        ));
    }
    let nr = format!("{c}/monitoring_attrs/nr_regions");
    admin.write(&format!("{nr}/min"), a.min_nr_regions)?;
    admin.write(&format!("{nr}/max"), a.max_nr_regions)?;

    admin.write(&format!("{c}/targets/nr_targets"), ctx.targets.len())?;
    for (i, t) in ctx.targets.iter().enumerate() {
        let td = paths::target(k, i);
        if ops != "paddr" {
            admin.write(&format!("{td}/pid_target"), t.id)?;
        }
        optional(
            admin,
            f,
            &td,
            "obsolete_target",
            if t.obsolete { "Y" } else { "N" },
            t.obsolete,
        )?;
        let ranges = t.ranges();
        admin.write(&format!("{td}/regions/nr_regions"), ranges.len())?;
        for (j, r) in ranges.iter().enumerate() {
            admin.write(&format!("{td}/regions/{j}/start"), r.start)?;
            admin.write(&format!("{td}/regions/{j}/end"), r.end)?;
        }
    }

    admin.write(&format!("{c}/schemes/nr_schemes"), ctx.schemes.len())?;
    for (i, s) in ctx.schemes.iter().enumerate() {
        write_scheme(admin, f, &paths::scheme(k, i), s)?;
    }
    Ok(())
}

fn write_scheme(admin: &Admin, f: &Features, d: &str, s: &Scheme) -> Result<(), SysfsError> {
    keyword(
        admin,
        f,
        &format!("{d}/action"),
        s.action.name(),
        "the DAMOS action",
        action_since(s.action),
    )?;
    let migrates = matches!(
        s.action,
        damon_core::damos::Action::MigrateHot | damon_core::damos::Action::MigrateCold
    );
    optional(admin, f, d, "target_nid", s.target_nid, migrates)?;
    optional(
        admin,
        f,
        d,
        "apply_interval_us",
        s.apply_interval_us,
        s.apply_interval_us != 0,
    )?;

    let p = &s.pattern;
    let ap = format!("{d}/access_pattern");
    admin.write(&format!("{ap}/sz/min"), p.min_sz_region)?;
    admin.write(&format!("{ap}/sz/max"), p.max_sz_region)?;
    admin.write(&format!("{ap}/nr_accesses/min"), p.min_nr_accesses)?;
    admin.write(&format!("{ap}/nr_accesses/max"), p.max_nr_accesses)?;
    admin.write(&format!("{ap}/age/min"), p.min_age_region)?;
    admin.write(&format!("{ap}/age/max"), p.max_age_region)?;

    let q = &s.quota;
    let qd = format!("{d}/quotas");
    admin.write(&format!("{qd}/ms"), q.ms)?;
    admin.write(&format!("{qd}/bytes"), q.sz)?;
    admin.write(&format!("{qd}/reset_interval_ms"), q.reset_interval)?;
    admin.write(&format!("{qd}/weights/sz_permil"), q.weight_sz)?;
    admin.write(
        &format!("{qd}/weights/nr_accesses_permil"),
        q.weight_nr_accesses,
    )?;
    admin.write(&format!("{qd}/weights/age_permil"), q.weight_age)?;
    optional(
        admin,
        f,
        &qd,
        "goal_tuner",
        tuner_name(q.goal_tuner),
        q.goal_tuner != GoalTuner::Consist,
    )?;
    optional(
        admin,
        f,
        &qd,
        "fail_charge_num",
        q.fail_charge_num,
        q.fail_charge_denom != 0,
    )?;
    optional(
        admin,
        f,
        &qd,
        "fail_charge_denom",
        q.fail_charge_denom,
        q.fail_charge_denom != 0,
    )?;
    if admin.exists(&format!("{qd}/goals")) {
        admin.write(&format!("{qd}/goals/nr_goals"), q.goals.len())?;
        for (i, g) in q.goals.iter().enumerate() {
            let gd = format!("{qd}/goals/{i}");
            keyword(
                admin,
                f,
                &format!("{gd}/target_metric"),
                g.metric.name(),
                "the quota goal metric",
                metric_since(g.metric),
            )?;
            admin.write(&format!("{gd}/target_value"), g.target_value)?;
            admin.write(&format!("{gd}/current_value"), g.current_value)?;
            optional(admin, f, &gd, "nid", g.nid, g.metric.uses_nid())?;
            if g.metric.uses_memcg() {
                let path = damon_schemes::memcg::memcg_path_of(g.memcg_id).ok_or_else(|| {
                    SysfsError::Unsupported(format!(
                        "quota goal {i}: memory cgroup {} does not exist, so the kernel cannot be given its path",
                        g.memcg_id
                    ))
                })?;
                optional(admin, f, &gd, "path", path, true)?;
            }
        }
    } else if !q.goals.is_empty() {
        return Err(f.missing("the sysfs directory quotas/goals", file_since("goals")));
    }

    let w = &s.wmarks;
    let wd = format!("{d}/watermarks");
    admin.write(&format!("{wd}/metric"), wmark_name(w.metric))?;
    admin.write(&format!("{wd}/interval_us"), w.interval)?;
    admin.write(&format!("{wd}/high"), w.high)?;
    admin.write(&format!("{wd}/mid"), w.mid)?;
    admin.write(&format!("{wd}/low"), w.low)?;

    write_filters(admin, f, d, &s.filters)?;
    optional(
        admin,
        f,
        &format!("{d}/stats"),
        "max_nr_snapshots",
        s.max_nr_snapshots,
        s.max_nr_snapshots != 0,
    )?;
    Ok(())
}

fn write_filters(
    admin: &Admin,
    f: &Features,
    d: &str,
    filters: &[Filter],
) -> Result<(), SysfsError> {
    let split =
        admin.exists(&format!("{d}/core_filters")) && admin.exists(&format!("{d}/ops_filters"));
    let groups: Vec<(String, Vec<&Filter>)> = if split {
        // the kernel installs core_filters, then ops_filters, then the
        // legacy filters: empty the legacy directory where it exists
        let legacy = format!("{d}/filters/nr_filters");
        if admin.exists(&legacy) {
            admin.write(&legacy, 0)?;
        }
        vec![
            (
                format!("{d}/core_filters"),
                filters.iter().filter(|x| x.kind.is_core()).collect(),
            ),
            (
                format!("{d}/ops_filters"),
                filters.iter().filter(|x| !x.kind.is_core()).collect(),
            ),
        ]
    } else if admin.exists(&format!("{d}/filters")) {
        vec![(format!("{d}/filters"), filters.iter().collect())]
    } else if filters.is_empty() {
        return Ok(());
    } else {
        return Err(f.missing(
            "DAMOS filters (the sysfs directory filters)",
            file_since("filters"),
        ));
    };
    for (dir, list) in groups {
        admin.write(&format!("{dir}/nr_filters"), list.len())?;
        for (i, x) in list.into_iter().enumerate() {
            let fd = format!("{dir}/{i}");
            keyword(
                admin,
                f,
                &format!("{fd}/type"),
                x.kind.name(),
                "the DAMOS filter type",
                filter_since(&x.kind),
            )?;
            admin.write_bool(&format!("{fd}/matching"), x.matching)?;
            // before allow filters (6.14), every filter rejects what it matches
            optional(
                admin,
                f,
                &fd,
                "allow",
                if x.allow { "Y" } else { "N" },
                x.allow,
            )?;
            match x.kind {
                FilterKind::Memcg { memcg_id } => {
                    let path = damon_schemes::memcg::memcg_path_of(memcg_id).ok_or_else(|| {
                        SysfsError::Unsupported(format!(
                            "filter {i}: memory cgroup {memcg_id} does not exist, so the kernel cannot be given its path"
                        ))
                    })?;
                    admin.write(&format!("{fd}/memcg_path"), path)?;
                }
                FilterKind::Addr(r) => {
                    admin.write(&format!("{fd}/addr_start"), r.start)?;
                    admin.write(&format!("{fd}/addr_end"), r.end)?;
                }
                FilterKind::HugepageSize { min, max } => {
                    admin.write(&format!("{fd}/min"), min)?;
                    admin.write(&format!("{fd}/max"), max)?;
                }
                FilterKind::Target { target_idx } => {
                    admin.write(&format!("{fd}/damon_target_idx"), target_idx)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
