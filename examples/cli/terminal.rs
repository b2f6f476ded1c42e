//! The examples' terminal: the Ctrl-C / SIGTERM flag and stdout writes that
//! notice a closed pipe.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// The Ctrl-C / SIGTERM flag; a second signal exits at once (status 130).
pub fn interrupt_flag() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| {
        if FLAG.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    &FLAG
}

/// Writes to stdout; false once stdout is closed (e.g. `| head`).
pub fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}
