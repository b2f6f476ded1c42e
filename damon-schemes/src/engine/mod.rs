//! The DAMOS engine: which schemes are due and active, which regions they
//! try, charging and resuming quotas, statistics and tried regions
//! (`kdamond_apply_schemes` and its helpers in the kernel's `core.c`).

use crate::filter::default_reject;
use crate::metrics::{ProcMetrics, SystemMetrics};
use crate::quota::{min_score, roll_window, window_due, QuotaState};
use crate::tried::Shared;
use crate::wmarks::{wmark_wait_us, WmarkState};
use damon_core::access::nr_accesses_mvsum;
use damon_core::backend::region_sz_limit;
use damon_core::damos::{FilterKind, GoalMetric, Scheme, DAMOS_MAX_SCORE};
use damon_core::{Attrs, DamosEngine, DamosEnv, Operations, OpsError, Region};
use std::sync::Arc;

mod region;

/// Per-scheme private state.
#[derive(Clone, Debug, Default)]
struct SchemeState {
    next_apply_sis: u64,
    wmark: WmarkState,
    quota: QuotaState,
    core_default_reject: bool,
    /// The scheme without page-level filters, handed to the backend when a
    /// core allow-filter already accepted the region.
    core_allowed_view: Option<Scheme>,
    walk_completed: bool,
}

/// The engine; install it with [`crate::install`] or
/// `Context::set_damos_engine`.
pub struct Damos {
    metrics: Box<dyn SystemMetrics>,
    states: Vec<SchemeState>,
    shared: Arc<Shared>,
    histogram: Box<[u64; DAMOS_MAX_SCORE as usize + 1]>,
}

impl std::fmt::Debug for Damos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Damos")
            .field("schemes", &self.states.len())
            .finish()
    }
}

impl Damos {
    /// An engine reading watermark and goal metrics from this machine.
    pub fn new() -> (Self, crate::DamosControl) {
        Self::with_metrics(Box::new(ProcMetrics))
    }

    /// An engine reading metrics from `metrics` (e.g. [`crate::SimMetrics`]).
    pub fn with_metrics(metrics: Box<dyn SystemMetrics>) -> (Self, crate::DamosControl) {
        let shared = Arc::new(Shared::default());
        let engine = Self {
            metrics,
            states: Vec::new(),
            shared: shared.clone(),
            histogram: Box::new([0; 100]),
        };
        (engine, crate::DamosControl::from_shared(shared))
    }

    fn next_apply_sis(s: &Scheme, attrs: &Attrs, passed: u64) -> u64 {
        let interval = if s.apply_interval_us != 0 {
            s.apply_interval_us
        } else {
            attrs.aggr_interval
        };
        passed + interval / attrs.sample_interval.max(1)
    }

    fn refresh_derived(st: &mut SchemeState, s: &Scheme) {
        st.core_default_reject = default_reject(s).0;
        st.core_allowed_view = if s.filters.iter().any(|f| !f.kind.is_core()) {
            let mut v = s.clone();
            v.filters.retain(|f| f.kind.is_core());
            Some(v)
        } else {
            None
        };
    }

    /// Score histogram and `min_score` for one scheme (`damos_adjust_quota`, second part).
    fn set_min_score(&mut self, si: usize, env: &DamosEnv<'_>) {
        let s = &env.schemes[si];
        let h = &mut self.histogram;
        h.fill(0);
        for (ti, t) in env.targets.iter().enumerate() {
            for r in &t.regions {
                if !pattern_match(r, s, nr_accesses_of(r, env))
                    || !core_filters_pass_whole(r, ti, s, self.states[si].core_default_reject)
                {
                    continue;
                }
                let score = env
                    .ops
                    .get_scheme_score(env.attrs, t, r, s)
                    .min(DAMOS_MAX_SCORE);
                h[score as usize] = h[score as usize].saturating_add(r.size());
            }
        }
        self.states[si].quota.min_score = min_score(h, self.states[si].quota.esz);
    }
}

/// `__damos_valid_target`: size, access frequency and age in range, the
/// frequency being `nr_accesses`, the region's moving sum of accesses
/// ([`nr_accesses_of`]).
pub fn pattern_match(r: &Region, s: &Scheme, nr_accesses: u32) -> bool {
    let p = &s.pattern;
    let sz = r.size();
    let nr = nr_accesses;
    p.min_sz_region <= sz
        && sz <= p.max_sz_region
        && p.min_nr_accesses <= nr
        && nr <= p.max_nr_accesses
        && p.min_age_region <= r.age
        && r.age <= p.max_age_region
}

/// Core filters evaluated on a whole region without splitting (for the
/// score histogram only): an address filter matches when the region starts
/// inside its range.
fn core_filters_pass_whole(
    r: &Region,
    target_idx: usize,
    s: &Scheme,
    default_reject: bool,
) -> bool {
    for f in s.filters.iter().filter(|f| f.kind.is_core()) {
        let matched = match f.kind {
            FilterKind::Addr(range) => range.contains(r.ar.start),
            FilterKind::Target { target_idx: t } => t == target_idx,
            _ => false,
        };
        if matched == f.matching {
            return f.allow;
        }
    }
    !default_reject
}

/// `damon_nr_accesses_mvsum` of `r` at this point of the loop.
pub fn nr_accesses_of(r: &Region, env: &DamosEnv<'_>) -> u32 {
    nr_accesses_mvsum(
        r,
        env.attrs,
        env.passed_sample_intervals,
        env.next_aggregation_sis,
    )
}

impl DamosEngine for Damos {
    fn wait_activation_us(&mut self, schemes: &mut [Scheme], now_us: u64) -> u64 {
        if schemes.is_empty() {
            return 0;
        }
        let mut min_wait = u64::MAX;
        for (s, st) in schemes.iter().zip(self.states.iter_mut()) {
            min_wait = min_wait.min(wmark_wait_us(
                &s.wmarks,
                &mut st.wmark,
                self.metrics.as_mut(),
                now_us,
            ));
        }
        self.shared.publish(
            self.states
                .iter()
                .map(|s| (s.quota.esz, s.wmark.activated, s.quota.min_score)),
        );
        if min_wait > 0 {
            // every scheme is inactive: a pending walk cannot complete
            self.shared.cancel_walk();
        }
        min_wait
    }

    fn apply(&mut self, mut env: DamosEnv<'_>) {
        let nr_schemes = env.schemes.len().min(self.states.len());
        if !self.adjust_quotas(&mut env, nr_schemes) {
            return;
        }
        let walking = self.shared.walk_active(nr_schemes);
        let max_region_sz =
            region_sz_limit(env.targets, env.attrs.min_nr_regions, env.min_region_sz);
        for ti in 0..env.targets.len() {
            if !env.ops.target_valid(&env.targets[ti]) {
                // The mm tree (v7.3 cycle): a resume point in a target that
                // can no longer be tried would skip every other target.
                self.forget_charge_marks(|t| t == ti);
                continue;
            }
            let mut ri = 0;
            while ri < env.targets[ti].regions.len() {
                if !self.do_apply_schemes(&mut env, ti, ri, nr_schemes, walking) {
                    return; // before_damos_apply panicked: the loop stops the context
                }
                if !Self::merge_back(&mut env.targets[ti].regions, ri, max_region_sz) {
                    ri += 1;
                }
            }
        }
        self.end_apply_intervals(&env, nr_schemes, walking);
    }

    fn attrs_changed(&mut self, schemes: &[Scheme], attrs: &Attrs, passed: u64) {
        for (s, st) in schemes.iter().zip(self.states.iter_mut()) {
            st.next_apply_sis = Self::next_apply_sis(s, attrs, passed);
        }
    }

    fn schemes_committed(
        &mut self,
        old_len: usize,
        new_len: usize,
        schemes: &[Scheme],
        attrs: &Attrs,
        passed: u64,
    ) {
        debug_assert_eq!(
            old_len.min(self.states.len()),
            self.states.len().min(old_len)
        );
        self.states.truncate(new_len);
        while self.states.len() < new_len {
            let s = &schemes[self.states.len()];
            self.states.push(SchemeState {
                next_apply_sis: Self::next_apply_sis(s, attrs, passed),
                ..Default::default()
            });
        }
        for (s, st) in schemes.iter().zip(self.states.iter_mut()) {
            Self::refresh_derived(st, s);
            // damos_commit copies the source's watermarks, and a scheme
            // made for a commit starts activated: re-evaluate from there.
            st.wmark = WmarkState::default();
        }
        if new_len == 0 {
            self.shared.cancel_walk();
        }
        self.shared.set_nr_schemes(new_len);
    }

    fn walk_cancel(&mut self) {
        self.shared.cancel_walk();
    }

    fn targets_committed(&mut self, remap: &[Option<usize>]) {
        for st in &mut self.states {
            let q = &mut st.quota;
            if let Some(t) = q.charge_target_from {
                q.charge_target_from = remap.get(t).copied().flatten();
                if q.charge_target_from.is_none() {
                    q.charge_addr_from = 0;
                }
            }
        }
    }

    fn check(&self, schemes: &[Scheme], ops: &dyn Operations) -> Result<(), OpsError> {
        for (i, s) in schemes.iter().enumerate() {
            if s.quota.is_set()
                && s.quota.reset_interval == 0
                && (s.quota.ms != 0 || !s.quota.goals.is_empty())
            {
                return Err(OpsError::Invalid(damon_core::InvalidParam {
                    field: format!("schemes[{i}].quota.reset_interval"),
                    reason: "must be non-zero when a time quota or goals are set".into(),
                }));
            }
            for (j, g) in s.quota.goals.iter().enumerate() {
                let invalid = |field: &str, reason: String| {
                    OpsError::Invalid(damon_core::InvalidParam {
                        field: format!("schemes[{i}].quota.goals[{j}].{field}"),
                        reason,
                    })
                };
                ops.check_goal_metric(g.metric)?;
                if g.metric.uses_nid() && !self.metrics.node_exists(g.nid) {
                    return Err(invalid(
                        "nid",
                        format!(
                            "NUMA node {} does not exist on this system, so {} cannot be measured",
                            g.nid,
                            g.metric.name()
                        ),
                    ));
                }
                if g.metric.uses_memcg() && !self.metrics.memcg_exists(g.memcg_id) {
                    return Err(invalid(
                        "memcg_id",
                        format!(
                            "no memory cgroup has id {} (the inode number of its directory), so {} cannot be measured",
                            g.memcg_id,
                            g.metric.name()
                        ),
                    ));
                }
                if g.target_value == 0 {
                    return Err(OpsError::Invalid(damon_core::InvalidParam {
                        field: format!("schemes[{i}].quota.goals[{j}].target_value"),
                        reason: "must be non-zero".into(),
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Sets the current value of the scheme's `node_eligible_mem_bp` goals
/// (`damos_get_node_eligible_mem_bp`): of the LRU memory in the regions
/// whose access pattern the scheme matches, the share on the goal's node.
/// A backend that fails to measure leaves the value as it was, with a
/// warning (installation already refused backends that cannot).
fn measure_node_eligible(si: usize, env: &mut DamosEnv<'_>) {
    for gi in 0..env.schemes[si].quota.goals.len() {
        let g = env.schemes[si].quota.goals[gi];
        if g.metric != GoalMetric::NodeEligibleMemBp {
            continue;
        }
        let (mut node, mut total) = (0u64, 0u64);
        let s = &env.schemes[si];
        for t in env.targets.iter() {
            for r in &t.regions {
                if !pattern_match(r, s, nr_accesses_of(r, env)) {
                    continue;
                }
                match env.ops.node_eligible_bytes(r, g.nid) {
                    Ok((n, all)) => {
                        node = node.saturating_add(n);
                        total = total.saturating_add(all);
                    }
                    Err(e) => {
                        tracing::warn!(target: "damon::damos", scheme = si, error = %e, "node_eligible_mem_bp unreadable; value kept");
                        return;
                    }
                }
            }
        }
        env.schemes[si].quota.goals[gi].current_value = if total == 0 {
            0
        } else {
            (u128::from(node) * 10_000 / u128::from(total)) as u64
        };
    }
}

impl Damos {
    /// Resets the quota resume point of every scheme whose point lies in a
    /// target matching `target` (the kernel's `charge_target_from = NULL`).
    fn forget_charge_marks(&mut self, target: impl Fn(usize) -> bool) {
        for st in &mut self.states {
            let q = &mut st.quota;
            if q.charge_target_from.is_some_and(&target) {
                q.charge_target_from = None;
                q.charge_addr_from = 0;
            }
        }
    }

    /// The first part of `kdamond_apply_schemes`: for every scheme due and
    /// active, `damos_adjust_quota` (a new charge window, goal tuning, the
    /// score threshold). Returns whether any scheme is due and active.
    fn adjust_quotas(&mut self, env: &mut DamosEnv<'_>, nr_schemes: usize) -> bool {
        let passed = env.passed_sample_intervals;
        let now_ms = env.now_us / 1000;
        let mut any = false;
        for si in 0..nr_schemes {
            if passed < self.states[si].next_apply_sis || !self.states[si].wmark.activated {
                continue;
            }
            any = true;
            if !env.schemes[si].quota.is_set() {
                continue;
            }
            if window_due(&env.schemes[si].quota, &self.states[si].quota, now_ms) {
                measure_node_eligible(si, env);
            }
            let s = &mut env.schemes[si];
            let st = &mut self.states[si].quota;
            match roll_window(
                &mut s.quota,
                st,
                &mut s.stat.qt_exceeds,
                now_ms,
                env.min_region_sz,
                self.metrics.as_mut(),
            ) {
                Ok(true) => {
                    tracing::debug!(target: "damon::damos_esz", scheme = si, esz = st.esz, "damos_esz")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(target: "damon::damos", scheme = si, error = %e, "quota goal metric unreadable; quota kept")
                }
            }
            self.set_min_score(si, env);
        }
        any
    }

    /// The last part of `kdamond_apply_schemes`: schemes whose apply
    /// interval passed get their next deadline and their stats event; a
    /// tried-regions walk completes once every active scheme had its turn.
    fn end_apply_intervals(&mut self, env: &DamosEnv<'_>, nr_schemes: usize, walking: bool) {
        let passed = env.passed_sample_intervals;
        for si in 0..nr_schemes {
            if passed < self.states[si].next_apply_sis {
                continue;
            }
            if walking && self.states[si].wmark.activated {
                self.states[si].walk_completed = true;
            }
            self.states[si].next_apply_sis =
                Self::next_apply_sis(&env.schemes[si], env.attrs, passed);
            let st = &env.schemes[si].stat;
            tracing::trace!(
                target: "damon::damos_stat_after_apply_interval",
                scheme = si,
                nr_tried = st.nr_tried,
                sz_tried = st.sz_tried,
                nr_applied = st.nr_applied,
                sz_applied = st.sz_applied,
                qt_exceeds = st.qt_exceeds,
                "damos_stat_after_apply_interval"
            );
        }
        if walking
            && self
                .states
                .iter()
                .take(nr_schemes)
                .all(|s| s.walk_completed || !s.wmark.activated)
        {
            self.shared.complete_walk();
            for s in &mut self.states {
                s.walk_completed = false;
            }
        }
    }
}
