# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run).

# write_global_profile FILE: the `global` profile of the service benchmarks — 20 items, all
# different from the simulated phones' own values.
write_global_profile() {
    {
        for k in 1 2 3 4 5 6 7 8 9; do
            printf '[[item]]\nname = "key-label-unicode"\nindex = %d\nvalue = "Team %d"\n' "$k" "$k"
        done
        for k in 1001 1002 1003 1004 1005 1006; do
            printf '[[item]]\nname = "function-key-def"\nindex = %d\nvalue = "1"\n' "$k"
        done
        printf '[[item]]\nname = "%s"\nvalue = "%s"\n' \
            sntp-addr ntp2.example.net \
            ldap-server-address directory.example.net \
            ringer-melody 4 \
            reg-timer 1800 \
            language-iso en
    } >"$1"
}

# wait_for FILE PATTERN: until a line of FILE matches (20 s at most).
wait_for() {
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

# The harness below expects BIN (the directory of the release binaries) and runs under
# `set -euo pipefail`.

# bench_init: WORK (a temporary directory) and PIDS (the processes to end at exit), the
# `global` profile in $WORK/global.toml; at exit, ends the processes in PIDS, stops the
# temporary PostgreSQL cluster if one was started, removes WORK.
bench_init() {
    WORK=$(mktemp -d)
    PIDS=()
    PG_DATA=
    trap bench_cleanup EXIT
    write_global_profile "$WORK/global.toml"
}
bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pg_stop
    rm -rf "$WORK"
}

# start_dls NAME [STORE [KEYS_FROM]]: a fresh `dls serve` on ephemeral loopback ports with
# the data directory $WORK/NAME, on STORE (`sqlite`, a postgres:// URL; by default the
# service's default, SQLite in the data directory), its keys copied from the data directory
# KEYS_FROM before its first start (a second node of a cluster, docs/cluster.md), then the
# `global` profile set; its output in $WORK/NAME.out, its log in $WORK/NAME.log. Sets
# SERVER_PID and SERVER (host:port of the default-mode TLS port).
start_dls() {
    local d="$WORK/$1" store=() f
    if [ -n "${2:-}" ]; then store=(--store "$2"); fi
    if [ -n "${3:-}" ]; then
        mkdir -m 700 "$d"
        for f in ca.crt ca.key secrets.key fingerprint.key admin-token; do install -m 600 "$3/$f" "$d/$f"; done
    fi
    "$BIN/dls" serve --data-dir "$d" "${store[@]}" --wpi-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --secure-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --max-connections-per-source 4096 \
        >"$WORK/$1.out" 2>"$WORK/$1.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$WORK/$1.out" "admin API"
    # shellcheck disable=SC2034 # for the caller
    SERVER=$(sed -n 's#.*(default mode) on https://\([^/]*\)/.*#\1#p' "$WORK/$1.out")
    "$BIN/dls" profile set global "$WORK/global.toml" --data-dir "$d" >/dev/null
}

# stop PID: ends a process started into PIDS and forgets it.
stop() {
    kill "$1"
    wait "$1" 2>/dev/null || true
    local kept=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# cpu PID…: the CPU time (user + system, clock ticks) of the processes alive.
cpu() {
    local t=0 p
    for p in "$@"; do
        if [ -r "/proc/$p/stat" ]; then t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); fi
    done
    echo "$t"
}

# PostgreSQL: Debian's (the newest of /usr/lib/postgresql/*/bin), a cluster in a temporary
# directory on a free loopback port, run by the `postgres` user when this runs as root, with
# `synchronous_commit=off`: like the SQLite store's WAL with `synchronous=NORMAL`, a crash of
# the machine may lose the last transactions, never corrupt the database.

# pg_bin: the directory of PostgreSQL's programs; nothing when it is not installed.
# shellcheck disable=SC2012 # the names are PostgreSQL's versions
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pg_start [SETTING…]: starts the cluster (more `-c` settings: name=value); sets PG_BIN,
# PG_DATA (its directory; the server's log is $PG_DATA/log), PG_PORT, PG_VERSION. Fails when
# PostgreSQL is not installed.
pg_start() {
    PG_BIN=$(pg_bin)
    if [ -z "$PG_BIN" ]; then
        echo "error: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin)" >&2
        return 1
    fi
    # shellcheck disable=SC2034 # for the caller
    PG_VERSION=$("$PG_BIN/postgres" --version | awk '{print $3}')
    PG_DATA=$(mktemp -d -t dls-bench-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DATA"; fi
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C >/dev/null
    PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local opts="-k $PG_DATA -p $PG_PORT -h 127.0.0.1 -c synchronous_commit=off -c max_connections=200" s
    for s in "$@"; do opts+=" -c $s"; done
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w -o "$opts" start >/dev/null
}

# pg_stop: stops the cluster and removes it, if one was started.
pg_stop() {
    if [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DATA"
    fi
    PG_DATA=
}

# pg_db NAME: creates the database NAME; prints its URL for `dls serve --store`.
pg_db() {
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $1" postgres >/dev/null &&
        echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

# pg_cpu: the CPU time (clock ticks) of PostgreSQL: the postmaster and its children alive.
pg_cpu() {
    local main
    main=$(head -n 1 "$PG_DATA/postmaster.pid")
    # shellcheck disable=SC2046
    cpu "$main" $(pgrep -P "$main" | tr '\n' ' ')
}
