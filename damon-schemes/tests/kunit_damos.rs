//! The kernel's DAMOS KUnit tests (`core-kunit.h`), ported under the same
//! names; ids refer to `kernel-kunit-vectors.md` section A.

use damon_core::damos::*;
use damon_core::{AddrRange, Region};
use damon_schemes::filter::{core_filter_match, default_reject};

/// A17
#[test]
fn damos_test_new_filter() {
    let f = Filter {
        kind: FilterKind::Anon,
        matching: true,
        allow: false,
    };
    assert_eq!(f.kind, FilterKind::Anon);
    assert!(f.matching);
    assert!(!f.allow);
    assert!(!f.kind.is_core());
}

fn goal(metric: GoalMetric, target: u64, current: u64, nid: i32) -> QuotaGoal {
    QuotaGoal {
        metric,
        target_value: target,
        current_value: current,
        nid,
        memcg_id: 0,
    }
}

/// A18
#[test]
fn damos_test_commit_quota_goal() {
    let mut dst = goal(GoalMetric::SomeMemPsiUs, 1000, 123, 0);
    commit_quota_goal(&mut dst, &goal(GoalMetric::UserInput, 789, 12, 0));
    assert_eq!(
        (dst.metric, dst.target_value, dst.current_value),
        (GoalMetric::UserInput, 789, 12)
    );
    commit_quota_goal(&mut dst, &goal(GoalMetric::NodeMemFreeBp, 345, 678, 9));
    assert_eq!(
        (dst.metric, dst.target_value, dst.nid),
        (GoalMetric::NodeMemFreeBp, 345, 9)
    );
    assert_eq!(
        dst.current_value, 12,
        "a measured metric's current value is not copied"
    );
    commit_quota_goal(&mut dst, &goal(GoalMetric::NodeMemUsedBp, 12, 345, 6));
    assert_eq!(
        (dst.metric, dst.target_value, dst.nid),
        (GoalMetric::NodeMemUsedBp, 12, 6)
    );
    let memcg = |metric, target, current, nid, memcg_id| QuotaGoal {
        memcg_id,
        ..goal(metric, target, current, nid)
    };
    commit_quota_goal(
        &mut dst,
        &memcg(GoalMetric::NodeMemcgUsedBp, 456, 567, 6, 7),
    );
    assert_eq!(
        (dst.metric, dst.target_value, dst.nid, dst.memcg_id),
        (GoalMetric::NodeMemcgUsedBp, 456, 6, 7)
    );
    commit_quota_goal(
        &mut dst,
        &memcg(GoalMetric::NodeMemcgFreeBp, 890, 901, 10, 1),
    );
    assert_eq!(
        (dst.metric, dst.target_value, dst.nid, dst.memcg_id),
        (GoalMetric::NodeMemcgFreeBp, 890, 10, 1)
    );
    commit_quota_goal(&mut dst, &goal(GoalMetric::SomeMemPsiUs, 234, 345, 0));
    assert_eq!(
        (dst.metric, dst.target_value),
        (GoalMetric::SomeMemPsiUs, 234)
    );
}

/// A19
#[test]
fn damos_test_commit_quota_goals() {
    for (dst_goals, src_goals, expect) in [
        (vec![], vec![(123u64,)], vec![123u64]),
        (vec![(234,)], vec![(345,)], vec![345]),
        (vec![(456,)], vec![], vec![]),
    ] {
        let mut dst = Scheme::new(AccessPattern::default(), Action::Stat);
        dst.quota.goals = dst_goals
            .iter()
            .map(|&(t,)| goal(GoalMetric::UserInput, t, 0, 0))
            .collect();
        let mut src = Scheme::new(AccessPattern::default(), Action::Stat);
        src.quota.goals = src_goals
            .iter()
            .map(|&(t,)| goal(GoalMetric::UserInput, t, 0, 0))
            .collect();
        dst.commit_from(&src);
        let got: Vec<_> = dst.quota.goals.iter().map(|g| g.target_value).collect();
        assert_eq!(got, expect);
    }
}

/// A20
#[test]
fn damos_test_commit_quota() {
    let mut dst = Scheme::new(AccessPattern::default(), Action::Stat);
    dst.quota = Quota {
        reset_interval: 1,
        ms: 2,
        sz: 3,
        weight_sz: 4,
        weight_nr_accesses: 5,
        weight_age: 6,
        ..Quota::default()
    };
    let mut src = dst.clone();
    src.quota = Quota {
        reset_interval: 7,
        ms: 8,
        sz: 9,
        weight_sz: 10,
        weight_nr_accesses: 11,
        weight_age: 12,
        goal_tuner: GoalTuner::Temporal,
        ..Quota::default()
    };
    dst.commit_from(&src);
    assert_eq!(dst.quota, src.quota);
}

// A21 (damos_test_commit_dests): migration destinations are not modelled:
// user space has no migrate_hot/migrate_cold actions (see damon-schemes docs).

/// A22
#[test]
fn damos_test_commit_filter() {
    let mut dst = Scheme::new(AccessPattern::default(), Action::Stat);
    dst.filters = vec![Filter {
        kind: FilterKind::Active,
        matching: false,
        allow: false,
    }];
    for f in [
        Filter {
            kind: FilterKind::Anon,
            matching: true,
            allow: true,
        },
        Filter {
            kind: FilterKind::Memcg { memcg_id: 123 },
            matching: false,
            allow: false,
        },
        Filter {
            kind: FilterKind::Young,
            matching: true,
            allow: true,
        },
        Filter {
            kind: FilterKind::HugepageSize { min: 234, max: 345 },
            matching: false,
            allow: false,
        },
        Filter {
            kind: FilterKind::Unmapped,
            matching: true,
            allow: true,
        },
        Filter {
            kind: FilterKind::Addr(AddrRange::new(456, 567)),
            matching: false,
            allow: false,
        },
        Filter {
            kind: FilterKind::Target { target_idx: 6 },
            matching: true,
            allow: true,
        },
    ] {
        let mut src = dst.clone();
        src.filters = vec![f];
        dst.commit_from(&src);
        assert_eq!(dst.filters, vec![f]);
    }
}

/// A27
#[test]
fn damos_test_filter_out() {
    let f = Filter {
        kind: FilterKind::Addr(AddrRange::new(2, 6)),
        matching: true,
        allow: false,
    };
    type Case = ((u64, u64), bool, &'static [(u64, u64)]);
    let cases: [Case; 5] = [
        ((3, 5), true, &[(3, 5)]),
        ((1, 2), false, &[(1, 2)]),
        ((6, 8), false, &[(6, 8)]),
        ((1, 4), false, &[(1, 2), (2, 4)]),
        ((2, 8), true, &[(2, 6), (6, 8)]),
    ];
    for ((s, e), expect, after) in cases {
        let mut regions = vec![Region::new(s, e)];
        assert_eq!(
            core_filter_match(&mut regions, 0, 0, &f, 1),
            expect,
            "region [{s},{e})"
        );
        let got: Vec<_> = regions.iter().map(|r| (r.ar.start, r.ar.end)).collect();
        assert_eq!(got, after);
    }
}

/// A29
#[test]
fn damon_test_set_filters_default_reject() {
    let target = |allow| Filter {
        kind: FilterKind::Target { target_idx: 0 },
        matching: true,
        allow,
    };
    let anon = |allow| Filter {
        kind: FilterKind::Anon,
        matching: true,
        allow,
    };
    let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
    assert_eq!(default_reject(&s), (false, false));
    s.filters = vec![target(true)];
    assert_eq!(default_reject(&s), (true, false));
    s.filters = vec![target(false)];
    assert_eq!(default_reject(&s), (false, false));
    s.filters = vec![target(false), anon(true)];
    assert_eq!(default_reject(&s), (false, true));
    s.filters = vec![target(true), anon(true)];
    assert_eq!(default_reject(&s), (false, true));
    // the page-level default is what backends use
    assert!(ops_filters_default_reject(&s));
    let anon_page = PageInfo {
        anon: Some(true),
        ..PageInfo::default()
    };
    let file_page = PageInfo {
        anon: Some(false),
        ..PageInfo::default()
    };
    assert!(ops_filters_pass(&s, &anon_page));
    assert!(
        !ops_filters_pass(&s, &file_page),
        "unmatched memory is rejected after a last allow-filter"
    );
}
