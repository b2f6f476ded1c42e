//! The `vaddr` and `fvaddr` backends (the kernel's `mm/damon/vaddr.c`).

use crate::actions::{
    advice_of, filter_supported, filtered_runs, has_cap_sys_nice, mapped_parts, remote_ok,
};
use crate::process::ProcessFiles;
use crate::three::three_regions;
use damon_core::backend::set_regions;
use damon_core::damos::{Action, FilterKind, Scheme};
use damon_core::{
    AddrRange, ApplyOutcome, Attrs, Operations, OpsCtx, OpsError, Region, Target, TargetId,
};
use damon_ops_common::coalesce::{plan_runs, Coalesce, Run};
use damon_ops_common::pagemap::PagemapEntry;
use damon_ops_common::physio::{KernelPhysIo, PhysIo};
use damon_ops_common::sampler::{PfnSampler, SamplerPolicy, SamplerStats};
use damon_ops_common::{slots, sys, ProbeReport};
use std::collections::HashMap;

/// Why an action is refused on virtual addresses, and what to use instead.
pub const VADDR_ACTION_HINT: &str =
    "user space cannot do this on virtual addresses: lru_prio/lru_deprio \
     need the kernel's LRU (use willneed/cold), migrate_hot/migrate_cold are not implemented";

/// Default coalescing of pagemap reads (units: pages). Holes and present
/// entries are cheap for the kernel to report, so gaps of a few hundred
/// pages are worth one call less.
pub const DEFAULT_PAGEMAP_COALESCE: Coalesce = Coalesce::new(128, 4096);

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
    procs: HashMap<TargetId, ProcessFiles>,
    /// Targets that cannot be monitored any more, with why.
    gone: Vec<(TargetId, String)>,
    retired_calls: u64,
    pagemap_coalesce: Coalesce,
    vpns: Vec<(u64, u32)>,
    runs: Vec<Run>,
    entries: Vec<u64>,
    maps_buf: Vec<u8>,
    /// VMAs per target for the current apply round (dropped at every aggregation reset).
    vma_cache: HashMap<TargetId, Vec<AddrRange>>,
    apply_ranges: Vec<(u64, u64)>,
    filtered: Vec<(u64, u64)>,
}

impl std::fmt::Debug for VaddrOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaddrOps")
            .field("fixed", &self.fixed)
            .field("targets", &self.procs.keys().collect::<Vec<_>>())
            .field("gone", &self.gone)
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
        Self {
            fixed,
            page_size: sys::page_size(),
            sampler: PfnSampler::new(io),
            procs: HashMap::new(),
            gone: Vec::new(),
            retired_calls: 0,
            pagemap_coalesce: DEFAULT_PAGEMAP_COALESCE,
            vpns: Vec::new(),
            runs: Vec::new(),
            entries: Vec::new(),
            maps_buf: Vec::new(),
            vma_cache: HashMap::new(),
            apply_ranges: Vec::new(),
            filtered: Vec::new(),
        }
    }

    /// Replaces the page_idle batching policy.
    pub fn with_policy(mut self, policy: SamplerPolicy) -> Self {
        self.sampler.set_policy(policy);
        self
    }

    /// Replaces the pagemap coalescing policy (units: pages).
    pub fn with_pagemap_coalesce(mut self, c: Coalesce) -> Self {
        self.pagemap_coalesce = c;
        self
    }

    /// True for `fvaddr`.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// System calls made so far: pagemap, maps, pidfd polls, page_idle and
    /// kpageflags, including those of targets already cleaned up.
    pub fn syscalls(&self) -> u64 {
        self.sampler.syscalls()
            + self.retired_calls
            + self.procs.values().map(ProcessFiles::calls).sum::<u64>()
    }

    /// System calls made on the processes' own files only (pagemap, maps,
    /// pidfd polls), including those of targets already cleaned up.
    pub fn process_syscalls(&self) -> u64 {
        self.retired_calls + self.procs.values().map(ProcessFiles::calls).sum::<u64>()
    }

    /// The page_idle sampler's counters.
    pub fn stats(&self) -> &SamplerStats {
        self.sampler.stats()
    }

    /// The three regions of process `id` now (page-aligned), or `None` when
    /// its mappings have fewer than two gaps (or it exited).
    pub fn three_regions_of(&mut self, id: TargetId) -> Result<Option<Vec<AddrRange>>, OpsError> {
        let page = self.page_size;
        let Some(p) = self.procs.get_mut(&id) else {
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

    fn mark_exited(&mut self, id: TargetId) {
        self.mark_gone(id, format!("pid {id} exited"));
    }

    fn mark_gone(&mut self, id: TargetId, reason: String) {
        if !self.is_gone(id) {
            tracing::info!(target: "damon::vaddr", pid = id, "target lost: {reason}");
            self.gone.push((id, reason));
        }
    }

    fn is_gone(&self, id: TargetId) -> bool {
        self.gone.iter().any(|g| g.0 == id)
    }

    /// Opens the target's files unless already open; errors propagate.
    fn ensure_open(&mut self, id: TargetId) -> Result<(), OpsError> {
        if self.procs.get(&id).is_some_and(ProcessFiles::alive) {
            return Ok(());
        }
        if let Some(old) = self.procs.remove(&id) {
            self.retired_calls += old.calls();
        }
        let p = ProcessFiles::open(id)?;
        self.gone.retain(|g| g.0 != id);
        self.procs.insert(id, p);
        Ok(())
    }

    /// Opens a target met for the first time during sampling (added by a
    /// commit with regions); failure makes it invalid, not an error.
    fn ensure_open_lazily(&mut self, id: TargetId) -> bool {
        if let Some(p) = self.procs.get(&id) {
            return p.alive();
        }
        if self.is_gone(id) {
            return false;
        }
        match ProcessFiles::open(id) {
            Ok(p) => {
                self.procs.insert(id, p);
                true
            }
            Err(e) => {
                self.mark_gone(id, format!("pid {id} cannot be monitored: {e}"));
                false
            }
        }
    }

    /// Translates the sampling addresses of one target's regions (slots
    /// `base..`) and feeds present PFNs to the sampler.
    fn translate_target(
        &mut self,
        id: TargetId,
        regions: &[Region],
        base: usize,
    ) -> Result<(), OpsError> {
        let page = self.page_size;
        self.vpns.clear();
        for (i, r) in regions.iter().enumerate() {
            self.vpns.push((r.sampling_addr / page, (base + i) as u32));
        }
        if !self.vpns.is_sorted_by_key(|v| v.0) {
            self.vpns.sort_unstable_by_key(|v| v.0);
        }
        let vpns = &self.vpns;
        plan_runs(
            vpns.len(),
            |i| vpns[i].0,
            self.pagemap_coalesce,
            &mut self.runs,
        );
        let Some(p) = self.procs.get_mut(&id) else {
            return Ok(());
        };
        // Buffers sized to the longest run the policy allows, once: run
        // lengths follow the random sampling addresses, so growing on demand
        // would allocate at random moments long after warm-up.
        let most = self.pagemap_coalesce.max_len.max(1) as usize;
        if self.entries.len() < most {
            self.entries.resize(most, 0);
        }
        p.pagemap().reserve_entries(most);
        let mut lost = None;
        for run in &self.runs {
            let len = run.len as usize;
            if self.entries.len() < len {
                self.entries.resize(len, 0);
            }
            let got = match p
                .pagemap()
                .read_entries(run.start, &mut self.entries[..len])
            {
                Ok(n) => n as u64,
                Err(e) if e.is_mm_gone() => 0,
                Err(e) => return Err(e.into()),
            };
            let got = if got == 0 && p.check_alive() {
                // the process lives: an exec may have replaced its address space
                match p.follow_exec() {
                    Ok(true) => match p
                        .pagemap()
                        .read_entries(run.start, &mut self.entries[..len])
                    {
                        Ok(n) => n as u64,
                        Err(e) if e.is_mm_gone() => 0,
                        Err(e) => return Err(e.into()),
                    },
                    Ok(false) => 0,
                    Err(e) => {
                        // e.g. it exec'd a set-uid program we may not read
                        lost = Some(format!(
                            "pid {id} exec'd and its files cannot be reopened: {e}"
                        ));
                        break;
                    }
                }
            } else {
                got
            };
            if got == 0 && !p.alive() {
                break;
            }
            for &(vpn, slot) in &self.vpns[run.items_start..run.items_end] {
                let idx = vpn - run.start;
                if idx < got {
                    if let Some(pfn) = PagemapEntry(self.entries[idx as usize]).pfn() {
                        self.sampler.add(slot as usize, pfn);
                    }
                }
            }
        }
        if let Some(reason) = lost {
            tracing::warn!(target: "damon::vaddr", pid = id, "{reason}");
            if let Some(old) = self.procs.remove(&id) {
                self.retired_calls += old.calls();
            }
            self.mark_gone(id, reason);
        } else if !p.alive() {
            self.mark_exited(id);
        }
        Ok(())
    }
}

impl Operations for VaddrOps {
    fn syscalls(&self) -> Option<u64> {
        Some(VaddrOps::syscalls(self))
    }

    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            self.ensure_open(t.id)?;
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
            if !self.procs.get(&t.id).is_some_and(ProcessFiles::alive) {
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
            if !t.regions.is_empty() && self.ensure_open_lazily(t.id) {
                self.translate_target(t.id, &t.regions, first)?;
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
            |t| procs.get(&t.id).is_some_and(ProcessFiles::alive),
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
        if filter_supported(kind) {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("DAMOS filter {}", kind.name()),
                hint: "vaddr decides only anon and unmapped pages (from pagemap), plus addr and target".into(),
            })
        }
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
        self.vma_cache.clear();
    }

    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        let page = self.page_size;
        if !self
            .procs
            .get_mut(&t.id)
            .is_some_and(ProcessFiles::check_alive)
        {
            self.mark_exited(t.id);
            return Err(OpsError::TargetGone {
                id: t.id,
                detail: format!("pid {} exited; {} not applied", t.id, s.action.name()),
            });
        }
        if !self.vma_cache.contains_key(&t.id) {
            let p = self.procs.get_mut(&t.id).expect("checked above");
            let vmas: Vec<AddrRange> = p
                .read_maps(&mut self.maps_buf)?
                .iter()
                .map(|v| v.range())
                .collect();
            self.vma_cache.insert(t.id, vmas);
        }
        self.apply_ranges.clear();
        mapped_parts(r.ar, &self.vma_cache[&t.id], page, &mut self.apply_ranges);
        let has_page_filters = s.filters.iter().any(|f| !f.kind.is_core());
        let sz_filter_passed = if has_page_filters {
            self.filtered.clear();
            let mut passed = 0;
            let p = self.procs.get_mut(&t.id).expect("checked above");
            for &(start, len) in &self.apply_ranges {
                let (first_vpn, n) = (start / page, (len / page) as usize);
                if self.entries.len() < n {
                    self.entries.resize(n, 0);
                }
                let got = p
                    .pagemap()
                    .read_entries(first_vpn, &mut self.entries[..n])?;
                passed +=
                    filtered_runs(s, first_vpn, &self.entries[..got], page, &mut self.filtered);
            }
            std::mem::swap(&mut self.apply_ranges, &mut self.filtered);
            passed
        } else {
            self.apply_ranges.iter().map(|r| r.1).sum()
        };
        let Some(advice) = advice_of(s.action) else {
            // stat: count what passed the filters
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed,
            });
        };
        if self.apply_ranges.is_empty() {
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed,
            });
        }
        let p = self.procs.get_mut(&t.id).expect("checked above");
        let applied = if u64::from(std::process::id()) == t.id {
            // the calling process: plain madvise takes every advice
            let mut done = 0;
            for &(start, len) in &self.apply_ranges {
                match sys::madvise(start, len, advice) {
                    Ok(()) => done += len,
                    Err(e) => tracing::debug!(target: "damon::vaddr", "madvise: {e}"),
                }
            }
            done
        } else {
            match p.pidfd_mut().madvise(&self.apply_ranges, advice) {
                Ok(n) => n as u64,
                Err(e) => match e.raw_os_error() {
                    Some(libc::ESRCH) => {
                        self.mark_exited(t.id);
                        return Err(OpsError::TargetGone {
                            id: t.id,
                            detail: format!("pid {} exited during {}", t.id, s.action.name()),
                        });
                    }
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        return Err(OpsError::PermissionDenied {
                            what: format!("process_madvise({}) on pid {}", s.action.name(), t.id),
                            hint: "needs CAP_SYS_NICE and ptrace read access to the target".into(),
                        })
                    }
                    // ENOMEM/EINVAL/EAGAIN on the first range: nothing applied
                    _ => {
                        tracing::debug!(target: "damon::vaddr", pid = t.id, "process_madvise: {e}");
                        0
                    }
                },
            }
        };
        Ok(ApplyOutcome {
            applied,
            sz_filter_passed,
        })
    }

    fn target_valid(&mut self, t: &Target) -> bool {
        let valid = match self.procs.get_mut(&t.id) {
            Some(p) => p.check_alive(),
            None => !self.is_gone(t.id),
        };
        if !valid {
            self.mark_exited(t.id);
        }
        valid
    }

    fn cleanup_target(&mut self, t: &Target) {
        if let Some(p) = self.procs.remove(&t.id) {
            self.retired_calls += p.calls();
        }
    }

    fn invalid_reason(&self) -> Option<String> {
        match self.gone.as_slice() {
            [] => None,
            [(_, why)] => Some(why.clone()),
            many => {
                let list: Vec<&str> = many.iter().map(|g| g.1.as_str()).collect();
                Some(list.join("; "))
            }
        }
    }
}
