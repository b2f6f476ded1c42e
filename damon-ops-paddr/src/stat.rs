//! Folio walks over a physical region: the bytes that pass a scheme's
//! page-level filters (`damon_pa_stat()`), and the eligible bytes per node
//! (`damos_calc_eligible_bytes()` for the `node_eligible_mem_bp` goal).
//!
//! Both walk the region's PFNs folio by folio as the kernel does
//! (`damon_get_folio()`): a page that is not on an LRU list is stepped over
//! one page at a time; a page of an LRU folio (a tail too) stands for its
//! folio, and the walk moves past the folio's end.

use crate::numa::NodeMap;
use damon_core::damos::Scheme;
use damon_core::OpsError;
use damon_ops_common::folio::{folio_passes, FilterNeeds, FlagsWindow};
use damon_ops_common::physio::PhysIo;

/// The walk's state, kept between regions.
#[derive(Debug, Default)]
pub struct FolioWalk {
    window: FlagsWindow,
}

impl FolioWalk {
    /// Bytes of the folios in PFNs `pfns` that pass the page-level filters
    /// of `s` (whole folios, as the kernel counts `folio_size()`).
    pub fn filter_passed_bytes(
        &mut self,
        io: &mut dyn PhysIo,
        pfns: std::ops::Range<u64>,
        s: &Scheme,
        page_size: u64,
    ) -> Result<u64, OpsError> {
        let needs = FilterNeeds::of(s);
        let mut passed = 0u64;
        let mut pfn = pfns.start;
        while pfn < pfns.end {
            match self.window.folio_of(io, pfn)? {
                Some(f) => {
                    if folio_passes(io, s, &f, page_size, needs)? {
                        passed = passed.saturating_add(f.nr_pages * page_size);
                    }
                    pfn = f.head + f.nr_pages;
                }
                None => pfn += 1,
            }
        }
        Ok(passed)
    }

    /// (bytes on node `nid`, bytes on any node) of the LRU folios in PFNs
    /// `pfns`, clipped to the range as the kernel clips each folio.
    pub fn node_bytes(
        &mut self,
        io: &mut dyn PhysIo,
        pfns: std::ops::Range<u64>,
        nodes: &NodeMap,
        nid: i32,
        page_size: u64,
    ) -> Result<(u64, u64), OpsError> {
        let (mut node, mut total) = (0u64, 0u64);
        let mut pfn = pfns.start;
        while pfn < pfns.end {
            match self.window.folio_of(io, pfn)? {
                Some(f) => {
                    let end = (f.head + f.nr_pages).min(pfns.end);
                    let bytes = (end - pfn) * page_size;
                    total = total.saturating_add(bytes);
                    if nodes.node_of(f.head) == Some(nid) {
                        node = node.saturating_add(bytes);
                    }
                    pfn = f.head + f.nr_pages;
                }
                None => pfn += 1,
            }
        }
        Ok((node, total))
    }
}
