#!/usr/bin/env bash
# Two-person control of privilege, and lineage (issue 11, items 1 and 2):
# the attack run's "admin mints readers" reproduced against a live server
# with detection on.
#   - an admin asks for ten service accounts with system/Patient.rs: none can
#     log in (so none can read) before a security officer approves;
#   - approved, each reads 12 patients of its own by search, as the attack
#     did (by id, half of each one's new): together they get at most 20
#     distinct patients, and the admin who
#     made them is contained;
#   - a security officer the admin minted (even once approved) cannot close
#     the resulting alerts, nor can the officer who approved the readers:
#     closing is a request a third, uninvolved person approves;
#   - resets, a detector-contained account's unlock: requests; the requester
#     and the involved cannot approve; refusal and expiry; the local
#     operator's path works and raises an alert; a burst of account requests
#     raises an alert; everything is in the trail.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { echo "oathtool missing"; exit 1; }

as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
FJ=(-H 'Content-Type: application/fhir+json')
JS=(-H 'Content-Type: application/json')
ST=(--data "$WORK/tp" --key-file "$WORK/tp.key")

# --- a hospital of 60 patients, loaded without detection -----------------------------------
api_server tp
printf '%s\n' "$PW" | "$MEDVAULT" user add --username registrar --role service \
    --scopes "system/Patient.cruds" --json "${ST[@]}" > "$WORK/registrar.json" 2>/dev/null ||
    fail "registrar"
REG=$(login registrar "$PW" "$(json_get secret < "$WORK/registrar.json")")
PIDS=()
for i in $(seq 1 60); do
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Fam$i\"}]}" \
        "$BASE/fhir/Patient"
    [ "$STATUS" = 201 ] || fail "patient $i: $STATUS"
    PIDS+=("$(sed -n 's|^[Ll]ocation: .*/Patient/\([^/]*\)/_history.*|\1|p' "$WORK/headers" | tr -d '\r')")
done
[ -n "${PIDS[59]}" ] && pass || fail "the patients' ids"
api_stop
printf 'lock_after = 50\n' > "$WORK/detect.conf"      # detection on (the default)
api_serve "$WORK/detect.conf"               # the sessions outlive the restart
[ -n "$ADMIN" ] && [ -n "$APPROVER" ] && pass || fail "admin and officer logged in"

# ask NAME ROLE EXTRA: the admin asks; sets BODY, STATUS, RID (the request) and
# $WORK/NAME.secret.
ask() {
    as "$ADMIN" "${JS[@]}" -d "{\"username\":\"$1\",\"role\":\"$2\",\"password\":\"$PW\"${3:-}}" \
        "$BASE/api/users"
    RID=$(approval_id <<<"$BODY")
    json_get secret <<<"$BODY" > "$WORK/$1.secret"
}
try_login() {  # NAME -> sets STATUS, BODY (from 127.0.0.3: the logins expected to
               # fail must not get the operator's own address throttled)
    req --interface 127.0.0.3 "${JS[@]}" -d "{\"username\":\"$1\",\"password\":\"$PW\",\"totp\":\"$(oathtool --totp -b "$(cat "$WORK/$1.secret")")\"}" \
        "$BASE/auth/login"
}

# --- the admin mints ten readers: nothing opens before approval ------------------------------
RIDS=()
for i in $(seq 0 9); do
    ask "reader$i" service ',"scopes":"system/Patient.rs"'
    expect_eq "$STATUS" "202" "reader$i: the creation is a request"
    RIDS+=("$RID")
done
expect_contains "$BODY" '"status":"pending-approval"' "the answer says it awaits approval"
expect_contains "$BODY" '"approver_role":"security"' "and who approves"
expect_contains "$(cat "$WORK/headers")" "/api/approvals/$RID" "Location of the request"
try_login reader0
expect_eq "$STATUS" "423" "a reader awaiting approval cannot log in"
expect_not_contains "$BODY" '"token"' "no session for it"
as "$APPROVER" "$BASE/api/users/reader0"
expect_contains "$BODY" '"pending":"create"' "the account shows its pending creation"
as "$ADMIN" -X POST "$BASE/api/approvals/${RIDS[0]}/approve"
expect_eq "$STATUS" "403" "the admin cannot approve (not security)"
as "$APPROVER" "$BASE/api/approvals?status=pending"
expect_eq "$STATUS" "200" "the officer lists pending requests"
[ "$(grep -o '"kind":"account.create"' <<<"$BODY" | wc -l)" -ge 10 ] && pass ||
    fail "ten creations pending: $BODY"
as "$ADMIN" "$BASE/api/alerts"
expect_eq "$STATUS" "403" "alerts stay the security officer's"
as "$APPROVER" "$BASE/api/alerts"
expect_contains "$BODY" '"detectors":["privilege"]' "a burst of account requests is an alert"
expect_contains "$BODY" 'account creations or credential resets within an hour' \
    "in plain words"

# ... and a security officer of the admin's making
ask mintsec security
expect_eq "$STATUS" "202" "a security officer is a request too"
MINTSEC_RID=$RID
try_login mintsec
expect_eq "$STATUS" "423" "an unapproved officer cannot log in"

# --- approved: the readers read 12 each, as the attack did -----------------------------------
for r in "${RIDS[@]}" "$MINTSEC_RID"; do approve "$r" || true; done
as "$APPROVER" "$BASE/api/approvals/${RIDS[0]}"
expect_contains "$BODY" '"status":"approved"' "the request shows its approval"
expect_contains "$BODY" '"decided_by_username":"approver"' "and who approved"
as "$APPROVER" -X POST "$BASE/api/approvals/${RIDS[0]}/approve"
expect_eq "$STATUS" "409" "a decided request cannot be decided again"

: > "$WORK/exposed"
for i in $(seq 0 9); do
    try_login "reader$i"
    tok=$(json_get token <<<"$BODY")
    [ -n "$tok" ] || continue              # contained already: nothing more to read
    for j in $(seq 0 11); do           # 12 each, half of them new to the lineage
        p=${PIDS[$(( (6 * i + j) % 60 ))]}
        as "$tok" "$BASE/fhir/Patient/$p"
        [ "$STATUS" = 200 ] && printf '%s\n' "$p" >> "$WORK/exposed"
    done
done
exposed=$(sort -u "$WORK/exposed" | wc -l)
[ "$exposed" -ge 1 ] && pass || fail "the readers read nothing at all: the attack did not run"
[ "$exposed" -le 20 ] && pass || fail "the minted readers read $exposed distinct patients (> 20)"
as "$APPROVER" "$BASE/api/users/admin"
expect_contains "$BODY" '"locked":true' "the admin who minted them is contained"
expect_contains "$BODY" 'accounts of its making read too much' "for its readers' reads"
as "$APPROVER" "$BASE/api/alerts"
ALERTS=$BODY
expect_contains "$ALERTS" '"actor":"lineage:user:' "the alert names the lineage"
LINEAGE_ALERT=$(grep -o '"id":"[0-9a-f]*","time":"[^"]*","time_us":[0-9]*,"actor":"lineage:user:' <<<"$ALERTS" |
    head -1 | sed 's/"id":"\([0-9a-f]*\)".*/\1/')
[ -n "$LINEAGE_ALERT" ] && pass || fail "no lineage alert id in: $ALERTS"

# --- who may close it: not the minted officer, not the approver ---------------------------------
MINTSEC=""
try_login mintsec
MINTSEC=$(json_get token <<<"$BODY")
[ -n "$MINTSEC" ] && pass || fail "the approved minted officer logs in: $BODY"
as "$MINTSEC" "${JS[@]}" -d '{"resolution":"benign","note":"nothing to see"}' \
    "$BASE/api/alerts/$LINEAGE_ALERT/close"
expect_eq "$STATUS" "403" "the minted officer is refused: its maker is contained"
as "$APPROVER" "${JS[@]}" -d '{"resolution":"benign","note":"nothing to see"}' \
    "$BASE/api/alerts/$LINEAGE_ALERT/close"
expect_eq "$STATUS" "202" "the officer who approved the readers may only ask to close it"
CLOSE_RID=$(approval_id <<<"$BODY")
as "$APPROVER" "$BASE/api/alerts/$LINEAGE_ALERT"
expect_not_contains "$BODY" '"status":"closed"' "the alert stays open"
as "$APPROVER" -X POST "$BASE/api/approvals/$CLOSE_RID/approve"
expect_eq "$STATUS" "403" "nobody approves their own request"
expect_contains "$BODY" "not the one who asked" "and is told why"
as "$MINTSEC" -X POST "$BASE/api/approvals/$CLOSE_RID/approve"
expect_eq "$STATUS" "401" "the minted officer is locked out"

# an uninvolved officer, made by the local operator (the key file's holder)
printf '%s\n' "$PW" | "$MEDVAULT" user add --username third --role security --json "${ST[@]}" \
    > "$WORK/third.json" 2> "$WORK/third.err" || fail "third officer"
expect_contains "$(cat "$WORK/third.err")" "without a second person" "the operator is told"
json_get secret < "$WORK/third.json" > "$WORK/third.secret"
THIRD=$(json_get token <<<"$(try_login third; printf '%s' "$BODY")")
as "$THIRD" -X POST "$BASE/api/approvals/$CLOSE_RID/approve"
expect_eq "$STATUS" "200" "an uninvolved officer approves the close"
as "$THIRD" "$BASE/api/alerts/$LINEAGE_ALERT"
expect_contains "$BODY" '"status":"closed"' "now the alert is closed"
expect_contains "$BODY" "approved by user:" "with who approved it"

# --- resets: held aside until approved ----------------------------------------------------------
printf '%s\n' "$PW" | "$MEDVAULT" user add --username nurse1 --role nurse --json "${ST[@]}" \
    > "$WORK/nurse1.json" 2>/dev/null || fail "nurse1"
json_get secret < "$WORK/nurse1.json" > "$WORK/nurse1.secret"
printf '%s\n' "$ADMIN_PW" | "$MEDVAULT" user add --username admin2 --role admin --json "${ST[@]}" \
    > "$WORK/admin2.json" 2>/dev/null || fail "admin2"
ADMIN=$(login admin2 "$ADMIN_PW" "$(json_get secret < "$WORK/admin2.json")")
NEW_PW="an entirely new passphrase 2026"
as "$ADMIN" "${JS[@]}" -d "{\"password\":\"$NEW_PW\"}" "$BASE/api/users/nurse1/reset-password"
expect_eq "$STATUS" "202" "a password reset is a request"
RESET_RID=$(approval_id <<<"$BODY")
req "${JS[@]}" -d "{\"username\":\"nurse1\",\"password\":\"$NEW_PW\",\"totp\":\"$(oathtool --totp -b "$(cat "$WORK/nurse1.secret")")\"}" \
    "$BASE/auth/login"
expect_eq "$STATUS" "401" "the new password opens nothing before approval"
as "$ADMIN" -X POST "$BASE/api/users/nurse1/reset-mfa"
expect_eq "$STATUS" "409" "one pending change at a time"
as "$THIRD" -X POST "$BASE/api/approvals/$RESET_RID/approve"
expect_eq "$STATUS" "200" "approved"
sleep 1
req "${JS[@]}" -d "{\"username\":\"nurse1\",\"password\":\"$NEW_PW\",\"totp\":\"$(oathtool --totp -b "$(cat "$WORK/nurse1.secret")")\"}" \
    "$BASE/auth/login"
expect_eq "$STATUS" "200" "the new password works once approved"
as "$ADMIN" -X POST "$BASE/api/users/nurse1/reset-mfa"
expect_eq "$STATUS" "202" "a second-factor reset is a request"
expect_contains "$BODY" "otpauth://" "its enrollment is shown to the requester"
MFA_RID=$(approval_id <<<"$BODY")
as "$THIRD" "${JS[@]}" -d '{"note":"not asked by the nurse"}' -X POST \
    "$BASE/api/approvals/$MFA_RID/refuse"
expect_eq "$STATUS" "200" "refused"
expect_contains "$BODY" '"status":"refused"' "the request says so"
as "$THIRD" "$BASE/api/users/nurse1"
expect_contains "$BODY" '"pending":""' "nothing is held aside any more"

# --- a contained account's unlock ---------------------------------------------------------------
as "$THIRD" -X POST "$BASE/api/users/admin/unlock"
expect_eq "$STATUS" "202" "unlocking a contained account is a request"
UNLOCK_RID=$(approval_id <<<"$BODY")
as "$THIRD" -X POST "$BASE/api/approvals/$UNLOCK_RID/approve"
expect_eq "$STATUS" "403" "not by the one who asked"
run 0 "$MEDVAULT" approvals approve "$UNLOCK_RID" "${ST[@]}"
expect_contains "$OUT" "alone: an alert was raised" "the local operator may, and is told"
as "$THIRD" "$BASE/api/users/admin"
expect_contains "$BODY" '"locked":false' "the admin is unlocked"
as "$THIRD" "$BASE/api/alerts"
expect_contains "$BODY" '"change":"approval account.unlock"' "the operator's decision is an alert"
try_login reader9           # refused and locked when its lineage was contained
[ "$STATUS" != 200 ] && pass || fail "a minted reader stays contained"
# an admin cannot turn the detector's containment into a lock of its own
as "$ADMIN" -X POST "$BASE/api/users/reader9/lock"
as "$ADMIN" -X POST "$BASE/api/users/reader9/unlock"
expect_eq "$STATUS" "403" "re-locking does not let an admin lift a containment"

# --- the CLI lists; refused and expired requests ---------------------------------------------------
run 0 "$MEDVAULT" approvals list --status approved "${ST[@]}"
expect_contains "$OUT" "account.create" "the CLI lists approved requests"
run 0 "$MEDVAULT" approvals show "$MFA_RID" --json "${ST[@]}"
expect_contains "$OUT" '"note":"not asked by the nurse"' "the refusal's note"
run 1 "$MEDVAULT" approvals approve "$MFA_RID" "${ST[@]}"
expect_one_line "$ERR" "a refused request cannot be approved"
run 2 "$MEDVAULT" approvals frobnicate "${ST[@]}"
api_stop
printf 'approval_ttl = 0\n' > "$WORK/bad.conf"
run 1 "$MEDVAULT" serve "${ST[@]}" --config "$WORK/bad.conf" --listen http://127.0.0.1:0
expect_contains "$ERR" "approval_ttl" "a request that would expire at once is refused"
printf 'approval_ttl = 1s\n' > "$WORK/short.conf"
api_serve "$WORK/short.conf"
sleep 1                                    # sessions outlive a restart
ask late nurse
EXP_RID=$RID
sleep 1.5
as "$THIRD" -X POST "$BASE/api/approvals/$EXP_RID/approve"
expect_eq "$STATUS" "409" "an expired request cannot be approved"
expect_contains "$BODY" "expired" "and says so"
as "$THIRD" "$BASE/api/approvals/$EXP_RID"
expect_contains "$BODY" '"status":"expired"' "it is marked expired"
as "$ADMIN" -X POST "$BASE/api/users/late/unlock"
try_login late
expect_eq "$STATUS" "423" "its account never opened, unlock or not"
api_stop

# --- the trail ------------------------------------------------------------------------------------
run 0 "$MEDVAULT" audit verify "${ST[@]}"
trail=$(sqlite3 "$WORK/tp/medvault.db" "SELECT action || ' ' || outcome FROM audit")
for a in "approval.request pending" "approval.approve approved" "approval.refuse refused" \
         "approval.expire expired" "account.create pending" "account.create approved" \
         "account.reset-password pending" "account.reset-password approved"; do
    expect_contains "$trail" "$a" "the trail records $a"
done
finish
