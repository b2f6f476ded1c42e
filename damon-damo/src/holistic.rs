//! damo's `report holistic` (its short form): a small heatmap of every
//! contiguous address range each target's record covers, then the
//! percentiles of the working set size and of the memory footprints
//! (`rss`, `vsz`, `sys_used` from the `.mem_footprint` side file), then
//! the hottest functions of a perf profile when there is one.
//!
//! Deviation: damo 3.4.3 draws no heatmap for records that carry a kdamond
//! index (its selection compares the index with `None`), which is every
//! record `damo record` and we write; we draw them. The distribution
//! section is damo's, byte for byte.

use crate::fmt::format_sz;
use crate::footprint::{footprint_dist, FootprintMetric, FootprintSnapshot};
use crate::heatmap::{heatmap, HeatmapOptions};
use crate::info::record_info;
use crate::record::Record;
use crate::wss::{percentile, wss, WssOptions, WssSort};
use crate::DamoError;

/// The heatmap section: `# target T, address range A-B` and a 5 x 80 map
/// per contiguous range of each target.
pub fn holistic_heatmaps(records: &[Record]) -> Result<Vec<String>, DamoError> {
    let mut lines = vec!["# Heatmap".to_string()];
    for info in record_info(records) {
        let start = i64::try_from(info.start_time).unwrap_or(i64::MIN);
        let end = i64::try_from(info.end_time).unwrap_or(i64::MAX);
        for &(a, b) in &info.regions {
            lines.push(format!(
                "# target {}, address range {a}-{b}",
                info.target_id
            ));
            let map = heatmap(
                records,
                &HeatmapOptions {
                    target_id: Some(info.target_id),
                    time_range: Some((start, end)),
                    addr_range: Some((a, b)),
                    resolution: (5, 80),
                },
            )?;
            lines.push(map.to_ascii().trim_end().to_string());
        }
    }
    Ok(lines)
}

fn dist_line(name: &str, values: &[u64]) -> String {
    let mut line = format!("{name:>10} ");
    for p in (0..=100).step_by(25) {
        let v = match percentile(values, p) {
            Some(v) => format_sz(v as f64),
            // damo's get_percentile of nothing
            None => "-1 B".to_string(),
        };
        line.push_str(&format!("{v:>15} "));
    }
    line
}

/// The distribution section: the working set size (targets summed, the
/// first 20 snapshots skipped when there are more than 200) and, with
/// `footprints`, the rss, vsz and sys_used footprints.
pub fn holistic_distributions(
    records: &[Record],
    footprints: Option<&[FootprintSnapshot]>,
) -> Vec<String> {
    let nr_snapshots: usize = records.iter().map(|r| r.snapshots.len()).sum();
    let opts = WssOptions {
        sort_by: WssSort::Size,
        exclude_samples: if nr_snapshots > 200 { 20 } else { 0 },
        acc_thres: 1,
        sz_thres: 1,
        work_time_us: 1,
        collapse_targets: true,
        ..WssOptions::default()
    };
    let rep = wss(records, &opts);
    let values: Vec<u64> = rep
        .dists
        .first()
        .map(|d| d.values.clone())
        .unwrap_or_default();
    let mut lines = vec![
        "# Memory Footprints Distribution".to_string(),
        format!(
            "{:>10} {:>15} {:>15} {:>15} {:>15} {:>15}",
            "percentile", "0", "25", "50", "75", "100"
        ),
        dist_line("wss", &values),
    ];
    if let Some(snaps) = footprints {
        for m in [
            FootprintMetric::Rss,
            FootprintMetric::Vsz,
            FootprintMetric::SysUsed,
        ] {
            lines.push(dist_line(m.name(), &footprint_dist(snaps, m, true)));
        }
    }
    lines
}

/// The whole short report; `perf_report` is `perf report --stdio` output
/// of the record's profile, if there is one (its lines 6 to 21 are shown,
/// as damo shows them).
pub fn holistic_text(
    records: &[Record],
    footprints: Option<&[FootprintSnapshot]>,
    perf_report: Option<&str>,
) -> Result<String, DamoError> {
    let mut lines = holistic_heatmaps(records)?;
    lines.push(String::new());
    lines.extend(holistic_distributions(records, footprints));
    if let Some(out) = perf_report {
        lines.push(String::new());
        lines.push("# Hotspot functions".into());
        lines.extend(out.split('\n').skip(5).take(16).map(str::to_string));
    }
    let mut s = lines.join("\n");
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordIntervals, RecordRegion, Snapshot};

    fn rec(n: u64) -> Record {
        let iv = RecordIntervals::from_attrs(&crate::kdamonds::damo_default_attrs());
        let mut r = Record::new(0, Some(iv));
        for i in 0..n {
            r.snapshots.push(Snapshot {
                start_time: i * 100_000_000,
                end_time: (i + 1) * 100_000_000,
                regions: vec![
                    RecordRegion {
                        start: 0,
                        end: (i + 1) << 20,
                        nr_accesses: 5,
                        age: 0,
                    },
                    RecordRegion {
                        start: (i + 1) << 20,
                        end: 1 << 30,
                        nr_accesses: 0,
                        age: 3,
                    },
                ],
                sample_interval_us: None,
            });
        }
        r
    }

    #[test]
    fn distributions_skip_the_first_twenty_only_past_two_hundred() {
        let short = holistic_distributions(&[rec(10)], None);
        // 1 MiB prints as 1024.000 KiB (damo's units switch above, not at, 1 MiB)
        assert_eq!(
            short[2].split_whitespace().nth(1),
            Some("1024.000"),
            "{short:?}"
        );
        let long = holistic_distributions(&[rec(300)], None);
        assert_eq!(
            long[2].split_whitespace().nth(1),
            Some("21.000"),
            "{long:?}"
        );
        assert_eq!(long.len(), 3, "no footprint lines without the file");
    }

    #[test]
    fn heatmap_per_contiguous_range_and_a_perf_section() {
        let t = holistic_text(&[rec(10)], None, Some("a\nb\nc\nd\ne\nhot_fn\n")).unwrap();
        assert!(
            t.starts_with("# Heatmap\n# target 0, address range 0-1073741824\n"),
            "{t}"
        );
        assert!(t.contains("# resolution: 80x5"), "{t}");
        assert!(t.ends_with("# Hotspot functions\nhot_fn\n\n"), "{t:?}");
    }
}
