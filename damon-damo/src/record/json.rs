//! damo's JSON record schema (see the module docs), plain and
//! zlib-compressed: writing and reading.

use super::*;

#[derive(Serialize)]
pub(super) struct GoalOut {
    access_bp: u64,
    aggrs: u64,
    min_sample_us: u64,
    max_sample_us: u64,
}

#[derive(Serialize)]
pub(super) struct IntervalsOut {
    sample_us: u64,
    aggr_us: u64,
    ops_update_us: u64,
    intervals_goal: GoalOut,
}

#[derive(Serialize)]
pub(super) struct NrAccessesOut {
    samples: u32,
    percent: Option<u32>,
}

#[derive(Serialize)]
pub(super) struct AgeOut {
    usec: Option<u64>,
    aggr_intervals: u32,
}

#[derive(Serialize)]
pub(super) struct RegionOut {
    start: u64,
    end: u64,
    nr_accesses: NrAccessesOut,
    age: AgeOut,
    probe_hits: [u64; 0],
    sz_filter_passed: u64,
}

#[derive(Serialize)]
pub(super) struct SnapshotOut {
    start_time: u64,
    end_time: u64,
    regions: Vec<RegionOut>,
    total_bytes: u64,
    damos_stats: Option<()>,
    sample_interval_us: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct RecordOut {
    kdamond_idx: u64,
    context_idx: u64,
    intervals: Option<IntervalsOut>,
    scheme_idx: Option<u64>,
    target_id: u64,
    scheme_filters: [u64; 0],
    snapshots: Vec<SnapshotOut>,
    data_source: &'static str,
}

pub(super) fn intervals_out(i: &RecordIntervals) -> IntervalsOut {
    IntervalsOut {
        sample_us: i.sample_us,
        aggr_us: i.aggr_us,
        ops_update_us: i.ops_update_us,
        intervals_goal: GoalOut {
            access_bp: i.goal.access_bp,
            aggrs: i.goal.aggrs,
            min_sample_us: i.goal.min_sample_us,
            max_sample_us: i.goal.max_sample_us,
        },
    }
}

pub(super) fn snapshot_out(s: &Snapshot) -> SnapshotOut {
    SnapshotOut {
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
    }
}

pub(super) fn to_out(r: &Record) -> RecordOut {
    RecordOut {
        kdamond_idx: r.kdamond_idx,
        context_idx: r.context_idx,
        intervals: r.intervals.as_ref().map(intervals_out),
        scheme_idx: r.scheme_idx,
        target_id: r.target_id,
        scheme_filters: [],
        snapshots: r.snapshots.iter().map(snapshot_out).collect(),
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

/// The records of a JSON text, parsed snapshot by snapshot (the memory of
/// the result, not of a JSON tree of the whole file).
pub(super) fn parse_json_records(data: &[u8]) -> Result<Vec<Record>, DamoError> {
    let mut records: Vec<Record> = Vec::new();
    let mut metas: Vec<Option<super::RecordMeta>> = Vec::new();
    super::stream::walk_json_slice(data, &mut |m, s| {
        if metas.len() <= m.index {
            metas.resize(m.index + 1, None);
        }
        metas[m.index] = Some(*m);
        while records.len() <= m.index {
            records.push(Record::new(0, None));
        }
        records[m.index].snapshots.push(s.clone());
        Ok(())
    })?;
    // records without snapshots still count: walk again for their keys
    if records.len() < count_records(data)? {
        let v: Value =
            serde_json::from_slice(data).map_err(|e| DamoError::Syntax(e.to_string()))?;
        let items = array(&v, "records")?;
        return items
            .iter()
            .enumerate()
            .map(|(i, r)| parse_json_record(r, &format!("records[{i}]")))
            .collect();
    }
    for (r, m) in records.iter_mut().zip(metas) {
        if let Some(m) = m {
            r.kdamond_idx = m.kdamond_idx;
            r.context_idx = m.context_idx;
            r.intervals = m.intervals;
            r.scheme_idx = m.scheme_idx;
            r.target_id = m.target_id;
        }
    }
    Ok(records)
}

/// How many records a JSON list holds, without building them.
fn count_records(data: &[u8]) -> Result<usize, DamoError> {
    let v: Vec<serde::de::IgnoredAny> =
        serde_json::from_slice(data).map_err(|e| DamoError::Syntax(e.to_string()))?;
    Ok(v.len())
}

pub(super) fn parse_json_record(v: &Value, path: &str) -> Result<Record, DamoError> {
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

pub(super) fn parse_record_intervals(v: &Value, path: &str) -> Result<RecordIntervals, DamoError> {
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

pub(super) fn parse_json_snapshot(
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

pub(super) fn parse_json_region(
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

/// One region from the typed parser's parts, by the rules of
/// [`parse_json_region`]; `path` names it in errors.
pub(super) fn region_from_parts(
    r: &super::fast::RegionIn,
    intervals: Option<&RecordIntervals>,
    path: &dyn Fn() -> String,
) -> Result<RecordRegion, DamoError> {
    use super::fast::Scalar;
    let conv = |s: &Scalar, f: fn(&Value, &str) -> Result<u64, DamoError>, key: &str| {
        let v = s.to_value();
        f(&v, "").or_else(|_| f(&v, &format!("{}.{key}", path())))
    };
    let u32_of = |n: u64, s: &Scalar, key: &str| {
        let v = s.to_value();
        value::to_u32(n, "", &v).or_else(|_| value::to_u32(n, &format!("{}.{key}", path()), &v))
    };
    let start = conv(&r.start, value::bytes, "start")?;
    let end = conv(&r.end, value::bytes, "end")?;
    if end < start {
        return Err(value::err(
            &path(),
            format!("end {end} is below start {start}"),
        ));
    }
    let na = &r.nr_accesses;
    let nr_accesses = match (&na.samples, &na.percent) {
        (Some(s), _) if !matches!(s, Scalar::Null) => u32_of(
            conv(s, value::nr, "nr_accesses.samples")?,
            s,
            "nr_accesses.samples",
        )?,
        (_, Some(pc)) if !matches!(pc, Scalar::Null) => {
            let p = format!("{}.nr_accesses.percent", path());
            let v = pc.to_value();
            let percent = value::ratio(&v, &p, 100, "percent")?.to_f64();
            let iv = intervals.ok_or_else(|| {
                value::err(
                    &p,
                    "a percentage needs the record's intervals to convert to samples",
                )
            })?;
            let max = iv.aggr_us as f64 / iv.sample_us.max(1) as f64;
            value::to_u32((percent * max / 100.0) as u64, &p, &v)?
        }
        _ => {
            return Err(value::err(
                &format!("{}.nr_accesses", path()),
                "needs \"samples\" or \"percent\"",
            ))
        }
    };
    let age = match &r.age {
        None => 0,
        Some(a) => match (&a.aggr_intervals, &a.usec) {
            (Some(n), _) if !matches!(n, Scalar::Null) => u32_of(
                conv(n, value::nr, "age.aggr_intervals")?,
                n,
                "age.aggr_intervals",
            )?,
            (_, Some(us)) if !matches!(us, Scalar::Null) => {
                let usec = conv(us, value::time_us, "age.usec")?;
                let p = format!("{}.age.usec", path());
                let iv = intervals
                    .ok_or_else(|| value::err(&p, "an age in usec needs the record's intervals"))?;
                value::to_u32(usec / iv.aggr_us.max(1), &p, &us.to_value())?
            }
            _ => 0,
        },
    };
    Ok(RecordRegion {
        start,
        end,
        nr_accesses,
        age,
    })
}
