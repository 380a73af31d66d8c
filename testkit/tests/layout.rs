//! The workspace's layout rules (issue 16), on every crate's sources: no module refers to
//! a sibling module (at any depth: `fsops/state` and `fsops/common` are siblings) that
//! refers back to it, directly or around a longer cycle, and no Rust source file is over
//! 800 lines.

use std::path::{Path, PathBuf};

use qtfs_testkit::layout::{long_files, module_cycles, module_graph};

const MAX_LINES: usize = 800;

/// The workspace root and its member crates (from the root Cargo.toml's `members`).
fn members() -> (PathBuf, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let list = toml.split("members = [").nth(1).and_then(|s| s.split(']').next()).expect("members list");
    let dirs: Vec<PathBuf> =
        list.split(',').map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty()).map(|s| root.join(s)).collect();
    (root, dirs)
}

#[test]
fn no_crate_has_a_module_cycle() {
    let (_, crates) = members();
    assert!(crates.len() >= 10, "members found: {crates:?}");
    let mut found = Vec::new();
    for c in &crates {
        let src = c.join("src");
        assert!(src.is_dir(), "{} has no src/", c.display());
        found.extend(module_cycles(&src).into_iter().map(|cy| format!("{}: {cy}", c.display())));
    }
    // The scan sees modules (a check that reads nothing would pass).
    assert!(module_graph(&crates.iter().find(|c| c.ends_with("engine")).unwrap().join("src")).len() > 5);
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn no_source_file_over_800_lines() {
    let (root, crates) = members();
    let mut long = Vec::new();
    for c in &crates {
        for sub in ["src", "tests", "benches"] {
            let d = c.join(sub);
            if d.is_dir() {
                long.extend(long_files(&d, MAX_LINES));
            }
        }
    }
    assert!(long.is_empty(), "files over {MAX_LINES} lines under {}: {long:?}", root.display());
}
