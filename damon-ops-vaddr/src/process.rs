//! A monitored process: its pidfd, `/proc/PID/pagemap` and `/proc/PID/maps`,
//! opened once and checked against pid reuse.
//!
//! An open pagemap or maps file belongs to the address space (`mm`) the
//! process had when it was opened. After `execve` that `mm` is gone and the
//! files read 0 bytes while the process lives on; the kernel's DAMON keeps
//! monitoring the pid's new address space, and so does this backend:
//! [`ProcessFiles::follow_exec`] notices the empty read and reopens both
//! files, re-validating the pid against the pidfd.

use crate::maps::{parse_maps_named, Vma};
use damon_core::{InvalidParam, OpsError, TargetId};
use damon_ops_common::pagemap::PagemapFile;
use damon_ops_common::sys::{KFile, Pidfd, SysError};
use std::collections::HashMap;

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
    execs: u64,
    retired_calls: u64,
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
        let (pagemap, maps) = Self::open_files(&mut pidfd, id)?;
        Ok(Self {
            pid,
            pidfd,
            pagemap,
            maps,
            alive: true,
            execs: 0,
            retired_calls: 0,
        })
    }

    /// Opens pagemap and maps by pid, then checks that the pidfd's process
    /// is still alive: a pid number is not reused before its process is
    /// reaped, so files opened while it lives are its files.
    fn open_files(pidfd: &mut Pidfd, id: TargetId) -> Result<(PagemapFile, KFile), OpsError> {
        let pid = pidfd.pid();
        let pagemap = PagemapFile::open(Some(pid)).map_err(|e| open_error(e, id))?;
        let maps = KFile::open_read(&format!("/proc/{pid}/maps")).map_err(|e| open_error(e, id))?;
        if !pidfd.is_alive()? {
            return Err(OpsError::TargetGone {
                id,
                detail: format!("pid {pid} exited while its files were opened"),
            });
        }
        Ok((pagemap, maps))
    }

    /// Called after a read of the process's files returned nothing: if the
    /// process lives but the address space the files were opened on is
    /// gone (it called `execve`), reopens them on the new one and returns
    /// true. One small `pread` of the old maps file tells (0 bytes: the old
    /// address space is gone); the reopen costs three calls.
    ///
    /// Errors: the reopen is refused (an exec of a set-uid program can take
    /// away the ptrace access the files need), or the process exited.
    pub fn follow_exec(&mut self) -> Result<bool, OpsError> {
        if !self.check_alive() {
            return Ok(false);
        }
        let mut probe = [0u8; 1];
        match self.maps.pread(&mut probe, 0) {
            Ok(0) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.is_mm_gone() => {}
            Err(e) => return Err(e.into()),
        }
        let id = TargetId::from(self.pid as u32);
        let (pagemap, maps) = match Self::open_files(&mut self.pidfd, id) {
            Ok(files) => files,
            Err(OpsError::TargetGone { .. }) => {
                self.alive = false;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.retired_calls += self.pagemap.calls() + self.maps.calls();
        self.pagemap = pagemap;
        self.maps = maps;
        self.execs += 1;
        tracing::info!(target: "damon::vaddr", pid = self.pid, "target exec'd: files reopened");
        Ok(true)
    }

    /// How many times the process was seen to `execve` (files reopened).
    pub fn execs(&self) -> u64 {
        self.execs
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
    /// An exited process yields no mappings; after an `execve` the files are
    /// reopened ([`ProcessFiles::follow_exec`]) and the new mappings read.
    pub fn read_maps(&mut self, buf: &mut Vec<u8>) -> Result<Vec<Vma>, OpsError> {
        let mut retried = false;
        loop {
            match self.maps.read_all(buf) {
                Ok(()) if !buf.is_empty() => break,
                Ok(()) => {}
                Err(e) if e.is_mm_gone() => buf.clear(),
                Err(e) => return Err(e.into()),
            }
            if retried {
                self.check_alive();
                return Ok(Vec::new());
            }
            retried = true;
            // reopens the files if the address space is gone, then reads once more
            self.follow_exec()?;
            if !self.alive {
                return Ok(Vec::new());
            }
        }
        let text = String::from_utf8_lossy(buf);
        Ok(parse_maps_named(
            &text,
            &format!("/proc/{}/maps", self.pid),
        )?)
    }

    /// System calls made on this process's files.
    pub fn calls(&self) -> u64 {
        self.pidfd.calls() + self.pagemap.calls() + self.maps.calls() + self.retired_calls
    }
}

/// The process table of a vaddr backend: the open files of every target,
/// the targets that cannot be monitored any more (with why), and the system
/// calls of files already closed.
#[derive(Debug, Default)]
pub struct Processes {
    procs: HashMap<TargetId, ProcessFiles>,
    gone: Vec<(TargetId, String)>,
    retired_calls: u64,
}

impl Processes {
    /// The open files of target `id`, if any.
    pub fn get_mut(&mut self, id: TargetId) -> Option<&mut ProcessFiles> {
        self.procs.get_mut(&id)
    }

    /// The last known liveness of target `id` (no system call).
    pub fn alive(&self, id: TargetId) -> bool {
        self.procs.get(&id).is_some_and(ProcessFiles::alive)
    }

    /// Ids of the open targets.
    pub fn ids(&self) -> impl Iterator<Item = &TargetId> {
        self.procs.keys()
    }

    /// The targets lost so far, with why.
    pub fn gone(&self) -> &[(TargetId, String)] {
        &self.gone
    }

    /// Opens the target's files unless already open; errors propagate.
    pub fn ensure_open(&mut self, id: TargetId) -> Result<(), OpsError> {
        if self.alive(id) {
            return Ok(());
        }
        self.close(id);
        let p = ProcessFiles::open(id)?;
        self.gone.retain(|g| g.0 != id);
        self.procs.insert(id, p);
        Ok(())
    }

    /// Opens a target met for the first time during sampling (added by a
    /// commit with regions); failure makes it invalid, not an error.
    pub fn ensure_open_lazily(&mut self, id: TargetId) -> bool {
        if let Some(p) = self.procs.get(&id) {
            return p.alive();
        }
        if self.is_gone(id) {
            return false;
        }
        match ProcessFiles::open(id) {
            Ok(p) => {
                self.procs.insert(id, p);
                true
            }
            Err(e) => {
                self.mark_gone(id, format!("pid {id} cannot be monitored: {e}"));
                false
            }
        }
    }

    /// Closes the target's files, keeping their system-call count.
    pub fn close(&mut self, id: TargetId) {
        if let Some(old) = self.procs.remove(&id) {
            self.retired_calls += old.calls();
        }
    }

    /// Records that the process of target `id` exited.
    pub fn mark_exited(&mut self, id: TargetId) {
        self.mark_gone(id, format!("pid {id} exited"));
    }

    /// Records that target `id` cannot be monitored any more, and why.
    pub fn mark_gone(&mut self, id: TargetId, reason: String) {
        if !self.is_gone(id) {
            tracing::info!(target: "damon::vaddr", pid = id, "target lost: {reason}");
            self.gone.push((id, reason));
        }
    }

    /// True once target `id` was lost.
    pub fn is_gone(&self, id: TargetId) -> bool {
        self.gone.iter().any(|g| g.0 == id)
    }

    /// Asks the pidfd whether target `id` still runs; a dead one is marked
    /// exited.
    pub fn check_valid(&mut self, id: TargetId) -> bool {
        let valid = match self.procs.get_mut(&id) {
            Some(p) => p.check_alive(),
            None => !self.is_gone(id),
        };
        if !valid {
            self.mark_exited(id);
        }
        valid
    }

    /// Why targets were lost, joined (`None` while none was).
    pub fn invalid_reason(&self) -> Option<String> {
        match self.gone.as_slice() {
            [] => None,
            [(_, why)] => Some(why.clone()),
            many => {
                let list: Vec<&str> = many.iter().map(|g| g.1.as_str()).collect();
                Some(list.join("; "))
            }
        }
    }

    /// System calls on the processes' files (pagemap, maps, pidfd polls),
    /// including those of files already closed.
    pub fn calls(&self) -> u64 {
        self.retired_calls + self.procs.values().map(ProcessFiles::calls).sum::<u64>()
    }
}
