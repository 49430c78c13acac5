#!/usr/bin/env bash
# Tether's whole test suite, as CI runs it: formatting, lints, unit + integration + property tests
# (interop included, against Python websockets), the demo page in headless Chromium, a short run of
# every fuzz target, and the complete Autobahn|Testsuite against `tether serve` and against
# Tether's client. Installs what it needs (Debian's chromium, the npm
# packages of tests/browser, cargo-fuzz, Autobahn's wstest) on first use. Fails loudly on the first
# error.
#
# Environment: FUZZ_SECONDS (default 30) per fuzz target; AUTOBAHN_CASES (default "*").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "toolchain"
cargo --version
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

step "system packages for the tests (tmux for the terminal test of tether connect)"
if ! command -v tmux >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux
fi

step "Python websockets (the independent peer of the interop tests)"
python3 -c 'import websockets.asyncio.server' 2>/dev/null || python3 -m pip install --quiet "websockets>=14,<18"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "demo page in headless Chromium"
bash scripts/browser-test.sh

step "fuzz targets (${FUZZ_SECONDS:-30} s each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh

step "Autobahn|Testsuite fuzzingclient against tether serve /echo"
bash scripts/autobahn.sh "${AUTOBAHN_CASES:-*}"

step "Autobahn|Testsuite fuzzingserver against Tether's client"
bash scripts/autobahn-client.sh "${AUTOBAHN_CASES:-*}"

step "all checks passed in $(( $(date +%s) - started )) s"
