//! `damon_aggregated` read as binary ring-buffer pages from the instance's
//! per-CPU `trace_pipe_raw` files: the kernel copies its buffer pages out
//! without formatting a line per region, and we decode fixed-size records
//! at the offsets its `format` file gives. The page layout is the one
//! `events/header_page` and `events/header_event` describe (libtraceevent's
//! kbuffer reads the same): a header of a timestamp and a commit word, then
//! events, each behind a 32-bit header of `type_len` (5 bits) and
//! `time_delta` (27 bits).

use super::AggregatedEvent;
use damon_core::AddrRange;

/// A field's place in an event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    offset: usize,
    size: usize,
}

impl Field {
    fn read(&self, rec: &[u8]) -> Option<u64> {
        let b = rec.get(self.offset..self.offset + self.size)?;
        Some(match self.size {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
            4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }
}

/// Where `damon_aggregated`'s fields are, from its `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventLayout {
    id: u64,
    common_type: Field,
    common_pid: Field,
    target_id: Field,
    nr_regions: Field,
    start: Field,
    end: Field,
    nr_accesses: Field,
    age: Field,
}

impl EventLayout {
    /// Parses a tracefs `format` file; `None` if a field is missing (a
    /// kernel whose event changed: the text reader is used instead).
    pub(crate) fn parse(format: &str) -> Option<Self> {
        let mut id = None;
        let mut fields = std::collections::HashMap::new();
        for line in format.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("ID:") {
                id = v.trim().parse().ok();
            }
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next()?;
            let name = decl.rsplit(' ').next()?.to_string();
            let mut offset = None;
            let mut size = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            fields.insert(
                name,
                Field {
                    offset: offset?,
                    size: size?,
                },
            );
        }
        let f = |n: &str| fields.get(n).copied();
        Some(Self {
            id: id?,
            common_type: f("common_type")?,
            common_pid: f("common_pid")?,
            target_id: f("target_id")?,
            nr_regions: f("nr_regions")?,
            start: f("start")?,
            end: f("end")?,
            nr_accesses: f("nr_accesses")?,
            age: f("age")?,
        })
    }

    fn decode(&self, rec: &[u8], time_ns: u64) -> Option<AggregatedEvent> {
        if self.common_type.read(rec)? != self.id {
            return None;
        }
        // common_pid is an int: sign-extend
        let pid = self.common_pid.read(rec)? as u32 as i32;
        Some(AggregatedEvent {
            time_ns,
            pid: i64::from(pid),
            target_idx: self.target_id.read(rec)?,
            nr_regions: u32::try_from(self.nr_regions.read(rec)?).ok()?,
            range: AddrRange::new(self.start.read(rec)?, self.end.read(rec)?),
            nr_accesses: u32::try_from(self.nr_accesses.read(rec)?).ok()?,
            age: u32::try_from(self.age.read(rec)?).ok()?,
        })
    }
}

/// Where a page's commit word and data are, from `events/header_page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageLayout {
    commit: Field,
    data: usize,
    /// Bytes of one page (header and data).
    pub(crate) size: usize,
}

impl PageLayout {
    /// Parses `events/header_page`.
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let mut commit = None;
        let mut data = None;
        for line in header.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next()?;
            let num = |key: &str, parts: &[&str]| -> Option<usize> {
                parts.iter().find_map(|p| p.strip_prefix(key)?.parse().ok())
            };
            let rest: Vec<&str> = parts.collect();
            let field = Field {
                offset: num("offset:", &rest)?,
                size: num("size:", &rest)?,
            };
            if decl.ends_with(" commit") {
                commit = Some(field);
            } else if decl.ends_with(" data") {
                data = Some(field);
            }
        }
        let (commit, data) = (commit?, data?);
        Some(Self {
            commit,
            data: data.offset,
            size: data.offset + data.size,
        })
    }
}

/// The commit word's length bits; the ones above flag missed events.
const COMMIT_MASK: u64 = (1 << 27) - 1;
/// The commit word's "events were lost before this page" flag.
const MISSED_EVENTS: u64 = 1 << 31;

const PADDING: u32 = 29;
const TIME_EXTEND: u32 = 30;
const TIME_STAMP: u32 = 31;
const TS_SHIFT: u32 = 27;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one page into `out` (events of other ids are skipped); returns
/// whether the kernel flagged events lost before it. A malformed page ends
/// decoding where it stops making sense, keeping what came before.
pub(crate) fn decode_page(
    page: &[u8],
    pl: &PageLayout,
    el: &EventLayout,
    out: &mut Vec<AggregatedEvent>,
) -> bool {
    let (Some(mut ts), Some(commit)) = (
        page.get(..8)
            .and_then(|b| Some(u64::from_ne_bytes(b.try_into().ok()?))),
        pl.commit.read(page),
    ) else {
        return false;
    };
    let missed = commit & MISSED_EVENTS != 0;
    let len = (commit & COMMIT_MASK) as usize;
    let Some(data) = page.get(pl.data..pl.data + len) else {
        return missed;
    };
    let mut off = 0;
    while let Some(hdr) = u32_at(data, off) {
        let type_len = hdr & 0x1f;
        let delta = u64::from(hdr >> 5);
        let (rec, next) = match type_len {
            PADDING => {
                if delta == 0 {
                    break; // the rest of the page is empty
                }
                ts += delta;
                let Some(n) = u32_at(data, off + 4) else {
                    break;
                };
                (None, off + 4 + n as usize)
            }
            TIME_EXTEND => {
                let Some(ext) = u32_at(data, off + 4) else {
                    break;
                };
                ts += (u64::from(ext) << TS_SHIFT) + delta;
                (None, off + 8)
            }
            TIME_STAMP => {
                let Some(ext) = u32_at(data, off + 4) else {
                    break;
                };
                ts = (u64::from(ext) << TS_SHIFT) | delta;
                (None, off + 8)
            }
            0 => {
                ts += delta;
                let Some(n) = u32_at(data, off + 4) else {
                    break;
                };
                let n = n as usize;
                if n < 4 {
                    break;
                }
                (data.get(off + 8..off + 4 + n), off + 4 + n)
            }
            n => {
                ts += delta;
                let n = n as usize * 4;
                (data.get(off + 4..off + 4 + n), off + 4 + n)
            }
        };
        if let Some(ev) = rec.and_then(|r| el.decode(r, ts)) {
            out.push(ev);
        }
        if next <= off {
            break;
        }
        off = next;
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: damon_aggregated
ID: 767
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long target_id;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_regions;\toffset:16;\tsize:4;\tsigned:0;
\tfield:unsigned long start;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long end;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_accesses;\toffset:40;\tsize:4;\tsigned:0;
\tfield:unsigned int age;\toffset:44;\tsize:4;\tsigned:0;

print fmt: \"target_id=%lu nr_regions=%u %lu-%lu: %u %u\"
";

    const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
";

    fn record(id: u16, pid: i32, target: u64, nr: u32, start: u64, acc: u32) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0..2].copy_from_slice(&id.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r[8..16].copy_from_slice(&target.to_ne_bytes());
        r[16..20].copy_from_slice(&nr.to_ne_bytes());
        r[24..32].copy_from_slice(&start.to_ne_bytes());
        r[32..40].copy_from_slice(&(start + 4096).to_ne_bytes());
        r[40..44].copy_from_slice(&acc.to_ne_bytes());
        r[44..48].copy_from_slice(&(acc * 2).to_ne_bytes());
        r
    }

    fn hdr(type_len: u32, delta: u32) -> [u8; 4] {
        (type_len | (delta << 5)).to_ne_bytes()
    }

    #[test]
    fn the_layouts_come_from_the_kernels_files() {
        let el = EventLayout::parse(FORMAT).unwrap();
        assert_eq!(el.id, 767);
        assert_eq!(
            el.age,
            Field {
                offset: 44,
                size: 4
            }
        );
        let pl = PageLayout::parse(HEADER_PAGE).unwrap();
        assert_eq!(
            (pl.commit, pl.data, pl.size),
            (Field { offset: 8, size: 8 }, 16, 4096)
        );
        assert_eq!(EventLayout::parse("ID: 1\n"), None, "fields missing");
        // this machine's own files, where tracefs is readable
        let path = std::path::Path::new("/sys/kernel/tracing/events/header_page");
        if let Ok(h) = crate::trace::read_whole(path) {
            assert!(PageLayout::parse(&h).is_some(), "{h}");
        }
    }

    #[test]
    fn a_page_of_every_event_kind_decodes() {
        let el = EventLayout::parse(FORMAT).unwrap();
        let pl = PageLayout::parse(HEADER_PAGE).unwrap();
        let mut data = Vec::new();
        // a small event (type_len 12: 48 bytes), delta 10
        data.extend(hdr(12, 10));
        data.extend(record(767, 42, 0, 3, 0x1000, 5));
        // a time extend of 1 << 27 + 5
        data.extend(hdr(TIME_EXTEND, 5));
        data.extend(1u32.to_ne_bytes());
        // a long-form event (type_len 0, array[0] = 4 + 48)
        data.extend(hdr(0, 1));
        data.extend(52u32.to_ne_bytes());
        data.extend(record(767, 42, 0, 3, 0x3000, 6));
        // a discarded event (padding: array[0] counts itself and the 48
        // bytes after it), then another event id
        data.extend(hdr(PADDING, 2));
        data.extend(52u32.to_ne_bytes());
        data.extend([0u8; 48]);
        data.extend(hdr(12, 1));
        data.extend(record(768, 42, 0, 3, 0x5000, 7));
        data.extend(hdr(12, 1));
        data.extend(record(767, -2, 1, 1, 0x7000, 8));
        let mut page = vec![0u8; 4096];
        page[0..8].copy_from_slice(&1000u64.to_ne_bytes());
        let commit = data.len() as u64 | MISSED_EVENTS;
        page[8..16].copy_from_slice(&commit.to_ne_bytes());
        page[16..16 + data.len()].copy_from_slice(&data);
        // the rest of the page: an end-of-page padding
        let end = 16 + data.len();
        page[end..end + 4].copy_from_slice(&hdr(PADDING, 0));
        let mut out = Vec::new();
        assert!(
            decode_page(&page, &pl, &el, &mut out),
            "missed events flagged"
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            (
                out[0].time_ns,
                out[0].range.start,
                out[0].nr_accesses,
                out[0].age
            ),
            (1010, 0x1000, 5, 10)
        );
        let t1 = 1010 + (1 << 27) + 5 + 1;
        assert_eq!(
            (out[1].time_ns, out[1].range.start, out[1].nr_regions),
            (t1, 0x3000, 3)
        );
        assert_eq!(
            (out[2].time_ns, out[2].pid, out[2].target_idx),
            (t1 + 2 + 1 + 1, -2, 1)
        );
        // a page cut short keeps what came before the cut
        let mut cut = page.clone();
        cut.truncate(16 + 4 + 48 + 6);
        cut[8..16].copy_from_slice(&(data.len() as u64).to_ne_bytes());
        out.clear();
        assert!(!decode_page(&cut, &pl, &el, &mut out));
        assert!(
            out.is_empty(),
            "the commit length runs past the page: nothing trusted"
        );
        let mut short = page.clone();
        short[8..16].copy_from_slice(&(4u64 + 48 + 8 + 2).to_ne_bytes());
        out.clear();
        decode_page(&short, &pl, &el, &mut out);
        assert_eq!(out.len(), 1);
    }
}
