//! paddr's page-level filters and `node_eligible_mem_bp` walk over the real
//! `/proc/kpageflags` and `/proc/zoneinfo`: the physical pages of a THP
//! this process faulted in. Needs root and page_idle (the guest suite; a
//! host without them skips by name).

use damon_core::damos::{AccessPattern, Action, Filter, FilterKind, Scheme};
use damon_core::{AddrRange, Attrs, Operations, OpsCtx, Region, Rng, Target};
use damon_ops_common::pagemap::{PagemapEntry, PagemapFile};
use damon_ops_common::sys::{page_size, Advice};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_paddr::numa::NodeMap;
use damon_ops_paddr::{PaddrOps, PaddrRegions};

const THP: u64 = 2 << 20;

/// The physical start of the first 2 MiB of `m` that is one THP.
fn a_thp(m: &AnonMapping) -> Option<u64> {
    let page = page_size();
    let mut pm = PagemapFile::open(None).expect("pagemap");
    let per = (THP / page) as usize;
    let mut e = vec![0u64; per];
    for i in 0..(m.len() as u64 / THP) {
        let n = pm
            .read_entries((m.addr() + i * THP) / page, &mut e)
            .expect("pagemap read");
        let pfns: Vec<Option<u64>> = e[..n].iter().map(|&x| PagemapEntry(x).pfn()).collect();
        let Some(first) = pfns.first().copied().flatten() else {
            continue;
        };
        let contiguous = pfns
            .iter()
            .enumerate()
            .all(|(j, p)| *p == Some(first + j as u64));
        if n == per && contiguous && first % (THP / page) == 0 {
            return Some(first * page);
        }
    }
    None
}

#[test]
fn paddr_filters_and_eligible_bytes_on_a_real_thp() {
    let test = "paddr_filters_and_eligible_bytes_on_a_real_thp";
    if !testing::require_paddr(test) {
        return;
    }
    let mut m = AnonMapping::new(16 << 20, THP as usize).expect("mmap");
    m.advise(Advice::Hugepage).expect("MADV_HUGEPAGE");
    m.write_pages(0..m.len(), 3);
    let Some(phys) = a_thp(&m) else {
        damon_core::testing::skip::require(false, test, "no THP was faulted in");
        return;
    };
    let range = AddrRange::new(phys, phys + THP);
    let mut ops = PaddrOps::new(PaddrRegions::Ranges(vec![range])).expect("paddr");
    let mut targets = vec![Target::new(0)];
    let attrs = Attrs::default();
    let mut rng = Rng::new(1);
    ops.init(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .expect("init");
    let region = Region::new(range.start, range.end);
    let mut passed = |kind: FilterKind| {
        let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
        s.filters.push(Filter {
            kind,
            matching: true,
            allow: true,
        });
        ops.check_filter(&kind).expect("filter accepted");
        ops.apply_scheme(&attrs, &targets[0], &region, &s)
            .expect("stat")
            .sz_filter_passed
    };
    let two_mib = FilterKind::HugepageSize { min: THP, max: THP };
    assert_eq!(passed(two_mib), THP, "one 2 MiB folio");
    assert_eq!(passed(FilterKind::Anon), THP);
    assert_eq!(passed(FilterKind::Unmapped), 0, "mapped by this process");
    // memcg: charged to this process's cgroup (its directory's inode)
    let own = damon_schemes::memcg::own_memcg_dir().expect("a memory cgroup");
    let own_id = damon_schemes::memcg::memcg_id_of(&own).unwrap_or_else(|_| {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&own).expect("cgroup dir").ino()
    });
    assert_eq!(
        passed(FilterKind::Memcg { memcg_id: own_id }),
        THP,
        "{own:?}"
    );
    assert_eq!(
        passed(FilterKind::Memcg {
            memcg_id: own_id + 1_000_000
        }),
        0
    );
    // active: as kpageflags says of the head page
    let kpf = std::fs::File::open("/proc/kpageflags").expect("kpageflags");
    let mut b = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&kpf, &mut b, phys / page_size() * 8).unwrap();
    let active = u64::from_ne_bytes(b) & (1 << 6) != 0;
    assert_eq!(passed(FilterKind::Active), if active { THP } else { 0 });
    // young: written, so young; the read resets it
    assert_eq!(passed(FilterKind::Young), THP, "just written");
    assert_eq!(passed(FilterKind::Young), 0, "reset by the read");

    let nodes = NodeMap::read().expect("zoneinfo");
    let nid = nodes.node_of(phys / page_size()).expect("a zone spans it");
    assert_eq!(ops.node_eligible_bytes(&region, nid).unwrap(), (THP, THP));
    let other = if nid == 0 { 1 } else { 0 };
    assert_eq!(ops.node_eligible_bytes(&region, other).unwrap(), (0, THP));
    drop(m);
}
