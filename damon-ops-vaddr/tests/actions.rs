//! DAMOS actions on processes (issue: damon-schemes "actions, for real").
//! Host tests use the fake page_idle (we are root, so pagemap shows PFNs
//! and process_madvise works); the tests that need real page_idle and swap
//! skip by name on the host and run for real in the guest VM suite.

mod common;

use damon_core::damos::{AccessPattern, Action, Filter, FilterKind, Scheme};
use damon_core::*;
use damon_ops_common::sys::{self};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_vaddr::VaddrOps;
use std::sync::Arc;

#[test]
fn child_workload_entry() {
    common::child_main();
}

fn fake_ops() -> VaddrOps {
    VaddrOps::with_io(false, Box::new(FakePhysMem::new(1 << 16)))
}

fn attrs() -> Attrs {
    Attrs::default()
}

/// The backend's `init` on `targets` (opens their files, builds regions).
fn init(ops: &mut VaddrOps, targets: &mut [Target]) {
    let a = attrs();
    let mut rng = Rng::new(1);
    ops.init(&mut OpsCtx::new(&a, &mut rng, targets)).unwrap();
}

fn any() -> AccessPattern {
    AccessPattern::default()
}

fn ctx_with(ops: VaddrOps, pid: u64, schemes: Vec<Scheme>) -> Context {
    let mut ctx = Context::new();
    ctx.set_ops("vaddr", Box::new(ops));
    ctx.targets.push(Target::new(pid));
    ctx.schemes = schemes;
    damon_schemes::install(&mut ctx, damon_schemes::SimMetrics::new());
    ctx
}

#[test]
fn cold_on_a_child_reports_the_bytes_the_kernel_advised() {
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let buf = AddrRange::new(w.addr, w.addr + w.len);
    let mut ops = fake_ops();
    let mut targets = vec![Target::with_ranges(w.pid, &[buf])];
    let a = attrs();
    init(&mut ops, &mut targets);
    let scheme = Scheme::new(any(), Action::Cold);
    ops.check_scheme(&scheme, &targets).unwrap();
    // a region with a hole: the buffer plus 1 MiB past its end (unmapped
    // or another mapping): the applied bytes never exceed what is mapped
    let region = Region::new(buf.start, buf.end);
    let out = ops.apply_scheme(&a, &targets[0], &region, &scheme).unwrap();
    assert_eq!(out.applied, w.len, "MADV_COLD on the whole mapped buffer");
    assert_eq!(out.sz_filter_passed, w.len);
    // stat counts, applies nothing
    let out = ops
        .apply_scheme(&a, &targets[0], &region, &Scheme::new(any(), Action::Stat))
        .unwrap();
    assert_eq!((out.applied, out.sz_filter_passed), (0, w.len));
}

#[test]
fn skip_anon_filter_passes_only_file_backed_pages() {
    let w = common::spawn_workload(16 << 20, 4 << 20, common::UNTIL_KILLED_MS);
    let mut ops = fake_ops();
    let mut targets = vec![Target::new(w.pid)];
    let a = attrs();
    init(&mut ops, &mut targets);
    let mut scheme = Scheme::new(any(), Action::Stat);
    scheme.filters.push(Filter {
        kind: FilterKind::Anon,
        matching: true,
        allow: false,
    });
    // the anonymous buffer (populated): nothing passes
    let anon = Region::new(w.addr, w.addr + w.len);
    let out = ops.apply_scheme(&a, &targets[0], &anon, &scheme).unwrap();
    assert_eq!(
        out.sz_filter_passed, 0,
        "populated anonymous pages are rejected"
    );
    // the child's executable text is file-backed: some of it passes
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", w.pid)).unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", w.pid)).unwrap();
    let text = damon_ops_vaddr::maps::parse_maps(&maps)
        .unwrap()
        .into_iter()
        .find(|v| v.perms.exec && v.path.as_deref() == exe.to_str())
        .expect("an executable file mapping");
    let out = ops
        .apply_scheme(&a, &targets[0], &Region::new(text.start, text.end), &scheme)
        .unwrap();
    assert!(
        out.sz_filter_passed > 0,
        "file-backed text passes the anon-reject filter"
    );
}

#[test]
fn action_on_an_exited_process_is_a_clear_error() {
    let mut w = common::spawn_workload(8 << 20, 1 << 20, common::UNTIL_KILLED_MS);
    let mut ops = fake_ops();
    let mut targets = vec![Target::new(w.pid)];
    let a = attrs();
    init(&mut ops, &mut targets);
    w.child.kill().unwrap();
    w.child.wait().unwrap();
    let e = ops
        .apply_scheme(
            &a,
            &targets[0],
            &Region::new(w.addr, w.addr + w.len),
            &Scheme::new(any(), Action::Pageout),
        )
        .unwrap_err();
    assert!(
        matches!(e, OpsError::TargetGone { id, .. } if id == w.pid),
        "{e}"
    );
    assert!(e.to_string().contains("exited"), "{e}");
}

/// The fake page layer of a kernel without `CONFIG_MEMCG`.
struct NoKpagecgroup(FakePhysMem);
impl damon_ops_common::physio::PhysIo for NoKpagecgroup {
    fn bitmap_read(&mut self, o: u64, b: &mut [u8]) -> Result<usize, sys::SysError> {
        self.0.bitmap_read(o, b)
    }
    fn bitmap_write(&mut self, o: u64, b: &[u8]) -> Result<usize, sys::SysError> {
        self.0.bitmap_write(o, b)
    }
    fn kpageflags_read(&mut self, o: u64, b: &mut [u8]) -> Result<usize, sys::SysError> {
        self.0.kpageflags_read(o, b)
    }
    fn syscalls(&self) -> u64 {
        self.0.syscalls()
    }
}

#[test]
fn unsupported_actions_and_filters_are_refused_at_install() {
    let w = common::spawn_workload(8 << 20, 1 << 20, common::UNTIL_KILLED_MS);
    let err = |s: Scheme| {
        Kdamond::new(ctx_with(fake_ops(), w.pid, vec![s]))
            .unwrap_err()
            .to_string()
    };
    let e = err(Scheme::new(any(), Action::Hugepage));
    assert!(
        e.contains("schemes[0]") && e.contains("process_madvise() does not take"),
        "{e}"
    );
    let e = err(Scheme::new(any(), Action::LruPrio));
    assert!(
        e.contains("schemes[0].action") && e.contains("willneed/cold"),
        "{e}"
    );
    let filtered = |kind| {
        let mut s = Scheme::new(any(), Action::Cold);
        s.filters.push(Filter {
            kind,
            matching: true,
            allow: false,
        });
        s
    };
    // the folio filters are decided (from kpageflags, kpagecgroup, page_idle)
    for kind in [
        FilterKind::Young,
        FilterKind::Active,
        FilterKind::Memcg { memcg_id: 1 },
        FilterKind::HugepageSize {
            min: 0,
            max: 1 << 21,
        },
    ] {
        assert!(
            Kdamond::new(ctx_with(fake_ops(), w.pid, vec![filtered(kind)])).is_ok(),
            "{kind:?}"
        );
    }
    // memcg needs /proc/kpagecgroup (CONFIG_MEMCG)
    let no_memcg = VaddrOps::with_io(false, Box::new(NoKpagecgroup(FakePhysMem::new(1 << 16))));
    let e = Kdamond::new(ctx_with(
        no_memcg,
        w.pid,
        vec![filtered(FilterKind::Memcg { memcg_id: 1 })],
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("schemes[0].filters[0]") && e.contains("kpagecgroup"),
        "{e}"
    );
    // on the calling process itself, hugepage is fine
    let me = u64::from(std::process::id());
    assert!(Kdamond::new(ctx_with(
        fake_ops(),
        me,
        vec![Scheme::new(any(), Action::Hugepage)]
    ))
    .is_ok());
}

#[test]
fn own_process_takes_hugepage_through_madvise() {
    let m = AnonMapping::new(8 << 20, 2 << 20).unwrap();
    let me = u64::from(std::process::id());
    let mut ops = fake_ops();
    let mut targets = vec![Target::with_ranges(
        me,
        &[AddrRange::new(m.addr(), m.addr() + m.len() as u64)],
    )];
    let a = attrs();
    init(&mut ops, &mut targets);
    let r = Region::new(m.addr(), m.addr() + m.len() as u64);
    for action in [
        Action::Hugepage,
        Action::Nohugepage,
        Action::Willneed,
        Action::Cold,
    ] {
        let out = ops
            .apply_scheme(&a, &targets[0], &r, &Scheme::new(any(), action))
            .unwrap();
        assert_eq!(out.applied, m.len() as u64, "{action:?}");
    }
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let vma = smaps
        .split(&format!("{:x}-", m.addr()))
        .nth(1)
        .expect("our mapping in smaps");
    let flags = vma.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
    assert!(
        flags.contains(" nh"),
        "MADV_NOHUGEPAGE applied last: {flags}"
    );
}

fn rss_kb(pid: u64) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn swap_total_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the guest (swap on zram): a pageout scheme on the workload's cold
/// range lowers its resident memory by at least that range while the hot
/// range stays resident.
#[test]
fn pageout_scheme_reclaims_the_cold_range_and_keeps_the_hot_one() {
    if !testing::require_vaddr("pageout_scheme_reclaims_the_cold_range_and_keeps_the_hot_one") {
        return;
    }
    if swap_total_kb() == 0 {
        assert!(
            !testing::in_vm_suite(),
            "the VM suite must provide swap (zram)"
        );
        testing::skip(
            "pageout_scheme_reclaims_the_cold_range_and_keeps_the_hot_one",
            "no swap configured",
        );
        return;
    }
    let (size, hot) = (64u64 << 20, 16u64 << 20);
    let w = common::spawn_workload(size, hot, common::UNTIL_KILLED_MS);
    let before = rss_kb(w.pid);
    let mut ctx = ctx_with(VaddrOps::new().unwrap(), w.pid, vec![]);
    // idle for at least 1 s (10 aggregations)
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            min_age_region: 10,
            min_sz_region: 4096,
            ..any()
        },
        Action::Pageout,
    ));
    let handles = damon_start(vec![ctx], false).unwrap();
    // Residency is read from pagemap, range by range: VmRSS alone also moves
    // with the workload's stack and libc pages (a 4 kB stack fault once made
    // an RSS-only check miss by one page).
    let mut pm = damon_ops_common::pagemap::PagemapFile::open(Some(w.pid as i32)).unwrap();
    let mut resident = |start: u64, len: u64| -> u64 {
        let mut entries = vec![0u64; (len / 4096) as usize];
        let n = pm.read_entries(start / 4096, &mut entries).unwrap();
        entries[..n]
            .iter()
            .filter(|&&e| damon_ops_common::pagemap::PagemapEntry(e).present())
            .count() as u64
            * 4096
    };
    let cold = size - hot;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut cold_resident = resident(w.addr + hot, cold);
    assert!(
        cold_resident >= cold * 9 / 10,
        "the cold range starts resident"
    );
    while std::time::Instant::now() < deadline && cold_resident > cold / 100 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        cold_resident = resident(w.addr + hot, cold);
    }
    let after = rss_kb(w.pid);
    let hot_resident = resident(w.addr, hot);
    let stat = handles[0].call(|c| c.schemes[0].stat).unwrap();
    damon_stop(&handles).unwrap();
    eprintln!(
        "pageout: VmRSS {before} -> {after} kB, cold resident {cold_resident} B, \
         hot resident {hot_resident} B, stat {stat:?}"
    );
    assert!(
        cold_resident <= cold / 100,
        "{cold_resident} of {cold} cold bytes still resident"
    );
    // and the process as a whole shrank by (nearly) the cold range
    assert!(
        before.saturating_sub(after) * 1024 >= cold * 95 / 100,
        "RSS fell by {} kB, cold range is {} kB",
        before.saturating_sub(after),
        cold / 1024
    );
    // the hot range stays resident
    assert!(
        hot_resident >= hot * 9 / 10,
        "only {hot_resident} hot bytes resident"
    );
    assert!(stat.sz_applied >= (size - hot) * 9 / 10);
}

/// In the guest: MADV_COLLAPSE through the collapse action turns a range of
/// small pages into THPs (AnonHugePages grows).
#[test]
fn collapse_action_changes_anon_huge_pages() {
    if !testing::require_vaddr("collapse_action_changes_anon_huge_pages") {
        return;
    }
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[never]") || thp.is_empty() {
        assert!(!testing::in_vm_suite(), "the guest kernel must have THP");
        testing::skip("collapse_action_changes_anon_huge_pages", "THP disabled");
        return;
    }
    let len = 16usize << 20;
    let mut m = AnonMapping::new(len, 2 << 20).unwrap();
    sys::madvise(m.addr(), len as u64, sys::Advice::Nohugepage).unwrap();
    // populate with small pages (pure writes: a read would map the zero page)
    m.write_pages(0..len / 4096, 1);
    let anon_huge = || -> u64 {
        let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let before = anon_huge();
    sys::madvise(m.addr(), len as u64, sys::Advice::Hugepage).unwrap();
    let me = u64::from(std::process::id());
    let mut ops = VaddrOps::new().unwrap();
    let range = AddrRange::new(m.addr(), m.addr() + len as u64);
    let mut targets = vec![Target::with_ranges(me, &[range])];
    let a = attrs();
    init(&mut ops, &mut targets);
    let out = ops
        .apply_scheme(
            &a,
            &targets[0],
            &Region::new(range.start, range.end),
            &Scheme::new(any(), Action::Collapse),
        )
        .unwrap();
    let after = anon_huge();
    eprintln!(
        "collapse: applied {} AnonHugePages {before} -> {after} kB",
        out.applied
    );
    assert!(
        after >= before + 2048,
        "AnonHugePages did not grow: {before} -> {after} kB"
    );
}

/// The stat scheme's tried regions equal what the engine tried (real
/// page_idle in the guest; skipped on the host).
#[test]
fn stat_tried_regions_match_the_engine() {
    if !testing::require_vaddr("stat_tried_regions_match_the_engine") {
        return;
    }
    let w = common::spawn_workload(32 << 20, 8 << 20, common::UNTIL_KILLED_MS);
    let mut ctx = ctx_with(VaddrOps::new().unwrap(), w.pid, vec![]);
    ctx.schemes.push(Scheme::new(
        AccessPattern {
            max_nr_accesses: 0,
            ..any()
        },
        Action::Stat,
    ));
    let seen = Arc::new(parking_lot_free::Log::default());
    let s2 = seen.clone();
    ctx.callbacks.before_damos_apply = Some(Box::new(move |_, _, r, _, _| s2.push(r.ar)));
    let control = damon_schemes::install(&mut ctx, damon_schemes::SimMetrics::new());
    let handles = damon_start(vec![ctx], false).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rx = control.request_tried_regions().unwrap();
    seen.clear();
    let tried = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("tried regions");
    let logged = seen.take();
    damon_stop(&handles).unwrap();
    let got: Vec<AddrRange> = tried.schemes[0].iter().map(|t| t.range).collect();
    // the walk covers exactly one apply round: the log may hold the next one too
    assert!(!got.is_empty());
    assert_eq!(
        &logged[..got.len()],
        &got[..],
        "tried regions differ from what was applied"
    );
}

/// A tiny thread-safe log without extra dependencies.
mod parking_lot_free {
    use std::sync::Mutex;
    #[derive(Default)]
    pub(crate) struct Log(Mutex<Vec<damon_core::AddrRange>>);
    impl Log {
        pub(crate) fn push(&self, r: damon_core::AddrRange) {
            self.0.lock().unwrap().push(r);
        }
        pub(crate) fn clear(&self) {
            self.0.lock().unwrap().clear();
        }
        pub(crate) fn take(&self) -> Vec<damon_core::AddrRange> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }
}
