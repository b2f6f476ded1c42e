//! Monitoring attributes: `struct damon_attrs` and `struct damon_intervals_goal`.

use crate::error::InvalidParam;

/// The kernel's floor for `min_nr_regions` (`damon_set_attrs` rejects less than 3).
pub const MIN_NR_REGIONS_FLOOR: u32 = 3;

/// Monitoring-intervals auto-tuning goal (`struct damon_intervals_goal`).
/// Auto-tuning is off while `aggrs` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IntervalsGoal {
    /// Target ratio of observed to observable access events, in basis points
    /// (the kernel docs recommend 400, i.e. 4%).
    pub access_bp: u64,
    /// Tune every this many aggregations; 0 disables tuning.
    pub aggrs: u64,
    /// Lower bound of the tuned sampling interval (µs).
    pub min_sample_us: u64,
    /// Upper bound of the tuned sampling interval (µs).
    pub max_sample_us: u64,
}

/// Monitoring attributes. Intervals are in microseconds.
///
/// ```
/// let attrs = damon_core::Attrs::default();
/// assert_eq!((attrs.sample_interval, attrs.aggr_interval), (5_000, 100_000));
/// attrs.validate().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Attrs {
    /// Time between two access checks of a region (µs).
    pub sample_interval: u64,
    /// Time over which `nr_accesses` is counted before regions adapt (µs).
    pub aggr_interval: u64,
    /// Time between two refreshes of the targets' address layout (µs).
    pub ops_update_interval: u64,
    /// Auto-tuning of the sampling and aggregation intervals.
    pub intervals_goal: IntervalsGoal,
    /// Lower bound on the number of regions over all targets.
    pub min_nr_regions: u32,
    /// Upper bound on the number of regions over all targets.
    pub max_nr_regions: u32,
}

impl Default for Attrs {
    /// The kernel's defaults for a new context: 5 ms, 100 ms, 60 s, 10..1000 regions.
    fn default() -> Self {
        Self {
            sample_interval: 5_000,
            aggr_interval: 100_000,
            ops_update_interval: 60_000_000,
            intervals_goal: IntervalsGoal::default(),
            min_nr_regions: 10,
            max_nr_regions: 1000,
        }
    }
}

impl Attrs {
    /// Checks the attributes as `damon_set_attrs()` does, and also refuses
    /// zero intervals.
    ///
    /// Deviation: the kernel accepts 0 µs intervals and treats them as 1 in
    /// divisions; a user-space loop with a 0 µs sleep would spin a CPU, so we
    /// refuse them with an error naming the field.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        for (name, v) in [
            ("attrs.sample_interval", self.sample_interval),
            ("attrs.aggr_interval", self.aggr_interval),
            ("attrs.ops_update_interval", self.ops_update_interval),
        ] {
            if v == 0 {
                return Err(InvalidParam::new(name, "must be at least 1 µs"));
            }
        }
        if self.min_nr_regions < MIN_NR_REGIONS_FLOOR {
            return Err(InvalidParam::new(
                "attrs.min_nr_regions",
                format!(
                    "{} is below the kernel's floor of {MIN_NR_REGIONS_FLOOR}",
                    self.min_nr_regions
                ),
            ));
        }
        if self.min_nr_regions > self.max_nr_regions {
            return Err(InvalidParam::new(
                "attrs.min_nr_regions",
                format!(
                    "{} exceeds max_nr_regions {}",
                    self.min_nr_regions, self.max_nr_regions
                ),
            ));
        }
        if self.sample_interval > self.aggr_interval {
            return Err(InvalidParam::new(
                "attrs.aggr_interval",
                format!(
                    "{} µs is shorter than sample_interval {} µs",
                    self.aggr_interval, self.sample_interval
                ),
            ));
        }
        let g = &self.intervals_goal;
        if g.aggrs != 0 {
            if g.min_sample_us > g.max_sample_us {
                return Err(InvalidParam::new(
                    "attrs.intervals_goal.min_sample_us",
                    format!(
                        "{} exceeds max_sample_us {}",
                        g.min_sample_us, g.max_sample_us
                    ),
                ));
            }
            if self.sample_interval < g.min_sample_us || self.sample_interval > g.max_sample_us {
                return Err(InvalidParam::new(
                    "attrs.sample_interval",
                    format!(
                        "{} µs is outside the intervals goal's [{}, {}]",
                        self.sample_interval, g.min_sample_us, g.max_sample_us
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `damon_max_nr_accesses()`: samples per aggregation, capped at `u32::MAX`.
    pub fn max_nr_accesses(&self) -> u32 {
        let si = self.sample_interval.max(1);
        (self.aggr_interval / si).min(u64::from(u32::MAX)) as u32
    }

    /// True when every user-visible field equals `other`'s (the kernel's
    /// `damon_attrs_equals`).
    pub(crate) fn same_params(&self, other: &Attrs) -> bool {
        self.sample_interval == other.sample_interval
            && self.aggr_interval == other.aggr_interval
            && self.ops_update_interval == other.ops_update_interval
            && self.intervals_goal == other.intervals_goal
            && self.min_nr_regions == other.min_nr_regions
            && self.max_nr_regions == other.max_nr_regions
    }
}
