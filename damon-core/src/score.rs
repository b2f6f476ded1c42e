//! DAMOS prioritization scores (the kernel's `damon_hot_score()` and
//! `damon_cold_score()` in `ops-common.c`), and the virtual-address
//! backends' `get_scheme_score` (`vaddr.c`), which the simulated backend
//! shares. paddr's score lives with the paddr backend.

use crate::attrs::Attrs;
use crate::damos::{Action, Scheme, DAMOS_MAX_SCORE};
use crate::region::Region;

/// `damon_hot_score()`: 0..=99, higher for frequently accessed and, when
/// accessed, older regions; idle and old regions score lowest.
pub fn hot_score(attrs: &Attrs, r: &Region, s: &Scheme) -> u32 {
    let wf = u64::from(s.quota.weight_nr_accesses);
    let wa = u64::from(s.quota.weight_age);
    let max_nr = u64::from(attrs.max_nr_accesses().max(1));
    let freq = u64::from(r.nr_accesses) * 100 / max_nr;
    let age_sec = u64::from(r.age) * attrs.aggr_interval / 1_000_000;
    let mut age_log: i64 = (64 - age_sec.leading_zeros()) as i64;
    age_log = age_log.min(32);
    if freq == 0 {
        age_log = -age_log;
    }
    // (age_log + 32) * 100 / 32 / 2, left to right in integers; never negative.
    let age_sub = ((age_log + 32) * 100 / 32 / 2) as u64;
    let hot = wf * freq + wa * age_sub;
    // no division when both weights are 0, as in the kernel
    let hot = hot.checked_div(wf + wa).unwrap_or(hot);
    let hot = hot * u64::from(DAMOS_MAX_SCORE) / 100;
    hot.min(u64::from(DAMOS_MAX_SCORE)) as u32
}

/// `damon_cold_score()`: `99 - hot_score`.
pub fn cold_score(attrs: &Attrs, r: &Region, s: &Scheme) -> u32 {
    DAMOS_MAX_SCORE - hot_score(attrs, r, s)
}

/// The score the kernel's vaddr backend gives: cold for pageout and
/// migrate_cold, hot for migrate_hot, the maximum otherwise.
pub fn vaddr_scheme_score(attrs: &Attrs, r: &Region, s: &Scheme) -> u32 {
    match s.action {
        Action::Pageout | Action::MigrateCold => cold_score(attrs, r, s),
        Action::MigrateHot => hot_score(attrs, r, s),
        _ => DAMOS_MAX_SCORE,
    }
}
