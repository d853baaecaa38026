#!/usr/bin/env bash
# `medvault leak check FILE`: a small hospital (40 seeded patients, three
# decoys, one of them the watermark of an export handed to a service
# account), and leaked files built here from its records the way a reseller
# would: a CSV with renamed and shuffled columns, reformatted values (NIR
# with spaces or without its key, upper-cased names and e-mails, French
# dates, +33 phones) and damage (garbage lines, short rows, an unterminated
# quote, a NIR with a wrong key), people who are not patients here, and the
# watermark decoy; FHIR NDJSON and JSON variants.  Checked: the exact counts,
# the matched patient ids against the store's, how each row was recognised,
# the watermark traced to the account and the export, exit statuses 0/1/2,
# one leak.check audit entry with counts only and no patient read (nothing
# decrypted, no identifier of the file in the trail), --open-incident
# containing the account the watermark names.
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null 2>&1 || { fail "node is needed (make installs it)"; finish; exit 1; }

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
json_num() {  # KEY: a top-level member of the JSON report on stdin
    node -e 'let s = ""; process.stdin.on("data", c => s += c)
        .on("end", () => console.log(JSON.parse(s)[process.argv[1]]))' "$1"
}

# --- usage errors: exit 2, one line, before any store is opened -------------------------------------
printf 'x\n' > "$WORK/some.csv"
for bad in "" "frobnicate" "check" "check $WORK/some.csv extra" "check $WORK/some.csv --format xml" \
           "check $WORK/some.csv --frobnicate" "check $WORK/some.csv --format"; do
    # shellcheck disable=SC2086
    run 2 "$MEDVAULT" leak $bad --data "$WORK/none" --key-file "$WORK/none.key"
    expect_one_line "$ERR" "leak $bad"
    expect_contains "$ERR" "medvault leak" "leak $bad names the command"
done
run 2 "$MEDVAULT" leak check "$WORK/missing.csv" --data "$WORK/none" --key-file "$WORK/none.key"
expect_one_line "$ERR" "an unreadable file"
expect_contains "$ERR" "cannot read" "the error says the file cannot be read"
[ ! -e "$WORK/none" ] && pass || fail "a usage error created something"
run 0 "$MEDVAULT" leak --help
expect_contains "$OUT" "watermark" "--help explains watermarks"

# --- the hospital -----------------------------------------------------------------------------------
new_store h
S=(--data "$D" --key-file "$K")
run 0 "$MEDVAULT" seed --patients 40 --staff 4 --seed 31 --json "${S[@]}"
run 0 "$MEDVAULT" decoy plant --count 3 --json "${S[@]}"
printf '%s\n' "$OUT" | grep '"id":' > "$WORK/decoys"
printf '%s\n' "nightly extract to the data warehouse" |
    "$MEDVAULT" user add --username etl-export --role service --scopes "system/Patient.rs" \
        --json "${S[@]}" > /dev/null || fail "the export account"
run 0 "$MEDVAULT" decoy watermark --output export-2026-0042 --actor etl-export --json "${S[@]}"
WM=$(printf '%s' "$OUT" | json_get patient)
expect_contains "$OUT" '"purpose":"watermark"' "the decoy became a watermark"
expect_contains "$(json_get id < "$WORK/decoys")" "$WM" "the watermark is one of the planted decoys"
run 2 "$MEDVAULT" decoy watermark --output export-2026-0043 "${S[@]}"
expect_one_line "$ERR" "watermark without --actor"

# The records the leak is built from, and the store's patient ids.
DB="$D/medvault.db"
sqlite3 "$DB" "SELECT DISTINCT id FROM resources WHERE type = 'Patient' ORDER BY id" > "$WORK/ids"
json_get id < "$WORK/decoys" | sort > "$WORK/decoy_ids"
PLAIN=$(comm -23 "$WORK/decoy_ids" <(printf '%s\n' "$WM") | head -1)
comm -23 "$WORK/ids" "$WORK/decoy_ids" > "$WORK/patient_ids"
expect_eq "$(grep -c . "$WORK/patient_ids")" "40" "forty patients besides the decoys"
for id in $(head -26 "$WORK/patient_ids") "$WM" "$PLAIN"; do
    "$MEDVAULT" resource get "Patient/$id" "${S[@]}" || fail "read Patient/$id"
    echo
done > "$WORK/records.ndjson"

# The leaked files, built from the records read above (node, no dependency).
cat > "$WORK/leak_files.cjs" <<'EOF'
const fs = require("fs");
const [recordsPath, wm, plain, dir] = process.argv.slice(2);
const recs = fs.readFileSync(recordsPath, "utf8").split("\n").filter(Boolean).map(JSON.parse);
const P = recs.filter(r => r.id !== wm && r.id !== plain);
const W = recs.find(r => r.id === wm), D = recs.find(r => r.id === plain);
const NIR = "urn:oid:1.2.250.1.213.1.4.8";
const nirOf = r => r.identifier.find(i => i.system === NIR).value;
const keyOf = body => 97 - Number(BigInt(body.replace("2A", "19").replace("2B", "18")) % 97n);
const withKey = body => body + String(keyOf(body)).padStart(2, "0");
const wrongKey = nir => nir.slice(0, 13) + String(keyOf(nir.slice(0, 13)) % 97 + 1).padStart(2, "0");
const spaced = n => `${n[0]} ${n.slice(1, 3)} ${n.slice(3, 5)} ${n.slice(5, 7)} ${n.slice(7, 10)} ${n.slice(10, 13)} ${n.slice(13)}`;
const fr = d => d.split("-").reverse().join("/");
const dotted = d => d.split("-").reverse().join(".");
const name = r => r.name[0];
const phone = r => r.telecom.find(t => t.system === "phone").value;
const intl = p => "+33" + p.replace(/ /g, "").slice(1);
const email = r => r.telecom.find(t => t.system === "email").value;
const strangers = [1, 2, 3, 4, 5].map(i => ({
    nir: withKey(`1${85 + i}0${i}7800${i}${100 + i}`), family: `Zorglub-Test${"abcde"[i - 1]}`,
    given: "Xavier", birth: `0${i}/0${i}/190${i}`, phone: `+44 20 7946 010${i}`,
    email: `x${i}@elsewhere.invalid` }));
// Columns: Courriel;Date naiss.;N° SS;Tel;Nom de famille;Prénom
const row = (mail, birth, nir, tel, family, given) => [mail, birth, nir, tel, family, given].join(";");
const full = (r, nir, birth, upper) => row(upper ? email(r).toUpperCase() : email(r), birth, nir,
    intl(phone(r)), upper ? `"${name(r).family.toUpperCase()}"` : name(r).family,
    `"${name(r).given.join("; ")}"`);
const stranger = s => row(s.email, s.birth, spaced(s.nir), s.phone, s.family, s.given);
const lines = ["Courriel;Date naiss.;\"N° SS\";Tel;Nom de famille;Prénom"];
const expected = [];
P.slice(0, 11).forEach((r, i) => { lines.push(full(r, spaced(nirOf(r)), fr(r.birthDate), true));
    expected.push(`${r.id} nir ${i === 0 ? 2 : 1}`); });
P.slice(11, 14).forEach(r => { lines.push(full(r, nirOf(r).slice(0, 13), r.birthDate, false));
    expected.push(`${r.id} nir 1`); });
P.slice(14, 16).forEach(r => { lines.push(full(r, wrongKey(nirOf(r)), dotted(r.birthDate), false));
    expected.push(`${r.id} name+birth_date 1`); });
lines.push(row("", "", "", phone(P[16]).replace(/ /g, ""), "", ""));
expected.push(`${P[16].id} phone 1`);
lines.push(row(email(P[17]).toUpperCase(), "", "", "", "", ""));
expected.push(`${P[17].id} email 1`);
lines.push("%%%% corrupted export page 3 %%%%");                                 // line 20
lines.push(full(W, spaced(nirOf(W)), fr(W.birthDate), true));                     // line 21
lines.push(stranger(strangers[0]), stranger(strangers[1]));
lines.push("Dupont;Jean");                                                        // line 24
lines.push(full(P[0], nirOf(P[0]), P[0].birthDate, false));                       // line 25
lines.push(stranger(strangers[2]), stranger(strangers[3]));
lines.push(row("", "", "", "", "", "Jean"));                                      // line 28
lines.push(stranger(strangers[4]));
lines.push(row("", "", wrongKey(strangers[0].nir), "", "", ""));                  // line 30
lines.push('"unterminated;quote;from;a;cut;export');                              // line 31
fs.writeFileSync(`${dir}/leak.csv`, lines.join("\r\n") + "\r\n");
fs.writeFileSync(`${dir}/csv_expected`, expected.join("\n") + "\n");
fs.writeFileSync(`${dir}/strangers.csv`, strangers.map(s =>
    [s.nir, s.family, s.given, s.birth, s.phone, s.email].join(",")).join("\n") + "\n");

const strangerPatient = s => ({ resourceType: "Patient",
    identifier: [{ system: NIR, value: s.nir }], name: [{ family: s.family, given: [s.given] }],
    birthDate: s.birth.split("/").reverse().join("-") });
const obs = id => ({ resourceType: "Observation", status: "final",
    code: { text: "Heart rate" }, subject: { reference: `Patient/${id}` } });
const strip = (r, ...keys) => { const c = { ...r }; keys.forEach(k => delete c[k]); return c; };
const nd = [P[18], strip(P[19], "id", "identifier"), strip(P[20], "id", "identifier", "name"),
    "this is not json {", obs(P[21].id), D, strangerPatient(strangers[0]), obs(P[18].id),
    strangerPatient(strangers[1]), { resourceType: "Patient", identifier: [{ system: NIR, value: nirOf(P[22]) }] }];
fs.writeFileSync(`${dir}/leak.ndjson`, nd.map(v => typeof v === "string" ? v : JSON.stringify(v)).join("\n") + "\n");
const bundle = { resourceType: "Bundle", type: "searchset", entry: [P[23], P[24], P[25],
    strip(P[1], "id", "identifier", "telecom"), strangerPatient(strangers[2])].map(r => ({ resource: r })) };
fs.writeFileSync(`${dir}/leak.bundle.json`, JSON.stringify(bundle, null, 1));
fs.writeFileSync(`${dir}/leak.flat.json`, JSON.stringify([
    { nir: spaced(nirOf(P[2])), nom: "Whoever" }, { "E-mail": email(P[3]) }, { "Prénom": "Jean" },
    { numero_secu: strangers[3].nir }]));
EOF
node "$WORK/leak_files.cjs" "$WORK/records.ndjson" "$WM" "$PLAIN" "$WORK" ||
    fail "building the leaked files"

# --- the CSV: 30 rows, shuffled and renamed columns, damage, strangers, the watermark ------------------
SEQ_BEFORE=$(sqlite3 "$DB" "SELECT MAX(seq) FROM audit")
run 1 "$MEDVAULT" leak check "$WORK/leak.csv" --json "${S[@]}"
REPORT=$OUT
expect_eq "$(printf '%s' "$REPORT" | json_num rows)" "30" "rows read"
expect_eq "$(printf '%s' "$REPORT" | json_num unparseable)" "5" "rows unparseable"
expect_contains "$REPORT" '"unparseable_lines":[20,24,28,30,31]' "the damaged lines"
expect_eq "$(printf '%s' "$REPORT" | json_num matched_rows)" "20" "rows of the hospital's people"
expect_eq "$(printf '%s' "$REPORT" | json_num patients_matched)" "18" "patients found"
expect_contains "$REPORT" '"rejected":{"nir":3}' "three NIRs with a wrong key"
expect_contains "$REPORT" '"columns":{"nir":3,"family":5,"given":6,"birth_date":2,"phone":4,"email":1}' \
    "columns found by their French names"
printf '%s' "$REPORT" | node -e '
    let s = ""; process.stdin.on("data", c => s += c).on("end", () => {
        const r = JSON.parse(s);
        for (const p of r.patients) console.log(p.id + " " + p.by + " " + p.rows);
    });' > "$WORK/csv_found"
expect_eq "$(cut -d' ' -f1 "$WORK/csv_found" | tr '\n' ' ')" \
    "$(cut -d' ' -f1 "$WORK/csv_expected" | sort | tr '\n' ' ')" "exactly the leaked patients, by id"
expect_eq "$(sort "$WORK/csv_found" | tr '\n' ' ')" "$(sort "$WORK/csv_expected" | tr '\n' ' ')" \
    "each recognised as expected (nir, name+birth_date, phone, email; twice for one)"
while read -r id _; do
    grep -qx "$id" "$WORK/patient_ids" && pass || fail "Patient/$id is not a patient of the store"
done < "$WORK/csv_found"
expect_eq "$(printf '%s' "$REPORT" | json_num watermarks)" "1" "one watermark"
expect_contains "$REPORT" "\"patient\":\"$WM\"" "the watermark decoy is named"
expect_contains "$REPORT" '"reference":"export-2026-0042"' "traced to the export"
expect_contains "$REPORT" '"actor":"etl-export"' "traced to the account it was handed to"

# Audited once, counts only; nothing read, no identifier of the file in the trail.
expect_eq "$(sqlite3 "$DB" "SELECT action FROM audit WHERE seq > $SEQ_BEFORE" | tr '\n' ' ')" \
    "leak.check " "the check is one audit entry, and no read"
OUTCOME=$(sqlite3 "$DB" "SELECT outcome || '|' || IFNULL(resources, '') || '|' || IFNULL(patient, '') FROM audit WHERE seq > $SEQ_BEFORE")
expect_eq "$OUTCOME" "success: rows=30 unparseable=5 matched=20 patients=18 decoys=1 watermarks=1||" \
    "the entry carries counts, no identifier"
for v in $(cut -d';' -f3 "$WORK/leak.csv" | tr -d ' "' | grep -E '^[0-9]{13,15}$' | head -5); do
    sqlite3 "$DB" "SELECT * FROM audit" | grep_q "$v" && fail "a NIR of the file is in the trail" || pass
done

# The text report says the same to a person.
run 1 "$MEDVAULT" leak check "$WORK/leak.csv" "${S[@]}"
expect_contains "$OUT" "rows read: 30" "text: rows"
expect_contains "$OUT" "rows unparseable: 5 (lines 20, 24, 28, 30, 31)" "text: damaged lines"
expect_contains "$OUT" "rows matching this hospital's patients: 20 (18 patients)" "text: matches"
expect_contains "$OUT" "Patient/$WM  WATERMARK of output export-2026-0042, handed to etl-export" \
    "text: the watermark"

# --- NDJSON: FHIR resources, one per line ----------------------------------------------------------------
run 1 "$MEDVAULT" leak check "$WORK/leak.ndjson" --json "${S[@]}"
expect_eq "$(printf '%s' "$OUT" | json_num rows)" "10" "ndjson: rows"
expect_eq "$(printf '%s' "$OUT" | json_num unparseable)" "1" "ndjson: a line that is not JSON"
expect_eq "$(printf '%s' "$OUT" | json_num matched_rows)" "7" "ndjson: matched rows"
expect_eq "$(printf '%s' "$OUT" | json_num patients_matched)" "5" "ndjson: patients"
expect_contains "$OUT" '"by":"id"' "ndjson: an Observation names its patient by id"
expect_contains "$OUT" "\"patient\":\"$PLAIN\",\"purpose\":\"decoy\"" "ndjson: a plain decoy"
expect_eq "$(printf '%s' "$OUT" | json_num watermarks)" "0" "ndjson: no watermark"
run 1 "$MEDVAULT" leak check "$WORK/leak.ndjson" --format ndjson "${S[@]}"
expect_contains "$OUT" "decoy planted" "text: a plain decoy"

# --- JSON: a Bundle, and an array of flat objects --------------------------------------------------------
run 1 "$MEDVAULT" leak check "$WORK/leak.bundle.json" --json "${S[@]}"
expect_eq "$(printf '%s' "$OUT" | json_num rows)" "5" "bundle: rows"
expect_eq "$(printf '%s' "$OUT" | json_num matched_rows)" "4" "bundle: matched rows"
expect_eq "$(printf '%s' "$OUT" | json_num patients_matched)" "4" "bundle: patients"
run 1 "$MEDVAULT" leak check "$WORK/leak.flat.json" --format json --json "${S[@]}"
expect_eq "$(printf '%s' "$OUT" | json_num matched_rows)" "2" "flat objects: matched rows"
expect_eq "$(printf '%s' "$OUT" | json_num unparseable)" "1" "flat objects: one without identity"

# --- files with none of the hospital's people: exit 0 ------------------------------------------------------
run 0 "$MEDVAULT" leak check "$WORK/strangers.csv" --json "${S[@]}"
expect_eq "$(printf '%s' "$OUT" | json_num rows)" "5" "strangers: rows (no header)"
expect_eq "$(printf '%s' "$OUT" | json_num matched_rows)" "0" "strangers: nobody"
run 0 "$MEDVAULT" leak check "$WORK/strangers.csv" --format ndjson "${S[@]}"
expect_contains "$OUT" "rows unparseable: 5" "csv read as ndjson: every line unparseable, not fatal"
printf '' > "$WORK/empty.csv"
run 0 "$MEDVAULT" leak check "$WORK/empty.csv" "${S[@]}"
expect_contains "$OUT" "rows read: 0" "an empty file"

# --- --open-incident: the account the watermark names is contained ---------------------------------------
run 1 "$MEDVAULT" leak check "$WORK/leak.csv" --open-incident --json "${S[@]}"
expect_contains "$OUT" '"incidents":[{' "an incident was opened"
expect_contains "$OUT" '"username":"etl-export"' "about the export account"
run 0 "$MEDVAULT" user show etl-export --json "${S[@]}"
expect_contains "$OUT" '"locked":true' "the export account is locked"

# --- watermarks run out with the plain decoys ---------------------------------------------------------------
run 0 "$MEDVAULT" decoy watermark --output export-2026-0043 --actor etl-export "${S[@]}"
run 0 "$MEDVAULT" decoy watermark --output export-2026-0044 --actor etl-export "${S[@]}"
run 1 "$MEDVAULT" decoy watermark --output export-2026-0045 --actor etl-export "${S[@]}"
expect_one_line "$ERR" "no decoy left"
expect_contains "$ERR" "no unused decoy" "the error says why"
run 0 "$MEDVAULT" decoy list --json "${S[@]}"
expect_eq "$(printf '%s\n' "$OUT" | grep -c '"purpose":"watermark"')" "3" "three outputs, three decoys"
expect_eq "$(printf '%s\n' "$OUT" | grep -o '"reference":"[^"]*"' | sort -u | grep -c .)" "3" \
    "each output has its own decoy"

run 0 "$MEDVAULT" audit verify "${S[@]}"
finish
