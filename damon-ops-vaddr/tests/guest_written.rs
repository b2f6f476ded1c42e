//! Both written-page backends against the guest kernel's own DAMON on the
//! same write-only pattern, in one boot: the `workload` example writes the
//! first 16 MiB of a 64 MiB buffer, and the kernel's DAMON and
//! `vaddr-softdirty` each find that range (at least 80% of it in regions
//! with accesses, 80% found by both); `vaddr-written`, which sees only
//! its own process, finds the same pattern written by a thread of this
//! test process. The kernel's DAMON tree of the host
//! belongs to the machine, so this runs in the guest VM suite only.

mod common;

use common::kernel_damon_regions;
use damon_core::{damon_start, AddrRange, Context, Control, Operations, Target};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_vaddr::{SoftDirtyOps, WrittenOps};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// Writes the first 16 MiB of a 64 MiB buffer until dropped.
struct Writer {
    buf: AddrRange,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start() -> Self {
        let mut m = AnonMapping::new(64 * MIB as usize, 2 << 20).unwrap();
        m.advise(damon_ops_common::sys::Advice::Nohugepage).unwrap();
        m.write_pages(0..m.len(), 1);
        let buf = AddrRange::new(m.addr(), m.addr() + m.len() as u64);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut v = 1u8;
            while !s.load(Ordering::Relaxed) {
                v = v.wrapping_add(1);
                m.write_pages(0..16 * MIB as usize, v);
            }
        });
        Self {
            buf,
            stop,
            thread: Some(thread),
        }
    }

    fn hot(&self) -> AddrRange {
        AddrRange::new(self.buf.start, self.buf.start + 16 * MIB)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn found(regions: &[(AddrRange, u32)], hot: AddrRange) -> u64 {
    regions
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, _)| r.overlap(&hot))
        .sum::<u64>()
        * 100
        / hot.len()
}

/// Percent of `hot`'s pages in accessed regions of both `x` and `y`.
fn overlap(x: &[(AddrRange, u32)], y: &[(AddrRange, u32)], hot: AddrRange) -> u64 {
    let accessed = |rs: &[(AddrRange, u32)], a: u64| {
        rs.iter().any(|(r, n)| *n > 0 && r.start <= a && a < r.end)
    };
    let pages = hot.len() / 4096;
    let both = (0..pages)
        .map(|i| hot.start + i * 4096)
        .filter(|&a| accessed(x, a) && accessed(y, a))
        .count() as u64;
    both * 100 / pages
}

/// Runs `ops` on the buffer of this process for up to 40 aggregations,
/// returns the regions of the aggregation that found most of `hot`.
fn ours(
    ops: Box<dyn Operations>,
    id: &str,
    pid: u64,
    buf: AddrRange,
    hot: AddrRange,
) -> Vec<(AddrRange, u32)> {
    let mut ctx = Context::new();
    ctx.set_ops(id, ops);
    ctx.targets.push(Target::with_ranges(pid, &[buf]));
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 100_000;
    let (tx, rx) = channel();
    ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
        let rs: Vec<(AddrRange, u32)> = c.targets[0]
            .regions
            .iter()
            .map(|r| (r.ar, r.nr_accesses))
            .collect();
        let _ = tx.send(rs);
        Control::Continue
    }));
    let handles = damon_start(vec![ctx], false).unwrap();
    let mut best = Vec::new();
    for _ in 0..40 {
        let Ok(rs) = rx.recv_timeout(Duration::from_secs(60)) else {
            break;
        };
        if best.is_empty() || found(&rs, hot) > found(&best, hot) {
            best = rs;
        }
        if found(&best, hot) >= 95 {
            break;
        }
    }
    handles[0].stop();
    best
}

#[test]
fn written_page_backends_and_kernel_damon_find_the_same_written_range() {
    const T: &str = "written_page_backends_and_kernel_damon_find_the_same_written_range";
    if !testing::in_vm_suite() {
        return testing::skip(
            T,
            "drives the kernel's DAMON through its sysfs tree, which on this machine is not ours; runs in the guest VM suite",
        );
    }
    // The kernel's DAMON and vaddr-softdirty watch the `workload` example
    // writing 16 MiB of its 64 MiB buffer; vaddr-written sees only its own
    // process, so a thread of this one writes the same pattern. (The
    // kernel's DAMON on this test process itself read no access at all in
    // full-suite runs, while it found the range in runs of this binary
    // alone: not understood yet, so it watches the separate process.)
    let example = common::start("region buf 64M nothp; phase 300s buf:0-16M:write")
        .expect("DAMON_WORKLOAD_BIN in the VM suite");
    let hot = common::wait_phase(&example, 0);
    let theirs = kernel_damon_regions(example.pid, 8);
    let soft = ours(
        Box::new(SoftDirtyOps::new().expect("the guest kernel has soft-dirty bits")),
        damon_ops_vaddr::softdirty::ID,
        example.pid,
        example.buf,
        hot,
    );
    drop(example);
    let w = Writer::start();
    let own_hot = w.hot();
    let written = ours(
        Box::new(WrittenOps::new().expect("the guest kernel has userfaultfd WP_ASYNC")),
        damon_ops_vaddr::written::ID,
        u64::from(std::process::id()),
        w.buf,
        own_hot,
    );
    drop(w);
    let print = |who: &str, rs: &[(AddrRange, u32)], hot: AddrRange| {
        eprintln!("{who}: {} regions", rs.len());
        for (r, n) in rs.iter().filter(|(r, _)| r.intersects(&hot)) {
            eprintln!("  {r} ({} KiB) nr_accesses={n}", r.len() / 1024);
        }
    };
    print("kernel DAMON (accesses)", &theirs, hot);
    print("vaddr-softdirty (writes)", &soft, hot);
    print("vaddr-written (writes, this process)", &written, own_hot);
    let (k, b, a) = (
        found(&theirs, hot),
        found(&soft, hot),
        found(&written, own_hot),
    );
    let kb = overlap(&theirs, &soft, hot);
    eprintln!("{T}: workload hot range {hot}: kernel DAMON {k}%, vaddr-softdirty {b}%, found by both {kb}%; this process's {own_hot}: vaddr-written {a}%");
    assert!(k >= 80, "kernel DAMON found {k}%");
    assert!(b >= 80, "vaddr-softdirty found {b}%");
    assert!(
        kb >= 80,
        "overlap of vaddr-softdirty with the kernel's: {kb}%"
    );
    assert!(a >= 80, "vaddr-written found {a}%");
}
