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
            let at = format!("records[{ri}].snapshots[{si}]");
            if snap.end_time < snap.start_time {
                return Err(DamoError::Invalid {
                    path: at,
                    message: format!(
                        "ends at {} ns, before it starts at {} ns",
                        snap.end_time, snap.start_time
                    ),
                });
            }
            let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(snap.regions.len());
            for (gi, r) in snap.regions.iter().enumerate() {
                if r.end < r.start {
                    return Err(DamoError::Invalid {
                        path: format!("{at}.regions[{gi}]"),
                        message: format!(
                            "ends at {:#x}, before it starts at {:#x}",
                            r.end, r.start
                        ),
                    });
                }
                spans.push((r.start, r.end, gi));
            }
            spans.sort_unstable();
            for w in spans.windows(2) {
                if w[1].0 < w[0].1 {
                    return Err(DamoError::Invalid {
                        path: format!("{at}.regions[{}]", w[1].2),
                        message: format!(
                            "{:#x}-{:#x} overlaps regions[{}] {:#x}-{:#x}",
                            w[1].0, w[1].1, w[0].2, w[0].0, w[0].1
                        ),
                    });
                }
            }
        }
    }
    Ok(records)
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
