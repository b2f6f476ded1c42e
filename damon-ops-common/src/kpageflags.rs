//! `/proc/kpageflags`: one 64-bit flags word per PFN.
//!
//! Bit numbers are from the kernel's `Documentation/admin-guide/mm/pagemap.rst`
//! (section "/proc/kpageflags") and `include/uapi/linux/kernel-page-flags.h`.
//!
//! Caveat: on 6.12 (at least 6.12.117) `KPF_KSM` (21) is set for **every**
//! anonymous page, because the kernel tests the mapping pointer against a
//! mask that also matches plain anonymous mappings. Do not use bit 21 to
//! detect KSM pages there.

/// Page is locked.
pub const KPF_LOCKED: u32 = 0;
/// Page has an I/O error.
pub const KPF_ERROR: u32 = 1;
/// Page has been referenced since last LRU list enqueue/requeue.
pub const KPF_REFERENCED: u32 = 2;
/// Page has up-to-date data.
pub const KPF_UPTODATE: u32 = 3;
/// Page is dirty.
pub const KPF_DIRTY: u32 = 4;
/// Page is on an LRU list; only such pages carry page_idle state.
pub const KPF_LRU: u32 = 5;
/// Page is on the active LRU list.
pub const KPF_ACTIVE: u32 = 6;
/// Page is managed by the SLAB/SLUB allocator.
pub const KPF_SLAB: u32 = 7;
/// Page is being written back.
pub const KPF_WRITEBACK: u32 = 8;
/// Page will be reclaimed soon.
pub const KPF_RECLAIM: u32 = 9;
/// Page is free in the buddy allocator.
pub const KPF_BUDDY: u32 = 10;
/// Page is memory-mapped.
pub const KPF_MMAP: u32 = 11;
/// Page is anonymous.
pub const KPF_ANON: u32 = 12;
/// Page is in the swap cache.
pub const KPF_SWAPCACHE: u32 = 13;
/// Page is backed by swap (or RAM).
pub const KPF_SWAPBACKED: u32 = 14;
/// First page of a compound page (a large folio's head).
pub const KPF_COMPOUND_HEAD: u32 = 15;
/// A non-first page of a compound page (a tail: carries no idle state).
pub const KPF_COMPOUND_TAIL: u32 = 16;
/// Part of a HugeTLB page.
pub const KPF_HUGE: u32 = 17;
/// Page is not evictable.
pub const KPF_UNEVICTABLE: u32 = 18;
/// Hardware-poisoned page.
pub const KPF_HWPOISON: u32 = 19;
/// No page frame exists at this PFN.
pub const KPF_NOPAGE: u32 = 20;
/// KSM page. Unreliable on 6.12 (set for every anonymous page), see the module docs.
pub const KPF_KSM: u32 = 21;
/// Part of a transparent huge page (or another large LRU folio).
pub const KPF_THP: u32 = 22;
/// Page is offline.
pub const KPF_OFFLINE: u32 = 23;
/// The zero page (or the huge zero page).
pub const KPF_ZERO_PAGE: u32 = 24;
/// Page is idle (page_idle tracking).
pub const KPF_IDLE: u32 = 25;
/// Page is a page-table page.
pub const KPF_PGTABLE: u32 = 26;

/// A decoded `/proc/kpageflags` word.
///
/// ```
/// use damon_ops_common::kpageflags::{PageFlags, KPF_LRU, KPF_ANON};
/// let f = PageFlags((1 << KPF_LRU) | (1 << KPF_ANON));
/// assert!(f.is_lru() && f.has(KPF_ANON) && !f.is_tail());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageFlags(pub u64);

impl PageFlags {
    /// Decodes a word as read from the file (native endianness).
    pub fn from_ne_bytes(b: [u8; 8]) -> Self {
        Self(u64::from_ne_bytes(b))
    }

    /// True if bit `kpf` is set.
    #[inline]
    pub const fn has(self, kpf: u32) -> bool {
        kpf < 64 && self.0 & (1 << kpf) != 0
    }

    /// On an LRU list (tracked by page_idle).
    #[inline]
    pub const fn is_lru(self) -> bool {
        self.has(KPF_LRU)
    }

    /// The head of a compound page.
    #[inline]
    pub const fn is_head(self) -> bool {
        self.has(KPF_COMPOUND_HEAD)
    }

    /// A tail of a compound page.
    #[inline]
    pub const fn is_tail(self) -> bool {
        self.has(KPF_COMPOUND_TAIL)
    }

    /// Part of a THP (or large LRU folio).
    #[inline]
    pub const fn is_thp(self) -> bool {
        self.has(KPF_THP)
    }

    /// Part of a HugeTLB page (never tracked by page_idle).
    #[inline]
    pub const fn is_hugetlb(self) -> bool {
        self.has(KPF_HUGE)
    }

    /// No page frame at this PFN.
    #[inline]
    pub const fn is_nopage(self) -> bool {
        self.has(KPF_NOPAGE)
    }

    /// A tail of a large LRU folio (a THP), whose head carries the idle
    /// state we need. Tails of HugeTLB pages, of the huge zero page or of
    /// slab compound pages are not tracked at all. (For a tail the kernel
    /// reports the folio's LRU flag.)
    #[inline]
    pub const fn is_trackable_tail(self) -> bool {
        self.is_tail() && !self.is_hugetlb() && self.is_lru()
    }

    /// Names of the set flags, for diagnostics.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [&str; 27] = [
            "locked",
            "error",
            "referenced",
            "uptodate",
            "dirty",
            "lru",
            "active",
            "slab",
            "writeback",
            "reclaim",
            "buddy",
            "mmap",
            "anon",
            "swapcache",
            "swapbacked",
            "compound_head",
            "compound_tail",
            "huge",
            "unevictable",
            "hwpoison",
            "nopage",
            "ksm",
            "thp",
            "offline",
            "zero_page",
            "idle",
            "pgtable",
        ];
        (0..27u32)
            .filter(|&b| self.has(b))
            .map(|b| NAMES[b as usize])
            .collect()
    }
}

impl std::fmt::Display for PageFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x} [{}]", self.0, self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_anonymous_page_seen_in_the_guest() {
        // Observed in the 6.12 guest for a present anonymous page.
        let f = PageFlags(0x4_0020_5828);
        assert!(f.is_lru());
        assert!(f.has(KPF_UPTODATE) && f.has(KPF_MMAP) && f.has(KPF_ANON) && f.has(KPF_SWAPBACKED));
        assert!(
            f.has(KPF_KSM),
            "the 6.12 KPF_KSM bug sets bit 21 on every anon page"
        );
        assert!(!f.is_head() && !f.is_tail() && !f.is_thp());
        assert!(f.to_string().contains("lru"));
    }

    #[test]
    fn thp_tail_is_trackable_but_hugetlb_and_slab_tails_are_not() {
        let thp_tail = PageFlags((1 << KPF_COMPOUND_TAIL) | (1 << KPF_THP) | (1 << KPF_LRU));
        assert!(thp_tail.is_trackable_tail());
        let huge_tail = PageFlags((1 << KPF_COMPOUND_TAIL) | (1 << KPF_HUGE));
        assert!(!huge_tail.is_trackable_tail());
        let slab_tail = PageFlags((1 << KPF_COMPOUND_TAIL) | (1 << KPF_SLAB));
        assert!(!slab_tail.is_trackable_tail());
        let huge_zero_tail =
            PageFlags((1 << KPF_COMPOUND_TAIL) | (1 << KPF_THP) | (1 << KPF_ZERO_PAGE));
        assert!(!huge_zero_tail.is_trackable_tail());
        assert!(!PageFlags(u64::MAX).has(64));
    }
}
