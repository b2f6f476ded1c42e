//! The `perf script` text of `damon:damon_aggregated` events, as damo
//! records it from the kernel's tracepoint: writing and reading.

use super::*;

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
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        let meta = RecordMeta::of(i, r);
        for s in &r.snapshots {
            snapshot_lines(&mut out, &meta, s);
        }
        if let [only] = r.snapshots.as_slice() {
            fake_last_line(&mut out, &meta, (only.start_time, only.end_time));
        }
    }
    out
}

fn line(out: &mut String, m: &RecordMeta, end_time: u64, nr: usize, g: (u64, u64, i64, i64)) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "kdamond.{kd} 0 [000] {secs}.{usecs:06}: damon:damon_aggregated: target_id={tid} nr_regions={nr} {}-{}: {} {}",
        g.0,
        g.1,
        g.2,
        g.3,
        kd = m.kdamond_idx,
        secs = end_time / 1_000_000_000,
        usecs = end_time % 1_000_000_000 / 1000,
        tid = m.target_id,
    );
}

/// Appends one snapshot's lines (one per region).
pub(super) fn snapshot_lines(out: &mut String, m: &RecordMeta, s: &Snapshot) {
    for g in &s.regions {
        let g4 = (g.start, g.end, i64::from(g.nr_accesses), i64::from(g.age));
        line(out, m, s.end_time, s.regions.len(), g4);
    }
}

/// Appends damo's fake second snapshot of a one-snapshot record, whose
/// snapshot spans `(start, end)`.
pub(super) fn fake_last_line(out: &mut String, m: &RecordMeta, (start, end): (u64, u64)) {
    let dur = end.saturating_sub(start);
    line(out, m, end.saturating_add(dur), 1, (0, 0, -1, -1));
}

/// One parsed `damon_aggregated` line.
pub(super) struct TraceRegion {
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
pub(super) fn parse_aggregated_fields(ts: &str, fields: &[&str]) -> Option<TraceRegion> {
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
pub(super) fn trace_line(line: &str) -> Option<(&str, &str, Vec<&str>)> {
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
