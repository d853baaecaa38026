#!/usr/bin/env bash
# The detector never stands between a care giver and its own patients, over
# the API, with the default detection and nobody's baseline yet (a hospital
# on its first day):
#   - a clinician loads its ward census (its care teams' patients) and reads
#     each of up to 25 of them, three rounds in about half a minute, as an
#     EHR client does at the start of rounds: every read answered, no alert;
#   - a nurse hands over her unit (up to 60 of her patients, listed in full
#     pages of 50 and each read) at the start and at the end of her shift:
#     nothing refused, no alert;
#   - an emergency physician, new, reads 15 patients who just arrived, whose
#     in-progress Encounters an admission feed wrote naming it: every read
#     answered, no alert -- and the feed's 15 writes raise none either;
#   - the same physician reading a 16th patient nobody assigned to it is
#     hidden (the policy: break-the-glass is needed), so what is silent is
#     the explained work, not everything;
#   - a new radiologist works a worklist of 40 patients assigned by active
#     ServiceRequests naming it as performer, and a new pharmacist a queue of
#     20 open verification Tasks it owns: every read answered, no alert; a
#     patient whose order is completed, or outside the list, is hidden;
#   - the daily review (GET /api/review) lists the day's reading with its
#     reasons, for security officers only.
. "$(dirname "$0")/lib.sh"

new_store c
run 0 "$MEDVAULT" seed --patients 160 --staff 4 --seed 21 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/seed.json"
account() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }
PW2="an emergency physician's passphrase"
printf '%s\n' "$PW2" | "$MEDVAULT" user add --username ed-doc --role clinician \
    --practitioner prac-ed-1 --json --data "$D" --key-file "$K" > "$WORK/ed.json" 2>/dev/null ||
    fail "the emergency physician"
printf '%s\n' "$PW2" | "$MEDVAULT" user add --username adt-feed --role service \
    --scopes "system/Encounter.c" --json --data "$D" --key-file "$K" > "$WORK/adt.json" 2>/dev/null ||
    fail "the admission feed"
printf '%s\n' "$PW2" | "$MEDVAULT" user add --username radiologist --role clinician \
    --practitioner prac-rad-1 --json --data "$D" --key-file "$K" > "$WORK/rad.json" 2>/dev/null ||
    fail "the radiologist"
printf '%s\n' "$PW2" | "$MEDVAULT" user add --username pharmacist --role clinician \
    --practitioner prac-pharm-1 --json --data "$D" --key-file "$K" > "$WORK/pharm.json" 2>/dev/null ||
    fail "the pharmacist"
printf '%s\n' "$PW2" | "$MEDVAULT" user add --username order-feed --role service \
    --scopes "system/ServiceRequest.cu system/Task.cu" --json --data "$D" --key-file "$K" \
    > "$WORK/orders.json" 2>/dev/null || fail "the order feed"
printf 'detect = on\n' > "$WORK/on.conf"
api_serve "$WORK/on.conf"
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
status_of() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$2"; }
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }

DOC=$(login demo-clinician "$(account demo-clinician password)" "$(account demo-clinician secret)")
SEC=$(login demo-security "$(account demo-security password)" "$(account demo-security secret)")
[ -n "$DOC" ] && [ -n "$SEC" ] && pass || fail "the seeded clinician and security officer log in"
PRAC=$("$MEDVAULT" user show demo-clinician --json --data "$D" --key-file "$K" | json_get practitioner)

# --- the ward census, three rounds ------------------------------------------------------
# census: every page of its care teams (a new account gets small pages).
census() {
    local url="$BASE/fhir/CareTeam?participant=Practitioner/$PRAC&status=active&_count=100" pages=0
    : > "$WORK/teams"
    while [ -n "$url" ] && [ $pages -lt 20 ]; do
        as "$DOC" "$url"
        [ "$STATUS" = 200 ] || { echo "census page: $STATUS" >&2; return 1; }
        printf '%s' "$BODY" >> "$WORK/teams"
        url=$(printf '%s' "$BODY" | grep -o '"relation":"next","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
        pages=$((pages + 1))
    done
}
census && pass || fail "the census: its care teams"
grep -o '"subject":{"reference":"Patient/[^"]*"' "$WORK/teams" |
    sed 's/.*Patient\///; s/"$//' | sort -u | head -n 25 > "$WORK/ward"
N=$(grep -c . "$WORK/ward")
[ "$N" -ge 15 ] && pass || fail "too few patients in the demo clinician's care: $N"
refused=0
for round in 1 2 3; do
    while read -r p; do
        [ "$(status_of "$DOC" "$BASE/fhir/Patient/$p")" = 200 ] || refused=$((refused + 1))
    done < "$WORK/ward"
    census || refused=$((refused + 1))
    sleep 5
done
expect_eq "$refused" "0" "$N patients x 3 rounds and the lists: nothing refused"

# --- a nurse's shift handover: her whole unit, twice -------------------------------------
NURSE=$(login demo-nurse "$(account demo-nurse password)" "$(account demo-nurse secret)")
[ -n "$NURSE" ] && pass || fail "the seeded nurse logs in"
unit() {  # pages of Patient?_count=50: her patients (the policy lists only those)
    local url="$BASE/fhir/Patient?_count=50" pages=0
    : > "$WORK/unit.json"
    while [ -n "$url" ] && [ $pages -lt 20 ]; do
        as "$NURSE" "$url"
        [ "$STATUS" = 200 ] || { echo "unit page: $STATUS" >&2; return 1; }
        printf '%s\n' "$BODY" >> "$WORK/unit.json"
        [ $pages -eq 0 ] && printf '%s' "$BODY" | grep -o '"fullUrl"' | wc -l > "$WORK/first-page"
        url=$(printf '%s' "$BODY" | grep -o '"relation":"next","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
        pages=$((pages + 1))
    done
}
refused=0
for handover in start end; do
    unit || refused=$((refused + 1))
    grep -o '"fullUrl":"[^"]*Patient/[^"]*"' "$WORK/unit.json" |
        sed 's/.*Patient\///; s/"$//' | sort -u | head -n 60 > "$WORK/unit"
    while read -r p; do
        [ "$(status_of "$NURSE" "$BASE/fhir/Patient/$p")" = 200 ] || refused=$((refused + 1))
    done < "$WORK/unit"
done
U=$(grep -c . "$WORK/unit")
[ "$U" -ge 20 ] && pass || fail "too few patients in the demo nurse's unit: $U"
expect_eq "$refused" "0" "the nurse's handover of $U patients, twice: nothing refused"
want=$(( U < 50 ? U : 50 ))
expect_eq "$(tr -d ' ' < "$WORK/first-page")" "$want" "full pages of her own patients, from her first day"

# --- the emergency department ------------------------------------------------------------
ADT=$(login adt-feed "$PW2" "$(json_get secret < "$WORK/adt.json")")
ED=$(login ed-doc "$PW2" "$(json_get secret < "$WORK/ed.json")")
sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'" |
    grep -v -x -F -f "$WORK/ward" | head -n 16 > "$WORK/arrivals"
head -n 15 "$WORK/arrivals" > "$WORK/assigned"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
failed=0
while read -r p; do
    as "$ADT" -H 'Content-Type: application/fhir+json' -d "{\"resourceType\":\"Encounter\",\"status\":\"in-progress\",\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"EMER\"},\"subject\":{\"reference\":\"Patient/$p\"},\"participant\":[{\"individual\":{\"reference\":\"Practitioner/prac-ed-1\"}}],\"period\":{\"start\":\"$now\"}}" "$BASE/fhir/Encounter"
    [ "$STATUS" = 201 ] || { failed=$((failed + 1)); echo "encounter: $STATUS $BODY" >&2; }
done < "$WORK/assigned"
expect_eq "$failed" "0" "15 arrivals written by the admission feed"
refused=0
while read -r p; do
    [ "$(status_of "$ED" "$BASE/fhir/Patient/$p")" = 200 ] || refused=$((refused + 1))
    [ "$(status_of "$ED" "$BASE/fhir/Encounter?subject=Patient/$p")" = 200 ] || refused=$((refused + 1))
done < "$WORK/assigned"
expect_eq "$refused" "0" "the new emergency physician reads its 15 arrivals: nothing refused"
s=$(status_of "$ED" "$BASE/fhir/Patient/$(sed -n 16p "$WORK/arrivals")")
expect_eq "$s" "404" "a patient nobody assigned to it is hidden (break-the-glass needed)"

# --- a radiology worklist and a pharmacy queue ----------------------------------------------
FEED=$(login order-feed "$PW2" "$(json_get secret < "$WORK/orders.json")")
RAD=$(login radiologist "$PW2" "$(json_get secret < "$WORK/rad.json")")
PHARM=$(login pharmacist "$PW2" "$(json_get secret < "$WORK/pharm.json")")
[ -n "$FEED" ] && [ -n "$RAD" ] && [ -n "$PHARM" ] && pass || fail "the order feed, radiologist and pharmacist log in"
sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'" |
    grep -v -x -F -f "$WORK/ward" | grep -v -x -F -f "$WORK/arrivals" | head -n 62 > "$WORK/others"
head -n 40 "$WORK/others" > "$WORK/worklist"
sed -n 41,60p "$WORK/others" > "$WORK/queue"
failed=0
while read -r p; do
    as "$FEED" -H 'Content-Type: application/fhir+json' -d "{\"resourceType\":\"ServiceRequest\",\"status\":\"active\",\"intent\":\"order\",\"code\":{\"text\":\"chest X-ray\"},\"subject\":{\"reference\":\"Patient/$p\"},\"performer\":[{\"reference\":\"Practitioner/prac-rad-1\"}]}" "$BASE/fhir/ServiceRequest"
    [ "$STATUS" = 201 ] || { failed=$((failed + 1)); echo "order: $STATUS $BODY" >&2; }
    [ -s "$WORK/first-order" ] || printf '%s' "$BODY" | json_get id > "$WORK/first-order"
done < "$WORK/worklist"
while read -r p; do
    as "$FEED" -H 'Content-Type: application/fhir+json' -d "{\"resourceType\":\"Task\",\"status\":\"requested\",\"intent\":\"order\",\"description\":\"verify the new prescription\",\"for\":{\"reference\":\"Patient/$p\"},\"owner\":{\"reference\":\"Practitioner/prac-pharm-1\"}}" "$BASE/fhir/Task"
    [ "$STATUS" = 201 ] || { failed=$((failed + 1)); echo "task: $STATUS $BODY" >&2; }
done < "$WORK/queue"
expect_eq "$failed" "0" "40 orders and 20 tasks written by the order feed"
refused=0
while read -r p; do
    [ "$(status_of "$RAD" "$BASE/fhir/Patient/$p")" = 200 ] || refused=$((refused + 1))
    [ "$(status_of "$RAD" "$BASE/fhir/ServiceRequest?subject=Patient/$p")" = 200 ] || refused=$((refused + 1))
done < "$WORK/worklist"
expect_eq "$refused" "0" "the new radiologist reads its 40-patient worklist: nothing refused"
refused=0
while read -r p; do
    [ "$(status_of "$PHARM" "$BASE/fhir/Patient/$p")" = 200 ] || refused=$((refused + 1))
done < "$WORK/queue"
expect_eq "$refused" "0" "the new pharmacist reads its 20 queued patients: nothing refused"
s=$(status_of "$RAD" "$BASE/fhir/Patient/$(sed -n 61p "$WORK/others")")
expect_eq "$s" "404" "a patient outside the worklist is hidden"
s=$(status_of "$PHARM" "$BASE/fhir/Patient/$(head -n 1 "$WORK/worklist")")
expect_eq "$s" "404" "the radiologist's order does not open the patient to the pharmacist"
# an order completed explains nothing any more
first=$(head -n 1 "$WORK/worklist")
sr=$(cat "$WORK/first-order")
as "$FEED" -X PUT -H 'Content-Type: application/fhir+json' -d "{\"resourceType\":\"ServiceRequest\",\"id\":\"$sr\",\"status\":\"completed\",\"intent\":\"order\",\"code\":{\"text\":\"chest X-ray\"},\"subject\":{\"reference\":\"Patient/$first\"},\"performer\":[{\"reference\":\"Practitioner/prac-rad-1\"}]}" "$BASE/fhir/ServiceRequest/$sr"
expect_eq "$STATUS" "200" "the order feed completes an order"
sleep 3
s=$(status_of "$RAD" "$BASE/fhir/Patient/$first")
expect_eq "$s" "404" "once its order is completed, the patient is hidden again"

# --- the daily review ranks the day's reading, refusing nothing -------------------------------
as "$SEC" "$BASE/api/review?count=50"
expect_eq "$STATUS" "200" "security reads the daily review"
rad=$(printf '%s' "$BODY" | grep -o '{"actor":"[^}]*"username":"radiologist"[^}]*}')
expect_contains "$rad" '"patients_24h":40' "the radiologist's 40 worklist patients are in the review"
expect_contains "$rad" "times its role's usual" "with the reason in words"
expect_not_contains "$BODY" '"username":"order-feed"' "writes are no reading"
as "$SEC" "$BASE/api/review?count=0"
expect_eq "$STATUS" "400" "count out of range"
as "$DOC" "$BASE/api/review"
expect_eq "$STATUS" "403" "the review is for security officers"

# --- and nobody was alerted on ------------------------------------------------------------
as "$SEC" "$BASE/api/alerts"
expect_eq "$STATUS" "200" "security reads the alerts"
for who in demo-clinician demo-nurse ed-doc adt-feed radiologist pharmacist order-feed; do
    expect_not_contains "$BODY" "\"actor_username\":\"$who\"" "no alert names $who"
done

finish
