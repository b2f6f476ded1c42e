//! The write tracker for real on this kernel (userfaultfd with
//! UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN, Linux 6.7+): protected pages
//! read as not written until written; reads leave them protected. A kernel
//! without either is said to be skipped, by name, with what it lacks.

use damon_ops_common::sys::written::{PageRun, WriteTracker, WrittenError};
use damon_ops_common::testing::anon::AnonMapping;

const PAGE: usize = 4096;

fn tracker(test: &str) -> Option<WriteTracker> {
    match WriteTracker::open() {
        Ok(t) => Some(t),
        Err(
            e @ (WrittenError::NoWpAsync
            | WrittenError::NoPagemapScan
            | WrittenError::NoUserfaultfd(_)),
        ) => {
            println!("skipped: {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

fn written_pages(t: &mut WriteTracker, m: &AnonMapping) -> Vec<usize> {
    let mut out = vec![PageRun::default(); m.len() / PAGE + 1];
    let n = t
        .written(m.addr(), m.addr() + m.len() as u64, &mut out)
        .unwrap();
    let mut pages = Vec::new();
    for r in &out[..n] {
        for a in (r.start..r.end).step_by(PAGE) {
            pages.push(((a - m.addr()) as usize) / PAGE);
        }
    }
    pages
}

#[test]
fn protected_pages_read_as_written_only_after_a_write() {
    const T: &str = "protected_pages_read_as_written_only_after_a_write";
    let Some(mut t) = tracker(T) else { return };
    let mut m = AnonMapping::new(16 * PAGE, PAGE).unwrap();
    // half populated, half never touched
    m.write_pages(0..8 * PAGE, 1);
    t.register(m.addr(), m.addr() + m.len() as u64).unwrap();
    t.protect(m.addr(), m.addr() + m.len() as u64).unwrap();
    assert_eq!(
        written_pages(&mut t, &m),
        Vec::<usize>::new(),
        "all protected"
    );
    m.write_pages(3 * PAGE..4 * PAGE, 2);
    m.write_pages(12 * PAGE..13 * PAGE, 2);
    // reads leave pages protected
    let sum: u64 = m
        .as_slice()
        .iter()
        .step_by(PAGE)
        .map(|&b| u64::from(b))
        .sum();
    assert!(sum > 0);
    assert_eq!(written_pages(&mut t, &m), vec![3, 12]);
    // protecting again re-arms them
    t.protect(m.addr() + 3 * PAGE as u64, m.addr() + 4 * PAGE as u64)
        .unwrap();
    assert_eq!(written_pages(&mut t, &m), vec![12]);
    assert!(t.calls() >= 7);
}
