#!/usr/bin/env bash
# The end-to-end drill of issue 6, on a detecting server: a stolen export
# account lists and reads patients over the API until the detector contains
# it; `incident open`, `scope`, `report` and `letters` produce exactly the
# patients it was sent, no more, no fewer; a CSV built from what it received,
# with renamed, shuffled and partly corrupted columns, is traced back to the
# account through the watermark its listing carried; scope refuses a
# tampered trail.
. "$(dirname "$0")/lib.sh"

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

new_store h
run 0 "$MEDVAULT" seed --patients 60 --staff 6 --seed 91 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" > "$WORK/seed.json"
run 0 "$MEDVAULT" decoy plant --count 3 --json --data "$D" --key-file "$K"
printf '%s\n' "$OUT" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' | sort -u > "$WORK/decoys"
expect_eq "$(grep -c . "$WORK/decoys")" "3" "three decoys"
sqlite3 "$D/medvault.db" "SELECT DISTINCT id FROM resources WHERE type='Patient'" |
    grep -vxFf "$WORK/decoys" > "$WORK/patients"
PW="the export job's long passphrase"
printf '%s\n' "$PW" | "$MEDVAULT" user add --username etl-thief --role service \
    --scopes "system/Patient.rs" --json --data "$D" --key-file "$K" > "$WORK/thief.json" ||
    fail "the export account"
printf '%s\n' "$PW" | "$MEDVAULT" user add --username officer-two --role security --json \
    --data "$D" --key-file "$K" > "$WORK/sec2.json" || fail "a second security officer"

"$MEDVAULT" serve --data "$D" --key-file "$K" --listen http://127.0.0.1:0 \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
BASE="http://127.0.0.1:$PORT"

login() {  # USER PASSWORD SECRET -> prints token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$(oathtool --totp -b "$3")\"}" \
        "$BASE/auth/login" | json_get token
}
seeded() { grep "\"username\":\"$1\"" "$WORK/seed.json" | json_get "$2"; }

# --- the export account is real: a declared nightly export of 10 patients a day --------------------
SEC=$(login demo-security "$(seeded demo-security password)" "$(seeded demo-security secret)")
SEC2=$(login officer-two "$PW" "$(json_get secret < "$WORK/sec2.json")")
s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SEC" -H 'Content-Type: application/json' \
    -d '{"patients_per_day":10,"days":1,"reason":"nightly export to the quality registry"}' \
    "$BASE/api/users/etl-thief/bulk-access")
expect_eq "$s" "201" "bulk access declared"
s=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $SEC2" \
    "$BASE/api/users/etl-thief/bulk-access/approve")
expect_eq "$s" "200" "and approved by a second officer"

# --- the thief lists, then reads one patient after another until stopped ----------------------
T=$(login etl-thief "$PW" "$(json_get secret < "$WORK/thief.json")")
[ -n "$T" ] && pass || fail "the thief logs in"
curl -s -H "Authorization: Bearer $T" "$BASE/fhir/Patient?_count=10" > "$WORK/page.json"
: > "$WORK/reads.ndjson"
refused=""
while read -r p; do
    s=$(curl -s -o "$WORK/one.json" -w '%{http_code}' -H "Authorization: Bearer $T" "$BASE/fhir/Patient/$p")
    if [ "$s" = "200" ]; then cat "$WORK/one.json" >> "$WORK/reads.ndjson"; echo >> "$WORK/reads.ndjson"
    else refused=$s; break; fi
done < "$WORK/patients"
[ -n "$refused" ] && pass || fail "the read-out was never stopped"
# what the thief was actually sent: real patients, and the one decoy watermarking its listing
node -e '
    const fs = require("fs");
    const page = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const rows = (page.entry || []).map((e) => e.resource);
    for (const l of fs.readFileSync(process.argv[2], "utf8").split("\n")) if (l.trim()) rows.push(JSON.parse(l));
    fs.writeFileSync(process.argv[3], rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
' "$WORK/page.json" "$WORK/reads.ndjson" "$WORK/received.ndjson"
node -e '
    const fs = require("fs");
    for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) if (l.trim()) console.log(JSON.parse(l).id);
' "$WORK/received.ndjson" | sort -u > "$WORK/received_ids"
run 0 "$MEDVAULT" decoy list --json --data "$D" --key-file "$K"
MARK=$(printf '%s\n' "$OUT" | grep '"purpose":"watermark"' | grep 'etl-thief' |
       sed -n 's/.*"patient":"\([0-9a-f]*\)".*/\1/p')
expect_eq "$(printf '%s\n' "$MARK" | grep -c .)" "1" "one decoy was handed out as the listing's watermark"
grep -qx "$MARK" "$WORK/received_ids" && pass || fail "the watermark is in what the thief received"
grep -vxFf "$WORK/decoys" "$WORK/received_ids" > "$WORK/disclosed"
N=$(grep -c . "$WORK/disclosed")
[ "$N" -ge 1 ] && [ "$N" -le 20 ] && pass || fail "$N patients disclosed before containment, target 1..20"

# --- incident: open, scope, report, letters ------------------------------------------------------
run 0 "$MEDVAULT" incident open --actor etl-thief --summary "export account read patients out" \
    --json --data "$D" --key-file "$K"
INC=$(printf '%s' "$OUT" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$INC" ] && pass || fail "incident id: $OUT"
run 0 "$MEDVAULT" incident scope "$INC" --format json --data "$D" --key-file "$K"
printf '%s' "$OUT" | node -e '
    let s = ""; process.stdin.on("data", (c) => s += c).on("end", () => {
        for (const p of JSON.parse(s).patients) console.log(p.id);
    });' | sort -u > "$WORK/scoped"
expect_eq "$(tr '\n' ' ' < "$WORK/scoped")" "$(tr '\n' ' ' < "$WORK/disclosed")" \
    "scope names exactly the patients the thief was sent"
for lang in fr en; do
    run 0 "$MEDVAULT" incident report "$INC" --lang "$lang" --contact "DPO, dpo@chu-demo.example.org" \
        --data "$D" --key-file "$K"
    expect_contains "$OUT" "72" "the $lang report gives the 72-hour deadline"
    expect_contains "$OUT" ": $N" "the $lang report counts the $N people"
done
run 0 "$MEDVAULT" incident letters "$INC" --out "$WORK/letters" --data "$D" --key-file "$K"
expect_eq "$(find "$WORK/letters" -type f | grep -c .)" "$N" "one letter per disclosed patient"

# --- the dump for sale: renamed, shuffled, partly corrupted columns --------------------------------
node -e '
    const fs = require("fs");
    const out = ["Courriel;Date naiss.;\"N° SS\";Tel;Nom de famille;Prénom"];
    let i = 0;
    for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
        if (!l.trim()) continue;
        const r = JSON.parse(l), tel = (r.telecom || []);
        const nir = ((r.identifier || []).find((x) => /1\.2\.250\.1\.213\.1\.4\.8/.test(x.system)) || {}).value || "";
        const mail = (tel.find((t) => t.system === "email") || {}).value || "";
        const phone = (tel.find((t) => t.system === "phone") || {}).value || "";
        const n = (r.name || [{}])[0], d = (r.birthDate || "").split("-");
        out.push([mail, d.length === 3 ? d[2] + "/" + d[1] + "/" + d[0] : "", nir, phone, n.family || "",
                  (n.given || [""])[0]].join(";"));
        if (++i % 5 === 0) out.push("#### corrupted ;;; ###");
    }
    fs.writeFileSync(process.argv[2], out.join("\n") + "\n");
' "$WORK/received.ndjson" "$WORK/dump.csv"
run 1 "$MEDVAULT" leak check "$WORK/dump.csv" --json --data "$D" --key-file "$K"
REPORT=$OUT
expect_contains "$REPORT" '"watermarks":1' "the watermark is found"
expect_contains "$REPORT" '"actor":"etl-thief"' "the dump is traced to the account"
expect_contains "$REPORT" '"reference":"search:' "and to the listing it was handed"
printf '%s' "$REPORT" | node -e '
    let s = ""; process.stdin.on("data", (c) => s += c).on("end", () => {
        for (const p of JSON.parse(s).patients) console.log(p.id);
    });' | sort -u | grep -vxFf "$WORK/decoys" > "$WORK/leaked"
expect_eq "$(tr '\n' ' ' < "$WORK/leaked")" "$(tr '\n' ' ' < "$WORK/disclosed")" \
    "the dump's rows are exactly the disclosed patients"
printf '%s' "$REPORT" | grep_q '"unparseable":0' && fail "corrupted rows should be counted" || pass

# --- a tampered trail gives no scope ----------------------------------------------------------------
kill -TERM $PID; wait $PID
sqlite3 "$D/medvault.db" "UPDATE audit SET outcome = 'success: nothing to see' WHERE seq = 5"
run 1 "$MEDVAULT" incident scope "$INC" --format json --data "$D" --key-file "$K"
expect_one_line "$ERR" "scope refuses a tampered trail in one line"
expect_contains "$ERR" "does not verify" "and says why"
finish
