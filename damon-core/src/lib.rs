//! # damon-core: DAMON's monitoring engine in user space
//!
//! A re-implementation of Linux's `mm/damon` core: region-based sampling,
//! adaptive region merge/split, ages, monitoring-intervals auto-tuning, and
//! the worker controls (`damon_start`, `damon_stop`, `damon_call`,
//! `damon_commit_ctx`, pause/resume). Backends implement [`Operations`];
//! this crate ships a deterministic simulated one ([`SimOps`]).
//!
//! ```
//! use damon_core::{damon_start, AddrRange, Context, HotRange, SimOps, SimPattern, Target, VirtualClock};
//! use std::sync::Arc;
//!
//! // 1 GiB whose first 64 MiB are accessed half of the time.
//! let hot = HotRange { range: AddrRange::new(0, 64 << 20), probability: 0.5 };
//! let mut ctx = Context::new();
//! ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))));
//! ctx.targets.push(Target::new(0));
//! ctx.clock = Some(Arc::new(VirtualClock::new())); // no real sleeping
//! ctx.seed = Some(42);
//! let handles = damon_start(vec![ctx], false).unwrap();
//! let accessed = handles[0]
//!     .call(|ctx| ctx.targets[0].regions.iter().filter(|r| r.last_nr_accesses > 0).count())
//!     .unwrap();
//! println!("{accessed} regions saw accesses");
//! ```
//!
//! Names follow the kernel (`nr_accesses`, `age`, `sample_interval`,
//! `min_nr_regions`, `sz_limit`); deviations are documented where they are made.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod access;
pub mod adapt;
pub mod attrs;
pub mod backend;
pub mod clock;
pub mod context;
pub mod damos;
pub mod engine;
pub mod error;
pub mod kdamond;
pub mod ops;
pub mod region;
pub mod registry;
pub mod rng;
pub mod score;
pub mod sim;
pub mod target;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tune;
pub mod worker;

pub use access::{update_region_access_rate, AccessRate};
pub use attrs::{Attrs, IntervalsGoal};
pub use clock::{Clock, RealClock, VirtualClock, Wake};
pub use context::{
    AfterAggregationFn, AfterSamplingFn, BeforeTerminateFn, Callbacks, Context, Control, LoopState,
};
pub use engine::{BeforeApplyHook, BeforeDamosApplyFn, DamosEngine, DamosEnv};
pub use error::{
    CallError, CallTimeoutError, CommitError, InvalidParam, OpsError, RegistryError, SelectError,
    StartError, StopError,
};
pub use kdamond::{ExitReason, Kdamond};
pub use ops::{ApplyOutcome, Operations, OpsCtx};
pub use region::{AddrRange, Region};
pub use registry::{damon_register_ops, damon_select_ops, OpsRegistry};
pub use rng::Rng;
pub use sim::{HotRange, Phase, SimOps, SimPattern};
pub use target::{Target, TargetId};
pub use worker::{
    damon_nr_running_ctxs, damon_start, damon_start_reserved, damon_stop, DamonHandle, RunSlots,
};
