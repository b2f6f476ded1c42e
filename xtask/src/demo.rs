//! `cargo xtask demo`: the main job in one command. Monitors memory as it
//! is used and shows it as it happens (a live table of regions), then an
//! ASCII heatmap and working-set-size percentiles.
//!
//! * On a host with idle page tracking where we are root: the `workload`
//!   example monitored by `monitor` over the `vaddr` backend, natively.
//! * Otherwise, on Linux 6.7+ (userfaultfd write protection and
//!   `PAGEMAP_SCAN`): natively too, in seconds, `monitor --self-demo`,
//!   which watches **writes** to a buffer of its own process with the
//!   `vaddr-written` backend (it says so, and why).
//! * Otherwise, or with `--guest`: the first way inside the guest kernel
//!   that `cargo xtask vm-test` builds, streaming the guest's console.

use crate::{apt, initramfs, kernel, process, qemu};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

const HELP: &str = "\
usage: cargo xtask demo [--seconds N] [--guest]

Monitors a 16 MiB hot range moving through a 64 MiB buffer (two phases,
then idle) for N seconds (default 20): a live table of regions with access
rate and age, then a heatmap of time x address and working-set-size
percentiles.
With idle page tracking and root: the workload example, every access,
natively. Else on Linux 6.7+: natively, the writes to a buffer of the
monitor's own process (monitor --self-demo, the vaddr-written backend: no
idle page tracking or root needed, reads not seen). Else, or with
--guest: every access, in the guest kernel of `cargo xtask vm-test`.
";

/// The workload: what is hot changes over time, so the display moves.
const WORKLOAD: &str =
    "region buf 64M nothp; phase 6s buf:0-16M:write; phase 6s buf:40M-56M:write; phase 4s; loop";

/// Whether this kernel is likely to have what `vaddr-written` needs:
/// userfaultfd (its sysctl exists) and Linux 6.7+ (WP_ASYNC, PAGEMAP_SCAN).
/// The monitor checks for real and says what is missing.
fn written_pages_host() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .trim()
        .split(['.', '-'])
        .map(|v| v.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (6, 7) && Path::new("/proc/sys/vm/unprivileged_userfaultfd").exists()
}

fn capable_host() -> bool {
    Path::new("/sys/kernel/mm/page_idle/bitmap").exists() && rustix_free_euid() == 0
}

fn rustix_free_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// Entry point of the verb.
pub(crate) fn main(args: Vec<String>) -> Result<ExitCode> {
    let mut seconds = 20u64;
    let mut force_guest = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds: {v:?} is not a number"))?;
            }
            "--guest" => force_guest = true,
            other => bail!("unknown option {other:?}\n\n{HELP}"),
        }
    }
    let root = crate::workspace_root();
    let monitor_args = vec![
        "--duration".to_owned(),
        seconds.to_string(),
        "--refresh-ms".to_owned(),
        "1000".to_owned(),
    ];
    if capable_host() && !force_guest {
        eprintln!(
            "xtask demo: this kernel has idle page tracking and we are root: running natively"
        );
        process::run(Command::new(crate::cargo()).current_dir(&root).args([
            "build",
            "--release",
            "--example",
            "workload",
            "--example",
            "monitor",
        ]))?;
        let ex = root.join("target/release/examples");
        let status = process::status(
            Command::new(ex.join("monitor"))
                .args(&monitor_args)
                .arg("--")
                .arg(ex.join("workload"))
                .args(["--config-str", WORKLOAD]),
        )?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if written_pages_host() && !force_guest {
        eprintln!(
            "xtask demo: this kernel has no idle page tracking (CONFIG_IDLE_PAGE_TRACKING) or we are not root,\n\
             xtask demo: but it can write-protect pages for us (Linux 6.7+): running natively, showing WRITES to a\n\
             xtask demo: buffer of the monitor's own process. Every access, in a guest kernel: cargo xtask demo --guest"
        );
        process::run(Command::new(crate::cargo()).current_dir(&root).args([
            "build",
            "--release",
            "--example",
            "monitor",
        ]))?;
        let ex = root.join("target/release/examples");
        let status = process::status(
            Command::new(ex.join("monitor"))
                .args(&monitor_args)
                .arg("--self-demo"),
        )?;
        if !status.success() {
            bail!("the native demo failed ({status}); `cargo xtask demo --guest` runs it in a guest kernel");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "xtask demo: this kernel has no idle page tracking (CONFIG_IDLE_PAGE_TRACKING) or we are not root:\n\
         running the demo inside the guest kernel of `cargo xtask vm-test` (qemu, TCG)"
    );
    apt::ensure(apt::VM_PACKAGES)?;
    let kernel = kernel::bz_image(&root)?;
    let (monitor, workload) = build_static(&root)?;
    let vm_dir = root.join("build/vm-demo");
    let initrd = pack(&root, &vm_dir, &monitor, &workload, &monitor_args)?;
    let boot = qemu::Boot {
        kernel,
        initrd,
        log: vm_dir.join("serial.log"),
        timeout: Duration::from_secs(seconds * 6 + 180),
        silence: Duration::from_secs(120),
    };
    let mut done = false;
    let mut monitor_ok = false;
    // Boot::run echoes the guest's console to stdout itself.
    let run = boot.run(|line, _| {
        if line.starts_with("@@ DONE") {
            done = true;
        } else if let Some(rc) = line.strip_prefix("@@ DEMO monitor exited with ") {
            monitor_ok = rc.trim() == "0";
        }
    })?;
    if !done || !monitor_ok {
        bail!(
            "the guest demo did not complete ({:?}); serial log: {}",
            run.ending,
            vm_dir.join("serial.log").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the monitor and workload examples as static executables.
fn build_static(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let target = "x86_64-unknown-linux-gnu";
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", root.join("target/vm"))
        .args([
            "build",
            "--release",
            "--target",
            target,
            "-p",
            "damon-examples",
            "--example",
            "monitor",
            "--example",
            "workload",
        ]);
    process::run(&mut cmd)?;
    let dir = root.join("target/vm").join(target).join("release/examples");
    let (m, w) = (dir.join("monitor"), dir.join("workload"));
    for p in [&m, &w] {
        if !initramfs::is_static_elf(p)? {
            bail!("{} is not a static executable", p.display());
        }
    }
    Ok((m, w))
}

fn pack(
    root: &Path,
    vm_dir: &Path,
    monitor: &Path,
    workload: &Path,
    monitor_args: &[String],
) -> Result<PathBuf> {
    let rootfs = vm_dir.join("rootfs");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs)?;
    }
    for dir in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    initramfs::link_or_copy(Path::new(initramfs::BUSYBOX), &rootfs.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh"))?;
    initramfs::link_or_copy(&root.join("vm/demo-init.sh"), &rootfs.join("init"))?;
    initramfs::link_or_copy(monitor, &rootfs.join("bin/monitor"))?;
    initramfs::link_or_copy(workload, &rootfs.join("bin/workload"))?;
    std::fs::write(rootfs.join("etc/demo-args"), monitor_args.join(" "))?;
    std::fs::write(rootfs.join("etc/demo-workload"), WORKLOAD)?;
    let image = vm_dir.join("initramfs.cpio");
    let script = format!("set -euo pipefail; cd {rootfs:?}; find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > {image:?}");
    process::run(Command::new("bash").args(["-c", &script]))?;
    Ok(image)
}
