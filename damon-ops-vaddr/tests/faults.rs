//! System-call faults the vaddr backend survives or reports clearly,
//! injected below the retry policy with `damon_ops_common::testing::faults`
//! (cargo feature `fault-injection`, enabled for this crate's tests only).
//! The page layer's own fault tests are in damon-ops-common, paddr's in
//! damon-ops-paddr.
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
use damon_ops_common::sys::{self, Pidfd};
use damon_ops_common::testing;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_common::testing::faults::{inject, Call, Fault};
use damon_ops_vaddr::VaddrOps;

#[test]
fn child_workload_entry() {
    common::child_main();
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
    let w = common::spawn_self(4 << 20, 1 << 20, common::UNTIL_KILLED_MS, &[]);
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
    let w = common::spawn_self(8 << 20, 0, common::UNTIL_KILLED_MS, &[]);
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
    let w = common::spawn_self(8 << 20, 8 << 20, common::UNTIL_KILLED_MS, &[]);
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
    let w = common::spawn_self(4 << 20, 4 << 20, common::UNTIL_KILLED_MS, &[]);
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
