//! `damo report access`: the regions of one snapshot with their address,
//! size, access frequency and age, then the estimated memory bandwidth and
//! the total size.

pub mod style;

use crate::fmt::{format_hz, format_nr, format_sz, format_time_ns};
use crate::heatmap::snapshot_aggr_us;
use crate::record::Record;
use crate::DamoError;

/// Options of [`access()`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessOptions {
    /// Snapshot index in each record (default: the last, as damo shows).
    pub snapshot: Option<usize>,
    /// Only this target (default: every record).
    pub target_id: Option<u64>,
}

/// One region line.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLine {
    /// Index of the region in the snapshot.
    pub index: usize,
    /// First address.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Samples that saw an access.
    pub nr_accesses: u32,
    /// Accesses per second (with intervals).
    pub access_hz: Option<f64>,
    /// Share of the aggregation's samples that saw an access, percent (with intervals).
    pub access_rate_percent: Option<f64>,
    /// Age in aggregation intervals.
    pub age: u32,
    /// Age in ns (with intervals).
    pub age_ns: Option<f64>,
}

/// The report of one snapshot of one record.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessReport {
    /// Target id of the record.
    pub target_id: u64,
    /// Index of the snapshot in the record.
    pub snapshot_index: usize,
    /// Snapshots in the record.
    pub nr_snapshots: usize,
    /// Snapshot start and end (ns).
    pub time: (u64, u64),
    /// `(sample, aggregation)` intervals in µs, if the record has them.
    pub intervals_us: Option<(f64, f64)>,
    /// The regions.
    pub lines: Vec<AccessLine>,
    /// Σ size × accesses per second (bytes/s), with intervals.
    pub mem_bw_per_sec: Option<f64>,
    /// Bytes covered by the regions.
    pub total_bytes: u64,
}

impl AccessReport {
    /// damo-like text: a header, one line per region
    /// (`<index> addr <start> size <size> access <hz> age <age>`), the
    /// memory bandwidth estimate and the total size.
    pub fn to_text(&self) -> String {
        let mut out = vec![format!(
            "target_id {} snapshot {}/{}: [{}, {}) ({})",
            self.target_id,
            self.snapshot_index,
            self.nr_snapshots,
            format_time_ns(self.time.0 as f64),
            format_time_ns(self.time.1 as f64),
            format_time_ns(self.time.1 as f64 - self.time.0 as f64),
        )];
        if let Some((s, a)) = self.intervals_us {
            out.push(format!(
                "intervals: sample {}, aggr {}",
                format_time_ns(s * 1000.0),
                format_time_ns(a * 1000.0)
            ));
        }
        for l in &self.lines {
            let access = match l.access_hz {
                Some(hz) => format_hz(hz),
                None => format!("{} samples", format_nr(u64::from(l.nr_accesses))),
            };
            let age = match l.age_ns {
                Some(ns) => format_time_ns(ns),
                None => format!("{} aggr intervals", format_nr(u64::from(l.age))),
            };
            let line = format!(
                "{:<3} addr {:<11} size {:<11} access {:<6} age {}",
                l.index,
                format_sz(l.start as f64),
                format_sz(l.size as f64),
                access,
                age
            );
            out.push(line);
        }
        if let Some(bw) = self.mem_bw_per_sec {
            out.push(format!("memory bw estimate: {} per second", format_sz(bw)));
        }
        out.push(format!(
            "total size: {}",
            format_sz(self.total_bytes as f64)
        ));
        let mut s = out.join("\n");
        s.push('\n');
        s
    }
}

/// One report per record (of the selected target): the chosen snapshot's regions.
pub fn access(records: &[Record], opts: &AccessOptions) -> Result<Vec<AccessReport>, DamoError> {
    let mut out = Vec::new();
    for r in records {
        if opts.target_id.is_some_and(|t| t != r.target_id) {
            continue;
        }
        let n = r.snapshots.len();
        if n == 0 {
            continue;
        }
        let idx = opts.snapshot.unwrap_or(n - 1);
        let s = r.snapshots.get(idx).ok_or_else(|| {
            DamoError::Report(format!(
                "target {} has {n} snapshots; there is no snapshot {idx}",
                r.target_id
            ))
        })?;
        let iv = r.intervals.map(|iv| {
            let aggr = snapshot_aggr_us(s, &iv);
            let ratio = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
            (if ratio > 0.0 { aggr / ratio } else { 0.0 }, aggr)
        });
        let lines: Vec<AccessLine> = s
            .regions
            .iter()
            .enumerate()
            .map(|(index, g)| {
                let (hz, rate, age_ns) = match iv {
                    Some((sample, aggr)) if aggr > 0.0 => (
                        Some(f64::from(g.nr_accesses) / (aggr / 1e6)),
                        Some(f64::from(g.nr_accesses) * 100.0 * sample / aggr),
                        Some(f64::from(g.age) * aggr * 1000.0),
                    ),
                    _ => (None, None, None),
                };
                AccessLine {
                    index,
                    start: g.start,
                    size: g.size(),
                    nr_accesses: g.nr_accesses,
                    access_hz: hz,
                    access_rate_percent: rate,
                    age: g.age,
                    age_ns,
                }
            })
            .collect();
        let mem_bw_per_sec = iv.filter(|&(_, a)| a > 0.0).map(|(_, aggr)| {
            let bytes: f64 = s
                .regions
                .iter()
                .map(|g| g.size() as f64 * f64::from(g.nr_accesses))
                .sum();
            bytes / (aggr / 1e6)
        });
        out.push(AccessReport {
            target_id: r.target_id,
            snapshot_index: idx,
            nr_snapshots: n,
            time: (s.start_time, s.end_time),
            intervals_us: iv,
            lines,
            mem_bw_per_sec,
            total_bytes: s.total_bytes(),
        });
    }
    if out.is_empty() {
        return Err(DamoError::Report("no snapshot to report".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordIntervals, RecordRegion, Snapshot};
    use damon_core::attrs::IntervalsGoal;

    fn rec() -> Record {
        let mut r = Record::new(
            0,
            Some(RecordIntervals {
                sample_us: 5_000,
                aggr_us: 100_000,
                ops_update_us: 1_000_000,
                goal: IntervalsGoal::default(),
            }),
        );
        for t in 0..2u64 {
            r.snapshots.push(Snapshot {
                start_time: t * 100_000_000,
                end_time: (t + 1) * 100_000_000,
                regions: vec![
                    RecordRegion {
                        start: 0,
                        end: 4096,
                        nr_accesses: 10,
                        age: 2,
                    },
                    RecordRegion {
                        start: 4096,
                        end: 1 << 20,
                        nr_accesses: 0,
                        age: 30,
                    },
                ],
                sample_interval_us: None,
            });
        }
        r
    }

    #[test]
    fn rates_ages_and_totals() {
        let rep = &access(&[rec()], &AccessOptions::default()).unwrap()[0];
        assert_eq!(rep.snapshot_index, 1);
        let l = &rep.lines[0];
        // 10 samples per 100 ms = 100 hz = 50 % of 20 samples
        assert_eq!(l.access_hz, Some(100.0));
        assert_eq!(l.access_rate_percent, Some(50.0));
        assert_eq!(l.age_ns, Some(200_000_000.0));
        assert_eq!(rep.lines[1].age_ns, Some(3e9));
        assert_eq!(rep.total_bytes, 1 << 20);
        // 4096 B x 100 hz
        assert_eq!(rep.mem_bw_per_sec, Some(409_600.0));
        let text = rep.to_text();
        assert!(
            text.contains("0   addr 0 B         size 4.000 KiB   access 100 hz age 200 ms"),
            "{text}"
        );
        assert!(
            text.contains("1   addr 4.000 KiB   size 1020.000 KiB access 0 hz   age 3 s"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "memory bw estimate: 400.000 KiB per second\ntotal size: 1024.000 KiB\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn snapshot_choice_and_errors() {
        let rep = access(
            &[rec()],
            &AccessOptions {
                snapshot: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rep[0].time, (0, 100_000_000));
        assert!(access(
            &[rec()],
            &AccessOptions {
                snapshot: Some(5),
                ..Default::default()
            }
        )
        .is_err());
        assert!(access(
            &[rec()],
            &AccessOptions {
                target_id: Some(9),
                ..Default::default()
            }
        )
        .is_err());
        // without intervals: counts instead of rates
        let mut r = rec();
        r.intervals = None;
        let rep = &access(&[r], &AccessOptions::default()).unwrap()[0];
        assert_eq!(rep.lines[0].access_hz, None);
        assert!(rep
            .to_text()
            .contains("access 10 samples age 2 aggr intervals"));
    }
}
