//! The `vaddr` and `fvaddr` backends (the kernel's `mm/damon/vaddr.c`):
//! the [`Operations`] implementation, over the process table
//! ([`Processes`]), the translator ([`Translator`]) and the applier
//! ([`Applier`]).

use crate::actions::{advice_of, has_cap_sys_nice, remote_ok};
use crate::apply::Applier;
use crate::process::Processes;
use crate::three_regions::three_regions;
use crate::translate::Translator;
pub use crate::translate::DEFAULT_PAGEMAP_COALESCE;
use damon_core::backend::set_regions;
use damon_core::damos::{Action, FilterKind, Scheme};
use damon_core::{
    AddrRange, ApplyOutcome, Attrs, Operations, OpsCtx, OpsError, Region, Target, TargetId,
};
use damon_ops_common::coalesce::Coalesce;
use damon_ops_common::physio::{KernelPhysIo, PhysIo};
use damon_ops_common::sampler::{PfnSampler, SamplerPolicy, SamplerStats};
use damon_ops_common::{slots, sys, ProbeReport};

/// Why an action is refused on virtual addresses, and what to use instead.
pub const VADDR_ACTION_HINT: &str =
    "user space cannot do this on virtual addresses: lru_prio/lru_deprio \
     need the kernel's LRU (use willneed/cold), migrate_hot/migrate_cold are not implemented";

/// Monitors processes' virtual address spaces; `Target::id` is the pid.
///
/// * `vaddr` ([`VaddrOps::new`]): region-less targets get the kernel's three
///   regions at `init`, recomputed at every ops update.
/// * `fvaddr` ([`VaddrOps::fixed`]): only the ranges the user gave are
///   monitored, never changed by the backend.
///
/// Per sample, every region's sampling address is translated through the
/// process's pagemap (one read per run of nearby addresses), and the PFNs of
/// the whole context go through one batched page_idle pass. Pages that are
/// not present or swapped count as not accessed.
///
/// ```no_run
/// // Needs root and CONFIG_IDLE_PAGE_TRACKING.
/// use damon_core::{Context, Target};
/// let mut ctx = Context::new();
/// ctx.set_ops("vaddr", Box::new(damon_ops_vaddr::VaddrOps::new()?));
/// ctx.targets.push(Target::new(1234)); // a pid
/// let handles = damon_core::damon_start(vec![ctx], false).unwrap();
/// # Ok::<(), damon_core::OpsError>(())
/// ```
pub struct VaddrOps {
    fixed: bool,
    page_size: u64,
    sampler: PfnSampler,
    procs: Processes,
    translator: Translator,
    applier: Applier,
    maps_buf: Vec<u8>,
}

impl std::fmt::Debug for VaddrOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaddrOps")
            .field("fixed", &self.fixed)
            .field("targets", &self.procs.ids().collect::<Vec<_>>())
            .field("gone", &self.procs.gone())
            .field("sampler", &self.sampler)
            .finish()
    }
}

impl VaddrOps {
    /// The `vaddr` backend. Probes the system first: the error names what
    /// is missing (`CONFIG_IDLE_PAGE_TRACKING`, root for PFNs, ...).
    pub fn new() -> Result<Self, OpsError> {
        Self::open_kernel(false)
    }

    /// The `fvaddr` backend (fixed, user-given ranges).
    pub fn fixed() -> Result<Self, OpsError> {
        Self::open_kernel(true)
    }

    fn open_kernel(fixed: bool) -> Result<Self, OpsError> {
        ProbeReport::run().require_vaddr()?;
        let io = KernelPhysIo::open()?;
        Ok(Self::with_io(fixed, Box::new(io)))
    }

    /// A backend over any [`PhysIo`] (e.g. the fake page_idle of
    /// `damon_ops_common::fake`); pagemap and maps are still the real files.
    pub fn with_io(fixed: bool, io: Box<dyn PhysIo>) -> Self {
        let page_size = sys::page_size();
        Self {
            fixed,
            page_size,
            sampler: PfnSampler::new(io),
            procs: Processes::default(),
            translator: Translator::new(page_size),
            applier: Applier::new(page_size),
            maps_buf: Vec::new(),
        }
    }

    /// Replaces the page_idle batching policy.
    pub fn with_policy(mut self, policy: SamplerPolicy) -> Self {
        self.sampler.set_policy(policy);
        self
    }

    /// Replaces the pagemap coalescing policy (units: pages).
    pub fn with_pagemap_coalesce(mut self, c: Coalesce) -> Self {
        self.translator.set_coalesce(c);
        self
    }

    /// True for `fvaddr`.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// System calls made so far: pagemap, maps, pidfd polls, page_idle and
    /// kpageflags, including those of targets already cleaned up.
    pub fn syscalls(&self) -> u64 {
        self.sampler.syscalls() + self.procs.calls()
    }

    /// System calls made on the processes' own files only (pagemap, maps,
    /// pidfd polls), including those of targets already cleaned up.
    pub fn process_syscalls(&self) -> u64 {
        self.procs.calls()
    }

    /// The page_idle sampler's counters.
    pub fn stats(&self) -> &SamplerStats {
        self.sampler.stats()
    }

    /// The three regions of process `id` now (page-aligned), or `None` when
    /// its mappings have fewer than two gaps (or it exited).
    pub fn three_regions_of(&mut self, id: TargetId) -> Result<Option<Vec<AddrRange>>, OpsError> {
        let page = self.page_size;
        let Some(p) = self.procs.get_mut(id) else {
            return Ok(None);
        };
        let vmas = p.read_maps(&mut self.maps_buf)?;
        match three_regions(
            vmas.iter().filter(|v| !v.is_vsyscall()).map(|v| v.range()),
            page,
        ) {
            Ok(three) => Ok(Some(three.into_iter().filter(|r| !r.is_empty()).collect())),
            Err(e) => {
                tracing::debug!(target: "damon::vaddr", pid = id, "no three regions: {e}");
                Ok(None)
            }
        }
    }
}

impl Operations for VaddrOps {
    fn syscalls(&self) -> Option<u64> {
        Some(VaddrOps::syscalls(self))
    }

    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            self.procs.ensure_open(t.id)?;
            if !self.fixed && t.regions.is_empty() {
                if let Some(three) = self.three_regions_of(t.id)? {
                    set_regions(t, &three, ctx.min_region_sz)?;
                }
            }
        }
        Ok(())
    }

    fn update(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        if self.fixed {
            return Ok(());
        }
        for t in ctx.targets.iter_mut() {
            if !self.procs.alive(t.id) {
                continue;
            }
            if let Some(three) = self.three_regions_of(t.id)? {
                set_regions(t, &three, ctx.min_region_sz)?;
            }
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.sampler.begin(slots::nr_slots(ctx.targets));
        for (first, t) in slots::first_slots(ctx.targets) {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
            }
            if !t.regions.is_empty() && self.procs.ensure_open_lazily(t.id) {
                self.translator.translate_target(
                    &mut self.procs,
                    &mut self.sampler,
                    t.id,
                    &t.regions,
                    first,
                )?;
            }
        }
        self.sampler.mark_idle()
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        self.sampler.check()?;
        let procs = &self.procs;
        Ok(slots::update_access_rates(
            &self.sampler,
            ctx.targets,
            ctx.attrs,
            |t| procs.alive(t.id),
        ))
    }

    fn get_scheme_score(&self, attrs: &Attrs, _t: &Target, r: &Region, s: &Scheme) -> u32 {
        damon_core::backend::vaddr_scheme_score(attrs, r, s)
    }

    fn check_action(&self, action: Action) -> Result<(), OpsError> {
        if action == Action::Stat || advice_of(action).is_some() {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("DAMOS action {}", action.name()),
                hint: VADDR_ACTION_HINT.into(),
            })
        }
    }

    fn check_filter(&self, kind: &FilterKind) -> Result<(), OpsError> {
        damon_ops_common::folio::check_folio_filter(self.sampler.io(), kind)
    }

    fn check_scheme(&self, s: &Scheme, targets: &[Target]) -> Result<(), OpsError> {
        let Some(advice) = advice_of(s.action) else {
            return Ok(());
        };
        let me = u64::from(std::process::id());
        let others: Vec<u64> = targets
            .iter()
            .map(|t| t.id)
            .filter(|&id| id != me)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        if !remote_ok(advice) {
            return Err(OpsError::Unsupported {
                what: format!("DAMOS action {} on pid {}", s.action.name(), others[0]),
                hint: "process_madvise() does not take MADV_HUGEPAGE/MADV_NOHUGEPAGE; only the calling process \
                       can be advised so (use collapse for other processes)"
                    .into(),
            });
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if !has_cap_sys_nice(&status) {
            return Err(OpsError::PermissionDenied {
                what: format!("process_madvise({}) on pid {}", s.action.name(), others[0]),
                hint: "needs CAP_SYS_NICE and ptrace read access to the target (run as root)"
                    .into(),
            });
        }
        Ok(())
    }

    fn reset_aggregated(&mut self, _ctx: &mut OpsCtx<'_>) {
        // mappings may have changed: re-read them for the next apply round
        self.applier.forget_mappings();
    }

    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        self.applier
            .apply(&mut self.procs, self.sampler.io_mut(), t, r, s)
    }

    fn validates_targets(&self) -> bool {
        true
    }

    fn target_valid(&mut self, t: &Target) -> bool {
        self.procs.check_valid(t.id)
    }

    fn cleanup_target(&mut self, t: &Target) {
        self.procs.close(t.id);
    }

    fn invalid_reason(&self) -> Option<String> {
        self.procs.invalid_reason()
    }
}
