//! Typed reading of damo's JSON values with their JSON path.
//!
//! damo writes most numbers either raw (`4096`, `"4096"`, `"0.000000"`) or
//! human-readable (`"4,096"`, `"4.000 KiB"`, `"5 ms"`, `"1 s 500 ms"`,
//! `"0.3 %"`, `"max"`), and reads both back. These helpers accept the same
//! spellings, and report anything else as an error that names the JSON path
//! and the offending value. Fractional results are truncated toward zero, as
//! damo does when it writes a value into a sysfs file.

use crate::DamoError;
use serde_json::{Map, Value};

/// `ULONG_MAX` on 64-bit hosts: damo's `max`.
pub(crate) const ULONG_MAX: u64 = u64::MAX;

/// A short rendering of `v` for error messages (strings quoted, long values cut).
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Builds a path error.
pub(crate) fn err(path: &str, message: impl Into<String>) -> DamoError {
    DamoError::Invalid {
        path: if path.is_empty() {
            "(top level)".to_string()
        } else {
            path.to_string()
        },
        message: message.into(),
    }
}

/// The "expected ..., got ..." error.
pub(crate) fn expected(path: &str, what: &str, v: &Value) -> DamoError {
    err(path, format!("expected {what}, got {}", show(v)))
}

/// A JSON object being read, with its path; keys must be in `allowed`.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// Checks that `v` is an object whose keys are all in `allowed`.
    pub(crate) fn new(v: &'a Value, path: &str, allowed: &[&str]) -> Result<Self, DamoError> {
        let map = v
            .as_object()
            .ok_or_else(|| expected(path, "an object", v))?;
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(err(
                    &join(path, k),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(Self {
            map,
            path: path.to_string(),
        })
    }

    /// Like [`Obj::new`] but accepting any key (for forward-compatible
    /// record files, whose unknown keys are ignored).
    pub(crate) fn lenient(v: &'a Value, path: &str) -> Result<Self, DamoError> {
        let map = v
            .as_object()
            .ok_or_else(|| expected(path, "an object", v))?;
        Ok(Self {
            map,
            path: path.to_string(),
        })
    }

    /// The path of `key` in this object.
    pub(crate) fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`; `null` counts as absent (damo writes `null` for
    /// unset optional fields).
    pub(crate) fn opt(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The value of `key`, which must be present and not `null`.
    pub(crate) fn req(&self, key: &str) -> Result<&'a Value, DamoError> {
        self.opt(key)
            .ok_or_else(|| err(&self.child(key), "missing (required)"))
    }
}

/// `a.b` path joining.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The elements of an array.
pub(crate) fn array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], DamoError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| expected(path, "an array", v))
}

/// A string value.
pub(crate) fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, DamoError> {
    v.as_str().ok_or_else(|| expected(path, "a string", v))
}

/// A boolean: JSON `true`/`false` or damo's `y`/`yes`/`true`/`n`/`no`/`false`
/// strings (any case).
pub(crate) fn boolean(v: &Value, path: &str) -> Result<bool, DamoError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" => Ok(true),
            "n" | "no" | "false" => Ok(false),
            _ => Err(expected(path, "a boolean (true/false, y/n, yes/no)", v)),
        },
        _ => Err(expected(path, "a boolean (true/false, y/n, yes/no)", v)),
    }
}

/// A non-negative number held as an exact integer when possible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Num {
    /// An exact integer.
    Int(u128),
    /// A fractional (or huge) value; finite and non-negative.
    Float(f64),
}

impl Num {
    fn mul(self, unit: u64) -> Num {
        match self {
            Num::Int(i) => Num::Int(i.saturating_mul(u128::from(unit))),
            Num::Float(f) => Num::Float(f * unit as f64),
        }
    }

    fn div(self, d: u64) -> Num {
        match self {
            Num::Int(i) if i % u128::from(d) == 0 => Num::Int(i / u128::from(d)),
            Num::Int(i) => Num::Float(i as f64 / d as f64),
            Num::Float(f) => Num::Float(f / d as f64),
        }
    }

    /// Truncated toward zero, saturating at `u64::MAX`.
    pub(crate) fn to_u64(self) -> u64 {
        match self {
            Num::Int(i) => u64::try_from(i).unwrap_or(u64::MAX),
            // `as` saturates (and maps NaN to 0, which `parse_plain` never yields)
            Num::Float(f) => f as u64,
        }
    }

    /// As a float (for percent conversions).
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Parses damo's plain number text: optional `,` digit grouping, integer or
/// decimal (no sign, no exponent-only garbage). Returns `None` if it is not one.
fn parse_plain(s: &str) -> Option<Num> {
    let t: String = s.trim().chars().filter(|&c| c != ',').collect();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        // at most 39 digits fit in u128; longer ones go through f64
        return match t.parse::<u128>() {
            Ok(i) => Some(Num::Int(i)),
            Err(_) => t.parse::<f64>().ok().map(Num::Float),
        };
    }
    let valid = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && t.as_bytes()[0] != b'-'
        && t.bytes().any(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let f: f64 = t.parse().ok()?;
    if f.is_finite() && f >= 0.0 {
        Some(Num::Float(f))
    } else {
        None
    }
}

/// A JSON number as a [`Num`], if it is a finite non-negative one.
fn json_num(v: &Value) -> Option<Num> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(Num::Int(u128::from(u)));
    }
    let f = n.as_f64()?;
    (f.is_finite() && f >= 0.0).then_some(Num::Float(f))
}

/// damo's "common input": `min`, `max`, or a plain number.
fn common(v: &Value, min: u64, max: u64) -> Option<Num> {
    match v {
        Value::Number(_) => json_num(v),
        Value::String(s) => match s.trim() {
            "min" => Some(Num::Int(u128::from(min))),
            "max" => Some(Num::Int(u128::from(max))),
            t => parse_plain(t),
        },
        _ => None,
    }
}

/// A count: a non-negative number, a plain number string, `min` or `max`.
pub(crate) fn nr(v: &Value, path: &str) -> Result<u64, DamoError> {
    match common(v, 0, ULONG_MAX) {
        // a count has no fraction: 10.5 is refused, not truncated to 10
        // ("5000.000000", as damo writes some, is whole)
        Some(Num::Float(f)) if f.fract() != 0.0 => {
            Err(err(path, format!("{} is not a whole number", show(v))))
        }
        n => n
            .map(Num::to_u64)
            .ok_or_else(|| expected(path, "a non-negative integer", v)),
    }
}

/// Byte size units damo knows (binary multiples).
const SIZE_UNITS: [(&str, u32); 19] = [
    ("KiB", 10),
    ("MiB", 20),
    ("GiB", 30),
    ("TiB", 40),
    ("PiB", 50),
    ("EiB", 60),
    ("KB", 10),
    ("MB", 20),
    ("GB", 30),
    ("TB", 40),
    ("PB", 50),
    ("EB", 60),
    ("K", 10),
    ("M", 20),
    ("G", 30),
    ("T", 40),
    ("P", 50),
    ("E", 60),
    ("B", 0),
];

/// Parses a size string (`4096`, `4,096`, `4 KiB`, `4.000 KiB`, `2M`, `max`).
pub(crate) fn parse_bytes_str(s: &str) -> Option<u64> {
    let t = s.trim();
    match t {
        "min" => return Some(0),
        "max" => return Some(ULONG_MAX),
        _ => {}
    }
    if let Some(n) = parse_plain(t) {
        return Some(n.to_u64());
    }
    for (suffix, shift) in SIZE_UNITS {
        if let Some(num) = t.strip_suffix(suffix) {
            let n = parse_plain(num)?;
            return Some(n.mul(1u64 << shift).to_u64());
        }
    }
    None
}

/// A size in bytes: a number or a size string.
pub(crate) fn bytes(v: &Value, path: &str) -> Result<u64, DamoError> {
    let r = match v {
        Value::Number(_) => json_num(v).map(Num::to_u64),
        Value::String(s) => parse_bytes_str(s),
        _ => None,
    };
    r.ok_or_else(|| {
        expected(
            path,
            "a non-negative integer or a size string (e.g. \"4 KiB\", \"max\")",
            v,
        )
    })
}

/// Nanoseconds per time unit.
const TIME_UNITS: [(&str, u64); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// One `<number><unit>` token in nanoseconds.
fn time_token_ns(t: &str) -> Option<Num> {
    // two-letter units first, so that "5ms" is not read as "5m" + "s"
    for (suffix, ns) in TIME_UNITS.iter().filter(|(s, _)| s.len() == 2) {
        if let Some(num) = t.strip_suffix(suffix) {
            return parse_plain(num).map(|n| n.mul(*ns));
        }
    }
    for (suffix, ns) in TIME_UNITS.iter().filter(|(s, _)| s.len() == 1) {
        if let Some(num) = t.strip_suffix(suffix) {
            return parse_plain(num).map(|n| n.mul(*ns));
        }
    }
    None
}

/// Parses a time string with units (`5 ms`, `5ms`, `1 s 500 ms`,
/// `1.5 s`) into nanoseconds. A bare number is in `bare_unit_ns`.
fn parse_time_ns(s: &str, bare_unit_ns: u64) -> Option<Num> {
    let t = s.trim();
    if let Some(n) = parse_plain(t) {
        return Some(n.mul(bare_unit_ns));
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    if fields.is_empty() {
        return None;
    }
    if fields.len() == 1 {
        return time_token_ns(fields[0]);
    }
    // "<n> <unit> [<n> <unit>]...", or "<n><unit> <n><unit>"
    let mut total = Num::Int(0);
    let mut i = 0;
    while i < fields.len() {
        let tok = if i + 1 < fields.len() && parse_plain(fields[i]).is_some() {
            let t = format!("{}{}", fields[i], fields[i + 1]);
            i += 2;
            t
        } else {
            let t = fields[i].to_string();
            i += 1;
            t
        };
        let n = time_token_ns(&tok)?;
        total = match (total, n) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a.saturating_add(b)),
            (a, b) => Num::Float(a.to_f64() + b.to_f64()),
        };
    }
    Some(total)
}

/// A duration in `unit_ns` units: a number (already in that unit), a plain
/// number string, `min`/`max`, or a time string with units.
pub(crate) fn time(v: &Value, path: &str, unit_ns: u64) -> Result<u64, DamoError> {
    let r = match v {
        Value::Number(_) => json_num(v).map(Num::to_u64),
        Value::String(s) => match s.trim() {
            "min" => Some(0),
            "max" => Some(ULONG_MAX),
            t => parse_time_ns(t, unit_ns).map(|n| n.div(unit_ns).to_u64()),
        },
        _ => None,
    };
    r.ok_or_else(|| {
        expected(
            path,
            "a non-negative integer or a time string (e.g. \"5 ms\")",
            v,
        )
    })
}

/// Microseconds.
pub(crate) fn time_us(v: &Value, path: &str) -> Result<u64, DamoError> {
    time(v, path, 1_000)
}

/// Milliseconds.
pub(crate) fn time_ms(v: &Value, path: &str) -> Result<u64, DamoError> {
    time(v, path, 1_000_000)
}

/// Nanoseconds.
pub(crate) fn time_ns(v: &Value, path: &str) -> Result<u64, DamoError> {
    time(v, path, 1)
}

/// A ratio value in `per` units of the whole (1000 for permil, 10000 for
/// basis points, 100 for percent): a raw number in those units, or a
/// `"<x> %"` string.
pub(crate) fn ratio(v: &Value, path: &str, per: u64, what: &str) -> Result<Num, DamoError> {
    let bad = || {
        expected(
            path,
            &format!("a non-negative {what} number or a percentage (e.g. \"10 %\")"),
            v,
        )
    };
    if let Some(n) = common(v, 0, ULONG_MAX) {
        return Ok(n);
    }
    let s = v.as_str().ok_or_else(bad)?.trim();
    let num = s.strip_suffix('%').ok_or_else(bad)?;
    let n = parse_plain(num).ok_or_else(bad)?;
    // x % of the whole = x * per / 100 units
    Ok(match n {
        Num::Int(i) => match i.checked_mul(u128::from(per)) {
            Some(x) if x % 100 == 0 => Num::Int(x / 100),
            _ => Num::Float(i as f64 * per as f64 / 100.0),
        },
        Num::Float(f) => Num::Float(f * per as f64 / 100.0),
    })
}

/// Per-mille (raw number) or percentage string.
pub(crate) fn permil(v: &Value, path: &str) -> Result<u64, DamoError> {
    ratio(v, path, 1000, "per-mille").map(Num::to_u64)
}

/// Basis points (raw number) or percentage string.
pub(crate) fn bp(v: &Value, path: &str) -> Result<u64, DamoError> {
    ratio(v, path, 10_000, "basis-point").map(Num::to_u64)
}

/// `v` as a `u32`, refusing larger values except damo's `max` (ULONG_MAX),
/// which saturates.
pub(crate) fn to_u32(x: u64, path: &str, v: &Value) -> Result<u32, DamoError> {
    if x == ULONG_MAX {
        return Ok(u32::MAX);
    }
    u32::try_from(x).map_err(|_| {
        err(
            path,
            format!("{} is out of range (at most {})", show(v), u32::MAX),
        )
    })
}

/// A signed integer (`-1` allowed), as a JSON number or a plain string.
pub(crate) fn int_i32(v: &Value, path: &str) -> Result<i32, DamoError> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let i = parsed.ok_or_else(|| expected(path, "an integer", v))?;
    i32::try_from(i).map_err(|_| err(path, format!("{i} is out of range for a 32-bit integer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_in_damo_spellings() {
        assert_eq!(nr(&json!(5), "p").unwrap(), 5);
        assert_eq!(nr(&json!("1,000"), "p").unwrap(), 1000);
        assert_eq!(nr(&json!("max"), "p").unwrap(), u64::MAX);
        assert_eq!(nr(&json!("0.000000"), "p").unwrap(), 0);
        assert!(
            nr(&json!(3.9), "p").is_err(),
            "a fraction is refused, not truncated"
        );
        assert_eq!(nr(&json!(4.0), "p").unwrap(), 4);
        assert!(nr(&json!(-1), "p").is_err());
        assert!(nr(&json!("ten"), "p").is_err());
        assert!(nr(&json!(true), "p").is_err());
        assert!(nr(&json!("-5"), "p").is_err());
        assert!(nr(&json!("nan"), "p").is_err());
        assert!(nr(&json!("inf"), "p").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(&json!("4.000 KiB"), "p").unwrap(), 4096);
        assert_eq!(bytes(&json!("4K"), "p").unwrap(), 4096);
        assert_eq!(bytes(&json!("2 MB"), "p").unwrap(), 2 << 20);
        assert_eq!(bytes(&json!("1024.000 MiB"), "p").unwrap(), 1 << 30);
        assert_eq!(
            bytes(&json!("26,843,545,600"), "p").unwrap(),
            26_843_545_600
        );
        assert_eq!(bytes(&json!("0 B"), "p").unwrap(), 0);
        assert_eq!(bytes(&json!("max"), "p").unwrap(), u64::MAX);
        assert_eq!(bytes(&json!("1.5 K"), "p").unwrap(), 1536);
        assert_eq!(bytes(&json!("100 EiB"), "p").unwrap(), u64::MAX);
        let e = bytes(&json!("4 KX"), "a.b").unwrap_err().to_string();
        assert!(e.starts_with("a.b: expected"), "{e}");
    }

    #[test]
    fn times() {
        assert_eq!(time_us(&json!("5 ms"), "p").unwrap(), 5000);
        assert_eq!(time_us(&json!("5ms"), "p").unwrap(), 5000);
        assert_eq!(time_us(&json!("1 s 500 ms"), "p").unwrap(), 1_500_000);
        assert_eq!(time_us(&json!("1.5 s"), "p").unwrap(), 1_500_000);
        assert_eq!(time_us(&json!("2 m"), "p").unwrap(), 120_000_000);
        assert_eq!(time_us(&json!("0 ns"), "p").unwrap(), 0);
        assert_eq!(time_us(&json!("100"), "p").unwrap(), 100);
        assert_eq!(time_us(&json!(100), "p").unwrap(), 100);
        assert_eq!(time_ms(&json!("max"), "p").unwrap(), u64::MAX);
        assert_eq!(time_ms(&json!("1 s"), "p").unwrap(), 1000);
        assert_eq!(time_ns(&json!("1 us"), "p").unwrap(), 1000);
        assert_eq!(time_us(&json!("1 h 1 m"), "p").unwrap(), 3_660_000_000);
        let e = time_ms(&json!("ten"), "x.time_ms").unwrap_err().to_string();
        assert_eq!(
            e,
            "x.time_ms: expected a non-negative integer or a time string (e.g. \"5 ms\"), got \"ten\""
        );
        assert!(time_us(&json!("5 parsecs"), "p").is_err());
        assert!(time_us(&json!("ms"), "p").is_err());
        assert!(time_us(&json!(""), "p").is_err());
    }

    #[test]
    fn ratios() {
        assert_eq!(permil(&json!("0.3 %"), "p").unwrap(), 3);
        assert_eq!(permil(&json!("10 %"), "p").unwrap(), 100);
        assert_eq!(permil(&json!(7), "p").unwrap(), 7);
        assert_eq!(permil(&json!("3.000000"), "p").unwrap(), 3);
        assert_eq!(bp(&json!("4 %"), "p").unwrap(), 400);
        assert_eq!(bp(&json!("0 %"), "p").unwrap(), 0);
        assert!(permil(&json!("ten %"), "p").is_err());
        assert!(permil(&json!("-1 %"), "p").is_err());
    }

    #[test]
    fn booleans_and_ints() {
        assert!(boolean(&json!("Y"), "p").unwrap());
        assert!(!boolean(&json!(false), "p").unwrap());
        assert!(boolean(&json!(1), "p").is_err());
        assert_eq!(int_i32(&json!(-1), "p").unwrap(), -1);
        assert_eq!(int_i32(&json!("3"), "p").unwrap(), 3);
        assert!(int_i32(&json!(1u64 << 40), "p").is_err());
    }

    #[test]
    fn objects_refuse_unknown_keys() {
        let v = json!({"a": 1, "b": null});
        let o = Obj::new(&v, "root", &["a", "b"]).unwrap();
        assert!(o.opt("b").is_none());
        assert_eq!(
            o.req("c").unwrap_err().to_string(),
            "root.c: missing (required)"
        );
        let e = Obj::new(&v, "root", &["a"]).err().unwrap().to_string();
        assert!(e.starts_with("root.b: unknown key"), "{e}");
    }
}
