#!/usr/bin/env bash
# A flipped byte in any stored ciphertext gives a clear integrity error, never
# garbage; a body moved onto another row fails; the damage stays local: every
# other record still reads.  Each case works on a fresh copy of one store.
. "$(dirname "$0")/lib.sh"

new_store tam
for p in alice bob; do
    printf '{"resourceType":"Patient","id":"%s","name":[{"family":"Fam-%s"}]}' "$p" "$p" |
        "$MEDVAULT" resource put "Patient/$p" --patient "$p" --data "$D" --key-file "$K" >/dev/null
    printf '{"resourceType":"Observation","id":"obs-%s","subject":{"reference":"Patient/%s"}}' "$p" "$p" |
        "$MEDVAULT" resource put "Observation/obs-$p" --patient "$p" --data "$D" --key-file "$K" >/dev/null
done

copy() { rm -rf "$WORK/t"; cp -a "$D" "$WORK/t"; T="$WORK/t/medvault.db"; }
get() {  # EXPECTED-STATUS REF
    run "$1" "$MEDVAULT" resource get "$2" --data "$WORK/t" --key-file "$K"
}
# Replace byte N (1-based) of a blob column with a different value.
# (|| yields TEXT in SQLite: cast back, the tables are STRICT.)
flip() {  # TABLE COLUMN N WHERE
    local before after
    before=$(sqlite3 "$T" "SELECT hex($2) FROM $1 WHERE $4")
    sqlite3 "$T" "UPDATE $1 SET $2 = CAST(substr($2, 1, $3 - 1) ||
                  CASE WHEN substr($2, $3, 1) = X'00' THEN X'01' ELSE X'00' END ||
                  substr($2, $3 + 1) AS BLOB) WHERE $4" || fail "flip $*"
    after=$(sqlite3 "$T" "SELECT hex($2) FROM $1 WHERE $4")
    [ -n "$before" ] && [ "$before" != "$after" ] && [ ${#before} -eq ${#after} ] ||
        fail "flip $* changed nothing"
}

# A byte of a body: in its nonce, its ciphertext, its tag.
for pos in 3 40 "length(body)"; do
    copy; flip resources body "$pos" "type = 'Patient' AND id = 'alice'"
    get 1 Patient/alice
    expect_contains "$ERR" "failed authentication" "flipped body byte at $pos"
    expect_one_line "$ERR" "flipped body byte at $pos"
    expect_not_contains "$OUT" "Fam-" "no garbage printed ($pos)"
    get 0 Observation/obs-alice
    get 0 Patient/bob
done

# A body moved onto another patient's row, and onto another row of the same patient.
copy; sqlite3 "$T" "UPDATE resources SET body = (SELECT body FROM resources WHERE id = 'bob')
                    WHERE id = 'alice'"
get 1 Patient/alice
expect_contains "$ERR" "failed authentication" "body moved across patients"
copy; sqlite3 "$T" "UPDATE resources SET body = (SELECT body FROM resources WHERE id = 'obs-alice')
                    WHERE id = 'alice'"
get 1 Patient/alice
expect_contains "$ERR" "failed authentication" "body moved within a patient"

# A byte of a patient's wrapped data key: that patient is unreadable, clearly.
copy; flip data_keys wrapped 30 "owner = 'alice'"
get 1 Patient/alice
expect_contains "$ERR" "authentication" "flipped data-key byte"
expect_one_line "$ERR" "flipped data-key byte"
get 0 Patient/bob

# A wrapped data key copied onto another owner's row.
copy; sqlite3 "$T" "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE owner = 'bob')
                    WHERE owner = 'alice'"
get 1 Patient/alice
expect_contains "$ERR" "authentication" "data key moved across patients"

# A byte of the wrapped master key: the key is right, the master key damaged,
# and the message says so rather than blaming the passphrase.
copy; flip master_keys wrapped 30 "version = 1"
get 1 Patient/bob
expect_contains "$ERR" "master key version 1" "damaged master key"
expect_contains "$ERR" "damaged" "damaged master key"
expect_not_contains "$ERR" "wrong passphrase" "damaged master key is not a wrong key"

# The original is untouched by all of the above.
run 0 "$MEDVAULT" resource get Patient/alice --data "$D" --key-file "$K"
expect_contains "$OUT" "Fam-alice" "original intact"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"

# The link to the audit entry that wrote a version is sealed with its body:
# cleared (to pass for a version written before links existed, beside an
# emptied trail) or moved to another entry, the body no longer opens.
linked=$(sqlite3 "$D/medvault.db" "SELECT audit_seq FROM resources WHERE type = 'Patient' AND id = 'alice'")
[ -n "$linked" ] && [ "$linked" -gt 0 ] && pass || fail "resource put links its version to the trail"
for change in "NULL" "audit_seq + 1"; do
    copy
    sqlite3 "$T" "UPDATE resources SET audit_seq = $change WHERE type = 'Patient' AND id = 'alice'" ||
        fail "set audit_seq = $change"
    get 1 Patient/alice
    expect_contains "$ERR" "failed authentication" "audit link set to $change"
    get 0 Patient/bob
done
finish
