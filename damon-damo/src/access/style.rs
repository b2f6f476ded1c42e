//! damo's `report access --style` outputs: size histograms over temperature
//! or idle time (`temperature-sz-hist`, `recency-sz-hist`), percentiles of
//! either (`temperature-percentiles`, `recency-percentiles`), and the
//! regions sorted hottest or coldest first (`hot`, `cold`), with damo's
//! snapshot tails and record tail, byte for byte as damo 3.4 prints them.
//!
//! Deviation: `hot` and `cold` leave out what damo draws with terminal
//! colours (its `heatmap:` line and the coloured box before each region);
//! every number damo prints for them is printed the same.

use crate::filter::{access_percent, age_us, temperature};
use crate::fmt::{format_hz, format_nr, format_sz, format_time_ns};
use crate::heatmap::snapshot_aggr_us;
use crate::record::{Record, RecordIntervals, RecordRegion, Snapshot};
use crate::DamoError;

/// A damo `--style`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessStyle {
    /// Total size per temperature range.
    TemperatureSzHist,
    /// Total size per idle-time range.
    RecencySzHist,
    /// Temperature at size percentiles.
    TemperaturePercentiles,
    /// Idle time at size percentiles.
    RecencyPercentiles,
    /// Regions, hottest first.
    Hot,
    /// Regions, coldest first.
    Cold,
}

impl AccessStyle {
    /// The style for damo's name of it (`idle-time-percentiles` is an
    /// alias of `recency-percentiles`, as in damo).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "temperature-sz-hist" => Self::TemperatureSzHist,
            "recency-sz-hist" => Self::RecencySzHist,
            "temperature-percentiles" => Self::TemperaturePercentiles,
            "recency-percentiles" | "idle-time-percentiles" => Self::RecencyPercentiles,
            "hot" => Self::Hot,
            "cold" => Self::Cold,
            _ => return None,
        })
    }
}

/// How to print a style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StyleOptions {
    /// The style.
    pub style: AccessStyle,
    /// Plain numbers (damo's `--raw_number`).
    pub raw_number: bool,
    /// Weights of size, access rate and age in temperatures (damo's
    /// `--temperature_weights`; the histograms and percentiles zero the size
    /// weight, as damo does).
    pub temperature_weights: [i64; 3],
    /// Histogram ranges doubling in width (`--hist_logscale`).
    pub hist_logscale: bool,
    /// Each histogram range starting at the minimum (`--hist_cumulate`).
    pub hist_cumulate: bool,
    /// Percentiles to show (default 0 1 25 50 75 99 100).
    pub percentiles: Option<Vec<u32>>,
}

impl StyleOptions {
    /// `style` with damo's defaults for the rest.
    pub fn new(style: AccessStyle) -> Self {
        Self {
            style,
            raw_number: false,
            temperature_weights: [0, 100, 100],
            hist_logscale: false,
            hist_cumulate: false,
            percentiles: None,
        }
    }
}

/// Number formatting, human or raw.
#[derive(Clone, Copy)]
struct Fmt {
    raw: bool,
}

impl Fmt {
    fn sz(self, b: f64) -> String {
        if self.raw {
            format!("{}", b as i128)
        } else {
            format_sz(b)
        }
    }
    fn nr(self, n: f64) -> String {
        let i = n as i128;
        if self.raw {
            return i.to_string();
        }
        let s = format_nr(i.unsigned_abs().min(u128::from(u64::MAX)) as u64);
        if i < 0 {
            format!("-{s}")
        } else {
            s
        }
    }
    fn time_us(self, us: f64) -> String {
        if self.raw {
            format!("{}", us as i128)
        } else {
            format_time_ns(us * 1000.0)
        }
    }
    fn time_ns(self, ns: f64) -> String {
        if self.raw {
            format!("{}", ns as i128)
        } else {
            format_time_ns(ns)
        }
    }
    fn hz(self, hz: f64) -> String {
        if self.raw {
            format!("{hz:.6}")
        } else {
            format_hz(hz)
        }
    }
    fn bp(self, bp: f64) -> String {
        if self.raw {
            return format!("{bp:.6}");
        }
        let pct = bp / 100.0;
        let over = pct as i128;
        let under = format!("{:.7}", pct % 1.0);
        let under = under.trim_end_matches('0');
        let under = under.get(2..).unwrap_or("");
        if under.is_empty() {
            format!("{} %", self.nr(over as f64))
        } else {
            format!("{}.{under} %", self.nr(over as f64))
        }
    }
}

/// damo's `apply_min_chars`: pads `s` with spaces to `n` characters.
fn min_chars(s: String, n: usize) -> String {
    format!("{s:<n$}")
}

/// Idle time in µs: 0 for a region that saw an access, else its age plus
/// one aggregation interval (damo's `get_idle_time`).
fn idle_us(g: &RecordRegion, iv: &RecordIntervals, aggr_us: f64) -> f64 {
    if access_percent(g, iv) > 0 {
        0.0
    } else {
        age_us(g, iv) as f64 + aggr_us
    }
}

fn hist_ranges(min: f64, max: f64, n: u32, log: bool, cumulate: bool) -> Vec<(f64, f64)> {
    if log {
        let initial = (((max - min) / 2f64.powi(n as i32)) as i128).max(1) as f64;
        let mut ranges = vec![(min, min + initial)];
        while let Some(&(a, b)) = ranges.last() {
            if b >= max {
                break;
            }
            let start = if cumulate { min } else { b };
            ranges.push((start, b + (b - a) * 2.0));
        }
        return ranges;
    }
    let interval = ((max + 1.0 - min) / f64::from(n)).ceil().max(1.0);
    (0..n)
        .map(|i| {
            let start = if cumulate {
                min
            } else {
                min + interval * f64::from(i)
            };
            (start, min + interval * f64::from(i + 1))
        })
        .collect()
}

/// damo's `histogram_str`: ranges, sizes and a 20-column bar.
fn histogram_text(rows: &[(String, String, f64)]) -> String {
    let min_y = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    let max_y = rows.iter().map(|r| r.2).fold(f64::NEG_INFINITY, f64::max);
    let wx = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let wy = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let per_dot = (((max_y - min_y) / 20.0) as i128).max(1) as f64;
    rows.iter()
        .map(|(x, y, v)| {
            let dots = (((v - min_y) / per_dot).ceil() as usize).min(20);
            format!(
                "{x:<wx$} {y:<wy$} |{}{}|",
                "*".repeat(dots),
                " ".repeat(20 - dots)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn size_hist(
    metrics: &[(f64, u64)],
    o: &StyleOptions,
    fx: &dyn Fn(f64) -> String,
    f: Fmt,
) -> String {
    if metrics.is_empty() {
        return "no region in snapshot".into();
    }
    let mut keys: Vec<f64> = metrics.iter().map(|m| m.0).collect();
    keys.sort_by(f64::total_cmp);
    keys.dedup();
    let (min, max) = (keys[0], keys[keys.len() - 1]);
    let rows: Vec<(String, String, f64)> =
        hist_ranges(min, max, 10, o.hist_logscale, o.hist_cumulate)
            .into_iter()
            .map(|(a, b)| {
                let y: u64 = metrics
                    .iter()
                    .filter(|m| m.0 >= a && m.0 < b)
                    .map(|m| m.1)
                    .sum();
                (format!("[{}, {})", fx(a), fx(b)), f.sz(y as f64), y as f64)
            })
            .collect();
    histogram_text(&rows)
}

fn percentiles_text(
    metrics: &mut [(f64, u64)],
    o: &StyleOptions,
    legend: &str,
    fx: &dyn Fn(f64) -> String,
) -> String {
    if metrics.is_empty() {
        return "no region in snapshot".into();
    }
    // stable, as Python's sorted()
    metrics.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = metrics.iter().map(|m| m.1).sum();
    let mut want: Vec<u32> = o
        .percentiles
        .clone()
        .unwrap_or_else(|| vec![0, 1, 25, 50, 75, 99, 100]);
    let mut values: Vec<(u32, f64)> = Vec::new();
    let mut pct = 0.0f64;
    let mut last = metrics[0].0;
    for &(m, sz) in metrics.iter() {
        last = m;
        pct += sz as f64 * 100.0 / total.max(1) as f64;
        while let Some(&p) = want.first() {
            if pct < f64::from(p) {
                break;
            }
            values.push((p, m));
            want.remove(0);
        }
        if pct >= 100.0 {
            break;
        }
    }
    if want.contains(&100) {
        values.push((100, last));
    }
    if values.is_empty() {
        return legend.to_string();
    }
    let ptxt: Vec<String> = values.iter().map(|v| v.0.to_string()).collect();
    let vtxt: Vec<String> = values.iter().map(|v| fx(v.1)).collect();
    let wp = ptxt.iter().map(String::len).max().unwrap_or(0);
    let wv = vtxt.iter().map(String::len).max().unwrap_or(0);
    let (min, max) = (values[0].1, values[values.len() - 1].1);
    let per_dot = if max != min { (max - min) / 20.0 } else { 1.0 };
    let mut lines = vec![legend.to_string()];
    for (i, v) in values.iter().enumerate() {
        let bar = (((v.1 - min) / per_dot) as usize).min(20);
        lines.push(format!(
            "{:>wp$}  {:>wv$}  |{}{}|",
            ptxt[i],
            vtxt[i],
            "*".repeat(bar),
            " ".repeat(20 - bar)
        ));
    }
    lines.join("\n")
}

fn snapshot_head(
    r: &Record,
    s: &Snapshot,
    iv: &RecordIntervals,
    o: &StyleOptions,
    multiple: bool,
    f: Fmt,
) -> Option<String> {
    let aggr = snapshot_aggr_us(s, iv);
    let w = [0, o.temperature_weights[1], o.temperature_weights[2]];
    let temps = || -> Vec<(f64, u64)> {
        s.regions
            .iter()
            .map(|g| (temperature(g, iv, w) as f64, g.size()))
            .collect()
    };
    let idles = || -> Vec<(f64, u64)> {
        s.regions
            .iter()
            .map(|g| (idle_us(g, iv, aggr), g.size()))
            .collect()
    };
    let time_line = || {
        let first = r.snapshots[0].start_time;
        format!(
            "snapshot time: [{}, {}] ({})",
            f.time_ns(s.start_time.saturating_sub(first) as f64),
            f.time_ns(s.end_time.saturating_sub(first) as f64),
            f.time_ns(s.end_time.saturating_sub(s.start_time) as f64)
        )
    };
    let nr = move |v: f64| f.nr(v);
    let tus = move |v: f64| f.time_us(v);
    Some(match o.style {
        AccessStyle::TemperatureSzHist => format!(
            "<temperature> <total size>\n{}",
            size_hist(&temps(), o, &nr, f)
        ),
        AccessStyle::RecencySzHist => format!(
            "<idle time (us)> <total size>\n{}",
            size_hist(&idles(), o, &tus, f)
        ),
        AccessStyle::TemperaturePercentiles | AccessStyle::RecencyPercentiles => {
            let mut lines = Vec::new();
            if multiple {
                lines.push(time_line());
            }
            let body = if o.style == AccessStyle::RecencyPercentiles {
                lines.push("# total recency percentiles".into());
                let legend = if f.raw {
                    "<percentile> <idle time (us)>"
                } else {
                    "<percentile> <idle time>"
                };
                percentiles_text(&mut idles(), o, legend, &tus)
            } else {
                lines.push("# total temperature percentiles".into());
                let legend = format!(
                    "<percentile> <temperature (weights: [{}, {}, {}])>",
                    o.temperature_weights[0], o.temperature_weights[1], o.temperature_weights[2]
                );
                percentiles_text(&mut temps(), o, &legend, &nr)
            };
            lines.push(body);
            lines.join("\n")
        }
        AccessStyle::Hot | AccessStyle::Cold => {
            let ratio = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
            let mut lines = Vec::new();
            if multiple {
                lines.push(time_line());
            }
            lines.push(format!(
                "intervals: sample {} aggr {} (max access hz {})",
                f.time_us(aggr / ratio),
                f.time_us(aggr),
                if f.raw {
                    format!("{:.6}", ratio / (aggr / 1e6))
                } else {
                    format_hz(ratio / (aggr / 1e6))
                        .trim_end_matches(" hz")
                        .to_string()
                }
            ));
            lines.join("\n")
        }
    })
}

fn region_lines(s: &Snapshot, iv: &RecordIntervals, o: &StyleOptions, f: Fmt) -> Vec<String> {
    if !matches!(o.style, AccessStyle::Hot | AccessStyle::Cold) {
        return Vec::new();
    }
    let aggr = snapshot_aggr_us(s, iv);
    let mut regions: Vec<&RecordRegion> = s.regions.iter().collect();
    let w = o.temperature_weights;
    if o.style == AccessStyle::Hot {
        regions.sort_by_key(|g| std::cmp::Reverse(temperature(g, iv, w)));
    } else {
        regions.sort_by_key(|g| temperature(g, iv, w));
    }
    regions
        .into_iter()
        .map(|g| {
            format!(
                "{} access {} {}",
                min_chars(f.sz(g.size() as f64), 11),
                min_chars(f.hz(f64::from(g.nr_accesses) / (aggr / 1e6)), 6),
                min_chars(f.time_us(age_us(g, iv) as f64), 13)
            )
        })
        .collect()
}

fn snapshot_tail(s: &Snapshot, iv: &RecordIntervals, f: Fmt) -> String {
    let aggr = snapshot_aggr_us(s, iv);
    let bytes: f64 = s
        .regions
        .iter()
        .map(|g| g.size() as f64 * f64::from(g.nr_accesses))
        .sum();
    format!(
        "memory bw estimate: {} per second\ntotal size: {}",
        f.sz(bytes / (aggr / 1e6)),
        f.sz(s.total_bytes() as f64)
    )
}

/// The report of `records` (already filtered) in `o.style`, as damo prints
/// it: per record an optional head, per snapshot the style's block and the
/// bandwidth and size tail, then the record's intervals.
pub fn style_text(records: &[Record], o: &StyleOptions) -> Result<String, DamoError> {
    if records.iter().any(|r| r.intervals.is_none()) {
        return Err(DamoError::Report(
            "some records lack the intervals information".into(),
        ));
    }
    let f = Fmt { raw: o.raw_number };
    let multiple = records.iter().any(|r| r.snapshots.len() > 1);
    let goal = records
        .iter()
        .any(|r| r.intervals.is_some_and(|iv| iv.goal.aggrs != 0));
    let mut out: Vec<String> = Vec::new();
    for r in records {
        let iv = r.intervals.expect("checked above");
        if records.len() > 1 {
            let (start, dur) = match (r.snapshots.first(), r.snapshots.last()) {
                (Some(a), Some(b)) => (a.start_time, b.end_time.saturating_sub(a.start_time)),
                _ => (0, 0),
            };
            out.push(format!(
                "kdamond {} / context {} / scheme {} / target id {} / recorded for {} from {}",
                r.kdamond_idx,
                r.context_idx,
                r.scheme_idx.map_or("None".to_string(), |s| s.to_string()),
                r.target_id,
                f.time_ns(dur as f64),
                f.time_ns(start as f64)
            ));
        }
        for (i, s) in r.snapshots.iter().enumerate() {
            out.extend(snapshot_head(r, s, &iv, o, multiple, f));
            out.extend(region_lines(s, &iv, o, f));
            out.push(snapshot_tail(s, &iv, f));
            if i + 1 < r.snapshots.len() {
                out.push(String::new());
            }
        }
        let mut tail = format!(
            "record DAMON intervals: sample {}, aggr {}",
            f.time_us(iv.sample_us as f64),
            f.time_us(iv.aggr_us as f64)
        );
        if goal {
            tail.push_str(&format!(
                "\n# target {} accesses per {} aggrs, [{}, {}] sampling interval",
                f.bp(iv.goal.access_bp as f64),
                f.nr(iv.goal.aggrs as f64),
                f.time_us(iv.goal.min_sample_us as f64),
                f.time_us(iv.goal.max_sample_us as f64)
            ));
        }
        out.push(tail);
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        let iv = RecordIntervals::from_attrs(&crate::kdamonds::damo_default_attrs());
        let mut r = Record::new(0, Some(iv));
        r.snapshots.push(Snapshot {
            start_time: 0,
            end_time: 100_000_000,
            regions: vec![
                RecordRegion {
                    start: 0,
                    end: 4 << 20,
                    nr_accesses: 10,
                    age: 0,
                },
                RecordRegion {
                    start: 4 << 20,
                    end: 16 << 20,
                    nr_accesses: 0,
                    age: 2,
                },
            ],
            sample_interval_us: None,
        });
        r
    }

    #[test]
    fn hot_sorts_hottest_first_and_cold_coldest_first() {
        let hot = style_text(&[rec()], &StyleOptions::new(AccessStyle::Hot)).unwrap();
        let lines: Vec<&str> = hot.lines().collect();
        assert_eq!(
            lines[0],
            "intervals: sample 5 ms aggr 100 ms (max access hz 200)"
        );
        assert!(lines[1].starts_with("4.000 MiB   access 100 hz"), "{hot}");
        assert!(
            lines[2].starts_with("12.000 MiB  access 0 hz   200 ms"),
            "{hot}"
        );
        let cold = style_text(&[rec()], &StyleOptions::new(AccessStyle::Cold)).unwrap();
        assert!(
            cold.lines().nth(1).unwrap().starts_with("12.000 MiB"),
            "{cold}"
        );
        assert!(cold.ends_with("record DAMON intervals: sample 5 ms, aggr 100 ms\n"));
    }

    #[test]
    fn recency_percentiles_weigh_by_size() {
        let t = style_text(
            &[rec()],
            &StyleOptions::new(AccessStyle::RecencyPercentiles),
        )
        .unwrap();
        // 4 of 16 MiB idle 0, the rest 200 ms + one aggregation
        assert!(t.contains("\n 25    0 ns  |"), "{t}");
        assert!(t.contains("\n 50  300 ms  |********************|"), "{t}");
    }

    #[test]
    fn histograms_and_missing_intervals() {
        let t = style_text(&[rec()], &StyleOptions::new(AccessStyle::TemperatureSzHist)).unwrap();
        assert!(
            t.starts_with("<temperature> <total size>\n[-20,000,000, "),
            "{t}"
        );
        let mut r = rec();
        r.intervals = None;
        assert!(style_text(&[r], &StyleOptions::new(AccessStyle::Hot)).is_err());
        assert_eq!(
            AccessStyle::from_name("idle-time-percentiles"),
            Some(AccessStyle::RecencyPercentiles)
        );
        assert_eq!(AccessStyle::from_name("detailed"), None);
    }
}
