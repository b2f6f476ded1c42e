//! Sharing the kernel's interface: what kdamonds exist and whose they are,
//! making room for ours without touching anyone else's, and the advisory
//! lock that keeps two of our processes (or damon-rs users) from racing.
//!
//! The kernel makes kdamond directories only through `nr_kdamonds`, which
//! it refuses to change while any kdamond runs (`EBUSY`), and changing it
//! rebuilds every kdamond directory, which loses the configuration of
//! kdamonds that are set up but off. So a kdamond of ours can be added only
//! when no kdamond runs, and only over configured ones if the caller allows
//! taking them over.

use crate::tree::{paths, Admin};
use crate::SysfsError;
use std::path::{Path, PathBuf};

/// The advisory lock file damon-rs uses for its sessions; we take the same.
pub const LOCK_PATH: &str = "/run/lock/damon-rs.lock";

/// One kdamond as the tree shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdamondState {
    /// Its index.
    pub index: usize,
    /// Whether it runs.
    pub on: bool,
    /// Its thread's pid while it runs.
    pub pid: Option<i64>,
    /// Whether it holds a configuration (a context).
    pub configured: bool,
}

/// Every kdamond in the tree.
pub fn kdamonds(admin: &Admin) -> Result<Vec<KdamondState>, SysfsError> {
    let n = admin.read_u64(paths::NR_KDAMONDS)? as usize;
    (0..n)
        .map(|k| {
            let d = paths::kdamond(k);
            let on = admin.read(&format!("{d}/state"))?.trim() == "on";
            let pid = admin.read_i64(&format!("{d}/pid")).ok().filter(|&p| p > 0);
            let configured = admin
                .read_u64(&format!("{d}/contexts/nr_contexts"))
                .unwrap_or(0)
                > 0;
            Ok(KdamondState {
                index: k,
                on,
                pid,
                configured,
            })
        })
        .collect()
}

/// Makes a kdamond directory for us and returns its index: refuses while
/// any kdamond runs (naming it), and when kdamonds are configured but off
/// unless `take_over_off` (their configuration is then lost, as the kernel
/// rebuilds the directories). Our kdamond is the only one afterwards.
pub fn claim_kdamond(admin: &Admin, take_over_off: bool) -> Result<usize, SysfsError> {
    let all = kdamonds(admin)?;
    if let Some(k) = all.iter().find(|k| k.on) {
        return Err(SysfsError::Foreign(format!(
            "kdamond {} (pid {}) is running and is not ours; the kernel does not let a kdamond be added while one runs, and this library never stops what it did not start",
            k.index,
            k.pid.map_or("unknown".into(), |p| p.to_string())
        )));
    }
    let configured: Vec<usize> = all
        .iter()
        .filter(|k| k.configured)
        .map(|k| k.index)
        .collect();
    if !configured.is_empty() && !take_over_off {
        return Err(SysfsError::Foreign(format!(
            "kdamond(s) {configured:?} are configured (but off) and not ours; adding one would make the kernel discard their configuration: allow taking them over to proceed"
        )));
    }
    admin.write(paths::NR_KDAMONDS, 1)?;
    Ok(0)
}

/// Removes what [`claim_kdamond`] made: turns kdamond `k` off if it runs
/// and drops the kdamond directories.
pub fn release_kdamond(admin: &Admin, k: usize) -> Result<(), SysfsError> {
    let state = format!("{}/state", paths::kdamond(k));
    if admin.read(&state)?.trim() == "on" {
        admin.write(&state, "off")?;
    }
    admin.write(paths::NR_KDAMONDS, 0)
}

/// An exclusive advisory lock on a file, held until dropped.
#[derive(Debug)]
pub struct SysfsLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl SysfsLock {
    /// Takes the lock at `path` (created if missing), failing at once if
    /// another process holds it.
    pub fn take(path: &Path) -> Result<Self, SysfsError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| SysfsError::Io {
                op: "open".into(),
                path: path.to_path_buf(),
                source,
            })?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self {
                _file: file,
                path: path.to_path_buf(),
            }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(SysfsError::Locked {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(SysfsError::Io {
                op: "flock".into(),
                path: path.to_path_buf(),
                source: e.into(),
            }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
