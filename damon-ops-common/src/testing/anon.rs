//! An anonymous mapping of the calling process, for tests, benchmarks and
//! probes that need pages whose PFNs they can look up.
#![expect(
    unsafe_code,
    reason = "mmap, mremap, mprotect and munmap of our own mapping"
)]

use crate::sys::{madvise, page_size, Advice, SysError};
use std::ptr::NonNull;

/// An anonymous private mapping owned by the calling process (tests,
/// workloads and probes use it to get pages whose PFNs they can look up).
/// It is unmapped on drop.
#[derive(Debug)]
pub struct AnonMapping {
    base: NonNull<u8>,
    map_len: usize,
    ptr: NonNull<u8>,
    len: usize,
    /// Some pages were made read-only ([`AnonMapping::protect_read_only`]):
    /// writing through the mapping is refused from then on.
    read_only: bool,
}

// SAFETY: the mapping is exclusively owned memory, like a `Box<[u8]>`.
unsafe impl Send for AnonMapping {}
// SAFETY: shared references only allow reads through `as_slice`.
unsafe impl Sync for AnonMapping {}

impl AnonMapping {
    /// Maps `len` bytes (rounded up to the page size) of zero-filled,
    /// read-write memory whose start is a multiple of `align` (a power of
    /// two, e.g. 2 MiB for THP). Nothing is populated yet.
    pub fn new(len: usize, align: usize) -> Result<Self, SysError> {
        let page = page_size() as usize;
        let align = align.max(page);
        let what = || format!("anonymous {len} bytes aligned to {align}");
        if !align.is_power_of_two() || len == 0 {
            return Err(SysError::new("mmap", what(), rustix::io::Errno::INVAL));
        }
        let len = len.div_ceil(page) * page;
        let map_len = len
            .checked_add(align - page)
            .ok_or_else(|| SysError::new("mmap", what(), rustix::io::Errno::NOMEM))?;
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address
        // cannot alias any existing Rust object.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .map_err(|e| SysError::new("mmap", what(), e))?;
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| SysError::new("mmap", what(), rustix::io::Errno::NOMEM))?;
        let addr = base.as_ptr() as usize;
        let start = addr.next_multiple_of(align);
        let offset = start - addr;
        // SAFETY: `offset + len <= map_len`, so the pointer stays inside the mapping.
        let ptr = unsafe { NonNull::new_unchecked(base.as_ptr().add(offset)) };
        Ok(Self {
            base,
            map_len,
            ptr,
            len,
            read_only: false,
        })
    }

    /// Resizes the mapping to `new_len` bytes (rounded up to the page size)
    /// with `mremap(MREMAP_MAYMOVE)`: it may move, and then loses the
    /// alignment asked at [`AnonMapping::new`]. Contents are kept; a grown
    /// tail is zero-filled and not populated.
    pub fn remap(&mut self, new_len: usize) -> Result<(), SysError> {
        let page = page_size() as usize;
        let at = self.addr();
        let what = || format!("anonymous mapping at {at:#x} to {new_len} bytes");
        if new_len == 0 {
            return Err(SysError::new("mremap", what(), rustix::io::Errno::INVAL));
        }
        let new_len = new_len.div_ceil(page) * page;
        // SAFETY: `base..base+map_len` is our own mapping and `&mut self`
        // guarantees no reference into it exists while it moves.
        let p = unsafe {
            rustix::mm::mremap(
                self.base.as_ptr().cast(),
                self.map_len,
                new_len,
                rustix::mm::MremapFlags::MAYMOVE,
            )
        }
        .map_err(|e| SysError::new("mremap", what(), e))?;
        let p = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| SysError::new("mremap", what(), rustix::io::Errno::NOMEM))?;
        self.base = p;
        self.ptr = p;
        self.map_len = new_len;
        self.len = new_len;
        Ok(())
    }

    /// Makes the pages of `range` (byte offsets) read-only with `mprotect`,
    /// which splits the mapping's VMA. Afterwards the mapping can only be
    /// read: [`AnonMapping::as_mut_slice`] and [`AnonMapping::write_pages`]
    /// panic.
    pub fn protect_read_only(&mut self, range: std::ops::Range<usize>) -> Result<(), SysError> {
        let page = page_size() as usize;
        let start = range.start - range.start % page;
        let end = range.end.min(self.len).next_multiple_of(page).min(self.len);
        let at = self.addr() + start as u64;
        let what = || format!("{at:#x}+{:#x} read-only", end - start);
        if start >= end {
            return Err(SysError::new("mprotect", what(), rustix::io::Errno::INVAL));
        }
        self.read_only = true;
        // SAFETY: the range lies inside our own mapping; from now on no
        // `&mut` access to it is handed out (`read_only`), so nothing
        // writes to the protected pages.
        unsafe {
            rustix::mm::mprotect(
                self.ptr.as_ptr().add(start).cast(),
                end - start,
                rustix::mm::MprotectFlags::READ,
            )
        }
        .map_err(|e| SysError::new("mprotect", what(), e))
    }

    /// Start address.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (a mapping holds at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is mapped read-write for the lifetime of
        // `self` and only reachable through `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The memory, writable.
    ///
    /// # Panics
    /// After [`AnonMapping::protect_read_only`].
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(!self.read_only, "the mapping has read-only pages");
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Advises the whole mapping (e.g. `Hugepage` before populating).
    pub fn advise(&self, advice: Advice) -> Result<(), SysError> {
        madvise(self.addr(), self.len as u64, advice)
    }

    /// Writes one byte in every page of `range` (byte offsets) without
    /// reading first, so the first touch of a page faults in a private page
    /// (never the shared zero page).
    ///
    /// # Panics
    /// After [`AnonMapping::protect_read_only`].
    pub fn write_pages(&mut self, range: std::ops::Range<usize>, value: u8) {
        let page = page_size() as usize;
        let s = self.as_mut_slice();
        let end = range.end.min(s.len());
        let mut i = range.start - range.start % page;
        while i < end {
            s[i] = value;
            i += page;
        }
        std::hint::black_box(&*s);
    }
}

impl Drop for AnonMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+map_len` is the mapping created in `new`, and
        // no reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}
