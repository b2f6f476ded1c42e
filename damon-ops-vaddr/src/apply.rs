//! Applying a DAMOS action to one region of a process: the mapped parts
//! of the region, narrowed by the page-level filters, then advised through
//! the process's pidfd (or `madvise` on the calling process).

use crate::actions::{advice_of, filtered_runs, mapped_parts, Folios};
use crate::process::Processes;
use damon_core::damos::{FilterKind, Scheme};
use damon_core::{AddrRange, ApplyOutcome, OpsError, Region, Target, TargetId};
use damon_ops_common::folio::FlagsWindow;
use damon_ops_common::physio::PhysIo;
use damon_ops_common::sys::{self, Advice};
use std::collections::HashMap;

/// The scratch of one apply round, kept between regions and samples.
#[derive(Debug)]
pub struct Applier {
    page_size: u64,
    /// VMAs per target for the current apply round (dropped at every aggregation reset).
    vma_cache: HashMap<TargetId, Vec<AddrRange>>,
    ranges: Vec<(u64, u64)>,
    filtered: Vec<(u64, u64)>,
    entries: Vec<u64>,
    maps_buf: Vec<u8>,
    window: FlagsWindow,
}

impl Applier {
    /// An applier for pages of `page_size` bytes.
    pub fn new(page_size: u64) -> Self {
        Self {
            page_size,
            vma_cache: HashMap::new(),
            ranges: Vec::new(),
            filtered: Vec::new(),
            entries: Vec::new(),
            maps_buf: Vec::new(),
            window: FlagsWindow::default(),
        }
    }

    /// Mappings may have changed: they are re-read for the next round.
    pub fn forget_mappings(&mut self) {
        self.vma_cache.clear();
    }

    /// `apply_scheme` of the vaddr backend: ranges, then filters, then advice.
    pub fn apply(
        &mut self,
        procs: &mut Processes,
        io: &mut dyn PhysIo,
        t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        if !procs
            .get_mut(t.id)
            .is_some_and(crate::process::ProcessFiles::check_alive)
        {
            procs.mark_exited(t.id);
            return Err(OpsError::TargetGone {
                id: t.id,
                detail: format!("pid {} exited; {} not applied", t.id, s.action.name()),
            });
        }
        self.mapped_ranges(procs, t.id, r)?;
        let sz_filter_passed = self.filter(procs, io, t.id, s)?;
        let applied = match advice_of(s.action) {
            // stat: count what passed the filters
            None => 0,
            Some(_) if self.ranges.is_empty() => 0,
            Some(advice) => self.advise(procs, t.id, s, advice)?,
        };
        Ok(ApplyOutcome {
            applied,
            sz_filter_passed,
        })
    }

    /// The mapped, page-aligned parts of the region, into `self.ranges`.
    fn mapped_ranges(
        &mut self,
        procs: &mut Processes,
        id: TargetId,
        r: &Region,
    ) -> Result<(), OpsError> {
        if !self.vma_cache.contains_key(&id) {
            let p = procs.get_mut(id).expect("checked alive by the caller");
            let vmas: Vec<AddrRange> = p
                .read_maps(&mut self.maps_buf)?
                .iter()
                .map(|v| v.range())
                .collect();
            self.vma_cache.insert(id, vmas);
        }
        self.ranges.clear();
        mapped_parts(r.ar, &self.vma_cache[&id], self.page_size, &mut self.ranges);
        Ok(())
    }

    /// Narrows `self.ranges` to the pages that pass the scheme's page-level
    /// filters (from pagemap); returns the bytes that passed.
    fn filter(
        &mut self,
        procs: &mut Processes,
        io: &mut dyn PhysIo,
        id: TargetId,
        s: &Scheme,
    ) -> Result<u64, OpsError> {
        if !s.filters.iter().any(|f| !f.kind.is_core()) {
            return Ok(self.ranges.iter().map(|r| r.1).sum());
        }
        let page = self.page_size;
        let needs_folio = s.filters.iter().any(|f| {
            !f.kind.is_core() && !matches!(f.kind, FilterKind::Anon | FilterKind::Unmapped)
        });
        self.filtered.clear();
        let mut passed = 0;
        let p = procs.get_mut(id).expect("checked alive by the caller");
        for &(start, len) in &self.ranges {
            let (first_vpn, n) = (start / page, (len / page) as usize);
            if self.entries.len() < n {
                self.entries.resize(n, 0);
            }
            let got = p
                .pagemap()
                .read_entries(first_vpn, &mut self.entries[..n])?;
            let folios = needs_folio.then_some(Folios {
                io: &mut *io,
                window: &mut self.window,
            });
            passed += filtered_runs(
                s,
                first_vpn,
                &self.entries[..got],
                page,
                folios,
                &mut self.filtered,
            )?;
        }
        std::mem::swap(&mut self.ranges, &mut self.filtered);
        Ok(passed)
    }

    /// Advises `self.ranges`: `madvise` on the calling process (it takes
    /// every advice), `process_madvise` through the pidfd on another one.
    /// Returns the bytes advised.
    fn advise(
        &mut self,
        procs: &mut Processes,
        id: TargetId,
        s: &Scheme,
        advice: Advice,
    ) -> Result<u64, OpsError> {
        if u64::from(std::process::id()) == id {
            let mut done = 0;
            for &(start, len) in &self.ranges {
                match sys::madvise(start, len, advice) {
                    Ok(()) => done += len,
                    Err(e) => tracing::debug!(target: "damon::vaddr", "madvise: {e}"),
                }
            }
            return Ok(done);
        }
        let p = procs.get_mut(id).expect("checked alive by the caller");
        match p.pidfd_mut().madvise(&self.ranges, advice) {
            Ok(n) => Ok(n as u64),
            Err(e) => match e.raw_os_error() {
                Some(libc::ESRCH) => {
                    procs.mark_exited(id);
                    Err(OpsError::TargetGone {
                        id,
                        detail: format!("pid {id} exited during {}", s.action.name()),
                    })
                }
                Some(libc::EPERM) | Some(libc::EACCES) => Err(OpsError::PermissionDenied {
                    what: format!("process_madvise({}) on pid {id}", s.action.name()),
                    hint: "needs CAP_SYS_NICE and ptrace read access to the target".into(),
                }),
                // ENOMEM/EINVAL/EAGAIN on the first range: nothing applied
                _ => {
                    tracing::debug!(target: "damon::vaddr", pid = id, "process_madvise: {e}");
                    Ok(0)
                }
            },
        }
    }
}
