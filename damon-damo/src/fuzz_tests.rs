//! Malformed input never panics: arbitrary bytes, and valid files with
//! one value replaced by something odd (the structured mutations the
//! fuzz targets also make).

use crate::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn odd_values() -> Vec<Value> {
    vec![
        json!(""),
        json!("max"),
        json!("min"),
        json!("-1"),
        json!(-1),
        json!(1e308),
        json!(-0.5),
        json!(0.5),
        json!("1e400"),
        json!("18446744073709551616"),
        json!(u64::MAX),
        json!(true),
        Value::Null,
        json!([]),
        json!({}),
        json!([1, 2]),
        json!({"start": 5, "end": 1}),
        json!("5 ms"),
        json!("4 KiB"),
        json!("ten"),
        json!("0 %"),
        json!("200 %"),
        json!("3 samples"),
        json!("9 aggr_intervals"),
        json!(0),
        json!(4294967296u64),
    ]
}

/// Every JSON pointer of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

fn mutate(base: &Value, which: usize, with: usize) -> String {
    let mut v = base.clone();
    let mut ptrs = Vec::new();
    pointers(&v, String::new(), &mut ptrs);
    let p = &ptrs[which % ptrs.len()];
    let odd = odd_values();
    if let Some(slot) = v.pointer_mut(p) {
        *slot = odd[with % odd.len()].clone();
    }
    v.to_string()
}

fn sample_config() -> Value {
    let text = r#"{"kdamonds": [{"refresh_ms": 0, "contexts": [{"ops": "vaddr", "addr_unit": 1,
        "targets": [{"pid": 1, "obsolete": false, "regions": [{"start": 0, "end": 8192}]}],
        "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s",
          "intervals_goal": {"access_bp": "4 %", "aggrs": 3, "min_sample_us": "1 ms", "max_sample_us": "10 s"}},
        "nr_regions": {"min": 10, "max": 1000}, "pause": false,
        "schemes": [{"action": "migrate_hot", "target_nid": 1, "dests": [],
          "access_pattern": {"sz_bytes": {"min": "4 KiB", "max": "max"},
            "nr_accesses": {"min": "5 %", "max": "3 samples"}, "age": {"min": "1 s", "max": "max"}},
          "apply_interval_us": 0,
          "quotas": {"time_ms": 10, "sz_bytes": "1 GiB", "reset_interval_ms": "1 s",
            "goals": [{"metric": "node_mem_free_bp", "nid": 0, "target_value": "30 %", "current_value": 0}],
            "goal_tuner": "consist", "weights": {"sz_permil": 0, "nr_accesses_permil": 3, "age_permil": 7}},
          "watermarks": {"metric": "free_mem_rate", "interval_us": "5 s", "high_permil": 500, "mid_permil": 400, "low_permil": 50},
          "filters": [{"filter_type": "addr", "matching": true, "allow": false, "address_range": {"start": 0, "end": 4096}},
                      {"filter_type": "hugepage_size", "matching": false, "allow": true, "hugepage_size": ["2 MiB", "2 MiB"]}],
          "stats": {"max_nr_snapshots": 3}}]}]}]}"#;
    let v: Value = serde_json::from_str(text).unwrap();
    parse_kdamonds(text).unwrap();
    v
}

fn sample_record() -> Value {
    let mut r = Record::new(0, None);
    r.intervals = Some(RecordIntervals {
        sample_us: 5000,
        aggr_us: 100_000,
        ops_update_us: 1_000_000,
        goal: damon_core::attrs::IntervalsGoal::default(),
    });
    for t in 0..2u64 {
        r.snapshots.push(Snapshot {
            start_time: t * 100,
            end_time: (t + 1) * 100,
            regions: vec![RecordRegion {
                start: 0,
                end: 4096,
                nr_accesses: 1,
                age: 2,
            }],
            sample_interval_us: Some(5000),
        });
    }
    serde_json::from_str(&write_json(&[r])).unwrap()
}

/// Reports of whatever was parsed never panic either.
fn report_all(records: &[Record]) {
    let _ = wss(records, &WssOptions::default());
    let _ = wss(
        records,
        &WssOptions {
            exclude_samples: 0,
            work_time_us: 0,
            ..Default::default()
        },
    );
    let _ = access(records, &AccessOptions::default());
    let _ = heatmap(
        records,
        &HeatmapOptions {
            resolution: (4, 4),
            ..Default::default()
        },
    )
    .map(|m| (m.to_ascii(), m.to_raw()));
}

proptest! {
    #[test]
    fn parse_record_survives_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = parse_record(&data) {
            report_all(&r);
        }
    }

    #[test]
    fn parse_record_survives_mutated_json(which in 0usize..1000, with in 0usize..100) {
        let text = mutate(&sample_record(), which, with);
        if let Ok(r) = parse_record(text.as_bytes()) {
            report_all(&r);
        }
        let z = {
            use std::io::Write as _;
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let _ = parse_record(&z);
    }

    #[test]
    fn parse_record_survives_mangled_text(cut in 0usize..400, byte in any::<u8>(), at in 0usize..400) {
        let recs = vec![Record::new(3, None)];
        let mut t = write_perf_script(&recs).into_bytes();
        let mut r = Record::new(1, None);
        r.snapshots.push(Snapshot { start_time: 0, end_time: 10, regions: vec![RecordRegion { start: 0, end: 9, nr_accesses: 1, age: 1 }], sample_interval_us: None });
        t.extend(write_perf_script(&[r]).into_bytes());
        if !t.is_empty() {
            let i = at % t.len();
            t[i] = byte;
        }
        t.truncate(cut.min(t.len()));
        if let Ok(r) = parse_record(&t) {
            report_all(&r);
        }
    }

    #[test]
    fn parse_kdamonds_survives_any_text(s in ".{0,300}") {
        let _ = parse_kdamonds(&s);
    }

    #[test]
    fn parse_kdamonds_survives_mutated_configs(which in 0usize..1000, with in 0usize..100) {
        let text = mutate(&sample_config(), which, with);
        if let Ok(cfg) = parse_kdamonds(&text) {
            // whatever loads saves and loads back the same
            if let Ok(saved) = save_kdamonds(&cfg) {
                prop_assert_eq!(parse_kdamonds(&saved).unwrap(), cfg);
            }
        }
    }
}
