//! Folios for the page-level DAMOS filters (the kernel's
//! `damos_folio_filter_match()` in `ops-common.c`), from user space:
//! `/proc/kpageflags` gives a page's LRU, active, anonymous and mapped
//! state and where its folio starts and ends, `/proc/kpagecgroup` its
//! memory cgroup, and the page_idle bitmap whether it is young.
//!
//! [`FlagsWindow`] reads kpageflags a window at a time, so walking a region
//! page by page costs one `pread` per window, not per page.

use crate::kpageflags::{PageFlags, KPF_ACTIVE, KPF_ANON, KPF_MMAP};
use crate::physio::PhysIo;
use damon_core::damos::{FilterKind, PageInfo, Scheme};
use damon_core::OpsError;

/// PFNs per kpageflags read.
const WINDOW: u64 = 1024;
/// Pages scanned at most to find a folio's head or end (a 1 GiB folio).
const MAX_FOLIO_PAGES: u64 = 1 << 18;

/// A folio as kpageflags shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folio {
    /// PFN of its first page.
    pub head: u64,
    /// Pages in it.
    pub nr_pages: u64,
    /// The head page's flags.
    pub flags: PageFlags,
}

impl Folio {
    /// The PFNs it covers.
    pub fn pfns(&self) -> std::ops::Range<u64> {
        self.head..self.head + self.nr_pages
    }
}

/// A cached, aligned window of `/proc/kpageflags`.
#[derive(Debug, Default)]
pub struct FlagsWindow {
    base: u64,
    words: Vec<u64>,
    bytes: Vec<u8>,
}

impl FlagsWindow {
    /// The flags of `pfn`, `None` past the last PFN the kernel reports.
    pub fn flags(&mut self, io: &mut dyn PhysIo, pfn: u64) -> Result<Option<PageFlags>, OpsError> {
        if pfn < self.base || pfn >= self.base + self.words.len() as u64 {
            self.load(io, pfn - pfn % WINDOW)?;
        }
        Ok(pfn
            .checked_sub(self.base)
            .and_then(|i| self.words.get(i as usize))
            .map(|&w| PageFlags(w)))
    }

    fn load(&mut self, io: &mut dyn PhysIo, base: u64) -> Result<(), OpsError> {
        self.bytes.resize((WINDOW * 8) as usize, 0);
        let n = io.kpageflags_read(base * 8, &mut self.bytes)?;
        self.base = base;
        self.words.clear();
        self.words.extend(
            self.bytes[..n - n % 8]
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))),
        );
        Ok(())
    }

    /// The LRU folio `pfn` belongs to (`damon_get_folio()`, which also
    /// takes tails to their head), or `None` for a page that is not on an
    /// LRU list (free, slab, page tables, HugeTLB, no page).
    pub fn folio_of(&mut self, io: &mut dyn PhysIo, pfn: u64) -> Result<Option<Folio>, OpsError> {
        let Some(f) = self.flags(io, pfn)? else {
            return Ok(None);
        };
        if !f.is_lru() || f.is_hugetlb() {
            return Ok(None);
        }
        let mut head = pfn;
        let mut flags = f;
        while flags.is_tail() {
            if head == 0 || pfn - head >= MAX_FOLIO_PAGES {
                return Ok(None);
            }
            head -= 1;
            match self.flags(io, head)? {
                Some(g) => flags = g,
                None => return Ok(None),
            }
        }
        let mut nr = 1;
        if flags.is_head() {
            while nr < MAX_FOLIO_PAGES {
                match self.flags(io, head + nr)? {
                    Some(g) if g.is_tail() => nr += 1,
                    _ => break,
                }
            }
        }
        Ok(Some(Folio {
            head,
            nr_pages: nr,
            flags,
        }))
    }
}

/// What the page-level filters of `s` need beyond kpageflags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterNeeds {
    /// A memcg filter: read `/proc/kpagecgroup`.
    pub memcg: bool,
    /// A young filter: read (and reset) the page_idle bit.
    pub young: bool,
}

impl FilterNeeds {
    /// The needs of a scheme's page-level filters.
    pub fn of(s: &Scheme) -> Self {
        let mut n = Self::default();
        for f in s.filters.iter().filter(|f| !f.kind.is_core()) {
            match f.kind {
                FilterKind::Memcg { .. } => n.memcg = true,
                FilterKind::Young => n.young = true,
                _ => {}
            }
        }
        n
    }
}

/// The filter facts of a folio that kpageflags (and kpagecgroup, when
/// `needs.memcg`) give; `young` is left for [`folio_young`].
pub fn folio_info(
    io: &mut dyn PhysIo,
    folio: &Folio,
    page_size: u64,
    needs: FilterNeeds,
) -> Result<PageInfo, OpsError> {
    let f = folio.flags;
    let memcg_id = if needs.memcg {
        let mut b = [0u8; 8];
        let n = io.kpagecgroup_read(folio.head * 8, &mut b)?;
        // 0: charged to no cgroup, which matches no memcg filter
        Some(if n == 8 { u64::from_ne_bytes(b) } else { 0 })
    } else {
        None
    };
    Ok(PageInfo {
        anon: Some(f.has(KPF_ANON)),
        active: Some(f.has(KPF_ACTIVE)),
        memcg_id,
        young: None,
        folio_size: Some(folio.nr_pages * page_size),
        unmapped: Some(!f.has(KPF_MMAP)),
    })
}

/// `damon_folio_young()` then `damon_folio_mkold()`: whether the folio was
/// accessed since it was last marked idle (its page_idle bit is clear; the
/// kernel's read of the bitmap walks the reverse map for accessed bits),
/// and marks it idle again when it was.
pub fn folio_young(io: &mut dyn PhysIo, head: u64) -> Result<bool, OpsError> {
    let offset = head / 64 * 8;
    let bit = 1u64 << (head % 64);
    let mut b = [0u8; 8];
    let n = io.bitmap_read(offset, &mut b)?;
    if n < 8 {
        // past the bitmap's last full word: the kernel reports no state
        return Ok(false);
    }
    let young = u64::from_ne_bytes(b) & bit == 0;
    if young {
        io.bitmap_write(offset, &bit.to_ne_bytes())?;
    }
    Ok(young)
}

/// Whether the folio passes the page-level filters of `s`, evaluating the
/// young filter (which resets the folio's young state) only if the
/// decision reaches it, as the kernel evaluates filters in order.
pub fn folio_passes(
    io: &mut dyn PhysIo,
    s: &Scheme,
    folio: &Folio,
    page_size: u64,
    needs: FilterNeeds,
) -> Result<bool, OpsError> {
    let info = folio_info(io, folio, page_size, needs)?;
    info_passes(io, s, folio.head, &info)
}

/// Whether a folio whose facts are `info` (its head at PFN `head`) passes
/// the page-level filters of `s`; the young state is read (and reset) only
/// if a young filter decides, and a failed read is the error returned.
pub fn info_passes(
    io: &mut dyn PhysIo,
    s: &Scheme,
    head: u64,
    info: &PageInfo,
) -> Result<bool, OpsError> {
    let mut young_err = None;
    let pass =
        damon_core::damos::ops_filters_pass_lazy(s, info, &mut || match folio_young(io, head) {
            Ok(y) => Some(y),
            Err(e) => {
                young_err = Some(e);
                None
            }
        });
    match young_err {
        Some(e) => Err(e),
        None => Ok(pass),
    }
}

/// Whether the page-level filter `kind` can be evaluated with `io`: a
/// memcg filter needs `/proc/kpagecgroup` (a kernel with `CONFIG_MEMCG`).
pub fn check_folio_filter(io: &dyn PhysIo, kind: &FilterKind) -> Result<(), OpsError> {
    match kind {
        FilterKind::Memcg { .. } if !io.has_kpagecgroup() => Err(OpsError::Unsupported {
            what: "DAMOS filter memcg".into(),
            hint: format!(
                "no {} (kernel built without CONFIG_MEMCG)",
                crate::physio::KPAGECGROUP
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpageflags::{KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_LRU, KPF_THP};
    use crate::sys::SysError;

    /// kpageflags from a table; no bitmap.
    struct Table(Vec<u64>, u64);
    impl PhysIo for Table {
        fn bitmap_read(&mut self, _: u64, _: &mut [u8]) -> Result<usize, SysError> {
            Ok(0)
        }
        fn bitmap_write(&mut self, _: u64, _: &[u8]) -> Result<usize, SysError> {
            Ok(0)
        }
        fn kpageflags_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
            self.1 += 1;
            let first = (offset / 8) as usize;
            let mut n = 0;
            for (i, c) in buf.chunks_exact_mut(8).enumerate() {
                let Some(w) = self.0.get(first + i) else {
                    break;
                };
                c.copy_from_slice(&w.to_ne_bytes());
                n += 8;
            }
            Ok(n)
        }
        fn syscalls(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn folios_from_heads_tails_and_order_zero_pages() {
        let lru = 1 << KPF_LRU;
        let head = lru | 1 << KPF_COMPOUND_HEAD | 1 << KPF_THP;
        let tail = lru | 1 << KPF_COMPOUND_TAIL | 1 << KPF_THP;
        // pfn 0: free; 1: order-0 LRU; 2..6: a 4-page folio; 6: order-0
        let mut t = Table(vec![0, lru, head, tail, tail, tail, lru], 0);
        let mut w = FlagsWindow::default();
        assert_eq!(w.folio_of(&mut t, 0).unwrap(), None, "not on an LRU list");
        assert_eq!(w.folio_of(&mut t, 1).unwrap().unwrap().nr_pages, 1);
        for pfn in 2..6 {
            let f = w.folio_of(&mut t, pfn).unwrap().unwrap();
            assert_eq!((f.head, f.nr_pages), (2, 4), "pfn {pfn}");
        }
        assert_eq!(w.folio_of(&mut t, 6).unwrap().unwrap().pfns(), 6..7);
        assert_eq!(w.folio_of(&mut t, 99).unwrap(), None, "past the last PFN");
        assert_eq!(t.1, 2, "one read per window (the second found nothing)");
    }

    #[test]
    fn memcg_filters_need_kpagecgroup() {
        let t = Table(vec![], 0);
        let e = check_folio_filter(&t, &FilterKind::Memcg { memcg_id: 7 }).unwrap_err();
        assert!(e.to_string().contains("kpagecgroup"), "{e}");
        assert!(check_folio_filter(&t, &FilterKind::Young).is_ok());
    }
}
