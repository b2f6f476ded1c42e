//! The kpageflags side of a sample: flags of the PFNs whose idle bit came
//! back clear, read in coalesced runs, and the walk from a THP tail back to
//! its head (cached in [`super::heads`]).

use super::{PfnSampler, WALK_MAX_WINDOWS, WALK_WINDOW};
use crate::coalesce::plan_runs;
use crate::kpageflags::PageFlags;
use damon_core::OpsError;

impl PfnSampler {
    /// Reads kpageflags for the sorted `qpfns` into `qflags` (None: not delivered).
    pub(super) fn read_flags(&mut self) -> Result<(), OpsError> {
        self.qflags.clear();
        self.qflags.resize(self.qpfns.len(), None);
        let q = &self.qpfns;
        plan_runs(q.len(), |i| q[i], self.policy.kpageflags, &mut self.runs);
        for r in 0..self.runs.len() {
            let run = self.runs[r];
            let got = self.read_flag_range(run.start, run.len)?;
            for i in run.items_start..run.items_end {
                let idx = self.qpfns[i] - run.start;
                if idx < got {
                    let off = idx as usize * 8;
                    self.qflags[i] = Some(u64::from_ne_bytes(
                        self.bytes[off..off + 8].try_into().expect("8 bytes"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads flags of PFNs `[start, start + len)` into `bytes`; returns how
    /// many were delivered.
    fn read_flag_range(&mut self, start: u64, len: u64) -> Result<u64, OpsError> {
        let want = len as usize * 8;
        self.bytes.clear();
        self.bytes.resize(want, 0);
        let mut done = 0usize;
        while done < want {
            match self
                .io
                .kpageflags_read(start * 8 + done as u64, &mut self.bytes[done..])
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((done / 8) as u64)
    }

    fn flag_at(&self, idx: u64) -> PageFlags {
        let off = idx as usize * 8;
        PageFlags(u64::from_ne_bytes(
            self.bytes[off..off + 8].try_into().expect("8 bytes"),
        ))
    }

    /// Walks back from the tail `pfn` to its head through kpageflags and
    /// caches the mapping. Returns the head, if found.
    pub(super) fn resolve_head(&mut self, pfn: u64) -> Result<Option<u64>, OpsError> {
        let mut base = pfn - pfn % WALK_WINDOW;
        let mut scan_from = pfn;
        let mut end = pfn + 1;
        for window in 0..WALK_MAX_WINDOWS {
            let got = self.read_flag_range(base, WALK_WINDOW)?;
            if scan_from - base >= got {
                return Ok(None);
            }
            if window == 0 {
                let mut q = pfn + 1;
                while q - base < got && self.flag_at(q - base).is_tail() {
                    q += 1;
                }
                end = q;
            }
            let mut q = scan_from;
            loop {
                let f = self.flag_at(q - base);
                if f.is_head() {
                    self.stats.tails_resolved += 1;
                    self.heads.insert(q, end, self.sample_no);
                    return Ok(Some(q));
                }
                if !f.is_tail() || q == base {
                    break;
                }
                q -= 1;
            }
            if !self.flag_at(q - base).is_tail() || base == 0 {
                return Ok(None);
            }
            scan_from = base - 1;
            base -= WALK_WINDOW;
        }
        Ok(None)
    }

    pub(super) fn resolve_heads_eagerly(&mut self) -> Result<(), OpsError> {
        self.qpfns.clear();
        for i in 0..self.marks.len() {
            let raw = self.marks[i].raw;
            if self.lookup_head(raw).is_none() {
                self.qpfns.push(raw);
            }
        }
        self.qpfns.sort_unstable();
        self.qpfns.dedup();
        self.read_flags()?;
        self.tails.clear();
        for k in 0..self.qpfns.len() {
            if self.qflags[k]
                .map(PageFlags)
                .is_some_and(PageFlags::is_trackable_tail)
            {
                self.tails.push(self.qpfns[k]);
            }
        }
        for t in 0..self.tails.len() {
            let pfn = self.tails[t];
            if self.lookup_head(pfn).is_none() {
                self.resolve_head(pfn)?;
            }
        }
        Ok(())
    }
}
