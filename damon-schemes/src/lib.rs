//! # damon-schemes: DAMOS for user-space DAMON
//!
//! DAMON-based Operation Schemes: act on regions whose access pattern
//! matches, within quotas, prioritized by the backend's score, gated by
//! watermarks and filters, with goal-based quota auto-tuning, statistics and
//! tried-region snapshots, following the kernel's `core.c`.
//!
//! ```
//! use damon_core::damos::{AccessPattern, Action, Scheme};
//! use damon_core::{damon_start, Context, SimOps, SimPattern, Target, VirtualClock};
//! use std::sync::Arc;
//!
//! let mut ctx = Context::new();
//! ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::uniform(1 << 30, 0.0))));
//! ctx.targets.push(Target::new(0));
//! ctx.clock = Some(Arc::new(VirtualClock::new()));
//! // count idle regions (any age)
//! let pattern = AccessPattern { max_nr_accesses: 0, ..AccessPattern::default() };
//! ctx.schemes.push(Scheme::new(pattern, Action::Stat));
//! let control = damon_schemes::install(&mut ctx, damon_schemes::SimMetrics::new());
//! let handles = damon_start(vec![ctx], false).unwrap();
//! let tried = control.request_tried_regions().unwrap().recv().unwrap();
//! let stats = handles[0].call(|ctx| ctx.schemes[0].stat).unwrap();
//! assert!(stats.nr_tried > 0 && tried.total_bytes(0) > 0);
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod engine;
pub mod filter;
pub mod memcg;
pub mod metrics;
pub mod presets;
pub mod quota;
mod tried;
pub mod wmarks;

pub use engine::{nr_accesses_of, pattern_match, Damos};
pub use metrics::{ProcMetrics, SimMetrics, SystemMetrics};
pub use tried::{DamosControl, SchemeStatus, TriedRegion, TriedRegions, WalkError};

/// Installs a DAMOS engine reading this machine's metrics
/// ([`ProcMetrics`]: `/proc` and `/sys`, read only for watermarks and quota
/// goals) into `ctx` and returns its control. Most programs want this.
pub fn install_default(ctx: &mut damon_core::Context) -> DamosControl {
    install(ctx, ProcMetrics)
}

/// Installs a DAMOS engine reading metrics from `metrics` into `ctx` and
/// returns its control.
pub fn install(
    ctx: &mut damon_core::Context,
    metrics: impl SystemMetrics + 'static,
) -> DamosControl {
    let (engine, control) = Damos::with_metrics(Box::new(metrics));
    ctx.set_damos_engine(Box::new(engine));
    control
}
