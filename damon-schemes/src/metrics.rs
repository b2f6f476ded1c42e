//! System metrics for watermarks and quota goals, read from `/proc` and
//! `/sys` (real) or scripted (tests), with pure parsers.

use damon_core::OpsError;
use parking_lot::Mutex;
use std::sync::Arc;

/// Where watermark and goal metrics come from.
pub trait SystemMetrics: Send {
    /// Free memory per mille of total (`free_mem_rate`).
    fn free_mem_rate(&mut self) -> Result<u64, OpsError>;
    /// Total "some" memory pressure stall time (µs), monotonic.
    fn some_mem_psi_total_us(&mut self) -> Result<u64, OpsError>;
    /// (total, free) bytes of NUMA node `nid`.
    fn node_mem(&mut self, nid: i32) -> Result<(u64, u64), OpsError>;
    /// (active, inactive) LRU bytes.
    fn lru(&mut self) -> Result<(u64, u64), OpsError>;
    /// LRU bytes of memory cgroup `memcg_id` on node `nid`
    /// (`node_memcg_*_bp`), or `None` when no such cgroup exists.
    fn node_memcg_lru(&mut self, memcg_id: u64, nid: i32) -> Result<Option<u64>, OpsError> {
        let _ = (memcg_id, nid);
        Err(OpsError::Unsupported {
            what: "memory cgroup statistics".into(),
            hint: "this metrics source does not read them".into(),
        })
    }
    /// (transparent huge page bytes, used bytes) of the system
    /// (`hugepage_mem_bp`).
    fn hugepage_mem(&mut self) -> Result<(u64, u64), OpsError> {
        Err(OpsError::Unsupported {
            what: "huge page statistics".into(),
            hint: "this metrics source does not read them".into(),
        })
    }
    /// Whether memory cgroup `memcg_id` exists (checked when a scheme with
    /// a memcg goal is installed). Defaults to true.
    fn memcg_exists(&self, memcg_id: u64) -> bool {
        let _ = memcg_id;
        true
    }
    /// Whether NUMA node `nid` exists, so a goal on it can be measured at
    /// all (checked when a scheme is installed). Defaults to true.
    fn node_exists(&self, nid: i32) -> bool {
        let _ = nid;
        true
    }
}

fn malformed(what: &str, detail: impl Into<String>) -> OpsError {
    OpsError::Malformed {
        what: what.into(),
        detail: detail.into(),
    }
}

/// Parses a `/proc/meminfo`-style text into `(key, bytes)` pairs (values
/// in kB are converted to bytes). Lines that are not `Key: N [kB]` are errors.
pub fn parse_meminfo(text: &str, what: &str) -> Result<Vec<(String, u64)>, OpsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // node meminfo lines start with "Node N "
        let line = match line.strip_prefix("Node ") {
            Some(rest) => rest.split_once(' ').map(|x| x.1).unwrap_or(rest),
            None => line,
        };
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| malformed(what, format!("line {}: no ':'", i + 1)))?;
        let mut it = rest.split_whitespace();
        let n: u64 = it
            .next()
            .ok_or_else(|| malformed(what, format!("line {}: no value", i + 1)))?
            .parse()
            .map_err(|_| malformed(what, format!("line {}: value is not a number", i + 1)))?;
        let bytes = match it.next() {
            Some("kB") => n.saturating_mul(1024),
            None => n,
            Some(u) => {
                return Err(malformed(
                    what,
                    format!("line {}: unknown unit {u:?}", i + 1),
                ))
            }
        };
        out.push((key.trim().to_string(), bytes));
    }
    Ok(out)
}

/// Parses `/proc/pressure/memory` and returns the `some` line's `total=` (µs).
pub fn parse_psi_some_total(text: &str) -> Result<u64, OpsError> {
    let what = "/proc/pressure/memory";
    let line = text
        .lines()
        .find(|l| l.starts_with("some "))
        .ok_or_else(|| malformed(what, "no 'some' line"))?;
    let total = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("total="))
        .ok_or_else(|| malformed(what, "no total= on the 'some' line"))?;
    total
        .parse()
        .map_err(|_| malformed(what, "total= is not a number"))
}

/// Reads the metrics from this machine.
///
/// Files are read into a per-thread buffer and looked up without building
/// anything, so after the first read of each file a metric costs no
/// allocation (the monitoring loop allocates nothing with schemes
/// installed).
#[derive(Debug, Default)]
pub struct ProcMetrics;

/// Why a metric file is missing, for the error that names it.
fn missing_hint(path: &str) -> Option<&'static str> {
    if path.starts_with("/proc/pressure") {
        Some("kernel built without CONFIG_PSI (or booted with psi=0)")
    } else if path.contains("/node/") {
        Some("no such NUMA node (kernel without CONFIG_NUMA, or a wrong nid)")
    } else {
        None
    }
}

/// Reads `path` into the calling thread's reused buffer and hands the text
/// to `f`.
fn with_file<T>(path: &str, f: impl FnOnce(&str) -> Result<T, OpsError>) -> Result<T, OpsError> {
    use std::io::Read as _;
    thread_local! {
        static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let read = |buf: &mut String| -> std::io::Result<()> {
        buf.clear();
        if buf.capacity() < 8192 {
            buf.reserve(8192);
        }
        std::fs::File::open(path)?.read_to_string(buf).map(|_| ())
    };
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        read(&mut buf).map_err(|e| match (e.kind(), missing_hint(path)) {
            (std::io::ErrorKind::NotFound, Some(hint)) => OpsError::Unsupported {
                what: path.into(),
                hint: hint.into(),
            },
            _ => OpsError::Io {
                call: "read",
                path: path.into(),
                source: e,
            },
        })?;
        f(&buf)
    })
}

/// One `Key: N [kB]` value of a meminfo text, in bytes, without building
/// the whole table ([`parse_meminfo`] does, with line-numbered errors).
pub fn meminfo_field(text: &str, key: &str, what: &str) -> Result<u64, OpsError> {
    for line in text.lines() {
        let line = line.trim_start();
        // node meminfo lines start with "Node N "
        let line = match line.strip_prefix("Node ") {
            Some(rest) => rest.split_once(' ').map_or(rest, |x| x.1),
            None => line,
        };
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let mut it = rest.split_whitespace();
        let n: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed(what, format!("{key} is not a number")))?;
        return match it.next() {
            Some("kB") => Ok(n.saturating_mul(1024)),
            None => Ok(n),
            Some(u) => Err(malformed(what, format!("{key}: unknown unit {u:?}"))),
        };
    }
    Err(malformed(what, format!("no {key} field")))
}

/// `/sys/devices/system/node/nodeN/meminfo`, formatted on the stack.
fn node_meminfo_path(nid: i32, buf: &mut [u8; 64]) -> &str {
    use std::io::Write as _;
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "/sys/devices/system/node/node{nid}/meminfo");
    let n = cur.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("/sys/devices/system/node/node?/meminfo")
}

impl SystemMetrics for ProcMetrics {
    fn free_mem_rate(&mut self) -> Result<u64, OpsError> {
        let what = "/proc/meminfo";
        with_file(what, |t| {
            let total = meminfo_field(t, "MemTotal", what)?;
            let free = meminfo_field(t, "MemFree", what)?;
            Ok(free.saturating_mul(1000) / total.max(1))
        })
    }
    fn some_mem_psi_total_us(&mut self) -> Result<u64, OpsError> {
        with_file("/proc/pressure/memory", parse_psi_some_total)
    }
    fn node_mem(&mut self, nid: i32) -> Result<(u64, u64), OpsError> {
        let mut buf = [0u8; 64];
        let path = node_meminfo_path(nid, &mut buf);
        with_file(path, |t| {
            Ok((
                meminfo_field(t, "MemTotal", path)?,
                meminfo_field(t, "MemFree", path)?,
            ))
        })
    }
    fn memcg_exists(&self, memcg_id: u64) -> bool {
        memcg_dir(memcg_id).is_some()
    }
    fn node_exists(&self, nid: i32) -> bool {
        let mut buf = [0u8; 64];
        nid >= 0 && std::path::Path::new(node_meminfo_path(nid, &mut buf)).exists()
    }
    fn lru(&mut self) -> Result<(u64, u64), OpsError> {
        let what = "/proc/meminfo";
        with_file(what, |t| {
            Ok((
                meminfo_field(t, "Active", what)?,
                meminfo_field(t, "Inactive", what)?,
            ))
        })
    }
    fn node_memcg_lru(&mut self, memcg_id: u64, nid: i32) -> Result<Option<u64>, OpsError> {
        let Some(dir) = memcg_dir(memcg_id) else {
            return Ok(None);
        };
        let path = dir.join("memory.numa_stat");
        let path = path.to_string_lossy();
        let page = page_size();
        match with_file(&path, |t| {
            crate::memcg::numa_stat_lru_bytes(t, nid, page, &path)
        }) {
            Err(OpsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // removed since it was found: forget it, read as missing
                MEMCG_DIRS.with(|m| m.borrow_mut().retain(|(id, _)| *id != memcg_id));
                Ok(None)
            }
            r => r.map(Some),
        }
    }
    fn hugepage_mem(&mut self) -> Result<(u64, u64), OpsError> {
        let what = "/proc/meminfo";
        with_file(what, |t| {
            let thp = ["AnonHugePages", "ShmemHugePages", "FileHugePages"]
                .iter()
                .map(|k| meminfo_field(t, k, what).unwrap_or(0))
                .sum();
            let total = meminfo_field(t, "MemTotal", what)?;
            let free = meminfo_field(t, "MemFree", what)?;
            Ok((thp, total.saturating_sub(free)))
        })
    }
}

/// The kernel's page size, from the auxiliary vector (`AT_PAGESZ`), for
/// cgroup v1 statistics counted in pages; 4096 if it cannot be read.
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        const AT_PAGESZ: u64 = 6;
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        auxv.chunks_exact(16)
            .map(|c| {
                let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
                (word(&c[..8]), word(&c[8..]))
            })
            .find(|&(k, _)| k == AT_PAGESZ)
            .map_or(4096, |(_, v)| v)
    })
}

thread_local! {
    /// Memory cgroup directories found by id, re-checked at every use.
    static MEMCG_DIRS: std::cell::RefCell<Vec<(u64, std::path::PathBuf)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The directory of memory cgroup `id`: the cached one while its inode
/// still matches, otherwise found again in the memory hierarchies.
fn memcg_dir(id: u64) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let cached = MEMCG_DIRS.with(|m| {
        m.borrow()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.clone())
    });
    if let Some(p) = cached {
        if std::fs::metadata(&p).is_ok_and(|m| m.ino() == id) {
            return Some(p);
        }
    }
    let roots = crate::memcg::memory_roots();
    let found = crate::memcg::find_memcg_dir(&roots, id);
    MEMCG_DIRS.with(|m| {
        let mut m = m.borrow_mut();
        m.retain(|(i, _)| *i != id);
        if let Some(p) = &found {
            m.push((id, p.clone()));
        }
    });
    found
}

/// Scripted metrics for tests and simulations; clones share the values.
#[derive(Debug, Clone, Default)]
pub struct SimMetrics {
    inner: Arc<Mutex<SimValues>>,
}

/// The values a [`SimMetrics`] reports.
#[derive(Debug, Clone, Default)]
pub struct SimValues {
    /// Free memory per mille.
    pub free_mem_rate: u64,
    /// PSI some total (µs).
    pub psi_total_us: u64,
    /// (total, free) per node id.
    pub nodes: Vec<(i32, u64, u64)>,
    /// (active, inactive) bytes.
    pub lru: (u64, u64),
    /// PSI is unavailable (as with `psi=0`): reads fail as `ProcMetrics`'
    /// do on such a kernel.
    pub psi_missing: bool,
    /// (memcg id, node id, LRU bytes) of the simulated memory cgroups.
    pub memcgs: Vec<(u64, i32, u64)>,
    /// (transparent huge page bytes, used bytes).
    pub hugepage: (u64, u64),
}

impl SimMetrics {
    /// Metrics with every value 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Changes the values.
    pub fn set(&self, f: impl FnOnce(&mut SimValues)) {
        f(&mut self.inner.lock());
    }
}

impl SystemMetrics for SimMetrics {
    fn free_mem_rate(&mut self) -> Result<u64, OpsError> {
        Ok(self.inner.lock().free_mem_rate)
    }
    fn some_mem_psi_total_us(&mut self) -> Result<u64, OpsError> {
        let v = self.inner.lock();
        if v.psi_missing {
            return Err(OpsError::Unsupported {
                what: "/proc/pressure/memory".into(),
                hint: missing_hint("/proc/pressure/memory")
                    .unwrap_or_default()
                    .into(),
            });
        }
        Ok(v.psi_total_us)
    }
    fn node_exists(&self, nid: i32) -> bool {
        self.inner.lock().nodes.iter().any(|n| n.0 == nid)
    }
    fn memcg_exists(&self, memcg_id: u64) -> bool {
        self.inner.lock().memcgs.iter().any(|m| m.0 == memcg_id)
    }
    fn node_mem(&mut self, nid: i32) -> Result<(u64, u64), OpsError> {
        self.inner
            .lock()
            .nodes
            .iter()
            .find(|n| n.0 == nid)
            .map(|n| (n.1, n.2))
            .ok_or_else(|| OpsError::Unsupported {
                what: format!("node {nid}"),
                hint: "not simulated".into(),
            })
    }
    fn lru(&mut self) -> Result<(u64, u64), OpsError> {
        Ok(self.inner.lock().lru)
    }
    fn node_memcg_lru(&mut self, memcg_id: u64, nid: i32) -> Result<Option<u64>, OpsError> {
        let v = self.inner.lock();
        if !v.memcgs.iter().any(|m| m.0 == memcg_id) {
            return Ok(None);
        }
        Ok(Some(
            v.memcgs
                .iter()
                .filter(|m| m.0 == memcg_id && m.1 == nid)
                .map(|m| m.2)
                .sum(),
        ))
    }
    fn hugepage_mem(&mut self) -> Result<(u64, u64), OpsError> {
        Ok(self.inner.lock().hugepage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &[(String, u64)], key: &str, what: &str) -> Result<u64, OpsError> {
        v.iter()
            .find(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .ok_or_else(|| malformed(what, format!("no {key} field")))
    }

    #[test]
    fn parses_meminfo_and_node_meminfo() {
        let v = parse_meminfo(
            "MemTotal:       16384 kB\nMemFree:  4096 kB\nHugePages_Total:       0\n",
            "m",
        )
        .unwrap();
        assert_eq!(field(&v, "MemTotal", "m").unwrap(), 16384 * 1024);
        assert_eq!(field(&v, "HugePages_Total", "m").unwrap(), 0);
        let v =
            parse_meminfo("Node 1 MemTotal:  514716 kB\nNode 1 MemFree: 100 kB\n", "n").unwrap();
        assert_eq!(field(&v, "MemFree", "n").unwrap(), 102_400);
    }

    #[test]
    fn malformed_text_is_an_error_naming_the_line() {
        let e = parse_meminfo("MemTotal: 1 kB\nMemFree x\n", "/proc/meminfo")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse_meminfo("A: 1 MB\n", "m").is_err());
        assert!(parse_meminfo("A: x kB\n", "m").is_err());
    }

    #[test]
    fn parses_psi() {
        let t = "some avg10=33.96 avg60=1.00 avg300=0.20 total=6178133\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=12\n";
        assert_eq!(parse_psi_some_total(t).unwrap(), 6_178_133);
        assert!(parse_psi_some_total("full total=1\n").is_err());
        assert!(parse_psi_some_total("some avg10=1 total=x\n").is_err());
    }

    #[test]
    fn meminfo_field_finds_one_value() {
        let t = "MemTotal:       16384 kB\nMemFree:  4096 kB\nHugePages_Total:       0\n";
        assert_eq!(meminfo_field(t, "MemFree", "m").unwrap(), 4096 * 1024);
        assert_eq!(meminfo_field(t, "HugePages_Total", "m").unwrap(), 0);
        assert!(meminfo_field(t, "Active", "m").is_err());
        assert!(meminfo_field("A: x kB\n", "A", "m").is_err());
        let n = "Node 1 MemTotal:  514716 kB\nNode 1 MemFree: 100 kB\n";
        assert_eq!(meminfo_field(n, "MemFree", "n").unwrap(), 102_400);
        let mut buf = [0u8; 64];
        assert_eq!(
            node_meminfo_path(12, &mut buf),
            "/sys/devices/system/node/node12/meminfo"
        );
    }

    #[test]
    fn page_size_from_auxv() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

    #[test]
    fn this_machine_has_meminfo() {
        let rate = ProcMetrics.free_mem_rate().unwrap();
        assert!(rate <= 1000);
        let (active, inactive) = ProcMetrics.lru().unwrap();
        assert!(active + inactive > 0);
    }
}
