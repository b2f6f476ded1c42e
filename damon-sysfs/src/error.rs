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

/// Why [`crate::damon_start_on`] refused a group; nothing of it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineStartError {
    /// Our engine refused: the group's exclusive rules (busy), a context's
    /// parameters, or a backend's `init`.
    #[error(transparent)]
    User(#[from] damon_core::StartError),
    /// `Engine::Kernel` was asked for and the kernel's DAMON cannot run
    /// context `index`; `Engine::Auto` would run it on ours.
    #[error("context {index}: the kernel engine cannot run it: {source}")]
    Kernel {
        /// Position in the group.
        index: usize,
        /// Why.
        #[source]
        source: SysfsError,
    },
    /// Context `index` runs on our engine and its named operations set
    /// (see `Context::name_ops`) has no backend of ours that could start.
    #[error("context {index}: cannot select our {ops:?} backend: {source}{}", kernel.as_ref().map_or(String::new(), |k| format!(" (and the kernel's DAMON cannot run it: {k})")))]
    Select {
        /// Position in the group.
        index: usize,
        /// The operations set.
        ops: String,
        /// Why the kernel's DAMON did not run it instead (`Engine::Auto`).
        kernel: Option<String>,
        /// The registry's or the backend's error.
        #[source]
        source: damon_core::SelectError,
    },
}
