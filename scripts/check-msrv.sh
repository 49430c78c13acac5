#!/usr/bin/env bash
# Checks the declared minimum Rust version (workspace `rust-version`, also in README.md) against
# Cargo.lock: fails if any locked package declares a higher `rust_version`, because then the
# declared version cannot build the workspace. Only reads `cargo metadata`; needs no other
# toolchain. (Clippy's `incompatible_msrv` lint covers our own use of newer std APIs.)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo metadata --format-version 1 --locked | python3 -c '
import json, re, sys

def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(declared) != 1 or None in declared:
    sys.exit(f"check-msrv: workspace members declare rust-version {sorted(map(str, declared))}: expected one value")
declared = declared.pop()
readme = open("README.md").read()
if f"Rust ({declared} or newer)" not in readme:
    sys.exit(f"check-msrv: README.md does not say \"Rust ({declared} or newer)\"")
above = sorted(
    (version(p["rust_version"]), p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(declared)
)
if above:
    for _, name, ver, needs in above:
        print(f"check-msrv: {name} {ver} needs Rust {needs}", file=sys.stderr)
    sys.exit(f"check-msrv: the declared rust-version {declared} is below what Cargo.lock needs ({above[-1][3]}): raise rust-version (Cargo.toml, README.md) or pin older crates")
needs = [p["rust_version"] for p in meta["packages"] if p["id"] not in members and p.get("rust_version")]
highest = max(needs, key=version, default="nothing")
print(f"check-msrv: rust-version {declared} covers every locked package (the highest needs {highest})")
'
