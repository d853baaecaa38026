#!/usr/bin/env bash
# The detector in the running server, end to end: stolen accounts read a
# seeded hospital out as an attacker would, over the API, until contained.
#   - a clinician's stolen session on a break-the-glass spree: at most 10
#     patients disclosed, then every request of the account is refused;
#   - a stolen service account reading every patient: at most 20 disclosed;
#     its search pages are capped for an account without a baseline;
#   - the count survives a restart (the last day of the trail is replayed);
#   - containment locks the account, is audited (withheld answers too) and
#     raises an alert security sees at /api/alerts.
. "$(dirname "$0")/lib.sh"

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

new_store h
run 0 "$MEDVAULT" seed --patients 60 --staff 6 --seed 77 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/seed.json"
account() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }
PATIENTS=$(sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'")
expect_eq "$(printf '%s\n' "$PATIENTS" | grep -c .)" "60" "60 seeded patients"

SVC_PW="a thief's favourite service key"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username locum --role clinician \
    --practitioner prac-locum-nowhere --json --data "$D" --key-file "$K" > "$WORK/locum.json" ||
    fail "locum clinician"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username warehouse --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/svc.json" ||
    fail "service account"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username nosy-interface --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/svc3.json" ||
    fail "third service account"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username curious --role clinician \
    --practitioner prac-curious-nowhere --json --data "$D" --key-file "$K" > "$WORK/curious.json" ||
    fail "curious clinician"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username counter --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/svc4.json" ||
    fail "counting service account"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username pager --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/svc5.json" ||
    fail "paging service account"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username reporting --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/svc2.json" ||
    fail "second service account"

start() {
    "$MEDVAULT" serve --data "$D" --key-file "$K" --listen http://127.0.0.1:0 \
        > "$WORK/serve.out" 2> "$WORK/serve.err" &
    PID=$!
    PORT=""
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
    BASE="http://127.0.0.1:$PORT"
}
stop() { kill -TERM "$PID"; wait "$PID"; }
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
start

login() {  # USER PASSWORD SECRET -> prints token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$(oathtool --totp -b "$3")\"}" \
        "$BASE/auth/login" | json_get token
}
login_seeded() { login "$1" "$(account "$1" password)" "$(account "$1" secret)"; }
status_of() {  # TOKEN URL [HEADER] -> prints the status
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" ${3:+-H "$3"} "$2"
}

# --- a stolen clinician session breaks the glass again and again -------------------------
# (a locum in no care team: every read of a patient is break-the-glass)
DOC=$(login locum "$SVC_PW" "$(json_get secret < "$WORK/locum.json")")
[ -n "$DOC" ] && pass || fail "the locum logs in"
disclosed=0; refused=""
for p in $PATIENTS; do
    s=$(status_of "$DOC" "$BASE/fhir/Patient/$p" "X-Break-Glass-Reason: urgent review of the emergency admission")
    if [ "$s" = "200" ]; then disclosed=$((disclosed + 1)); else refused=$s; break; fi
done
[ -n "$refused" ] && pass || fail "the break-the-glass spree was never stopped ($disclosed disclosed)"
[ "$disclosed" -le 10 ] && pass || fail "break-the-glass spree: $disclosed patients disclosed, target <= 10"
[ "$disclosed" -ge 1 ] && pass || fail "the first emergency read should be allowed"
# the thief cannot answer a step-up; every further request is refused, and
# going on regardless gets the account contained
for p in $PATIENTS; do
    s=$(status_of "$DOC" "$BASE/fhir/Patient/$p" "X-Break-Glass-Reason: urgent review of the emergency admission")
    case "$s" in 401|403|429) ;; *) fail "a read after the spree was stopped answered $s"; break ;; esac
done
for url in "$BASE/fhir/Patient/$(printf "%s\n" $PATIENTS | head -1)" "$BASE/api/whoami" "$BASE/fhir/Patient?_count=5"; do
    s=$(status_of "$DOC" "$url")
    case "$s" in 401|403) pass ;; *) fail "after containment $url answered $s" ;; esac
done
run 0 "$MEDVAULT" user show locum --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"locked":true' "the contained clinician's account is locked"
# the password and TOTP are not enough to come back: a security officer must unlock
s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"username\":\"locum\",\"password\":\"$SVC_PW\",\"totp\":\"$(oathtool --totp -b "$(json_get secret < "$WORK/locum.json")" --now "$(date -u -d '+30 seconds' '+%Y-%m-%d %H:%M:%S UTC')")\"}" \
    "$BASE/auth/login")
expect_eq "$s" "423" "a contained account cannot log in again"

# --- a stolen service account reads everything it can ----------------------------------
SVC=$(login warehouse "$SVC_PW" "$(json_get secret < "$WORK/svc.json")")
[ -n "$SVC" ] && pass || fail "warehouse logs in"
curl -s -H "Authorization: Bearer $SVC" "$BASE/fhir/Patient?_count=100" |
    grep -o '"fullUrl":"Patient/[0-9a-f]*"' | sed 's/.*Patient\///; s/"//' > "$WORK/disclosed"
n=$(grep -c . "$WORK/disclosed")
# (its total -- all 60 -- discloses their existence: contained at once)
[ "$n" -le 20 ] && pass ||
    fail "a first page for an account without baseline: $n entries, expected at most 20"
refused=""
for p in $PATIENTS; do
    s=$(status_of "$SVC" "$BASE/fhir/Patient/$p")
    if [ "$s" = "200" ]; then echo "$p" >> "$WORK/disclosed"; else refused=$s; break; fi
done
[ -n "$refused" ] && pass || fail "the service read-out was never stopped"
disclosed=$(sort -u "$WORK/disclosed" | grep -c .)
[ "$disclosed" -le 20 ] && pass || fail "service read-out: $disclosed distinct patients disclosed, target <= 20"

# --- counting is disclosing: _summary=count tells which patients exist -------------------
# (the attack run counted over _lastUpdated windows, never counted against
# it, to find the burst of decoys and skip it)
CNT=$(login counter "$SVC_PW" "$(json_get secret < "$WORK/svc4.json")")
[ -n "$CNT" ] && pass || fail "counter logs in"
s=$(status_of "$CNT" "$BASE/fhir/Patient?_lastUpdated=gt2000-01-01&_summary=count")
[ "$s" != 200 ] && pass || fail "counting all 60 patients at once went unnoticed"
s=$(status_of "$CNT" "$BASE/fhir/Patient?_count=0")
[ "$s" != 200 ] && pass || fail "the service is contained after its counting"

# The total of a one-row page tells the same count: it is no way around.
PAGER=$(login pager "$SVC_PW" "$(json_get secret < "$WORK/svc5.json")")
s=$(status_of "$PAGER" "$BASE/fhir/Patient?_lastUpdated=gt2000-01-01&_count=1")
[ "$s" != 200 ] && pass || fail "a one-row page with the total of all 60 went unnoticed"
s=$(status_of "$PAGER" "$BASE/fhir/Patient?_count=1")
[ "$s" != 200 ] && pass || fail "the pager is contained after its total"

# --- the count survives a restart ---------------------------------------------------------
REP=$(login reporting "$SVC_PW" "$(json_get secret < "$WORK/svc2.json")")
before=0
for p in $(printf '%s\n' $PATIENTS | head -8); do
    [ "$(status_of "$REP" "$BASE/fhir/Patient/$p")" = "200" ] && before=$((before + 1))
done
expect_eq "$before" "8" "8 reads before the restart"
stop
expect_eq "$?" "0" "the server stops cleanly"
start
expect_contains "$(cat "$WORK/serve.err")" "detector state rebuilt" "state replayed at start"
REP=$(login reporting "$SVC_PW" "$(json_get secret < "$WORK/svc2.json")" 2>/dev/null)
after=0; refused=""
for p in $(printf '%s\n' $PATIENTS | tail -n +9); do
    s=$(status_of "$REP" "$BASE/fhir/Patient/$p")
    if [ "$s" = "200" ]; then after=$((after + 1)); else refused=$s; break; fi
done
[ -n "$refused" ] && pass || fail "after the restart the read-out was never stopped"
[ $((before + after)) -le 20 ] && pass ||
    fail "across a restart: $before + $after patients disclosed, target <= 20"

# --- a decoy planted while the server runs: its first read is contained ---------------------
run 0 "$MEDVAULT" decoy plant --count 2 --json --data "$D" --key-file "$K"
DECOY=$(printf '%s\n' "$OUT" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' | head -1)
[ -n "$DECOY" ] && pass || fail "a decoy id: $OUT"
sleep 1.5                                   # the server reloads its decoys every second
NOSY=$(login nosy-interface "$SVC_PW" "$(json_get secret < "$WORK/svc3.json")")
expect_eq "$(status_of "$NOSY" "$BASE/fhir/Patient/$(printf '%s\n' $PATIENTS | head -1)")" "200" \
    "an ordinary read goes through"
expect_eq "$(status_of "$NOSY" "$BASE/fhir/Patient/$DECOY")" "403" "the first read of a decoy is withheld"
s=$(status_of "$NOSY" "$BASE/api/whoami")
case "$s" in 401|403) pass ;; *) fail "after touching a decoy the account still works: $s" ;; esac
run 0 "$MEDVAULT" user show nosy-interface --json --data "$D" --key-file "$K"
expect_contains "$OUT" '"locked":true' "touching a decoy locks the account"

# --- a VIP's record: one unexplained look is an alert naming the patient-centred signal -------
VIP=$(printf '%s\n' $PATIENTS | sed -n 50p)
run 0 "$MEDVAULT" resource get "Patient/$VIP" --data "$D" --key-file "$K"
printf '%s' "$OUT" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
  r.meta=r.meta||{};r.meta.security=[{system:"http://terminology.hl7.org/CodeSystem/v3-ActCode",code:"CEL"}];
  process.stdout.write(JSON.stringify(r));})' > "$WORK/vip.json"
run 0 "$MEDVAULT" resource put "Patient/$VIP" --patient "$VIP" --file "$WORK/vip.json" --data "$D" --key-file "$K"
CUR=$(login curious "$SVC_PW" "$(json_get secret < "$WORK/curious.json")")
status_of "$CUR" "$BASE/fhir/Patient/$VIP" "X-Break-Glass-Reason: just checking on a famous person" >/dev/null
sleep 0.2

# --- declared bulk access: approved by a second security officer, then allowed --------------
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username officer-two --role security --json \
    --data "$D" --key-file "$K" > "$WORK/sec2.json" || fail "second security officer"
printf '%s\n' "$SVC_PW" | "$MEDVAULT" user add --username nightly-export --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/exp.json" ||
    fail "export account"
SEC=$(login_seeded demo-security)
ADM=$(login_seeded demo-admin)
SEC2=$(login officer-two "$SVC_PW" "$(json_get secret < "$WORK/sec2.json")")
post() {  # TOKEN PATH [BODY] -> STATUS, BODY
    STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' -d "${3:-}" "$BASE$2"); BODY=$(cat "$WORK/body")
}
post "$SEC" /api/users/nightly-export/bulk-access '{"patients_per_day":500,"days":1}'
expect_eq "$STATUS" "400" "a declaration needs a reason"
post "$SEC" /api/users/nightly-export/bulk-access \
    '{"patients_per_day":500,"days":1,"reason":"first synchronisation of the data warehouse"}'
expect_eq "$STATUS" "201" "security declares bulk access"
expect_contains "$BODY" '"approved_by":null' "pending until approved"
post "$SEC" /api/users/nightly-export/bulk-access/approve
expect_eq "$STATUS" "403" "the declarer cannot approve it"
post "$ADM" /api/users/nightly-export/bulk-access/approve
expect_eq "$STATUS" "403" "an admin cannot approve it"
post "$SEC2" /api/users/nightly-export/bulk-access/approve
expect_eq "$STATUS" "200" "a second security officer approves"
post "$SEC2" /api/users/nightly-export/bulk-access/approve
expect_eq "$STATUS" "409" "approved once"
EXP=$(login nightly-export "$SVC_PW" "$(json_get secret < "$WORK/exp.json")")
ok=0
for p in $(printf '%s\n' $PATIENTS | head -40); do
    [ "$(status_of "$EXP" "$BASE/fhir/Patient/$p")" = "200" ] && ok=$((ok + 1))
done
expect_eq "$ok" "40" "the declared export reads 40 patients without being stopped"
# its bulk listing carries a watermark: a decoy unique to that output
page=$(curl -s -H "Authorization: Bearer $EXP" "$BASE/fhir/Patient?_count=100")
expect_contains "$page" '"type":"searchset"' "the declared export lists patients"
run 0 "$MEDVAULT" decoy list --json --data "$D" --key-file "$K"
MARK=$(printf '%s\n' "$OUT" | grep '"purpose":"watermark"' | sed -n 's/.*"patient":"\([0-9a-f]*\)".*/\1/p' | head -1)
[ -n "$MARK" ] && pass || fail "a decoy was handed out as the listing's watermark: $OUT"
expect_contains "$page" "\"id\":\"$MARK\"" "the watermark decoy is in the listing"
expect_contains "$OUT" "nightly-export" "the watermark names the account it was handed to"
expect_eq "$(status_of "$EXP" "$BASE/api/whoami")" "200" "a declared export is not contained by its listing"
post "$ADM" /api/users/nightly-export/networks '{"cidrs":"not-a-network"}'
expect_eq "$STATUS" "400" "a malformed network list is refused"
post "$ADM" /api/users/nightly-export/networks '{"cidrs":"10.20.0.0/16"}'
expect_eq "$STATUS" "200" "a service's networks are set"

# --- what security sees, and what the trail says --------------------------------------------
alerts=$(curl -s -H "Authorization: Bearer $SEC" "$BASE/api/alerts")
expect_contains "$alerts" '"response":"contain"' "a containment alert"
expect_contains "$alerts" '"actor_username":"locum"' "the clinician's alert"
expect_contains "$alerts" '"actor_username":"warehouse"' "the service's alert"
printf '%s' "$alerts" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
  const a=JSON.parse(s).alerts.filter(x=>x.actor_username==="counter");
  process.exit(a.some(x=>x.detectors.includes("volume"))?0:1);})' && pass ||
    fail "counting patients raises a volume alert naming the service"
expect_contains "$alerts" '"decoy"' "the decoy alert"
printf '%s' "$alerts" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
  const a=JSON.parse(s).alerts.filter(x=>x.actor_username==="curious");
  process.exit(a.some(x=>x.detectors.includes("patient"))?0:1);})' && pass ||
    fail "a look at a VIP raises a patient-centred alert"
expect_not_contains "$alerts" "$SVC_PW" "no password in alerts"
stop
trail=$(sqlite3 "$D/medvault.db" "SELECT action || ' ' || outcome FROM audit")
expect_contains "$trail" "detect.alert contain" "the alert is in the trail"
expect_contains "$trail" "detect.withheld" "the withheld answers are in the trail"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"

# --- the escalation ladder is the hospital's to configure, and checked ------------------------
printf 'detect_alert_score = 50\ndetect_contain_score = 45\n' > "$WORK/ladder.conf"
run 1 "$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/ladder.conf" --listen http://127.0.0.1:0
expect_contains "$ERR" "ladder must rise" "a ladder out of order is refused, saying why"
printf 'detect_contain_score = 250\n' > "$WORK/ladder.conf"
run 1 "$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/ladder.conf" --listen http://127.0.0.1:0
expect_contains "$ERR" "detect_contain_score" "a score outside 0..100 is refused"
finish
