#!/usr/bin/env bash
# `medvault simulate --url`: the attacks of issue 5 against a LIVE server
# (detection on, the default), through its API only, and issue 5's targets
# checked on what the server actually returned:
#   - a break-the-glass spree: at most 10 patients; a service account reading
#     by id, and one paging the search: at most 20; each contained (refusals
#     stick) and its account locked;
#   - password spraying from one address (127.0.0.2, so that the block or
#     throttle it earns spares the operator's 127.0.0.1) yields no account;
#   - a decoy read is withheld and locks the account;
#   - security sees the alerts at /api/alerts; the trail verifies afterwards.
. "$(dirname "$0")/lib.sh"

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
row() { grep "\"scenario\":\"$1\"" "$WORK/sim.json"; }
num() { row "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }

new_store h
run 0 "$MEDVAULT" seed --patients 60 --staff 6 --seed 11 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/seed.json"
account() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }

"$MEDVAULT" serve --data "$D" --key-file "$K" --listen http://127.0.0.1:0 \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=""
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
BASE="http://127.0.0.1:$PORT"

login() {  # USER PASSWORD SECRET -> prints token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$(oathtool --totp -b "$3")\"}" \
        "$BASE/auth/login" | json_get token
}
(umask 077; login demo-admin "$(account demo-admin password)" "$(account demo-admin secret)" \
    > "$WORK/admin.token")
[ -s "$WORK/admin.token" ] && pass || fail "the seeded admin logs in"
expect_eq "$(stat -c %a "$WORK/admin.token")" "600" "the token file is private"
# the second person of two-person control: a security officer the local
# operator makes, who approves the run's accounts
OFFICER_PW="the operator's own security officer"
printf '%s\n' "$OFFICER_PW" | "$MEDVAULT" user add --username run-officer --role security \
    --json --data "$D" --key-file "$K" > "$WORK/officer.json" 2>/dev/null || fail "officer"
(umask 077; login run-officer "$OFFICER_PW" "$(json_get secret < "$WORK/officer.json")" \
    > "$WORK/security.token")
[ -s "$WORK/security.token" ] && pass || fail "the officer logs in"
TOKENS=(--admin-token-file "$WORK/admin.token" --security-token-file "$WORK/security.token")

# --- usage --------------------------------------------------------------------------------
run 2 "$MEDVAULT" simulate --url "$BASE"
expect_one_line "$ERR" "--url without a token file"
run 2 "$MEDVAULT" simulate --url "$BASE" --admin-token-file "$WORK/admin.token"
expect_one_line "$ERR" "--url without the security officer's token file"
run 2 "$MEDVAULT" simulate --url "$BASE" "${TOKENS[@]}" --scenario benign
run 2 "$MEDVAULT" simulate --decoys-file "$WORK/x"

# --- every scenario but the decoy (none planted yet): patients listed through the API ----
run 0 "$MEDVAULT" simulate --url "$BASE" "${TOKENS[@]}" \
    --scenario all --json
printf '%s\n' "$OUT" > "$WORK/sim.json"
expect_not_contains "$OUT" "$(cat "$WORK/admin.token")" "no token in the output"
for sc in btg-spree bulk-service bulk-search; do
    row "$sc" > /dev/null || { fail "no $sc row in: $OUT"; continue; }
    n=$(num "$sc" requests)
    [ "$n" -ge 1 ] && pass || fail "$sc: no request was ever made ($n): the attack did not run"
    expect_contains "$(row "$sc")" '"contained":true' "$sc is contained"
    expect_contains "$(row "$sc")" '"locked":true' "$sc's account ends locked"
    expect_contains "$(row "$sc")" '"alerted":true' "$sc raised an alert"
    expect_contains "$(row "$sc")" '"met":true' "$sc meets its target"
done
# The readers by id get their first patients; the lister may get none: the
# total of its first page discloses every patient's existence at once.
[ "$(num btg-spree exposed)" -ge 1 ] && [ "$(num bulk-service exposed)" -ge 1 ] && pass ||
    fail "the readers by id read nothing: the attacks did not run"
[ "$(num btg-spree exposed)" -le 10 ] && pass || fail "btg-spree: $(num btg-spree exposed) > 10"
[ "$(num bulk-service exposed)" -le 20 ] && pass ||
    fail "bulk-service: $(num bulk-service exposed) > 20"
[ "$(num bulk-search exposed)" -le 20 ] && pass ||
    fail "bulk-search: $(num bulk-search exposed) > 20"
expect_eq "$(num spraying yielded)" "0" "spraying yields no account"
[ "$(num spraying attempts)" -ge 8 ] && pass || fail "spraying tried too few logins"
expect_contains "$(row spraying)" '"contained":true' "the spraying address is refused for good"
expect_not_contains "$OUT" '"scenario":"decoy"' "no decoy row without decoys"

# --- the decoy, with patient ids from a file ----------------------------------------------
run 0 "$MEDVAULT" decoy plant --count 2 --json --data "$D" --key-file "$K"
run 0 "$MEDVAULT" decoy list --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/decoys.json"
sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'" |
    grep -vxF -f <(json_get patient < "$WORK/decoys.json") > "$WORK/patients.txt"
expect_eq "$(grep -c . "$WORK/patients.txt")" "60" "60 real patients in the file"
sleep 1.5                                   # the server reloads its decoys every second
run 0 "$MEDVAULT" simulate --url "$BASE" "${TOKENS[@]}" \
    --scenario decoy --patients-file "$WORK/patients.txt" --decoys-file "$WORK/decoys.json" \
    --json
printf '%s\n' "$OUT" > "$WORK/sim.json"
expect_contains "$(row decoy)" '"decoy_released":false' "the decoy is never released"
expect_contains "$(row decoy)" '"locked":true' "touching the decoy locks the account"
expect_eq "$(num decoy exposed)" "2" "only the two ordinary patients before the decoy"
expect_contains "$(row decoy)" '"met":true' "decoy meets its target"

# --- the Markdown table ------------------------------------------------------------------
run 0 "$MEDVAULT" simulate --url "$BASE" "${TOKENS[@]}" \
    --scenario btg-spree --patients-file "$WORK/patients.txt" --patients 30
expect_contains "$OUT" "| btg-spree | live server |" "a table row"
expect_contains "$OUT" "every target met" "the summary line"

# --- what security sees, and the trail ----------------------------------------------------
SEC=$(cat "$WORK/security.token")
alerts=$(curl -s -H "Authorization: Bearer $SEC" "$BASE/api/alerts")
has() { printf '%s' "$alerts" | grep_q -F -- "$1" && pass || fail "$2 not in /api/alerts"; }
has '"response":"contain"' "containment alerts"
has '"actor_username":"sim-' "alerts naming the run's attackers"
has 'touched decoy patient' "the decoy alert"
has '"source":"127.0.0.2","detectors":["authentication"]' "the spraying address's alert"
printf '%s' "$alerts" | grep_q -F -- "$(cat "$WORK/admin.token")" &&
    fail "the admin's token in the alerts" || pass
has '"actor":"lineage:user:' "an alert on a lineage (the run's admins made the attackers)"
kill -TERM "$PID"; wait "$PID"
expect_eq "$?" "0" "the server stops cleanly"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
finish
