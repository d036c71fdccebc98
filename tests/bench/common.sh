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
