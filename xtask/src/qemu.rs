//! Booting the guest under qemu (TCG) with a watchdog.
//!
//! qemu runs under coreutils `timeout` (so it cannot outlive us even if we
//! are killed) and is stopped early when the guest prints a kernel panic,
//! BUG or Oops, or stays silent for too long. The serial console is written
//! to a log file and echoed to stdout as it arrives.

use crate::process;
use crate::serial;
use anyhow::{Context as _, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The kernel command line (see `shared/reference/vm-harness.md`).
const APPEND: &str = "console=ttyS0 panic=-1 quiet nopcid";

/// After a BUG/Oops, how long to keep reading (the backtrace) before
/// stopping qemu.
const TROUBLE_GRACE: Duration = Duration::from_secs(3);

/// What to boot and how long to allow.
#[derive(Debug, Clone)]
pub(crate) struct Boot {
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs (newc cpio).
    pub initrd: PathBuf,
    /// Where the serial log goes.
    pub log: PathBuf,
    /// Limit for the whole run.
    pub timeout: Duration,
    /// Stop when the guest prints nothing for this long.
    pub silence: Duration,
}

/// Why qemu stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// qemu exited by itself (the guest ran `reboot -f`) with this status.
    Exited(String),
    /// We stopped it: the whole run took longer than [`Boot::timeout`].
    Timeout,
    /// We stopped it: no serial output for [`Boot::silence`].
    Silent,
    /// We stopped it (or it rebooted) after this kernel message.
    KernelTrouble(String),
}

/// The outcome of one boot.
#[derive(Debug)]
pub(crate) struct Run {
    /// Why it ended.
    pub ending: Ending,
    /// Whether qemu exited with status 0 (only meaningful for `Exited`).
    pub exit_ok: bool,
    /// Wall time from spawning qemu until it was gone.
    pub wall: Duration,
}

enum Event {
    Line(String, Instant),
    Closed,
}

impl Boot {
    /// The qemu command line: 1 vCPU, 1 GiB in two NUMA nodes (ACPI SRAT;
    /// node 1 has memory and no CPU), serial console on stdio, no reboot
    /// (the guest's `reboot -f` ends qemu).
    ///
    /// Why one vCPU and `nopcid`: x86 sets a PTE's accessed bit only when it
    /// loads the translation into the TLB, and clearing the bit (page_idle,
    /// DAMON) does not flush the TLB. Real CPUs evict TLB entries constantly;
    /// qemu's software TLB grows to hold a whole working set and keeps it, so
    /// a process busy on its own vCPU stopped showing accesses after a few
    /// seconds (flaky vaddr tests). With one vCPU every sampling wake-up
    /// switches context, and without PCID each switch reloads CR3, which
    /// flushes qemu's TLB: accesses are seen as on real hardware.
    pub(crate) fn qemu_args(&self) -> Vec<String> {
        #[rustfmt::skip]
        let args = [
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1G",
            "-object", "memory-backend-ram,id=m0,size=512M",
            "-object", "memory-backend-ram,id=m1,size=512M",
            "-numa", "node,nodeid=0,cpus=0,memdev=m0",
            "-numa", "node,nodeid=1,memdev=m1",
            "-nographic", "-no-reboot",
        ];
        let mut out: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        out.push("-kernel".into());
        out.push(self.kernel.display().to_string());
        out.push("-initrd".into());
        out.push(self.initrd.display().to_string());
        out.push("-append".into());
        out.push(APPEND.into());
        out
    }

    /// The full command: `timeout` (a backstop a minute after our own limit)
    /// around `qemu-system-x86_64`.
    pub(crate) fn command(&self) -> Command {
        let backstop = self.timeout.as_secs() + 60;
        let mut cmd = Command::new("timeout");
        // --foreground: stay in our process group, so Ctrl-C reaches qemu.
        cmd.args(["--foreground", "--kill-after=10", &format!("{backstop}s")])
            .arg("qemu-system-x86_64")
            .args(self.qemu_args());
        cmd
    }

    /// Writes a script that repeats this boot by hand.
    pub(crate) fn write_script(&self, path: &Path) -> Result<()> {
        let script = format!(
            "#!/bin/sh\n# Boots the last VM-suite initramfs again (Ctrl-A x quits qemu).\nexec {}\n",
            process::display(&self.command())
        );
        std::fs::write(path, script).with_context(|| format!("writing {}", path.display()))
    }

    /// Boots, streaming every serial line to the log, to stdout and to
    /// `on_line`, and returns once qemu is gone.
    pub(crate) fn run(&self, mut on_line: impl FnMut(&str, Instant)) -> Result<Run> {
        let mut log =
            File::create(&self.log).with_context(|| format!("creating {}", self.log.display()))?;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!("xtask: $ {}", process::display(&cmd));
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let readers = [
            spawn_reader(stdout, "", tx.clone()),
            spawn_reader(stderr, "qemu: ", tx),
        ];

        let mut open_streams = readers.len();
        let mut watchdog = Watchdog::new(started, self.timeout, self.silence);
        let mut exited_at: Option<Instant> = None;
        let mut stdout = std::io::stdout();
        while open_streams > 0 {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Event::Line(line, at)) => {
                    // Best effort: a full disk or closed stdout must not stop the watchdog.
                    let _ = writeln!(log, "{line}");
                    let _ = writeln!(stdout, "{line}");
                    on_line(&line, at);
                    watchdog.line(&line, at);
                }
                Ok(Event::Closed) => open_streams -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if watchdog.should_stop(Instant::now()) && child.try_wait()?.is_none() {
                if let Some(why) = &watchdog.ending {
                    eprintln!("xtask: watchdog: stopping qemu ({why:?})");
                }
                stop(&mut child)?;
            }
            // A stray holder of qemu's pipes must not keep us waiting.
            if child.try_wait()?.is_some() {
                let since = *exited_at.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
        }
        let status = child.wait().context("waiting for qemu")?;
        if open_streams == 0 {
            for reader in readers {
                let _ = reader.join();
            }
        }
        let _ = log.flush();
        let ending = watchdog
            .ending
            .unwrap_or_else(|| Ending::Exited(status.to_string()));
        Ok(Run {
            ending,
            exit_ok: status.success(),
            wall: started.elapsed(),
        })
    }
}

/// Decides when to stop qemu: the run is too long, the guest is silent,
/// or a kernel panic/BUG/Oops was printed (after a grace period, so that
/// its backtrace reaches the log).
struct Watchdog {
    started: Instant,
    timeout: Duration,
    silence: Duration,
    last_output: Instant,
    trouble_since: Option<Instant>,
    /// Why qemu is (to be) stopped; `None` while all is well.
    ending: Option<Ending>,
}

impl Watchdog {
    fn new(started: Instant, timeout: Duration, silence: Duration) -> Self {
        Watchdog {
            started,
            timeout,
            silence,
            last_output: started,
            trouble_since: None,
            ending: None,
        }
    }

    /// Notes a serial line that arrived at `at`.
    fn line(&mut self, line: &str, at: Instant) {
        self.last_output = at;
        if self.ending.is_none() && serial::kernel_trouble(line) {
            self.trouble_since = Some(at);
            self.ending = Some(Ending::KernelTrouble(line.to_owned()));
        }
    }

    /// Whether qemu should be stopped at `now`.
    fn should_stop(&mut self, now: Instant) -> bool {
        if self.ending.is_none() {
            if now.saturating_duration_since(self.started) > self.timeout {
                self.ending = Some(Ending::Timeout);
            } else if now.saturating_duration_since(self.last_output) > self.silence {
                self.ending = Some(Ending::Silent);
            }
        }
        match (&self.ending, self.trouble_since) {
            (Some(Ending::KernelTrouble(_)), Some(t)) => {
                now.saturating_duration_since(t) > TROUBLE_GRACE
            }
            (ending, _) => ending.is_some(),
        }
    }
}

/// Reads `stream` line by line into `tx`, cleaned by [`serial::clean_line`].
fn spawn_reader(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    tx: mpsc::Sender<Event>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for chunk in BufReader::new(stream).split(b'\n') {
            let Ok(bytes) = chunk else { break };
            let text = serial::clean_line(&bytes);
            if tx
                .send(Event::Line(format!("{prefix}{text}"), Instant::now()))
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(Event::Closed);
    })
}

/// Stops qemu: SIGTERM to `timeout`, which passes it on to qemu and sends
/// SIGKILL ten seconds later if needed; a last-resort SIGKILL of our own.
fn stop(child: &mut Child) -> Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    child.kill().context("killing qemu")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn watchdog_timeout_and_silence() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 100 * S, 10 * S);
        w.line("booting", t0 + 5 * S);
        assert!(!w.should_stop(t0 + 14 * S));
        assert!(w.should_stop(t0 + 16 * S));
        assert_eq!(w.ending, Some(Ending::Silent));

        let mut w = Watchdog::new(t0, 100 * S, 10 * S);
        for i in 0..101 {
            w.line("tick", t0 + i * S);
        }
        assert!(w.should_stop(t0 + 101 * S));
        assert_eq!(w.ending, Some(Ending::Timeout));
    }

    #[test]
    fn watchdog_waits_for_the_backtrace_after_kernel_trouble() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 100 * S, 10 * S);
        w.line("[ 3.0] BUG: kernel NULL pointer dereference", t0 + S);
        w.line("[ 3.0] Call Trace:", t0 + S);
        assert!(!w.should_stop(t0 + 2 * S));
        assert!(w.should_stop(t0 + 5 * S));
        assert!(matches!(w.ending, Some(Ending::KernelTrouble(ref l)) if l.contains("BUG:")));
    }
}
