//! Tests that need kernel features: on a developer's host a missing feature
//! skips the test (by name, with the reason, on stderr); in the guest VM
//! suite (`DAMON_VM_SUITE=1`) it is a hard failure.

/// The environment variable the VM suite sets.
pub const VM_SUITE_ENV: &str = "DAMON_VM_SUITE";

/// True inside the VM suite, where every kernel feature must be present.
pub fn in_vm_suite() -> bool {
    std::env::var(VM_SUITE_ENV).is_ok_and(|v| v == "1")
}

/// Returns true if the test may run. Otherwise prints
/// `skipped: <test>: <reason>` to stderr (see [`skip`]) and returns false,
/// or panics inside the VM suite.
pub fn require(ok: bool, test: &str, reason: &str) -> bool {
    if ok {
        return true;
    }
    if in_vm_suite() {
        panic!("{test}: required kernel feature missing in the VM suite: {reason}");
    }
    skip(test, reason);
    false
}

/// Prints `skipped: <test>: <reason>` straight to the process's stderr
/// (past libtest's output capture, so the skip is visible in every run).
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {reason}");
}
