//! DAMOS actions on processes: which bytes of a region an action applies
//! to (mapped, and passing the page-level filters), and the advice to use.
//! Pure functions here; the system calls are in [`crate::ops`].

use damon_core::damos::{ops_filters_pass, Action, PageInfo, Scheme};
use damon_core::{AddrRange, OpsError};
use damon_ops_common::folio::{folio_info, info_passes, FilterNeeds, FlagsWindow};
use damon_ops_common::pagemap::PagemapEntry;
use damon_ops_common::physio::PhysIo;
use damon_ops_common::sys::Advice;

/// The `madvise` advice of an action, or `None` for `stat` and for actions
/// user space cannot take on virtual addresses.
pub fn advice_of(action: Action) -> Option<Advice> {
    match action {
        Action::Willneed => Some(Advice::Willneed),
        Action::Cold => Some(Advice::Cold),
        Action::Pageout => Some(Advice::Pageout),
        Action::Hugepage => Some(Advice::Hugepage),
        Action::Nohugepage => Some(Advice::Nohugepage),
        Action::Collapse => Some(Advice::Collapse),
        _ => None,
    }
}

/// Whether `process_madvise` accepts the advice for another process
/// (`MADV_HUGEPAGE`/`MADV_NOHUGEPAGE` change VMA flags and only `madvise`
/// on oneself can do that).
pub fn remote_ok(advice: Advice) -> bool {
    matches!(
        advice,
        Advice::Willneed | Advice::Cold | Advice::Pageout | Advice::Collapse
    )
}

/// Appends to `out` the parts of `region` covered by `vmas` (sorted,
/// disjoint), aligned inward to `page`.
pub fn mapped_parts(region: AddrRange, vmas: &[AddrRange], page: u64, out: &mut Vec<(u64, u64)>) {
    let first = vmas.partition_point(|v| v.end <= region.start);
    for v in &vmas[first..] {
        if v.start >= region.end {
            break;
        }
        let s = region.start.max(v.start).next_multiple_of(page);
        let e = region.end.min(v.end) / page * page;
        if e > s {
            match out.last_mut() {
                Some(last) if last.0 + last.1 == s => last.1 += e - s,
                _ => out.push((s, e - s)),
            }
        }
    }
}

/// What pagemap tells about a page, for the page-level filters.
pub fn page_info(e: PagemapEntry) -> PageInfo {
    let mapped = e.present() || e.swapped();
    PageInfo {
        // a present page that is not file-backed or shared-anonymous is
        // private anonymous; a swapped page is anonymous (or shmem)
        anon: mapped.then(|| !e.file_or_shared_anon()),
        unmapped: Some(!mapped),
        ..PageInfo::default()
    }
}

/// Where the folio facts of present pages come from, for the filters
/// pagemap alone cannot decide.
pub struct Folios<'a> {
    /// The kpageflags, kpagecgroup and idle bitmap files.
    pub io: &'a mut dyn PhysIo,
    /// The kpageflags window, kept between calls.
    pub window: &'a mut FlagsWindow,
}

/// Splits `range` (starting at virtual page `first_vpn`, with one pagemap
/// entry per page in `entries`) into runs of pages that pass the scheme's
/// page-level filters, appended to `out`. Returns the bytes that passed.
///
/// With `folios`, a present page's folio is read and decided once for all
/// of its pages (a young filter resets the folio's state when it reads it,
/// as the kernel's does); without, folio facts are unknown.
pub fn filtered_runs(
    s: &Scheme,
    first_vpn: u64,
    entries: &[u64],
    page: u64,
    mut folios: Option<Folios<'_>>,
    out: &mut Vec<(u64, u64)>,
) -> Result<u64, OpsError> {
    let needs = FilterNeeds::of(s);
    let mut last: Option<(std::ops::Range<u64>, bool)> = None;
    let mut passed = 0;
    for (i, &raw) in entries.iter().enumerate() {
        let e = PagemapEntry(raw);
        let pass = match (folios.as_mut(), e.pfn()) {
            (Some(f), Some(pfn)) => match &last {
                Some((pfns, pass)) if pfns.contains(&pfn) => *pass,
                _ => {
                    let pass = folio_decision(s, e, pfn, page, needs, f)?;
                    last = pass.1.map(|pfns| (pfns, pass.0));
                    pass.0
                }
            },
            _ => ops_filters_pass(s, &page_info(e)),
        };
        if pass {
            let addr = (first_vpn + i as u64) * page;
            passed += page;
            match out.last_mut() {
                Some(last) if last.0 + last.1 == addr => last.1 += page,
                _ => out.push((addr, page)),
            }
        }
    }
    Ok(passed)
}

/// The filters' decision for the folio of a present page, and the folio's
/// PFNs (to reuse the decision) when it is an LRU folio.
fn folio_decision(
    s: &Scheme,
    e: PagemapEntry,
    pfn: u64,
    page: u64,
    needs: FilterNeeds,
    f: &mut Folios<'_>,
) -> Result<(bool, Option<std::ops::Range<u64>>), OpsError> {
    let base = page_info(e);
    let Some(folio) = f.window.folio_of(f.io, pfn)? else {
        return Ok((ops_filters_pass(s, &base), None));
    };
    let info = folio_info(f.io, &folio, page, needs)?;
    // anon and unmapped as pagemap tells them, the rest from the folio
    let info = PageInfo {
        anon: base.anon,
        unmapped: base.unmapped,
        ..info
    };
    let pass = info_passes(f.io, s, folio.head, &info)?;
    Ok((pass, Some(folio.pfns())))
}

/// CAP_SYS_NICE in the effective set, from `/proc/self/status` text
/// (`process_madvise` on another process needs it since Linux 5.12).
pub fn has_cap_sys_nice(status: &str) -> bool {
    const CAP_SYS_NICE: u32 = 23;
    damon_ops_common::probe::parse_cap_eff(status)
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use damon_core::damos::{AccessPattern, Filter, FilterKind};

    #[test]
    fn mapped_parts_skip_holes_and_align_inward() {
        let vmas = [
            AddrRange::new(0x1000, 0x5000),
            AddrRange::new(0x5000, 0x6000),
            AddrRange::new(0x9000, 0xb000),
        ];
        let mut out = Vec::new();
        mapped_parts(AddrRange::new(0x0800, 0xa800), &vmas, 0x1000, &mut out);
        assert_eq!(
            out,
            vec![(0x1000, 0x5000), (0x9000, 0x1000)],
            "adjacent VMAs merge; partial pages excluded"
        );
        out.clear();
        mapped_parts(AddrRange::new(0x6000, 0x9000), &vmas, 0x1000, &mut out);
        assert!(
            out.is_empty(),
            "a region entirely in a hole has nothing to advise"
        );
    }

    #[test]
    fn anon_filter_runs_from_pagemap() {
        const PRESENT: u64 = 1 << 63;
        const FILE: u64 = 1 << 61;
        const SWAPPED: u64 = 1 << 62;
        let mut s = Scheme::new(AccessPattern::default(), Action::Pageout);
        s.filters.push(Filter {
            kind: FilterKind::Anon,
            matching: true,
            allow: false,
        }); // skip_anon
        let entries = [
            PRESENT | 5,
            PRESENT | FILE | 6,
            PRESENT | FILE | 7,
            0,
            SWAPPED,
            PRESENT | FILE | 9,
        ];
        let mut out = Vec::new();
        let passed = filtered_runs(&s, 16, &entries, 4096, None, &mut out).unwrap();
        // file pages pass; anon (present or swapped) rejected; an unmapped
        // page is neither anon nor rejected by the filter: it passes
        assert_eq!(out, vec![(17 * 4096, 3 * 4096), (21 * 4096, 4096)]);
        assert_eq!(passed, 4 * 4096);
    }

    #[test]
    fn capabilities_from_status() {
        assert!(has_cap_sys_nice("Name: x\nCapEff:\t000001ffffffffff\n"));
        assert!(!has_cap_sys_nice("CapEff:\t0000000000000000\n"));
        assert!(!has_cap_sys_nice("CapEff: zz\n"));
        assert!(!has_cap_sys_nice(""));
    }

    #[test]
    fn remote_advice() {
        assert!(remote_ok(Advice::Pageout) && remote_ok(Advice::Collapse));
        assert!(!remote_ok(Advice::Hugepage) && !remote_ok(Advice::Nohugepage));
        assert_eq!(advice_of(Action::Stat), None);
        assert_eq!(advice_of(Action::LruPrio), None);
    }
}
