//! The "three regions" of a virtual address space (the kernel's
//! `__damon_va_three_regions`): the mappings cut at the two largest gaps
//! between consecutive mappings, which in a typical process separate the
//! binary and heap, the mmap area, and the stack.

use damon_core::AddrRange;

/// Why three regions could not be formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThreeRegionsError {
    /// Fewer than two non-empty gaps between the mappings.
    #[error("the address space has fewer than two gaps between mappings ({nr_mappings} mappings)")]
    TooFewGaps {
        /// Mappings seen.
        nr_mappings: usize,
    },
}

fn align_up(x: u64, align: u64) -> u64 {
    if align <= 1 {
        x
    } else {
        x.div_ceil(align).saturating_mul(align)
    }
}

/// Three regions from `mappings` (sorted by address, disjoint): the space
/// from the first start to the last end, minus the two largest gaps between
/// consecutive mappings. A gap replaces the largest only when strictly
/// larger (so among equal gaps the first found wins), and the old largest
/// becomes the second. Every bound is rounded **up** to `align` (the kernel
/// uses its minimum region size; its unit tests use 1).
///
/// ```
/// use damon_core::AddrRange;
/// use damon_ops_vaddr::three_regions::three_regions;
/// let vmas = [AddrRange::new(10, 20), AddrRange::new(200, 210), AddrRange::new(300, 305)];
/// let r = three_regions(vmas, 1).unwrap();
/// assert_eq!(r, [AddrRange::new(10, 20), AddrRange::new(200, 210), AddrRange::new(300, 305)]);
/// ```
pub fn three_regions(
    mappings: impl IntoIterator<Item = AddrRange>,
    align: u64,
) -> Result<[AddrRange; 3], ThreeRegionsError> {
    let mut first: Option<u64> = None;
    let mut prev_end: Option<u64> = None;
    let mut largest = AddrRange::default();
    let mut second = AddrRange::default();
    let mut n = 0usize;
    for m in mappings {
        n += 1;
        if first.is_none() {
            first = Some(m.start);
        }
        if let Some(pe) = prev_end {
            let gap = AddrRange::new(pe, m.start);
            if gap.len() > largest.len() {
                second = largest;
                largest = gap;
            } else if gap.len() > second.len() {
                second = gap;
            }
        }
        prev_end = Some(m.end);
    }
    let (Some(start), Some(end)) = (first, prev_end) else {
        return Err(ThreeRegionsError::TooFewGaps { nr_mappings: n });
    };
    if largest.is_empty() || second.is_empty() {
        return Err(ThreeRegionsError::TooFewGaps { nr_mappings: n });
    }
    let (g1, g2) = if largest.start < second.start {
        (largest, second)
    } else {
        (second, largest)
    };
    let a = |x| align_up(x, align);
    Ok([
        AddrRange::new(a(start), a(g1.start)),
        AddrRange::new(a(g1.end), a(g2.start)),
        AddrRange::new(a(g2.end), a(end)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use damon_core::backend::set_regions;
    use damon_core::Target;

    fn ar(s: u64, e: u64) -> AddrRange {
        AddrRange::new(s, e)
    }

    /// KUnit B1.
    #[test]
    fn damon_test_three_regions_in_vmas() {
        let vmas = [
            ar(10, 20),
            ar(20, 25),
            ar(200, 210),
            ar(210, 220),
            ar(300, 305),
            ar(307, 330),
        ];
        let r = three_regions(vmas, 1).unwrap();
        assert_eq!(r, [ar(10, 25), ar(200, 220), ar(300, 330)]);
    }

    /// B2-B5: `damon_set_regions(t, three, 3, 1)` on common initial regions;
    /// the first `expect.len()` regions are checked by position.
    fn apply_three_regions(three: [AddrRange; 3], expect: &[AddrRange]) {
        let initial = [
            ar(10, 20),
            ar(20, 30),
            ar(50, 55),
            ar(55, 57),
            ar(57, 59),
            ar(70, 80),
            ar(80, 90),
            ar(90, 100),
        ];
        let mut t = Target::with_ranges(0, &initial);
        set_regions(&mut t, &three, 1).unwrap();
        for (i, e) in expect.iter().enumerate() {
            assert_eq!(t.regions[i].ar, *e, "region {i}: {:?}", t.ranges());
        }
    }

    #[test]
    fn damon_test_apply_three_regions1() {
        apply_three_regions(
            [ar(5, 27), ar(45, 55), ar(73, 104)],
            &[
                ar(5, 20),
                ar(20, 27),
                ar(45, 55),
                ar(73, 80),
                ar(80, 90),
                ar(90, 104),
            ],
        );
    }

    #[test]
    fn damon_test_apply_three_regions2() {
        apply_three_regions(
            [ar(5, 27), ar(56, 57), ar(65, 104)],
            &[
                ar(5, 20),
                ar(20, 27),
                ar(56, 57),
                ar(65, 80),
                ar(80, 90),
                ar(90, 104),
            ],
        );
    }

    #[test]
    fn damon_test_apply_three_regions3() {
        apply_three_regions(
            [ar(5, 27), ar(61, 63), ar(65, 104)],
            &[
                ar(5, 20),
                ar(20, 27),
                ar(61, 63),
                ar(65, 80),
                ar(80, 90),
                ar(90, 104),
            ],
        );
    }

    #[test]
    fn damon_test_apply_three_regions4() {
        apply_three_regions(
            [ar(5, 7), ar(30, 32), ar(65, 68)],
            &[ar(5, 7), ar(30, 32), ar(65, 68)],
        );
    }

    // KUnit B6 (damon_test_split_evenly) tests damon_va_evenly_split_region,
    // a helper the kernel removed once the core enforced min_nr_regions
    // itself (damon_apply_min_nr_regions); it has no counterpart here.

    #[test]
    fn bounds_round_up_to_the_alignment() {
        let vmas = [
            ar(0x1000, 0x2800),
            ar(0x10_0000, 0x10_1000),
            ar(0x7000_0000, 0x7000_0800),
        ];
        let r = three_regions(vmas, 0x1000).unwrap();
        assert_eq!(
            r,
            [
                ar(0x1000, 0x3000),
                ar(0x10_0000, 0x10_1000),
                ar(0x7000_0000, 0x7000_1000)
            ]
        );
    }

    #[test]
    fn equal_gaps_keep_the_first_found() {
        let vmas = [ar(0, 10), ar(20, 30), ar(40, 50), ar(60, 70)];
        // gaps 10..20, 30..40, 50..60 all of size 10: the first two win
        assert_eq!(
            three_regions(vmas, 1).unwrap(),
            [ar(0, 10), ar(20, 30), ar(40, 70)]
        );
    }

    #[test]
    fn too_few_gaps() {
        assert!(three_regions([], 1).is_err());
        assert!(three_regions([ar(0, 10)], 1).is_err());
        assert!(three_regions([ar(0, 10), ar(20, 30)], 1).is_err());
        assert!(three_regions([ar(0, 10), ar(10, 20), ar(20, 30)], 1).is_err());
    }
}
