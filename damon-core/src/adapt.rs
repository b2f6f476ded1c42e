//! Adaptive regions adjustment (kernel `core.c`): merge, split,
//! `min_nr_regions` enforcement and `damon_set_regions()`.
//!
//! Regions live in a `Vec` per target instead of the kernel's linked list.
//! Merging compacts in place; splitting writes into a scratch vector that is
//! swapped with the target's, so after warm-up neither allocates.

use crate::error::InvalidParam;
use crate::region::{align_down, align_up, AddrRange, Region};
use crate::rng::Rng;
use crate::target::Target;

/// `damon_split_region_at()`: splits `regions[idx]` so that it keeps its
/// first `sz_r` bytes; the new tail region copies the counters and is
/// inserted right after it.
pub fn split_region_at(regions: &mut Vec<Region>, idx: usize, sz_r: u64) {
    let r = &mut regions[idx];
    debug_assert!(sz_r > 0 && sz_r < r.size());
    let mut tail = r.clone();
    tail.ar.start = r.ar.start + sz_r;
    tail.sampling_addr = tail.ar.start;
    r.ar.end = tail.ar.start;
    regions.insert(idx + 1, tail);
}

/// `damon_merge_two_regions()`: folds `r` into `l` with size-weighted
/// (floored) averages of `nr_accesses` and `age`. `l` keeps its `last_nr_accesses`.
#[inline]
pub fn merge_two_regions(l: &mut Region, r: &Region) {
    let sz_l = u128::from(l.size());
    let sz_r = u128::from(r.size());
    let total = sz_l + sz_r;
    l.nr_accesses =
        ((u128::from(l.nr_accesses) * sz_l + u128::from(r.nr_accesses) * sz_r) / total) as u32;
    l.age = ((u128::from(l.age) * sz_l + u128::from(r.age) * sz_r) / total) as u32;
    l.ar.end = r.ar.end;
}

/// The age rule of `damon_merge_regions_of()`, applied on the first merge
/// pass of an aggregation only (the mm tree; the baseline applied it on
/// every repeated pass).
#[inline]
fn update_age(r: &mut Region, thres: u32) {
    if r.nr_accesses.abs_diff(r.last_nr_accesses) > thres
        || (r.nr_accesses == 0) != (r.last_nr_accesses == 0)
    {
        r.age = 0;
    } else {
        r.age = r.age.saturating_add(1);
    }
}

/// `damon_merge_regions_of()`: one left-to-right pass that updates ages
/// (when `count_age`) and merges adjacent regions whose `nr_accesses`
/// differ by at most `thres`, as long as the merged size stays within
/// `sz_limit`.
pub fn merge_regions_of(regions: &mut Vec<Region>, thres: u32, sz_limit: u64, count_age: bool) {
    if regions.is_empty() {
        return;
    }
    let mut w = 0usize; // index of `prev`
    if count_age {
        update_age(&mut regions[0], thres);
    }
    for i in 1..regions.len() {
        if count_age {
            update_age(&mut regions[i], thres);
        }
        let (head, tail) = regions.split_at_mut(i);
        let prev = &mut head[w];
        let r = &tail[0];
        if prev.ar.end == r.ar.start
            && prev.nr_accesses.abs_diff(r.nr_accesses) <= thres
            && prev.size().saturating_add(r.size()) <= sz_limit
        {
            merge_two_regions(prev, r);
        } else {
            w += 1;
            if w != i {
                regions.swap(w, i);
            }
        }
    }
    regions.truncate(w + 1);
}

/// `kdamond_merge_regions()`, following the mm tree: merges with
/// `threshold`; while the total count exceeds `max_nr_regions` and the
/// threshold is below `max_thres` (samples per aggregation), repeats with
/// the threshold doubled (at least one, at most `max_thres`). Ages are
/// counted on the first pass only.
pub fn merge_regions(
    targets: &mut [Target],
    mut threshold: u32,
    sz_limit: u64,
    max_nr_regions: u32,
    max_thres: u64,
) {
    let max_thres = max_thres.min(u64::from(u32::MAX)) as u32;
    let mut count_age = true;
    loop {
        let mut nr_regions = 0usize;
        for t in targets.iter_mut() {
            merge_regions_of(&mut t.regions, threshold, sz_limit, count_age);
            nr_regions += t.regions.len();
        }
        count_age = false;
        if nr_regions <= max_nr_regions as usize || max_thres <= threshold {
            break;
        }
        threshold = if threshold < max_thres / 2 {
            threshold.saturating_mul(2).max(1)
        } else {
            max_thres
        };
    }
}

/// `damon_split_regions_of()`: splits every region into up to `nr_subs`
/// pieces at random points between 10% and 90% of its size, aligned to
/// `min_region_sz`, always continuing with the left piece.
pub fn split_regions_of(
    regions: &mut Vec<Region>,
    scratch: &mut Vec<Region>,
    nr_subs: u32,
    min_region_sz: u64,
    rng: &mut Rng,
) {
    scratch.clear();
    for r in regions.iter() {
        let mut cur = r.clone();
        let mut sz_region = cur.size();
        // Pieces split off from `cur`, right to left; emitted after it in reverse.
        let mark = scratch.len();
        let mut i = 0;
        while i + 1 < nr_subs as usize && sz_region > 2 * min_region_sz {
            i += 1;
            let factor = rng.range(1, 10);
            let sz_sub = align_down(
                (u128::from(factor) * u128::from(sz_region) / 10) as u64,
                min_region_sz.max(1),
            );
            if sz_sub == 0 || sz_sub >= sz_region {
                continue;
            }
            let mut tail = cur.clone();
            tail.ar.start = cur.ar.start + sz_sub;
            tail.sampling_addr = tail.ar.start;
            cur.ar.end = tail.ar.start;
            scratch.push(tail);
            sz_region = sz_sub;
        }
        scratch.push(cur);
        // `cur` (leftmost) was pushed last; the tails are in right-to-left order.
        scratch[mark..].reverse();
    }
    std::mem::swap(regions, scratch);
}

/// `damon_split_some_regions()` (the mm tree): splits one in every `step`
/// regions (counted across targets, from a rotating `offset`) in two at a
/// random point between 10% and 90%, aligned to `min_region_sz`. Regions
/// split off are not visited again.
pub fn split_some_regions(
    targets: &mut [Target],
    scratch: &mut Vec<Region>,
    step: usize,
    offset: usize,
    min_region_sz: u64,
    rng: &mut Rng,
) {
    let step = step.max(1);
    let min = min_region_sz.max(1);
    let mut idx = 0usize;
    for t in targets.iter_mut() {
        scratch.clear();
        for r in t.regions.iter() {
            let visit = idx % step == offset;
            idx += 1;
            let sz_region = r.size();
            if !visit || sz_region < 2 * min {
                scratch.push(r.clone());
                continue;
            }
            let factor = rng.range(1, 10);
            let sz_sub = align_down(
                (u128::from(factor) * u128::from(sz_region) / 10) as u64,
                min,
            );
            if sz_sub == 0 || sz_sub >= sz_region {
                scratch.push(r.clone());
                continue;
            }
            let mut head = r.clone();
            let mut tail = r.clone();
            head.ar.end = r.ar.start + sz_sub;
            tail.ar.start = head.ar.end;
            tail.sampling_addr = tail.ar.start;
            scratch.push(head);
            scratch.push(tail);
        }
        std::mem::swap(&mut t.regions, scratch);
    }
}

/// `kdamond_split_regions()`, following the mm tree: nothing at or above
/// `max_nr_regions`; above half of it, one in every
/// `max / (max - nr_regions)` regions is split in two
/// ([`split_some_regions`], from a rotating offset); otherwise every region
/// is split in two, or in three when the count did not change since the
/// last call and is below a third of `max_nr_regions`.
///
/// `last_nr_regions` and `rotation` are function-statics in the kernel,
/// shared by every context; here each context keeps its own, so contexts
/// cannot influence each other's split decisions.
pub fn split_regions(
    targets: &mut [Target],
    scratch: &mut Vec<Region>,
    max_nr_regions: u32,
    min_region_sz: u64,
    last_nr_regions: &mut usize,
    rotation: &mut u64,
    rng: &mut Rng,
) {
    let nr_regions: usize = targets.iter().map(|t| t.regions.len()).sum();
    let max = max_nr_regions as usize;
    if nr_regions >= max {
        // nothing to do
    } else if nr_regions > max / 2 {
        let step = max / (max - nr_regions);
        let offset = (*rotation % step.max(1) as u64) as usize;
        *rotation = rotation.wrapping_add(1);
        split_some_regions(targets, scratch, step, offset, min_region_sz, rng);
    } else {
        let nr_subregions = if *last_nr_regions == nr_regions && nr_regions < max / 3 {
            3
        } else {
            2
        };
        for t in targets.iter_mut() {
            split_regions_of(&mut t.regions, scratch, nr_subregions, min_region_sz, rng);
        }
    }
    *last_nr_regions = nr_regions;
}

/// `damon_region_sz_limit()`: total bytes / `min_nr_regions`, at least `min_region_sz`.
pub fn region_sz_limit(targets: &[Target], min_nr_regions: u32, min_region_sz: u64) -> u64 {
    let mut sz: u64 = targets
        .iter()
        .map(Target::total_bytes)
        .fold(0, u64::saturating_add);
    if min_nr_regions != 0 {
        sz /= u64::from(min_nr_regions);
    }
    sz.max(min_region_sz)
}

/// `damon_apply_min_nr_regions()`: cuts every region larger than the size
/// limit (aligned up to `min_region_sz`) into limit-sized pieces from its
/// start. Returns that limit, which is the merge step's `sz_limit`.
pub fn apply_min_nr_regions(
    targets: &mut [Target],
    scratch: &mut Vec<Region>,
    min_nr_regions: u32,
    min_region_sz: u64,
) -> u64 {
    let max_sz = align_up(
        region_sz_limit(targets, min_nr_regions, min_region_sz),
        min_region_sz,
    )
    .max(1);
    for t in targets.iter_mut() {
        if t.regions.iter().all(|r| r.size() <= max_sz) {
            continue;
        }
        scratch.clear();
        for r in &t.regions {
            let mut cur = r.clone();
            while cur.size() > max_sz {
                let mut head = cur.clone();
                head.ar.end = cur.ar.start + max_sz;
                scratch.push(head);
                cur.ar.start += max_sz;
                cur.sampling_addr = cur.ar.start;
            }
            scratch.push(cur);
        }
        std::mem::swap(&mut t.regions, scratch);
    }
    max_sz
}

/// Checks that `ranges` are non-empty, sorted and non-overlapping, as
/// `damon_set_regions()` requires. `field` names them in the error.
pub fn validate_ranges(ranges: &[AddrRange], field: &str) -> Result<(), InvalidParam> {
    for (i, r) in ranges.iter().enumerate() {
        if r.is_empty() {
            return Err(InvalidParam::new(
                format!("{field}[{i}]"),
                format!("range {r} is empty or inverted"),
            ));
        }
        if i > 0 && ranges[i - 1].end > r.start {
            return Err(InvalidParam::new(
                format!("{field}[{i}]"),
                format!("range {r} overlaps or precedes {}", ranges[i - 1]),
            ));
        }
    }
    Ok(())
}

/// `damon_set_regions()`: makes the target's regions cover exactly `ranges`
/// (aligned outwards to `min_region_sz`). Regions that intersect no range
/// are dropped; intersecting ones are resized and keep their counters;
/// holes are filled with fresh regions.
pub fn set_regions(
    t: &mut Target,
    ranges: &[AddrRange],
    min_region_sz: u64,
) -> Result<(), InvalidParam> {
    validate_ranges(ranges, "ranges")?;
    let regions = &mut t.regions;
    regions.retain(|r| ranges.iter().any(|rg| r.ar.intersects(rg)));

    let mut pos = 0usize;
    for range in ranges {
        let mut first: Option<usize> = None;
        let mut last = 0usize;
        while pos < regions.len() {
            let r = &regions[pos];
            if r.ar.intersects(range) {
                if first.is_none() {
                    first = Some(pos);
                }
                last = pos;
            }
            if r.ar.start >= range.end {
                break;
            }
            pos += 1;
        }
        let start = align_down(range.start, min_region_sz);
        let end = align_up(range.end, min_region_sz);
        match first {
            None => {
                regions.insert(pos, Region::new(start, end));
                pos += 1;
            }
            Some(first) => {
                regions[first].ar.start = start;
                regions[last].ar.end = end;
                // fill holes between first..=last (damon_fill_regions_holes)
                let mut i = first;
                let mut last = last;
                while i < last {
                    let (e, s) = (regions[i].ar.end, regions[i + 1].ar.start);
                    if e != s {
                        regions.insert(i + 1, Region::new(e, s));
                        last += 1;
                        pos += 1;
                        i += 1;
                    }
                    i += 1;
                }
            }
        }
    }
    Ok(())
}

/// Checks a target's regions: sorted, disjoint, non-empty.
pub fn validate_regions(t: &Target, field: &str) -> Result<(), InvalidParam> {
    for (i, r) in t.regions.iter().enumerate() {
        if r.ar.is_empty() {
            return Err(InvalidParam::new(
                format!("{field}[{i}]"),
                format!("region {} is empty or inverted", r.ar),
            ));
        }
        if i > 0 && t.regions[i - 1].ar.end > r.ar.start {
            return Err(InvalidParam::new(
                format!("{field}[{i}]"),
                format!(
                    "region {} overlaps or precedes {}",
                    r.ar,
                    t.regions[i - 1].ar
                ),
            ));
        }
    }
    Ok(())
}
