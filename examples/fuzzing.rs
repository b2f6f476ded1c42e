//! The checks behind every fuzz target, shared with the replay test that
//! runs each saved crash input (`fuzz/regressions/<target>/*`) as an
//! ordinary test. Each function takes raw bytes, must never panic except
//! on a broken invariant, and asserts what must hold for any input.

use damon_core::{
    AddrRange, Attrs, Context, HotRange, IntervalsGoal, Kdamond, SimOps, SimPattern, Target,
    VirtualClock,
};
use std::sync::Arc;

/// A fuzz target's check: raw input bytes in, panics on a broken invariant.
pub type Check = fn(&[u8]);

/// Every fuzz target, by name.
pub const TARGETS: &[(&str, Check)] = &[
    ("proc_maps", proc_maps),
    ("proc_iomem", proc_iomem),
    ("pagemap_kpageflags_words", pagemap_kpageflags_words),
    ("kdamonds_json", kdamonds_json),
    ("damo_record", damo_record),
    ("engine_sequence", engine_sequence),
];

/// `/proc/PID/maps` parser: results are well-formed mappings.
pub fn proc_maps(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(vmas) = damon_ops_vaddr::maps::parse_maps(&text) {
        for v in &vmas {
            assert!(v.start <= v.end, "parsed an inverted mapping");
        }
        // the three-regions rule never panics on parsed mappings
        let _ = damon_ops_vaddr::three_regions::three_regions(vmas.iter().map(|v| v.range()), 4096);
    }
}

/// `/proc/iomem` parser: System RAM blocks are non-empty.
pub fn proc_iomem(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(entries) = damon_ops_paddr::iomem::parse_iomem(&text) {
        for r in damon_ops_paddr::iomem::system_ram(&entries) {
            assert!(r.start < r.end, "empty System RAM range {r}");
        }
        let _ = damon_ops_paddr::iomem::largest_system_ram(&entries);
    }
    let _ = damon_ops_paddr::numa::parse_block_size(&text);
}

/// pagemap and kpageflags word decoders: PFNs only for present pages.
pub fn pagemap_kpageflags_words(data: &[u8]) {
    for chunk in data.chunks_exact(8) {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        let e = damon_ops_common::pagemap::PagemapEntry(word);
        if let Some(pfn) = e.pfn() {
            assert!(
                e.present() && !e.swapped(),
                "a PFN from a non-present entry"
            );
            assert!(pfn < 1 << 55);
        }
        if e.swap().is_some() {
            assert!(e.pfn().is_none());
        }
        let f = damon_ops_common::kpageflags::PageFlags(word);
        assert!(!(f.is_head() && f.is_tail()) || word & (3 << 15) == 3 << 15);
        let _ = f.names();
    }
}

/// kdamonds JSON loader: accepted configs round-trip and build valid contexts.
pub fn kdamonds_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = damon_damo::parse_kdamonds(text) {
        let Ok(saved) = damon_damo::save_kdamonds(&cfg) else {
            return;
        };
        let again = damon_damo::parse_kdamonds(&saved).expect("a saved config loads again");
        assert_eq!(cfg, again, "save/load round trip");
    }
}

/// damo record reader: reports over accepted records never panic.
pub fn damo_record(data: &[u8]) {
    if let Ok(records) = damon_damo::parse_record(data) {
        let w = damon_damo::wss(&records, &damon_damo::WssOptions::default());
        let _ = w.to_text(true);
        let _ = damon_damo::heatmap(&records, &damon_damo::HeatmapOptions::default());
    }
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
    fn attrs(&mut self) -> Attrs {
        let si = u64::from(self.u8()) * 1000;
        let ratio = u64::from(self.u8());
        let tune = self.u8() & 1 == 1;
        Attrs {
            sample_interval: si,
            aggr_interval: si * ratio,
            ops_update_interval: si * ratio * 10,
            intervals_goal: if tune {
                IntervalsGoal {
                    access_bp: 400,
                    aggrs: 3,
                    min_sample_us: 1000,
                    max_sample_us: 100_000,
                }
            } else {
                IntervalsGoal::default()
            },
            min_nr_regions: u32::from(self.u16() % 2048),
            max_nr_regions: u32::from(self.u16() % 4096),
        }
    }
}

fn check(kd: &Kdamond) {
    let ctx = kd.ctx();
    for t in &ctx.targets {
        for w in t.regions.windows(2) {
            assert!(w[0].ar.end <= w[1].ar.start, "regions sorted and disjoint");
        }
        for r in &t.regions {
            assert!(r.ar.start < r.ar.end, "regions non-empty");
            assert!(r.nr_accesses <= ctx.attrs.max_nr_accesses());
        }
    }
}

/// Drives a context on the simulated backend with attributes, steps,
/// commits and pauses decoded from the bytes; invalid parameters must be
/// refused (never panic) and a refused commit must change nothing.
pub fn engine_sequence(data: &[u8]) {
    let mut b = Bytes(data);
    let pages = u64::from(b.u32() % (1 << 20)) + 1;
    let space = pages * 4096;
    let mut hot = Vec::new();
    for _ in 0..b.u8() % 4 {
        let start = (u64::from(b.u32()) % pages) * 4096;
        let end = (start + (u64::from(b.u16()) + 1) * 4096).min(space);
        if hot.last().is_none_or(|h: &HotRange| h.range.end <= start) {
            hot.push(HotRange {
                range: AddrRange::new(start, end),
                probability: f64::from(b.u8()) / 255.0,
            });
        }
    }
    let mut ctx = Context::new();
    ctx.attrs = b.attrs();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(space, hot))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(u64::from(b.u32()));
    let Ok(mut kd) = Kdamond::new(ctx) else {
        return;
    };
    if kd.init().is_err() {
        return;
    }
    check(&kd);
    let mut budget = 3000u32;
    while !b.0.is_empty() && budget > 0 {
        match b.u8() % 4 {
            0 => {
                for _ in 0..b.u8() {
                    if budget == 0 {
                        break;
                    }
                    budget -= 1;
                    assert!(
                        kd.step().is_none(),
                        "the simulated loop never stops by itself"
                    );
                    check(&kd);
                }
            }
            1 => {
                let before = kd.ctx().targets.clone();
                let mut src = Context::new();
                src.attrs = b.attrs();
                src.targets.push(Target::new(0));
                if kd.commit(src).is_err() {
                    assert_eq!(before, kd.ctx().targets, "a refused commit changes nothing");
                }
            }
            2 => {
                let before = kd.ctx().targets.clone();
                let n = b.u8() % 8;
                let ranges: Vec<AddrRange> = (0..n)
                    .map(|_| AddrRange::new(u64::from(b.u16()) * 4096, u64::from(b.u16()) * 4096))
                    .collect();
                let mut src = Context::new();
                src.attrs = kd.ctx().attrs;
                src.targets.push(Target::with_ranges(0, &ranges));
                if kd.commit(src).is_err() {
                    assert_eq!(before, kd.ctx().targets, "a refused commit changes nothing");
                }
            }
            _ => kd.set_pause(b.u8() & 1 == 1),
        }
        check(&kd);
    }
}
