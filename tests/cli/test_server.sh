#!/usr/bin/env bash
# medvault serve end to end: logins with TOTP codes from an independent
# implementation (Debian's oathtool), generic 401s, replay, lockout, spraying,
# idle and absolute expiry, immediate revocation, the account API's role
# checks, TLS, the transport's limits, and a clean SIGTERM.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { echo "oathtool missing"; exit 1; }
command -v curl >/dev/null || { echo "curl missing"; exit 1; }

D="$WORK/srv"; K="$WORK/srv.key"
ADMIN_PW="correct horse battery staple 1984"
printf '%s\n' "$ADMIN_PW" |
    "$MEDVAULT" init --data "$D" --key-file "$K" --admin-password-stdin --json > "$WORK/init.json" ||
    { fail "init"; finish; exit 1; }
json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
ADMIN_SECRET=$(json_get secret < "$WORK/init.json")
[ -n "$ADMIN_SECRET" ] && pass || fail "init --json has no secret"
expect_not_contains "$(cat "$WORK/init.json")" "$ADMIN_PW" "given password not echoed"
expect_eq "$(stat -c %a "$D/tls/key.pem")" "600" "TLS key mode"

cat > "$WORK/server.conf" <<'CONF'
# short timeouts and small limits so the test sees them happen; the detector
# is off: this test's failing logins are on purpose
detect = off
idle_timeout = 5s
absolute_timeout = 120s
step_up_valid = 10s
lock_after = 3
delay_base = 1ms
delay_max = 5ms
source_max_failures = 12
source_window = 10m
max_body = 4096
max_header = 4096
CONF

# --- start -------------------------------------------------------------------
start_server() {  # LISTEN [CONFIG] -> sets PID, PORT, BASE (the log accumulates)
    "$MEDVAULT" serve --data "$D" --key-file "$K" --config "${2:-$WORK/server.conf}" \
        --listen "$1" > "$WORK/serve.out" 2>> "$WORK/serve.err" &
    PID=$!
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out")
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
}
start_server "http://127.0.0.1:0"
BASE="http://127.0.0.1:$PORT"
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT

# req [curl args...]: sets STATUS and BODY.
req() {
    local out
    out=$(curl -s -o "$WORK/body" -w '%{http_code}' "$@")
    STATUS=$out
    BODY=$(cat "$WORK/body")
}
totp() { oathtool --totp -b "$1" ${2:+-N "$2"}; }
# login USER PASSWORD TOTP [SOURCE]
login() {
    req --interface "${4:-127.0.0.1}" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$3\"}" "$BASE/auth/login"
}
token_of() { printf '%s' "$BODY" | json_get token; }

# --- login with an independent TOTP implementation -----------------------------
login admin "$ADMIN_PW" "$(totp "$ADMIN_SECRET")"
expect_eq "$STATUS" "200" "admin login"
ADMIN=$(token_of)
expect_eq "${#ADMIN}" "43" "token is 256 bits base64url"
expect_contains "$BODY" '"expires_in":5' "expires_in from idle timeout"
expect_contains "$BODY" '"user":{"username":"admin","role":"admin"}' "user in login answer"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/whoami"
expect_eq "$STATUS" "200" "whoami with the token"

# --- the account API ----------------------------------------------------------------
CLIN_PW="a clinician's long passphrase 2026"
# new_user NAME ROLE [EXTRA JSON]: the admin asks (202: two-person control);
# sets STATUS and BODY as the admin saw them.  approve_new: the local
# operator approves every request asked so far, in one run (this test is
# about logins, with a 5-second idle timeout; the approval rules have tests
# of their own).
RIDS=()
new_user() {
    req -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"role\":\"$2\",\"password\":\"$CLIN_PW\"${3:-}}" "$BASE/api/users"
    local id
    id=$(approval_id <<<"$BODY")
    [ -z "$id" ] || RIDS+=("$id")
}
approve_new() {
    [ "${#RIDS[@]}" -eq 0 ] && return
    "$MEDVAULT" approvals approve "${RIDS[@]}" --data "$D" --key-file "$K" >/dev/null 2>&1 ||
        fail "approving ${RIDS[*]}"
    RIDS=()
}
new_user alice clinician ',"practitioner":"prac-1"'
expect_eq "$STATUS" "202" "admin asks for a clinician (two-person control)"
ALICE_SECRET=$(printf '%s' "$BODY" | json_get secret)
expect_contains "$BODY" "otpauth://totp/" "enrollment URI"
expect_contains "$BODY" '"recovery_codes":["' "recovery codes"
ALICE_RECOVERY=$(printf '%s' "$BODY" | sed -n 's/.*"recovery_codes":\["\([^"]*\)".*/\1/p')
ALICE_RECOVERY2=$(printf '%s' "$BODY" | sed -n 's/.*"recovery_codes":\["[^"]*","\([^"]*\)".*/\1/p')
for u in bob carol dave erin; do
    new_user "$u" nurse
    printf '%s' "$BODY" | json_get secret > "$WORK/secret.$u"
done
expect_eq "$STATUS" "202" "more users"
ERIN_SECRET=$(json_get secret <<<"$BODY")   # erin was created last
new_user frank clinician
FRANK_SECRET=$(json_get secret <<<"$BODY")
new_user alice clinician
expect_eq "$STATUS" "409" "duplicate username"
req -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"username":"weak","role":"nurse","password":"password1234"}' "$BASE/api/users"
expect_eq "$STATUS" "400" "weak password refused"
expect_not_contains "$BODY" "password1234" "refusal does not echo the password"
req -H 'Content-Type: application/json' -d '{"username":"x","role":"admin","password":"zz"}' \
    "$BASE/api/users"
expect_eq "$STATUS" "401" "no session: cannot create a user"
req -H "Authorization: Bearer not-a-token" -H 'Content-Type: application/json' \
    -d '{"username":"x","role":"admin","password":"zz"}' "$BASE/api/users"
expect_eq "$STATUS" "401" "bad token: cannot create a user"

approve_new
login alice "$CLIN_PW" "$(totp "$ALICE_SECRET")"
expect_eq "$STATUS" "200" "clinician login"
ALICE=$(token_of)
req -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
    -d '{"username":"x","role":"admin","password":"a long enough passphrase"}' "$BASE/api/users"
expect_eq "$STATUS" "403" "a clinician cannot create users"
req -H "Authorization: Bearer $ALICE" "$BASE/api/users"
expect_eq "$STATUS" "403" "a clinician cannot list users"

# --- every failure looks the same ------------------------------------------------------
sleep 0.02
login bob "wrong password here!" "$(totp "$ALICE_SECRET")"; S1=$STATUS; B1=$BODY
sleep 0.02
login carol "$CLIN_PW" "000000"; S2=$STATUS; B2=$BODY
sleep 0.02
login nobody-at-all "$CLIN_PW" "123456"; S3=$STATUS; B3=$BODY
expect_eq "$S1 $S2 $S3" "401 401 401" "wrong password / wrong TOTP / unknown user"
expect_eq "$B2" "$B1" "same body for wrong TOTP"
expect_eq "$B3" "$B1" "same body for unknown user"

# --- a TOTP code's time step is usable once ----------------------------------------------
CODE=$(totp "$ALICE_SECRET" "+30 seconds")
login alice "$CLIN_PW" "$CODE"
expect_eq "$STATUS" "200" "next-step code accepted (+1 step tolerance)"
sleep 0.02
login alice "$CLIN_PW" "$CODE"
expect_eq "$STATUS" "401" "replayed code refused"
sleep 0.02
login alice "$CLIN_PW" "$(totp "$ALICE_SECRET" "+90 seconds")"
expect_eq "$STATUS" "401" "a code 3 steps ahead refused"
# A recovery code instead of TOTP, once.
sleep 0.02
req -H 'Content-Type: application/json' -d "{\"username\":\"alice\",\"password\":\"$CLIN_PW\",\"recovery_code\":\"$ALICE_RECOVERY\"}" "$BASE/auth/login"
expect_eq "$STATUS" "200" "recovery code login"
sleep 0.02
req -H 'Content-Type: application/json' -d "{\"username\":\"alice\",\"password\":\"$CLIN_PW\",\"recovery_code\":\"$ALICE_RECOVERY\"}" "$BASE/auth/login"
expect_eq "$STATUS" "401" "recovery code single use"

# --- lockout and unlock (lock_after = 3) ------------------------------------------------------
# The admin takes a fresh session with a recovery code: the absolute
# lifetime (14 s) must not run out under ASan on a busy machine.
ADMIN_RECOVERY=$(sed -n 's/.*"recovery_codes":\["\([^"]*\)".*/\1/p' "$WORK/init.json")
req -H 'Content-Type: application/json' -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PW\",\"recovery_code\":\"$ADMIN_RECOVERY\"}" "$BASE/auth/login"
expect_eq "$STATUS" "200" "admin logs in again with a recovery code"
ADMIN=$(token_of)
# Failures are no weapon: three wrong passwords from three addresses close
# dave's password path for lock_time, but his live session is kept, the
# right password is refused exactly like a wrong one (as for a name that
# does not exist), and the lock is told only to whoever proves both factors.
DAVE_SECRET=$(cat "$WORK/secret.dave")
login dave "$CLIN_PW" "$(totp "$DAVE_SECRET" "-30 seconds")"
expect_eq "$STATUS" "200" "dave logs in before the attack"
DAVE=$(token_of)
for i in 1 2 3; do
    sleep 0.02
    login dave "wrong password number $i" "123456" "127.0.0.$((i + 10))"
    login nobody-by-that-name "wrong password number $i" "123456" "127.0.0.$((i + 10))"
done
sleep 0.02
login dave "$CLIN_PW" "$(totp "$DAVE_SECRET")"
expect_eq "$STATUS" "401" "closed after 3 failures: the right password answers like a wrong one"
DAVE_ANSWER=$BODY
login nobody-by-that-name "$CLIN_PW" "123456"
expect_eq "$STATUS" "401" "a name that does not exist answers the same"
expect_eq "$BODY" "$DAVE_ANSWER" "the same body"
req -H "Authorization: Bearer $DAVE" "$BASE/api/whoami"
expect_eq "$STATUS" "200" "dave's live session is kept"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/users/dave"
expect_contains "$BODY" '"locked":false' "not locked by a person"
expect_not_contains "$BODY" '"password_locked_until":""' "the password path is closed for a while"
# The CLI unlocks while the server runs (another process on the same store).
run 0 "$MEDVAULT" user unlock dave --data "$D" --key-file "$K"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/users/dave"
expect_contains "$BODY" '"password_locked_until":""' "opened, seen by the server"
sleep 0.02
login dave "$CLIN_PW" "$(totp "$DAVE_SECRET" "+30 seconds")"
expect_eq "$STATUS" "200" "dave logs in again"

# --- spraying from one address across accounts (source_max_failures = 12) -----------------------
for u in s1 s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 s12 s13 s14; do
    login "$u" "Spring2026!Spring" "123456" 127.0.0.9
done
expect_eq "$STATUS" "429" "spraying from one address is throttled"
curl -s -D "$WORK/h" -o /dev/null --interface 127.0.0.9 -H 'Content-Type: application/json' \
    -d '{"username":"bob","password":"x","totp":"1"}' "$BASE/auth/login"
grep -qi '^retry-after: [0-9]' "$WORK/h" && pass || fail "429 without Retry-After"
login frank "not frank's password" "123456" 127.0.0.10
expect_eq "$STATUS" "401" "another address is not throttled"

# --- revocation takes effect on the very next request -------------------------------------
# A fresh session (the sections above take longer than the idle timeout
# under ASan on a busy machine).
req -H 'Content-Type: application/json' -d "{\"username\":\"alice\",\"password\":\"$CLIN_PW\",\"recovery_code\":\"$ALICE_RECOVERY2\"}" "$BASE/auth/login"
expect_eq "$STATUS" "200" "alice logs in again with another recovery code"
ALICE=$(token_of)
req -H "Authorization: Bearer $ALICE" "$BASE/api/whoami"
expect_eq "$STATUS" "200" "alice's session works"
req -X POST -H "Authorization: Bearer $ADMIN" "$BASE/api/users/alice/revoke-sessions"
expect_eq "$STATUS" "200" "admin revokes alice's sessions"
req -H "Authorization: Bearer $ALICE" "$BASE/api/whoami"
expect_eq "$STATUS" "401" "revoked session refused at once"

# --- a lock from the CLI (another process) bites on the very next request ----------------
login carol "$CLIN_PW" "$(totp "$(cat "$WORK/secret.carol")")"
CAROL=$(token_of)
req -H "Authorization: Bearer $CAROL" "$BASE/api/whoami"
expect_eq "$STATUS" "200" "carol's session works"
run 0 "$MEDVAULT" user lock carol --reason "laptop stolen" --data "$D" --key-file "$K"
req -H "Authorization: Bearer $CAROL" "$BASE/api/whoami"
expect_eq "$STATUS" "401" "locked from the CLI: refused at once"

# --- logout --------------------------------------------------------------------------
login erin "$CLIN_PW" "$(totp "$ERIN_SECRET")"
ERIN=$(token_of)
req -X POST -H "Authorization: Bearer $ERIN" "$BASE/auth/logout"
expect_eq "$STATUS" "204" "logout"
req -H "Authorization: Bearer $ERIN" "$BASE/api/whoami"
expect_eq "$STATUS" "401" "logged-out token refused"

# --- malformed input: a clear 4xx and the server keeps serving -----------------------------
req -H 'Content-Type: application/json' -d '{"username": "a",' "$BASE/auth/login"
expect_eq "$STATUS" "400" "malformed JSON"
expect_contains "$BODY" '"resourceType":"OperationOutcome"' "errors are OperationOutcome"
req -H 'Content-Type: text/plain' -d 'hello' "$BASE/auth/login"
expect_eq "$STATUS" "415" "wrong content type"
head -c 10000 /dev/zero | tr '\0' 'a' > "$WORK/big"
req -H 'Content-Type: application/json' --data-binary @"$WORK/big" "$BASE/auth/login"
expect_eq "$STATUS" "413" "oversized body"
req -H "X-Filler: $(head -c 6000 /dev/zero | tr '\0' 'b')" "$BASE/api/whoami"
expect_eq "$STATUS" "431" "oversized headers"
req "$BASE/no/such/thing"
expect_eq "$STATUS" "404" "unknown endpoint"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/whoami"
expect_eq "$STATUS" "200" "still serving after bad requests"
curl -s -D "$WORK/h" -o /dev/null -H "Authorization: Bearer $ADMIN" "$BASE/api/whoami"
for h in x-request-id cache-control x-content-type-options; do
    grep -qi "^$h:" "$WORK/h" && pass || fail "missing header $h"
done
grep -qi '^cache-control: no-store' "$WORK/h" && pass || fail "cache-control is not no-store"

# --- step-up: sensitive actions need a fresh second factor (step_up_valid = 10s) --------------
# (10 s, so that a loaded machine still asks for the accounts above in time;
# the admin keeps its session alive meanwhile: idle_timeout is 5 s)
for i in $(seq 1 11); do
    sleep 1
    req -H "Authorization: Bearer $ADMIN" "$BASE/api/whoami"
done
req -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"username\":\"gina\",\"role\":\"nurse\",\"password\":\"$CLIN_PW\"}" "$BASE/api/users"
expect_eq "$STATUS" "401" "stale second factor: step-up required"
expect_contains "$BODY" "step-up" "says step-up"
req -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"totp\":\"$(totp "$ADMIN_SECRET" "+30 seconds")\"}" "$BASE/auth/step-up"
expect_eq "$STATUS" "200" "step-up with a fresh code"
req -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"username\":\"gina\",\"role\":\"nurse\",\"password\":\"$CLIN_PW\"}" "$BASE/api/users"
expect_eq "$STATUS" "202" "after step-up the action goes through"

# --- idle (5 s) and absolute (14 s) expiry ----------------------------------------------------
# frank keeps busy (every 0.6 s) while the admin's session sits idle.  The
# absolute lifetime is shortened to 14 s only now (a restart with another
# config: sessions outlive it), so that a loaded machine running the steps
# above slowly cannot expire the admin's session before its time.
login frank "$CLIN_PW" "$(totp "$FRANK_SECRET")"
FRANK=$(token_of)
for i in $(seq 1 10); do
    sleep 0.6
    req -H "Authorization: Bearer $FRANK" "$BASE/api/whoami"
done
expect_eq "$STATUS" "200" "an active session outlives the idle timeout"
req -H "Authorization: Bearer $ADMIN" "$BASE/api/whoami"
expect_eq "$STATUS" "401" "idle session expired"
kill -TERM $PID; wait $PID
sed 's/^absolute_timeout = .*/absolute_timeout = 14s/' "$WORK/server.conf" > "$WORK/short.conf"
start_server "http://127.0.0.1:0" "$WORK/short.conf"
BASE="http://127.0.0.1:$PORT"
for i in $(seq 1 16); do
    sleep 0.6
    req -H "Authorization: Bearer $FRANK" "$BASE/api/whoami"
done
expect_eq "$STATUS" "401" "absolute expiry despite activity"

# --- nothing secret in the access log ------------------------------------------------------
for secret in "$ADMIN_PW" "$CLIN_PW" "$ADMIN" "$ALICE" "$ADMIN_SECRET"; do
    grep -qF -- "$secret" "$WORK/serve.err" && fail "a secret reached the server log" || pass
done
[ "$(grep -c ' /auth/login ' "$WORK/serve.err")" -gt 10 ] && pass || fail "access log lines missing"

# --- SIGTERM: finish, final checkpoint, exit 0 -------------------------------------------------
kill -TERM $PID
wait $PID; rc=$?
expect_eq "$rc" "0" "clean exit on SIGTERM"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
trail=$(sqlite3 "$D/medvault.db" "SELECT action || ' ' || actor || ' ' || outcome FROM audit")
expect_contains "$trail" "auth.login" "logins audited"
expect_contains "$trail" "second factor wrong" "password-right-TOTP-wrong is its own event"
expect_contains "$trail" "account.lock" "lock audited"
expect_contains "$trail" "anonymous" "unknown user recorded without its name"
expect_not_contains "$trail" "nobody-at-all" "typed unknown username not in the trail"
for secret in "$ADMIN_PW" "$CLIN_PW" "$ADMIN" "$ALICE"; do
    grep -qaF -- "$secret" "$D/medvault.db" "$D/medvault.db-wal" 2>/dev/null &&
        fail "a secret is in the database" || pass
done
last=$(sqlite3 "$D/medvault.db" "SELECT max(seq) FROM audit")
cp=$(sqlite3 "$D/medvault.db" "SELECT max(seq) FROM audit_checkpoints")
expect_eq "$cp" "$last" "final checkpoint at shutdown"

# --- HTTPS with the certificate init made; plain HTTP only on loopback -------------------------
run 1 "$MEDVAULT" serve --data "$D" --key-file "$K" --listen "http://0.0.0.0:0"
expect_contains "$ERR" "loopback" "plain HTTP refused off loopback"
start_server "https://127.0.0.1:0"
curl -s -o /dev/null -w '%{http_code}' --cacert "$D/tls/cert.pem" \
    "https://127.0.0.1:$PORT/api/whoami" > "$WORK/code"
expect_eq "$(cat "$WORK/code")" "401" "TLS handshake with the init certificate"
if curl -s -o /dev/null --cacert "$D/tls/cert.pem" --tlsv1.1 --tls-max 1.1 --ciphers DEFAULT@SECLEVEL=0 \
        "https://127.0.0.1:$PORT/api/whoami"; then
    fail "TLS 1.1 accepted"
else
    pass
fi
curl -s -D "$WORK/h" -o /dev/null --cacert "$D/tls/cert.pem" "https://127.0.0.1:$PORT/api/whoami"
grep -qi '^strict-transport-security:' "$WORK/h" && pass || fail "no HSTS on https"
kill -TERM $PID; wait $PID

finish
