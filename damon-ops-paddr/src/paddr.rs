//! The `paddr` backend: monitors physical address ranges through the
//! page_idle bitmap (the kernel's `mm/damon/paddr.c`, minus the reverse
//! mapping, which user space does not have: page_idle does the rmap walk).

use crate::iomem;
use crate::numa::{self, NodeMap};
use crate::stat::FolioWalk;
use damon_core::backend::set_regions;
use damon_core::backend::{cold_score, hot_score};
use damon_core::damos::{Action, FilterKind, GoalMetric, Scheme, DAMOS_MAX_SCORE};
use damon_core::{AddrRange, ApplyOutcome, Attrs, Operations, OpsCtx, OpsError, Region, Target};
use damon_ops_common::physio::{KernelPhysIo, PhysIo};
use damon_ops_common::probe::ProbeReport;
use damon_ops_common::sampler::{PfnSampler, SamplerPolicy, SamplerStats};
use damon_ops_common::{slots, sys};

/// Where region-less targets get their regions at `init`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PaddrRegions {
    /// The largest System RAM block of `/proc/iomem` (what the kernel's
    /// DAMON modules monitor by default).
    #[default]
    LargestSystemRam,
    /// Every System RAM block.
    AllSystemRam,
    /// The memory of one NUMA node (memory-block sysfs), within System RAM.
    NumaNode(u32),
    /// These physical ranges (sorted, disjoint).
    Ranges(Vec<AddrRange>),
}

/// The hint of every DAMOS action paddr cannot perform.
pub const PADDR_ACTION_HINT: &str = "physical-address actions need the kernel's reverse mapping; \
     use the vaddr backend instead (pageout/cold/willneed via process_madvise)";

/// The physical address space backend.
///
/// ```no_run
/// // Needs root and CONFIG_IDLE_PAGE_TRACKING.
/// use damon_core::{Context, Target};
/// use damon_ops_paddr::{PaddrOps, PaddrRegions};
/// let mut ctx = Context::new();
/// ctx.set_ops("paddr", Box::new(PaddrOps::new(PaddrRegions::LargestSystemRam)?));
/// ctx.targets.push(Target::new(0)); // regions are filled in at init
/// let handles = damon_core::damon_start(vec![ctx], false).unwrap();
/// # Ok::<(), damon_core::OpsError>(())
/// ```
pub struct PaddrOps {
    regions: PaddrRegions,
    sampler: PfnSampler,
    page_size: u64,
    /// The context's `addr_unit`, seen at `init` and every sample.
    addr_unit: u64,
    walk: FolioWalk,
    /// The node of each PFN, read at the first `node_eligible_mem_bp` use.
    nodes: Option<NodeMap>,
}

impl std::fmt::Debug for PaddrOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaddrOps")
            .field("regions", &self.regions)
            .field("sampler", &self.sampler)
            .finish()
    }
}

impl PaddrOps {
    /// Probes the system and opens the page_idle bitmap and kpageflags.
    /// Errors name what is missing (e.g. `CONFIG_IDLE_PAGE_TRACKING`, root).
    pub fn new(regions: PaddrRegions) -> Result<Self, OpsError> {
        ProbeReport::run().require_paddr()?;
        let io = KernelPhysIo::open()?;
        Ok(Self::with_io(regions, Box::new(io), sys::page_size()))
    }

    /// A backend over any [`PhysIo`] (e.g. `damon_ops_common::testing::fake::FakePhysMem`)
    /// with the given page size.
    pub fn with_io(regions: PaddrRegions, io: Box<dyn PhysIo>, page_size: u64) -> Self {
        Self {
            regions,
            sampler: PfnSampler::new(io),
            page_size: page_size.max(1),
            addr_unit: 1,
            walk: FolioWalk::default(),
            nodes: None,
        }
    }

    /// Uses `nodes` as the PFN-to-node map instead of `/proc/zoneinfo`.
    pub fn with_node_map(mut self, nodes: NodeMap) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// The PFNs of a region's core-unit addresses.
    fn pfns(&self, r: &Region) -> std::ops::Range<u64> {
        let unit = u128::from(self.addr_unit.max(1));
        let page = u128::from(self.page_size);
        let pfn = |a: u64| u64::try_from(u128::from(a) * unit / page).unwrap_or(u64::MAX);
        let end = u64::try_from((u128::from(r.ar.end) * unit).div_ceil(page)).unwrap_or(u64::MAX);
        pfn(r.ar.start)..end
    }

    /// Replaces the batching policy.
    pub fn with_policy(mut self, policy: SamplerPolicy) -> Self {
        self.sampler.set_policy(policy);
        self
    }

    /// System calls made so far (bitmap and kpageflags).
    pub fn syscalls(&self) -> u64 {
        self.sampler.syscalls()
    }

    /// The sampler's counters.
    pub fn stats(&self) -> &SamplerStats {
        self.sampler.stats()
    }

    /// The physical ranges (real addresses) `init` gives region-less targets.
    pub fn default_ranges(&self) -> Result<Vec<AddrRange>, OpsError> {
        resolve_ranges(&self.regions)
    }
}

fn read_iomem() -> Result<Vec<iomem::IomemEntry>, OpsError> {
    let text = std::fs::read_to_string("/proc/iomem").map_err(|e| OpsError::Io {
        call: "read",
        path: "/proc/iomem".into(),
        source: e,
    })?;
    let entries = iomem::parse_iomem(&text)?;
    if iomem::is_hidden(&entries) {
        return Err(OpsError::PermissionDenied {
            what: "/proc/iomem".into(),
            hint: "needs root to see physical addresses in /proc/iomem".into(),
        });
    }
    Ok(entries)
}

/// The real physical ranges a [`PaddrRegions`] stands for on this machine.
pub fn resolve_ranges(mode: &PaddrRegions) -> Result<Vec<AddrRange>, OpsError> {
    let none = |what: &str| OpsError::Unsupported {
        what: what.into(),
        hint: "no System RAM listed in /proc/iomem".into(),
    };
    match mode {
        PaddrRegions::Ranges(r) => Ok(r.clone()),
        PaddrRegions::LargestSystemRam => iomem::largest_system_ram(&read_iomem()?)
            .map(|r| vec![r])
            .ok_or_else(|| none("largest System RAM")),
        PaddrRegions::AllSystemRam => {
            let r = iomem::system_ram(&read_iomem()?);
            if r.is_empty() {
                Err(none("System RAM"))
            } else {
                Ok(r)
            }
        }
        PaddrRegions::NumaNode(n) => {
            let node = numa::read_node_ranges(*n)?;
            let ram = iomem::system_ram(&read_iomem()?);
            let r = numa::intersect(&node, &ram);
            if r.is_empty() {
                Err(OpsError::Unsupported {
                    what: format!("NUMA node {n}"),
                    hint: "the node has no System RAM".into(),
                })
            } else {
                Ok(r)
            }
        }
    }
}

/// Real ranges to core units (`addr_unit`): starts round up, ends down,
/// empty results are dropped.
pub fn to_core_units(ranges: &[AddrRange], addr_unit: u64) -> Vec<AddrRange> {
    let u = addr_unit.max(1);
    ranges
        .iter()
        .map(|r| AddrRange::new(r.start.div_ceil(u), r.end / u))
        .filter(|r| !r.is_empty())
        .collect()
}

impl Operations for PaddrOps {
    fn syscalls(&self) -> Option<u64> {
        Some(PaddrOps::syscalls(self))
    }

    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.addr_unit = ctx.addr_unit.max(1);
        if ctx.targets.iter().all(|t| !t.regions.is_empty()) {
            return Ok(());
        }
        let ranges = to_core_units(&resolve_ranges(&self.regions)?, ctx.addr_unit);
        for t in ctx.targets.iter_mut().filter(|t| t.regions.is_empty()) {
            set_regions(t, &ranges, ctx.min_region_sz)?;
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        self.sampler.begin(slots::nr_slots(ctx.targets));
        self.addr_unit = ctx.addr_unit.max(1);
        let unit = u128::from(ctx.addr_unit.max(1));
        let page = u128::from(self.page_size);
        for (first, t) in slots::first_slots(ctx.targets) {
            for (i, r) in t.regions.iter_mut().enumerate() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
                let pfn = u128::from(r.sampling_addr) * unit / page;
                if let Ok(pfn) = u64::try_from(pfn) {
                    self.sampler.add(first + i, pfn);
                }
            }
        }
        self.sampler.mark_idle()
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        self.sampler.check()?;
        Ok(slots::update_access_rates(
            &self.sampler,
            ctx.targets,
            ctx.attrs,
            |_| true,
        ))
    }

    fn get_scheme_score(&self, attrs: &Attrs, _t: &Target, r: &Region, s: &Scheme) -> u32 {
        paddr_scheme_score(attrs, r, s)
    }

    fn check_action(&self, action: Action) -> Result<(), OpsError> {
        if action == Action::Stat {
            Ok(())
        } else {
            Err(OpsError::Unsupported {
                what: format!("DAMOS action {} on paddr", action.name()),
                hint: PADDR_ACTION_HINT.into(),
            })
        }
    }

    fn check_filter(&self, kind: &FilterKind) -> Result<(), OpsError> {
        damon_ops_common::folio::check_folio_filter(self.sampler.io(), kind)
    }

    fn check_goal_metric(&self, _metric: GoalMetric) -> Result<(), OpsError> {
        Ok(())
    }

    fn node_eligible_bytes(&mut self, r: &Region, nid: i32) -> Result<(u64, u64), OpsError> {
        if self.nodes.is_none() {
            self.nodes = Some(NodeMap::read()?);
        }
        let pfns = self.pfns(r);
        let nodes = self.nodes.as_ref().expect("set above");
        self.walk
            .node_bytes(self.sampler.io_mut(), pfns, nodes, nid, self.page_size)
    }

    /// `damon_pa_stat()`: with page-level filters, the bytes of the
    /// region's folios that pass them (in core units); without, 0, as the
    /// kernel reports nothing to filter.
    fn apply_scheme(
        &mut self,
        _attrs: &Attrs,
        _t: &Target,
        r: &Region,
        s: &Scheme,
    ) -> Result<ApplyOutcome, OpsError> {
        self.check_action(s.action)?;
        if !s.filters.iter().any(|f| !f.kind.is_core()) {
            return Ok(ApplyOutcome {
                applied: 0,
                sz_filter_passed: 0,
            });
        }
        let pfns = self.pfns(r);
        let passed =
            self.walk
                .filter_passed_bytes(self.sampler.io_mut(), pfns, s, self.page_size)?;
        Ok(ApplyOutcome {
            applied: 0,
            sz_filter_passed: passed / self.addr_unit.max(1),
        })
    }
}

/// The score the kernel's paddr backend gives (adds lru_prio/lru_deprio).
pub fn paddr_scheme_score(attrs: &Attrs, r: &Region, s: &Scheme) -> u32 {
    match s.action {
        Action::Pageout | Action::LruDeprio | Action::MigrateCold => cold_score(attrs, r, s),
        Action::LruPrio | Action::MigrateHot => hot_score(attrs, r, s),
        _ => DAMOS_MAX_SCORE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damon_core::{Context, Kdamond, VirtualClock};
    use damon_ops_common::testing::fake::FakePhysMem;
    use std::sync::Arc;

    #[test]
    fn core_units_round_inwards() {
        let r = to_core_units(
            &[AddrRange::new(0x1001, 0x9000), AddrRange::new(5, 9)],
            0x1000,
        );
        assert_eq!(r, vec![AddrRange::new(2, 9)]);
        assert_eq!(
            to_core_units(&[AddrRange::new(1, 2)], 0),
            vec![AddrRange::new(1, 2)]
        );
    }

    #[test]
    fn host_layout_resolves() {
        if !rustix::process::geteuid().is_root() {
            return; // /proc/iomem hides addresses from non-root readers
        }
        let all = resolve_ranges(&PaddrRegions::AllSystemRam).unwrap();
        let largest = resolve_ranges(&PaddrRegions::LargestSystemRam).unwrap();
        assert_eq!(largest.len(), 1);
        assert!(all.contains(&largest[0]));
        assert!(all.iter().all(|r| r.len() <= largest[0].len()));
        if std::path::Path::new("/sys/devices/system/node/node0").exists()
            && std::path::Path::new("/sys/devices/system/memory/block_size_bytes").exists()
        {
            let node = resolve_ranges(&PaddrRegions::NumaNode(0)).unwrap();
            assert!(!node.is_empty());
            for r in &node {
                assert!(
                    all.iter().any(|a| a.start <= r.start && r.end <= a.end),
                    "{r} outside System RAM"
                );
            }
        }
        let e = resolve_ranges(&PaddrRegions::NumaNode(999_999))
            .unwrap_err()
            .to_string();
        assert!(e.contains("NUMA node") || e.contains("node999999"), "{e}");
    }

    #[test]
    fn only_stat_is_supported() {
        let ops = PaddrOps::with_io(
            PaddrRegions::default(),
            Box::new(FakePhysMem::new(64)),
            4096,
        );
        assert!(ops.check_action(Action::Stat).is_ok());
        let e = ops.check_action(Action::Pageout).unwrap_err().to_string();
        assert!(e.contains("reverse mapping") && e.contains("vaddr"), "{e}");
    }

    #[test]
    fn finds_the_hot_range_on_fake_memory() {
        // 256 MiB of 4 KiB pages; PFNs 16384..20480 (64..80 MiB) are hot.
        let mut fake = FakePhysMem::new(65536);
        fake.add_hot(16384..20480, 1.0);
        let ops = PaddrOps::with_io(
            PaddrRegions::Ranges(vec![AddrRange::new(0, 256 << 20)]),
            Box::new(fake),
            4096,
        );
        let mut ctx = Context::new();
        ctx.set_ops("paddr", Box::new(ops));
        ctx.targets.push(Target::new(0));
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        ctx.seed = Some(3);
        let mut kd = Kdamond::new(ctx).unwrap();
        kd.init().unwrap();
        for _ in 0..400 {
            assert!(kd.step().is_none());
        }
        let hot = AddrRange::new(64 << 20, 80 << 20);
        let regions = &kd.ctx().targets[0].regions;
        let hot_seen: u64 = regions
            .iter()
            .filter(|r| r.last_nr_accesses > 0)
            .map(|r| r.ar.overlap(&hot))
            .sum();
        let cold_seen: u64 = regions
            .iter()
            .filter(|r| r.last_nr_accesses > 0)
            .map(|r| r.size() - r.ar.overlap(&hot))
            .sum();
        assert!(hot_seen >= hot.len() * 8 / 10, "hot bytes seen: {hot_seen}");
        assert!(
            cold_seen <= (240 << 20) / 10,
            "cold bytes seen: {cold_seen}"
        );
    }

    #[test]
    fn addr_unit_scales_sampled_pfns() {
        // Core addresses in 4 KiB units: the core range 0..65536 is 256 MiB.
        let mut fake = FakePhysMem::new(65536);
        fake.add_hot(0..65536, 1.0);
        let ops = PaddrOps::with_io(
            PaddrRegions::Ranges(vec![AddrRange::new(0, 256 << 20)]),
            Box::new(fake),
            4096,
        );
        let mut ctx = Context::new();
        ctx.set_ops("paddr", Box::new(ops));
        ctx.targets.push(Target::new(0));
        ctx.addr_unit = 4096;
        ctx.min_region_sz = 1;
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        ctx.seed = Some(3);
        let mut kd = Kdamond::new(ctx).unwrap();
        kd.init().unwrap();
        assert_eq!(kd.ctx().targets[0].regions.last().unwrap().ar.end, 65536);
        for _ in 0..40 {
            assert!(kd.step().is_none());
        }
        // everything is hot and every sampled PFN is within max_pfn
        assert!(kd.ctx().targets[0]
            .regions
            .iter()
            .all(|r| r.last_nr_accesses == 20));
    }
}
