//! Sample slots: the sampler numbers the sampled pages of one sample by
//! slot, one slot per region of the context, targets in order and regions
//! in order within a target. Both backends mark pages by slot in
//! `prepare_access_checks` and read verdicts by slot in `check_accesses`;
//! this module is that numbering, written once.

use crate::sampler::PfnSampler;
use damon_core::{update_region_access_rate, Attrs, Target};

/// Slots one sample needs: the number of regions of every target.
pub fn nr_slots(targets: &[Target]) -> usize {
    targets.iter().map(|t| t.regions.len()).sum()
}

/// Every target with the slot of its first region (the next target's first
/// slot is this one's plus its region count).
///
/// ```
/// use damon_core::{Region, Target};
/// let mut ts = vec![Target::new(1), Target::new(2)];
/// ts[0].regions.push(Region::new(0, 4096));
/// ts[0].regions.push(Region::new(4096, 8192));
/// let firsts: Vec<usize> = damon_ops_common::slots::first_slots(&mut ts).map(|(s, _)| s).collect();
/// assert_eq!(firsts, [0, 2]);
/// ```
pub fn first_slots(targets: &mut [Target]) -> impl Iterator<Item = (usize, &mut Target)> {
    targets.iter_mut().scan(0usize, |next, t| {
        let first = *next;
        *next += t.regions.len();
        Some((first, t))
    })
}

/// `check_accesses`' bookkeeping: updates every region's access rate from
/// its slot's verdict (a target for which `live` is false reads as not
/// accessed) and returns the largest `nr_accesses`.
pub fn update_access_rates(
    sampler: &PfnSampler,
    targets: &mut [Target],
    attrs: &Attrs,
    mut live: impl FnMut(&Target) -> bool,
) -> u32 {
    let mut max = 0;
    for (first, t) in first_slots(targets) {
        let live = live(t);
        for (i, r) in t.regions.iter_mut().enumerate() {
            update_region_access_rate(r, live && sampler.accessed(first + i), attrs);
            max = max.max(r.nr_accesses);
        }
    }
    max
}
