//! The page-level DAMOS filters on vaddr with the real files: the folio
//! facts come from `/proc/kpageflags`, `/proc/kpagecgroup` and the idle
//! bitmap through the PFNs pagemap gives root. Needs root, page_idle, THP
//! and a memory cgroup hierarchy: the guest suite runs it; a host without
//! them skips it by name.
//!
//! The process moves itself into a cgroup of its own before it allocates,
//! so its pages are charged there; this file holds one test so nothing
//! else runs in the moved process.

use damon_core::damos::{AccessPattern, Action, Filter, FilterKind, Scheme};
use damon_core::{AddrRange, Attrs, Operations, OpsCtx, Region, Rng, Target};
use damon_ops_common::kpageflags::{PageFlags, KPF_ACTIVE};
use damon_ops_common::pagemap::{PagemapEntry, PagemapFile};
use damon_ops_common::physio::KPAGEFLAGS;
use damon_ops_common::sys::{page_size, Advice};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;
use damon_ops_vaddr::VaddrOps;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::PathBuf;

const SIZE: usize = 16 << 20;

/// A memory cgroup of this test, removed when dropped (the process moves
/// back to where it was first).
struct OwnCgroup {
    dir: PathBuf,
    back: PathBuf,
}

impl OwnCgroup {
    fn join() -> Option<Self> {
        let back = damon_schemes::memcg::own_memcg_dir()?;
        let dir = back.join(format!("udamon-filters-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = Self { dir, back };
        std::fs::write(cg.dir.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(cg)
    }

    fn id(&self) -> u64 {
        std::fs::metadata(&self.dir).expect("cgroup dir").ino()
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let me = std::process::id().to_string();
        let _ = std::fs::write(self.back.join("cgroup.procs"), me);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn stat(filters: &[(FilterKind, bool)]) -> Scheme {
    let mut s = Scheme::new(AccessPattern::default(), Action::Stat);
    s.filters = filters
        .iter()
        .map(|&(kind, matching)| Filter {
            kind,
            matching,
            allow: true,
        })
        .collect();
    s
}

/// Active bytes of the mapping, read independently of the backend: each
/// present page's PFN from pagemap, its flags from kpageflags.
fn active_bytes(m: &AnonMapping) -> u64 {
    let page = page_size();
    let mut pm = PagemapFile::open(None).expect("pagemap");
    let mut entries = vec![0u64; m.len() / page as usize];
    let n = pm
        .read_entries(m.addr() / page, &mut entries)
        .expect("read");
    let kpf = std::fs::File::open(KPAGEFLAGS).expect("kpageflags");
    let mut bytes = 0;
    for &e in &entries[..n] {
        if let Some(pfn) = PagemapEntry(e).pfn() {
            let mut b = [0u8; 8];
            kpf.read_exact_at(&mut b, pfn * 8).expect("kpageflags read");
            if PageFlags::from_ne_bytes(b).has(KPF_ACTIVE) {
                bytes += page;
            }
        }
    }
    bytes
}

#[test]
fn page_filters_decide_from_the_folio() {
    let test = "page_filters_decide_from_the_folio";
    if !testing::require_vaddr(test) {
        return;
    }
    let Some(cg) = OwnCgroup::join() else {
        damon_core::testing::skip::require(false, test, "cannot create and join a memory cgroup");
        return;
    };
    let mut m = AnonMapping::new(SIZE, 2 << 20).expect("mmap");
    m.advise(Advice::Hugepage).expect("MADV_HUGEPAGE");
    m.write_pages(0..SIZE, 1);
    let total = SIZE as u64;

    let mut ops = VaddrOps::new().expect("vaddr");
    let range = AddrRange::new(m.addr(), m.addr() + total);
    let mut targets = vec![Target::with_ranges(u64::from(std::process::id()), &[range])];
    let attrs = Attrs::default();
    let mut rng = Rng::new(1);
    ops.init(&mut OpsCtx::new(&attrs, &mut rng, &mut targets))
        .expect("init");
    let region = Region::new(range.start, range.end);
    let mut passed = |filters: &[(FilterKind, bool)]| {
        let s = stat(filters);
        for f in &s.filters {
            ops.check_filter(&f.kind).expect("filter accepted");
        }
        ops.apply_scheme(&attrs, &targets[0], &region, &s)
            .expect("stat")
            .sz_filter_passed
    };

    // memcg: every page is charged to the cgroup the process allocated in
    let memcg = |id| FilterKind::Memcg { memcg_id: id };
    assert_eq!(passed(&[(memcg(cg.id()), true)]), total, "own memcg");
    assert_eq!(passed(&[(memcg(cg.id() + 1_000_000), true)]), 0);

    // hugepage_size: THPs (2 MiB folios) and base pages split the mapping
    let thp = passed(&[(
        FilterKind::HugepageSize {
            min: 2 << 20,
            max: 2 << 20,
        },
        true,
    )]);
    let small = passed(&[(
        FilterKind::HugepageSize {
            min: 4096,
            max: 4096,
        },
        true,
    )]);
    assert!(thp >= 2 << 20, "MADV_HUGEPAGE gave at least one THP: {thp}");
    assert_eq!(thp + small, total, "every page is in a THP or a base page");

    // active: what kpageflags says, page by page
    assert_eq!(passed(&[(FilterKind::Active, true)]), active_bytes(&m));

    // young: written pages are young; reading resets them; an access makes
    // its folio young again. The access must miss the TLB to set the PTE's
    // accessed bit (x86 sets it only when it loads a translation, and
    // clearing it does not flush), so the page is mprotected first, which
    // flushes its translation, then read.
    assert_eq!(passed(&[(FilterKind::Young, true)]), total, "just written");
    assert_eq!(passed(&[(FilterKind::Young, true)]), 0, "reset by the read");
    let page = page_size() as usize;
    m.protect_read_only(0..page).expect("mprotect");
    std::hint::black_box(m.as_slice()[0]);
    let young = passed(&[(FilterKind::Young, true)]);
    assert!(
        young == page as u64 || young == 2 << 20,
        "one base page or one THP: {young}"
    );
    drop(ops);
    drop(m);
    drop(cg);
}
