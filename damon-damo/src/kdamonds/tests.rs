//! Tests of the kdamonds JSON parser and writer.

use super::*;

fn wrap_ctx(ctx: &str) -> String {
    format!(r#"{{"kdamonds": [{{"contexts": [{ctx}]}}]}}"#)
}

fn wrap_scheme(scheme: &str) -> String {
    wrap_ctx(&format!(
        r#"{{"ops": "paddr", "targets": [{{"pid": null, "regions": [{{"start": 4096, "end": "1 GiB"}}]}}], "schemes": [{{"action": "stat"}}, {scheme}]}}"#
    ))
}

fn err_of(text: &str) -> String {
    parse_kdamonds(text).unwrap_err().to_string()
}

/// The output of `damo args damon paddr --damos_action stat
/// --damos_access_rate 0% 0% --damos_sz_region 4K max --damos_age 5s
/// max --damos_quotas 10ms 1G 1s 0 3 7` (damo 3.4.3), trimmed of the
/// region end the host decides.
const DAMO_ARGS_OUTPUT: &str = r#"{
"kdamonds": [{
    "refresh_ms": 0,
    "contexts": [{
        "ops": "paddr",
        "addr_unit": "1 B",
        "targets": [{"pid": null, "obsolete": false,
                     "regions": [{"start": "4,096", "end": "26,843,545,600"}]}],
        "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s",
                      "intervals_goal": {"access_bp": "0 %", "aggrs": "0",
                                         "min_sample_us": "0 ns", "max_sample_us": "0 ns"}},
        "nr_regions": {"min": "10", "max": "1,000"},
        "probes": [],
        "sample_control": {"primitives_enabled": {"page_table": true, "page_fault": false},
                           "sample_filters": []},
        "pause": false,
        "schemes": [{
            "action": "stat",
            "dests": [],
            "access_pattern": {"sz_bytes": {"min": "4.000 KiB", "max": "max"},
                               "nr_accesses": {"min": "0 %", "max": "0 %"},
                               "age": {"min": "5 s", "max": "max"}},
            "apply_interval_us": "0 ns",
            "quotas": {"time_ms": "10 ms", "sz_bytes": "1024.000 MiB",
                       "reset_interval_ms": "1 s", "fail_charge_num": "0",
                       "fail_charge_denom": "0", "goals": [], "goal_tuner": "consist",
                       "effective_sz_bytes": "0 B",
                       "weights": {"sz_permil": "0 %", "nr_accesses_permil": "0.3 %",
                                   "age_permil": "0.7 %"}},
            "watermarks": {"metric": "none", "interval_us": "0 ns", "high_permil": "0 %",
                           "mid_permil": "0 %", "low_permil": "0 %"},
            "filters": []
        }]
    }]
}]
}"#;

#[test]
fn reads_damo_args_output() {
    let cfg = parse_kdamonds(DAMO_ARGS_OUTPUT).unwrap();
    let c = &cfg.kdamonds[0].contexts[0];
    assert_eq!(c.ops, "paddr");
    assert_eq!(c.attrs, damo_default_attrs());
    assert_eq!(c.targets[0].pid, None);
    assert_eq!(
        c.targets[0].regions,
        vec![AddrRange::new(4096, 26_843_545_600)]
    );
    let s = &c.schemes[0];
    assert_eq!(s.action, Action::Stat);
    assert_eq!(s.pattern.min_sz_region, 4096);
    assert_eq!(s.pattern.max_sz_region, u64::MAX);
    assert_eq!(
        (s.pattern.min_nr_accesses, s.pattern.max_nr_accesses),
        (0, 0)
    );
    // 5 s / 100 ms = 50 aggregations; max saturates
    assert_eq!(
        (s.pattern.min_age_region, s.pattern.max_age_region),
        (50, u32::MAX)
    );
    assert_eq!(
        (s.quota.ms, s.quota.sz, s.quota.reset_interval),
        (10, 1 << 30, 1000)
    );
    assert_eq!(
        (
            s.quota.weight_sz,
            s.quota.weight_nr_accesses,
            s.quota.weight_age
        ),
        (0, 3, 7)
    );
    assert_eq!(s.wmarks, Watermarks::default());
    let ctx = c.to_context();
    assert_eq!(ctx.targets[0].regions.len(), 1);
    ctx.validate().unwrap();
}

#[test]
fn percent_and_time_patterns_convert_like_damo() {
    // 20 samples per aggregation: 10 % -> 2 samples, 33 % -> int(6.6) = 6
    let t = wrap_scheme(
        r#"{"access_pattern": {"nr_accesses": {"min": "10 %", "max": 33}, "age": {"min": 250000, "max": "2 aggr_intervals"}}}"#,
    );
    let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
    let p = &c.schemes[1].pattern;
    assert_eq!((p.min_nr_accesses, p.max_nr_accesses), (2, 6));
    // 250 ms / 100 ms = int(2.5) = 2
    assert_eq!((p.min_age_region, p.max_age_region), (2, 2));
    let t =
        wrap_scheme(r#"{"access_pattern": {"nr_accesses": {"min": "3 samples", "max": "max"}}}"#);
    let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
    assert_eq!(c.schemes[1].pattern.min_nr_accesses, 3);
    assert_eq!(c.schemes[1].pattern.max_nr_accesses, u32::MAX);
}

#[test]
fn errors_name_their_path() {
    let e = err_of(&wrap_scheme(r#"{"quotas": {"time_ms": "ten"}}"#));
    assert_eq!(
        e,
        "kdamonds[0].contexts[0].schemes[1].quotas.time_ms: expected a non-negative integer or a time string (e.g. \"5 ms\"), got \"ten\""
    );
    let e = err_of(&wrap_scheme(r#"{"quota": {}}"#));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].quota: unknown key"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(r#"{"action": "explode"}"#));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].action: expected an action"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"access_pattern": {"sz_bytes": {"min": "4 KX", "max": "max"}}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].access_pattern.sz_bytes.min: expected"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"access_pattern": {"sz_bytes": {"min": "8K", "max": "4K"}}}"#,
    ));
    assert!(
        e.starts_with(
            "kdamonds[0].contexts[0].schemes[1].access_pattern.sz_bytes: min 8192 > max 4096"
        ),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"watermarks": {"metric": "free_mem_rate", "high_permil": 100, "mid_permil": 200, "low_permil": 50}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].watermarks: need high >= mid >= low"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"filters": [{"filter_type": "anon", "matching": "maybe"}]}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].filters[0].matching: expected a boolean"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"filters": [{"filter_type": "anon", "matching": true, "address_range": {"start": 0, "end": 1}}]}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].filters[0].address_range: not used"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"quotas": {"weights": {"sz_permil": [1]}}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].schemes[1].quotas.weights.sz_permil: expected"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(
        r#"{"access_pattern": {"nr_accesses": {"min": "5 sample", "max": 0}}}"#,
    ));
    assert!(
        e.contains("access_pattern.nr_accesses.min: expected a percentage"),
        "{e}"
    );
}

#[test]
fn attribute_errors_name_their_path() {
    let ctx = |iv: &str| {
        err_of(&wrap_ctx(&format!(
            r#"{{"ops": "vaddr", "intervals": {iv}}}"#
        )))
    };
    let e = ctx(r#"{"sample_us": 0, "aggr_us": 100, "ops_update_us": 1}"#);
    assert!(
        e.starts_with("kdamonds[0].contexts[0].intervals.sample_us: must be at least 1"),
        "{e}"
    );
    let e = ctx(r#"{"sample_us": "10 ms", "aggr_us": "5 ms", "ops_update_us": 1}"#);
    assert!(
        e.starts_with("kdamonds[0].contexts[0].intervals.aggr_us:"),
        "{e}"
    );
    let e = ctx(r#"{"sample_us": "5 ms", "aggr_us": "100 ms"}"#);
    assert_eq!(
        e,
        "kdamonds[0].contexts[0].intervals.ops_update_us: missing (required)"
    );
    let e = err_of(&wrap_ctx(
        r#"{"ops": "paddr", "nr_regions": {"min": 100, "max": 10}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].nr_regions.min: 100 exceeds"),
        "{e}"
    );
    let e = err_of(&wrap_ctx(
        r#"{"ops": "paddr", "nr_regions": {"min": "1e20", "max": 10}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].nr_regions.min: "),
        "{e}"
    );
    let e = err_of(&wrap_ctx(
        r#"{"ops": "vaddr", "targets": [{"regions": []}]}"#,
    ));
    assert_eq!(
        e,
        "kdamonds[0].contexts[0].targets[0].pid: missing (a vaddr target needs a process id)"
    );
    let e = err_of(&wrap_ctx(
        r#"{"ops": "fvaddr", "targets": [{"pid": 1, "regions": [{"start": 0, "end": 8192}, {"start": 4096, "end": 9000}]}]}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].targets[0].regions[1]: region"),
        "{e}"
    );
    let e = err_of(&wrap_ctx(r#"{"ops": "Paddr!"}"#));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].ops: expected an operations set id"),
        "{e}"
    );
    let e = err_of(r#"{"kdamonds": [{"contexts": [{"ops": "paddr"}], "extra": 1}]}"#);
    assert!(e.starts_with("kdamonds[0].extra: unknown key"), "{e}");
    let e = err_of("{\"kdamonds\": [");
    assert!(e.starts_with("syntax error"), "{e}");
    let e = err_of(r#"[1, 2]"#);
    assert!(
        e.starts_with("(top level): expected an object, got [1,2]"),
        "{e}"
    );
}

#[test]
fn unsupported_features_are_refused() {
    let e = err_of(&wrap_scheme(
        r#"{"filters": [{"filter_type": "memcg", "matching": true, "memcg_path": "/no/such/udamon"}]}"#,
    ));
    assert!(
        e.contains("filters[0].memcg_path") && e.contains("no memory cgroup"),
        "{e}"
    );
    let e = err_of(&wrap_scheme(r#"{"dests": [{"id": 0, "weight": 1}]}"#));
    assert!(e.contains("schemes[1].dests"), "{e}");
    let e = err_of(&wrap_ctx(r#"{"ops": "paddr", "probes": [{}]}"#));
    assert!(e.contains("contexts[0].probes"), "{e}");
    let e = err_of(&wrap_scheme(
        r#"{"quotas": {"goals": [{"metric": "node_memcg_used_bp", "target_value": 1, "current_value": 0}]}}"#,
    ));
    assert!(e.contains("goals[0].memcg_path: required"), "{e}");
}

/// This process's memory cgroup as damo names it, if it has one.
fn own_memcg() -> Option<(String, u64)> {
    let dir = damon_schemes::memcg::own_memcg_dir()?;
    let id = damon_schemes::memcg::memcg_id_of(&dir).ok()?;
    let root = damon_schemes::memcg::memory_roots()
        .into_iter()
        .find(|r| dir.starts_with(r))?;
    let rel = dir.strip_prefix(&root).ok()?;
    Some((format!("/{}", rel.display()), id))
}

#[test]
fn memcg_paths_resolve_to_ids_and_back() {
    let Some((path, id)) = own_memcg() else {
        damon_core::testing::skip::require(
            false,
            "memcg_paths_resolve_to_ids_and_back",
            "no memory cgroup hierarchy",
        );
        return;
    };
    let t = wrap_scheme(&format!(
        r#"{{"filters": [{{"filter_type": "memcg", "matching": true, "allow": true, "memcg_path": "{path}"}}],
            "quotas": {{"reset_interval_ms": 1000, "goals": [{{"metric": "node_memcg_free_bp", "target_value": "50%", "nid": 0, "memcg_path": "{path}"}}]}}}}"#
    ));
    let cfg = parse_kdamonds(&t).expect("own cgroup resolves");
    let s = &cfg.kdamonds[0].contexts[0].schemes[1];
    assert_eq!(s.filters[0].kind, FilterKind::Memcg { memcg_id: id });
    let g = s.quota.goals[0];
    assert_eq!(
        (g.metric, g.memcg_id, g.target_value),
        (GoalMetric::NodeMemcgFreeBp, id, 5000)
    );
    let saved = save_kdamonds(&cfg).expect("saves");
    assert_eq!(parse_kdamonds(&saved).expect("round trip"), cfg);
    assert!(
        saved.contains(&format!("\"memcg_path\": \"{path}\""))
            || saved.contains(&format!("\"memcg_path\":\"{path}\"")),
        "{saved}"
    );
}

#[test]
fn sysfs_spelling_of_attributes() {
    let t = wrap_ctx(
        r#"{"ops": "vaddr", "targets": [{"pid": 42}], "monitoring_attrs": {"intervals": {"sample_us": 1000, "aggr_us": 20000, "update_us": 500000}, "nr_regions": {"min": 5, "max": 50}}}"#,
    );
    let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
    assert_eq!(
        (
            c.attrs.sample_interval,
            c.attrs.aggr_interval,
            c.attrs.ops_update_interval
        ),
        (1000, 20000, 500_000)
    );
    assert_eq!((c.attrs.min_nr_regions, c.attrs.max_nr_regions), (5, 50));
    let e = err_of(&wrap_ctx(
        r#"{"ops": "vaddr", "monitoring_attrs": {"intervals": {"sample_us": 0, "aggr_us": 20000, "update_us": 1}}}"#,
    ));
    assert!(
        e.starts_with("kdamonds[0].contexts[0].monitoring_attrs.intervals.sample_us:"),
        "{e}"
    );
}

fn rich() -> KdamondsConfig {
    let mut c = ContextParams::new("vaddr");
    c.attrs.intervals_goal = IntervalsGoal {
        access_bp: 400,
        aggrs: 3,
        min_sample_us: 1000,
        max_sample_us: 10_000_000,
    };
    c.addr_unit = 1;
    c.pause = true;
    c.targets.push(TargetParams {
        pid: Some(1234),
        regions: vec![AddrRange::new(0, 4096), AddrRange::new(8192, 1 << 30)],
        obsolete: false,
    });
    c.targets.push(TargetParams {
        pid: Some(99),
        regions: vec![],
        obsolete: true,
    });
    let mut s = Scheme::new(
        AccessPattern {
            min_sz_region: 4096,
            max_sz_region: u64::MAX,
            min_nr_accesses: 0,
            max_nr_accesses: 3,
            min_age_region: 7,
            max_age_region: u32::MAX,
        },
        Action::MigrateCold,
    );
    s.target_nid = 1;
    s.apply_interval_us = 1_000_000;
    s.quota = Quota {
        reset_interval: 1000,
        ms: 10,
        sz: 128 << 20,
        goals: vec![
            QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: 1000,
                current_value: 5,
                nid: 0,
                memcg_id: 0,
            },
            QuotaGoal {
                metric: GoalMetric::NodeMemFreeBp,
                target_value: 2500,
                current_value: 0,
                nid: 1,
                memcg_id: 0,
            },
        ],
        goal_tuner: GoalTuner::Temporal,
        weight_sz: 1,
        weight_nr_accesses: 3,
        weight_age: 7,
        fail_charge_num: 1,
        fail_charge_denom: 4,
    };
    s.wmarks = Watermarks {
        metric: WmarkMetric::FreeMemRate,
        interval: 5_000_000,
        high: 500,
        mid: 400,
        low: 50,
    };
    s.filters = vec![
        Filter {
            kind: FilterKind::Anon,
            matching: true,
            allow: false,
        },
        Filter {
            kind: FilterKind::Addr(AddrRange::new(0, 1 << 20)),
            matching: false,
            allow: true,
        },
        Filter {
            kind: FilterKind::Target { target_idx: 1 },
            matching: true,
            allow: true,
        },
        Filter {
            kind: FilterKind::HugepageSize {
                min: 2 << 20,
                max: 2 << 20,
            },
            matching: true,
            allow: false,
        },
        Filter {
            kind: FilterKind::Young,
            matching: true,
            allow: false,
        },
    ];
    s.max_nr_snapshots = 10;
    s.stat.nr_tried = 5;
    s.stat.sz_applied = 4096;
    c.schemes.push(s);
    c.schemes
        .push(Scheme::new(AccessPattern::default(), Action::Pageout));
    let mut p = ContextParams::new("paddr");
    p.targets.push(TargetParams {
        pid: None,
        regions: vec![AddrRange::new(4096, 1 << 34)],
        obsolete: false,
    });
    KdamondsConfig {
        kdamonds: vec![
            KdamondParams {
                refresh_ms: 1000,
                contexts: vec![c],
            },
            KdamondParams {
                refresh_ms: 0,
                contexts: vec![p],
            },
        ],
    }
}

#[test]
fn save_round_trips() {
    let cfg = rich();
    let text = save_kdamonds(&cfg).unwrap();
    let back = parse_kdamonds(&text).unwrap();
    assert_eq!(back, cfg);
    // and again from the loaded one, byte for byte
    assert_eq!(save_kdamonds(&back).unwrap(), text);
    let loaded = parse_kdamonds(DAMO_ARGS_OUTPUT).unwrap();
    assert_eq!(
        parse_kdamonds(&save_kdamonds(&loaded).unwrap()).unwrap(),
        loaded
    );
}

#[test]
fn contexts_convert_both_ways() {
    let cfg = rich();
    let c = &cfg.kdamonds[0].contexts[0];
    let ctx = c.to_context();
    assert_eq!(ctx.targets[0].id, 1234);
    assert!(ctx.targets[1].obsolete);
    assert_eq!(ctx.schemes, c.schemes);
    assert_eq!(ContextParams::from_context("vaddr", &ctx), *c);
    let p = &cfg.kdamonds[1].contexts[0];
    assert_eq!(ContextParams::from_context("paddr", &p.to_context()), *p);
}

#[test]
fn memcg_filters_of_missing_cgroups_cannot_be_saved() {
    let mut cfg = rich();
    cfg.kdamonds[0].contexts[0].schemes[0].filters.push(Filter {
        kind: FilterKind::Memcg {
            memcg_id: u64::MAX - 3,
        },
        matching: true,
        allow: true,
    });
    let e = save_kdamonds(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("kdamonds[0].contexts[0].schemes[0].filters[5]"),
        "{e}"
    );
}

#[test]
fn damo_status_dumps_with_zero_filled_filter_fields_load() {
    // what `damo record` writes next to a record (.kdamonds): every filter
    // field sysfs has, unused ones zero-filled
    let text = wrap_scheme(
        r#"{"action": "pageout", "filters": [
            {"filter_type": "anon", "matching": true, "allow": false,
             "memcg_path": "", "address_range": {"start": "0", "end": "0"},
             "damon_target_idx": "0", "hugepage_size": ["0 B", "0 B"],
             "probe_hits_wsum_range": ["0", "0"]},
            {"filter_type": "addr", "matching": true, "allow": true,
             "memcg_path": "", "address_range": {"start": "4096", "end": "8192"},
             "damon_target_idx": "0", "hugepage_size": null}]}"#,
    );
    let cfg = parse_kdamonds(&text).expect("damo's own dump loads");
    let s = &cfg.kdamonds[0].contexts[0].schemes[1];
    assert_eq!(s.filters.len(), 2);
    assert_eq!(s.filters[0].kind, FilterKind::Anon);
    assert_eq!(
        s.filters[1].kind,
        FilterKind::Addr(AddrRange::new(4096, 8192))
    );
    // a used-looking value in a field the type does not use is still refused
    let bad = wrap_scheme(
        r#"{"action": "stat", "filters": [{"filter_type": "anon", "matching": true,
            "damon_target_idx": "3"}]}"#,
    );
    let e = parse_kdamonds(&bad).unwrap_err().to_string();
    assert!(e.contains("damon_target_idx"), "{e}");
}

#[test]
fn counts_with_a_fraction_are_refused_not_truncated() {
    let e = err_of(&wrap_ctx(
        r#"{"ops": "paddr", "monitoring_attrs": {"nr_regions": {"min": 10.5, "max": 100}}}"#,
    ));
    assert!(
        e.contains("nr_regions.min") && e.contains("10.5 is not a whole number"),
        "{e}"
    );
    let e = err_of(&wrap_ctx(
        r#"{"ops": "paddr", "monitoring_attrs": {"nr_regions": {"min": 10, "max": 4294967296}}}"#,
    ));
    assert!(
        e.contains("nr_regions.max") && e.contains("out of range"),
        "{e}"
    );
    // whole numbers in damo's float spelling still read
    let t = wrap_ctx(
        r#"{"ops": "paddr", "monitoring_attrs": {"nr_regions": {"min": "10.000000", "max": 100.0}}}"#,
    );
    let c = &parse_kdamonds(&t).unwrap().kdamonds[0].contexts[0];
    assert_eq!((c.attrs.min_nr_regions, c.attrs.max_nr_regions), (10, 100));
}
