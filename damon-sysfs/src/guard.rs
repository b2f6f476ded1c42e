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

/// Where a running kdamond of ours is recorded (`<kdamond pid> <our pid>`),
/// so that one left running by a killed process of ours is known as ours.
pub const OWNER_PATH: &str = "/run/lock/udamon-kdamond.owner";

/// Records that the kdamond with thread `kdamond_pid` is this process's.
pub fn record_owner(path: &Path, kdamond_pid: i64) -> Result<(), SysfsError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, format!("{kdamond_pid} {}\n", std::process::id())).map_err(|source| {
        SysfsError::Io {
            op: "write".into(),
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Forgets the record (the kdamond is gone).
pub fn clear_owner(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Whether running kdamond `k` was started by a process of ours that is
/// gone (killed before it could stop it).
fn orphan_of_ours(owner: Option<&Path>, k: &KdamondState) -> bool {
    let Some(text) = owner.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return false;
    };
    let mut it = text.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(kd)), Some(Ok(by))) = (it.next(), it.next()) else {
        return false;
    };
    k.pid == Some(kd) && !Path::new(&format!("/proc/{by}")).exists()
}

/// Makes a kdamond directory for us and returns its index: refuses while
/// any kdamond runs (naming it), and when kdamonds are configured but off
/// unless `take_over_off` (their configuration is then lost, as the kernel
/// rebuilds the directories). A kdamond that `owner` records as started by
/// a process of ours that is gone is ours: it is turned off and reused.
/// Our kdamond is the only one afterwards.
pub fn claim_kdamond(
    admin: &Admin,
    take_over_off: bool,
    owner: Option<&Path>,
) -> Result<usize, SysfsError> {
    let all = kdamonds(admin)?;
    let mut ours = Vec::new();
    for k in all.iter().filter(|k| k.on) {
        if orphan_of_ours(owner, k) {
            admin.write(&format!("{}/state", paths::kdamond(k.index)), "off")?;
            ours.push(k.index);
            continue;
        }
        return Err(SysfsError::Foreign(format!(
            "kdamond {} (pid {}) is running and is not ours; the kernel does not let a kdamond be added while one runs, and this library never stops what it did not start",
            k.index,
            k.pid.map_or("unknown".into(), |p| p.to_string())
        )));
    }
    let configured: Vec<usize> = all
        .iter()
        .filter(|k| k.configured && !ours.contains(&k.index))
        .map(|k| k.index)
        .collect();
    if !configured.is_empty() && !take_over_off {
        return Err(SysfsError::Foreign(format!(
            "kdamond(s) {configured:?} are configured (but off) and not ours; adding one would make the kernel discard their configuration: allow taking them over to proceed"
        )));
    }
    if let Some(p) = owner {
        clear_owner(p);
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
        // /run/lock exists on most systems, not on every minimal one
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
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
