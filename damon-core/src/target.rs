//! Monitoring targets: `struct damon_target`.

use crate::region::{AddrRange, Region};

/// Identifies what a target monitors. Its meaning belongs to the backend: a
/// process id for `vaddr` and `fvaddr`, ignored by `paddr`, any key for a
/// custom backend.
pub type TargetId = u64;

/// One monitoring target: an address space and its regions, sorted by
/// address and disjoint.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Target {
    /// Backend-defined identity (a pid for vaddr).
    pub id: TargetId,
    /// Regions in address order, non-overlapping, non-empty.
    pub regions: Vec<Region>,
    /// Only meaningful on a commit source: remove the matching running target.
    pub obsolete: bool,
}

impl Target {
    /// A target without regions (the backend builds them at start, as vaddr
    /// does, or the caller sets them with [`Target::with_ranges`]).
    pub fn new(id: TargetId) -> Self {
        Self {
            id,
            regions: Vec::new(),
            obsolete: false,
        }
    }

    /// A process target from the pid types Rust gives
    /// (`std::process::id()`, `Child::id()`).
    ///
    /// ```
    /// let t = damon_core::Target::from_pid(std::process::id());
    /// assert_eq!(t.id, u64::from(std::process::id()));
    /// ```
    pub fn from_pid(pid: u32) -> Self {
        Self::new(TargetId::from(pid))
    }

    /// A target whose initial regions are `ranges` (the kernel's init_regions).
    ///
    /// ```
    /// use damon_core::{AddrRange, Target};
    /// let t = Target::with_ranges(0, &[AddrRange::new(0, 4096), AddrRange::new(8192, 16384)]);
    /// assert_eq!(t.regions.len(), 2);
    /// ```
    pub fn with_ranges(id: TargetId, ranges: &[AddrRange]) -> Self {
        Self {
            id,
            regions: ranges.iter().map(|r| Region::new(r.start, r.end)).collect(),
            obsolete: false,
        }
    }

    /// Number of regions (`damon_nr_regions`).
    pub fn nr_regions(&self) -> usize {
        self.regions.len()
    }

    /// Total bytes covered by the regions.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(Region::size).sum()
    }

    /// The region ranges, in order.
    pub fn ranges(&self) -> Vec<AddrRange> {
        self.regions.iter().map(|r| r.ar).collect()
    }
}
