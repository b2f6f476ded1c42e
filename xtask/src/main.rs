//! `cargo xtask <verb>`: the workspace's developer commands.
//!
//! Each verb is one module:
//!
//! * [`test`](mod@test): the whole suite — host tests, fmt, clippy, rustdoc, then the VM suite.
//! * [`demo`]: the main job: a live view of a real workload's memory.
//! * [`fuzz`]: every cargo-fuzz target for a while, keeping crashing inputs.
//! * [`public_api`]: the library crates' public-API snapshots.
//! * [`vm_test`]: the guest-VM suite — kernel, static test binaries, initramfs,
//!   one qemu (TCG) boot, results parsed from the serial log.
//!
//! The other modules are the steps those verbs share. The alias lives in
//! `.cargo/config.toml` (`xtask = "run --quiet --package xtask --"`).

mod apt;
mod demo;
mod deps;
mod fuzz;
mod guest_build;
mod guest_damo;
mod initramfs;
mod kernel;
mod libtest;
mod process;
mod public_api;
mod qemu;
mod serial;
mod test;
mod vm_test;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <verb> [options]

verbs:
  demo      monitor a real workload live (natively, or in the guest kernel)
  test      host tests, fmt, clippy, rustdoc, then the VM suite (see `test --help`)
  vm-test   run the test binaries inside a qemu guest with DAMON and page_idle
            (see `vm-test --help`)
  fuzz      run every fuzz target for N seconds (see `fuzz --help`)
  public-api  compare each library's public API with its snapshot
            (<crate>/public-api.txt; `--bless` rewrites them)
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let verb = args.next();
    let rest: Vec<String> = args.collect();
    let result = match verb.as_deref() {
        Some("test") => test::main(rest),
        Some("vm-test") => vm_test::main(rest),
        Some("fuzz") => fuzz::main(rest),
        Some("demo") => demo::main(rest),
        Some("public-api") => public_api::main(rest),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("xtask: unknown verb {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// The `cargo` that runs us (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
