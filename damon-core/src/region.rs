//! Monitoring regions: `struct damon_region` and `struct damon_addr_range`.

/// Basis points of a whole (10,000), the unit of the kernel's ratios.
pub const BP_PER_ACCESS: u32 = 10_000;

/// A half-open address range `[start, end)`, the kernel's `damon_addr_range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AddrRange {
    /// First address in the range.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl AddrRange {
    /// Creates `[start, end)`.
    ///
    /// ```
    /// let r = damon_core::AddrRange::new(4096, 8192);
    /// assert_eq!(r.len(), 4096);
    /// ```
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Size in bytes (0 for an empty or inverted range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True when the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when the two ranges share at least one byte (`damon_intersect`).
    pub const fn intersects(&self, other: &AddrRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// True when `addr` lies in the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Bytes shared with `other`.
    pub fn overlap(&self, other: &AddrRange) -> u64 {
        let s = self.start.max(other.start);
        let e = self.end.min(other.end);
        e.saturating_sub(s)
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// One monitoring region (`struct damon_region`): a range whose pages are
/// assumed to share an access frequency, sampled through one address per
/// sampling interval.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Region {
    /// The address range; never empty.
    pub ar: AddrRange,
    /// Address whose access is checked in the current sampling interval.
    pub sampling_addr: u64,
    /// Sampling intervals of the current aggregation in which an access was
    /// seen; reset at every aggregation.
    pub nr_accesses: u32,
    /// Number of aggregation intervals the access pattern has been kept.
    pub age: u32,
    /// `nr_accesses` of the previous aggregation.
    pub last_nr_accesses: u32,
}

impl Region {
    /// A fresh region with zeroed counters (`damon_new_region`).
    pub const fn new(start: u64, end: u64) -> Self {
        Self {
            ar: AddrRange::new(start, end),
            sampling_addr: start,
            nr_accesses: 0,
            age: 0,
            last_nr_accesses: 0,
        }
    }

    /// Size in bytes (`damon_sz_region`).
    pub const fn size(&self) -> u64 {
        self.ar.len()
    }
}

/// Rounds `x` down to a multiple of `align` (`ALIGN_DOWN`; 0 or 1 = no alignment).
pub const fn align_down(x: u64, align: u64) -> u64 {
    if align <= 1 {
        x
    } else {
        x - x % align
    }
}

/// Rounds `x` up to a multiple of `align` (`ALIGN`), saturating at the top
/// of the space (0 or 1 = no alignment).
pub const fn align_up(x: u64, align: u64) -> u64 {
    if align <= 1 {
        x
    } else {
        match x % align {
            0 => x,
            r => x.saturating_add(align - r),
        }
    }
}
