//! Reading the guest's serial log: the `@@` markers printed by `vm/init.sh`,
//! libtest's summary lines, and kernel trouble (panic, BUG, Oops).
//!
//! The protocol, one marker per line:
//!
//! ```text
//! @@ INIT uptime=1.62 kernel=6.12.117 cpus=0-1
//! @@ RUN <name>
//! …libtest output of <name>…
//! @@ RC <name> <exit code>
//! @@ LEAK <name> <pid> <cmdline>
//! @@ TAINT <value of /proc/sys/kernel/tainted>
//! @@ DONE
//! ```

use crate::libtest::{self, Counts};
use std::time::{Duration, Instant};

/// Kernel messages after which the guest cannot be trusted: the watchdog
/// stops qemu when one appears.
const KERNEL_TROUBLE: &[&str] = &["Kernel panic", "BUG: ", "Oops: "];

/// Whether a serial line reports a kernel panic, BUG or Oops.
pub(crate) fn kernel_trouble(line: &str) -> bool {
    KERNEL_TROUBLE.iter().any(|pat| line.contains(pat))
}

/// Turns raw console bytes into a printable line: terminal escape
/// sequences (SeaBIOS clears the screen) and control characters such as
/// the serial `\r` are dropped.
pub(crate) fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI (ESC [ parameters, then one final byte in '@'..='~'), or
            // a two-character sequence such as ESC c (reset).
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// What one test binary did in the guest.
#[derive(Debug, Default, Clone)]
pub(crate) struct BinaryRun {
    /// The name from `@@ RUN`.
    pub name: String,
    /// Sum of its libtest summary lines.
    pub counts: Counts,
    /// Whether a summary line was seen.
    pub has_summary: bool,
    /// Exit code from `@@ RC`; `None` if the binary never finished.
    pub rc: Option<i32>,
    /// Host-side time from `@@ RUN` to `@@ RC`.
    pub elapsed: Option<Duration>,
    started: Option<Instant>,
}

impl BinaryRun {
    /// The counts this binary contributes to the total: a binary that exited
    /// non-zero (or never exited) has at least one failure, even when its
    /// summary line is missing.
    pub(crate) fn effective(&self) -> Counts {
        let mut counts = self.counts;
        if self.rc != Some(0) {
            counts.failed = counts.failed.max(1);
        }
        counts
    }

    /// `ok` or `FAILED`.
    pub(crate) fn verdict(&self) -> &'static str {
        if self.effective().failed == 0 {
            "ok"
        } else {
            "FAILED"
        }
    }
}

/// Everything learnt from the serial log so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Test binaries in the order they ran.
    pub runs: Vec<BinaryRun>,
    /// The `@@ INIT` line (init started), without the marker.
    pub init: Option<String>,
    /// When the `@@ INIT` line arrived.
    pub init_at: Option<Instant>,
    /// Whether `@@ DONE` was seen.
    pub done: bool,
    /// The first panic/BUG/Oops line.
    pub kernel_trouble: Option<String>,
    /// Kernel `WARNING:` lines (reported, not fatal).
    pub warnings: Vec<String>,
    /// Setup problems init reported with `@@ WARN`.
    pub init_warnings: Vec<String>,
    /// Processes a binary left running (`@@ LEAK <name> <pid> <cmdline>`),
    /// which init killed.
    pub leaks: Vec<String>,
    /// The kernel's taint flags after the tests (`@@ TAINT`), if not 0.
    pub tainted: Option<u64>,
}

impl Report {
    /// Takes one serial line (without its line ending), received at `at`.
    ///
    /// Markers are recognised anywhere in the line, since a kernel message
    /// can share a console line with init's output.
    pub(crate) fn feed(&mut self, line: &str, at: Instant) {
        if kernel_trouble(line) && self.kernel_trouble.is_none() {
            self.kernel_trouble = Some(line.to_owned());
        }
        if line.contains("WARNING: CPU:") {
            self.warnings.push(line.to_owned());
        }
        if let Some(pos) = line.find("@@ ") {
            self.feed_marker(line[pos + 3..].trim_end(), at);
        } else if let Some(counts) = libtest::parse_result_line(line) {
            if let Some(run) = self.current() {
                run.counts += counts;
                run.has_summary = true;
            }
        }
    }

    fn feed_marker(&mut self, marker: &str, at: Instant) {
        let (word, rest) = marker.split_once(' ').unwrap_or((marker, ""));
        match word {
            "INIT" => {
                self.init = Some(rest.to_owned());
                self.init_at = Some(at);
            }
            "RUN" => self.runs.push(BinaryRun {
                name: rest.to_owned(),
                started: Some(at),
                ..BinaryRun::default()
            }),
            "RC" => {
                let (name, rc) = rest.rsplit_once(' ').unwrap_or((rest, ""));
                if let Some(run) = self.current().filter(|r| r.name == name) {
                    // An unparsable code still means "finished, not cleanly".
                    run.rc = Some(rc.parse().unwrap_or(-1));
                    run.elapsed = run.started.map(|s| at.saturating_duration_since(s));
                }
            }
            "DONE" => self.done = true,
            "TAINT" => self.tainted = rest.trim().parse().ok().filter(|&t| t != 0),
            "WARN" => self.init_warnings.push(rest.to_owned()),
            "LEAK" => self.leaks.push(rest.to_owned()),
            _ => {}
        }
    }

    /// The binary that is running (started, no `@@ RC` yet).
    fn current(&mut self) -> Option<&mut BinaryRun> {
        self.runs.last_mut().filter(|r| r.rc.is_none())
    }

    /// Passed/failed over all binaries (see [`BinaryRun::effective`]).
    pub(crate) fn totals(&self) -> Counts {
        let mut total = Counts::default();
        for run in &self.runs {
            total += run.effective();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(log: &str) -> Report {
        let mut r = Report::default();
        let now = Instant::now();
        for line in log.lines() {
            r.feed(line, now);
        }
        r
    }

    const OK: &str = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s";

    #[test]
    fn sums_binaries_and_sees_done() {
        let log = format!(
            "@@ INIT uptime=1.5 kernel=6.12\n@@ RUN a\nrunning 3 tests\n{OK}\n@@ RC a 0\n\
             @@ RUN b\n{}\n@@ RC b 101\n@@ LEAK b 77 /bin/workload -e x\n@@ TAINT 512\n@@ DONE\n",
            "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s"
        );
        let r = report(&log);
        assert!(r.done);
        assert_eq!(r.tainted, Some(512));
        assert_eq!(r.leaks, ["b 77 /bin/workload -e x"]);
        assert_eq!(r.runs.len(), 2);
        assert_eq!(r.runs[0].verdict(), "ok");
        assert_eq!(r.runs[1].verdict(), "FAILED");
        assert_eq!(
            r.totals(),
            Counts {
                passed: 7,
                failed: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn crash_without_summary_counts_one_failure() {
        let r = report("@@ RUN a\nrunning 3 tests\nSegmentation fault\n@@ RC a 139\n@@ DONE\n");
        assert_eq!(
            r.totals(),
            Counts {
                passed: 0,
                failed: 1,
                ignored: 0
            }
        );
    }

    #[test]
    fn unfinished_binary_and_missing_done() {
        let r = report(&format!(
            "@@ RUN a\n{OK}\n@@ RC a 0\n@@ RUN b\n[ 9.0] Kernel panic - not syncing: x\n"
        ));
        assert!(!r.done);
        assert_eq!(r.runs[1].rc, None);
        assert_eq!(
            r.totals(),
            Counts {
                passed: 3,
                failed: 1,
                ignored: 1
            }
        );
        assert!(r
            .kernel_trouble
            .as_deref()
            .is_some_and(|l| l.contains("Kernel panic")));
    }

    #[test]
    fn cleans_console_lines() {
        assert_eq!(
            clean_line(b"\x1bc\x1b[?7l\x1b[2J@@ INIT uptime=1.5\r"),
            "@@ INIT uptime=1.5"
        );
        assert_eq!(clean_line(b"a\tb\x07c"), "a\tbc");
        let r = report("\x1bc\x1b[?7l@@ INIT x\n[ 1.0] msg @@ DONE\n");
        assert!(r.init.is_some() && r.done);
    }

    #[test]
    fn summary_outside_a_run_is_ignored() {
        let r = report(&format!("{OK}\n@@ DONE\n"));
        assert_eq!(r.totals(), Counts::default());
    }
}
