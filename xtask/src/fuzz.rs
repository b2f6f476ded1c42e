//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs every cargo-fuzz
//! target (or the ones named) for N seconds each.
//!
//! The fuzz crate (`fuzz/`) has its own workspace; cargo-fuzz needs nightly
//! flags, which `RUSTC_BOOTSTRAP=1` enables on the stable toolchain. Each
//! target starts from its seeds (`fuzz/seeds/<target>/`); every input that
//! crashes a target is copied to `fuzz/regressions/<target>/`, where the
//! ordinary test `examples/tests/fuzz_regressions.rs` replays it forever.

use crate::process;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, ExitCode};

const HELP: &str = "\
usage: cargo xtask fuzz [--seconds N] [TARGET...]

Runs each fuzz target (default: all of fuzz/fuzz_targets/) for N seconds
(default 30), installing cargo-fuzz first if needed. Crashing inputs are
kept in fuzz/regressions/<target>/ and replayed by `cargo test`.
";

/// Entry point of the verb.
pub(crate) fn main(args: Vec<String>) -> Result<ExitCode> {
    let mut seconds = 30u64;
    let mut targets = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds: {v:?} is not a number"))?;
            }
            t if !t.starts_with('-') => targets.push(t.to_owned()),
            other => bail!("unknown option {other:?}\n\n{HELP}"),
        }
    }
    let root = crate::workspace_root();
    let fuzz_dir = root.join("fuzz");
    if targets.is_empty() {
        let mut names: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
            .context("reading fuzz/fuzz_targets")?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        targets = names;
    }
    ensure_cargo_fuzz()?;
    let mut crashed = Vec::new();
    for t in &targets {
        let corpus = fuzz_dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        let artifacts = fuzz_dir.join("artifacts").join(t);
        let before = list(&artifacts);
        let mut cmd = Command::new(crate::cargo());
        cmd.current_dir(&root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(t)
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        let status = process::status(&mut cmd)?;
        let new: Vec<_> = list(&artifacts)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if !status.success() || !new.is_empty() {
            let keep = fuzz_dir.join("regressions").join(t);
            std::fs::create_dir_all(&keep)?;
            for p in &new {
                let dest = keep.join(p.file_name().expect("artifact file name"));
                std::fs::copy(p, &dest).with_context(|| format!("keeping {}", p.display()))?;
                eprintln!("xtask fuzz: {t}: kept crashing input {}", dest.display());
            }
            crashed.push(t.clone());
        }
    }
    println!(
        "fuzz: {} targets run for {seconds} s each, {} crashed{}",
        targets.len(),
        crashed.len(),
        if crashed.is_empty() {
            String::new()
        } else {
            format!(": {}", crashed.join(", "))
        }
    );
    Ok(if crashed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new(crate::cargo())
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("xtask fuzz: installing cargo-fuzz (a few minutes, once)");
        process::run(Command::new(crate::cargo()).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
