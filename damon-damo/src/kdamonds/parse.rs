//! Parsing damo's kdamonds JSON: kdamonds, contexts, intervals, targets.

use super::parse_scheme::*;
use super::*;

/// Parses damo's kdamonds JSON (see the module docs). Never panics.
pub fn parse_kdamonds(text: &str) -> Result<KdamondsConfig, DamoError> {
    let v: Value = serde_json::from_str(text).map_err(|e| DamoError::Syntax(e.to_string()))?;
    let top = Obj::new(&v, "", &["kdamonds"])?;
    let kds = array(top.req("kdamonds")?, "kdamonds")?;
    let kdamonds = kds
        .iter()
        .enumerate()
        .map(|(i, k)| parse_kdamond(k, &format!("kdamonds[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KdamondsConfig { kdamonds })
}

pub(super) fn parse_kdamond(v: &Value, path: &str) -> Result<KdamondParams, DamoError> {
    let o = Obj::new(v, path, &["state", "pid", "refresh_ms", "contexts"])?;
    if let Some(s) = o.opt("state") {
        let st = value::string(s, &o.child("state"))?;
        if st != "on" && st != "off" {
            return Err(expected(&o.child("state"), "\"on\" or \"off\"", s));
        }
    }
    if let Some(p) = o.opt("pid") {
        value::nr(p, &o.child("pid"))?;
    }
    let refresh_ms = opt_or(&o, "refresh_ms", 0, value::time_ms)?;
    let cp = o.child("contexts");
    let contexts = match o.opt("contexts") {
        Some(c) => array(c, &cp)?
            .iter()
            .enumerate()
            .map(|(i, c)| parse_context(c, &format!("{cp}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(KdamondParams {
        refresh_ms,
        contexts,
    })
}

/// `key`'s value parsed by `f`, or `default` when absent or null.
pub(super) fn opt_or<T>(
    o: &Obj<'_>,
    key: &str,
    default: T,
    f: impl FnOnce(&Value, &str) -> Result<T, DamoError>,
) -> Result<T, DamoError> {
    match o.opt(key) {
        Some(v) => f(v, &o.child(key)),
        None => Ok(default),
    }
}

pub(super) fn u32_of(v: &Value, path: &str) -> Result<u32, DamoError> {
    value::to_u32(value::nr(v, path)?, path, v)
}

pub(super) fn u32_permil(v: &Value, path: &str) -> Result<u32, DamoError> {
    value::to_u32(value::permil(v, path)?, path, v)
}

pub(super) fn parse_context(v: &Value, path: &str) -> Result<ContextParams, DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "ops",
            "addr_unit",
            "targets",
            "intervals",
            "nr_regions",
            "monitoring_attrs",
            "probes",
            "sample_control",
            "pause",
            "schemes",
        ],
    )?;
    let ops_v = o.req("ops")?;
    let ops = value::string(ops_v, &o.child("ops"))?;
    if ops.is_empty()
        || !ops
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(expected(
            &o.child("ops"),
            "an operations set id (vaddr, fvaddr, paddr, ...)",
            ops_v,
        ));
    }
    let addr_unit = opt_or(&o, "addr_unit", 1, value::bytes)?;
    if addr_unit == 0 {
        return Err(value::err(&o.child("addr_unit"), "must be non-zero"));
    }
    if let Some(p) = o.opt("probes") {
        if !array(p, &o.child("probes"))?.is_empty() {
            return Err(DamoError::Unsupported(format!(
                "{}: access probes are not supported",
                o.child("probes")
            )));
        }
    }
    if let Some(sc) = o.opt("sample_control") {
        check_sample_control(sc, &o.child("sample_control"))?;
    }
    let pause = opt_or(&o, "pause", false, boolean)?;

    // attributes: damo's keys, or the sysfs-shaped monitoring_attrs
    let mut attrs = damo_default_attrs();
    let (iv, nrr, attrs_prefix) = match o.opt("monitoring_attrs") {
        Some(ma) => {
            if o.opt("intervals").is_some() || o.opt("nr_regions").is_some() {
                return Err(value::err(
                    &o.child("monitoring_attrs"),
                    "give either monitoring_attrs or intervals/nr_regions, not both",
                ));
            }
            let mp = o.child("monitoring_attrs");
            let mo = Obj::new(ma, &mp, &["intervals", "nr_regions"])?;
            (mo.opt("intervals"), mo.opt("nr_regions"), mp)
        }
        None => (o.opt("intervals"), o.opt("nr_regions"), path.to_string()),
    };
    if let Some(iv) = iv {
        parse_intervals(iv, &join(&attrs_prefix, "intervals"), &mut attrs)?;
    }
    if let Some(nr) = nrr {
        let np = join(&attrs_prefix, "nr_regions");
        let no = Obj::new(nr, &np, &["min", "max"])?;
        attrs.min_nr_regions = u32_of(no.req("min")?, &no.child("min"))?;
        attrs.max_nr_regions = u32_of(no.req("max")?, &no.child("max"))?;
    }

    let tp = o.child("targets");
    let targets = match o.opt("targets") {
        Some(t) => array(t, &tp)?
            .iter()
            .enumerate()
            .map(|(i, t)| parse_target(t, &format!("{tp}[{i}]"), ops))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let sp = o.child("schemes");
    let schemes = match o.opt("schemes") {
        Some(s) => array(s, &sp)?
            .iter()
            .enumerate()
            .map(|(i, s)| parse_scheme(s, &format!("{sp}[{i}]"), &attrs))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let params = ContextParams {
        ops: ops.to_string(),
        addr_unit,
        attrs,
        targets,
        schemes,
        pause,
    };
    // DAMON's own checks, with the field mapped back to its JSON path
    params
        .to_context()
        .validate()
        .map_err(|e| value::err(&json_path_of(path, &attrs_prefix, &e.field), e.reason))?;
    Ok(params)
}

/// Maps a [`damon_core::InvalidParam`] field of a context to its JSON path.
pub(super) fn json_path_of(ctx_path: &str, attrs_prefix: &str, field: &str) -> String {
    const ATTRS: [(&str, &str); 5] = [
        ("attrs.sample_interval", "intervals.sample_us"),
        ("attrs.aggr_interval", "intervals.aggr_us"),
        ("attrs.ops_update_interval", "intervals.ops_update_us"),
        ("attrs.min_nr_regions", "nr_regions.min"),
        ("attrs.intervals_goal", "intervals.intervals_goal"),
    ];
    for (from, to) in ATTRS {
        if let Some(rest) = field.strip_prefix(from) {
            return format!("{}{rest}", join(attrs_prefix, to));
        }
    }
    let f = field
        .replace(".pattern.sz", ".access_pattern.sz_bytes")
        .replace(".pattern.", ".access_pattern.")
        .replace(".wmarks", ".watermarks");
    let f = match f.strip_suffix(".addr") {
        Some(p) if f.contains(".filters[") => format!("{p}.address_range"),
        _ => f,
    };
    join(ctx_path, &f)
}

pub(super) fn check_sample_control(v: &Value, path: &str) -> Result<(), DamoError> {
    let o = Obj::new(v, path, &["primitives_enabled", "sample_filters"])?;
    if let Some(pe) = o.opt("primitives_enabled") {
        let pp = o.child("primitives_enabled");
        let po = Obj::new(pe, &pp, &["page_table", "page_fault"])?;
        let pt = opt_or(&po, "page_table", true, boolean)?;
        let pf = opt_or(&po, "page_fault", false, boolean)?;
        if !pt || pf {
            return Err(DamoError::Unsupported(format!(
                "{pp}: only page-table access checks (page_table true, page_fault false) are supported"
            )));
        }
    }
    if let Some(sf) = o.opt("sample_filters") {
        if !array(sf, &o.child("sample_filters"))?.is_empty() {
            return Err(DamoError::Unsupported(format!(
                "{}: sample filters are not supported",
                o.child("sample_filters")
            )));
        }
    }
    Ok(())
}

pub(super) fn parse_intervals(v: &Value, path: &str, attrs: &mut Attrs) -> Result<(), DamoError> {
    let o = Obj::new(
        v,
        path,
        &[
            "sample_us",
            "aggr_us",
            "ops_update_us",
            "update_us",
            "intervals_goal",
        ],
    )?;
    attrs.sample_interval = value::time_us(o.req("sample_us")?, &o.child("sample_us"))?;
    attrs.aggr_interval = value::time_us(o.req("aggr_us")?, &o.child("aggr_us"))?;
    let upd = match (o.opt("ops_update_us"), o.opt("update_us")) {
        (Some(_), Some(_)) => {
            return Err(value::err(
                &o.child("update_us"),
                "give either ops_update_us or update_us, not both",
            ))
        }
        (Some(u), None) => value::time_us(u, &o.child("ops_update_us"))?,
        (None, Some(u)) => value::time_us(u, &o.child("update_us"))?,
        (None, None) => return Err(value::err(&o.child("ops_update_us"), "missing (required)")),
    };
    attrs.ops_update_interval = upd;
    if let Some(g) = o.opt("intervals_goal") {
        let gp = o.child("intervals_goal");
        let go = Obj::new(
            g,
            &gp,
            &["access_bp", "aggrs", "min_sample_us", "max_sample_us"],
        )?;
        attrs.intervals_goal = IntervalsGoal {
            access_bp: value::bp(go.req("access_bp")?, &go.child("access_bp"))?,
            aggrs: value::nr(go.req("aggrs")?, &go.child("aggrs"))?,
            min_sample_us: value::time_us(go.req("min_sample_us")?, &go.child("min_sample_us"))?,
            max_sample_us: value::time_us(go.req("max_sample_us")?, &go.child("max_sample_us"))?,
        };
    }
    Ok(())
}

pub(super) fn parse_range(v: &Value, path: &str) -> Result<AddrRange, DamoError> {
    let o = Obj::new(v, path, &["start", "end"])?;
    let start = value::bytes(o.req("start")?, &o.child("start"))?;
    let end = value::bytes(o.req("end")?, &o.child("end"))?;
    if start >= end {
        return Err(value::err(
            path,
            format!("empty or inverted range: start {start} >= end {end}"),
        ));
    }
    Ok(AddrRange::new(start, end))
}

pub(super) fn parse_target(v: &Value, path: &str, ops: &str) -> Result<TargetParams, DamoError> {
    let o = Obj::new(v, path, &["pid", "obsolete", "regions"])?;
    let pid = match o.opt("pid") {
        Some(p) => Some(value::nr(p, &o.child("pid"))?),
        None => None,
    };
    if pid.is_none() && (ops == "vaddr" || ops == "fvaddr") {
        return Err(value::err(
            &o.child("pid"),
            format!("missing (a {ops} target needs a process id)"),
        ));
    }
    let obsolete = opt_or(&o, "obsolete", false, boolean)?;
    let rp = o.child("regions");
    let mut regions = Vec::new();
    if let Some(rs) = o.opt("regions") {
        for (i, r) in array(rs, &rp)?.iter().enumerate() {
            let p = format!("{rp}[{i}]");
            let r = parse_range(r, &p)?;
            if let Some(prev) = regions.last() {
                let prev: &AddrRange = prev;
                if prev.end > r.start {
                    return Err(value::err(
                        &p,
                        format!("region {r} overlaps or precedes {prev}"),
                    ));
                }
            }
            regions.push(r);
        }
    }
    Ok(TargetParams {
        pid,
        regions,
        obsolete,
    })
}
