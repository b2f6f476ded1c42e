//! The per-sample access check shared by both backends: "mkold" a set of
//! PFNs through the page_idle bitmap, then read back which were accessed.
//!
//! One sample goes: [`PfnSampler::begin`] with the number of slots (one per
//! region of the context), [`PfnSampler::add`] for every sampled PFN,
//! [`PfnSampler::mark_idle`], the sampling sleep, [`PfnSampler::check`], then
//! [`PfnSampler::verdict`] per slot.
//!
//! Cost control:
//! * PFNs of the whole context are sorted once and written and read in
//!   coalesced runs of bitmap words ([`crate::coalesce`]); every buffer is
//!   kept, so nothing is allocated per sample after warm-up.
//! * `/proc/kpageflags` is read only for PFNs whose bit came back 0
//!   (accessed, untracked or a THP tail), never for idle ones.
//! * THP tail pages carry no idle state (reads give 0, writes are ignored):
//!   a tail found at check time is mapped to its head, and the mapping is
//!   cached so later samples mark and read the head directly. The first
//!   sample that lands on a not-yet-known tail is reported
//!   [`Verdict::Unknown`] (not accessed). [`SamplerPolicy::eager_heads`]
//!   resolves heads before marking instead, at the cost of reading
//!   kpageflags for every sampled PFN.
//! * The last, partial 64-PFN word below `max_pfn` cannot be read: its PFNs
//!   are [`Verdict::Unknown`] and counted in [`SamplerStats::unreadable`].

use crate::coalesce::{plan_runs, Coalesce, Run, PFNS_PER_WORD};
use crate::kpageflags::PageFlags;
use crate::physio::PhysIo;
use heads::HeadCache;

mod flags;
mod heads;
use damon_core::OpsError;

/// The outcome of one sampled page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No PFN was sampled for the slot (not present, swapped, target gone).
    NotSampled,
    /// The page was accessed during the interval.
    Accessed,
    /// The page stayed idle.
    Idle,
    /// The page is not tracked by page_idle (not on an LRU list: kernel,
    /// page-table, free or HugeTLB memory).
    Untracked,
    /// The state could not be known this time (a newly met THP tail, the
    /// unreadable last bitmap word, a stale head mapping).
    Unknown,
}

/// Counters since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples checked.
    pub samples: u64,
    /// PFNs marked idle (with duplicates).
    pub marked: u64,
    /// Verdicts: accessed.
    pub accessed: u64,
    /// Verdicts: idle.
    pub idle: u64,
    /// Verdicts: untracked.
    pub untracked: u64,
    /// Verdicts: unknown.
    pub unknown: u64,
    /// PFNs in bitmap words the kernel did not deliver (the `max_pfn` word).
    pub unreadable: u64,
    /// THP tails mapped to their heads by walking kpageflags.
    pub tails_resolved: u64,
    /// PFNs mapped to a head through the cache.
    pub head_cache_hits: u64,
    /// Bitmap writes refused with ENXIO (PFN beyond `max_pfn`).
    pub enxio: u64,
}

/// Batching and head-mapping knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerPolicy {
    /// Coalescing of bitmap writes (units: 64-PFN words). Zero words cost
    /// the kernel little on write, so larger gaps pay off.
    pub write: Coalesce,
    /// Coalescing of bitmap reads (units: words). The kernel inspects every
    /// PFN of every word read, so keep gaps small.
    pub read: Coalesce,
    /// Coalescing of kpageflags reads (units: PFNs).
    pub kpageflags: Coalesce,
    /// Resolve THP heads before marking (reads kpageflags for every sampled PFN).
    pub eager_heads: bool,
    /// Samples after which an unused head mapping is forgotten.
    pub head_cache_ttl: u64,
    /// Most head mappings kept.
    pub head_cache_max: usize,
}

impl Default for SamplerPolicy {
    fn default() -> Self {
        Self {
            write: Coalesce::new(8, 512),
            read: Coalesce::new(4, 512),
            kpageflags: Coalesce::new(16, 512),
            eager_heads: false,
            head_cache_ttl: 1024,
            head_cache_max: 1 << 16,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    /// The PFN marked and read (the head for a known THP tail).
    pfn: u64,
    /// The PFN that was sampled.
    raw: u64,
    slot: u32,
    via_cache: bool,
}

/// Pages per kpageflags window when walking back to a head (2 MiB of 4 KiB pages).
const WALK_WINDOW: u64 = 512;
/// Windows walked at most (16 MiB of 4 KiB pages).
const WALK_MAX_WINDOWS: u64 = 8;

/// Batched page_idle sampling over any [`PhysIo`].
pub struct PfnSampler {
    io: Box<dyn PhysIo>,
    policy: SamplerPolicy,
    heads: HeadCache,
    marks: Vec<Mark>,
    verdicts: Vec<Verdict>,
    runs: Vec<Run>,
    words: Vec<u64>,
    bytes: Vec<u8>,
    pending: Vec<usize>,
    qpfns: Vec<u64>,
    qflags: Vec<Option<u64>>,
    tails: Vec<u64>,
    sample_no: u64,
    prepared: bool,
    stats: SamplerStats,
}

impl std::fmt::Debug for PfnSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PfnSampler")
            .field("policy", &self.policy)
            .field("heads", &self.heads.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl PfnSampler {
    /// A sampler over `io` with the default policy.
    pub fn new(io: Box<dyn PhysIo>) -> Self {
        Self::with_policy(io, SamplerPolicy::default())
    }

    /// A sampler with an explicit policy.
    pub fn with_policy(io: Box<dyn PhysIo>, policy: SamplerPolicy) -> Self {
        Self {
            io,
            policy,
            heads: HeadCache::default(),
            marks: Vec::new(),
            verdicts: Vec::new(),
            runs: Vec::new(),
            words: Vec::new(),
            bytes: Vec::new(),
            pending: Vec::new(),
            qpfns: Vec::new(),
            qflags: Vec::new(),
            tails: Vec::new(),
            sample_no: 0,
            prepared: false,
            stats: SamplerStats::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &SamplerPolicy {
        &self.policy
    }

    /// Replaces the policy.
    pub fn set_policy(&mut self, policy: SamplerPolicy) {
        self.policy = policy;
    }

    /// Counters since creation.
    pub fn stats(&self) -> &SamplerStats {
        &self.stats
    }

    /// The files sampled through, for page-level reads between samples
    /// (DAMOS filters).
    pub fn io_mut(&mut self) -> &mut dyn PhysIo {
        self.io.as_mut()
    }

    /// The files sampled through.
    pub fn io(&self) -> &dyn PhysIo {
        self.io.as_ref()
    }

    /// System calls made on the bitmap and kpageflags.
    pub fn syscalls(&self) -> u64 {
        self.io.syscalls()
    }

    /// Starts a sample with `nslots` slots, all [`Verdict::NotSampled`].
    pub fn begin(&mut self, nslots: usize) {
        self.marks.clear();
        self.verdicts.clear();
        self.verdicts.resize(nslots, Verdict::NotSampled);
        self.prepared = false;
    }

    /// Samples `pfn` for `slot` (a slot outside `begin`'s count is ignored).
    #[inline]
    pub fn add(&mut self, slot: usize, pfn: u64) {
        if slot < self.verdicts.len() && slot <= u32::MAX as usize {
            self.marks.push(Mark {
                pfn,
                raw: pfn,
                slot: slot as u32,
                via_cache: false,
            });
        }
    }

    /// The verdict of `slot` after [`check`](Self::check).
    #[inline]
    pub fn verdict(&self, slot: usize) -> Verdict {
        self.verdicts
            .get(slot)
            .copied()
            .unwrap_or(Verdict::NotSampled)
    }

    /// True when `slot`'s page was accessed.
    #[inline]
    pub fn accessed(&self, slot: usize) -> bool {
        self.verdict(slot) == Verdict::Accessed
    }

    fn lookup_head(&mut self, pfn: u64) -> Option<u64> {
        self.heads.lookup(pfn, self.sample_no)
    }

    /// Marks every added PFN idle (heads for known THP tails) with
    /// coalesced bitmap writes.
    pub fn mark_idle(&mut self) -> Result<(), OpsError> {
        self.reserve_run_buffers();
        if self.policy.eager_heads {
            self.resolve_heads_eagerly()?;
        }
        for i in 0..self.marks.len() {
            let raw = self.marks[i].raw;
            if let Some(h) = self.lookup_head(raw) {
                self.marks[i].pfn = h;
                self.marks[i].via_cache = true;
                self.stats.head_cache_hits += 1;
            }
        }
        self.marks.sort_unstable_by_key(|m| m.pfn);
        self.stats.marked += self.marks.len() as u64;
        let policy = self.bitmap_policy(self.policy.write);
        let marks = &self.marks;
        plan_runs(
            marks.len(),
            |i| marks[i].pfn / PFNS_PER_WORD,
            policy,
            &mut self.runs,
        );
        for r in 0..self.runs.len() {
            let run = self.runs[r];
            self.words.clear();
            self.words.resize(run.len as usize, 0);
            for m in &self.marks[run.items_start..run.items_end] {
                self.words[(m.pfn / PFNS_PER_WORD - run.start) as usize] |=
                    1 << (m.pfn % PFNS_PER_WORD);
            }
            fill_bytes(&self.words, &mut self.bytes);
            let mut done = 0usize;
            while done < self.bytes.len() {
                match self
                    .io
                    .bitmap_write(run.start * 8 + done as u64, &self.bytes[done..])
                {
                    Ok(0) => break, // the partial max_pfn word: its bits were applied
                    Ok(n) => done += n,
                    Err(e) if e.errno() == Some(libc::ENXIO) => {
                        self.stats.enxio += 1;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.prepared = true;
        Ok(())
    }

    /// Gives the run buffers the capacity of the longest run the policies
    /// allow, once: how long a run gets depends on where the sampled pages
    /// happen to lie, so growing on demand would allocate at random moments
    /// long after warm-up. A few kilobytes buy an allocation-free hot path.
    fn reserve_run_buffers(&mut self) {
        let words = [self.policy.write, self.policy.read]
            .into_iter()
            .map(|p| self.bitmap_policy(p).max_len.max(1) as usize)
            .max()
            .unwrap_or(1);
        // bitmap runs, kpageflags runs and head-walk windows share `bytes`
        let pfns = (self.policy.kpageflags.max_len.max(1)).max(WALK_WINDOW) as usize;
        let bytes = (words * 8).max(pfns * 8);
        let n = self.marks.len();
        at_least(&mut self.words, words);
        at_least(&mut self.bytes, bytes);
        // every per-mark list holds at most one entry per mark (`plan_runs`
        // reserves `runs` itself)
        at_least(&mut self.pending, n);
        at_least(&mut self.qpfns, n);
        at_least(&mut self.qflags, n);
        at_least(&mut self.tails, n);
    }

    fn bitmap_policy(&self, p: Coalesce) -> Coalesce {
        let max_words = (self.io.max_bitmap_call() / 8).max(1) as u64;
        Coalesce::new(p.max_gap, p.max_len.min(max_words))
    }

    /// Reads back every marked PFN with coalesced bitmap reads and sets the
    /// slots' verdicts.
    pub fn check(&mut self) -> Result<(), OpsError> {
        if !std::mem::take(&mut self.prepared) {
            return Ok(());
        }
        self.read_idle_bits()?;
        self.classify_pending()?;
        for t in 0..self.tails.len() {
            let pfn = self.tails[t];
            if self.lookup_head(pfn).is_none() {
                self.resolve_head(pfn)?;
            }
        }
        self.sample_no += 1;
        self.stats.samples += 1;
        if self.sample_no % 256 == 0 {
            self.prune_heads();
        }
        Ok(())
    }

    /// The bitmap half of [`PfnSampler::check`]: idle bits read back in
    /// coalesced runs. A set bit is [`Verdict::Idle`], an undelivered word
    /// [`Verdict::Unknown`]; a clear bit goes to `pending`.
    fn read_idle_bits(&mut self) -> Result<(), OpsError> {
        let policy = self.bitmap_policy(self.policy.read);
        let marks = &self.marks;
        plan_runs(
            marks.len(),
            |i| marks[i].pfn / PFNS_PER_WORD,
            policy,
            &mut self.runs,
        );
        self.pending.clear();
        for r in 0..self.runs.len() {
            let run = self.runs[r];
            let delivered = self.read_bitmap_run(run)?;
            for i in run.items_start..run.items_end {
                let m = self.marks[i];
                let w = m.pfn / PFNS_PER_WORD - run.start;
                if w >= delivered {
                    self.stats.unreadable += 1;
                    self.set(m.slot, Verdict::Unknown);
                    continue;
                }
                let off = w as usize * 8;
                let word =
                    u64::from_ne_bytes(self.bytes[off..off + 8].try_into().expect("8 bytes"));
                if word & (1 << (m.pfn % PFNS_PER_WORD)) != 0 {
                    self.set(m.slot, Verdict::Idle);
                } else {
                    self.pending.push(i);
                }
            }
        }
        Ok(())
    }

    /// Reads one run of bitmap words into `bytes`, continuing short reads;
    /// returns the whole words delivered.
    fn read_bitmap_run(&mut self, run: Run) -> Result<u64, OpsError> {
        let want = run.len as usize * 8;
        self.bytes.clear();
        self.bytes.resize(want, 0);
        let mut done = 0usize;
        while done < want {
            match self
                .io
                .bitmap_read(run.start * 8 + done as u64, &mut self.bytes[done..])
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((done / 8) as u64)
    }

    /// The kpageflags half of [`PfnSampler::check`]: a clear idle bit means
    /// accessed, untracked, or a THP tail; the page's flags tell which.
    /// Trackable tails not yet mapped to a head go to `tails`.
    fn classify_pending(&mut self) -> Result<(), OpsError> {
        self.qpfns.clear();
        for &i in &self.pending {
            self.qpfns.push(self.marks[i].pfn);
        }
        self.read_flags()?;
        self.tails.clear();
        for k in 0..self.pending.len() {
            let m = self.marks[self.pending[k]];
            let v = match self.qflags[k].map(PageFlags) {
                None => Verdict::Unknown,
                Some(f) if m.via_cache => {
                    if f.is_head() && f.is_lru() {
                        Verdict::Accessed
                    } else {
                        self.forget_head(m.pfn);
                        Verdict::Unknown
                    }
                }
                Some(f) if f.is_tail() => {
                    if f.is_trackable_tail() {
                        self.tails.push(m.raw);
                        Verdict::Unknown
                    } else {
                        Verdict::Untracked
                    }
                }
                Some(f) if !f.is_lru() => Verdict::Untracked,
                Some(_) => Verdict::Accessed,
            };
            self.set(m.slot, v);
        }
        Ok(())
    }

    #[inline]
    fn set(&mut self, slot: u32, v: Verdict) {
        match v {
            Verdict::Accessed => self.stats.accessed += 1,
            Verdict::Idle => self.stats.idle += 1,
            Verdict::Untracked => self.stats.untracked += 1,
            Verdict::Unknown => self.stats.unknown += 1,
            Verdict::NotSampled => {}
        }
        if let Some(s) = self.verdicts.get_mut(slot as usize) {
            *s = v;
        }
    }

    fn forget_head(&mut self, head: u64) {
        self.heads.forget(head);
    }

    fn prune_heads(&mut self) {
        self.heads.prune(
            self.sample_no,
            self.policy.head_cache_ttl,
            self.policy.head_cache_max,
        );
    }

    /// Number of cached THP head mappings.
    pub fn cached_heads(&self) -> usize {
        self.heads.len()
    }
}

/// Ensures `v` can hold `n` elements without reallocating.
fn at_least<T>(v: &mut Vec<T>, n: usize) {
    if v.capacity() < n {
        v.reserve(n - v.len());
    }
}

fn fill_bytes(words: &[u64], bytes: &mut Vec<u8>) {
    bytes.clear();
    for w in words {
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests;
