//! damo in the guest, so that damo's own recorder can drive the guest
//! kernel's DAMON (the host's belongs to the machine): Debian's python3
//! with its standard library (less what damo never loads), damo from PyPI
//! (`pip install --target`, cached in `build/vm/damo-py`), `file(1)` with
//! its magic database (damo names a record's format with it), `trace-cmd`
//! (damo records DAMON's trace events with it), and the shared libraries
//! these load, at the paths they have on the host.
//!
//! `/bin/damo` in the guest runs damo with that interpreter.

use crate::{initramfs, process};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the bundle is made from.
pub(crate) const PACKAGES: &[&str] = &[
    "python3",
    "python3-pip",
    "file",
    "libmagic-mgc",
    "trace-cmd",
];

/// Host programs damo runs, staged with their libraries and linked into
/// `/bin` (the guest's PATH): `file` names a record's format, `trace-cmd`
/// records DAMON's trace events (damo's `--snapshot` recording fails on
/// kernels before 6.14, whose tried regions lack `sz_filter_passed`).
const TOOLS: &[&str] = &["/usr/bin/file", "/usr/bin/trace-cmd"];

/// Parts of the standard library damo never imports (about half its size).
const STDLIB_EXCLUDES: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "config-*",
    "site-packages",
    "dist-packages",
];

/// Debian's interpreter: `/usr/bin/python3` resolved (`/usr/bin/python3.11`).
fn python() -> Result<PathBuf> {
    let p = fs::canonicalize("/usr/bin/python3")
        .context("Debian's /usr/bin/python3 (apt-get install python3)")?;
    Ok(p)
}

/// damo installed with pip into `dir` (kept between runs).
fn damo_dir(vm_dir: &Path, python: &Path) -> Result<PathBuf> {
    let dir = vm_dir.join("damo-py");
    if dir.join("damo/damo.py").exists() {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    process::run(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg("damo"),
    )
    .context("installing damo from PyPI for the guest")?;
    Ok(dir)
}

/// The shared libraries `elf` loads (and the loader), from `ldd`.
fn needed_libs(elf: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    let o = Command::new("ldd")
        .arg(elf)
        .output()
        .with_context(|| format!("ldd {}", elf.display()))?;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            out.insert(PathBuf::from(p));
        }
    }
    Ok(())
}

/// Copies `src` to the same path under `rootfs` (symlinks resolved).
fn copy_as_is(src: &Path, rootfs: &Path) -> Result<()> {
    let dst = rootfs.join(src.strip_prefix("/").unwrap_or(src));
    if dst.exists() {
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    let real = fs::canonicalize(src).with_context(|| format!("resolving {}", src.display()))?;
    initramfs::link_or_copy(&real, &dst)
}

/// Puts python, damo and file(1) into `rootfs`; returns the bytes added.
pub(crate) fn stage(vm_dir: &Path, rootfs: &Path) -> Result<u64> {
    let python = python()?;
    let version = python
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("python3."))
        .with_context(|| format!("{} is not python3.X", python.display()))?
        .to_string();
    let stdlib = PathBuf::from("/usr/lib").join(&version);
    if !stdlib.join("os.py").exists() {
        bail!(
            "no standard library at {} (apt-get install python3)",
            stdlib.display()
        );
    }
    let damo = damo_dir(vm_dir, &python)?;

    // the standard library, as tar copies it (symlinks kept), less the excludes
    let mut tar = String::from("set -euo pipefail; tar -C / -cf -");
    for ex in STDLIB_EXCLUDES {
        tar.push_str(&format!(" --exclude='usr/lib/{version}/{ex}'"));
    }
    tar.push_str(&format!(" usr/lib/{version} | tar -C {rootfs:?} -xf -"));
    process::run(Command::new("bash").args(["-c", &tar]))?;
    copy_as_is(&python, rootfs)?;
    std::os::unix::fs::symlink(&version, rootfs.join("usr/bin/python3"))?;
    for tool in TOOLS {
        copy_as_is(Path::new(tool), rootfs)?;
        let name = Path::new(tool).file_name().expect("a file name");
        std::os::unix::fs::symlink(tool, rootfs.join("bin").join(name))?;
    }
    // trace-cmd 3.x cannot read back its compressed (version 7) trace files
    // in the guest ("error reading header": the record reports a zero-size
    // compressed buffer), so the guest's trace-cmd records uncompressed
    let help = Command::new("/usr/bin/trace-cmd")
        .args(["record", "-h"])
        .output()?;
    let help = String::from_utf8_lossy(&help.stdout) + String::from_utf8_lossy(&help.stderr);
    if help.contains("--compression") {
        let wrapper = rootfs.join("bin/trace-cmd");
        fs::remove_file(&wrapper)?;
        fs::write(
            &wrapper,
            "#!/bin/sh\n# staged by xtask/src/guest_damo.rs: records uncompressed\n\
             if [ \"$1\" = record ]; then shift; exec /usr/bin/trace-cmd record --compression none \"$@\"; fi\n\
             exec /usr/bin/trace-cmd \"$@\"\n",
        )?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    }
    for mgc in ["/usr/lib/file/magic.mgc", "/usr/share/misc/magic.mgc"] {
        if Path::new(mgc).exists() {
            copy_as_is(Path::new(mgc), rootfs)?;
        }
    }

    let mut libs = BTreeSet::new();
    needed_libs(&python, &mut libs)?;
    for tool in TOOLS {
        needed_libs(Path::new(tool), &mut libs)?;
    }
    for m in fs::read_dir(stdlib.join("lib-dynload"))? {
        let m = m?.path();
        if m.extension().is_some_and(|e| e == "so") {
            needed_libs(&m, &mut libs)?;
        }
    }
    for lib in &libs {
        copy_as_is(lib, rootfs)?;
    }

    let opt = rootfs.join("opt/damo");
    fs::create_dir_all(&opt)?;
    let tar = format!("set -euo pipefail; tar -C {damo:?} -cf - . | tar -C {opt:?} -xf -");
    process::run(Command::new("bash").args(["-c", &tar]))?;
    // damo pages long reports with `less --RAW-CONTROL-CHARS --no-init
    // FILE`, which busybox's less does not take: its `less` prints the file
    let shims = opt.join("shims");
    fs::create_dir_all(&shims)?;
    fs::write(
        shims.join("less"),
        "#!/bin/sh\n# damo's pager in the guest: print the file (the last argument)\n\
         for a; do f=$a; done\nexec cat \"$f\"\n",
    )?;
    fs::set_permissions(shims.join("less"), fs::Permissions::from_mode(0o755))?;
    let launcher = rootfs.join("bin/damo");
    fs::write(
        &launcher,
        format!(
            "#!/bin/sh\n# damo (PyPI) on Debian's {version}, staged by xtask/src/guest_damo.rs\n\
             export PATH=\"/opt/damo/shims:$PATH:/usr/bin\"\n\
             PYTHONPATH=/opt/damo exec /usr/bin/{version} /opt/damo/bin/damo \"$@\"\n"
        ),
    )?;
    fs::set_permissions(&launcher, fs::Permissions::from_mode(0o755))?;

    let out = Command::new("du")
        .args(["-sb"])
        .arg(rootfs.join("usr"))
        .output()?;
    let usr: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(usr)
}
