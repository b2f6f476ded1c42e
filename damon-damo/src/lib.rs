//! # damon-damo: compatibility with damo
//!
//! damo is the kernel DAMON's user-space tool; it is not part of the
//! kernel's `mm/damon`, so it is not part of the engine either. This crate
//! holds its record format, its reports and its kdamonds configuration,
//! built on damon-core's public API only.
//!
//! * [`record`]: damo's record files (`json`, `json_compressed`,
//!   `perf_script`), read with [`parse_record`] and written with
//!   [`encode`]; a [`Recorder`] turns aggregation snapshots into records.
//! * [`wss()`], [`heatmap()`], [`access()`]: damo's `report wss`,
//!   `report heatmap` and `report access`, as pure functions on records.
//! * [`kdamonds`]: damo's kdamonds JSON (`damo args damon` output, the
//!   sysfs hierarchy) to and from [`damon_core::Context`] parameters, with
//!   [`parse_kdamonds`] and [`save_kdamonds`].
//!
//! Nothing here calls damo or the kernel: files written here are read by
//! `damo report`, and files damo wrote are read here.
//!
//! ```
//! use damon_damo::{encode, parse_record, wss, Record, RecordFormat, RecordRegion, Snapshot, WssOptions};
//! let mut rec = Record::new(0, None);
//! for (i, hot) in [4096u64, 8192, 0].into_iter().enumerate() {
//!     let t = i as u64 * 100_000_000;
//!     rec.snapshots.push(Snapshot {
//!         start_time: t,
//!         end_time: t + 100_000_000,
//!         regions: vec![
//!             RecordRegion { start: 0, end: hot.max(1), nr_accesses: u32::from(hot > 0), age: 0 },
//!         ],
//!         sample_interval_us: None,
//!     });
//! }
//! let bytes = encode(&[rec], RecordFormat::JsonCompressed);
//! let back = parse_record(&bytes).unwrap();
//! let report = wss(&back, &WssOptions { exclude_samples: 0, ..Default::default() });
//! assert_eq!(report.dists[0].percentile(50), Some(4096));
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod access;
mod canvas;
mod error;
pub mod filter;
pub mod fmt;
pub mod footprint;
#[cfg(test)]
mod fuzz_tests;
pub mod heatmap;
pub mod holistic;
pub mod info;
pub mod kdamonds;
pub mod plot;
pub mod record;
pub(crate) mod value;
pub mod wss;

pub use error::DamoError;

/// A time as damo's command line takes it, in microseconds: a bare
/// number is microseconds (`5000`), a number with a unit is converted
/// (`5ms`, `5 ms`, `1.5s`, `2m`, `100us`, `1h 30m`), `min` is 0.
///
/// ```
/// use damon_damo::parse_time_us;
/// assert_eq!(parse_time_us("5000").unwrap(), 5000);
/// assert_eq!(parse_time_us("5ms").unwrap(), 5000);
/// assert_eq!(parse_time_us("1.5s").unwrap(), 1_500_000);
/// assert_eq!(parse_time_us("2m").unwrap(), 120_000_000);
/// assert!(parse_time_us("soon").is_err());
/// ```
pub fn parse_time_us(s: &str) -> Result<u64, DamoError> {
    value::time_us(&serde_json::Value::String(s.to_string()), "time")
}

pub use access::style::{style_text, AccessStyle, StyleOptions};
pub use access::{access, AccessOptions, AccessReport};
pub use heatmap::{heatmap, heatmap_of, Heatmap, HeatmapOptions};
pub use kdamonds::{
    parse_kdamonds, save_kdamonds, ContextParams, KdamondParams, KdamondsConfig, TargetParams,
};
pub use record::{
    encode, parse_record, read_record_file, write_json, write_json_compressed, write_perf_script,
    write_record_file, Record, RecordFile, RecordFormat, RecordIntervals, RecordMeta, RecordRegion,
    RecordWriter, Recorder, SharedRecorder, Snapshot, SnapshotSource, WriteSummary,
};
pub use wss::{wss, wss_of, WssDist, WssOptions, WssReport, WssSort};
