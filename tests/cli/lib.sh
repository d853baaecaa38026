# lib.sh -- assertions for the CLI tests, which drive the real `medvault`
# binary ($MEDVAULT) the way an operator's script would: exit statuses,
# one-line errors, files on disk.
set -uo pipefail

: "${MEDVAULT:?set MEDVAULT to the medvault binary}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medvault-cli-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Servers started by tests of other features run without misuse detection
# (their denial-heavy, bulk or failing-login sequences would be contained);
# the detector has tests of its own.
printf 'detect = off\n' > "$WORK/nodetect.conf"
FAILED=0
PASSED=0

fail() { echo "FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
pass() { PASSED=$((PASSED + 1)); }

# run EXPECTED_STATUS CMD...: runs CMD, keeps stdout in $OUT and stderr in $ERR.
run() {
    local want=$1; shift
    OUT=$("$@" 2>"$WORK/stderr"); local got=$?
    ERR=$(cat "$WORK/stderr")
    if [ "$got" -ne "$want" ]; then
        fail "'$*' exited $got, expected $want; stderr: $ERR"
        return 1
    fi
    pass
}

expect_contains() {  # HAYSTACK NEEDLE WHAT
    case "$1" in *"$2"*) pass ;; *) fail "$3: '$2' not in: $1" ;; esac
}
expect_not_contains() {
    case "$1" in *"$2"*) fail "$3: '$2' unexpectedly in: $1" ;; *) pass ;; esac
}
expect_eq() {
    if [ "$1" = "$2" ]; then pass; else fail "$3: got '$1', expected '$2'"; fi
}
# The error is one line.
expect_one_line() {
    local n; n=$(printf '%s' "$1" | grep -c '')
    if [ "$n" -eq 1 ]; then pass; else fail "$2: error is $n lines: $1"; fi
}
# no file under DIR contains the byte string
expect_absent_in_tree() {  # DIR STRING
    if grep -rlaF -- "$2" "$1" >/dev/null 2>&1; then
        fail "'$2' found in plaintext under $1: $(grep -rlaF -- "$2" "$1")"
    else
        pass
    fi
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# A fresh store in $WORK/NAME with its key file beside it: sets D and K.
new_store() {
    D="$WORK/$1"; K="$WORK/$1.key"
    "$MEDVAULT" init --data "$D" --key-file "$K" >/dev/null || fail "init $1"
}
