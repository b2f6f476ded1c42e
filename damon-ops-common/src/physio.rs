//! Access to the two per-PFN kernel files the samplers need: the page_idle
//! bitmap and `/proc/kpageflags`, behind a small trait so the sampling
//! logic can also run against `testing::fake::FakePhysMem` (feature `testing`).

use crate::sys::{KFile, SysError};
use damon_core::OpsError;

/// The idle page bitmap (`CONFIG_IDLE_PAGE_TRACKING`).
pub const PAGE_IDLE_BITMAP: &str = "/sys/kernel/mm/page_idle/bitmap";
/// Per-PFN page flags (`CONFIG_PROC_PAGE_MONITOR`).
pub const KPAGEFLAGS: &str = "/proc/kpageflags";
/// Per-PFN memory cgroup inode (`CONFIG_PROC_PAGE_MONITOR` and `CONFIG_MEMCG`).
pub const KPAGECGROUP: &str = "/proc/kpagecgroup";

/// Positioned I/O on the page_idle bitmap and `/proc/kpageflags`.
///
/// Offsets and lengths are in bytes and multiples of 8. The kernel's
/// semantics, which implementations must follow:
/// * a bitmap bit is 1 when the page is idle; writing 1 marks it idle,
///   writing 0 does nothing; only LRU pages that are not compound tails carry
///   the state (others read 0 and ignore writes);
/// * a call covering the last, partial 64-PFN word below `max_pfn` transfers
///   only the full words before it, and a call starting there transfers 0
///   bytes (a write has still applied its bits);
/// * a bitmap call transfers at most one page of bytes.
pub trait PhysIo: Send {
    /// `pread` of the bitmap.
    fn bitmap_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError>;
    /// `pwrite` of the bitmap.
    fn bitmap_write(&mut self, offset: u64, buf: &[u8]) -> Result<usize, SysError>;
    /// `pread` of `/proc/kpageflags` (8 bytes per PFN).
    fn kpageflags_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError>;
    /// `pread` of `/proc/kpagecgroup` (8 bytes per PFN: the inode number of
    /// the page's memory cgroup, 0 for none). By default the file is
    /// missing (a kernel without `CONFIG_MEMCG`).
    fn kpagecgroup_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        let _ = (offset, buf);
        Err(SysError::new("open", KPAGECGROUP, rustix::io::Errno::NOENT))
    }
    /// Whether [`kpagecgroup_read`](PhysIo::kpagecgroup_read) can succeed.
    fn has_kpagecgroup(&self) -> bool {
        false
    }
    /// System calls made so far.
    fn syscalls(&self) -> u64;
    /// Largest bitmap call in bytes (a page for the kernel's sysfs file).
    fn max_bitmap_call(&self) -> usize {
        crate::sys::page_size() as usize
    }
}

/// The real files, each opened once.
#[derive(Debug)]
pub struct KernelPhysIo {
    bitmap: KFile,
    kpageflags: KFile,
    kpagecgroup: Option<KFile>,
}

impl KernelPhysIo {
    /// Opens the bitmap read-write and `/proc/kpageflags` read-only. A
    /// missing file or privilege becomes an error whose hint names it.
    pub fn open() -> Result<Self, OpsError> {
        let bitmap =
            KFile::open_rw(PAGE_IDLE_BITMAP).map_err(|e| open_error(e, PAGE_IDLE_BITMAP))?;
        let kpageflags = KFile::open_read(KPAGEFLAGS).map_err(|e| open_error(e, KPAGEFLAGS))?;
        // absent without CONFIG_MEMCG: only the memcg filter needs it
        let kpagecgroup = KFile::open_read(KPAGECGROUP).ok();
        Ok(Self {
            bitmap,
            kpageflags,
            kpagecgroup,
        })
    }
}

/// Turns an open failure of one of the files into the error a user can act on.
pub(crate) fn open_error(e: SysError, path: &str) -> OpsError {
    if e.is_gone() {
        if path == PAGE_IDLE_BITMAP {
            OpsError::Unsupported {
                what: "idle page tracking".into(),
                hint: format!(
                    "kernel built without CONFIG_IDLE_PAGE_TRACKING (no {PAGE_IDLE_BITMAP})"
                ),
            }
        } else {
            OpsError::Unsupported {
                what: "page flags".into(),
                hint: format!("kernel built without CONFIG_PROC_PAGE_MONITOR (no {KPAGEFLAGS})"),
            }
        }
    } else if e.is_permission() {
        OpsError::PermissionDenied {
            what: path.to_string(),
            hint: format!("{path} is root-only: run as root (or with CAP_SYS_ADMIN and read/write access to it)"),
        }
    } else {
        e.into()
    }
}

impl PhysIo for KernelPhysIo {
    fn bitmap_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        self.bitmap.pread(buf, offset)
    }
    fn bitmap_write(&mut self, offset: u64, buf: &[u8]) -> Result<usize, SysError> {
        self.bitmap.pwrite(buf, offset)
    }
    fn kpageflags_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        self.kpageflags.pread(buf, offset)
    }
    fn kpagecgroup_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        match &mut self.kpagecgroup {
            Some(f) => f.pread(buf, offset),
            None => Err(SysError::new("open", KPAGECGROUP, rustix::io::Errno::NOENT)),
        }
    }
    fn has_kpagecgroup(&self) -> bool {
        self.kpagecgroup.is_some()
    }
    fn syscalls(&self) -> u64 {
        self.bitmap.calls()
            + self.kpageflags.calls()
            + self.kpagecgroup.as_ref().map_or(0, KFile::calls)
    }
}
