//! Tests of the record formats and the recorder.

use super::file::is_zlib;
use super::*;
use damon_core::{AddrRange, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock};

fn sample_records() -> Vec<Record> {
    let iv = RecordIntervals {
        sample_us: 5_000,
        aggr_us: 100_000,
        ops_update_us: 1_000_000,
        goal: IntervalsGoal::default(),
    };
    let mut a = Record::new(0, Some(iv));
    for t in 0..3u64 {
        a.snapshots.push(Snapshot {
            start_time: 1_000_000_000 + t * 100_000_000,
            end_time: 1_100_000_000 + t * 100_000_000,
            regions: vec![
                RecordRegion {
                    start: 4096,
                    end: 8192,
                    nr_accesses: t as u32,
                    age: 3,
                },
                RecordRegion {
                    start: 8192,
                    end: 1 << 40,
                    nr_accesses: 20,
                    age: 0,
                },
            ],
            sample_interval_us: Some(5_000),
        });
    }
    let mut b = a.clone();
    b.target_id = 1;
    b.kdamond_idx = 2;
    b.context_idx = 1;
    b.scheme_idx = Some(4);
    vec![a, b]
}

#[test]
fn json_round_trips() {
    let recs = sample_records();
    let text = write_json(&recs);
    assert!(text.trim_start().starts_with('['));
    assert_eq!(parse_record(text.as_bytes()).unwrap(), recs);
    let z = write_json_compressed(&recs);
    assert!(is_zlib(&z));
    assert_eq!(parse_record(&z).unwrap(), recs);
    assert_eq!(
        parse_record(&encode(&recs, RecordFormat::Json)).unwrap(),
        recs
    );
}

#[test]
fn json_has_damos_keys_and_encodings() {
    let v: Value = serde_json::from_str(&write_json(&sample_records()[..1])).unwrap();
    let r = &v[0];
    for k in [
        "kdamond_idx",
        "context_idx",
        "intervals",
        "scheme_idx",
        "target_id",
        "scheme_filters",
        "snapshots",
        "data_source",
    ] {
        assert!(r.get(k).is_some(), "{k}");
    }
    assert_eq!(r["intervals"]["aggr_us"], 100_000);
    let g = &r["snapshots"][0]["regions"][0];
    assert_eq!(g["nr_accesses"]["samples"], 0);
    assert!(g["nr_accesses"]["percent"].is_null());
    assert_eq!(g["age"]["aggr_intervals"], 3);
    assert!(g["age"]["usec"].is_null());
    assert_eq!(r["snapshots"][0]["total_bytes"], (1u64 << 40) - 4096);
}

#[test]
fn reads_damos_own_spellings() {
    // as damo 3.4.3's write_json() writes it: raw strings, grouped
    // numbers, human sizes
    let text = r#"[{"kdamond_idx": 0, "context_idx": 0,
        "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000",
                      "intervals_goal": {"access_bp": "0.000000", "aggrs": "0",
                                         "min_sample_us": "0", "max_sample_us": "0"}},
        "scheme_idx": null, "target_id": 42, "scheme_filters": [],
        "snapshots": [{"start_time": "1000", "end_time": "100000000",
            "regions": [{"start": "4,096", "end": "8,192",
                         "nr_accesses": {"samples": 3, "percent": null},
                         "age": {"usec": null, "aggr_intervals": "5"},
                         "probe_hits": [], "sz_filter_passed": "0 B"},
                        {"start": "8,192", "end": "12,288",
                         "nr_accesses": {"samples": null, "percent": "50 %"},
                         "age": {"usec": "300 ms", "aggr_intervals": null}}],
            "total_bytes": "8192", "damos_stats": null, "sample_interval_us": null}],
        "data_source": "unknown"}]"#;
    let r = &parse_record(text.as_bytes()).unwrap()[0];
    assert_eq!(r.target_id, 42);
    assert_eq!(r.intervals.unwrap().sample_us, 5000);
    let s = &r.snapshots[0];
    assert_eq!((s.start_time, s.end_time), (1000, 100_000_000));
    assert_eq!(
        s.regions[0],
        RecordRegion {
            start: 4096,
            end: 8192,
            nr_accesses: 3,
            age: 5
        }
    );
    // 50 % of 20 samples; 300 ms / 100 ms
    assert_eq!(
        s.regions[1],
        RecordRegion {
            start: 8192,
            end: 12288,
            nr_accesses: 10,
            age: 3
        }
    );
}

#[test]
fn reads_damos_snapshot_records() {
    // `damo record --snapshot`: tried regions of a stat scheme, no target id
    let text = r#"[{"kdamond_idx": 0, "context_idx": 0, "intervals": null,
        "scheme_idx": 0, "target_id": null, "scheme_filters": [],
        "snapshots": [{"start_time": "1795311804351137536", "end_time": "1795311804451137536",
            "regions": [{"start": "4,096", "end": "26,843,545,600",
                         "nr_accesses": {"samples": 0, "percent": null},
                         "age": {"usec": null, "aggr_intervals": "0"},
                         "probe_hits": [], "sz_filter_passed": "0 B"}],
            "total_bytes": "26843541504",
            "damos_stats": {"nr_tried": "0", "sz_tried": "0", "nr_applied": "0",
                            "sz_applied": "0", "sz_ops_filter_passed": "0", "qt_exceeds": "0",
                            "nr_snapshots": "0", "max_nr_snapshots": "0"},
            "sample_interval_us": null}],
        "data_source": "unknown"}]"#;
    let r = &parse_record(text.as_bytes()).unwrap()[0];
    assert_eq!((r.target_id, r.scheme_idx, r.intervals), (0, Some(0), None));
    assert_eq!(r.snapshots[0].start_time, 1_795_311_804_351_137_536);
    assert_eq!(r.snapshots[0].total_bytes(), 26_843_541_504);
}

#[test]
fn perf_script_round_trips() {
    let recs = sample_records();
    let text = write_perf_script(&recs);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "kdamond.0 0 [000] 1.100000: damon:damon_aggregated: target_id=0 nr_regions=2 4096-8192: 0 3"
    );
    let back = parse_perf_script(&text).unwrap();
    assert_eq!(back.len(), 2);
    for (b, r) in back.iter().zip(&recs) {
        assert_eq!(b.target_id, r.target_id);
        assert_eq!(b.intervals, None);
        let got: Vec<_> = b
            .snapshots
            .iter()
            .map(|s| (s.start_time, s.end_time, s.regions.clone()))
            .collect();
        let want: Vec<_> = r
            .snapshots
            .iter()
            .map(|s| (s.start_time, s.end_time, s.regions.clone()))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(parse_record(text.as_bytes()).unwrap().len(), 2);
}

#[test]
fn single_snapshot_perf_script_gets_a_fake_snapshot() {
    let mut r = sample_records().remove(0);
    r.snapshots.truncate(1);
    let text = write_perf_script(std::slice::from_ref(&r));
    assert!(
        text.ends_with("target_id=0 nr_regions=1 0-0: -1 -1\n"),
        "{text}"
    );
    let back = parse_perf_script(&text).unwrap();
    assert_eq!(back[0].snapshots.len(), 1);
    let s = &back[0].snapshots[0];
    assert_eq!((s.start_time, s.end_time), (1_000_000_000, 1_100_000_000));
}

#[test]
fn reads_perf_and_trace_cmd_text() {
    let text = "\
kdamond.0  4452 [000] 82877.315633: damon:damon_aggregated: target_id=0 nr_regions=2 4096-8192: 1 2
kdamond.0  4452 [000] 82877.315640: damon:damon_aggregated: target_id=0 nr_regions=2 8192-12288: 0 7
kdamond.0  4452 [000] 82877.415633: damon:damon_monitor_intervals_tune: sample_us=8000
kdamond.0-4452 [005] ..... 82877.415633: damon_aggregated:     target_id=0 nr_regions=1 4096-12288: 3 0
";
    let r = &parse_record(text.as_bytes()).unwrap()[0];
    assert_eq!(r.snapshots.len(), 2);
    assert_eq!(r.snapshots[0].regions.len(), 2);
    assert_eq!(r.snapshots[0].end_time, 82_877_315_633_000);
    assert_eq!(r.snapshots[1].sample_interval_us, Some(8000));
    assert_eq!(r.snapshots[1].regions[0].nr_accesses, 3);
}

#[test]
fn bad_input_is_an_error() {
    for bad in [
        &b""[..],
        b"   ",
        b"PERFILE2....",
        b"\x78\x9c\x00\x01",
        b"[1, 2]",
        b"{\"a\": 1}",
        b"[{\"target_id\": 0}]",
        b"[{\"target_id\": -1, \"snapshots\": []}]",
        b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": 0, \"end_time\": 1, \"regions\": [{\"start\": 5, \"end\": 1, \"nr_accesses\": {\"samples\": 1}}]}]}]",
        b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": 0, \"end_time\": 1, \"regions\": [{\"start\": 0, \"end\": 1, \"nr_accesses\": {\"percent\": 5}}]}]}]",
        b"hello world",
        b"\xff\xfe",
        b"x 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 5-1: 1 1",
        b"x 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-1: 99999999999 1",
    ] {
        assert!(parse_record(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let e = parse_record(b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": \"soon\"}]}]")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("records[0].snapshots[0].start_time: expected"),
        "{e}"
    );
}

#[test]
fn formats_by_name() {
    for f in [
        RecordFormat::Json,
        RecordFormat::JsonCompressed,
        RecordFormat::PerfScript,
    ] {
        assert_eq!(f.name().parse::<RecordFormat>().unwrap(), f);
    }
    assert!("perf_data".parse::<RecordFormat>().is_err());
    assert!("yaml".parse::<RecordFormat>().is_err());
}

#[test]
fn recorder_takes_one_snapshot_per_aggregation() {
    let hot = HotRange {
        range: AddrRange::new(0, 64 << 20),
        probability: 1.0,
    };
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))),
    );
    ctx.targets.push(Target::new(0));
    ctx.targets.push(Target::new(1));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(3);
    // a callback already installed keeps running
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = Arc::clone(&seen);
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        seen2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Control::Continue
    }));
    let rec = Recorder::new()
        .with_indices(1, 2)
        .with_time_origin_ns(5)
        .install(&mut ctx);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    for _ in 0..100 {
        assert!(kd.step().is_none());
    }
    let rec = rec.lock();
    assert_eq!(rec.nr_snapshots(), 5);
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 5);
    let r = &rec.records()[1];
    assert_eq!((r.kdamond_idx, r.context_idx, r.target_id), (1, 2, 1));
    assert_eq!(r.intervals.unwrap().aggr_us, 100_000);
    for (i, s) in r.snapshots.iter().enumerate() {
        let i = i as u64;
        assert_eq!(s.start_time, 5 + i * 100_000_000);
        assert_eq!(s.end_time, 5 + (i + 1) * 100_000_000);
        assert_eq!(s.total_bytes(), 1 << 30);
        assert!(s.regions.windows(2).all(|w| w[0].end <= w[1].start));
    }
    // every sample of the hot 64 MiB saw an access
    let last = r.snapshots.last().unwrap();
    let hot_bytes: u64 = last
        .regions
        .iter()
        .filter(|g| g.nr_accesses == 20)
        .map(RecordRegion::size)
        .sum();
    assert!(hot_bytes > 0);
}

#[test]
fn broken_records_are_refused_naming_snapshot_and_region() {
    let rec = |regions: &str, start: i64, end: i64| {
        format!(
            r#"[{{"kdamond_idx": 0, "context_idx": 0, "scheme_idx": null, "target_id": 0,
                 "snapshots": [{{"start_time": 0, "end_time": 100, "regions": []}},
                               {{"start_time": {start}, "end_time": {end}, "regions": [{regions}]}}]}}]"#
        )
    };
    let region = |s: u64, e: u64| {
        format!(
            r#"{{"start": {s}, "end": {e}, "nr_accesses": {{"samples": 1}}, "age": {{"aggr_intervals": 0}}}}"#
        )
    };
    let ok = rec(&[region(0, 4096), region(4096, 8192)].join(","), 100, 200);
    assert!(parse_record(ok.as_bytes()).is_ok());
    let backwards = rec(&[region(0, 4096), region(9000, 8192)].join(","), 100, 200);
    let e = parse_record(backwards.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("snapshots[1].regions[1]"), "{e}");
    let overlap = rec(&[region(0, 8192), region(4096, 12288)].join(","), 100, 200);
    let e = parse_record(overlap.as_bytes()).unwrap_err().to_string();
    assert!(
        e.contains("records[0].snapshots[1].regions[1]") && e.contains("overlaps"),
        "{e}"
    );
    let negative = rec(&region(0, 4096), 300, 200);
    let e = parse_record(negative.as_bytes()).unwrap_err().to_string();
    assert!(
        e.contains("records[0].snapshots[1]") && e.contains("before it starts"),
        "{e}"
    );
}

#[test]
fn broken_perf_script_records_are_refused_too() {
    // perf script text: two aggregations where the second one's regions
    // overlap; before, the text reader took it silently
    let text = "kdamond.0 0 [000] 0.100000: damon:damon_aggregated: target_id=0 nr_regions=1 0-4096: 1 0\n\
                kdamond.0 0 [000] 0.200000: damon:damon_aggregated: target_id=0 nr_regions=2 0-8192: 1 0\n\
                kdamond.0 0 [000] 0.200000: damon:damon_aggregated: target_id=0 nr_regions=2 4096-12288: 1 0\n";
    let e = parse_record(text.as_bytes()).unwrap_err().to_string();
    assert!(
        e.contains("snapshots[1].regions[1]") && e.contains("overlaps"),
        "{e}"
    );
}

#[test]
fn snapshot_mode_keeps_one_aggregation_per_delay_up_to_the_limit() {
    use damon_core::{
        AddrRange, Context, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock,
    };
    let hot = HotRange {
        range: AddrRange::new(0, 64 << 20),
        probability: 0.8,
    };
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(std::sync::Arc::new(VirtualClock::new()));
    ctx.seed = Some(7);
    let rec = Recorder::new()
        .with_snapshot_every(std::time::Duration::from_millis(500))
        .with_limit(3)
        .install(&mut ctx);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    // 5 s of 5 ms samples, 100 ms aggregations: 50 aggregations
    for _ in 0..1000 {
        kd.step();
    }
    let r = rec.lock();
    let snaps = &r.records()[0].snapshots;
    let ends: Vec<u64> = snaps.iter().map(|s| s.end_time).collect();
    assert_eq!(
        ends,
        vec![600_000_000, 1_100_000_000, 1_600_000_000],
        "every 0.5 s after the first, 3 of them"
    );
    assert!(
        snaps
            .iter()
            .all(|s| s.end_time - s.start_time == 100_000_000),
        "each spans its own aggregation"
    );
}
