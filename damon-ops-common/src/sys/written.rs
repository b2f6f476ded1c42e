//! Written pages of the calling process, without idle page tracking or
//! privilege: a userfaultfd in asynchronous write-protect mode
//! (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7) write-protects the pages we sample,
//! the kernel lifts the protection itself at the first write to one (no
//! fault reaches us), and the `PAGEMAP_SCAN` ioctl of `/proc/self/pagemap`
//! (Linux 6.7) tells which of them were written since (`PAGE_IS_WRITTEN`:
//! no longer protected).
//!
//! Only the calling process can be watched so (a userfaultfd acts on the
//! memory of the process that made it), only anonymous, shmem and hugetlb
//! mappings can be registered, and what is seen is **writes**: a read
//! leaves a page protected.
//!
//! `libc` is called here directly: rustix has neither `userfaultfd` nor
//! these ioctls.
#![expect(
    unsafe_code,
    reason = "userfaultfd and its ioctls, and PAGEMAP_SCAN, have no safe wrapper in rustix"
)]

use super::SysError;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::io;

/// `UFFD_USER_MODE_ONLY`: a userfaultfd that handles user-mode faults only,
/// which an unprivileged process may make even with
/// `vm.unprivileged_userfaultfd` 0.
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xc018_aa06;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
const PAGEMAP_SCAN: libc::c_ulong = 0xc060_6610;
const PAGE_IS_WRITTEN: u64 = 1 << 1;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// One run of pages `PAGEMAP_SCAN` reports (`struct page_region`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRun {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// The `PAGE_IS_*` categories asked for that the run has.
    pub categories: u64,
}

/// What the kernel lacks for watching writes, with the version that added it.
#[derive(Debug, thiserror::Error)]
pub enum WrittenError {
    /// `userfaultfd` cannot be made (no `CONFIG_USERFAULTFD`, or refused).
    #[error("userfaultfd: {0} (needs CONFIG_USERFAULTFD; an unprivileged process needs Linux 5.11 for UFFD_USER_MODE_ONLY, or vm.unprivileged_userfaultfd=1)")]
    NoUserfaultfd(#[source] io::Error),
    /// The userfaultfd has no asynchronous write protection.
    #[error("userfaultfd has no UFFD_FEATURE_WP_ASYNC: needs Linux 6.7 with CONFIG_HAVE_ARCH_USERFAULTFD_WP (x86_64, arm64, riscv)")]
    NoWpAsync,
    /// `/proc/self/pagemap` has no `PAGEMAP_SCAN` ioctl.
    #[error("/proc/self/pagemap has no PAGEMAP_SCAN ioctl: needs Linux 6.7 with CONFIG_PROC_PAGE_MONITOR")]
    NoPagemapScan,
    /// Another system call failed.
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl From<WrittenError> for damon_core::OpsError {
    fn from(e: WrittenError) -> Self {
        match e {
            WrittenError::Sys(s) => s.into(),
            other => damon_core::OpsError::Unsupported {
                what: "written-page monitoring".into(),
                hint: other.to_string(),
            },
        }
    }
}

/// A userfaultfd in asynchronous write-protect mode and the calling
/// process's pagemap: registers ranges, write-protects pages, and reads
/// which were written. Dropping it closes both, which unregisters every
/// range and lifts every protection it set.
#[derive(Debug)]
pub struct WriteTracker {
    uffd: OwnedFd,
    pagemap: std::fs::File,
    calls: u64,
}

fn last_error(call: &'static str, what: impl Into<String>) -> SysError {
    SysError {
        call,
        path: what.into(),
        source: io::Error::last_os_error(),
    }
}

impl WriteTracker {
    /// Makes the userfaultfd (user-mode faults only: no privilege needed),
    /// asks for asynchronous write protection (and markers on unpopulated
    /// pages, so a page not yet faulted in is watched too), and checks that
    /// `PAGEMAP_SCAN` exists. Errors name what the kernel lacks.
    pub fn open() -> Result<Self, WrittenError> {
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY;
        // SAFETY: userfaultfd(2) takes flags only and returns a new file
        // descriptor or -1; nothing of ours is touched.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
        if fd < 0 {
            return Err(WrittenError::NoUserfaultfd(io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes the `uffdio_api` struct we
        // pass, which lives for the call and has the kernel's layout.
        let r = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API, &mut api) };
        if r != 0 {
            // EINVAL: a feature asked for is not supported
            return Err(WrittenError::NoWpAsync);
        }
        let pagemap = std::fs::File::open("/proc/self/pagemap").map_err(|source| SysError {
            call: "open",
            path: "/proc/self/pagemap".into(),
            source,
        })?;
        let mut me = Self {
            uffd,
            pagemap,
            calls: 2,
        };
        // one page of our own stack: a kernel without the ioctl says ENOTTY
        let probe = [0u8; 1];
        let page = (probe.as_ptr() as u64) & !4095;
        let mut out = [PageRun::default(); 1];
        match me.scan(page, page + 4096, &mut out) {
            Ok(_) => Ok(me),
            Err(e) if e.errno() == Some(libc::ENOTTY) => Err(WrittenError::NoPagemapScan),
            Err(e) => Err(e.into()),
        }
    }

    /// System calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Registers `[start, end)` of the calling process for write
    /// protection. The range must be mapped by anonymous, shmem or hugetlb
    /// mappings (`EINVAL` otherwise) not registered by another userfaultfd
    /// (`EBUSY`).
    pub fn register(&mut self, start: u64, end: u64) -> Result<(), SysError> {
        self.calls += 1;
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start,
                len: end.saturating_sub(start),
            },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes the struct we pass. It
        // marks the calling process's mappings in the range for write
        // protection; with UFFD_FEATURE_WP_ASYNC the kernel resolves every
        // protection fault itself, so no access ever blocks or changes
        // meaning, and memory contents are untouched.
        let r = unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_REGISTER, &mut reg) };
        if r == 0 {
            Ok(())
        } else {
            Err(last_error(
                "UFFDIO_REGISTER",
                format!("{start:#x}-{end:#x}"),
            ))
        }
    }

    /// Write-protects `[start, end)` (registered, page-aligned): the next
    /// write to each page lifts it (asynchronously, in the kernel).
    pub fn protect(&mut self, start: u64, end: u64) -> Result<(), SysError> {
        self.calls += 1;
        let mut wp = UffdioWriteprotect {
            range: UffdioRange {
                start,
                len: end.saturating_sub(start),
            },
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        // SAFETY: UFFDIO_WRITEPROTECT reads the struct we pass; it only
        // sets write-protect bits that the kernel lifts at the next write
        // (asynchronous mode), never changing contents.
        let r = unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_WRITEPROTECT, &mut wp) };
        if r == 0 {
            Ok(())
        } else {
            Err(last_error(
                "UFFDIO_WRITEPROTECT",
                format!("{start:#x}-{end:#x}"),
            ))
        }
    }

    /// The runs of written pages (not write-protected, or present without
    /// ever having been protected) in `[start, end)`, into `out`; returns
    /// how many runs were filled. Stops early when `out` is full (the caller
    /// sizes it: at most one run per protected page plus one).
    pub fn written(
        &mut self,
        start: u64,
        end: u64,
        out: &mut [PageRun],
    ) -> Result<usize, SysError> {
        self.scan(start, end, out)
    }

    fn scan(&mut self, start: u64, end: u64, out: &mut [PageRun]) -> Result<usize, SysError> {
        self.calls += 1;
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags: 0,
            start,
            end,
            walk_end: 0,
            vec: out.as_mut_ptr() as u64,
            vec_len: out.len() as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: PAGE_IS_WRITTEN,
            category_anyof_mask: 0,
            return_mask: PAGE_IS_WRITTEN,
        };
        // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len`
        // `page_region` structs to `vec`, which points to `out` (the same
        // layout, `#[repr(C)]`), borrowed mutably for the call; it only
        // reads page table state (no WP flag is passed).
        let r = unsafe { libc::ioctl(self.pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
        if r >= 0 {
            Ok(r as usize)
        } else {
            Err(last_error("PAGEMAP_SCAN", format!("{start:#x}-{end:#x}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_kernel_lacks_is_named_with_its_version_and_option() {
        let wp = WrittenError::NoWpAsync.to_string();
        assert!(
            wp.contains("UFFD_FEATURE_WP_ASYNC") && wp.contains("Linux 6.7"),
            "{wp}"
        );
        let scan = WrittenError::NoPagemapScan.to_string();
        assert!(
            scan.contains("PAGEMAP_SCAN")
                && scan.contains("Linux 6.7")
                && scan.contains("CONFIG_PROC_PAGE_MONITOR"),
            "{scan}"
        );
        let uffd =
            WrittenError::NoUserfaultfd(io::Error::from_raw_os_error(libc::ENOSYS)).to_string();
        assert!(uffd.contains("CONFIG_USERFAULTFD"), "{uffd}");
        // and reaches the caller as an unsupported operation, not an I/O error
        let e: damon_core::OpsError = WrittenError::NoPagemapScan.into();
        assert!(matches!(e, damon_core::OpsError::Unsupported { .. }), "{e}");
    }
}
