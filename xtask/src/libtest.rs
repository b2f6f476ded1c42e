//! Parsing libtest's summary line (`test result: ok. 3 passed; 0 failed; …`).

use std::ops::AddAssign;

/// The counts of one or more libtest summary lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests marked `#[ignore]`.
    pub ignored: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, rhs: Self) {
        self.passed += rhs.passed;
        self.failed += rhs.failed;
        self.ignored += rhs.ignored;
    }
}

/// Parses a libtest summary line such as
/// `test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
///
/// The marker may be preceded by other text (a kernel message on the same
/// serial line, for example). Returns `None` for any other line.
pub(crate) fn parse_result_line(line: &str) -> Option<Counts> {
    let start = line.find("test result: ")?;
    let rest = &line[start + "test result: ".len()..];
    let (_verdict, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    let mut seen_passed = false;
    let mut seen_failed = false;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let (Some(number), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = number.parse::<u64>() else {
            continue;
        };
        match what {
            "passed" => (counts.passed, seen_passed) = (n, true),
            "failed" => (counts.failed, seen_failed) = (n, true),
            "ignored" => counts.ignored = n,
            _ => {}
        }
    }
    (seen_passed && seen_failed).then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.20s";
        assert_eq!(
            parse_result_line(ok),
            Some(Counts {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
        let failed = "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s";
        assert_eq!(
            parse_result_line(failed),
            Some(Counts {
                passed: 2,
                failed: 1,
                ignored: 0
            })
        );
    }

    #[test]
    fn tolerates_a_prefix_and_rejects_other_lines() {
        let mixed = "[   3.1] random: crng init done test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s";
        assert_eq!(parse_result_line(mixed).map(|c| c.passed), Some(1));
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(parse_result_line("test result: ok."), None);
        assert_eq!(
            parse_result_line("test result: ok. x passed; 0 failed"),
            None
        );
    }
}
