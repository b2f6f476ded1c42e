//! Errors of the pure parsers.

use damon_core::OpsError;

/// Text from the kernel that could not be parsed, naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name} line {line}: {detail}")]
pub struct ParseError {
    /// What was parsed (`/proc/iomem`, `/proc/PID/maps`, ...).
    pub source_name: String,
    /// 1-based line number (0 for a whole-file problem).
    pub line: usize,
    /// What was wrong.
    pub detail: String,
}

impl ParseError {
    /// A parse error at `line` (1-based) of `source_name`.
    pub fn new(source_name: impl Into<String>, line: usize, detail: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            line,
            detail: detail.into(),
        }
    }
}

impl From<ParseError> for OpsError {
    fn from(e: ParseError) -> Self {
        OpsError::Malformed {
            what: format!("{} line {}", e.source_name, e.line),
            detail: e.detail,
        }
    }
}

/// Parses a hexadecimal number with or without a `0x` prefix.
pub fn parse_hex(s: &str) -> Option<u64> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}
