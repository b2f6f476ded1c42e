//! `cargo xtask public-api [--bless]`: one snapshot of each library crate's
//! public API, kept in `<crate>/public-api.txt`, so that an API change shows
//! in review as a change of that file.
//!
//! The API is read from rustdoc's JSON output (an unstable rustdoc format,
//! enabled on the stable toolchain with `RUSTC_BOOTSTRAP=1` for that one
//! command): every public item reachable from the crate root, one line
//! each, with function signatures, public fields, enum variants, trait
//! methods, inherent methods and the trait impls written in the crate
//! (auto-trait and blanket impls are left out). Without `--bless` the
//! snapshots are compared and a difference fails; with it they are
//! rewritten.

use crate::process;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, ExitCode};

/// The library crates whose API is snapshotted: (package, lib name).
pub(crate) const CRATES: &[(&str, &str)] = &[
    ("damon-core", "damon_core"),
    ("damon-ops-common", "damon_ops_common"),
    ("damon-ops-paddr", "damon_ops_paddr"),
    ("damon-ops-vaddr", "damon_ops_vaddr"),
    ("damon-schemes", "damon_schemes"),
    ("damon-damo", "damon_damo"),
    ("damon-sysfs", "damon_sysfs"),
];

const HELP: &str = "\
usage: cargo xtask public-api [--bless]

Compares each library crate's public API (from rustdoc's JSON) with the
snapshot in <crate>/public-api.txt; --bless rewrites the snapshots.
";

/// The verb's entry point.
pub(crate) fn main(args: Vec<String>) -> Result<ExitCode> {
    let mut bless = false;
    for a in &args {
        match a.as_str() {
            "--bless" => bless = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("public-api: unknown option {other:?}\n\n{HELP}"),
        }
    }
    let ok = check(&crate::workspace_root(), bless)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks (or, with `bless`, rewrites) every snapshot; whether all matched.
pub(crate) fn check(root: &Path, bless: bool) -> Result<bool> {
    let mut ok = true;
    for &(package, lib) in CRATES {
        let api = api_of(root, package, lib)?;
        let path = root.join(package).join("public-api.txt");
        if bless {
            std::fs::write(&path, &api).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("xtask: public-api: wrote {}", path.display());
            continue;
        }
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != api {
            ok = false;
            eprintln!(
                "xtask: public-api: {package}'s public API differs from {}:",
                path.display()
            );
            print_diff(&old, &api);
            eprintln!(
                "xtask: public-api: if the change is meant, run `cargo xtask public-api --bless`"
            );
        }
    }
    Ok(ok)
}

/// Lines only in the snapshot (`-`) and only in the code (`+`).
fn print_diff(old: &str, new: &str) {
    let old: BTreeSet<&str> = old.lines().collect();
    let new: BTreeSet<&str> = new.lines().collect();
    for l in old.difference(&new) {
        eprintln!("  - {l}");
    }
    for l in new.difference(&old) {
        eprintln!("  + {l}");
    }
}

/// The public API of one crate, one sorted line per item.
fn api_of(root: &Path, package: &str, lib: &str) -> Result<String> {
    let target = root.join("target").join("public-api");
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target)
        .args(["rustdoc", "-q", "-p", package, "--lib", "--"])
        .args(["-Z", "unstable-options", "--output-format", "json"])
        .args(["-A", "rustdoc::all"]);
    process::run(&mut cmd)?;
    let json = target.join("doc").join(format!("{lib}.json"));
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let doc: Value = serde_json::from_str(&text).context("parsing rustdoc JSON")?;
    let mut lines = BTreeSet::new();
    let root_id = doc["root"].clone();
    Walker {
        index: &doc["index"],
        lines: &mut lines,
    }
    .item(&root_id, "")?;
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

struct Walker<'a> {
    index: &'a Value,
    lines: &'a mut BTreeSet<String>,
}

impl<'a> Walker<'a> {
    fn get(&self, id: &Value) -> Option<&'a Value> {
        let key = match id {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return None,
        };
        let index: &'a Value = self.index;
        index.get(key)
    }

    /// Records item `id`, found at `prefix` (empty for the crate root).
    fn item(&mut self, id: &Value, prefix: &str) -> Result<()> {
        let Some(item) = self.get(id) else {
            return Ok(());
        };
        if item["visibility"] != "public" && !prefix.is_empty() {
            return Ok(());
        }
        let name = item["name"].as_str().unwrap_or("");
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}::{name}")
        };
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else {
            return Ok(());
        };
        match kind.as_str() {
            "module" => {
                self.lines.insert(format!("mod {path}"));
                for child in inner["items"].as_array().into_iter().flatten() {
                    self.item(child, &path)?;
                }
            }
            "use" => {
                let glob = if inner["is_glob"] == true { "::*" } else { "" };
                self.lines.insert(format!(
                    "pub use {prefix}::{} = {}{glob}",
                    inner["name"].as_str().unwrap_or(""),
                    inner["source"].as_str().unwrap_or("")
                ));
            }
            "function" => {
                self.lines.insert(format!("fn {path}{}", sig(inner)));
            }
            "struct" => {
                self.lines.insert(format!("struct {path}"));
                let fields = inner["kind"]["plain"]["fields"]
                    .as_array()
                    .or_else(|| inner["kind"]["tuple"].as_array());
                for (i, f) in fields.into_iter().flatten().enumerate() {
                    if let Some(field) = self.get(f) {
                        if field["visibility"] == "public" {
                            let fname = field["name"].as_str().map_or(i.to_string(), str::to_owned);
                            let ty = ty(&field["inner"]["struct_field"]);
                            self.lines.insert(format!("field {path}.{fname}: {ty}"));
                        }
                    }
                }
                self.impls(inner, &path);
            }
            "enum" => {
                self.lines.insert(format!("enum {path}"));
                for v in inner["variants"].as_array().into_iter().flatten() {
                    if let Some(var) = self.get(v) {
                        let vname = var["name"].as_str().unwrap_or("");
                        self.lines.insert(format!("variant {path}::{vname}"));
                    }
                }
                self.impls(inner, &path);
            }
            "trait" => {
                self.lines.insert(format!("trait {path}"));
                for m in inner["items"].as_array().into_iter().flatten() {
                    if let Some(mi) = self.get(m) {
                        let mname = mi["name"].as_str().unwrap_or("");
                        match mi["inner"].get("function") {
                            Some(f) => {
                                let provided = if f["has_body"] == true {
                                    " (provided)"
                                } else {
                                    ""
                                };
                                self.lines.insert(format!(
                                    "trait-fn {path}::{mname}{}{provided}",
                                    sig(f)
                                ));
                            }
                            None => {
                                self.lines.insert(format!("trait-item {path}::{mname}"));
                            }
                        }
                    }
                }
            }
            "type_alias" => {
                self.lines
                    .insert(format!("type {path} = {}", ty(&inner["type"])));
            }
            "constant" => {
                self.lines
                    .insert(format!("const {path}: {}", ty(&inner["type"])));
            }
            "static" => {
                self.lines
                    .insert(format!("static {path}: {}", ty(&inner["type"])));
            }
            "macro" => {
                self.lines.insert(format!("macro {path}!"));
            }
            other => {
                self.lines.insert(format!("{other} {path}"));
            }
        }
        Ok(())
    }

    /// Inherent public methods and the trait impls written in the crate.
    fn impls(&mut self, inner: &'a Value, path: &str) {
        for imp in inner["impls"].as_array().into_iter().flatten() {
            let Some(imp) = self.get(imp) else { continue };
            let i = &imp["inner"]["impl"];
            if i["is_synthetic"] == true || !i["blanket_impl"].is_null() {
                continue;
            }
            if let Some(tr) = i["trait"].as_object() {
                let name = tr["path"].as_str().unwrap_or("");
                self.lines.insert(format!("impl {name} for {path}"));
                continue;
            }
            for m in i["items"].as_array().into_iter().flatten() {
                let Some(mi) = self.get(m) else { continue };
                if mi["visibility"] != "public" {
                    continue;
                }
                let mname = mi["name"].as_str().unwrap_or("");
                match mi["inner"].get("function") {
                    Some(f) => {
                        self.lines
                            .insert(format!("method {path}::{mname}{}", sig(f)));
                    }
                    None => {
                        self.lines.insert(format!("assoc {path}::{mname}"));
                    }
                }
            }
        }
    }
}

/// A function's `(args) -> output`.
fn sig(f: &Value) -> String {
    let s = &f["sig"];
    let args: Vec<String> = s["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let name = a[0].as_str().unwrap_or("_");
            if name == "self" {
                ty(&a[1]).replace("Self", "self")
            } else {
                format!("{name}: {}", ty(&a[1]))
            }
        })
        .collect();
    let out = if s["output"].is_null() {
        String::new()
    } else {
        format!(" -> {}", ty(&s["output"]))
    };
    format!("({}){out}", args.join(", "))
}

/// A type, as far as the snapshot needs it.
fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return t.as_str().unwrap_or("_").to_owned();
    };
    match kind.as_str() {
        "primitive" | "generic" => v.as_str().unwrap_or("_").to_owned(),
        "resolved_path" => format!("{}{}", v["path"].as_str().unwrap_or("_"), args(&v["args"])),
        "borrowed_ref" => {
            let m = if v["is_mutable"] == true { "mut " } else { "" };
            format!("&{m}{}", ty(&v["type"]))
        }
        "raw_pointer" => {
            let m = if v["is_mutable"] == true {
                "mut"
            } else {
                "const"
            };
            format!("*{m} {}", ty(&v["type"]))
        }
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), v["len"].as_str().unwrap_or("_")),
        "tuple" => {
            let parts: Vec<String> = v.as_array().into_iter().flatten().map(ty).collect();
            format!("({})", parts.join(", "))
        }
        "impl_trait" => format!("impl {}", bounds(v)),
        "dyn_trait" => {
            let traits: Vec<String> = v["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let tr = &p["trait"];
                    format!(
                        "{}{}",
                        tr["path"].as_str().unwrap_or("_"),
                        args(&tr["args"])
                    )
                })
                .collect();
            format!("dyn {}", traits.join(" + "))
        }
        "qualified_path" => format!(
            "<{} as _>::{}",
            ty(&v["self_type"]),
            v["name"].as_str().unwrap_or("_")
        ),
        "function_pointer" => "fn(..)".to_owned(),
        other => other.to_owned(),
    }
}

/// `<A, B>` or `(A) -> B` generic arguments.
fn args(a: &Value) -> String {
    if let Some(ab) = a.get("angle_bracketed") {
        let parts: Vec<String> = ab["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| match g.get("type") {
                Some(t) => ty(t),
                None => g
                    .get("lifetime")
                    .and_then(Value::as_str)
                    .unwrap_or("_")
                    .to_owned(),
            })
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("<{}>", parts.join(", "))
        }
    } else if let Some(p) = a.get("parenthesized") {
        let inputs: Vec<String> = p["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ty)
            .collect();
        let out = if p["output"].is_null() {
            String::new()
        } else {
            format!(" -> {}", ty(&p["output"]))
        };
        format!("({}){out}", inputs.join(", "))
    } else {
        String::new()
    }
}

/// Trait bounds of an `impl Trait`.
fn bounds(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("trait_bound"))
        .map(|tb| {
            let tr = &tb["trait"];
            format!(
                "{}{}",
                tr["path"].as_str().unwrap_or("_"),
                args(&tr["args"])
            )
        })
        .collect();
    parts.join(" + ")
}
