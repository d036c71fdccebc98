#!/usr/bin/env bash
# The console's devices and device pages with 100,000 devices in the store (SQLite): the
# server time per page (curl's time_total on loopback, median of RUNS), beside the same
# run's baseline, the admin API's JSON for the same store query (`GET /api/v1/devices?limit=51`,
# `GET /api/v1/devices/{mac}`).
#
#   cargo build --release -p dls-cli && tests/bench/console-bench.sh [DEVICES] [RUNS]
#   BIN=/path/to/target/debug tests/bench/console-bench.sh   # another build
set -euo pipefail
DEVICES=${1:-100000}
RUNS=${2:-21}
BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

d="$WORK/data"
"$BIN/dls" serve --data-dir "$d" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
PIDS+=($!)
wait_for "$WORK/out" "admin API"
ADMIN=$(sed -n 's/.*admin API on \(http[^ ]*\).*/\1/p' "$WORK/out")
TOKEN=$(cat "$d/admin-token")
curl -sf -X PUT -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"item":[{"name":"sntp-addr","value":"ntp.sales"}]}' "$ADMIN/api/v1/profiles/sales" >/dev/null

# The fleet in one transaction: a type, version and number each; every third in `sales`.
start=$(date +%s.%N)
python3 - "$d/dls.sqlite" "$DEVICES" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
n = int(sys.argv[2])
types = ["OpenStage 60", "OpenStage 40", "OpenScape Desk Phone CP400", "OpenScape Desk Phone CP600"]
c.executemany(
    "INSERT INTO devices (mac, registered_at, last_contact_at, device_type, software_version, e164) VALUES (?, 1700000000, 1700000000, ?, ?, ?)",
    ((f"0001E3{i:06X}", types[i % 4], f"V3 R5.{i % 7}.0", f"+49 89 {i:07d}") for i in range(n)))
c.executemany("INSERT INTO device_profiles (mac, position, profile) VALUES (?, 0, 'sales')",
              ((f"0001E3{i:06X}",) for i in range(0, n, 3)))
c.commit()
PY
echo "populated $DEVICES devices in $(echo "$(date +%s.%N) - $start" | bc) s" >&2

printf 'correct horse battery\n' >"$WORK/pw"
"$BIN/dls" account add bench --role viewer --password-file "$WORK/pw" --data-dir "$d" >/dev/null
COOKIE=$(curl -si -d 'account=bench&password=correct+horse+battery' "$ADMIN/login" |
    sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip' | head -n 1)

# median URL [AUTH…]: the median of RUNS requests' time_total, in ms.
median() {
    local url=$1
    shift
    for _ in $(seq "$RUNS"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@" "$url"
    done | awk -v url="$url" '$1 != 200 { print "status " $1 " for " url > "/dev/stderr"; exit 1 } { print $2 * 1000 }' |
        sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] }'
}
MID=$(printf '0001E3%06X' $((DEVICES / 2)))
LATE=$(printf '0001E3%06X' $((DEVICES - 100)))
row() { printf '| %s | %s ms |\n' "$1" "$2"; }
echo "| request ($DEVICES devices, SQLite, $(nproc) cores) | median of $RUNS |"
echo "|---|---|"
row "baseline: API \`GET /api/v1/devices?limit=51\`" "$(median "$ADMIN/api/v1/devices?limit=51" -H "authorization: Bearer $TOKEN")"
row "console \`/devices\` (first page of 50)" "$(median "$ADMIN/devices" -H "cookie: $COOKIE")"
row "console \`/devices?after=…\` (a page past 99,900)" "$(median "$ADMIN/devices?after=$LATE" -H "cookie: $COOKIE")"
row "console \`/devices?order=desc\`" "$(median "$ADMIN/devices?order=desc" -H "cookie: $COOKIE")"
row "console \`/devices?profile=sales\`" "$(median "$ADMIN/devices?profile=sales" -H "cookie: $COOKIE")"
row "console \`/devices?type=OpenStage+40&version=V3+R5.3.0\`" "$(median "$ADMIN/devices?type=OpenStage+40&version=V3+R5.3.0" -H "cookie: $COOKIE")"
row "baseline: API search \`GET /api/v1/devices?search=0001234&limit=51\`" "$(median "$ADMIN/api/v1/devices?search=0001234&limit=51" -H "authorization: Bearer $TOKEN")"
row "console search \`/devices?q=0001234\` (E.164, a full scan)" "$(median "$ADMIN/devices?q=0001234" -H "cookie: $COOKIE")"
row "baseline: API \`GET /api/v1/devices/{mac}\`" "$(median "$ADMIN/api/v1/devices/$MID" -H "authorization: Bearer $TOKEN")"
row "console \`/devices/{mac}\`" "$(median "$ADMIN/devices/$MID" -H "cookie: $COOKIE")"
