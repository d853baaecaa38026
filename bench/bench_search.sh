#!/usr/bin/env bash
# bench_search.sh -- FHIR searches per second, driven by wrk on loopback
# against a store of PATIENTS patients with OBS Observations each:
#   1. GET /fhir/Patient?family=NAME (one match: a blind-index token
#      lookup, the Patient decrypted, the policy, a durable audit entry);
#   2. GET /fhir/Observation?patient=ID&_count=20 (a page of 20 decrypted
#      Observations), as a service account (scopes: no care-team lookup)
#      and as a clinician in each patient's CareTeam (one care-relationship
#      fact per result, itself a blind-index lookup and a decryption);
#   3. the same page with _include=Observation:subject, a chained search
#      (subject:Patient.family=NAME) and a PATCH of a random Observation.
# Every query picks a random patient.  Loading goes through the API itself
# (PUT, one parallel curl).  Plain HTTP on loopback; installs wrk when
# missing (benchmarks only; never in the test suite).
# usage: bench/bench_search.sh BUILD_DIR [PATIENTS] [OBS] [SECONDS]
B=${1:-build}; PATIENTS=${2:-1000}; OBS=${3:-20}; SECS=${4:-10}
. "$(dirname "$0")/lib.sh"
[ "$PATIENTS" -le 8000 ] || { echo "bench_search: at most 8000 patients" >&2; exit 2; }

bench_serve "$B/medvault"
SVC=$(bench_user bench-loader service \
    ',"scopes":"system/Patient.cruds system/Observation.cruds system/CareTeam.cruds"')
DOC=$(bench_user bench-doctor clinician ',"practitioner":"prac-bench"')
bench_auth_file "$SVC" "$W/svc.h"

# The record: patients with distinct surnames, a CareTeam naming the
# clinician, OBS Observations each.
for i in $(seq 0 $((PATIENTS - 1))); do
    p=bench-p$i
    bench_put_cfg "/fhir/Patient/$p" "{\"resourceType\":\"Patient\",\"id\":\"$p\",\"name\":[{\"family\":\"$(bench_name "$i")\",\"given\":[\"Camille\"]}],\"gender\":\"female\",\"birthDate\":\"19$((40 + i % 60))-0$((1 + i % 9))-1$((i % 10))\"}" "$W/svc.h"
    bench_put_cfg "/fhir/CareTeam/ct-$p" "{\"resourceType\":\"CareTeam\",\"id\":\"ct-$p\",\"status\":\"active\",\"subject\":{\"reference\":\"Patient/$p\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-bench\"}}]}" "$W/svc.h"
done > "$W/patients.cfg"
for i in $(seq 0 $((PATIENTS - 1))); do
    for j in $(seq 1 "$OBS"); do
        bench_put_cfg "/fhir/Observation/o$i-$j" "{\"resourceType\":\"Observation\",\"id\":\"o$i-$j\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\",\"display\":\"Heart rate\"}]},\"subject\":{\"reference\":\"Patient/bench-p$i\"},\"effectiveDateTime\":\"2026-0$((1 + j % 9))-1$((j % 10))T08:00:00+01:00\",\"valueQuantity\":{\"value\":$((50 + (i + j) % 70)),\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}" "$W/svc.h"
    done
done > "$W/observations.cfg"
start=$(date +%s.%N)
bench_load "$W/patients.cfg" "patients and care teams"
bench_load "$W/observations.cfg" "observations"
end=$(date +%s.%N)
LOADED=$((PATIENTS * (OBS + 2)))

# Lua scripts: a random patient's name or id per request.
{
    bench_lua_auth "$SVC"
    printf 'local names = {'
    for i in $(seq 0 $((PATIENTS - 1))); do printf '"%s",' "$(bench_name "$i")"; done
    printf '}\nrequest = function()\n  return wrk.format("GET", "/fhir/Patient?family=" .. names[math.random(#names)])\nend\n'
} > "$W/family.lua"
by_patient_lua() {  # TOKEN
    bench_lua_auth "$1"
    printf 'local n = %d\nrequest = function()\n  return wrk.format("GET", "/fhir/Observation?patient=bench-p" .. math.random(0, n - 1) .. "&_count=20")\nend\n' "$PATIENTS"
}
by_patient_lua "$SVC" > "$W/obs-svc.lua"
by_patient_lua "$DOC" > "$W/obs-doc.lua"
{   # the same page with each Observation's Patient included
    bench_lua_auth "$SVC"
    printf 'local n = %d\nrequest = function()\n  return wrk.format("GET", "/fhir/Observation?patient=bench-p" .. math.random(0, n - 1) .. "&_count=20&_include=Observation:subject")\nend\n' "$PATIENTS"
} > "$W/obs-include.lua"
{   # a chained search: Observations of the patient with that surname
    bench_lua_auth "$SVC"
    printf 'local names = {'
    for i in $(seq 0 $((PATIENTS - 1))); do printf '"%s",' "$(bench_name "$i")"; done
    printf '}\nrequest = function()\n  return wrk.format("GET", "/fhir/Observation?subject:Patient.family=" .. names[math.random(#names)] .. "&_count=20")\nend\n'
} > "$W/obs-chain.lua"
{   # PATCH a random Observation's status (JSON Patch)
    bench_lua_auth "$SVC"
    printf 'wrk.headers["Content-Type"] = "application/json-patch+json"\n'
    printf 'local n, m = %d, %d\nrequest = function()\n  return wrk.format("PATCH", "/fhir/Observation/o" .. math.random(0, n - 1) .. "-" .. math.random(1, m), nil, [[ [{"op":"replace","path":"/status","value":"amended"}] ]])\nend\n' "$PATIENTS" "$OBS"
} > "$W/obs-patch.lua"

# Check one answer of each before timing them.
SAMPLE=$(curl -s -H @"$W/svc.h" "$BASE/fhir/Patient?family=$(bench_name 0)")
case $SAMPLE in *'"total":1,'*) ;; *) echo "bench_search: family search: $SAMPLE" >&2; exit 1 ;; esac
PAGE=$(curl -s -H @"$W/svc.h" "$BASE/fhir/Observation?patient=bench-p0&_count=20")
PAGE_N=$(printf '%s' "$PAGE" | grep -o '"search":{"mode":"match"}' | grep -c '')
[ "$PAGE_N" -eq $((OBS < 20 ? OBS : 20)) ] || { echo "bench_search: $PAGE_N entries on a page" >&2; exit 1; }

echo "| load through the API: PUT Patient + CareTeam + $OBS Observations per patient, 16 parallel curl connections | $LOADED resources | $(echo "$LOADED / ($end - $start)" | bc -l | xargs printf '%.0f') resources/s |"
row() {  # WHAT LUA CONNS
    bench_wrk "$2" "$BASE" "$3" "$SECS"
    [ "$WRK_ERRORS" -eq 0 ] || { echo "bench_search: $WRK_ERRORS failed requests in: $1" >&2; exit 1; }
    echo "| $1 (wrk -t2 -c$3 -d${SECS}s) | $PATIENTS patients, $LOADED resources | $WRK_RPS req/s, mean latency $WRK_LATENCY |"
}
row "GET /fhir/Patient?family=NAME, service account: 1 match" "$W/family.lua" 32
row "GET /fhir/Observation?patient=ID&_count=20, service account: $PAGE_N entries" "$W/obs-svc.lua" 32
row "GET /fhir/Observation?patient=ID&_count=20, clinician in the CareTeam: $PAGE_N entries" "$W/obs-doc.lua" 32
row "GET /fhir/Observation?patient=ID&_count=20&_include=Observation:subject, service account: $PAGE_N entries + the Patient" "$W/obs-include.lua" 32
row "GET /fhir/Observation?subject:Patient.family=NAME&_count=20 (chained), service account: $PAGE_N entries" "$W/obs-chain.lua" 32
row "PATCH /fhir/Observation/ID (JSON Patch, one replace), service account" "$W/obs-patch.lua" 32
