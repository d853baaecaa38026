#!/usr/bin/env bash
# Hidden and missing alike, in time too: a clinician without a relationship
# reads a hidden patient and ids that do not exist, interleaved; the two
# answers are the same bytes, and their time distributions must not differ
# by more than noise.  And a hidden patient's body is never decrypted.
#
# Why this exists: an attack run told a hidden patient from a missing id by
# time alone (0.53 ms against 0.15 ms median: one probe was enough), because
# a missing id was answered before any decision or audit entry was made.
# Both now do the same work (decision, audit entry, fsync).  The test
# compares medians of interleaved probes, so a slow moment of the machine
# falls on both sides; the bound (a quarter either way) is well inside the
# 3.5x the attack run measured (1.45x here even with curl's own time in
# both), and far outside the 1-2% interleaved medians moved by once fixed.
. "$(dirname "$0")/lib.sh"

api_server t
REG=$(adduser reg service ',"scopes":"system/Patient.cruds"')
DOC=$(adduser drno clinician ',"practitioner":"prac-none"')
req -H "Authorization: Bearer $REG" -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Hiddenberg"}]}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "a patient the clinician has no relationship with"
P=$(printf '%s' "$BODY" | json_get id)

probe() {  # URL -> seconds
    curl -s -o "$WORK/probe.body" -w '%{time_total}' -H "Authorization: Bearer $DOC" "$1"
}
: > "$WORK/hidden"; : > "$WORK/missing"
for i in $(seq 1 120); do
    probe "$BASE/fhir/Patient/$P" >> "$WORK/hidden"; echo >> "$WORK/hidden"
    sed "s/$P/X/" "$WORK/probe.body" > "$WORK/hidden.body"
    M=$(printf 'missing%032d' "$i" | cut -c1-32)
    probe "$BASE/fhir/Patient/$M" >> "$WORK/missing"; echo >> "$WORK/missing"
    sed "s/$M/X/" "$WORK/probe.body" > "$WORK/missing.body"
done
expect_eq "$(cat "$WORK/hidden.body")" "$(cat "$WORK/missing.body")" "the same answer, byte for byte"
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
H=$(median "$WORK/hidden"); M=$(median "$WORK/missing")
echo "read of a hidden patient: median ${H}s; of a missing id: median ${M}s (120 each)"
awk -v h="$H" -v m="$M" 'BEGIN { r = h / m; exit !(r > 0.8 && r < 1.25) }' && pass ||
    fail "hidden ${H}s against missing ${M}s: time tells them apart"

# The same for a search: a name that 24 hidden patients share, against a
# name nobody has.  (The attack run measured 0.87 ms against 0.45 ms with
# six.)  Asking the store about each match (relationships, grants, a read
# transaction for its head) cost ~50 us a match: a ratio near 1.5 here.  A
# listing now reads the caller's relationships and grants once and every
# head in one snapshot: a few us a match remain, a ratio near 1.05.
for i in $(seq 1 24); do
    req -H "Authorization: Bearer $REG" -H 'Content-Type: application/fhir+json' \
        -d '{"resourceType":"Patient","name":[{"family":"Sixfold"}]}' "$BASE/fhir/Patient"
    [ "$STATUS" = 201 ] || fail "hidden namesake $i"
done
: > "$WORK/shared"; : > "$WORK/nobody"
for i in $(seq 1 120); do
    probe "$BASE/fhir/Patient?family=Sixfold" >> "$WORK/shared"; echo >> "$WORK/shared"
    cp "$WORK/probe.body" "$WORK/shared.body"
    probe "$BASE/fhir/Patient?family=Nobodyhere" >> "$WORK/nobody"; echo >> "$WORK/nobody"
    cp "$WORK/probe.body" "$WORK/nobody.body"
done
expect_eq "$(sed 's/"id":"[^"]*"//; s/family=[A-Za-z]*//g' "$WORK/shared.body")" \
    "$(sed 's/"id":"[^"]*"//; s/family=[A-Za-z]*//g' "$WORK/nobody.body")" \
    "the same empty searchset, but for its id and the name asked"
S=$(median "$WORK/shared"); N=$(median "$WORK/nobody")
echo "search matching 24 hidden patients: median ${S}s; matching none: median ${N}s (120 each)"
# Under AddressSanitizer every C instruction of the per-match work costs a
# few times more while curl's share does not: the ratio is the release
# build's to meet (both runs of make test build the same code).
if [ "$(ldd "$MEDVAULT" 2>/dev/null | grep -c libasan)" -gt 0 ]; then
    echo "(sanitizer build: the search ratio is measured, not bounded)"
else
    awk -v h="$S" -v m="$N" 'BEGIN { r = h / m; exit !(r > 0.8 && r < 1.25) }' && pass ||
        fail "24 hidden matches ${S}s against none ${N}s: time tells them apart"
fi

# Decided before decrypted: a hidden patient's body is never opened, by a
# read or a search.  Seen from outside: with its ciphertext damaged, the
# clinician still gets the plain 404 (and an empty search), while the
# service account that may read it gets the integrity error.
sqlite3 "$D/medvault.db" "UPDATE resources SET body = CAST(substr(body, 1, 39) ||
    CASE WHEN substr(body, 40, 1) = X'00' THEN X'01' ELSE X'00' END || substr(body, 41) AS BLOB)
    WHERE type = 'Patient' AND id = '$P'" || fail "damage the hidden patient's body"
req -H "Authorization: Bearer $DOC" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "404" "a hidden patient with a damaged body: still the plain 404"
req -H "Authorization: Bearer $DOC" "$BASE/fhir/Patient?family=Hiddenberg"
expect_eq "$STATUS" "200" "a search matching it: answered"
expect_contains "$BODY" '"total":0' "a search matching it: nothing disclosed"
req -H "Authorization: Bearer $REG" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "500" "the damage is real: the permitted reader's decryption fails"

# Every probe, missing ones included, is in the trail.
n=$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM audit WHERE action = 'fhir.read' AND actor LIKE 'user:%' AND outcome = 'failure: not found'")
expect_eq "$n" "120" "each missing read has its audit entry"
expect_eq "$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM audit WHERE resources LIKE '%missing0%'")" "0" \
    "the ids that name nothing (whatever the client typed) stay out of the trail"
finish
