//! Physical memory of one NUMA node, from memory-block sysfs:
//! `/sys/devices/system/memory/block_size_bytes` (hex, without `0x`) and the
//! `memoryM` links in `/sys/devices/system/node/nodeN/`; block M covers
//! `[phys_index * block_size, +block_size)` where `phys_index` (hex) is read
//! from `memoryM/phys_index` (equal to M on every kernel we know).
//!
//! Needs `CONFIG_MEMORY_HOTPLUG` (the only thing that creates these files).

use damon_core::{AddrRange, OpsError};
use damon_ops_common::error::{parse_hex, ParseError};

/// Where memory blocks are described.
pub const MEMORY_SYSFS: &str = "/sys/devices/system/memory";
/// Where NUMA nodes are described.
pub const NODE_SYSFS: &str = "/sys/devices/system/node";

/// Parses `block_size_bytes`: hex without `0x` (a prefix is tolerated),
/// non-zero, surrounding whitespace ignored.
///
/// ```
/// assert_eq!(damon_ops_paddr::numa::parse_block_size("8000000\n").unwrap(), 128 << 20);
/// ```
pub fn parse_block_size(text: &str) -> Result<u64, ParseError> {
    let name = "block_size_bytes";
    let t = text.trim();
    let v = parse_hex(t)
        .ok_or_else(|| ParseError::new(name, 1, format!("expected a hex number, got {t:?}")))?;
    if v == 0 {
        return Err(ParseError::new(name, 1, "block size is zero"));
    }
    Ok(v)
}

/// Parses a `memoryM/phys_index` file (hex).
pub fn parse_phys_index(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    parse_hex(t).ok_or_else(|| {
        ParseError::new("phys_index", 1, format!("expected a hex number, got {t:?}"))
    })
}

/// The block number of a `memoryM` directory entry (`None` for other entries
/// such as `cpu0`, `meminfo` or `memory_failure`).
pub fn memory_block_number(entry_name: &str) -> Option<u64> {
    let digits = entry_name.strip_prefix("memory")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The node's ranges from its block indices: `index * block_size`, sorted,
/// adjacent blocks merged. Overflowing blocks are an error.
///
/// ```
/// use damon_core::AddrRange;
/// let r = damon_ops_paddr::numa::node_ranges(0x8000000, [5, 4, 7]).unwrap();
/// assert_eq!(r, vec![AddrRange::new(0x20000000, 0x30000000), AddrRange::new(0x38000000, 0x40000000)]);
/// ```
pub fn node_ranges(
    block_size: u64,
    indices: impl IntoIterator<Item = u64>,
) -> Result<Vec<AddrRange>, ParseError> {
    let mut idx: Vec<u64> = indices.into_iter().collect();
    idx.sort_unstable();
    idx.dedup();
    let mut out: Vec<AddrRange> = Vec::new();
    for i in idx {
        let start = i
            .checked_mul(block_size)
            .filter(|s| s.checked_add(block_size).is_some())
            .ok_or_else(|| {
                ParseError::new(
                    "memory block",
                    0,
                    format!("block {i} x {block_size:#x} overflows"),
                )
            })?;
        let end = start + block_size;
        match out.last_mut() {
            Some(l) if l.end == start => l.end = end,
            _ => out.push(AddrRange::new(start, end)),
        }
    }
    Ok(out)
}

/// The node's ranges from the text of `block_size_bytes` and the names of
/// the node directory's entries (`memoryM` links; others are ignored).
pub fn node_ranges_from_names<'a>(
    block_size_text: &str,
    entry_names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<AddrRange>, ParseError> {
    let bs = parse_block_size(block_size_text)?;
    node_ranges(bs, entry_names.into_iter().filter_map(memory_block_number))
}

/// The intersection of two sorted, disjoint range lists.
pub fn intersect(a: &[AddrRange], b: &[AddrRange]) -> Vec<AddrRange> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let s = a[i].start.max(b[j].start);
        let e = a[i].end.min(b[j].end);
        if s < e {
            out.push(AddrRange::new(s, e));
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn io_err(call: &'static str, path: &str, e: std::io::Error) -> OpsError {
    if e.kind() == std::io::ErrorKind::NotFound {
        OpsError::Unsupported {
            what: path.to_string(),
            hint: "no such NUMA node, or kernel built without CONFIG_MEMORY_HOTPLUG (no memory-block sysfs)".into(),
        }
    } else {
        OpsError::Io {
            call,
            path: path.to_string(),
            source: e,
        }
    }
}

/// Reads the physical ranges of NUMA node `node` from sysfs.
pub fn read_node_ranges(node: u32) -> Result<Vec<AddrRange>, OpsError> {
    let bs_path = format!("{MEMORY_SYSFS}/block_size_bytes");
    let bs_text = std::fs::read_to_string(&bs_path).map_err(|e| io_err("read", &bs_path, e))?;
    let bs = parse_block_size(&bs_text)?;
    let dir = format!("{NODE_SYSFS}/node{node}");
    let mut indices = Vec::new();
    for ent in std::fs::read_dir(&dir).map_err(|e| io_err("opendir", &dir, e))? {
        let ent = ent.map_err(|e| io_err("readdir", &dir, e))?;
        let name = ent.file_name();
        let Some(m) = name.to_str().and_then(memory_block_number) else {
            continue;
        };
        let pi_path = format!("{MEMORY_SYSFS}/memory{m}/phys_index");
        let idx = match std::fs::read_to_string(&pi_path) {
            Ok(t) => parse_phys_index(&t)?,
            Err(_) => m,
        };
        indices.push(idx);
    }
    Ok(node_ranges(bs, indices)?)
}

/// Which NUMA node each PFN belongs to, from the zones of `/proc/zoneinfo`
/// (`start_pfn` and `spanned` of every zone): the node of a page
/// (`folio_nid()`) for the `node_eligible_mem_bp` goal. Needs no memory
/// hotplug sysfs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMap {
    /// (first PFN, end PFN, node), sorted by first PFN.
    zones: Vec<(u64, u64, i32)>,
}

impl NodeMap {
    /// A map from (first PFN, end PFN, node) spans (tests and callers that
    /// know their layout).
    pub fn from_spans(mut zones: Vec<(u64, u64, i32)>) -> Self {
        zones.retain(|z| z.0 < z.1);
        zones.sort_unstable();
        Self { zones }
    }

    /// Parses a `/proc/zoneinfo` text.
    ///
    /// ```
    /// let t = "Node 0, zone   Normal\n  pages free 1\n        spanned  1024\n  start_pfn:  4096\n\
    ///          Node 1, zone   Normal\n        spanned  2048\n  start_pfn:  5120\n\
    ///          Node 1, zone  Movable\n        spanned  0\n  start_pfn:  0\n";
    /// let m = damon_ops_paddr::numa::NodeMap::parse_zoneinfo(t);
    /// assert_eq!(m.node_of(4096), Some(0));
    /// assert_eq!(m.node_of(5120), Some(1));
    /// assert_eq!(m.node_of(7168), None);
    /// ```
    pub fn parse_zoneinfo(text: &str) -> Self {
        let mut zones = Vec::new();
        let (mut nid, mut spanned) = (None, 0u64);
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("Node ") {
                nid = rest.split(',').next().and_then(|n| n.trim().parse().ok());
                spanned = 0;
            } else if let Some(v) = t.strip_prefix("spanned") {
                spanned = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = t.strip_prefix("start_pfn:") {
                if let (Some(n), Ok(start)) = (nid, v.trim().parse::<u64>()) {
                    zones.push((start, start.saturating_add(spanned), n));
                }
            }
        }
        Self::from_spans(zones)
    }

    /// This machine's map.
    pub fn read() -> Result<Self, OpsError> {
        let path = "/proc/zoneinfo";
        let text = std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
        Ok(Self::parse_zoneinfo(&text))
    }

    /// The node of `pfn`, if a zone spans it.
    pub fn node_of(&self, pfn: u64) -> Option<i32> {
        let i = self.zones.partition_point(|z| z.0 <= pfn);
        self.zones[..i]
            .iter()
            .rev()
            .find(|z| pfn < z.1)
            .map(|z| z.2)
    }

    /// Whether any zone of node `nid` is known.
    pub fn has_node(&self, nid: i32) -> bool {
        self.zones.iter().any(|z| z.2 == nid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_node_guest() {
        let names = [
            "cpu1",
            "memory4",
            "memory5",
            "memory6",
            "memory7",
            "meminfo",
            "memory_failure",
            "distance",
        ];
        let r = node_ranges_from_names("8000000\n", names).unwrap();
        assert_eq!(r, vec![AddrRange::new(0x2000_0000, 0x4000_0000)]);
    }

    #[test]
    fn bad_block_size_is_malformed() {
        assert!(parse_block_size("").is_err());
        assert!(parse_block_size("0").is_err());
        assert!(parse_block_size("12g").is_err());
        assert_eq!(parse_block_size("0x1000").unwrap(), 0x1000);
        assert!(node_ranges_from_names("zz", ["memory1"])
            .unwrap_err()
            .to_string()
            .contains("block_size_bytes line 1"));
        assert!(node_ranges(u64::MAX / 2, [3]).is_err());
    }

    #[test]
    fn block_names() {
        assert_eq!(memory_block_number("memory12"), Some(12));
        assert_eq!(memory_block_number("memory"), None);
        assert_eq!(memory_block_number("memory_failure"), None);
        assert_eq!(memory_block_number("memory+1"), None);
        assert_eq!(parse_phys_index("0000000c\n").unwrap(), 12);
    }

    #[test]
    fn intersection() {
        let a = [
            AddrRange::new(0, 0x8000000),
            AddrRange::new(0x10000000, 0x20000000),
        ];
        let b = [
            AddrRange::new(0x1000, 0x9fc00),
            AddrRange::new(0x100000, 0x3ffe0000),
        ];
        assert_eq!(
            intersect(&a, &b),
            vec![
                AddrRange::new(0x1000, 0x9fc00),
                AddrRange::new(0x100000, 0x8000000),
                AddrRange::new(0x10000000, 0x20000000)
            ]
        );
    }

    proptest! {
        #[test]
        fn never_panics(bs in "\\PC{0,20}", names in proptest::collection::vec("\\PC{0,12}", 0..10)) {
            let _ = node_ranges_from_names(&bs, names.iter().map(String::as_str));
        }
    }
}
