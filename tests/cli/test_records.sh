#!/usr/bin/env bash
# Stored resources through the CLI: round trip, the stolen-database check on
# every file under DIR, and erasure by crypto-shredding.
. "$(dirname "$0")/lib.sh"

new_store rec
S=(--data "$D" --key-file "$K")

cat > "$WORK/alice.json" <<'JSON'
{"resourceType":"Patient","id":"pat-alice","name":[{"family":"Zyxwarowska","given":["Élodie"]}],"identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"2850578006084 27"}]}
JSON
cat > "$WORK/cond.json" <<'JSON'
{"resourceType":"Condition","id":"cond-1","subject":{"reference":"Patient/pat-alice"},"code":{"text":"Glioblastoma multiforme grade IV"}}
JSON
cat > "$WORK/bob.json" <<'JSON'
{"resourceType":"Patient","id":"pat-bob","name":[{"family":"Quillebeuf"}]}
JSON

run 0 "$MEDVAULT" resource put Patient/pat-alice --patient pat-alice --file "$WORK/alice.json" "${S[@]}"
expect_eq "$OUT" "Patient/pat-alice/_history/1" "first version"
run 0 "$MEDVAULT" resource put Condition/cond-1 --patient pat-alice "${S[@]}" < "$WORK/cond.json"
run 0 "$MEDVAULT" resource put Patient/pat-bob --patient pat-bob --file "$WORK/bob.json" "${S[@]}"
run 0 "$MEDVAULT" resource put Patient/pat-alice --patient pat-alice --file "$WORK/alice.json" "${S[@]}"
expect_eq "$OUT" "Patient/pat-alice/_history/2" "second version"

# Round trip: the exact bytes come back.
run 0 "$MEDVAULT" resource get Condition/cond-1 "${S[@]}"
expect_eq "$OUT" "$(cat "$WORK/cond.json")" "round trip"
run 0 "$MEDVAULT" resource get Patient/pat-alice --version 1 "${S[@]}"
expect_eq "$OUT" "$(cat "$WORK/alice.json")" "vread"
run 0 "$MEDVAULT" resource history Patient/pat-alice "${S[@]}"
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" "2" "history lists two versions"
run 1 "$MEDVAULT" resource get Patient/nobody "${S[@]}"
expect_contains "$ERR" "not found" "unknown resource"
run 1 "$MEDVAULT" resource put Patient/x --patient x --file /dev/null "${S[@]}"
expect_contains "$ERR" "not a JSON object" "empty body refused"
run 2 "$MEDVAULT" resource get no-slash "${S[@]}"

# Stolen database: not one of these byte strings is anywhere under DIR.
for s in Zyxwarowska "Élodie" "2850578006084" "Glioblastoma" Quillebeuf; do
    expect_absent_in_tree "$D" "$s"
done

# Erasure: every version of every resource of pat-alice becomes unreadable.
run 0 "$MEDVAULT" patient erase pat-alice "${S[@]}"
for ref in Patient/pat-alice Condition/cond-1; do
    run 1 "$MEDVAULT" resource get "$ref" "${S[@]}"
    expect_contains "$ERR" "erased" "$ref after erase"
    expect_one_line "$ERR" "$ref after erase"
done
run 1 "$MEDVAULT" resource get Patient/pat-alice --version 1 "${S[@]}"
run 0 "$MEDVAULT" resource get Patient/pat-bob "${S[@]}"
expect_eq "$OUT" "$(cat "$WORK/bob.json")" "other patient intact"
# Nothing new can be stored under the erased patient, and erasing twice fails.
run 1 "$MEDVAULT" resource put Patient/pat-alice --patient pat-alice --file "$WORK/alice.json" "${S[@]}"
expect_contains "$ERR" "erased" "write after erase"
run 1 "$MEDVAULT" patient erase pat-alice "${S[@]}"
run 1 "$MEDVAULT" patient erase never-existed "${S[@]}"
run 2 "$MEDVAULT" patient erase "${S[@]}"

# The trail recorded all of it, pseudonymously, and still verifies.
run 0 "$MEDVAULT" audit verify "${S[@]}"
actions=$(sqlite3 "$D/medvault.db" "SELECT action || ' ' || outcome FROM audit ORDER BY seq")
expect_contains "$actions" "patient.erase success" "erase audited"
expect_contains "$actions" "patient.erase failure: gone" "failed erase audited"
expect_contains "$actions" "resource.read success" "reads audited"
expect_contains "$actions" "resource.read failure: gone" "refused read audited"
expect_absent_in_tree "$D" "Zyxwarowska"

finish
