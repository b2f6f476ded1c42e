//! DAMOS data model (`struct damos` and friends in `include/linux/damon.h`).
//!
//! The core owns the data so that contexts, commits and the
//! [`crate::Operations`] trait can speak about schemes; the engine that
//! applies them (quotas, watermarks, filters, goal tuning) lives in the
//! `damon-schemes` crate and plugs into the loop through [`crate::DamosEngine`].

use crate::region::AddrRange;

/// Scores are in `[0, DAMOS_MAX_SCORE]`.
pub const DAMOS_MAX_SCORE: u32 = 99;

/// What a scheme does to matching regions (`enum damos_action`, kernel order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Action {
    /// `MADV_WILLNEED`.
    Willneed,
    /// `MADV_COLD`.
    Cold,
    /// `MADV_PAGEOUT` (vaddr) or reclaim (paddr).
    Pageout,
    /// `MADV_HUGEPAGE`.
    Hugepage,
    /// `MADV_NOHUGEPAGE`.
    Nohugepage,
    /// Mark accessed on the LRU (paddr).
    LruPrio,
    /// Deactivate on the LRU (paddr).
    LruDeprio,
    /// Migrate hot memory to `target_nid`.
    MigrateHot,
    /// Migrate cold memory to `target_nid`.
    MigrateCold,
    /// Only count (statistics); never resets the region's age.
    Stat,
    /// `MADV_COLLAPSE`.
    Collapse,
}

impl Action {
    /// Every action, in the kernel's order.
    pub const ALL: [Action; 11] = [
        Action::Willneed,
        Action::Cold,
        Action::Pageout,
        Action::Hugepage,
        Action::Nohugepage,
        Action::LruPrio,
        Action::LruDeprio,
        Action::MigrateHot,
        Action::MigrateCold,
        Action::Stat,
        Action::Collapse,
    ];

    /// The sysfs keyword (`pageout`, `lru_prio`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Action::Willneed => "willneed",
            Action::Cold => "cold",
            Action::Pageout => "pageout",
            Action::Hugepage => "hugepage",
            Action::Nohugepage => "nohugepage",
            Action::LruPrio => "lru_prio",
            Action::LruDeprio => "lru_deprio",
            Action::MigrateHot => "migrate_hot",
            Action::MigrateCold => "migrate_cold",
            Action::Stat => "stat",
            Action::Collapse => "collapse",
        }
    }

    /// Parses a sysfs keyword.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Which regions a scheme applies to; every range is closed (`min..=max`).
/// `nr_accesses` is compared with the moving sum of the region's accesses
/// over one aggregation interval (`damon_nr_accesses_mvsum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AccessPattern {
    /// Minimum region size (bytes).
    pub min_sz_region: u64,
    /// Maximum region size (bytes).
    pub max_sz_region: u64,
    /// Minimum accesses per aggregation.
    pub min_nr_accesses: u32,
    /// Maximum accesses per aggregation.
    pub max_nr_accesses: u32,
    /// Minimum age (aggregation intervals).
    pub min_age_region: u32,
    /// Maximum age (aggregation intervals).
    pub max_age_region: u32,
}

impl Default for AccessPattern {
    /// Matches every region.
    fn default() -> Self {
        Self {
            min_sz_region: 0,
            max_sz_region: u64::MAX,
            min_nr_accesses: 0,
            max_nr_accesses: u32::MAX,
            min_age_region: 0,
            max_age_region: u32::MAX,
        }
    }
}

/// How the effective quota is tuned from goals (`enum damos_quota_goal_tuner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum GoalTuner {
    /// Proportional feedback loop (the default).
    #[default]
    Consist,
    /// All or nothing until the goal is reached.
    Temporal,
}

/// What a quota goal measures (`enum damos_quota_goal_metric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum GoalMetric {
    /// A value the user feeds in.
    UserInput,
    /// Memory "some" PSI, µs of stall since the last check.
    SomeMemPsiUs,
    /// Used memory of node `nid`, basis points.
    NodeMemUsedBp,
    /// Free memory of node `nid`, basis points.
    NodeMemFreeBp,
    /// LRU memory of cgroup `memcg_id` on node `nid`, basis points of the
    /// node's memory (6.19).
    NodeMemcgUsedBp,
    /// The node's memory not on the LRU lists of cgroup `memcg_id`, basis
    /// points (6.19).
    NodeMemcgFreeBp,
    /// Active LRU share, basis points.
    ActiveMemBp,
    /// Inactive LRU share, basis points.
    InactiveMemBp,
    /// Share of the memory the scheme is eligible for (its access pattern
    /// matches) that lies on node `nid`, basis points; paddr only (7.2).
    NodeEligibleMemBp,
    /// Transparent huge pages per used memory, basis points (the mm tree).
    HugepageMemBp,
}

impl GoalMetric {
    /// Every metric, in the kernel's order.
    pub const ALL: [GoalMetric; 10] = [
        GoalMetric::UserInput,
        GoalMetric::SomeMemPsiUs,
        GoalMetric::NodeMemUsedBp,
        GoalMetric::NodeMemFreeBp,
        GoalMetric::NodeMemcgUsedBp,
        GoalMetric::NodeMemcgFreeBp,
        GoalMetric::ActiveMemBp,
        GoalMetric::InactiveMemBp,
        GoalMetric::NodeEligibleMemBp,
        GoalMetric::HugepageMemBp,
    ];

    /// The kernel's keyword (sysfs `target_metric`, damo's `metric`).
    pub const fn name(self) -> &'static str {
        match self {
            GoalMetric::UserInput => "user_input",
            GoalMetric::SomeMemPsiUs => "some_mem_psi_us",
            GoalMetric::NodeMemUsedBp => "node_mem_used_bp",
            GoalMetric::NodeMemFreeBp => "node_mem_free_bp",
            GoalMetric::NodeMemcgUsedBp => "node_memcg_used_bp",
            GoalMetric::NodeMemcgFreeBp => "node_memcg_free_bp",
            GoalMetric::ActiveMemBp => "active_mem_bp",
            GoalMetric::InactiveMemBp => "inactive_mem_bp",
            GoalMetric::NodeEligibleMemBp => "node_eligible_mem_bp",
            GoalMetric::HugepageMemBp => "hugepage_mem_bp",
        }
    }

    /// The metric of a kernel keyword.
    ///
    /// ```
    /// use damon_core::damos::GoalMetric;
    /// assert_eq!(GoalMetric::from_name("node_mem_free_bp"), Some(GoalMetric::NodeMemFreeBp));
    /// assert_eq!(GoalMetric::from_name("bogus"), None);
    /// ```
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether the metric reads `nid` (the kernel's goal union holds a node).
    pub const fn uses_nid(self) -> bool {
        matches!(
            self,
            GoalMetric::NodeMemUsedBp
                | GoalMetric::NodeMemFreeBp
                | GoalMetric::NodeMemcgUsedBp
                | GoalMetric::NodeMemcgFreeBp
                | GoalMetric::NodeEligibleMemBp
        )
    }

    /// Whether the metric reads `memcg_id`.
    pub const fn uses_memcg(self) -> bool {
        matches!(
            self,
            GoalMetric::NodeMemcgUsedBp | GoalMetric::NodeMemcgFreeBp
        )
    }
}

/// One quota goal (`struct damos_quota_goal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QuotaGoal {
    /// The metric.
    pub metric: GoalMetric,
    /// The value to reach.
    pub target_value: u64,
    /// The last measured (or user-given) value.
    pub current_value: u64,
    /// NUMA node for the node metrics.
    pub nid: i32,
    /// Memory cgroup for the memcg metrics: the cgroup's id, which is the
    /// inode number of its directory (what `/proc/kpagecgroup` reports and
    /// the kernel's sysfs resolves `path` to).
    #[cfg_attr(feature = "serde", serde(default))]
    pub memcg_id: u64,
}

/// Quotas and prioritization weights (`struct damos_quota`, user fields).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quota {
    /// Charge window (ms).
    pub reset_interval: u64,
    /// Time quota per window (ms); 0 = none.
    pub ms: u64,
    /// Size quota per window (bytes); 0 = none.
    pub sz: u64,
    /// Goals for auto-tuning the effective quota.
    pub goals: Vec<QuotaGoal>,
    /// Tuner for the goals.
    pub goal_tuner: GoalTuner,
    /// Weight of size in prioritization (accepted, unused, as in the kernel).
    pub weight_sz: u32,
    /// Weight of access frequency in prioritization.
    pub weight_nr_accesses: u32,
    /// Weight of age in prioritization.
    pub weight_age: u32,
    /// Fail-charge ratio numerator (v7.2): the bytes of a region the action
    /// did not apply to are charged at `fail_charge_num / fail_charge_denom`.
    pub fail_charge_num: u64,
    /// Fail-charge ratio denominator; 0 (the default) charges whole regions.
    pub fail_charge_denom: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            reset_interval: 0,
            ms: 0,
            sz: 0,
            goals: Vec::new(),
            goal_tuner: GoalTuner::Consist,
            weight_sz: 0,
            weight_nr_accesses: 0,
            weight_age: 0,
            fail_charge_num: 0,
            fail_charge_denom: 0,
        }
    }
}

impl Quota {
    /// True when any limit or goal is set (the kernel's `damos_quota_is_set`).
    pub fn is_set(&self) -> bool {
        self.ms != 0 || self.sz != 0 || !self.goals.is_empty()
    }

    /// `damos_charge_quota()` (v7.2): the bytes a try of `sz_region` bytes
    /// that applied `sz_applied` costs. Without a fail-charge ratio, or when
    /// the action reports more than the region, the whole region; else the
    /// applied bytes plus the rest at `fail_charge_num / fail_charge_denom`.
    ///
    /// ```
    /// let mut q = damon_core::damos::Quota::default();
    /// assert_eq!(q.charge_for(4096 * 10, 4096), 4096 * 10);
    /// (q.fail_charge_num, q.fail_charge_denom) = (1, 4);
    /// assert_eq!(q.charge_for(4096 * 10, 4096 * 2), 4096 * 2 + 4096 * 2);
    /// ```
    pub fn charge_for(&self, sz_region: u64, sz_applied: u64) -> u64 {
        if self.fail_charge_denom == 0 || sz_applied > sz_region {
            return sz_region;
        }
        let failed = u128::from(sz_region - sz_applied) * u128::from(self.fail_charge_num)
            / u128::from(self.fail_charge_denom);
        sz_applied.saturating_add(failed.min(u128::from(u64::MAX)) as u64)
    }

    /// `damos_quota_is_full()` (the mm tree): the window's `charged` bytes
    /// reached `esz`, or what is left is below `min_region_sz`, which no
    /// region can fit (actions apply per region).
    pub fn is_full(&self, esz: u64, charged: u64, min_region_sz: u64) -> bool {
        self.is_set() && (charged >= esz || esz - charged < min_region_sz)
    }
}

/// Watermark metric (`enum damos_wmark_metric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum WmarkMetric {
    /// Always active.
    #[default]
    None,
    /// Free memory rate, per mille.
    FreeMemRate,
}

/// Watermarks (`struct damos_watermarks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Watermarks {
    /// The metric.
    pub metric: WmarkMetric,
    /// Check interval (µs).
    pub interval: u64,
    /// Deactivate above this.
    pub high: u64,
    /// Activate below this.
    pub mid: u64,
    /// Deactivate below this.
    pub low: u64,
}

/// Filter type (`enum damos_filter_type`) with its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum FilterKind {
    /// Anonymous pages.
    Anon,
    /// Pages on the active LRU.
    Active,
    /// Pages of a memory cgroup.
    Memcg {
        /// cgroup id.
        memcg_id: u64,
    },
    /// Pages accessed since the last check.
    Young,
    /// Folios whose size is in `[min, max]`.
    HugepageSize {
        /// Minimum folio size.
        min: u64,
        /// Maximum folio size.
        max: u64,
    },
    /// Unmapped pages.
    Unmapped,
    /// An address range (core filter).
    Addr(AddrRange),
    /// A target, by index (core filter).
    Target {
        /// Index of the target in the context.
        target_idx: usize,
    },
}

impl FilterKind {
    /// True for the filters the core decides (`addr`, `target`).
    pub fn is_core(&self) -> bool {
        matches!(self, FilterKind::Addr(_) | FilterKind::Target { .. })
    }

    /// The sysfs keyword of the type.
    pub fn name(&self) -> &'static str {
        match self {
            FilterKind::Anon => "anon",
            FilterKind::Active => "active",
            FilterKind::Memcg { .. } => "memcg",
            FilterKind::Young => "young",
            FilterKind::HugepageSize { .. } => "hugepage_size",
            FilterKind::Unmapped => "unmapped",
            FilterKind::Addr(_) => "addr",
            FilterKind::Target { .. } => "target",
        }
    }
}

/// What a backend knows about one page (folio), for page-level filters.
/// `None` = unknown; a filter that needs an unknown property does not match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// Anonymous (not file-backed).
    pub anon: Option<bool>,
    /// On the active LRU.
    pub active: Option<bool>,
    /// Memory cgroup id.
    pub memcg_id: Option<u64>,
    /// Accessed since the last check.
    pub young: Option<bool>,
    /// Folio size in bytes.
    pub folio_size: Option<u64>,
    /// Not mapped by any page table.
    pub unmapped: Option<bool>,
}

fn ops_filter_matches(kind: &FilterKind, p: &PageInfo) -> bool {
    match *kind {
        FilterKind::Anon => p.anon == Some(true),
        FilterKind::Active => p.active == Some(true),
        FilterKind::Memcg { memcg_id } => p.memcg_id == Some(memcg_id),
        FilterKind::Young => p.young == Some(true),
        FilterKind::HugepageSize { min, max } => p.folio_size.is_some_and(|s| min <= s && s <= max),
        FilterKind::Unmapped => p.unmapped == Some(true),
        FilterKind::Addr(_) | FilterKind::Target { .. } => false,
    }
}

/// `damos_filters_default_reject()` for the page-level filters: memory no
/// filter decided is rejected when the last one is an allow-filter.
pub fn ops_filters_default_reject(s: &Scheme) -> bool {
    s.filters
        .iter()
        .rev()
        .find(|f| !f.kind.is_core())
        .is_some_and(|f| f.allow)
}

/// Whether a page passes the scheme's page-level filters, in install order:
/// the first filter whose match equals its `matching` decides (`allow`);
/// otherwise the default-reject rule.
pub fn ops_filters_pass(s: &Scheme, page: &PageInfo) -> bool {
    ops_filters_pass_lazy(s, page, &mut || page.young)
}

/// [`ops_filters_pass`] with the young state computed by `young` only when
/// the evaluation reaches a young filter (reading it resets it, as the
/// kernel's `damon_folio_mkold()` after a young match does), at most once.
pub fn ops_filters_pass_lazy(
    s: &Scheme,
    page: &PageInfo,
    young: &mut dyn FnMut() -> Option<bool>,
) -> bool {
    let mut young_state: Option<Option<bool>> = None;
    for f in s.filters.iter().filter(|f| !f.kind.is_core()) {
        let matched = if f.kind == FilterKind::Young {
            *young_state.get_or_insert_with(&mut *young) == Some(true)
        } else {
            ops_filter_matches(&f.kind, page)
        };
        if matched == f.matching {
            return f.allow;
        }
    }
    !ops_filters_default_reject(s)
}

/// A DAMOS filter (`struct damos_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Filter {
    /// Type and argument.
    pub kind: FilterKind,
    /// Whether the filter decides memory that matches (true) or does not (false).
    pub matching: bool,
    /// Allow (true) or reject (false) the memory it decides.
    pub allow: bool,
}

/// Per-scheme statistics (`struct damos_stat`); kept across commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stat {
    /// Regions the action was tried on.
    pub nr_tried: u64,
    /// Bytes the action was tried on.
    pub sz_tried: u64,
    /// Regions the action was applied to.
    pub nr_applied: u64,
    /// Bytes the action was applied to.
    pub sz_applied: u64,
    /// Bytes that passed the backend's filters.
    pub sz_ops_filter_passed: u64,
    /// Windows in which the quota was exceeded.
    pub qt_exceeds: u64,
    /// Completed per-target region walks.
    pub nr_snapshots: u64,
}

/// A DAMON-based operation scheme (`struct damos`, user fields).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Scheme {
    /// Which regions.
    pub pattern: AccessPattern,
    /// What to do.
    pub action: Action,
    /// How often (µs); 0 = every aggregation interval.
    pub apply_interval_us: u64,
    /// Limits and prioritization.
    pub quota: Quota,
    /// When the scheme is active.
    pub wmarks: Watermarks,
    /// Destination node for migrations (-1 = none).
    pub target_nid: i32,
    /// Filters, in install order (core filters are evaluated first).
    pub filters: Vec<Filter>,
    /// Deactivate after this many snapshots; 0 = never.
    pub max_nr_snapshots: u64,
    /// Statistics (output).
    pub stat: Stat,
}

impl Scheme {
    /// A scheme applying `action` to regions matching `pattern`, with no
    /// quota, no watermarks and no filters.
    ///
    /// ```
    /// use damon_core::damos::{AccessPattern, Action, Scheme};
    /// let s = Scheme::new(AccessPattern { max_nr_accesses: 0, ..Default::default() }, Action::Stat);
    /// assert_eq!(s.stat.nr_tried, 0);
    /// ```
    pub fn new(pattern: AccessPattern, action: Action) -> Self {
        Self {
            pattern,
            action,
            apply_interval_us: 0,
            quota: Quota::default(),
            wmarks: Watermarks::default(),
            target_nid: -1,
            filters: Vec::new(),
            max_nr_snapshots: 0,
            stat: Stat::default(),
        }
    }

    /// `damos_commit()`: takes every parameter of `src` and keeps this
    /// scheme's statistics. Quota goals are committed by position with
    /// `damos_commit_quota_goal`'s rule: metric and target always,
    /// `current_value` only for `user_input` (measured metrics keep theirs),
    /// `nid` for the node metrics.
    pub fn commit_from(&mut self, src: &Scheme) {
        let stat = self.stat;
        let mut goals = std::mem::take(&mut self.quota.goals);
        goals.truncate(src.quota.goals.len());
        for (d, s) in goals.iter_mut().zip(src.quota.goals.iter()) {
            commit_quota_goal(d, s);
        }
        let n = goals.len();
        goals.extend_from_slice(&src.quota.goals[n..]);
        *self = src.clone();
        self.quota.goals = goals;
        self.stat = stat;
    }
}

/// `damos_commit_quota_goal()`.
pub fn commit_quota_goal(dst: &mut QuotaGoal, src: &QuotaGoal) {
    dst.metric = src.metric;
    dst.target_value = src.target_value;
    if dst.metric == GoalMetric::UserInput {
        dst.current_value = src.current_value;
    }
    if dst.metric.uses_nid() {
        dst.nid = src.nid;
    }
    if dst.metric.uses_memcg() {
        dst.memcg_id = src.memcg_id;
    }
}
