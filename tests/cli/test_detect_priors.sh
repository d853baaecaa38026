#!/usr/bin/env bash
# medvault detect priors (issue 13): an administrator sets what a role, or a
# role in one department, may touch before it has a baseline of its own.
#   - set, list (text and JSON), unset; each change in the audit trail;
#     at most 64 (what the detector holds);
#   - bounds: no prior above twice the default (the 5-minute one at most the
#     hard cap of 20), none for patients, none shrinking with the window:
#     usage errors, one line, status 2, nothing stored;
#   - live: a running server applies a prior set meanwhile within seconds; a
#     new laboratory feed (department "laboratory") with the laboratory's
#     prior reads 19 ordered patients in a minute with nothing refused and
#     no alert, while a new feed of another department, held to the
#     defaults, is stopped before 19.
. "$(dirname "$0")/lib.sh"

# --- the command -----------------------------------------------------------------------------
new_store p
run 0 "$MEDVAULT" detect priors --data "$D" --key-file "$K"
expect_contains "$OUT" "no priors" "none at first"
run 0 "$MEDVAULT" detect priors set --role service --department laboratory \
    --limit-5m 20 --limit-1h 80 --limit-24h 240 --data "$D" --key-file "$K"
expect_contains "$OUT" "prior set: service in laboratory" "set"
run 0 "$MEDVAULT" detect priors set --role nurse --limit-5m 6 --limit-1h 20 --limit-24h 60 \
    --data "$D" --key-file "$K"
run 0 "$MEDVAULT" detect priors --data "$D" --key-file "$K"
expect_contains "$OUT" "laboratory" "listed"
expect_contains "$OUT" "(any)" "a role-wide prior listed"
run 0 "$MEDVAULT" detect priors --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"department":"laboratory"' "JSON"
expect_contains "$OUT" '"limit_1h":80' "JSON limits"
expect_contains "$OUT" '"set_by":"cli:' "who set it"
n=$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM audit WHERE action='detect.prior.set'")
expect_eq "$n" "2" "each change in the audit trail"

# bounds and usage: nothing stored
for bad in "--role service --limit-5m 12 --limit-1h 40 --limit-24h 1000" \
           "--role admin --limit-5m 30 --limit-1h 40 --limit-24h 120" \
           "--role patient --limit-5m 1 --limit-1h 2 --limit-24h 3" \
           "--role nurse --limit-5m 10 --limit-1h 5 --limit-24h 100" \
           "--role nurse --limit-5m 10" \
           "--limit-5m 1 --limit-1h 2 --limit-24h 3"; do
    # shellcheck disable=SC2086
    run 2 "$MEDVAULT" detect priors set $bad --data "$D" --key-file "$K"
    expect_one_line "$ERR" "refused: $bad"
done
run 2 "$MEDVAULT" detect priors set --role service --limit-5m 12 --limit-1h 40 \
    --limit-24h 1000 --data "$D" --key-file "$K"
expect_contains "$ERR" "daily limit must be between 1 and 240" "the bound is named"
run 2 "$MEDVAULT" detect nonsense --data "$D" --key-file "$K"
n=$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM audit WHERE action='detect.prior.set'")
expect_eq "$n" "2" "nothing stored by a refused prior"
run 0 "$MEDVAULT" detect priors unset --role nurse --data "$D" --key-file "$K"
run 1 "$MEDVAULT" detect priors unset --role nurse --data "$D" --key-file "$K"
expect_one_line "$ERR" "unset twice"
# the detector holds 64: the 65th is refused, changing a stored one is not
for i in $(seq 1 63); do
    "$MEDVAULT" detect priors set --role clinician --department "ward $i" --limit-5m 6 \
        --limit-1h 20 --limit-24h 60 --data "$D" --key-file "$K" > /dev/null ||
        fail "prior $i"
done
run 1 "$MEDVAULT" detect priors set --role clinician --department "ward 64" --limit-5m 6 \
    --limit-1h 20 --limit-24h 60 --data "$D" --key-file "$K"
expect_contains "$ERR" "at most 64 priors" "the 65th prior refused"
run 0 "$MEDVAULT" detect priors set --role clinician --department "ward 7" --limit-5m 8 \
    --limit-1h 24 --limit-24h 80 --data "$D" --key-file "$K"
for i in $(seq 1 63); do
    "$MEDVAULT" detect priors unset --role clinician --department "ward $i" \
        --data "$D" --key-file "$K" > /dev/null || fail "unset prior $i"
done
run 0 "$MEDVAULT" detect priors --data "$D" --key-file "$K"
expect_not_contains "$OUT" "(any)" "unset"

# --- live: a prior set while the server runs ---------------------------------------------------
printf 'detect = on\n' > "$WORK/on.conf"
api_server s "$WORK/on.conf"
SEC=$APPROVER
ORDERS=$(adduser order-feed service ',"scopes":"system/ServiceRequest.c system/Patient.c"')
LAB=$(adduser lab-feed service ',"scopes":"system/Patient.rs system/ServiceRequest.rs","department":"laboratory"')
# made by another administrator: what an administrator's accounts read
# together counts against it too (lineage), and this feed must meet its own
# limits, not the laboratory feed's reads
ADMIN2=$(adduser admin2 admin)
OTHER=$(ADMIN=$ADMIN2; adduser billing-feed service ',"scopes":"system/Patient.rs system/ServiceRequest.rs","department":"billing"')
[ -n "$ORDERS" ] && [ -n "$LAB" ] && [ -n "$OTHER" ] && pass || fail "the feeds"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/users/lab-feed"
expect_contains "$BODY" '"department":"laboratory"' "the account's department"
: > "$WORK/patients"
for i in $(seq 1 40); do
    req -H "Authorization: Bearer $ORDERS" -H 'Content-Type: application/fhir+json' \
        -d "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Prior$i\"}]}" "$BASE/fhir/Patient"
    p=$(printf '%s' "$BODY" | json_get id)
    [ -n "$p" ] || { fail "patient $i: $STATUS $BODY"; break; }
    printf '%s\n' "$p" >> "$WORK/patients"
    req -H "Authorization: Bearer $ORDERS" -H 'Content-Type: application/fhir+json' \
        -d "{\"resourceType\":\"ServiceRequest\",\"status\":\"active\",\"intent\":\"order\",\"code\":{\"text\":\"blood count\"},\"subject\":{\"reference\":\"Patient/$p\"}}" \
        "$BASE/fhir/ServiceRequest"
    [ "$STATUS" = 201 ] || fail "order $i: $STATUS $BODY"
done
run 0 "$MEDVAULT" detect priors set --role service --department laboratory \
    --limit-5m 20 --limit-1h 80 --limit-24h 240 --data "$D" --key-file "$K"
sleep 6                                           # the server's next read of the priors
reads() {  # TOKEN FIRST: 19 reads, prints how many were refused
    local refused=0
    for p in $(sed -n "$2,$(($2 + 18))p" "$WORK/patients"); do
        s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$BASE/fhir/Patient/$p")
        [ "$s" = 200 ] || refused=$((refused + 1))
    done
    echo "$refused"
}
expect_eq "$(reads "$LAB" 1)" "0" "the laboratory feed reads 19 ordered patients in a minute"
r=$(reads "$OTHER" 21)
if [ "$r" -gt 0 ]; then pass; else fail "the billing feed, held to the defaults, was not stopped"; fi
req -H "Authorization: Bearer $SEC" "$BASE/api/alerts"
expect_not_contains "$BODY" '"actor_username":"lab-feed"' "no alert on the laboratory feed"
expect_contains "$BODY" '"actor_username":"billing-feed"' "the other feed alerted"

finish
