//! damo's record filter (`_damo_records.RecordFilter`): the
//! `--sz_region`, `--access_rate`, `--age`, `--address`, `--sz_snapshot`,
//! `--snapshot_time`, `--snapshot_idx` and `--temperature` options of
//! `damo report access` and `damo report times`, applied in damo's order
//! to records read from a file.

use crate::record::{Record, RecordIntervals, RecordRegion};
use crate::value::{self, ULONG_MAX};
use crate::DamoError;
use serde_json::Value;

/// Which regions and snapshots of a record to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordFilter {
    /// Region size range in bytes, both ends included.
    pub sz_region: (u64, u64),
    /// Access rate range in percent of the aggregation's samples, both
    /// ends included.
    pub access_rate_percent: (f64, f64),
    /// Age range in µs, both ends included.
    pub age_us: (u64, u64),
    /// Address ranges `[start, end)` to keep; a region across a boundary is
    /// cut to the part inside (damo's `filter_by_addr`).
    pub address: Option<Vec<(u64, u64)>>,
    /// Total bytes of a snapshot's regions, both ends included.
    pub sz_snapshot: Option<Vec<(u64, u64)>>,
    /// Snapshot time ranges in ns: a snapshot is kept if it lies inside one.
    pub snapshot_time_ns: Option<Vec<(u64, u64)>>,
    /// Snapshot index ranges, both ends included.
    pub snapshot_idx: Option<Vec<(u64, u64)>>,
    /// Temperature ranges, both ends included.
    pub temperature: Option<Vec<(i128, i128)>>,
    /// Weights of size, access rate and age in the temperature.
    pub temperature_weights: [i64; 3],
}

impl Default for RecordFilter {
    /// Keeps everything (damo's defaults: `min`/`max` everywhere, weights
    /// `0 100 100`).
    fn default() -> Self {
        Self {
            sz_region: (0, ULONG_MAX),
            access_rate_percent: (0.0, ULONG_MAX as f64),
            age_us: (0, ULONG_MAX),
            address: None,
            sz_snapshot: None,
            snapshot_time_ns: None,
            snapshot_idx: None,
            temperature: None,
            temperature_weights: [0, 100, 100],
        }
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

/// A size as damo's options take it (`4096`, `4K`, `1.5 GiB`, `min`, `max`).
pub fn parse_size_text(s: &str, option: &str) -> Result<u64, DamoError> {
    value::bytes(&text(s), option)
}

/// A time in µs as damo's options take it (`100`, `5ms`, `min`, `max`).
pub fn parse_time_us_text(s: &str, option: &str) -> Result<u64, DamoError> {
    value::time_us(&text(s), option)
}

/// A time in ns (`1000000`, `1s`, `min`, `max`).
pub fn parse_time_ns_text(s: &str, option: &str) -> Result<u64, DamoError> {
    value::time_ns(&text(s), option)
}

/// A percentage (`50`, `50%`, `min`, `max`).
pub fn parse_percent_text(s: &str, option: &str) -> Result<f64, DamoError> {
    value::ratio(&text(s), option, 100, "percent").map(value::Num::to_f64)
}

/// A count (`3`, `1,000`, `min`, `max`).
pub fn parse_nr_text(s: &str, option: &str) -> Result<u64, DamoError> {
    value::nr(&text(s), option)
}

/// A region's access rate in percent of the aggregation's samples, as damo
/// computes it (`int(samples * 100 / (aggr / sample))`).
pub fn access_percent(g: &RecordRegion, iv: &RecordIntervals) -> u64 {
    let max = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
    if max <= 0.0 {
        return 0;
    }
    (f64::from(g.nr_accesses) * 100.0 / max) as u64
}

/// A region's age in µs: aggregation intervals times the record's
/// aggregation interval.
pub fn age_us(g: &RecordRegion, iv: &RecordIntervals) -> u64 {
    u64::from(g.age).saturating_mul(iv.aggr_us)
}

/// damo's `temperature_of()`: `size * w0 + access% * w1 + age_us * w2`,
/// negated for a region that saw no access.
pub fn temperature(g: &RecordRegion, iv: &RecordIntervals, weights: [i64; 3]) -> i128 {
    let pct = access_percent(g, iv);
    let score = i128::from(g.size()) * i128::from(weights[0])
        + i128::from(pct) * i128::from(weights[1])
        + i128::from(age_us(g, iv)) * i128::from(weights[2]);
    if pct > 0 {
        score
    } else {
        -score
    }
}

impl RecordFilter {
    fn region_of_pattern(&self, g: &RecordRegion, iv: Option<&RecordIntervals>) -> bool {
        let sz = g.size();
        if sz < self.sz_region.0 || self.sz_region.1 < sz {
            return false;
        }
        let Some(iv) = iv else {
            return true;
        };
        let pct = access_percent(g, iv) as f64;
        if pct < self.access_rate_percent.0 || self.access_rate_percent.1 < pct {
            return false;
        }
        let age = age_us(g, iv);
        self.age_us.0 <= age && age <= self.age_us.1
    }

    /// Applies the filter to `records` in damo's order: access pattern,
    /// addresses, snapshot size, snapshot time, snapshot index, temperature.
    /// A temperature range needs the record's intervals.
    pub fn apply(&self, records: &mut [Record]) -> Result<(), DamoError> {
        for r in records.iter_mut() {
            let iv = r.intervals;
            for s in &mut r.snapshots {
                s.regions.retain(|g| self.region_of_pattern(g, iv.as_ref()));
            }
            if let Some(ranges) = &self.address {
                for s in &mut r.snapshots {
                    s.regions = s
                        .regions
                        .iter()
                        .flat_map(|g| {
                            ranges.iter().filter_map(move |&(a, b)| {
                                (g.end > a && b > g.start).then_some(RecordRegion {
                                    start: g.start.max(a),
                                    end: g.end.min(b),
                                    ..*g
                                })
                            })
                        })
                        .collect();
                }
            }
            if let Some(ranges) = &self.sz_snapshot {
                r.snapshots.retain(|s| {
                    let t = s.total_bytes();
                    ranges.iter().any(|&(a, b)| a <= t && t <= b)
                });
            }
            if let Some(ranges) = &self.snapshot_time_ns {
                r.snapshots.retain(|s| {
                    ranges
                        .iter()
                        .any(|&(a, b)| s.start_time >= a && s.end_time <= b)
                });
            }
            if let Some(ranges) = &self.snapshot_idx {
                let mut i = 0u64;
                r.snapshots.retain(|_| {
                    let keep = ranges.iter().any(|&(a, b)| a <= i && i <= b);
                    i += 1;
                    keep
                });
            }
            if let Some(ranges) = &self.temperature {
                let Some(iv) = iv else {
                    return Err(DamoError::Report(format!(
                        "--temperature: the record of target {} has no intervals to rate temperatures with",
                        r.target_id
                    )));
                };
                let w = self.temperature_weights;
                for s in &mut r.snapshots {
                    s.regions.retain(|g| {
                        let t = temperature(g, &iv, w);
                        ranges.iter().any(|&(a, b)| a <= t && t <= b)
                    });
                }
            }
        }
        Ok(())
    }
}

/// damo's `report times`: the time intervals (ns, start and end) during
/// which snapshots kept regions, adjacent snapshots joined.
pub fn times(records: &[Record]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for r in records {
        for s in r.snapshots.iter().filter(|s| !s.regions.is_empty()) {
            match out.last_mut() {
                Some(last) if last.1 == s.start_time => last.1 = s.end_time,
                _ => out.push((s.start_time, s.end_time)),
            }
        }
    }
    out
}

/// [`times`] as damo prints it: `start-end` in seconds (`%f`), each
/// followed by `# (seconds)`.
pub fn times_text(times: &[(u64, u64)]) -> String {
    let mut s = String::new();
    for &(a, b) in times {
        s.push_str(&format!(
            "{:.6}-{:.6}\n# (seconds)\n",
            a as f64 / 1e9,
            b as f64 / 1e9
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Snapshot;

    fn iv() -> RecordIntervals {
        RecordIntervals::from_attrs(&crate::kdamonds::damo_default_attrs())
    }

    fn reg(start: u64, end: u64, nr_accesses: u32, age: u32) -> RecordRegion {
        RecordRegion {
            start,
            end,
            nr_accesses,
            age,
        }
    }

    fn rec() -> Record {
        let mut r = Record::new(0, Some(iv()));
        for i in 0..4u64 {
            r.snapshots.push(Snapshot {
                start_time: i * 100,
                end_time: (i + 1) * 100,
                regions: vec![reg(0, 4096, 0, 3), reg(4096, 12288, 10, 1)],
                sample_interval_us: None,
            });
        }
        r
    }

    #[test]
    fn temperatures_and_rates_as_damo_computes_them() {
        let i = iv();
        // 10 of 20 samples: 50 %; 1 aggregation: 100 ms
        let hot = reg(0, 4096, 10, 1);
        assert_eq!(access_percent(&hot, &i), 50);
        assert_eq!(
            temperature(&hot, &i, [0, 100, 100]),
            50 * 100 + 100_000 * 100
        );
        let cold = reg(0, 4096, 0, 3);
        assert_eq!(temperature(&cold, &i, [0, 100, 100]), -30_000_000);
    }

    #[test]
    fn access_pattern_address_and_snapshot_filters() {
        let mut rs = vec![rec()];
        let f = RecordFilter {
            access_rate_percent: (1.0, 100.0),
            ..RecordFilter::default()
        };
        f.apply(&mut rs).unwrap();
        assert!(rs[0].snapshots.iter().all(|s| s.regions.len() == 1));
        assert_eq!(rs[0].snapshots[0].regions[0].start, 4096);

        let mut rs = vec![rec()];
        let f = RecordFilter {
            address: Some(vec![(2048, 6144)]),
            snapshot_idx: Some(vec![(1, 2)]),
            ..RecordFilter::default()
        };
        f.apply(&mut rs).unwrap();
        assert_eq!(rs[0].snapshots.len(), 2);
        assert_eq!(rs[0].snapshots[0].start_time, 100);
        let g = &rs[0].snapshots[0].regions;
        assert_eq!(
            (g[0].start, g[0].end, g[1].start, g[1].end),
            (2048, 4096, 4096, 6144)
        );

        let mut rs = vec![rec()];
        let f = RecordFilter {
            temperature: Some(vec![(i128::MIN, -1)]),
            ..RecordFilter::default()
        };
        f.apply(&mut rs).unwrap();
        assert!(rs[0]
            .snapshots
            .iter()
            .all(|s| s.regions == vec![reg(0, 4096, 0, 3)]));
    }

    #[test]
    fn times_join_adjacent_snapshots() {
        let mut r = rec();
        r.snapshots[2].regions.clear();
        assert_eq!(times(&[r.clone()]), vec![(0, 200), (300, 400)]);
        assert_eq!(
            times_text(&times(&[r])),
            "0.000000-0.000000\n# (seconds)\n0.000000-0.000000\n# (seconds)\n"
        );
    }

    #[test]
    fn option_texts() {
        assert_eq!(parse_size_text("4K", "--sz_region").unwrap(), 4096);
        assert_eq!(parse_size_text("max", "--sz_region").unwrap(), ULONG_MAX);
        assert_eq!(parse_time_us_text("1s", "--age").unwrap(), 1_000_000);
        assert_eq!(parse_percent_text("50", "--access_rate").unwrap(), 50.0);
        assert!(parse_percent_text("lots", "--access_rate")
            .unwrap_err()
            .to_string()
            .contains("--access_rate"));
    }
}
