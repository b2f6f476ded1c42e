//! `damon_start_on`: which engine runs each context of a group, why a
//! fallback happened, and `damon_start`'s exclusive rules across both
//! engines, on a fake admin tree (never the machine's own). The running
//! count is process-wide, so these tests hold `SERIAL` and live in their
//! own test binary.

mod fake;

use damon_core::{
    damon_nr_running_ctxs, damon_start, AddrRange, Attrs, Context, HotRange, SimOps, SimPattern,
    StartError, Target, VirtualClock,
};
use damon_sysfs::*;
use fake::{FakeKernel, Profile};
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

fn opts(k: &FakeKernel) -> EngineOptions {
    EngineOptions {
        admin: Admin::at(&k.root, k.io()),
        kernel: KernelRunOptions {
            start: StartOptions {
                take_over_off: false,
                lock: None,
                owner: None,
                probe_scheme: false,
            },
            tracefs: k.root.join("no-tracefs"),
            queue: 4,
        },
    }
}

/// A process context that only names `vaddr`: the kernel's or nothing.
fn named_vaddr() -> Context {
    let mut ctx = Context::new();
    ctx.name_ops("vaddr");
    ctx.targets.push(Target::new(1));
    ctx
}

/// A context on a simulated address space installed under `id`.
fn sim(id: &str) -> Context {
    let mut ctx = Context::new();
    ctx.set_ops(
        id,
        Box::new(SimOps::new(SimPattern::with_hot(
            1 << 30,
            vec![HotRange {
                range: AddrRange::new(0, 64 << 20),
                probability: 0.7,
            }],
        ))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(7);
    ctx
}

#[test]
fn auto_runs_what_the_kernel_can_and_says_why_for_the_rest() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let k = FakeKernel::new("auto", Profile::v6_18());
    let hs = damon_start_on(
        Engine::Auto,
        vec![named_vaddr(), sim("sim"), named_vaddr()],
        true,
        &opts(&k),
    );
    // the third names vaddr only and ours is not registered in this binary
    let e = hs.unwrap_err();
    assert!(
        matches!(&e, EngineStartError::Select { index: 2, ops, .. } if ops == "vaddr"),
        "{e}"
    );
    assert_eq!(
        k.get("kdamonds/nr_kdamonds"),
        "0",
        "nothing of the group runs"
    );
    assert_eq!(damon_nr_running_ctxs(), 0);

    let hs = damon_start_on(
        Engine::Auto,
        vec![named_vaddr(), sim("sim")],
        true,
        &opts(&k),
    )
    .unwrap();
    assert_eq!(hs[0].engine(), Engine::Kernel);
    assert_eq!(hs[0].fallback_reason(), None);
    assert_eq!(k.get("kdamonds/0/state"), "on");
    assert_eq!(hs[1].engine(), Engine::User);
    let why = hs[1].fallback_reason().unwrap();
    assert!(why.contains("user-space backend"), "{why}");
    assert!(hs[1].user().unwrap().call(|c| c.nr_regions()).unwrap() >= 1);
    // an exclusive group on both engines: two running, nothing else starts
    assert_eq!(damon_nr_running_ctxs(), 2);
    assert!(matches!(
        damon_start(vec![sim("sim")], false),
        Err(StartError::Busy(_))
    ));
    let mut other = named_vaddr();
    let e = KernelRun::start(
        Admin::at(&k.root, k.io()),
        "vaddr",
        &mut other,
        &opts(&k).kernel,
    )
    .unwrap_err();
    assert!(e.to_string().contains("exclusive group"), "{e}");
    for h in hs {
        h.stop();
    }
    assert_eq!(damon_nr_running_ctxs(), 0);
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0", "ours removed");
}

#[test]
fn the_kernel_engine_names_what_it_cannot_run() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let k = FakeKernel::new("kernel", Profile::v6_18());
    let e = damon_start_on(Engine::Kernel, vec![sim("sim")], false, &opts(&k)).unwrap_err();
    assert!(
        matches!(&e, EngineStartError::Kernel { index: 0, .. })
            && e.to_string().contains("user-space backend"),
        "{e}"
    );
    let e = damon_start_on(
        Engine::Kernel,
        vec![named_vaddr(), named_vaddr()],
        false,
        &opts(&k),
    )
    .unwrap_err();
    assert!(e.to_string().contains("one kdamond per process"), "{e}");
    let mut bad = named_vaddr();
    bad.attrs = Attrs {
        min_nr_regions: 0,
        ..Attrs::default()
    };
    assert!(damon_start_on(Engine::Kernel, vec![bad], false, &opts(&k)).is_err());
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "0");
    assert_eq!(damon_nr_running_ctxs(), 0, "refusals give their slots back");
    let e = damon_start_on(Engine::Auto, vec![], false, &opts(&k)).unwrap_err();
    assert!(
        matches!(e, EngineStartError::User(StartError::Empty)),
        "{e}"
    );
}

#[test]
fn a_foreign_kdamond_sends_auto_to_our_engine_with_its_pid() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let k = FakeKernel::new("foreign", Profile::v6_18());
    let a = Admin::at(&k.root, k.io());
    a.write("kdamonds/nr_kdamonds", 1).unwrap();
    k.run_foreign(0, 4242);
    // our vaddr is simulated here: the id is what the kernel would run
    let hs = damon_start_on(Engine::Auto, vec![sim("vaddr")], false, &opts(&k)).unwrap();
    assert_eq!(hs[0].engine(), Engine::User);
    assert!(hs[0].fallback_reason().unwrap().contains("pid 4242"));
    assert_eq!(k.get("kdamonds/0/state"), "on", "theirs untouched");
    assert_eq!(k.get("kdamonds/nr_kdamonds"), "1");
    let e = damon_start_on(Engine::Kernel, vec![sim("vaddr")], false, &opts(&k)).unwrap_err();
    assert!(e.to_string().contains("pid 4242"), "{e}");
    // an exclusive group cannot start while ours runs, on either engine
    let e = damon_start_on(Engine::Auto, vec![named_vaddr()], true, &opts(&k)).unwrap_err();
    assert!(
        matches!(e, EngineStartError::User(StartError::Busy(_))),
        "{e}"
    );
    for h in hs {
        h.stop();
    }
    assert_eq!(damon_nr_running_ctxs(), 0);
}

#[test]
fn a_group_our_engine_refuses_leaves_no_kdamond_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let k = FakeKernel::new("partial", Profile::v6_18());
    let mut bad = sim("sim");
    bad.attrs = Attrs {
        min_nr_regions: 0,
        ..Attrs::default()
    };
    let e = damon_start_on(Engine::Auto, vec![named_vaddr(), bad], false, &opts(&k)).unwrap_err();
    // our engine numbers the refused context within the whole group
    assert!(
        matches!(
            e,
            EngineStartError::User(StartError::Invalid { index: 1, .. })
        ),
        "{e}"
    );
    assert_eq!(
        k.get("kdamonds/nr_kdamonds"),
        "0",
        "the kernel part went too"
    );
    assert_eq!(damon_nr_running_ctxs(), 0);
}
