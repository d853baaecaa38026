#!/usr/bin/env bash
# POST /fhir: transaction and batch Bundles.  Real third-party data (the
# Synthea bulk export and the Inferno US Core transaction Bundles under
# ../shared/data/fhir) loads completely and reads back identical apart from
# meta; urn:uuid: references are rewritten; a transaction is all or nothing
# (an invalid entry, a policy denial, a version conflict: nothing stored, the
# failing entry named, denials still audited); a batch answers each entry on
# its own; what the processor does not support is refused, never ignored.
. "$(dirname "$0")/lib.sh"

# ../shared beside the project's root; a clone made from a local checkout
# finds it beside the repository it was cloned from.
shared_dir() {
    local root origin
    root=$(cd "$TESTS_DIR/.." && pwd)
    if [ -n "${MEDVAULT_SHARED:-}" ]; then echo "$MEDVAULT_SHARED"; return; fi
    if [ -d "$root/../shared/data" ]; then echo "$root/../shared"; return; fi
    origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
    if [ -n "$origin" ] && [ -d "$origin/../shared/data" ]; then echo "$origin/../shared"; return; fi
    echo ""
}
SHARED=$(shared_dir)
DATA="$SHARED/data/fhir"
command -v node >/dev/null || { fail "node is needed (make installs it)"; finish; exit 1; }

api_server b
LOADER=$(adduser loader service ',"scopes":"system/*.cruds"')
NARROW=$(adduser narrow service ',"scopes":"system/Patient.cr"')
DOC=$(adduser drlone clinician ',"practitioner":"prac-lone"')
SEC=$(adduser sec security)
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
count_of() {  # TYPE QUERY -> total of a search by the loader
    curl -s -H "Authorization: Bearer $LOADER" "$BASE/fhir/$1?${2:+$2&}_summary=count" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'
}

# --- real data loads completely and reads back identical ---------------------------------
printf '%s' "$LOADER" > "$WORK/token"
if [ ! -d "$DATA/synthea-10-patients" ]; then
    echo "SKIPPED: the shared FHIR data (../shared/data/fhir) is not beside this checkout;" \
         "set MEDVAULT_SHARED to load it" >&2
    NO_SHARED=1
elif node "$TESTS_DIR/js/load_roundtrip.mjs" "$BASE" "$WORK/token" "$DATA/synthea-10-patients" \
        "$DATA"/inferno-bundles/*.json > "$WORK/load.out" 2>&1; then
    pass
else
    fail "load and round trip: $(cat "$WORK/load.out")"
fi
if [ -z "${NO_SHARED:-}" ]; then
    expect_contains "$(cat "$WORK/load.out")" "synthea: 7160 resources loaded" "all Synthea resources"
    expect_contains "$(cat "$WORK/load.out")" "uscore_bundle_patient_85.json: 267 entries" "Inferno bundle 85"
    expect_contains "$(cat "$WORK/load.out")" "uscore_bundle_patient_client_test.json: 54 entries" "Inferno client bundle"
    expect_eq "$(count_of Patient "")" "16" "13 Synthea + 3 Inferno patients"
fi

# --- a transaction with urn:uuid references, and a GET after the commit ---------------------
TX='{"resourceType":"Bundle","type":"transaction","entry":[
 {"request":{"method":"GET","url":"Patient?family=Transactionnel"}},
 {"fullUrl":"urn:uuid:0f4b6c1e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","name":[{"family":"Transactionnel"}]},"request":{"method":"POST","url":"Patient"}},
 {"fullUrl":"urn:uuid:0f4b6c1e-0000-4000-8000-000000000002","resource":{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"urn:uuid:0f4b6c1e-0000-4000-8000-000000000001"}},"request":{"method":"POST","url":"Observation"}}]}'
as "$LOADER" "${FJ[@]}" -H 'Prefer: return=representation' --data-binary "$TX" "$BASE/fhir"
expect_eq "$STATUS" "200" "transaction accepted"
expect_contains "$BODY" '"type":"transaction-response"' "transaction-response"
P=$(printf '%s' "$BODY" | sed -n 's/.*"location":"Patient\/\([0-9a-f]*\)\/_history\/1".*/\1/p')
[ -n "$P" ] && pass || fail "the Patient's location: $BODY"
expect_contains "$BODY" "\"subject\":{\"reference\":\"Patient/$P\"}" "urn:uuid rewritten to the new id"
expect_contains "$BODY" '"status":"201 Created"' "entry statuses"
expect_contains "$BODY" '"etag":"W/\"1\""' "entry etags"
expect_contains "$BODY" '"type":"searchset","total":1' "the GET entry ran after the commit"
as "$LOADER" "$BASE/fhir/Observation?subject=Patient/$P"
expect_contains "$BODY" '"total":1' "the Observation points at the new Patient"

# --- all or nothing ------------------------------------------------------------------------------
BEFORE=$(count_of Patient "")
BAD='{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","id":"atomic-1","name":[{"family":"Atomique"}]},"request":{"method":"PUT","url":"Patient/atomic-1"}},
 {"resource":{"resourceType":"Patient","name":[{"family":"Atomique"}]},"request":{"method":"POST","url":"Patient"}},
 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/atomic-1"},"bogusElement":1},"request":{"method":"POST","url":"Observation"}}]}'
as "$LOADER" "${FJ[@]}" --data-binary "$BAD" "$BASE/fhir"
expect_eq "$STATUS" "400" "an invalid entry fails the transaction"
expect_contains "$BODY" "Bundle.entry[2]" "the failing entry is named"
expect_contains "$BODY" "bogusElement" "and its problem"
expect_contains "$BODY" "nothing was stored" "says nothing was stored"
expect_eq "$(count_of Patient "")" "$BEFORE" "no Patient of the failed transaction stored"
as "$LOADER" "$BASE/fhir/Patient/atomic-1"
expect_eq "$STATUS" "404" "the PUT entry was not stored either"

# a policy denial inside a transaction: nothing stored, the denial audited
DENY='{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","id":"atomic-2","name":[{"family":"Refus"}]},"request":{"method":"PUT","url":"Patient/atomic-2"}},
 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/atomic-2"}},"request":{"method":"POST","url":"Observation"}}]}'
as "$NARROW" "${FJ[@]}" --data-binary "$DENY" "$BASE/fhir"
expect_eq "$STATUS" "403" "a scope-denied entry fails the transaction"
expect_contains "$BODY" "Bundle.entry[1]" "names the denied entry"
as "$LOADER" "$BASE/fhir/Patient/atomic-2"
expect_eq "$STATUS" "404" "the permitted entry was rolled back"
as "$SEC" "$BASE/fhir/AuditEvent?patient=atomic-2"
expect_contains "$BODY" "denied" "the denial is in the trail"

# a clinician without a care relationship cannot write through a Bundle either
as "$DOC" "${FJ[@]}" --data-binary "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/$P\"}},\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}" "$BASE/fhir"
expect_eq "$STATUS" "403" "no care relationship: the Bundle is refused"
as "$DOC" "${FJ[@]}" --data-binary "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"request\":{\"method\":\"GET\",\"url\":\"Patient/$P\"}}]}" "$BASE/fhir"
expect_eq "$STATUS" "200" "a batch answers"
expect_contains "$BODY" '"status":"404 Not Found"' "a hidden patient reads as missing inside a batch"
expect_not_contains "$BODY" "Transactionnel" "and discloses nothing"

# a version conflict: 412, nothing stored
as "$LOADER" "${FJ[@]}" --data-binary '{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","id":"atomic-3","name":[{"family":"Conflit"}]},"request":{"method":"PUT","url":"Patient/atomic-3"}},
 {"resource":{"resourceType":"Patient","id":"'"$P"'","name":[{"family":"Changed"}]},"request":{"method":"PUT","url":"Patient/'"$P"'","ifMatch":"W/\"7\""}}]}' "$BASE/fhir"
expect_eq "$STATUS" "412" "If-Match conflict fails the transaction"
as "$LOADER" "$BASE/fhir/Patient/atomic-3"
expect_eq "$STATUS" "404" "conflict: nothing stored"

# --- batch: each entry on its own ----------------------------------------------------------------
as "$LOADER" "${FJ[@]}" --data-binary '{"resourceType":"Bundle","type":"batch","entry":[
 {"resource":{"resourceType":"Patient","id":"batch-1","name":[{"family":"Lot"}]},"request":{"method":"PUT","url":"Patient/batch-1"}},
 {"resource":{"resourceType":"Patient","birthDate":"not-a-date"},"request":{"method":"POST","url":"Patient"}},
 {"request":{"method":"GET","url":"Patient/batch-1"}},
 {"request":{"method":"DELETE","url":"Patient/batch-1"}},
 {"request":{"method":"GET","url":"Patient/no-such-patient"}}]}' "$BASE/fhir"
expect_eq "$STATUS" "200" "batch accepted"
expect_contains "$BODY" '"type":"batch-response"' "batch-response"
STATUSES=$(printf '%s' "$BODY" | grep -o '"status":"[0-9][^"]*"' | tr '\n' ' ')
expect_eq "$STATUSES" '"status":"201 Created" "status":"400 Bad Request" "status":"200 OK" "status":"204 No Content" "status":"404 Not Found" ' "each entry answered in order"
expect_contains "$BODY" 'birthDate' "the failed entry's outcome names the element"
as "$LOADER" "$BASE/fhir/Patient/batch-1"
expect_eq "$STATUS" "410" "the batch's delete happened"

# --- refused, never ignored ----------------------------------------------------------------------
tx_error() {  # WHAT BUNDLE EXPECTED-STATUS NEEDLE
    as "$LOADER" "${FJ[@]}" --data-binary "$2" "$BASE/fhir"
    expect_eq "$STATUS" "$3" "$1"
    expect_contains "$BODY" "$4" "$1: says why"
    expect_contains "$BODY" '"resourceType":"OperationOutcome"' "$1: OperationOutcome"
}
tx_error "dangling urn:uuid" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0f4b6c1e-0000-4000-8000-00000000dead"}},"request":{"method":"POST","url":"Observation"}}]}' 400 "names no entry"
tx_error "conditional update" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient?identifier=x|1"}}]}' 400 "conditional"
tx_error "ifNoneExist on a PUT" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"p1"},"request":{"method":"PUT","url":"Patient/p1","ifNoneExist":"identifier=x|1"}}]}' 400 "ifNoneExist"
tx_error "ifNoneExist naming no parameter" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"nosuch=1"}}]}' 400 "nosuch"
tx_error "same resource twice" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"twice"},"request":{"method":"PUT","url":"Patient/twice"}},{"request":{"method":"DELETE","url":"Patient/twice"}}]}' 400 "twice"
tx_error "PATCH" '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PATCH","url":"Patient/x"}}]}' 400 "request.method"
tx_error "collection Bundle" '{"resourceType":"Bundle","type":"collection"}' 400 "transaction or batch"
tx_error "not a Bundle" '{"resourceType":"Patient"}' 400 "takes a Bundle"
tx_error "invalid Bundle" '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient"},"bogus":1}]}' 400 "bogus"
tx_error "entry without request" '{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"}}]}' 400 "request.method"
as "$LOADER" -H 'Content-Type: text/plain' --data-binary '{}' "$BASE/fhir"
expect_eq "$STATUS" "415" "wrong content type"
req -H 'Content-Type: application/fhir+json' --data-binary "$TX" "$BASE/fhir"
expect_eq "$STATUS" "401" "no token"
as "$LOADER" "$BASE/fhir"
expect_eq "$STATUS" "405" "GET on the base"
as "$LOADER" "${FJ[@]}" --data-binary '{"resourceType":"Bundle","type":"batch"}' "$BASE/fhir"
expect_eq "$STATUS" "200" "an empty batch"
expect_eq "$(count_of Patient "")" "$BEFORE" "no refused Bundle stored a Patient"

# --- every Bundle has a bounded cost, whatever the role -------------------------------------------
# 10,000 reads of the CapabilityStatement (about 100 KB each) once took 17 GB.
# Now the answers stop at their 8 MiB budget: the rest answer 413 each, the
# reply stays small, and the memory goes back once it is sent.
PAT=$(adduser pat patient ',"patient":"bundle-patient"')
python3 - "$WORK/metadata-batch.json" <<'PY'
import json, sys
entry = {"request": {"method": "GET", "url": "metadata"}}
json.dump({"resourceType": "Bundle", "type": "batch", "entry": [entry] * 10000},
          open(sys.argv[1], "w"))
PY
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$PID/status"; }
rss_before=$(rss_kb)
as "$PAT" "${FJ[@]}" --data-binary @"$WORK/metadata-batch.json" "$BASE/fhir"
expect_eq "$STATUS" "200" "a batch of 10,000 metadata reads is answered"
answered=$(printf '%s' "$BODY" | grep -o '"status":"200 OK"' | grep -c .)
refused=$(printf '%s' "$BODY" | grep -o '"status":"413 Payload Too Large"' | grep -c .)
[ "$answered" -ge 1 ] && [ "$answered" -le 200 ] && pass ||
    fail "entries answered within the budget: $answered"
expect_eq "$((answered + refused))" "10000" "every other entry is refused 413"
expect_contains "$BODY" "budget of 8 MiB" "the refusal says why"
[ "${#BODY}" -lt $((16 * 1024 * 1024)) ] && pass || fail "reply of ${#BODY} bytes"
rss_after=$(rss_kb)
echo "bundle budget: $answered entries answered, server RSS $rss_before -> $rss_after kB"
# AddressSanitizer keeps freed memory in its quarantine and never hands it
# back, so the release can only be measured on the plain build.
# (Not `ldd | grep -q`: under pipefail, grep leaving early fails the pipe.)
if [ "$(ldd "$MEDVAULT" 2>/dev/null | grep -c libasan)" -gt 0 ]; then
    echo "RSS check skipped under AddressSanitizer"
else
    [ $((rss_after - rss_before)) -lt $((256 * 1024)) ] && pass ||
        fail "RSS grew from $rss_before kB to $rss_after kB for one Bundle"
fi
as "$PAT" "$BASE/fhir/metadata"
expect_eq "$STATUS" "200" "the server still answers"

# --- the trail verifies after all of it ---------------------------------------------------------
kill -TERM $PID; wait $PID
expect_eq "$?" "0" "the server stops cleanly (no leak under ASan): $(tail -5 "$WORK/serve.err")"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
finish
