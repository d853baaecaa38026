#!/usr/bin/env bash
# `medvault seed`: a small synthetic hospital loaded through the API's code,
# then checked from outside through the HTTP API: the printed demo accounts
# log in with their TOTP secrets; the demo clinician reads a patient of its
# care team and not another; every NIR carries a valid control key
# (recomputed here, read through the API and the CLI); family-name search works and hides patients outside
# the care team; the store holds exactly what seed reported; the same
# --seed makes the same people; the loading account is locked; bad
# arguments are usage errors.
. "$(dirname "$0")/lib.sh"

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }

# --- usage errors: exit 2, one line, before any store is opened ------------------------
for bad in "--patients -1" "--patients abc" "--patients 0" "--staff 3" "--seed x" "--frobnicate"; do
    # shellcheck disable=SC2086
    run 2 "$MEDVAULT" seed $bad --data "$WORK/none" --key-file "$WORK/none.key"
    expect_one_line "$ERR" "seed $bad"
    expect_contains "$ERR" "medvault seed:" "seed $bad names the command"
done
[ ! -e "$WORK/none" ] && pass || fail "a usage error created something"

# --- seed a small hospital ------------------------------------------------------------------
new_store h
run 0 "$MEDVAULT" seed --patients 30 --staff 6 --seed 4242 --json --data "$D" --key-file "$K"
SEED_JSON=$OUT
printf '%s\n' "$SEED_JSON" > "$WORK/seed.json"
head=$(printf '%s\n' "$SEED_JSON" | head -1)
expect_eq "$(printf '%s' "$head" | json_num patients)" "30" "30 patients reported"
IN_CARE=$(printf '%s' "$head" | json_get patient_in_care)
OUTSIDE=$(printf '%s' "$head" | json_get patient_not_in_care)
FAMILY=$(printf '%s' "$head" | json_get family_in_care)
[ -n "$IN_CARE" ] && [ -n "$OUTSIDE" ] && [ "$IN_CARE" != "$OUTSIDE" ] && pass ||
    fail "patient ids in the output: '$IN_CARE' '$OUTSIDE'"
account() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }
for role in clinician nurse patient admin security service; do
    line=$(grep "\"username\":\"demo-$role\"" "$WORK/seed.json")
    expect_contains "$line" "\"role\":\"$role\"" "one demo account for $role"
    printf '%s' "$line" | json_get secret | grep -Eqx '[A-Z2-7]{32}' && pass ||
        fail "demo-$role has no base32 TOTP secret: $line"
done
expect_eq "$(account demo-patient patient)" "$IN_CARE" "demo-patient is the patient in care"

run 0 "$MEDVAULT" user show seed-loader --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"locked":true' "the loading account is locked"
expect_contains "$OUT" '"scopes":"system/*.c"' "it could only create"
run 1 "$MEDVAULT" seed --patients 2 --data "$D" --key-file "$K"
expect_contains "$ERR" "seeded already" "a store is seeded once"
expect_one_line "$ERR" "seeding twice"

# An account of our own to count what is in the store.
printf '%s\n' "counting heads in a quiet ward" |
    "$MEDVAULT" user add --username census --role service --scopes "system/*.rs" --json \
        --data "$D" --key-file "$K" > "$WORK/census.json" || fail "census account"

# --- the API -------------------------------------------------------------------------------------
"$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/nodetect.conf" --listen http://127.0.0.1:0 \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
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
demo_login() { login "$1" "$(account "$1" password)" "$(account "$1" secret)"; }
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | json_num total; }

DOC=$(demo_login demo-clinician)
[ -n "$DOC" ] && pass || fail "demo-clinician logs in with the printed password and TOTP secret"
as "$DOC" "$BASE/fhir/Patient/$IN_CARE"
expect_eq "$STATUS" "200" "the demo clinician reads a patient of its care team"
expect_contains "$BODY" "\"family\":\"$FAMILY\"" "the record decrypted"
as "$DOC" "$BASE/fhir/Patient/$OUTSIDE"
expect_eq "$STATUS" "404" "and not a patient outside it"
as "$DOC" "$BASE/fhir/Observation?subject=Patient/$IN_CARE&_summary=count"
[ "$(total)" -gt 0 ] && pass || fail "the patient in care has observations: $BODY"
NURSE=$(demo_login demo-nurse)
as "$NURSE" "$BASE/fhir/Patient/$IN_CARE"
expect_eq "$STATUS" "200" "the demo nurse reads the patient in care"
as "$NURSE" "$BASE/fhir/Patient/$OUTSIDE"
expect_eq "$STATUS" "404" "and not the other"
ME=$(demo_login demo-patient)
as "$ME" "$BASE/fhir/Patient/$IN_CARE"
expect_eq "$STATUS" "200" "demo-patient reads its own record"
ADM=$(demo_login demo-admin)
as "$ADM" "$BASE/fhir/Patient/$IN_CARE"
expect_eq "$STATUS" "403" "demo-admin reads no clinical data"
LAB=$(demo_login demo-service)
as "$LAB" "$BASE/fhir/Patient?_summary=count"
expect_eq "$STATUS $(total)" "200 30" "demo-service searches patients"
as "$LAB" "$BASE/fhir/Condition?_summary=count"
case "$STATUS $(total)" in
    403*|"200 0") pass ;;
    *) fail "demo-service searched outside its scopes: $STATUS $BODY" ;;
esac

CENSUS=$(login census "counting heads in a quiet ward" "$(json_get secret < "$WORK/census.json")")

# --- what seed reported is what the store holds ----------------------------------------------
created=$(printf '%s' "$head" | sed -n 's/.*"created":{\([^}]*\)}.*/\1/p' | tr ',' '\n' | tr -d '"')
[ "$(printf '%s\n' "$created" | grep -c :)" -ge 10 ] && pass || fail "created by type: $created"
sum=0
while IFS=: read -r type n; do
    as "$CENSUS" "$BASE/fhir/$type?_summary=count"
    expect_eq "$(total)" "$n" "$type: as many in the store as seed reported"
    sum=$((sum + n))
done <<< "$created"
expect_eq "$sum" "$(printf '%s' "$head" | json_num resources)" "the total is the sum"

# --- NIRs: read through the API, searchable ------------------------------------------------------
nir_of() { sed -n 's/.*"urn:oid:1.2.250.1.213.1.4.8","value":"\([0-9AB]*\)".*/\1/p'; }
# The control key, recomputed here: 97 - (the 13 characters mod 97), with
# Corsica's 2A and 2B counted as 19 and 18.
nir_ok() {
    local nir=$1 digits
    [ "${#nir}" -eq 15 ] || return 1
    case "${nir:0:1}" in 1|2) ;; *) return 1 ;; esac
    digits=$(printf '%s' "${nir:0:13}" | sed 's/^\(.....\)2A/\119/; s/^\(.....\)2B/\118/')
    [ "$((10#${nir:13:2}))" -eq "$((97 - 10#$digits % 97))" ]
}
nir_ok 185057800608491 && pass || fail "nir_ok refuses a valid NIR"
nir_ok 285122B04503966 && pass || fail "nir_ok refuses a valid Bastia NIR (2B counts as 18)"
nir_ok 185057800608492 && fail "nir_ok accepts a wrong key" || pass
nir_ok 1850578006084910 && fail "nir_ok accepts a wrong length" || pass
NIR0=$(curl -s -H "Authorization: Bearer $DOC" "$BASE/fhir/Patient/$IN_CARE" | nir_of)
NIR1=$(curl -s -H "Authorization: Bearer $CENSUS" "$BASE/fhir/Patient/$OUTSIDE" | nir_of)
nir_ok "$NIR0" && pass || fail "the NIR of the patient in care: '$NIR0'"
nir_ok "$NIR1" && pass || fail "the NIR of the other patient: '$NIR1'"
as "$CENSUS" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C$NIR1"
expect_eq "$(total)" "1" "search by NIR"
expect_contains "$BODY" "\"id\":\"$OUTSIDE\"" "the NIR finds its patient"

# --- search by family name ------------------------------------------------------------------------
urlenc() { printf '%s' "$1" | sed 's/ /%20/g; s/\x27/%27/g'; }
as "$DOC" "$BASE/fhir/Patient?family=$(urlenc "$FAMILY")"
expect_eq "$STATUS" "200" "family search"
expect_contains "$BODY" "\"id\":\"$IN_CARE\"" "the clinician finds its patient by family name"
OTHER=$(curl -s -H "Authorization: Bearer $CENSUS" "$BASE/fhir/Patient/$OUTSIDE")
OTHER_Q="family=$(urlenc "$(printf '%s' "$OTHER" | sed -n 's/.*"family":"\([^"]*\)".*/\1/p')")"
OTHER_Q="$OTHER_Q&birthdate=$(printf '%s' "$OTHER" | sed -n 's/.*"birthDate":"\([^"]*\)".*/\1/p')"
as "$DOC" "$BASE/fhir/Patient?$OTHER_Q"
expect_eq "$STATUS $(total)" "200 0" "a patient outside the care team is not found"
as "$CENSUS" "$BASE/fhir/Patient?$OTHER_Q"
expect_contains "$BODY" "\"id\":\"$OUTSIDE\"" "the census account finds it"

# --- the same seed makes the same people; another seed other people -------------------------------
person() {  # STORE KEY ID -> "family|given|birthDate|NIR"
    "$MEDVAULT" resource get "Patient/$3" --data "$1" --key-file "$2" | tr -d '\n' |
        sed -n 's/.*"value":"\([0-9AB]\{15\}\)".*"family":"\([^"]*\)","given":\["\([^"]*\)".*"birthDate":"\([^"]*\)".*/\2|\3|\4|\1/p'
}
D1=$D K1=$K
new_store same
run 0 "$MEDVAULT" seed --patients 2 --staff 6 --seed 4242 --json --data "$D" --key-file "$K"
SAME0=$(printf '%s\n' "$OUT" | head -1 | json_get patient_in_care)
SAME1=$(printf '%s\n' "$OUT" | head -1 | json_get patient_not_in_care)
new_store other
run 0 "$MEDVAULT" seed --patients 2 --staff 6 --seed 4243 --json --data "$D" --key-file "$K"
OTHER0=$(printf '%s\n' "$OUT" | head -1 | json_get patient_in_care)
kill -TERM $PID; wait $PID
A0=$(person "$D1" "$K1" "$IN_CARE") A1=$(person "$D1" "$K1" "$OUTSIDE")
[ -n "$A0" ] && [ -n "$A1" ] && pass || fail "patients read back: '$A0' '$A1'"
expect_eq "$(person "$WORK/same" "$WORK/same.key" "$SAME0")" "$A0" "same seed, same patient 0"
expect_eq "$(person "$WORK/same" "$WORK/same.key" "$SAME1")" "$A1" "same seed, same patient 1"
B0=$(person "$WORK/other" "$WORK/other.key" "$OTHER0")
[ -n "$B0" ] && [ "$B0" != "$A0" ] && pass || fail "another seed, another patient: '$B0'"

# --- every NIR has a valid key: all 30, read by the operator CLI --------------------------------------
# (The ids come from the trail: resource ids are not secret.  Through the API
# one account reading every patient is what the detector throttles.)
ids=$(sqlite3 "$D1/medvault.db" "SELECT resources FROM audit WHERE action='fhir.create' AND resources LIKE 'Patient/%'" |
      sed 's|^Patient/\([^/]*\)/.*|\1|')
expect_eq "$(printf '%s\n' "$ids" | grep -c .)" "30" "30 patients created"
bad=0
for id in $ids; do
    nir=$("$MEDVAULT" resource get "Patient/$id" --data "$D1" --key-file "$K1" | nir_of)
    nir_ok "$nir" || { bad=$((bad + 1)); echo "bad NIR '$nir' for Patient/$id" >&2; }
done
expect_eq "$bad" "0" "every NIR has sex 1/2 and the key 97 - (number mod 97)"

# --- the trail holds, and nothing is readable on disk -----------------------------------------------
run 0 "$MEDVAULT" audit verify --data "$D1" --key-file "$K1"
n_created=$(sqlite3 "$D1/medvault.db" "SELECT count(*) FROM audit WHERE action='fhir.create'")
expect_eq "$n_created" "$(printf '%s' "$head" | json_num resources)" "one audit entry per resource"
expect_absent_in_tree "$D1" "$NIR0"
finish
