//! Errors of the core, each telling the caller how to react.

use crate::target::TargetId;
use std::time::Duration;

/// An invalid parameter, naming the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidParam {
    /// Path of the offending field, e.g. `attrs.min_nr_regions` or `targets[1].regions[0]`.
    pub field: String,
    /// What rule the value broke.
    pub reason: String,
}

impl InvalidParam {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Errors a backend ([`crate::Operations`]) reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The target no longer exists (its process exited); drop it.
    #[error("target {id} is gone: {detail}")]
    TargetGone {
        /// The target's id (a pid for vaddr).
        id: TargetId,
        /// What was observed.
        detail: String,
    },
    /// The caller lacks a privilege; `hint` says which one.
    #[error("permission denied for {what}: {hint}")]
    PermissionDenied {
        /// The file or operation refused.
        what: String,
        /// How to obtain the permission.
        hint: String,
    },
    /// The kernel or backend cannot do this; `hint` names the missing piece.
    #[error("unsupported: {what} ({hint})")]
    Unsupported {
        /// What was asked.
        what: String,
        /// The missing kernel option, capability or alternative.
        hint: String,
    },
    /// A system call failed.
    #[error("{call} on {path}: {source}")]
    Io {
        /// The call (`pread`, `open`, ...).
        call: &'static str,
        /// The file or object.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Text from the kernel could not be parsed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The source (e.g. `/proc/1/maps line 3`).
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A parameter the backend was given is invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidParam),
}

/// Errors from the ops registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// An id was registered twice (the kernel's -EINVAL on double registration).
    #[error("operations id {0:?} is already registered")]
    Duplicate(String),
    /// No backend is registered under this id.
    #[error("no operations registered under id {0:?}")]
    Unknown(String),
    /// The id is empty or not `[a-z0-9_-]+`.
    #[error("invalid operations id {0:?}: use [a-z0-9_-]+")]
    BadId(String),
}

/// Why [`crate::damon_start`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// An exclusive group is running, or an exclusive group was asked for
    /// while any context runs (the kernel's -EBUSY).
    #[error("busy: {0}")]
    Busy(&'static str),
    /// No context was given.
    #[error("no context to start")]
    Empty,
    /// Context `index` has no operations selected.
    #[error("context {index} has no operations selected")]
    NoOps {
        /// Position in the group.
        index: usize,
    },
    /// Context `index` has an invalid parameter.
    #[error("context {index}: {source}")]
    Invalid {
        /// Position in the group.
        index: usize,
        /// The parameter and rule.
        #[source]
        source: InvalidParam,
    },
    /// The backend of context `index` failed to initialise.
    #[error("context {index}: operations init failed: {source}")]
    Init {
        /// Position in the group.
        index: usize,
        /// The backend's error.
        #[source]
        source: OpsError,
    },
    /// The worker thread could not be spawned.
    #[error("spawning the worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// [`crate::damon_start_reserved`] was given a number of contexts other
    /// than the slots reserved for them.
    #[error("{contexts} context(s) given for {slots} reserved running slot(s)")]
    Slots {
        /// Contexts given.
        contexts: usize,
        /// Slots reserved.
        slots: usize,
    },
}

/// Why a [`crate::DamonHandle::call`] did not return the closure's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The worker ended before running the closure (the kernel's -ECANCELED).
    #[error("the context stopped before the call ran")]
    Cancelled,
    /// Called from the context's own worker thread, where waiting would deadlock.
    #[error("damon_call from the worker thread itself would deadlock")]
    WouldDeadlock,
    /// The closure panicked; the context keeps running.
    #[error("the called closure panicked: {0}")]
    Panicked(String),
}

/// Why [`crate::DamonHandle::commit`] refused; the running context is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// A parameter of the source context is invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidParam),
    /// The context is not running.
    #[error("the context is not running")]
    NotRunning,
    /// Called from the worker thread itself.
    #[error("commit from the worker thread itself would deadlock")]
    WouldDeadlock,
    /// The new backend or scheme set cannot be used.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

/// Why [`crate::damon_stop`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// The context at `index` was not running (the kernel's -EPERM).
    #[error("context {index} is not running")]
    NotRunning {
        /// Position in the slice given.
        index: usize,
    },
}

/// Why [`crate::DamonHandle::call_timeout`] did not return the closure's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallTimeoutError {
    /// The closure did not complete within the given time, typically
    /// because the worker is blocked in a callback. If it had not started
    /// by then, it never will; if it had, it runs to completion on the
    /// worker and its value is dropped.
    #[error("the call did not complete within {0:?}")]
    Timeout(Duration),
    /// The call failed as [`crate::DamonHandle::call`] would have.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Why selecting a backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// Not registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The backend could not be built (e.g. a missing kernel feature).
    #[error(transparent)]
    Ops(#[from] OpsError),
}
