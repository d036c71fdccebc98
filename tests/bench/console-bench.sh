#!/usr/bin/env bash
# The console's devices and device pages with 100,000 devices in the store: the server time
# per page (curl's time_total on loopback, median of RUNS), beside the same run's baseline,
# the admin API's JSON for the same store query (`GET /api/v1/devices?limit=51`,
# `GET /api/v1/devices/{mac}`, `GET /api/v1/devices?search=…`), on SQLite and on PostgreSQL
# (a temporary cluster, as tests/bench/store-bench.sh starts one), one after the other in
# the same run; one table, a column per store.
#
#   cargo build --release -p dls-cli && tests/bench/console-bench.sh [DEVICES] [RUNS]
#   BIN=/path/to/target/debug tests/bench/console-bench.sh   # another build
#   STORES=sqlite tests/bench/console-bench.sh               # one store only
#
# The fleet: a type, version and number (`+49 89 0000000` on) each, every third in profile
# `sales`, MACs 0001E3000000 on. The searches (`q=`, a substring of the MAC or E.164,
# case-insensitive) include the worst cases: a needle that matches nothing (without an
# index, the whole table is read), one that matches a single device, one that matches
# every device (a page fills at once), one in the numbers of the first tenth of the fleet
# read from the other end (`order=desc`), and needles shorter than 3 characters (which no
# trigram index serves).
set -euo pipefail
DEVICES=${1:-100000}
RUNS=${2:-21}
STORES=${STORES:-sqlite postgres}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
source "$(dirname "$0")/common.sh"
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
PG_DATA=
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$PG_DATA" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_dls NAME [--store URL]: a fresh `dls serve`; sets ADMIN, TOKEN and DATA.
start_dls() {
    local name=$1
    shift
    DATA="$WORK/$name"
    "$BIN/dls" serve --data-dir "$DATA" "$@" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
    wait_for "$WORK/$name.out" "admin API"
    ADMIN=$(sed -n 's/.*admin API on \(http[^ ]*\).*/\1/p' "$WORK/$name.out")
    TOKEN=$(cat "$DATA/admin-token")
    curl -sf -X PUT -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"item":[{"name":"sntp-addr","value":"ntp.sales"}]}' "$ADMIN/api/v1/profiles/sales" >/dev/null
}

# The fleet in one transaction, behind the service's back (as a bulk import would).
populate_sqlite() {
    python3 - "$DATA/dls.sqlite" "$DEVICES" <<'PY'
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
}
populate_postgres() {
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d dls -q -v ON_ERROR_STOP=1 <<SQL
BEGIN;
INSERT INTO devices (mac, registered_at, last_contact_at, device_type, software_version, e164)
    SELECT '0001E3' || upper(lpad(to_hex(i), 6, '0')), 1700000000, 1700000000,
           (ARRAY['OpenStage 60', 'OpenStage 40', 'OpenScape Desk Phone CP400', 'OpenScape Desk Phone CP600'])[i % 4 + 1],
           'V3 R5.' || (i % 7) || '.0', '+49 89 ' || lpad(i::TEXT, 7, '0')
    FROM generate_series(0, $DEVICES - 1) AS i;
INSERT INTO device_profiles (mac, position, profile)
    SELECT '0001E3' || upper(lpad(to_hex(i), 6, '0')), 0, 'sales' FROM generate_series(0, $DEVICES - 1, 3) AS i;
COMMIT;
-- What autovacuum would do after such an import.
ANALYZE;
SQL
}

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
ONE=$(printf '%07d' $((DEVICES / 2 + 34)))
# The requests: a label, then the path (`api:` the admin API with the token, else the
# console with the session's cookie).
REQUESTS=(
    "baseline: API \`GET /api/v1/devices?limit=51\`" "api:/api/v1/devices?limit=51"
    "console \`/devices\` (first page of 50)" "/devices"
    "console \`/devices?after=…\` (a page past $((DEVICES - 100)))" "/devices?after=$LATE"
    "console \`/devices?order=desc\`" "/devices?order=desc"
    "console \`/devices?profile=sales\`" "/devices?profile=sales"
    "console \`/devices?type=OpenStage+40&version=V3+R5.3.0\`" "/devices?type=OpenStage+40&version=V3+R5.3.0"
    "console \`/devices?type=OpenStage+99\` (no such type: a full scan)" "/devices?type=OpenStage+99"
    "baseline: API search \`GET /api/v1/devices?search=$ONE&limit=51\`" "api:/api/v1/devices?search=$ONE&limit=51"
    "console search \`/devices?q=$ONE\` (E.164 substring, 1 device)" "/devices?q=$ONE"
    "baseline: API search \`GET /api/v1/devices?search=7777777&limit=51\`" "api:/api/v1/devices?search=7777777&limit=51"
    "console search \`/devices?q=7777777\` (E.164, no device)" "/devices?q=7777777"
    "console search \`/devices?q=89+0${ONE:0:2}\` (E.164, a tenth of the fleet)" "/devices?q=89+0${ONE:0:2}"
    "console search \`/devices?q=89+000&order=desc\` (E.164, the first tenth, from the other end)" "/devices?q=89+000&order=desc"
    "console search \`/devices?q=${MID:6:2}:${MID:8:2}:${MID:10:2}\` (MAC fragment, 1 device)" "/devices?q=${MID:6:2}:${MID:8:2}:${MID:10:2}"
    "console search \`/devices?q=ab:cd:ef\` (MAC fragment, no device)" "/devices?q=ab:cd:ef"
    "console search \`/devices?q=00-01-e3\` (MAC fragment, every device)" "/devices?q=00-01-e3"
    "console search \`/devices?q=00-01-e3&after=…\` (every device, a page past $((DEVICES - 100)))" "/devices?q=00-01-e3&after=$LATE"
    "console search \`/devices?q=zz\` (2 characters, no device)" "/devices?q=zz"
    "console search \`/devices?q=${ONE:0:4}&type=OpenStage+40&profile=sales\`" "/devices?q=${ONE:0:4}&type=OpenStage+40&profile=sales"
    "baseline: API \`GET /api/v1/devices/{mac}\`" "api:/api/v1/devices/$MID"
    "console \`/devices/{mac}\`" "/devices/$MID"
)

declare -A RESULT
measure() {
    local store=$1 i
    printf 'correct horse battery\n' >"$WORK/pw"
    "$BIN/dls" account add bench --role viewer --password-file "$WORK/pw" --data-dir "$DATA" >/dev/null
    local cookie
    cookie=$(curl -si -d 'account=bench&password=correct+horse+battery' "$ADMIN/login" |
        sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip' | head -n 1)
    for ((i = 0; i < ${#REQUESTS[@]}; i += 2)); do
        local path=${REQUESTS[i + 1]}
        if [[ $path == api:* ]]; then
            RESULT[$store,$i]=$(median "$ADMIN${path#api:}" -H "authorization: Bearer $TOKEN")
        else
            RESULT[$store,$i]=$(median "$ADMIN$path" -H "cookie: $cookie")
        fi
    done
}

echo "console bench: $DEVICES devices, median of $RUNS, $(nproc) cores, load average at the start: $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2
header="| request ($DEVICES devices, $(nproc) cores, median of $RUNS) |"
rule="|---|"
for store in $STORES; do
    start=$(date +%s.%N)
    case $store in
    sqlite)
        start_dls sqlite
        populate_sqlite
        header+=" SQLite |"
        ;;
    postgres)
        PG_DATA="$WORK/pg"
        mkdir "$PG_DATA"
        [ "$(id -u)" = 0 ] && chown postgres: "$PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null
        PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w \
            -o "-k $PG_DATA -p $PG_PORT -h 127.0.0.1 -c synchronous_commit=off" start >/dev/null
        as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE dls" postgres >/dev/null
        start_dls postgres --store "postgres://postgres@127.0.0.1:$PG_PORT/dls"
        populate_postgres
        header+=" PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') |"
        ;;
    *) echo "unknown store $store" >&2 && exit 2 ;;
    esac
    echo "$store: $DEVICES devices populated in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
    rule+="---|"
    measure "$store"
    echo "$store: measured, load average $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2
done

echo "$header"
echo "$rule"
for ((i = 0; i < ${#REQUESTS[@]}; i += 2)); do
    line="| ${REQUESTS[i]} |"
    for store in $STORES; do line+=" ${RESULT[$store,$i]} ms |"; done
    echo "$line"
done
