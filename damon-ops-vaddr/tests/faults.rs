//! System-call faults the backends survive or report clearly (issue:
//! hardening), injected below the retry policy with
//! `damon_ops_paddr::faults` (cargo feature `fault-injection`, enabled for
//! this crate's tests only).
//!
//! Policy under test: `EINTR` is retried without limit, `EAGAIN` up to
//! `sys::EAGAIN_TRIES` times; short transfers are continued; a 0-byte
//! bitmap read makes those pages' state unknown (not accessed); a
//! process's file that reports `ENOENT`/`ESRCH` means no pages this time
//! while the pidfd says whether the process is really gone; other errors
//! stop the context with an error naming the call and the file; permission
//! errors name the privilege that is missing; `process_madvise` reports
//! exactly the bytes the kernel advised.
//!
//! Plans match on paths unique to each test (a pid, a fake's name), so the
//! tests can run in parallel.

mod common;

use damon_core::damos::{AccessPattern, Action, Scheme};
use damon_core::*;
use damon_ops_paddr::fake::FakePhysMem;
use damon_ops_paddr::faults::{inject, Call, Fault};
use damon_ops_paddr::sampler::{PfnSampler, Verdict};
use damon_ops_paddr::sys::{self, KFile, Pidfd, EAGAIN_TRIES};
use damon_ops_paddr::testing;
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use damon_ops_vaddr::VaddrOps;
use std::sync::Arc;

#[test]
fn child_workload_entry() {
    common::child_main();
}

fn read_all(path: &str) -> (Vec<u8>, u64) {
    let mut f = KFile::open_read(path).unwrap();
    let mut buf = Vec::new();
    f.read_all(&mut buf).unwrap();
    (buf, f.calls())
}

#[test]
fn eintr_and_short_reads_are_transparent() {
    let (want, calls) = read_all("/proc/version");
    let plan = inject(
        "/proc/version",
        Call::Pread,
        [
            Fault::Errno(libc::EINTR),
            Fault::Short(7),
            Fault::Errno(libc::EINTR),
            Fault::Short(1),
            Fault::Short(50),
        ],
    );
    let (got, faulty_calls) = read_all("/proc/version");
    assert_eq!(plan.hits(), 5);
    assert_eq!(got, want, "same bytes through interrupted and short reads");
    assert!(
        faulty_calls >= calls + 5,
        "every retried or short call is counted: {faulty_calls} vs {calls}"
    );
}

#[test]
fn eagain_is_retried_a_few_times_then_reported() {
    let (want, _) = read_all("/proc/cmdline");
    let tries = EAGAIN_TRIES as usize;
    let plan = inject(
        "/proc/cmdline",
        Call::Pread,
        vec![Fault::Errno(libc::EAGAIN); tries - 1],
    );
    assert_eq!(read_all("/proc/cmdline").0, want);
    assert_eq!(plan.hits(), tries - 1);
    drop(plan);
    let _plan = inject(
        "/proc/cmdline",
        Call::Pread,
        vec![Fault::Errno(libc::EAGAIN); tries],
    );
    let mut f = KFile::open_read("/proc/cmdline").unwrap();
    let e = f.pread(&mut [0u8; 64], 0).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EAGAIN));
    assert_eq!(e.call, "pread");
    assert!(e.to_string().contains("/proc/cmdline"), "{e}");
}

/// One sample of `pfns` (hot ones accessed every time) through a sampler.
fn sample(io: FakePhysMem, pfns: &[u64]) -> (Vec<Verdict>, PfnSampler) {
    let mut s = PfnSampler::new(Box::new(io));
    s.begin(pfns.len());
    for (slot, &pfn) in pfns.iter().enumerate() {
        s.add(slot, pfn);
    }
    s.mark_idle().unwrap();
    s.check().unwrap();
    let v = (0..pfns.len()).map(|i| s.verdict(i)).collect();
    (v, s)
}

fn fake_with_hot() -> FakePhysMem {
    let mut f = FakePhysMem::new(1 << 16);
    f.add_hot(1000..3000, 1.0);
    f
}

const PFNS: [u64; 8] = [10, 1500, 1501, 2999, 5000, 20_000, 20_064, 40_000];

#[test]
fn sampler_verdicts_survive_interrupted_and_short_bitmap_and_flag_io() {
    let (want, _) = sample(fake_with_hot(), &PFNS);
    assert!(want.contains(&Verdict::Accessed) && want.contains(&Verdict::Idle));
    let fake = fake_with_hot();
    let faults = [
        Fault::Errno(libc::EINTR),
        Fault::Short(8),
        Fault::Errno(libc::EAGAIN),
        Fault::Short(8),
    ];
    let r = inject(fake.bitmap_path(), Call::Pread, faults);
    let w = inject(fake.bitmap_path(), Call::Pwrite, faults);
    let k = inject(fake.kpageflags_path(), Call::Pread, faults);
    let (got, s) = sample(fake, &PFNS);
    assert_eq!(got, want);
    assert_eq!((r.hits(), w.hits(), k.hits()), (4, 4, 4));
    assert_eq!(s.stats().unreadable, 0);
}

#[test]
fn a_zero_byte_bitmap_read_makes_pages_unknown_never_accessed() {
    let fake = fake_with_hot();
    let _z = inject(fake.bitmap_path(), Call::Pread, [Fault::Zero; 64]);
    let (got, s) = sample(fake, &PFNS);
    assert!(
        got.iter().all(|&v| v == Verdict::Unknown),
        "no bitmap word was delivered: {got:?}"
    );
    assert_eq!(s.stats().unreadable, PFNS.len() as u64);
    assert!((0..PFNS.len()).all(|i| !s.accessed(i)));
}

#[test]
fn a_lasting_bitmap_error_stops_the_context_naming_the_call_and_file() {
    let fake = FakePhysMem::new(1 << 16);
    let path = fake.bitmap_path().to_string();
    let ops = PaddrOps::with_io(
        PaddrRegions::Ranges(vec![AddrRange::new(0, (1 << 16) * 4096)]),
        Box::new(fake),
        4096,
    );
    let mut ctx = Context::new();
    ctx.set_ops("paddr", Box::new(ops));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let _eio = inject(&path, Call::Pread, vec![Fault::Errno(libc::EIO); 1000]);
    let handles = damon_start(vec![ctx], false).unwrap();
    let reason = handles[0].wait().expect("the context ended");
    let text = format!("{reason:?} {reason}");
    assert!(text.contains("pread"), "{text}");
    assert!(text.contains(&path), "{text}");
    assert!(
        text.contains(&std::io::Error::from_raw_os_error(libc::EIO).to_string()),
        "{text}"
    );
}

#[test]
fn permission_errors_name_the_missing_privilege() {
    // the bitmap (host kernels without it still meet the injected EACCES
    // first: the plan acts before the real open)
    let _p = inject(
        damon_ops_paddr::physio::PAGE_IDLE_BITMAP,
        Call::Open,
        [Fault::Errno(libc::EACCES)],
    );
    let e = damon_ops_paddr::physio::KernelPhysIo::open().unwrap_err();
    assert!(matches!(e, OpsError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("root"), "{e}");
}

fn root(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root && testing::in_vm_suite() {
        panic!("{test}: the VM suite runs as root");
    }
    if !root {
        testing::skip(test, "needs root (PFNs in pagemap, CAP_SYS_NICE)");
    }
    root
}

fn fake_vaddr() -> VaddrOps {
    VaddrOps::with_io(false, Box::new(FakePhysMem::new(1 << 16)))
}

fn init(ops: &mut VaddrOps, targets: &mut [Target]) -> Result<(), OpsError> {
    let a = Attrs::default();
    let mut rng = Rng::new(1);
    ops.init(&mut OpsCtx::new(&a, &mut rng, targets))
}

#[test]
fn a_refused_proc_file_is_a_permission_error_with_the_hint() {
    const TEST: &str = "a_refused_proc_file_is_a_permission_error_with_the_hint";
    if !root(TEST) {
        return;
    }
    let w = common::spawn_self(4 << 20, 1 << 20, 30_000, &[]);
    let _ = w.next_ready(60);
    let _p = inject(
        &format!("/proc/{}/pagemap", w.pid),
        Call::Open,
        [Fault::Errno(libc::EACCES)],
    );
    let mut targets = vec![Target::new(w.pid)];
    let e = init(&mut fake_vaddr(), &mut targets).unwrap_err();
    assert!(matches!(e, OpsError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("ptrace"), "{e}");
}

#[test]
fn process_madvise_reports_exactly_what_the_kernel_advised() {
    const TEST: &str = "process_madvise_reports_exactly_what_the_kernel_advised";
    if !root(TEST) {
        return;
    }
    let w = common::spawn_self(8 << 20, 0, 30_000, &[]);
    let ready = w.next_ready(60);
    let mut ops = fake_vaddr();
    let mut targets = vec![Target::with_ranges(
        w.pid,
        &[AddrRange::new(ready.addr, ready.addr + ready.len)],
    )];
    init(&mut ops, &mut targets).unwrap();
    let a = Attrs::default();
    let cold = Scheme::new(AccessPattern::default(), Action::Cold);
    let half = ready.len / 2;
    let pid = format!("pid {}", w.pid);
    let region = Region::new(ready.addr, ready.addr + ready.len);
    {
        let _enomem = inject(&pid, Call::ProcessMadvise, [Fault::Errno(libc::ENOMEM)]);
        let out = ops.apply_scheme(&a, &targets[0], &region, &cold).unwrap();
        assert_eq!(out.applied, 0, "ENOMEM on the first range: nothing applied");
        assert_eq!(out.sz_filter_passed, ready.len);
    }
    {
        let _none = inject(&pid, Call::ProcessMadvise, [Fault::FirstRanges(0)]);
        let out = ops.apply_scheme(&a, &targets[0], &region, &cold).unwrap();
        assert_eq!(out.applied, 0, "the kernel advised no range");
    }
    {
        let _eperm = inject(&pid, Call::ProcessMadvise, [Fault::Errno(libc::EPERM)]);
        let e = ops
            .apply_scheme(&a, &targets[0], &region, &cold)
            .unwrap_err();
        assert!(matches!(e, OpsError::PermissionDenied { .. }), "{e}");
        assert!(e.to_string().contains("CAP_SYS_NICE"), "{e}");
    }
    // without faults the whole buffer is advised
    let out = ops.apply_scheme(&a, &targets[0], &region, &cold).unwrap();
    assert_eq!(out.applied, ready.len);
    // the real kernel's partial application: two iovecs, the second over
    // a hole, advise only the first (sys::process_madvise, as the backend
    // calls it)
    let mut pidfd = Pidfd::open(w.pid as i32).unwrap();
    let hole = 0x10000; // below mmap_min_addr: never mapped
    let n = pidfd
        .madvise(&[(ready.addr, half), (hole, 4096)], sys::Advice::Cold)
        .unwrap();
    assert_eq!(n as u64, half, "only the mapped first range was advised");
    let e = pidfd
        .madvise(&[(hole, 4096)], sys::Advice::Cold)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
}

#[test]
fn proc_files_that_fail_for_a_live_process_lose_one_sample_not_the_target() {
    const TEST: &str = "proc_files_that_fail_for_a_live_process_lose_one_sample_not_the_target";
    if !root(TEST) {
        return;
    }
    let w = common::spawn_self(8 << 20, 8 << 20, 30_000, &[]);
    let ready = w.next_ready(60);
    let mut ops = fake_vaddr();
    let mut targets = vec![Target::new(w.pid)];
    init(&mut ops, &mut targets).unwrap();
    let regions_before: Vec<AddrRange> = targets[0].regions.iter().map(|r| r.ar).collect();
    assert!(targets[0]
        .regions
        .iter()
        .any(|r| r.ar.start <= ready.addr && ready.addr < r.ar.end));
    let a = Attrs::default();
    let mut rng = Rng::new(3);
    // maps vanishes (ENOENT) at an ops update: regions are kept
    {
        let _gone = inject(
            &format!("/proc/{}/maps", w.pid),
            Call::Pread,
            [Fault::Errno(libc::ENOENT), Fault::Errno(libc::ENOENT)],
        );
        ops.update(&mut OpsCtx::new(&a, &mut rng, &mut targets))
            .unwrap();
    }
    let regions_after: Vec<AddrRange> = targets[0].regions.iter().map(|r| r.ar).collect();
    assert_eq!(regions_after, regions_before);
    // sample ten regions over the populated buffer from here on, so that
    // every sampling address has a page (the three regions also span
    // unpopulated heap and mmap space)
    let step = ready.len / 10;
    targets[0].regions = (0..10)
        .map(|i| Region::new(ready.addr + i * step, ready.addr + (i + 1) * step))
        .collect();
    // pagemap reads fail with ESRCH for one sample: no PFNs, no error
    let marked = ops.stats().marked;
    {
        let _esrch = inject(
            &format!("/proc/{}/pagemap", w.pid),
            Call::Pread,
            vec![Fault::Errno(libc::ESRCH); 16],
        );
        ops.prepare_access_checks(&mut OpsCtx::new(&a, &mut rng, &mut targets))
            .unwrap();
        ops.check_accesses(&mut OpsCtx::new(&a, &mut rng, &mut targets))
            .unwrap();
    }
    assert_eq!(
        ops.stats().marked,
        marked,
        "no PFN came from the failed reads"
    );
    assert!(ops.target_valid(&targets[0]), "the process still lives");
    // and the next sample reads pages again
    for _ in 0..5 {
        ops.prepare_access_checks(&mut OpsCtx::new(&a, &mut rng, &mut targets))
            .unwrap();
        ops.check_accesses(&mut OpsCtx::new(&a, &mut rng, &mut targets))
            .unwrap();
    }
    assert_eq!(
        ops.stats().marked,
        marked + 50,
        "every address has a page again"
    );
    assert_eq!(ops.invalid_reason(), None);
}

#[test]
fn an_unexpected_pagemap_error_is_reported_not_hidden() {
    const TEST: &str = "an_unexpected_pagemap_error_is_reported_not_hidden";
    if !root(TEST) {
        return;
    }
    let w = common::spawn_self(4 << 20, 4 << 20, 30_000, &[]);
    let _ = w.next_ready(60);
    let mut ops = fake_vaddr();
    let mut targets = vec![Target::new(w.pid)];
    init(&mut ops, &mut targets).unwrap();
    let _e = inject(
        &format!("/proc/{}/pagemap", w.pid),
        Call::Pread,
        vec![Fault::Errno(libc::ENOMEM); 64],
    );
    let a = Attrs::default();
    let mut rng = Rng::new(3);
    let e = ops
        .prepare_access_checks(&mut OpsCtx::new(&a, &mut rng, &mut targets))
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("pread") && text.contains("pagemap"), "{text}");
}
