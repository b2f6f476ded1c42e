//! The guest's initramfs: busybox, `vm/init.sh` as `/init`, the test
//! binaries under `/tests` (run order and extra arguments in `/etc/tests`),
//! the workload and the tools (`guest_build::TOOLS`) under `/bin`, and host environment variables
//! forwarded to the tests in `/etc/env` (sourced by init).

use crate::guest_build::GuestBinaries;
use crate::process;
use anyhow::{bail, Context as _, Result};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the static busybox of Debian's `busybox-static` lives.
pub(crate) const BUSYBOX: &str = "/bin/busybox";

/// Host environment variables that reach the guest's tests when set
/// (see [`forwarded_env`]).
pub(crate) const FORWARDED_ENV: &[&str] = &["DAMON_SOAK_SECS"];

/// The [`FORWARDED_ENV`] variables that `lookup` (the host environment)
/// has, as `(name, value)`. Values are written into a shell script, so only
/// `[A-Za-z0-9._-]` is accepted.
pub(crate) fn forwarded_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for &name in FORWARDED_ENV {
        let Some(value) = lookup(name) else { continue };
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bail!("{name}={value:?}: only letters, digits, '.', '_' and '-' can be forwarded to the guest");
        }
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// Stages the root file system in `<vm_dir>/rootfs` and packs it into
/// `<vm_dir>/initramfs.cpio`, which is returned.
///
/// `test_args` are passed to every test binary but the harness's smoke
/// test, after `--test-threads=1` (init splits them on whitespace). `env`
/// goes to `/etc/env` as `export NAME=VALUE` lines (init sources it before
/// the tests; values as checked by [`forwarded_env`]). Unless `keep` is
/// set, the staging tree is removed afterwards.
///
/// The archive is left uncompressed: with ~30 MiB of static binaries,
/// gunzip under TCG cost 1-3 s of boot time, while the uncompressed archive
/// reaches init about 2 s after qemu starts.
pub(crate) fn pack(
    root: &Path,
    vm_dir: &Path,
    bins: &GuestBinaries,
    test_args: &[String],
    env: &[(String, String)],
    keep: bool,
) -> Result<PathBuf> {
    let rootfs = vm_dir.join("rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs).with_context(|| format!("removing {}", rootfs.display()))?;
    }
    for dir in ["bin", "dev", "etc", "proc", "sys", "tmp", "root", "tests"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    if !is_static_elf(Path::new(BUSYBOX))? {
        bail!("{BUSYBOX} is not statically linked (install busybox-static)");
    }
    link_or_copy(Path::new(BUSYBOX), &rootfs.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh"))?;
    link_or_copy(&root.join("vm/init.sh"), &rootfs.join("init"))?;
    link_or_copy(&bins.workload, &rootfs.join("bin/workload"))?;
    for (name, exe) in &bins.tools {
        link_or_copy(exe, &rootfs.join("bin").join(name))?;
    }
    for test in &bins.tests {
        if !is_static_elf(&test.path)? {
            bail!("{} is dynamically linked", test.path.display());
        }
        link_or_copy(&test.path, &rootfs.join("tests").join(&test.name))?;
    }
    if bins.tests.iter().any(|t| t.name.starts_with("damon-damo")) {
        let bytes = crate::guest_damo::stage(vm_dir, &rootfs)?;
        eprintln!(
            "xtask: staged python, damo and file(1) for the guest ({:.1} MiB)",
            bytes as f64 / f64::from(1 << 20)
        );
    }
    let mut list = String::new();
    for test in &bins.tests {
        list.push_str(&test.name);
        if !test.smoke {
            for arg in test_args {
                list.push(' ');
                list.push_str(arg);
            }
        }
        list.push('\n');
    }
    fs::write(rootfs.join("etc/tests"), list)?;
    let exports: String = env
        .iter()
        .map(|(name, value)| format!("export {name}={value}\n"))
        .collect();
    fs::write(rootfs.join("etc/env"), exports)?;

    let image = vm_dir.join("initramfs.cpio");
    // Sorted, root-owned: the archive depends only on its contents.
    let script = format!(
        "set -euo pipefail; cd {rootfs:?}; find . -mindepth 1 | LC_ALL=C sort \
         | cpio -o -H newc -R 0:0 --quiet > {image:?}"
    );
    process::run(Command::new("bash").args(["-c", &script]))?;
    if !keep {
        fs::remove_dir_all(&rootfs)?;
    }
    Ok(image)
}

/// Hard-links `from` to `to` (cheap; `target/` and `build/` share a file
/// system), falling back to a copy. Keeps the executable bit either way.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Whether `path` is an ELF executable without a program interpreter
/// (`PT_INTERP`), i.e. one that runs without a dynamic loader.
pub(crate) fn is_static_elf(path: &Path) -> Result<bool> {
    // ELF and program headers sit at the start of the file.
    let mut data = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut data))
        .with_context(|| format!("reading {}", path.display()))?;
    elf_has_no_interp(&data).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))
}

/// `Some(true)` if a little-endian ELF64 image has no `PT_INTERP` header.
fn elf_has_no_interp(data: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let u16_at = |off: usize| Some(u16::from_le_bytes(data.get(off..off + 2)?.try_into().ok()?));
    let u32_at = |off: usize| Some(u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?));
    let u64_at = |off: usize| Some(u64::from_le_bytes(data.get(off..off + 8)?.try_into().ok()?));
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_xtask_is_dynamic() {
        // Host builds of this crate are ordinary dynamically linked programs.
        let exe = std::env::current_exe().expect("current_exe");
        assert_eq!(is_static_elf(&exe).ok(), Some(false));
    }

    #[test]
    fn forwards_only_listed_safe_variables() {
        let env = forwarded_env(|name| (name == "DAMON_SOAK_SECS").then(|| "60".to_owned()))
            .expect("a number is fine");
        assert_eq!(env, [("DAMON_SOAK_SECS".to_owned(), "60".to_owned())]);
        assert!(forwarded_env(|_| None).expect("nothing set").is_empty());
        assert!(forwarded_env(|_| Some("1; reboot -f".to_owned())).is_err());
    }

    #[test]
    fn rejects_non_elf() {
        assert_eq!(elf_has_no_interp(b"#!/bin/sh\n"), None);
        assert_eq!(elf_has_no_interp(b"\x7fELF\x02\x01"), None);
    }
}
