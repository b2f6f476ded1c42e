//! The admin tree: where the files are, and reading and writing them.
//!
//! Every access goes through [`SysfsIo`], so that the writer and the probe
//! run unchanged on the kernel's tree and, in tests, on a fake tree in a
//! temporary directory that creates numbered directories when an `nr_*`
//! file is written, as the kernel does.

use crate::SysfsError;
use std::path::{Path, PathBuf};

/// The kernel's DAMON admin directory.
pub const ADMIN: &str = "/sys/kernel/mm/damon/admin";

/// File access to an admin tree.
pub trait SysfsIo: Send + Sync {
    /// The content of a file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Writes `value` to a file (one `write`, as sysfs takes it).
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl SysfsIo for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        use std::io::Write;
        // sysfs stores the first write; no truncate-and-rewrite dance
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// An admin tree at a root directory (clones share the file access).
#[derive(Clone)]
pub struct Admin {
    root: PathBuf,
    io: std::sync::Arc<dyn SysfsIo>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("root", &self.root).finish()
    }
}

impl Admin {
    /// The kernel's tree ([`ADMIN`]).
    pub fn kernel() -> Self {
        Self::at(ADMIN, Box::new(RealFs))
    }

    /// A tree at `root`, accessed through `io`.
    pub fn at(root: impl Into<PathBuf>, io: Box<dyn SysfsIo>) -> Self {
        Self {
            root: root.into(),
            io: io.into(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.io.exists(&self.path(rel))
    }

    /// The trimmed content of `rel`.
    pub fn read(&self, rel: &str) -> Result<String, SysfsError> {
        let path = self.path(rel);
        self.io
            .read(&path)
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|source| SysfsError::Io {
                op: "read".into(),
                path,
                source,
            })
    }

    /// `rel` as an unsigned number.
    pub fn read_u64(&self, rel: &str) -> Result<u64, SysfsError> {
        let text = self.read(rel)?;
        text.trim().parse().map_err(|_| SysfsError::Parse {
            path: self.path(rel),
            text,
            expected: "an unsigned integer",
        })
    }

    /// `rel` as a signed number.
    pub fn read_i64(&self, rel: &str) -> Result<i64, SysfsError> {
        let text = self.read(rel)?;
        text.trim().parse().map_err(|_| SysfsError::Parse {
            path: self.path(rel),
            text,
            expected: "an integer",
        })
    }

    /// `rel` as a `Y`/`N` boolean.
    pub fn read_bool(&self, rel: &str) -> Result<bool, SysfsError> {
        let text = self.read(rel)?;
        match text.trim() {
            "Y" | "y" | "1" => Ok(true),
            "N" | "n" | "0" => Ok(false),
            _ => Err(SysfsError::Parse {
                path: self.path(rel),
                text,
                expected: "Y or N",
            }),
        }
    }

    /// Writes `value` to `rel`.
    pub fn write(&self, rel: &str, value: impl std::fmt::Display) -> Result<(), SysfsError> {
        let path = self.path(rel);
        let value = value.to_string();
        self.io
            .write(&path, &value)
            .map_err(|source| SysfsError::Io {
                op: format!("write {value:?} to"),
                path,
                source,
            })
    }

    /// Writes a `Y`/`N` boolean.
    pub fn write_bool(&self, rel: &str, v: bool) -> Result<(), SysfsError> {
        self.write(rel, if v { "Y" } else { "N" })
    }
}

/// Paths inside the tree, relative to its root.
pub mod paths {
    /// `kdamonds/nr_kdamonds`.
    pub const NR_KDAMONDS: &str = "kdamonds/nr_kdamonds";

    /// A kdamond's directory.
    pub fn kdamond(k: usize) -> String {
        format!("kdamonds/{k}")
    }

    /// The (only) context of kdamond `k`.
    pub fn ctx(k: usize) -> String {
        format!("kdamonds/{k}/contexts/0")
    }

    /// Target `t` of kdamond `k`'s context.
    pub fn target(k: usize, t: usize) -> String {
        format!("{}/targets/{t}", ctx(k))
    }

    /// Scheme `s` of kdamond `k`'s context.
    pub fn scheme(k: usize, s: usize) -> String {
        format!("{}/schemes/{s}", ctx(k))
    }
}
