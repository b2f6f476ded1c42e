//! The page-level DAMOS filters and the `node_eligible_mem_bp` goal on
//! paddr, over the fake page_idle and kpageflags (the guest suite runs
//! them on the real files: `damon-ops-vaddr/tests/guest_page_filters.rs`).

use damon_core::damos::{
    AccessPattern, Action, Filter, FilterKind, GoalMetric, Quota, QuotaGoal, Scheme,
};
use damon_core::{AddrRange, Clock, Context, Kdamond, Target, VirtualClock};
use damon_ops_common::kpageflags::{KPF_ACTIVE, KPF_ANON, KPF_MMAP};
use damon_ops_common::physio::PhysIo;
use damon_ops_common::sys::SysError;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_paddr::numa::NodeMap;
use damon_ops_paddr::stat::FolioWalk;
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use damon_schemes::SimMetrics;
use std::sync::Arc;

const PAGE: u64 = 4096;

/// 16 MiB: a 2 MiB THP (anon, mapped, active, memcg 11) at PFN 0, 512
/// order-0 anon mapped pages of memcg 22, 1024 page-cache pages (not anon,
/// not mapped, active, memcg 22), then 2048 free PFNs.
fn layout() -> FakePhysMem {
    let mut m = FakePhysMem::new(4096);
    m.add_thp(0, 512);
    m.edit_flags(0..1024, 1 << KPF_MMAP, 0);
    m.edit_flags(0..512, 1 << KPF_ACTIVE, 0);
    m.edit_flags(1024..2048, 1 << KPF_ACTIVE, 1 << KPF_ANON);
    m.set_memcg(0..512, 11);
    m.set_memcg(512..2048, 22);
    m.set_untracked(2048..4096);
    m
}

fn scheme(filters: &[(FilterKind, bool, bool)]) -> Scheme {
    let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
    s.filters = filters
        .iter()
        .map(|&(kind, matching, allow)| Filter {
            kind,
            matching,
            allow,
        })
        .collect();
    s
}

fn passed(m: &mut FakePhysMem, filters: &[(FilterKind, bool, bool)]) -> u64 {
    FolioWalk::default()
        .filter_passed_bytes(m, 0..4096, &scheme(filters), PAGE)
        .expect("walk")
        / PAGE
}

#[test]
fn each_filter_counts_the_folios_it_matches() {
    let mut m = layout();
    let allow = |k| [(k, true, true)];
    assert_eq!(passed(&mut m, &allow(FilterKind::Anon)), 1024);
    assert_eq!(passed(&mut m, &allow(FilterKind::Active)), 1536);
    assert_eq!(
        passed(&mut m, &allow(FilterKind::Memcg { memcg_id: 22 })),
        1536
    );
    assert_eq!(
        passed(&mut m, &allow(FilterKind::Memcg { memcg_id: 11 })),
        512
    );
    let two_mib = FilterKind::HugepageSize {
        min: 2 << 20,
        max: 2 << 20,
    };
    assert_eq!(passed(&mut m, &allow(two_mib)), 512, "only the THP");
    assert_eq!(passed(&mut m, &allow(FilterKind::Unmapped)), 1024);
    // a reject filter as the last one: what it does not match passes
    assert_eq!(passed(&mut m, &[(FilterKind::Anon, true, false)]), 1024);
    // the first filter that decides wins
    assert_eq!(
        passed(
            &mut m,
            &[
                (FilterKind::Memcg { memcg_id: 11 }, true, false),
                (FilterKind::Active, true, true)
            ]
        ),
        1024,
        "active minus memcg 11's THP"
    );
}

#[test]
fn young_reads_and_resets_the_idle_state() {
    let mut m = layout();
    let young = [(FilterKind::Young, true, true)];
    assert_eq!(
        passed(&mut m, &young),
        2048,
        "never marked idle: every folio is young"
    );
    assert_eq!(passed(&mut m, &young), 0, "the first read marked them old");
    m.state().lock().unwrap().touch(100);
    m.state().lock().unwrap().touch(600);
    assert_eq!(
        passed(&mut m, &young),
        513,
        "the THP of PFN 100, and PFN 600"
    );
    // a decision made before the young filter leaves the young state alone
    m.state().lock().unwrap().touch(700);
    let anon_first = [
        (FilterKind::Anon, true, true),
        (FilterKind::Young, true, true),
    ];
    assert_eq!(passed(&mut m, &anon_first), 1024);
    assert_eq!(passed(&mut m, &young), 1, "PFN 700 was still young");
}

/// The fake without `/proc/kpagecgroup` (a kernel without CONFIG_MEMCG).
struct NoMemcg(FakePhysMem);
impl PhysIo for NoMemcg {
    fn bitmap_read(&mut self, o: u64, b: &mut [u8]) -> Result<usize, SysError> {
        self.0.bitmap_read(o, b)
    }
    fn bitmap_write(&mut self, o: u64, b: &[u8]) -> Result<usize, SysError> {
        self.0.bitmap_write(o, b)
    }
    fn kpageflags_read(&mut self, o: u64, b: &mut [u8]) -> Result<usize, SysError> {
        self.0.kpageflags_read(o, b)
    }
    fn syscalls(&self) -> u64 {
        self.0.syscalls()
    }
}

fn kdamond(ops: PaddrOps, schemes: Vec<Scheme>) -> Result<(Kdamond, VirtualClock), String> {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops("paddr", Box::new(ops));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(clock.clone()));
    ctx.seed = Some(3);
    ctx.schemes = schemes;
    let metrics = SimMetrics::new();
    metrics.set(|v| v.nodes = vec![(0, 1 << 30, 1 << 29), (1, 1 << 30, 1 << 29)]);
    damon_schemes::install(&mut ctx, metrics);
    let mut kd = Kdamond::new(ctx).map_err(|e| e.to_string())?;
    kd.init().map_err(|e| e.to_string())?;
    Ok((kd, clock))
}

fn fake_ops(io: Box<dyn PhysIo>) -> PaddrOps {
    let range = vec![AddrRange::new(0, 4096 * PAGE)];
    PaddrOps::with_io(PaddrRegions::Ranges(range), io, PAGE)
        .with_node_map(NodeMap::from_spans(vec![(0, 2048, 0), (2048, 4096, 1)]))
}

fn run(kd: &mut Kdamond, clock: &VirtualClock, until_us: u64) {
    while clock.now_us() < until_us {
        assert!(kd.step().is_none(), "the loop stopped");
    }
}

#[test]
fn stat_reports_filtered_bytes_only_with_page_filters() {
    let with = scheme(&[(FilterKind::Anon, true, true)]);
    let without = scheme(&[]);
    let (mut kd, clock) = kdamond(fake_ops(Box::new(layout())), vec![with, without]).unwrap();
    run(&mut kd, &clock, 1_000_000);
    let st = |i: usize| kd.ctx().schemes[i].stat;
    assert!(st(0).nr_tried > 0 && st(1).nr_tried > 0);
    assert!(
        st(0).sz_ops_filter_passed >= 1024 * PAGE,
        "at least one whole apply's worth of anon folios: {}",
        st(0).sz_ops_filter_passed
    );
    assert_eq!(
        st(1).sz_ops_filter_passed,
        0,
        "damon_pa_stat counts nothing without ops filters"
    );
}

#[test]
fn memcg_filter_is_refused_without_kpagecgroup() {
    let s = scheme(&[(FilterKind::Memcg { memcg_id: 22 }, true, true)]);
    let e = kdamond(fake_ops(Box::new(NoMemcg(layout()))), vec![s.clone()]).unwrap_err();
    assert!(e.contains("kpagecgroup") && e.contains("memcg"), "{e}");
    assert!(kdamond(fake_ops(Box::new(layout())), vec![s]).is_ok());
}

fn eligible_goal(nid: i32, pattern: AccessPattern) -> Scheme {
    let mut s = Scheme::new(pattern, Action::Stat);
    s.quota = Quota {
        reset_interval: 100,
        goals: vec![QuotaGoal {
            metric: GoalMetric::NodeEligibleMemBp,
            target_value: 5000,
            current_value: 0,
            nid,
            memcg_id: 0,
        }],
        ..Quota::default()
    };
    s
}

#[test]
fn node_eligible_mem_bp_is_the_share_of_eligible_memory_on_the_node() {
    // PFNs 0..2048 (node 0) are LRU memory, 2048..4096 (node 1) free
    let all = AccessPattern::default();
    let (mut kd, clock) = kdamond(
        fake_ops(Box::new(layout())),
        vec![eligible_goal(0, all), eligible_goal(1, all)],
    )
    .unwrap();
    run(&mut kd, &clock, 1_000_000);
    let cur = |i: usize| kd.ctx().schemes[i].quota.goals[0].current_value;
    assert_eq!(cur(0), 10_000, "all LRU memory is on node 0");
    assert_eq!(cur(1), 0);

    // node 1 gets LRU memory too, and only its first half is hot
    let mut m = FakePhysMem::new(4096);
    m.add_hot(2048..3072, 1.0);
    let hot = AccessPattern {
        min_nr_accesses: 5,
        ..AccessPattern::default()
    };
    let (mut kd, clock) = kdamond(
        fake_ops(Box::new(m)),
        vec![eligible_goal(0, all), eligible_goal(1, hot)],
    )
    .unwrap();
    run(&mut kd, &clock, 3_000_000);
    let cur = |i: usize| kd.ctx().schemes[i].quota.goals[0].current_value;
    assert_eq!(cur(0), 5_000, "half of all memory is on node 0");
    assert_eq!(cur(1), 10_000, "the hot memory is all on node 1");
}

#[test]
fn node_eligible_mem_bp_is_refused_off_paddr() {
    let clock = VirtualClock::new();
    let mut ctx = Context::new();
    ctx.set_ops(
        "sim",
        Box::new(damon_core::sim::SimOps::new(
            damon_core::sim::SimPattern::uniform(1 << 30, 0.0),
        )),
    );
    ctx.targets.push(Target::new(1));
    ctx.clock = Some(Arc::new(clock));
    ctx.schemes = vec![eligible_goal(0, AccessPattern::default())];
    let metrics = SimMetrics::new();
    metrics.set(|v| v.nodes = vec![(0, 1 << 30, 1 << 29)]);
    damon_schemes::install(&mut ctx, metrics);
    let e = Kdamond::new(ctx).unwrap_err().to_string();
    assert!(
        e.contains("node_eligible_mem_bp") && e.contains("paddr"),
        "{e}"
    );
}
