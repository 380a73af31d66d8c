//! Source layout checks shared by the workspace's tests: which modules of a crate refer
//! to which (`crate::…`, `super::…`, `self::…` paths, groups expanded, comments skipped),
//! reduced to the sibling modules each reference joins at any depth, cycles among them,
//! and files over a line budget. Text-level on purpose: no parser dependency, and what it
//! reads is the paths this workspace writes.

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

/// A module's path below its crate's root (`["fsops", "state"]`); the root is `[]`.
type ModPath = Vec<String>;

/// Every module of a crate's `src` and its file (`X.rs` or `X/mod.rs`, at any depth);
/// binaries (`src/bin`, each a crate of its own) are left out.
fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut mods = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut path: ModPath = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if path.first().is_some_and(|c| c == "bin") {
            continue;
        }
        if path.last().is_some_and(|c| c == "mod" || c == "lib" || c == "main") {
            path.pop();
        }
        mods.insert(path, f);
    }
    mods
}

/// `a::{b, c::{d, self}}` (the part after a `crate::`, `super::` or `self::`) as the
/// full paths it names: `a::b`, `a::c::d`, `a::c`.
fn expand(item: &str, out: &mut Vec<String>) {
    let item = item.trim();
    let Some(open) = item.find('{') else {
        let name = item.split(" as ").next().unwrap_or("").trim();
        if !name.is_empty() {
            out.push(name.to_string());
        }
        return;
    };
    let prefix = item[..open].trim_end_matches("::");
    let group = &item[open + 1..item.rfind('}').unwrap_or(item.len())];
    let (mut depth, mut cur, mut inner) = (0, String::new(), Vec::new());
    for ch in group.chars().chain(std::iter::once(',')) {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&cur, &mut inner);
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    for p in inner {
        out.push(match (prefix.is_empty(), p == "self") {
            (true, _) => p,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}::{p}"),
        });
    }
}

/// The paths a source file names through `crate::`, `super::` and `self::` (`$crate::`
/// too), groups expanded, comments and a trailing `mod tests` skipped: `super::state::Ctx`.
pub fn named_paths(text: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let b = code.as_bytes();
    let mut out = Vec::new();
    for kw in ["crate::", "super::", "self::"] {
        for (i, _) in code.match_indices(kw) {
            // A keyword inside a longer path or name (`super::super::`, `myself::`) is
            // read with the path it belongs to.
            if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b':') {
                continue;
            }
            let rest = &code[i..];
            let (mut depth, mut end) = (0i32, rest.len());
            for (j, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = j;
                        break;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                        end = j;
                        break;
                    }
                    _ => {}
                }
            }
            expand(&rest[..end], &mut out);
        }
    }
    out
}

/// The module `path` (as named in module `me`) lies in: its longest prefix that is one.
fn target(path: &str, me: &[String], mods: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    let mut segs = path.split("::").peekable();
    let mut full: ModPath = match segs.peek() {
        Some(&"crate") => {
            segs.next();
            Vec::new()
        }
        _ => me.to_vec(),
    };
    while let Some(&s) = segs.peek() {
        match s {
            "super" => full.pop(),
            "self" => None,
            _ => break,
        };
        segs.next();
    }
    full.extend(segs.map(str::to_string));
    (0..=full.len()).rev().map(|k| full[..k].to_vec()).find(|p| p.is_empty() || mods.contains_key(p))
}

/// Every module of the crate whose sources are `src` ("a/b" for `a::b`) → the modules it
/// refers to, each reference reduced to the two siblings it joins: `a::b` naming
/// `a::c::d` joins `a/b` and `a/c`. A module naming its parent or the crate root (an
/// `impl` split over files, shared constants) joins no siblings.
pub fn sibling_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = module_files(src);
    let mut g: BTreeMap<String, BTreeSet<String>> =
        mods.keys().filter(|m| !m.is_empty()).map(|m| (m.join("/"), BTreeSet::new())).collect();
    for (me, file) in &mods {
        for p in named_paths(&std::fs::read_to_string(file).unwrap()) {
            let Some(t) = target(&p, me, &mods) else { continue };
            let i = me.iter().zip(&t).take_while(|(a, b)| a == b).count();
            if i < me.len() && i < t.len() {
                g.entry(me[..=i].join("/")).or_default().insert(t[..=i].join("/"));
            }
        }
    }
    g
}

/// Top-level module → the other top-level modules of the same crate it refers to.
pub fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    sibling_graph(src).into_iter().filter(|(m, _)| !m.contains('/')).collect()
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

/// Every cycle among sibling modules (at any depth) of the crate whose sources are `src`,
/// one "a/b -> a/c -> a/b" line each.
pub fn module_cycles(src: &Path) -> Vec<String> {
    let g = sibling_graph(src);
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
        let r = named_paths(
            "use crate::{Shared, fsops::{self, X}, udsmux};\nuse super::super::ring::Reactor;\n\
             use super::path::{self, SAFE};\nlet x = crate::ring::UD_IGNORE; // crate::admin\n\
             $crate::wire::put();\n",
        );
        let want = [
            "crate::Shared",
            "crate::fsops",
            "crate::fsops::X",
            "crate::udsmux",
            "crate::ring::UD_IGNORE",
            "crate::wire::put",
            "super::super::ring::Reactor",
            "super::path",
            "super::path::SAFE",
        ];
        let got: BTreeSet<&str> = r.iter().map(String::as_str).collect();
        assert_eq!(got, want.into_iter().collect::<BTreeSet<_>>());
    }

    #[test]
    fn siblings_at_any_depth_are_joined_and_a_child_using_its_parent_is_not() {
        let d = std::env::temp_dir().join(format!("layout-test-{}", std::process::id()));
        let src = d.join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        let write = |f: &str, t: &str| std::fs::write(src.join(f), t).unwrap();
        write("lib.rs", "mod a;\nmod b;\npub const K: u8 = 1;\n");
        write("a/mod.rs", "mod x;\nmod y;\npub struct T;\n");
        write("a/x.rs", "use super::{T, y::Y};\nuse crate::K;\n");
        write("a/y.rs", "// use super::x::X; a comment\npub struct Y;\n");
        write("b.rs", "use crate::a::{self, T};\n");
        let g = sibling_graph(&src);
        assert_eq!(g["a/x"], ["a/y".to_string()].into_iter().collect(), "{g:?}");
        assert!(g["a/y"].is_empty() && g["a"].is_empty(), "{g:?}");
        assert_eq!(module_graph(&src).keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(module_cycles(&src).is_empty());
        write("a/y.rs", "pub struct Y;\nfn f() { crate::a::x::g() }\n");
        assert_eq!(module_cycles(&src), ["a/x -> a/y -> a/x", "a/y -> a/x -> a/y"]);
        std::fs::remove_dir_all(&d).unwrap();
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
