//! Host packages the VM suite needs, installed with apt when missing.

use crate::process;
use anyhow::{bail, Result};
use std::process::Command;

/// Debian packages for booting the guest: qemu, a static busybox for the
/// initramfs, and cpio to pack it. The kernel build's own packages are
/// handled by `vm/build-kernel.sh`.
pub(crate) const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "cpio"];

/// Whether dpkg reports `package` as installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs whichever of `packages` are missing (`apt-get update` first,
/// only when something has to be installed).
pub(crate) fn ensure(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    if !running_as_root() {
        bail!(
            "missing packages: {} (run `sudo apt-get install --no-install-recommends {}`)",
            missing.join(" "),
            missing.join(" ")
        );
    }
    process::run(Command::new("apt-get").args(["update", "-qq"]))?;
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )?;
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}
