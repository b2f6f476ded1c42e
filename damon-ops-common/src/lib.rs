//! # damon-ops-common: the page layer both backends share
//!
//! The kernel keeps the page-level primitives that `vaddr.c` and `paddr.c`
//! both use in `mm/damon/ops-common.c`; this crate is that file's place in
//! user space. User space cannot clear page-table accessed bits itself, so
//! the kernel's idle page tracking does it for us:
//!
//! * [`sys`]: the system-call layer, the only module with `unsafe` in the
//!   product ([`sys::KFile`], [`sys::Pidfd`], [`sys::madvise()`]);
//! * [`physio`]: the page_idle bitmap (`/sys/kernel/mm/page_idle/bitmap`)
//!   and `/proc/kpageflags`, opened once, behind the [`physio::PhysIo`] trait;
//! * [`pagemap`], [`kpageflags`]: entry decoders with typed constants, and
//!   the pagemap reader;
//! * [`folio`]: folios and the page-level DAMOS filters (anon, active,
//!   memcg, young, hugepage_size, unmapped) from kpageflags, kpagecgroup
//!   and the idle bitmap;
//! * [`coalesce`]: how nearby pages share one `pread`/`pwrite`;
//! * [`sampler`]: one sample of many PFNs — sorted, deduplicated, marked
//!   idle and read back in coalesced calls, THP tails mapped to their heads;
//! * [`slots`]: which region of which target a sampled page belongs to;
//! * [`probe`]: what this machine allows, with errors naming what is missing;
//! * [`error`]: errors of the pure parsers;
//! * `testing` (feature `testing`): a fake page_idle, anonymous mappings,
//!   fault plans and skip helpers for tests.
//!
//! ```
//! use damon_ops_common::kpageflags::{PageFlags, KPF_LRU};
//! assert!(PageFlags(1 << KPF_LRU).is_lru());
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![deny(unsafe_code)]

pub mod coalesce;
pub mod error;
pub mod folio;
pub mod kpageflags;
pub mod pagemap;
pub mod physio;
pub mod probe;
pub mod sampler;
pub mod slots;
pub mod sys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::ParseError;
pub use probe::ProbeReport;
pub use sampler::{PfnSampler, SamplerPolicy, SamplerStats, Verdict};
