//! The worker thread and its controls: start/stop group semantics, calls,
//! commits, pause/resume, callbacks that stop, panic or block, stop with
//! calls pending, handle drops.
//! The running-context count is process-wide (as in the kernel), so every
//! test here holds `SERIAL` while it has contexts running.

mod common;
use common::*;
use damon_core::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn sim_ctx(seed: u64) -> Context {
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(SimOps::new(SimPattern::with_hot(
            4 * G,
            vec![HotRange {
                range: AddrRange::new(0, 256 * M),
                probability: 0.7,
            }],
        ))),
    );
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(seed);
    ctx
}

/// Worker threads alive in this process (they are named `kdamond.N`; other
/// threads belong to the test harness).
fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("kdamond."))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits (bounded) until no worker thread of an earlier test is still on
/// its way out: a worker whose last handle was dropped on the worker
/// itself (a handle kept by its own callback) is detached, and its OS
/// thread may take a moment to disappear, especially in a TCG guest.
fn settled_threads() -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_now() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    threads_now()
}

/// The number of kdamond threads, once it stops changing (bounded).
fn threads_eventually(expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_now() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    threads_now()
}

/// Waits (bounded) until `cond` holds; the work it waits for is CPU-bound
/// on a virtual clock, so the deadline is a bound, not a timing assumption.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Controls an `after_aggregation` callback that, once armed, blocks at
/// the next aggregation until released.
struct Gate {
    armed: Arc<AtomicBool>,
    entered: mpsc::Receiver<()>,
    /// Dropping it releases the callback, for good: a test that fails
    /// while the worker is blocked releases it while unwinding (bind the
    /// gate after the handles, so it drops first), instead of hanging in
    /// the handles' drop.
    release: Option<mpsc::Sender<()>>,
    /// Aggregations the callback saw.
    aggregations: Arc<AtomicUsize>,
}

impl Gate {
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
    /// Returns once the worker is inside the blocking callback.
    fn wait_blocked(&self) {
        self.entered
            .recv_timeout(Duration::from_secs(30))
            .expect("the callback did not block");
    }
    fn release(&mut self) {
        self.release = None;
    }
}

/// A simulated context whose `after_aggregation` callback is a [`Gate`].
fn gated_ctx(seed: u64, armed: bool) -> (Context, Gate) {
    let (entered_tx, entered) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let gate = Gate {
        armed: Arc::new(AtomicBool::new(armed)),
        entered,
        release: Some(release_tx),
        aggregations: Arc::new(AtomicUsize::new(0)),
    };
    let (armed, aggregations) = (gate.armed.clone(), gate.aggregations.clone());
    let mut ctx = sim_ctx(seed);
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        aggregations.fetch_add(1, Ordering::SeqCst);
        if armed.swap(false, Ordering::SeqCst) {
            let _ = entered_tx.send(());
            // Returns when the test releases the gate (the sender is dropped).
            let _ = release_rx.recv();
        }
        Control::Continue
    }));
    (ctx, gate)
}

/// Sets its flag when dropped (to see when the worker drops a closure).
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn fds_now() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (bounded) for a worker to end by itself; worker progress on a
/// virtual clock is CPU-bound, so this is a bound, not a timing assumption.
fn wait_end(h: &DamonHandle) -> ExitReason {
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.is_running() {
        assert!(Instant::now() < deadline, "worker did not end");
        std::thread::yield_now();
    }
    h.wait().expect("an exit reason")
}

#[test]
fn exclusive_and_non_exclusive_groups_exclude_each_other() {
    let _g = SERIAL.lock();
    let a = damon_start(vec![sim_ctx(1), sim_ctx(2)], false).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 2);
    assert!(matches!(
        damon_start(vec![sim_ctx(3)], true),
        Err(StartError::Busy(_))
    ));
    let b = damon_start(vec![sim_ctx(4)], false).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 3);
    damon_stop(&a).unwrap();
    damon_stop(&b).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 0);
    let ex = damon_start(vec![sim_ctx(5)], true).unwrap();
    assert!(matches!(
        damon_start(vec![sim_ctx(6)], false),
        Err(StartError::Busy(_))
    ));
    assert!(matches!(
        damon_start(vec![sim_ctx(7)], true),
        Err(StartError::Busy(_))
    ));
    assert_eq!(damon_stop(&ex), Ok(()));
    assert_eq!(damon_stop(&ex), Err(StopError::NotRunning { index: 0 }));
    // the exclusive flag cleared with the last context
    let c = damon_start(vec![sim_ctx(8)], false).unwrap();
    drop(c);
    assert_eq!(damon_nr_running_ctxs(), 0);
}

#[test]
fn reserved_slots_count_as_running_under_the_exclusive_rules() {
    let _g = SERIAL.lock();
    // a group of three: one run elsewhere (the kernel's DAMON), two here
    let mut slots = RunSlots::reserve(3, true).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 3);
    assert!(matches!(
        damon_start(vec![sim_ctx(1)], false),
        Err(StartError::Busy(_))
    ));
    assert!(matches!(
        RunSlots::reserve(1, false),
        Err(StartError::Busy(_))
    ));
    let elsewhere = slots.split_off(1);
    assert_eq!((elsewhere.len(), slots.len()), (1, 2));
    assert!(matches!(
        damon_start_reserved(vec![sim_ctx(2)], slots),
        Err(StartError::Slots {
            contexts: 1,
            slots: 2
        })
    ));
    // the refused start gave its two slots back; the one elsewhere holds
    assert_eq!(damon_nr_running_ctxs(), 1);
    assert!(matches!(
        RunSlots::reserve(2, false),
        Err(StartError::Busy(_))
    ));
    drop(elsewhere);
    assert_eq!(damon_nr_running_ctxs(), 0);
    let mut group = RunSlots::reserve(3, true).unwrap();
    let elsewhere = group.split_off(1);
    let hs = damon_start_reserved(vec![sim_ctx(3), sim_ctx(4)], group).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 3);
    damon_stop(&hs).unwrap();
    assert_eq!(damon_nr_running_ctxs(), 1, "the slot elsewhere still runs");
    assert!(matches!(
        damon_start(vec![sim_ctx(5)], false),
        Err(StartError::Busy(_))
    ));
    drop(elsewhere);
    assert_eq!(damon_nr_running_ctxs(), 0);
    // the exclusive flag went with the last slot
    let hs = damon_start(vec![sim_ctx(6)], false).unwrap();
    damon_stop(&hs).unwrap();
    assert!(matches!(
        RunSlots::reserve(0, false),
        Err(StartError::Empty)
    ));
}

#[test]
fn start_stop_races_keep_group_semantics() {
    let _g = SERIAL.lock();
    let threads_before = settled_threads();
    let violations = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let violations = violations.clone();
            let started = started.clone();
            std::thread::spawn(move || {
                for round in 0..40u64 {
                    let exclusive = (i + round) % 3 == 0;
                    let n = 1 + (round % 2) as usize;
                    let ctxs = (0..n).map(|k| sim_ctx(round * 10 + k as u64)).collect();
                    match damon_start(ctxs, exclusive) {
                        Ok(hs) => {
                            started.fetch_add(1, Ordering::Relaxed);
                            // while an exclusive group runs, it is alone
                            if exclusive && damon_nr_running_ctxs() != n {
                                violations.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = hs[0].call(|c| c.nr_regions());
                            damon_stop(&hs).unwrap();
                        }
                        Err(StartError::Busy(_)) => {}
                        Err(e) => panic!("unexpected start error: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    assert!(started.load(Ordering::Relaxed) > 0);
    assert_eq!(damon_nr_running_ctxs(), 0);
    assert_eq!(
        threads_eventually(threads_before),
        threads_before,
        "no worker thread leaked"
    );
}

#[test]
fn commits_and_calls_storm_while_running() {
    let _g = SERIAL.lock();
    let hs = damon_start(vec![sim_ctx(11)], false).unwrap();
    let h = hs[0].clone();
    let storm: Vec<_> = (0..4)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                for k in 0..50u64 {
                    if (i + k) % 2 == 0 {
                        let mut src = Context::new();
                        src.attrs.sample_interval = 1000 * (1 + k % 5);
                        src.attrs.aggr_interval = src.attrs.sample_interval * (10 + k % 7);
                        src.attrs.min_nr_regions = 5 + (k % 10) as u32;
                        src.targets.push(Target::new(0));
                        h.commit(src).unwrap();
                    } else {
                        let ok = h
                            .call(|c| {
                                let t = &c.targets[0];
                                t.regions.windows(2).all(|w| w[0].ar.end <= w[1].ar.start)
                                    && t.total_bytes() == 4 * G
                            })
                            .unwrap();
                        assert!(ok, "regions broken during the storm");
                    }
                    // invalid commits are refused and change nothing
                    let mut bad = Context::new();
                    bad.attrs.min_nr_regions = 1;
                    assert!(matches!(h.commit(bad), Err(CommitError::Invalid(_))));
                }
            })
        })
        .collect();
    for s in storm {
        s.join().unwrap();
    }
    assert!(h.is_running());
    damon_stop(&hs).unwrap();
}

#[test]
fn pause_keeps_state_and_resume_continues() {
    let _g = SERIAL.lock();
    let hs = damon_start(vec![sim_ctx(21)], false).unwrap();
    let h = &hs[0];
    while h.call(|c| c.passed_sample_intervals()).unwrap() < 200 {}
    assert!(h.pause());
    let snap = h
        .call(|c| (c.passed_sample_intervals(), c.targets.clone()))
        .unwrap();
    for _ in 0..20 {
        let now = h
            .call(|c| (c.passed_sample_intervals(), c.targets.clone()))
            .unwrap();
        assert_eq!(
            now, snap,
            "a paused context does not sample, merge or split"
        );
    }
    assert!(h.resume());
    while h.call(|c| c.passed_sample_intervals()).unwrap() <= snap.0 {}
    // stop while paused
    assert!(h.pause());
    damon_stop(&hs).unwrap();
    assert!(matches!(h.exit_reason(), Some(ExitReason::Stopped)));
}

#[test]
fn stop_from_inside_a_callback_does_not_deadlock() {
    let _g = SERIAL.lock();
    let slot: Arc<OnceLock<DamonHandle>> = Arc::new(OnceLock::new());
    let mut ctx = sim_ctx(31);
    let s = slot.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    ctx.callbacks.after_aggregation = Some(Box::new(move |_| {
        // the first aggregation after the test stored the handle
        if let Some(h) = s.get() {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                // calling into our own worker is refused, not a deadlock
                assert_eq!(h.call(|c| c.nr_regions()), Err(CallError::WouldDeadlock));
                h.stop();
            }
        }
        Control::Continue
    }));
    let hs = damon_start(vec![ctx], false).unwrap();
    slot.set(hs[0].clone()).unwrap();
    assert!(matches!(wait_end(&hs[0]), ExitReason::Stopped));
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "no aggregation ran after the stop"
    );
    // The clone kept by the callback dies with the worker's context, so
    // dropping ours now leaves nothing behind.
    drop(hs);
    assert_eq!(threads_eventually(0), 0);
}

#[test]
fn callback_asking_to_stop_ends_cleanly() {
    let _g = SERIAL.lock();
    let mut ctx = sim_ctx(41);
    ctx.callbacks.after_sampling = Some(Box::new(|c| {
        if c.passed_sample_intervals() >= 50 {
            Control::Stop
        } else {
            Control::Continue
        }
    }));
    let terminated = Arc::new(AtomicUsize::new(0));
    let t2 = terminated.clone();
    ctx.callbacks.before_terminate = Some(Box::new(move |_| {
        t2.fetch_add(1, Ordering::SeqCst);
    }));
    let hs = damon_start(vec![ctx], false).unwrap();
    assert!(matches!(
        wait_end(&hs[0]),
        ExitReason::CallbackStopped {
            callback: "after_sampling"
        }
    ));
    assert_eq!(terminated.load(Ordering::SeqCst), 1);
    let final_ctx = hs[0].take_final_context().expect("final context");
    assert_eq!(final_ctx.passed_sample_intervals(), 50);
    assert_eq!(damon_nr_running_ctxs(), 0);
}

#[test]
fn panicking_callback_stops_its_context_and_is_reported() {
    let _g = SERIAL.lock();
    let mut ctx = sim_ctx(51);
    ctx.callbacks.after_aggregation = Some(Box::new(|c| {
        if c.passed_sample_intervals() > 100 {
            panic!("boom at {}", c.passed_sample_intervals());
        }
        Control::Continue
    }));
    let other = damon_start(vec![sim_ctx(52)], false).unwrap();
    let hs = damon_start(vec![ctx], false).unwrap();
    match wait_end(&hs[0]) {
        ExitReason::CallbackPanicked { callback, message } => {
            assert_eq!(callback, "after_aggregation");
            assert!(message.starts_with("boom at "), "{message}");
        }
        r => panic!("unexpected exit: {r}"),
    }
    assert!(other[0].is_running(), "another context is not affected");
    assert!(other[0].call(|c| c.nr_regions()).unwrap() > 0);
    drop(other);
    assert_eq!(damon_nr_running_ctxs(), 0);
}

#[test]
fn calls_one_shot_repeat_and_after_stop() {
    let _g = SERIAL.lock();
    let hs = damon_start(vec![sim_ctx(61)], false).unwrap();
    let h = &hs[0];
    assert!(h
        .thread_id()
        .is_some_and(|tid| std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()));
    assert!(matches!(h.call(|_| panic!("oops")), Err(CallError::Panicked(m)) if m == "oops"));
    assert!(
        h.is_running(),
        "a panicking one-shot call does not stop the context"
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    h.call_repeat(move |_| {
        r2.fetch_add(1, Ordering::SeqCst);
        Control::Continue
    })
    .unwrap();
    while runs.load(Ordering::SeqCst) < 10 {
        h.call(|_| ()).unwrap();
    }
    damon_stop(&hs).unwrap();
    assert_eq!(h.call(|c| c.nr_regions()), Err(CallError::Cancelled));
    assert!(matches!(
        h.commit(Context::new()),
        Err(CommitError::NotRunning)
    ));
    assert!(!h.pause());
}

#[test]
fn repeat_call_panic_stops_the_context() {
    let _g = SERIAL.lock();
    let hs = damon_start(vec![sim_ctx(71)], false).unwrap();
    hs[0]
        .call_repeat(|c| {
            if c.passed_sample_intervals() > 30 {
                panic!("repeat boom")
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert!(matches!(
        wait_end(&hs[0]),
        ExitReason::CallbackPanicked {
            callback: "damon_call",
            ..
        }
    ));
}

#[test]
fn all_targets_invalid_stops_with_reason() {
    let _g = SERIAL.lock();
    let mut ctx = Context::new();
    let mut p = SimPattern::uniform(G, 0.5);
    p.exit_after_us = Some(2_000_000);
    ctx.set_ops("sim", Box::new(SimOps::new(p)));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let hs = damon_start(vec![ctx], false).unwrap();
    match wait_end(&hs[0]) {
        ExitReason::AllTargetsInvalid { detail } => assert!(detail.contains("exited"), "{detail}"),
        r => panic!("unexpected exit: {r}"),
    }
    assert_eq!(damon_nr_running_ctxs(), 0);
}

struct FailingInit;
impl Operations for FailingInit {
    fn init(&mut self, _: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        Err(OpsError::Unsupported {
            what: "test".into(),
            hint: "CONFIG_NOTHING".into(),
        })
    }
    fn prepare_access_checks(&mut self, _: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        Ok(())
    }
    fn check_accesses(&mut self, _: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        Ok(0)
    }
}

#[test]
fn bad_contexts_are_refused_with_typed_errors() {
    let _g = SERIAL.lock();
    let threads_before = settled_threads();
    let mut bad = sim_ctx(81);
    bad.attrs.sample_interval = 0;
    assert!(
        matches!(damon_start(vec![sim_ctx(80), bad], false), Err(StartError::Invalid { index: 1, ref source }) if source.field == "attrs.sample_interval")
    );
    assert!(matches!(
        damon_start(vec![Context::new()], false),
        Err(StartError::NoOps { index: 0 })
    ));
    assert!(matches!(damon_start(vec![], false), Err(StartError::Empty)));
    let mut overlapping = sim_ctx(82);
    overlapping.targets[0] =
        Target::with_ranges(0, &[AddrRange::new(0, 8192), AddrRange::new(4096, 16384)]);
    assert!(matches!(
        damon_start(vec![overlapping], false),
        Err(StartError::Invalid { .. })
    ));
    let mut failing = Context::new();
    failing.set_ops("failing", Box::new(FailingInit));
    failing.clock = Some(Arc::new(VirtualClock::new()));
    let e = damon_start(vec![sim_ctx(83), failing], false).unwrap_err();
    assert!(matches!(e, StartError::Init { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("CONFIG_NOTHING"));
    assert_eq!(damon_nr_running_ctxs(), 0, "the group's slots are released");
    assert_eq!(threads_eventually(threads_before), threads_before);
}

#[test]
fn many_contexts_started_and_stopped_leak_nothing() {
    let _g = SERIAL.lock();
    let (threads_before, fds_before) = (settled_threads(), fds_now());
    for round in 0..30u64 {
        let hs = damon_start(
            (0..4).map(|k| sim_ctx(round * 4 + k)).collect(),
            round % 2 == 0,
        )
        .unwrap();
        assert_eq!(damon_nr_running_ctxs(), 4);
        if round % 3 == 0 {
            drop(hs); // dropping the last handles stops and joins
        } else {
            damon_stop(&hs).unwrap();
        }
    }
    assert_eq!(damon_nr_running_ctxs(), 0);
    assert_eq!(threads_eventually(threads_before), threads_before);
    assert_eq!(fds_now(), fds_before);
}

#[test]
fn blocked_callback_bounds_stop_and_spares_other_contexts() {
    let _g = SERIAL.lock();
    let baseline = settled_threads();
    let (ctx, gate) = gated_ctx(101, true);
    let mut other = sim_ctx(102);
    let other_aggrs = Arc::new(AtomicUsize::new(0));
    let oa = other_aggrs.clone();
    other.callbacks.after_aggregation = Some(Box::new(move |_| {
        oa.fetch_add(1, Ordering::SeqCst);
        Control::Continue
    }));
    let hs = damon_start(vec![ctx, other], false).unwrap();
    let mut gate = gate; // bound after the handles: dropped first
    let (blocked, other) = (&hs[0], &hs[1]);
    assert_eq!(threads_now(), baseline + 2);
    gate.wait_blocked();

    // The stop is requested but cannot complete while the callback blocks.
    assert!(
        !blocked.stop_timeout(Duration::from_millis(50)),
        "a worker blocked in a callback cannot have ended"
    );
    assert!(blocked.is_running());
    assert!(blocked.exit_reason().is_none());
    assert_eq!(threads_now(), baseline + 2);

    // The other context keeps sampling and aggregating, and answers calls.
    let sis0 = other.call(|c| c.passed_sample_intervals()).unwrap();
    let aggrs0 = other_aggrs.load(Ordering::SeqCst);
    eventually("the other context aggregated 5 more times", || {
        other_aggrs.load(Ordering::SeqCst) >= aggrs0 + 5
    });
    let sis1 = other.call(|c| c.passed_sample_intervals()).unwrap();
    // 20 samples per aggregation (default attributes, no tuning): five
    // aggregations after `sis0` span more than four aggregation intervals.
    assert!(sis1 > sis0 + 4 * 20, "{sis0} -> {sis1} sampling intervals");
    assert!(blocked.is_running(), "still blocked meanwhile");
    assert_eq!(gate.aggregations.load(Ordering::SeqCst), 1);

    // Released, the worker honours the stop requested earlier by itself.
    gate.release();
    assert!(matches!(wait_end(blocked), ExitReason::Stopped));
    assert!(blocked.stop_timeout(Duration::ZERO), "already ended");
    assert_eq!(
        gate.aggregations.load(Ordering::SeqCst),
        1,
        "no aggregation after the stop request"
    );
    assert!(other.is_running());
    assert!(other.call(|c| c.nr_regions()).unwrap() > 0);
    assert!(other.stop_timeout(Duration::from_secs(30)));
    assert!(matches!(other.exit_reason(), Some(ExitReason::Stopped)));
    assert_eq!(damon_nr_running_ctxs(), 0);
    assert_eq!(
        threads_eventually(baseline),
        baseline,
        "no thread left behind"
    );
}

#[test]
fn stop_cancels_pending_and_later_calls() {
    let _g = SERIAL.lock();
    let (ctx, gate) = gated_ctx(111, false);
    let hs = damon_start(vec![ctx], false).unwrap();
    let mut gate = gate; // bound after the handles: dropped first
    let h = &hs[0];

    // A repeating call, live before the stop.
    let repeat_runs = Arc::new(AtomicUsize::new(0));
    let repeat_dropped = Arc::new(AtomicBool::new(false));
    let (runs, flag) = (repeat_runs.clone(), DropFlag(repeat_dropped.clone()));
    h.call_repeat(move |_| {
        let _ = &flag;
        runs.fetch_add(1, Ordering::SeqCst);
        Control::Continue
    })
    .unwrap();
    while repeat_runs.load(Ordering::SeqCst) < 3 {
        h.call(|_| ()).unwrap();
    }

    gate.arm();
    gate.wait_blocked();
    let runs_at_block = repeat_runs.load(Ordering::SeqCst);

    // A one-shot call from another thread, queued behind the blocked callback.
    let ran = Arc::new(AtomicBool::new(false));
    let (r2, h2) = (ran.clone(), h.clone());
    let caller = std::thread::spawn(move || h2.call(move |_| r2.store(true, Ordering::SeqCst)));
    eventually("the call is queued", || h.nr_pending_calls() == 1);
    // A repeating call queued as well.
    let queued_ran = Arc::new(AtomicBool::new(false));
    let queued_dropped = Arc::new(AtomicBool::new(false));
    let (qr, qflag) = (queued_ran.clone(), DropFlag(queued_dropped.clone()));
    h.call_repeat(move |_| {
        let _ = &qflag;
        qr.store(true, Ordering::SeqCst);
        Control::Continue
    })
    .unwrap();
    assert_eq!(h.nr_pending_calls(), 2);
    assert!(
        !caller.is_finished(),
        "the call waits for the blocked worker"
    );

    h.request_stop();
    // Requests made after the stop request are refused at once, unqueued
    // (made on another thread, so that a regression fails here instead of
    // waiting for the blocked worker).
    let late = Arc::new(AtomicBool::new(false));
    let (l2, l3, h3) = (late.clone(), late.clone(), h.clone());
    let late_caller = std::thread::spawn(move || {
        (
            h3.call(move |_| l2.store(true, Ordering::SeqCst)),
            h3.call_timeout(Duration::from_secs(30), move |_| {
                l3.store(true, Ordering::SeqCst)
            }),
            h3.call_repeat(|_| Control::Continue),
            matches!(h3.commit(Context::new()), Err(CommitError::NotRunning)),
            h3.pause(),
        )
    });
    eventually("requests made after the stop request return", || {
        late_caller.is_finished()
    });
    let (call, timed, repeat, commit_refused, paused) = late_caller.join().unwrap();
    assert_eq!(call, Err(CallError::Cancelled));
    assert_eq!(timed, Err(CallTimeoutError::Call(CallError::Cancelled)));
    assert_eq!(repeat, Err(CallError::Cancelled));
    assert!(commit_refused);
    assert!(!paused);
    assert_eq!(h.nr_pending_calls(), 2);
    assert!(h.is_running(), "still blocked in the callback");

    gate.release();
    assert!(matches!(wait_end(h), ExitReason::Stopped));
    eventually("the pending call returns", || caller.is_finished());
    assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
    assert!(!ran.load(Ordering::SeqCst), "the pending call never ran");
    assert!(!late.load(Ordering::SeqCst), "the late calls never ran");
    assert!(!queued_ran.load(Ordering::SeqCst));
    assert_eq!(
        repeat_runs.load(Ordering::SeqCst),
        runs_at_block,
        "no repeating call ran after the stop request"
    );
    assert!(
        repeat_dropped.load(Ordering::SeqCst),
        "repeat dropped at stop"
    );
    assert!(
        queued_dropped.load(Ordering::SeqCst),
        "queued repeat dropped"
    );
    assert_eq!(h.nr_pending_calls(), 0);
}

#[test]
fn stop_timeout_while_paused_ends_at_once() {
    let _g = SERIAL.lock();
    let hs = damon_start(vec![sim_ctx(121)], false).unwrap();
    let h = &hs[0];
    while h.call(|c| c.passed_sample_intervals()).unwrap() < 50 {}
    assert!(h.pause());
    let paused_at = h.call(|c| c.passed_sample_intervals()).unwrap();
    assert!(h.stop_timeout(Duration::from_secs(30)));
    assert!(!h.is_running());
    assert!(matches!(h.exit_reason(), Some(ExitReason::Stopped)));
    let final_ctx = h.take_final_context().expect("final context");
    assert_eq!(final_ctx.passed_sample_intervals(), paused_at);
    assert_eq!(h.call(|c| c.nr_regions()), Err(CallError::Cancelled));
    assert_eq!(damon_stop(&hs), Err(StopError::NotRunning { index: 0 }));
}

#[test]
fn call_timeout_on_a_blocked_worker_times_out_and_never_runs() {
    let _g = SERIAL.lock();
    let (ctx, gate) = gated_ctx(131, true);
    let hs = damon_start(vec![ctx], false).unwrap();
    let mut gate = gate; // bound after the handles: dropped first
    let h = &hs[0];
    gate.wait_blocked();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let short = Duration::from_millis(50);
    assert_eq!(
        h.call_timeout(short, move |_| r2.store(true, Ordering::SeqCst)),
        Err(CallTimeoutError::Timeout(short))
    );
    assert_eq!(h.nr_pending_calls(), 1, "withdrawn, still queued");
    assert!(h.is_running());

    gate.release();
    // The queue is FIFO: by the time this call ran, the worker had taken
    // the withdrawn one, and skipped it.
    assert_eq!(
        h.call_timeout(Duration::from_secs(30), |c| c.nr_regions() > 0),
        Ok(true)
    );
    assert!(!ran.load(Ordering::SeqCst), "a withdrawn call never runs");
    assert!(matches!(
        h.call_timeout(Duration::from_secs(30), |_| panic!("late boom")),
        Err(CallTimeoutError::Call(CallError::Panicked(m))) if m == "late boom"
    ));
    assert!(h.is_running());
    damon_stop(&hs).unwrap();
    assert!(matches!(h.exit_reason(), Some(ExitReason::Stopped)));
}
