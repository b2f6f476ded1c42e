//! The in-process workload of `monitor --self-demo`: a 64 MiB buffer of
//! this process whose 16 MiB hot range a thread of ours keeps writing,
//! moving as the guest demo's workload does (0-16 MiB for 6 s, 40-56 MiB
//! for 6 s, 4 s idle, again). The `vaddr-written` backend sees writes to
//! the calling process's own memory only, so the workload lives here.

use damon_core::AddrRange;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;
/// The buffer's size.
pub const DEMO_LEN: usize = 64 * MIB;

/// The hot range at `t` seconds since the start, as offsets in the buffer
/// (`None` while idle).
pub fn demo_phase(t: f64) -> Option<std::ops::Range<usize>> {
    match t % 16.0 {
        t if t < 6.0 => Some(0..16 * MIB),
        t if t < 12.0 => Some(40 * MIB..56 * MIB),
        _ => None,
    }
}

/// Allocates the buffer, starts the writer thread (it runs for the rest of
/// the process) and returns the buffer's page-aligned range.
pub fn start_demo_buffer() -> Result<AddrRange, String> {
    let mut buf = vec![0u8; DEMO_LEN + PAGE];
    let skew = (PAGE - buf.as_ptr() as usize % PAGE) % PAGE;
    let start = buf.as_ptr() as u64 + skew as u64;
    // every page present before monitoring starts (none reads as written
    // only because it was faulted in)
    for i in (skew..skew + DEMO_LEN).step_by(PAGE) {
        buf[i] = 1;
    }
    std::thread::Builder::new()
        .name("demo-writer".into())
        .spawn(move || {
            let t0 = Instant::now();
            loop {
                match demo_phase(t0.elapsed().as_secs_f64()) {
                    Some(hot) => {
                        for i in (skew + hot.start..skew + hot.end).step_by(PAGE) {
                            buf[i] = buf[i].wrapping_add(1);
                        }
                        std::hint::black_box(&buf);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
        .map_err(|e| format!("cannot start the demo's writer thread: {e}"))?;
    Ok(AddrRange::new(start, start + DEMO_LEN as u64))
}
