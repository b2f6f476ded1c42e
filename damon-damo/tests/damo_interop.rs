//! Cross-checks with the real damo (installed with pip when missing): damo
//! reads our record files and reports the same working set sizes and
//! heatmap as we do, and we read a record damo made of the kernel's DAMON
//! and report what damo reports.
//!
//! A test that cannot run here (no damo and no pip, no kernel DAMON, no
//! perf, not root) prints `skipped: <test>: <reason>` and passes.

use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, GoalTuner, Quota, QuotaGoal, Scheme,
    Watermarks, WmarkMetric,
};
use damon_core::{
    AddrRange, Context, HotRange, Kdamond, Phase, SimOps, SimPattern, Target, VirtualClock,
};
use damon_damo::{
    encode, parse_kdamonds, parse_record, save_kdamonds, wss, ContextParams, KdamondParams,
    KdamondsConfig, Record, RecordFormat, Recorder, TargetParams, WssOptions, WssSort,
};
mod common;

use common::*;
use std::sync::Arc;

/// A deterministic simulated run whose working set changes over phases.
fn simulated_records() -> Vec<Record> {
    let hot = |a: u64, b: u64, p: f64| HotRange {
        range: AddrRange::new(a << 20, b << 20),
        probability: p,
    };
    let phase = |ms: u64, hot: Vec<HotRange>| Phase {
        duration_us: ms * 1000,
        hot,
    };
    let pattern = SimPattern {
        space: vec![AddrRange::new(0, 1 << 30)],
        phases: vec![
            phase(2_000, vec![hot(0, 64, 0.9)]),
            phase(2_000, vec![hot(0, 64, 0.5), hot(256, 512, 0.3)]),
            phase(1_500, vec![hot(512, 900, 0.7)]),
            phase(1_000, vec![]),
        ],
        exit_after_us: None,
    };
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(SimOps::new(pattern).with_seed(11)));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(5);
    let rec = Recorder::new()
        .with_time_origin_ns(1_000_000_000)
        .install(&mut ctx);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    // 13 s of 5 ms samples: 130 aggregations
    for _ in 0..2_600 {
        assert!(kd.step().is_none());
    }
    let records = rec.lock().take_records();
    assert_eq!(records[0].snapshots.len(), 130);
    records
}

#[test]
fn damo_reports_our_records_like_we_do() {
    const T: &str = "damo_reports_our_records_like_we_do";
    let Some(damo) = damo_reading_records(T) else {
        return;
    };
    println!("{T}: damo version {}", damo_version(&damo));
    let records = simulated_records();
    let dir = tmp_dir("ours");
    let dflt = WssOptions::default();
    let by_time = WssOptions {
        sort_by: WssSort::Time,
        ..WssOptions::default()
    };
    let all = WssOptions {
        exclude_samples: 0,
        ..WssOptions::default()
    };
    let fine = WssOptions {
        percentiles: (0..101).step_by(5).collect(),
        ..WssOptions::default()
    };

    // json_compressed, damo's default
    let f = dir.join("damon.data");
    std::fs::write(&f, encode(&records, RecordFormat::JsonCompressed)).unwrap();
    compare_wss(T, &damo, &f, &records, &[], &dflt);
    compare_wss(T, &damo, &f, &records, &["--sortby", "time"], &by_time);
    compare_wss(T, &damo, &f, &records, &["--exclude_samples", "0"], &all);
    compare_wss(T, &damo, &f, &records, &["--range", "0", "101", "5"], &fine);
    // the percentiles must not all be equal, or the comparison proves little
    let d = &wss(&records, &dflt).dists[0];
    assert!(d.percentiles.first().unwrap().1 < d.percentiles.last().unwrap().1);

    // written as recorded (the streaming writer's compact JSON, joined
    // from per-target parts): damo reads it as it reads the above
    let streamed = dir.join("streamed.data");
    let mut w = damon_damo::RecordWriter::create(&streamed, RecordFormat::JsonCompressed).unwrap();
    for (i, r) in records.iter().enumerate() {
        for s in &r.snapshots {
            w.push(&damon_damo::RecordMeta::of(i, r), s).unwrap();
        }
    }
    w.finish().unwrap();
    compare_wss(T, &damo, &streamed, &records, &[], &dflt);
    compare_wss(
        T,
        &damo,
        &streamed,
        &records,
        &["--sortby", "time"],
        &by_time,
    );

    // perf_script: damo and we both parse the text
    let p = dir.join("damon.perf_script");
    std::fs::write(&p, encode(&records, RecordFormat::PerfScript)).unwrap();
    let from_text = parse_record(&std::fs::read(&p).unwrap()).unwrap();
    compare_wss(T, &damo, &p, &from_text, &[], &dflt);

    // the heatmap, on explicit ranges (with age backfill before the start)
    compare_heatmap(
        T,
        &damo,
        &f,
        &records,
        (500_000_000, 14_000_000_000),
        (0, 1 << 30),
        (40, 80),
    );
    compare_heatmap(
        T,
        &damo,
        &f,
        &records,
        (1_000_000_000, 3_000_000_000),
        (0, 128 << 20),
        (17, 23),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A paddr context using most of what the kdamonds format can say.
fn rich_config() -> KdamondsConfig {
    let mut c = ContextParams::new("paddr");
    c.targets.push(TargetParams {
        pid: None,
        regions: vec![AddrRange::new(4096, 1 << 34)],
        obsolete: false,
    });
    c.attrs.sample_interval = 10_000;
    c.attrs.aggr_interval = 200_000;
    c.attrs.ops_update_interval = 2_000_000;
    c.attrs.min_nr_regions = 20;
    c.attrs.max_nr_regions = 2000;
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
                metric: GoalMetric::NodeMemFreeBp,
                target_value: 2500,
                current_value: 0,
                nid: 1,
                memcg_id: 0,
            },
            QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: 1500,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            },
        ],
        goal_tuner: GoalTuner::Temporal,
        weight_sz: 1,
        weight_nr_accesses: 3,
        weight_age: 7,
        fail_charge_num: 0,
        fail_charge_denom: 0,
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
            kind: FilterKind::HugepageSize {
                min: 2 << 20,
                max: 2 << 20,
            },
            matching: true,
            allow: false,
        },
        Filter {
            kind: FilterKind::Target { target_idx: 0 },
            matching: true,
            allow: true,
        },
    ];
    c.schemes.push(s);
    c.schemes
        .push(Scheme::new(AccessPattern::default(), Action::Pageout));
    KdamondsConfig {
        kdamonds: vec![KdamondParams {
            refresh_ms: 0,
            contexts: vec![c],
        }],
    }
}

#[test]
fn damo_reads_our_kdamonds_config() {
    const T: &str = "damo_reads_our_kdamonds_config";
    let damo = match damo() {
        Ok(d) => d,
        Err(e) => return skip(T, &e),
    };
    let cfg = rich_config();
    let dir = tmp_dir("kdamonds");
    let f = dir.join("kdamonds.json");
    std::fs::write(&f, save_kdamonds(&cfg).unwrap()).unwrap();
    // damo loads it and prints it back in its own (human-readable) spelling
    let out = run_damo(
        &damo,
        &["args", "damon", "--format", "json", f.to_str().unwrap()],
    );
    let json = &out[out.find('{').expect("json in damo's output")..];
    println!("{T}: damo's rendering:\n{json}");
    let back = parse_kdamonds(json).expect("parse damo's rendering");
    assert_eq!(back, cfg, "{T}: parameters changed through damo");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damo_reports_nr_regions_and_record_info_like_we_do() {
    const T: &str = "damo_reports_nr_regions_and_record_info_like_we_do";
    let Some(damo) = damo_reading_records(T) else {
        return;
    };
    // moved off address 0: damo takes a lowest address of 0 for "none yet"
    // (Python's `not 0`) and reports the next region's start instead
    let mut records = simulated_records();
    for r in &mut records {
        for s in &mut r.snapshots {
            for g in &mut s.regions {
                g.start += 1 << 40;
                g.end += 1 << 40;
            }
        }
    }
    let f = tmp_dir("info").join("damon.data");
    std::fs::write(&f, encode(&records, RecordFormat::JsonCompressed)).unwrap();
    let input = f.to_str().unwrap();
    use damon_damo::info::{nr_regions_of, nr_regions_text, record_info, record_info_text};
    for (args, pcts, sort) in [
        (vec![], vec![0, 25, 50, 75, 100], true),
        (
            vec!["--range", "0", "101", "10"],
            (0..101).step_by(10).collect(),
            true,
        ),
        (vec!["--sortby", "time"], vec![0, 25, 50, 75, 100], false),
    ] {
        let mut a = vec!["report", "nr_regions", "--input", input];
        a.extend(&args);
        let theirs = run_damo(&damo, &a);
        let ours = nr_regions_text(&nr_regions_of(&records, 20, sort).unwrap(), &pcts);
        assert_eq!(ours, theirs, "nr_regions {args:?}");
    }
    let infos = record_info(&records);
    for raw in [true, false] {
        let mut a = vec!["report", "record_info", "--input", input];
        if raw {
            a.push("--raw_numbers");
        }
        let theirs = run_damo(&damo, &a);
        assert_eq!(
            record_info_text(&infos, raw),
            theirs,
            "record_info raw={raw}"
        );
    }
    println!("{T}: nr_regions (3 option sets) and record_info (raw and human) match");
}

#[test]
fn damo_reports_our_footprint_files_like_we_do() {
    const T: &str = "damo_reports_our_footprint_files_like_we_do";
    let damo = match damo() {
        Ok(d) => d,
        Err(e) => return skip(T, &e),
    };
    use damon_damo::footprint::*;
    // a process whose footprint moves, and the system's, written as `record` does
    let f = tmp_dir("footprint").join("damon.data.mem_footprint");
    let mut w = FootprintWriter::create(&f).unwrap();
    let me = u64::from(std::process::id());
    let mut snaps = Vec::new();
    for i in 0..12u64 {
        let mut p = ProcFootprint::read(me);
        p.size += i * 1000 + (i % 3) * 77;
        p.resident += (i * 37) % 11 * 100;
        let mut sys = SysFootprint::read();
        sys.free = sys.free.saturating_sub(i * 4096);
        let s = FootprintSnapshot::of(1_700_000_000.0 + i as f64, vec![(me, p), (me + 1, p)], sys);
        w.push(&s).unwrap();
        snaps.push(s);
    }
    w.finish().unwrap();
    assert_eq!(
        read_footprints(&f).unwrap(),
        snaps,
        "our reader reads our file"
    );
    let input = f.to_str().unwrap();
    for (metric, metrics) in [
        ("vsz", vec![FootprintMetric::Vsz]),
        ("rss", vec![FootprintMetric::Rss]),
        ("sys_used", vec![FootprintMetric::SysUsed]),
        (
            "all",
            vec![
                FootprintMetric::Vsz,
                FootprintMetric::Rss,
                FootprintMetric::SysUsed,
            ],
        ),
    ] {
        for (extra, raw, sort, pcts, all) in [
            (vec![], false, true, vec![0, 25, 50, 75, 100], false),
            (
                vec!["--raw_number"],
                true,
                true,
                vec![0, 25, 50, 75, 100],
                false,
            ),
            (
                vec!["--sortby", "time", "--range", "0", "101", "20"],
                false,
                false,
                (0..101).step_by(20).collect(),
                false,
            ),
            (
                vec!["--all_footprint", "--raw_number"],
                true,
                true,
                vec![],
                true,
            ),
        ] {
            let mut a = vec![
                "report",
                "footprints",
                metric,
                "--input",
                input,
                "--nr_cols_bar",
                "0",
            ];
            a.extend(&extra);
            let theirs = run_damo(&damo, &a);
            let ours: String = metrics
                .iter()
                .map(|&m| dist_text(m.name(), &footprint_dist(&snaps, m, sort), &pcts, all, raw))
                .collect();
            assert_eq!(ours, theirs, "footprints {metric} {extra:?}");
        }
    }
    println!("{T}: vsz, rss, sys_used and all match in four option sets");
}

/// damo's hot/cold output without what it draws in colour: its `heatmap:`
/// and `# min/max temperatures` lines, and the box before each region.
fn without_colour(damo_text: &str) -> String {
    damo_text
        .lines()
        .filter(|l| !l.starts_with("heatmap: ") && !l.starts_with("# min/max temperatures"))
        .map(|l| match l.rfind("\u{1b}[0m| ") {
            Some(i) => &l[i + "\u{1b}[0m| ".len()..],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn damo_reports_access_styles_filters_and_times_like_we_do() {
    const T: &str = "damo_reports_access_styles_filters_and_times_like_we_do";
    let Some(damo) = damo_reading_records(T) else {
        return;
    };
    use damon_damo::filter::{times, times_text, RecordFilter};
    use damon_damo::{style_text, AccessStyle, StyleOptions};
    let records = simulated_records();
    let f = tmp_dir("styles").join("damon.data");
    std::fs::write(&f, encode(&records, RecordFormat::JsonCompressed)).unwrap();
    let input = f.to_str().unwrap();
    let filters: Vec<(Vec<&str>, RecordFilter)> = vec![
        (vec![], RecordFilter::default()),
        (
            vec!["--snapshot_idx", "10", "12", "--snapshot_idx", "100", "100"],
            RecordFilter {
                snapshot_idx: Some(vec![(10, 12), (100, 100)]),
                ..RecordFilter::default()
            },
        ),
        (
            vec!["--address", "0", "300M", "--snapshot_idx", "20", "25"],
            RecordFilter {
                address: Some(vec![(0, 300 << 20)]),
                snapshot_idx: Some(vec![(20, 25)]),
                ..RecordFilter::default()
            },
        ),
        (
            vec![
                "--temperature",
                "-2000000",
                "100000000",
                "--snapshot_idx",
                "40",
                "44",
            ],
            RecordFilter {
                temperature: Some(vec![(-2_000_000, 100_000_000)]),
                snapshot_idx: Some(vec![(40, 44)]),
                ..RecordFilter::default()
            },
        ),
    ];
    let styles = [
        ("temperature-sz-hist", AccessStyle::TemperatureSzHist),
        ("recency-sz-hist", AccessStyle::RecencySzHist),
        (
            "temperature-percentiles",
            AccessStyle::TemperaturePercentiles,
        ),
        ("recency-percentiles", AccessStyle::RecencyPercentiles),
        ("hot", AccessStyle::Hot),
        ("cold", AccessStyle::Cold),
    ];
    let mut compared = 0;
    for (fargs, filter) in &filters {
        let mut ours_records = records.clone();
        filter.apply(&mut ours_records).unwrap();
        for (name, style) in styles {
            for raw in [false, true] {
                let mut a = vec!["report", "access", "--input_file", input, "--style", name];
                a.extend(fargs);
                if raw {
                    a.push("--raw_number");
                }
                let theirs = without_colour(&run_damo(&damo, &a));
                let o = StyleOptions {
                    raw_number: raw,
                    ..StyleOptions::new(style)
                };
                let ours = style_text(&ours_records, &o).unwrap();
                assert_eq!(ours.trim_end(), theirs.trim_end(), "damo {a:?}");
                compared += 1;
            }
        }
    }
    // the access-pattern filter: damo keeps the unfiltered total size (its
    // filter_by_pattern does not update total_bytes), we total the regions
    // kept; every other line is the same
    let mut kept = records.clone();
    RecordFilter {
        access_rate_percent: (30.0, 100.0),
        age_us: (0, 2_000_000),
        ..RecordFilter::default()
    }
    .apply(&mut kept)
    .unwrap();
    let theirs = run_damo(
        &damo,
        &[
            "report",
            "access",
            "--input_file",
            input,
            "--style",
            "temperature-sz-hist",
            "--access_rate",
            "30",
            "100",
            "--age",
            "0",
            "2s",
        ],
    );
    let ours = style_text(&kept, &StyleOptions::new(AccessStyle::TemperatureSzHist)).unwrap();
    let drop_totals = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("total size: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(drop_totals(&ours), drop_totals(theirs.trim_end()));
    // times: when were regions hot?
    for (fargs, filter) in [
        (
            vec!["--access_rate", "50", "max"],
            RecordFilter {
                access_rate_percent: (50.0, u64::MAX as f64),
                ..RecordFilter::default()
            },
        ),
        (
            vec!["--address", "256M", "512M", "--access_rate", "1", "max"],
            RecordFilter {
                address: Some(vec![(256 << 20, 512 << 20)]),
                access_rate_percent: (1.0, u64::MAX as f64),
                ..RecordFilter::default()
            },
        ),
    ] {
        let mut a = vec!["report", "times", "--inputs", input, "none"];
        a.extend(&fargs);
        let theirs = run_damo(&damo, &a);
        let mut kept = records.clone();
        filter.apply(&mut kept).unwrap();
        let ours = times_text(&times(&kept));
        assert!(!ours.is_empty(), "{fargs:?} keeps something");
        assert_eq!(ours, theirs, "damo {a:?}");
    }
    println!(
        "{T}: {compared} style/filter reports, an access-rate filter and 2 times reports match"
    );
}

#[test]
fn damo_reports_holistic_distributions_like_we_do() {
    const T: &str = "damo_reports_holistic_distributions_like_we_do";
    let Some(damo) = damo_reading_records(T) else {
        return;
    };
    use damon_damo::footprint::*;
    use damon_damo::holistic::holistic_text;
    let dir = tmp_dir("holistic");
    let f = dir.join("damon.data");
    let input = f.to_str().unwrap();
    // one record of 130 snapshots (none skipped) and one of 260 (the
    // first 20 skipped, as damo does past 200)
    for rounds in [1, 2] {
        let mut records = simulated_records();
        if rounds == 2 {
            let shift = records[0].snapshots.last().unwrap().end_time;
            let more: Vec<_> = records[0]
                .snapshots
                .iter()
                .map(|s| damon_damo::Snapshot {
                    start_time: s.start_time + shift,
                    end_time: s.end_time + shift,
                    ..s.clone()
                })
                .collect();
            records[0].snapshots.extend(more);
        }
        std::fs::write(&f, encode(&records, RecordFormat::JsonCompressed)).unwrap();
        let mut w = FootprintWriter::create(dir.join("damon.data.mem_footprint")).unwrap();
        let mut snaps = Vec::new();
        for i in 0..9u64 {
            let p = ProcFootprint {
                size: (100 << 20) + i * 4096,
                resident: ((i * 37) % 11) << 20,
                ..ProcFootprint::default()
            };
            let sys = SysFootprint {
                total: 8 << 30,
                free: (3 << 30) - i * (5 << 20),
                ..SysFootprint::default()
            };
            let s = FootprintSnapshot::of(1_700_000_000.0 + i as f64, vec![(42, p)], sys);
            w.push(&s).unwrap();
            snaps.push(s);
        }
        w.finish().unwrap();
        // `true` as perf: an empty hotspot section on both sides
        let theirs = run_damo(
            &damo,
            &[
                "report",
                "holistic",
                "--access_pattern",
                input,
                "--perf_path",
                "true",
            ],
        );
        let ours = holistic_text(&records, Some(&snaps), Some("")).unwrap();
        let section = |t: &str| {
            t[t.find("# Memory Footprints Distribution")
                .expect("a distribution section")..]
                .trim_end()
                .to_string()
        };
        assert_eq!(
            section(&ours),
            section(&theirs),
            "{} snapshots",
            records[0].snapshots.len()
        );
        assert!(
            ours.contains("# resolution: 80x5"),
            "we draw the heatmap: {ours}"
        );
    }
    println!("{T}: the wss, rss, vsz and sys_used percentiles match for 130 and 260 snapshots");
}
