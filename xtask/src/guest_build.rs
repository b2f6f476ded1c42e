//! Static binaries for the guest: the test binaries, the harness's own smoke
//! test (`vm/guest-smoke`) and the `workload` example.
//!
//! They are glibc `crt-static` builds (the musl target is not available
//! here), made in their own target directory (`target/vm`) so that the
//! host's builds are not invalidated by the different `RUSTFLAGS`.

use crate::process;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace packages whose test binaries run in the guest by default.
pub(crate) const TEST_PACKAGES: &[&str] = &[
    "damon-ops-common",
    "damon-ops-paddr",
    "damon-ops-vaddr",
    "damon-schemes",
    "damon-core",
    "damon-sysfs",
];

/// Single integration tests of other packages that run in the guest by
/// default: `(package, test target)`. damo's recorder on the guest kernel's
/// DAMON is the one damon-damo test that needs the guest (its other tests
/// run damo on the host, and under TCG would take many minutes).
pub(crate) const EXTRA_TESTS: &[(&str, &str)] = &[("damon-damo", "guest_damo_record")];

/// The harness's own guest checks: a standalone package (own `[workspace]`).
const SMOKE_MANIFEST: &str = "vm/guest-smoke/Cargo.toml";

/// Passing `--target` explicitly keeps `RUSTFLAGS` away from build scripts
/// and proc-macros, which must stay dynamic host binaries.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// One libtest executable to run in the guest.
#[derive(Debug, Clone)]
pub(crate) struct TestBinary {
    /// Short, stable name: `package` for a lib's unit tests,
    /// `package.target` for integration tests and other targets.
    pub name: String,
    /// The executable on the host.
    pub path: PathBuf,
    /// How many tests `--list` reported.
    pub nr_tests: usize,
    /// The harness's own smoke test (runs first, never filtered).
    pub smoke: bool,
}

/// Everything the initramfs carries besides busybox and init.
#[derive(Debug)]
pub(crate) struct GuestBinaries {
    /// Test binaries with at least one test, in run order: the smoke test
    /// first, then by name, long-running ones ([`runs_last`]) at the end.
    pub tests: Vec<TestBinary>,
    /// The static `workload` example (installed as `/bin/workload`).
    pub workload: PathBuf,
    /// The static tools the guest tests run (installed as `/bin/NAME`).
    pub tools: Vec<(String, PathBuf)>,
}

/// The examples the guest tests run as programs besides the workload
/// (`damon-sysfs`'s `guest_tools`: the tools' `--engine kernel`).
pub(crate) const TOOLS: &[&str] = &["record", "monitor", "reclaim", "lru_sort"];

/// Builds all guest binaries. `packages` selects the workspace test packages
/// (empty = [`TEST_PACKAGES`] and [`EXTRA_TESTS`]); `smoke` adds the
/// harness's smoke test.
pub(crate) fn build(root: &Path, packages: &[String], smoke: bool) -> Result<GuestBinaries> {
    let explicit = packages;
    let packages: Vec<&str> = if packages.is_empty() {
        TEST_PACKAGES.to_vec()
    } else {
        packages.iter().map(String::as_str).collect()
    };
    let mut tests = Vec::new();
    if smoke {
        let mut cmd = static_cargo(root, "test");
        cmd.args(["--no-run", "--manifest-path", SMOKE_MANIFEST]);
        for mut test in test_artifacts(&mut cmd)? {
            test.smoke = true;
            tests.push(test);
        }
    }
    let mut cmd = static_cargo(root, "test");
    cmd.arg("--no-run");
    for package in &packages {
        cmd.args(["-p", package]);
    }
    // Cargo reports in completion order; run in name order, smoke first,
    // soak tests last.
    let mut workspace_tests = test_artifacts(&mut cmd)?;
    if explicit.is_empty() {
        for (package, target) in EXTRA_TESTS {
            let mut cmd = static_cargo(root, "test");
            cmd.args(["--no-run", "-p", package, "--test", target]);
            workspace_tests.extend(test_artifacts(&mut cmd)?);
        }
    }
    workspace_tests
        .sort_by(|a, b| (runs_last(&a.name), &a.name).cmp(&(runs_last(&b.name), &b.name)));
    tests.extend(workspace_tests);

    let mut runnable = Vec::new();
    for mut test in tests {
        test.nr_tests = count_tests(&test.path)?;
        if test.nr_tests == 0 {
            eprintln!("xtask: skipping {} (no tests)", test.name);
        } else {
            runnable.push(test);
        }
    }

    let mut cmd = static_cargo(root, "build");
    cmd.args(["-p", "damon-examples", "--example", "workload"]);
    for tool in TOOLS {
        cmd.args(["--example", tool]);
    }
    let mut workload = None;
    let mut tools = Vec::new();
    let status = process::tee_lines(&mut cmd, false, |line| {
        if let Some(artifact) = Artifact::parse(line) {
            if artifact.target_name == "workload" {
                workload = artifact.executable;
            } else if let Some(exe) = artifact.executable {
                if TOOLS.contains(&artifact.target_name.as_str()) {
                    tools.push((artifact.target_name, exe));
                }
            }
        }
    })?;
    if !status.success() {
        bail!("building the workload and tool examples failed: {status}");
    }
    let workload = workload.context("cargo reported no `workload` executable")?;
    Ok(GuestBinaries {
        tests: runnable,
        workload,
        tools,
    })
}

/// Whether a test binary runs after all others: integration tests named
/// `soak` (`PACKAGE.soak`) run for many minutes, and a failure or timeout
/// there must not keep the other binaries from running and reporting.
pub(crate) fn runs_last(name: &str) -> bool {
    name.ends_with(".soak")
}

/// `cargo <verb> --release --target … --message-format=json…` with static
/// linking, in `target/vm`.
fn static_cargo(root: &Path, verb: &str) -> Command {
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // Would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", root.join("target/vm"))
        // No debug info: it would make the initramfs ~4x larger and the
        // boot (decompression under TCG) seconds slower. Panics still name
        // file:line; backtraces keep function names.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .args([verb, "--release", "--target", TARGET])
        // Diagnostics rendered on stderr, everything else as JSON on stdout.
        .arg("--message-format=json-render-diagnostics");
    cmd
}

/// Runs a `cargo test --no-run` command and collects its test executables.
fn test_artifacts(cmd: &mut Command) -> Result<Vec<TestBinary>> {
    let mut found = Vec::new();
    let status = process::tee_lines(cmd, false, |line| {
        if let Some(artifact) = Artifact::parse(line) {
            if let (true, Some(path)) = (artifact.test, artifact.executable.clone()) {
                found.push(TestBinary {
                    name: artifact.display_name(),
                    path,
                    nr_tests: 0,
                    smoke: false,
                });
            }
        }
    })?;
    if !status.success() {
        bail!("building the guest test binaries failed: {status}");
    }
    Ok(found)
}

/// Counts the tests of a libtest binary with `--list` (the static binary
/// runs on the host too; listing runs no test).
fn count_tests(exe: &Path) -> Result<usize> {
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .with_context(|| format!("cannot run {} --list", exe.display()))?;
    if !out.status.success() {
        bail!("{} --list failed: {}", exe.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(": test"))
        .count())
}

/// The parts of a cargo `compiler-artifact` message that we use.
#[derive(Debug, PartialEq)]
struct Artifact {
    package: String,
    target_name: String,
    kind: String,
    test: bool,
    executable: Option<PathBuf>,
}

impl Artifact {
    /// Parses one `--message-format=json` line; `None` unless it is a
    /// `compiler-artifact` message.
    fn parse(line: &str) -> Option<Self> {
        if !line.starts_with('{') {
            return None;
        }
        let v: Value = serde_json::from_str(line).ok()?;
        if v["reason"] != "compiler-artifact" {
            return None;
        }
        Some(Artifact {
            package: package_name(v["package_id"].as_str()?),
            target_name: v["target"]["name"].as_str()?.to_owned(),
            kind: v["target"]["kind"][0].as_str().unwrap_or("").to_owned(),
            test: v["profile"]["test"].as_bool().unwrap_or(false),
            executable: v["executable"].as_str().map(PathBuf::from),
        })
    }

    fn display_name(&self) -> String {
        match self.kind.as_str() {
            "lib" | "rlib" | "cdylib" | "staticlib" | "proc-macro" => self.package.clone(),
            "test" => format!("{}.{}", self.package, self.target_name),
            kind => format!("{}.{kind}-{}", self.package, self.target_name),
        }
    }
}

/// The package name in a package id spec: `path+file:///w/damon-core#0.1.0`
/// (name = last path segment) or `…#name@0.1.0`.
fn package_name(id: &str) -> String {
    let (url, fragment) = id.split_once('#').unwrap_or((id, ""));
    if let Some((name, _version)) = fragment.split_once('@') {
        return name.to_owned();
    }
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_from_ids() {
        assert_eq!(
            package_name("path+file:///work/main/damon-core#0.1.0"),
            "damon-core"
        );
        assert_eq!(
            package_name("path+file:///work/main/vm/guest-smoke#guest-smoke@0.1.0"),
            "guest-smoke"
        );
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#libc@0.2.1"),
            "libc"
        );
    }

    #[test]
    fn soak_binaries_run_last() {
        let mut names = vec![
            "damon-ops-vaddr.soak",
            "damon-schemes",
            "damon-ops-vaddr.targets",
            "damon-core",
        ];
        names.sort_by_key(|n| (runs_last(n), *n));
        assert_eq!(
            names,
            [
                "damon-core",
                "damon-ops-vaddr.targets",
                "damon-schemes",
                "damon-ops-vaddr.soak"
            ]
        );
        assert!(!runs_last("damon-soak"));
    }

    #[test]
    fn parses_test_artifacts() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/damon-core#0.1.0","manifest_path":"/w/damon-core/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"damon_core","src_path":"/w/damon-core/src/lib.rs","edition":"2021","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"3","debuginfo":1,"debug_assertions":false,"overflow_checks":false,"test":true},"features":[],"filenames":["/w/target/vm/x86_64-unknown-linux-gnu/release/deps/damon_core-0123"],"executable":"/w/target/vm/x86_64-unknown-linux-gnu/release/deps/damon_core-0123","fresh":true}"#;
        let a = Artifact::parse(line).expect("artifact");
        assert!(a.test);
        assert_eq!(a.display_name(), "damon-core");
        assert_eq!(
            a.executable.as_deref(),
            Some(Path::new(
                "/w/target/vm/x86_64-unknown-linux-gnu/release/deps/damon_core-0123"
            ))
        );
        let it = line
            .replace(r#"["lib"]"#, r#"["test"]"#)
            .replace(r#""damon_core""#, r#""vm_idle""#);
        assert_eq!(
            Artifact::parse(&it).expect("artifact").display_name(),
            "damon-core.vm_idle"
        );
        assert_eq!(
            Artifact::parse(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(Artifact::parse("warning: not json"), None);
    }
}
