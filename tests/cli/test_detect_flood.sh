#!/usr/bin/env bash
# A flood of logins with names nobody has cannot wipe a stolen account's
# record in the detector.  The attack run sent 10,300 POST /auth/login with
# random unknown usernames, each from its own loopback address, and the
# stolen account's state was evicted from the detector's table (the least
# recently seen of 10,000 actors): 48 patients in 6 minutes, never
# contained.  Here the table is small (detect_max_actors = 10; the server
# still keeps three per account and some room) and 300 unknown names come
# from 300 addresses between two halves of a read-out: the thief is stopped
# at the same patient as a twin account that saw no flood.
. "$(dirname "$0")/lib.sh"

new_store f
run 0 "$MEDVAULT" seed --patients 40 --staff 4 --seed 11 --json --data "$D" --key-file "$K"
PATIENTS=$(sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'")
SECRET_PW="a stolen integration password"
for who in twin thief; do
    printf '%s\n' "$SECRET_PW" | "$MEDVAULT" user add --username "$who" --role service \
        --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/$who.json" \
        2>/dev/null || fail "service account $who"
done
printf 'detect_max_actors = 10\n' > "$WORK/flood.conf"
api_serve "$WORK/flood.conf"
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT

token_of() { login "$1" "$SECRET_PW" "$(json_get secret < "$WORK/$1.json")"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$2"; }
# read TOKEN FROM TO: read patients FROM..TO (1-based) until one is refused;
# prints how many were answered.
read_range() {
    local n=0
    for p in $(printf '%s\n' $PATIENTS | sed -n "$2,$3p"); do
        [ "$(status_of "$1" "$BASE/fhir/Patient/$p")" = 200 ] || break
        n=$((n + 1))
    done
    echo "$n"
}

TWIN=$(token_of twin)
first=$(read_range "$TWIN" 1 10)
expect_eq "$first" "10" "the twin's first ten reads"
TWIN_STOP=$((first + $(read_range "$TWIN" 11 40)))
[ "$TWIN_STOP" -lt 40 ] && [ "$TWIN_STOP" -le 20 ] && pass ||
    fail "the twin was not stopped within 20 patients: $TWIN_STOP"

THIEF=$(token_of thief)
expect_eq "$(read_range "$THIEF" 1 10)" "10" "the thief's first ten reads"
refused=0
for i in $(seq 0 299); do
    s=$(curl -s -o /dev/null -w '%{http_code}' --interface "127.0.$((2 + i / 250)).$((1 + i % 250))" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"nobody-$i-$RANDOM\",\"password\":\"x\",\"totp\":\"000000\"}" \
        "$BASE/auth/login")
    [ "$s" = 401 ] || refused=$((refused + 1))
done
expect_eq "$refused" "0" "300 unknown names from 300 addresses, each answered 401"
THIEF_STOP=$((10 + $(read_range "$THIEF" 11 40)))
expect_eq "$THIEF_STOP" "$TWIN_STOP" "the flood changed nothing: stopped at the same patient as the twin"

finish
