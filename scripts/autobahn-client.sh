#!/usr/bin/env bash
# Runs the whole Autobahn|Testsuite fuzzingserver (every case, nothing excluded) against Tether's
# client (crates/tether-tokio/examples/autobahn_client.rs) and fails unless every case is OK (or
# INFORMATIONAL): any FAILED, NON-STRICT or UNIMPLEMENTED case fails the run.
#
# Usage: scripts/autobahn-client.sh [CASES]   (CASES defaults to "*")
# The report goes to reports/autobahn-client/ (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cases=${1:-*}
wstest=$(bash scripts/install-wstest.sh)
cargo build --release --quiet -p tether-tokio --example autobahn_client
outdir="$root/reports/autobahn-client"
rm -rf "$outdir"
mkdir -p "$outdir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

python3 - "$outdir" "ws://127.0.0.1:$port" "$cases" >"$outdir/fuzzingserver.json" <<'PY'
import json, sys
outdir, url, cases = sys.argv[1:]
print(json.dumps({
    "url": url,
    "outdir": outdir,
    "cases": cases.split(","),
    "exclude-cases": [],
    "exclude-agent-cases": {},
}, indent=2))
PY

(cd "$outdir" && exec "$wstest" -m fuzzingserver -s fuzzingserver.json >"$outdir/wstest.log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null || true; pkill -f "fuzzingserver.json" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.2
done

echo "autobahn-client: running fuzzingserver cases '$cases' on ws://127.0.0.1:$port"
start=$(date +%s)
target/release/examples/autobahn_client "ws://127.0.0.1:$port" tether >"$outdir/client.log" 2>&1 || {
  echo "autobahn-client: the client failed" >&2; tail -20 "$outdir/client.log" >&2; exit 1; }
elapsed=$(( $(date +%s) - start ))
python3 scripts/autobahn-verdict.py "$outdir/index.json" tether "$elapsed" "$cases" autobahn-client
