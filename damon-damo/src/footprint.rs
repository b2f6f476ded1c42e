//! damo's memory footprint side file (`<record>.mem_footprint`): what the
//! monitored processes (`/proc/PID/statm`, in pages) and the system
//! (`/proc/meminfo`, in KiB) used while a record was made, and
//! `damo report footprints`, the distribution of one of `vsz`, `rss` or
//! `sys_used`.
//!
//! The file is a JSON list of `{"time": SECS, "footprints": [{"pid": PID,
//! "footprint": {"size", "resident", "shared", "trs", "lrs", "drs",
//! "dt"}}, ..., {"pid": null, "footprint": {"total", "free", "available",
//! "buffers", "cached"}}]}`; [`FootprintWriter`] writes it one snapshot at
//! a time and always leaves a complete list.

use crate::fmt::format_sz;
use crate::wss::percentile;
use crate::DamoError;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A process's `/proc/PID/statm` (pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcFootprint {
    /// Virtual size.
    pub size: u64,
    /// Resident pages.
    pub resident: u64,
    /// Resident shared (file-backed and shmem) pages.
    pub shared: u64,
    /// Text.
    pub trs: u64,
    /// Library (always 0).
    pub lrs: u64,
    /// Data and stack.
    pub drs: u64,
    /// Dirty (always 0).
    pub dt: u64,
}

impl ProcFootprint {
    /// Reads `/proc/PID/statm`; a process that is gone uses nothing (as
    /// damo counts it).
    pub fn read(pid: u64) -> Self {
        let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 7 {
            return Self::default();
        }
        Self {
            size: f[0],
            resident: f[1],
            shared: f[2],
            trs: f[3],
            lrs: f[4],
            drs: f[5],
            dt: f[6],
        }
    }
}

/// The system's `/proc/meminfo` (KiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysFootprint {
    /// MemTotal.
    pub total: u64,
    /// MemFree.
    pub free: u64,
    /// MemAvailable.
    pub available: u64,
    /// Buffers.
    pub buffers: u64,
    /// Cached.
    pub cached: u64,
}

impl SysFootprint {
    /// Reads `/proc/meminfo` (fields it lacks read 0).
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mut s = Self::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) else {
                continue;
            };
            match k {
                "MemTotal:" => s.total = v,
                "MemFree:" => s.free = v,
                "MemAvailable:" => s.available = v,
                "Buffers:" => s.buffers = v,
                "Cached:" => s.cached = v,
                _ => {}
            }
        }
        s
    }
}

/// One footprint of one process, or of the system (`pid` null).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Proc {
        pid: u64,
        footprint: ProcFootprint,
    },
    Sys {
        pid: Option<()>,
        footprint: SysFootprint,
    },
}

/// The footprints at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FootprintSnapshot {
    /// Seconds since the epoch.
    pub time: f64,
    footprints: Vec<Entry>,
}

impl FootprintSnapshot {
    /// The footprints of `pids` and of the system, now.
    pub fn take(pids: &[u64]) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self::of(
            time,
            pids.iter().map(|&p| (p, ProcFootprint::read(p))).collect(),
            SysFootprint::read(),
        )
    }

    /// A snapshot of given values.
    pub fn of(time: f64, procs: Vec<(u64, ProcFootprint)>, sys: SysFootprint) -> Self {
        let mut footprints: Vec<Entry> = procs
            .into_iter()
            .map(|(pid, footprint)| Entry::Proc { pid, footprint })
            .collect();
        footprints.push(Entry::Sys {
            pid: None,
            footprint: sys,
        });
        Self { time, footprints }
    }

    /// The processes' footprints.
    pub fn procs(&self) -> impl Iterator<Item = (u64, &ProcFootprint)> {
        self.footprints.iter().filter_map(|e| match e {
            Entry::Proc { pid, footprint } => Some((*pid, footprint)),
            Entry::Sys { .. } => None,
        })
    }

    /// The system's footprint.
    pub fn sys(&self) -> Option<&SysFootprint> {
        self.footprints.iter().find_map(|e| match e {
            Entry::Sys { footprint, .. } => Some(footprint),
            Entry::Proc { .. } => None,
        })
    }
}

/// Writes a footprint file one snapshot at a time; the file is a complete
/// JSON list after every [`push`](FootprintWriter::push).
#[derive(Debug)]
pub struct FootprintWriter {
    path: PathBuf,
    file: std::fs::File,
    count: usize,
}

fn io(path: &Path, e: std::io::Error) -> DamoError {
    DamoError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

impl FootprintWriter {
    /// Creates (truncates) `path` with an empty list.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, DamoError> {
        let path = path.into();
        let mut file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        file.write_all(b"[\n]\n").map_err(|e| io(&path, e))?;
        Ok(Self {
            path,
            file,
            count: 0,
        })
    }

    /// Appends `s`, keeping the list closed.
    pub fn push(&mut self, s: &FootprintSnapshot) -> Result<(), DamoError> {
        use std::io::Seek as _;
        let json =
            serde_json::to_string(s).map_err(|e| io(&self.path, std::io::Error::other(e)))?;
        // overwrite the closing "]\n"
        self.file
            .seek(std::io::SeekFrom::End(-2))
            .map_err(|e| io(&self.path, e))?;
        let sep = if self.count == 0 { "" } else { ",\n" };
        write!(self.file, "{sep}{json}\n]\n").map_err(|e| io(&self.path, e))?;
        self.count += 1;
        Ok(())
    }

    /// Snapshots written.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Flushes the file to disk.
    pub fn finish(self) -> Result<usize, DamoError> {
        self.file.sync_all().map_err(|e| io(&self.path, e))?;
        Ok(self.count)
    }
}

/// Reads a footprint file (damo's or ours).
pub fn read_footprints(path: &Path) -> Result<Vec<FootprintSnapshot>, DamoError> {
    let text = std::fs::read(path).map_err(|e| io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| DamoError::Syntax(format!("{}: {e}", path.display())))
}

/// What `report footprints` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FootprintMetric {
    /// Virtual size of the processes.
    Vsz,
    /// Resident set of the processes.
    Rss,
    /// Memory the system used (total less free).
    SysUsed,
}

impl FootprintMetric {
    /// damo's name.
    pub fn name(self) -> &'static str {
        match self {
            FootprintMetric::Vsz => "vsz",
            FootprintMetric::Rss => "rss",
            FootprintMetric::SysUsed => "sys_used",
        }
    }
}

/// The metric's bytes of every snapshot (damo's 4 KiB pages), sorted or
/// in time order.
pub fn footprint_dist(
    snaps: &[FootprintSnapshot],
    metric: FootprintMetric,
    sort: bool,
) -> Vec<u64> {
    let mut v: Vec<u64> = snaps
        .iter()
        .map(|s| match metric {
            FootprintMetric::SysUsed => {
                s.sys().map_or(0, |f| f.total.saturating_sub(f.free) * 1024)
            }
            FootprintMetric::Vsz => s.procs().map(|(_, f)| f.size * 4096).sum(),
            FootprintMetric::Rss => s.procs().map(|(_, f)| f.resident * 4096).sum(),
        })
        .collect();
    if sort {
        v.sort_unstable();
    }
    v
}

/// damo's distribution text (`_damo_dist.fmt_dists`, without its bars):
/// the average, then `%3d %15s` per percentile (or every value).
pub fn dist_text(name: &str, dists: &[u64], percentiles: &[u32], all: bool, raw: bool) -> String {
    let sz = |v: f64| {
        if raw {
            format!("{}", v as u64)
        } else {
            format_sz(v)
        }
    };
    let mut lines = vec![format!("# <percentile> <{name}>")];
    if dists.is_empty() {
        lines.push("# no snapshot".into());
    } else {
        let avg = dists.iter().map(|&v| v as f64).sum::<f64>() / dists.len() as f64;
        lines.push(format!("# avr:\t{}", sz(avg)));
        if all {
            for (i, v) in dists.iter().enumerate() {
                lines.push(format!("{i} {}", sz(*v as f64)));
            }
        } else {
            for &p in percentiles {
                if let Some(v) = percentile(dists, p) {
                    lines.push(format!("{p:3} {:>15}", sz(v as f64)));
                }
            }
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
