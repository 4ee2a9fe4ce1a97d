#!/usr/bin/env python3
"""Fails when the library's modules import each other in a cycle, at two levels:

- top level: the layers depend one way (io <- signal, inference <- importance <-
  analysis <- report <- run, with evaluate and prune beside); a module that names
  another depends on it;
- inside every module folder, at any depth: no two of its parts (its files, mod.rs
  included, and its subfolders, each taken as a whole) depend on each other,
  directly or through others.

Every path form counts: `use crate::a::b`, grouped and nested `use crate::{a, b::{c,
d}}`, `pub use`, `use super::x` and `super::super::x`, `self::`, a child module used
by its bare name (`use state::X` after `mod state;`), and paths written inline in code
(`crate::a::f()`, `super::x::Y`). Test code (`#[cfg(test)]` to the end of a file),
comments and string literals are not counted.

Usage: scripts/check-module-cycles.py [SRC_DIR]   (default crates/flickertag/src)
       scripts/check-module-cycles.py --self-test  (synthetic trees with known cycles)
"""
import collections
import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(src):
    """Code without test modules, comments and string/char literals."""
    src = re.sub(r"#\[cfg\(test\)\][\s\S]*", "", src)
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:]) and (i == 0 or not re.match(r"[A-Za-z0-9_]", src[i - 1])):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", src[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def use_paths(tree, prefix):
    """Expands a use tree (`a::{b, c::{d, e}}`) into full paths (lists of segments)."""
    tree = tree.strip()
    depth, split = 0, None
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0 and split is None:
                split = k
            depth += 1
        elif ch == "}":
            depth -= 1
    if split is None:
        segs = [s.strip() for s in tree.split("::") if s.strip()]
        segs = [re.sub(r"\s+as\s+" + IDENT + "$", "", s) for s in segs]
        return [prefix + [s for s in segs if s not in ("*",)]]
    head = [s.strip() for s in tree[:split].split("::") if s.strip()]
    body = tree[split + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out += use_paths(p, prefix + head)
    return out


def module_of(rel):
    """A file's module path: lib.rs -> [], a/mod.rs -> [a], a/b.rs -> [a, b]."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def dependencies(src_dir):
    """{file: set of files it depends on} for the .rs files under src_dir."""
    files = {}
    for root, _, names in os.walk(src_dir):
        for f in names:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, f), src_dir).replace(os.sep, "/")
                files[rel] = module_of(rel)
    by_mod = {tuple(m): f for f, m in files.items()}
    deps = collections.defaultdict(set)
    for f, mod in files.items():
        src = strip(open(os.path.join(src_dir, f), encoding="utf-8").read())
        children = set(re.findall(r"\bmod\s+(" + IDENT + r")\s*;", src))
        paths = []
        for tree in re.findall(r"\buse\s+([^;]+);", src):
            paths += use_paths(tree, [])
        roots = "|".join(["crate", "super", "self"] + sorted(children))
        for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:" + roots + r")(?:\s*::\s*" + IDENT + r")+)", src):
            paths.append([s.strip() for s in m.group(1).split("::")])
        for p in paths:
            if not p:
                continue
            base = list(mod)
            if p[0] == "crate":
                base, p = [], p[1:]
            elif p[0] in ("super", "self"):
                while p and p[0] in ("super", "self"):
                    if p[0] == "super":
                        base = base[:-1]
                    p = p[1:]
            elif p[0] in children:
                pass  # a child module named bare, relative to this one
            else:
                continue  # an external crate or a name in scope
            target = None
            for k in range(len(p), -1, -1):
                if tuple(base + p[:k]) in by_mod:
                    target = by_mod[tuple(base + p[:k])]
                    break
            if target and target != f:
                deps[f].add(target)
    return files, deps


def cycles(graph):
    """Every elementary cycle found by depth-first search, as tuples (deduplicated by rotation)."""
    found = set()

    def dfs(n, stack, on):
        for m in sorted(graph.get(n, ())):
            if m in on:
                c = stack[stack.index(m) :]
                k = c.index(min(c))
                found.add(tuple(c[k:] + c[:k]))
            elif len(stack) < 12:
                dfs(m, stack + [m], on | {m})

    for n in sorted(graph):
        dfs(n, [n], {n})
    return sorted(found)


def check(src_dir):
    files, deps = dependencies(src_dir)
    # {folder: {part: parts it depends on}}: a part is a file or a subfolder of the
    # folder; an edge joins the parts of the two files' deepest common folder.
    levels = collections.defaultdict(lambda: collections.defaultdict(set))
    for f, ts in deps.items():
        for t in ts:
            if "lib.rs" in (f, t):
                continue  # the crate root re-exports every layer; it is not one
            fp, tp = f.split("/"), t.split("/")
            k = 0
            while k < len(fp) - 1 and k < len(tp) - 1 and fp[k] == tp[k]:
                k += 1
            a, b = fp[k].removesuffix(".rs"), tp[k].removesuffix(".rs")
            if a != b:
                levels["/".join(fp[:k])][a].add(b)
    problems = []
    for folder in sorted(levels):
        for c in cycles(levels[folder]):
            problems.append(("module cycle", c) if not folder else (f"cycle in {folder}/", c))
    return problems


def self_test():
    """Eight synthetic trees, each with one cycle written in a different way, and one without."""
    cases = {
        "grouped use": {"a.rs": "use crate::{b::X};", "b.rs": "use crate::a::Y;"},
        "nested group": {"a.rs": "use crate::{c, b::{X, Z}};", "b.rs": "pub use crate::a::Y;", "c.rs": ""},
        "inline path": {"a.rs": "fn f() { crate::b::g() }", "b.rs": "fn g() { let _ = crate::a::h(); }"},
        "bare child inline": {"m/mod.rs": "mod x;\npub struct B;\nfn f() { x::g() }", "m/x.rs": "use super::B;"},
        "super in a folder": {"m/mod.rs": "mod x; mod y;", "m/x.rs": "use super::y::A;", "m/y.rs": "use super::x::B;"},
        "mod.rs and a child": {"m/mod.rs": "mod x;\npub use x::A;\npub struct B;", "m/x.rs": "use super::B;"},
        "multi-line use": {"a.rs": "use crate::{\n    b::X,\n};", "b.rs": "use crate::c::Y;", "c.rs": "use crate::a::Z;"},
        "a file and a subfolder": {"m/mod.rs": "mod x; mod sub;", "m/x.rs": "use super::sub::y::A;",
                                   "m/sub/mod.rs": "pub mod y;", "m/sub/y.rs": "use crate::m::x::B;"},
    }
    clean = {"a.rs": "// use crate::b::X;\nuse crate::b::X;\nconst S: &str = \"crate::b\";", "b.rs": 'const T: &str = "crate::a::f";\n#[cfg(test)]\nmod t { use crate::a::X; }'}
    ok = True
    for name, tree in list(cases.items()) + [("no cycle (comments, strings, tests)", clean)]:
        with tempfile.TemporaryDirectory() as d:
            for p, text in tree.items():
                os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
                open(os.path.join(d, p), "w").write(text)
            found = check(d)
        want = name in cases
        status = "ok" if bool(found) == want else "WRONG"
        ok &= status == "ok"
        print(f"{status}: {name}: {found or 'no cycle'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    problems = check(sys.argv[1] if len(sys.argv) > 1 else "crates/flickertag/src")
    for kind, c in problems:
        print(f"{kind}: {' -> '.join(c + (c[0],))}")
    if problems:
        sys.exit(1)
    print("library: no module or file import cycle")
