//! Planning batched I/O: turn a sorted list of wanted units (bitmap words,
//! kpageflags entries, pagemap entries) into as few contiguous reads or
//! writes as possible.
//!
//! Units closer than `max_gap` missing units are fetched in one call (the
//! gap is read or written too); a call never exceeds `max_len` units
//! (sysfs files such as the page_idle bitmap take at most one page per call).

/// Size of one page_idle bitmap word in bytes (64 PFNs).
pub const BITMAP_WORD_BYTES: u64 = 8;
/// PFNs per page_idle bitmap word.
pub const PFNS_PER_WORD: u64 = 64;

/// One planned call: units `[start, start + len)`, serving the sorted input
/// items `items_start..items_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First unit.
    pub start: u64,
    /// Number of units (at least 1).
    pub len: u64,
    /// First input item served by this run.
    pub items_start: usize,
    /// One past the last input item served by this run.
    pub items_end: usize,
}

/// How aggressively to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalesce {
    /// Largest number of unwanted units between two wanted ones that are
    /// still fetched by the same call.
    pub max_gap: u64,
    /// Largest call, in units (at least 1).
    pub max_len: u64,
}

impl Coalesce {
    /// A policy; `max_len` is raised to 1 if 0.
    pub const fn new(max_gap: u64, max_len: u64) -> Self {
        Self {
            max_gap,
            max_len: if max_len == 0 { 1 } else { max_len },
        }
    }
}

/// Plans runs over `n` items whose unit is `key(i)`; keys must be sorted
/// (duplicates allowed). `out` is cleared and refilled, so a caller that
/// keeps it allocates nothing after warm-up.
///
/// ```
/// use damon_ops_common::coalesce::{plan_runs, Coalesce, Run};
/// let keys = [3u64, 4, 4, 9, 100];
/// let mut runs = Vec::new();
/// plan_runs(keys.len(), |i| keys[i], Coalesce::new(4, 512), &mut runs);
/// assert_eq!(runs.len(), 2);
/// assert_eq!(runs[0], Run { start: 3, len: 7, items_start: 0, items_end: 4 });
/// ```
pub fn plan_runs(n: usize, key: impl Fn(usize) -> u64, policy: Coalesce, out: &mut Vec<Run>) {
    out.clear();
    // at most one run per item: reserving it keeps a caller's reused
    // buffer from growing at random moments as the keys spread differently
    if out.capacity() < n {
        out.reserve(n);
    }
    let max_len = policy.max_len.max(1);
    let mut i = 0;
    while i < n {
        let start = key(i);
        let mut last = start;
        let mut j = i + 1;
        while j < n {
            let k = key(j);
            debug_assert!(k >= last, "plan_runs needs sorted keys");
            let k = k.max(last);
            // gap = units strictly between `last` and `k`
            let gap = k.saturating_sub(last).saturating_sub(1);
            if gap > policy.max_gap || k - start >= max_len {
                break;
            }
            last = k;
            j += 1;
        }
        out.push(Run {
            start,
            len: last - start + 1,
            items_start: i,
            items_end: j,
        });
        i = j;
    }
}

/// The `(byte offset, byte length)` page_idle bitmap calls needed to cover
/// the sorted `pfns` under `policy` (in words). A pure helper for tests and
/// cost estimates; the sampler plans the same way.
///
/// ```
/// use damon_ops_common::coalesce::{plan_bitmap_calls, Coalesce};
/// // PFNs 0..=127 live in words 0 and 1: one 16-byte call.
/// assert_eq!(plan_bitmap_calls(&[0, 5, 64, 127], Coalesce::new(0, 512)), vec![(0, 16)]);
/// ```
pub fn plan_bitmap_calls(pfns: &[u64], policy: Coalesce) -> Vec<(u64, usize)> {
    let mut runs = Vec::new();
    plan_runs(pfns.len(), |i| pfns[i] / PFNS_PER_WORD, policy, &mut runs);
    runs.iter()
        .map(|r| {
            (
                r.start * BITMAP_WORD_BYTES,
                (r.len * BITMAP_WORD_BYTES) as usize,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adjacent_words_make_one_call_and_far_ones_separate_calls() {
        // words 10, 11, 12 adjacent; 40 far; 41 adjacent to 40
        let pfns = [640, 700, 705, 770, 830, 2560, 2630];
        let calls = plan_bitmap_calls(&pfns, Coalesce::new(0, 512));
        assert_eq!(calls, vec![(80, 24), (320, 16)]);
    }

    #[test]
    fn small_gaps_are_merged_up_to_the_policy() {
        let pfns: Vec<u64> = (0..100).map(|i| i * 64 * 3).collect(); // every third word
        assert_eq!(plan_bitmap_calls(&pfns, Coalesce::new(2, 4096)).len(), 1);
        assert_eq!(plan_bitmap_calls(&pfns, Coalesce::new(1, 4096)).len(), 100);
    }

    #[test]
    fn calls_never_exceed_max_len() {
        let pfns: Vec<u64> = (0..2048u64).map(|w| w * 64).collect();
        let calls = plan_bitmap_calls(&pfns, Coalesce::new(0, 512));
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|&(_, len)| len <= 4096));
        assert_eq!(calls[1].0, 4096);
    }

    #[test]
    fn a_dense_sample_of_a_small_machine_needs_few_calls() {
        // 1000 sampled PFNs spread over a 1 GiB machine (262144 PFNs, 4096 words).
        let mut pfns: Vec<u64> = (0..1000u64)
            .map(|i| (i * 2_654_435_761) % 262_144)
            .collect();
        pfns.sort_unstable();
        let calls = plan_bitmap_calls(&pfns, Coalesce::new(8, 512));
        assert!(calls.len() <= 100, "{} calls for 1000 PFNs", calls.len());
        let naive = plan_bitmap_calls(&pfns, Coalesce::new(0, 1));
        assert!(naive.len() > 500);
    }

    #[test]
    fn empty_input_plans_nothing_and_duplicates_share_a_run() {
        assert!(plan_bitmap_calls(&[], Coalesce::new(8, 512)).is_empty());
        let mut runs = Vec::new();
        plan_runs(3, |_| 7, Coalesce::new(0, 1), &mut runs);
        assert_eq!(
            runs,
            vec![Run {
                start: 7,
                len: 1,
                items_start: 0,
                items_end: 3
            }]
        );
    }

    proptest! {
        #[test]
        fn runs_cover_every_item_exactly_once(mut keys in proptest::collection::vec(0u64..100_000, 0..300),
                                              gap in 0u64..64, max_len in 1u64..600) {
            keys.sort_unstable();
            let mut runs = Vec::new();
            plan_runs(keys.len(), |i| keys[i], Coalesce::new(gap, max_len), &mut runs);
            let mut next = 0;
            for r in &runs {
                prop_assert_eq!(r.items_start, next);
                prop_assert!(r.items_end > r.items_start);
                prop_assert!(r.len >= 1 && r.len <= max_len);
                for &k in &keys[r.items_start..r.items_end] {
                    prop_assert!(k >= r.start && k < r.start + r.len);
                }
                next = r.items_end;
            }
            prop_assert_eq!(next, keys.len());
            for w in runs.windows(2) {
                prop_assert!(w[0].start + w[0].len <= w[1].start);
            }
        }
    }
}
