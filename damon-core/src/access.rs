//! Per-sample access accounting (`damon_update_region_access_rate()`), the
//! on-demand moving sum DAMOS reads (`damon_nr_accesses_mvsum()`), and the
//! conversions used when attributes change, following the mm tree.

use crate::attrs::Attrs;
use crate::region::{Region, BP_PER_ACCESS};

/// Records one sample's result for `r` (`damon_update_region_access_rate`):
/// one more sample with an access. The mm tree keeps no per-sample moving
/// sum any more; DAMOS reads a moving sum on demand
/// ([`nr_accesses_mvsum`]).
#[inline]
pub fn update_region_access_rate(r: &mut Region, accessed: bool, _attrs: &Attrs) {
    r.nr_accesses = r.nr_accesses.saturating_add(u32::from(accessed));
}

/// The backends' per-sample update, built once per `check_accesses`
/// (kept as the entry point the backends use; it no longer needs to
/// precompute anything since the per-sample moving sum is gone).
#[derive(Clone, Copy, Debug)]
pub struct AccessRate {
    len_window: u32,
}

impl AccessRate {
    /// Prepares updates for the current attributes.
    #[inline]
    pub fn new(attrs: &Attrs) -> Self {
        Self {
            len_window: attrs.max_nr_accesses().max(1),
        }
    }

    /// Records one sample's result for `r`.
    #[inline]
    pub fn update(&self, r: &mut Region, accessed: bool) {
        r.nr_accesses = r.nr_accesses.saturating_add(u32::from(accessed));
    }

    /// The window length (`damon_max_nr_accesses`).
    pub fn len_window(&self) -> u32 {
        self.len_window
    }
}

/// `damon_mvsum()` (the mm tree): a pseudo moving sum over one aggregation
/// window, `current + last * left_window_bp / 10000`, assuming the last
/// window's accesses came at a constant rate.
///
/// ```
/// assert_eq!(damon_core::access::mvsum(32, 100, 1000), 42);
/// ```
pub fn mvsum(current: u32, last: u32, left_window_bp: u32) -> u32 {
    let carried = u64::from(last) * u64::from(left_window_bp) / u64::from(BP_PER_ACCESS);
    (u64::from(current) + carried).min(u64::from(u32::MAX)) as u32
}

/// `damon_nr_accesses_mvsum()` (the mm tree): for how many samples of an
/// aggregation interval `r` was found accessed, as a moving sum ending now.
/// With the whole window left (just after a reset) it is the last
/// aggregation's count; with none left, the current one.
pub fn nr_accesses_mvsum(
    r: &Region,
    attrs: &Attrs,
    passed_sample_intervals: u64,
    next_aggregation_sis: u64,
) -> u32 {
    let window_len = (attrs.aggr_interval.max(1) / attrs.sample_interval.max(1)).max(1);
    let left_window = next_aggregation_sis.saturating_sub(passed_sample_intervals);
    let left_window_bp = (u128::from(left_window) * u128::from(BP_PER_ACCESS)
        / u128::from(window_len))
    .min(u128::from(u32::MAX)) as u32;
    if left_window_bp == BP_PER_ACCESS {
        return r.last_nr_accesses;
    }
    mvsum(r.nr_accesses, r.last_nr_accesses, left_window_bp)
}

/// `damon_nr_accesses_to_accesses_bp()`: `nr * 10000 / max_nr_accesses`,
/// computed without overflow.
pub fn nr_accesses_to_accesses_bp(nr_accesses: u32, attrs: &Attrs) -> u32 {
    let max = u64::from(attrs.max_nr_accesses().max(1));
    (u64::from(nr_accesses) * u64::from(BP_PER_ACCESS) / max).min(u64::from(u32::MAX)) as u32
}

/// `damon_accesses_bp_to_nr_accesses()`.
pub fn accesses_bp_to_nr_accesses(accesses_bp: u32, attrs: &Attrs) -> u32 {
    (u64::from(accesses_bp) * u64::from(attrs.max_nr_accesses()) / u64::from(BP_PER_ACCESS))
        .min(u64::from(u32::MAX)) as u32
}

/// `damon_nr_accesses_for_new_attrs()`.
pub fn nr_accesses_for_new_attrs(nr_accesses: u32, old: &Attrs, new: &Attrs) -> u32 {
    accesses_bp_to_nr_accesses(nr_accesses_to_accesses_bp(nr_accesses, old), new)
}

/// `damon_update_monitoring_result()`, as the mm tree has it: rescales one
/// region's results when the attributes change. `last_nr_accesses` is
/// always converted; `nr_accesses` too outside an aggregation, and reset in
/// the middle of one (`aggregating`).
pub fn update_monitoring_result(r: &mut Region, old: &Attrs, new: &Attrs, aggregating: bool) {
    r.last_nr_accesses = nr_accesses_for_new_attrs(r.last_nr_accesses, old, new);
    if !aggregating {
        r.nr_accesses = nr_accesses_for_new_attrs(r.nr_accesses, old, new);
    } else {
        r.nr_accesses = 0;
    }
    let new_aggr = new.aggr_interval.max(1);
    r.age = (u64::from(r.age) * old.aggr_interval / new_aggr).min(u64::from(u32::MAX)) as u32;
}
