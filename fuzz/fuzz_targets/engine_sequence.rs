//! Drives a context on the simulated backend with arbitrary attributes,
//! steps, commits, pauses and calls, asserting the engine's invariants
//! after every operation.
#![no_main]

use arbitrary::Arbitrary;
use damon_core::*;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

#[derive(Arbitrary, Debug)]
struct RawAttrs {
    sample_ms: u8,
    aggr_ratio: u8,
    min_nr: u16,
    max_nr: u16,
    tune: bool,
}

impl RawAttrs {
    fn attrs(&self) -> Attrs {
        let si = u64::from(self.sample_ms) * 1000;
        Attrs {
            sample_interval: si,
            aggr_interval: si * u64::from(self.aggr_ratio),
            ops_update_interval: si * u64::from(self.aggr_ratio) * 10,
            intervals_goal: if self.tune {
                IntervalsGoal { access_bp: 400, aggrs: 3, min_sample_us: 1000, max_sample_us: 100_000 }
            } else {
                IntervalsGoal::default()
            },
            min_nr_regions: u32::from(self.min_nr),
            max_nr_regions: u32::from(self.max_nr),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Steps(u8),
    Commit(RawAttrs),
    CommitRegions(Vec<(u32, u32)>),
    Pause(bool),
}

#[derive(Arbitrary, Debug)]
struct Input {
    space_pages: u32,
    hot: Vec<(u32, u32, u8)>,
    attrs: RawAttrs,
    seed: u64,
    ops: Vec<Op>,
}

fn check(kd: &Kdamond) {
    let ctx = kd.ctx();
    for t in &ctx.targets {
        for w in t.regions.windows(2) {
            assert!(w[0].ar.end <= w[1].ar.start, "sorted and disjoint");
        }
        for r in &t.regions {
            assert!(r.ar.start < r.ar.end, "non-empty");
            assert!(r.nr_accesses <= ctx.attrs.max_nr_accesses());
        }
    }
}

fuzz_target!(|input: Input| {
    let pages = u64::from(input.space_pages % (1 << 20)) + 1;
    let space = pages * 4096;
    let mut hot: Vec<HotRange> = input
        .hot
        .iter()
        .take(8)
        .map(|&(s, l, p)| {
            let start = (u64::from(s) % pages) * 4096;
            HotRange { range: AddrRange::new(start, (start + (u64::from(l) % pages + 1) * 4096).min(space)), probability: f64::from(p) / 255.0 }
        })
        .collect();
    hot.sort_by_key(|h| h.range.start);
    hot.dedup_by(|b, a| b.range.start < a.range.end);
    let mut ctx = Context::new();
    ctx.attrs = input.attrs.attrs();
    ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::with_hot(space, hot))));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(input.seed);
    // invalid attributes must be refused, never panic
    let Ok(mut kd) = Kdamond::new(ctx) else { return };
    if kd.init().is_err() {
        return;
    }
    check(&kd);
    let mut budget = 4000u32;
    for op in input.ops.iter().take(64) {
        match op {
            Op::Steps(n) => {
                for _ in 0..*n {
                    if budget == 0 {
                        return;
                    }
                    budget -= 1;
                    assert!(kd.step().is_none());
                    check(&kd);
                }
            }
            Op::Commit(a) => {
                let before = kd.ctx().targets.clone();
                let mut src = Context::new();
                src.attrs = a.attrs();
                src.targets.push(Target::new(0));
                if kd.commit(src).is_err() {
                    assert_eq!(before, kd.ctx().targets, "a refused commit changes nothing");
                }
            }
            Op::CommitRegions(rs) => {
                let before = kd.ctx().targets.clone();
                let ranges: Vec<AddrRange> = rs.iter().take(16).map(|&(s, e)| AddrRange::new(u64::from(s) * 4096, u64::from(e) * 4096)).collect();
                let mut src = Context::new();
                src.attrs = kd.ctx().attrs;
                src.targets.push(Target::with_ranges(0, &ranges));
                if kd.commit(src).is_err() {
                    assert_eq!(before, kd.ctx().targets, "a refused commit changes nothing");
                }
            }
            Op::Pause(p) => kd.set_pause(*p),
        }
        check(&kd);
    }
});
