#!/usr/bin/env bash
# What the service asks of PostgreSQL per interaction, as PostgreSQL itself logs it (issue
# 15): a `dls serve` on a fresh database whose server logs every statement it runs
# (`log_min_duration_statement=0`), driven by `dls phone load` one phone at a time, first
# start-ups then the same phones again. Each logged `execute` (a prepared statement) or
# simple-protocol `statement` (a `BEGIN` with what is sent with it, a `COMMIT`) is one
# round trip; the preparing of a statement (once per connection) is not counted. Prints,
# per interaction, the statements by kind and their total. The figures the store's own
# counter gives are asserted in crates/dls-store-postgres/tests/postgres/round_trips.rs.
#
#   tests/bench/pg-round-trips.sh              # PHONES=20
set -euo pipefail

cd "$(dirname "$0")/../.."
PHONES=${PHONES:-20}
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

mkdir "$PG_DATA"
[ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w -o "-k $PG_DATA -p $PG_PORT -h 127.0.0.1 \
    -c synchronous_commit=off -c log_min_duration_statement=0 -c log_line_prefix=%p:" start >/dev/null
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE dls" postgres

d="$WORK/dls"
"$BIN/dls" serve --data-dir "$d" --store "postgres://postgres@127.0.0.1:$PG_PORT/dls" \
    --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --secure-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
PIDS+=($!)
wait_for "$WORK/out" "admin API"
SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/out")
"$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$d" >/dev/null

# count NAME FROM TO: the statements logged between lines FROM and TO, per interaction.
count() {
    sed -n "$(($2 + 1)),$3p" "$PG_DATA/log" | python3 -c '
import collections, re, sys
name, phones = sys.argv[1], int(sys.argv[2])
kinds = collections.Counter()
current = None
for line in sys.stdin:
    if current is not None and line.startswith("\t"):
        current += " " + line
        continue
    if current is not None:
        kinds[" ".join(current.split())[:72]] += 1
        current = None
    m = re.match(r"\d+:LOG:  duration: [0-9.]+ ms  (execute [^:]*|statement): (.*)", line)
    if m:
        current = m.group(2)
if current is not None:
    kinds[" ".join(current.split())[:72]] += 1
total = sum(kinds.values())
print(f"{name}: {total / phones:g} round trips per interaction")
for text, n in kinds.most_common():
    print(f"  {n / phones:6g}  {text}")
' "$1" "$PHONES"
}
lines() { wc -l <"$PG_DATA/log"; }

echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $PHONES phones, one at a time"
a=$(lines)
"$BIN/dls" phone load --server "$SERVER" --concurrency 1 --new-connection-per-interaction --phones "$PHONES" >/dev/null
b=$(lines)
"$BIN/dls" phone load --server "$SERVER" --concurrency 1 --new-connection-per-interaction --phones "$PHONES" >/dev/null
c=$(lines)
count "first start-ups (3 messages)" "$a" "$b"
count "repeat start-ups (1 message)" "$b" "$c"
