//! (a) The idle page bitmap on real memory: touched pages read accessed,
//! untouched ones idle, with 4 KiB pages and with THP (heads only).
//! Needs root and CONFIG_IDLE_PAGE_TRACKING: skipped on hosts without them,
//! a failure in the VM suite.

use damon_ops_common::pagemap::PagemapFile;
use damon_ops_common::physio::KernelPhysIo;
use damon_ops_common::sampler::{PfnSampler, SamplerPolicy, Verdict};
use damon_ops_common::sys::{page_size, Advice};
use damon_ops_common::testing;
use damon_ops_common::testing::anon::AnonMapping;

const SIZE: usize = 64 << 20;
const HOT: usize = 16 << 20;

/// Returns (accessed among hot pages, idle among cold pages, pages per part).
fn run(test: &str, thp: bool) -> Option<(f64, f64)> {
    if !testing::require_vaddr(test) {
        return None;
    }
    let page = page_size() as usize;
    let mut m = AnonMapping::new(SIZE, 2 << 20).expect("mmap");
    m.advise(if thp {
        Advice::Hugepage
    } else {
        Advice::Nohugepage
    })
    .expect("madvise");
    m.write_pages(0..SIZE, 1); // pure writes: no zero page, THP stays THP
    std::thread::sleep(std::time::Duration::from_millis(200)); // let per-CPU LRU batches drain
    let npages = SIZE / page;
    let mut entries = vec![0u64; npages];
    let mut pm = PagemapFile::open(None).expect("pagemap");
    assert_eq!(
        pm.read_entries(m.addr() / page as u64, &mut entries)
            .expect("pagemap read"),
        npages
    );
    let pfns: Vec<Option<u64>> = entries
        .iter()
        .map(|&e| damon_ops_common::pagemap::PagemapEntry(e).pfn())
        .collect();
    assert!(
        pfns.iter().all(Option::is_some),
        "every populated page is present with a PFN"
    );

    let policy = SamplerPolicy {
        eager_heads: true,
        ..Default::default()
    };
    let mut s = PfnSampler::with_policy(Box::new(KernelPhysIo::open().expect("page_idle")), policy);
    s.begin(npages);
    for (i, p) in pfns.iter().enumerate() {
        s.add(i, p.unwrap());
    }
    let before = s.syscalls();
    s.mark_idle().expect("mark idle");
    m.write_pages(0..HOT, 2);
    s.check().expect("check");
    let calls = s.syscalls() - before;
    let hot_pages = HOT / page;
    let accessed = (0..hot_pages)
        .filter(|&i| s.verdict(i) == Verdict::Accessed)
        .count();
    let idle = (hot_pages..npages)
        .filter(|&i| s.verdict(i) == Verdict::Idle)
        .count();
    eprintln!(
        "{test}: hot accessed {accessed}/{hot_pages}, cold idle {idle}/{}, {calls} syscalls for {npages} pages, stats {:?}",
        npages - hot_pages,
        s.stats()
    );
    Some((
        accessed as f64 / hot_pages as f64,
        idle as f64 / (npages - hot_pages) as f64,
    ))
}

#[test]
fn idle_bitmap_reports_touched_4k_pages() {
    if let Some((hot, cold)) = run("idle_bitmap_reports_touched_4k_pages", false) {
        assert!(hot >= 0.95, "touched pages reported accessed: {hot}");
        assert!(cold >= 0.95, "untouched pages reported idle: {cold}");
    }
}

#[test]
fn idle_bitmap_reports_touched_thp_through_heads() {
    if let Some((hot, cold)) = run("idle_bitmap_reports_touched_thp_through_heads", true) {
        assert!(hot >= 0.95, "touched THP pages reported accessed: {hot}");
        assert!(
            cold >= 0.95,
            "untouched THP pages reported idle (via their heads): {cold}"
        );
    }
}
