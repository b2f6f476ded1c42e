//! Engine invariants over random attributes, access patterns and commits.

mod common;
use common::*;
use damon_core::*;
use proptest::prelude::*;

fn check_invariants(
    kd: &Kdamond,
    space: &[AddrRange],
    total: u64,
    after_aggregation: bool,
) -> Result<(), TestCaseError> {
    let ctx = kd.ctx();
    let attrs = ctx.attrs;
    let t = &ctx.targets[0];
    prop_assert_eq!(t.total_bytes(), total, "bytes conserved by merge and split");
    for (i, r) in t.regions.iter().enumerate() {
        prop_assert!(!r.ar.is_empty(), "region {} empty", i);
        prop_assert!(
            space
                .iter()
                .any(|s| s.start <= r.ar.start && r.ar.end <= s.end),
            "region {} outside the target",
            r.ar
        );
        if i > 0 {
            prop_assert!(
                t.regions[i - 1].ar.end <= r.ar.start,
                "regions sorted and disjoint"
            );
        }
        prop_assert!(r.nr_accesses <= attrs.max_nr_accesses());
        prop_assert!(r.last_nr_accesses <= attrs.max_nr_accesses());
        prop_assert!(
            r.ar.start % ctx.min_region_sz == 0 && r.ar.end % ctx.min_region_sz == 0,
            "aligned"
        );
        if after_aggregation {
            prop_assert_eq!(r.nr_accesses, 0, "reset after aggregation");
        }
    }
    if after_aggregation {
        let n = ctx.nr_regions() as u32;
        prop_assert!(
            n >= attrs.min_nr_regions && n <= attrs.max_nr_regions,
            "{} regions outside [{}, {}]",
            n,
            attrs.min_nr_regions,
            attrs.max_nr_regions
        );
    }
    Ok(())
}

fn arb_pattern() -> impl Strategy<Value = (Vec<AddrRange>, Vec<Phase>)> {
    // 1..3 mapped ranges of 64 MiB..4 GiB (page multiples) with gaps, and
    // 1..3 phases of 0..4 hot ranges inside them.
    (
        1usize..=3,
        prop::collection::vec((16u64..1024, 1u64..64), 3),
        prop::collection::vec(
            (
                1u64..30,
                prop::collection::vec((0u64..1000, 1u64..200, 0.0f64..=1.0), 0..4),
            ),
            1..3,
        ),
    )
        .prop_map(|(n, sizes, phases)| {
            let mut space = Vec::new();
            let mut at = 0x10_0000u64;
            for &(sz, gap) in sizes.iter().take(n) {
                let len = sz * 4 * M;
                space.push(AddrRange::new(at, at + len));
                at += len + gap * 16 * M;
            }
            let phases = phases
                .into_iter()
                .map(|(dur_aggr, hots)| {
                    let mut hot: Vec<HotRange> = Vec::new();
                    for (pos, len, p) in hots {
                        let s = space[(pos as usize) % space.len()];
                        let start = s.start + (s.len() / 1000) * pos / 4096 * 4096;
                        let end = (start + len * M).min(s.end);
                        if end > start && hot.last().is_none_or(|h| h.range.end <= start) {
                            hot.push(HotRange {
                                range: AddrRange::new(start, end),
                                probability: p,
                            });
                        }
                    }
                    hot.sort_by_key(|h| h.range.start);
                    hot.dedup_by(|b, a| b.range.start < a.range.end);
                    Phase {
                        duration_us: dur_aggr * 100_000,
                        hot,
                    }
                })
                .collect();
            (space, phases)
        })
}

fn arb_attrs() -> impl Strategy<Value = Attrs> {
    (1u64..=20, 2u64..=40, 3u32..=60, 8u32..=1500).prop_map(|(si_ms, ratio, min, extra)| Attrs {
        sample_interval: si_ms * 1000,
        aggr_interval: si_ms * 1000 * ratio,
        ops_update_interval: si_ms * 1000 * ratio * 10,
        min_nr_regions: min,
        max_nr_regions: 2 * min + extra,
        ..Attrs::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_sample_and_aggregation(
        (space, phases) in arb_pattern(),
        attrs in arb_attrs(),
        commits in prop::collection::vec(arb_attrs(), 0..3),
        seed in any::<u64>(),
    ) {
        let pattern = SimPattern { space: space.clone(), phases, exit_after_us: None };
        let total: u64 = space.iter().map(AddrRange::len).sum();
        let mut kd = sim_loop(pattern, seed, attrs);
        check_invariants(&kd, &space, total, false)?;
        let mut commits = commits.into_iter();
        for aggr in 0..24 {
            let start = kd.ctx().loop_state().next_aggregation_sis;
            while kd.ctx().loop_state().next_aggregation_sis == start {
                prop_assert!(kd.step().is_none());
                let done = kd.ctx().loop_state().next_aggregation_sis != start;
                check_invariants(&kd, &space, total, done)?;
            }
            if aggr % 8 == 7 {
                if let Some(new_attrs) = commits.next() {
                    let mut src = Context::new();
                    src.attrs = new_attrs;
                    src.targets.push(Target::new(0));
                    kd.commit(src).unwrap();
                    prop_assert_eq!(kd.ctx().attrs, new_attrs);
                    // the committed target had no regions: results are kept
                    prop_assert_eq!(kd.ctx().targets[0].total_bytes(), total);
                }
            }
        }
    }

    /// A rejected commit leaves the loop exactly as it was.
    #[test]
    fn rejected_commit_changes_nothing(attrs in arb_attrs(), seed in any::<u64>(), bad in 0usize..5) {
        let pattern = SimPattern::uniform(4 * G, 0.3);
        let mut kd = sim_loop(pattern, seed, attrs);
        for _ in 0..3 { step_aggregation(&mut kd); }
        let before = (kd.ctx().targets.clone(), kd.ctx().attrs, kd.ctx().loop_state(), kd.ctx().min_region_sz);
        let mut src = Context::new();
        src.targets.push(Target::new(0));
        match bad {
            0 => src.attrs.min_nr_regions = 2,
            1 => src.attrs.aggr_interval = src.attrs.sample_interval - 1,
            2 => src.min_region_sz = 3000,
            3 => src.targets[0] = Target::with_ranges(0, &[AddrRange::new(0, 8192), AddrRange::new(4096, 16384)]),
            _ => { let mut t = Target::new(1); t.obsolete = true; src.targets.push(t); }
        }
        prop_assert!(kd.commit(src).is_err());
        let after = (kd.ctx().targets.clone(), kd.ctx().attrs, kd.ctx().loop_state(), kd.ctx().min_region_sz);
        prop_assert_eq!(before, after);
    }
}

/// Idle memory: every region's age equals the number of completed
/// aggregations (one merge pass each), whatever splits and merges happened.
#[test]
fn age_counts_aggregations_of_unchanged_idle_memory() {
    let mut kd = sim_loop(SimPattern::uniform(8 * G, 0.0), 9, Attrs::default());
    for n in 1..=15u32 {
        step_aggregation(&mut kd);
        for r in &kd.ctx().targets[0].regions {
            assert_eq!(r.age, n, "region {}", r.ar);
            assert_eq!(r.last_nr_accesses, 0);
        }
    }
}

/// A region whose access count jumps (0 -> >0) gets age 0 (the age rule).
#[test]
fn age_resets_when_access_pattern_changes() {
    let hot = HotRange {
        range: AddrRange::new(0, 8 * G),
        probability: 1.0,
    };
    let pattern = SimPattern {
        space: vec![AddrRange::new(0, 8 * G)],
        phases: vec![
            Phase {
                duration_us: 1_002_500,
                hot: vec![],
            },
            Phase {
                duration_us: u64::MAX / 4,
                hot: vec![hot],
            },
        ],
        exit_after_us: None,
    };
    // 200 idle samples (10 aggregations), the boundary between two samples
    let mut kd = sim_loop(pattern, 2, Attrs::default());
    for _ in 0..10 {
        step_aggregation(&mut kd);
    }
    assert!(kd.ctx().targets[0].regions.iter().all(|r| r.age >= 9));
    step_aggregation(&mut kd); // first aggregation of the hot phase
    for r in &kd.ctx().targets[0].regions {
        assert_eq!(r.last_nr_accesses, 20, "every sample saw an access");
        assert_eq!(r.age, 0, "0 -> 20 accesses resets the age");
    }
    step_aggregation(&mut kd);
    assert!(kd.ctx().targets[0].regions.iter().all(|r| r.age == 1));
}

/// Found by proptest: a commit lowering `max_nr_regions` (min 24/max 56 ->
/// min 3/max 14) over idle memory must hold at the next aggregation.
#[test]
fn commit_lowering_max_nr_regions_holds_at_the_next_aggregation() {
    let attrs = Attrs {
        sample_interval: 1000,
        aggr_interval: 2000,
        ops_update_interval: 20_000,
        min_nr_regions: 24,
        max_nr_regions: 56,
        ..Attrs::default()
    };
    let pattern = SimPattern {
        space: vec![AddrRange::new(1 << 20, 65 << 20)],
        phases: vec![Phase {
            duration_us: 100_000,
            hot: vec![],
        }],
        exit_after_us: None,
    };
    let mut kd = sim_loop(pattern, 0, attrs);
    for _ in 0..8 {
        step_aggregation(&mut kd);
    }
    assert!(kd.ctx().nr_regions() >= 24);
    let mut src = Context::new();
    src.attrs = Attrs {
        min_nr_regions: 3,
        max_nr_regions: 14,
        ..attrs
    };
    src.targets.push(Target::new(0));
    kd.commit(src).unwrap();
    step_aggregation(&mut kd);
    let n = kd.ctx().nr_regions();
    assert!((3..=14).contains(&n), "{n} regions after the commit");
}

/// Found by proptest: a commit raising min_nr_regions (5 -> 18) while
/// regions are sized for the old minimum must keep the count within the new
/// max at the next aggregation.
#[test]
fn commit_raising_min_nr_regions_holds_at_the_next_aggregation() {
    let a = |aggr: u64, min: u32, max: u32| Attrs {
        sample_interval: 1000,
        aggr_interval: aggr,
        ops_update_interval: aggr * 10,
        min_nr_regions: min,
        max_nr_regions: max,
        ..Attrs::default()
    };
    let hot = HotRange {
        range: AddrRange::new(1_086_853_120, 1_147_670_528),
        probability: 0.32,
    };
    let pattern = SimPattern {
        space: vec![AddrRange::new(1 << 20, 3_549_429_760)],
        phases: vec![Phase {
            duration_us: 100_000,
            hot: vec![hot],
        }],
        exit_after_us: None,
    };
    let mut kd = sim_loop(pattern, 7_467_328_585_277_609_812, a(31_000, 21, 93));
    for (commit, attrs) in [(8, a(4000, 5, 290)), (16, a(6000, 18, 193))] {
        while kd.ctx().passed_sample_intervals() < commit * 30 {
            step_aggregation(&mut kd);
        }
        let mut src = Context::new();
        src.attrs = attrs;
        src.targets.push(Target::new(0));
        kd.commit(src).unwrap();
        for _ in 0..8 {
            step_aggregation(&mut kd);
            let n = kd.ctx().nr_regions() as u32;
            assert!(
                n >= attrs.min_nr_regions && n <= attrs.max_nr_regions,
                "{n} regions outside [{}, {}]",
                attrs.min_nr_regions,
                attrs.max_nr_regions
            );
        }
    }
}
