//! The system-call layer of the backends: every `unsafe` block of the
//! product lives under this module (in [`mod@madvise`] and [`written`]).
//!
//! * [`kfile`]: kernel files (`/proc/...`, `/sys/...`) opened once and read
//!   or written with rustix's positioned `pread`/`pwrite` ([`KFile`]);
//! * [`pidfd`]: a process pinned by `pidfd_open` ([`Pidfd`]);
//! * [`mod@madvise`]: `madvise`/`process_madvise` with contents-preserving
//!   [`Advice`] (`libc` directly: rustix lacks both);
//! * [`written`]: the calling process's written pages through a
//!   write-protecting userfaultfd and `PAGEMAP_SCAN` ([`written::WriteTracker`]).
//!
//! Every error keeps its errno and names the call and its argument
//! ([`SysError`]); every call goes through one retry policy
//! (`should_retry`) and, with the `fault-injection` feature, one fault
//! hook below it. Every system call made through a [`KFile`] or [`Pidfd`] is
//! counted, so backends can report system calls per region-sample.

pub mod kfile;
pub mod madvise;
pub mod pidfd;
pub mod written;

pub use kfile::KFile;
pub use madvise::{madvise, process_madvise, Advice, IOV_MAX};
pub use pidfd::Pidfd;

use std::io;

/// A failed system call: which call, on what, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{call} on {path}: {source}")]
pub struct SysError {
    /// The system call (`open`, `pread`, `pwrite`, `pidfd_open`, ...).
    pub call: &'static str,
    /// The file, pid or object, with the offset where one applies.
    pub path: String,
    /// The OS error (keeps the errno).
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// Builds an error from a rustix errno.
    pub fn new(call: &'static str, path: impl Into<String>, errno: rustix::io::Errno) -> Self {
        Self {
            call,
            path: path.into(),
            source: io::Error::from(errno),
        }
    }

    /// The raw errno, if the error carries one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// True for `ENOENT` and `ESRCH`: the process or file does not exist (any more).
    pub fn is_gone(&self) -> bool {
        matches!(self.errno(), Some(libc::ENOENT) | Some(libc::ESRCH))
    }

    /// True when a process's `/proc/PID` file failed because its address
    /// space is gone or going: [`SysError::is_gone`], or `EIO` (what
    /// pagemap and maps reads give while the process exits).
    pub fn is_mm_gone(&self) -> bool {
        self.is_gone() || self.errno() == Some(libc::EIO)
    }

    /// True for `EACCES` and `EPERM`.
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(libc::EACCES) | Some(libc::EPERM))
    }
}

impl From<SysError> for damon_core::OpsError {
    fn from(e: SysError) -> Self {
        damon_core::OpsError::Io {
            call: e.call,
            path: e.path,
            source: e.source,
        }
    }
}

/// How many times a call failing with `EAGAIN` is tried in all: kernel
/// files do not block, so a lasting `EAGAIN` is reported, not spun on.
pub const EAGAIN_TRIES: u32 = 4;

/// The retry policy of every system call here: `EINTR` is retried without
/// limit (a signal interrupted the call, nothing happened), `EAGAIN` up to
/// [`EAGAIN_TRIES`] times with a `sched_yield` in between; other errors
/// return at once.
pub(crate) fn should_retry(errno: i32, eagain_seen: &mut u32) -> bool {
    if errno == libc::EINTR {
        return true;
    }
    if errno == libc::EAGAIN {
        *eagain_seen += 1;
        if *eagain_seen < EAGAIN_TRIES {
            std::thread::yield_now();
            return true;
        }
    }
    false
}

/// Runs `f` under the retry policy (`should_retry`).
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    let mut eagain = 0;
    loop {
        match f() {
            Err(e) if should_retry(e.raw_os_error(), &mut eagain) => continue,
            r => return r,
        }
    }
}

/// The injected fault for the next `call` on `path` (feature
/// `fault-injection`; otherwise always None, at no cost).
#[inline(always)]
pub(crate) fn fault(path: &str, call: FaultCall) -> Option<Fault> {
    #[cfg(feature = "fault-injection")]
    {
        crate::testing::faults::take(path, call)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (path, call);
        None
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use crate::testing::faults::{Call as FaultCall, Fault};

/// Stand-ins for the fault-injection types when the feature is off.
#[cfg(not(feature = "fault-injection"))]
#[expect(
    dead_code,
    reason = "stand-in: some variants are only built by the fault plans"
)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum FaultCall {
    Open,
    Pread,
    Pwrite,
    ProcessMadvise,
}

#[cfg(not(feature = "fault-injection"))]
#[expect(
    dead_code,
    reason = "stand-in: some variants are only built by the fault plans"
)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    Errno(i32),
    Short(usize),
    Zero,
    FirstRanges(usize),
}

/// The size of a base page (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::anon::AnonMapping;

    #[test]
    fn kfile_reads_proc_self_status() {
        let mut f = KFile::open_read("/proc/self/status").unwrap();
        let mut buf = Vec::new();
        f.read_all(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf).contains("Pid:"));
        assert!(f.calls() >= 3);
    }

    #[test]
    fn open_error_names_call_path_and_errno() {
        let e = KFile::open_read("/nonexistent/damon").unwrap_err();
        assert_eq!(e.call, "open");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.is_gone());
        assert!(e.to_string().contains("/nonexistent/damon"));
    }

    #[test]
    fn pidfd_of_self_is_alive() {
        let mut p = Pidfd::open(std::process::id() as i32).unwrap();
        assert!(p.is_alive().unwrap());
        assert!(Pidfd::open(-5).unwrap_err().is_gone());
    }

    #[test]
    fn anon_mapping_is_aligned_and_writable() {
        let mut m = AnonMapping::new(3 << 20, 2 << 20).unwrap();
        assert_eq!(m.addr() % (2 << 20), 0);
        m.write_pages(0..m.len(), 7);
        assert_eq!(m.as_slice()[0], 7);
        assert_eq!(m.as_slice()[4096], 7);
        m.advise(Advice::Cold).unwrap();
    }

    #[test]
    fn anon_mapping_remaps_and_protects() {
        let mut m = AnonMapping::new(1 << 20, 4096).unwrap();
        m.write_pages(0..m.len(), 9);
        m.remap(4 << 20).unwrap();
        assert_eq!(m.len(), 4 << 20);
        assert_eq!(m.as_slice()[(1 << 20) - 4096], 9, "contents kept");
        m.write_pages(0..m.len(), 3);
        m.protect_read_only(0..(1 << 20)).unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let ro = format!("{:x}-{:x} r--p", m.addr(), m.addr() + (1 << 20));
        assert!(maps.contains(&ro), "VMA split at the protected range");
        assert_eq!(m.as_slice()[0], 3);
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.as_mut_slice();
        }))
        .is_err());
    }

    #[test]
    fn madvise_rejects_unmapped_range() {
        // Below mmap_min_addr nothing is ever mapped.
        let e = madvise(0x1000, 0x1000, Advice::Willneed).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOMEM));
    }
}
