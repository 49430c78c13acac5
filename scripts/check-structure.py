#!/usr/bin/env python3
"""Checks the layout rules of the README's "Layout" section for every crate under crates/:

1. No import cycle between modules of one crate. Module A depends on module B when A's code names
   something B defines: through `use` (brace groups and globs expanded, `as` renames followed) or
   an inline path (`crate::b::f()`, `super::X`). A name reached through a re-export (`pub use
   b::X` in lib.rs, then `use crate::X` elsewhere) counts against the module that defines it, not
   the one that re-exports it. Each file is one module (`foo.rs` and `foo/mod.rs` are `foo`;
   `foo/bar.rs` is `foo::bar`). A re-export or a `mod` declaration is how Rust builds the tree, not
   a dependency: a parent that re-exports its children depends on nothing; a parent whose own code
   uses a child does. Test code (`tests` modules and files, `#[cfg(test)]` items) is skipped: it
   may look anywhere.
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
USE_RE = re.compile(r"\b(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
# An item behind `#[cfg(test)]`, up to its opening brace (a block) or its semicolon.
CFG_TEST_RE = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*")


def module_of(src_dir, path):
    rel = os.path.relpath(path, src_dir)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def is_test_module(module):
    return "tests" in module


def strip(text):
    """Drops comments, string literals and `#[cfg(test)]` items (by brace counting)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    for m in CFG_TEST_RE.finditer(text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        j = m.end()
        while j < len(text) and text[j] not in "{;":
            j += 1
        if j < len(text) and text[j] == "{":
            depth, j = 1, j + 1
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
        else:
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def split_top(text):
    """Splits a use-tree list at the commas outside braces."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def expand(tree, prefix=()):
    """A use tree as (segments, name) pairs: `a::{b, c::D as E}` gives ((a, b), b), ((a, c, D), E)."""
    tree = re.sub(r"\s*(::|[{},])\s*", r"\1", " ".join(tree.split())).lstrip(":")
    brace = tree.find("{")
    if brace >= 0 and tree.endswith("}"):
        head = tuple(s for s in tree[:brace].split("::") if s)
        results = []
        for part in split_top(tree[brace + 1 : -1]):
            results.extend(expand(part, prefix + head))
        return results
    alias = re.fullmatch(r"(.+?) as (\w+)", tree)
    body, name = (alias.group(1), alias.group(2)) if alias else (tree, None)
    segments = prefix + tuple(s for s in body.split("::") if s)
    if segments and segments[-1] == "self":
        segments = segments[:-1]
    return [(segments, name or (segments[-1] if segments else None))]


class Crate:
    def __init__(self, src_dir):
        self.files = {}
        for dirpath, _, names in os.walk(src_dir):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    self.files[module_of(src_dir, path)] = path
        self.modules = set(self.files)
        self.texts = {}
        self.uses = {}  # module -> [(is_reexport, segments, name)]
        for module, path in self.files.items():
            with open(path, encoding="utf-8") as f:
                text = strip(f.read())
            uses = []
            for m in USE_RE.finditer(text):
                for segments, name in expand(m.group(2)):
                    uses.append((m.group(1) is not None, segments, name))
            self.uses[module] = uses
            self.texts[module] = USE_RE.sub(" ", text)
        # Names each module re-exports: name -> (segments as written, from that module).
        self.exports = {m: {} for m in self.modules}
        for module, uses in self.uses.items():
            for reexport, segments, name in uses:
                if reexport and name:
                    self.exports[module][name] = segments

    def resolve(self, module, segments, depth=0):
        """The module that defines what `segments` names from `module`, or None (external)."""
        if not segments or depth > 8:
            return None
        head, rest = segments[0], list(segments[1:])
        if head == "crate":
            base = ()
        elif head == "self":
            base = module
        elif head == "super":
            base = module[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif module + (head,) in self.modules:
            base, rest = module + (head,), rest
        else:
            return None  # another crate, or a name in scope that is not a path
        while rest and base + (rest[0],) in self.modules:
            base, rest = base + (rest[0],), rest[1:]
        if rest and rest[0] != "*" and rest[0] in self.exports.get(base, {}):
            target = self.resolve(base, self.exports[base][rest[0]], depth + 1)
            if target is not None:
                return target
        return base

    def graph(self):
        graph = {m: set() for m in self.modules}
        for module in self.modules:
            if is_test_module(module):
                continue
            targets = []
            for reexport, segments, _ in self.uses[module]:
                target = self.resolve(module, segments)
                # A re-export of a descendant is the tree being built, not a dependency.
                if reexport and target is not None and target[: len(module)] == module:
                    continue
                targets.append(target)
            for m in INLINE_RE.finditer(self.texts[module]):
                targets.append(self.resolve(module, (m.group(1),) + tuple(m.group(2).split("::")[1:])))
            # A child named without a prefix (`args::check(..)` in `connect/mod.rs`).
            for child in (m[-1] for m in self.modules if m[:-1] == module and len(m) == len(module) + 1):
                for m in re.finditer(r"(?<![:\w])" + child + r"((?:::[A-Za-z_][A-Za-z0-9_]*)+)", self.texts[module]):
                    targets.append(self.resolve(module, (child,) + tuple(m.group(1).split("::")[1:])))
            for target in targets:
                if target is None or target == module or is_test_module(target):
                    continue
                graph[module].add(target)
        return graph


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
    # A workspace other than this one may be named, for testing the checker itself.
    root = sys.argv[1] if len(sys.argv) > 1 else ROOT
    crates_dir = os.path.join(root, "crates")
    for crate_name in sorted(os.listdir(crates_dir)):
        src_dir = os.path.join(crates_dir, crate_name, "src")
        if not os.path.isdir(src_dir):
            continue
        crate = Crate(src_dir)
        graph = crate.graph()
        for component in cycles(graph):
            problems += 1
            members = sorted(component)
            edges = [
                f"{name(crate_name, a)} -> {name(crate_name, b)}"
                for a in members
                for b in sorted(graph[a])
                if b in component
            ]
            print(f"import cycle in {crate_name}: " + "; ".join(edges))
        for module, path in sorted(crate.files.items()):
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            count = len(lines) - (1 if lines and lines[-1] == "" else 0)
            if count <= LIMIT:
                continue
            doc = [line for line in lines if line.startswith("//!")]
            if any(line.startswith("//! Size:") for line in doc):
                continue
            problems += 1
            rel = os.path.relpath(path, root)
            print(f"{rel}: {count} lines, over {LIMIT}, and its module doc has no '//! Size:' line saying why")
    if problems:
        sys.exit(1)
    print("structure: no import cycles; every file over 400 lines says why")


if __name__ == "__main__":
    main()
