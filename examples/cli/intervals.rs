//! damo's monitoring-interval options, shared by the examples that monitor:
//! `--sample`, `--aggr`, `--updr` take damo's time forms (`5000` is µs,
//! `5ms`, `1.5s`, `2m`), `--minr`/`--maxr` the region bounds; the older
//! `--sample-us` style names stay as aliases.

use damon_core::Attrs;

/// A time option's value: damo's forms, in µs, positive.
pub fn parse_interval_us(s: &str) -> Result<u64, String> {
    match damon_damo::parse_time_us(s) {
        Ok(0) => Err(format!("{s:?}: an interval must be longer than 0")),
        Ok(v) if v >= u64::MAX / 1000 => Err(format!("{s:?}: too long")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!(
            "{s:?} is not a time (µs, or with a unit: 5ms, 1.5s, 2m)"
        )),
    }
}

/// The monitoring attributes damo's `record`/`start` take.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct IntervalArgs {
    /// Sampling interval (µs, or with a unit: 5ms) [damo: 5ms].
    #[arg(long, visible_alias = "sample-us", value_name = "TIME", value_parser = parse_interval_us)]
    pub sample: Option<u64>,
    /// Aggregation interval (µs, or with a unit: 100ms) [damo: 100ms].
    #[arg(long, visible_alias = "aggr-us", value_name = "TIME", value_parser = parse_interval_us)]
    pub aggr: Option<u64>,
    /// Operations update interval: how often a process's mappings are
    /// re-read (µs, or with a unit: 1s) [damo: 1s].
    #[arg(long, visible_alias = "ops-update-us", value_name = "TIME", value_parser = parse_interval_us)]
    pub updr: Option<u64>,
    /// Minimum number of regions [damo: 10].
    #[arg(long, visible_alias = "min-nr-regions", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub minr: Option<u32>,
    /// Maximum number of regions [damo: 1000].
    #[arg(long, visible_alias = "max-nr-regions", value_name = "N",
          value_parser = clap::value_parser!(u32).range(3..))]
    pub maxr: Option<u32>,
}

impl IntervalArgs {
    /// Sets the given values in `attrs`.
    pub fn apply(&self, attrs: &mut Attrs) {
        if let Some(v) = self.sample {
            attrs.sample_interval = v;
        }
        if let Some(v) = self.aggr {
            attrs.aggr_interval = v;
        }
        if let Some(v) = self.updr {
            attrs.ops_update_interval = v;
        }
        if let Some(v) = self.minr {
            attrs.min_nr_regions = v;
        }
        if let Some(v) = self.maxr {
            attrs.max_nr_regions = v;
        }
    }
}
