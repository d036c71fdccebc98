#!/usr/bin/env bash
# The stores side by side (issue 15): the service on SQLite, on PostgreSQL, and two nodes on
# one PostgreSQL database, in the same run, as recorded in docs/BENCHMARKS.md. Prints one
# JSON object per measurement on stdout; progress on stderr.
#
#   tests/bench/store-bench.sh                 # about a minute on 2 cores
#   SKIP_BUILD=1 PHONES=1000 tests/bench/store-bench.sh
#
# Settings (environment): PHONES, CONCURRENCY (default 2000 and 16), CARGO_TARGET_DIR,
# SKIP_BUILD. Every run opens a new TLS connection per interaction (as phones do): first
# start-ups (start-up → ReadAllItems, reply → WriteItems of the 20-item `global` profile,
# reply → CleanUp), then the same phones again (start-up → CleanUp).
#
# PostgreSQL is Debian's (`/usr/lib/postgresql/*/bin`), a cluster in a temporary directory
# on a loopback port, run by the `postgres` user when this runs as root, with
# `synchronous_commit=off`: like the SQLite store's WAL with `synchronous=NORMAL`, a crash
# of the machine may lose the last transactions, never corrupt the database. Two nodes share
# the keys (`docs/cluster.md`) and the database, each gets half the phones, both loads run
# at once; the load generator, both nodes and PostgreSQL share the same 2 cores.
set -euo pipefail

cd "$(dirname "$0")/../.."
PHONES=${PHONES:-2000}
CONCURRENCY=${CONCURRENCY:-16}
export DLS_LOG=${DLS_LOG:-warn}
BIN=${CARGO_TARGET_DIR:-target}/release

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p dls-cli >&2
fi

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PG_DATA="$WORK/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -d "$PG_DATA" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

. tests/bench/common.sh
write_global_profile "$WORK/global.toml"

# PostgreSQL on a free loopback port.
mkdir "$PG_DATA"
[ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w \
    -o "-k $PG_DATA -p $PG_PORT -h 127.0.0.1 -c synchronous_commit=off -c max_connections=200" start >/dev/null
db_url() {
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $1" postgres >/dev/null
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

# start_dls NAME STORE [KEYS_FROM]: a fresh `dls serve` (its keys copied from the data
# directory KEYS_FROM, for a second node); sets SERVER_PID and SERVER.
start_dls() {
    local d="$WORK/$1"
    if [ -n "${3:-}" ]; then
        mkdir -m 700 "$d"
        for f in ca.crt ca.key secrets.key fingerprint.key admin-token; do install -m 600 "$3/$f" "$d/$f"; done
    fi
    "$BIN/dls" serve --data-dir "$d" --store "$2" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --max-connections-per-source 4096 \
        >"$WORK/$1.out" 2>"$WORK/$1.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$WORK/$1.out" "admin API"
    SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/$1.out")
    "$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$d" >/dev/null
}

# load NAME SERVER ARGS…: one `dls phone load --json`, new connection per interaction.
load() {
    local name=$1 server=$2
    shift 2
    local line
    line=$("$BIN/dls" phone load --server "$server" --json --concurrency "$CONCURRENCY" \
        --new-connection-per-interaction "$@" 2>"$WORK/load-$$.err" | tail -n 1) || true
    printf '{"run":"%s","result":%s}\n' "$name" "${line:-null}"
}

echo "store benchmark: $PHONES phones, concurrency $CONCURRENCY, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); $(nproc) cores" >&2

start_dls sqlite sqlite
load "sqlite, first start-ups" "$SERVER" --phones "$PHONES"
load "sqlite, repeat start-ups" "$SERVER" --phones "$PHONES"
kill "$SERVER_PID"

start_dls postgres "$(db_url one_node)"
load "postgres, first start-ups" "$SERVER" --phones "$PHONES"
load "postgres, repeat start-ups" "$SERVER" --phones "$PHONES"
kill "$SERVER_PID"

url=$(db_url two_nodes)
start_dls node-a "$url"
A=$SERVER
start_dls node-b "$url" "$WORK/node-a"
B=$SERVER
half=$((PHONES / 2))
for round in "first" "repeat"; do
    load "postgres two nodes, $round start-ups, node A" "$A" --phones "$half" &
    a=$!
    load "postgres two nodes, $round start-ups, node B" "$B" --phones "$half" --first-mac 00:1A:E8:90:00:00 &
    b=$!
    wait "$a" "$b"
done
