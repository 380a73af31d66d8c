//! Source layout checks shared by the workspace's tests: which top-level modules of a
//! crate refer to which (`crate::X`, comments skipped), cycles among them, and files over
//! a line budget. Text-level on purpose: no parser dependency, and what it reads is the
//! `use crate::…` / `crate::…` paths this workspace writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules of a crate's `src` (`X.rs` or `X/`) and their files; binaries
/// (`src/bin`, each a crate of its own) and the crate roots are not modules.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        if p.is_dir() && name != "bin" {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main" {
            files.push(p);
        } else {
            continue;
        }
        mods.insert(name, files);
    }
    mods
}

/// The first identifier of each top-level item of a `{a, b::c, d::{e}}` group.
fn group_heads(group: &str, out: &mut BTreeSet<String>) {
    let mut depth = 0;
    let mut item = String::new();
    for ch in group.chars().chain(std::iter::once(',')) {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let head: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !head.is_empty() {
                    out.insert(head);
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(ch);
    }
}

/// The names a source file reaches through `crate::` (comments skipped).
pub fn crate_refs(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `$crate::` in a macro names the crate root like `crate::`.
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            group_heads(&group[..end], &mut out);
        } else {
            let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !head.is_empty() {
                out.insert(head);
            }
        }
    }
    out
}

/// Module → the other top-level modules of the same crate it refers to.
pub fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut g = BTreeMap::new();
    for (name, files) in &mods {
        let mut deps = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            deps.extend(crate_refs(&text).into_iter().filter(|d| d != name && mods.contains_key(d)));
        }
        g.insert(name.clone(), deps);
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
pub fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(g, start, start, &mut path, &mut seen).then_some(path)
}

/// Every module cycle in the crate whose sources are `src`, one "a -> b -> a" line each.
pub fn module_cycles(src: &Path) -> Vec<String> {
    let g = module_graph(src);
    g.keys().filter_map(|m| cycle_from(&g, m)).map(|c| c.join(" -> ")).collect()
}

/// The `.rs` files under `dir` with more than `max` lines, as "path (N lines)".
pub fn long_files(dir: &Path, max: usize) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > max).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_reads_groups_and_paths() {
        let r = crate_refs(
            "use crate::{Shared, fsops::{self, X}, udsmux};\nlet x = crate::ring::UD_IGNORE; // crate::admin\n",
        );
        let want: BTreeSet<String> = ["Shared", "fsops", "udsmux", "ring"].iter().map(|s| s.to_string()).collect();
        assert_eq!(r, want);
    }

    #[test]
    fn a_cycle_is_found() {
        let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), [v.to_string()].into_iter().collect()))
            .collect();
        assert_eq!(cycle_from(&g, "a"), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
        assert_eq!(cycle_from(&g, "d"), None);
    }
}
