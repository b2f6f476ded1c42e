//! Cost of one sampling step of the real backends, for the guest VM (they
//! need idle page tracking and root; elsewhere this prints `skipped:`).
//!
//! * `sampling/vaddr/N`: a child process with 256 MiB of populated memory,
//!   N regions.
//! * `sampling/paddr/N`: the largest System RAM block, N regions.
//!
//! * `sampling/vaddr-written/N`: this process's own 256 MiB buffer whose
//!   first quarter a thread keeps writing, N regions, with the written-page
//!   backend (no idle page tracking or root needed: it runs on the host).
//! * `written/write-throughput/{unmonitored,monitored}`: one pass writing
//!   every page of a 64 MiB buffer, with and without `vaddr-written`
//!   monitoring it in real time (5 ms samples): what the monitored
//!   process pays.
//!
//! After criterion's measurement, a fixed run of steps reports the system
//! calls per region-sample (the backends count their own calls).

use criterion::{black_box, Criterion};
use damon_core::*;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_common::ProbeReport;
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use damon_ops_vaddr::{VaddrOps, WrittenOps};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const CHILD_ENV: &str = "DAMON_BENCH_CHILD";

fn child_main() -> ! {
    let len = 256usize << 20;
    let mut m = AnonMapping::new(len, 2 << 20).expect("mmap");
    m.write_pages(0..len, 1);
    println!("ready {:#x} {}", m.addr(), len);
    let mut v = 2u8;
    loop {
        // keep the first quarter hot
        m.write_pages(0..len / 4, v);
        v = v.wrapping_add(1);
    }
}

fn spawn_child() -> (Child, u64, u64) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("ready line");
    let mut it = line.split_whitespace().skip(1);
    let addr =
        u64::from_str_radix(it.next().expect("addr").trim_start_matches("0x"), 16).expect("hex");
    let len = it.next().expect("len").parse().expect("len");
    (child, addr, len)
}

fn loop_for(ops: Box<dyn Operations>, target: Target, n: u32) -> Kdamond {
    let mut ctx = Context::new();
    ctx.attrs.min_nr_regions = n;
    ctx.attrs.max_nr_regions = n;
    // no aggregation inside the measurement: only sampling steps
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = u64::MAX / 4;
    ctx.attrs.ops_update_interval = u64::MAX / 4;
    ctx.set_ops("bench", ops);
    ctx.targets.push(target);
    // virtual time: the step does the sampling work without sleeping
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(1);
    let mut kd = Kdamond::new(ctx).expect("valid");
    kd.init().expect("init");
    kd
}

fn report_syscalls(name: &str, kd: &mut Kdamond, n: u32) {
    let steps = 200u64;
    let before = kd.ops().syscalls().unwrap_or(0);
    let t = std::time::Instant::now();
    for _ in 0..steps {
        assert!(kd.step().is_none());
    }
    let el = t.elapsed();
    let calls = kd.ops().syscalls().unwrap_or(0) - before;
    let rs = (steps * u64::from(kd.ctx().nr_regions() as u32)) as f64;
    println!(
        "backend-cost {name}/{n}: regions={} us_per_region_sample={:.3} syscalls_per_region_sample={:.3}",
        kd.ctx().nr_regions(),
        el.as_secs_f64() * 1e6 / rs,
        calls as f64 / rs
    );
}

/// The written-page backend on this process's own memory.
fn written(c: &mut Criterion) {
    if let Err(e) = WrittenOps::new() {
        eprintln!("skipped: backends benchmark, vaddr-written: {e}");
        return;
    }
    let len = 256usize << 20;
    let mut m = AnonMapping::new(len, 2 << 20).expect("mmap");
    m.write_pages(0..len, 1);
    let range = AddrRange::new(m.addr(), m.addr() + len as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut v = 2u8;
        while !s.load(Ordering::Relaxed) {
            m.write_pages(0..len / 4, v);
            v = v.wrapping_add(1);
        }
    });
    let me = u64::from(std::process::id());
    for n in [100u32, 1000] {
        let ops = WrittenOps::new().expect("vaddr-written");
        let mut kd = loop_for(Box::new(ops), Target::with_ranges(me, &[range]), n);
        c.bench_function(&format!("sampling/vaddr-written/{n}"), |b| {
            b.iter(|| black_box(kd.step()))
        });
        report_syscalls("vaddr-written", &mut kd, n);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    // what the monitored process pays: one pass over 64 MiB
    let len = 64usize << 20;
    let mut buf = AnonMapping::new(len, 2 << 20).expect("mmap");
    buf.write_pages(0..len, 1);
    let range = AddrRange::new(buf.addr(), buf.addr() + len as u64);
    let mut v = 0u8;
    c.bench_function("written/write-throughput/unmonitored", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            buf.write_pages(0..len, v)
        })
    });
    let mut ctx = Context::new();
    ctx.set_ops(
        "vaddr-written",
        Box::new(WrittenOps::new().expect("vaddr-written")),
    );
    ctx.targets.push(Target::with_ranges(me, &[range]));
    let handles = damon_start(vec![ctx], false).expect("monitor starts");
    c.bench_function("written/write-throughput/monitored", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            buf.write_pages(0..len, v)
        })
    });
    handles[0].stop();
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    written(&mut c);
    let probe = ProbeReport::run();
    if let Err(e) = probe.require_vaddr() {
        eprintln!("skipped: backends benchmark, vaddr and paddr: {e}");
        c.final_summary();
        return;
    }
    let (mut child, addr, len) = spawn_child();
    for n in [100u32, 1000] {
        let ops = VaddrOps::new().expect("vaddr");
        let mut kd = loop_for(
            Box::new(ops),
            Target::with_ranges(u64::from(child.id()), &[AddrRange::new(addr, addr + len)]),
            n,
        );
        c.bench_function(&format!("sampling/vaddr/{n}"), |b| {
            b.iter(|| black_box(kd.step()))
        });
        report_syscalls("vaddr", &mut kd, n);
    }
    let _ = child.kill();
    let _ = child.wait();
    for n in [100u32, 1000] {
        let ops = PaddrOps::new(PaddrRegions::LargestSystemRam).expect("paddr");
        let mut kd = loop_for(Box::new(ops), Target::new(0), n);
        c.bench_function(&format!("sampling/paddr/{n}"), |b| {
            b.iter(|| black_box(kd.step()))
        });
        report_syscalls("paddr", &mut kd, n);
    }
    c.final_summary();
}
