//! The one error type of the damo formats and reports.

/// Errors of the damo formats and reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DamoError {
    /// A value is missing, has the wrong type or unit, or is out of range;
    /// `path` is its JSON path (`kdamonds[0].contexts[0].schemes[1].quotas.time_ms`).
    #[error("{path}: {message}")]
    Invalid {
        /// JSON path of the offending value.
        path: String,
        /// What is wrong, with the value.
        message: String,
    },
    /// The input is not well-formed (JSON syntax, zlib stream, trace text).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid for damo, but not representable here (or the reverse).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A report cannot be made from these records or options.
    #[error("{0}")]
    Report(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
