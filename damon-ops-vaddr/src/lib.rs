//! # damon-ops-vaddr: monitoring processes' virtual address spaces
//!
//! The `vaddr` and `fvaddr` backends of user-space DAMON ([`VaddrOps`],
//! the kernel's `mm/damon/vaddr.c`), built on the page layer of
//! `damon-ops-common` (page_idle bitmap, kpageflags, pagemap, the
//! system-call layer); this crate never depends on the paddr backend:
//!
//! * [`maps`]: a pure `/proc/PID/maps` parser;
//! * [`three_regions`]: the kernel's "three regions" of an address space;
//! * [`process`]: a monitored process's pidfd, pagemap and maps, opened
//!   once, and the table of every target's ([`process::Processes`]);
//! * [`translate`]: sampling addresses to PFNs through pagemap, batched;
//! * [`actions`], [`apply`]: which bytes of a region an action applies to,
//!   and applying it through the target's pidfd;
//! * [`VaddrOps`]: the backend.
//!
//! The address-space logic runs anywhere:
//!
//! ```
//! use damon_core::AddrRange;
//! let maps = "00400000-00401000 r-xp 00000000 08:01 1 /bin/app\n\
//!             00600000-00700000 rw-p 00000000 00:00 0 [heap]\n\
//!             7f0000000000-7f0000100000 rw-p 00000000 00:00 0\n\
//!             7ffff0000000-7ffff0021000 rw-p 00000000 00:00 0 [stack]\n";
//! let vmas = damon_ops_vaddr::maps::parse_maps(maps).unwrap();
//! let three = damon_ops_vaddr::three_regions::three_regions(vmas.iter().map(|v| v.range()), 4096).unwrap();
//! assert_eq!(three[0], AddrRange::new(0x400000, 0x700000));
//! assert_eq!(three[2], AddrRange::new(0x7ffff0000000, 0x7ffff0021000));
//! ```
//!
//! Monitoring needs root and a kernel with `CONFIG_IDLE_PAGE_TRACKING`:
//!
//! ```no_run
//! damon_ops_vaddr::register();
//! let mut ctx = damon_core::Context::new();
//! damon_core::damon_select_ops(&mut ctx, "vaddr").expect("root and page_idle");
//! ctx.targets.push(damon_core::Target::new(std::process::id() as u64));
//! let handles = damon_core::damon_start(vec![ctx], false).unwrap();
//! ```
//!
//! # Privileges and safety
//!
//! * Monitoring: PFNs in `/proc/PID/pagemap` need `CAP_SYS_ADMIN`, the
//!   page_idle bitmap root, and another process's files ptrace read access
//!   (same user or `CAP_SYS_PTRACE`). Missing ones are reported up front by
//!   the probe and at open time (`PermissionDenied` names the file and the
//!   privilege).
//! * Acting (DAMOS) on another process uses `process_madvise` on its pidfd:
//!   `CAP_SYS_NICE` and ptrace read access, checked when a scheme is
//!   installed. The calling process itself is advised with `madvise`.
//! * A target is pinned by a pidfd opened once, with its `/proc` files, and
//!   re-validated after opening; every action goes through that pidfd, so a
//!   recycled pid is never monitored nor acted on.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![deny(unsafe_code)]

pub mod actions;
pub mod apply;
pub mod maps;
pub mod ops;
pub mod process;
pub mod softdirty;
pub mod three_regions;
pub mod translate;
pub mod written;

pub use ops::VaddrOps;
pub use softdirty::SoftDirtyOps;
pub use written::WrittenOps;

/// Registers `"vaddr"`, `"fvaddr"`, `"vaddr-written"` ([`WrittenOps`]) and
/// `"vaddr-softdirty"` ([`SoftDirtyOps`]) in damon-core's global registry;
/// registering twice is harmless.
///
/// ```
/// damon_ops_vaddr::register();
/// let reg = damon_core::OpsRegistry::global();
/// assert!(reg.is_registered("vaddr") && reg.is_registered("fvaddr"));
/// ```
pub fn register() {
    let _ = damon_core::damon_register_ops(damon_core::backend::ids::VADDR, || {
        Ok(Box::new(VaddrOps::new()?) as Box<dyn damon_core::Operations>)
    });
    let _ = damon_core::damon_register_ops(damon_core::backend::ids::FVADDR, || {
        Ok(Box::new(VaddrOps::fixed()?) as Box<dyn damon_core::Operations>)
    });
    let _ = damon_core::damon_register_ops(softdirty::ID, || {
        Ok(Box::new(SoftDirtyOps::new()?) as Box<dyn damon_core::Operations>)
    });
    let _ = damon_core::damon_register_ops(written::ID, || {
        Ok(Box::new(WrittenOps::new()?) as Box<dyn damon_core::Operations>)
    });
}
