//! Every input that ever crashed a fuzz target (kept under
//! `fuzz/regressions/<target>/`) and every seed input (under
//! `fuzz/seeds/<target>/`) is replayed here as an ordinary test.

use damon_examples::fuzzing::TARGETS;
use std::path::Path;

#[test]
fn replay_fuzz_regressions_and_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (name, check) in TARGETS {
        for dir in ["regressions", "seeds"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for e in entries.flatten() {
                let data = std::fs::read(e.path()).unwrap();
                eprintln!("replaying {name}: {}", e.path().display());
                check(&data);
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= TARGETS.len(),
        "every target has at least one seed: replayed {replayed}"
    );
}

#[test]
fn targets_survive_edge_inputs() {
    for (_, check) in TARGETS {
        for input in [
            &b""[..],
            b"\0",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"{}",
            b"[]",
            b"-",
            b"\n\n",
        ] {
            check(input);
        }
    }
}
