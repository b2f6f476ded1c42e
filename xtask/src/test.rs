//! `cargo xtask test`: everything a change has to pass, in one command.
//!
//! Stages: host tests (`cargo test --workspace`), `cargo fmt --check`,
//! `cargo clippy -D warnings`, `cargo doc` with `-Dwarnings`, the
//! public-API snapshots ([`crate::public_api`]), dependency
//! hygiene ([`crate::deps`]: licenses, duplicate versions), then the VM
//! suite ([`crate::vm_test`]). Every stage runs even if an earlier
//! one failed. The last line is `total: N passed, M failed`.

use crate::libtest::{self, Counts};
use crate::process;
use crate::vm_test;
use anyhow::Result;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const HELP: &str = "\
usage: cargo xtask test [--no-vm] [vm-test options]

Runs, in order, and reports each stage:
  host    cargo test --workspace --no-fail-fast
  fmt     cargo fmt --all -- --check (and vm/guest-smoke)
  clippy  cargo clippy --workspace --all-targets -- -D warnings (and vm/guest-smoke)
  doc     RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace
  api     cargo xtask public-api (the public-API snapshots)
  deps    licenses and duplicate versions of the dependencies
  vm      cargo xtask vm-test (skipped with --no-vm)

The last lines are `host: …`, `vm: …` and `total: N passed, M failed`, where
the total sums host and VM tests and adds one failure per failed check
(fmt, clippy, doc) or failed stage without test counts.
Other options go to vm-test (see `cargo xtask vm-test --help`).
";

/// The standalone guest-smoke package, checked along with the workspace.
const SMOKE_MANIFEST: &str = "vm/guest-smoke/Cargo.toml";

/// One stage's outcome.
struct Stage {
    name: &'static str,
    ok: bool,
    /// Test counts, for the stages that run tests.
    counts: Option<Counts>,
    elapsed: Duration,
}

/// The verb's entry point.
pub(crate) fn main(args: Vec<String>) -> Result<ExitCode> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let no_vm = args.iter().any(|a| a == "--no-vm");
    let vm_args: Vec<String> = args.into_iter().filter(|a| a != "--no-vm").collect();
    let vm_opts = vm_test::parse_args(vm_args)?.unwrap_or_default();

    let root = crate::workspace_root();
    let mut stages = vec![host_tests(&root)];
    stages.push(timed("fmt", || {
        let workspace = succeeded(cargo(&root).args(["fmt", "--all", "--", "--check"]));
        let smoke = succeeded(cargo(&root).args([
            "fmt",
            "--manifest-path",
            SMOKE_MANIFEST,
            "--",
            "--check",
        ]));
        workspace && smoke
    }));
    stages.push(timed("clippy", || {
        let lints = ["--", "-D", "warnings"];
        let workspace = succeeded(
            cargo(&root)
                .args(["clippy", "--workspace", "--all-targets"])
                .args(lints),
        );
        let smoke = succeeded(
            cargo(&root)
                .args(["clippy", "--all-targets", "--manifest-path", SMOKE_MANIFEST])
                .env("CARGO_TARGET_DIR", root.join("target"))
                .args(lints),
        );
        workspace && smoke
    }));
    stages.push(timed("doc", || {
        succeeded(cargo(&root).env("RUSTDOCFLAGS", "-Dwarnings").args([
            "doc",
            "--no-deps",
            "--workspace",
        ]))
    }));
    stages.push(timed("api", || {
        match crate::public_api::check(&root, false) {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!("xtask: public-api: {e:#}");
                false
            }
        }
    }));
    stages.push(timed("deps", || match crate::deps::check(&root) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("xtask: deps: {e:#}");
            false
        }
    }));
    if !no_vm {
        let t = Instant::now();
        let outcome = vm_test::run(&vm_opts);
        stages.push(Stage {
            name: "vm",
            ok: outcome.ok(),
            counts: Some(outcome.counts),
            elapsed: t.elapsed(),
        });
    }
    Ok(summarize(&stages))
}

/// `cargo` in the workspace root.
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root);
    cmd
}

/// Prints and runs `cmd`; whether it exited 0.
fn succeeded(cmd: &mut Command) -> bool {
    match process::status(cmd) {
        Ok(status) => status.success(),
        Err(err) => {
            eprintln!("xtask: {err:#}");
            false
        }
    }
}

/// Runs a check stage that has no test counts.
fn timed(name: &'static str, f: impl FnOnce() -> bool) -> Stage {
    eprintln!("xtask: === {name} ===");
    let t = Instant::now();
    let ok = f();
    Stage {
        name,
        ok,
        counts: None,
        elapsed: t.elapsed(),
    }
}

/// The host suite, with libtest's summary lines summed as they stream by.
fn host_tests(root: &Path) -> Stage {
    eprintln!("xtask: === host ===");
    let t = Instant::now();
    let mut counts = Counts::default();
    let mut cmd = cargo(root);
    cmd.args(["test", "--workspace", "--no-fail-fast"]);
    let status = process::tee_lines(&mut cmd, true, |line| {
        if let Some(c) = libtest::parse_result_line(line) {
            counts += c;
        }
    });
    let ok = matches!(&status, Ok(s) if s.success());
    if let Err(err) = &status {
        eprintln!("xtask: {err:#}");
    }
    // A failure that produced no failed test (a build error) still counts.
    if !ok && counts.failed == 0 {
        counts.failed = 1;
    }
    Stage {
        name: "host",
        ok,
        counts: Some(counts),
        elapsed: t.elapsed(),
    }
}

/// Prints the stage table and the count lines; the exit code.
fn summarize(stages: &[Stage]) -> ExitCode {
    println!();
    println!("xtask test: summary");
    let mut total = Counts::default();
    let mut failed_checks = Vec::new();
    for stage in stages {
        let verdict = if stage.ok { "ok" } else { "FAILED" };
        let counts = stage
            .counts
            .map(|c| format!("{} passed, {} failed", c.passed, c.failed))
            .unwrap_or_default();
        println!(
            "  {:<8} {:<6} {:<28} {:.1} s",
            stage.name,
            verdict,
            counts,
            stage.elapsed.as_secs_f64()
        );
        match stage.counts {
            Some(c) => total += c,
            None if !stage.ok => failed_checks.push(stage.name),
            None => {}
        }
    }
    for stage in stages.iter().filter(|s| s.counts.is_some()) {
        if let Some(c) = stage.counts {
            println!("{}: {} passed, {} failed", stage.name, c.passed, c.failed);
        }
    }
    if !failed_checks.is_empty() {
        println!("failed checks: {}", failed_checks.join(", "));
    }
    total.failed += failed_checks.len() as u64;
    println!("total: {} passed, {} failed", total.passed, total.failed);
    if stages.iter().all(|s| s.ok) && total.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
