//! Kernel files opened once and accessed with positioned reads and writes.

use super::{fault, retry, Fault, FaultCall, SysError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

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

    /// Opens `path` write-only (files of mode 0200, as
    /// `/proc/PID/clear_refs`).
    pub fn open_write(path: &str) -> Result<Self, SysError> {
        Self::open_with(path, rustix::fs::OFlags::WRONLY)
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
