//! A deterministic simulated backend: an address space of any size up to
//! 2^47 bytes whose accesses follow a pattern of timed phases, each with hot
//! ranges and per-sample access probabilities. The ground truth can be
//! queried per range, so tests, benchmarks and examples can score accuracy.

use crate::access::AccessRate;
use crate::adapt::{set_regions, validate_ranges};
use crate::attrs::Attrs;
use crate::damos::{Action, Scheme};
use crate::error::{InvalidParam, OpsError};
use crate::ops::{ApplyOutcome, Operations, OpsCtx};
use crate::region::{AddrRange, Region};
use crate::rng::Rng;
use crate::target::Target;

/// Largest address the simulator accepts (a 47-bit user address space).
pub const SIM_MAX_ADDR: u64 = 1 << 47;

/// A range accessed with `probability` in each sampling interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HotRange {
    /// The accessed bytes.
    pub range: AddrRange,
    /// Chance, per sampling interval, that a sampled page in it is accessed.
    pub probability: f64,
}

/// One phase of the pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// How long the phase lasts (µs of the injected clock).
    pub duration_us: u64,
    /// Hot ranges, sorted and disjoint; everything else is idle.
    pub hot: Vec<HotRange>,
}

/// The simulated address space and its access pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct SimPattern {
    /// Mapped ranges of the space (the target's initial regions), sorted and disjoint.
    pub space: Vec<AddrRange>,
    /// Phases, in order; the pattern repeats after the last one.
    pub phases: Vec<Phase>,
    /// Time (µs since the first sample) after which the target is gone.
    pub exit_after_us: Option<u64>,
}

impl SimPattern {
    /// One range `[0, size)` uniformly accessed with `probability`.
    pub fn uniform(size: u64, probability: f64) -> Self {
        let r = AddrRange::new(0, size);
        Self {
            space: vec![r],
            phases: vec![Phase {
                duration_us: u64::MAX,
                hot: vec![HotRange {
                    range: r,
                    probability,
                }],
            }],
            exit_after_us: None,
        }
    }

    /// A single-phase pattern over `[0, size)` with the given hot ranges.
    pub fn with_hot(size: u64, hot: Vec<HotRange>) -> Self {
        Self {
            space: vec![AddrRange::new(0, size)],
            phases: vec![Phase {
                duration_us: u64::MAX,
                hot,
            }],
            exit_after_us: None,
        }
    }

    /// Checks sizes, order and probabilities; errors name the field.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        if self.space.is_empty() {
            return Err(InvalidParam::new("sim.space", "needs at least one range"));
        }
        validate_ranges(&self.space, "sim.space")?;
        if self.space.last().map(|r| r.end).unwrap_or(0) > SIM_MAX_ADDR {
            return Err(InvalidParam::new("sim.space", "exceeds 2^47 bytes"));
        }
        if self.phases.is_empty() {
            return Err(InvalidParam::new("sim.phases", "needs at least one phase"));
        }
        for (i, p) in self.phases.iter().enumerate() {
            if p.duration_us == 0 {
                return Err(InvalidParam::new(
                    format!("sim.phases[{i}].duration_us"),
                    "must be non-zero",
                ));
            }
            let ranges: Vec<_> = p.hot.iter().map(|h| h.range).collect();
            validate_ranges(&ranges, &format!("sim.phases[{i}].hot"))?;
            for (j, h) in p.hot.iter().enumerate() {
                if !(0.0..=1.0).contains(&h.probability) {
                    return Err(InvalidParam::new(
                        format!("sim.phases[{i}].hot[{j}].probability"),
                        "must be within [0, 1]",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The phase in force `t_us` after the first sample.
    pub fn phase_at(&self, t_us: u64) -> (usize, &Phase) {
        let total: u128 = self.phases.iter().map(|p| u128::from(p.duration_us)).sum();
        let mut t = u128::from(t_us) % total.max(1);
        for (i, p) in self.phases.iter().enumerate() {
            if t < u128::from(p.duration_us) {
                return (i, p);
            }
            t -= u128::from(p.duration_us);
        }
        (
            self.phases.len() - 1,
            self.phases.last().expect("validated: non-empty"),
        )
    }

    /// Ground truth: bytes of `range` that are hot (probability > 0) at `t_us`.
    pub fn hot_bytes(&self, t_us: u64, range: AddrRange) -> u64 {
        self.phase_at(t_us)
            .1
            .hot
            .iter()
            .filter(|h| h.probability > 0.0)
            .map(|h| h.range.overlap(&range))
            .sum()
    }

    /// Ground truth: total hot bytes at `t_us`.
    pub fn total_hot_bytes(&self, t_us: u64) -> u64 {
        self.phase_at(t_us)
            .1
            .hot
            .iter()
            .filter(|h| h.probability > 0.0)
            .map(|h| h.range.len())
            .sum()
    }

    /// Total mapped bytes.
    pub fn space_bytes(&self) -> u64 {
        self.space.iter().map(AddrRange::len).sum()
    }
}

/// A pattern with per-phase integer thresholds precomputed for the hot path.
#[derive(Clone, Debug)]
struct Compiled {
    pattern: SimPattern,
    /// Per phase: (start, end, threshold as a fraction of 2^64).
    phases: Vec<Vec<(u64, u64, u128)>>,
}

impl Compiled {
    fn new(pattern: SimPattern) -> Self {
        let phases = pattern
            .phases
            .iter()
            .map(|p| {
                p.hot
                    .iter()
                    .map(|h| {
                        (
                            h.range.start,
                            h.range.end,
                            probability_threshold(h.probability),
                        )
                    })
                    .collect()
            })
            .collect();
        Self { pattern, phases }
    }
}

/// A record of one simulated DAMOS action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimApplied {
    /// Target id.
    pub target: u64,
    /// Range acted on.
    pub range: AddrRange,
    /// The action.
    pub action: Action,
}

/// The most actions [`SimOps::applied`] keeps (the older half is dropped).
pub const APPLIED_LOG_MAX: usize = 100_000;

/// The simulated backend. Every target uses the same pattern unless one is
/// given per target id with [`SimOps::with_target`].
#[derive(Debug)]
pub struct SimOps {
    default: Compiled,
    per_target: Vec<(u64, Compiled)>,
    rng: Rng,
    start_us: Option<u64>,
    now_us: u64,
    /// Every action applied, in order (bounded to the last 100 000).
    pub applied: Vec<SimApplied>,
    /// Number of `check_accesses` region checks done, for cost accounting.
    pub nr_checks: u64,
    apply_cost: Option<(crate::clock::VirtualClock, u64)>,
}

impl SimOps {
    /// A backend whose targets all follow `pattern`; access draws use a fixed seed.
    pub fn new(pattern: SimPattern) -> Self {
        Self {
            default: Compiled::new(pattern),
            per_target: Vec::new(),
            rng: Rng::new(0x5EED),
            start_us: None,
            now_us: 0,
            applied: Vec::new(),
            nr_checks: 0,
            apply_cost: None,
        }
    }

    /// Makes every applied action advance `clock` by `us_per_mib` µs per MiB
    /// acted on (rounded up), so DAMOS time quotas see a known throughput.
    pub fn with_apply_cost(mut self, clock: crate::clock::VirtualClock, us_per_mib: u64) -> Self {
        self.apply_cost = Some((clock, us_per_mib));
        self
    }

    /// Uses `pattern` for the target whose id is `id`.
    pub fn with_target(mut self, id: u64, pattern: SimPattern) -> Self {
        self.per_target.push((id, Compiled::new(pattern)));
        self
    }

    /// Seeds the access draws.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = Rng::new(seed);
        self
    }

    /// The pattern of target `id`.
    pub fn pattern(&self, id: u64) -> &SimPattern {
        &self
            .per_target
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p)
            .unwrap_or(&self.default)
            .pattern
    }

    /// Simulated time since the first sample (µs).
    pub fn elapsed_us(&self) -> u64 {
        self.now_us
            .saturating_sub(self.start_us.unwrap_or(self.now_us))
    }
}

impl Operations for SimOps {
    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.default.pattern.validate()?;
        for (_, p) in &self.per_target {
            p.pattern.validate()?;
        }
        for t in ctx.targets.iter_mut() {
            if t.regions.is_empty() {
                let space = self.pattern(t.id).space.clone();
                set_regions(t, &space, ctx.min_region_sz)?;
            }
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        if self.start_us.is_none() {
            self.start_us = Some(ctx.now_us);
        }
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
            }
        }
        Ok(())
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        self.now_us = ctx.now_us;
        let t_us = self.elapsed_us();
        let mut max = 0;
        let default = &self.default;
        let per_target = &self.per_target;
        let rng = &mut self.rng;
        let mut checks = 0u64;
        let rate = AccessRate::new(ctx.attrs);
        for t in ctx.targets.iter_mut() {
            let pattern = per_target
                .iter()
                .find(|(i, _)| *i == t.id)
                .map(|(_, p)| p)
                .unwrap_or(default);
            let gone = pattern.pattern.exit_after_us.is_some_and(|e| t_us >= e);
            let hot = &pattern.phases[pattern.pattern.phase_at(t_us).0];
            for r in t.regions.iter_mut() {
                let accessed = !gone && sampled_hot(hot, r.sampling_addr, rng);
                rate.update(r, accessed);
                max = max.max(r.nr_accesses);
            }
            checks += t.regions.len() as u64;
        }
        self.nr_checks += checks;
        Ok(max)
    }

    fn get_scheme_score(&self, attrs: &Attrs, _t: &Target, r: &Region, s: &Scheme) -> u32 {
        crate::score::vaddr_scheme_score(attrs, r, s)
    }

    fn check_action(&self, _action: Action) -> Result<(), OpsError> {
        Ok(())
    }

    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        // The log is bounded and reserved whole on first use, so a loop
        // with schemes does not allocate after warm-up.
        if self.applied.capacity() < APPLIED_LOG_MAX {
            self.applied
                .reserve_exact(APPLIED_LOG_MAX - self.applied.len());
        }
        if self.applied.len() >= APPLIED_LOG_MAX {
            self.applied.drain(..APPLIED_LOG_MAX / 2);
        }
        self.applied.push(SimApplied {
            target: t.id,
            range: r.ar,
            action: s.action,
        });
        if let Some((clock, us_per_mib)) = &self.apply_cost {
            clock
                .advance((u128::from(r.size()) * u128::from(*us_per_mib)).div_ceil(1 << 20) as u64);
        }
        let applied = if s.action == Action::Stat {
            0
        } else {
            r.size()
        };
        Ok(ApplyOutcome {
            applied,
            sz_filter_passed: r.size(),
        })
    }

    fn validates_targets(&self) -> bool {
        true
    }

    fn target_valid(&mut self, t: &Target) -> bool {
        let p = self.pattern(t.id);
        !p.exit_after_us
            .is_some_and(|e| self.start_us.is_some() && self.elapsed_us() >= e)
    }

    fn invalid_reason(&self) -> Option<String> {
        Some(format!(
            "simulated targets exited after {} µs",
            self.elapsed_us()
        ))
    }
}

/// Whether a sample at `addr` sees an access. One random draw per call,
/// whatever the address, and an integer threshold: the outcome never
/// steers a branch, so the cost does not depend on the layout.
#[inline]
fn sampled_hot(hot: &[(u64, u64, u128)], addr: u64, rng: &mut Rng) -> bool {
    // hot ranges are sorted: the last one starting at or before addr
    let idx = hot.partition_point(|h| h.0 <= addr);
    let threshold = match idx.checked_sub(1).map(|i| &hot[i]) {
        Some(&(_, end, thr)) if addr < end => thr,
        _ => 0,
    };
    u128::from(rng.next_u64()) < threshold
}

/// `p` as a fraction of 2^64 (p = 1 maps to 2^64: always accessed).
#[inline]
fn probability_threshold(p: f64) -> u128 {
    if p >= 1.0 {
        1u128 << 64
    } else if p <= 0.0 {
        0
    } else {
        (p * 18_446_744_073_709_551_616.0) as u128
    }
}
