//! A pure parser of `/proc/PID/maps`.
//!
//! Each line is `START-END PERMS OFFSET MAJOR:MINOR INODE [PATH]` with hex
//! addresses, offset and device numbers and a decimal inode; the path is
//! padded with spaces and may itself contain spaces (or end in ` (deleted)`).

use damon_core::AddrRange;
use damon_ops_common::ParseError;

/// Access permissions of a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perms {
    /// `r`
    pub read: bool,
    /// `w`
    pub write: bool,
    /// `x`
    pub exec: bool,
    /// `s` (shared) rather than `p` (private).
    pub shared: bool,
}

/// One mapping (VMA) line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions.
    pub perms: Perms,
    /// Offset into the file.
    pub offset: u64,
    /// Device `(major, minor)`.
    pub dev: (u32, u32),
    /// Inode (0 for anonymous mappings).
    pub inode: u64,
    /// Path, pseudo-name (`[heap]`, `[stack]`, `[vdso]`, ...) or `None`.
    pub path: Option<String>,
}

impl Vma {
    /// The address range.
    pub fn range(&self) -> AddrRange {
        AddrRange::new(self.start, self.end)
    }

    /// The `[vsyscall]` page: listed in maps but not a VMA of the process
    /// (the kernel's VMA walk never sees it).
    pub fn is_vsyscall(&self) -> bool {
        self.path.as_deref() == Some("[vsyscall]")
    }
}

/// Splits off the next space-separated field.
fn field<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    let (f, r) = s.split_at(end);
    *rest = r;
    Some(f)
}

fn hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// The `rwxp`/`rwxs` permission field.
fn parse_perms(p: &str) -> Option<Perms> {
    let pb = p.as_bytes();
    if pb.len() != 4 {
        return None;
    }
    let flag = |i: usize, yes: u8| match pb[i] {
        c if c == yes => Some(true),
        b'-' => Some(false),
        b'p' if i == 3 => Some(false),
        _ => None,
    };
    Some(Perms {
        read: flag(0, b'r')?,
        write: flag(1, b'w')?,
        exec: flag(2, b'x')?,
        shared: flag(3, b's')?,
    })
}

/// Parses one maps line (`line_no` is 1-based, for errors).
pub fn parse_maps_line(line: &str, line_no: usize, source: &str) -> Result<Vma, ParseError> {
    let err = |d: String| ParseError::new(source, line_no, d);
    let mut rest = line;
    let range = field(&mut rest).ok_or_else(|| err("empty line".into()))?;
    let (s, e) = range
        .split_once('-')
        .ok_or_else(|| err(format!("expected START-END, got {range:?}")))?;
    let start = hex(s).ok_or_else(|| err(format!("bad start address {s:?}")))?;
    let end = hex(e).ok_or_else(|| err(format!("bad end address {e:?}")))?;
    if start > end {
        return Err(err(format!("start {start:#x} is above end {end:#x}")));
    }
    let p = field(&mut rest).ok_or_else(|| err("missing permissions".into()))?;
    let perms = parse_perms(p).ok_or_else(|| err(format!("bad permissions {p:?}")))?;
    let o = field(&mut rest).ok_or_else(|| err("missing offset".into()))?;
    let offset = hex(o).ok_or_else(|| err(format!("bad offset {o:?}")))?;
    let d = field(&mut rest).ok_or_else(|| err("missing device".into()))?;
    let (maj, min) = d
        .split_once(':')
        .ok_or_else(|| err(format!("bad device {d:?}")))?;
    let dev_part = |x: &str| {
        hex(x)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| err(format!("bad device {d:?}")))
    };
    let dev = (dev_part(maj)?, dev_part(min)?);
    let i = field(&mut rest).ok_or_else(|| err("missing inode".into()))?;
    if !i.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("bad inode {i:?}")));
    }
    let inode = i
        .parse::<u64>()
        .map_err(|_| err(format!("bad inode {i:?}")))?;
    let path = rest.trim_start_matches(' ');
    let path = (!path.is_empty()).then(|| path.to_string());
    Ok(Vma {
        start,
        end,
        perms,
        offset,
        dev,
        inode,
        path,
    })
}

/// Parses a whole maps file; blank lines are skipped, errors name the line.
///
/// ```
/// let text = "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n\
///             7ffd5e000000-7ffd5e021000 rw-p 00000000 00:00 0          [stack]\n";
/// let vmas = damon_ops_vaddr::maps::parse_maps(text).unwrap();
/// assert_eq!(vmas.len(), 2);
/// assert_eq!(vmas[0].path.as_deref(), Some("/usr/bin/dbus-daemon"));
/// assert!(vmas[1].perms.write && !vmas[1].perms.shared);
/// ```
pub fn parse_maps(text: &str) -> Result<Vec<Vma>, ParseError> {
    parse_maps_named(text, "/proc/PID/maps")
}

/// [`parse_maps`] naming the file in errors (e.g. `/proc/42/maps`).
pub fn parse_maps_named(text: &str, source: &str) -> Result<Vec<Vma>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_maps_line(line, i + 1, source)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typical_lines() {
        let text = "\
55d4c3a00000-55d4c3a02000 r--p 00000000 fd:01 1835041                    /usr/bin/cat
55d4c4e5b000-55d4c4e7c000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-s 00000000 00:05 3                          /dev/zero (deleted)
7f1c2b000000-7f1c2b001000 ---p 00000000 00:00 0 
7f1c2c000000-7f1c2c001000 r-xp 00001000 103:0a 99                         /tmp/a file with spaces
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";
        let v = parse_maps(text).unwrap();
        assert_eq!(v.len(), 6);
        assert_eq!(
            v[0].perms,
            Perms {
                read: true,
                write: false,
                exec: false,
                shared: false
            }
        );
        assert_eq!(v[0].dev, (0xfd, 1));
        assert_eq!(v[0].inode, 1835041);
        assert_eq!(v[1].path.as_deref(), Some("[heap]"));
        assert!(v[2].perms.shared);
        assert_eq!(v[2].path.as_deref(), Some("/dev/zero (deleted)"));
        assert_eq!(v[3].path, None);
        assert_eq!(v[4].dev, (0x103, 0xa));
        assert_eq!(v[4].offset, 0x1000);
        assert_eq!(v[4].path.as_deref(), Some("/tmp/a file with spaces"));
        assert!(v[5].is_vsyscall());
        assert_eq!(v[5].range().len(), 0x1000);
    }

    #[test]
    fn errors_name_the_line() {
        let bad = [
            "zz-10 r--p 0 00:00 0",
            "10-5 r--p 0 00:00 0",
            "10-20 r-p 0 00:00 0",
            "10-20 rwxq 0 00:00 0",
            "10-20 r--p 0 0000 0",
            "10-20 r--p 0 00:00 -1",
            "10-20 r--p 0 00:00",
            "10-20",
            "10-20 r--p g 00:00 0",
            "10-20 r--p 0 1ffffffff:00 0",
            "0-11111111111111111 r--p 0 00:00 0",
        ];
        for b in bad {
            let text = format!("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x\n\n{b}\n");
            let e = parse_maps_named(&text, "/proc/7/maps").unwrap_err();
            assert_eq!(e.line, 3, "{b}: {e}");
            assert!(e.to_string().starts_with("/proc/7/maps line 3"), "{e}");
        }
    }

    #[test]
    fn own_maps_parse() {
        let text = std::fs::read_to_string("/proc/self/maps").unwrap();
        let v = parse_maps(&text).unwrap();
        assert!(v.iter().any(|m| m.path.as_deref() == Some("[stack]")));
        assert!(v.windows(2).all(|w| w[0].end <= w[1].start));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = parse_maps(&text);
        }

        #[test]
        fn never_panics_on_near_valid_lines(lines in proptest::collection::vec(
            ("[0-9a-f]{0,17}", "-?", "[0-9a-f]{0,17}", " {0,2}", "[rwxps-]{0,5}", " [0-9a-f]{0,9}", " [0-9a-f:]{0,6}", " [0-9-]{0,4}", "( +\\PC{0,10})?"), 0..10)) {
            let text: String = lines.iter().map(|t| format!("{}{}{}{}{}{}{}{}{}\n", t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7, t.8)).collect();
            if let Ok(v) = parse_maps(&text) {
                for m in v { prop_assert!(m.start <= m.end); }
            }
        }
    }
}
