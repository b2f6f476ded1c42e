//! The `vaddr-written` backend for real on this kernel (userfaultfd with
//! `UFFD_FEATURE_WP_ASYNC` and `PAGEMAP_SCAN`, Linux 6.7+), driven step by
//! step on a virtual clock whose sampling sleep *is* the workload: between
//! each sample's prepare and check, the test writes one range of its own
//! memory and reads another. Nothing waits on wall-clock time. A kernel
//! without what it needs says which test is skipped and why.

use damon_core::{AddrRange, Clock, Context, Control, Kdamond, Region, Target, VirtualClock, Wake};
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_vaddr::WrittenOps;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The tests share this process's mappings, and a mapping is registered
/// with one userfaultfd at a time: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;
/// Written in phase 0, read in phase 1.
const A: std::ops::Range<usize> = 0..8 * MIB;
/// Read in phase 0, written in phase 1.
const B: std::ops::Range<usize> = 16 * MIB..24 * MIB;

/// A virtual clock whose every sleep runs one round of the workload.
struct WorkClock {
    time: VirtualClock,
    mem: Mutex<AnonMapping>,
    swapped: AtomicBool,
}

impl Clock for WorkClock {
    fn now_us(&self) -> u64 {
        self.time.now_us()
    }
    fn sleep(&self, us: u64, wake: &Wake) -> bool {
        let (w, r) = if self.swapped.load(Ordering::Relaxed) {
            (B, A)
        } else {
            (A, B)
        };
        let mut m = self.mem.lock();
        m.write_pages(w, 7);
        let s = m.as_slice();
        let sum: u64 = (r.start..r.end)
            .step_by(PAGE)
            .map(|i| u64::from(s[i]))
            .sum();
        std::hint::black_box(sum);
        drop(m);
        self.time.sleep(us, wake)
    }
}

fn found(regions: &[Region], range: AddrRange) -> u64 {
    let hit: u64 = regions
        .iter()
        .filter(|r| r.nr_accesses > 0)
        .map(|r| r.ar.overlap(&range))
        .sum();
    hit * 100 / range.len()
}

#[test]
fn written_range_is_found_read_range_is_not_and_a_phase_change_is_followed() {
    let _serial = SERIAL.lock();
    const T: &str = "written_range_is_found_read_range_is_not_and_a_phase_change_is_followed";
    let ops = match WrittenOps::new() {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: {T}: {e}");
            return;
        }
    };
    let mem = AnonMapping::new(32 * MIB, PAGE).unwrap();
    let base = mem.addr();
    let (a, b) = (
        AddrRange::new(base + A.start as u64, base + A.end as u64),
        AddrRange::new(base + B.start as u64, base + B.end as u64),
    );
    let clock = Arc::new(WorkClock {
        time: VirtualClock::new(),
        mem: Mutex::new(mem),
        swapped: AtomicBool::new(false),
    });
    let mut ctx = Context::new();
    ctx.set_ops(damon_ops_vaddr::written::ID, Box::new(ops));
    let mut t = Target::new(u64::from(std::process::id()));
    t.regions.push(Region::new(base, base + 32 * MIB as u64));
    ctx.targets.push(t);
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 100_000;
    ctx.attrs.ops_update_interval = 1_000_000;
    ctx.clock = Some(clock.clone());
    ctx.seed = Some(3);
    let snapshots: Arc<Mutex<Vec<Vec<Region>>>> = Arc::default();
    let region_samples = Arc::new(AtomicU64::new(0));
    let (s, n) = (snapshots.clone(), region_samples.clone());
    ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
        s.lock().push(c.targets[0].regions.clone());
        Control::Continue
    }));
    ctx.callbacks.after_sampling = Some(Box::new(move |c: &Context| {
        n.fetch_add(c.nr_regions() as u64, Ordering::Relaxed);
        Control::Continue
    }));
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    let calls0 = kd.ops().syscalls().unwrap();
    let samples0 = region_samples.load(Ordering::Relaxed);
    let run_until = |kd: &mut Kdamond, aggregations: usize| {
        while snapshots.lock().len() < aggregations {
            assert!(kd.step().is_none(), "the context ended");
        }
    };
    run_until(&mut kd, 20);
    let last = snapshots.lock().last().unwrap().clone();
    let (fa, fb) = (found(&last, a), found(&last, b));
    eprintln!(
        "{T}: after 20 aggregations: written {fa}% found, read-only {fb}% ({} regions)",
        last.len()
    );
    assert!(
        fa >= 90,
        "the written range: {fa}% of its bytes in accessed regions"
    );
    assert!(
        fb <= 5,
        "the read-only range: {fb}% of its bytes in accessed regions"
    );
    // system calls per region-sample (maps reads at ops updates included)
    let calls = kd.ops().syscalls().unwrap() - calls0;
    let samples = region_samples.load(Ordering::Relaxed) - samples0;
    let per = calls as f64 / samples as f64;
    eprintln!("{T}: {calls} system calls for {samples} region-samples: {per:.2} each");
    assert!(per <= 2.0, "{per:.2} system calls per region-sample");
    // phase change: B written, A only read
    clock.swapped.store(true, Ordering::Relaxed);
    let mut followed = None;
    for k in 1..=10 {
        run_until(&mut kd, 20 + k);
        let last = snapshots.lock().last().unwrap().clone();
        if found(&last, b) >= 90 && found(&last, a) <= 5 {
            followed = Some(k);
            break;
        }
    }
    eprintln!("{T}: the phase change followed after {followed:?} aggregations");
    assert!(
        followed.is_some(),
        "the phase change not followed in 10 aggregations"
    );
    let _ = kd.terminate();
}

#[test]
fn another_process_is_refused_with_the_reason() {
    let _serial = SERIAL.lock();
    const T: &str = "another_process_is_refused_with_the_reason";
    let ops = match WrittenOps::new() {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: {T}: {e}");
            return;
        }
    };
    let mut ctx = Context::new();
    ctx.set_ops(damon_ops_vaddr::written::ID, Box::new(ops));
    ctx.targets.push(Target::new(1));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let mut kd = Kdamond::new(ctx).unwrap();
    let e = kd.init().unwrap_err().to_string();
    assert!(e.contains("calling process") && e.contains("pid 1"), "{e}");
}

#[test]
fn conformance_vaddr_written() {
    let _serial = SERIAL.lock();
    const T: &str = "conformance_vaddr_written";
    if let Err(e) = WrittenOps::new() {
        println!("skipped: {T}: {e}");
        return;
    }
    use damon_core::testing::conformance::{conformance_suite, SuiteConfig};
    // the calling process's whole address space (three regions), and a
    // fixed range of it
    let mem = AnonMapping::new(8 * MIB, PAGE).unwrap();
    let fixed = AddrRange::new(mem.addr(), mem.addr() + 8 * MIB as u64);
    for (targets, check_bounds) in [
        // the address space may grow across an ops update (test threads)
        (vec![Target::new(u64::from(std::process::id()))], false),
        (
            vec![Target::with_ranges(u64::from(std::process::id()), &[fixed])],
            true,
        ),
    ] {
        let make = || {
            Ok((
                Box::new(WrittenOps::new()?) as Box<dyn damon_core::Operations>,
                targets.clone(),
            ))
        };
        let config = SuiteConfig {
            check_bounds,
            ..SuiteConfig::virtual_time(200)
        };
        let reports = conformance_suite(&config, make).unwrap();
        eprintln!("{T}: {reports:?}");
        assert!(!reports.is_empty());
    }
    drop(mem);
}

#[test]
fn damos_acts_on_what_vaddr_written_finds() {
    let _serial = SERIAL.lock();
    const T: &str = "damos_acts_on_what_vaddr_written_finds";
    use damon_core::damos::{AccessPattern, Action, Scheme};
    let ops = match WrittenOps::new() {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: {T}: {e}");
            return;
        }
    };
    let mem = AnonMapping::new(32 * MIB, PAGE).unwrap();
    let base = mem.addr();
    let clock = Arc::new(WorkClock {
        time: VirtualClock::new(),
        mem: Mutex::new(mem),
        swapped: AtomicBool::new(false),
    });
    let mut ctx = Context::new();
    ctx.set_ops(damon_ops_vaddr::written::ID, Box::new(ops));
    let mut t = Target::new(u64::from(std::process::id()));
    t.regions.push(Region::new(base, base + 32 * MIB as u64));
    ctx.targets.push(t);
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 100_000;
    ctx.clock = Some(clock);
    ctx.seed = Some(5);
    // never written for half a second: MADV_COLD; written: counted
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            min_age_region: 5,
            ..AccessPattern::default()
        },
        Action::Cold,
    ));
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            min_nr_accesses: 1,
            ..AccessPattern::default()
        },
        Action::Stat,
    ));
    let _control = damon_schemes::install_default(&mut ctx);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    // 20 aggregations of 20 samples
    for _ in 0..400 {
        assert!(kd.step().is_none(), "the context ended");
    }
    let (cold, stat) = (kd.ctx().schemes[0].stat, kd.ctx().schemes[1].stat);
    eprintln!("{T}: cold {cold:?}; stat {stat:?}");
    // A (8 MiB) is written, the other 24 MiB only read or untouched
    assert!(cold.sz_applied >= 16 * MIB as u64, "{cold:?}");
    assert!(
        stat.nr_tried > 0 && stat.sz_tried >= 8 * MIB as u64,
        "{stat:?}"
    );
    let _ = kd.terminate();
}

#[test]
fn a_second_context_over_the_same_mapping_is_refused_with_the_reason() {
    let _serial = SERIAL.lock();
    const T: &str = "a_second_context_over_the_same_mapping_is_refused_with_the_reason";
    let (Ok(first), Ok(second)) = (WrittenOps::new(), WrittenOps::new()) else {
        println!("skipped: {T}: no written-page monitoring on this kernel");
        return;
    };
    let mem = AnonMapping::new(4 * MIB, PAGE).unwrap();
    let range = AddrRange::new(mem.addr(), mem.addr() + 4 * MIB as u64);
    let start = |ops: WrittenOps| {
        let mut ctx = Context::new();
        ctx.set_ops(damon_ops_vaddr::written::ID, Box::new(ops));
        ctx.targets
            .push(Target::with_ranges(u64::from(std::process::id()), &[range]));
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        let mut kd = Kdamond::new(ctx).unwrap();
        kd.init().map(|()| kd)
    };
    let kd = start(first).unwrap();
    let e = match start(second) {
        Ok(_) => panic!("a second context over the same mapping started"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("another userfaultfd"), "{e}");
    drop(kd);
    drop(mem);
}
