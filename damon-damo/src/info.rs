//! `damo report nr_regions` and `damo report record_info`: the number of
//! regions per snapshot (its distribution), and what a record covers (time
//! and contiguous address ranges of every record), as damo prints them.

use crate::fmt::{format_sz, format_time_ns};
use crate::record::{Record, SnapshotSource};
use crate::wss::percentile;
use crate::DamoError;

/// The distribution of the number of regions of each record, skipping its
/// first `skip` (damo: 20) snapshots, whose regions are not yet adapted.
#[derive(Clone, Debug, PartialEq)]
pub struct NrRegionsDist {
    /// Target id of the record.
    pub target_id: u64,
    /// Regions per snapshot, sorted ascending (or in time order).
    pub values: Vec<u64>,
}

/// Distributions of `nr_regions`, one per record in file order.
pub fn nr_regions_of<S: SnapshotSource + ?Sized>(
    source: &S,
    skip: usize,
    sort: bool,
) -> Result<Vec<NrRegionsDist>, DamoError> {
    let mut out: Vec<(usize, NrRegionsDist)> = Vec::new();
    source.for_each_snapshot(&mut |m, s| {
        while out.len() <= m.index {
            out.push((
                0,
                NrRegionsDist {
                    target_id: m.target_id,
                    values: Vec::new(),
                },
            ));
        }
        let (seen, d) = &mut out[m.index];
        d.target_id = m.target_id;
        *seen += 1;
        if *seen > skip {
            d.values.push(s.regions.len() as u64);
        }
        Ok(())
    })?;
    Ok(out
        .into_iter()
        .map(|(_, mut d)| {
            if sort {
                d.values.sort_unstable();
            }
            d
        })
        .collect())
}

/// damo's text of `report nr_regions` for `percentiles`.
pub fn nr_regions_text(dists: &[NrRegionsDist], percentiles: &[u32]) -> String {
    let mut s = String::from("# <percentile> <# regions>\n");
    for d in dists {
        s.push_str(&format!("# target_id\t{}\n", d.target_id));
        if d.values.is_empty() {
            s.push_str("# no snapshot\n");
            continue;
        }
        let avg = d.values.iter().map(|&v| u128::from(v)).sum::<u128>() / d.values.len() as u128;
        s.push_str(&format!("# avr:\t{avg}\n"));
        for &p in percentiles {
            if let Some(v) = percentile(&d.values, p) {
                s.push_str(&format!("{p}\t{v}\n"));
            }
        }
    }
    s
}

/// What one record covers (damo's `GuideInfo`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInfo {
    /// kdamond, context and scheme of the record (scheme: tried regions).
    pub kdamond_idx: u64,
    /// Context index.
    pub context_idx: u64,
    /// Scheme index, for a record of tried regions.
    pub scheme_idx: Option<u64>,
    /// Target id.
    pub target_id: u64,
    /// Oldest observed time (the first snapshot's start, less its oldest
    /// region's age), ns.
    pub start_time: i128,
    /// Last snapshot's end, ns.
    pub end_time: u64,
    /// Contiguous address ranges: the space between the gaps every
    /// snapshot shows.
    pub regions: Vec<(u64, u64)>,
}

/// The info of every record, widest address space first (as damo sorts).
pub fn record_info(records: &[Record]) -> Vec<RecordInfo> {
    let key = |r: &Record| (r.kdamond_idx, r.context_idx, r.scheme_idx, r.target_id);
    let mut keys: Vec<(u64, u64, Option<u64>, u64)> = Vec::new();
    for r in records {
        if !r.snapshots.is_empty() && !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    let mut out: Vec<RecordInfo> = keys
        .into_iter()
        .map(|k| {
            // damo's guide of the records of this key: reuse the heatmap's
            let same: Vec<Record> = records
                .iter()
                .filter(|r| key(r) == k)
                .map(|r| Record {
                    target_id: 0,
                    ..r.clone()
                })
                .collect();
            let g = crate::heatmap::guides(&same).remove(0);
            RecordInfo {
                kdamond_idx: k.0,
                context_idx: k.1,
                scheme_idx: k.2,
                target_id: k.3,
                start_time: g.start_time,
                end_time: g.end_time,
                regions: g.contig.iter().map(|c| (c.0, c.1)).collect(),
            }
        })
        .collect();
    let space = |i: &RecordInfo| -> u64 { i.regions.iter().map(|r| r.1.saturating_sub(r.0)).sum() };
    out.sort_by_key(|i| std::cmp::Reverse(space(i)));
    out
}

/// damo's `format_sz_accurate`: six decimals in the largest unit below
/// the size (or plain bytes).
fn format_sz_accurate(sz: u64) -> String {
    let f = sz as f64;
    for (shift, unit) in [
        (60, "EiB"),
        (50, "PiB"),
        (40, "TiB"),
        (30, "GiB"),
        (20, "MiB"),
        (10, "KiB"),
    ] {
        if f > (1u64 << shift) as f64 {
            return format!("{:.6} {unit}", f / (1u64 << shift) as f64);
        }
    }
    format!("{sz} B")
}

/// damo's text of `report record_info` (`raw`: `--raw_numbers`).
pub fn record_info_text(infos: &[RecordInfo], raw: bool) -> String {
    let time = |t: f64| {
        if raw {
            format!("{}", t as i128)
        } else {
            format_time_ns(t)
        }
    };
    let mut lines = Vec::new();
    for i in infos {
        lines.push(format!("kdamond_idx: {}", i.kdamond_idx));
        lines.push(format!("context_idx: {}", i.context_idx));
        if let Some(s) = i.scheme_idx {
            lines.push(format!("scheme_idx: {s}"));
        }
        lines.push(format!("target_id: {}", i.target_id));
        let (s, e) = (i.start_time as f64, i.end_time as f64);
        lines.push(format!(
            "time: [{}, {}) ({})",
            time(s),
            time(e),
            time(e - s)
        ));
        for (n, (a, b)) in i.regions.iter().enumerate() {
            let (a_s, b_s, len) = if raw {
                (a.to_string(), b.to_string(), (b - a).to_string())
            } else {
                (
                    format_sz_accurate(*a),
                    format_sz_accurate(*b),
                    format_sz((b - a) as f64),
                )
            };
            lines.push(format!("region\t{n:2}: [{a_s}, {b_s}) ({len})"));
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
