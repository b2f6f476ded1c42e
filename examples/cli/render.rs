//! What the examples print: sizes and times, the live table of the
//! hottest regions, and the closing summary.

use damon_damo::fmt::{format_sz, format_time_ns};
use damon_damo::{heatmap, wss, HeatmapOptions, Record, RecordRegion, Snapshot, WssOptions};

/// A size in damo's style (`1.500 GiB`, `512 B`).
pub fn size(bytes: u64) -> String {
    format_sz(bytes as f64)
}

/// A time in microseconds in damo's style (`100 ms`, `1.500 s`).
pub fn time_us(us: u64) -> String {
    format_time_ns(us as f64 * 1000.0)
}

/// Samples per aggregation of a snapshot of `r` (the 100 % access rate).
pub fn max_nr_accesses(r: &Record, s: &Snapshot) -> u32 {
    let from_record = r
        .intervals
        .map(|iv| iv.aggr_us / iv.sample_us.max(1))
        .filter(|&m| m > 0);
    let from_snapshot = s.sample_interval_us.and_then(|si| {
        let aggr_us = s.end_time.saturating_sub(s.start_time) / 1000;
        Some(aggr_us / si.max(1)).filter(|&m| m > 0)
    });
    let seen = s.regions.iter().map(|x| x.nr_accesses).max().unwrap_or(0);
    from_record
        .or(from_snapshot)
        .map_or(seen, |m| m.min(u64::from(u32::MAX)) as u32)
        .max(seen)
        .max(1)
}

/// Length of one aggregation of `r` in microseconds (for ages).
pub fn aggr_us(r: &Record, s: &Snapshot) -> u64 {
    r.intervals
        .map(|iv| iv.aggr_us)
        .unwrap_or_else(|| s.end_time.saturating_sub(s.start_time) / 1000)
}

/// Access rate in percent: `nr_accesses * 100 / max_nr_accesses`.
pub fn access_percent(nr_accesses: u32, max_nr_accesses: u32) -> u64 {
    u64::from(nr_accesses) * 100 / u64::from(max_nr_accesses.max(1))
}

/// The regions to show when at most `max_rows` fit: the hottest (most
/// accesses; among equals the largest), in address order, with the count
/// and bytes of the others.
pub fn hottest_rows(regions: &[RecordRegion], max_rows: usize) -> (Vec<RecordRegion>, usize, u64) {
    let mut idx: Vec<usize> = (0..regions.len()).collect();
    if regions.len() > max_rows {
        idx.sort_by_key(|&i| {
            let r = &regions[i];
            (
                std::cmp::Reverse(r.nr_accesses),
                std::cmp::Reverse(r.size()),
                r.start,
            )
        });
        idx.truncate(max_rows);
    }
    let mut rows: Vec<RecordRegion> = idx.iter().map(|&i| regions[i]).collect();
    rows.sort_by_key(|r| r.start);
    let hidden = regions.len() - rows.len();
    let shown: u64 = rows.iter().map(RecordRegion::size).sum();
    let total: u64 = regions.iter().map(RecordRegion::size).sum();
    (rows, hidden, total - shown)
}

/// How the live view orders a target's regions (`s` cycles them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// The hottest regions, shown in address order (the default).
    #[default]
    Address,
    /// damo's temperature (access rate and age; cold regions negative),
    /// hottest first.
    Temperature,
    /// Largest first.
    Size,
    /// Oldest first.
    Age,
}

impl SortKey {
    /// The next key in the cycle.
    pub fn next(self) -> Self {
        match self {
            SortKey::Address => SortKey::Temperature,
            SortKey::Temperature => SortKey::Size,
            SortKey::Size => SortKey::Age,
            SortKey::Age => SortKey::Address,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Address => "address",
            SortKey::Temperature => "temperature",
            SortKey::Size => "size",
            SortKey::Age => "age",
        }
    }
}

/// What the live view shows: the order, and one target or all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Row order.
    pub sort: SortKey,
    /// Only this target (index), or every target.
    pub target: Option<usize>,
    /// Keys are read (a line tells them).
    pub interactive: bool,
}

impl View {
    /// The next target in the cycle all, 0, 1, ..., `n - 1`, all.
    pub fn next_target(self, n: usize) -> Option<usize> {
        match self.target {
            None if n > 0 => Some(0),
            Some(t) if t + 1 < n => Some(t + 1),
            _ => None,
        }
    }
}

/// damo's region temperature with its default weights (size 0, access
/// rate 100, age 100): `access% * 100 + age_us * 100`, negated for a
/// region that saw no access.
pub fn temperature(r: &RecordRegion, max_nr_accesses: u32, aggr_us: u64) -> i128 {
    let percent = i128::from(access_percent(r.nr_accesses, max_nr_accesses));
    let age_us = i128::from(r.age) * i128::from(aggr_us);
    let score = percent * 100 + age_us * 100;
    if percent > 0 {
        score
    } else {
        -score
    }
}

/// The rows of one target under `sort`: at most `max_rows`, with the count
/// and bytes of the others.
fn rows_by(
    regions: &[RecordRegion],
    max_rows: usize,
    sort: SortKey,
    max: u32,
    aggr: u64,
) -> (Vec<RecordRegion>, usize, u64) {
    if sort == SortKey::Address {
        return hottest_rows(regions, max_rows);
    }
    let mut rows = regions.to_vec();
    match sort {
        SortKey::Temperature => {
            rows.sort_by_key(|r| (std::cmp::Reverse(temperature(r, max, aggr)), r.start))
        }
        SortKey::Size => rows.sort_by_key(|r| (std::cmp::Reverse(r.size()), r.start)),
        _ => rows.sort_by_key(|r| (std::cmp::Reverse(r.age), r.start)),
    }
    let hidden: Vec<RecordRegion> = rows.split_off(rows.len().min(max_rows));
    let hidden_bytes = hidden.iter().map(RecordRegion::size).sum();
    (rows, hidden.len(), hidden_bytes)
}

/// One block of the live view: a header line (title, elapsed time, number
/// of regions, total size), then per target a table of its regions in the
/// last aggregation (start, end, size, access rate, age), limited to the
/// `max_rows` hottest. `labels[i]` names target `i`.
pub fn render_frame(
    title: &str,
    elapsed_us: u64,
    records: &[Record],
    labels: &[String],
    max_rows: usize,
) -> String {
    render_view(
        title,
        elapsed_us,
        records,
        labels,
        max_rows,
        View::default(),
    )
}

/// [`render_frame`] under a [`View`]: rows ordered by `view.sort` (at most
/// `max_rows`), only `view.target` if set, and a key line when interactive.
pub fn render_view(
    title: &str,
    elapsed_us: u64,
    records: &[Record],
    labels: &[String],
    max_rows: usize,
    view: View,
) -> String {
    let latest: Vec<(usize, &Record, &Snapshot)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.snapshots.last().map(|s| (i, r, s)))
        .collect();
    let mut out = String::new();
    if latest.is_empty() {
        out.push_str(&format!(
            "{title} | elapsed {} | waiting for the first aggregation\n",
            time_us(elapsed_us)
        ));
        return out;
    }
    let nr: usize = latest.iter().map(|(_, _, s)| s.regions.len()).sum();
    let total: u64 = latest.iter().map(|(_, _, s)| s.total_bytes()).sum();
    out.push_str(&format!(
        "{title} | elapsed {} | total {} in {nr} regions\n",
        time_us(elapsed_us),
        size(total)
    ));
    if view.interactive || view != View::default() {
        let shown = view
            .target
            .map_or_else(|| "all targets".to_string(), |t| format!("target {t}"));
        out.push_str(&format!("sort: {} | {shown}", view.sort.name()));
        if view.interactive {
            out.push_str(" | keys: s sort, t target, q quit");
        }
        out.push('\n');
    }
    for (i, r, s) in latest {
        if view.target.is_some_and(|t| t != i) {
            continue;
        }
        let max = max_nr_accesses(r, s);
        let aggr = aggr_us(r, s);
        let label = labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("target {i}"));
        out.push_str(&format!(
            "{label}: {} regions, {}\n",
            s.regions.len(),
            size(s.total_bytes())
        ));
        out.push_str(&format!(
            "{:>18} {:>18} {:>14} {:>7} {:>12}\n",
            "start", "end", "size", "access", "age"
        ));
        let (rows, hidden, hidden_bytes) = rows_by(&s.regions, max_rows, view.sort, max, aggr);
        for row in &rows {
            out.push_str(&format!(
                "{:>#18x} {:>#18x} {:>14} {:>5} % {:>12}\n",
                row.start,
                row.end,
                size(row.size()),
                access_percent(row.nr_accesses, max),
                match u64::from(row.age).saturating_mul(aggr) {
                    0 => "0".to_string(),
                    us => time_us(us),
                },
            ));
        }
        if hidden > 0 {
            let what = if view.sort == SortKey::Address {
                "colder "
            } else {
                ""
            };
            out.push_str(&format!(
                "... {hidden} {what}regions ({}) not shown\n",
                size(hidden_bytes)
            ));
        }
    }
    out
}

/// ANSI: cursor home, clear screen.
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// A frame as printed: on a terminal it redraws the screen; otherwise
/// frames follow each other separated by a blank line.
pub fn present(frame: &str, tty: bool) -> String {
    if tty {
        format!("{CLEAR_SCREEN}{frame}")
    } else {
        format!("{frame}\n")
    }
}

/// The end-of-run report: an ASCII time x address heatmap (damo's
/// `report heatmap`, `resolution` = time rows x address columns) and the
/// working set size percentiles (damo's `report wss`, skipping the first
/// fifth of the snapshots, at most 20, as warm-up).
pub fn render_summary(records: &[Record], resolution: (usize, usize)) -> String {
    let mut out = String::new();
    out.push_str("# heatmap: time (rows, top to bottom) x address (columns)\n");
    let opts = HeatmapOptions {
        resolution,
        ..HeatmapOptions::default()
    };
    match heatmap(records, &opts) {
        Ok(map) => out.push_str(&map.to_ascii()),
        Err(e) => out.push_str(&format!("# no heatmap: {e}\n")),
    }
    let n = records.iter().map(|r| r.snapshots.len()).max().unwrap_or(0);
    out.push_str("# working set size (bytes accessed per aggregation interval)\n");
    let rep = wss(
        records,
        &WssOptions {
            exclude_samples: (n / 5).min(20),
            ..WssOptions::default()
        },
    );
    out.push_str(&rep.to_text(false));
    out
}
