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
use crate::DamoError;
use damon_core::attrs::{Attrs, IntervalsGoal};
use damon_core::context::Context;
use damon_core::Control;
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

mod fast;
mod file;
mod json;
mod perf_script;
mod recorder;
mod stream;
#[cfg(test)]
mod tests;

pub use file::{encode, parse_record, read_record_file, write_record_file, MAX_DECOMPRESSED};
pub use json::{write_json, write_json_compressed};
pub use perf_script::{parse_perf_script, write_perf_script};
pub use recorder::{Recorder, SharedRecorder};
pub use stream::{
    RecordFile, RecordMeta, RecordWriter, SnapshotFn, SnapshotSource, Spooled, WriteSummary,
};
