#!/usr/bin/env bash
# medvault user: every subcommand, passwords from stdin only, the enrollment
# shown once (QR code for a terminal, or one JSON object), and each change in
# the audit trail.
. "$(dirname "$0")/lib.sh"

D="$WORK/u"; K="$WORK/u.key"
run 0 "$MEDVAULT" init --data "$D" --key-file "$K"
expect_contains "$OUT" "password (shown once):" "generated admin password shown once"
expect_contains "$OUT" "otpauth://totp/medvault:admin" "admin enrollment"
expect_contains "$OUT" "█" "QR code drawn"
S=(--data "$D" --key-file "$K")
PW="an unremarkable but long passphrase"

# add (human output, with a QR code) and add --json (one object)
run 0 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username alice --role clinician --practitioner prac-7 --data '$D' --key-file '$K'"
expect_contains "$OUT" "created clinician account alice" "add"
expect_contains "$OUT" "█" "QR code for alice"
expect_eq "$(printf '%s\n' "$OUT" | grep -cE '^  [0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$')" "10" "ten recovery codes"
run 0 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username etl --role service --scopes 'system/Patient.rs system/Observation.c' --json --data '$D' --key-file '$K'"
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" "1" "--json prints one line"
for k in otpauth_uri secret recovery_codes; do expect_contains "$OUT" "\"$k\"" "--json has $k"; done
expect_not_contains "$OUT" "$PW" "password not echoed"

# refusals: usage (2) and failures (1), one line each, nothing created
run 2 "$MEDVAULT" user add --username bob "${S[@]}"
run 2 "$MEDVAULT" user add --username bob --role wizard "${S[@]}"
run 2 "$MEDVAULT" user frobnicate bob "${S[@]}"
run 1 sh -c "printf 'short\n' | '$MEDVAULT' user add --username bob --role nurse --data '$D' --key-file '$K'"
expect_contains "$ERR" "password" "short password refused"
expect_one_line "$ERR" "short password refused"
run 1 sh -c "printf '%s\n' 'wonderland of the looking glass' | '$MEDVAULT' user add --username wonderland --role nurse --data '$D' --key-file '$K'"
run 1 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username alice --role nurse --data '$D' --key-file '$K'"
expect_contains "$ERR" "alice" "duplicate named"
run 1 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username svc2 --role service --scopes 'everything' --data '$D' --key-file '$K'"
run 1 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username n1 --role nurse --patient p1 --data '$D' --key-file '$K'"
run 2 sh -c "printf '%s\n' '$PW' | '$MEDVAULT' user add --username bob --role nurse --data '$D' --passphrase-stdin"

# list, show
run 0 "$MEDVAULT" user list "${S[@]}"
for u in admin alice etl; do expect_contains "$OUT" "$u" "list has $u"; done
expect_not_contains "$OUT" "bob" "refused users were not created"
run 0 "$MEDVAULT" user list --json "${S[@]}"
expect_contains "$OUT" '"username":"alice"' "list --json"
run 0 "$MEDVAULT" user show alice --json "${S[@]}"
expect_contains "$OUT" '"practitioner":"prac-7"' "show links the practitioner"
expect_contains "$OUT" '"recovery_codes_left":10' "show counts recovery codes"
run 1 "$MEDVAULT" user show nobody "${S[@]}"

# lock / unlock / revoke-sessions / reset-password / reset-mfa
run 0 "$MEDVAULT" user lock alice --reason "phone stolen" "${S[@]}"
run 0 "$MEDVAULT" user show alice --json "${S[@]}"
expect_contains "$OUT" '"locked":true' "locked"
expect_contains "$OUT" "phone stolen" "lock reason"
run 0 "$MEDVAULT" user unlock alice "${S[@]}"
run 0 "$MEDVAULT" user show alice --json "${S[@]}"
expect_contains "$OUT" '"locked":false' "unlocked"
run 0 "$MEDVAULT" user revoke-sessions alice "${S[@]}"
expect_contains "$OUT" "revoked 0 session" "revoke-sessions"
run 0 sh -c "printf '%s\n' 'a brand new passphrase, never used before' | '$MEDVAULT' user reset-password alice --data '$D' --key-file '$K'"
run 0 "$MEDVAULT" user reset-mfa alice --json "${S[@]}"
NEW_SECRET=$(printf '%s' "$OUT" | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')
[ -n "$NEW_SECRET" ] && pass || fail "reset-mfa gives a new secret"

# all of it is in the trail, without a password
actions=$(sqlite3 "$D/medvault.db" "SELECT group_concat(action, ' ') FROM audit")
for a in account.create account.lock account.unlock account.revoke-sessions \
         account.reset-password account.reset-mfa; do
    expect_contains "$actions" "$a" "audited: $a"
done
expect_absent_in_tree "$D" "$PW"
expect_absent_in_tree "$D" "$NEW_SECRET"
run 0 "$MEDVAULT" audit verify "${S[@]}"
finish
