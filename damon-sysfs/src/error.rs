//! What can go wrong driving the kernel's DAMON, said so that the caller
//! knows how to react: a missing kernel feature names the kernel version
//! that added it; a foreign kdamond names its pid; I/O names the file.

use std::path::PathBuf;

/// An error of the sysfs engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysfsError {
    /// A sysfs file could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// `read` or `write` (with the value written).
        op: String,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel lacks what the Context needs; nothing was written.
    #[error("this kernel ({release}) lacks {feature}, which Linux {since} added")]
    Missing {
        /// What is missing (a sysfs file or keyword, in the kernel's words).
        feature: String,
        /// The kernel version that added it.
        since: &'static str,
        /// This kernel's release.
        release: String,
    },
    /// The kernel has no DAMON sysfs interface at all.
    #[error("no DAMON sysfs interface at {} (kernel without CONFIG_DAMON_SYSFS, or sysfs not mounted)", root.display())]
    NoInterface {
        /// The admin directory looked for.
        root: PathBuf,
    },
    /// A kdamond this library did not create is in the way.
    #[error("{0}")]
    Foreign(String),
    /// Another process of this library holds the DAMON sysfs lock.
    #[error("the DAMON sysfs lock {} is held by another process (another udamon or damon-rs user is configuring DAMON): retry when it is done", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A file held something this library cannot read.
    #[error("{}: unexpected content {text:?} ({expected})", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The Context cannot be expressed through sysfs.
    #[error("{0}")]
    Unsupported(String),
}
