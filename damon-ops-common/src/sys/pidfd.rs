//! Process file descriptors: a process's identity pinned against pid reuse.

use super::madvise::{process_madvise, Advice, IOV_MAX};
use super::{retry, SysError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::io;

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
