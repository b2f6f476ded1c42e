//! The THP head cache: which PFN range belongs to which compound head, so
//! that later samples mark and read the head of a THP directly (tail pages
//! carry no idle state). Entries unused for a while are dropped.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
struct HeadEntry {
    /// One past the last PFN known to belong to the folio.
    end: u64,
    last_used: u64,
}

/// Known THP heads, keyed by head PFN.
#[derive(Debug, Default)]
pub(crate) struct HeadCache {
    heads: BTreeMap<u64, HeadEntry>,
}

impl HeadCache {
    /// The head of the folio `pfn` belongs to, if known; marks it used in
    /// sample `now`.
    pub(crate) fn lookup(&mut self, pfn: u64, now: u64) -> Option<u64> {
        let (&head, e) = self.heads.range_mut(..=pfn).next_back()?;
        if pfn < e.end {
            e.last_used = now;
            Some(head)
        } else {
            None
        }
    }

    /// Records that `head..end` is one folio, used in sample `now`.
    pub(crate) fn insert(&mut self, head: u64, end: u64, now: u64) {
        let e = self.heads.entry(head).or_insert(HeadEntry {
            end,
            last_used: now,
        });
        e.end = e.end.max(end);
        e.last_used = now;
    }

    /// Drops a head found stale (no longer a head).
    pub(crate) fn forget(&mut self, head: u64) {
        self.heads.remove(&head);
    }

    /// Drops heads unused for more than `ttl` samples; all of them past `max`.
    pub(crate) fn prune(&mut self, now: u64, ttl: u64, max: usize) {
        self.heads
            .retain(|_, e| now.saturating_sub(e.last_used) <= ttl);
        if self.heads.len() > max {
            self.heads.clear();
        }
    }

    /// Cached heads.
    pub(crate) fn len(&self) -> usize {
        self.heads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::HeadCache;

    #[test]
    fn lookup_finds_the_folio_and_prune_drops_unused_heads() {
        let mut c = HeadCache::default();
        c.insert(512, 1024, 1);
        assert_eq!(c.lookup(700, 2), Some(512));
        assert_eq!(c.lookup(1024, 2), None, "end is exclusive");
        assert_eq!(c.lookup(100, 2), None);
        c.insert(2048, 2560, 3);
        c.prune(10, 7, 16);
        assert_eq!(c.len(), 1, "512 last used at 2, dropped after 7 samples");
        c.prune(10, 7, 0);
        assert_eq!(c.len(), 0, "over the size bound: all dropped");
    }
}
