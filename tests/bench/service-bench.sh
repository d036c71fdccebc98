#!/usr/bin/env bash
# The service's benchmark (issue 4), on each store beside the bare TLS server (issue 15), and
# the fleet run (issue 6), as recorded in docs/BENCHMARKS.md. Prints one JSON object per
# measurement on stdout, then a summary (the rates and their ratios) on stderr; progress on
# stderr.
#
#   tests/bench/service-bench.sh            # everything: about 3 minutes on 2 cores
#   SKIP_BUILD=1 FLEET_PHONES=0 IDLE=0 tests/bench/service-bench.sh     # the stores and the bare server
#
# Settings (environment): PHONES, CONCURRENCY (the comparison with the bare server, default
# 2000 and 16), STORES (the service's stores measured, default `sqlite postgres`, PostgreSQL
# only when it is installed; `postgres` asked for and not installed is an error),
# FLEET_PHONES, FLEET_CONCURRENCY (default 10000 and 32; 0 skips), IDLE (idle connections
# for the memory figure, default 1000; 0 skips), DLS_LOG (the service's log filter, default
# info, written to a file as in production), CARGO_TARGET_DIR, SKIP_BUILD.
#
# Every measurement of the service starts against a fresh data directory (on PostgreSQL, a
# fresh database too) with first start-ups (start-up → ReadAllItems, reply → WriteItems of
# the ~20-item `global` profile, reply → CleanUp; 3 requests per interaction), then runs the
# same phones again: repeat start-ups of known phones whose configuration is in step
# (start-up → CleanUp; 1 request). Each store is measured with keep-alive connections and
# with a new TLS connection per interaction (as phones do). The baseline is the
# `bare_tls_server` example of dls-server (the service's TLS and HTTP settings, a fixed
# CleanUp answer) driven by `dls phone load --baseline` (3 fixed requests of the same sizes
# per interaction; with `--baseline-requests 1`, only the start-up's). PostgreSQL is a
# temporary cluster on the same machine (`pg_start` in tests/bench/common.sh); its CPU time
# (the postmaster and its backends) is given beside the server's. The load generator runs
# on the same machine: all share the cores. Two nodes against one:
# tests/bench/store-bench.sh.
set -euo pipefail

cd "$(dirname "$0")/../.."
PHONES=${PHONES:-2000}
CONCURRENCY=${CONCURRENCY:-16}
FLEET_PHONES=${FLEET_PHONES:-10000}
FLEET_CONCURRENCY=${FLEET_CONCURRENCY:-32}
IDLE=${IDLE:-1000}
export DLS_LOG=${DLS_LOG:-info}
BIN=${CARGO_TARGET_DIR:-target}/release
TCK=$(getconf CLK_TCK)

. tests/bench/common.sh

if [ -z "${STORES+set}" ]; then
    STORES=sqlite
    if [ -n "$(pg_bin)" ]; then
        STORES="sqlite postgres"
    else
        echo "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): SQLite only" >&2
    fi
fi
for store in $STORES; do
    case $store in
    sqlite) ;;
    postgres)
        if [ -z "$(pg_bin)" ]; then
            echo "error: STORES has postgres, but PostgreSQL is not installed (no /usr/lib/postgresql/*/bin)" >&2
            exit 1
        fi
        ;;
    *)
        echo "error: STORES: unknown store '$store' (sqlite, postgres)" >&2
        exit 1
        ;;
    esac
done

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p dls-cli >&2
    cargo build --release -p dls-server --example bare_tls_server >&2
fi

bench_init
: >"$WORK/results.jsonl"
STORE=

# start_service NAME STORE: `start_dls` on STORE (sqlite: the default, SQLite in the data
# directory; postgres: a fresh database NAME of the temporary cluster, started at the first
# call); sets STORE.
start_service() {
    local url=
    if [ "$2" = postgres ]; then
        if [ -z "$PG_DATA" ]; then
            # shellcheck disable=SC2119 # no more settings
            pg_start
            echo "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT" >&2
        fi
        url=$(pg_db "$1")
    fi
    start_dls "$1" "$url"
    STORE=$2
}

start_bare() {
    "$BIN/examples/bare_tls_server" >"$WORK/bare.out" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$WORK/bare.out" "bare TLS server on"
    SERVER=$(sed -n 's#.*https://\([^/]*\)/.*#\1#p' "$WORK/bare.out")
    STORE=
}

store_json() { if [ -n "$STORE" ]; then echo "\"$STORE\""; else echo null; fi; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
seconds() { awk -v a="$1" -v b="$2" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}'; }

# load NAME ARGS…: one `dls phone load --json` against SERVER; prints (and keeps in
# $WORK/results.jsonl) {"run":NAME,"store":"sqlite"|"postgres"|null (the bare server),
# "loadavg":…,"server_cpu_seconds":…[,"postgres_cpu_seconds":…],"client_cpu_seconds":…,
# "result":{…}}.
load() {
    local name=$1
    shift
    local la c0 c1 g0=0 g1=0 line pg=""
    la=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu "$SERVER_PID")
    if [ "$STORE" = postgres ]; then g0=$(pg_cpu); fi
    # `time` measures the load generator's own CPU.
    line=$({ TIMEFORMAT='%U %S'; time "$BIN/dls" phone load --server "$SERVER" --json "$@" 2>"$WORK/load.err"; } \
        2>"$WORK/time" | tail -n 1) || true
    c1=$(cpu "$SERVER_PID")
    if [ "$STORE" = postgres ]; then
        g1=$(pg_cpu)
        pg="\"postgres_cpu_seconds\":$(seconds "$g0" "$g1"),"
    fi
    local client
    client=$(awk '{printf "%.2f", $1 + $2}' "$WORK/time")
    printf '{"run":"%s","store":%s,"loadavg":%s,"server_cpu_seconds":%s,%s"client_cpu_seconds":%s,"result":%s}\n' \
        "$name" "$(store_json)" "$la" "$(seconds "$c0" "$c1")" "$pg" \
        "$client" "${line:-null}" | tee -a "$WORK/results.jsonl"
    if [ -s "$WORK/load.err" ]; then cat "$WORK/load.err" >&2; fi
}

# idle NAME ARGS…: RSS of SERVER_PID before and after IDLE idle keep-alive connections.
idle() {
    local name=$1
    shift
    sleep 2
    local before after
    before=$(rss_kb "$SERVER_PID")
    "$BIN/dls" phone idle-connections --server "$SERVER" --count "$IDLE" "$@" >"$WORK/idle.out" 2>&1 &
    local idle_pid=$!
    PIDS+=("$idle_pid")
    wait_for "$WORK/idle.out" "^open" || { cat "$WORK/idle.out" >&2; return 1; }
    sleep 2
    after=$(rss_kb "$SERVER_PID")
    stop "$idle_pid"
    printf '{"run":"%s","store":%s,"connections":%d,"rss_kb_before":%d,"rss_kb_after":%d,"kb_per_connection":%s}\n' \
        "$name" "$(store_json)" "$IDLE" "$before" "$after" "$(awk -v a="$before" -v b="$after" -v n="$IDLE" 'BEGIN {printf "%.1f", (b - a) / n}')"
}

echo "benchmark: $PHONES phones, concurrency $CONCURRENCY; stores: $STORES; fleet $FLEET_PHONES/$FLEET_CONCURRENCY; $(nproc) cores" >&2
echo "load average at the start: $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2

# 1. The service on each store against the bare server, both connection modes.
for store in $STORES; do
    start_service "keepalive_$store" "$store"
    load "service keep-alive" --phones "$PHONES" --concurrency "$CONCURRENCY"
    load "service keep-alive, repeat start-ups" --phones "$PHONES" --concurrency "$CONCURRENCY"
    stop "$SERVER_PID"
    start_service "newconn_$store" "$store"
    load "service new connection per interaction" --phones "$PHONES" --concurrency "$CONCURRENCY" \
        --new-connection-per-interaction
    load "service new connection per interaction, repeat start-ups" --phones "$PHONES" \
        --concurrency "$CONCURRENCY" --new-connection-per-interaction
    stop "$SERVER_PID"
done
start_bare
for requests in 3 1; do
    load "bare keep-alive, $requests requests" --baseline --baseline-requests "$requests" --phones "$PHONES" \
        --concurrency "$CONCURRENCY"
    load "bare new connection per interaction, $requests requests" --baseline --baseline-requests "$requests" \
        --phones "$PHONES" --concurrency "$CONCURRENCY" --new-connection-per-interaction
    # The same for 5 s each: the runs above are short against the bare server.
    load "bare keep-alive, $requests requests, 5 s" --baseline --baseline-requests "$requests" \
        --phones "$PHONES" --concurrency "$CONCURRENCY" --duration 5
    load "bare new connection per interaction, $requests requests, 5 s" --baseline \
        --baseline-requests "$requests" --phones "$PHONES" --concurrency "$CONCURRENCY" \
        --new-connection-per-interaction --duration 5
done

# 2. Memory per idle keep-alive connection: each connection has done one exchange (the
# bare server) or one start-up of an already registered phone (the service).
if [ "$IDLE" -gt 0 ]; then
    idle "bare idle connections" --baseline
    stop "$SERVER_PID"
    start_service idle sqlite
    load "service: register the idle phones" --phones "$IDLE" --concurrency "$CONCURRENCY" >&2
    idle "service idle connections"
    stop "$SERVER_PID"
else
    stop "$SERVER_PID"
fi

# 3. The fleet (issue 6).
if [ "$FLEET_PHONES" -gt 0 ]; then
    start_service fleet-keepalive sqlite
    load "fleet keep-alive" --phones "$FLEET_PHONES" --concurrency "$FLEET_CONCURRENCY"
    stop "$SERVER_PID"
    start_service fleet-newconn sqlite
    load "fleet new connection per interaction" --phones "$FLEET_PHONES" --concurrency "$FLEET_CONCURRENCY" \
        --new-connection-per-interaction
    stop "$SERVER_PID"
fi

# The summary: the rates, latencies and ratios of the comparison (PHONES, CONCURRENCY).
python3 - "$WORK/results.jsonl" "$STORES" <<'PY' >&2
import json, sys
rows = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
        rows[(r["run"], r["store"])] = r
    except ValueError:
        pass
stores = sys.argv[2].split()
names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

def result(run, store=None):
    r = rows.get((run, store))
    return r and r["result"]

def rate(run, store=None):
    r = result(run, store)
    return r["interactions_per_second"] if r else None

def pct(a, b):
    return f"{100 * a / b:.1f} %" if a and b else "-"

for conn in ("new connection per interaction", "keep-alive"):
    print(f"summary, {conn}:")
    table = [(f"bare, {n} request{'s' if n > 1 else ''}", f"bare {conn}, {n} requests", None) for n in (3, 1)]
    for s in stores:
        table += [(f"{names[s]}, first start-ups", f"service {conn}", s),
                  (f"{names[s]}, repeat start-ups", f"service {conn}, repeat start-ups", s)]
    print(f"  {'run':<30} {'interactions/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'failures':>8}")
    for label, run, s in table:
        r = result(run, s)
        if r:
            extra = f"   (5 s run: {rate(run + ', 5 s')}/s)" if s is None else ""
            print(f"  {label:<30} {r['interactions_per_second']:>14} {r['latency_ms']['p50']:>8} "
                  f"{r['latency_ms']['p99']:>8} {r['failures']:>8}{extra}")
        else:
            print(f"  {label:<30} {'failed':>14}")
    bare3, bare1 = rate(f"bare {conn}, 3 requests"), rate(f"bare {conn}, 1 requests")
    for s in stores:
        first, repeat = rate(f"service {conn}", s), rate(f"service {conn}, repeat start-ups", s)
        print(f"  {names[s]} against the bare server: first start-ups {pct(first, bare3)} (of 3 requests), "
              f"repeat start-ups {pct(repeat, bare1)} (of 1 request)")
    if "sqlite" in stores and "postgres" in stores:
        first = pct(rate(f"service {conn}", "postgres"), rate(f"service {conn}", "sqlite"))
        repeat = pct(rate(f"service {conn}, repeat start-ups", "postgres"),
                     rate(f"service {conn}, repeat start-ups", "sqlite"))
        print(f"  PostgreSQL against SQLite: first start-ups {first}, repeat start-ups {repeat}")
PY
