//! Core filters (`addr`, `target`): matching with region splitting, and the
//! default-reject rules (`damos_filter_match`, `damos_set_filters_default_reject`).

use damon_core::backend::align_down;
use damon_core::backend::split_region_at;
use damon_core::damos::{Filter, FilterKind, Scheme};
use damon_core::Region;

/// `damos_filters_default_reject` over one group: memory no filter of the
/// group decided is rejected when the group's last filter is an allow-filter.
pub fn group_default_reject<'a>(filters: impl DoubleEndedIterator<Item = &'a Filter>) -> bool {
    filters.last().is_some_and(|f| f.allow)
}

/// The default-reject flags of a scheme: (core, ops). The core default is
/// forced false when any page-level filter exists, so undecided memory goes
/// on to the backend's filters.
pub fn default_reject(s: &Scheme) -> (bool, bool) {
    let has_ops = s.filters.iter().any(|f| !f.kind.is_core());
    let core = if has_ops {
        false
    } else {
        group_default_reject(s.filters.iter().filter(|f| f.kind.is_core()))
    };
    let ops = group_default_reject(s.filters.iter().filter(|f| !f.kind.is_core()));
    (core, ops)
}

/// `damos_filter_match` for a core filter on `regions[idx]` of target
/// `target_idx`: an address filter that cuts the region splits it so that
/// the head is decided whole (the tail is visited next). Returns whether the
/// filter's match equals its `matching`.
pub fn core_filter_match(
    regions: &mut Vec<Region>,
    idx: usize,
    target_idx: usize,
    f: &Filter,
    min_region_sz: u64,
) -> bool {
    let matched = match f.kind {
        FilterKind::Target { target_idx: t } => t == target_idx,
        FilterKind::Addr(range) => {
            let start = align_down(range.start, min_region_sz);
            let end = align_down(range.end, min_region_sz);
            let r = &regions[idx].ar;
            if start <= r.start && r.end <= end {
                true
            } else if r.end <= start || end <= r.start {
                false
            } else if r.start < start {
                let sz = start - r.start;
                split_region_at(regions, idx, sz);
                false
            } else {
                let sz = end - r.start;
                split_region_at(regions, idx, sz);
                true
            }
        }
        _ => false,
    };
    matched == f.matching
}

/// `damos_filter_out` for the core group: `Some(true)` rejects the region,
/// `Some(false)` accepts it; the bool in the result says whether an
/// allow-filter decided (then the backend skips its page-level filters).
pub fn core_filter_out(
    regions: &mut Vec<Region>,
    idx: usize,
    target_idx: usize,
    s: &Scheme,
    core_default_reject: bool,
    min_region_sz: u64,
) -> (bool, bool) {
    for f in s.filters.iter().filter(|f| f.kind.is_core()) {
        if core_filter_match(regions, idx, target_idx, f, min_region_sz) {
            return (!f.allow, f.allow);
        }
    }
    (core_default_reject, false)
}
