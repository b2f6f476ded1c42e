//! The typed snapshot parser of the streaming reader: a snapshot is
//! deserialized straight into small structs whose scalars keep what the
//! JSON held (a number, a string, null), then converted with the same
//! rules as the `Value` parser (`json.rs`), so damo's spellings ("4,096",
//! "5 ms") still read. No `Value` tree per region, no path string unless a
//! value is wrong: an order of magnitude faster on long records.

use super::json::region_from_parts;
use super::*;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A JSON scalar as written.
#[derive(Debug)]
pub(super) enum Scalar {
    U(u64),
    I(i64),
    F(f64),
    S(String),
    Null,
}

impl Scalar {
    pub(super) fn to_value(&self) -> Value {
        match self {
            Scalar::U(u) => Value::from(*u),
            Scalar::I(i) => Value::from(*i),
            Scalar::F(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::S(s) => Value::String(s.clone()),
            Scalar::Null => Value::Null,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::U(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::I(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::F(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::S(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
pub(super) struct NrIn {
    #[serde(default)]
    pub(super) samples: Option<Scalar>,
    #[serde(default)]
    pub(super) percent: Option<Scalar>,
}

#[derive(Deserialize)]
pub(super) struct AgeIn {
    #[serde(default)]
    pub(super) usec: Option<Scalar>,
    #[serde(default)]
    pub(super) aggr_intervals: Option<Scalar>,
}

#[derive(Deserialize)]
pub(super) struct RegionIn {
    pub(super) start: Scalar,
    pub(super) end: Scalar,
    pub(super) nr_accesses: NrIn,
    #[serde(default)]
    pub(super) age: Option<AgeIn>,
}

#[derive(Deserialize)]
pub(super) struct SnapshotIn {
    start_time: Scalar,
    end_time: Scalar,
    regions: Vec<RegionIn>,
    #[serde(default)]
    sample_interval_us: Option<Scalar>,
}

/// `f` of `s`, with the error path built only when it fails.
fn conv<T>(
    s: &Scalar,
    f: impl Fn(&Value, &str) -> Result<T, DamoError>,
    path: impl FnOnce() -> String,
) -> Result<T, DamoError> {
    let v = s.to_value();
    f(&v, "").or_else(|_| f(&v, &path()))
}

impl SnapshotIn {
    /// The snapshot, converted as the `Value` parser converts it.
    pub(super) fn into_snapshot(
        self,
        at: &str,
        intervals: Option<&RecordIntervals>,
    ) -> Result<Snapshot, DamoError> {
        let start_time = conv(&self.start_time, value::time_ns, || {
            format!("{at}.start_time")
        })?;
        let end_time = conv(&self.end_time, value::time_ns, || format!("{at}.end_time"))?;
        let sample_interval_us = match &self.sample_interval_us {
            None | Some(Scalar::Null) => None,
            Some(s) => Some(conv(s, value::time_us, || {
                format!("{at}.sample_interval_us")
            })?),
        };
        let mut regions = Vec::with_capacity(self.regions.len());
        for (i, r) in self.regions.iter().enumerate() {
            regions.push(region_from_parts(r, intervals, &|| {
                format!("{at}.regions[{i}]")
            })?);
        }
        Ok(Snapshot {
            start_time,
            end_time,
            regions,
            sample_interval_us,
        })
    }
}
