#!/usr/bin/env bash
# Runs the whole Autobahn|Testsuite fuzzingclient (every case, nothing excluded) against
# `tether serve`'s /echo endpoint and fails unless every case is OK (or INFORMATIONAL, the suite's
# verdict for cases that only record behaviour): any FAILED, NON-STRICT or UNIMPLEMENTED case, in the
# case itself or in its closing behaviour, fails the run.
#
# Usage: scripts/autobahn.sh [CASES]   (CASES defaults to "*"; e.g. "1.*,6.4.*" for a quick look)
# TETHER_SERVE_FLAGS adds flags to `tether serve`, e.g. "--deflate-window-bits 9" (word-split).
# The HTML/JSON report goes to reports/autobahn-server/ (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cases=${1:-*}
wstest=$(bash scripts/install-wstest.sh)
cargo build --release --quiet -p tether
outdir="$root/reports/autobahn-server"
rm -rf "$outdir"
mkdir -p "$outdir"

log="$outdir/tether.log"
# shellcheck disable=SC2086 # the flags are words
TETHER_LOG=warn target/release/tether serve --port 0 ${TETHER_SERVE_FLAGS:-} >"$outdir/tether.stdout" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$outdir/tether.stdout" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^listening on \(ws:\/\/.*\)$/\1/p' "$outdir/tether.stdout")
[ -n "$url" ] || { echo "autobahn: tether did not start" >&2; cat "$log" >&2; exit 1; }

python3 - "$outdir" "$url/echo" "$cases" >"$outdir/fuzzingclient.json" <<'PY'
import json, sys
outdir, url, cases = sys.argv[1:]
print(json.dumps({
    "outdir": outdir,
    "servers": [{"agent": "tether", "url": url}],
    "cases": cases.split(","),
    "exclude-cases": [],
    "exclude-agent-cases": {},
}, indent=2))
PY

echo "autobahn: running fuzzingclient cases '$cases' against $url/echo${TETHER_SERVE_FLAGS:+ (tether serve $TETHER_SERVE_FLAGS)}"
start=$(date +%s)
(cd "$outdir" && "$wstest" -m fuzzingclient -s fuzzingclient.json >"$outdir/wstest.log" 2>&1) || {
  echo "autobahn: wstest failed" >&2; tail -20 "$outdir/wstest.log" >&2; exit 1; }
elapsed=$(( $(date +%s) - start ))
kill -0 $server 2>/dev/null || { echo "autobahn: tether died during the suite" >&2; cat "$log" >&2; exit 1; }

python3 scripts/autobahn-verdict.py "$outdir/index.json" tether "$elapsed" "$cases" autobahn
