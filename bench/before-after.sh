#!/usr/bin/env bash
# Two builds of `tether serve` side by side in one run, to judge a change: the echo and fan-out
# scenarios of bench/run.sh, with and without permessage-deflate, the builds taking turns in every
# round (A B, then B A, ...), each server pinned to one core, the load generator to the other.
#
#   bash bench/before-after.sh OLD_BINARY NEW_BINARY
#
# The load generator is NEW_BINARY's `tether bench` for every run (the same client for both).
# Prints one line per run and a table of medians to stdout, and exits non-zero if a run fails.
#
# Environment (defaults in brackets):
#   ROUNDS [3], DURATION [5] seconds measured, WARMUP [1] (echo)
#   SCENARIOS [echo16 echo1k echo1k-deflate fanoutmax fanoutmax-deflate]
#   FANOUT_SUBSCRIBERS [1000], FANOUT_MAX_RATE [3000]
#   SERVER_CPU [0], CLIENT_CPU [1]
set -euo pipefail

if [[ $# != 2 || ! -x $1 || ! -x $2 ]]; then
    echo "usage: bash bench/before-after.sh OLD_BINARY NEW_BINARY (two tether executables)" >&2
    exit 2
fi
OLD=$1 NEW=$2
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SCENARIOS=${SCENARIOS:-echo16 echo1k echo1k-deflate fanoutmax fanoutmax-deflate}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-1000}
FANOUT_MAX_RATE=${FANOUT_MAX_RATE:-3000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/before-after.XXXXXX")
RESULTS=$WORK/results.tsv
SERVER_PID=""
trap '[[ -n $SERVER_PID ]] && kill -KILL $SERVER_PID 2>/dev/null; rm -rf "$WORK"' EXIT
log() { printf '[before-after %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
json_num() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" "$2" | head -n1; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }
now() { date +%s.%N; }

start_server() { # BINARY -> SERVER_PID, BASE (ws://host:port)
    local slog=$WORK/server.log rate=$((FANOUT_MAX_RATE * 2 + 100))
    env TETHER_LOG=warn taskset -c "$SERVER_CPU" "$1" serve --port 0 --threads 1 \
        --max-connections $((FANOUT_SUBSCRIBERS + 2000)) --publish-rate "$rate" --publish-burst "$rate" \
        --request-rate "$rate" --request-burst "$rate" >"$slog" 2>&1 &
    SERVER_PID=$!
    BASE=""
    for _ in $(seq 150); do
        BASE=$(grep -m1 -o 'ws://[0-9.]*:[0-9]*' "$slog" || true)
        [[ -n $BASE ]] && return 0
        sleep 0.1
    done
    log "ERROR: $1 did not start"; cat "$slog" >&2; return 1
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

run() { # SCENARIO LABEL BINARY ROUND
    local scenario=$1 label=$2 binary=$3 round=$4 args key
    start_server "$binary"
    case "$scenario" in
        echo16) args=(echo "$BASE/echo" --connections 100 --size 16 --pipeline 16 --warmup "$WARMUP") key=messages_per_sec ;;
        echo1k) args=(echo "$BASE/echo" --connections 1000 --size 1024 --pipeline 4 --warmup "$WARMUP") key=messages_per_sec ;;
        echo1k-deflate) args=(echo "$BASE/echo" --connections 1000 --size 1024 --pipeline 4 --warmup "$WARMUP" --compression) key=messages_per_sec ;;
        fanoutmax) args=(fanout "$BASE/tether" --subscribers "$FANOUT_SUBSCRIBERS" --rate "$FANOUT_MAX_RATE") key=deliveries_per_sec ;;
        fanoutmax-deflate) args=(fanout "$BASE/tether" --subscribers "$FANOUT_SUBSCRIBERS" --rate "$FANOUT_MAX_RATE" --compression) key=deliveries_per_sec ;;
        *) echo "before-after.sh: unknown scenario $scenario" >&2; exit 2 ;;
    esac
    local cpu0 t0 cpu1 t1 out=$WORK/out.json
    cpu0=$(cpu_seconds "$SERVER_PID"); t0=$(now)
    local status=0
    timeout -k 5 $((DURATION + 120)) taskset -c "$CLIENT_CPU" "$NEW" bench "${args[@]}" --duration "$DURATION" --json \
        >"$WORK/client.out" 2>"$WORK/client.err" || status=$?
    grep '^[[:space:]]*{' "$WORK/client.out" | tail -n1 >"$out" || true
    if [[ $status != 0 || ! -s $out ]]; then
        log "ERROR: $scenario $label round $round: tether bench exited $status:"; tail -5 "$WORK/client.err" >&2
        stop_server; exit 1
    fi
    cpu1=$(cpu_seconds "$SERVER_PID"); t1=$(now)
    stop_server
    local value errors client_cpu server_cpu
    value=$(json_num "$key" "$out"); errors=$(json_num errors "$out"); client_cpu=$(json_num client_cpu_percent "$out")
    server_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$label" "$value" "$errors" "$server_cpu" "$client_cpu" >>"$RESULTS"
    log "$scenario $label round $round: $value ${key%_per_sec}/s, errors $errors, server CPU $server_cpu %, generator CPU $client_cpu %"
}

for scenario in $SCENARIOS; do
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order=(old new); else order=(new old); fi
        for label in "${order[@]}"; do
            if [[ $label == old ]]; then run "$scenario" old "$OLD" "$round"; else run "$scenario" new "$NEW" "$round"; fi
        done
    done
done

echo "| scenario | old (median, min-max) | new (median, min-max) | new/old | errors | server CPU old/new | generator CPU old/new |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for scenario in $SCENARIOS; do
    awk -F'\t' -v s="$scenario" '
        function median(list, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (list[j] < list[i]) { t = list[i]; list[i] = list[j]; list[j] = t }
            return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
        }
        $1 == s { n[$2]++; v[$2, n[$2]] = $3; e[$2] += $4; sc[$2] = sc[$2] " " $5; cc[$2] = cc[$2] " " $6 }
        END {
            for (l in n) { k = 0; delete a; for (i = 1; i <= n[l]; i++) a[++k] = v[l, i]; m[l] = median(a, k);
                lo[l] = a[1]; hi[l] = a[k] }
            printf "| %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.3f | %d / %d |%s /%s |%s /%s |\n", s, m["old"], lo["old"], hi["old"],
                m["new"], lo["new"], hi["new"], m["new"] / m["old"], e["old"], e["new"], sc["old"], sc["new"], cc["old"], cc["new"]
        }' "$RESULTS"
done
