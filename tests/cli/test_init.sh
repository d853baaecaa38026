#!/usr/bin/env bash
# medvault init, the store options and the key-handling refusals.
. "$(dirname "$0")/lib.sh"

# --- usage errors: exit 2, one line -------------------------------------------
run 2 "$MEDVAULT"
run 2 "$MEDVAULT" no-such-command
expect_contains "$ERR" "unknown command 'no-such-command'" "unknown command"
run 0 "$MEDVAULT" help
expect_contains "$OUT" "init" "help lists init"
run 0 "$MEDVAULT" init --help
expect_contains "$OUT" "--key-file" "init --help"
run 0 "$MEDVAULT" help audit
expect_contains "$OUT" "verify" "help audit"
run 2 env -u MEDVAULT_DATA -u MEDVAULT_KEY_FILE "$MEDVAULT" init --key-file "$WORK/k"
expect_contains "$ERR" "no data directory" "init without --data"
expect_one_line "$ERR" "init without --data"
run 2 env -u MEDVAULT_KEY_FILE "$MEDVAULT" init --data "$WORK/x"
expect_contains "$ERR" "no key" "init without a key"
run 2 "$MEDVAULT" init --data "$WORK/x" --key-file "$WORK/k" --passphrase-stdin
expect_contains "$ERR" "only one of" "two key sources"
run 2 "$MEDVAULT" init --data "$WORK/x" --key-file "$WORK/k" --bogus
expect_contains "$ERR" "unknown option '--bogus'" "unknown option"

# --- a key-file store --------------------------------------------------------
# Options in any order after the command words.
run 0 "$MEDVAULT" init --key-file "$WORK/s1.key" --data "$WORK/s1"
expect_eq "$(stat -c %a "$WORK/s1")" "700" "data dir mode"
expect_eq "$(stat -c %a "$WORK/s1.key")" "600" "key file mode"
expect_eq "$(sqlite3 "$WORK/s1/medvault.db" 'PRAGMA journal_mode')" "wal" "WAL mode"
# The key is nowhere in the data directory.
keyline=$(tail -n 1 "$WORK/s1.key")
expect_absent_in_tree "$WORK/s1" "$keyline"

# Environment defaults.
run 0 env MEDVAULT_DATA="$WORK/s1" MEDVAULT_KEY_FILE="$WORK/s1.key" "$MEDVAULT" audit verify

# Refuses to overwrite an existing store, and keeps it intact.
run 1 "$MEDVAULT" init --data "$WORK/s1" --key-file "$WORK/s1.key"
expect_contains "$ERR" "already" "init over a store"
expect_one_line "$ERR" "init over a store"
run 0 "$MEDVAULT" audit verify --data "$WORK/s1" --key-file "$WORK/s1.key"

# A key file inside the data directory is refused by default, and not left behind.
mkdir -m 700 "$WORK/s2"
run 1 "$MEDVAULT" init --data "$WORK/s2" --key-file "$WORK/s2/inside.key"
expect_contains "$ERR" "inside the data directory" "key inside data dir"
[ -e "$WORK/s2/inside.key" ] && fail "refused init left a key file" || pass

# A key file readable by group or others is refused with a clear message.
chmod 644 "$WORK/s1.key"
run 1 "$MEDVAULT" audit verify --data "$WORK/s1" --key-file "$WORK/s1.key"
expect_contains "$ERR" "readable by group or others" "world-readable key"
expect_one_line "$ERR" "world-readable key"
chmod 600 "$WORK/s1.key"

# Another store's key is the wrong key.
run 0 "$MEDVAULT" init --data "$WORK/s3" --key-file "$WORK/s3.key"
run 1 "$MEDVAULT" audit verify --data "$WORK/s1" --key-file "$WORK/s3.key"
expect_contains "$ERR" "wrong passphrase or key file" "wrong key file"

# No store there.
run 1 "$MEDVAULT" audit verify --data "$WORK/nothing" --key-file "$WORK/s1.key"
expect_contains "$ERR" "no medvault store" "missing store"

# --- a passphrase store -------------------------------------------------------
PASS="correct horse battery staple"
run 0 sh -c "printf '%s\n' '$PASS' | '$MEDVAULT' init --data '$WORK/p1' --passphrase-stdin"
run 0 sh -c "printf '%s\n' '$PASS' | '$MEDVAULT' audit verify --data '$WORK/p1' --passphrase-stdin"
run 1 sh -c "printf 'not the passphrase\n' | '$MEDVAULT' audit verify --data '$WORK/p1' --passphrase-stdin"
expect_contains "$ERR" "wrong passphrase or key file" "wrong passphrase"
expect_not_contains "$ERR" "not the passphrase" "passphrase echoed"
printf '%s\n' "$PASS" > "$WORK/pass.txt"
run 0 "$MEDVAULT" audit verify --data "$WORK/p1" --passphrase-file "$WORK/pass.txt"
expect_absent_in_tree "$WORK/p1" "$PASS"
run 1 sh -c "printf 'short\n' | '$MEDVAULT' init --data '$WORK/p2' --passphrase-stdin"
expect_contains "$ERR" "too short" "short passphrase"
run 1 sh -c "'$MEDVAULT' init --data '$WORK/p3' --passphrase-stdin < /dev/null"
expect_contains "$ERR" "empty passphrase" "empty passphrase"

finish
