//! Watermarks: activate and deactivate a scheme with the free-memory rate
//! (`damos_wmark_wait_us`).

use crate::metrics::SystemMetrics;
use damon_core::damos::{Watermarks, WmarkMetric};

/// The shortest time (µs) a watermark metric read from `/proc` is reused.
pub const WMARK_MIN_REREAD_US: u64 = 1000;

/// Per-scheme watermark state (the kernel's `wmarks.activated`, initially true).
#[derive(Clone, Copy, Debug)]
pub struct WmarkState {
    /// Whether the scheme is active.
    pub activated: bool,
    /// Cached metric and when (µs) it was read; see [`wmark_wait_us`].
    cached: Option<(u64, u64)>,
}

impl Default for WmarkState {
    fn default() -> Self {
        Self {
            activated: true,
            cached: None,
        }
    }
}

/// The kernel's hysteresis, given the metric: returns the time to wait
/// (µs) before checking again, 0 when the scheme is active.
///
/// * metric above `high` or below `low`: deactivate, wait `interval`;
/// * inactive and `mid <= metric <= high`: stay inactive, wait `interval`;
/// * otherwise (`low <= metric < mid`, or active within the band): activate.
///
/// An `interval` of 0 waits 0: as in the kernel, monitoring goes on with
/// the scheme inactive, and the metric is checked again at the next step.
pub fn wmark_decide(w: &Watermarks, st: &mut WmarkState, metric: u64) -> u64 {
    if metric > w.high || metric < w.low {
        st.activated = false;
        return w.interval;
    }
    if (w.mid..=w.high).contains(&metric) && !st.activated {
        return w.interval;
    }
    st.activated = true;
    0
}

/// `damos_wmark_wait_us`. Deviation: the kernel reads its free-page counter
/// on every loop iteration; reading `/proc/meminfo` every sample would cost
/// a system call and a parse per sample, so the metric is re-read at most
/// once per watermark `interval` (the granularity users set for it).
/// With an `interval` of 0 the metric is re-read at most once per
/// [`WMARK_MIN_REREAD_US`] (the kernel reads a counter every iteration).
/// Deviation: a metric that cannot be read deactivates the scheme (and says
/// why); the kernel leaves the scheme as it was.
pub fn wmark_wait_us(
    w: &Watermarks,
    st: &mut WmarkState,
    metrics: &mut dyn SystemMetrics,
    now_us: u64,
) -> u64 {
    if w.metric == WmarkMetric::None {
        return 0;
    }
    let metric = match st.cached {
        Some((v, at)) if now_us.saturating_sub(at) < w.interval.max(WMARK_MIN_REREAD_US) => v,
        _ => match metrics.free_mem_rate() {
            Ok(v) => {
                st.cached = Some((v, now_us));
                v
            }
            Err(e) => {
                tracing::warn!(target: "damon::damos", error = %e, "watermark metric unreadable: scheme inactive");
                st.activated = false;
                return w.interval;
            }
        },
    };
    wmark_decide(w, st, metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_band() {
        let w = Watermarks {
            metric: WmarkMetric::FreeMemRate,
            interval: 1000,
            high: 500,
            mid: 400,
            low: 200,
        };
        let mut st = WmarkState::default();
        assert_eq!(wmark_decide(&w, &mut st, 900), 1000);
        assert!(!st.activated, "above high: off");
        assert_eq!(wmark_decide(&w, &mut st, 450), 1000);
        assert!(!st.activated, "inactive within [mid, high]: stays off");
        assert_eq!(wmark_decide(&w, &mut st, 300), 0);
        assert!(st.activated, "below mid: on");
        assert_eq!(wmark_decide(&w, &mut st, 450), 0);
        assert!(st.activated, "active within the band: stays on");
        assert_eq!(wmark_decide(&w, &mut st, 100), 1000);
        assert!(!st.activated, "below low: off");
        assert_eq!(wmark_decide(&w, &mut st, 200), 0);
        assert!(st.activated, "low is inclusive");
    }
}
