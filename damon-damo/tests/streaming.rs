//! Records written as they are made and read one snapshot at a time: the
//! files equal what the whole-record writers make, the reports equal the
//! in-memory ones, and the memory held does not grow with the record.

use damon_damo::{
    heatmap, heatmap_of, parse_record, wss, wss_of, HeatmapOptions, Record, RecordFile,
    RecordFormat, RecordIntervals, RecordMeta, RecordRegion, RecordWriter, Snapshot,
    SnapshotSource, WssOptions,
};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udamon-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn intervals() -> RecordIntervals {
    RecordIntervals {
        sample_us: 5000,
        aggr_us: 100_000,
        ops_update_us: 1_000_000,
        goal: Default::default(),
    }
}

/// `n` snapshots of `nr_regions` regions for target `tid`, with a hot
/// region moving through the space.
fn record(tid: u64, n: u64, nr_regions: u64) -> Record {
    let mut r = Record::new(tid, Some(intervals()));
    for i in 0..n {
        let regions = (0..nr_regions)
            .map(|j| RecordRegion {
                start: (tid << 40) + j * 4096 * 16,
                end: (tid << 40) + (j + 1) * 4096 * 16,
                nr_accesses: if (i + j) % 7 == 0 { 20 } else { (j % 3) as u32 },
                age: (i % 5) as u32,
            })
            .collect();
        r.snapshots.push(Snapshot {
            start_time: i * 100_000_000,
            end_time: (i + 1) * 100_000_000,
            regions,
            sample_interval_us: Some(5000),
        });
    }
    r
}

/// Writes `records` through a [`RecordWriter`], the targets interleaved as
/// a monitor makes them.
fn stream_out(records: &[Record], path: &PathBuf, format: RecordFormat) {
    let mut w = RecordWriter::create(path, format).expect("create");
    let n = records[0].snapshots.len();
    for i in 0..n {
        for (ri, r) in records.iter().enumerate() {
            w.push(&RecordMeta::of(ri, r), &r.snapshots[i])
                .expect("push");
        }
    }
    let s = w.finish().expect("finish");
    assert_eq!((s.nr_records, s.nr_snapshots), (records.len(), n as u64));
}

fn walk<S: SnapshotSource + ?Sized>(src: &S) -> Vec<(u64, Snapshot)> {
    let mut out = Vec::new();
    src.for_each_snapshot(&mut |m, s| {
        out.push((m.target_id, s.clone()));
        Ok(())
    })
    .expect("walk");
    out.sort_by_key(|(t, s)| (*t, s.end_time));
    out
}

#[test]
fn streamed_files_read_back_as_the_records_in_every_format() {
    let records = vec![record(0, 40, 30), record(1, 40, 12)];
    for format in [
        RecordFormat::Json,
        RecordFormat::JsonCompressed,
        RecordFormat::PerfScript,
    ] {
        let path = tmp(&format!("round.{format}"));
        stream_out(&records, &path, format);
        let back = parse_record(&std::fs::read(&path).unwrap()).expect("parses");
        if format == RecordFormat::PerfScript {
            // perf script has no intervals and deduces the first start
            assert_eq!(back.len(), 2);
            for (b, r) in back.iter().zip(&records) {
                assert_eq!(b.snapshots.len(), r.snapshots.len());
                assert_eq!(b.snapshots[5].regions, r.snapshots[5].regions);
            }
        } else {
            assert_eq!(back, records, "{format}");
            assert_eq!(walk(&RecordFile::new(&path)), walk(&records), "{format}");
        }
        // this file's parts only: the other tests of this binary stream
        // into the same directory at the same time
        let mine = format!(".{}.part", path.file_name().unwrap().to_string_lossy());
        let parts: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&mine))
            .collect();
        assert!(parts.is_empty(), "part files left: {parts:?}");
    }
}

#[test]
fn reports_from_a_streamed_file_equal_the_in_memory_ones() {
    let records = vec![record(0, 60, 40), record(1, 60, 10)];
    let path = tmp("reports.data");
    stream_out(&records, &path, RecordFormat::JsonCompressed);
    let file = RecordFile::new(&path);
    for opts in [
        WssOptions::default(),
        WssOptions {
            collapse_targets: false,
            work_time_us: 250_000,
            ..WssOptions::default()
        },
    ] {
        assert_eq!(wss_of(&file, &opts).unwrap(), wss(&records, &opts));
    }
    let opts = HeatmapOptions::default();
    assert_eq!(
        heatmap_of(&file, &opts).unwrap(),
        heatmap(&records, &opts).unwrap()
    );
}

#[test]
fn snapshots_before_the_record_keys_and_broken_snapshots() {
    let path = tmp("order.json");
    std::fs::write(
        &path,
        r#"[{"snapshots": [{"start_time": 0, "end_time": 100, "regions": [
              {"start": 0, "end": 4096, "nr_accesses": {"samples": 2}, "age": {"aggr_intervals": 1}}]}],
            "target_id": 7, "intervals": null}]"#,
    )
    .unwrap();
    let got = walk(&RecordFile::new(&path));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 7, "the target id given after the snapshots");

    std::fs::write(
        &path,
        r#"[{"target_id": 0, "snapshots": [
            {"start_time": 0, "end_time": 100, "regions": []},
            {"start_time": 100, "end_time": 200, "regions": [
              {"start": 0, "end": 8192, "nr_accesses": {"samples": 1}},
              {"start": 4096, "end": 12288, "nr_accesses": {"samples": 1}}]}]}]"#,
    )
    .unwrap();
    let e = RecordFile::new(&path)
        .for_each_snapshot(&mut |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("records[0].snapshots[1].regions[1]") && e.contains("overlaps"),
        "{e}"
    );
}

#[test]
fn an_unfinished_writer_leaves_no_part_file() {
    let path = tmp("dropped.data");
    let mut w = RecordWriter::create(&path, RecordFormat::JsonCompressed).unwrap();
    let r = record(0, 2, 4);
    w.push(&RecordMeta::of(0, &r), &r.snapshots[0]).unwrap();
    drop(w);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.contains(&name) && n.contains(".part")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
