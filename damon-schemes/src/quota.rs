//! Quotas: charge windows, the effective size quota (`esz`) from time and
//! size limits and goal-based tuning, and prioritization by score.

use crate::metrics::SystemMetrics;
use damon_core::damos::{GoalMetric, GoalTuner, Quota, DAMOS_MAX_SCORE};
use damon_core::tune::feed_loop_next_input;
use damon_core::OpsError;

/// Default throughput (bytes per ms) before anything was measured:
/// `PAGE_SIZE * 1024`, as the kernel assumes.
pub const DEFAULT_THROUGHPUT: u64 = 4096 * 1024;

/// Private quota state of one scheme (the kernel's `damos_quota` private fields).
#[derive(Clone, Debug, Default)]
pub struct QuotaState {
    /// Effective size quota of the current window (bytes).
    pub esz: u64,
    /// Feedback-loop state of goal tuning (basis points of bytes).
    pub esz_bp: u64,
    /// Bytes charged in finished windows.
    pub total_charged_sz: u64,
    /// Time spent applying in finished and current windows (ns).
    pub total_charged_ns: u64,
    /// Bytes charged in the current window.
    pub charged_sz: u64,
    /// Start of the current window (ms of the injected clock).
    pub charged_from_ms: Option<u64>,
    /// Target index where the last window stopped (resume point).
    pub charge_target_from: Option<usize>,
    /// Address where the last window stopped.
    pub charge_addr_from: u64,
    /// Regions scoring below this are not acted on in this window.
    pub min_score: u32,
    /// Last PSI total seen, per goal position (`None` before the first read).
    pub last_psi_total: Vec<Option<u64>>,
    /// The warning that PSI cannot be read was emitted.
    pub psi_unreadable_warned: bool,
}

/// Refreshes every goal's `current_value` from the metrics (user_input is
/// left as given) and returns the quota score: the highest
/// `current * 10000 / target` (the most-achieved goal wins).
pub fn quota_score(
    q: &mut Quota,
    st: &mut QuotaState,
    metrics: &mut dyn SystemMetrics,
) -> Result<u64, OpsError> {
    st.last_psi_total.resize(q.goals.len(), None);
    let mut best = 0u64;
    for (i, g) in q.goals.iter_mut().enumerate() {
        g.current_value = match g.metric {
            GoalMetric::UserInput => g.current_value,
            GoalMetric::SomeMemPsiUs => psi_current(g.target_value, i, st, metrics)?,
            GoalMetric::NodeMemUsedBp | GoalMetric::NodeMemFreeBp => {
                node_mem_bp(g.metric, g.nid, metrics)
            }
            GoalMetric::NodeMemcgUsedBp | GoalMetric::NodeMemcgFreeBp => {
                node_memcg_bp(g.metric, g.nid, g.memcg_id, metrics)?
            }
            GoalMetric::ActiveMemBp | GoalMetric::InactiveMemBp => {
                let (active, inactive) = metrics.lru()?;
                let v = if g.metric == GoalMetric::ActiveMemBp {
                    active
                } else {
                    inactive
                };
                (u128::from(v) * 10_000 / u128::from((active + inactive).max(1))) as u64
            }
            // measured by the engine from the backend before the window rolls
            GoalMetric::NodeEligibleMemBp => g.current_value,
            GoalMetric::HugepageMemBp => {
                let (thp, used) = metrics.hugepage_mem()?;
                if used == 0 {
                    10_000
                } else {
                    (u128::from(thp.min(used)) * 10_000 / u128::from(used)) as u64
                }
            }
            other => {
                return Err(OpsError::Unsupported {
                    what: format!("quota goal metric {other:?}"),
                    hint: "not measurable from user space".into(),
                })
            }
        };
        let score = (u128::from(g.current_value) * 10_000 / u128::from(g.target_value.max(1)))
            .min(u128::from(u64::MAX)) as u64;
        best = best.max(score);
    }
    Ok(best)
}

/// The `some_mem_psi_us` goal of position `i`: the stall since the last
/// read. An unreadable PSI reads as 0 stall (the kernel's psi_disabled),
/// so the tuner grows the quota instead of leaving it at 0, with one
/// warning event; the first round counts as meeting the goal (v7.2).
fn psi_current(
    target_value: u64,
    i: usize,
    st: &mut QuotaState,
    metrics: &mut dyn SystemMetrics,
) -> Result<u64, OpsError> {
    let total = match metrics.some_mem_psi_total_us() {
        Ok(total) => total,
        Err(OpsError::Unsupported { what, hint }) => {
            if !std::mem::replace(&mut st.psi_unreadable_warned, true) {
                tracing::warn!(
                    target: "damon::damos",
                    what = %what,
                    "memory PSI cannot be read ({hint}); the some_mem_psi_us goal reads 0, as the kernel's does"
                );
            }
            0
        }
        Err(e) => return Err(e),
    };
    Ok(match st.last_psi_total[i].replace(total) {
        Some(last) => total.saturating_sub(last),
        None => target_value,
    })
}

/// `damos_get_node_mem_bp`: used or free memory of node `nid` in basis
/// points; a node that cannot be read reads 0 used / 10000 free, as the
/// kernel reports an invalid node.
fn node_mem_bp(metric: GoalMetric, nid: i32, metrics: &mut dyn SystemMetrics) -> u64 {
    let used_metric = metric == GoalMetric::NodeMemUsedBp;
    match metrics.node_mem(nid) {
        Ok((total, free)) if total > 0 => {
            let free = free.min(total);
            let v = if used_metric { total - free } else { free };
            (u128::from(v) * 10_000 / u128::from(total)) as u64
        }
        _ if used_metric => 0,
        _ => 10_000,
    }
}

/// `damos_get_node_memcg_used_bp` (the mm tree): LRU memory of cgroup
/// `memcg_id` on node `nid` over the node's memory, in basis points. A node
/// or cgroup that does not exist reads 0 used / 10000 free; a node whose
/// size is unknown or below the cgroup's use reads 10000 used / 0 free.
fn node_memcg_bp(
    metric: GoalMetric,
    nid: i32,
    memcg_id: u64,
    metrics: &mut dyn SystemMetrics,
) -> Result<u64, OpsError> {
    let used_metric = metric == GoalMetric::NodeMemcgUsedBp;
    let absent = if used_metric { 0 } else { 10_000 };
    if nid < 0 || !metrics.node_exists(nid) {
        return Ok(absent);
    }
    let Some(used) = metrics.node_memcg_lru(memcg_id, nid)? else {
        return Ok(absent);
    };
    let total = metrics.node_mem(nid).map_or(0, |(total, _)| total);
    if total == 0 || total < used {
        return Ok(10_000 - absent);
    }
    let v = if used_metric { used } else { total - used };
    Ok((u128::from(v) * 10_000 / u128::from(total)) as u64)
}

/// Whether the charge window rolls at `now_ms` (so goals are measured now).
pub fn window_due(q: &Quota, st: &QuotaState, now_ms: u64) -> bool {
    st.charged_from_ms
        .is_none_or(|from| now_ms >= from.saturating_add(q.reset_interval))
}

/// `damos_set_effective_quota`: the window's `esz` from goals (tuned), the
/// time quota (measured throughput × ms) and the size quota.
pub fn set_effective_quota(
    q: &mut Quota,
    st: &mut QuotaState,
    min_region_sz: u64,
    metrics: &mut dyn SystemMetrics,
) -> Result<(), OpsError> {
    if q.ms == 0 && q.goals.is_empty() {
        st.esz = q.sz;
        return Ok(());
    }
    let mut esz = u64::MAX;
    if !q.goals.is_empty() {
        let score = quota_score(q, st, metrics)?;
        st.esz_bp = match q.goal_tuner {
            GoalTuner::Consist => feed_loop_next_input(st.esz_bp.max(10_000), score),
            GoalTuner::Temporal => {
                if score >= 10_000 {
                    0
                } else if q.sz != 0 {
                    q.sz.saturating_mul(10_000)
                } else {
                    u64::MAX
                }
            }
        };
        esz = st.esz_bp / 10_000;
    }
    if q.ms != 0 {
        let throughput = if st.total_charged_ns != 0 {
            (u128::from(st.total_charged_sz) * 1_000_000 / u128::from(st.total_charged_ns))
                .min(u128::from(u64::MAX)) as u64
        } else {
            DEFAULT_THROUGHPUT
        };
        esz = esz.min(throughput.saturating_mul(q.ms).max(min_region_sz));
    }
    if q.sz != 0 && q.sz < esz {
        esz = q.sz;
    }
    st.esz = esz;
    Ok(())
}

/// Starts or rolls the charge window at `now_ms` (`damos_adjust_quota`,
/// first part). Returns true when `esz` was recomputed.
pub fn roll_window(
    q: &mut Quota,
    st: &mut QuotaState,
    stat_qt_exceeds: &mut u64,
    now_ms: u64,
    min_region_sz: u64,
    metrics: &mut dyn SystemMetrics,
) -> Result<bool, OpsError> {
    match st.charged_from_ms {
        None => {
            st.charged_from_ms = Some(now_ms);
            set_effective_quota(q, st, min_region_sz, metrics)?;
            Ok(true)
        }
        Some(from) if now_ms >= from.saturating_add(q.reset_interval) => {
            if q.is_full(st.esz, st.charged_sz, min_region_sz) {
                *stat_qt_exceeds += 1;
            }
            st.total_charged_sz = st.total_charged_sz.saturating_add(st.charged_sz);
            st.charged_from_ms = Some(now_ms);
            st.charged_sz = 0;
            set_effective_quota(q, st, min_region_sz, metrics)?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// The highest score `s` such that the bytes scoring `>= s` reach `esz`
/// (0 if they never do), from a histogram of bytes per score.
pub fn min_score(histogram: &[u64; DAMOS_MAX_SCORE as usize + 1], esz: u64) -> u32 {
    let mut cumulated = 0u64;
    let mut score = DAMOS_MAX_SCORE;
    loop {
        cumulated = cumulated.saturating_add(histogram[score as usize]);
        if cumulated >= esz || score == 0 {
            return score;
        }
        score -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SimMetrics;
    use damon_core::damos::QuotaGoal;

    #[test]
    fn size_quota_only() {
        let mut q = Quota {
            sz: 1 << 20,
            reset_interval: 1000,
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        set_effective_quota(&mut q, &mut st, 4096, &mut SimMetrics::new()).unwrap();
        assert_eq!(st.esz, 1 << 20);
    }

    #[test]
    fn time_quota_uses_measured_throughput() {
        let mut q = Quota {
            ms: 10,
            reset_interval: 1000,
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        set_effective_quota(&mut q, &mut st, 4096, &mut SimMetrics::new()).unwrap();
        assert_eq!(
            st.esz,
            DEFAULT_THROUGHPUT * 10,
            "default throughput before any measurement"
        );
        st.total_charged_sz = 100 << 20; // 100 MiB in 50 ms = 2 MiB/ms
        st.total_charged_ns = 50_000_000;
        set_effective_quota(&mut q, &mut st, 4096, &mut SimMetrics::new()).unwrap();
        assert_eq!(st.esz, (2 << 20) * 10);
        q.sz = 1 << 20;
        set_effective_quota(&mut q, &mut st, 4096, &mut SimMetrics::new()).unwrap();
        assert_eq!(st.esz, 1 << 20, "the smaller of time and size quota");
    }

    #[test]
    fn goal_tuning_consist_and_temporal() {
        let goal = QuotaGoal {
            metric: GoalMetric::UserInput,
            target_value: 10_000,
            current_value: 2_000,
            nid: 0,
            memcg_id: 0,
        };
        let mut q = Quota {
            goals: vec![goal],
            reset_interval: 1000,
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        let mut m = SimMetrics::new();
        set_effective_quota(&mut q, &mut st, 4096, &mut m).unwrap();
        let first = st.esz_bp;
        assert!(first > 10_000, "under-achieving grows the quota");
        set_effective_quota(&mut q, &mut st, 4096, &mut m).unwrap();
        assert!(st.esz_bp > first);
        q.goals[0].current_value = 30_000; // 3x over the goal
        set_effective_quota(&mut q, &mut st, 4096, &mut m).unwrap();
        assert_eq!(
            st.esz_bp, 10_000,
            "far over the goal: back to the minimum input"
        );
        q.goal_tuner = GoalTuner::Temporal;
        set_effective_quota(&mut q, &mut st, 4096, &mut m).unwrap();
        assert_eq!(st.esz, 0, "temporal: goal reached, stop acting");
        q.goals[0].current_value = 1;
        set_effective_quota(&mut q, &mut st, 4096, &mut m).unwrap();
        assert_eq!(
            st.esz,
            u64::MAX / 10_000,
            "temporal: below the goal, unlimited"
        );
    }

    #[test]
    fn psi_goal_uses_the_delta_since_last_check() {
        let m = SimMetrics::new();
        let goal = QuotaGoal {
            metric: GoalMetric::SomeMemPsiUs,
            target_value: 1000,
            current_value: 0,
            nid: 0,
            memcg_id: 0,
        };
        let mut q = Quota {
            goals: vec![goal],
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        m.set(|v| v.psi_total_us = 5000);
        let mut mm = m.clone();
        quota_score(&mut q, &mut st, &mut mm).unwrap();
        m.set(|v| v.psi_total_us = 5500);
        let score = quota_score(&mut q, &mut st, &mut mm).unwrap();
        assert_eq!(q.goals[0].current_value, 500);
        assert_eq!(score, 5000);
    }

    #[test]
    fn the_first_psi_round_meets_the_goal_instead_of_reporting_the_stall_since_boot() {
        let m = SimMetrics::new();
        m.set(|v| v.psi_total_us = 9_000_000);
        let mut q = Quota {
            goals: vec![QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: 1000,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            }],
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        let score = quota_score(&mut q, &mut st, &mut m.clone()).unwrap();
        assert_eq!(q.goals[0].current_value, 1000);
        assert_eq!(score, 10_000);
    }

    #[test]
    fn unreadable_psi_reads_as_no_stall_so_the_quota_grows() {
        let m = SimMetrics::new();
        m.set(|v| v.psi_missing = true);
        let mut q = Quota {
            goals: vec![QuotaGoal {
                metric: GoalMetric::SomeMemPsiUs,
                target_value: 1000,
                current_value: 0,
                nid: 0,
                memcg_id: 0,
            }],
            reset_interval: 1000,
            ..Quota::default()
        };
        let mut st = QuotaState::default();
        let mut mm = m.clone();
        set_effective_quota(&mut q, &mut st, 4096, &mut mm).expect("PSI missing is not an error");
        let first = st.esz;
        set_effective_quota(&mut q, &mut st, 4096, &mut mm).unwrap();
        assert_eq!(q.goals[0].current_value, 0, "a disabled PSI reads as 0");
        assert!(
            st.esz > first && first > 0,
            "the tuner grows the quota: {first} -> {}",
            st.esz
        );
        assert!(st.psi_unreadable_warned);
    }

    #[test]
    fn min_score_is_the_highest_reaching_esz() {
        let mut h = [0u64; 100];
        h[99] = 10;
        h[50] = 100;
        h[10] = 1000;
        assert_eq!(min_score(&h, 5), 99);
        assert_eq!(min_score(&h, 110), 50);
        assert_eq!(min_score(&h, 111), 10);
        assert_eq!(min_score(&h, 1_000_000), 0);
    }
}
