#!/usr/bin/env bash
# `medvault decoy plant|list`: honeytoken patients in a freshly seeded store,
# checked from outside through the HTTP API.  Each decoy is a valid patient
# (NIR with its key, the printed name and birth date) with encounters and
# observations naming the store's own hospital and practitioners, readable
# by an all-scopes service; its care team has ended, no stay is in progress,
# it is dated like the store's patients (not at the planting),
# a clinician cannot reach it; its identity is unlike every other patient
# (a patient holding the next hospital number makes the decoy take
# another); planting twice adds more, all distinct; `decoy list` shows
# them; the loading accounts are locked; the trail records each plant and
# still verifies.  A store without a directory and bad arguments are
# refused with one line.
. "$(dirname "$0")/lib.sh"

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }

# --- usage errors: exit 2, one line, before any store is opened ---------------------------------
for bad in "" "frobnicate" "plant" "plant --count 0" "plant --count abc" "plant --count -2" \
           "plant --count 1001" "plant --count 3 extra" "list --count 3" "list --frobnicate" \
           "plant --count"; do
    # shellcheck disable=SC2086
    run 2 "$MEDVAULT" decoy $bad --data "$WORK/none" --key-file "$WORK/none.key"
    expect_one_line "$ERR" "decoy $bad"
    expect_contains "$ERR" "medvault decoy:" "decoy $bad names the command"
done
[ ! -e "$WORK/none" ] && pass || fail "a usage error created something"
run 0 "$MEDVAULT" decoy --help
expect_contains "$OUT" "recognise" "--help says why the identities are printed"

# --- a store without a directory: nothing for a decoy to name -------------------------------------
new_store empty
run 1 "$MEDVAULT" decoy plant --count 1 --data "$D" --key-file "$K"
expect_one_line "$ERR" "plant without a directory"
expect_contains "$ERR" "directory" "the error says what is missing"
run 0 "$MEDVAULT" decoy list --data "$D" --key-file "$K"
expect_eq "$OUT" "no decoys planted" "nothing was planted"

# --- a small hospital, served ------------------------------------------------------------------------
new_store h
run 0 "$MEDVAULT" seed --patients 8 --staff 4 --seed 77 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/seed.json"
IN_CARE=$(head -1 "$WORK/seed.json" | json_get patient_in_care)
SEEDED_FROM=$(sqlite3 "$D/medvault.db" "SELECT min(updated_us) FROM resources WHERE type='Patient'")
account() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }
printf '%s\n' "counting heads in a quiet ward" |
    "$MEDVAULT" user add --username census --role service --scopes "system/*.rs" --json \
        --data "$D" --key-file "$K" > "$WORK/census.json" || fail "census account"
printf '%s\n' "front desk on the ground floor" |
    "$MEDVAULT" user add --username admissions --role service --scopes "system/Patient.c" \
        --json --data "$D" --key-file "$K" > "$WORK/admissions.json" || fail "admissions account"

"$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/nodetect.conf" \
    --listen http://127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "$PORT" ] || { fail "server did not start"; finish; exit 1; }
BASE="http://127.0.0.1:$PORT"
req() { STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' "$@"); BODY=$(cat "$WORK/body"); }
login() {  # USER PASSWORD SECRET -> prints the token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$(oathtool --totp -b "$3")\"}" \
        "$BASE/auth/login" | json_get token
}
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | json_num total; }
CENSUS=$(login census "counting heads in a quiet ward" "$(json_get secret < "$WORK/census.json")")
ADMIT=$(login admissions "front desk on the ground floor" \
        "$(json_get secret < "$WORK/admissions.json")")
DOC=$(login demo-clinician "$(account demo-clinician password)" "$(account demo-clinician secret)")
[ -n "$CENSUS" ] && [ -n "$ADMIT" ] && [ -n "$DOC" ] && pass || fail "logins"

# A ninth patient holds hospital number 10000009, the one the first decoy
# would take next: the decoy must take another.
IPP_SYSTEM="https://chu-demo.example.org/fhir/sid/ipp"
as "$ADMIT" -H 'Content-Type: application/fhir+json' -X POST "$BASE/fhir/Patient" -d \
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"$IPP_SYSTEM\",\"value\":\"10000009\"}],\"name\":[{\"family\":\"Walk-in\"}]}"
expect_eq "$STATUS" "201" "a patient admitted at the desk"

# --- plant three decoys while the server runs ---------------------------------------------------------
sleep 1.1                 # the seeded patients are a little older than the planting
PLANTED_AT=$(date +%s%6N)
run 0 "$MEDVAULT" decoy plant --count 3 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/plant1.json"
expect_contains "$(head -1 "$WORK/plant1.json")" '"planted":3' "three planted"
LOADER1=$(head -1 "$WORK/plant1.json" | sed -n 's/.*"loader":"\([^ "]*\) (locked)".*/\1/p')
grep '"id":' "$WORK/plant1.json" > "$WORK/decoys1"
expect_eq "$(grep -c . "$WORK/decoys1")" "3" "one line per decoy"
IDS=$(json_get id < "$WORK/decoys1")
expect_eq "$(printf '%s\n' "$IDS" | sort -u | grep -c .)" "3" "three distinct ids"
expect_not_contains "$(json_get ipp < "$WORK/decoys1")" "10000009" "a taken hospital number"
expect_contains "$(json_get ipp < "$WORK/decoys1")" "10000010" "the next free hospital number"

nir_of() { sed -n 's/.*"urn:oid:1.2.250.1.213.1.4.8","value":"\([0-9AB]*\)".*/\1/p'; }
nir_ok() {  # the control key: 97 - (13 characters mod 97), 2A/2B counted as 19/18
    local nir=$1 digits
    [ "${#nir}" -eq 15 ] || return 1
    case "${nir:0:1}" in 1|2) ;; *) return 1 ;; esac
    digits=$(printf '%s' "${nir:0:13}" | sed 's/^\(.....\)2A/\119/; s/^\(.....\)2B/\118/')
    [ "$((10#${nir:13:2}))" -eq "$((97 - 10#$digits % 97))" ]
}
org_of() { sed -n 's/.*"managingOrganization":{"reference":"\([^"]*\)".*/\1/p'; }
SEEDED_ORG=$(curl -s -H "Authorization: Bearer $CENSUS" "$BASE/fhir/Patient/$IN_CARE" | org_of)
[ -n "$SEEDED_ORG" ] && pass || fail "a seeded patient names its hospital"

while read -r line; do
    id=$(printf '%s' "$line" | json_get id)
    as "$CENSUS" "$BASE/fhir/Patient/$id"
    expect_eq "$STATUS" "200" "decoy $id is readable by an all-scopes service"
    expect_contains "$BODY" "\"family\":\"$(printf '%s' "$line" | json_get family)\"" \
        "decoy $id has the printed family name"
    expect_contains "$BODY" "\"birthDate\":\"$(printf '%s' "$line" | json_get birth_date)\"" \
        "decoy $id has the printed birth date"
    nir=$(printf '%s' "$BODY" | nir_of)
    expect_eq "$nir" "$(printf '%s' "$line" | json_get nir)" "decoy $id has the printed NIR"
    nir_ok "$nir" && pass || fail "decoy $id: NIR '$nir' has a wrong key"
    expect_eq "$(printf '%s' "$BODY" | org_of)" "$SEEDED_ORG" "decoy $id names the hospital"
    as "$CENSUS" "$BASE/fhir/Encounter?subject=Patient/$id"
    [ "$(total)" -ge 1 ] && pass || fail "decoy $id has encounters: $BODY"
    expect_not_contains "$BODY" "in-progress" "decoy $id is in no ward now"
    prac=$(printf '%s' "$BODY" | sed -n 's/.*"reference":"Practitioner\/\([^"]*\)".*/\1/p' | head -1)
    as "$CENSUS" "$BASE/fhir/Practitioner/$prac"
    expect_eq "$STATUS" "200" "decoy $id's encounter names a practitioner of the store"
    as "$CENSUS" "$BASE/fhir/Observation?subject=Patient/$id&_summary=count"
    [ "$(total)" -ge 1 ] && pass || fail "decoy $id has observations: $BODY"
    as "$CENSUS" "$BASE/fhir/CareTeam?subject=Patient/$id"
    expect_eq "$(total)" "1" "decoy $id has a care team, like every patient"
    expect_contains "$BODY" '"status":"inactive"' "that care team has ended"
    expect_contains "$BODY" '"end":"' "on a date"
    # dated like the store's patients, not today's burst: every resource of
    # the decoy, and no later than a minute before the planting
    dates=$(sqlite3 "$D/medvault.db" "SELECT DISTINCT updated_us FROM resources WHERE patient='$id'")
    expect_eq "$(printf '%s\n' "$dates" | grep -c .)" "1" "decoy $id's record has one date"
    [ "$dates" -lt $((PLANTED_AT - 59000000)) ] && pass ||
        fail "decoy $id is dated at the planting ($dates >= $PLANTED_AT - 59 s)"
    [ "$dates" -ge $((SEEDED_FROM - 6 * 3600000000 - 1000000)) ] && pass ||
        fail "decoy $id is dated before any patient of the store"
    as "$DOC" "$BASE/fhir/Patient/$id"
    expect_eq "$STATUS" "404" "the demo clinician cannot reach decoy $id"
done < "$WORK/decoys1"
as "$CENSUS" "$BASE/fhir/CareTeam?status=active&_count=100"
expect_eq "$(total)" "8" "one active care team per seeded patient, none more"
for id in $IDS; do expect_not_contains "$BODY" "$id" "no active care team names $id"; done

# --- list, plant again ---------------------------------------------------------------------------------
run 0 "$MEDVAULT" decoy list --data "$D" --key-file "$K"
for id in $IDS; do expect_contains "$OUT" "Patient/$id" "decoy list shows $id"; done
run 0 "$MEDVAULT" decoy plant --count 2 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" | grep '"id":' > "$WORK/decoys2"
LOADER2=$(printf '%s\n' "$OUT" | head -1 | sed -n 's/.*"loader":"\([^ "]*\) (locked)".*/\1/p')
cat "$WORK/decoys1" "$WORK/decoys2" > "$WORK/decoys"
ALL=$(json_get id < "$WORK/decoys")
expect_eq "$(printf '%s\n' "$ALL" | sort -u | grep -c .)" "5" "five distinct decoy ids"
people=$(sed -n 's/.*"family":"\([^"]*\)","given":"\([^"]*\)","birth_date":"\([^"]*\)".*/\1|\3/p' \
         "$WORK/decoys")
expect_eq "$(printf '%s\n' "$people" | sort -u | grep -c .)" "5" "five distinct names with birth dates"
expect_eq "$(json_get nir < "$WORK/decoys" | sort -u | grep -c .)" "5" "five distinct NIRs"
run 0 "$MEDVAULT" decoy list --json --data "$D" --key-file "$K"
expect_eq "$(printf '%s\n' "$OUT" | grep -c '"purpose":"decoy"')" "5" "decoy list --json: five"
for id in $ALL; do
    expect_contains "$OUT" "{\"patient\":\"$id\"" "decoy list --json shows $id"
done
expect_contains "$OUT" '"planted_by":"cli:' "who planted them"

kill -TERM $PID; wait $PID

# --- accounts and the trail -----------------------------------------------------------------------------
[ -n "$LOADER1" ] && [ -n "$LOADER2" ] && [ "$LOADER1" != "$LOADER2" ] && pass ||
    fail "one loading account per plant: '$LOADER1' '$LOADER2'"
for loader in "$LOADER1" "$LOADER2"; do
    run 0 "$MEDVAULT" user show "$loader" --json --data "$D" --key-file "$K"
    expect_contains "$OUT" '"locked":true' "$loader is locked"
    expect_contains "$OUT" '"scopes":"system/*.c"' "$loader could only create"
done
plants=$(sqlite3 "$D/medvault.db" "SELECT resources FROM audit WHERE action='decoy.plant'")
expect_eq "$(printf '%s\n' "$plants" | grep -c .)" "5" "one audit entry per plant"
for id in $ALL; do expect_contains "$plants" "Patient/$id" "the trail records planting $id"; done
[ "$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM audit WHERE action='decoy.list'")" -ge 1 ] &&
    pass || fail "listing decoys is audited"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
expect_absent_in_tree "$D" "$(head -1 "$WORK/decoys1" | json_get nir)"
finish
