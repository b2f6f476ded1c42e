//! `cargo xtask vm-test`: the test binaries, run as root inside a qemu
//! guest whose kernel has page_idle, DAMON, THP, zram swap, memcg and two
//! NUMA nodes.
//!
//! Steps: host packages ([`crate::apt`]), guest kernel ([`crate::kernel`]),
//! static binaries ([`crate::guest_build`]), initramfs
//! ([`crate::initramfs`]), one boot ([`crate::qemu`]), results from the
//! serial log ([`crate::serial`]). The last line printed is always
//! `vm-test: N passed, M failed`.

use crate::libtest::Counts;
use crate::qemu::{Boot, Ending};
use crate::serial::Report;
use crate::{apt, guest_build, initramfs, kernel};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const HELP: &str = "\
usage: cargo xtask vm-test [--keep] [--timeout SECS] [-p PACKAGE]... [-- TEST-ARGS...]

Boots the guest kernel (vm/build-kernel.sh, cached) under qemu TCG with an
initramfs holding static builds of the workspace's test binaries, runs each
with --test-threads=1 as root, and reports. Output goes to build/vm/
(serial.log, initramfs.cpio, run-qemu.sh to boot it again by hand).

options:
  --keep            keep the staged root file system (build/vm/rootfs)
  --timeout SECS    limit for the whole boot (default 1800: the default
                    suite takes ~210 s of qemu time plus the 600 s soak
                    test); the guest is also stopped after 300 s without
                    serial output or on a kernel panic/BUG/Oops
  -p, --package P   test only these workspace packages (repeatable; default:
                    damon-ops-common damon-ops-paddr damon-ops-vaddr
                    damon-schemes damon-core, and damon-damo's guest_damo_record)
  -- TEST-ARGS      passed to every test binary (not the smoke test), e.g.
                    `-- page_idle` to filter by name (split on whitespace)

environment forwarded from the host into the guest's tests (if set):
  DAMON_SOAK_SECS   length of the soak test in seconds (default 600)

The harness's own guest checks (vm/guest-smoke) always run first; test
binaries named `soak` (long-running) run last. A harness
failure (build, boot, panic, timeout, no `@@ DONE`) counts as one failed test,
so the last line never says `0 failed` for a failed run.
";

/// Options of one VM-suite run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Keep `build/vm/rootfs`.
    pub keep: bool,
    /// Limit for the boot.
    pub timeout: Duration,
    /// Workspace test packages (empty = the default set).
    pub packages: Vec<String>,
    /// Extra arguments for every test binary.
    pub test_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keep: false,
            timeout: Duration::from_secs(1800),
            packages: Vec::new(),
            test_args: Vec::new(),
        }
    }
}

/// Silence after which the watchdog gives up on the guest.
const SILENCE: Duration = Duration::from_secs(300);

/// The verb's entry point.
pub(crate) fn main(args: Vec<String>) -> Result<ExitCode> {
    let Some(opts) = parse_args(args)? else {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    let outcome = run(&opts);
    Ok(if outcome.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses the options; `None` for `--help`.
pub(crate) fn parse_args(args: Vec<String>) -> Result<Option<Options>> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--keep" => opts.keep = true,
            "--timeout" => {
                let v = args.next().context("--timeout needs a number of seconds")?;
                let secs: u64 = v
                    .parse()
                    .with_context(|| format!("--timeout: {v:?} is not a number of seconds"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            "-p" | "--package" => {
                opts.packages
                    .push(args.next().context("--package needs a name")?);
            }
            "--" => opts.test_args.extend(args.by_ref()),
            other => bail!("vm-test: unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Some(opts))
}

/// The result of a VM-suite run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Test counts, including one failure for a harness failure.
    pub counts: Counts,
    /// Whether the harness itself (build, boot, protocol) worked.
    pub harness_ok: bool,
}

impl Outcome {
    /// No failed test and no harness failure.
    pub(crate) fn ok(&self) -> bool {
        self.harness_ok && self.counts.failed == 0
    }
}

/// What one run gathered: the serial report, harness problems, timings.
#[derive(Default)]
struct Suite {
    report: Report,
    /// Harness failures (each counts as one failed test, all together).
    problems: Vec<String>,
    timings: Vec<(&'static str, Duration)>,
    /// Test binaries packed into the initramfs.
    nr_binaries: usize,
}

/// Runs the whole VM suite and prints the results; the last line printed is
/// `vm-test: N passed, M failed`. Never returns an error: failures are
/// reported and counted.
pub(crate) fn run(opts: &Options) -> Outcome {
    let started = Instant::now();
    let mut suite = Suite::default();
    if let Err(err) = suite.build_and_boot(&crate::workspace_root(), opts) {
        suite.problems.push(format!("{err:#}"));
    }
    suite.timings.push(("total", started.elapsed()));
    suite.finish()
}

impl Suite {
    /// Everything up to the end of the boot. Failures that still leave a
    /// serial log to read (timeout, panic) go to `problems`; the rest are
    /// errors.
    fn build_and_boot(&mut self, root: &Path, opts: &Options) -> Result<()> {
        let vm_dir = root.join("build/vm");
        std::fs::create_dir_all(&vm_dir)
            .with_context(|| format!("creating {}", vm_dir.display()))?;

        let t = Instant::now();
        apt::ensure(apt::VM_PACKAGES)?;
        apt::ensure(crate::guest_damo::PACKAGES)?;
        let kernel = kernel::bz_image(root)?;
        self.timings.push(("packages+kernel", t.elapsed()));

        let t = Instant::now();
        let bins = guest_build::build(root, &opts.packages, true)?;
        self.timings.push(("build", t.elapsed()));
        self.nr_binaries = bins.tests.len();
        if bins.tests.is_empty() {
            bail!("no test binary has any test");
        }
        let names: Vec<String> = bins
            .tests
            .iter()
            .map(|t| format!("{} ({})", t.name, t.nr_tests))
            .collect();
        eprintln!("xtask: guest tests: {}", names.join(", "));

        let t = Instant::now();
        let env = initramfs::forwarded_env(|name| std::env::var(name).ok())?;
        for (name, value) in &env {
            eprintln!("xtask: forwarding {name}={value} to the guest");
        }
        let initrd = initramfs::pack(root, &vm_dir, &bins, &opts.test_args, &env, opts.keep)?;
        self.timings.push(("initramfs", t.elapsed()));
        let size = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "xtask: {} ({:.1} MiB)",
            initrd.display(),
            size as f64 / f64::from(1 << 20)
        );

        let boot = Boot {
            kernel,
            initrd,
            log: vm_dir.join("serial.log"),
            timeout: opts.timeout,
            silence: SILENCE,
        };
        boot.write_script(&vm_dir.join("run-qemu.sh"))?;
        let t = Instant::now();
        let report = &mut self.report;
        let run = boot.run(|line, at| report.feed(line, at))?;
        if let Some(init_at) = self.report.init_at {
            self.timings
                .push(("boot to init", init_at.saturating_duration_since(t)));
        }
        self.timings.push(("qemu", run.wall));
        match run.ending {
            Ending::Exited(status) if !run.exit_ok => {
                self.problems.push(format!("qemu exited with {status}"));
            }
            Ending::Exited(_) => {}
            Ending::Timeout => self.problems.push(format!(
                "timeout: the guest ran longer than {} s",
                opts.timeout.as_secs()
            )),
            Ending::Silent => self.problems.push(format!(
                "watchdog: no serial output for {} s",
                SILENCE.as_secs()
            )),
            // Reported in `finish` from the serial report.
            Ending::KernelTrouble(_) => {}
        }
        if self.report.init.is_none() {
            self.problems
                .push("init never started (no `@@ INIT` line)".into());
        }
        Ok(())
    }

    /// Prints per-binary results, timings and problems, then the last line.
    fn finish(mut self) -> Outcome {
        let report = &self.report;
        if self.nr_binaries > 0 && report.init.is_some() && !report.done {
            self.problems
                .push("the guest did not finish (no `@@ DONE` in the serial log)".into());
        }
        if let Some(line) = &report.kernel_trouble {
            self.problems.push(format!("kernel trouble: {line}"));
        }
        println!();
        println!("vm-test: results");
        for run in &report.runs {
            let c = run.effective();
            let rc = match run.rc {
                Some(rc) => format!("rc={rc}"),
                None => "did not finish".into(),
            };
            let secs = run
                .elapsed
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_default();
            println!(
                "  {:<32} {:<6} {:>4} passed, {} failed, {} ignored  {rc}  {secs}",
                run.name,
                run.verdict(),
                c.passed,
                c.failed,
                c.ignored
            );
        }
        for w in &report.init_warnings {
            println!("  init warning: {w}");
        }
        for w in &report.warnings {
            println!("  kernel warning: {w}");
        }
        for leak in &report.leaks {
            println!("  left running (killed): {leak}");
        }
        if let Some(t) = report.tainted {
            println!("  kernel tainted: {t} (WARN traces in build/vm/serial.log)");
        }
        let timings: Vec<String> = self
            .timings
            .iter()
            .map(|(what, d)| format!("{what} {:.1} s", d.as_secs_f64()))
            .collect();
        println!("vm-test: timings: {}", timings.join(", "));
        for p in &self.problems {
            println!("vm-test: FAILED: {p}");
        }
        let mut counts = report.totals();
        let harness_ok = self.problems.is_empty();
        if !harness_ok {
            counts.failed += 1;
        }
        println!(
            "vm-test: {} passed, {} failed",
            counts.passed, counts.failed
        );
        Outcome { counts, harness_ok }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse_args(args(&[
            "--keep",
            "--timeout",
            "60",
            "-p",
            "damon-core",
            "--",
            "idle",
            "--nocapture",
        ]))
        .expect("ok")
        .expect("not help");
        assert!(o.keep);
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.packages, ["damon-core"]);
        assert_eq!(o.test_args, ["idle", "--nocapture"]);
        assert!(parse_args(args(&["--help"])).expect("ok").is_none());
        assert!(parse_args(args(&["--timeout", "x"])).is_err());
        assert!(parse_args(args(&["--bogus"])).is_err());
    }
}
