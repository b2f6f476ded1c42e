//! # damon-sysfs: the kernel's DAMON through its sysfs interface
//!
//! The groundwork of the kernel engine: a [`Context`](damon_core::Context)
//! written into a kdamond's directory under `/sys/kernel/mm/damon/admin`
//! and read back ([`write_context`], [`read_context`]), the probe of what
//! this kernel's interface has ([`Features`]), with errors that name the
//! missing feature and the Linux version that added it, and the rules of
//! sharing the interface ([`claim_kdamond`], [`SysfsLock`]): never modify,
//! stop or renumber a kdamond this library did not create.
//!
//! Every access goes through an [`Admin`] tree at a root directory, so the
//! same code runs on the kernel's tree and on a fake one in tests.
//!
//! ```
//! use damon_sysfs::{Admin, Features, RealFs};
//! // a directory without the interface is said to be one
//! let dir = std::env::temp_dir().join("damon-sysfs-doc-none");
//! let admin = Admin::at(&dir, Box::new(RealFs));
//! let e = Features::probe(&admin, "6.18.0").unwrap_err();
//! assert!(e.to_string().contains("no DAMON sysfs interface"));
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod engine;
mod error;
pub mod features;
pub mod guard;
mod kdamond;
mod read;
mod start;
pub mod trace;
pub mod tree;
mod write;

pub use engine::{kernel_can_run, Engine, KernelRun, KernelRunOptions};
pub use error::{EngineStartError, SysfsError};
pub use features::{kernel_release, Features, KernelVersion};
pub use guard::{
    claim_kdamond, kdamonds, release_kdamond, KdamondState, SysfsLock, LOCK_PATH, OWNER_PATH,
};
pub use kdamond::{KernelKdamond, KernelTriedRegion, StartOptions};
pub use read::read_context;
pub use start::{damon_start_on, EngineHandle, EngineOptions};
pub use trace::{AggregationTrace, TargetSnapshot, TRACEFS};
pub use tree::{Admin, RealFs, SysfsIo, ADMIN};
pub use write::write_context;
