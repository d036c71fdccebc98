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

. tests/bench/common.sh
bench_init
pg_start log_min_duration_statement=0 log_line_prefix=%p:
url=$(pg_db dls)
start_dls dls "$url"

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

echo "PostgreSQL $PG_VERSION, $PHONES phones, one at a time"
a=$(lines)
"$BIN/dls" phone load --server "$SERVER" --concurrency 1 --new-connection-per-interaction --phones "$PHONES" >/dev/null
b=$(lines)
"$BIN/dls" phone load --server "$SERVER" --concurrency 1 --new-connection-per-interaction --phones "$PHONES" >/dev/null
c=$(lines)
count "first start-ups (3 messages)" "$a" "$b"
count "repeat start-ups (1 message)" "$b" "$c"
