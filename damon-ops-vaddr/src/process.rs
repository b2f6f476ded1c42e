//! A monitored process: its pidfd, `/proc/PID/pagemap` and `/proc/PID/maps`,
//! opened once and checked against pid reuse.

use crate::maps::{parse_maps_named, Vma};
use damon_core::{InvalidParam, OpsError, TargetId};
use damon_ops_paddr::pagemap::PagemapFile;
use damon_ops_paddr::sys::{KFile, Pidfd, SysError};

/// The privilege hint of every permission error on another process's files.
pub const PROC_PERMISSION_HINT: &str =
    "needs ptrace read access to the process (same user, or CAP_SYS_PTRACE) \
     and root or CAP_SYS_ADMIN to see PFNs in /proc/PID/pagemap";

/// The open files of one monitored process.
#[derive(Debug)]
pub struct ProcessFiles {
    pid: i32,
    pidfd: Pidfd,
    pagemap: PagemapFile,
    maps: KFile,
    alive: bool,
}

/// The pid a target id stands for.
pub fn pid_of(id: TargetId) -> Result<i32, OpsError> {
    i32::try_from(id).ok().filter(|&p| p > 0).ok_or_else(|| {
        OpsError::Invalid(InvalidParam {
            field: "target.id".into(),
            reason: format!("{id} is not a pid"),
        })
    })
}

/// Maps an open failure on a process's file to the error callers act on.
pub fn open_error(e: SysError, id: TargetId) -> OpsError {
    if e.is_gone() {
        OpsError::TargetGone {
            id,
            detail: e.to_string(),
        }
    } else if e.is_permission() {
        OpsError::PermissionDenied {
            what: e.path,
            hint: PROC_PERMISSION_HINT.into(),
        }
    } else {
        e.into()
    }
}

impl ProcessFiles {
    /// Opens the pidfd first (pinning the process), then pagemap and maps,
    /// then checks through the pidfd that the process is still the live
    /// one, so files of a recycled pid are never used.
    pub fn open(id: TargetId) -> Result<Self, OpsError> {
        let pid = pid_of(id)?;
        let mut pidfd = Pidfd::open(pid).map_err(|e| open_error(e, id))?;
        let pagemap = PagemapFile::open(Some(pid)).map_err(|e| open_error(e, id))?;
        let maps = KFile::open_read(&format!("/proc/{pid}/maps")).map_err(|e| open_error(e, id))?;
        if !pidfd.is_alive()? {
            return Err(OpsError::TargetGone {
                id,
                detail: format!("pid {pid} exited while its files were opened"),
            });
        }
        Ok(Self {
            pid,
            pidfd,
            pagemap,
            maps,
            alive: true,
        })
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The process's pidfd (every action goes through it).
    pub fn pidfd_mut(&mut self) -> &mut Pidfd {
        &mut self.pidfd
    }

    /// The last known liveness (no system call).
    pub fn alive(&self) -> bool {
        self.alive
    }

    /// Asks the pidfd whether the process still runs (one `poll`); once
    /// dead, stays dead.
    pub fn check_alive(&mut self) -> bool {
        if self.alive {
            self.alive = self.pidfd.is_alive().unwrap_or(false);
        }
        self.alive
    }

    /// The pagemap file.
    pub fn pagemap(&mut self) -> &mut PagemapFile {
        &mut self.pagemap
    }

    /// Re-reads and parses the maps file into `buf` (kept between calls).
    /// An exited process yields no mappings.
    pub fn read_maps(&mut self, buf: &mut Vec<u8>) -> Result<Vec<Vma>, OpsError> {
        match self.maps.read_all(buf) {
            Ok(()) => {}
            Err(e) if e.is_gone() || e.errno() == Some(libc::EIO) => {
                self.check_alive();
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        }
        let text = String::from_utf8_lossy(buf);
        Ok(parse_maps_named(
            &text,
            &format!("/proc/{}/maps", self.pid),
        )?)
    }

    /// System calls made on this process's files.
    pub fn calls(&self) -> u64 {
        self.pidfd.calls() + self.pagemap.calls() + self.maps.calls()
    }
}
