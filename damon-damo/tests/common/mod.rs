//! Helpers shared by the damo tests: finding (or pip-installing) damo,
//! running it, and comparing its wss and heatmap reports with ours.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers; `expect` would fail in the binaries that use them all"
)]

use damon_damo::{heatmap, wss, HeatmapOptions, Record, WssOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub(crate) fn skip(test: &str, why: &str) {
    println!("skipped: {test}: {why}");
    eprintln!("skipped: {test}: {why}");
}

/// The `damo` executable, installing damo with pip if needed.
pub(crate) fn damo() -> Result<PathBuf, String> {
    static DAMO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DAMO.get_or_init(|| {
        let find = || -> Option<PathBuf> {
            let mut cands = vec![PathBuf::from("damo")];
            if let Ok(o) = Command::new("python3")
                .args([
                    "-c",
                    "import sysconfig; print(sysconfig.get_path('scripts'))",
                ])
                .output()
            {
                let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if !dir.is_empty() {
                    cands.push(Path::new(&dir).join("damo"));
                }
            }
            cands.into_iter().find(|c| {
                Command::new(c)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        };
        if let Some(p) = find() {
            return Ok(p);
        }
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "damo"])
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pip install damo failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        find()
            .ok_or_else(|| "damo installed but not found on PATH or in python's scripts dir".into())
    })
    .clone()
}

pub(crate) fn damo_version(damo: &Path) -> String {
    Command::new(damo)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// damo reads record files only after `file(1)` named their type.
pub(crate) fn have_file_cmd() -> bool {
    Command::new("file")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// damo and file(1), which damo needs to read record files; `None` (the
/// test `test` said skipped) when either is missing.
pub(crate) fn damo_reading_records(test: &str) -> Option<PathBuf> {
    let damo = match damo() {
        Ok(d) => d,
        Err(e) => {
            skip(test, &e);
            return None;
        }
    };
    if !have_file_cmd() {
        skip(
            test,
            "damo needs file(1) to read record files, and it is not installed",
        );
        return None;
    }
    Some(damo)
}

pub(crate) fn run_damo(damo: &Path, args: &[&str]) -> String {
    let out = Command::new(damo).args(args).output().expect("run damo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "damo {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `(average, [(percentile, value)])` from `damo report wss --raw_number --nr_cols_bar 0`.
pub(crate) fn parse_damo_wss(text: &str) -> (u64, Vec<(u32, u64)>) {
    let mut avg = None;
    let mut ps = Vec::new();
    for line in text.lines() {
        if let Some(a) = line.strip_prefix("# avr:") {
            avg = Some(a.trim().parse().expect("avr"));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let f: Vec<&str> = line.split_whitespace().collect();
            ps.push((
                f[0].parse().expect("percentile"),
                f[1].parse().expect("wss"),
            ));
        }
    }
    (avg.unwrap_or_else(|| panic!("no average in {text:?}")), ps)
}

pub(crate) fn compare_wss(
    test: &str,
    damo: &Path,
    file: &Path,
    records: &[Record],
    extra: &[&str],
    opts: &WssOptions,
) {
    let mut args = vec![
        "report",
        "wss",
        "--input",
        file.to_str().unwrap(),
        "--raw_number",
        "--nr_cols_bar",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = run_damo(damo, &args);
    let (d_avg, d_ps) = parse_damo_wss(&out);
    let ours = &wss(records, opts).dists[0];
    println!("{test}: damo {extra:?}: avg {d_avg} {d_ps:?}");
    println!(
        "{test}: ours: avg {} {:?}",
        ours.average as u64, ours.percentiles
    );
    assert_eq!(
        ours.percentiles, d_ps,
        "{test} {extra:?}: percentiles differ\n{out}"
    );
    assert_eq!(
        ours.average as u64, d_avg,
        "{test} {extra:?}: averages differ"
    );
}

/// Heatmap `--output raw` of damo against ours, pixel by pixel.
pub(crate) fn compare_heatmap(
    test: &str,
    damo: &Path,
    file: &Path,
    records: &[Record],
    time: (i64, i64),
    addr: (u64, u64),
    resol: (usize, usize),
) {
    let out = run_damo(
        damo,
        &[
            "report",
            "heatmap",
            "--input",
            file.to_str().unwrap(),
            "--output",
            "raw",
            "--resol",
            &resol.0.to_string(),
            &resol.1.to_string(),
            "--time_range",
            &time.0.to_string(),
            &time.1.to_string(),
            "--address_range",
            &addr.0.to_string(),
            &addr.1.to_string(),
        ],
    );
    let map = heatmap(
        records,
        &HeatmapOptions {
            target_id: None,
            time_range: Some(time),
            addr_range: Some(addr),
            resolution: resol,
        },
    )
    .unwrap();
    let ours = map.to_raw();
    let (mut n, mut touched) = (0, 0);
    for (dl, ol) in out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .zip(ours.lines())
    {
        let d: Vec<&str> = dl.split('\t').collect();
        let o: Vec<&str> = ol.split('\t').collect();
        assert_eq!((d[0], d[1]), (o[0], o[1]), "{test}: pixel {n} position");
        if d[2] == "NaN" || o[2] == "NaN" {
            assert_eq!(d[2], o[2], "{test}: pixel {n} ({dl}) touched by one only");
        } else {
            let (dv, ov): (f64, f64) = (d[2].parse().unwrap(), o[2].parse().unwrap());
            assert!(
                (dv - ov).abs() <= 1e-9 * dv.abs().max(1.0),
                "{test}: pixel {n}: damo {dv}, ours {ov}"
            );
            touched += 1;
        }
        n += 1;
    }
    assert_eq!(n, resol.0 * resol.1, "{test}: pixel count");
    println!(
        "{test}: heatmap {}x{}: {n} pixels equal ({touched} with heat)",
        resol.0, resol.1
    );
}

pub(crate) fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("damo-interop-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
