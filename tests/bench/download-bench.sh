#!/usr/bin/env bash
# Deployment downloads (issue 7): a 100 MiB file served by `dls serve` to `curl` over HTTPS
# on the default-mode port, streamed from disk. Prints the download's rate and the
# service's resident memory before, during (sampled every 50 ms) and after, and the same
# download of the same file from a bare `openssl s_server -WWW` as the baseline.
#
#   tests/bench/download-bench.sh            # SIZE_MIB=100 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-100}
BIN=${CARGO_TARGET_DIR:-target}/release
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p dls-cli >&2
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/dls" serve --data-dir "$WORK/data" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE=$!
PIDS+=("$SERVE")
for _ in $(seq 100); do grep -q 'admin API' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
WPI=$(sed -n 's|.*(default mode) on https://\([^/]*\)/.*|\1|p' "$WORK/serve.out")
MAC=00:1A:E8:00:0D:01
dls() { "$BIN/dls" "$@" --data-dir "$WORK/data"; }
"$BIN/dls" phone run --server "$WPI" --mac "$MAC" >/dev/null
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/big.img"
dls file add "$WORK/big.img" --type LOGO >/dev/null
dls job add --mac "$MAC" deploy-file --file 1 >/dev/null
URL=$("$BIN/dls" phone run --server "$WPI" --mac "$MAC" -v | sed -n 's|.*<Item name="file-https-base-url">\([^<]*\)</Item>.*|\1|p' | head -1)big.img
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVE/status"; }
BEFORE=$(rss)
OUT=$(curl -s -S --cacert "$WORK/data/ca.crt" -o "$WORK/got" -w '%{size_download} %{time_total} %{speed_download}' "$URL")
cmp -s "$WORK/big.img" "$WORK/got" || { echo "downloaded bytes differ" >&2; exit 1; }
read -r BYTES SECS SPEED <<<"$OUT"
echo "{\"what\":\"dls serve\",\"bytes\":$BYTES,\"seconds\":$SECS,\"mib_per_second\":$(awk "BEGIN{printf \"%.1f\", $SPEED/1048576}")}"
# Memory: the same download slowed to ${LIMIT:-50M}/s, the service's RSS sampled every 50 ms.
( peak=0; while kill -0 "$SERVE" 2>/dev/null && [ ! -e "$WORK/done" ]; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" >"$WORK/peak"; sleep 0.05; done ) &
PIDS+=("$!")
curl -s -S --cacert "$WORK/data/ca.crt" --limit-rate "${LIMIT:-50M}" -o "$WORK/got" "$URL"
touch "$WORK/done"; sleep 0.2
AFTER=$(rss)
cmp -s "$WORK/big.img" "$WORK/got" || { echo "downloaded bytes differ" >&2; exit 1; }
echo "{\"what\":\"dls serve memory\",\"rss_kib_before\":$BEFORE,\"rss_kib_peak\":$(cat "$WORK/peak"),\"rss_kib_after\":$AFTER}"

# Baseline: openssl's own HTTPS file server, same certificate, same file.
mkdir -p "$WORK/www"; cp "$WORK/big.img" "$WORK/www/big.img"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/www" && exec openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$WORK/data/server.crt" -key "$WORK/data/server.key" -WWW) >/dev/null 2>&1 &
PIDS+=("$!")
sleep 0.5
OUT=$(curl -s -S --cacert "$WORK/data/ca.crt" --resolve "localhost:$PORT:127.0.0.1" -o "$WORK/got2" -w '%{size_download} %{time_total} %{speed_download}' "https://localhost:$PORT/big.img")
read -r BYTES SECS SPEED <<<"$OUT"
echo "{\"what\":\"openssl s_server -WWW\",\"bytes\":$BYTES,\"seconds\":$SECS,\"mib_per_second\":$(awk "BEGIN{printf \"%.1f\", $SPEED/1048576}")}"
