#!/usr/bin/env bash
# Searches that follow references -- chained parameters (several levels),
# reverse chaining (_has), _include, _revinclude and :iterate -- give the
# right answers, and none of them reaches a patient the caller could not
# read directly:
#   - a clinician whose care team holds patient A, not patient B: a chain on
#     B's name, _has on B's observations, an _include of B, a _revinclude
#     from B find nothing of B; the same on A work;
#   - a service with system scopes sees both;
#   - included resources are in the Bundle with search.mode "include" and
#     in the audit trail as disclosed;
#   - compartment search (Patient/ID/Type) and POST Type/_search;
#   - a malformed chain, _has or _include is a 400 naming the problem.
. "$(dirname "$0")/lib.sh"

api_server s
REG=$(adduser reg service ',"scopes":"system/Patient.cruds system/CareTeam.cruds system/Practitioner.cruds system/Observation.cruds system/Organization.cruds"')
DOC=$(adduser drlink clinician ',"practitioner":"prac-link"')
SEC=$(adduser sec security)
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
ids() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/"fullUrl":"//; s/"$//' | sort | tr '\n' ' '; }
sorted() { [ $# -gt 0 ] && printf '%s\n' "$@" | sort | tr '\n' ' '; }
create() {  # TYPE JSON -> prints the id
    as "$REG" "${FJ[@]}" -d "$2" "$BASE/fhir/$1"
    [ "$STATUS" = 201 ] || fail "$1: $STATUS $BODY"
    printf '%s' "$BODY" | json_get id
}

ORG=$(create Organization '{"resourceType":"Organization","name":"Clinique Vauban"}')
GP=$(create Practitioner '{"resourceType":"Practitioner","name":[{"family":"Généraliste"}]}')
A=$(create Patient "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Alliaume\"}],\"managingOrganization\":{\"reference\":\"Organization/$ORG\"},\"generalPractitioner\":[{\"reference\":\"Practitioner/$GP\"}]}")
B=$(create Patient "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Bastide\"}],\"managingOrganization\":{\"reference\":\"Organization/$ORG\"}}")
create CareTeam "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"subject\":{\"reference\":\"Patient/$A\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-link\"}}]}" > /dev/null
obs() { create Observation "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"$2\"}]},\"subject\":{\"reference\":\"Patient/$1\"}}"; }
OA=$(obs "$A" 8867-4); OA2=$(obs "$A" 29463-7); OB=$(obs "$B" 8867-4)

# --- chains --------------------------------------------------------------------------------------
as "$REG" "$BASE/fhir/Observation?subject:Patient.name=Bastide"
expect_eq "$(ids)" "$(sorted "Observation/$OB")" "service: a chain finds B's observation"
as "$REG" "$BASE/fhir/Observation?patient.family=Alliaume&code=8867-4"
expect_eq "$(ids)" "$(sorted "Observation/$OA")" "a chain without the type (patient: only Patient), ANDed"
as "$REG" "$BASE/fhir/Observation?subject.family=Alliaume"
expect_eq "$STATUS" "400" "subject points to several types: name one"
expect_contains "$BODY" "subject:Type" "the 400 says how"
as "$REG" "$BASE/fhir/Observation?patient.organization.name=Vauban"
expect_eq "$(total)" "0" "a string chain matches at the start of the value"
as "$REG" "$BASE/fhir/Observation?subject:Patient.organization:Organization.name=Clinique&_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OA2" "Observation/$OB")" "a chain of two levels"
as "$REG" "$BASE/fhir/Observation?patient.general-practitioner:Practitioner.family=Gen&_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OA2")" "two levels, the first without a type"
as "$REG" "$BASE/fhir/Observation?subject:Patient.name=Nobody"
expect_eq "$(total)" "0" "a chain that matches nothing"
as "$DOC" "$BASE/fhir/Observation?subject:Patient.name=Bastide"
expect_eq "$STATUS" "200" "clinician: a chain on B"
expect_eq "$(total)" "0" "clinician: the chain cannot reach B"
as "$DOC" "$BASE/fhir/Observation?subject:Patient.name=Alliaume&_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OA2")" "clinician: the chain reaches A"
as "$REG" "$BASE/fhir/Observation?code.name=x"
expect_eq "$STATUS" "400" "a chain on a parameter that is no reference"
expect_contains "$BODY" "code" "names it"

# --- _has ----------------------------------------------------------------------------------------
as "$REG" "$BASE/fhir/Patient?_has:Observation:patient:code=8867-4&_count=50"
expect_eq "$(ids)" "$(sorted "Patient/$A" "Patient/$B")" "service: _has"
as "$REG" "$BASE/fhir/Patient?_has:Observation:patient:code=29463-7"
expect_eq "$(ids)" "$(sorted "Patient/$A")" "_has on one code"
as "$DOC" "$BASE/fhir/Patient?_has:Observation:patient:code=8867-4&_count=50"
expect_eq "$(ids)" "$(sorted "Patient/$A")" "clinician: _has cannot test B's observations"
as "$REG" "$BASE/fhir/Patient?_has:Observation:patient:_has:Observation:subject:code=x"
expect_eq "$STATUS" "200" "_has nests"
as "$REG" "$BASE/fhir/Patient?_has:Observation:code:code=1"
expect_eq "$STATUS" "400" "_has through a parameter that is no reference"
as "$REG" "$BASE/fhir/Patient?_has:Observation=1"
expect_eq "$STATUS" "400" "a malformed _has"

# --- _include, _revinclude, :iterate ---------------------------------------------------------------
as "$REG" "$BASE/fhir/Observation?code=8867-4&_include=Observation:subject&_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OB" "Patient/$A" "Patient/$B")" "service: _include"
expect_eq "$(total)" "2" "the total counts the matches only"
expect_contains "$BODY" '"mode":"include"' "included entries say so"
as "$DOC" "$BASE/fhir/Observation?code=8867-4&_include=Observation:subject"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Patient/$A")" "clinician: _include of A only"
as "$REG" "$BASE/fhir/Patient?family=Alliaume,Bastide&_revinclude=Observation:subject&_count=50"
expect_eq "$(ids)" "$(sorted "Patient/$A" "Patient/$B" "Observation/$OA" "Observation/$OA2" "Observation/$OB")" "service: _revinclude"
as "$DOC" "$BASE/fhir/Patient?family=Alliaume,Bastide&_revinclude=Observation:subject&_count=50"
expect_eq "$(ids)" "$(sorted "Patient/$A" "Observation/$OA" "Observation/$OA2")" "clinician: _revinclude from A only"
as "$REG" "$BASE/fhir/Observation?code=29463-7&_include=Observation:subject&_include:iterate=Patient:organization"
expect_eq "$(ids)" "$(sorted "Observation/$OA2" "Patient/$A" "Organization/$ORG")" "_include:iterate follows the included"
as "$REG" "$BASE/fhir/Observation?code=29463-7&_include=Observation:subject&_include=Patient:organization"
expect_eq "$(ids)" "$(sorted "Observation/$OA2" "Patient/$A")" "without :iterate, no second hop"
as "$REG" "$BASE/fhir/Observation?code=8867-4&_include=Observation:subject:Group"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OB")" "a target type filters the included"
as "$REG" "$BASE/fhir/Observation?code=8867-4&_include=Observation:code"
expect_eq "$STATUS" "400" "_include through a parameter that is no reference"
as "$REG" "$BASE/fhir/Observation?code=8867-4&_include=Observation:subject&_count=1"
NEXT=$(printf '%s' "$BODY" | grep -o '"relation":"next","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
expect_contains "$NEXT" "_include=Observation%3Asubject" "the next link keeps _include"

# --- compartment search and POST _search ------------------------------------------------------------
as "$REG" "$BASE/fhir/Patient/$A/Observation?_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OA2")" "Patient/A/Observation: A's compartment"
as "$REG" "$BASE/fhir/Patient/$A/Observation?code=8867-4"
expect_eq "$(ids)" "$(sorted "Observation/$OA")" "a compartment search with a parameter"
as "$REG" "$BASE/fhir/Patient/$A/Observation?_count=1"
expect_contains "$BODY" "/Patient/$A/Observation?_count=1&_offset=1" "its next link stays in the compartment"
as "$REG" "$BASE/fhir/Patient/no-such-patient/Observation"
expect_eq "$(total)" "0" "an unknown patient's compartment is empty"
as "$DOC" "$BASE/fhir/Patient/$B/Observation"
expect_eq "$(total)" "0" "clinician: B's compartment shows nothing"
as "$DOC" "$BASE/fhir/Patient/$A/Observation?_count=50"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OA2")" "clinician: A's compartment"
as "$REG" -H 'Content-Type: application/x-www-form-urlencoded' -d 'code=8867-4&_count=50' "$BASE/fhir/Observation/_search"
expect_eq "$(ids)" "$(sorted "Observation/$OA" "Observation/$OB")" "POST _search with a form body"
as "$REG" -H 'Content-Type: application/x-www-form-urlencoded' -d 'subject:Patient.name=Bastide' "$BASE/fhir/Observation/_search?code=8867-4"
expect_eq "$(ids)" "$(sorted "Observation/$OB")" "POST _search: URL and body parameters together"
as "$REG" "${FJ[@]}" -d '{}' "$BASE/fhir/Observation/_search"
expect_eq "$STATUS" "415" "POST _search takes a form"

# --- included resources are audited as disclosed -------------------------------------------------------
as "$SEC" "$BASE/fhir/AuditEvent?patient=$A&_count=100"
expect_contains "$BODY" "Patient/$A/_history/1" "the included patient is in its access log"

finish
