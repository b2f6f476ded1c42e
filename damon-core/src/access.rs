//! Per-sample access accounting: `damon_update_region_access_rate()` and the
//! conversions used when attributes change.

use crate::attrs::Attrs;
use crate::region::{Region, BP_PER_ACCESS};

/// `damon_moving_sum()`: a pseudo moving sum that assumes the values leaving
/// the window were uniform (`nomvsum / len_window` each).
///
/// Deviation: the kernel's unsigned arithmetic wraps if `mvsum` is smaller
/// than the leaving share (possible right after a merge); we saturate at 0.
pub fn moving_sum(mvsum: u32, nomvsum: u32, len_window: u32, new_value: u32) -> u32 {
    let len = len_window.max(1);
    mvsum
        .saturating_sub(nomvsum / len)
        .saturating_add(new_value)
}

/// Records one sample's result for `r` (`damon_update_region_access_rate`).
/// Backends that check many regions per sample should build an
/// [`AccessRate`] once and call [`AccessRate::update`] instead.
#[inline]
pub fn update_region_access_rate(r: &mut Region, accessed: bool, attrs: &Attrs) {
    AccessRate::new(attrs).update(r, accessed);
}

/// `damon_update_region_access_rate()` with the window length hoisted out
/// of the per-region loop: the kernel divides by `max_nr_accesses` for
/// every region and sample; this divides by a precomputed reciprocal
/// (exact for all 32-bit numerators: Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019).
#[derive(Clone, Copy, Debug)]
pub struct AccessRate {
    len_window: u32,
    /// ceil(2^64 / len_window); 0 when len_window is 1 (identity).
    magic: u64,
}

impl AccessRate {
    /// Prepares updates for the current attributes.
    #[inline]
    pub fn new(attrs: &Attrs) -> Self {
        let len_window = attrs.max_nr_accesses().max(1);
        let magic = if len_window == 1 {
            0
        } else {
            (u64::MAX / u64::from(len_window)).wrapping_add(1)
        };
        Self { len_window, magic }
    }

    /// `x / len_window` without a division instruction.
    #[inline]
    fn div(&self, x: u32) -> u32 {
        if self.magic == 0 {
            x
        } else {
            ((u128::from(self.magic) * u128::from(x)) >> 64) as u32
        }
    }

    /// Records one sample's result for `r`.
    ///
    /// Branch-free: `accessed` is close to random across regions, and a
    /// branch on it (which saturating 32-bit arithmetic made the compiler
    /// emit) mispredicted half the time. The 64-bit arithmetic clamps with
    /// conditional moves and gives the same results.
    #[inline]
    pub fn update(&self, r: &mut Region, accessed: bool) {
        let acc = u64::from(accessed);
        let nomvsum =
            (u64::from(r.last_nr_accesses) * u64::from(BP_PER_ACCESS)).min(u64::from(u32::MAX));
        let leaving = u64::from(self.div(nomvsum as u32));
        let bp =
            u64::from(r.nr_accesses_bp).saturating_sub(leaving) + acc * u64::from(BP_PER_ACCESS);
        r.nr_accesses_bp = bp.min(u64::from(u32::MAX)) as u32;
        r.nr_accesses = (u64::from(r.nr_accesses) + acc).min(u64::from(u32::MAX)) as u32;
    }

    /// The window length (`damon_max_nr_accesses`).
    pub fn len_window(&self) -> u32 {
        self.len_window
    }
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

/// `damon_update_monitoring_result()`: rescales one region's results when
/// the attributes change; `aggregating` is true in the middle of an aggregation.
pub fn update_monitoring_result(r: &mut Region, old: &Attrs, new: &Attrs, aggregating: bool) {
    if !aggregating {
        r.nr_accesses = nr_accesses_for_new_attrs(r.nr_accesses, old, new);
        r.nr_accesses_bp = r.nr_accesses.saturating_mul(BP_PER_ACCESS);
    } else {
        r.last_nr_accesses = nr_accesses_for_new_attrs(r.last_nr_accesses, old, new);
        r.nr_accesses_bp = r.last_nr_accesses.saturating_mul(BP_PER_ACCESS);
        r.nr_accesses = 0;
    }
    let new_aggr = new.aggr_interval.max(1);
    r.age = (u64::from(r.age) * old.aggr_interval / new_aggr).min(u64::from(u32::MAX)) as u32;
}
