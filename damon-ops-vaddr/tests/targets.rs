//! Target handling that needs no page_idle: opening a process's files,
//! pid validation, exits, and pagemap translation cost on this host.

mod common;

use damon_core::{
    AddrRange, Attrs, Context, Kdamond, Operations, OpsCtx, OpsError, Rng, Target, VirtualClock,
};
use damon_ops_common::probe::{PfnVisibility, ProbeReport};
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_vaddr::process::{pid_of, ProcessFiles};
use damon_ops_vaddr::VaddrOps;
use std::sync::Arc;

#[test]
fn child_workload_entry() {
    common::child_main();
}

#[test]
fn bad_pids_and_missing_processes() {
    assert!(matches!(pid_of(0), Err(OpsError::Invalid(_))));
    assert!(matches!(pid_of(1 << 40), Err(OpsError::Invalid(_))));
    // pid_max is at most 2^22
    match ProcessFiles::open((1 << 22) + 7) {
        Err(OpsError::TargetGone { id, .. }) => assert_eq!(id, (1 << 22) + 7),
        other => panic!("expected TargetGone, got {other:?}"),
    }
}

#[test]
fn own_process_files_open_and_maps_reread() {
    let mut p = ProcessFiles::open(std::process::id().into()).unwrap();
    assert!(p.check_alive());
    let mut buf = Vec::new();
    let a = p.read_maps(&mut buf).unwrap();
    let b = p.read_maps(&mut buf).unwrap();
    assert!(!a.is_empty());
    assert!(a.iter().any(|v| v.path.as_deref() == Some("[stack]")));
    assert!(
        (a.len() as isize - b.len() as isize).abs() < 8,
        "re-reading with pread from 0 gives the file again"
    );
}

#[test]
fn exited_child_is_invalid_and_named() {
    let w = common::spawn_workload(1 << 20, 1 << 19, 300);
    let mut ctx = Context::new();
    ctx.targets.push(Target::new(w.pid));
    ctx.set_ops(
        "vaddr",
        Box::new(VaddrOps::with_io(
            false,
            Box::new(FakePhysMem::new(1 << 12)),
        )),
    );
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    assert!(
        kd.ctx().targets[0].nr_regions() >= 3,
        "three regions at init"
    );
    assert!(kd.step().is_none());
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // The child exited (a zombie until reaped): its pidfd says so.
    let reason = (0..10).find_map(|_| kd.step()).expect("the loop stops");
    let text = reason.to_string();
    assert!(text.contains(&format!("pid {} exited", w.pid)), "{text}");
    assert!(
        matches!(reason, damon_core::ExitReason::AllTargetsInvalid { .. }),
        "{reason:?}"
    );
}

#[test]
fn opening_a_vanished_target_at_init_is_target_gone() {
    let mut ops = VaddrOps::with_io(false, Box::new(FakePhysMem::new(1 << 12)));
    let attrs = Attrs::default();
    let mut rng = Rng::new(1);
    let mut targets = vec![Target::new((1 << 22) + 9)];
    let mut ctx = OpsCtx::new(&attrs, &mut rng, &mut targets);
    assert!(matches!(
        ops.init(&mut ctx),
        Err(OpsError::TargetGone { .. })
    ));
}

#[test]
fn pagemap_translation_is_batched() {
    let visible = ProbeReport::run().pagemap_pfns == PfnVisibility::Visible;
    if !damon_ops_common::testing::require(
        visible,
        "pagemap_translation_is_batched",
        "PFNs are hidden in pagemap",
    ) {
        return;
    }
    let w = common::spawn_workload(64 << 20, 16 << 20, common::UNTIL_KILLED_MS);
    let mut ops = VaddrOps::with_io(true, Box::new(FakePhysMem::new(1 << 16)));
    // 1024 regions of 64 KiB over the 64 MiB buffer
    let ranges: Vec<AddrRange> = (0..1024u64)
        .map(|i| AddrRange::new(w.addr + (i << 16), w.addr + ((i + 1) << 16)))
        .collect();
    let attrs = Attrs::default();
    let mut rng = Rng::new(1);
    let mut targets = vec![Target::with_ranges(w.pid, &ranges)];
    let mut ctx = OpsCtx::new(&attrs, &mut rng, &mut targets);
    ops.init(&mut ctx).unwrap();
    let before = ops.process_syscalls();
    const SAMPLES: u64 = 10;
    for _ in 0..SAMPLES {
        ops.prepare_access_checks(&mut ctx).unwrap();
        ops.check_accesses(&mut ctx).unwrap();
    }
    let per_sample = (ops.process_syscalls() - before) as f64 / SAMPLES as f64;
    eprintln!(
        "pagemap_translation_is_batched: {per_sample} pagemap calls per sample of 1024 regions"
    );
    assert!(
        per_sample <= 16.0,
        "{per_sample} pagemap calls per sample of 1024 regions"
    );
    assert!(ctx.targets[0]
        .regions
        .iter()
        .all(|r| r.ar.contains(r.sampling_addr)));
}
