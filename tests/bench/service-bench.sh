#!/usr/bin/env bash
# The service's benchmark (issue 4) and the fleet run (issue 6), as recorded in
# docs/BENCHMARKS.md. Prints one JSON object per measurement on stdout; progress on stderr.
#
#   tests/bench/service-bench.sh            # everything: about 2 minutes on 2 cores
#   SKIP_BUILD=1 PHONES=500 FLEET_PHONES=0 tests/bench/service-bench.sh
#
# Settings (environment): PHONES, CONCURRENCY (the comparison with the bare server, default
# 2000 and 16), FLEET_PHONES, FLEET_CONCURRENCY (default 10000 and 32; 0 skips), IDLE (idle
# connections for the memory figure, default 1000; 0 skips), DLS_LOG (the service's log
# filter, default info, written to a file as in production), CARGO_TARGET_DIR, SKIP_BUILD.
#
# Every measurement of the service starts against a fresh data directory with first
# start-ups (start-up → ReadAllItems, reply → WriteItems of the ~20-item `global` profile,
# reply → CleanUp; 3 requests per interaction), then runs the same phones again: repeat
# start-ups of known phones whose configuration is in step (start-up → CleanUp; 1 request).
# The baseline is the `bare_tls_server` example of dls-server (the service's TLS and HTTP
# settings, a fixed CleanUp answer) driven by `dls phone load --baseline` (3 fixed requests
# of the same sizes per interaction; with `--baseline-requests 1`, only the start-up's).
# The load generator runs on the same machine: both sides share the cores.
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

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p dls-cli >&2
    cargo build --release -p dls-server --example bare_tls_server >&2
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

. tests/bench/common.sh
write_global_profile "$WORK/global.toml"

# start_dls NAME: a fresh `dls serve` on ephemeral loopback ports with the profile; sets
# SERVER_PID and SERVER.
start_dls() {
    local d="$WORK/$1"
    "$BIN/dls" serve --data-dir "$d" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --max-connections-per-source 4096 >"$WORK/$1.out" 2>"$WORK/$1.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$WORK/$1.out" "admin API"
    SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/$1.out")
    "$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$d" >/dev/null
}

start_bare() {
    "$BIN/examples/bare_tls_server" >"$WORK/bare.out" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$WORK/bare.out" "bare TLS server on"
    SERVER=$(sed -n 's#.*https://\([^/]*\)/.*#\1#p' "$WORK/bare.out")
}

stop() {
    kill "$1"
    wait "$1" 2>/dev/null || true
    local kept=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# load NAME ARGS…: one `dls phone load --json` against SERVER; prints
# {"run":NAME,"loadavg":…,"server_cpu_seconds":…,"client_cpu_seconds":…,"result":{…}}.
load() {
    local name=$1
    shift
    local la c0 c1 line
    la=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu_ticks "$SERVER_PID")
    # `time` measures the load generator's own CPU.
    line=$({ TIMEFORMAT='%U %S'; time "$BIN/dls" phone load --server "$SERVER" --json "$@" 2>"$WORK/load.err"; } \
        2>"$WORK/time" | tail -n 1) || true
    c1=$(cpu_ticks "$SERVER_PID")
    local client
    client=$(awk '{printf "%.2f", $1 + $2}' "$WORK/time")
    printf '{"run":"%s","loadavg":%s,"server_cpu_seconds":%s,"client_cpu_seconds":%s,"result":%s}\n' \
        "$name" "$la" "$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')" \
        "$client" "${line:-null}"
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
    printf '{"run":"%s","connections":%d,"rss_kb_before":%d,"rss_kb_after":%d,"kb_per_connection":%s}\n' \
        "$name" "$IDLE" "$before" "$after" "$(awk -v a="$before" -v b="$after" -v n="$IDLE" 'BEGIN {printf "%.1f", (b - a) / n}')"
}

echo "benchmark: $PHONES phones, concurrency $CONCURRENCY; fleet $FLEET_PHONES/$FLEET_CONCURRENCY; $(nproc) cores" >&2

# 1. The service against the bare server, both connection modes.
start_dls keepalive
load "service keep-alive" --phones "$PHONES" --concurrency "$CONCURRENCY"
load "service keep-alive, repeat start-ups" --phones "$PHONES" --concurrency "$CONCURRENCY"
stop "$SERVER_PID"
start_dls newconn
load "service new connection per interaction" --phones "$PHONES" --concurrency "$CONCURRENCY" \
    --new-connection-per-interaction
load "service new connection per interaction, repeat start-ups" --phones "$PHONES" \
    --concurrency "$CONCURRENCY" --new-connection-per-interaction
stop "$SERVER_PID"
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
    start_dls idle
    load "service: register the idle phones" --phones "$IDLE" --concurrency "$CONCURRENCY" >&2
    idle "service idle connections"
    stop "$SERVER_PID"
else
    stop "$SERVER_PID"
fi

# 3. The fleet (issue 6).
if [ "$FLEET_PHONES" -gt 0 ]; then
    start_dls fleet-keepalive
    load "fleet keep-alive" --phones "$FLEET_PHONES" --concurrency "$FLEET_CONCURRENCY"
    stop "$SERVER_PID"
    start_dls fleet-newconn
    load "fleet new connection per interaction" --phones "$FLEET_PHONES" --concurrency "$FLEET_CONCURRENCY" \
        --new-connection-per-interaction
    stop "$SERVER_PID"
fi
