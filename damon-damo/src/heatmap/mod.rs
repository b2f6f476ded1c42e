//! `damo report heatmap`: when (time), which memory (address) was how
//! frequently accessed (heat), on a grid of pixels.
//!
//! Each pixel covers `time_unit` nanoseconds × `addr_unit` bytes. For
//! every snapshot and region overlapping it, the pixel gains
//!
//! ```text
//! access rate × overlapped time (ns) × overlapped bytes / (time_unit × addr_unit)
//! ```
//!
//! where the access rate is `nr_accesses` per second of the aggregation
//! interval (hz) when the record has intervals, else `nr_accesses`. A
//! region is counted from `age` aggregation intervals before its snapshot
//! started (it has kept its pattern that long), but never before the
//! previous snapshot ended, so no time is counted twice. This is damo's
//! arithmetic, including which pixels count as touched: a pixel touched
//! by no region has no heat (drawn blank), unlike a pixel of heat 0.
//!
//! Default ranges follow damo's guide: the target with the widest address
//! space and the hottest (per byte) of its contiguous address ranges (the
//! space between gaps that every snapshot shows); the time runs from its
//! first snapshot to its last. (damo starts the time where the first
//! snapshot's oldest region began, which can put most of a picture before
//! anything was recorded; give `time_range` for damo's.)

use super::fmt::{format_sz, format_time_ns};
use super::record::{Record, RecordIntervals, Snapshot, SnapshotSource};
use crate::DamoError;

/// Options of [`heatmap()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeatmapOptions {
    /// Target to draw (default: the guide's, the widest address space).
    pub target_id: Option<u64>,
    /// `[start, end)` in ns, absolute (default: the guide's; its start is
    /// negative when ages reach back before time 0).
    pub time_range: Option<(i64, i64)>,
    /// `[start, end)` addresses (default: the hottest contiguous range).
    pub addr_range: Option<(u64, u64)>,
    /// Pixels along time (rows in ASCII) and along addresses (columns).
    pub resolution: (usize, usize),
}

impl Default for HeatmapOptions {
    /// damo's terminal defaults: 40 time rows × 80 address columns.
    fn default() -> Self {
        Self {
            target_id: None,
            time_range: None,
            addr_range: None,
            resolution: (40, 80),
        }
    }
}

/// The heat of every pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Start of the first time row (ns; negative before the record's time 0).
    pub time_start: i64,
    /// Nanoseconds per time row.
    pub time_unit: u64,
    /// Number of time rows.
    pub time_resol: usize,
    /// Address of the first column.
    pub addr_start: u64,
    /// Bytes per column.
    pub addr_unit: u64,
    /// Number of address columns.
    pub addr_resol: usize,
    /// `hz` (records with intervals) or `samples`.
    pub heat_unit: &'static str,
    /// Heat per pixel, time-major (`pixels[t * addr_resol + a]`); `None`
    /// where no region touched the pixel.
    pub pixels: Vec<Option<f64>>,
}

impl Heatmap {
    /// Heat of the pixel at time row `t`, address column `a`.
    pub fn heat(&self, t: usize, a: usize) -> Option<f64> {
        if t >= self.time_resol || a >= self.addr_resol {
            return None;
        }
        self.pixels[t * self.addr_resol + a]
    }

    /// `(highest, lowest)` heat over touched pixels.
    pub fn highest_lowest(&self) -> Option<(f64, f64)> {
        let mut it = self.pixels.iter().flatten();
        let first = *it.next()?;
        Some(it.fold((first, first), |(h, l), &v| (h.max(v), l.min(v))))
    }

    /// The heat level 0-9 of a heat, as damo's terminal map: the range
    /// `[lowest, highest + 1)` cut in nine.
    fn level(v: f64, highest: f64, lowest: f64) -> u8 {
        let unit = (highest + 1.0 - lowest) / 9.0;
        (((v - lowest) / unit) as i64).clamp(0, 9) as u8
    }

    /// The terminal map: one line per time row, one digit 0-9 per address
    /// column (blank where untouched), then the legend and axis ranges.
    pub fn to_ascii(&self) -> String {
        let mut lines = Vec::new();
        let hl = self.highest_lowest();
        if let Some((h, l)) = hl {
            for t in 0..self.time_resol {
                let row: String = (0..self.addr_resol)
                    .map(|a| match self.heat(t, a) {
                        None => ' ',
                        Some(v) => char::from(b'0' + Self::level(v, h, l)),
                    })
                    .collect();
                lines.push(row);
            }
            lines.push(format!(
                "# access_frequency: 0123456789 ({l:.3}-{h:.3} {})",
                self.heat_unit
            ));
        }
        let addr_len = self.addr_unit as f64 * self.addr_resol as f64;
        let time_len = self.time_unit as f64 * self.time_resol as f64;
        // hex too: near 127 TiB, a process's range ends print alike as sizes
        lines.push(format!(
            "# x-axis: space [{}, {}) ({}; [{:#x}, {:#x}))",
            format_sz(self.addr_start as f64),
            format_sz(self.addr_start as f64 + addr_len),
            format_sz(addr_len),
            self.addr_start,
            u128::from(self.addr_start) + u128::from(self.addr_unit) * self.addr_resol as u128,
        ));
        lines.push(format!(
            "# y-axis: time [{}, {}) ({})",
            format_time_ns(self.time_start as f64),
            format_time_ns(self.time_start as f64 + time_len),
            format_time_ns(time_len)
        ));
        lines.push(format!(
            "# resolution: {}x{} ({} and {} for each character)",
            self.addr_resol,
            self.time_resol,
            format_sz(self.addr_unit as f64),
            format_time_ns(self.time_unit as f64)
        ));
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }

    /// damo's `--output raw`: `<time> <address> <heat>` per pixel, time
    /// and address relative to the map's start, `NaN` where untouched.
    pub fn to_raw(&self) -> String {
        let mut s = String::new();
        for t in 0..self.time_resol {
            for a in 0..self.addr_resol {
                let heat = self
                    .heat(t, a)
                    .map_or_else(|| "NaN".to_string(), |v| v.to_string());
                s.push_str(&format!(
                    "{}\t{}\t{heat}\n",
                    t as u64 * self.time_unit,
                    a as u64 * self.addr_unit
                ));
            }
        }
        s
    }
}

/// The "hot" colour map: 0 black, 1/3 red, 2/3 yellow, 1 white.
pub fn hot_colour(x: f64) -> [u8; 3] {
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let c = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [c(3.0 * x), c(3.0 * x - 1.0), c(3.0 * x - 2.0)]
}

/// damo's `snapshot_monitoring_intervals`: the aggregation interval (µs)
/// of a snapshot, which may be auto-tuned.
pub(crate) fn snapshot_aggr_us(s: &Snapshot, iv: &RecordIntervals) -> f64 {
    if iv.goal.aggrs == 0 {
        return iv.aggr_us as f64;
    }
    let ratio = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
    if let Some(si) = s.sample_interval_us {
        return si as f64 * ratio;
    }
    let snap_aggr = (s.end_time as f64 - s.start_time as f64) / 1000.0;
    let rec_aggr = iv.aggr_us as f64;
    if rec_aggr > 0.0 && ((snap_aggr - rec_aggr) / rec_aggr).abs() < 0.1 {
        rec_aggr
    } else {
        snap_aggr
    }
}

/// What damo's guide says about one target's records.
#[derive(Clone, Debug, PartialEq)]
pub struct Guide {
    /// Target id.
    pub target_id: u64,
    /// Oldest observed time (first snapshot's start minus its oldest age), ns.
    pub start_time: i128,
    /// Last snapshot's end, ns.
    pub end_time: u64,
    /// First snapshot's start, ns: where the default time range begins
    /// (damo's begins at `start_time`, reaching back over the regions' ages
    /// to times nothing was recorded).
    pub first_start: u64,
    /// Contiguous address ranges (between gaps every snapshot shows), with
    /// their accumulated `size × nr_accesses`.
    pub contig: Vec<(u64, u64, f64)>,
}

impl Guide {
    fn total_space(&self) -> u64 {
        self.contig.iter().map(|c| c.1.saturating_sub(c.0)).sum()
    }

    /// The contiguous range with the most accesses per byte (the first on ties).
    pub fn hottest(&self) -> Option<(u64, u64)> {
        let per_byte = |c: &(u64, u64, f64)| {
            let len = c.1.saturating_sub(c.0);
            if len == 0 {
                0.0
            } else {
                c.2 / len as f64
            }
        };
        let mut best: Option<&(u64, u64, f64)> = None;
        for c in &self.contig {
            if best.is_none_or(|b| per_byte(c) > per_byte(b)) {
                best = Some(c);
            }
        }
        best.map(|c| (c.0, c.1))
    }
}

/// Narrows each gap of `a` by the gaps of `b` it overlaps (damo's
/// `overlapping_regions`, touching counts as overlapping).
fn overlapping_gaps(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    a.iter()
        .map(|&r1| {
            let mut r = r1;
            for &r2 in b {
                if !(r.1 < r2.0 || r2.1 < r.0) {
                    r = (r.0.max(r2.0), r.1.min(r2.1));
                }
            }
            r
        })
        .collect()
}

/// What the first pass learns of every target (damo's guide, before the
/// contiguous ranges get their heat).
struct GuideAcc {
    tid: u64,
    start: i128,
    first_start: u64,
    end: u64,
    lowest: Option<u64>,
    highest: Option<u64>,
    gaps: Vec<(u64, u64)>,
}

impl GuideAcc {
    fn add(&mut self, s: &Snapshot) {
        self.end = s.end_time;
        let mut gaps = Vec::new();
        let mut last_end: Option<u64> = None;
        for g in &s.regions {
            self.lowest = Some(self.lowest.map_or(g.start, |l| l.min(g.start)));
            self.highest = Some(self.highest.map_or(g.end, |h| h.max(g.end)));
            if let Some(le) = last_end {
                if le != g.start {
                    gaps.push((le, g.start));
                }
            }
            last_end = Some(g.end);
        }
        self.gaps = if self.gaps.is_empty() {
            gaps
        } else {
            overlapping_gaps(&self.gaps, &gaps)
        };
    }

    fn into_guide(self) -> Guide {
        let (lo, hi) = (self.lowest.unwrap_or(0), self.highest.unwrap_or(0));
        let mut contig = Vec::new();
        let mut from = lo;
        for (gs, ge) in &self.gaps {
            contig.push((from, *gs, 0.0));
            from = *ge;
        }
        contig.push((from, hi, 0.0));
        Guide {
            target_id: self.tid,
            start_time: self.start,
            first_start: self.first_start,
            end_time: self.end,
            contig,
        }
    }
}

/// damo's guide for every target, widest address space first.
pub fn guides(records: &[Record]) -> Vec<Guide> {
    guides_of(records).map(|(g, _)| g).unwrap_or_default()
}

/// [`guides()`] of any snapshot source (two passes), with whether each
/// record has intervals.
fn guides_of<S: SnapshotSource + ?Sized>(source: &S) -> Result<(Vec<Guide>, Vec<bool>), DamoError> {
    let mut accs: Vec<GuideAcc> = Vec::new();
    let mut has_iv: Vec<bool> = Vec::new();
    source.for_each_snapshot(&mut |meta, s| {
        if has_iv.len() <= meta.index {
            has_iv.resize(meta.index + 1, false);
        }
        has_iv[meta.index] = meta.intervals.is_some();
        let aggr_ns = meta.intervals.map(|iv| i128::from(iv.aggr_us) * 1000);
        let idx = match accs.iter().position(|a| a.tid == meta.target_id) {
            Some(i) => i,
            None => {
                let oldest_age = s.regions.iter().map(|g| g.age).max().unwrap_or(0);
                let start =
                    i128::from(s.start_time) - aggr_ns.map_or(0, |a| a * i128::from(oldest_age));
                accs.push(GuideAcc {
                    tid: meta.target_id,
                    start,
                    first_start: s.start_time,
                    end: s.end_time,
                    lowest: None,
                    highest: None,
                    gaps: Vec::new(),
                });
                accs.len() - 1
            }
        };
        accs[idx].add(s);
        Ok(())
    })?;
    let mut out: Vec<Guide> = accs.into_iter().map(GuideAcc::into_guide).collect();
    source.for_each_snapshot(&mut |meta, s| {
        let Some(g) = out.iter_mut().find(|g| g.target_id == meta.target_id) else {
            return Ok(());
        };
        for reg in s.regions.iter().filter(|x| x.nr_accesses != 0) {
            for c in &mut g.contig {
                if reg.end < c.0 || c.1 < reg.start {
                    continue;
                }
                c.2 += reg.size() as f64 * f64::from(reg.nr_accesses);
            }
        }
        Ok(())
    })?;
    // stable: equal spaces keep their first-seen order
    out.sort_by_key(|g| std::cmp::Reverse(g.total_space()));
    Ok((out, has_iv))
}

/// Largest number of pixels [`heatmap()`] makes (16 Mi: 16384 x 1024).
pub const MAX_PIXELS: usize = 1 << 24;

/// Builds the heatmap of `records` (see the module docs).
pub fn heatmap(records: &[Record], opts: &HeatmapOptions) -> Result<Heatmap, DamoError> {
    heatmap_of(records, opts)
}

/// [`heatmap()`] of any snapshot source, e.g. a [`crate::record::RecordFile`]
/// streamed from disk: three passes (the guide, its heat, the pixels), the
/// memory of one snapshot plus the pixels, whatever the record's length.
pub fn heatmap_of<S: SnapshotSource + ?Sized>(
    source: &S,
    opts: &HeatmapOptions,
) -> Result<Heatmap, DamoError> {
    let (time_resol, addr_resol) = opts.resolution;
    if time_resol == 0 || addr_resol == 0 {
        return Err(DamoError::Report("resolution must be at least 1x1".into()));
    }
    if time_resol.saturating_mul(addr_resol) > MAX_PIXELS {
        return Err(DamoError::Report(format!(
            "resolution {time_resol}x{addr_resol} exceeds {MAX_PIXELS} pixels"
        )));
    }
    // three walks (the guide, its heat, the pixels): parse the source once
    let source = &crate::record::Spooled::new(source);
    let (all_guides, has_iv) = guides_of(source)?;
    let with_iv = has_iv.iter().filter(|&&h| h).count();
    if with_iv != 0 && with_iv != has_iv.len() {
        return Err(DamoError::Report(
            "some records have intervals while some do not".into(),
        ));
    }
    let tid = match opts.target_id {
        Some(t) => t,
        None => {
            all_guides
                .first()
                .ok_or_else(|| DamoError::Report("no snapshot in the records".into()))?
                .target_id
        }
    };
    let guide = all_guides.iter().find(|g| g.target_id == tid);
    let (t0, t1) = match (opts.time_range, guide) {
        (Some(r), _) => (i128::from(r.0), i128::from(r.1)),
        // deviation from damo: from the first snapshot, not from before it
        (None, Some(g)) => (i128::from(g.first_start), i128::from(g.end_time)),
        (None, None) => return Err(DamoError::Report(format!("no snapshot of target {tid}"))),
    };
    let (a0, a1) = match (opts.addr_range, guide.and_then(Guide::hottest)) {
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => return Err(DamoError::Report(format!("no region of target {tid}"))),
    };
    let clamp = |t: i128| t.clamp(i128::from(i64::MIN / 2), i128::from(i64::MAX / 2)) as i64;
    let (time_start, t1) = (clamp(t0), clamp(t1));
    if t1 <= time_start || a1 <= a0 {
        return Err(DamoError::Report(format!(
            "empty range: time [{time_start}, {t1}), address [{a0}, {a1})"
        )));
    }
    let time_unit = (t1 - time_start) as u64 / time_resol as u64;
    let addr_unit = (a1 - a0) / addr_resol as u64;
    if time_unit == 0 || addr_unit == 0 {
        return Err(DamoError::Report(format!(
            "the ranges ({} ns, {} bytes) are smaller than the resolution {time_resol}x{addr_resol}",
            t1 - time_start,
            a1 - a0
        )));
    }
    let mut map = Heatmap {
        time_start,
        time_unit,
        time_resol,
        addr_start: a0,
        addr_unit,
        addr_resol,
        heat_unit: if with_iv > 0 { "hz" } else { "samples" },
        pixels: vec![None; time_resol.saturating_mul(addr_resol)],
    };
    let mut last_end: Option<u64> = None;
    source.for_each_snapshot(&mut |meta, s| {
        if meta.target_id == tid {
            add_heat(&mut map, s, last_end, meta.intervals.as_ref());
            last_end = Some(s.end_time);
        }
        Ok(())
    })?;
    Ok(map)
}

/// damo's `int((x - start) / unit)`: truncation toward zero.
fn idx_of(x: i128, start: i128, unit: u64) -> i128 {
    (x - start) / i128::from(unit)
}

fn add_heat(map: &mut Heatmap, s: &Snapshot, last_end: Option<u64>, iv: Option<&RecordIntervals>) {
    let addr_end = i128::from(map.addr_start) + i128::from(map.addr_unit) * map.addr_resol as i128;
    let area = map.time_unit as f64 * map.addr_unit as f64;
    let aggr_ns = iv.map(|iv| i128::from(iv.aggr_us) * 1000);
    let aggr_s = iv.map(|iv| snapshot_aggr_us(s, iv) / 1e6);
    for g in &s.regions {
        if i128::from(g.end) < i128::from(map.addr_start) || addr_end < i128::from(g.start) {
            continue;
        }
        let mut observe_start = i128::from(s.start_time);
        if let Some(a) = aggr_ns {
            observe_start -= i128::from(g.age) * a;
        }
        if let Some(l) = last_end {
            observe_start = observe_start.max(i128::from(l));
        }
        let heat_val = match aggr_s {
            Some(secs) if secs > 0.0 => f64::from(g.nr_accesses) / secs,
            Some(_) => 0.0,
            None => f64::from(g.nr_accesses),
        };
        let ts = i128::from(map.time_start);
        let t_first = idx_of(observe_start, ts, map.time_unit).max(0);
        let t_last =
            idx_of(i128::from(s.end_time), ts, map.time_unit).min(map.time_resol as i128 - 1);
        let a0 = i128::from(map.addr_start);
        let a_first = idx_of(i128::from(g.start), a0, map.addr_unit).max(0);
        let a_last = idx_of(i128::from(g.end), a0, map.addr_unit).min(map.addr_resol as i128 - 1);
        for ti in t_first..=t_last {
            let px_time = i128::from(map.time_start) + ti * i128::from(map.time_unit);
            let t_lo = observe_start.max(px_time);
            let t_hi = i128::from(s.end_time).min(px_time + i128::from(map.time_unit));
            let account_time = (t_hi - t_lo).max(0) as f64;
            for ai in a_first..=a_last {
                let px_addr = i128::from(map.addr_start) + ai * i128::from(map.addr_unit);
                let a_lo = i128::from(g.start).max(px_addr);
                let a_hi = i128::from(g.end).min(px_addr + i128::from(map.addr_unit));
                let account_sz = (a_hi - a_lo).max(0) as f64;
                let px = &mut map.pixels[ti as usize * map.addr_resol + ai as usize];
                *px = Some(px.unwrap_or(0.0) + heat_val * account_time * account_sz / area);
            }
        }
    }
}

mod picture;
#[cfg(test)]
mod tests;
