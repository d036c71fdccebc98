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
# PostgreSQL is a temporary cluster on a loopback port (`pg_start` in tests/bench/common.sh,
# `synchronous_commit=off`). The one-node figures beside the bare TLS server are
# tests/bench/service-bench.sh's; this script is for two nodes against one. Two nodes share
# the keys (`docs/cluster.md`, `start_dls` in common.sh) and the database, each gets half the phones, both loads run
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

. tests/bench/common.sh
bench_init
# shellcheck disable=SC2119 # no more settings
pg_start

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

echo "store benchmark: $PHONES phones, concurrency $CONCURRENCY, PostgreSQL $PG_VERSION; $(nproc) cores" >&2
echo "load average at the start: $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2
: >"$WORK/results.jsonl"
run() { measure "$@" | tee -a "$WORK/results.jsonl"; }

start_dls sqlite sqlite
SERVER_PIDS=("$SERVER_PID")
run "sqlite, first start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
run "sqlite, repeat start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
stop "$SERVER_PID"

url=$(pg_db one_node)
start_dls postgres "$url"
SERVER_PIDS=("$SERVER_PID")
run "postgres, first start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
run "postgres, repeat start-ups" "$PHONES" "$CONCURRENCY" "$SERVER --phones $PHONES"
stop "$SERVER_PID"

# Two nodes: each phone's MAC is fresh for each pair of rounds (`--first-mac`).
url=$(pg_db two_nodes)
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
