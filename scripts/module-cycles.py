#!/usr/bin/env python3
"""scripts/module-cycles.py — no circular imports between sibling modules of a Rust crate.

For every crate of the workspace (a folder with Cargo.toml and src/), reads each module's
`use` trees (grouped ones expanded) and `crate::`/`super::`/`self::` paths outside comments
and `mod tests`, and reduces each reference to the two sibling modules it joins (a/b/x
using a/c/y joins a/b and a/c). A cycle among siblings fails (exit 1) and is listed. A
child using items of its parent or of the crate root (an `impl` split over files, shared
constants) is the usual shape of a Rust module tree and is not a cycle.

Usage: scripts/module-cycles.py [CRATE_DIR ...]   (default: every crate below the repo)
       scripts/module-cycles.py --self-test
"""

import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules(src):
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(root, f)
                rel = os.path.relpath(p, src)[:-3].split("/")
                if rel[-1] in ("mod", "lib", "main"):
                    rel = rel[:-1]
                if not (rel and rel[0] == "bin"):
                    out[tuple(rel)] = p
    return out


def expand(tree):
    """`a::{b, c::{d, self}}` -> ["a::b", "a::c::d", "a::c"]."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, re.S)
    if not m:
        return [tree.split(" as ")[0].strip()]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in filter(None, (p.strip() for p in parts)):
        for e in expand(p):
            out.append(prefix if e == "self" else f"{prefix}::{e}" if prefix else e)
    return out


def references(text):
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    text = "\n".join(line.split("//")[0] for line in text.split("\n"))
    refs = [p for m in re.finditer(r"\buse\s+([^;]+);", text) for p in expand(m.group(1))]
    return refs + re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text)


def target(path, me, mods):
    segs = path.split("::")
    if segs[0] == "crate":
        base, i = [], 1
    elif segs[0] in ("super", "self"):
        base, i = list(me), 0
        while i < len(segs) and segs[i] in ("super", "self"):
            base = base[:-1] if segs[i] == "super" else base
            i += 1
    else:
        return None
    full = base + segs[i:]
    for k in range(len(full), -1, -1):
        if tuple(full[:k]) in mods:
            return tuple(full[:k])
    return None


def cycles(crate):
    mods = modules(os.path.join(crate, "src"))
    known = {**mods, (): None}
    edges = set()
    for me, p in mods.items():
        with open(p, encoding="utf-8") as f:
            text = f.read()
        for ref in references(text):
            t = target(ref, me, known)
            if t is None:
                continue
            i = 0
            while i < min(len(me), len(t)) and me[i] == t[i]:
                i += 1
            if i < len(me) and i < len(t):
                edges.add((me[: i + 1], t[: i + 1]))
    adj = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)

    def reaches(x, y):
        seen, todo = {x}, [x]
        while todo:
            n = todo.pop()
            if n == y:
                return True
            for m in adj.get(n, ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return False

    found = sorted({tuple(sorted((a, b))) for a, b in edges if reaches(b, a)})
    return len(mods), ["/".join(a) + " <-> " + "/".join(b) for a, b in found]


def crates():
    out = []
    for root, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules") and not d.startswith(".")]
        if "Cargo.toml" in files and os.path.isdir(os.path.join(root, "src")):
            out.append(root)
    return sorted(out)


def self_test():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "src")
        os.makedirs(os.path.join(src, "a"))
        files = {
            "lib.rs": "mod a;\nmod b;\n",
            "a/mod.rs": "mod x;\nmod y;\npub struct T;\n",
            "a/x.rs": "use super::{T, y::Y};\n",
            "a/y.rs": "// use super::x::X; is a comment\npub struct Y;\n",
            "b.rs": "use crate::a::{self, T};\n",
        }
        for name, text in files.items():
            with open(os.path.join(src, name), "w") as f:
                f.write(text)
        assert cycles(d)[1] == [], cycles(d)
        with open(os.path.join(src, "a/y.rs"), "a") as f:
            f.write("fn f() { let _ = crate::a::x::g(); }\n")
        assert cycles(d)[1] == ["a/x <-> a/y"], cycles(d)
        with open(os.path.join(src, "a/mod.rs"), "a") as f:
            f.write("use crate::b::Z;\n")
        assert "a <-> b" in cycles(d)[1], cycles(d)
    print("module-cycles: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    bad, total = [], 0
    for crate in sys.argv[1:] or crates():
        n, found = cycles(crate)
        total += n
        bad += [f"{os.path.relpath(crate, ROOT)}: {c}" for c in found]
    for b in bad:
        print("circular imports:", b)
    print(f"module-cycles: {total} modules, {len(bad)} cycles between sibling modules")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
