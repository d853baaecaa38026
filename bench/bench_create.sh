#!/usr/bin/env bash
# bench_create.sh -- FHIR creates per second: POST /fhir/Observation driven by
# wrk on loopback, each for a random one of PATIENTS patients.  Every create
# is validated against the R4 definitions, put in its patient's compartment,
# decided by the policy, indexed (blind-index tokens), sealed under the
# patient's data key and committed with its audit entry, durably, before the
# 201; concurrent creates share one fsync (group commit), so the rate is
# measured with one connection and with 32.  Installs wrk when missing
# (benchmarks only; never in the test suite).
# usage: bench/bench_create.sh BUILD_DIR [PATIENTS] [SECONDS]
B=${1:-build}; PATIENTS=${2:-100}; SECS=${3:-10}
. "$(dirname "$0")/lib.sh"

bench_serve "$B/medvault"
SVC=$(bench_user bench-loader service ',"scopes":"system/Patient.cruds system/Observation.cruds"')
bench_auth_file "$SVC" "$W/svc.h"
for i in $(seq 0 $((PATIENTS - 1))); do
    bench_put_cfg "/fhir/Patient/bench-p$i" "{\"resourceType\":\"Patient\",\"id\":\"bench-p$i\",\"name\":[{\"family\":\"$(bench_name "$i")\"}]}" "$W/svc.h"
done > "$W/patients.cfg"
bench_load "$W/patients.cfg" "patients"

# Each request: a new Observation of a random patient, with a varying value.
{
    bench_lua_auth "$SVC"
    cat <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
local n = $PATIENTS
request = function()
  local body = '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/bench-p' .. math.random(0, n - 1) .. '"},"effectiveDateTime":"2026-11-28T08:00:00+01:00","valueQuantity":{"value":' .. math.random(40, 180) .. ',"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'
  return wrk.format(nil, "/fhir/Observation", nil, body)
end
LUA
} > "$W/create.lua"
SAMPLE=$(curl -s -o /dev/null -w '%{http_code}' -H @"$W/svc.h" -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/bench-p0"}}' \
    "$BASE/fhir/Observation")
[ "$SAMPLE" = 201 ] || { echo "bench_create: a create answered $SAMPLE" >&2; exit 1; }

for conns in 1 32; do
    bench_wrk "$W/create.lua" "$BASE" "$conns" "$SECS"
    [ "$WRK_ERRORS" -eq 0 ] || { echo "bench_create: $WRK_ERRORS failed creates" >&2; exit 1; }
    echo "| POST /fhir/Observation: validate, policy, index, seal, durable audit (wrk -t$((conns < 2 ? 1 : 2)) -c$conns -d${SECS}s) | $PATIENTS patients | $WRK_RPS resources/s, mean latency $WRK_LATENCY |"
done
