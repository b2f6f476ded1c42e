//! Dependency hygiene, in the spirit of `cargo deny`: every package in the
//! dependency graph must carry a license from an allow-list (an SPDX
//! expression passes when one of its `OR` alternatives uses only allowed
//! licenses), and crates present in several versions are listed.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Licenses accepted in the dependency graph (permissive ones).
const ALLOWED: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "Unlicense",
    "BSL-1.0",
    "0BSD",
    "MPL-2.0",
];

/// Whether an SPDX expression is acceptable.
pub(crate) fn license_ok(expr: &str) -> bool {
    let e = expr.replace(['(', ')'], " ");
    let e = e.replace('/', " OR "); // old crates write "MIT/Apache-2.0"
    e.split(" OR ").any(|alt| {
        alt.split(" AND ").all(|id| {
            let id = id.trim();
            ALLOWED.contains(&id)
        })
    })
}

/// Checks the graph of the workspace at `root` (and the fuzz workspace);
/// prints findings and returns whether every license is allowed.
pub(crate) fn check(root: &Path) -> Result<bool> {
    let mut ok = true;
    for manifest in [root.join("Cargo.toml"), root.join("fuzz/Cargo.toml")] {
        let out = Command::new(crate::cargo())
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .with_context(|| format!("cargo metadata for {}", manifest.display()))?;
        if !out.status.success() {
            eprintln!(
                "xtask deps: cargo metadata failed for {}:\n{}",
                manifest.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(false);
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("cargo metadata JSON")?;
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in v["packages"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("?").to_string();
            let version = p["version"].as_str().unwrap_or("?").to_string();
            let local = p["source"].is_null();
            if !local {
                match p["license"].as_str() {
                    Some(l) if license_ok(l) => {}
                    Some(l) => {
                        eprintln!("xtask deps: {name} {version}: license {l:?} is not allowed");
                        ok = false;
                    }
                    None => {
                        eprintln!("xtask deps: {name} {version}: no SPDX license");
                        ok = false;
                    }
                }
            }
            versions.entry(name).or_default().push(version);
        }
        let dups: Vec<String> = versions
            .iter()
            .filter(|(_, vs)| vs.len() > 1)
            .map(|(n, vs)| format!("{n} ({})", vs.join(", ")))
            .collect();
        if !dups.is_empty() {
            eprintln!(
                "xtask deps: {}: crates in several versions: {}",
                manifest.display(),
                dups.join("; ")
            );
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::license_ok;

    #[test]
    fn spdx_expressions() {
        assert!(license_ok("MIT OR Apache-2.0"));
        assert!(license_ok("(MIT OR Apache-2.0) AND Unicode-3.0"));
        assert!(license_ok(
            "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"
        ));
        assert!(license_ok("MIT/Apache-2.0"));
        assert!(!license_ok("GPL-2.0"));
        assert!(!license_ok("MIT AND GPL-3.0"));
        assert!(license_ok("GPL-3.0 OR MIT"));
    }
}
