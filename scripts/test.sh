#!/usr/bin/env bash
# Tether's whole test suite, as CI runs it: formatting, lints, the declared rust-version against
# Cargo.lock, unit + integration + property tests (interop included, against Python websockets in
# a virtual environment, target/venv), the demo page in headless Chromium, a short run of every
# fuzz target, and the complete Autobahn|Testsuite against `tether serve` and against Tether's
# client. Installs what it needs (python3-venv, Debian's chromium and redis-server, the npm
# packages of tests/browser, cargo-fuzz, Autobahn's wstest) on first use. Fails loudly on the
# first error.
#
# Environment: FUZZ_SECONDS (default 30) per fuzz target; AUTOBAHN_CASES (default "*").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "toolchain"
cargo --version
# A CI build is built once: incremental state would only take disk, and disk ran out once.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

step "system packages for the tests (tmux for the terminal test of tether connect, redis-server for the multi-node tests)"
if ! command -v tmux >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux
fi
# The redis_* tests start their own redis-server on a free loopback port (no persistence) and
# stop it; the system service the package sets up is not used, so it is stopped if it started.
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  service redis-server stop >/dev/null 2>&1 || true
fi

step "Python websockets, pyjwt and prometheus-client in a virtual environment under the build directory (the independent peers of the interop tests)"
# Never pip into the system Python (Debian 12 refuses it, PEP 668): a venv under target/, put
# first on PATH, so the interop tests' `python3` is the venv's.
venv="${CARGO_TARGET_DIR:-$root/target}/venv"
if ! "$venv/bin/python3" -c 'import websockets.asyncio.server, jwt, cryptography, prometheus_client.openmetrics.parser' 2>/dev/null; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  # pyjwt and cryptography: the independent token issuer of the auth tests (RS256 keys too).
  # prometheus-client: the independent parser of the /metrics page (tests/interop/parse_metrics.py).
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "websockets>=14,<18" "pyjwt>=2.8,<3" "cryptography>=42" "prometheus-client>=0.20,<1"
fi
export PATH="$venv/bin:$PATH"

step "declared rust-version against Cargo.lock"
bash scripts/check-msrv.sh

step "cargo fmt --check"
cargo fmt --all --check

step "layout: no import cycles between modules, no file over 400 lines without a reason"
python3 scripts/check-structure.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "demo page in headless Chromium"
bash scripts/browser-test.sh

step "fuzz targets (${FUZZ_SECONDS:-30} s each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh

step "Autobahn|Testsuite: fuzzingclient against tether serve /echo, fuzzingserver against Tether's client"
# The two suites are independent and each is bound by one Python process: run them side by side.
# wstest is installed first, once, so the two runs don't race to install it.
bash scripts/install-wstest.sh >/dev/null
cargo build --release --quiet -p tether -p tether-tokio --example autobahn_client
client_log=$(mktemp)
bash scripts/autobahn-client.sh "${AUTOBAHN_CASES:-*}" >"$client_log" 2>&1 &
client_pid=$!
server_status=0
bash scripts/autobahn.sh "${AUTOBAHN_CASES:-*}" || server_status=$?
client_status=0
wait "$client_pid" || client_status=$?
cat "$client_log"
rm -f "$client_log"
if [ "$server_status" -ne 0 ] || [ "$client_status" -ne 0 ]; then
  echo "Autobahn failed: server suite exit $server_status, client suite exit $client_status" >&2
  exit 1
fi

step "all checks passed in $(( $(date +%s) - started )) s; build directory: $(du -sh "${CARGO_TARGET_DIR:-$root/target}" 2>/dev/null | cut -f1)"
