//! `/proc/PID/pagemap`: one 64-bit entry per virtual page.
//!
//! Bit layout from the kernel's `Documentation/admin-guide/mm/pagemap.rst`:
//! bits 0-54 the PFN if present (zero without `CAP_SYS_ADMIN`), or the swap
//! type (bits 0-4) and offset (bits 5-54) if swapped; bit 55 soft-dirty;
//! bit 56 exclusively mapped; bit 57 uffd-wp; bit 58 guard region; bit 61
//! file page or shared anonymous; bit 62 swapped; bit 63 present.

use crate::sys::{KFile, SysError};

/// Mask of the PFN field (bits 0-54).
pub const PM_PFN_MASK: u64 = (1 << 55) - 1;
/// Soft-dirty (bit 55).
pub const PM_SOFT_DIRTY: u32 = 55;
/// Page exclusively mapped (bit 56).
pub const PM_MMAP_EXCLUSIVE: u32 = 56;
/// Userfaultfd write-protected (bit 57).
pub const PM_UFFD_WP: u32 = 57;
/// Guard region (bit 58, 6.14+).
pub const PM_GUARD_REGION: u32 = 58;
/// File page or shared anonymous (bit 61).
pub const PM_FILE: u32 = 61;
/// Swapped (bit 62): the low bits hold a swap entry, not a PFN.
pub const PM_SWAP: u32 = 62;
/// Present in RAM (bit 63).
pub const PM_PRESENT: u32 = 63;

/// Bytes per pagemap entry.
pub const PAGEMAP_ENTRY_BYTES: u64 = 8;

/// A decoded pagemap entry.
///
/// ```
/// use damon_ops_common::pagemap::PagemapEntry;
/// let e = PagemapEntry((1 << 63) | 0x1234);
/// assert_eq!(e.pfn(), Some(0x1234));
/// let swapped = PagemapEntry((1 << 62) | (7 << 5) | 2);
/// assert_eq!(swapped.pfn(), None);
/// assert_eq!(swapped.swap(), Some((2, 7)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PagemapEntry(pub u64);

impl PagemapEntry {
    #[inline]
    const fn bit(self, b: u32) -> bool {
        self.0 & (1 << b) != 0
    }

    /// Decodes an entry as read from the file (native endianness).
    pub fn from_ne_bytes(b: [u8; 8]) -> Self {
        Self(u64::from_ne_bytes(b))
    }

    /// Present in RAM.
    #[inline]
    pub const fn present(self) -> bool {
        self.bit(PM_PRESENT)
    }

    /// Swapped out (its low bits are a swap entry).
    #[inline]
    pub const fn swapped(self) -> bool {
        self.bit(PM_SWAP)
    }

    /// A file page or shared anonymous page.
    #[inline]
    pub const fn file_or_shared_anon(self) -> bool {
        self.bit(PM_FILE)
    }

    /// Mapped by exactly one process.
    #[inline]
    pub const fn exclusive(self) -> bool {
        self.bit(PM_MMAP_EXCLUSIVE)
    }

    /// Soft-dirty.
    #[inline]
    pub const fn soft_dirty(self) -> bool {
        self.bit(PM_SOFT_DIRTY)
    }

    /// Userfaultfd write-protected.
    #[inline]
    pub const fn uffd_wp(self) -> bool {
        self.bit(PM_UFFD_WP)
    }

    /// The PFN, only for a present, non-swapped entry whose PFN field is
    /// visible (non-zero; zero means the reader lacks `CAP_SYS_ADMIN`).
    /// A swapped entry never yields a PFN: its bits are a swap offset.
    #[inline]
    pub const fn pfn(self) -> Option<u64> {
        let pfn = self.0 & PM_PFN_MASK;
        if self.present() && !self.swapped() && pfn != 0 {
            Some(pfn)
        } else {
            None
        }
    }

    /// `(swap type, swap offset)` of a swapped entry.
    pub const fn swap(self) -> Option<(u64, u64)> {
        if self.swapped() {
            Some((self.0 & 0x1f, (self.0 & PM_PFN_MASK) >> 5))
        } else {
            None
        }
    }
}

/// An open pagemap file with a reused read buffer.
#[derive(Debug)]
pub struct PagemapFile {
    file: KFile,
    buf: Vec<u8>,
}

impl PagemapFile {
    /// Opens `/proc/self/pagemap` (`pid` None) or `/proc/PID/pagemap`.
    pub fn open(pid: Option<i32>) -> Result<Self, SysError> {
        let path = match pid {
            None => "/proc/self/pagemap".to_string(),
            Some(p) => format!("/proc/{p}/pagemap"),
        };
        Ok(Self {
            file: KFile::open_read(&path)?,
            buf: Vec::new(),
        })
    }

    /// The path it was opened with.
    pub fn path(&self) -> &str {
        self.file.path()
    }

    /// System calls made on the file.
    pub fn calls(&self) -> u64 {
        self.file.calls()
    }

    /// Makes room for reads of up to `entries` entries now, so that later
    /// reads of that length allocate nothing.
    pub fn reserve_entries(&mut self, entries: usize) {
        let bytes = entries * PAGEMAP_ENTRY_BYTES as usize;
        if self.buf.len() < bytes {
            self.buf.resize(bytes, 0);
        }
    }

    /// Reads the entries of virtual pages `first_vpn..first_vpn + out.len()`
    /// with one `pread` (the kernel fills any length in one call). Returns
    /// how many entries were filled: fewer at the end of the address space,
    /// 0 if the process has exited.
    pub fn read_entries(&mut self, first_vpn: u64, out: &mut [u64]) -> Result<usize, SysError> {
        let bytes = out.len() * PAGEMAP_ENTRY_BYTES as usize;
        if self.buf.len() < bytes {
            self.buf.resize(bytes, 0);
        }
        let offset = first_vpn.saturating_mul(PAGEMAP_ENTRY_BYTES);
        let mut done = 0usize;
        while done < bytes {
            let n = self
                .file
                .pread(&mut self.buf[done..bytes], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        let n = done / PAGEMAP_ENTRY_BYTES as usize;
        for (o, c) in out.iter_mut().zip(self.buf[..n * 8].chunks_exact(8)) {
            *o = u64::from_ne_bytes(c.try_into().expect("chunks_exact(8)"));
        }
        Ok(n)
    }

    /// The entry of the page holding `vaddr`.
    pub fn entry(&mut self, vaddr: u64, page_size: u64) -> Result<PagemapEntry, SysError> {
        let mut e = [0u64; 1];
        let n = self.read_entries(vaddr / page_size.max(1), &mut e)?;
        Ok(PagemapEntry(if n == 1 { e[0] } else { 0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::page_size;
    use crate::testing::anon::AnonMapping;

    #[test]
    fn decoder_follows_pagemap_rst() {
        let e = PagemapEntry((1 << 63) | (1 << 61) | (1 << 56) | (1 << 55) | 42);
        assert!(e.present() && e.file_or_shared_anon() && e.exclusive() && e.soft_dirty());
        assert!(!e.swapped() && !e.uffd_wp());
        assert_eq!(e.pfn(), Some(42));
        assert_eq!(
            PagemapEntry(1 << 63).pfn(),
            None,
            "zeroed PFN (no CAP_SYS_ADMIN)"
        );
        assert_eq!(PagemapEntry(0).pfn(), None);
        // present and swapped never both yield a PFN
        assert_eq!(PagemapEntry((1 << 63) | (1 << 62) | 99).pfn(), None);
        assert_eq!(PagemapEntry(0).swap(), None);
    }

    #[test]
    fn own_touched_pages_are_present_and_untouched_are_not() {
        let page = page_size();
        let mut m = AnonMapping::new(16 * page as usize, 0).unwrap();
        m.write_pages(0..8 * page as usize, 1);
        let mut pm = PagemapFile::open(None).unwrap();
        let mut out = vec![0u64; 16];
        let n = pm.read_entries(m.addr() / page, &mut out).unwrap();
        assert_eq!(n, 16);
        assert_eq!(pm.calls(), 2, "open + one bulk pread");
        for (i, &raw) in out.iter().enumerate() {
            let e = PagemapEntry(raw);
            assert_eq!(e.present(), i < 8, "page {i}: {raw:#x}");
        }
        if rustix::process::geteuid().is_root() {
            assert!(PagemapEntry(out[0]).pfn().is_some(), "root sees PFNs");
        }
        assert!(!pm.entry(m.addr() + 12 * page, page).unwrap().present());
    }
}
