#!/usr/bin/env bash
# One quick measurement of a build of `dls` (for comparing two builds, e.g. two allocators):
# a fresh `dls serve` with the benchmark's 20-item profile, then PHONES first start-ups and
# the same phones again (repeat start-ups), 16 at a time. Prints one line per run: the
# rate, p99, and the server's and the generator's CPU per interaction.
#
#   tests/bench/start-ups.sh BIN_DIR [PHONES [dls phone load options…]]
#   tests/bench/start-ups.sh target/release 3000 --new-connection-per-interaction
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN=$(cd "$1" && pwd)
PHONES=${2:-3000}
shift $(($# < 2 ? $# : 2))
. tests/bench/common.sh
WORK=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
write_global_profile "$WORK/global.toml"
DLS_LOG=info "$BIN/dls" serve --data-dir "$WORK/d" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
SERVER_PID=$!
wait_for "$WORK/out" "admin API"
SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/out")
"$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$WORK/d" >/dev/null
TCK=$(getconf CLK_TCK)
for run in first repeat; do
    c0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
    result=$({ TIMEFORMAT='%U %S'; time "$BIN/dls" phone load --server "$SERVER" --phones "$PHONES" \
        --concurrency 16 --json "$@"; } 2>"$WORK/time" | tail -n 1)
    c1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
    echo "$result" | python3 -c "
import json, sys
d = json.load(sys.stdin); n = d['interactions']
client = sum(map(float, open('$WORK/time').read().split()))
print(f\"$run: {d['interactions_per_second']}/s, p99 {d['latency_ms']['p99']} ms, failures {d['failures']}, \"
      f\"server {($c1 - $c0) / $TCK / n * 1e3:.3f} ms, generator {client / n * 1e3:.3f} ms CPU per interaction\")"
done
