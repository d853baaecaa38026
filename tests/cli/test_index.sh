#!/usr/bin/env bash
# What a stolen database's blind index still shows, and that answers stay
# exact although it shows less.  A store of 200 patients (distinct family
# names and birth dates, every other one female) and 150 observations of
# distinct codes.  Read with sqlite3 as a thief would: no token of gender,
# active or status exists; every clinical token is cut to its width (names
# and dates 12 bits, codes 10), so equal tokens no longer mean equal values
# (some code bucket holds several codes).  Through the API every search is
# still exact: each family:exact and each code finds its one resource,
# gender=female finds the 100 women, a multi-word phrase only its own.
# `medvault leak check` with every family name paired with every other
# patient's birth date names nobody (the truncated index proposes pairs,
# the bodies refuse them); the right pairs name each patient.  A store
# indexed under an older format is re-indexed when it is next opened.
. "$(dirname "$0")/lib.sh"

api_server s
DB="$D/medvault.db"
REG=$(adduser registrar service ',"scopes":"system/Patient.cruds system/Observation.cruds"')
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
# Patient i's birth date: 1950-01-01 plus 37 days per i (computed once).
BIRTHS=($(for i in $(seq 0 199); do date -u -d "1950-01-01 + $((i * 37)) days" +%Y-%m-%d; done))
birth() { printf '%s' "${BIRTHS[$((10#$1))]}"; }

# --- 200 patients, 150 observations, in one transaction (ids pat-NNN, obs-NNN) ------------
{
    printf '{"resourceType":"Bundle","type":"transaction","entry":['
    for i in $(seq -w 0 199); do
        g=male; [ $(( 10#$i % 2 )) = 1 ] && g=female
        printf '{"resource":{"resourceType":"Patient","id":"pat-%s","gender":"%s","active":true,"name":[{"family":"Fam%s Ozanne","given":["G%s"]}],"birthDate":"%s"},"request":{"method":"PUT","url":"Patient/pat-%s"}},' \
            "$i" "$g" "$i" "$i" "$(birth "$i")" "$i"
    done
    for i in $(seq -w 0 149); do
        printf '{"resource":{"resourceType":"Observation","id":"obs-%s","status":"final","code":{"coding":[{"system":"urn:test:codes","code":"c%s"}]},"subject":{"reference":"Patient/pat-000"}},"request":{"method":"PUT","url":"Observation/obs-%s"}}%s' \
            "$i" "$i" "$i" "$([ "$i" = 149 ] || echo ,)"
    done
    printf ']}'
} > "$WORK/load.json"
as "$REG" "${FJ[@]}" --data-binary "@$WORK/load.json" "$BASE/fhir"
expect_eq "$STATUS" "200" "the transaction: 200 patients, 150 observations"
expect_eq "$(printf '%s' "$BODY" | grep -o '"status":"201 Created"' | wc -l)" "350" "every entry created"

# --- the stolen file ------------------------------------------------------------------------
q() { sqlite3 "$DB" "$1"; }
expect_eq "$(q "SELECT count(*) FROM search_index WHERE type = 'Patient' AND param IN ('gender', 'active')")" \
    "0" "no token tells a patient's gender or activity"
expect_eq "$(q "SELECT count(*) FROM search_index WHERE type = 'Observation' AND param = 'status'")" \
    "0" "no token tells an observation's status"
expect_eq "$(q "SELECT count(*) FROM search_index WHERE type NOT LIKE '\_%' ESCAPE '\' AND length(token) > 4")" \
    "0" "no clinical token is longer than 32 bits"
expect_eq "$(q "SELECT count(*) FROM search_index WHERE type = 'Patient' AND param IN ('family', 'birthdate') AND (length(token) != 2 OR substr(hex(token), 4, 1) != '0')")" \
    "0" "names and dates: 12-bit tokens"
expect_eq "$(q "SELECT count(*) FROM search_index WHERE type = 'Observation' AND param = 'code' AND (length(token) != 2 OR substr(hex(token), 3, 2) NOT IN ('00', '40', '80', 'C0'))")" \
    "0" "codes: 10-bit tokens"
# 150 codes, each indexed as "system|code" and "*|code": 300 values in at most
# 1,024 buckets share some (about 40 pairs expected; none: p < 1e-17).
SHARED=$(q "SELECT count(*) FROM (SELECT token FROM search_index WHERE type = 'Observation' AND param = 'code' GROUP BY token HAVING count(DISTINCT id) BETWEEN 2 AND 149)")
[ "$SHARED" -gt 0 ] && pass || fail "no code bucket is shared: equal tokens still mean equal codes"

# --- exact answers all the same -----------------------------------------------------------
# Without the bodies' check, 60 names would bring about 20 bucket-mates, 60
# codes about 10: each is absent.
wrong=0
for i in $(seq -f %03g 0 59); do
    as "$REG" "$BASE/fhir/Patient?family:exact=Fam$i%20Ozanne"
    [ "$(total)" = 1 ] && printf '%s' "$BODY" | grep_q "\"id\":\"pat-$i\"" || wrong=$((wrong + 1))
done
expect_eq "$wrong" "0" "each family:exact finds its one patient, no bucket-mate"
wrong=0
for i in $(seq -f %03g 0 59); do
    as "$REG" "$BASE/fhir/Observation?code=urn:test:codes|c$i"
    [ "$(total)" = 1 ] && printf '%s' "$BODY" | grep_q "\"id\":\"obs-$i\"" || wrong=$((wrong + 1))
    as "$REG" "$BASE/fhir/Observation?code=$(printf c%03d $((10#$i + 60)))&_summary=count"
    [ "$(total)" = 1 ] || wrong=$((wrong + 1))
done
expect_eq "$wrong" "0" "each code finds its one observation, with and without a system"
as "$REG" "$BASE/fhir/Patient?gender=female&_summary=count"
expect_eq "$STATUS $(total)" "200 100" "gender (not indexed) answered from the bodies: the 100 women"
as "$REG" "$BASE/fhir/Patient?gender=female&family=Fam001&_summary=count"
expect_eq "$(total)" "1" "gender with a name"
as "$REG" "$BASE/fhir/Patient?gender=male&family=Fam001&_summary=count"
expect_eq "$(total)" "0" "the wrong gender with a name"
as "$REG" "$BASE/fhir/Observation?status=final&_summary=count"
expect_eq "$(total)" "150" "status (not indexed) answered from the bodies"
as "$REG" "$BASE/fhir/Patient?family=Fam042%20Oz"
expect_eq "$(total)" "1" "a phrase: only its own patient"
as "$REG" "$BASE/fhir/Patient?family=Fam042%20Oy"
expect_eq "$(total)" "0" "a phrase that no name holds"

# --- leak tracing does not name a bucket-mate ----------------------------------------------
{
    echo "family,given,birth_date"
    for i in $(seq -f %03g 0 39); do
        for j in $(seq 0 199); do
            [ "$((10#$i))" = "$j" ] || echo "Fam$i Ozanne,G$i,${BIRTHS[$j]}"
        done
    done
} > "$WORK/crossed.csv"
run 0 "$MEDVAULT" leak check "$WORK/crossed.csv" --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"matched_rows":0' "7,960 crossed name and birth-date rows name nobody"
{
    echo "family,given,birth_date"
    for i in $(seq -w 0 199); do echo "Fam$i Ozanne,G$i,$(birth "$i")"; done
} > "$WORK/right.csv"
run 1 "$MEDVAULT" leak check "$WORK/right.csv" --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"matched_rows":200' "the 200 right pairs name their patients"

# --- an older index format is rebuilt on open ----------------------------------------------
api_stop
q "DELETE FROM search_index WHERE type NOT LIKE '\_%' ESCAPE '\'; DELETE FROM meta WHERE key = 'fhir_index_version'"
api_serve "$WORK/nodetect.conf"
FORMAT=$(sed -n 's/.*search index rebuilt (format \([0-9]*\), 350 resources).*/\1/p' "$WORK/serve.err")
[ -n "$FORMAT" ] && pass || fail "no rebuild notice: $(cat "$WORK/serve.err")"
expect_eq "$(q "SELECT value FROM meta WHERE key = 'fhir_index_version'")" "$FORMAT" "the format is recorded"
as "$REG" "$BASE/fhir/Patient?family:exact=Fam123%20Ozanne"
expect_eq "$(total)" "1" "found again after the rebuild"
api_stop
api_serve "$WORK/nodetect.conf"
grep_q "rebuilt" "$WORK/serve.err" && fail "rebuilt again on a current store" || pass

finish
