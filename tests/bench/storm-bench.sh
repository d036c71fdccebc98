#!/usr/bin/env bash
# The secure-mode storm (issue 6), as recorded in docs/BENCHMARKS.md: STORM_PHONES devices
# in `pin` mode bootstrap at once against a fresh `dls serve`, STORM_CONCURRENCY at a time.
# Prints one JSON object on stdout; progress on stderr.
#
#   tests/bench/storm-bench.sh                                  # 1,000 devices, 600,000 iterations, 8 at a time
#   SKIP_BUILD=1 STORM_PHONES=200 PIN_ITERATIONS=100000 tests/bench/storm-bench.sh
#
# Settings (environment): STORM_PHONES (default 1000), STORM_CONCURRENCY (default 8),
# PIN_ITERATIONS (the service's --pin-iterations, default 600000, at least 100000),
# STORM_MODE (pin, the default, or nopin: no PIN, no PBKDF2), STORM_TIMEOUT (seconds one
# bootstrap may take, default 300), DLS_LOG (the service's log filter, default info, written
# to a file as in production), CARGO_TARGET_DIR, SKIP_BUILD.
#
# Each device: start-up on the default port → the bootstrap WriteItems (`goto-secure-mode`
# `pin`, `secure-mode-data` sealed with PBKDF2 on the service) → the user types the PIN
# (PBKDF2 again, on the phone: the load generator) → start-up on the secure port with mutual
# TLS → the TAN → ReadAllItems, WriteItems of the ~20-item `global` profile → CleanUp. The
# devices are added through the admin API (as `dls device add --mode pin` does; it prints
# the PIN), the PINs written to a `MAC PIN` file for `dls phone load --pins`. The load
# generator runs on the same machine: both sides share the cores, and both run PBKDF2.
#
# The JSON: {"run", "mode", "pin_iterations", "phones", "concurrency", "cores",
# "loadavg_before", "loadavg_after" (1-minute), "wall_seconds", "server_cpu_seconds",
# "client_cpu_seconds", "machine_cpu_seconds" (all processes' CPU during the storm: what
# is beyond server and client went to other work on the machine), "secured" (devices the
# service shows as secured afterwards), "result": the `dls phone load --json` report}.
set -euo pipefail

cd "$(dirname "$0")/../.."
STORM_PHONES=${STORM_PHONES:-1000}
STORM_CONCURRENCY=${STORM_CONCURRENCY:-8}
PIN_ITERATIONS=${PIN_ITERATIONS:-600000}
STORM_MODE=${STORM_MODE:-pin}
STORM_TIMEOUT=${STORM_TIMEOUT:-300}
export DLS_LOG=${DLS_LOG:-info}
BIN=${CARGO_TARGET_DIR:-target}/release
TCK=$(getconf CLK_TCK)
FIRST_MAC=00:1A:E8:80:00:00

case "$STORM_MODE" in
    pin | nopin) ;;
    *)
        echo "STORM_MODE is pin or nopin, not $STORM_MODE" >&2
        exit 2
        ;;
esac
command -v python3 >/dev/null || {
    echo "python3 is needed (adding the devices)" >&2
    exit 1
}

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p dls-cli >&2
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

. tests/bench/common.sh
write_global_profile "$WORK/global.toml"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The whole machine's busy time (user, nice, system, irq, softirq, steal), in ticks.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

DATA="$WORK/data"
"$BIN/dls" serve --data-dir "$DATA" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --pin-iterations "$PIN_ITERATIONS" \
    >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
wait_for "$WORK/serve.out" "admin API"
SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/serve.out")
"$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$DATA" >/dev/null

echo "storm: $STORM_PHONES $STORM_MODE devices, concurrency $STORM_CONCURRENCY, $PIN_ITERATIONS PBKDF2 iterations, $(nproc) cores; service on $SERVER" >&2

# The devices, through the admin API on one keep-alive connection (what `dls device add
# --mac MAC --mode pin` posts); the fleet's MACs are FIRST_MAC plus i, as
# `dls phone load --first-mac` counts them. Writes `MAC PIN` lines.
started=$(date +%s.%N)
python3 - "$(cat "$DATA/admin-url")" "$DATA/admin-token" "$FIRST_MAC" "$STORM_PHONES" "$STORM_MODE" \
    >"$WORK/pins.txt" <<'PY'
import http.client, json, sys, urllib.parse
url, token_file, first, count, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
token = open(token_file).read().strip()
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
base = int(first.replace(":", ""), 16)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
for i in range(count):
    h = "%012X" % ((base + i) & 0xFFFFFFFFFFFF)
    mac = ":".join(h[k:k + 2] for k in range(0, 12, 2))
    conn.request("POST", "/api/v1/devices", json.dumps({"mac": mac, "mode": mode}), headers)
    r = conn.getresponse()
    body = json.loads(r.read())
    if r.status != 201:
        sys.exit("adding %s: %d %s" % (mac, r.status, body))
    if mode == "pin":
        print(mac, body["pin"])
PY
echo "added $STORM_PHONES devices in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s" >&2

if [ "$STORM_MODE" = pin ]; then
    STORM_ARGS=(--pins "$WORK/pins.txt")
else
    STORM_ARGS=(--nopin)
fi

# Let the adding settle out of the load average a little, then the storm.
sleep 5
la0=$(cut -d' ' -f1 /proc/loadavg)
c0=$(cpu_ticks "$SERVER_PID")
m0=$(busy_ticks)
t0=$(date +%s.%N)
# `time` measures the load generator's own CPU.
line=$({ TIMEFORMAT='%U %S'; time "$BIN/dls" phone load --server "$SERVER" --phones "$STORM_PHONES" \
    --concurrency "$STORM_CONCURRENCY" --timeout-secs "$STORM_TIMEOUT" "${STORM_ARGS[@]}" --json \
    2>"$WORK/load.err"; } 2>"$WORK/time" | tail -n 1) || true
t1=$(date +%s.%N)
m1=$(busy_ticks)
c1=$(cpu_ticks "$SERVER_PID")
la1=$(cut -d' ' -f1 /proc/loadavg)
if [ -s "$WORK/load.err" ]; then cat "$WORK/load.err" >&2; fi

# How many devices the service shows as secured now (`dls device show`'s security state).
secured=$(python3 - "$(cat "$DATA/admin-url")" "$DATA/admin-token" "$FIRST_MAC" "$STORM_PHONES" <<'PY'
import http.client, json, sys, urllib.parse
url, token_file, first, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
token = open(token_file).read().strip()
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
base = int(first.replace(":", ""), 16)
secured = 0
for i in range(count):
    conn.request("GET", "/api/v1/devices/%012X" % ((base + i) & 0xFFFFFFFFFFFF), headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    d = json.loads(r.read())
    secured += r.status == 200 and (d.get("security") or {}).get("state") == "secured"
print(secured)
PY
) || secured=null

printf '{"run":"secure-mode storm","mode":"%s","pin_iterations":%d,"phones":%d,"concurrency":%d,"cores":%d,"loadavg_before":%s,"loadavg_after":%s,"wall_seconds":%s,"server_cpu_seconds":%s,"client_cpu_seconds":%s,"machine_cpu_seconds":%s,"secured":%s,"result":%s}\n' \
    "$STORM_MODE" "$PIN_ITERATIONS" "$STORM_PHONES" "$STORM_CONCURRENCY" "$(nproc)" "$la0" "$la1" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')" \
    "$(awk '{printf "%.2f", $1 + $2}' "$WORK/time")" \
    "$(awk -v a="$m0" -v b="$m1" -v t="$TCK" 'BEGIN {printf "%.2f", (b - a) / t}')" "$secured" "${line:-null}"
