//! The advice calls the schemes work will use: `process_madvise` batching
//! iovecs in IOV_MAX chunks, and `madvise` on the calling process.

use damon_ops_common::sys::{madvise, page_size, process_madvise, Advice, Pidfd, IOV_MAX};
use damon_ops_common::testing::anon::AnonMapping;

#[test]
fn process_madvise_batches_more_than_iov_max_ranges() {
    let page = page_size();
    let n = IOV_MAX + 476; // two calls
    let mut m = AnonMapping::new(2 * n * page as usize, 0).unwrap();
    m.write_pages(0..m.len(), 1);
    // every other page: no two iovecs merge
    let ranges: Vec<(u64, u64)> = (0..n as u64)
        .map(|i| (m.addr() + 2 * i * page, page))
        .collect();
    let pidfd = Pidfd::open(std::process::id() as i32).unwrap();
    let advised = process_madvise(pidfd.as_fd(), &ranges, Advice::Cold).unwrap();
    assert_eq!(advised, n * page as usize);
    assert_eq!(
        process_madvise(pidfd.as_fd(), &ranges[..3], Advice::Willneed).unwrap(),
        3 * page as usize
    );
    assert_eq!(
        process_madvise(pidfd.as_fd(), &[], Advice::Cold).unwrap(),
        0
    );
    assert!(
        m.as_slice().iter().step_by(page as usize).all(|&b| b == 1),
        "contents kept"
    );
}

#[test]
fn process_madvise_reports_errors() {
    let pidfd = Pidfd::open(std::process::id() as i32).unwrap();
    // nothing mapped below mmap_min_addr: ENOMEM, nothing advised
    let e = process_madvise(pidfd.as_fd(), &[(0x1000, 0x1000)], Advice::Cold).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
    // a later failing range stops the batch but keeps what was advised
    let m = AnonMapping::new(1 << 16, 0).unwrap();
    let n = process_madvise(
        pidfd.as_fd(),
        &[(m.addr(), 1 << 16), (0x1000, 0x1000)],
        Advice::Cold,
    )
    .unwrap();
    assert_eq!(n, 1 << 16);
}

#[test]
fn madvise_on_own_memory() {
    let mut m = AnonMapping::new(4 << 20, 2 << 20).unwrap();
    madvise(m.addr(), m.len() as u64, Advice::Nohugepage).unwrap();
    m.write_pages(0..m.len(), 3);
    madvise(m.addr(), m.len() as u64, Advice::Cold).unwrap();
    madvise(m.addr(), m.len() as u64, Advice::Willneed).unwrap();
    assert!(m.as_slice().iter().step_by(4096).all(|&b| b == 3));
    let e = madvise(0x1000, 0x1000, Advice::Cold).unwrap_err();
    assert!(e.to_string().contains("madvise"), "{e}");
}
