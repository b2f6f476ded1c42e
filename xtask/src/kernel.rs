//! The guest kernel: built and cached by `vm/build-kernel.sh`.

use crate::process;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `vm/build-kernel.sh` (a no-op when the cache is warm) and returns the
/// bzImage path it prints as its last stdout line. Its stderr (progress) is
/// passed through.
pub(crate) fn bz_image(root: &Path) -> Result<PathBuf> {
    let script = root.join("vm/build-kernel.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).stdin(Stdio::null());
    let mut last = None;
    let status = process::tee_lines(&mut cmd, false, |line| {
        if !line.trim().is_empty() {
            last = Some(line.trim().to_owned());
        }
    })?;
    if !status.success() {
        bail!("{} failed: {status}", script.display());
    }
    let path = PathBuf::from(last.context("build-kernel.sh printed no bzImage path")?);
    if !path.is_file() {
        bail!(
            "build-kernel.sh printed {}, which is not a file",
            path.display()
        );
    }
    Ok(path)
}
