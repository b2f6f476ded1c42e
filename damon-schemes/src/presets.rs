//! Ready-made policies equivalent to the kernel's DAMON_RECLAIM
//! (`mm/damon/reclaim.c`) and DAMON_LRU_SORT (`mm/damon/lru_sort.c`), with
//! the same parameter names and defaults.
//!
//! How they differ from the kernel modules:
//! * The kernel modules monitor physical memory (`paddr`) and act through
//!   the reverse map. User space has no reverse map, so these presets
//!   monitor and act on a set of **processes** (`vaddr`), through
//!   `process_madvise` on each target's pidfd. The kernel's
//!   `monitor_region_start/end` has no meaning here; the targets are the
//!   processes given.
//! * LRU sorting: `lru_prio`/`lru_deprio` do not exist in user space; the
//!   hot scheme uses `willneed` and the cold scheme `cold` (`MADV_COLD`
//!   deactivates pages, `MADV_WILLNEED` faults in and readies them).
//! * `skip_anon` becomes an `anon` page-level filter, which the vaddr
//!   backend evaluates from pagemap. `filter_young_pages` becomes `young`
//!   filters, which vaddr and paddr evaluate per folio from the idle
//!   bitmap; the simulation refuses them when the context starts, naming
//!   the filter.

use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, Quota, QuotaGoal, Scheme, Watermarks,
    WmarkMetric,
};
use damon_core::{Attrs, IntervalsGoal};

const PAGE_SIZE: u64 = 4096;

/// DAMON_RECLAIM's parameters (`/sys/module/damon_reclaim/parameters/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclaimParams {
    /// Regions idle this long (µs) are paged out.
    pub min_age: u64,
    /// Time quota (ms per reset interval).
    pub quota_ms: u64,
    /// Size quota (bytes per reset interval).
    pub quota_sz: u64,
    /// Quota reset interval (ms).
    pub quota_reset_interval_ms: u64,
    /// Target memory pressure (PSI some, µs per reset interval); 0 = off.
    pub quota_mem_pressure_us: u64,
    /// User feedback for quota tuning (goal 10 000); 0 = off.
    pub quota_autotune_feedback: u64,
    /// Watermark check interval (µs).
    pub wmarks_interval: u64,
    /// High watermark (free memory per mille).
    pub wmarks_high: u64,
    /// Middle watermark.
    pub wmarks_mid: u64,
    /// Low watermark.
    pub wmarks_low: u64,
    /// Sampling interval (µs).
    pub sample_interval: u64,
    /// Aggregation interval (µs).
    pub aggr_interval: u64,
    /// Minimum number of regions.
    pub min_nr_regions: u32,
    /// Maximum number of regions.
    pub max_nr_regions: u32,
    /// Do not page out anonymous memory.
    pub skip_anon: bool,
    /// Auto-tune the monitoring intervals (development trees' parameter).
    pub autotune_monitoring_intervals: bool,
}

impl Default for ReclaimParams {
    fn default() -> Self {
        Self {
            min_age: 120_000_000,
            quota_ms: 10,
            quota_sz: 128 << 20,
            quota_reset_interval_ms: 1000,
            quota_mem_pressure_us: 0,
            quota_autotune_feedback: 0,
            wmarks_interval: 5_000_000,
            wmarks_high: 500,
            wmarks_mid: 400,
            wmarks_low: 200,
            sample_interval: 5_000,
            aggr_interval: 100_000,
            min_nr_regions: 10,
            max_nr_regions: 1000,
            skip_anon: false,
            autotune_monitoring_intervals: false,
        }
    }
}

fn attrs(sample: u64, aggr: u64, min: u32, max: u32, autotune: bool) -> Attrs {
    Attrs {
        sample_interval: sample,
        aggr_interval: aggr,
        // the modules use 0 (paddr has no update); processes change their
        // mappings, so refresh them every second
        ops_update_interval: 1_000_000,
        intervals_goal: if autotune {
            IntervalsGoal {
                access_bp: 40,
                aggrs: 3,
                min_sample_us: 5_000,
                max_sample_us: 10_000_000,
            }
        } else {
            IntervalsGoal::default()
        },
        min_nr_regions: min,
        max_nr_regions: max,
    }
}

impl ReclaimParams {
    /// Monitoring attributes.
    pub fn attrs(&self) -> Attrs {
        let mut a = attrs(
            self.sample_interval,
            self.aggr_interval,
            self.min_nr_regions,
            self.max_nr_regions,
            self.autotune_monitoring_intervals,
        );
        if self.autotune_monitoring_intervals {
            a.sample_interval = 5_000;
            a.aggr_interval = 100_000;
        }
        a
    }

    /// The pageout scheme (`damon_reclaim_new_scheme`).
    pub fn scheme(&self) -> Scheme {
        let pattern = AccessPattern {
            min_sz_region: PAGE_SIZE,
            max_sz_region: u64::MAX,
            min_nr_accesses: 0,
            max_nr_accesses: 0,
            min_age_region: (self.min_age / self.aggr_interval.max(1)).min(u64::from(u32::MAX))
                as u32,
            max_age_region: u32::MAX,
        };
        let mut s = Scheme::new(pattern, Action::Pageout);
        let mut goals = Vec::new();
        if self.quota_mem_pressure_us != 0 {
            goals.push(QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: self.quota_mem_pressure_us,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            });
        }
        if self.quota_autotune_feedback != 0 {
            goals.push(QuotaGoal {
                metric: GoalMetric::UserInput,
                target_value: 10_000,
                current_value: self.quota_autotune_feedback,
                nid: 0,
                memcg_id: 0,
            });
        }
        s.quota = Quota {
            reset_interval: self.quota_reset_interval_ms,
            ms: self.quota_ms,
            sz: self.quota_sz,
            goals,
            weight_sz: 0,
            weight_nr_accesses: 0,
            weight_age: 1,
            ..Quota::default()
        };
        s.wmarks = Watermarks {
            metric: WmarkMetric::FreeMemRate,
            interval: self.wmarks_interval,
            high: self.wmarks_high,
            mid: self.wmarks_mid,
            low: self.wmarks_low,
        };
        if self.skip_anon {
            s.filters.push(Filter {
                kind: FilterKind::Anon,
                matching: true,
                allow: false,
            });
        }
        s
    }
}

/// DAMON_LRU_SORT's parameters (`/sys/module/damon_lru_sort/parameters/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LruSortParams {
    /// Hot threshold: access frequency per mille of the maximum.
    pub hot_thres_access_freq: u64,
    /// Cold threshold: idle time (µs).
    pub cold_min_age: u64,
    /// Time quota (ms), split between the two schemes.
    pub quota_ms: u64,
    /// Quota reset interval (ms).
    pub quota_reset_interval_ms: u64,
    /// Target share of active memory (bp); 0 = off.
    pub active_mem_bp: u64,
    /// Only act on pages whose young state fits (hot: young, cold: not young).
    pub filter_young_pages: bool,
    /// Auto-tune the monitoring intervals.
    pub autotune_monitoring_intervals: bool,
    /// Watermark check interval (µs).
    pub wmarks_interval: u64,
    /// High watermark (free memory per mille).
    pub wmarks_high: u64,
    /// Middle watermark.
    pub wmarks_mid: u64,
    /// Low watermark.
    pub wmarks_low: u64,
    /// Sampling interval (µs).
    pub sample_interval: u64,
    /// Aggregation interval (µs).
    pub aggr_interval: u64,
    /// Minimum number of regions.
    pub min_nr_regions: u32,
    /// Maximum number of regions.
    pub max_nr_regions: u32,
}

impl Default for LruSortParams {
    fn default() -> Self {
        Self {
            hot_thres_access_freq: 500,
            cold_min_age: 120_000_000,
            quota_ms: 10,
            quota_reset_interval_ms: 1000,
            active_mem_bp: 0,
            filter_young_pages: false,
            autotune_monitoring_intervals: false,
            wmarks_interval: 5_000_000,
            wmarks_high: 200,
            wmarks_mid: 150,
            wmarks_low: 50,
            sample_interval: 5_000,
            aggr_interval: 100_000,
            min_nr_regions: 10,
            max_nr_regions: 1000,
        }
    }
}

impl LruSortParams {
    /// Monitoring attributes. With `autotune_monitoring_intervals` the
    /// module starts from 5 ms / 100 ms whatever the intervals say, as the
    /// kernel's `damon_lru_sort_apply_parameters` does.
    pub fn attrs(&self) -> Attrs {
        let mut a = attrs(
            self.sample_interval,
            self.aggr_interval,
            self.min_nr_regions,
            self.max_nr_regions,
            self.autotune_monitoring_intervals,
        );
        if self.autotune_monitoring_intervals {
            a.sample_interval = 5_000;
            a.aggr_interval = 100_000;
        }
        a
    }

    fn common(&self, pattern: AccessPattern, action: Action) -> Scheme {
        let mut s = Scheme::new(pattern, action);
        s.quota = Quota {
            reset_interval: self.quota_reset_interval_ms,
            ms: self.quota_ms / 2,
            weight_sz: 0,
            weight_nr_accesses: 1,
            weight_age: 1,
            ..Quota::default()
        };
        s.wmarks = Watermarks {
            metric: WmarkMetric::FreeMemRate,
            interval: self.wmarks_interval,
            high: self.wmarks_high,
            mid: self.wmarks_mid,
            low: self.wmarks_low,
        };
        s
    }

    /// The hot scheme: `willneed` for regions accessed at least the hot
    /// threshold, any age.
    pub fn hot_scheme(&self) -> Scheme {
        let max_nr = self.attrs().max_nr_accesses();
        let min_nr = (u64::from(max_nr) * self.hot_thres_access_freq / 1000) as u32;
        let mut s = self.common(
            AccessPattern {
                min_sz_region: PAGE_SIZE,
                min_nr_accesses: min_nr,
                ..AccessPattern::default()
            },
            Action::Willneed,
        );
        if self.active_mem_bp != 0 {
            s.quota.goals.push(QuotaGoal {
                metric: GoalMetric::ActiveMemBp,
                target_value: self.active_mem_bp,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            });
        }
        if self.filter_young_pages {
            s.filters.push(Filter {
                kind: FilterKind::Young,
                matching: false,
                allow: false,
            });
        }
        s
    }

    /// The cold scheme: `cold` for idle regions at least `cold_min_age` old.
    pub fn cold_scheme(&self) -> Scheme {
        let min_age =
            (self.cold_min_age / self.aggr_interval.max(1)).min(u64::from(u32::MAX)) as u32;
        let mut s = self.common(
            AccessPattern {
                min_sz_region: PAGE_SIZE,
                max_nr_accesses: 0,
                min_age_region: min_age,
                ..AccessPattern::default()
            },
            Action::Cold,
        );
        if self.active_mem_bp != 0 {
            s.quota.goals.push(QuotaGoal {
                metric: GoalMetric::InactiveMemBp,
                target_value: 10_000u64.saturating_sub(self.active_mem_bp) + 2,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            });
        }
        if self.filter_young_pages {
            s.filters.push(Filter {
                kind: FilterKind::Young,
                matching: true,
                allow: false,
            });
        }
        s
    }

    /// Both schemes, hot first (the kernel's order).
    pub fn schemes(&self) -> Vec<Scheme> {
        vec![self.hot_scheme(), self.cold_scheme()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_defaults_match_the_kernel_module() {
        let p = ReclaimParams::default();
        let s = p.scheme();
        assert_eq!(s.action, Action::Pageout);
        assert_eq!(s.pattern.min_age_region, 1200, "120 s / 100 ms");
        assert_eq!(
            (s.pattern.min_nr_accesses, s.pattern.max_nr_accesses),
            (0, 0)
        );
        assert_eq!(s.pattern.min_sz_region, 4096);
        assert_eq!(
            (s.quota.ms, s.quota.sz, s.quota.reset_interval),
            (10, 128 << 20, 1000)
        );
        assert_eq!(
            (
                s.quota.weight_sz,
                s.quota.weight_nr_accesses,
                s.quota.weight_age
            ),
            (0, 0, 1)
        );
        assert_eq!(
            (s.wmarks.high, s.wmarks.mid, s.wmarks.low, s.wmarks.interval),
            (500, 400, 200, 5_000_000)
        );
        assert!(s.quota.goals.is_empty() && s.filters.is_empty());
        let p = ReclaimParams {
            quota_mem_pressure_us: 1000,
            quota_autotune_feedback: 5000,
            skip_anon: true,
            ..p
        };
        let s = p.scheme();
        assert_eq!(s.quota.goals.len(), 2);
        assert_eq!(
            s.filters,
            vec![Filter {
                kind: FilterKind::Anon,
                matching: true,
                allow: false
            }]
        );
        p.attrs().validate().unwrap();
    }

    #[test]
    fn lru_sort_defaults_match_the_kernel_module() {
        let p = LruSortParams::default();
        let [hot, cold]: [Scheme; 2] = p.schemes().try_into().unwrap();
        assert_eq!(hot.action, Action::Willneed);
        assert_eq!(
            hot.pattern.min_nr_accesses, 10,
            "500 per mille of 20 samples"
        );
        assert_eq!(cold.action, Action::Cold);
        assert_eq!(cold.pattern.min_age_region, 1200);
        assert_eq!(
            (hot.quota.ms, cold.quota.ms),
            (5, 5),
            "each scheme gets half"
        );
        assert_eq!((hot.quota.weight_nr_accesses, hot.quota.weight_age), (1, 1));
        assert_eq!(
            (hot.wmarks.high, hot.wmarks.mid, hot.wmarks.low),
            (200, 150, 50)
        );
        let p = LruSortParams {
            active_mem_bp: 7000,
            ..p
        };
        assert_eq!(p.cold_scheme().quota.goals[0].target_value, 3002);
        assert_eq!(
            p.hot_scheme().quota.goals[0].metric,
            GoalMetric::ActiveMemBp
        );
        p.attrs().validate().unwrap();
    }
}
