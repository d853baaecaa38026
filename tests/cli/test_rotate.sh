#!/usr/bin/env bash
# medvault keys rotate: killed midway (at an exact batch, and by a real
# SIGKILL), then run again, it completes and nothing becomes unreadable.
. "$(dirname "$0")/lib.sh"

new_store rot
S=(--data "$D" --key-file "$K")
N=40
for i in $(seq 1 $N); do
    printf '{"resourceType":"Patient","id":"p%d","name":[{"family":"Fam%d"}]}' "$i" "$i" \
        > "$WORK/p$i.json"
    "$MEDVAULT" resource put "Patient/p$i" --patient "p$i" --file "$WORK/p$i.json" "${S[@]}" \
        >/dev/null || fail "put p$i"
done
masters() { sqlite3 "$D/medvault.db" "SELECT group_concat(version) FROM master_keys"; }
under() { sqlite3 "$D/medvault.db" "SELECT count(*) FROM data_keys WHERE mk_version = $1"; }
all_readable() {
    for i in $(seq 1 $N); do
        got=$("$MEDVAULT" resource get "Patient/p$i" "${S[@]}" 2>&1) || { fail "p$i unreadable: $got"; return; }
        [ "$got" = "$(cat "$WORK/p$i.json")" ] || { fail "p$i changed"; return; }
    done
    pass
}
expect_eq "$(masters)" "1" "one master key"

# Crash after 2 batches of 5: some keys under v2, some still under v1.
run 137 env MEDVAULT_TEST_ROTATE_CRASH_AFTER=2 "$MEDVAULT" keys rotate --batch 5 "${S[@]}"
expect_eq "$(masters)" "1,2" "both versions kept while rotating"
expect_eq "$(under 2)" "10" "two batches re-wrapped"
all_readable

# Run again: resumes (no third version), completes, drops version 1.
run 0 "$MEDVAULT" keys rotate --batch 5 "${S[@]}"
expect_contains "$OUT" "resumed" "second run resumes"
expect_eq "$(masters)" "2" "old master deleted"
expect_eq "$(under 1)" "0" "nothing left under v1"
all_readable

# A real SIGKILL at an arbitrary moment, repeatedly, then a clean run.
for attempt in 1 2 3; do
    "$MEDVAULT" keys rotate --batch 1 "${S[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 0.0$((attempt * 3))
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
done
run 0 "$MEDVAULT" keys rotate "${S[@]}"
v=$(masters)
case "$v" in *,*) fail "several master keys left after completion: $v" ;; *) pass ;; esac
all_readable
run 0 "$MEDVAULT" audit verify "${S[@]}"
expect_contains "$(sqlite3 "$D/medvault.db" "SELECT group_concat(action) FROM audit")" \
    "keys.rotate" "rotation audited"

finish
