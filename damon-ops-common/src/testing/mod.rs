//! Test support for the page layer and its backends (cargo feature
//! `testing`; never part of a normal build):
//!
//! * [`fake`]: an in-memory page_idle bitmap and kpageflags ([`fake::FakePhysMem`]);
//! * [`anon`]: an anonymous mapping whose pages a test can look up ([`anon::AnonMapping`]);
//! * [`faults`]: fault plans below the retry policy (feature `fault-injection`);
//! * [`require_paddr`] / [`require_vaddr`]: skip a test on a host that
//!   lacks what the backend needs (a hard failure in the VM suite), on top
//!   of damon-core's [`damon_core::testing`] skip helpers.

pub mod anon;
pub mod fake;
#[cfg(feature = "fault-injection")]
pub mod faults;

use crate::probe::ProbeReport;
pub use damon_core::testing::{in_vm_suite, require, skip, VM_SUITE_ENV};

/// Requires what the paddr backend needs (page_idle, kpageflags, root).
pub fn require_paddr(test: &str) -> bool {
    match ProbeReport::run().require_paddr() {
        Ok(()) => true,
        Err(e) => require(false, test, &e.to_string()),
    }
}

/// Requires what the vaddr backend needs (paddr's needs plus PFNs in pagemap).
pub fn require_vaddr(test: &str) -> bool {
    match ProbeReport::run().require_vaddr() {
        Ok(()) => true,
        Err(e) => require(false, test, &e.to_string()),
    }
}

/// One past the highest page frame of any memory zone (`start_pfn +
/// spanned` in `/proc/zoneinfo`, readable by anyone), for sizing a
/// [`fake::FakePhysMem`] that must hold every PFN this machine can hand
/// out; 0 where the file cannot be read.
pub fn zones_end_pfn() -> u64 {
    let text = std::fs::read_to_string("/proc/zoneinfo").unwrap_or_default();
    let mut spanned = 0u64;
    let mut end = 0u64;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|v| v.parse::<u64>().ok()),
        ) {
            (Some("spanned"), Some(v)) => spanned = v,
            (Some("start_pfn:"), Some(v)) => end = end.max(v + spanned),
            _ => {}
        }
    }
    end
}

#[cfg(test)]
mod tests {
    #[test]
    fn zones_end_pfn_covers_this_process_pages() {
        let end = super::zones_end_pfn();
        assert!(end > 0, "/proc/zoneinfo lists zones");
        let total = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap();
        assert!(
            end * 4 >= total,
            "zones end at {end} pages, MemTotal {total} kB"
        );
    }
}
