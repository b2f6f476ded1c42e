//! `madvise` and `process_madvise` with advice that never changes memory
//! contents.
//!
//! `libc` is called here directly for what rustix lacks: `process_madvise`
//! (syscall 440) and the advice values (`MADV_COLD`, `MADV_PAGEOUT`,
//! `MADV_COLLAPSE`) that rustix's `Advice` enum cannot express.
#![expect(
    unsafe_code,
    reason = "madvise and process_madvise have no safe wrapper in rustix"
)]

use super::SysError;
#[cfg(feature = "fault-injection")]
use super::{fault, Fault, FaultCall};
use rustix::fd::BorrowedFd;
use std::io;

/// `IOV_MAX`: the most iovecs one `process_madvise` call takes.
pub const IOV_MAX: usize = 1024;

/// Memory advice that never changes the contents of memory, so advising any
/// range of the calling process is safe. (Destructive advice such as
/// `MADV_DONTNEED` or `MADV_FREE` is deliberately not offered.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advice {
    /// `MADV_WILLNEED` (3): read ahead / swap in.
    Willneed,
    /// `MADV_COLD` (20): deactivate.
    Cold,
    /// `MADV_PAGEOUT` (21): reclaim now; contents go to swap or files.
    Pageout,
    /// `MADV_HUGEPAGE` (14): allow THP (not accepted by `process_madvise`).
    Hugepage,
    /// `MADV_NOHUGEPAGE` (15): forbid THP (not accepted by `process_madvise`).
    Nohugepage,
    /// `MADV_COLLAPSE` (25): collapse into THPs synchronously.
    Collapse,
}

impl Advice {
    /// The raw `MADV_*` value.
    pub const fn raw(self) -> i32 {
        match self {
            Advice::Willneed => libc::MADV_WILLNEED,
            Advice::Cold => 20,
            Advice::Pageout => 21,
            Advice::Hugepage => libc::MADV_HUGEPAGE,
            Advice::Nohugepage => libc::MADV_NOHUGEPAGE,
            Advice::Collapse => 25,
        }
    }
}

/// `madvise(addr, len, advice)` on the calling process. Safe because every
/// [`Advice`] keeps memory contents intact; an unmapped range fails with `ENOMEM`.
pub fn madvise(addr: u64, len: u64, advice: Advice) -> Result<(), SysError> {
    let what = || format!("{addr:#x}+{len:#x} ({advice:?})");
    let len = usize::try_from(len)
        .map_err(|_| SysError::new("madvise", what(), rustix::io::Errno::INVAL))?;
    // SAFETY: the advice values offered by `Advice` only change paging
    // policy or residency (never contents), so no Rust object observes a
    // change; the kernel validates the range and reports ENOMEM for holes.
    let r = unsafe { libc::madvise(addr as usize as *mut libc::c_void, len, advice.raw()) };
    if r == 0 {
        Ok(())
    } else {
        Err(SysError {
            call: "madvise",
            path: what(),
            source: io::Error::last_os_error(),
        })
    }
}

/// `process_madvise(pidfd, iovecs, advice, 0)` over `ranges` (`(addr, len)`
/// in the target's address space), in chunks of [`IOV_MAX`] iovecs.
///
/// Returns the bytes advised. The kernel stops a chunk at the first range it
/// cannot advise; this function then stops too and returns the bytes advised
/// so far, or the error if nothing was advised. The remote advice accepted
/// by the kernel is `Willneed`, `Cold`, `Pageout` and `Collapse`; it needs
/// `CAP_SYS_NICE` and ptrace read access for another process.
pub fn process_madvise(
    pidfd: BorrowedFd<'_>,
    ranges: &[(u64, u64)],
    advice: Advice,
) -> io::Result<usize> {
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(ranges.len().min(IOV_MAX));
    let mut total = 0usize;
    for chunk in ranges.chunks(IOV_MAX) {
        let want = fill_iovecs(chunk, &mut iov)?;
        let r = match injected_fault(pidfd, &mut iov) {
            Some(e) => Err(e),
            None => process_madvise_once(pidfd, &iov, advice),
        };
        match r {
            // what the earlier chunks advised stands
            Err(_) if total > 0 => return Ok(total),
            Err(e) => return Err(e),
            Ok(done) => {
                total += done;
                if done < want {
                    break;
                }
            }
        }
    }
    Ok(total)
}

/// Fills `iov` with one iovec per range; returns the bytes they cover.
fn fill_iovecs(chunk: &[(u64, u64)], iov: &mut Vec<libc::iovec>) -> io::Result<usize> {
    iov.clear();
    let mut want = 0usize;
    for &(addr, len) in chunk {
        let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        want = want.saturating_add(len);
        iov.push(libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        });
    }
    Ok(want)
}

/// One `process_madvise` system call over `iov`; the bytes advised.
fn process_madvise_once(
    pidfd: BorrowedFd<'_>,
    iov: &[libc::iovec],
    advice: Advice,
) -> io::Result<usize> {
    let fd = rustix::fd::AsRawFd::as_raw_fd(&pidfd);
    // SAFETY: `iov` is a live, initialised array of `iov.len()` iovecs
    // for the duration of the call; the addresses in it belong to the
    // target process and are never dereferenced in ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            fd,
            iov.as_ptr(),
            iov.len(),
            advice.raw(),
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// The fault plan's say on the next `process_madvise` of this pidfd
/// (feature `fault-injection`): an error to return instead, or only the
/// first ranges reaching the kernel. Nothing in a normal build.
#[cfg(feature = "fault-injection")]
fn injected_fault(pidfd: BorrowedFd<'_>, iov: &mut Vec<libc::iovec>) -> Option<io::Error> {
    if !crate::testing::faults::armed() {
        return None;
    }
    match fault(
        &format!("pid {}", pid_of_fd(pidfd)),
        FaultCall::ProcessMadvise,
    ) {
        Some(Fault::Errno(e)) => Some(io::Error::from_raw_os_error(e)),
        Some(Fault::FirstRanges(k)) => {
            iov.truncate(k);
            None
        }
        _ => None,
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn injected_fault(_pidfd: BorrowedFd<'_>, _iov: &mut Vec<libc::iovec>) -> Option<io::Error> {
    None
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo` (fault plans for
/// `process_madvise` name it); only read while a plan is armed.
#[cfg(feature = "fault-injection")]
fn pid_of_fd(fd: BorrowedFd<'_>) -> i32 {
    let raw = rustix::fd::AsRawFd::as_raw_fd(&fd);
    std::fs::read_to_string(format!("/proc/self/fdinfo/{raw}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
