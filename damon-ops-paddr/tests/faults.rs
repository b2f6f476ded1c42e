//! A lasting system-call error of the page layer stops a paddr context
//! with an error naming the call and the file (faults injected with
//! `damon_ops_common::testing::faults`).

use damon_core::*;
use damon_ops_common::testing::fake::FakePhysMem;
use damon_ops_common::testing::faults::{inject, Call, Fault};
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use std::sync::Arc;

#[test]
fn a_lasting_bitmap_error_stops_the_context_naming_the_call_and_file() {
    let fake = FakePhysMem::new(1 << 16);
    let path = fake.bitmap_path().to_string();
    let ops = PaddrOps::with_io(
        PaddrRegions::Ranges(vec![AddrRange::new(0, (1 << 16) * 4096)]),
        Box::new(fake),
        4096,
    );
    let mut ctx = Context::new();
    ctx.set_ops("paddr", Box::new(ops));
    ctx.targets.push(Target::new(0));
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    let _eio = inject(&path, Call::Pread, vec![Fault::Errno(libc::EIO); 1000]);
    let handles = damon_start(vec![ctx], false).unwrap();
    let reason = handles[0].wait().expect("the context ended");
    let text = format!("{reason:?} {reason}");
    assert!(text.contains("pread"), "{text}");
    assert!(text.contains(&path), "{text}");
    assert!(
        text.contains(&std::io::Error::from_raw_os_error(libc::EIO).to_string()),
        "{text}"
    );
}
