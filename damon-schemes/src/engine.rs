//! The DAMOS engine: which schemes are due and active, which regions they
//! try, charging and resuming quotas, statistics and tried regions
//! (`kdamond_apply_schemes` and its helpers in the kernel's `core.c`).

use crate::filter::{core_filter_out, default_reject};
use crate::metrics::{ProcMetrics, SystemMetrics};
use crate::quota::{min_score, roll_window, QuotaState};
use crate::tried::{Shared, TriedRegion};
use crate::wmarks::{wmark_wait_us, WmarkState};
use damon_core::access::nr_accesses_mvsum;
use damon_core::backend::split_region_at;
use damon_core::backend::{align_down, region_sz_limit};
use damon_core::damos::{Action, FilterKind, GoalMetric, Scheme, DAMOS_MAX_SCORE};
use damon_core::{ApplyOutcome, Attrs, DamosEngine, DamosEnv, Operations, OpsError, Region};
use std::sync::Arc;

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

    fn check(&self, schemes: &[Scheme], _ops: &dyn Operations) -> Result<(), OpsError> {
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
                let node_metric = matches!(
                    g.metric,
                    GoalMetric::NodeMemUsedBp | GoalMetric::NodeMemFreeBp
                );
                if node_metric && !self.metrics.node_exists(g.nid) {
                    return Err(OpsError::Invalid(damon_core::InvalidParam {
                        field: format!("schemes[{i}].quota.goals[{j}].nid"),
                        reason: format!(
                            "NUMA node {} does not exist on this system, so {} cannot be measured",
                            g.nid,
                            g.metric.name()
                        ),
                    }));
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
            let s = &mut env.schemes[si];
            if !s.quota.is_set() {
                continue;
            }
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

    /// `damon_do_apply_schemes` for region `ri` of target `ti`.
    fn do_apply_schemes(
        &mut self,
        env: &mut DamosEnv<'_>,
        ti: usize,
        ri: usize,
        nr_schemes: usize,
        walking: bool,
    ) -> bool {
        let passed = env.passed_sample_intervals;
        for si in 0..nr_schemes {
            let st = &self.states[si];
            if passed < st.next_apply_sis || !st.wmark.activated {
                continue;
            }
            let q = &st.quota;
            if env.schemes[si]
                .quota
                .is_full(q.esz, q.charged_sz, env.min_region_sz)
            {
                continue;
            }
            if self.skip_charged_region(env, ti, ri, si) {
                continue;
            }
            let s = &env.schemes[si];
            if s.max_nr_snapshots != 0 && s.stat.nr_snapshots >= s.max_nr_snapshots {
                continue;
            }
            if self.valid_target(env, ti, ri, si) && !self.apply_scheme(env, ti, ri, si, walking) {
                return false;
            }
            if ri + 1 == env.targets[ti].regions.len() {
                env.schemes[si].stat.nr_snapshots += 1;
            }
        }
        true
    }

    /// `damos_valid_target`: the pattern, and the score threshold when a quota is set.
    fn valid_target(&self, env: &DamosEnv<'_>, ti: usize, ri: usize, si: usize) -> bool {
        let s = &env.schemes[si];
        let t = &env.targets[ti];
        let r = &t.regions[ri];
        if !pattern_match(r, s, nr_accesses_of(r, env)) {
            return false;
        }
        if !s.quota.is_set() {
            return true;
        }
        env.ops.get_scheme_score(env.attrs, t, r, s) >= self.states[si].quota.min_score
    }

    /// `damos_skip_charged_region`, as the mm tree has it: resume where the
    /// last window stopped. Regions of other targets, and regions (or the
    /// head of a region) before the resume point, are skipped; the resume
    /// point is forgotten once the target's last region is reached, which
    /// is itself tried unless it was charged (the baseline skipped it).
    fn skip_charged_region(
        &mut self,
        env: &mut DamosEnv<'_>,
        ti: usize,
        ri: usize,
        si: usize,
    ) -> bool {
        let q = &mut self.states[si].quota;
        let Some(from_t) = q.charge_target_from else {
            return false;
        };
        if ti != from_t {
            return true;
        }
        let regions = &mut env.targets[ti].regions;
        let r = regions[ri].ar;
        let from = q.charge_addr_from;
        let mut skip = false;
        if from != 0 && r.end <= from {
            skip = true;
        } else if from != 0 && r.start < from {
            let mut sz = align_down(from - r.start, env.min_region_sz);
            if sz == 0 && r.len() > env.min_region_sz {
                sz = env.min_region_sz;
            }
            if sz != 0 {
                // the head was charged; the tail is visited next
                split_region_at(regions, ri, sz);
            }
            skip = true;
        }
        if ri + 1 == regions.len() {
            q.charge_target_from = None;
            q.charge_addr_from = 0;
        }
        skip
    }

    /// `damos_apply_target`'s merge-back (the mm tree): quota and filter
    /// splits leave slices; region `ri` goes back into its left neighbour
    /// when they touch, their counters and ages are equal and the result
    /// stays within `max_region_sz`. Returns whether it was merged.
    fn merge_back(regions: &mut Vec<Region>, ri: usize, max_region_sz: u64) -> bool {
        if ri == 0 || ri >= regions.len() {
            return false;
        }
        let (prev, r) = (&regions[ri - 1], &regions[ri]);
        let same = prev.ar.end == r.ar.start
            && prev.age == r.age
            && prev.last_nr_accesses == r.last_nr_accesses
            && prev.nr_accesses == r.nr_accesses
            && r.ar.end - prev.ar.start <= max_region_sz;
        if same {
            regions[ri - 1].ar.end = regions[ri].ar.end;
            regions.remove(ri);
        }
        same
    }

    /// `damos_apply_scheme`: fit the region to the quota, pass it through
    /// the core filters, act, record and charge it, and count the try.
    /// False when `before_damos_apply` panicked (nothing more is applied).
    fn apply_scheme(
        &mut self,
        env: &mut DamosEnv<'_>,
        ti: usize,
        ri: usize,
        si: usize,
        walking: bool,
    ) -> bool {
        let (sz, outcome) = match self.fit_quota(env, ti, ri, si) {
            0 => (0, ApplyOutcome::default()),
            _ => {
                let (reject, core_allowed) = core_filter_out(
                    &mut env.targets[ti].regions,
                    ri,
                    ti,
                    &env.schemes[si],
                    self.states[si].core_default_reject,
                    env.min_region_sz,
                );
                if reject {
                    return true;
                }
                // The core filter may have split: act on the head, and
                // charge and count the head's own size. Deviation: the
                // kernel charges the size from before the split
                // (damos_apply_scheme takes `sz` first) and tries the tail
                // as well (in the same pass in the mm tree, in the next one
                // before), so the tail's bytes count twice; here each byte
                // is charged and counted once (ARCHITECTURE.md).
                let sz = env.targets[ti].regions[ri].size();
                let Some(outcome) = self.call_action(env, ti, ri, si, core_allowed) else {
                    return false;
                };
                // `damos_walk_call_walk` returns early for a scheme that
                // already completed its apply interval of this walk.
                if walking && !self.states[si].walk_completed {
                    let r = &env.targets[ti].regions[ri];
                    self.shared.record(
                        si,
                        TriedRegion {
                            target_idx: ti,
                            range: r.ar,
                            nr_accesses: nr_accesses_of(r, env),
                            age: r.age,
                            sz_filter_passed: outcome.sz_filter_passed,
                        },
                    );
                }
                self.charge(env, ti, ri, si, sz, outcome.applied);
                (sz, outcome)
            }
        };
        let stat = &mut env.schemes[si].stat;
        stat.nr_tried += 1;
        stat.sz_tried += sz;
        if outcome.applied > 0 {
            stat.nr_applied += 1;
        }
        stat.sz_applied += outcome.applied;
        stat.sz_ops_filter_passed += outcome.sz_filter_passed;
        true
    }

    /// The size of the region to try: all of it, or, when that would pass
    /// the quota, the head that fits (split off), or 0 when nothing fits.
    fn fit_quota(&mut self, env: &mut DamosEnv<'_>, ti: usize, ri: usize, si: usize) -> u64 {
        let sz = env.targets[ti].regions[ri].size();
        let q = &self.states[si].quota;
        if !env.schemes[si].quota.is_set() || q.charged_sz.saturating_add(sz) <= q.esz {
            return sz;
        }
        let fit = align_down(q.esz - q.charged_sz, env.min_region_sz);
        if fit != 0 {
            split_region_at(&mut env.targets[ti].regions, ri, fit);
        }
        fit
    }

    /// The action on one region: the `damos_before_apply` event and
    /// callback, then the backend, timed for the time quota. A failed
    /// action is logged and counts as nothing applied; `None` when the
    /// callback panicked (the action is not taken).
    fn call_action(
        &mut self,
        env: &mut DamosEnv<'_>,
        ti: usize,
        ri: usize,
        si: usize,
        core_allowed: bool,
    ) -> Option<ApplyOutcome> {
        let t = &env.targets[ti];
        let r = &t.regions[ri];
        let scheme = match (&self.states[si].core_allowed_view, core_allowed) {
            (Some(view), true) => view,
            _ => &env.schemes[si],
        };
        tracing::trace!(
            target: "damon::damos_before_apply",
            ctx_idx = 0,
            scheme_idx = si,
            target_idx = ti,
            start = r.ar.start,
            end = r.ar.end,
            nr_accesses = nr_accesses_of(r, env),
            age = r.age,
            "damos_before_apply"
        );
        if !env.before_damos_apply.call(ti, t, r, si, scheme) {
            return None;
        }
        let begin = env.clock.now_us();
        let outcome = env.ops.apply_scheme(env.attrs, t, r, scheme);
        let elapsed_ns = env
            .clock
            .now_us()
            .saturating_sub(begin)
            .saturating_mul(1000);
        let q = &mut self.states[si].quota;
        q.total_charged_ns = q.total_charged_ns.saturating_add(elapsed_ns);
        Some(outcome.unwrap_or_else(|e| {
            tracing::warn!(target: "damon::damos", scheme = si, region = %r.ar, error = %e, "action failed");
            ApplyOutcome::default()
        }))
    }

    /// Charges a try of `sz` bytes that applied `applied` to the scheme's
    /// quota (`damos_charge_quota`, with the fail-charge ratio), remembers
    /// where to resume once the quota is effectively full, and resets the
    /// region's age after an action.
    fn charge(
        &mut self,
        env: &mut DamosEnv<'_>,
        ti: usize,
        ri: usize,
        si: usize,
        sz: u64,
        applied: u64,
    ) {
        let quota = &env.schemes[si].quota;
        let q = &mut self.states[si].quota;
        q.charged_sz = q.charged_sz.saturating_add(quota.charge_for(sz, applied));
        if quota.is_full(q.esz, q.charged_sz, env.min_region_sz) {
            q.charge_target_from = Some(ti);
            q.charge_addr_from = env.targets[ti].regions[ri].ar.end;
        }
        if env.schemes[si].action != Action::Stat {
            env.targets[ti].regions[ri].age = 0;
        }
    }
}
