#!/usr/bin/env bash
# medvault audit verify detects an edited, deleted, inserted or reordered
# entry, a forged checkpoint, and truncation back past a checkpoint held
# outside; each tampering is done on a fresh copy of the same store.
. "$(dirname "$0")/lib.sh"

new_store aud
for i in 1 2 3 4 5 6 7 8; do
    printf '{"resourceType":"Patient","id":"p%d"}' "$i" |
        "$MEDVAULT" resource put "Patient/p$i" --patient "p$i" --data "$D" --key-file "$K" \
        >/dev/null || fail "put p$i"
done
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
expect_contains "$OUT" "audit trail verified" "clean trail verifies"

# Export a checkpoint and keep it "outside"; then more activity follows.
run 0 "$MEDVAULT" audit checkpoint --export --out "$WORK/held-outside.json" --data "$D" --key-file "$K"
for k in format store_id seq hash public_key signature; do
    expect_contains "$(cat "$WORK/held-outside.json")" "\"$k\"" "export has $k"
done
run 0 "$MEDVAULT" audit checkpoint --export --data "$D" --key-file "$K"
expect_contains "$OUT" "\"signature\"" "export to stdout"
run 0 "$MEDVAULT" audit verify --checkpoint "$WORK/held-outside.json" --data "$D" --key-file "$K"
expect_contains "$OUT" "exported checkpoint" "verify with held checkpoint"
HELD=$(sed -n 's/.*"seq": \([0-9]*\).*/\1/p' "$WORK/held-outside.json")
LAST=$(sqlite3 "$D/medvault.db" "SELECT max(seq) FROM audit")
[ "$HELD" -ge 10 ] && [ "$LAST" -gt "$HELD" ] && pass || fail "held=$HELD last=$LAST"

copy() { rm -rf "$WORK/t"; cp -a "$D" "$WORK/t"; T="$WORK/t/medvault.db"; }
verify_fails() {  # WHAT EXPECTED-TEXT [extra args]
    local what=$1 text=$2; shift 2
    run 1 "$MEDVAULT" audit verify --data "$WORK/t" --key-file "$K" "$@"
    expect_contains "$ERR" "$text" "$what"
    expect_one_line "$ERR" "$what"
}

copy; sqlite3 "$T" "UPDATE audit SET actor = 'cli:mallory' WHERE seq = 4"
verify_fails "edited entry" "entry 4: entry was altered"

copy; sqlite3 "$T" "UPDATE audit SET ts_us = ts_us + 1 WHERE seq = 6"
verify_fails "edited time" "entry 6"

copy; sqlite3 "$T" "DELETE FROM audit WHERE seq = 5"
verify_fails "deleted entry" "entry 5: entry missing"

# Insert: shift entries 5.. up by one and put a forged copy of entry 4 at 5.
copy; sqlite3 "$T" "UPDATE audit SET seq = -seq - 1 WHERE seq >= 5;
                    UPDATE audit SET seq = -seq WHERE seq < 0;
                    INSERT INTO audit SELECT 5, ts_us, actor, action, outcome, resources,
                      patient, source, session, purpose, request_id, prev, hash
                      FROM audit WHERE seq = 4;"
verify_fails "inserted entry" "entry 5"

# Reorder: swap the contents of entries 6 and 7.
copy; sqlite3 "$T" "CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq IN (6, 7);
                    UPDATE a SET seq = 13 - seq;
                    DELETE FROM audit WHERE seq IN (6, 7);
                    INSERT INTO audit SELECT * FROM a;"
verify_fails "reordered entries" "entry 6"

# A forged checkpoint signature.
copy; sqlite3 "$T" "UPDATE audit_checkpoints SET sig = zeroblob(64)
                    WHERE seq = (SELECT max(seq) FROM audit_checkpoints)"
verify_fails "forged checkpoint" "bad signature"

# Truncation with the stored checkpoints still there: caught by them.
copy; sqlite3 "$T" "DELETE FROM audit WHERE seq > $((HELD - 3))"
verify_fails "truncated trail" "truncated"
# ...and nothing is written on top of it: the truncated trail is not extended.
verify_fails "truncated trail, again" "truncated"
run 1 "$MEDVAULT" resource get Patient/p1 --data "$WORK/t" --key-file "$K"
expect_contains "$ERR" "audit trail truncated" "no access while the trail is damaged"
expect_eq "$(sqlite3 "$T" "SELECT max(seq) FROM audit")" "$((HELD - 3))" "nothing appended"

# Truncation that also removes the stored checkpoints, back to the last
# entry that wrote data: the chain that is left is consistent and accounts
# for every stored version, so only the checkpoint held outside can catch it.
LAST_WRITE=$(sqlite3 "$D/medvault.db" "SELECT max(audit_seq) FROM resources")
[ "$LAST_WRITE" -lt "$HELD" ] && pass || fail "the held checkpoint ($HELD) is past the last write ($LAST_WRITE)"
copy; sqlite3 "$T" "DELETE FROM audit WHERE seq > $LAST_WRITE;
                    DELETE FROM audit_checkpoints WHERE seq > $LAST_WRITE"
run 0 "$MEDVAULT" audit verify --data "$WORK/t" --key-file "$K"
verify_fails "truncation past the held checkpoint" "truncated" --checkpoint "$WORK/held-outside.json"

# Every resource version names the audit entry that wrote it, so a trail
# emptied with its checkpoints under a store full of data, or cut back past
# the last writes, is tampering and not "verified: 0 entries".
expect_eq "$(sqlite3 "$D/medvault.db" "SELECT count(*) - count(audit_seq) FROM resources")" "0" \
    "every stored version names its audit entry"
copy; sqlite3 "$T" "DELETE FROM audit; DELETE FROM audit_checkpoints"
verify_fails "an emptied trail under data" "entries were deleted"
CUT=$(sqlite3 "$D/medvault.db" "SELECT max(audit_seq) - 1 FROM resources")
copy; sqlite3 "$T" "DELETE FROM audit WHERE seq > $CUT; DELETE FROM audit_checkpoints WHERE seq > $CUT"
verify_fails "a trail cut back past the last write" "entries were deleted"
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
expect_contains "$OUT" "$(sqlite3 "$D/medvault.db" "SELECT count(*) FROM resources") stored resource versions each name their entry" "verify counts them"

# A store made before versions named their entry gains the column when
# opened; its old versions name none and are not counted against the trail.
copy; sqlite3 "$T" "ALTER TABLE resources DROP COLUMN audit_seq"
run 0 "$MEDVAULT" audit verify --data "$WORK/t" --key-file "$K"
expect_contains "$OUT" " 0 stored resource versions each name" "an older store verifies"
expect_eq "$(sqlite3 "$T" "SELECT count(*) FROM pragma_table_info('resources') WHERE name = 'audit_seq'")" \
    "1" "the column is added when the store is opened"

# A held checkpoint from another store, or edited, is refused.
new_store other
"$MEDVAULT" audit checkpoint --export --out "$WORK/other.json" --data "$D" --key-file "$K" >/dev/null
D="$WORK/aud"; K="$WORK/aud.key"; copy
verify_fails "foreign checkpoint" "another store" --checkpoint "$WORK/other.json"
sed 's/"seq": [0-9]*/"seq": 2/' "$WORK/held-outside.json" > "$WORK/edited.json"
verify_fails "edited exported checkpoint" "bad signature" --checkpoint "$WORK/edited.json"
echo '{"format":' > "$WORK/garbage.json"
run 1 "$MEDVAULT" audit verify --checkpoint "$WORK/garbage.json" --data "$WORK/t" --key-file "$K"
expect_contains "$ERR" "not JSON" "garbage checkpoint"

# A replaced public key is refused outright.
copy; sqlite3 "$T" "UPDATE meta SET value = zeroblob(32) WHERE key = 'audit_pubkey'"
run 1 "$MEDVAULT" audit verify --data "$WORK/t" --key-file "$K"
expect_contains "$ERR" "public key" "replaced public key"

# The untouched original still verifies.
run 0 "$MEDVAULT" audit verify --checkpoint "$WORK/held-outside.json" --data "$D" --key-file "$K"

finish
