#!/usr/bin/env bash
# The stores side by side (issue 15): the service on SQLite, on PostgreSQL, and two nodes on
# one PostgreSQL database, in the same run, as recorded in docs/BENCHMARKS.md. Prints one
# JSON object per measurement on stdout, then a summary (the ratios); progress on stderr.
#
#   tests/bench/store-bench.sh                 # about two minutes on 2 cores
#   SKIP_BUILD=1 PHONES=1000 tests/bench/store-bench.sh
#
# Settings (environment): PHONES, CONCURRENCY (default 2000 and 16), CARGO_TARGET_DIR,
# SKIP_BUILD. Every run opens a new TLS connection per interaction (as phones do): first
# start-ups (start-up → ReadAllItems, reply → WriteItems of the 20-item `global` profile,
# reply → CleanUp), then the same phones again (start-up → CleanUp). Each measurement also
# gives the CPU time per interaction of the service's processes and of PostgreSQL's
# (`/proc/PID/stat` of the server and of the postmaster and its backends).
#
# PostgreSQL is Debian's (`/usr/lib/postgresql/*/bin`), a cluster in a temporary directory
# on a loopback port, run by the `postgres` user when this runs as root, with
# `synchronous_commit=off`: like the SQLite store's WAL with `synchronous=NORMAL`, a crash
# of the machine may lose the last transactions, never corrupt the database. Two nodes share
# the keys (`docs/cluster.md`) and the database, each gets half the phones, both loads run
# at once; the load generators, both nodes and PostgreSQL share the same 2 cores. The two
# nodes are measured twice: with the same number of phones in flight as one node
# (CONCURRENCY/2 each: the same load spread over two nodes, the comparison with one node),
# then with CONCURRENCY each (twice the load).
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

# cpu PID…: the CPU time (user + system, clock ticks) of the processes.
cpu() {
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
# pg_cpu: the CPU time of PostgreSQL (the postmaster and its children alive).
pg_cpu() {
    local main
    main=$(head -n 1 "$PG_DATA/postmaster.pid")
    # shellcheck disable=SC2046
    cpu "$main" $(pgrep -P "$main" | tr '\n' ' ')
}
TICK_MS=$((1000 / $(getconf CLK_TCK)))

# measure NAME PHONES CONCURRENCY SERVERS… -- LOADS: runs one `dls phone load --json` (new
# connection per interaction) per "SERVER ARGS…" in LOADS (separated by `;`) at once; prints
# each one's result and, for several, their sum over the wall time; with the CPU time per
# interaction of the servers (SERVER_PIDS) and of PostgreSQL.
measure() {
    local name=$1 phones=$2 concurrency=$3
    shift 3
    local s0 p0 t0 t1 s1 p1 i=0 pids=() spec
    s0=$(cpu "${SERVER_PIDS[@]}")
    p0=$(pg_cpu)
    t0=$(date +%s.%N)
    for spec in "$@"; do
        # shellcheck disable=SC2086
        "$BIN/dls" phone load --json --concurrency "$concurrency" --new-connection-per-interaction \
            --server $spec 2>"$WORK/load-$i.err" | tail -n 1 >"$WORK/load-$i.json" &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}" || true
    t1=$(date +%s.%N)
    s1=$(cpu "${SERVER_PIDS[@]}")
    p1=$(pg_cpu)
    python3 - "$name" "$phones" "$t0" "$t1" "$((s1 - s0))" "$((p1 - p0))" "$TICK_MS" "$i" "$WORK" <<'PY'
import json, sys
name, phones, t0, t1, server, pg, tick, n, work = sys.argv[1:]
phones, n, tick = int(phones), int(n), int(tick)
results = []
for i in range(n):
    try:
        results.append(json.load(open(f"{work}/load-{i}.json")))
    except ValueError:
        results.append(None)
ok = [r for r in results if r]
done = sum(r["interactions"] for r in ok)
out = {
    "run": name,
    "interactions_per_second": round(done / (float(t1) - float(t0)), 1) if n > 1 else (ok[0]["interactions_per_second"] if ok else None),
    "failures": sum(r["failures"] for r in ok) if len(ok) == n else None,
    "server_cpu_ms_per_interaction": round(int(server) * tick / max(done, 1), 3),
    "postgres_cpu_ms_per_interaction": round(int(pg) * tick / max(done, 1), 3),
    "loads": results,
}
print(json.dumps(out))
PY
}

echo "store benchmark: $PHONES phones, concurrency $CONCURRENCY, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); $(nproc) cores" >&2
echo "load average at the start: $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2
: >"$WORK/results.jsonl"
run() { measure "$@" | tee -a "$WORK/results.jsonl"; }

start_dls sqlite sqlite
SERVER_PIDS=("$SERVER_PID")
run "sqlite, first start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
run "sqlite, repeat start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
kill "$SERVER_PID"

start_dls postgres "$(db_url one_node)"
SERVER_PIDS=("$SERVER_PID")
run "postgres, first start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
run "postgres, repeat start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
kill "$SERVER_PID"

# Two nodes: each phone's MAC is fresh for each pair of rounds (`--first-mac`).
url=$(db_url two_nodes)
start_dls node-a "$url"
A=$SERVER
SERVER_PIDS=("$SERVER_PID")
start_dls node-b "$url" "$WORK/node-a"
B=$SERVER
SERVER_PIDS+=("$SERVER_PID")
half=$((PHONES / 2))
for each in $((CONCURRENCY / 2)) "$CONCURRENCY"; do
    if [ "$each" = "$CONCURRENCY" ]; then macs=(00:1A:E8:A0:00:00 00:1A:E8:B0:00:00); else macs=(00:1A:E8:80:00:00 00:1A:E8:90:00:00); fi
    for round in first repeat; do
        run "postgres two nodes, $each + $each in flight, $round start-ups" "$((2 * half))" "$each" \
            "$A --phones $half --first-mac ${macs[0]}" "$B --phones $half --first-mac ${macs[1]}"
    done
done


python3 - "$WORK/results.jsonl" "$CONCURRENCY" <<'PY' >&2
import json, sys
rows = {r["run"]: r for r in map(json.loads, open(sys.argv[1]))}
c = int(sys.argv[2])
rate = lambda k: rows[k]["interactions_per_second"]
print("summary:")
for round in ("first", "repeat"):
    sqlite, pg = rate(f"sqlite, {round} start-ups"), rate(f"postgres, {round} start-ups")
    same = rate(f"postgres two nodes, {c // 2} + {c // 2} in flight, {round} start-ups")
    double = rate(f"postgres two nodes, {c} + {c} in flight, {round} start-ups")
    print(f"  {round} start-ups: PostgreSQL {pg} / SQLite {sqlite} = {100 * pg / sqlite:.0f} %; "
          f"two nodes {same} / one node {pg} = {100 * same / pg:.0f} % (twice the load: {double}, {100 * double / pg:.0f} %)")
PY
