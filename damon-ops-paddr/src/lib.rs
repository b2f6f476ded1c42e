//! # damon-ops-paddr: the `paddr` backend
//!
//! Monitors physical address ranges through the page_idle bitmap (the
//! kernel's `mm/damon/paddr.c`). The page layer it samples with (page_idle,
//! kpageflags, the sampler, system calls) is shared with the vaddr backend
//! and lives in `damon-ops-common`; this crate holds only what is paddr's:
//!
//! * [`PaddrOps`]: the backend;
//! * [`iomem`], [`numa`]: pure parsers of the physical layout
//!   (`/proc/iomem`, memory-block sysfs, `/proc/zoneinfo`) that give its
//!   regions and the node of a page;
//! * [`stat`]: folio walks for the page-level DAMOS filters and the
//!   `node_eligible_mem_bp` quota goal.
//!
//! ```
//! use damon_core::{AddrRange, Context, Kdamond, Target, VirtualClock};
//! use damon_ops_common::testing::fake::FakePhysMem;
//! use damon_ops_paddr::{PaddrOps, PaddrRegions};
//! use std::sync::Arc;
//!
//! // 64 MiB of fake physical memory whose 8..16 MiB is hot.
//! let mut mem = FakePhysMem::new(16384);
//! mem.add_hot(2048..4096, 1.0);
//! let range = vec![AddrRange::new(0, 64 << 20)];
//! let ops = PaddrOps::with_io(PaddrRegions::Ranges(range), Box::new(mem), 4096);
//! let mut ctx = Context::new();
//! ctx.set_ops("paddr", Box::new(ops));
//! ctx.targets.push(Target::new(0));
//! ctx.clock = Some(Arc::new(VirtualClock::new()));
//! let mut kd = Kdamond::new(ctx).unwrap();
//! kd.init().unwrap();
//! for _ in 0..100 { kd.step(); }
//! assert!(kd.ctx().targets[0].regions.iter().any(|r| r.last_nr_accesses > 0));
//! ```
//!
//! On a real machine use [`PaddrOps::new`], which needs root and a kernel
//! with `CONFIG_IDLE_PAGE_TRACKING`, or [`register`] and select `"paddr"`.
//!
//! # Privileges
//!
//! * the page_idle bitmap is mode 0600 and `/proc/kpageflags` 0400: root
//!   (or `CAP_SYS_ADMIN` with file access) — checked by
//!   `damon_ops_common::probe` up front, with an error naming the file and
//!   the missing privilege;
//! * `/proc/iomem` shows zeroed addresses to non-root readers (detected);
//! * `paddr` acts only through `stat`: other actions on physical memory need
//!   the kernel's reverse map and are refused when a scheme is installed.
//!   Its page-level filters (anon, active, memcg, young, hugepage_size,
//!   unmapped) are evaluated per folio from `/proc/kpageflags`,
//!   `/proc/kpagecgroup` and the idle bitmap.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![deny(unsafe_code)]

pub mod iomem;
pub mod numa;
pub mod paddr;
pub mod stat;

pub use paddr::{paddr_scheme_score, PaddrOps, PaddrRegions};

/// Registers `"paddr"` (largest System RAM block by default) in damon-core's
/// global registry; registering twice is harmless.
///
/// ```
/// damon_ops_paddr::register();
/// assert!(damon_core::OpsRegistry::global().is_registered("paddr"));
/// ```
pub fn register() {
    let _ = damon_core::damon_register_ops(damon_core::backend::ids::PADDR, || {
        Ok(Box::new(PaddrOps::new(PaddrRegions::LargestSystemRam)?)
            as Box<dyn damon_core::Operations>)
    });
}
