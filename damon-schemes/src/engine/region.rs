//! `damon_do_apply_schemes` and what it calls for one region: the quota
//! resume point, the pattern and score check, fitting the region to the
//! quota, the core filters, the action, recording, charging, and the
//! merge-back of slices (`damos_apply_target`).

use super::{nr_accesses_of, pattern_match, Damos};
use crate::filter::core_filter_out;
use crate::tried::TriedRegion;
use damon_core::backend::{align_down, split_region_at};
use damon_core::damos::Action;
use damon_core::{ApplyOutcome, DamosEnv, Region};

impl Damos {
    /// `damon_do_apply_schemes` for region `ri` of target `ti`.
    pub(super) fn do_apply_schemes(
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
    pub(super) fn merge_back(regions: &mut Vec<Region>, ri: usize, max_region_sz: u64) -> bool {
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
                if walking {
                    self.record_tried(env, ti, ri, si, outcome.sz_filter_passed);
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

    /// `damos_walk_call_walk`: records the region for a pending walk, unless
    /// the scheme already completed its apply interval of this walk.
    fn record_tried(&self, env: &DamosEnv<'_>, ti: usize, ri: usize, si: usize, passed: u64) {
        if self.states[si].walk_completed {
            return;
        }
        let r = &env.targets[ti].regions[ri];
        self.shared.record(
            si,
            TriedRegion {
                target_idx: ti,
                range: r.ar,
                nr_accesses: nr_accesses_of(r, env),
                age: r.age,
                sz_filter_passed: passed,
            },
        );
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
