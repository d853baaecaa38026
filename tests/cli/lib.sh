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

# grep_q GREP_ARGS...: `grep -q` for the right-hand side of a pipe. Under
# pipefail, `grep -q` leaving at its first match makes the writer die of
# SIGPIPE and the whole pipe "fail" at random; this reads to the end.
grep_q() { grep "$@" >/dev/null; }

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

# ---- A live server for the API tests ------------------------------------------
# The API tests share one way to get a fresh store served on loopback with its
# first admin logged in, and one way to make accounts through /api/users.

ADMIN_PW="correct horse battery staple 1984"   # the first admin's password
PW="a long passphrase for testing"             # every account adduser makes

# json_get KEY < JSON: the first string value of KEY (flat answers only).
json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# req CURL-ARGS...: sets STATUS, BODY (and $WORK/headers).
req() { STATUS=$(curl -s -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$@"); BODY=$(cat "$WORK/body"); }

login() {  # USER PASSWORD SECRET -> prints the session token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$(oathtool --totp -b "$3")\"}" \
        "$BASE/auth/login" | json_get token
}

# approve ID: the api_server's security officer ($APPROVER) approves a
# two-person request, stepping up first when its second factor is stale.
approve() {
    local status
    status=$(curl -s -o "$WORK/approve.out" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $APPROVER" "$BASE/api/approvals/$1/approve")
    if [ "$status" = 401 ]; then
        sleep 1
        curl -s -o /dev/null -H "Authorization: Bearer $APPROVER" -H 'Content-Type: application/json' \
            -d "{\"totp\":\"$(oathtool --totp -b "$(cat "$WORK/approver.secret")")\"}" \
            "$BASE/auth/step-up"
        status=$(curl -s -o "$WORK/approve.out" -w '%{http_code}' -X POST \
            -H "Authorization: Bearer $APPROVER" "$BASE/api/approvals/$1/approve")
    fi
    [ "$status" = 200 ] || { fail "approving $1: $status $(cat "$WORK/approve.out")"; return 1; }
}

# The approval request's id in a 202 answer (the last "id" of the text).
approval_id() { sed -n 's/.*"approval":{.*"id":"\([^"]*\)".*/\1/p'; }

adduser() {  # NAME ROLE EXTRA-JSON -> prints the token of the new account
    local answer secret
    answer=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"role\":\"$2\",\"password\":\"$PW\"${3:-}}" "$BASE/api/users")
    secret=$(printf '%s' "$answer" | json_get secret)
    [ -n "$secret" ] || { fail "could not create $1: $answer"; return; }
    approve "$(printf '%s' "$answer" | approval_id)" || return
    login "$1" "$PW" "$secret"
}

# api_server NAME [CONFIG]: a new store $WORK/NAME with its first admin and
# a first security officer ("approver", made by the local operator: the
# second person of two-person control), served on a free loopback port
# (CONFIG: without misuse detection unless given); sets D, K, PID, PORT,
# BASE, ADMIN and APPROVER, and stops it at exit.
api_server() {
    D="$WORK/$1"; K="$WORK/$1.key"
    printf '%s\n' "$ADMIN_PW" |
        "$MEDVAULT" init --data "$D" --key-file "$K" --admin-password-stdin --json \
            > "$WORK/init.json" || { fail "init"; finish; exit 1; }
    printf '%s\n' "$PW" | "$MEDVAULT" user add --username approver --role security --json \
        --data "$D" --key-file "$K" > "$WORK/approver.json" 2>/dev/null ||
        { fail "the first security officer"; finish; exit 1; }
    (umask 077; json_get secret < "$WORK/approver.json" > "$WORK/approver.secret")
    trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
    api_serve "${2:-$WORK/nodetect.conf}"
    ADMIN=$(login admin "$ADMIN_PW" "$(json_get secret < "$WORK/init.json")")
    APPROVER=$(login approver "$PW" "$(cat "$WORK/approver.secret")")
}

# api_serve CONFIG: serve the store $D (key $K) again, after api_stop;
# sets PID, PORT and BASE.
api_serve() {
    "$MEDVAULT" serve --data "$D" --key-file "$K" --config "$1" \
        --listen http://127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
    PID=$!
    PORT=""
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out"); [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; finish; exit 1; }
    BASE="http://127.0.0.1:$PORT"
}

# api_stop: SIGTERM, and the server must exit 0.
api_stop() {
    kill -TERM "$PID"
    wait "$PID" && pass || fail "the server exited $?: $(tail -n 5 "$WORK/serve.err")"
}
