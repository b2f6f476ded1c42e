//! Cost of the sampling loop on the simulated backend.
//!
//! * `sampling/sim/N`: one sampling step (prepare + check of every region)
//!   with N regions; no aggregation happens inside the measurement.
//! * `aggregation/sim/N`: one merge + `min_nr_regions` enforcement + split
//!   of N regions with mixed access counts.
//! * `aggregation_space/sim/{1GiB,1TiB}`: one whole aggregation interval
//!   (20 samples, merge, reset, split) at default attributes on spaces of
//!   very different size: the cost must not grow with the space.
//!
//! * `sampling/engine/N`: the same step with a backend that does only the
//!   engine's share (sampling address, access-rate update): engine time.
//!
//! Per-region-sample cost = `sampling/{sim,engine}/N` time / N.

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use damon_core::adapt::{apply_min_nr_regions, merge_regions, split_regions};
use damon_core::*;
use std::sync::Arc;

fn sampling_loop(nr_regions: u32) -> Kdamond {
    sampling_loop_with(nr_regions, true)
}

fn sampling_loop_with(nr_regions: u32, sim: bool) -> Kdamond {
    let mut ctx = Context::new();
    // min = max = N keeps the count at N; an aggregation interval far in
    // the future keeps merge/split out of the measurement.
    ctx.attrs.min_nr_regions = nr_regions.max(3);
    ctx.attrs.max_nr_regions = nr_regions.max(3);
    ctx.attrs.sample_interval = 1;
    ctx.attrs.aggr_interval = u64::MAX / 4;
    ctx.attrs.ops_update_interval = u64::MAX / 4;
    let space = 1u64 << 40;
    let hot = HotRange {
        range: AddrRange::new(0, space / 2),
        probability: 0.5,
    };
    if sim {
        ctx.set_ops(
            "sim",
            Box::new(SimOps::new(SimPattern::with_hot(space, vec![hot]))),
        );
        ctx.targets.push(Target::new(0));
    } else {
        ctx.set_ops("engine", Box::new(EngineOnly));
        ctx.targets
            .push(Target::with_ranges(0, &[AddrRange::new(0, space)]));
    }
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(7);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    assert_eq!(kd.ctx().nr_regions(), nr_regions as usize);
    kd
}

/// A backend that does the engine's part only: `damon_rand` for the
/// sampling address and the access-rate update, with "accessed" taken from
/// one address bit instead of a page-table or pattern lookup.
struct EngineOnly;

impl Operations for EngineOnly {
    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
            }
        }
        Ok(())
    }
    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        let rate = AccessRate::new(ctx.attrs);
        let mut max = 0;
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                rate.update(r, r.sampling_addr & (1 << 12) != 0);
                max = max.max(r.nr_accesses);
            }
        }
        Ok(max)
    }
}

fn bench_sampling(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampling");
    for n in [10u32, 100, 1000, 10_000] {
        let mut kd = sampling_loop(n);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(BenchmarkId::new("sim", n), |b| {
            b.iter(|| {
                let r = kd.step();
                assert!(r.is_none());
                black_box(kd.ctx().targets[0].regions[0].nr_accesses)
            })
        });
        let mut kd = sampling_loop_with(n, false);
        g.bench_function(BenchmarkId::new("engine", n), |b| {
            b.iter(|| {
                let r = kd.step();
                assert!(r.is_none());
                black_box(kd.ctx().targets[0].regions[0].nr_accesses)
            })
        });
    }
    g.finish();
}

fn mixed_targets(n: usize) -> Vec<Target> {
    let mut rng = Rng::new(3);
    let size = 1u64 << 22;
    let regions = (0..n as u64)
        .map(|i| {
            let mut r = Region::new(i * size, (i + 1) * size);
            // runs of similar counts so some merge and some do not
            r.nr_accesses = ((i / 7) % 5 * 4 + rng.range(0, 2)) as u32;
            r.last_nr_accesses = ((i / 5) % 3 * 6) as u32;
            r
        })
        .collect();
    vec![Target {
        id: 0,
        regions,
        obsolete: false,
    }]
}

fn bench_aggregation(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregation");
    for n in [10usize, 100, 1000, 10_000] {
        let base = mixed_targets(n);
        let max_nr = (2 * n).max(20) as u32;
        let min_nr = (n / 4).max(3) as u32;
        let mut scratch = Vec::with_capacity(4 * n);
        let mut rng = Rng::new(1);
        let mut last = 0usize;
        let mut rotation = 0u64;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("sim", n), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |targets| {
                    merge_regions(targets, 2, u64::MAX, max_nr, 20);
                    let sz = apply_min_nr_regions(targets, &mut scratch, min_nr, 4096);
                    split_regions(
                        targets,
                        &mut scratch,
                        max_nr,
                        4096,
                        &mut last,
                        &mut rotation,
                        &mut rng,
                    );
                    black_box((sz, targets[0].regions.len()))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_aggregation_space(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregation_space");
    for (name, space) in [("1GiB", 1u64 << 30), ("1TiB", 1u64 << 40)] {
        let mut ctx = Context::new();
        // the same shape at both sizes: 5% hot at the same relative place
        let hot = HotRange {
            range: AddrRange::new(space / 4, space / 4 + space / 20),
            probability: 0.8,
        };
        ctx.set_ops(
            "sim",
            Box::new(SimOps::new(SimPattern::with_hot(space, vec![hot]))),
        );
        ctx.targets.push(Target::new(0));
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        ctx.seed = Some(11);
        let mut kd = Kdamond::new(ctx).expect("valid");
        kd.init().expect("init");
        // warm up: let regions adapt
        for _ in 0..400 {
            kd.step();
        }
        g.bench_function(BenchmarkId::new("sim", name), |b| {
            b.iter(|| {
                // one aggregation interval = 20 samples at default attributes
                for _ in 0..20 {
                    assert!(kd.step().is_none());
                }
                black_box(kd.ctx().nr_regions())
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_sampling,
    bench_aggregation,
    bench_aggregation_space
);
criterion_main!(benches);
