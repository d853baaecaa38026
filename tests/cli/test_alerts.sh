#!/usr/bin/env bash
# Alerts reach everyone who must see them (issue 5, "Alerts"): a server with
# detection on, a syslog collector (UDP) and a webhook receiver (HTTP) on
# loopback (tests/js/alert_listeners.mjs).  Two things raise alerts: a user
# whose password is right but whose TOTP codes are wrong, five times (the
# account is contained), and a clinician breaking the glass for patients
# outside its care.  Then:
#   - GET /api/alerts[/ID] for security only (403 admin and clinician, 401
#     without a token), the same document in the list and alone;
#   - each alert as an RFC 5424 line on the UDP listener and in the server's
#     log, and as its JSON document on the webhook, with the same id;
#   - `medvault alerts list|show` on the CLI, next to the running server;
#   - ack then close as benign through the API and through the CLI, with 409
#     (API) / exit 1 (CLI) for a transition the status does not allow, 400
#     for a bad resolution, and who did it recorded;
#   - detect.alert and detect.alert.update in the audit trail, which verifies;
#   - no password, token or TOTP code in any alert, syslog line or webhook body.
. "$(dirname "$0")/lib.sh"

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
command -v node >/dev/null 2>&1 || { fail "node is needed (make installs it)"; finish; exit 1; }
json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
# jsq EXPR < JSON: the value of a JavaScript expression over the document d
# (strings printed raw, anything else as JSON).
jsq() {
    node -e 'let s = ""; process.stdin.on("data", c => s += c).on("end", () => {
        const r = new Function("d", "return (" + process.argv[1] + ")")(JSON.parse(s));
        process.stdout.write(typeof r === "string" ? r : JSON.stringify(r) ?? ""); })' "$1"
}

# --- the listeners --------------------------------------------------------------------------
L="$WORK/listen"
node "$TESTS_DIR/js/alert_listeners.mjs" "$L" 2> "$WORK/listeners.err" &
LPID=$!
PID=""
trap 'kill $PID $LPID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 200); do [ -s "$L/ports" ] && break; sleep 0.05; done
[ -s "$L/ports" ] || { fail "listeners did not start: $(cat "$WORK/listeners.err")"; finish; exit 1; }
read -r UDP_PORT HTTP_PORT < "$L/ports"

# --- a store, its accounts, a server with detection on ----------------------------------------
D="$WORK/a"; K="$WORK/a.key"
ADMIN_PW="correct horse battery staple 1984"
printf '%s\n' "$ADMIN_PW" |
    "$MEDVAULT" init --data "$D" --key-file "$K" --admin-password-stdin --json > "$WORK/init.json" ||
    { fail "init"; finish; exit 1; }
PW="a long passphrase for testing"
adduser() {  # NAME ROLE [OPTIONS...]: enrollment JSON in $WORK/NAME.json
    printf '%s\n' "$PW" | "$MEDVAULT" user add --username "$1" --role "$2" "${@:3}" --json \
        --data "$D" --key-file "$K" > "$WORK/$1.json" || fail "user add $1"
}
adduser officer security
adduser carol clinician --practitioner prac-7
adduser drwho clinician --practitioner prac-2
adduser registrar service --scopes "system/Patient.cruds"
CAROL_ID=$("$MEDVAULT" user show carol --json --data "$D" --key-file "$K" | json_get id)
[ -n "$CAROL_ID" ] && pass || fail "carol's account id"

cat > "$WORK/serve.conf" <<EOF
# detection stays on (the default)
syslog = udp://127.0.0.1:$UDP_PORT
alert_webhook = http://127.0.0.1:$HTTP_PORT/hook
# failed logins slow the next attempt down; not by seconds in a test
delay_base = 20ms
delay_max = 100ms
EOF
"$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/serve.conf" \
    --listen http://127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
PORT=""
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
BASE="http://127.0.0.1:$PORT"
expect_not_contains "$(cat "$WORK/serve.err")" "detection is off" "detection is on"

req() { STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' "$@"); BODY=$(cat "$WORK/body"); }
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
login_code() {  # USER PASSWORD CODE -> the HTTP status; the token in $TOKEN
    req -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$3\"}" "$BASE/auth/login"
    TOKEN=$(printf '%s' "$BODY" | json_get token)
    printf '%s' "$STATUS"
}
secret_of() { json_get secret < "$WORK/$1.json"; }
login() {  # USER PASSWORD SECRET -> prints the token; the code used goes to $WORK/codes
    local code; code=$(oathtool --totp -b "$3")
    printf '%s\n' "$code" >> "$WORK/codes"
    login_code "$1" "$2" "$code" > /dev/null; printf '%s' "$TOKEN"
}
ADMIN=$(login admin "$ADMIN_PW" "$(secret_of init)")
SEC=$(login officer "$PW" "$(secret_of officer)")
WHO=$(login drwho "$PW" "$(secret_of drwho)")
REG=$(login registrar "$PW" "$(secret_of registrar)")
for t in "$ADMIN" "$SEC" "$WHO" "$REG"; do [ -n "$t" ] && pass || fail "a login failed"; done

# --- (a) carol's password, but not her phone: wrong TOTP codes ---------------------------------
WRONG_CODES=""
for i in 1 2 3 4 5; do
    right=$(oathtool --totp -b "$(secret_of carol)")
    wrong=$(printf '%06d' $(( (10#$right + 1000 * i + 500000) % 1000000 )))
    WRONG_CODES="$WRONG_CODES $wrong"
    # each failure delays the next attempt (429 until then): wait it out
    for _ in $(seq 1 40); do
        s=$(login_code carol "$PW" "$wrong"); [ "$s" = "429" ] || break; sleep 0.1
    done
    expect_eq "$s" "401" "carol with a wrong TOTP code ($i)"
done

# --- (b) a clinician breaks the glass for patients outside its care ------------------------------
FJ=(-H 'Content-Type: application/fhir+json')
PATIENTS=""
for name in Abernathy Bellweather Castellane; do
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"$name\"}]}" \
        "$BASE/fhir/Patient"
    expect_eq "$STATUS" "201" "the registrar creates $name"
    PATIENTS="$PATIENTS $(printf '%s' "$BODY" | json_get id)"
done
for p in $PATIENTS; do
    as "$WHO" -H 'X-Break-Glass-Reason: unconscious in the ER, no relative reachable' \
        "$BASE/fhir/Patient/$p"
    expect_eq "$STATUS" "200" "drwho breaks the glass for $p"
done

# --- the API: security only ------------------------------------------------------------------
as "$SEC" "$BASE/api/alerts"
expect_eq "$STATUS" "200" "security lists the alerts"
ALERTS=$BODY
TOTAL=$(printf '%s' "$ALERTS" | jsq 'd.total')
expect_eq "$TOTAL" "$(printf '%s' "$ALERTS" | jsq 'd.alerts.length')" "total counts the alerts"
[ "${TOTAL:-0}" -ge 2 ] && pass || fail "at least two alerts, got $TOTAL: $ALERTS"
# carol's newest alert, and drwho's break-the-glass alert
A_TOTP=$(printf '%s' "$ALERTS" | jsq "(d.alerts.find(a => a.actor === '$CAROL_ID' &&
    a.detectors.includes('authentication')) || {}).id || ''")
A_BTG=$(printf '%s' "$ALERTS" | jsq "(d.alerts.find(a => a.actor_username === 'drwho' &&
    a.detectors.includes('relationship')) || {}).id || ''")
[ -n "$A_TOTP" ] && pass || fail "no authentication alert for carol: $ALERTS"
[ -n "$A_BTG" ] && pass || fail "no relationship alert for drwho: $ALERTS"
expect_eq "$(printf '%s' "$ALERTS" | jsq "d.alerts.some(a => a.actor === '$CAROL_ID' &&
    a.response === 'contain')")" "true" "five wrong TOTP codes: carol is contained, an alert too"
expect_eq "$(printf '%s' "$ALERTS" | jsq 'd.alerts.every(a => a.status === "open")')" "true" \
    "new alerts are open"
expect_eq "$(printf '%s' "$ALERTS" | jsq 'd.alerts.every((a, i) =>
    i === 0 || d.alerts[i - 1].time_us >= a.time_us)')" "true" "newest first"
for id in "$A_TOTP" "$A_BTG"; do
    as "$SEC" "$BASE/api/alerts/$id"
    expect_eq "$STATUS" "200" "GET /api/alerts/$id"
    one=$BODY
    expect_eq "$(printf '%s' "$ALERTS" | jsq "JSON.stringify(d.alerts.find(a => a.id === '$id'))")" \
        "$(printf '%s' "$one" | jsq 'JSON.stringify(d)')" "the alert alone is the one listed"
done
as "$SEC" "$BASE/api/alerts/$A_BTG"
for k in id time time_us actor source detectors score model_score evidence explanation response status; do
    expect_eq "$(printf '%s' "$BODY" | jsq "'$k' in d")" "true" "an alert has $k"
done
expect_eq "$(printf '%s' "$BODY" | jsq 'd.source')" "127.0.0.1" "the source address"
[ -n "$(printf '%s' "$BODY" | jsq 'd.explanation')" ] && pass || fail "an explanation: $BODY"
as "$ADMIN" "$BASE/api/alerts"
expect_eq "$STATUS" "403" "an admin may not read alerts"
as "$WHO" "$BASE/api/alerts/$A_BTG"
expect_eq "$STATUS" "403" "a clinician may not read alerts"
as "$ADMIN" -X POST "$BASE/api/alerts/$A_BTG/ack"
expect_eq "$STATUS" "403" "an admin may not acknowledge alerts"
req "$BASE/api/alerts"
expect_eq "$STATUS" "401" "no token"
as "$SEC" "$BASE/api/alerts/0123456789abcdef0123456789abcdef"
expect_eq "$STATUS" "404" "an unknown alert"
as "$SEC" "$BASE/api/alerts?status=pending"
expect_eq "$STATUS" "400" "an unknown status"
as "$SEC" "$BASE/api/alerts?status=closed"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.total')" "0" "nothing closed yet"

# --- what left the server: syslog (UDP), the server's log, the webhook --------------------------
IDS=$(printf '%s' "$ALERTS" | jsq 'd.alerts.map(a => a.id).join(" ")')
arrived() {
    for id in $IDS; do
        grep -qF "id=\"$id\"" "$L/syslog.txt" 2>/dev/null || return 1
        grep -qF "\\\"id\\\":\\\"$id\\\"" "$L/webhook.jsonl" 2>/dev/null || return 1
    done
}
for _ in $(seq 1 200); do arrived && break; sleep 0.05; done
arrived && pass || fail "not every alert reached the listeners"
HOST=$(uname -n | cut -c1-63)
for id in $IDS; do
    doc=$(printf '%s' "$ALERTS" | jsq "JSON.stringify(d.alerts.find(a => a.id === '$id'))")
    response=$(printf '%s' "$doc" | jsq 'd.response')
    case "$response" in contain) pri=81 ;; alert) pri=84 ;; *) pri=82 ;; esac
    actor=$(printf '%s' "$doc" | jsq 'd.actor_username || d.actor')
    line=$(grep -F "id=\"$id\"" "$L/syslog.txt" | head -1)
    expect_eq "$(grep -cF "id=\"$id\"" "$L/syslog.txt")" "1" "one datagram for $id"
    expect_contains "$line" "<$pri>1 $(printf '%s' "$doc" | jsq 'd.time') " \
        "PRI (authpriv, $response), version 1 and the alert's time"
    expect_contains "$line" " medvault " "app-name"
    printf '%s' "$line" | grep_q -E '^<[0-9]{1,3}>1 [0-9T:.+Z-]+ [^ ]+ medvault [0-9]+ alert \[medvault@32473 ' &&
        pass || fail "RFC 5424 header: $line"
    source=$(printf '%s' "$doc" | jsq 'd.source')   # 127.0.0.1, or "local" for the CLI's
    expect_contains "$line" "[medvault@32473 id=\"$id\" actor=\"$actor\" source=\"$source\" detectors=\"$(printf '%s' "$doc" | jsq 'd.detectors.join(",")')\"" \
        "structured data"
    expect_contains "$line" "response=\"$response\"]" "the response in the structured data"
    expect_contains "$line" "] $(printf '%s' "$doc" | jsq 'd.explanation')" "the explanation as MSG"
    grep -qF -- "$line" "$WORK/serve.err" && pass || fail "the server's log has the line of $id"
    hook=$(grep -F "\\\"id\\\":\\\"$id\\\"" "$L/webhook.jsonl" | head -1)
    expect_eq "$(printf '%s' "$hook" | jsq 'd.method + " " + d.url + " " + d.content_type')" \
        "POST /hook application/json" "the webhook request"
    # the webhook carries the alert as raised (the stored one adds its status,
    # and an alert the CLI stored, that the server sent it)
    expect_eq "$(printf '%s' "$hook" | jsq 'JSON.stringify(JSON.parse(d.body))')" \
        "$(printf '%s' "$doc" | jsq 'JSON.stringify((({status, notify, ...rest}) => rest)(d))')" \
        "the webhook body is the alert $id"
done
expect_contains "$(cat "$L/syslog.txt")" " $HOST medvault " "the hostname"

# --- the CLI, next to the running server ---------------------------------------------------------
ST=(--data "$D" --key-file "$K")
run 0 "$MEDVAULT" alerts list "${ST[@]}"
TABLE=$OUT
expect_contains "$TABLE" "$A_TOTP" "the CLI lists carol's alert"
expect_contains "$TABLE" "$A_BTG" "the CLI lists drwho's alert"
printf '%s\n' "$TABLE" | grep -F "$A_TOTP" | grep_q " carol .*authentication" &&
    pass || fail "carol's row names her (looked up) and the detector: $TABLE"
printf '%s\n' "$TABLE" | grep -F "$A_BTG" | grep_q " drwho .*relationship.* open" &&
    pass || fail "drwho's row: $TABLE"
expect_contains "$TABLE" "$TOTAL alert(s)" "the count"
run 0 "$MEDVAULT" alerts list --json "${ST[@]}"
expect_eq "$(printf '%s' "$OUT" | jsq 'd.alerts.map(a => a.id).join(" ")')" "$IDS" \
    "the CLI's list is the API's"
run 0 "$MEDVAULT" alerts list --status closed "${ST[@]}"
expect_contains "$OUT" "0 alert(s)" "nothing closed yet (CLI)"
run 0 "$MEDVAULT" alerts show "$A_TOTP" --json "${ST[@]}"
as "$SEC" "$BASE/api/alerts/$A_TOTP"
expect_eq "$(printf '%s' "$OUT" | jsq 'JSON.stringify(d)')" "$(printf '%s' "$BODY" | jsq 'JSON.stringify(d)')" \
    "show --json is the API's document"
run 0 "$MEDVAULT" alerts show "$A_TOTP" "${ST[@]}"
expect_contains "$OUT" "carol ($CAROL_ID)" "show names the actor"
expect_contains "$OUT" "$(printf '%s' "$BODY" | jsq 'd.explanation')" "show explains"
expect_contains "$OUT" "evidence:" "show has the evidence"
expect_contains "$OUT" "$(printf '%s' "$BODY" | jsq 'Object.keys(d.evidence)[0] || "{}"')" "the evidence itself"
run 1 "$MEDVAULT" alerts show 0123456789abcdef0123456789abcdef "${ST[@]}"
expect_one_line "$ERR" "unknown alert"
expect_contains "$ERR" "no alert" "unknown alert named"
run 2 "$MEDVAULT" alerts frob "${ST[@]}"
run 2 "$MEDVAULT" alerts show "${ST[@]}"
run 2 "$MEDVAULT" alerts close "$A_TOTP" "${ST[@]}"
run 2 "$MEDVAULT" alerts close "$A_TOTP" --as maybe "${ST[@]}"
run 2 "$MEDVAULT" alerts list --status pending "${ST[@]}"
run 2 "$MEDVAULT" alerts ack "$A_TOTP" --as benign "${ST[@]}"

# --- ack then close through the API ------------------------------------------------------------
SEC_ID=$(curl -s -H "Authorization: Bearer $SEC" "$BASE/api/whoami" | json_get id)
post() { as "$SEC" -H 'Content-Type: application/json' -X POST ${2:+-d "$2"} "$BASE/api/alerts/$A_BTG/$1"; }
post close '{"resolution":"maybe"}'
expect_eq "$STATUS" "400" "close as neither benign nor incident"
post close '{}'
expect_eq "$STATUS" "400" "close without a resolution"
post ack '{"resolution":"incident"}'
expect_eq "$STATUS" "200" "ack"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.status + " " + d.resolution')" "acknowledged undefined" \
    "acknowledged, not resolved (a resolution is for close)"
[ -n "$SEC_ID" ] && expect_eq "$(printf '%s' "$BODY" | jsq 'd.acknowledged_by')" "user:$SEC_ID" "who acknowledged"
post ack
expect_eq "$STATUS" "409" "ack twice"
post close '{"resolution":"benign","note":"a real emergency, confirmed by the ward"}'
expect_eq "$STATUS" "200" "close as benign"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.status + " " + d.resolution + " " + d.note')" \
    "closed benign a real emergency, confirmed by the ward" "closed as benign, with the note"
post close '{"resolution":"incident"}'
expect_eq "$STATUS" "409" "close twice"
post ack
expect_eq "$STATUS" "409" "ack a closed alert"
as "$SEC" -X POST "$BASE/api/alerts/0123456789abcdef0123456789abcdef/ack"
expect_eq "$STATUS" "404" "ack an unknown alert"
as "$SEC" "$BASE/api/alerts?status=closed"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.alerts.map(a => a.id).join(" ")')" "$A_BTG" "the closed one"

# --- ack then close through the CLI ------------------------------------------------------------
run 0 "$MEDVAULT" alerts ack "$A_TOTP" --note "carol says she lost her phone" "${ST[@]}"
expect_contains "$OUT" "acknowledged" "CLI ack"
run 1 "$MEDVAULT" alerts ack "$A_TOTP" "${ST[@]}"
expect_one_line "$ERR" "ack twice (CLI)"
run 0 "$MEDVAULT" alerts close "$A_TOTP" --as benign "${ST[@]}"
expect_contains "$OUT" "closed:benign" "CLI close"
run 1 "$MEDVAULT" alerts close "$A_TOTP" --as incident "${ST[@]}"
expect_contains "$ERR" "already closed" "close twice (CLI)"
run 1 "$MEDVAULT" alerts ack "$A_TOTP" "${ST[@]}"
expect_one_line "$ERR" "ack a closed alert (CLI)"
run 1 "$MEDVAULT" alerts ack 0123456789abcdef0123456789abcdef "${ST[@]}"
expect_contains "$ERR" "no alert" "ack an unknown alert (CLI)"
as "$SEC" "$BASE/api/alerts/$A_TOTP"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.status + " " + d.resolution + " " + d.note')" \
    "closed benign carol says she lost her phone" "the API sees the CLI's changes"
expect_eq "$(printf '%s' "$BODY" | jsq 'd.closed_by.startsWith("cli:") && d.acknowledged_by.startsWith("cli:")')" \
    "true" "the CLI acted as cli:<unix user>"
run 0 "$MEDVAULT" alerts show "$A_TOTP" "${ST[@]}"
expect_contains "$OUT" "as benign by cli:" "show tells who closed it"

# --- no secret anywhere an alert went ---------------------------------------------------------------
as "$SEC" "$BASE/api/alerts"
printf '%s' "$BODY" > "$WORK/alerts.json"
for f in "$WORK/alerts.json" "$L/syslog.txt" "$L/webhook.jsonl" "$WORK/serve.err"; do
    for s in "$PW" "$ADMIN_PW" "$ADMIN" "$SEC" "$WHO" "$REG" "$(secret_of carol)"; do
        grep -qF -- "$s" "$f" && fail "a secret in $(basename "$f")" || pass
    done
    # timestamps' microseconds are six digits too: not codes
    sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z//g' "$f" \
        > "$WORK/untimed"
    for code in $WRONG_CODES $(cat "$WORK/codes"); do
        grep -qE "(^|[^0-9])$code([^0-9]|\$)" "$WORK/untimed" &&
            fail "TOTP code $code in $(basename "$f")" || pass
    done
done

# --- the audit trail ---------------------------------------------------------------------------------
kill -TERM "$PID"; wait "$PID"
expect_eq "$?" "0" "the server stops cleanly"
PID=""
trail=$(sqlite3 "$D/medvault.db" "SELECT actor || ' ' || action || ' ' || outcome || ' ' || resources FROM audit")
for id in $IDS; do
    printf '%s\n' "$trail" | grep_q "^system:detect detect.alert .* Alert/$id\$" &&
        pass || fail "the trail records alert $id"
done
printf '%s\n' "$trail" | grep_q -x "user:$SEC_ID detect.alert.update acknowledged Alert/$A_BTG" &&
    pass || fail "API ack audited"
expect_contains "$trail" "user:$SEC_ID detect.alert.update closed: benign Alert/$A_BTG" "API close audited"
printf '%s\n' "$trail" | grep_q "^cli:.* detect.alert.update acknowledged Alert/$A_TOTP\$" &&
    pass || fail "CLI ack audited"
printf '%s\n' "$trail" | grep_q "^cli:.* detect.alert.update closed: benign Alert/$A_TOTP\$" &&
    pass || fail "CLI close audited"
printf '%s\n' "$trail" | grep_q "^cli:.* detect.alert.read success Alert/$A_TOTP\$" &&
    pass || fail "CLI show audited"
run 0 "$MEDVAULT" audit verify "${ST[@]}"
finish
