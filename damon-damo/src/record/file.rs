//! Record files: encoding in a chosen format, format detection on read,
//! and the file I/O.

use super::json::parse_json_records;
use super::*;

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
        return checked(parse_json_records(&json)?);
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(DamoError::Syntax("empty record file".into())),
        Some(b'[') | Some(b'{') => checked(parse_json_records(data)?),
        Some(_) => {
            let text = std::str::from_utf8(data).map_err(|e| {
                DamoError::Syntax(format!(
                    "not a damo record (neither zlib, JSON nor perf script text): {e}"
                ))
            })?;
            checked(parse_perf_script(text)?)
        }
    }
}

/// Refuses records no monitor could have made: a snapshot that ends before
/// it starts, a region that ends before it starts, regions that overlap.
/// The error names the record, the snapshot and the region.
fn checked(records: Vec<Record>) -> Result<Vec<Record>, DamoError> {
    for (ri, rec) in records.iter().enumerate() {
        for (si, snap) in rec.snapshots.iter().enumerate() {
            check_snapshot(snap, &format!("records[{ri}].snapshots[{si}]"))?;
        }
    }
    Ok(records)
}

/// The checks of one snapshot at JSON path `at`.
pub(super) fn check_snapshot(snap: &Snapshot, at: &str) -> Result<(), DamoError> {
    if snap.end_time < snap.start_time {
        return Err(DamoError::Invalid {
            path: at.into(),
            message: format!(
                "ends at {} ns, before it starts at {} ns",
                snap.end_time, snap.start_time
            ),
        });
    }
    let mut sorted = true;
    for (gi, r) in snap.regions.iter().enumerate() {
        if r.end < r.start {
            return Err(DamoError::Invalid {
                path: format!("{at}.regions[{gi}]"),
                message: format!("ends at {:#x}, before it starts at {:#x}", r.end, r.start),
            });
        }
        if gi > 0 && snap.regions[gi - 1].start > r.start {
            sorted = false;
        }
        if sorted && gi > 0 && r.start < snap.regions[gi - 1].end {
            let p = &snap.regions[gi - 1];
            return Err(overlap(at, (r.start, r.end, gi), (p.start, p.end, gi - 1)));
        }
    }
    if !sorted {
        let mut spans: Vec<(u64, u64, usize)> = snap
            .regions
            .iter()
            .enumerate()
            .map(|(gi, r)| (r.start, r.end, gi))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(overlap(at, w[1], w[0]));
            }
        }
    }
    Ok(())
}

fn overlap(at: &str, r: (u64, u64, usize), o: (u64, u64, usize)) -> DamoError {
    DamoError::Invalid {
        path: format!("{at}.regions[{}]", r.2),
        message: format!(
            "{:#x}-{:#x} overlaps regions[{}] {:#x}-{:#x}",
            r.0, r.1, o.2, o.0, o.1
        ),
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
pub(super) fn is_zlib(d: &[u8]) -> bool {
    d.len() >= 2
        && d[0] & 0x0f == 8
        && d[0] >> 4 <= 7
        && (u16::from(d[0]) << 8 | u16::from(d[1])) % 31 == 0
}
