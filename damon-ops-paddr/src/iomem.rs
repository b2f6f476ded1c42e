//! `/proc/iomem`: the physical address map, as nested sections.
//!
//! Each line is `<indent>START-END : NAME`, addresses in hex with an
//! inclusive end, two spaces of indentation per nesting level. "System RAM"
//! is usually top-level but can be nested (e.g. under "Soft Reserved" or a
//! CXL window), so every depth is searched. Without root the kernel prints
//! every address as zero; [`IomemEntry::is_hidden`] flags that.

use damon_core::AddrRange;
use damon_ops_common::error::{parse_hex, ParseError};

const SOURCE: &str = "/proc/iomem";

/// One `/proc/iomem` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IomemEntry {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive, as printed).
    pub end_inclusive: u64,
    /// Nesting depth (0 = top level).
    pub depth: usize,
    /// The resource name (`System RAM`, `Kernel code`, `PCI Bus 0000:00`, ...).
    pub name: String,
}

impl IomemEntry {
    /// The half-open range `[start, end_inclusive + 1)` (saturating).
    pub fn range(&self) -> AddrRange {
        AddrRange::new(self.start, self.end_inclusive.saturating_add(1))
    }

    /// True when the kernel hid the address (non-root readers see zeros).
    pub fn is_hidden(&self) -> bool {
        self.start == 0 && self.end_inclusive == 0
    }

    /// True for usable RAM: `System RAM`, or hot-plugged `System RAM (kmem)`.
    pub fn is_system_ram(&self) -> bool {
        self.name == "System RAM" || self.name.starts_with("System RAM (")
    }
}

/// Parses the whole file. Blank lines are skipped; anything else that is
/// not `START-END : NAME` with `START <= END` is an error naming its line.
///
/// ```
/// let text = "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n\
///             00100000-3ffdffff : System RAM\n  01000000-01ffffff : Kernel code\n";
/// let entries = damon_ops_paddr::iomem::parse_iomem(text).unwrap();
/// assert_eq!(entries[3].depth, 1);
/// let ram = damon_ops_paddr::iomem::largest_system_ram(&entries).unwrap();
/// assert_eq!((ram.start, ram.end), (0x100000, 0x3ffe0000));
/// ```
pub fn parse_iomem(text: &str) -> Result<Vec<IomemEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let line = &raw[indent..];
        let (addrs, name) = line.split_once(" : ").ok_or_else(|| {
            ParseError::new(
                SOURCE,
                line_no,
                format!("expected 'START-END : NAME', got {line:?}"),
            )
        })?;
        let (s, e) = addrs.trim().split_once('-').ok_or_else(|| {
            ParseError::new(
                SOURCE,
                line_no,
                format!("expected START-END, got {addrs:?}"),
            )
        })?;
        let start = parse_hex(s)
            .ok_or_else(|| ParseError::new(SOURCE, line_no, format!("bad start address {s:?}")))?;
        let end = parse_hex(e)
            .ok_or_else(|| ParseError::new(SOURCE, line_no, format!("bad end address {e:?}")))?;
        if start > end {
            return Err(ParseError::new(
                SOURCE,
                line_no,
                format!("start {start:#x} is above end {end:#x}"),
            ));
        }
        out.push(IomemEntry {
            start,
            end_inclusive: end,
            depth: indent / 2,
            name: name.trim().to_string(),
        });
    }
    Ok(out)
}

/// Every System RAM block, sorted, with overlaps merged. A System RAM entry
/// nested inside another System RAM entry is not counted twice; hidden
/// (all-zero) entries are skipped.
pub fn system_ram(entries: &[IomemEntry]) -> Vec<AddrRange> {
    // (depth, is_ram) of the ancestors of the current line
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut out = Vec::new();
    for e in entries {
        while stack.last().is_some_and(|&(d, _)| d >= e.depth) {
            stack.pop();
        }
        let inside_ram = stack.iter().any(|&(_, ram)| ram);
        if e.is_system_ram() && !inside_ram && !e.is_hidden() {
            out.push(e.range());
        }
        stack.push((e.depth, e.is_system_ram()));
    }
    normalize(&mut out);
    out
}

/// Sorts ranges and merges overlapping ones (adjacent ranges stay apart).
pub(crate) fn normalize(v: &mut Vec<AddrRange>) {
    v.retain(|r| !r.is_empty());
    v.sort_unstable();
    let mut w = 0usize;
    for i in 0..v.len() {
        if w > 0 && v[w - 1].end > v[i].start {
            v[w - 1].end = v[w - 1].end.max(v[i].end);
        } else {
            v[w] = v[i];
            w += 1;
        }
    }
    v.truncate(w);
}

/// The largest System RAM block (the first one on a tie), as the kernel's
/// DAMON modules pick by default.
pub fn largest_system_ram(entries: &[IomemEntry]) -> Option<AddrRange> {
    system_ram(entries)
        .into_iter()
        .fold(None, |best: Option<AddrRange>, r| match best {
            Some(b) if b.len() >= r.len() => Some(b),
            _ => Some(r),
        })
}

/// True when the file lists System RAM but every address is hidden (the
/// reader is not root).
pub fn is_hidden(entries: &[IomemEntry]) -> bool {
    entries.iter().any(IomemEntry::is_system_ram) && entries.iter().all(IomemEntry::is_hidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GUEST: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-3ffdffff : System RAM
  01000000-01c031d0 : Kernel code
  01e00000-0223cfff : Kernel rodata
3ffe0000-3fffffff : Reserved
fec00000-fec003ff : IOAPIC 0
";

    #[test]
    fn qemu_guest_layout() {
        let e = parse_iomem(GUEST).unwrap();
        assert_eq!(e.len(), 10);
        assert_eq!(e[4].depth, 1);
        assert_eq!(e[4].name, "System ROM");
        let ram = system_ram(&e);
        assert_eq!(
            ram,
            vec![
                AddrRange::new(0x1000, 0x9fc00),
                AddrRange::new(0x100000, 0x3ffe0000)
            ]
        );
        assert_eq!(
            largest_system_ram(&e),
            Some(AddrRange::new(0x100000, 0x3ffe0000))
        );
        assert!(!is_hidden(&e));
    }

    #[test]
    fn nested_system_ram_is_found_once() {
        let text = "\
100000000-1ffffffff : Soft Reserved
  100000000-17fffffff : System RAM
    100000000-10fffffff : System RAM
  180000000-1ffffffff : dax0.0
    180000000-1ffffffff : System RAM (kmem)
200000000-2ffffffff : System RAM
";
        let e = parse_iomem(text).unwrap();
        let ram = system_ram(&e);
        assert_eq!(
            ram,
            vec![
                AddrRange::new(0x1_0000_0000, 0x1_8000_0000),
                AddrRange::new(0x1_8000_0000, 0x2_0000_0000),
                AddrRange::new(0x2_0000_0000, 0x3_0000_0000)
            ]
        );
        assert_eq!(
            largest_system_ram(&e),
            Some(AddrRange::new(0x2_0000_0000, 0x3_0000_0000))
        );
    }

    #[test]
    fn non_root_view_is_hidden() {
        let text = "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n";
        let e = parse_iomem(text).unwrap();
        assert!(is_hidden(&e));
        assert!(system_ram(&e).is_empty());
        assert_eq!(largest_system_ram(&e), None);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_iomem("00000000-00000fff : Reserved\n\nzz-10 : System RAM\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().contains("/proc/iomem line 3"));
        assert_eq!(parse_iomem("10-5 : x").unwrap_err().line, 1);
        assert_eq!(parse_iomem("10-5 x").unwrap_err().line, 1);
        assert_eq!(parse_iomem("105 : x").unwrap_err().line, 1);
        assert_eq!(parse_iomem("0-fffffffffffffffff : x").unwrap_err().line, 1);
    }

    #[test]
    fn top_of_space_does_not_overflow() {
        let e = parse_iomem("0-ffffffffffffffff : System RAM").unwrap();
        assert_eq!(e[0].range(), AddrRange::new(0, u64::MAX));
    }

    #[test]
    fn host_iomem_parses() {
        if let Ok(text) = std::fs::read_to_string("/proc/iomem") {
            let e = parse_iomem(&text).unwrap();
            assert!(!e.is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,400}") {
            let _ = parse_iomem(&text).map(|e| (system_ram(&e), largest_system_ram(&e), is_hidden(&e)));
        }

        #[test]
        fn never_panics_on_near_valid_lines(lines in proptest::collection::vec(
            ("[ ]{0,6}", "[0-9a-fx]{0,18}", "[-: ]{0,3}", "[0-9a-f]{0,18}", "( : )?", "(System RAM|Reserved|)"), 0..20)) {
            let text: String = lines.iter().map(|(a, b, c, d, e, f)| format!("{a}{b}{c}{d}{e}{f}\n")).collect();
            if let Ok(e) = parse_iomem(&text) {
                let ram = system_ram(&e);
                for w in ram.windows(2) { prop_assert!(w[0].end <= w[1].start); }
            }
        }
    }
}
