//! damo's own recorder on the kernel's DAMON, and our reports of its
//! record against damo's. damo record drives the kernel's DAMON through its
//! sysfs tree, which on the host belongs to the machine (it runs a kdamond
//! of its own), so this runs only in the guest VM suite, where xtask stages
//! python, damo and file(1) (`xtask/src/guest_damo.rs`).

mod common;

use common::*;
use damon_damo::filter::{times, times_text, RecordFilter};
use damon_damo::{parse_record, style_text, AccessStyle, StyleOptions, WssOptions, WssSort};
use std::path::Path;
use std::process::Command;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// tracefs with DAMON's events, mounting it if needed.
fn ensure_tracefs() -> Result<(), String> {
    let ev = Path::new("/sys/kernel/tracing/events/damon/damon_aggregated");
    if ev.exists() {
        return Ok(());
    }
    let _ = Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .output();
    if ev.exists() {
        Ok(())
    } else {
        Err("no damon:damon_aggregated trace event (tracefs not mountable, or DAMON tracepoints missing)".into())
    }
}

#[test]
fn we_report_damos_kernel_record_like_damo() {
    const T: &str = "we_report_damos_kernel_record_like_damo";
    // damo record drives the kernel's DAMON through its sysfs tree. The
    // host's tree belongs to the machine (it runs a kdamond of its own), so
    // this test never runs on a host; it needs a guest kernel with damo.
    if std::env::var("DAMON_VM_SUITE").as_deref() != Ok("1") {
        return skip(
            T,
            "would write to this machine's DAMON sysfs; runs only inside the guest VM suite",
        );
    }
    // in the guest suite what the test needs is there: missing is a failure
    let missing = |why: &str| panic!("{T}: {why}");
    if !is_root() {
        missing("damo record needs root");
    }
    if !Path::new("/sys/kernel/mm/damon/admin/kdamonds").exists() {
        missing("the kernel has no DAMON sysfs interface (CONFIG_DAMON_SYSFS)");
    }
    if std::fs::read_to_string("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds")
        .is_ok_and(|n| n.trim() != "0")
    {
        missing("kernel DAMON is already in use (nr_kdamonds != 0)");
    }
    let damo = damo().unwrap_or_else(|e| panic!("{T}: {e}"));
    if !have_file_cmd() {
        missing("damo needs file(1) to read record files");
    }
    // on PATH, as damo's `which` check sees it (`trace-cmd --version` exits 1)
    let have = |cmd: &str| {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(cmd).exists())
    };
    println!("{T}: damo version {}", damo_version(&damo));
    let dir = tmp_dir("kernel");
    let f = dir.join("damon.data");
    let mut cmd = Command::new(&damo);
    cmd.args(["record", "paddr", "--do_record", "access"]);
    // damon_aggregated trace events with perf or trace-cmd: 4 s of 100 ms
    // aggregations, about 40 snapshots (damo's wss skips 20). (damo's
    // --snapshot recording needs a 6.14 kernel: it writes the tried
    // regions' sz_filter_passed, which older kernels lack.)
    if !have("perf") && !have("trace-cmd") {
        missing("damo record needs perf or trace-cmd");
    }
    if let Err(e) = ensure_tracefs() {
        missing(&e);
    }
    cmd.args(["--timeout", "4"]);
    let out = cmd.arg("-o").arg(&f).output().expect("run damo record");
    assert!(
        out.status.success() && f.exists(),
        "{T}: damo record paddr failed: {} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    println!(
        "{T}: damo record said: {} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let records = match parse_record(&std::fs::read(&f).unwrap()) {
        Ok(r) => r,
        Err(e) => {
            // damo leaves the tracer's raw file when converting it failed
            let r = Command::new("trace-cmd")
                .args(["report", "-i"])
                .arg(&f)
                .output();
            let why = match r {
                Ok(o) => format!(
                    "trace-cmd report: {}; {}",
                    String::from_utf8_lossy(&o.stderr).trim(),
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
                Err(e) => format!("trace-cmd report: {e}"),
            };
            panic!("{T}: damo wrote no record ({e}); {why}");
        }
    };
    let snaps = records[0].snapshots.len();
    let regions: usize = records[0].snapshots.iter().map(|s| s.regions.len()).sum();
    println!(
        "{T}: damo's record: {} record(s), {snaps} snapshots, {regions} regions",
        records.len()
    );
    assert!(snaps > 20, "{T}: only {snaps} snapshots");
    assert!(records[0].intervals.is_some());

    compare_wss(T, &damo, &f, &records, &[], &WssOptions::default());
    compare_wss(
        T,
        &damo,
        &f,
        &records,
        &["--sortby", "time"],
        &WssOptions {
            sort_by: WssSort::Time,
            ..WssOptions::default()
        },
    );
    compare_wss(
        T,
        &damo,
        &f,
        &records,
        &["--exclude_samples", "0"],
        &WssOptions {
            exclude_samples: 0,
            ..WssOptions::default()
        },
    );

    // heatmap over the recorded span and address space
    let r = &records[0];
    let t0 = r.snapshots[0].start_time as i64;
    let t1 = r.snapshots.last().unwrap().end_time as i64;
    let lo = r
        .snapshots
        .iter()
        .flat_map(|s| s.regions.iter().map(|g| g.start))
        .min()
        .unwrap();
    let hi = r
        .snapshots
        .iter()
        .flat_map(|s| s.regions.iter().map(|g| g.end))
        .max()
        .unwrap();
    compare_heatmap(T, &damo, &f, &records, (t0, t1), (lo, hi), (40, 80));

    // an access style and times on the kernel's record
    let input = f.to_str().unwrap();
    let theirs = run_damo(
        &damo,
        &[
            "report",
            "access",
            "--input_file",
            input,
            "--style",
            "recency-percentiles",
            "--snapshot_idx",
            "5",
            "9",
        ],
    );
    let mut five = records.clone();
    RecordFilter {
        snapshot_idx: Some(vec![(5, 9)]),
        ..RecordFilter::default()
    }
    .apply(&mut five)
    .unwrap();
    let ours = style_text(&five, &StyleOptions::new(AccessStyle::RecencyPercentiles)).unwrap();
    assert_eq!(
        ours.trim_end(),
        theirs.trim_end(),
        "{T}: recency-percentiles"
    );
    let theirs = run_damo(
        &damo,
        &[
            "report",
            "times",
            "--inputs",
            input,
            "none",
            "--access_rate",
            "0",
            "0",
        ],
    );
    let mut hot = records.clone();
    RecordFilter {
        access_rate_percent: (0.0, 0.0),
        ..RecordFilter::default()
    }
    .apply(&mut hot)
    .unwrap();
    // an idle guest's physical memory is mostly unaccessed
    assert!(!times(&hot).is_empty(), "{T}: no idle region at all");
    assert_eq!(times_text(&times(&hot)), theirs, "{T}: times");
    println!("{T}: wss (3 option sets), heatmap, recency-percentiles and times match damo");
    let _ = std::fs::remove_dir_all(&dir);
}
