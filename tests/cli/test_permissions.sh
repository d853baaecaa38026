#!/usr/bin/env bash
# The permission matrix at the API level: every role x a spread of resource
# types x every FHIR interaction, with and without break-the-glass, against a
# real server on a fresh store, asserting the exact status of each cell.
#
# Why this exists: in the 2024 breach one account read out 758,912 patients
# through the platform's ordinary functions.  tests/unit/test_policy.c pins
# the decision point itself; this test pins what the API makes of it, cell
# by cell, so that no route forgets to ask, asks about the wrong patient, or
# answers a hidden patient differently from a missing one.  The matrix and
# its invariants live in tests/js/permissions.mjs (Node's built-in fetch,
# keep-alive, no npm package); this driver starts the server, runs it, stops
# the server and hands the audit trail back to it: every request the matrix
# made must be in the trail, granted or denied, with purpose BTG exactly
# where break-the-glass decided.
. "$(dirname "$0")/lib.sh"

JS="$(cd "$(dirname "$0")/../js" && pwd)/permissions.mjs"
command -v node >/dev/null 2>&1 || { fail "node (>= 18) is needed for $JS"; finish; exit 1; }
command -v sqlite3 >/dev/null 2>&1 || { fail "sqlite3 is needed to read the trail"; finish; exit 1; }

D="$WORK/store"; K="$WORK/store.key"
ADMIN_PW="correct horse battery staple 1984"
printf '%s\n' "$ADMIN_PW" |
    "$MEDVAULT" init --data "$D" --key-file "$K" --admin-password-stdin --json > "$WORK/init.json" ||
    { fail "init"; finish; exit 1; }
ADMIN_SECRET=$(sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$WORK/init.json")
# The second person of two-person control, made by the local operator.
APPROVER_PW="the first security officer's passphrase"
printf '%s\n' "$APPROVER_PW" | "$MEDVAULT" user add --username approver --role security --json \
    --data "$D" --key-file "$K" > "$WORK/approver.json" 2>/dev/null || fail "security officer"
APPROVER_SECRET=$(sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$WORK/approver.json")

"$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/nodetect.conf" --listen http://127.0.0.1:0 \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }

# The matrix; the admin password and TOTP secret go through the environment,
# never argv.  It writes one line per request (id, expectations) for the
# trail check below.
if MV_BASE="http://127.0.0.1:$PORT" MV_ADMIN_PASSWORD="$ADMIN_PW" \
   MV_ADMIN_SECRET="$ADMIN_SECRET" MV_APPROVER_PASSWORD="$APPROVER_PW" \
   MV_APPROVER_SECRET="$APPROVER_SECRET" MV_REQUESTS="$WORK/requests.tsv" \
   node "$JS" matrix; then
    pass
else
    fail "the permission matrix (see above)"
fi

kill -TERM $PID; wait $PID
expect_eq "$?" "0" "the server stops cleanly"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"

# The trail as written: request id, action, outcome, patient, purpose.
sqlite3 -separator $'\t' "$D/medvault.db" \
    "SELECT ifnull(request_id,''), ifnull(action,''), ifnull(outcome,''),
            ifnull(patient,''), ifnull(purpose,'') FROM audit
     WHERE action LIKE 'fhir.%'" > "$WORK/trail.tsv" ||
    fail "could not read the audit table"
if MV_REQUESTS="$WORK/requests.tsv" MV_TRAIL="$WORK/trail.tsv" node "$JS" trail; then
    pass
else
    fail "the audit trail does not hold every decision (see above)"
fi
finish
