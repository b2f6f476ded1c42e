//! The `vaddr-softdirty` backend: **writes** to other processes' memory
//! through soft-dirty bits, on kernels with `CONFIG_MEM_SOFT_DIRTY` but
//! without idle page tracking; it needs ptrace access to the targets (the
//! same user, or `CAP_SYS_PTRACE`), not root.
//!
//! Per sample and target, `prepare_access_checks` writes `4` to
//! `/proc/PID/clear_refs` (one write), which clears the soft-dirty bit of
//! every page of the process **and write-protects the whole address
//! space**: the process's next write to each page takes a minor fault that
//! sets the bit again. That cost falls on the workload, once per page per
//! sample, whatever the number of regions; a process writing much memory
//! pays it in full, which is why it is done once per sample and not per
//! region. `check_accesses` reads each region's sampling page's pagemap
//! entry (bit 55, soft-dirty). A page only read stays clean: what is seen
//! is writes, not accesses.
//!
//! Clearing soft-dirty bits is visible to any other user of them on the
//! same process (CRIU's incremental dumps): do not use this backend on a
//! process someone else tracks so.

use crate::actions::{advice_of, remote_ok};
use crate::process::Processes;
use crate::three_regions::three_regions;
use damon_core::damos::{Action, Scheme};
use damon_core::{
    AddrRange, ApplyOutcome, Attrs, Operations, OpsCtx, OpsError, Region, Target, TargetId,
};
use damon_ops_common::sys::KFile;
use std::collections::HashMap;

/// The id this backend registers under.
pub const ID: &str = "vaddr-softdirty";

const PAGE: u64 = 4096;

/// The soft-dirty backend.
#[derive(Debug, Default)]
pub struct SoftDirtyOps {
    procs: Processes,
    clear_refs: HashMap<TargetId, KFile>,
    vmas: HashMap<TargetId, Vec<AddrRange>>,
    fixed: Option<bool>,
    buf: Vec<u8>,
    calls: u64,
}

impl SoftDirtyOps {
    /// Checks that this kernel keeps soft-dirty bits (a page just written
    /// reads soft-dirty in pagemap); the error names the option.
    pub fn new() -> Result<Self, OpsError> {
        if !damon_ops_common::probe::ProbeReport::run().soft_dirty {
            return Err(OpsError::Unsupported {
                what: "soft-dirty bits".into(),
                hint: "kernel built without CONFIG_MEM_SOFT_DIRTY (pagemap never reports a written page soft-dirty)".into(),
            });
        }
        Ok(Self::default())
    }

    /// System calls made so far.
    pub fn syscalls(&self) -> u64 {
        self.calls + self.procs.calls() + self.clear_refs.values().map(KFile::calls).sum::<u64>()
    }

    fn open(&mut self, id: TargetId) -> Result<(), OpsError> {
        self.procs.ensure_open(id)?;
        if let std::collections::hash_map::Entry::Vacant(slot) = self.clear_refs.entry(id) {
            let pid = crate::process::pid_of(id)?;
            let f = KFile::open_write(&format!("/proc/{pid}/clear_refs"))
                .map_err(|e| crate::process::open_error(e, id))?;
            slot.insert(f);
        }
        Ok(())
    }

    /// Re-reads the target's maps: its mappings, and its three regions.
    fn refresh(&mut self, id: TargetId) -> Result<Option<[AddrRange; 3]>, OpsError> {
        let Some(p) = self.procs.get_mut(id) else {
            return Ok(None);
        };
        let vmas = match p.read_maps(&mut self.buf) {
            Ok(v) => v,
            Err(OpsError::TargetGone { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ranges: Vec<AddrRange> = vmas.iter().map(|v| v.range()).collect();
        let three = three_regions(ranges.iter().copied(), PAGE).ok();
        self.vmas.insert(id, ranges);
        Ok(three)
    }
}

impl Operations for SoftDirtyOps {
    fn syscalls(&self) -> Option<u64> {
        Some(SoftDirtyOps::syscalls(self))
    }

    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.fixed = Some(ctx.targets.iter().all(|t| !t.regions.is_empty()));
        for t in ctx.targets.iter() {
            self.open(t.id)?;
        }
        self.update(ctx)
    }

    fn update(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        let fixed = self.fixed.unwrap_or(false);
        for t in ctx.targets.iter_mut() {
            if !self.procs.alive(t.id) {
                continue;
            }
            if let Some(three) = self.refresh(t.id)? {
                if !fixed {
                    damon_core::backend::set_regions(t, &three, ctx.min_region_sz).map_err(
                        |e| OpsError::Unsupported {
                            what: format!("the three regions of pid {}", t.id),
                            hint: e.to_string(),
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
            }
            if !self.procs.alive(t.id) {
                continue;
            }
            let Some(f) = self.clear_refs.get_mut(&t.id) else {
                continue;
            };
            // CLEAR_REFS_SOFT_DIRTY: the whole address space, once
            match f.pwrite(b"4", 0) {
                Ok(_) => {}
                Err(e) if e.is_mm_gone() => self.procs.mark_exited(t.id),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        let mut max = 0;
        for t in ctx.targets.iter_mut() {
            let alive = self.procs.alive(t.id);
            let mut p = if alive {
                self.procs.get_mut(t.id)
            } else {
                None
            };
            for r in t.regions.iter_mut() {
                let written = match p.as_mut() {
                    Some(p) => match p.pagemap().entry(r.sampling_addr, PAGE) {
                        Ok(e) => e.soft_dirty(),
                        Err(e) if e.is_mm_gone() => false,
                        Err(e) => return Err(e.into()),
                    },
                    None => false,
                };
                damon_core::update_region_access_rate(r, written, ctx.attrs);
                max = max.max(r.nr_accesses);
            }
        }
        Ok(max)
    }

    fn get_scheme_score(&self, attrs: &Attrs, _t: &Target, r: &Region, s: &Scheme) -> u32 {
        damon_core::backend::vaddr_scheme_score(attrs, r, s)
    }

    fn check_action(&self, action: Action) -> Result<(), OpsError> {
        match advice_of(action) {
            _ if action == Action::Stat => Ok(()),
            Some(a) if remote_ok(a) => Ok(()),
            _ => Err(OpsError::Unsupported {
                what: format!("DAMOS action {}", action.name()),
                hint: "vaddr-softdirty acts on other processes through process_madvise: willneed, cold, pageout and collapse".into(),
            }),
        }
    }

    fn check_scheme(&self, s: &Scheme, targets: &[Target]) -> Result<(), OpsError> {
        if advice_of(s.action).is_none() {
            return Ok(());
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        match targets.first() {
            Some(t) if !crate::actions::has_cap_sys_nice(&status) => {
                Err(OpsError::PermissionDenied {
                    what: format!("process_madvise({}) on pid {}", s.action.name(), t.id),
                    hint: "needs CAP_SYS_NICE and ptrace read access to the target (run as root)"
                        .into(),
                })
            }
            _ => Ok(()),
        }
    }

    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        let Some(advice) = advice_of(s.action) else {
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed: r.size(),
            });
        };
        let ranges: Vec<(u64, u64)> = self
            .vmas
            .get(&t.id)
            .into_iter()
            .flatten()
            .filter(|v| v.intersects(&r.ar))
            .map(|v| {
                let (s, e) = (v.start.max(r.ar.start), v.end.min(r.ar.end));
                (s, e - s)
            })
            .collect();
        let Some(p) = self.procs.get_mut(t.id) else {
            return Ok(ApplyOutcome::default());
        };
        if ranges.is_empty() {
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed: r.size(),
            });
        }
        let applied = p
            .pidfd_mut()
            .madvise(&ranges, advice)
            .map_err(|source| OpsError::Io {
                call: "process_madvise",
                path: format!("pid {}", t.id),
                source,
            })?;
        Ok(ApplyOutcome {
            applied: applied as u64,
            sz_filter_passed: r.size(),
        })
    }

    fn validates_targets(&self) -> bool {
        true
    }

    fn target_valid(&mut self, t: &Target) -> bool {
        self.procs.check_valid(t.id)
    }

    fn cleanup_target(&mut self, t: &Target) {
        self.procs.close(t.id);
        self.clear_refs.remove(&t.id);
    }

    fn invalid_reason(&self) -> Option<String> {
        self.procs.invalid_reason()
    }
}
