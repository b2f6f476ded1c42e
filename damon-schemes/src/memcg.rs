//! Memory cgroups for the `node_memcg_used_bp` / `node_memcg_free_bp` quota
//! goals: finding a cgroup's directory from its id and reading its LRU
//! memory on one node from `memory.numa_stat`.
//!
//! The kernel names a memory cgroup by `cgroup_id()`, which is the inode
//! number of the cgroup's directory in its hierarchy (what
//! `/proc/kpagecgroup` reports for a page, and what the kernel's sysfs
//! resolves a `path` to). User space finds the directory by walking the
//! hierarchies that have the memory controller (cgroup v2, or v1's `memory`
//! hierarchy) for a directory with that inode number.

use damon_core::OpsError;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The mount points of the hierarchies that have the memory controller,
/// from a `/proc/self/mountinfo` text: every cgroup2 mount, and v1 mounts
/// whose super options name `memory`.
///
/// ```
/// let t = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
///          31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
///          32 25 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
/// assert_eq!(damon_schemes::memcg::memory_hierarchies(t), ["/sys/fs/cgroup", "/sys/fs/cgroup/memory"]);
/// ```
pub fn memory_hierarchies(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let (fstype, _source, opts) = (post.next(), post.next(), post.next().unwrap_or(""));
        let Some(mount_point) = pre.split_whitespace().nth(4) else {
            continue;
        };
        let memory = match fstype {
            Some("cgroup2") => true,
            Some("cgroup") => opts.split(',').any(|o| o == "memory"),
            _ => false,
        };
        if memory {
            out.push(unescape_mount_path(mount_point));
        }
    }
    out
}

/// This system's memory hierarchies: the mounts [`memory_hierarchies`]
/// finds in `/proc/self/mountinfo`, less the cgroup2 mounts whose
/// `cgroup.controllers` lacks `memory` (the memory controller is then in a
/// v1 hierarchy, as on hosts that mount both).
pub fn memory_roots() -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    memory_hierarchies(&mountinfo)
        .into_iter()
        .filter(|r| {
            let controllers = Path::new(r).join("cgroup.controllers");
            !controllers.exists()
                || std::fs::read_to_string(controllers)
                    .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        })
        .collect()
}

/// The memory cgroup directory of this process: its path in
/// `/proc/self/cgroup` (the v1 `memory` line, or the v2 `0::` line) under
/// the matching hierarchy of [`memory_roots`].
pub fn own_memcg_dir() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let roots = memory_roots();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, controllers, path) = (it.next()?, it.next()?, it.next()?);
        let v1 = controllers.split(',').any(|c| c == "memory");
        if !v1 && !controllers.is_empty() {
            continue;
        }
        for r in &roots {
            let is_v2 = Path::new(r).join("cgroup.controllers").exists();
            if is_v2 != v1 {
                let dir = Path::new(r).join(path.trim_start_matches('/'));
                if dir.join("memory.numa_stat").exists() || dir.is_dir() {
                    return Some(dir);
                }
            }
        }
    }
    None
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of the memory cgroup whose id (directory inode number) is
/// `id`, searched in `roots`; `None` when no such cgroup exists.
pub fn find_memcg_dir(roots: &[String], id: u64) -> Option<PathBuf> {
    fn walk(dir: &Path, id: u64, depth: u32) -> Option<PathBuf> {
        if std::fs::metadata(dir).ok()?.ino() == id {
            return Some(dir.to_path_buf());
        }
        if depth == 0 {
            return None;
        }
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if let Some(p) = walk(&e.path(), id, depth - 1) {
                    return Some(p);
                }
            }
        }
        None
    }
    // cgroup trees are shallow; the bound only guards against loops
    roots.iter().find_map(|r| walk(Path::new(r), id, 64))
}

/// The memory cgroup id of a cgroup directory (its inode number), for
/// building goals and filters from a path as the kernel's sysfs does.
pub fn memcg_id_of(dir: &Path) -> Result<u64, OpsError> {
    let m = std::fs::metadata(dir).map_err(|e| OpsError::Io {
        call: "stat",
        path: dir.display().to_string(),
        source: e,
    })?;
    if !dir.join("memory.numa_stat").exists() {
        return Err(OpsError::Malformed {
            what: dir.display().to_string(),
            detail: "not a memory cgroup directory (no memory.numa_stat)".into(),
        });
    }
    Ok(m.ino())
}

/// The path of memory cgroup `id` as the kernel's sysfs and damo name it:
/// relative to its memory hierarchy's mount, `/` for the root (`/a/b`);
/// `None` when no such cgroup exists (any more).
pub fn memcg_path_of(id: u64) -> Option<String> {
    let roots = memory_roots();
    let dir = find_memcg_dir(&roots, id)?;
    let root = roots
        .iter()
        .find(|r| dir.starts_with(r))
        .map_or(Path::new("/"), Path::new);
    let rel = dir.strip_prefix(root).unwrap_or(&dir);
    Some(format!("/{}", rel.display()))
}

/// The id of the memory cgroup at sysfs/damo path `path` (relative to the
/// memory hierarchy's mount, `/` for the root); `Ok(None)` when no such
/// cgroup exists on this machine.
pub fn memcg_id_at(path: &str) -> Result<Option<u64>, OpsError> {
    let rel = path.trim_start_matches('/');
    for root in memory_roots() {
        let dir = Path::new(&root).join(rel);
        if dir.is_dir() {
            return memcg_id_of(&dir).map(Some);
        }
    }
    Ok(None)
}

/// Bytes of the cgroup's LRU memory (anonymous and file, active and
/// inactive, its descendants included) on node `nid`, from its
/// `memory.numa_stat` text: cgroup v2 lists bytes per LRU list
/// (`active_anon N0=…`), v1 lists pages (`hierarchical_anon=… N0=…`).
///
/// ```
/// use damon_schemes::memcg::numa_stat_lru_bytes;
/// let v2 = "anon N0=8192 N1=0\nactive_anon N0=4096 N1=0\ninactive_anon N0=4096 N1=4096\n\
///           active_file N0=0 N1=0\ninactive_file N0=12288 N1=0\n";
/// assert_eq!(numa_stat_lru_bytes(v2, 0, 4096, "s").unwrap(), 20480);
/// assert_eq!(numa_stat_lru_bytes(v2, 1, 4096, "s").unwrap(), 4096);
/// let v1 = "anon=1 N0=1\nfile=0 N0=0\nhierarchical_anon=3 N0=3\nhierarchical_file=2 N0=2\n";
/// assert_eq!(numa_stat_lru_bytes(v1, 0, 4096, "s").unwrap(), 5 * 4096);
/// ```
pub fn numa_stat_lru_bytes(
    text: &str,
    nid: i32,
    page_size: u64,
    what: &str,
) -> Result<u64, OpsError> {
    const V2: [&str; 4] = [
        "active_anon",
        "inactive_anon",
        "active_file",
        "inactive_file",
    ];
    const V1: [&str; 2] = ["hierarchical_anon", "hierarchical_file"];
    let mut node_key = [0u8; 16];
    let node_key = {
        use std::io::Write as _;
        let mut c = std::io::Cursor::new(&mut node_key[..]);
        let _ = write!(c, "N{nid}=");
        let n = c.position() as usize;
        std::str::from_utf8(&node_key[..n]).unwrap_or("N?=")
    };
    let value_on_node = |rest: &str| -> Result<u64, OpsError> {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(node_key))
            .map_or(Ok(0), |v| {
                v.parse().map_err(|_| OpsError::Malformed {
                    what: what.into(),
                    detail: format!("{node_key} is not a number"),
                })
            })
    };
    let (mut v2, mut v1, mut seen_v2, mut seen_v1) = (0u64, 0u64, 0, 0);
    for line in text.lines() {
        if let Some((key, rest)) = line.split_once(' ') {
            if V2.contains(&key) {
                v2 = v2.saturating_add(value_on_node(rest)?);
                seen_v2 += 1;
                continue;
            }
        }
        if let Some((key, rest)) = line.split_once('=') {
            if V1.contains(&key) {
                let rest = rest.split_once(' ').map_or("", |x| x.1);
                v1 = v1.saturating_add(value_on_node(rest)?);
                seen_v1 += 1;
            }
        }
    }
    if seen_v2 == V2.len() {
        Ok(v2)
    } else if seen_v1 == V1.len() {
        Ok(v1.saturating_mul(page_size))
    } else {
        Err(OpsError::Malformed {
            what: what.into(),
            detail: "neither the cgroup v2 nor the v1 LRU lines".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_and_foreign_lines() {
        let t = "30 25 0:26 / /sys/fs/my\\040cg rw - cgroup2 cgroup2 rw\nbroken line\n\
                 40 25 0:30 / /proc rw - proc proc rw\n";
        assert_eq!(memory_hierarchies(t), ["/sys/fs/my cg"]);
    }

    #[test]
    fn numa_stat_without_lru_lines_is_an_error() {
        assert!(numa_stat_lru_bytes("anon N0=1\n", 0, 4096, "s").is_err());
        assert!(numa_stat_lru_bytes(
            "active_anon N0=x\ninactive_anon N0=0\nactive_file N0=0\ninactive_file N0=0\n",
            0,
            4096,
            "s"
        )
        .is_err());
        // a node the cgroup has no memory on reads 0
        let v2 = "active_anon N0=1\ninactive_anon N0=0\nactive_file N0=0\ninactive_file N0=0\n";
        assert_eq!(numa_stat_lru_bytes(v2, 3, 4096, "s").unwrap(), 0);
    }

    #[test]
    fn this_machine_finds_its_root_memcg() {
        let roots = memory_roots();
        if !damon_core::testing::skip::require(
            !roots.is_empty(),
            "this_machine_finds_its_root_memcg",
            "no memory cgroup hierarchy mounted",
        ) {
            return;
        }
        let id = std::fs::metadata(&roots[0]).unwrap().ino();
        assert_eq!(
            find_memcg_dir(&roots, id).as_deref(),
            Some(Path::new(&roots[0]))
        );
        assert_eq!(find_memcg_dir(&roots, u64::MAX), None);
    }
}
