//! A child command the examples start and monitor.

use std::process::{Child, ExitStatus};
use std::time::Duration;

/// A command started to be monitored. Dropping it kills the command if it
/// still runs, and reaps it.
#[derive(Debug)]
pub struct Command {
    child: Child,
    argv: Vec<String>,
    status: Option<ExitStatus>,
}

impl Command {
    /// Starts `argv` (program and arguments) with inherited stdio.
    pub fn spawn(argv: &[String]) -> Result<Self, String> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| "no command given after --".to_string())?;
        let child = std::process::Command::new(prog)
            .args(args)
            .spawn()
            .map_err(|e| format!("cannot start {prog:?}: {e}"))?;
        Ok(Self {
            child,
            argv: argv.to_vec(),
            status: None,
        })
    }

    /// The command's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// How the command exited, if it has (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the command to exit by itself, then kills
    /// it; returns how it ended and whether it had to be killed.
    pub fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return (Some(s), false);
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        (self.status, true)
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
