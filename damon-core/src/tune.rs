//! Feedback loop and monitoring-intervals auto-tuning (kernel `core.c`).

use crate::attrs::Attrs;
use crate::target::Target;

/// `damon_feed_loop_next_input()`: the next input of a feedback loop whose
/// goal is a score of 10 000, given the last input and the measured score.
/// Inputs never go below 10 000.
pub fn feed_loop_next_input(last_input: u64, score: u64) -> u64 {
    const GOAL: u64 = 10_000;
    const MIN_INPUT: u64 = 10_000;
    if score == GOAL {
        return last_input;
    }
    if score >= GOAL * 2 {
        return MIN_INPUT;
    }
    let over_achieving = score > GOAL;
    let diff = score.abs_diff(GOAL);
    let compensation = if last_input < u64::MAX / diff {
        last_input * diff / GOAL
    } else {
        last_input / GOAL * diff
    };
    if over_achieving {
        return last_input.saturating_sub(compensation).max(MIN_INPUT);
    }
    last_input.saturating_add(compensation)
}

/// `damon_get_intervals_score()`: observed access events relative to the
/// goal's target share of observable events, in basis points.
/// Uses 128-bit intermediates where the kernel's `unsigned long` could overflow.
/// `aggr_samples` is the samples-per-aggregation count the loop keeps across tuning.
pub fn intervals_score(targets: &[Target], attrs: &Attrs, aggr_samples: u64) -> u64 {
    let aggr_samples = u128::from(aggr_samples);
    let mut max_events: u128 = 0;
    let mut events: u128 = 0;
    for t in targets {
        for r in &t.regions {
            let sz = u128::from(r.size());
            max_events += sz * aggr_samples;
            events += sz * u128::from(r.nr_accesses);
        }
    }
    let target = (max_events * u128::from(attrs.intervals_goal.access_bp) / 10_000).max(1);
    (events * 10_000 / target).min(u128::from(u64::MAX)) as u64
}

/// `damon_get_intervals_adaptation_bp()`: 1..=20 000, with shrinking limited
/// to halving (the [1, 10 000] part is rescaled to [5 000, 10 000]).
pub fn intervals_adaptation_bp(score_bp: u64) -> u64 {
    let adaptation = feed_loop_next_input(100_000_000, score_bp) / 10_000;
    if adaptation <= 10_000 {
        5_000 + adaptation / 2
    } else {
        adaptation
    }
}

/// The new attributes `kdamond_tune_intervals()` would install, or `None`
/// when the adaptation is exactly 1.0 (nothing changes).
pub fn tuned_attrs(targets: &[Target], attrs: &Attrs, aggr_samples: u64) -> Option<Attrs> {
    let adaptation = intervals_adaptation_bp(intervals_score(targets, attrs, aggr_samples));
    if adaptation == 10_000 {
        return None;
    }
    let goal = attrs.intervals_goal;
    let mut new = *attrs;
    let sample = (u128::from(attrs.sample_interval) * u128::from(adaptation) / 10_000)
        .min(u128::from(u64::MAX)) as u64;
    new.sample_interval = sample
        .max(goal.min_sample_us)
        .min(goal.max_sample_us)
        .max(1);
    new.aggr_interval = new.sample_interval.saturating_mul(aggr_samples);
    Some(new)
}
