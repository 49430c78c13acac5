#!/usr/bin/env python3
"""Checks the layout rules of docs/architecture.md for every crate under crates/:

1. No import cycle between modules of one crate. Module A depends on module B when A's source
   names B by path: `crate::b`, `super::b` or `self::b`, in a `use` or inline. Each file is one
   module (`foo.rs` and `foo/mod.rs` are `foo`; `foo/bar.rs` is `foo::bar`). A parent naming its
   own children (`mod bar; pub use bar::X`) is how Rust builds the tree, not a dependency back, so
   an edge from a module to one of its descendants is ignored; an edge from a child to its parent
   or to a sibling counts. Test modules (`tests.rs`, `#[cfg(test)]` blocks) are skipped: they may
   look anywhere.
2. No source file over 400 lines unless its module doc (the leading `//!` lines) says why, in a
   line that starts with `//! Size:`.

Prints every cycle and every oversized file and exits 1 if there is one; exits 0 otherwise.
Standard library only, so CI can run it before anything is installed.
"""

import os
import re
import sys

LIMIT = 400
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def module_of(src_dir, path):
    rel = os.path.relpath(path, src_dir)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip_tests(text):
    """Drops `#[cfg(test)] mod ... { ... }` blocks by brace counting, and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def resolve(module, modules, head, segments):
    """The longest known module a path names, from `module`'s point of view."""
    if head == "crate":
        base = ()
    else:
        base = module
        if head == "super":
            base = module[:-1]
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
    best = None
    for n in range(len(segments) + 1):
        candidate = base + tuple(segments[:n])
        if candidate in modules:
            best = candidate
    return best


def crate_graph(src_dir):
    files = {}
    for dirpath, _, names in os.walk(src_dir):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(src_dir, path)] = path
    modules = set(files)
    graph = {m: set() for m in modules}
    for module, path in files.items():
        if module and module[-1] == "tests":
            continue
        with open(path, encoding="utf-8") as f:
            text = strip_tests(f.read())
        for m in PATH_RE.finditer(text):
            segments = m.group(2).split("::")[1:]
            target = resolve(module, modules, m.group(1), segments)
            if target is None or target == module or target[: len(module)] == module:
                continue  # itself, or one of its own descendants
            if target and target[-1] == "tests":
                continue
            graph[module].add(target)
    return files, graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def name(crate, module):
    return crate + ("::" + "::".join(module) if module else "")


def main():
    problems = 0
    crates_dir = os.path.join(ROOT, "crates")
    for crate in sorted(os.listdir(crates_dir)):
        src_dir = os.path.join(crates_dir, crate, "src")
        if not os.path.isdir(src_dir):
            continue
        files, graph = crate_graph(src_dir)
        for component in cycles(graph):
            problems += 1
            members = sorted(component)
            edges = [
                f"{name(crate, a)} -> {name(crate, b)}"
                for a in members
                for b in sorted(graph[a])
                if b in component
            ]
            print(f"import cycle in {crate}: " + "; ".join(edges))
        for module, path in sorted(files.items()):
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            count = len(lines) - (1 if lines and lines[-1] == "" else 0)
            if count <= LIMIT:
                continue
            doc = [line for line in lines if line.startswith("//!")]
            if any(line.startswith("//! Size:") for line in doc):
                continue
            problems += 1
            rel = os.path.relpath(path, ROOT)
            print(f"{rel}: {count} lines, over {LIMIT}, and its module doc has no '//! Size:' line saying why")
    if problems:
        sys.exit(1)
    print("structure: no import cycles; every file over 400 lines says why")


if __name__ == "__main__":
    main()
