//! (c) paddr finds a hot set in physical memory: a thread keeps touching
//! 16 MiB of a 64 MiB buffer; after monitoring the largest System RAM block
//! the regions covering the hot pages' physical addresses show accesses.
//! Needs root and CONFIG_IDLE_PAGE_TRACKING.

use damon_core::{Context, Kdamond, RealClock, Target};
use damon_ops_common::pagemap::{PagemapEntry, PagemapFile};
use damon_ops_common::sys::{page_size, Advice};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZE: usize = 64 << 20;
const HOT: usize = 16 << 20;

#[test]
fn paddr_sees_the_hot_set() {
    if !testing::require_vaddr("paddr_sees_the_hot_set") {
        return;
    }
    let page = page_size();
    let mut m = AnonMapping::new(SIZE, 2 << 20).expect("mmap");
    m.advise(Advice::Nohugepage).expect("madvise");
    m.write_pages(0..SIZE, 1);
    let addr = m.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        let mut v = 0u8;
        while !stop2.load(Ordering::Relaxed) {
            v = v.wrapping_add(1);
            m.write_pages(0..HOT, v);
        }
        m
    });

    let mut ctx = Context::new();
    ctx.set_ops(
        "paddr",
        Box::new(PaddrOps::new(PaddrRegions::LargestSystemRam).expect("paddr")),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(RealClock::new()));
    let mut kd = Kdamond::new(ctx).expect("context");
    kd.init().expect("init");
    let mut pm = PagemapFile::open(None).expect("pagemap");
    let mut entries = vec![0u64; HOT / page as usize];
    let start = Instant::now();
    let mut scores = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let before = kd.ctx().loop_state().next_aggregation_sis;
        assert!(kd.step().is_none(), "the loop stopped");
        if kd.ctx().loop_state().next_aggregation_sis != before
            && start.elapsed() > Duration::from_secs(4)
        {
            let n = pm
                .read_entries(addr / page, &mut entries)
                .expect("pagemap read");
            let regions = &kd.ctx().targets[0].regions;
            let mut seen = 0usize;
            let mut total = 0usize;
            for &e in &entries[..n] {
                let Some(pfn) = PagemapEntry(e).pfn() else {
                    continue;
                };
                let pa = pfn * page;
                total += 1;
                let i = regions.partition_point(|r| r.ar.end <= pa);
                if regions
                    .get(i)
                    .is_some_and(|r| r.ar.contains(pa) && r.last_nr_accesses > 0)
                {
                    seen += 1;
                }
            }
            scores.push(seen as f64 / total.max(1) as f64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(worker.join().expect("worker"));
    let last: Vec<f64> = scores.iter().rev().take(10).copied().collect();
    let mean = last.iter().sum::<f64>() / last.len().max(1) as f64;
    eprintln!("paddr_sees_the_hot_set: hot pages in accessed regions, last aggregations: {last:?}");
    assert!(
        mean >= 0.5,
        "only {mean:.2} of hot pages were in regions seen accessed"
    );
}
