//! damo's record files: the JSON record schema (plain and zlib-compressed)
//! and the `perf script` text of `damon:damon_aggregated` events, with a
//! [`Recorder`] that turns aggregation snapshots into records.
//!
//! # The JSON schema (damo 3.x)
//!
//! A file is a list of records, one per (kdamond, context, scheme, target):
//!
//! ```text
//! [{"kdamond_idx": 0, "context_idx": 0,
//!   "intervals": {"sample_us": 5000, "aggr_us": 100000, "ops_update_us": 1000000,
//!                 "intervals_goal": {"access_bp": 0, "aggrs": 0,
//!                                    "min_sample_us": 0, "max_sample_us": 0}},
//!   "scheme_idx": null, "target_id": 0, "scheme_filters": [],
//!   "snapshots": [{"start_time": 0, "end_time": 100000000,      (ns)
//!                  "regions": [{"start": 4096, "end": 8192,
//!                               "nr_accesses": {"samples": 3, "percent": null},
//!                               "age": {"usec": null, "aggr_intervals": 5},
//!                               "probe_hits": [], "sz_filter_passed": 0}],
//!                  "total_bytes": 4096, "damos_stats": null,
//!                  "sample_interval_us": 5000}],
//!   "data_source": "unknown"}]
//! ```
//!
//! damo itself writes several of these numbers as strings, some raw
//! (`"5000"`, `"0.000000"`) and some human-readable (`"4,096"`, `"0 B"`);
//! the reader accepts every spelling damo's own reader does. The writer
//! emits plain JSON numbers, which damo reads back unchanged.
//! `nr_accesses` is in samples (or a `percent` of the samples per
//! aggregation), `age` in aggregation intervals (or `usec`).

use super::value::{self, array, Obj};
use super::DamoError;
use crate::attrs::{Attrs, IntervalsGoal};
use crate::callbacks::Control;
use crate::context::Context;
use serde::Serialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::sync::Arc;

/// Monitoring intervals a record was made with (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordIntervals {
    /// Sampling interval (µs).
    pub sample_us: u64,
    /// Aggregation interval (µs).
    pub aggr_us: u64,
    /// Operations update interval (µs).
    pub ops_update_us: u64,
    /// Intervals auto-tuning goal (disabled when `aggrs` is 0).
    pub goal: IntervalsGoal,
}

impl RecordIntervals {
    /// The intervals of `attrs`.
    pub fn from_attrs(attrs: &Attrs) -> Self {
        Self {
            sample_us: attrs.sample_interval,
            aggr_us: attrs.aggr_interval,
            ops_update_us: attrs.ops_update_interval,
            goal: attrs.intervals_goal,
        }
    }
}

/// One region of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRegion {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Samples (of the aggregation) that saw an access.
    pub nr_accesses: u32,
    /// Aggregation intervals the access pattern has been kept.
    pub age: u32,
}

impl RecordRegion {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// The regions of one target at the end of one aggregation interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// When the aggregation started (ns).
    pub start_time: u64,
    /// When the aggregation ended (ns).
    pub end_time: u64,
    /// The regions, in address order when written by this crate.
    pub regions: Vec<RecordRegion>,
    /// The sampling interval in force (µs), if known (auto-tuned intervals).
    pub sample_interval_us: Option<u64>,
}

impl Snapshot {
    /// Bytes covered by the regions.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(RecordRegion::size).sum()
    }
}

/// Monitoring results of one target (damo's `DamonRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Index of the kdamond that monitored.
    pub kdamond_idx: u64,
    /// Index of the context in the kdamond.
    pub context_idx: u64,
    /// Intervals, if known (perf-script records do not carry them).
    pub intervals: Option<RecordIntervals>,
    /// Index of the scheme whose tried regions these are (`None` for plain
    /// monitoring results).
    pub scheme_idx: Option<u64>,
    /// The target: its index in the context, as the kernel's
    /// `damon_aggregated` tracepoint reports it (damo's `--snapshot`
    /// records have none: read as 0).
    pub target_id: u64,
    /// Snapshots in time order.
    pub snapshots: Vec<Snapshot>,
}

impl Record {
    /// An empty record for target `target_id`.
    pub fn new(target_id: u64, intervals: Option<RecordIntervals>) -> Self {
        Self {
            kdamond_idx: 0,
            context_idx: 0,
            intervals,
            scheme_idx: None,
            target_id,
            snapshots: Vec::new(),
        }
    }
}

/// A record file's format (damo's `--output_type`, minus `perf_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// A JSON list of records.
    Json,
    /// zlib-compressed JSON (damo's default).
    #[default]
    JsonCompressed,
    /// `perf script` text of `damon:damon_aggregated` events.
    PerfScript,
}

impl RecordFormat {
    /// damo's name of the format.
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::JsonCompressed => "json_compressed",
            RecordFormat::PerfScript => "perf_script",
        }
    }
}

impl std::str::FromStr for RecordFormat {
    type Err = DamoError;
    fn from_str(s: &str) -> Result<Self, DamoError> {
        match s {
            "json" => Ok(RecordFormat::Json),
            "json_compressed" => Ok(RecordFormat::JsonCompressed),
            "perf_script" => Ok(RecordFormat::PerfScript),
            "perf_data" => Err(DamoError::Unsupported(
                "perf_data is written by `perf record`; use json_compressed, json or perf_script"
                    .into(),
            )),
            _ => Err(DamoError::Unsupported(format!(
                "unknown record format {s:?} (expected json, json_compressed or perf_script)"
            ))),
        }
    }
}

impl std::fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------- writing

#[derive(Serialize)]
struct GoalOut {
    access_bp: u64,
    aggrs: u64,
    min_sample_us: u64,
    max_sample_us: u64,
}

#[derive(Serialize)]
struct IntervalsOut {
    sample_us: u64,
    aggr_us: u64,
    ops_update_us: u64,
    intervals_goal: GoalOut,
}

#[derive(Serialize)]
struct NrAccessesOut {
    samples: u32,
    percent: Option<u32>,
}

#[derive(Serialize)]
struct AgeOut {
    usec: Option<u64>,
    aggr_intervals: u32,
}

#[derive(Serialize)]
struct RegionOut {
    start: u64,
    end: u64,
    nr_accesses: NrAccessesOut,
    age: AgeOut,
    probe_hits: [u64; 0],
    sz_filter_passed: u64,
}

#[derive(Serialize)]
struct SnapshotOut {
    start_time: u64,
    end_time: u64,
    regions: Vec<RegionOut>,
    total_bytes: u64,
    damos_stats: Option<()>,
    sample_interval_us: Option<u64>,
}

#[derive(Serialize)]
struct RecordOut {
    kdamond_idx: u64,
    context_idx: u64,
    intervals: Option<IntervalsOut>,
    scheme_idx: Option<u64>,
    target_id: u64,
    scheme_filters: [u64; 0],
    snapshots: Vec<SnapshotOut>,
    data_source: &'static str,
}

fn to_out(r: &Record) -> RecordOut {
    RecordOut {
        kdamond_idx: r.kdamond_idx,
        context_idx: r.context_idx,
        intervals: r.intervals.map(|i| IntervalsOut {
            sample_us: i.sample_us,
            aggr_us: i.aggr_us,
            ops_update_us: i.ops_update_us,
            intervals_goal: GoalOut {
                access_bp: i.goal.access_bp,
                aggrs: i.goal.aggrs,
                min_sample_us: i.goal.min_sample_us,
                max_sample_us: i.goal.max_sample_us,
            },
        }),
        scheme_idx: r.scheme_idx,
        target_id: r.target_id,
        scheme_filters: [],
        snapshots: r
            .snapshots
            .iter()
            .map(|s| SnapshotOut {
                start_time: s.start_time,
                end_time: s.end_time,
                regions: s
                    .regions
                    .iter()
                    .map(|g| RegionOut {
                        start: g.start,
                        end: g.end,
                        nr_accesses: NrAccessesOut {
                            samples: g.nr_accesses,
                            percent: None,
                        },
                        age: AgeOut {
                            usec: None,
                            aggr_intervals: g.age,
                        },
                        probe_hits: [],
                        sz_filter_passed: 0,
                    })
                    .collect(),
                total_bytes: s.total_bytes(),
                damos_stats: None,
                sample_interval_us: s.sample_interval_us,
            })
            .collect(),
        data_source: "unknown",
    }
}

/// The records as damo's JSON (indented, one key per line).
pub fn write_json(records: &[Record]) -> String {
    let out: Vec<RecordOut> = records.iter().map(to_out).collect();
    // Serializing plain structs into a String cannot fail.
    serde_json::to_string_pretty(&out).unwrap_or_default()
}

/// The records as zlib-compressed JSON (damo's `json_compressed`).
pub fn write_json_compressed(records: &[Record]) -> Vec<u8> {
    let json = write_json(records);
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(json.as_bytes());
    enc.finish().unwrap_or_default()
}

/// The records as `perf script` lines, one per region per snapshot:
///
/// ```text
/// kdamond.0 0 [000] 0.100000: damon:damon_aggregated: target_id=0 nr_regions=2 0-4096: 3 5
/// ```
///
/// The format stores only each snapshot's end time; as damo does, a record
/// with a single snapshot gets a fake second snapshot (one `0-0: -1 -1`
/// region) so that a reader can deduce the first snapshot's start time.
pub fn write_perf_script(records: &[Record]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for r in records {
        let mut line = |end_time: u64, nr_regions: usize, region: (u64, u64, i64, i64)| {
            let _ = writeln!(
                out,
                "kdamond.{kd} 0 [000] {secs}.{usecs:06}: damon:damon_aggregated: target_id={tid} nr_regions={nr_regions} {}-{}: {} {}",
                region.0,
                region.1,
                region.2,
                region.3,
                kd = r.kdamond_idx,
                secs = end_time / 1_000_000_000,
                usecs = end_time % 1_000_000_000 / 1000,
                tid = r.target_id,
            );
        };
        for s in &r.snapshots {
            for g in &s.regions {
                line(
                    s.end_time,
                    s.regions.len(),
                    (g.start, g.end, i64::from(g.nr_accesses), i64::from(g.age)),
                );
            }
        }
        if let [only] = r.snapshots.as_slice() {
            let dur = only.end_time.saturating_sub(only.start_time);
            line(only.end_time.saturating_add(dur), 1, (0, 0, -1, -1));
        }
    }
    out
}

/// Encodes `records` in `format`.
pub fn encode(records: &[Record], format: RecordFormat) -> Vec<u8> {
    match format {
        RecordFormat::Json => write_json(records).into_bytes(),
        RecordFormat::JsonCompressed => write_json_compressed(records),
        RecordFormat::PerfScript => write_perf_script(records).into_bytes(),
    }
}

/// Writes `records` to `path` in `format`.
pub fn write_record_file(
    path: &std::path::Path,
    records: &[Record],
    format: RecordFormat,
) -> Result<(), DamoError> {
    std::fs::write(path, encode(records, format)).map_err(|e| DamoError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

// ---------------------------------------------------------------- reading

/// Largest decompressed size accepted from a `json_compressed` file.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads a record file's content in any of the formats damo reads itself:
/// zlib-compressed JSON, JSON, or `perf script` / `trace-cmd report` text.
/// Never panics; malformed input is an error naming what is wrong and where.
pub fn parse_record(data: &[u8]) -> Result<Vec<Record>, DamoError> {
    if data.starts_with(b"PERFILE2") {
        return Err(DamoError::Unsupported(
            "this is a perf.data file: convert it with `perf script -i FILE > FILE.txt` first"
                .into(),
        ));
    }
    if is_zlib(data) {
        let mut json = Vec::new();
        flate2::read::ZlibDecoder::new(data)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut json)
            .map_err(|e| DamoError::Syntax(format!("bad zlib data: {e}")))?;
        if json.len() as u64 > MAX_DECOMPRESSED {
            return Err(DamoError::Syntax(format!(
                "decompressed record exceeds {MAX_DECOMPRESSED} bytes"
            )));
        }
        return parse_json_records(&json);
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(DamoError::Syntax("empty record file".into())),
        Some(b'[') | Some(b'{') => parse_json_records(data),
        Some(_) => {
            let text = std::str::from_utf8(data).map_err(|e| {
                DamoError::Syntax(format!(
                    "not a damo record (neither zlib, JSON nor perf script text): {e}"
                ))
            })?;
            parse_perf_script(text)
        }
    }
}

/// Reads a record file from disk (see [`parse_record`]).
pub fn read_record_file(path: &std::path::Path) -> Result<Vec<Record>, DamoError> {
    let data = std::fs::read(path).map_err(|e| DamoError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    parse_record(&data)
}

/// A zlib stream header: deflate method, and a valid check value.
fn is_zlib(d: &[u8]) -> bool {
    d.len() >= 2
        && d[0] & 0x0f == 8
        && d[0] >> 4 <= 7
        && (u16::from(d[0]) << 8 | u16::from(d[1])) % 31 == 0
}

fn parse_json_records(data: &[u8]) -> Result<Vec<Record>, DamoError> {
    let v: Value = serde_json::from_slice(data).map_err(|e| DamoError::Syntax(e.to_string()))?;
    let items = array(&v, "records")?;
    items
        .iter()
        .enumerate()
        .map(|(i, r)| parse_json_record(r, &format!("records[{i}]")))
        .collect()
}

fn parse_json_record(v: &Value, path: &str) -> Result<Record, DamoError> {
    let o = Obj::lenient(v, path)?;
    let intervals = match o.opt("intervals") {
        Some(iv) => Some(parse_record_intervals(iv, &o.child("intervals"))?),
        None => None,
    };
    let idx = |key: &str| -> Result<Option<u64>, DamoError> {
        o.opt(key).map(|x| value::nr(x, &o.child(key))).transpose()
    };
    let snaps_path = o.child("snapshots");
    let snapshots = array(o.req("snapshots")?, &snaps_path)?
        .iter()
        .enumerate()
        .map(|(i, s)| parse_json_snapshot(s, &format!("{snaps_path}[{i}]"), intervals.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record {
        kdamond_idx: idx("kdamond_idx")?.unwrap_or(0),
        context_idx: idx("context_idx")?.unwrap_or(0),
        intervals,
        scheme_idx: idx("scheme_idx")?,
        // damo's `--snapshot` records have a null target id
        target_id: idx("target_id")?.unwrap_or(0),
        snapshots,
    })
}

fn parse_record_intervals(v: &Value, path: &str) -> Result<RecordIntervals, DamoError> {
    let o = Obj::lenient(v, path)?;
    let t = |key: &str| value::time_us(o.req(key)?, &o.child(key));
    let goal = match o.opt("intervals_goal") {
        Some(g) => {
            let gp = o.child("intervals_goal");
            let go = Obj::lenient(g, &gp)?;
            IntervalsGoal {
                access_bp: value::bp(go.req("access_bp")?, &go.child("access_bp"))?,
                aggrs: value::nr(go.req("aggrs")?, &go.child("aggrs"))?,
                min_sample_us: value::time_us(
                    go.req("min_sample_us")?,
                    &go.child("min_sample_us"),
                )?,
                max_sample_us: value::time_us(
                    go.req("max_sample_us")?,
                    &go.child("max_sample_us"),
                )?,
            }
        }
        None => IntervalsGoal::default(),
    };
    Ok(RecordIntervals {
        sample_us: t("sample_us")?,
        aggr_us: t("aggr_us")?,
        ops_update_us: t("ops_update_us")?,
        goal,
    })
}

fn parse_json_snapshot(
    v: &Value,
    path: &str,
    intervals: Option<&RecordIntervals>,
) -> Result<Snapshot, DamoError> {
    let o = Obj::lenient(v, path)?;
    let start_time = value::time_ns(o.req("start_time")?, &o.child("start_time"))?;
    let end_time = value::time_ns(o.req("end_time")?, &o.child("end_time"))?;
    let sample_interval_us = o
        .opt("sample_interval_us")
        .map(|x| value::time_us(x, &o.child("sample_interval_us")))
        .transpose()?;
    let rp = o.child("regions");
    let regions = array(o.req("regions")?, &rp)?
        .iter()
        .enumerate()
        .map(|(i, r)| parse_json_region(r, &format!("{rp}[{i}]"), intervals))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Snapshot {
        start_time,
        end_time,
        regions,
        sample_interval_us,
    })
}

fn parse_json_region(
    v: &Value,
    path: &str,
    intervals: Option<&RecordIntervals>,
) -> Result<RecordRegion, DamoError> {
    let o = Obj::lenient(v, path)?;
    let start = value::bytes(o.req("start")?, &o.child("start"))?;
    let end = value::bytes(o.req("end")?, &o.child("end"))?;
    if end < start {
        return Err(value::err(
            path,
            format!("end {end} is below start {start}"),
        ));
    }
    let np = o.child("nr_accesses");
    let na = Obj::lenient(o.req("nr_accesses")?, &np)?;
    let nr_accesses = if let Some(s) = na.opt("samples") {
        let p = na.child("samples");
        value::to_u32(value::nr(s, &p)?, &p, s)?
    } else if let Some(pc) = na.opt("percent") {
        let p = na.child("percent");
        let percent = value::ratio(pc, &p, 100, "percent")?.to_f64();
        let iv = intervals.ok_or_else(|| {
            value::err(
                &p,
                "a percentage needs the record's intervals to convert to samples",
            )
        })?;
        let max = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
        let samples = (percent * max / 100.0) as u64;
        value::to_u32(samples, &p, pc)?
    } else {
        return Err(value::err(&np, "needs \"samples\" or \"percent\""));
    };
    let age = match o.opt("age") {
        None => 0,
        Some(a) => {
            let ap = o.child("age");
            let ao = Obj::lenient(a, &ap)?;
            if let Some(n) = ao.opt("aggr_intervals") {
                let p = ao.child("aggr_intervals");
                value::to_u32(value::nr(n, &p)?, &p, n)?
            } else if let Some(us) = ao.opt("usec") {
                let p = ao.child("usec");
                let usec = value::time_us(us, &p)?;
                let iv = intervals
                    .ok_or_else(|| value::err(&p, "an age in usec needs the record's intervals"))?;
                value::to_u32(usec / iv.aggr_us.max(1), &p, us)?
            } else {
                0
            }
        }
    };
    Ok(RecordRegion {
        start,
        end,
        nr_accesses,
        age,
    })
}

/// One parsed `damon_aggregated` line.
struct TraceRegion {
    end_time: u64,
    target_id: u64,
    nr_regions: usize,
    start: u64,
    end: u64,
    nr_accesses: i64,
    age: Option<i64>,
}

/// Parses the fields after the event name:
/// `target_id=N nr_regions=M START-END: NR_ACCESSES [AGE]`.
fn parse_aggregated_fields(ts: &str, fields: &[&str]) -> Option<TraceRegion> {
    if !(4..=5).contains(&fields.len()) {
        return None;
    }
    let secs: f64 = ts.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let target_id = fields[0].strip_prefix("target_id=")?.parse().ok()?;
    let nr_regions = fields[1].strip_prefix("nr_regions=")?.parse().ok()?;
    let (s, e) = fields[2].strip_suffix(':')?.split_once('-')?;
    Some(TraceRegion {
        end_time: (secs * 1e9) as u64,
        target_id,
        nr_regions,
        start: s.parse().ok()?,
        end: e.parse().ok()?,
        nr_accesses: fields[3].parse().ok()?,
        age: match fields.get(4) {
            Some(a) => Some(a.parse().ok()?),
            None => None,
        },
    })
}

/// Splits a trace line into (timestamp, event, fields) for `perf script`
/// (`CMD PID [CPU] TS: EVENT: ...`) and `trace-cmd report`
/// (`CMD-PID [CPU] [FLAGS] TS: EVENT: ...`) lines.
fn trace_line(line: &str) -> Option<(&str, &str, Vec<&str>)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // the event is the first field ending with ':' after a timestamp field
    let ev = fields
        .iter()
        .position(|f| f.ends_with(':') && (f.contains("damon_") || f.contains("damos_")))?;
    if ev == 0 {
        return None;
    }
    let ts = fields[ev - 1].strip_suffix(':')?;
    let event = fields[ev].strip_suffix(':')?;
    let event = event.strip_prefix("damon:").unwrap_or(event);
    Some((ts, event, fields[ev + 1..].to_vec()))
}

/// Reads `perf script` (or `trace-cmd report`) text of DAMON trace events:
/// one record per target id, a snapshot completed every `nr_regions`
/// regions; the first snapshot's start is deduced from the average
/// snapshot length, and damo's fake trailing snapshot is dropped.
pub fn parse_perf_script(text: &str) -> Result<Vec<Record>, DamoError> {
    let mut records: Vec<Record> = Vec::new();
    let mut open: Option<usize> = None; // record whose last snapshot is filling
    let mut sample_interval_us: Option<u64> = None;
    let mut nr_lines = 0usize;
    for (lineno, line) in text.lines().enumerate() {
        let Some((ts, event, fields)) = trace_line(line) else {
            continue;
        };
        if event == "damon_monitor_intervals_tune" {
            if let Some(v) = fields.first().and_then(|f| f.strip_prefix("sample_us=")) {
                sample_interval_us = v.parse().ok();
            }
            continue;
        }
        if event != "damon_aggregated" {
            continue;
        }
        let r = parse_aggregated_fields(ts, &fields).ok_or_else(|| {
            DamoError::Syntax(format!(
                "line {}: malformed damon_aggregated event: {line:?}",
                lineno + 1
            ))
        })?;
        nr_lines += 1;
        let ri = match records.iter().position(|x| x.target_id == r.target_id) {
            Some(i) => i,
            None => {
                records.push(Record::new(r.target_id, None));
                records.len() - 1
            }
        };
        let rec = &mut records[ri];
        // events of one aggregation carry slightly different timestamps:
        // a snapshot is the next `nr_regions` events of its target
        if open != Some(ri) {
            let start = match rec.snapshots.last() {
                Some(prev) if prev.end_time > r.end_time => {
                    return Err(DamoError::Syntax(format!(
                        "line {}: trace is not sorted by time",
                        lineno + 1
                    )))
                }
                Some(prev) => prev.end_time,
                None => r.end_time, // fixed below
            };
            rec.snapshots.push(Snapshot {
                start_time: start,
                end_time: r.end_time,
                regions: Vec::new(),
                sample_interval_us,
            });
        }
        let snap = rec.snapshots.last_mut().expect("pushed above");
        if r.nr_accesses == -1 && r.age == Some(-1) && r.start == 0 && r.end == 0 {
            // damo's fake snapshot (start-time deduction only)
            snap.regions.clear();
            open = None;
            continue;
        }
        if r.end < r.start {
            return Err(DamoError::Syntax(format!(
                "line {}: region end {} is below start {}",
                lineno + 1,
                r.end,
                r.start
            )));
        }
        let conv = |x: i64, what: &str| {
            u32::try_from(x).map_err(|_| {
                DamoError::Syntax(format!("line {}: {what} {x} is out of range", lineno + 1))
            })
        };
        snap.regions.push(RecordRegion {
            start: r.start,
            end: r.end,
            nr_accesses: conv(r.nr_accesses, "nr_accesses")?,
            age: conv(r.age.unwrap_or(0), "age")?,
        });
        open = if snap.regions.len() >= r.nr_regions {
            None
        } else {
            Some(ri)
        };
    }
    if nr_lines == 0 {
        return Err(DamoError::Syntax(
            "no damon:damon_aggregated event found (not a damo record?)".into(),
        ));
    }
    for rec in &mut records {
        let n = rec.snapshots.len();
        if n >= 2 {
            let span = rec.snapshots[n - 1]
                .end_time
                .saturating_sub(rec.snapshots[0].end_time);
            let avg = span / (n as u64 - 1);
            rec.snapshots[0].start_time = rec.snapshots[0].end_time.saturating_sub(avg);
        }
        if rec.snapshots.last().is_some_and(|s| s.regions.is_empty()) {
            rec.snapshots.pop();
        }
    }
    Ok(records)
}

// ---------------------------------------------------------------- recording

/// Turns aggregation results into records: call [`Recorder::record`] from
/// an `after_aggregation` callback (or use [`Recorder::install`]). Each call
/// adds one snapshot per target (`target_id` = target index).
///
/// Snapshot times are, by default, counted in sampling intervals since the
/// start (deterministic, exact under a virtual clock); with
/// [`Recorder::with_clock`] they come from a clock instead. Both are offset
/// by [`Recorder::with_time_origin_ns`].
///
/// ```
/// use damon_core::damo::Recorder;
/// use damon_core::{AddrRange, Context, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock};
/// use std::sync::Arc;
///
/// let hot = HotRange { range: AddrRange::new(0, 64 << 20), probability: 0.8 };
/// let mut ctx = Context::new();
/// ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))));
/// ctx.targets.push(Target::new(0));
/// ctx.clock = Some(Arc::new(VirtualClock::new()));
/// ctx.seed = Some(7);
/// let recorder = Recorder::new().install(&mut ctx);
/// let mut kd = Kdamond::new(ctx).unwrap();
/// kd.init().unwrap();
/// for _ in 0..200 { kd.step(); } // 200 samples of 5 ms = 10 aggregations
/// let records = recorder.lock().records().to_vec();
/// assert_eq!(records[0].snapshots.len(), 10);
/// assert_eq!(records[0].snapshots[0].end_time, 100_000_000);
/// ```
#[derive(Debug, Default)]
pub struct Recorder {
    records: Vec<Record>,
    kdamond_idx: u64,
    context_idx: u64,
    origin_ns: u64,
    clock: Option<ClockRef>,
    last_sis: u64,
    elapsed_ns: u64,
    last_end_ns: Option<u64>,
}

/// A clock shared with the recorder.
#[derive(Clone)]
struct ClockRef(Arc<dyn crate::clock::Clock>);

impl std::fmt::Debug for ClockRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A recorder installed as a callback, shared with the caller.
pub type SharedRecorder = Arc<parking_lot::Mutex<Recorder>>;

impl Recorder {
    /// A recorder for kdamond 0, context 0, with times from 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the kdamond and context indices written into the records.
    pub fn with_indices(mut self, kdamond_idx: u64, context_idx: u64) -> Self {
        self.kdamond_idx = kdamond_idx;
        self.context_idx = context_idx;
        self
    }

    /// Adds `origin_ns` to every snapshot time (e.g. the monotonic time of
    /// the start, as perf timestamps have).
    pub fn with_time_origin_ns(mut self, origin_ns: u64) -> Self {
        self.origin_ns = origin_ns;
        self
    }

    /// Takes snapshot end times from `clock` (µs, times 1000) instead of
    /// counting sampling intervals.
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = Some(ClockRef(clock));
        self
    }

    /// Adds one snapshot per target of `ctx`, taken at an aggregation
    /// boundary (`after_aggregation`: `nr_accesses` holds the finished
    /// aggregation's count).
    pub fn record(&mut self, ctx: &Context) {
        let sis = ctx.passed_sample_intervals();
        let si_ns = ctx.attrs.sample_interval.saturating_mul(1000);
        let end = match &self.clock {
            Some(c) => c.0.now_us().saturating_mul(1000),
            None => {
                let d = sis.saturating_sub(self.last_sis).saturating_mul(si_ns);
                self.elapsed_ns = self.elapsed_ns.saturating_add(d);
                self.elapsed_ns
            }
        }
        .saturating_add(self.origin_ns);
        self.last_sis = sis;
        let start = self
            .last_end_ns
            .unwrap_or_else(|| end.saturating_sub(ctx.attrs.aggr_interval.saturating_mul(1000)))
            .min(end);
        self.last_end_ns = Some(end);
        let intervals = RecordIntervals::from_attrs(&ctx.attrs);
        for (ti, t) in ctx.targets.iter().enumerate() {
            if self.records.len() <= ti {
                let mut r = Record::new(ti as u64, Some(intervals));
                r.kdamond_idx = self.kdamond_idx;
                r.context_idx = self.context_idx;
                self.records.push(r);
            }
            self.records[ti].snapshots.push(Snapshot {
                start_time: start,
                end_time: end,
                regions: t
                    .regions
                    .iter()
                    .map(|r| RecordRegion {
                        start: r.ar.start,
                        end: r.ar.end,
                        nr_accesses: r.nr_accesses,
                        age: r.age,
                    })
                    .collect(),
                sample_interval_us: Some(ctx.attrs.sample_interval),
            });
        }
    }

    /// The records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Snapshots taken so far (of the first target).
    pub fn nr_snapshots(&self) -> usize {
        self.records.first().map_or(0, |r| r.snapshots.len())
    }

    /// Takes the records, leaving the recorder empty (times keep running).
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Installs the recorder as `ctx`'s `after_aggregation` callback,
    /// keeping (and running first) any callback already there, and returns
    /// it shared so the caller can read the records while or after it runs.
    pub fn install(self, ctx: &mut Context) -> SharedRecorder {
        let shared: SharedRecorder = Arc::new(parking_lot::Mutex::new(self));
        let rec = Arc::clone(&shared);
        let mut prev = ctx.callbacks.after_aggregation.take();
        ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
            let ctl = prev.as_mut().map_or(Control::Continue, |f| f(c));
            rec.lock().record(c);
            ctl
        }));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AddrRange, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock};

    fn sample_records() -> Vec<Record> {
        let iv = RecordIntervals {
            sample_us: 5_000,
            aggr_us: 100_000,
            ops_update_us: 1_000_000,
            goal: IntervalsGoal::default(),
        };
        let mut a = Record::new(0, Some(iv));
        for t in 0..3u64 {
            a.snapshots.push(Snapshot {
                start_time: 1_000_000_000 + t * 100_000_000,
                end_time: 1_100_000_000 + t * 100_000_000,
                regions: vec![
                    RecordRegion {
                        start: 4096,
                        end: 8192,
                        nr_accesses: t as u32,
                        age: 3,
                    },
                    RecordRegion {
                        start: 8192,
                        end: 1 << 40,
                        nr_accesses: 20,
                        age: 0,
                    },
                ],
                sample_interval_us: Some(5_000),
            });
        }
        let mut b = a.clone();
        b.target_id = 1;
        b.kdamond_idx = 2;
        b.context_idx = 1;
        b.scheme_idx = Some(4);
        vec![a, b]
    }

    #[test]
    fn json_round_trips() {
        let recs = sample_records();
        let text = write_json(&recs);
        assert!(text.trim_start().starts_with('['));
        assert_eq!(parse_record(text.as_bytes()).unwrap(), recs);
        let z = write_json_compressed(&recs);
        assert!(is_zlib(&z));
        assert_eq!(parse_record(&z).unwrap(), recs);
        assert_eq!(
            parse_record(&encode(&recs, RecordFormat::Json)).unwrap(),
            recs
        );
    }

    #[test]
    fn json_has_damos_keys_and_encodings() {
        let v: Value = serde_json::from_str(&write_json(&sample_records()[..1])).unwrap();
        let r = &v[0];
        for k in [
            "kdamond_idx",
            "context_idx",
            "intervals",
            "scheme_idx",
            "target_id",
            "scheme_filters",
            "snapshots",
            "data_source",
        ] {
            assert!(r.get(k).is_some(), "{k}");
        }
        assert_eq!(r["intervals"]["aggr_us"], 100_000);
        let g = &r["snapshots"][0]["regions"][0];
        assert_eq!(g["nr_accesses"]["samples"], 0);
        assert!(g["nr_accesses"]["percent"].is_null());
        assert_eq!(g["age"]["aggr_intervals"], 3);
        assert!(g["age"]["usec"].is_null());
        assert_eq!(r["snapshots"][0]["total_bytes"], (1u64 << 40) - 4096);
    }

    #[test]
    fn reads_damos_own_spellings() {
        // as damo 3.4.3's write_json() writes it: raw strings, grouped
        // numbers, human sizes
        let text = r#"[{"kdamond_idx": 0, "context_idx": 0,
            "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000",
                          "intervals_goal": {"access_bp": "0.000000", "aggrs": "0",
                                             "min_sample_us": "0", "max_sample_us": "0"}},
            "scheme_idx": null, "target_id": 42, "scheme_filters": [],
            "snapshots": [{"start_time": "1000", "end_time": "100000000",
                "regions": [{"start": "4,096", "end": "8,192",
                             "nr_accesses": {"samples": 3, "percent": null},
                             "age": {"usec": null, "aggr_intervals": "5"},
                             "probe_hits": [], "sz_filter_passed": "0 B"},
                            {"start": "8,192", "end": "12,288",
                             "nr_accesses": {"samples": null, "percent": "50 %"},
                             "age": {"usec": "300 ms", "aggr_intervals": null}}],
                "total_bytes": "8192", "damos_stats": null, "sample_interval_us": null}],
            "data_source": "unknown"}]"#;
        let r = &parse_record(text.as_bytes()).unwrap()[0];
        assert_eq!(r.target_id, 42);
        assert_eq!(r.intervals.unwrap().sample_us, 5000);
        let s = &r.snapshots[0];
        assert_eq!((s.start_time, s.end_time), (1000, 100_000_000));
        assert_eq!(
            s.regions[0],
            RecordRegion {
                start: 4096,
                end: 8192,
                nr_accesses: 3,
                age: 5
            }
        );
        // 50 % of 20 samples; 300 ms / 100 ms
        assert_eq!(
            s.regions[1],
            RecordRegion {
                start: 8192,
                end: 12288,
                nr_accesses: 10,
                age: 3
            }
        );
    }

    #[test]
    fn reads_damos_snapshot_records() {
        // `damo record --snapshot`: tried regions of a stat scheme, no target id
        let text = r#"[{"kdamond_idx": 0, "context_idx": 0, "intervals": null,
            "scheme_idx": 0, "target_id": null, "scheme_filters": [],
            "snapshots": [{"start_time": "1795311804351137536", "end_time": "1795311804451137536",
                "regions": [{"start": "4,096", "end": "26,843,545,600",
                             "nr_accesses": {"samples": 0, "percent": null},
                             "age": {"usec": null, "aggr_intervals": "0"},
                             "probe_hits": [], "sz_filter_passed": "0 B"}],
                "total_bytes": "26843541504",
                "damos_stats": {"nr_tried": "0", "sz_tried": "0", "nr_applied": "0",
                                "sz_applied": "0", "sz_ops_filter_passed": "0", "qt_exceeds": "0",
                                "nr_snapshots": "0", "max_nr_snapshots": "0"},
                "sample_interval_us": null}],
            "data_source": "unknown"}]"#;
        let r = &parse_record(text.as_bytes()).unwrap()[0];
        assert_eq!((r.target_id, r.scheme_idx, r.intervals), (0, Some(0), None));
        assert_eq!(r.snapshots[0].start_time, 1_795_311_804_351_137_536);
        assert_eq!(r.snapshots[0].total_bytes(), 26_843_541_504);
    }

    #[test]
    fn perf_script_round_trips() {
        let recs = sample_records();
        let text = write_perf_script(&recs);
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "kdamond.0 0 [000] 1.100000: damon:damon_aggregated: target_id=0 nr_regions=2 4096-8192: 0 3"
        );
        let back = parse_perf_script(&text).unwrap();
        assert_eq!(back.len(), 2);
        for (b, r) in back.iter().zip(&recs) {
            assert_eq!(b.target_id, r.target_id);
            assert_eq!(b.intervals, None);
            let got: Vec<_> = b
                .snapshots
                .iter()
                .map(|s| (s.start_time, s.end_time, s.regions.clone()))
                .collect();
            let want: Vec<_> = r
                .snapshots
                .iter()
                .map(|s| (s.start_time, s.end_time, s.regions.clone()))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(parse_record(text.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn single_snapshot_perf_script_gets_a_fake_snapshot() {
        let mut r = sample_records().remove(0);
        r.snapshots.truncate(1);
        let text = write_perf_script(std::slice::from_ref(&r));
        assert!(
            text.ends_with("target_id=0 nr_regions=1 0-0: -1 -1\n"),
            "{text}"
        );
        let back = parse_perf_script(&text).unwrap();
        assert_eq!(back[0].snapshots.len(), 1);
        let s = &back[0].snapshots[0];
        assert_eq!((s.start_time, s.end_time), (1_000_000_000, 1_100_000_000));
    }

    #[test]
    fn reads_perf_and_trace_cmd_text() {
        let text = "\
kdamond.0  4452 [000] 82877.315633: damon:damon_aggregated: target_id=0 nr_regions=2 4096-8192: 1 2
kdamond.0  4452 [000] 82877.315640: damon:damon_aggregated: target_id=0 nr_regions=2 8192-12288: 0 7
kdamond.0  4452 [000] 82877.415633: damon:damon_monitor_intervals_tune: sample_us=8000
kdamond.0-4452 [005] ..... 82877.415633: damon_aggregated:     target_id=0 nr_regions=1 4096-12288: 3 0
";
        let r = &parse_record(text.as_bytes()).unwrap()[0];
        assert_eq!(r.snapshots.len(), 2);
        assert_eq!(r.snapshots[0].regions.len(), 2);
        assert_eq!(r.snapshots[0].end_time, 82_877_315_633_000);
        assert_eq!(r.snapshots[1].sample_interval_us, Some(8000));
        assert_eq!(r.snapshots[1].regions[0].nr_accesses, 3);
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            &b""[..],
            b"   ",
            b"PERFILE2....",
            b"\x78\x9c\x00\x01",
            b"[1, 2]",
            b"{\"a\": 1}",
            b"[{\"target_id\": 0}]",
            b"[{\"target_id\": -1, \"snapshots\": []}]",
            b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": 0, \"end_time\": 1, \"regions\": [{\"start\": 5, \"end\": 1, \"nr_accesses\": {\"samples\": 1}}]}]}]",
            b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": 0, \"end_time\": 1, \"regions\": [{\"start\": 0, \"end\": 1, \"nr_accesses\": {\"percent\": 5}}]}]}]",
            b"hello world",
            b"\xff\xfe",
            b"x 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 5-1: 1 1",
            b"x 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-1: 99999999999 1",
        ] {
            assert!(parse_record(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let e = parse_record(b"[{\"target_id\": 0, \"snapshots\": [{\"start_time\": \"soon\"}]}]")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("records[0].snapshots[0].start_time: expected"),
            "{e}"
        );
    }

    #[test]
    fn formats_by_name() {
        for f in [
            RecordFormat::Json,
            RecordFormat::JsonCompressed,
            RecordFormat::PerfScript,
        ] {
            assert_eq!(f.name().parse::<RecordFormat>().unwrap(), f);
        }
        assert!("perf_data".parse::<RecordFormat>().is_err());
        assert!("yaml".parse::<RecordFormat>().is_err());
    }

    #[test]
    fn recorder_takes_one_snapshot_per_aggregation() {
        let hot = HotRange {
            range: AddrRange::new(0, 64 << 20),
            probability: 1.0,
        };
        let mut ctx = Context::new();
        ctx.set_ops(
            "sim",
            Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))),
        );
        ctx.targets.push(Target::new(0));
        ctx.targets.push(Target::new(1));
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        ctx.seed = Some(3);
        // a callback already installed keeps running
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen2 = Arc::clone(&seen);
        ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
            seen2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Control::Continue
        }));
        let rec = Recorder::new()
            .with_indices(1, 2)
            .with_time_origin_ns(5)
            .install(&mut ctx);
        let mut kd = Kdamond::new(ctx).unwrap();
        kd.init().unwrap();
        for _ in 0..100 {
            assert!(kd.step().is_none());
        }
        let rec = rec.lock();
        assert_eq!(rec.nr_snapshots(), 5);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 5);
        let r = &rec.records()[1];
        assert_eq!((r.kdamond_idx, r.context_idx, r.target_id), (1, 2, 1));
        assert_eq!(r.intervals.unwrap().aggr_us, 100_000);
        for (i, s) in r.snapshots.iter().enumerate() {
            let i = i as u64;
            assert_eq!(s.start_time, 5 + i * 100_000_000);
            assert_eq!(s.end_time, 5 + (i + 1) * 100_000_000);
            assert_eq!(s.total_bytes(), 1 << 30);
            assert!(s.regions.windows(2).all(|w| w[0].end <= w[1].start));
        }
        // every sample of the hot 64 MiB saw an access
        let last = r.snapshots.last().unwrap();
        let hot_bytes: u64 = last
            .regions
            .iter()
            .filter(|g| g.nr_accesses == 20)
            .map(RecordRegion::size)
            .sum();
        assert!(hot_bytes > 0);
    }
}
