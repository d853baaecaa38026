#!/usr/bin/env bash
# The FHIR API through a real third-party client: starts a server on a
# fresh store, makes a service account (scopes for the types the test uses)
# and a clinician, logs them in, and runs tests/js/client.mjs, which drives
# the API with fhir-kit-client (CRUD, versions, If-Match, paging, _sort,
# _summary=count, type history, transactions, care-team access) and checks
# every response body against the official R4 JSON schema.  The server must
# then exit 0 (no sanitizer report) and the audit chain verify.
#
# Why this exists: the API is for existing FHIR software; our own curl tests
# cannot show that an independent client understands what we answer.  The
# npm packages are pinned by tests/js/package-lock.json and installed once
# under ${TMPDIR:-/tmp}/medvault-npm-cache (tests/js/harness.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../js/harness.sh"

js_install || { finish; exit 1; }
js_stage
js_start_server || { finish; exit 1; }

SERVICE=$(js_adduser etlclient service \
    ',"scopes":"system/Patient.cruds system/Observation.cruds system/CareTeam.cruds"')
CLINICIAN=$(js_adduser drclient clinician ',"practitioner":"prac-client-1"')
[ -n "$SERVICE" ] && [ -n "$CLINICIAN" ] || { finish; exit 1; }

# Tokens go through the environment, never argv.
if MV_FHIR_BASE="$BASE/fhir" MV_TOKEN_SERVICE="$SERVICE" MV_TOKEN_CLINICIAN="$CLINICIAN" \
    MV_PRACTITIONER=prac-client-1 node "$JS_RUN/client.mjs"; then
    pass
else
    fail "tests/js/client.mjs (see above)"
fi

js_stop_server
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
finish
