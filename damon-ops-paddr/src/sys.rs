//! The system-call layer: every `unsafe` block of the backends lives here.
//!
//! Files are opened and read with rustix's safe wrappers ([`KFile`]);
//! process liveness uses `pidfd_open` and `poll` ([`Pidfd`]). `libc` is called
//! directly only for what rustix lacks: `process_madvise` (syscall 440) and
//! advice values such as `MADV_COLLAPSE` (25) that rustix's `Advice` enum
//! cannot express, plus the anonymous test mappings ([`AnonMapping`]).
//!
//! Every error keeps its errno and names the call and its argument
//! ([`SysError`]). Every successful or failed system call made through a
//! [`KFile`] or [`Pidfd`] is counted, so backends can report system calls
//! per region-sample.
//!
//! (`unsafe_code` is allowed for this module only, at its `mod` item in the
//! crate root; the rest of the crate denies it.)

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::io;
use std::ptr::NonNull;

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

/// Runs `f` under the retry policy ([`should_retry`]).
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
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
        crate::faults::take(path, call)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (path, call);
        None
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use crate::faults::{Call as FaultCall, Fault};

/// Stand-ins for the fault-injection types when the feature is off.
#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum FaultCall {
    Open,
    Pread,
    Pwrite,
    ProcessMadvise,
}

#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    Errno(i32),
    Short(usize),
    Zero,
    FirstRanges(usize),
}

/// A kernel file (`/proc/...`, `/sys/...`) opened once and accessed with
/// positioned reads and writes; counts its system calls.
#[derive(Debug)]
pub struct KFile {
    fd: OwnedFd,
    path: String,
    calls: u64,
}

impl KFile {
    fn open_with(path: &str, flags: rustix::fs::OFlags) -> Result<Self, SysError> {
        let fd = retry(|| {
            if let Some(Fault::Errno(e)) = fault(path, FaultCall::Open) {
                return Err(rustix::io::Errno::from_raw_os_error(e));
            }
            rustix::fs::open(
                path,
                flags | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
        })
        .map_err(|e| SysError::new("open", path, e))?;
        Ok(Self {
            fd,
            path: path.to_string(),
            calls: 1,
        })
    }

    /// Opens `path` read-only.
    pub fn open_read(path: &str) -> Result<Self, SysError> {
        Self::open_with(path, rustix::fs::OFlags::RDONLY)
    }

    /// Opens `path` for reading and writing.
    pub fn open_rw(path: &str) -> Result<Self, SysError> {
        Self::open_with(path, rustix::fs::OFlags::RDWR)
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// System calls made on this file so far (including the `open`).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// One `pread` at `offset`; returns the bytes read (0 at end of file).
    pub fn pread(&mut self, buf: &mut [u8], offset: u64) -> Result<usize, SysError> {
        let len = buf.len();
        retry(|| {
            self.calls += 1;
            let n = match fault(&self.path, FaultCall::Pread) {
                Some(Fault::Errno(e)) => return Err(rustix::io::Errno::from_raw_os_error(e)),
                Some(Fault::Zero) => return Ok(0),
                Some(Fault::Short(n)) => n.min(len),
                _ => len,
            };
            rustix::io::pread(&self.fd, &mut buf[..n], offset)
        })
        .map_err(|e| {
            SysError::new(
                "pread",
                format!("{} (offset {offset:#x}, {} bytes)", self.path, buf.len()),
                e,
            )
        })
    }

    /// One `pwrite` at `offset`; returns the bytes written.
    pub fn pwrite(&mut self, buf: &[u8], offset: u64) -> Result<usize, SysError> {
        retry(|| {
            self.calls += 1;
            let n = match fault(&self.path, FaultCall::Pwrite) {
                Some(Fault::Errno(e)) => return Err(rustix::io::Errno::from_raw_os_error(e)),
                Some(Fault::Zero) => return Ok(0),
                Some(Fault::Short(n)) => n.min(buf.len()),
                _ => buf.len(),
            };
            rustix::io::pwrite(&self.fd, &buf[..n], offset)
        })
        .map_err(|e| {
            SysError::new(
                "pwrite",
                format!("{} (offset {offset:#x}, {} bytes)", self.path, buf.len()),
                e,
            )
        })
    }

    /// Reads the whole file from offset 0 into `out` (cleared first) with
    /// `pread`s of at least 64 KiB, reusing `out`'s capacity.
    pub fn read_all(&mut self, out: &mut Vec<u8>) -> Result<(), SysError> {
        out.clear();
        let mut off = 0usize;
        loop {
            if out.capacity() - off < 16 << 10 {
                out.reserve((64 << 10).max(out.capacity()));
            }
            let cap = out.capacity();
            out.resize(cap, 0);
            let n = self.pread(&mut out[off..], off as u64);
            match n {
                Ok(0) => break,
                Ok(n) => off += n,
                Err(e) => {
                    out.truncate(off);
                    return Err(e);
                }
            }
        }
        out.truncate(off);
        Ok(())
    }
}

impl AsFd for KFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The size of a base page (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// A process file descriptor (`pidfd_open`): pins the process's identity so
/// a recycled pid is never mistaken for the process it was opened on.
#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
    pid: i32,
    calls: u64,
}

impl Pidfd {
    /// `pidfd_open(pid, 0)`. `ESRCH` means there is no such process.
    pub fn open(pid: i32) -> Result<Self, SysError> {
        let what = || format!("pid {pid}");
        let p = (pid > 0)
            .then(|| rustix::process::Pid::from_raw(pid))
            .flatten()
            .ok_or_else(|| SysError::new("pidfd_open", what(), rustix::io::Errno::SRCH))?;
        let fd = retry(|| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()))
            .map_err(|e| SysError::new("pidfd_open", what(), e))?;
        Ok(Self { fd, pid, calls: 1 })
    }

    /// The pid it was opened on.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// System calls made through this pidfd.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The descriptor, for calls that take a pidfd.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        rustix::fd::AsFd::as_fd(&self.fd)
    }

    /// [`process_madvise`] on this process, counting the calls.
    pub fn madvise(&mut self, ranges: &[(u64, u64)], advice: Advice) -> io::Result<usize> {
        self.calls += ranges.len().div_ceil(IOV_MAX).max(1) as u64;
        process_madvise(self.as_fd(), ranges, advice)
    }

    /// False once the process has exited (also when it is a zombie not yet
    /// reaped): a pidfd becomes readable at exit. One `poll` with a zero timeout.
    pub fn is_alive(&mut self) -> Result<bool, SysError> {
        self.calls += 1;
        let mut fds = [rustix::event::PollFd::new(
            &self.fd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let n = retry(|| rustix::event::poll(&mut fds, Some(&zero)))
            .map_err(|e| SysError::new("poll", format!("pidfd of pid {}", self.pid), e))?;
        Ok(n == 0)
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

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
        iov.clear();
        let mut want = 0usize;
        for &(addr, len) in chunk {
            let len =
                usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            want = want.saturating_add(len);
            iov.push(libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: len,
            });
        }
        #[cfg(feature = "fault-injection")]
        match crate::faults::armed()
            .then(|| {
                fault(
                    &format!("pid {}", pid_of_fd(pidfd)),
                    FaultCall::ProcessMadvise,
                )
            })
            .flatten()
        {
            Some(Fault::Errno(e)) => {
                if total > 0 {
                    return Ok(total);
                }
                return Err(io::Error::from_raw_os_error(e));
            }
            Some(Fault::FirstRanges(k)) => iov.truncate(k),
            _ => {}
        }
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
            let e = io::Error::last_os_error();
            if total > 0 {
                return Ok(total);
            }
            return Err(e);
        }
        let done = r as usize;
        total += done;
        if done < want {
            break;
        }
    }
    Ok(total)
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

#[cfg(test)]
mod tests {
    use super::*;

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
