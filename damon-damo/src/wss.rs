//! `damo report wss`: the working set size (bytes of regions that saw at
//! least `acc_thres` accesses) of every snapshot, and its distribution.
//!
//! The arithmetic follows damo exactly, so that the numbers compare:
//!
//! * the first `exclude_samples` (20) snapshots of each record are skipped;
//! * consecutive snapshots are merged until they span `work_time_us` (1 µs,
//!   so every real snapshot stands alone); merging keeps the union of the
//!   regions and adds, to each region, the largest `nr_accesses` of the
//!   later snapshot's regions that overlap it;
//! * the distribution is sorted by size (default) or kept in time order;
//! * the `p`-th percentile is element `floor(p / 100 * n)` (the last one
//!   for `p = 100`), and the average is the plain mean;
//! * with `collapse_targets` (damo's default) the targets' sizes are added
//!   up per snapshot index and reported as target 0.

use crate::fmt::format_sz;
use crate::record::{Record, Snapshot, SnapshotSource};
use crate::DamoError;

/// Order of the working set sizes in the distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WssSort {
    /// Ascending size (damo's default): percentiles are size percentiles.
    #[default]
    Size,
    /// Time order: "percentiles" are points in time.
    Time,
}

/// Options of [`wss()`]; the defaults are damo's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WssOptions {
    /// Sort order.
    pub sort_by: WssSort,
    /// Snapshots skipped at the start of each record (damo: 20).
    pub exclude_samples: usize,
    /// Minimal `nr_accesses` of a working-set region (damo: 1).
    pub acc_thres: u32,
    /// Minimal size of a working-set region (damo: 1).
    pub sz_thres: u64,
    /// Snapshots are merged until they span this long (µs; damo: 1).
    pub work_time_us: u64,
    /// Percentiles to report (damo: 0, 25, 50, 75, 100).
    pub percentiles: Vec<u32>,
    /// Add the targets up (damo's default) instead of one distribution per target.
    pub collapse_targets: bool,
}

impl Default for WssOptions {
    fn default() -> Self {
        Self {
            sort_by: WssSort::Size,
            exclude_samples: 20,
            acc_thres: 1,
            sz_thres: 1,
            work_time_us: 1,
            percentiles: vec![0, 25, 50, 75, 100],
            collapse_targets: true,
        }
    }
}

/// The working set sizes of one target (or of all, collapsed).
#[derive(Clone, Debug, PartialEq)]
pub struct WssDist {
    /// Target id (0 when collapsed).
    pub target_id: u64,
    /// Working set size of every (merged) snapshot, in the requested order.
    pub values: Vec<u64>,
    /// Requested percentiles with their values (empty without snapshots).
    pub percentiles: Vec<(u32, u64)>,
    /// Mean of `values` (0 without snapshots).
    pub average: f64,
}

impl WssDist {
    /// The `p`-th percentile as damo computes it, or `None` without values.
    pub fn percentile(&self, p: u32) -> Option<u64> {
        percentile(&self.values, p)
    }
}

/// The report: one distribution per target, or one when collapsed.
#[derive(Clone, Debug, PartialEq)]
pub struct WssReport {
    /// The distributions, in the order targets first appear.
    pub dists: Vec<WssDist>,
}

impl WssReport {
    /// damo's text layout (without the bar graph): `# target_id`, the
    /// average and one `<percentile> <wss>` line each. With `raw`, numbers
    /// are plain bytes (damo's `--raw_number`), otherwise human sizes.
    pub fn to_text(&self, raw: bool) -> String {
        let sz = |v: f64| {
            if raw {
                format!("{}", v as u64)
            } else {
                format_sz(v)
            }
        };
        let mut lines = Vec::new();
        for d in &self.dists {
            lines.push(format!("# target_id\t{}", d.target_id));
            lines.push("# <percentile> <wss>".to_string());
            if d.values.is_empty() {
                lines.push("# no snapshot".to_string());
                continue;
            }
            lines.push(format!("# avr:\t{}", sz(d.average)));
            for (p, v) in &d.percentiles {
                lines.push(format!("{p:3} {:>15}", sz(*v as f64)));
            }
        }
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }
}

/// damo's percentile pick: index `floor(p / 100 * n)`, clamped to the last.
pub fn percentile(values: &[u64], p: u32) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let idx = (f64::from(p) / 100.0 * values.len() as f64) as usize;
    Some(values[idx.min(values.len() - 1)])
}

/// A region of a merged snapshot: `[start, end)` with its access count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MergedRegion {
    pub start: u64,
    pub end: u64,
    pub samples: u64,
}

/// Adds `r` to `regions` the way damo's `add_region` does: the parts of
/// `r` outside every existing region become new regions; each existing
/// region `r` overlaps is noted in `to_add` with the largest count seen.
fn add_region(regions: &mut Vec<MergedRegion>, r: MergedRegion, to_add: &mut Vec<(usize, u64)>) {
    // iterative form of the recursion: pieces still to place
    let mut pending = vec![r];
    while let Some(r) = pending.pop() {
        let hit = regions
            .iter()
            .position(|x| x.start < r.end && r.start < x.end);
        match hit {
            None => regions.push(r),
            Some(i) => {
                let x = regions[i];
                match to_add.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, v)) => *v = (*v).max(r.samples),
                    None => to_add.push((i, r.samples)),
                }
                if r.start < x.start {
                    pending.push(MergedRegion {
                        start: r.start,
                        end: x.start,
                        samples: r.samples,
                    });
                }
                if x.end < r.end {
                    pending.push(MergedRegion {
                        start: x.end,
                        end: r.end,
                        samples: r.samples,
                    });
                }
            }
        }
    }
}

/// damo's `aggregate_snapshots`: the union of the snapshots' regions.
pub(crate) fn aggregate_snapshots(snapshots: &[&Snapshot]) -> Vec<MergedRegion> {
    if let [only] = snapshots {
        // The common case, in linear time: the regions of one snapshot,
        // sorted and disjoint, are their own union (the general path below
        // gives the same result in quadratic time).
        if only.regions.windows(2).all(|w| w[0].end <= w[1].start) {
            return only
                .regions
                .iter()
                .map(|g| MergedRegion {
                    start: g.start,
                    end: g.end,
                    samples: u64::from(g.nr_accesses),
                })
                .collect();
        }
    }
    aggregate_general(snapshots)
}

/// [`aggregate_snapshots`] without the single-snapshot shortcut.
fn aggregate_general(snapshots: &[&Snapshot]) -> Vec<MergedRegion> {
    let mut merged: Vec<MergedRegion> = Vec::new();
    for s in snapshots {
        let mut to_add = Vec::new();
        for g in &s.regions {
            let r = MergedRegion {
                start: g.start,
                end: g.end,
                samples: u64::from(g.nr_accesses),
            };
            add_region(&mut merged, r, &mut to_add);
        }
        for (i, v) in to_add {
            merged[i].samples += v;
        }
    }
    merged
}

/// One record's state while its snapshots stream by: damo's
/// `adjusted_snapshots` (consecutive snapshots grouped until a group spans
/// at least `work_time_us`; a trailing shorter group is dropped) and the
/// working set size of each group.
#[derive(Debug, Default)]
struct RecordWss {
    target_id: u64,
    skip_left: usize,
    group: Vec<Snapshot>,
    values: Vec<u64>,
}

impl RecordWss {
    fn push(&mut self, s: &Snapshot, opts: &WssOptions) {
        if self.skip_left > 0 {
            self.skip_left -= 1;
            return;
        }
        self.group.push(s.clone());
        let span = i128::from(s.end_time) - i128::from(self.group[0].start_time);
        if span < i128::from(opts.work_time_us) * 1000 {
            return;
        }
        let refs: Vec<&Snapshot> = self.group.iter().collect();
        let value = aggregate_snapshots(&refs)
            .iter()
            .filter(|g| g.samples >= u64::from(opts.acc_thres))
            .map(|g| g.end.saturating_sub(g.start))
            .filter(|&sz| sz >= opts.sz_thres)
            .sum();
        self.values.push(value);
        self.group.clear();
    }
}

/// The working set size report of `records` (see the module docs).
pub fn wss(records: &[Record], opts: &WssOptions) -> WssReport {
    match wss_of(records, opts) {
        Ok(r) => r,
        // walking a slice fails only if the callback does, which it does not
        Err(_) => WssReport { dists: Vec::new() },
    }
}

/// [`wss()`] of any snapshot source, e.g. a [`crate::record::RecordFile`]
/// streamed from disk: memory for one snapshot (one merge group) and one
/// number per snapshot, whatever the record's length.
pub fn wss_of<S: SnapshotSource + ?Sized>(
    source: &S,
    opts: &WssOptions,
) -> Result<WssReport, DamoError> {
    let mut recs: Vec<RecordWss> = Vec::new();
    source.for_each_snapshot(&mut |meta, s| {
        while recs.len() <= meta.index {
            recs.push(RecordWss {
                skip_left: opts.exclude_samples,
                ..RecordWss::default()
            });
        }
        let r = &mut recs[meta.index];
        r.target_id = meta.target_id;
        r.push(s, opts);
        Ok(())
    })?;
    let mut per_target: Vec<(u64, Vec<u64>)> = Vec::new();
    for r in recs {
        let mut dist = r.values;
        if opts.sort_by == WssSort::Size {
            dist.sort_unstable();
        }
        // as damo's dict: a later record of the same target replaces it
        match per_target.iter_mut().find(|(t, _)| *t == r.target_id) {
            Some(slot) => slot.1 = dist,
            None => per_target.push((r.target_id, dist)),
        }
    }
    if opts.collapse_targets {
        let mut sum: Vec<u64> = Vec::new();
        for (_, d) in &per_target {
            for (i, v) in d.iter().enumerate() {
                match sum.get_mut(i) {
                    Some(s) => *s = s.saturating_add(*v),
                    None => sum.push(*v),
                }
            }
        }
        per_target = vec![(0, sum)];
    }
    let dists = per_target
        .into_iter()
        .map(|(target_id, values)| {
            let average = if values.is_empty() {
                0.0
            } else {
                values.iter().map(|&v| u128::from(v)).sum::<u128>() as f64 / values.len() as f64
            };
            let percentiles = opts
                .percentiles
                .iter()
                .filter_map(|&p| percentile(&values, p).map(|v| (p, v)))
                .collect();
            WssDist {
                target_id,
                values,
                percentiles,
                average,
            }
        })
        .collect();
    Ok(WssReport { dists })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordRegion;

    fn snap(t: u64, regions: &[(u64, u64, u32)]) -> Snapshot {
        Snapshot {
            start_time: t * 100,
            end_time: (t + 1) * 100,
            regions: regions
                .iter()
                .map(|&(start, end, nr)| RecordRegion {
                    start,
                    end,
                    nr_accesses: nr,
                    age: 0,
                })
                .collect(),
            sample_interval_us: None,
        }
    }

    fn record(tid: u64, sizes: &[u64]) -> Record {
        let mut r = Record::new(tid, None);
        for (i, &s) in sizes.iter().enumerate() {
            // one hot region of `s` bytes and one cold region after it
            r.snapshots.push(Snapshot {
                start_time: i as u64 * 100_000_000,
                end_time: (i as u64 + 1) * 100_000_000,
                regions: vec![
                    RecordRegion {
                        start: 0,
                        end: s.max(1),
                        nr_accesses: u32::from(s > 0),
                        age: 0,
                    },
                    RecordRegion {
                        start: s.max(1),
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

    fn opts0() -> WssOptions {
        WssOptions {
            exclude_samples: 0,
            ..Default::default()
        }
    }

    #[test]
    fn percentile_index_is_floor_of_p_times_n() {
        // n = 4: p25 -> idx 1, p50 -> 2, p75 -> 3, p100 -> 4 clamped to 3
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 0), Some(10));
        assert_eq!(percentile(&v, 25), Some(20));
        assert_eq!(percentile(&v, 50), Some(30));
        assert_eq!(percentile(&v, 75), Some(40));
        assert_eq!(percentile(&v, 100), Some(40));
        // n = 26: 0.25 * 26 = 6.5 -> 6; 0.75 * 26 = 19.5 -> 19
        let v: Vec<u64> = (0..26).collect();
        assert_eq!(percentile(&v, 25), Some(6));
        assert_eq!(percentile(&v, 75), Some(19));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn wss_counts_accessed_bytes_sorted_by_size() {
        let r = record(0, &[8192, 0, 4096, 12288, 4096]);
        let rep = wss(&[r], &opts0());
        let d = &rep.dists[0];
        assert_eq!(d.values, vec![0, 4096, 4096, 8192, 12288]);
        // p0 idx 0, p25 idx 1, p50 idx 2, p75 idx 3, p100 idx 4
        assert_eq!(
            d.percentiles,
            vec![(0, 0), (25, 4096), (50, 4096), (75, 8192), (100, 12288)]
        );
        assert_eq!(d.average, 28672.0 / 5.0);
    }

    #[test]
    fn wss_by_time_keeps_order_and_skips_first_samples() {
        let r = record(0, &[8192, 0, 4096, 12288, 4096]);
        let o = WssOptions {
            sort_by: WssSort::Time,
            exclude_samples: 2,
            ..Default::default()
        };
        let d = &wss(&[r], &o).dists[0];
        assert_eq!(d.values, vec![4096, 12288, 4096]);
        // damo's default skips 20: nothing left
        let r = record(0, &[1; 5]);
        let rep = wss(&[r], &WssOptions::default());
        assert!(rep.dists[0].values.is_empty());
        assert!(rep.to_text(true).contains("# no snapshot"));
    }

    #[test]
    fn thresholds() {
        let mut r = Record::new(0, None);
        r.snapshots
            .push(snap(0, &[(0, 100, 1), (100, 300, 2), (300, 301, 5)]));
        let o = WssOptions {
            acc_thres: 2,
            sz_thres: 2,
            work_time_us: 0, // the snapshot spans only 100 ns
            ..opts0()
        };
        assert_eq!(wss(&[r], &o).dists[0].values, vec![200]);
    }

    #[test]
    fn targets_collapse_or_not() {
        let a = record(0, &[4096, 8192]);
        let b = record(1, &[100, 200, 300]);
        let rep = wss(
            &[a.clone(), b.clone()],
            &WssOptions {
                sort_by: WssSort::Time,
                ..opts0()
            },
        );
        assert_eq!(rep.dists.len(), 1);
        assert_eq!(rep.dists[0].values, vec![4196, 8392, 300]);
        let rep = wss(
            &[a, b],
            &WssOptions {
                collapse_targets: false,
                ..opts0()
            },
        );
        assert_eq!(rep.dists.len(), 2);
        assert_eq!(rep.dists[1].target_id, 1);
        assert_eq!(rep.dists[1].values, vec![100, 200, 300]);
    }

    #[test]
    fn short_snapshots_are_merged_by_work_time() {
        // three 100 ns snapshots; work time 1 µs never reached: all dropped
        let mut r = Record::new(0, None);
        for t in 0..3 {
            r.snapshots.push(snap(t, &[(0, 10, 1)]));
        }
        assert!(wss(&[r.clone()], &opts0()).dists[0].values.is_empty());
        // no minimal work time: every snapshot stands alone
        let mut o = opts0();
        o.work_time_us = 0;
        assert_eq!(wss(&[r], &o).dists[0].values.len(), 3);
    }

    #[test]
    fn aggregation_adds_largest_overlapping_count() {
        // damo's example: 1-10:5 then 1-5:2 and 5-10:4 gives 1-10:9
        let a = snap(0, &[(1, 10, 5)]);
        let b = snap(1, &[(1, 5, 2), (5, 10, 4)]);
        let m = aggregate_snapshots(&[&a, &b]);
        assert_eq!(
            m,
            vec![MergedRegion {
                start: 1,
                end: 10,
                samples: 9
            }]
        );
        // a wider later region adds its outside parts as new regions
        let c = snap(2, &[(0, 20, 1)]);
        let mut m = aggregate_snapshots(&[&a, &c]);
        m.sort_by_key(|r| r.start);
        assert_eq!(
            m,
            vec![
                MergedRegion {
                    start: 0,
                    end: 1,
                    samples: 1
                },
                MergedRegion {
                    start: 1,
                    end: 10,
                    samples: 6
                },
                MergedRegion {
                    start: 10,
                    end: 20,
                    samples: 1
                },
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn single_snapshot_shortcut_equals_damos_merge(
            cuts in proptest::collection::btree_set(0u64..1 << 20, 2..40),
            nrs in proptest::collection::vec(0u32..20, 40),
        ) {
            let cuts: Vec<u64> = cuts.into_iter().collect();
            let regions: Vec<(u64, u64, u32)> = cuts
                .windows(2)
                .zip(&nrs)
                .map(|(w, &n)| (w[0], w[1], n))
                .collect();
            let s = snap(0, &regions);
            let mut fast = aggregate_snapshots(&[&s]);
            let mut slow = aggregate_general(&[&s]);
            fast.sort_by_key(|r| r.start);
            slow.sort_by_key(|r| r.start);
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn text_layout() {
        let rep = wss(&[record(0, &[4096, 8192])], &opts0());
        assert_eq!(
            rep.to_text(true),
            "# target_id\t0\n# <percentile> <wss>\n# avr:\t6144\n  0            4096\n 25            4096\n 50            8192\n 75            8192\n100            8192\n"
        );
        assert!(rep.to_text(false).contains("# avr:\t6.000 KiB"));
    }
}
