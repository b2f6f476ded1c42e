//! Running child processes: printing what runs, checking exit codes,
//! and teeing a child's stdout while looking at each line.

use anyhow::{bail, Context as _, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};

/// Renders a command the way a user would type it (for logs and errors).
pub(crate) fn display(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            out.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    out.push_str(&quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(&arg.to_string_lossy()));
    }
    out
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed: {status}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` with inherited stdio and returns its exit status.
pub(crate) fn status(cmd: &mut Command) -> Result<ExitStatus> {
    eprintln!("xtask: $ {}", display(cmd));
    cmd.status()
        .with_context(|| format!("cannot run `{}`", display(cmd)))
}

/// Runs `cmd`, hands every stdout line to `on_line` and returns the status.
///
/// If `echo` is true each line is also printed to our stdout as it arrives.
/// Stderr is inherited, so progress messages reach the user directly.
pub(crate) fn tee_lines(
    cmd: &mut Command,
    echo: bool,
    mut on_line: impl FnMut(&str),
) -> Result<ExitStatus> {
    eprintln!("xtask: $ {}", display(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", display(cmd)))?;
    let stdout = child.stdout.take().context("child stdout is not piped")?;
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("reading child stdout")?;
        let line = String::from_utf8_lossy(&line);
        if echo {
            // A closed stdout (for example `| head`) must not stop the child.
            let _ = writeln!(out, "{line}");
        }
        on_line(&line);
    }
    child
        .wait()
        .with_context(|| format!("waiting for `{}`", display(cmd)))
}
