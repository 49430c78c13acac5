#!/usr/bin/env bash
# Tether side by side with other WebSocket servers, on this machine, over loopback.
#
#   bash bench/run.sh                  # from the repo root of a fresh clone; ~10 min with the defaults
#   bash bench/run.sh --update-docs    # the same, then the table also goes into docs/benchmarks.md
#
# Builds everything in release mode (tether; bench/peers: tokio-tungstenite and fastwebsockets
# echo servers; bench/node: a Node `ws` echo server when node and npm are installed), then for
# each scenario, round after round, starts each server pinned to one core (SERVER_CPU) and drives
# it with `tether bench` pinned to another (CLIENT_CPU). The servers take turns inside each round,
# in an order that rotates from round to round. Prints a table of medians (min–max over the
# rounds) and Tether's ratio to each peer; writes it to reports/bench/latest.md too.
#
# Environment (defaults in brackets):
#   ROUNDS [3]            runs per server and scenario
#   DURATION [5]          seconds measured per run (echo, fan-out)
#   WARMUP [1]            seconds of load before measuring (echo)
#   IDLE_CONNECTIONS [10000], IDLE_HOLD [10]   idle-memory scenario: connections, seconds held
#   FANOUT_SUBSCRIBERS [1000], FANOUT_RATE [200], FANOUT_PUBLISHERS [1]   fan-out: subscribers,
#                         messages published per second, publisher connections sharing that rate
#   FANOUT_MAX_RATE [3000]   fan-out capacity: messages offered per second (above what one core
#                         delivers to FANOUT_SUBSCRIBERS), to measure the deliveries/s achieved
#   SCENARIOS [echo16 echo1k echo1m idle fanout fanoutmax, and fanout-redis when redis-server is
#                         on PATH]   which scenarios to run
#   fanout-redis: the fan-out through Redis: a redis-server of its own on a free loopback port
#                         (--save '' --appendonly no), REDIS_NODES tether serve --redis nodes, the
#                         publisher on node 1 and the FANOUT_SUBSCRIBERS subscribers spread over
#                         all nodes; each round also runs the one-node in-memory fan-out (the
#                         `fanout` scenario, same rate, payload and count) for the comparison.
#                         Skipped, with a log line, without redis-server or a tether with --redis.
#   REDIS_NODES [2]       fanout-redis: tether serve nodes
#   REDIS_SERVER [redis-server]   fanout-redis: the Redis server binary
#   REDIS_CPU [$SERVER_CPU]   fanout-redis: core for taskset of redis-server (the nodes share
#                         SERVER_CPU: the server side gets the one core the single node gets)
#   SERVERS [tether tether-metrics tungstenite fastwebsockets node]   which servers to run (node
#                         only if installed); `tether-metrics` is tether serve --metrics with
#                         /metrics scraped once a second during the run (echo and idle scenarios)
#   SERVER_CPU [0], CLIENT_CPU [1]   cores for taskset
#   TETHER [$CARGO_TARGET_DIR/release/tether, else target/release/tether]   the server binary
#   TETHER_BENCH [$TETHER]   the load generator binary (`tether bench ...`)
#   SKIP_BUILD [0]        1: use what is already built
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

UPDATE_DOCS=0
for arg in "$@"; do
    case "$arg" in
        --update-docs) UPDATE_DOCS=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-10}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-1000}
# One publisher connection (tether serve's per-connection publish limit is raised for it).
FANOUT_RATE=${FANOUT_RATE:-200}
FANOUT_PUBLISHERS=${FANOUT_PUBLISHERS:-1}
FANOUT_MAX_RATE=${FANOUT_MAX_RATE:-3000}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_NODES=${REDIS_NODES:-2}
if [[ -z "${SCENARIOS:-}" ]]; then
    SCENARIOS="echo16 echo1k echo1m idle fanout fanoutmax"
    # Through Redis only where there is a Redis to run (not on every user's machine).
    if command -v "$REDIS_SERVER" >/dev/null; then SCENARIOS+=" fanout-redis"; fi
fi
SERVERS=${SERVERS:-tether tether-metrics tungstenite fastwebsockets node}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS_CPU=${REDIS_CPU:-$SERVER_CPU}
TETHER=${TETHER:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tether}
TETHER_BENCH=${TETHER_BENCH:-$TETHER}
PEERS=$ROOT/bench/peers/target/release
SKIP_BUILD=${SKIP_BUILD:-0}

OUT_DIR=$ROOT/reports/bench
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-bench.XXXXXX")
RESULTS=$WORK/results.tsv # scenario server round key value
: >"$RESULTS"
SERVER_PID=""
SERVER_URL=""
REDIS_PID=""
REDIS_PORT=""
NODE_PIDS=() # fanout-redis: the nodes running besides SERVER_PID
NOTES=()     # lines for the report (scenarios skipped and why)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "${CLIENT_PID:-}" ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill -KILL "$CLIENT_PID" 2>/dev/null || true
    fi
    local pid
    for pid in "${NODE_PIDS[@]}" "$REDIS_PID"; do
        [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    done
    [[ -n "${SCRAPER_PID:-}" ]] && kill "$SCRAPER_PID" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Setup: file descriptors, pinning, builds.

# 10,000 idle connections need ~10,000 descriptors in the server and as many in the client.
want_fds=$((IDLE_CONNECTIONS + 1024))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $want_fds ]]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
log "fd limit $(ulimit -n)"

PIN_SERVER=()
PIN_CLIENT=()
PIN_REDIS=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_CLIENT=(taskset -c "$CLIENT_CPU")
    PIN_REDIS=(taskset -c "$REDIS_CPU")
else
    log "WARNING: no taskset or fewer than 2 cores: server and load generator are not pinned"
fi

HAVE_NODE=0
if command -v node >/dev/null && command -v npm >/dev/null; then HAVE_NODE=1; fi

if [[ $SKIP_BUILD != 1 ]]; then
    log "building tether (release)"
    cargo build --release --quiet -p tether
    log "building bench/peers (release)"
    cargo build --release --quiet --manifest-path bench/peers/Cargo.toml
    if [[ $HAVE_NODE == 1 ]]; then
        log "npm ci in bench/node"
        if ! (cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
            log "WARNING: npm ci failed: the Node ws server is left out"
            HAVE_NODE=0
        fi
    fi
fi
if [[ $HAVE_NODE == 1 && ! -d bench/node/node_modules/ws ]]; then HAVE_NODE=0; fi

if ! timeout 10 "$TETHER_BENCH" bench --help >/dev/null 2>&1; then
    echo "run.sh: '$TETHER_BENCH bench' is not available (is the bench subcommand built?)" >&2
    exit 1
fi

TETHER_THREADS=()
if "$TETHER" serve --help 2>/dev/null | grep -q -- '--threads'; then TETHER_THREADS=(--threads 1); fi
# Fan-out: lift the token protocol's per-connection publish limit (50/s by default) above
# FANOUT_RATE, so one publisher connection can carry it.
FANOUT_SERVER_FLAGS=()
if "$TETHER" serve --help 2>/dev/null | grep -q -- '--publish-rate'; then
    fanout_top=$(( ${FANOUT_RATE%.*} > ${FANOUT_MAX_RATE%.*} ? ${FANOUT_RATE%.*} : ${FANOUT_MAX_RATE%.*} ))
    FANOUT_SERVER_FLAGS=(--publish-rate "$((fanout_top * 2 + 100))" --publish-burst "$((fanout_top * 2 + 100))")
    # Every request also counts against the request budget (100/s by default) where there is one.
    if "$TETHER" serve --help 2>/dev/null | grep -q -- '--request-rate'; then
        FANOUT_SERVER_FLAGS+=(--request-rate "$((fanout_top * 2 + 100))" --request-burst "$((fanout_top * 2 + 100))")
    fi
elif [[ ${FANOUT_RATE%.*} -ge 50 && $FANOUT_PUBLISHERS -lt $(((${FANOUT_RATE%.*} + 39) / 40)) ]]; then
    log "WARNING: this tether serve limits publishes to 50/s per connection: FANOUT_RATE=$FANOUT_RATE needs more FANOUT_PUBLISHERS"
fi

# Servers that will run, in the order of round 1.
ACTIVE=()
for s in $SERVERS; do
    case "$s" in
        tether | tungstenite | fastwebsockets) ACTIVE+=("$s") ;;
        tether-metrics)
            if "$TETHER" serve --help 2>/dev/null | grep -q -- '--metrics'; then ACTIVE+=("$s"); else
                log "this tether serve has no --metrics: skipping tether-metrics"
            fi ;;
        node) if [[ $HAVE_NODE == 1 ]]; then ACTIVE+=(node); else log "node not installed: skipping the Node ws server"; fi ;;
        *) echo "run.sh: unknown server in SERVERS: $s" >&2; exit 2 ;;
    esac
done

# fanout-redis needs a Redis server and a tether serve with --redis; without either it is left
# out, saying so (the other scenarios run as usual).
if [[ " $SCENARIOS " == *" fanout-redis "* ]]; then
    why=""
    if ! command -v "$REDIS_SERVER" >/dev/null; then
        why="$REDIS_SERVER is not on PATH (Debian: apt-get install redis-server)"
    elif ! "$TETHER" serve --help 2>/dev/null | grep -q -- '--redis'; then
        why="this tether serve has no --redis"
    elif ! [[ $REDIS_NODES =~ ^[0-9]+$ ]] || ((REDIS_NODES < 1 || REDIS_NODES > 16)); then
        echo "run.sh: REDIS_NODES must be 1 to 16, not $REDIS_NODES" >&2
        exit 2
    fi
    if [[ -n "$why" ]]; then
        log "skipping fanout-redis: $why"
        NOTES+=("fanout-redis was skipped: $why.")
        SCENARIOS=$(echo " $SCENARIOS " | sed 's/ fanout-redis / /g; s/^ *//; s/ *$//')
    fi
fi

server_label() {
    case "$1" in
        tether) echo "Tether" ;;
        tether-metrics) echo "Tether, metrics on (scraped 1/s)" ;;
        tether-redis) echo "Tether, $REDIS_NODES nodes on Redis" ;;
        tungstenite) echo "tokio-tungstenite" ;;
        fastwebsockets) echo "fastwebsockets" ;;
        node) echo "Node ws" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Servers: start pinned, wait for `listening on ws://...`, stop.

start_server() { # NAME [EXTRA TETHER FLAGS...] -> SERVER_PID, SERVER_URL (with the echo path)
    # NODE_TAG (fanout-redis) keeps the logs of several nodes apart.
    local name=$1 path=/ slog=$WORK/server-$1${NODE_TAG:-}.log
    shift
    local cmd
    case "$name" in
        # One thread: `--threads 1` (tokio's current-thread scheduler, like the peers) where tether
        # serve has it; TOKIO_WORKER_THREADS=1 for older builds without it (a one-worker
        # multi-thread runtime).
        # The connection cap goes above the idle scenario's count: the peers have none.
        tether | tether-metrics)
            cmd=(env TETHER_LOG=warn TOKIO_WORKER_THREADS=1 "${PIN_SERVER[@]}" "$TETHER" serve --port 0
                "${TETHER_THREADS[@]}" --max-connections $((IDLE_CONNECTIONS + FANOUT_SUBSCRIBERS + 1000)) "$@")
            [[ $name == tether-metrics ]] && cmd+=(--metrics)
            path=/echo ;;
        tungstenite) cmd=("${PIN_SERVER[@]}" "$PEERS/tungstenite-echo" --port 0) ;;
        fastwebsockets) cmd=("${PIN_SERVER[@]}" "$PEERS/fastwebsockets-echo" --port 0) ;;
        node) cmd=("${PIN_SERVER[@]}" node "$ROOT/bench/node/echo.mjs" --port 0) ;;
    esac
    : >"$slog"
    "${cmd[@]}" >"$slog" 2>&1 &
    SERVER_PID=$!
    local base="" i
    for ((i = 0; i < 150; i++)); do
        base=$(grep -m1 -o 'ws://[0-9.]*:[0-9]*' "$slog" || true)
        [[ -n "$base" ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [[ -z "$base" ]]; then
        log "ERROR: $name did not start; its output:"
        cat "$slog" >&2
        stop_server
        return 1
    fi
    SERVER_URL=$base$path
    [[ $name == tether-metrics ]] && start_scraper "${base#ws://}"
    return 0
}

# Scrapes http://HOST:PORT/metrics once a second in the background (pinned with the load
# generator), as Prometheus would, so that `tether-metrics` pays for what metrics cost when they
# are used: the counting on every message and the page built on every scrape. Plain bash over
# /dev/tcp: no curl needed.
SCRAPER_PID=""
start_scraper() { # HOST:PORT
    local host=${1%:*} port=${1##*:}
    "${PIN_CLIENT[@]}" bash -c '
        checked=0
        while sleep 1; do
            { exec 3<>"/dev/tcp/$0/$1"; } 2>/dev/null || continue
            printf "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$0" >&3
            read -r status <&3 || status=""
            cat <&3 >/dev/null
            exec 3<&-
            # The first answer must be the page: else the run would not measure what it says.
            if [[ $checked == 0 ]]; then
                checked=1
                status=$(printf %s "$status" | tr -d "\r")
                [[ $status == "HTTP/1.1 200"* ]] || echo "[bench] WARNING: GET /metrics answered \"$status\": tether-metrics is not scraped" >&2
            fi
        done' "$host" "$port" &
    SCRAPER_PID=$!
}
stop_scraper() {
    [[ -n "$SCRAPER_PID" ]] || return 0
    kill "$SCRAPER_PID" 2>/dev/null || true
    wait "$SCRAPER_PID" 2>/dev/null || true
    SCRAPER_PID=""
}

stop_server() {
    stop_scraper
    [[ -n "$SERVER_PID" ]] || return 0
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}

stop_pid() { # PID: SIGTERM, then SIGKILL after 3 s
    kill -TERM "$1" 2>/dev/null || true
    local i
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Redis (fanout-redis): a server of its own per run, on a free loopback port, nothing saved.

# A loopback TCP port nothing answers on (at most 50 tries); 1 if none was found.
free_port() {
    local i port
    for ((i = 0; i < 50; i++)); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# redis_cmd PORT WORDS...: sends an inline command, prints the first line of the reply ("" when
# Redis does not answer within 2 s). Plain bash over /dev/tcp: no redis-cli needed.
redis_cmd() {
    local port=$1 line=""
    shift
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 0
    printf '%s\r\n' "$*" >&3
    read -r -t 2 line <&3 || true
    exec 3<&-
    printf '%s' "${line%$'\r'}"
}

start_redis() { # -> REDIS_PID, REDIS_PORT; 1 when it would not start (5 ports tried)
    local try port i rlog=$WORK/redis.log
    for ((try = 0; try < 5; try++)); do
        port=$(free_port) || break
        : >"$rlog"
        "${PIN_REDIS[@]}" "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$WORK" --logfile '' >"$rlog" 2>&1 &
        REDIS_PID=$!
        for ((i = 0; i < 50; i++)); do
            if [[ $(redis_cmd "$port" PING) == "+PONG" ]]; then
                REDIS_PORT=$port
                return 0
            fi
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$REDIS_PID"
        REDIS_PID=""
    done
    log "ERROR: $REDIS_SERVER did not start; its output:"
    cat "$rlog" >&2
    return 1
}

stop_redis() {
    [[ -n "$REDIS_PID" ]] || return 0
    stop_pid "$REDIS_PID"
    REDIS_PID=""
    REDIS_PORT=""
}

stop_nodes() { # the fanout-redis nodes, and Redis after them
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
    NODE_PIDS=()
    stop_redis
}

# CPU seconds (user + system, all threads) a process has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || true; }
fd_count() { { ls "/proc/$1/fd" 2>/dev/null || true; } | wc -l; }
now() { date +%s.%N; }

# ---------------------------------------------------------------------------------------------
# Load generator runs. Each records its numbers into $RESULTS.

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"; }

# The value of a numeric KEY in the one-line JSON object FILE holds: its first occurrence, which is
# the top-level one (tether bench writes nested objects, such as fanout's per-URL
# `subscriber_urls`, after the top-level numbers).
json_num() {
    { grep -o "\"$1\"[[:space:]]*:[[:space:]]*-\{0,1\}[0-9][0-9.eE+-]*" "$2" || true; } | head -n1 | sed 's/.*:[[:space:]]*//'
}

# Records a fan-out run's figures from $WORK/last.json, and the server's CPU (seconds cpu0 to
# cpu1 over the wall times t0 to t1, as a percentage of one core).
record_fanout() {
    local scenario=$1 server=$2 round=$3 cpu0=$4 cpu1=$5 t0=$6 t1=$7 key
    for key in deliveries_per_sec p50_us p90_us p99_us p999_us max_us errors client_cpu_percent; do
        record "$scenario" "$server" "$round" "$key" "$(json_num "$key" "$WORK/last.json")"
    done
    record "$scenario" "$server" "$round" server_cpu_percent \
        "$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')"
}

# run_client SCENARIO SERVER ROUND TIMEOUT ARGS... -> JSON line in $WORK/last.json; 1 on failure.
run_client() {
    local scenario=$1 server=$2 round=$3 limit=$4
    shift 4
    local out=$WORK/client.out err=$WORK/client.err
    local status=0
    timeout -k 5 "$limit" "${PIN_CLIENT[@]}" "$TETHER_BENCH" bench "$@" --json >"$out" 2>"$err" || status=$?
    grep '^[[:space:]]*{' "$out" | tail -n1 >"$WORK/last.json" || true
    if [[ $status != 0 || ! -s "$WORK/last.json" ]]; then
        log "ERROR: $scenario/$server round $round: tether bench exited $status; stderr tail:"
        tail -n 5 "$err" >&2 || true
        record "$scenario" "$server" "$round" failed 1
        return 1
    fi
}

run_echo() { # SCENARIO SERVER ROUND -- ARGS for `tether bench echo`
    local scenario=$1 server=$2 round=$3
    shift 4
    start_server "$server" || { record "$scenario" "$server" "$round" failed 1; return 0; }
    local cpu0 t0 cpu1 t1
    cpu0=$(cpu_seconds "$SERVER_PID")
    t0=$(now)
    if run_client "$scenario" "$server" "$round" $((WARMUP + DURATION + 60)) echo "$SERVER_URL" \
        --duration "$DURATION" --warmup "$WARMUP" "$@"; then
        cpu1=$(cpu_seconds "$SERVER_PID")
        t1=$(now)
        local key
        for key in messages_per_sec mb_per_sec p50_us p90_us p99_us p999_us max_us errors client_cpu_percent; do
            record "$scenario" "$server" "$round" "$key" "$(json_num "$key" "$WORK/last.json")"
        done
        record "$scenario" "$server" "$round" server_cpu_percent \
            "$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')"
        log "$scenario $(server_label "$server") round $round: $(json_num messages_per_sec "$WORK/last.json") msg/s, p99 $(json_num p99_us "$WORK/last.json") µs, client CPU $(json_num client_cpu_percent "$WORK/last.json")%"
    fi
    stop_server
}

run_idle() { # SCENARIO SERVER ROUND
    local scenario=$1 server=$2 round=$3
    start_server "$server" || { record "$scenario" "$server" "$round" failed 1; return 0; }
    sleep 0.5
    local before after="" fds0 fds prev=-1 stable=0 held="" i
    before=$(rss_bytes "$SERVER_PID")
    fds0=$(fd_count "$SERVER_PID")
    local out=$WORK/client.out err=$WORK/client.err status=0
    timeout -k 5 $((IDLE_HOLD + 120)) "${PIN_CLIENT[@]}" "$TETHER_BENCH" bench idle "$SERVER_URL" \
        --connections "$IDLE_CONNECTIONS" --hold "$IDLE_HOLD" --json >"$out" 2>"$err" &
    CLIENT_PID=$!
    # Once the server's descriptor count has stopped growing for a second, every connection the
    # load generator opens is open: read the server's RSS then (and keep the last reading
    # taken while the connections are held).
    for ((i = 0; i < (IDLE_HOLD + 120) * 4; i++)); do
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        fds=$(fd_count "$SERVER_PID")
        if ((fds > fds0 + 1 && fds == prev)); then
            stable=$((stable + 1))
            if ((stable >= 4)); then
                after=$(rss_bytes "$SERVER_PID")
                [[ -z "$held" ]] && log "$scenario $(server_label "$server") round $round: $((fds - fds0)) descriptors open"
                held=$fds
            fi
        else
            stable=0
        fi
        prev=$fds
        sleep 0.25
    done
    wait "$CLIENT_PID" || status=$?
    CLIENT_PID=""
    grep '^[[:space:]]*{' "$out" | tail -n1 >"$WORK/last.json" || true
    if [[ $status != 0 || ! -s "$WORK/last.json" || -z "$after" ]]; then
        local why="tether bench idle exited $status"
        [[ -z "$after" ]] && why="$why; the server's connections never settled"
        log "ERROR: $scenario/$server round $round: $why; stderr tail:"
        tail -n 5 "$err" >&2 || true
        record "$scenario" "$server" "$round" failed 1
    else
        local connected failed
        connected=$(json_num connected "$WORK/last.json")
        failed=$(json_num failed "$WORK/last.json")
        record "$scenario" "$server" "$round" connected "$connected"
        record "$scenario" "$server" "$round" failed_connections "$failed"
        record "$scenario" "$server" "$round" rss_before "$before"
        record "$scenario" "$server" "$round" rss_after "$after"
        if [[ ${connected:-0} -gt 0 ]]; then
            record "$scenario" "$server" "$round" bytes_per_connection $(((after - before) / connected))
        fi
        log "$scenario $(server_label "$server") round $round: $connected connected, $failed failed, RSS $((before / 1024)) KiB -> $((after / 1024)) KiB"
    fi
    stop_server
}

run_fanout() { # SCENARIO SERVER ROUND RATE
    local scenario=$1 server=$2 round=$3 rate=$4
    start_server "$server" "${FANOUT_SERVER_FLAGS[@]}" || { record "$scenario" "$server" "$round" failed 1; return 0; }
    local url=${SERVER_URL%/echo}/tether cpu0 t0 cpu1 t1
    cpu0=$(cpu_seconds "$SERVER_PID")
    t0=$(now)
    if run_client "$scenario" "$server" "$round" $((DURATION + 120)) fanout "$url" \
        --subscribers "$FANOUT_SUBSCRIBERS" --rate "$rate" --publishers "$FANOUT_PUBLISHERS" \
        --duration "$DURATION"; then
        cpu1=$(cpu_seconds "$SERVER_PID")
        t1=$(now)
        record_fanout "$scenario" "$server" "$round" "$cpu0" "$cpu1" "$t0" "$t1"
        log "$scenario $(server_label "$server") round $round: $(json_num deliveries_per_sec "$WORK/last.json") deliveries/s, p99 $(json_num p99_us "$WORK/last.json") µs"
    fi
    stop_server
}

# fanout-redis, one round: the one-node in-memory fan-out and the nodes on Redis, back to back (the
# order alternates from round to round), same rate, payload and subscriber count.
run_fanout_redis() { # SCENARIO SERVER ROUND
    local scenario=$1 round=$3
    if ((round % 2)); then
        run_fanout "$scenario" tether "$round" "$FANOUT_RATE"
        run_fanout_cluster "$scenario" tether-redis "$round"
    else
        run_fanout_cluster "$scenario" tether-redis "$round"
        run_fanout "$scenario" tether "$round" "$FANOUT_RATE"
    fi
}

# A fresh redis-server and REDIS_NODES nodes on it (`--redis`, pinned to SERVER_CPU together), the
# publisher on node 1, the subscribers round-robin over every node (`--subscriber-url`).
run_fanout_cluster() { # SCENARIO SERVER ROUND
    local scenario=$1 server=$2 round=$3
    start_redis || { record "$scenario" "$server" "$round" failed 1; return 0; }
    local redis_url=redis://127.0.0.1:$REDIS_PORT/0 urls=() n pid
    for ((n = 1; n <= REDIS_NODES; n++)); do
        if ! NODE_TAG=-node$n start_server tether "${FANOUT_SERVER_FLAGS[@]}" --redis "$redis_url" --node-name "bench-$n"; then
            stop_nodes
            record "$scenario" "$server" "$round" failed 1
            return 0
        fi
        NODE_PIDS+=("$SERVER_PID")
        SERVER_PID=""
        urls+=("${SERVER_URL%/echo}/tether")
    done
    # Every node heartbeats into the `tether:nodes` hash once it has reached Redis (every 2 s):
    # wait for all of them, at most 15 s, so the run does not start on a node still connecting.
    local seen=""
    for ((n = 0; n < 150; n++)); do
        seen=$(redis_cmd "$REDIS_PORT" HLEN tether:nodes)
        [[ $seen == ":$REDIS_NODES" ]] && break
        sleep 0.1
    done
    [[ $seen == ":$REDIS_NODES" ]] || log "WARNING: $scenario round $round: Redis lists ${seen#:} of $REDIS_NODES nodes after 15 s; running anyway"
    local cpu0=0 rcpu0 t0 cpu1=0 rcpu1 t1 list
    for pid in "${NODE_PIDS[@]}"; do cpu0=$(awk -v a="$cpu0" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
    rcpu0=$(cpu_seconds "$REDIS_PID")
    t0=$(now)
    list=$(IFS=,; echo "${urls[*]}")
    if run_client "$scenario" "$server" "$round" $((DURATION + 120)) fanout "${urls[0]}" --subscriber-url "$list" \
        --subscribers "$FANOUT_SUBSCRIBERS" --rate "$FANOUT_RATE" --publishers "$FANOUT_PUBLISHERS" \
        --duration "$DURATION"; then
        for pid in "${NODE_PIDS[@]}"; do cpu1=$(awk -v a="$cpu1" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
        rcpu1=$(cpu_seconds "$REDIS_PID")
        t1=$(now)
        record_fanout "$scenario" "$server" "$round" "$cpu0" "$cpu1" "$t0" "$t1"
        local key
        record "$scenario" "$server" "$round" redis_cpu_percent \
            "$(awk -v a="$rcpu0" -v b="$rcpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')"
        # What each node's subscribers got: the report's `subscriber_urls`, one object per node.
        sed 's/.*"subscriber_urls":\[//; s/\]}[[:space:]]*$//; s/},{/}\n{/g' "$WORK/last.json" >"$WORK/groups.txt"
        for ((n = 1; n <= REDIS_NODES; n++)); do
            sed -n "${n}p" "$WORK/groups.txt" >"$WORK/group.json"
            for key in subscribers deliveries missing p50_us p99_us; do
                record "$scenario" "$server" "$round" "node${n}_$key" "$(json_num "$key" "$WORK/group.json")"
            done
        done
        log "$scenario $(server_label "$server") round $round: $(json_num deliveries_per_sec "$WORK/last.json") deliveries/s, p99 $(json_num p99_us "$WORK/last.json") µs, errors $(json_num errors "$WORK/last.json"), client CPU $(json_num client_cpu_percent "$WORK/last.json")%"
    fi
    stop_nodes
}

scenario_title() {
    case "$1" in
        echo16) echo "Echo, 16 B text, 100 connections × 16 in flight" ;;
        echo1k) echo "Echo, 1 KiB text, 1,000 connections × 4 in flight" ;;
        echo1m) echo "Echo, 1 MiB binary, 4 connections × 1 in flight" ;;
        idle) echo "Idle memory, $(printf "%'d" "$IDLE_CONNECTIONS" 2>/dev/null || echo "$IDLE_CONNECTIONS") connections: server RSS growth per connection" ;;
        fanout) echo "Fan-out (Tether only), $FANOUT_PUBLISHERS publisher(s) → $FANOUT_SUBSCRIBERS subscribers, $FANOUT_RATE messages/s in all" ;;
        fanout-redis) echo "Fan-out through Redis (Tether only), $FANOUT_PUBLISHERS publisher(s) on node 1 → $FANOUT_SUBSCRIBERS subscribers spread over $REDIS_NODES nodes, $FANOUT_RATE messages/s in all, next to one node in memory" ;;
        fanoutmax) echo "Fan-out capacity (Tether only), $FANOUT_PUBLISHERS publisher(s) → $FANOUT_SUBSCRIBERS subscribers, $FANOUT_MAX_RATE messages/s offered ($((${FANOUT_MAX_RATE%.*} * FANOUT_SUBSCRIBERS)) deliveries/s): deliveries/s is what arrived, first publish to last delivery" ;;
    esac
}

run_scenario() { # SCENARIO SERVER ROUND
    case "$1" in
        echo16) run_echo "$@" -- --connections 100 --size 16 --pipeline 16 ;;
        echo1k) run_echo "$@" -- --connections 1000 --size 1024 --pipeline 4 ;;
        echo1m) run_echo "$@" -- --connections 4 --size 1048576 --pipeline 1 --binary ;;
        idle) run_idle "$@" ;;
        fanout) [[ $2 == tether ]] && run_fanout "$@" "$FANOUT_RATE" ;;
        fanoutmax) [[ $2 == tether ]] && run_fanout "$@" "$FANOUT_MAX_RATE" ;;
        fanout-redis) [[ $2 == tether ]] && run_fanout_redis "$@" ;;
        *) echo "run.sh: unknown scenario: $1" >&2; exit 2 ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# The machine, for the report.

machine_description() {
    local model mem kernel rustc_v node_v
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
    kernel=$(uname -sr)
    rustc_v=$(rustc --version 2>/dev/null || echo "rustc: not found")
    node_v=$(node --version 2>/dev/null || echo "not installed")
    echo "- CPU: ${model:-unknown}, $(nproc) cores available (server pinned to core $SERVER_CPU, load generator to core $CLIENT_CPU)"
    echo "- Memory: ${mem:-unknown}; kernel: $kernel"
    echo "- $rustc_v; Node $node_v"
    echo "- Peers: tokio-tungstenite $(peer_version tokio-tungstenite), fastwebsockets $(peer_version fastwebsockets), ws $(node -p "require('$ROOT/bench/node/node_modules/ws/package.json').version" 2>/dev/null || echo '-')"
    echo "- Load average (1 min) at the start: $LOAD_START, at the end: $(cut -d' ' -f1 /proc/loadavg) (2 = both cores busy)"
    echo "- Runs: ROUNDS=$ROUNDS, DURATION=${DURATION}s (+${WARMUP}s warm-up), IDLE_HOLD=${IDLE_HOLD}s; $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
}

peer_version() {
    awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' bench/peers/Cargo.lock 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Summaries: median (min–max) over the rounds.

# stats SCENARIO SERVER KEY -> "median min max n" (n = 0: no value)
stats() {
    awk -F'\t' -v s="$1" -v v="$2" -v k="$3" '$1 == s && $2 == v && $4 == k && $5 != "" { print $5 }' "$RESULTS" |
        sort -g | awk '{ x[NR] = $1 } END {
            if (NR == 0) { print "- - - 0"; exit }
            m = (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
            print m, x[1], x[NR], NR }'
}

failures() { awk -F'\t' -v s="$1" -v v="$2" '$1 == s && $2 == v && $4 == "failed" { n++ } END { print n + 0 }' "$RESULTS"; }

# fmt KIND VALUE: rate (k/M), int, mb, pct, bytes
fmt() {
    awk -v kind="$1" -v x="$2" 'BEGIN {
        if (x == "-" || x == "") { print "-"; exit }
        if (kind == "rate") { if (x >= 1e6) printf "%.2fM", x / 1e6; else if (x >= 1e4) printf "%.0fk", x / 1e3; else if (x >= 1e3) printf "%.1fk", x / 1e3; else printf "%.0f", x }
        else if (kind == "mb") printf (x >= 100 ? "%.0f" : "%.1f"), x
        else if (kind == "pct") printf "%.0f%%", x
        else if (kind == "bytes") { a = x < 0 ? -x : x; if (a >= 1048576) printf "%.1f MiB", x / 1048576; else if (a >= 10240) printf "%.1f KiB", x / 1024; else printf "%.0f B", x }
        else printf "%.0f", x
    }'
}

# cell KIND SCENARIO SERVER KEY -> "median (min–max)"
cell() {
    local m lo hi n
    read -r m lo hi n < <(stats "$2" "$3" "$4")
    [[ $n == 0 ]] && { echo "-"; return; }
    local fm flo fhi
    fm=$(fmt "$1" "$m")
    flo=$(fmt "$1" "$lo")
    fhi=$(fmt "$1" "$hi")
    if [[ "$flo" == "$fhi" ]]; then echo "$fm"; else echo "$fm ($flo–$fhi)"; fi
}

median() { stats "$@" | awk '{ print $1 }'; }

# ratio A B -> "1.23×"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f×", a / b }'; }

runs_cell() { # SCENARIO SERVER: "3" or "2 (1 failed)"
    local ok failed
    failed=$(failures "$1" "$2")
    ok=$(awk -F'\t' -v s="$1" -v v="$2" '$1 == s && $2 == v && $4 != "failed" { r[$3] = 1 } END { print length(r) }' "$RESULTS")
    if [[ $failed == 0 ]]; then echo "$ok"; else echo "$ok ($failed failed)"; fi
}

table() {
    local scenario server tether_mps tether_p99 tether_bpc
    for scenario in $SCENARIOS; do
        echo
        echo "**$(scenario_title "$scenario")**"
        echo
        case "$scenario" in
            echo*)
                echo "| server | msg/s | MB/s | p50 µs | p99 µs | p99.9 µs | errors | server CPU | load gen CPU | runs | Tether ÷ peer, msg/s | Tether ÷ peer, p99 |"
                echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                tether_mps=$(median "$scenario" tether messages_per_sec)
                tether_p99=$(median "$scenario" tether p99_us)
                for server in "${ACTIVE[@]}"; do
                    local r1="" r2=""
                    if [[ $server != tether ]]; then
                        r1=$(ratio "$tether_mps" "$(median "$scenario" "$server" messages_per_sec)")
                        r2=$(ratio "$tether_p99" "$(median "$scenario" "$server" p99_us)")
                    fi
                    echo "| $(server_label "$server") | $(cell rate "$scenario" "$server" messages_per_sec) | $(cell mb "$scenario" "$server" mb_per_sec) | $(cell int "$scenario" "$server" p50_us) | $(cell int "$scenario" "$server" p99_us) | $(cell int "$scenario" "$server" p999_us) | $(cell int "$scenario" "$server" errors) | $(cell pct "$scenario" "$server" server_cpu_percent) | $(cell pct "$scenario" "$server" client_cpu_percent) | $(runs_cell "$scenario" "$server") | $r1 | $r2 |"
                done ;;
            idle)
                echo "| server | connected | failed | RSS before | RSS growth per connection | runs | Tether ÷ peer (lower is better for Tether) |"
                echo "|---|---:|---:|---:|---:|---:|---:|"
                tether_bpc=$(median "$scenario" tether bytes_per_connection)
                for server in "${ACTIVE[@]}"; do
                    local r=""
                    [[ $server != tether ]] && r=$(ratio "$tether_bpc" "$(median "$scenario" "$server" bytes_per_connection)")
                    echo "| $(server_label "$server") | $(cell int "$scenario" "$server" connected) | $(cell int "$scenario" "$server" failed_connections) | $(cell bytes "$scenario" "$server" rss_before) | $(cell bytes "$scenario" "$server" bytes_per_connection) | $(runs_cell "$scenario" "$server") | $r |"
                done ;;
            fanout|fanoutmax)
                echo "| server | deliveries/s | p50 µs | p99 µs | p99.9 µs | errors | server CPU | load gen CPU | runs |"
                echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
                echo "| Tether | $(cell rate "$scenario" tether deliveries_per_sec) | $(cell int "$scenario" tether p50_us) | $(cell int "$scenario" tether p99_us) | $(cell int "$scenario" tether p999_us) | $(cell int "$scenario" tether errors) | $(cell pct "$scenario" tether server_cpu_percent) | $(cell pct "$scenario" tether client_cpu_percent) | $(runs_cell "$scenario" tether) |" ;;
            fanout-redis)
                echo "| setup | deliveries/s | p50 µs | p99 µs | p99.9 µs | errors | server CPU (all nodes) | Redis CPU | load gen CPU | runs |"
                echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                echo "| 1 node, in memory | $(cell rate "$scenario" tether deliveries_per_sec) | $(cell int "$scenario" tether p50_us) | $(cell int "$scenario" tether p99_us) | $(cell int "$scenario" tether p999_us) | $(cell int "$scenario" tether errors) | $(cell pct "$scenario" tether server_cpu_percent) | - | $(cell pct "$scenario" tether client_cpu_percent) | $(runs_cell "$scenario" tether) |"
                echo "| $REDIS_NODES nodes on Redis | $(cell rate "$scenario" tether-redis deliveries_per_sec) | $(cell int "$scenario" tether-redis p50_us) | $(cell int "$scenario" tether-redis p99_us) | $(cell int "$scenario" tether-redis p999_us) | $(cell int "$scenario" tether-redis errors) | $(cell pct "$scenario" tether-redis server_cpu_percent) | $(cell pct "$scenario" tether-redis redis_cpu_percent) | $(cell pct "$scenario" tether-redis client_cpu_percent) | $(runs_cell "$scenario" tether-redis) |"
                local n what
                for ((n = 1; n <= REDIS_NODES; n++)); do
                    what="subscribers on node $n"
                    ((n == 1)) && what="$what (the publisher's)"
                    echo "| … $(cell int "$scenario" tether-redis "node${n}_subscribers") $what, $(cell int "$scenario" tether-redis "node${n}_missing") missing | | $(cell int "$scenario" tether-redis "node${n}_p50_us") | $(cell int "$scenario" tether-redis "node${n}_p99_us") | | | | | | |"
                done
                echo
                echo "Redis ÷ memory: p50 $(ratio "$(median "$scenario" tether-redis p50_us)" "$(median "$scenario" tether p50_us)"), p99 $(ratio "$(median "$scenario" tether-redis p99_us)" "$(median "$scenario" tether p99_us)"), deliveries/s $(ratio "$(median "$scenario" tether-redis deliveries_per_sec)" "$(median "$scenario" tether deliveries_per_sec)"). $(if [[ ${#PIN_SERVER[@]} == 0 ]]; then echo "Nothing was pinned."; elif [[ $REDIS_CPU == "$SERVER_CPU" ]]; then echo "The $REDIS_NODES nodes and Redis share core $SERVER_CPU, the one core the single node has."; else echo "The $REDIS_NODES nodes share core $SERVER_CPU, Redis runs on core $REDIS_CPU."; fi)" ;;
        esac
    done
}

# ---------------------------------------------------------------------------------------------
# Run.

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
log "servers: ${ACTIVE[*]}; scenarios: $SCENARIOS; $ROUNDS rounds; load average $LOAD_START"
for scenario in $SCENARIOS; do
    for ((round = 1; round <= ROUNDS; round++)); do
        n=${#ACTIVE[@]}
        for ((j = 0; j < n; j++)); do
            server=${ACTIVE[$(((j + round - 1) % n))]}
            run_scenario "$scenario" "$server" "$round" || true
        done
    done
done

REPORT=$WORK/report.md
{
    echo "Medians over the rounds, min–max in brackets. Tether ÷ peer above 1× means Tether does more"
    echo "messages per second (msg/s) or has the higher p99 latency (p99); for idle memory, below 1× means"
    echo "Tether uses less memory per connection. Server CPU is the server's CPU time over the run's wall"
    echo "time (100% = its one core); load gen CPU is what \`tether bench\` reports for itself."
    echo
    machine_description
    for note in "${NOTES[@]}"; do echo "- $note"; done
    table
} >"$REPORT"

echo
cat "$REPORT"
cp "$REPORT" "$OUT_DIR/latest.md"
cp "$RESULTS" "$OUT_DIR/latest.tsv"
log "wrote reports/bench/latest.md (raw numbers: reports/bench/latest.tsv)"

if [[ $UPDATE_DOCS == 1 ]]; then
    doc=$ROOT/docs/benchmarks.md
    if ! grep -q '<!-- results:start -->' "$doc" || ! grep -q '<!-- results:end -->' "$doc"; then
        echo "run.sh: $doc has no <!-- results:start --> / <!-- results:end --> markers" >&2
        exit 1
    fi
    awk -v report="$REPORT" '
        /<!-- results:start -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
        /<!-- results:end -->/ { skip = 0 }
        !skip { print }' "$doc" >"$WORK/doc.md"
    cp "$WORK/doc.md" "$doc"
    log "updated docs/benchmarks.md"
fi
