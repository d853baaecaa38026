#!/usr/bin/env bash
# What the FHIR API says it does, it does; what it does not do, it refuses:
#   - formats: JSON only.  XML asked for (Accept or _format) is a 406, XML
#     sent is a 415, both as OperationOutcomes; a JSON or wildcard Accept,
#     or none, is served;
#   - the CapabilityStatement claims no security service that does not
#     exist (no OAuth endpoint yet) and lists no Subscription, and a
#     Subscription is refused (medvault sends no notifications) directly
#     and inside a Bundle, storing nothing;
#   - conditional create (If-None-Exist): a retry finds the first resource
#     instead of making a duplicate; two matches are a 412; a malformed
#     condition is a 400; inside a transaction, ifNoneExist does the same;
#   - PATCH with a JSON Patch (RFC 6902): applied atomically, a failed test
#     422, an inapplicable op or an invalid result 400, If-Match honoured,
#     decided like an update;
#   - Prefer: return=minimal | OperationOutcome; If-None-Match and
#     If-Modified-Since answer 304 when the client's copy is current;
#   - concurrent PUTs to one resource without If-Match are serialised: all
#     land as versions, none is answered 409;
#   - required bindings: a code outside its required ValueSet
#     (Patient.gender "robot", Observation.status "bogus", a Condition's
#     clinical status from its own code system) is a 400 naming the
#     element, and nothing is stored.
. "$(dirname "$0")/lib.sh"

api_server s
REG=$(adduser registrar service ',"scopes":"system/Patient.cruds system/Observation.cruds system/Condition.cruds system/Subscription.cruds"')
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
header() { tr -d '\r' < "$WORK/headers" | sed -n "s/^$1: //Ip" | head -1; }

as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Honnorat"}],"gender":"female"}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "a patient to read"
PID=$(printf '%s' "$BODY" | json_get id)

# --- formats -------------------------------------------------------------------------------
as "$REG" -H 'Accept: application/fhir+xml' "$BASE/fhir/Patient/$PID"
expect_eq "$STATUS" "406" "Accept: application/fhir+xml"
expect_contains "$BODY" "OperationOutcome" "the 406 is an OperationOutcome"
expect_not_contains "$BODY" "Honnorat" "nothing of the resource in the 406"
as "$REG" -H 'Accept: application/xml, text/xml;q=0.9' "$BASE/fhir/metadata"
expect_eq "$STATUS" "406" "Accept: XML only, on metadata"
as "$REG" "$BASE/fhir/Patient/$PID?_format=xml"
expect_eq "$STATUS" "406" "_format=xml"
as "$REG" "$BASE/fhir/Patient?_format=application/fhir%2Bxml"
expect_eq "$STATUS" "406" "_format=application/fhir+xml on a search"
for ok in 'application/fhir+json' 'application/json' '*/*' 'application/*' \
          'application/fhir+xml;q=0.9, application/fhir+json' 'text/html, */*;q=0.1'; do
    as "$REG" -H "Accept: $ok" "$BASE/fhir/Patient/$PID"
    expect_eq "$STATUS" "200" "Accept: $ok is served"
done
as "$REG" -H 'Accept: application/fhir+json;q=0' "$BASE/fhir/Patient/$PID"
expect_eq "$STATUS" "406" "JSON with q=0 is refused JSON"
for f in json application/fhir%2Bjson application/json; do
    as "$REG" "$BASE/fhir/Patient/$PID?_format=$f"
    expect_eq "$STATUS" "200" "_format=$f"
done
as "$REG" -H 'Content-Type: application/fhir+xml' \
    -d '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>' "$BASE/fhir/Patient"
expect_eq "$STATUS" "415" "XML sent"
expect_contains "$BODY" "OperationOutcome" "the 415 is an OperationOutcome"
as "$REG" -H 'Content-Type: application/fhir+xml' -d '<Bundle/>' "$BASE/fhir"
expect_eq "$STATUS" "415" "an XML Bundle"

# --- an honest CapabilityStatement; Subscription refused -------------------------------------------
req "$BASE/fhir/metadata"
expect_eq "$STATUS" "200" "metadata"
expect_not_contains "$BODY" '"OAuth"' "no OAuth claimed without an OAuth endpoint"
expect_not_contains "$BODY" '"SMART-on-FHIR"' "nor SMART"
expect_not_contains "$BODY" '"type":"Subscription"' "Subscription not listed"
expect_contains "$BODY" '"type":"Patient"' "Patient listed"
SUB='{"resourceType":"Subscription","status":"requested","reason":"x","criteria":"Observation?code=1234","channel":{"type":"rest-hook","endpoint":"http://127.0.0.1:9/hook","payload":"application/fhir+json"}}'
as "$REG" "${FJ[@]}" -d "$SUB" "$BASE/fhir/Subscription"
expect_eq "$STATUS" "405" "a Subscription is refused"
expect_contains "$BODY" "Subscription" "the refusal names it"
as "$REG" "${FJ[@]}" -X PUT -d "${SUB%\}},\"id\":\"s1\"}" "$BASE/fhir/Subscription/s1"
expect_eq "$STATUS" "405" "nor created by PUT"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"resource\":$SUB,\"request\":{\"method\":\"POST\",\"url\":\"Subscription\"}}]}" "$BASE/fhir"
expect_eq "$STATUS" "200" "a batch with a Subscription"
expect_contains "$BODY" '"status":"405' "the entry is refused"
as "$REG" "$BASE/fhir/Subscription"
expect_eq "$STATUS" "405" "no Subscription listing either"

# --- conditional create -------------------------------------------------------------------------------------
NEW='{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"1850175123456"}],"name":[{"family":"Ribaucourt"}]}'
COND='If-None-Exist: identifier=urn:oid:1.2.250.1.213.1.4.8|1850175123456'
as "$REG" "${FJ[@]}" -H "$COND" -d "$NEW" "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "the first conditional create creates"
FIRST=$(printf '%s' "$BODY" | json_get id)
for retry in 1 2; do
    as "$REG" "${FJ[@]}" -H "$COND" -d "$NEW" "$BASE/fhir/Patient"
    expect_eq "$STATUS" "200" "retry $retry: found, not created"
    expect_eq "$(printf '%s' "$BODY" | json_get id)" "$FIRST" "retry $retry answers the first resource"
    expect_contains "$(header Location)" "/fhir/Patient/$FIRST" "retry $retry: its Location"
done
as "$REG" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C1850175123456"
expect_eq "$(total)" "1" "one patient after three conditional creates"
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Ribaucourt"}]}' "$BASE/fhir/Patient"
as "$REG" "${FJ[@]}" -H 'If-None-Exist: family=Ribaucourt' -d "$NEW" "$BASE/fhir/Patient"
expect_eq "$STATUS" "412" "two matches: 412"
as "$REG" "${FJ[@]}" -H 'If-None-Exist: nosuchparam=1' -d "$NEW" "$BASE/fhir/Patient"
expect_eq "$STATUS" "400" "an unknown parameter in the condition"
expect_contains "$BODY" "nosuchparam" "the 400 names it"
as "$REG" "${FJ[@]}" -H 'If-None-Exist: family=Nobody-Here' -d '{"resourceType":"Patient","name":[{"family":"Nobody-Here"}]}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "no match: created"
TX='{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:7d3c0b1e-4f0a-4c55-9a57-6f1f3c2b9e01","resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"2990399000001"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:1.2.250.1.213.1.4.8|2990399000001"}},{"resource":{"resourceType":"Observation","status":"final","code":{"text":"weight"},"subject":{"reference":"urn:uuid:7d3c0b1e-4f0a-4c55-9a57-6f1f3c2b9e01"}},"request":{"method":"POST","url":"Observation"}}]}'
as "$REG" "${FJ[@]}" -d "$TX" "$BASE/fhir"
expect_eq "$STATUS" "200" "a transaction with ifNoneExist"
TXP=$(printf '%s' "$BODY" | grep -o '"location":"Patient/[^/"]*' | sed 's/.*\///')
as "$REG" "${FJ[@]}" -d "$TX" "$BASE/fhir"
expect_eq "$STATUS" "200" "the same transaction again"
expect_contains "$BODY" "\"location\":\"Patient/$TXP" "the retry names the same patient"
expect_contains "$BODY" '"status":"200' "its entry is found (200), not created"
as "$REG" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C2990399000001"
expect_eq "$(total)" "1" "one patient after two transactions"
as "$REG" "$BASE/fhir/Observation?subject=Patient/$TXP"
expect_eq "$(total)" "2" "both Observations point at that one patient"

# --- concurrent updates without If-Match are serialised, none refused ------------------------------------
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Concurrent"}]}' "$BASE/fhir/Patient"
CC=$(printf '%s' "$BODY" | json_get id)
: > "$WORK/codes"
PIDS=()
for i in $(seq 1 24); do
    curl -s -o /dev/null -w '%{http_code}\n' -X PUT -H "Authorization: Bearer $REG" "${FJ[@]}" \
        -d "{\"resourceType\":\"Patient\",\"id\":\"$CC\",\"name\":[{\"family\":\"Concurrent$i\"}]}" \
        "$BASE/fhir/Patient/$CC" >> "$WORK/codes" &
    PIDS+=($!)
done
wait "${PIDS[@]}"      # not the server's
expect_eq "$(sort "$WORK/codes" | uniq -c | sed 's/^ *//')" "24 200" "24 concurrent PUTs without If-Match: all 200"
as "$REG" "$BASE/fhir/Patient/$CC"
expect_contains "$BODY" '"versionId":"25"' "each landed as its own version"
as "$REG" "$BASE/fhir/Patient/$CC/_history?_count=50"
expect_eq "$(total)" "25" "the history holds all 25"

# --- PATCH (JSON Patch) ----------------------------------------------------------------------------------
JP=(-X PATCH -H 'Content-Type: application/json-patch+json')
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Observation\",\"status\":\"preliminary\",\"code\":{\"text\":\"weight\"},\"subject\":{\"reference\":\"Patient/$PID\"},\"note\":[{\"text\":\"first\"}]}" "$BASE/fhir/Observation"
OBS=$(printf '%s' "$BODY" | json_get id)
as "$REG" "${JP[@]}" -d '[{"op":"test","path":"/status","value":"preliminary"},{"op":"replace","path":"/status","value":"final"},{"op":"add","path":"/note/-","value":{"text":"second"}},{"op":"copy","from":"/note/0","path":"/note/0"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "200" "a JSON Patch applies"
expect_contains "$BODY" '"status":"final"' "replace"
expect_contains "$BODY" '"note":[{"text":"first"},{"text":"first"},{"text":"second"}]' "add at the end, copy"
expect_contains "$BODY" '"versionId":"2"' "a new version"
as "$REG" "${JP[@]}" -d '[{"op":"test","path":"/status","value":"preliminary"},{"op":"replace","path":"/status","value":"cancelled"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "422" "a failed test op: 422"
as "$REG" "${JP[@]}" -d '[{"op":"remove","path":"/note/1"},{"op":"remove","path":"/nosuch"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "400" "an op that cannot apply: 400, nothing applied"
expect_contains "$BODY" "/nosuch" "names the path"
as "$REG" "${JP[@]}" -d '[{"op":"replace","path":"/status","value":"bogus"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "400" "a patch to an invalid resource is refused"
as "$REG" "${JP[@]}" -d '[{"op":"replace","path":"/id","value":"other"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "400" "a patch cannot change the id"
as "$REG" "${JP[@]}" -H 'If-Match: W/"1"' -d '[{"op":"remove","path":"/note"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "412" "If-Match on a PATCH"
as "$REG" -X PATCH "${FJ[@]}" -d '[{"op":"remove","path":"/note"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "415" "PATCH takes application/json-patch+json"
as "$REG" "${JP[@]}" -d '[{"op":"remove","path":"/note"}]' "$BASE/fhir/Observation/no-such-id"
expect_eq "$STATUS" "404" "PATCH of a missing resource"
as "$REG" "$BASE/fhir/Observation/$OBS"
expect_contains "$BODY" '"versionId":"2"' "refused patches wrote nothing"
expect_contains "$BODY" '"status":"final"' "and changed nothing"
NOBODY=$(adduser drnobody clinician ',"practitioner":"prac-nobody"')
as "$NOBODY" "${JP[@]}" -d '[{"op":"replace","path":"/status","value":"amended"}]' "$BASE/fhir/Observation/$OBS"
expect_eq "$STATUS" "403" "a clinician without the patient in care cannot patch"
as "$REG" "$BASE/fhir/Observation/$OBS"
expect_contains "$BODY" '"status":"final"' "the refused patch changed nothing"

# --- Prefer, and conditional reads (304) --------------------------------------------------------------------
as "$REG" "${FJ[@]}" -H 'Prefer: return=minimal' -d '{"resourceType":"Patient","name":[{"family":"Minimal"}]}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "Prefer: return=minimal creates"
expect_eq "$BODY" "" "with no body"
MIN=$(header Location | sed 's|.*/Patient/\([^/]*\)/.*|\1|')
expect_contains "$(header Location)" "/fhir/Patient/" "and a Location"
as "$REG" "${FJ[@]}" -X PUT -H 'Prefer: return=OperationOutcome' -d "{\"resourceType\":\"Patient\",\"id\":\"$MIN\",\"name\":[{\"family\":\"Minimal\"}]}" "$BASE/fhir/Patient/$MIN"
expect_eq "$STATUS" "200" "Prefer: return=OperationOutcome updates"
expect_contains "$BODY" '"resourceType":"OperationOutcome"' "and answers an OperationOutcome"
: > "$WORK/body"       # curl writes nothing for a 304
as "$REG" -H 'If-None-Match: W/"2"' "$BASE/fhir/Patient/$MIN"
expect_eq "$STATUS" "304" "If-None-Match the current version: 304"
expect_eq "$BODY" "" "no body"
expect_contains "$(header ETag)" 'W/"2"' "the ETag of the current version"
as "$REG" -H 'If-None-Match: W/"1"' "$BASE/fhir/Patient/$MIN"
expect_eq "$STATUS" "200" "If-None-Match an older version: 200"
as "$REG" -H 'If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT' "$BASE/fhir/Patient/$MIN"
expect_eq "$STATUS" "304" "If-Modified-Since later than the change: 304"
as "$REG" -H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT' "$BASE/fhir/Patient/$MIN"
expect_eq "$STATUS" "200" "If-Modified-Since before the change: 200"

# --- required bindings --------------------------------------------------------------------------------------
as "$REG" "$BASE/fhir/Patient?_count=100"
BEFORE=$(total)
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","gender":"robot"}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "400" "Patient.gender robot"
expect_contains "$BODY" "Patient.gender" "the 400 names the element"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Observation\",\"status\":\"bogus\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/$PID\"}}" "$BASE/fhir/Observation"
expect_eq "$STATUS" "400" "Observation.status bogus"
expect_contains "$BODY" "Observation.status" "names the element"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Condition\",\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"sleeping\"}]},\"subject\":{\"reference\":\"Patient/$PID\"}}" "$BASE/fhir/Condition"
expect_eq "$STATUS" "400" "a clinical status outside its code system's ValueSet"
expect_contains "$BODY" "Condition.clinicalStatus" "names the element"
as "$REG" "${FJ[@]}" -X PUT -d "{\"resourceType\":\"Patient\",\"id\":\"$PID\",\"gender\":\"robot\"}" "$BASE/fhir/Patient/$PID"
expect_eq "$STATUS" "400" "nor by update"
as "$REG" "$BASE/fhir/Patient/$PID"
expect_contains "$BODY" '"gender":"female"' "the stored patient is untouched"
as "$REG" "$BASE/fhir/Patient?_count=100"
expect_eq "$(total)" "$BEFORE" "nothing stored"
for g in male female other unknown; do
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Patient\",\"gender\":\"$g\"}" "$BASE/fhir/Patient"
    expect_eq "$STATUS" "201" "gender $g accepted"
done
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Observation\",\"status\":\"amended\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"29463-7\"}]},\"subject\":{\"reference\":\"Patient/$PID\"}}" "$BASE/fhir/Observation"
expect_eq "$STATUS" "201" "a valid status, any LOINC code (example binding)"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Condition\",\"clinicalStatus\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"55561003\"},{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"active\"}]},\"subject\":{\"reference\":\"Patient/$PID\"}}" "$BASE/fhir/Condition"
expect_eq "$STATUS" "201" "a coding from another system beside a valid one"

finish
