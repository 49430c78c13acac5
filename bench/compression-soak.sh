#!/usr/bin/env bash
# Server memory with permessage-deflate under browser-like clients (issue 17), over loopback.
#
#   bash bench/compression-soak.sh hold                   # 2,000 compressing connections held: RSS per connection
#   bash bench/compression-soak.sh soak                   # 2,000 connections, 1 msg/s each, 5 %/s churn, 180 s: RSS series
#   bash bench/compression-soak.sh soak --no-compression  # arguments after the mode go to `tether serve`
#   SERVER_ENV="MALLOC_MMAP_THRESHOLD_=65536" bash bench/compression-soak.sh soak   # environment of the server only
#
# Builds `tether` (release), starts `tether serve --port 0 [FLAGS]` with TETHER_LOG=warn, samples its
# VmRSS (/proc/PID/status) every second, and runs bench/compression-soak.py (Python `websockets`,
# which offers permessage-deflate as browsers do; the venv is target/venv, as for scripts/test.sh)
# against ws://127.0.0.1:PORT/echo. See the top of the .py for what each mode checks and reports.
# The server is stopped at the end (SIGTERM, then SIGKILL). Exits non-zero if an echo is lost or corrupted, a connection is
# refused or dropped by the server, or the server dies. The 1-second series and the summary (JSON)
# are kept in reports/compression-soak/.
#
# Environment (defaults in brackets):
#   CONNECTIONS [2000]   connections held (hold) or kept open (soak)
#   DURATION [180]       soak: seconds of load
#   CHURN [0.05]         soak: share of the connections closed and replaced every second
#   HOLD [5]             hold: seconds all connections stay open before RSS is read
#   SERVER_ENV []        VAR=VALUE words added to the server's environment (not the driver's)
#   TETHER [target/release/tether], SKIP_BUILD [0] (1: use what is built, e.g. a debug build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MODE=${1:-}
case "$MODE" in
    hold | soak) shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bash bench/compression-soak.sh hold|soak [TETHER SERVE FLAGS...] (try --help)" >&2; exit 2 ;;
esac
SERVER_FLAGS=("$@")

CONNECTIONS=${CONNECTIONS:-2000}
DURATION=${DURATION:-180}
CHURN=${CHURN:-0.05}
HOLD=${HOLD:-5}
SERVER_ENV=${SERVER_ENV:-}
TETHER=${TETHER:-$ROOT/target/release/tether}
SKIP_BUILD=${SKIP_BUILD:-0}
VENV=${CARGO_TARGET_DIR:-$ROOT/target}/venv
OUT_DIR=$ROOT/reports/compression-soak
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compression-soak.XXXXXX")
SERVER_PID=""
SAMPLER_PID=""

log() { printf '[compression-soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local status=$?
    if [[ -n "$SAMPLER_PID" ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server and the driver each hold one descriptor per connection, and the soak's replacements
# open before the closed ones are gone.
want_fds=$((2 * CONNECTIONS + 1024))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $want_fds ]]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
log "fd limit $(ulimit -n)"

# Python websockets in the same virtual environment as scripts/test.sh (never the system Python).
if ! "$VENV/bin/python3" -c 'import websockets.asyncio.client' 2>/dev/null; then
    log "creating $VENV with websockets"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "websockets>=14,<18"
fi

if [[ $SKIP_BUILD != 1 ]]; then
    log "building tether (release)"
    cargo build --release --quiet -p tether
fi

# Start the server; its environment gets SERVER_ENV, the driver's does not.
read -r -a server_env <<<"$SERVER_ENV"
slog=$WORK/server.log
env TETHER_LOG=warn "${server_env[@]}" "$TETHER" serve --port 0 "${SERVER_FLAGS[@]}" >"$slog" 2>&1 &
SERVER_PID=$!
base=""
for ((i = 0; i < 150; i++)); do
    base=$(grep -m1 -o 'ws://[0-9.]*:[0-9]*' "$slog" || true)
    [[ -n "$base" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$base" ]]; then
    log "ERROR: tether serve did not start; its output:"
    cat "$slog" >&2
    exit 1
fi
log "server pid $SERVER_PID on $base (flags: ${SERVER_FLAGS[*]:-none}; env: ${SERVER_ENV:-none})"

# VmRSS every second, as `EPOCH_SECONDS RSS_BYTES`, until the server is gone.
series=$WORK/rss.tsv
(
    while [[ -r /proc/$SERVER_PID/status ]]; do
        while read -r key value _; do
            if [[ $key == VmRSS: ]]; then printf '%s %s\n' "$EPOCHREALTIME" "$((value * 1024))"; break; fi
        done </proc/"$SERVER_PID"/status >>"$series" 2>/dev/null || break
        sleep 1
    done
) &
SAMPLER_PID=$!

driver_args=("$MODE" "$base/echo" --server-pid "$SERVER_PID" --connections "$CONNECTIONS"
    --rss-series "$series" --json-out "$OUT_DIR/$MODE-$STAMP.json")
case "$MODE" in
    soak) driver_args+=(--duration "$DURATION" --churn "$CHURN" --series-out "$OUT_DIR/$MODE-$STAMP.tsv") ;;
    hold) driver_args+=(--hold "$HOLD") ;;
esac
for flag in "${SERVER_FLAGS[@]}"; do
    if [[ $flag == --no-compression ]]; then driver_args+=(--no-compression-expected); fi
done

# A hard bound on the whole run, beyond the driver's own.
limit=$(( ${DURATION%.*} + ${HOLD%.*} + 300 ))
status=0
timeout --kill-after=10 "$limit" "$VENV/bin/python3" "$ROOT/bench/compression-soak.py" "${driver_args[@]}" || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null || grep -q '^State:.*Z' "/proc/$SERVER_PID/status" 2>/dev/null; then
    log "ERROR: the server died; its output:"
    tail -n 50 "$slog" >&2
    [[ $status == 0 ]] && status=3
elif grep -qv '^listening on' "$slog"; then
    log "server log (warnings and errors, last 10 lines):"
    grep -v '^listening on' "$slog" | tail -n 10 >&2
fi
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
# Stop the server: SIGTERM (nothing is open any more, so it exits at once), SIGKILL after 3 s.
kill -TERM "$SERVER_PID" 2>/dev/null || true
timeout 3 tail --pid="$SERVER_PID" -f /dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
{ wait "$SERVER_PID"; } 2>/dev/null || true
SERVER_PID=""
if [[ $MODE == soak && -s $OUT_DIR/$MODE-$STAMP.tsv ]]; then
    log "1-second RSS series: $OUT_DIR/$MODE-$STAMP.tsv"
fi
log "summary: $OUT_DIR/$MODE-$STAMP.json (exit $status)"
exit "$status"
