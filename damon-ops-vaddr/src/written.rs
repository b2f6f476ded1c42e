//! The `vaddr-written` backend: **writes** to the calling process's own
//! memory, on kernels without idle page tracking and without privilege
//! (Linux 6.7+: a userfaultfd with `UFFD_FEATURE_WP_ASYNC` and the
//! `PAGEMAP_SCAN` ioctl, see [`damon_ops_common::sys::written`]).
//!
//! Per sample, each region's sampling page is write-protected at
//! `prepare_access_checks` (one ioctl per region); the kernel lifts the
//! protection at the first write to it, without a fault reaching us. At
//! `check_accesses` one `PAGEMAP_SCAN` over a span of nearby sampled pages
//! says which were written (at most one ioctl per region, fewer when
//! sampled pages are near each other). So a region's `nr_accesses` counts
//! the samples in which its sampling page was **written**: a page only read
//! is never seen, unlike the page_idle backends. Only sampled pages are
//! ever protected; one left protected after its sample costs the workload a
//! single in-kernel fault at its next write.
//!
//! The check does not pass `PM_SCAN_WP_MATCHING` (read and re-protect in
//! one call): over a span shared by nearby sampled pages it would also
//! protect every written page between them, and then a workload writing
//! there would fault. A sampled page needs no re-arming at check anyway:
//! the next sample protects its own new page, at prepare.
//!
//! Targets: the calling process only (a userfaultfd acts on its maker's
//! memory), and one context at a time over a mapping (a mapping is
//! registered with one userfaultfd: a second context over it is refused
//! with that reason); regions given up front are kept (as `fvaddr` does), otherwise
//! the kernel's three regions of the address space, refreshed at every
//! ops update. Writable mappings overlapping the regions are registered
//! with the userfaultfd at init and at every ops update (new mappings);
//! a page in a mapping the kernel refuses to register is not watched and
//! reads as not written. DAMOS actions are the vaddr ones, applied with
//! `madvise` to the mapped parts of a region.

use crate::actions::advice_of;
use crate::maps::parse_maps_named;
use crate::three_regions::three_regions;
use damon_core::damos::{Action, Scheme};
use damon_core::{AddrRange, ApplyOutcome, Attrs, Operations, OpsCtx, OpsError, Region, Target};
use damon_ops_common::sys::madvise;
use damon_ops_common::sys::written::{PageRun, WriteTracker};

/// The id this backend registers under.
pub const ID: &str = "vaddr-written";

const PAGE: u64 = 4096;
/// Sampled pages at most this far apart share one `PAGEMAP_SCAN`.
const SPAN_PAGES: u64 = 64;

/// The written-page backend of the calling process.
#[derive(Debug)]
pub struct WrittenOps {
    tracker: WriteTracker,
    fixed: Option<bool>,
    /// Writable mappings registered with the userfaultfd, sorted.
    registered: Vec<AddrRange>,
    /// Mappings of the last maps read, sorted (for applying actions).
    vmas: Vec<AddrRange>,
    /// Per region (in target order): the page protected this sample.
    sampled: Vec<Option<u64>>,
    /// Per region: whether its page was found written.
    written: Vec<bool>,
    order: Vec<(u64, usize)>,
    runs: Vec<PageRun>,
    maps_reads: u64,
}

impl WrittenOps {
    /// Opens the userfaultfd and checks `PAGEMAP_SCAN`; the error names
    /// what this kernel lacks and the version that added it.
    pub fn new() -> Result<Self, OpsError> {
        Ok(Self {
            tracker: WriteTracker::open()?,
            fixed: None,
            registered: Vec::new(),
            vmas: Vec::new(),
            sampled: Vec::new(),
            written: Vec::new(),
            order: Vec::new(),
            runs: vec![PageRun::default(); (SPAN_PAGES / 2 + 2) as usize],
            maps_reads: 0,
        })
    }

    /// System calls made so far (ioctls and maps reads).
    pub fn syscalls(&self) -> u64 {
        self.tracker.calls() + self.maps_reads
    }

    /// Re-reads `/proc/self/maps`, registers writable mappings that
    /// overlap `regions`, and returns the three regions of the address space.
    fn refresh(&mut self, regions: &[AddrRange]) -> Result<Option<[AddrRange; 3]>, OpsError> {
        self.maps_reads += 1;
        let text = std::fs::read_to_string("/proc/self/maps").map_err(|source| OpsError::Io {
            call: "read",
            path: "/proc/self/maps".into(),
            source,
        })?;
        let vmas = parse_maps_named(&text, "/proc/self/maps").map_err(|e| OpsError::Io {
            call: "parse",
            path: "/proc/self/maps".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        self.vmas = vmas.iter().map(|v| v.range()).collect();
        let mut registered = Vec::new();
        for v in vmas.iter().filter(|v| v.perms.write) {
            let r = v.range();
            if !regions.iter().any(|g| g.intersects(&r)) {
                continue;
            }
            // one already registered by us is skipped by the kernel; one
            // it cannot take (vvar, another userfaultfd's) is not watched:
            // in the three regions that is said in the log; in regions the
            // caller gave, it is an error (they would read as never written)
            match self.tracker.register(r.start, r.end) {
                Ok(()) => registered.push(r),
                Err(e) if self.fixed == Some(true) => {
                    let why = if e.errno() == Some(libc::EBUSY) {
                        "another userfaultfd (another vaddr-written context of this process?) watches it"
                    } else {
                        "the kernel cannot write-protect this mapping"
                    };
                    return Err(OpsError::Unsupported {
                        what: format!("watching writes to {r} ({e})"),
                        hint: format!(
                            "{why}; a userfaultfd registers whole mappings, one at a time"
                        ),
                    });
                }
                Err(e) => tracing::debug!(target: "damon::written", "not watched: {e}"),
            }
        }
        registered.sort_by_key(|r| r.start);
        self.registered = registered;
        Ok(three_regions(vmas.iter().map(|v| v.range()), PAGE).ok())
    }

    fn is_registered(&self, page: u64) -> bool {
        let i = self.registered.partition_point(|r| r.end <= page);
        self.registered.get(i).is_some_and(|r| r.start <= page)
    }

    fn check_target(t: &Target) -> Result<(), OpsError> {
        let me = u64::from(std::process::id());
        if t.id == me {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("{ID} on pid {}", t.id),
                hint: format!(
                    "a userfaultfd watches the memory of the process that made it: {ID} monitors the calling process (pid {me}) only; use vaddr (idle page tracking) or the kernel engine for others"
                ),
            })
        }
    }

    fn all_regions(targets: &[Target]) -> Vec<AddrRange> {
        targets
            .iter()
            .flat_map(|t| t.regions.iter().map(|r| r.ar))
            .collect()
    }
}

impl Operations for WrittenOps {
    fn syscalls(&self) -> Option<u64> {
        Some(WrittenOps::syscalls(self))
    }

    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter() {
            Self::check_target(t)?;
        }
        let fixed = ctx.targets.iter().all(|t| !t.regions.is_empty());
        self.fixed = Some(fixed);
        self.update(ctx)
    }

    fn update(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        let fixed = self.fixed.unwrap_or(false);
        // the whole space at first, to register what the regions will cover
        let wanted = if fixed {
            Self::all_regions(ctx.targets)
        } else {
            vec![AddrRange::new(0, u64::MAX)]
        };
        let three = self.refresh(&wanted)?;
        if !fixed {
            if let Some(three) = three {
                for t in ctx.targets.iter_mut() {
                    damon_core::backend::set_regions(t, &three, ctx.min_region_sz).map_err(
                        |e| OpsError::Unsupported {
                            what: "the three regions of the calling process".into(),
                            hint: e.to_string(),
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.sampled.clear();
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
                let page = r.sampling_addr & !(PAGE - 1);
                let protected = self.is_registered(page)
                    && match self.tracker.protect(page, page + PAGE) {
                        Ok(()) => true,
                        // unmapped since the last maps read: not watched
                        Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::EINVAL)) => false,
                        Err(e) => return Err(e.into()),
                    };
                self.sampled.push(protected.then_some(page));
            }
        }
        Ok(())
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        self.written.clear();
        self.written.resize(self.sampled.len(), false);
        self.order.clear();
        self.order.extend(
            self.sampled
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|p| (p, i))),
        );
        self.order.sort_unstable();
        let mut g = 0;
        while g < self.order.len() {
            // a span of sampled pages near each other: one scan
            let first = self.order[g].0;
            let mut end = g + 1;
            while end < self.order.len() && self.order[end].0 + PAGE - first <= SPAN_PAGES * PAGE {
                end += 1;
            }
            let last = self.order[end - 1].0;
            let n = self
                .tracker
                .written(first, last + PAGE, &mut self.runs)
                .map_err(OpsError::from)?;
            let runs = &self.runs[..n];
            for &(page, slot) in &self.order[g..end] {
                self.written[slot] = runs.iter().any(|r| r.start <= page && page < r.end);
            }
            g = end;
        }
        let mut max = 0;
        let mut slot = 0;
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                let w = self.written.get(slot).copied().unwrap_or(false);
                damon_core::update_region_access_rate(r, w, ctx.attrs);
                max = max.max(r.nr_accesses);
                slot += 1;
            }
        }
        Ok(max)
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
                hint: crate::ops::VADDR_ACTION_HINT.into(),
            })
        }
    }

    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        _t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        let Some(advice) = advice_of(s.action) else {
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed: r.size(),
            });
        };
        let mut applied = 0;
        for v in self.vmas.iter().filter(|v| v.intersects(&r.ar)) {
            let (start, end) = (v.start.max(r.ar.start), v.end.min(r.ar.end));
            match madvise(start, end - start, advice) {
                Ok(()) => applied += end - start,
                // unmapped since the maps were read: nothing there
                Err(e) if e.errno() == Some(libc::ENOMEM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ApplyOutcome {
            applied,
            sz_filter_passed: r.size(),
        })
    }

    fn validates_targets(&self) -> bool {
        false
    }
}
