#!/usr/bin/env bash
# The FHIR REST core end to end: read, vread, create, update (If-Match),
# delete (then 410), history, the CapabilityStatement; the deny-by-default
# policy on real accounts (care team, no relationship, break-the-glass,
# admin/security separation, a patient's own record, nurse limits, service
# scopes); every decision audited; nothing readable in the database files.
. "$(dirname "$0")/lib.sh"

api_server f
REG=$(adduser reg service ',"scopes":"system/Patient.cruds system/CareTeam.cruds system/Practitioner.cruds system/Observation.rs"')
HOUSE=$(adduser drhouse clinician ',"practitioner":"prac-1"')
WHO=$(adduser drwho clinician ',"practitioner":"prac-2"')
NURSE=$(adduser nurse1 nurse ',"practitioner":"prac-3"')
SEC=$(adduser sec security)
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }

# --- CapabilityStatement (public) ------------------------------------------------
req "$BASE/fhir/metadata"
expect_eq "$STATUS" "200" "metadata"
expect_contains "$BODY" '"resourceType":"CapabilityStatement"' "CapabilityStatement"
expect_contains "$BODY" '"type":"Observation"' "lists Observation"
expect_contains "$BODY" '"search-type"' "claims search"
expect_contains "$BODY" '{"name":"family","type":"string"}' "lists Patient.family"

# --- a service account registers a patient and a care team --------------------------
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Zyxwarowska","given":["Élodie"]}],"birthDate":"1985-05-12","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"1850578006084 91"}]}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "service creates a Patient"
P=$(printf '%s' "$BODY" | json_get id)
grep -qi "^location: /fhir/Patient/$P/_history/1" "$WORK/headers" && pass || fail "Location"
grep -qi '^etag: W/"1"' "$WORK/headers" && pass || fail "ETag"
expect_contains "$BODY" '"versionId":"1"' "meta.versionId"
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Quillebeuf"}]}' "$BASE/fhir/Patient"
P2=$(printf '%s' "$BODY" | json_get id)
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"subject\":{\"reference\":\"Patient/$P\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-1\"}},{\"member\":{\"reference\":\"Practitioner/prac-3\"}}]}" "$BASE/fhir/CareTeam"
expect_eq "$STATUS" "201" "service creates a CareTeam"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"period\":{\"end\":\"2020-01-01\"},\"subject\":{\"reference\":\"Patient/$P2\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-1\"}}]}" "$BASE/fhir/CareTeam"
expect_eq "$STATUS" "201" "an expired care team"

# --- who may read the patient ----------------------------------------------------------
as "$HOUSE" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "200" "care team member reads"
expect_contains "$BODY" "Zyxwarowska" "the record comes back decrypted"
as "$HOUSE" "$BASE/fhir/Patient/$P2"
expect_eq "$STATUS" "404" "expired care team: hidden"
as "$WHO" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "404" "no relationship: hidden as not found"
as "$WHO" "$BASE/fhir/Patient/does-not-exist"
NOT_FOUND_BODY=$BODY
as "$WHO" "$BASE/fhir/Patient/$P"
expect_eq "$(printf '%s' "$BODY" | sed "s/$P/X/")" "$(printf '%s' "$NOT_FOUND_BODY" | sed 's/does-not-exist/X/')" \
    "a hidden patient answers exactly like a missing one"
as "$WHO" -H 'X-Break-Glass-Reason: urgent' "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "403" "break-the-glass reason too short"
as "$WHO" -H 'X-Break-Glass-Reason: unconscious in the ER, no relative reachable' "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "200" "break-the-glass"
as "$WHO" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "200" "the break-the-glass grant lasts"
as "$WHO" "$BASE/fhir/Patient/$P2"
expect_eq "$STATUS" "404" "the grant is for one patient only"

# --- break-the-glass stays break-the-glass ---------------------------------------------
# Under its grant drwho writes a care team naming itself: that relationship
# explains none of its own reads (they still carry purpose BTG) until
# someone else -- here the registration service -- writes it again.
purpose_of_last() {  # the audit purpose of the last request ("" when none)
    local rid
    rid=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([0-9a-f]*\).*/\1/p' "$WORK/headers")
    sqlite3 "$D/medvault.db" "SELECT ifnull(purpose,'') FROM audit WHERE request_id='$rid'"
}
SELF_TEAM="{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"subject\":{\"reference\":\"Patient/$P\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-2\"}}]}"
as "$WHO" "${FJ[@]}" -d "$SELF_TEAM" "$BASE/fhir/CareTeam"
expect_eq "$STATUS" "201" "under its grant, a clinician writes a care team naming itself"
SELF_CT=$(printf '%s' "$BODY" | json_get id)
expect_contains "$BODY" '"system":"urn:medvault:btg-unconfirmed","code":"prac-2"' \
    "the care team is labelled as written under break-the-glass by its author"
as "$WHO" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "200" "still readable under the grant"
case $(purpose_of_last) in BTG*) pass ;; *) fail "a read after the self-made care team lost purpose BTG: '$(purpose_of_last)'" ;; esac
as "$REG" "$BASE/fhir/CareTeam/$SELF_CT"
TEAM_AS_READ=$BODY
expect_contains "$TEAM_AS_READ" "btg-unconfirmed" "others see the label"
as "$REG" -X PUT "${FJ[@]}" -d "$TEAM_AS_READ" "$BASE/fhir/CareTeam/$SELF_CT"
expect_eq "$STATUS" "200" "the registration service confirms the care team"
expect_not_contains "$BODY" "btg-unconfirmed" "confirmed: the label is gone, though the body carried it"
as "$WHO" "$BASE/fhir/Patient/$P"
expect_eq "$(purpose_of_last)" "" "once confirmed by someone else, the care team explains the read"
as "$ADMIN" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "403" "admin reads no clinical data"
as "$SEC" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "403" "security reads no clinical data"
req "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "401" "no token"

# --- writes: validation, compartment, nurse limits --------------------------------------
OBS="{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}],\"text\":\"Glioblastoma follow-up\"},\"subject\":{\"reference\":\"Patient/$P\"},\"valueQuantity\":{\"value\":72,\"unit\":\"/min\"}}"
as "$HOUSE" "${FJ[@]}" -d "$OBS" "$BASE/fhir/Observation"
expect_eq "$STATUS" "201" "clinician records an Observation"
O=$(printf '%s' "$BODY" | json_get id)
# decimals come back as written, not with the binary rounding of a double
as "$HOUSE" "${FJ[@]}" -d "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"temp\"},\"subject\":{\"reference\":\"Patient/$P\"},\"valueQuantity\":{\"value\":36.2,\"unit\":\"Cel\"}}" "$BASE/fhir/Observation"
T=$(printf '%s' "$BODY" | json_get id)
as "$HOUSE" "$BASE/fhir/Observation/$T"
expect_contains "$BODY" '"value":36.2,' "36.2 reads back as 36.2"
as "$HOUSE" -X DELETE "$BASE/fhir/Observation/$T"
expect_eq "$STATUS" "204" "the temperature is deleted again"
as "$HOUSE" "${FJ[@]}" -d '{"resourceType":"Observation","status":"final","code":{"text":"x"}}' "$BASE/fhir/Observation"
expect_eq "$STATUS" "422" "a compartment resource naming no patient"
as "$HOUSE" "${FJ[@]}" -d "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/$P\"},\"valueFoo\":1}" "$BASE/fhir/Observation"
expect_eq "$STATUS" "400" "unknown element"
expect_contains "$BODY" "Observation" "the error names the path"
as "$HOUSE" "${FJ[@]}" -d "$OBS" "$BASE/fhir/Patient"
expect_eq "$STATUS" "400" "resourceType differs from the URL"
as "$HOUSE" -H 'Content-Type: text/plain' -d "$OBS" "$BASE/fhir/Observation"
expect_eq "$STATUS" "415" "wrong media type"
MED="{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\",\"medicationCodeableConcept\":{\"text\":\"temozolomide\"},\"subject\":{\"reference\":\"Patient/$P\"}}"
as "$NURSE" "${FJ[@]}" -d "$MED" "$BASE/fhir/MedicationRequest"
expect_eq "$STATUS" "403" "a nurse cannot prescribe"
as "$HOUSE" "${FJ[@]}" -d "$MED" "$BASE/fhir/MedicationRequest"
expect_eq "$STATUS" "201" "a clinician prescribes"
as "$NURSE" "$BASE/fhir/Observation/$O"
expect_eq "$STATUS" "200" "the nurse in the care team reads"
as "$REG" "$BASE/fhir/MedicationRequest/$(printf '%s' "$BODY" | json_get id)"
as "$REG" "${FJ[@]}" -d "$MED" "$BASE/fhir/MedicationRequest"
expect_eq "$STATUS" "403" "a service outside its scopes"

# --- versions: update with If-Match, vread, history, delete ------------------------------
UPD=$(printf '%s' "$OBS" | sed "s/{\"resourceType\":\"Observation\",/{\"resourceType\":\"Observation\",\"id\":\"$O\",/; s/\"value\":72/\"value\":75/")
as "$HOUSE" "${FJ[@]}" -X PUT -H 'If-Match: W/"1"' -d "$UPD" "$BASE/fhir/Observation/$O"
expect_eq "$STATUS" "200" "update with If-Match"
expect_contains "$BODY" '"versionId":"2"' "version 2"
as "$HOUSE" "${FJ[@]}" -X PUT -H 'If-Match: W/"1"' -d "$UPD" "$BASE/fhir/Observation/$O"
expect_eq "$STATUS" "412" "stale If-Match"
as "$HOUSE" "$BASE/fhir/Observation/$O/_history/1"
expect_eq "$STATUS" "200" "vread"
expect_contains "$BODY" '"value":72' "vread gives the old version"
as "$HOUSE" "$BASE/fhir/Observation/$O/_history"
expect_contains "$BODY" '"type":"history"' "history bundle"
expect_contains "$BODY" '"total":2' "two versions"
as "$WHO" "$BASE/fhir/Observation/$O/_history"
expect_eq "$STATUS" "200" "history under the break-the-glass grant"
as "$HOUSE" -X DELETE "$BASE/fhir/Observation/$O"
expect_eq "$STATUS" "204" "delete"
as "$HOUSE" "$BASE/fhir/Observation/$O"
expect_eq "$STATUS" "410" "read after delete"
as "$HOUSE" "$BASE/fhir/Observation/$O/_history/1"
expect_eq "$STATUS" "200" "older versions stay readable"

# --- a patient reads its own record and nothing else ---------------------------------------
ME=$(adduser elodie patient ",\"patient\":\"$P\"")
as "$ME" "$BASE/fhir/Patient/$P"
expect_eq "$STATUS" "200" "a patient reads its own record"
as "$ME" "$BASE/fhir/Patient/$P2"
expect_eq "$STATUS" "404" "and not another one"

# --- search, from the blind indexes only ---------------------------------------------------
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
as "$HOUSE" "$BASE/fhir/Patient?family=zyxwar"
expect_eq "$STATUS" "200" "search by a name prefix"
expect_eq "$(total)" "1" "one match"
expect_contains "$BODY" "\"id\":\"$P\"" "the patient found"
expect_contains "$BODY" '"type":"searchset"' "a searchset bundle"
as "$HOUSE" "$BASE/fhir/Patient?family:exact=ZYXWAROWSKA"
expect_eq "$(total)" "0" ":exact keeps case (R4; issue 12)"
as "$HOUSE" "$BASE/fhir/Patient?given=elodie"
expect_eq "$(total)" "1" "accent-insensitive"
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Durand","given":["Anne-Marie Claire"]}]}' "$BASE/fhir/Patient"
as "$REG" "$BASE/fhir/Patient?given=marie"
expect_eq "$(total)" "0" "a word inside a value is not its start (R4; issue 12)"
as "$REG" "$BASE/fhir/Patient?given=anne-marie%20cla"
expect_eq "$(total)" "1" "several words from the start of the value"
as "$REG" "$BASE/fhir/Patient?given=anne%20marie"
expect_eq "$(total)" "0" "R4 folds case and accents only: a space is not a hyphen"
as "$REG" "$BASE/fhir/Patient?given=anne-marie%20xyz"
expect_eq "$(total)" "0" "the post-filter drops a wrong later word"
as "$HOUSE" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C1850578006084%2091"
expect_eq "$(total)" "1" "NIR token (normalised)"
as "$HOUSE" "$BASE/fhir/Patient?birthdate=ge1985-01-01&birthdate=le1985-12-31"
expect_eq "$(total)" "1" "date range"
as "$HOUSE" "$BASE/fhir/Patient?birthdate=lt1985-01-01"
expect_eq "$(total)" "0" "date range excluding"
as "$HOUSE" "$BASE/fhir/MedicationRequest?subject=Patient/$P"
expect_eq "$(total)" "1" "reference search"
as "$HOUSE" "$BASE/fhir/Patient?family=quillebeuf"
expect_eq "$STATUS $(total)" "200 0" "a hidden patient is not counted"
as "$REG" "$BASE/fhir/Patient?family=quillebeuf"
expect_eq "$(total)" "1" "the service with system/Patient.s sees it"
as "$REG" "$BASE/fhir/Patient?_count=1"
expect_eq "$(total)" "3" "every patient for the service"
expect_contains "$BODY" '"relation":"next"' "paging link"
as "$REG" "$BASE/fhir/Patient?_summary=count"
expect_not_contains "$BODY" '"entry"' "_summary=count has no entries"
as "$ADMIN" "$BASE/fhir/Patient"
expect_eq "$STATUS" "403" "admin may not search clinical data (separation of duties)"
as "$WHO" "$BASE/fhir/Patient?birthdate=1985-05-12"
expect_eq "$(total)" "1" "search under a break-the-glass grant"
as "$HOUSE" "$BASE/fhir/Patient?shoe-size=42"
expect_eq "$STATUS" "400" "unknown search parameter"
as "$HOUSE" "$BASE/fhir/Patient?_count=100000"
expect_eq "$STATUS" "200" "_count above the maximum is served (issue 12)"
expect_contains "$BODY" "_count=100&" "capped at the maximum page, in the links"
as "$HOUSE" "$BASE/fhir/Patient?_count=-1"
expect_eq "$STATUS" "400" "a negative _count"

# --- Patient/$everything, paged --------------------------------------------------------------
as "$HOUSE" "$BASE/fhir/Patient/$P/\$everything"
expect_eq "$STATUS" "200" "\$everything"
expect_eq "$(total)" "4" "patient, two care teams, prescription (the deleted observation is not)"
as "$HOUSE" "$BASE/fhir/Patient/$P/\$everything?_count=1"
expect_contains "$BODY" '"relation":"next"' "\$everything is paged"
as "$HOUSE" "$BASE/fhir/Patient/$P/\$everything?_count=1000"
expect_eq "$STATUS" "200" "\$everything with a page above the maximum"
expect_contains "$BODY" "_count=100&" "\$everything page size capped"
as "$HOUSE" "$BASE/fhir/Patient/$P/\$everything?_count=0"
expect_eq "$STATUS" "400" "\$everything needs a page of at least one"
as "$HOUSE" "$BASE/fhir/Patient/$P2/\$everything"
expect_eq "$STATUS" "404" "\$everything of a hidden patient"
as "$ADMIN" "$BASE/fhir/Patient/$P/\$everything"
expect_eq "$STATUS" "403" "admin: no \$everything"

# --- the patient's access log: who opened my record? -------------------------------------------
as "$ME" "$BASE/fhir/AuditEvent?patient=$P"
expect_eq "$STATUS" "200" "a patient reads its own access log"
expect_contains "$BODY" '"resourceType":"AuditEvent"' "AuditEvent resources"
expect_contains "$BODY" '"display":"drhouse (clinician)"' "who: the care team's clinician"
expect_contains "$BODY" '"display":"drwho (clinician)"' "who: the break-the-glass clinician"
expect_contains "$BODY" '"code":"BTG"' "break-the-glass shown as BTG"
expect_not_contains "$BODY" "unconscious in the ER" "the patient sees the category, not the reason"
expect_contains "$BODY" '"outcome":"4"' "refused attempts shown too"
expect_not_contains "$BODY" "Zyxwarowska" "no clinical content in the log"
as "$ME" "$BASE/fhir/AuditEvent?patient=$P2"
expect_eq "$STATUS" "404" "not another patient's log"
as "$SEC" "$BASE/fhir/AuditEvent?patient=$P"
expect_contains "$BODY" '"text":"unconscious in the ER, no relative reachable"' \
    "security reads the break-the-glass reason, unsealed from its grant"
as "$SEC" "$BASE/fhir/AuditEvent?patient=$P2"
expect_eq "$STATUS" "200" "security reads any access log"
as "$HOUSE" "$BASE/fhir/AuditEvent?patient=$P"
expect_eq "$STATUS" "403" "a clinician does not read the access log"
as "$SEC" "$BASE/fhir/AuditEvent"
expect_eq "$STATUS" "400" "the access log is searched by patient"
as "$SEC" "${FJ[@]}" -d '{"resourceType":"AuditEvent"}' "$BASE/fhir/AuditEvent"
expect_eq "$STATUS" "405" "AuditEvents are never written through the API"

# --- the trail: every decision, with patient and purpose -------------------------------------
kill -TERM $PID; wait $PID
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
trail=$(sqlite3 "$D/medvault.db" "SELECT action||' '||outcome||' '||ifnull(patient,'-')||' '||ifnull(purpose,'-') FROM audit WHERE action LIKE 'fhir.%'")
expect_contains "$trail" "fhir.read success $P" "granted reads audited with the patient"
expect_contains "$trail" "fhir.read denied: " "denied reads audited"
expect_contains "$trail" "BTG grant:" "break-the-glass purpose, naming its grant"
expect_not_contains "$(sqlite3 "$D/medvault.db" "SELECT group_concat(ifnull(purpose,'') || ' ' || outcome) FROM audit")" \
    "unconscious" "the reason (free text, often clinical) is not in the trail"
expect_absent_in_tree "$D" "unconscious in the ER"
expect_contains "$trail" "fhir.create success $P" "creates audited"
expect_contains "$trail" "fhir.delete success $P" "deletes audited"
expect_contains "$trail" "fhir.everything success $P" "\$everything audited"
expect_contains "$trail" "fhir.search success: Patient?family $P" "searches audited per disclosed patient"
expect_not_contains "$trail" "zyxwar" "query values stay out of the trail"
for s in Zyxwarowska "Élodie" 1850578006084 Glioblastoma temozolomide; do
    expect_absent_in_tree "$D" "$s"
done
finish
