#!/usr/bin/env bash
# The official R4 examples (hl7.fhir.r4.examples@4.0.1) posted through a
# real FHIR client: a sample covering every resource type is accepted as it
# is, and mutated copies (unknown elements, wrong JSON types, bad date /
# instant / id formats, arrays for single elements and the reverse, two
# values of one choice, empty objects, strings and arrays, nulls, missing or
# unknown resourceType) are each refused with 400 and an OperationOutcome
# naming the element.  tests/js/mutations.mjs does the work; this starts the
# server and the service account it posts as.
#
# Why this exists: the validator must hold on real resources of every type,
# at places nobody hand-picked.  MV_PER_TYPE=all (in the environment) posts
# every example instead of two per type, for a longer run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../js/harness.sh"

js_install || { finish; exit 1; }
js_stage
js_start_server || { finish; exit 1; }

SERVICE=$(js_adduser etlexamples service ',"scopes":"system/*.c"')
[ -n "$SERVICE" ] || { finish; exit 1; }

# The token goes through the environment, never argv.
if MV_FHIR_BASE="$BASE/fhir" MV_TOKEN_SERVICE="$SERVICE" node "$JS_RUN/mutations.mjs"; then
    pass
else
    fail "tests/js/mutations.mjs (see above)"
fi

js_stop_server
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
finish
