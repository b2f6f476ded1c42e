//! A monitored process changes under the backend (issue: hardening): it
//! `execve`s, its mappings churn (mmap/mremap/mprotect/munmap) while it is
//! sampled, or it exits and another process gets its pid.
//!
//! Where the test only needs PFNs (root), it runs on the host with the fake
//! page_idle; with real page_idle (the guest VM suite) it also checks that
//! accesses are seen. The pid-reuse test needs real swap to observe that no
//! action reaches the newcomer, so it runs in the guest only.

mod common;

use damon_core::damos::{AccessPattern, Action, Scheme};
use damon_core::*;
use damon_ops_common::probe::{PfnVisibility, ProbeReport};
use damon_ops_common::testing;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_vaddr::VaddrOps;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn child_workload_entry() {
    common::child_main();
}

/// The real backend where page_idle is usable, else the fake page_idle
/// when pagemap shows PFNs (root), else None (the test is skipped).
fn backend(test: &str) -> Option<(VaddrOps, bool)> {
    let probe = ProbeReport::run();
    if probe.require_vaddr().is_ok() {
        return Some((VaddrOps::new().expect("vaddr"), true));
    }
    if testing::in_vm_suite() {
        panic!("{test}: the VM suite must have real page_idle");
    }
    if probe.pagemap_pfns == PfnVisibility::Visible {
        return Some((
            VaddrOps::with_io(false, Box::new(FakePhysMem::new(1 << 20))),
            false,
        ));
    }
    testing::skip(test, "needs PFNs in /proc/PID/pagemap (root)");
    None
}

/// `n` samples stepped by hand, 5 ms apart (the kernel sets accessed bits
/// in real time, so the pause is for the workload, not for the engine).
fn sample(ops: &mut VaddrOps, attrs: &Attrs, rng: &mut Rng, targets: &mut [Target], n: usize) {
    for _ in 0..n {
        ops.prepare_access_checks(&mut OpsCtx::new(attrs, rng, targets))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        ops.check_accesses(&mut OpsCtx::new(attrs, rng, targets))
            .unwrap();
    }
}

/// PFNs the backend found in pagemap and handed to page_idle so far.
fn verdicts(ops: &VaddrOps) -> u64 {
    ops.stats().marked
}

fn overlaps(t: &Target, start: u64, len: u64) -> impl Iterator<Item = &Region> {
    t.regions
        .iter()
        .filter(move |r| r.ar.start < start + len && start < r.ar.end)
}

/// The kernel keeps monitoring a pid across `execve` (its vaddr looks the
/// mm up again); so does this backend: the files opened on the old address
/// space read nothing after the exec, the backend notices, reopens them
/// (re-validated against the pidfd) and the next ops update moves the
/// regions onto the new image, whose pages are sampled again.
#[test]
fn exec_in_the_target_is_followed_to_its_new_address_space() {
    const TEST: &str = "exec_in_the_target_is_followed_to_its_new_address_space";
    let Some((mut ops, real)) = backend(TEST) else {
        return;
    };
    let c = common::spawn_self(
        16 << 20,
        16 << 20,
        common::UNTIL_KILLED_MS,
        &[
            ("DAMON_CHILD_EXEC_MS", "1500".into()),
            ("DAMON_CHILD_EXEC_SIZE", (48u64 << 20).to_string()),
            ("DAMON_CHILD_EXEC_HOT", (48u64 << 20).to_string()),
        ],
    );
    let first = c.next_ready(60);
    let attrs = Attrs::default();
    let mut rng = Rng::new(7);
    let mut targets = vec![Target::new(c.pid)];
    ops.init(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
    assert!(overlaps(&targets[0], first.addr, first.len)
        .next()
        .is_some());
    let v0 = verdicts(&ops);
    sample(&mut ops, &attrs, &mut rng, &mut targets, 30);
    assert!(verdicts(&ops) > v0, "the first image's pages are sampled");

    let second = c.next_ready(120);
    // the exec happened (the new image printed its ready line): sampling
    // the old regions now meets the dead address space first
    sample(&mut ops, &attrs, &mut rng, &mut targets, 3);
    ops.update(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
    assert!(
        overlaps(&targets[0], second.addr, second.len)
            .next()
            .is_some(),
        "the regions moved onto the new image's buffer at {:#x}: {:?}",
        second.addr,
        targets[0].regions
    );
    // from here on sample ten regions over the new buffer, so that every
    // sampling address has a page (the three regions also span unpopulated
    // heap and mmap space, which would make the count below a matter of luck)
    let step = second.len / 10;
    targets[0].regions = (0..10)
        .map(|i| Region::new(second.addr + i * step, second.addr + (i + 1) * step))
        .collect();
    let v1 = verdicts(&ops);
    sample(&mut ops, &attrs, &mut rng, &mut targets, 30);
    assert!(
        verdicts(&ops) >= v1 + 290,
        "(nearly) every sampled address of the new image has a page: {} of 300",
        verdicts(&ops) - v1
    );
    if real {
        let hot = overlaps(&targets[0], second.addr, second.hot_len)
            .map(|r| r.nr_accesses)
            .max()
            .unwrap_or(0);
        assert!(hot > 0, "accesses of the new image are seen");
    }
    assert!(ops.target_valid(&targets[0]));
    assert_eq!(ops.invalid_reason(), None);
}

fn vmas_of(pid: u64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

/// Maps that change between, and during, samples: the worker keeps
/// running with valid regions (sorted, disjoint, within the process's
/// address span, no more than max_nr_regions) and, with real page_idle,
/// still finds the stable hot range.
#[test]
fn maps_churn_under_sampling_keeps_monitoring_valid() {
    const TEST: &str = "maps_churn_under_sampling_keeps_monitoring_valid";
    let Some((ops, real)) = backend(TEST) else {
        return;
    };
    let c = common::spawn_self(
        32 << 20,
        8 << 20,
        common::UNTIL_KILLED_MS,
        &[("DAMON_CHILD_CHURN", "1".into())],
    );
    let w = c.next_ready(60);
    let mut ctx = Context::new();
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 50_000;
    ctx.attrs.ops_update_interval = 50_000;
    ctx.set_ops("vaddr", Box::new(ops));
    ctx.targets.push(Target::new(c.pid));
    let aggregations = Arc::new(AtomicU64::new(0));
    let seen = aggregations.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |_ctx| {
        seen.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }));
    let max_nr_regions = ctx.attrs.max_nr_regions;
    let handles = damon_start(vec![ctx], false).unwrap();
    let h = &handles[0];
    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut checks, mut distinct_maps, mut hot_seen) = (0, 0, false);
    let mut last_maps = vmas_of(c.pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let maps = vmas_of(c.pid);
        if maps != last_maps {
            distinct_maps += 1;
            last_maps = maps;
        }
        let vmas = damon_ops_vaddr::maps::parse_maps(&last_maps).unwrap();
        let span = (vmas.first().unwrap().start, vmas.last().unwrap().end);
        let regions = h
            .call(|ctx| ctx.targets[0].regions.clone())
            .expect("the worker keeps running under maps churn");
        assert!(!regions.is_empty());
        assert!(regions.len() <= max_nr_regions as usize);
        for pair in regions.windows(2) {
            assert!(pair[0].ar.end <= pair[1].ar.start, "sorted, disjoint");
        }
        for r in &regions {
            assert!(r.ar.start < r.ar.end);
            assert!(
                r.ar.start >= span.0 && r.ar.end <= span.1,
                "{:?} outside the process's span {span:x?}",
                r.ar
            );
        }
        hot_seen |= regions.iter().any(|r| {
            r.ar.start < w.addr + w.hot_len && w.addr < r.ar.end && r.last_nr_accesses > 0
        });
        checks += 1;
    }
    assert!(h.is_running(), "exit: {:?}", h.exit_reason());
    let aggrs = aggregations.load(Ordering::Relaxed);
    damon_stop(&handles).unwrap();
    assert!(
        checks >= 20 && aggrs >= 20,
        "{checks} checks, {aggrs} aggregations"
    );
    assert!(
        distinct_maps >= 5,
        "the child's maps churned ({distinct_maps} changes seen)"
    );
    if real {
        assert!(hot_seen, "the stable hot range is found despite the churn");
    }
}

fn resident_bytes(pid: u64, addr: u64, len: u64) -> u64 {
    let mut pm = damon_ops_common::pagemap::PagemapFile::open(Some(pid as i32)).unwrap();
    let mut entries = vec![0u64; (len / 4096) as usize];
    let n = pm.read_entries(addr / 4096, &mut entries).unwrap();
    entries[..n]
        .iter()
        .filter(|&&e| damon_ops_common::pagemap::PagemapEntry(e).present())
        .count() as u64
        * 4096
}

/// Restores `/proc/sys/kernel/pid_max` on drop.
struct PidMax(Option<String>);

impl Drop for PidMax {
    fn drop(&mut self) {
        if let Some(v) = &self.0 {
            let _ = std::fs::write("/proc/sys/kernel/pid_max", v);
        }
    }
}

/// Spawns children until one gets pid `want`, or None. Uses
/// `/proc/sys/kernel/ns_last_pid` where the kernel has it (pid namespaces
/// with CONFIG_CHECKPOINT_RESTORE); otherwise lowers `pid_max` to `want`
/// so that allocation wraps around (above the 300 reserved pids) and forks
/// short-lived processes until the next pid is `want`.
fn spawn_with_pid(want: u64, size: u64) -> Option<common::SelfChild> {
    let ns_last_pid = std::path::Path::new("/proc/sys/kernel/ns_last_pid").exists();
    let _restore = if ns_last_pid {
        PidMax(None)
    } else {
        assert!(want > 300, "pids up to 300 are never reused by wrap-around");
        let old = std::fs::read_to_string("/proc/sys/kernel/pid_max").ok()?;
        std::fs::write("/proc/sys/kernel/pid_max", (want + 1).to_string()).ok()?;
        PidMax(Some(old.trim().to_string()))
    };
    for _ in 0..20 {
        if ns_last_pid {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string()).ok()?;
        } else {
            // walk the pid counter up to want - 1 (at most one lap)
            for _ in 0..=want {
                let mut t = std::process::Command::new("true").spawn().ok()?;
                let pid = u64::from(t.id());
                t.wait().ok()?;
                if pid == want - 1 {
                    break;
                }
            }
        }
        let c = common::spawn_self(size, 0, common::UNTIL_KILLED_MS, &[]);
        if c.pid == want {
            return Some(c);
        }
    }
    None
}

/// A target exits and a new process is given its pid: the new process is
/// never sampled nor acted on (the backend holds the first process's pidfd
/// and files), while the other target keeps being monitored and paged out.
#[test]
fn a_recycled_pid_is_never_sampled_nor_acted_on() {
    const TEST: &str = "a_recycled_pid_is_never_sampled_nor_acted_on";
    if !testing::require_vaddr(TEST) {
        return;
    }
    let has_swap = std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .count()
        > 1;
    if !testing::require(has_swap, TEST, "no swap: pageout cannot be observed") {
        return;
    }
    let size = 16u64 << 20;
    // pids up to 300 are never reused by wrap-around: make sure A is above
    loop {
        let mut t = std::process::Command::new("true").spawn().unwrap();
        let pid = t.id();
        t.wait().unwrap();
        if pid > 310 {
            break;
        }
    }
    let mut a = common::spawn_self(size, 0, common::UNTIL_KILLED_MS, &[]);
    let _ = a.next_ready(60);
    let c = common::spawn_self(size, 0, common::UNTIL_KILLED_MS, &[]);
    let cw = c.next_ready(60);
    let mut ctx = Context::new();
    ctx.attrs.sample_interval = 5_000;
    ctx.attrs.aggr_interval = 50_000;
    ctx.set_ops("vaddr", Box::new(VaddrOps::new().unwrap()));
    ctx.targets.push(Target::new(a.pid));
    ctx.targets.push(Target::new(c.pid));
    // page out everything idle for 5 aggregations
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            min_age_region: 5,
            ..AccessPattern::default()
        },
        Action::Pageout,
    ));
    damon_schemes::install(&mut ctx, damon_schemes::SimMetrics::new());
    let handles = damon_start(vec![ctx], false).unwrap();
    let h = &handles[0];
    // the target's pid is freed...
    let a_pid = a.pid;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(a);
    // ...and given to a newcomer, whose memory is all idle
    let b = spawn_with_pid(a_pid, size).expect("a child with the recycled pid");
    let bw = b.next_ready(60);
    let b_before = resident_bytes(b.pid, bw.addr, bw.len);
    assert!(b_before >= size * 9 / 10);
    // long enough for the scheme to page out the other target's idle memory
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && resident_bytes(c.pid, cw.addr, cw.len) > size / 10 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let c_after = resident_bytes(c.pid, cw.addr, cw.len);
    let b_after = resident_bytes(b.pid, bw.addr, bw.len);
    let stat = h.call(|ctx| ctx.schemes[0].stat).unwrap();
    assert!(h.is_running(), "the other target keeps the context running");
    damon_stop(&handles).unwrap();
    eprintln!("recycled pid {a_pid}: newcomer resident {b_before} -> {b_after}, other target {c_after}, {stat:?}");
    assert!(
        c_after <= size / 10,
        "the scheme works on the live target ({c_after} bytes still resident)"
    );
    assert!(
        b_after >= b_before,
        "the newcomer with the recycled pid lost {} bytes",
        b_before - b_after
    );
}

/// The target exits after `prepare_access_checks` marked its pages and
/// before `check_accesses` reads them: no error, no access reported for
/// the dead process, and the target is invalid with the reason named.
#[test]
fn target_exiting_between_prepare_and_check_is_invalid_not_an_error() {
    const TEST: &str = "target_exiting_between_prepare_and_check_is_invalid_not_an_error";
    let Some((mut ops, _real)) = backend(TEST) else {
        return;
    };
    let mut c = common::spawn_self(8 << 20, 8 << 20, common::UNTIL_KILLED_MS, &[]);
    let w = c.next_ready(60);
    let attrs = Attrs::default();
    let mut rng = Rng::new(5);
    // ten regions over the populated buffer: every sampling address has a page
    let step = w.len / 10;
    let ranges: Vec<AddrRange> = (0..10)
        .map(|i| AddrRange::new(w.addr + i * step, w.addr + (i + 1) * step))
        .collect();
    let mut targets = vec![Target::with_ranges(c.pid, &ranges)];
    ops.init(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
    let marked = ops.stats().marked;
    ops.prepare_access_checks(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
    assert!(ops.stats().marked > marked, "pages were marked");
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let max = ops
        .check_accesses(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .expect("a target exiting mid-sample is not an error");
    assert_eq!(max, 0, "a dead process reports no access");
    assert!(targets[0].regions.iter().all(|r| r.nr_accesses == 0));
    assert!(!ops.target_valid(&targets[0]));
    let reason = ops.invalid_reason().expect("a reason");
    assert!(reason.contains(&c.pid.to_string()), "{reason}");
    // the next sample skips it without error
    ops.prepare_access_checks(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
    ops.check_accesses(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .unwrap();
}
