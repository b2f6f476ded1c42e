//! System-call faults the page layer survives or reports clearly,
//! injected below the retry policy with `damon_ops_common::testing::faults`
//! (cargo feature `fault-injection`, on for this crate's tests only).
//!
//! Policy under test: `EINTR` is retried without limit, `EAGAIN` up to
//! `sys::EAGAIN_TRIES` times; short transfers are continued; a 0-byte
//! bitmap read makes those pages' state unknown (not accessed); permission
//! errors name the privilege that is missing.
//!
//! Plans match on paths unique to each test (a fake's name), so the tests
//! can run in parallel.

use damon_core::OpsError;
use damon_ops_common::sampler::{PfnSampler, Verdict};
use damon_ops_common::sys::{KFile, EAGAIN_TRIES};
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_common::testing::faults::{inject, Call, Fault};

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
fn permission_errors_name_the_missing_privilege() {
    // the bitmap (host kernels without it still meet the injected EACCES
    // first: the plan acts before the real open)
    let _p = inject(
        damon_ops_common::physio::PAGE_IDLE_BITMAP,
        Call::Open,
        [Fault::Errno(libc::EACCES)],
    );
    let e = damon_ops_common::physio::KernelPhysIo::open().unwrap_err();
    assert!(matches!(e, OpsError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("root"), "{e}");
}
