//! Streaming records hold the memory of one snapshot, however long the
//! record: measured with the counting allocator's live heap (one test in
//! this file, so no other test allocates meanwhile).

use damon_core::testing::alloc::CountingAlloc;
use damon_damo::record::SnapshotFn;
use damon_damo::{
    heatmap_of, wss_of, DamoError, HeatmapOptions, Record, RecordFile, RecordFormat,
    RecordIntervals, RecordMeta, RecordRegion, RecordWriter, Snapshot, SnapshotSource, WssOptions,
};
use std::cell::Cell;
use std::path::PathBuf;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udamon-stream-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// One snapshot of `nr_regions` regions.
fn record(nr_regions: u64) -> Record {
    let mut r = Record::new(
        0,
        Some(RecordIntervals {
            sample_us: 5000,
            aggr_us: 100_000,
            ops_update_us: 1_000_000,
            goal: Default::default(),
        }),
    );
    r.snapshots.push(Snapshot {
        start_time: 0,
        end_time: 100_000_000,
        regions: (0..nr_regions)
            .map(|j| RecordRegion {
                start: j * 65536,
                end: (j + 1) * 65536,
                nr_accesses: (j % 4) as u32,
                age: 1,
            })
            .collect(),
        sample_interval_us: Some(5000),
    });
    r
}

/// Live heap growth while `f` runs, sampled by `f` through `sample`.
fn peak_growth(f: impl FnOnce(&mut dyn FnMut())) -> usize {
    let base = CountingAlloc::live_bytes();
    let mut peak = base;
    f(&mut || peak = peak.max(CountingAlloc::live_bytes()));
    peak.saturating_sub(base)
}

/// Peak live-heap growth (bytes) of writing, reading, `wss` and `heatmap`
/// over a record of `n` snapshots of `regions` regions.
fn peaks(n: u64, regions: u64) -> [usize; 4] {
    let one = record(regions);
    let path = tmp(&format!("long{n}.data"));
    let written = peak_growth(|sample| {
        let mut w = RecordWriter::create(&path, RecordFormat::JsonCompressed).unwrap();
        let meta = RecordMeta::of(0, &one);
        for i in 0..n {
            let mut s = one.snapshots[0].clone();
            s.start_time = i * 100_000_000;
            s.end_time = (i + 1) * 100_000_000;
            w.push(&meta, &s).unwrap();
            sample();
        }
        w.finish().unwrap();
        sample();
    });
    let mut seen = 0;
    let read = peak_growth(|sample| {
        RecordFile::new(&path)
            .for_each_snapshot(&mut |_, s| {
                seen += 1;
                assert_eq!(s.regions.len() as u64, regions);
                sample();
                Ok(())
            })
            .unwrap();
    });
    assert_eq!(seen, n);
    let base = CountingAlloc::live_bytes();
    let src = Sampling {
        inner: RecordFile::new(&path),
        peak: Cell::new(base),
    };
    wss_of(&src, &WssOptions::default()).unwrap();
    let wss = src.peak.replace(base) - base;
    let opts = HeatmapOptions {
        resolution: (100, 100),
        ..HeatmapOptions::default()
    };
    heatmap_of(&src, &opts).unwrap();
    let heat = src.peak.get() - base;
    let _ = std::fs::remove_file(&path);
    [written, read, wss, heat]
}

#[test]
fn a_long_record_is_written_and_read_in_the_memory_of_one_snapshot() {
    const REGIONS: u64 = 100;
    let short = peaks(200, REGIONS);
    let long = peaks(800, REGIONS);
    let whole = 800 * REGIONS as usize * std::mem::size_of::<RecordRegion>();
    eprintln!("peaks (write, read, wss, heatmap): 200 snapshots {short:?}, 800 {long:?}; the long record is {whole} B in memory");
    for (i, what) in ["writing", "reading", "wss", "heatmap"].iter().enumerate() {
        // 4x the snapshots: the memory grows by less than a tenth of what
        // the record grows by in memory (the wss list keeps 8 B a snapshot)
        assert!(
            long[i] <= short[i] + (whole - whole / 4) / 10,
            "{what}: {} B for 200 snapshots, {} B for 800",
            short[i],
            long[i]
        );
        assert!(
            long[i] < whole / 2,
            "{what}: {} B of a {whole} B record",
            long[i]
        );
    }
}

/// A source that notes the live heap at every snapshot it hands over.
struct Sampling {
    inner: RecordFile,
    peak: Cell<usize>,
}

impl SnapshotSource for Sampling {
    fn for_each_snapshot(&self, f: &mut SnapshotFn<'_>) -> Result<(), DamoError> {
        self.inner.for_each_snapshot(&mut |m, s| {
            self.peak
                .set(self.peak.get().max(CountingAlloc::live_bytes()));
            f(m, s)
        })
    }
}
