# harness.sh -- sourced by the shell drivers of the Node tests
# (tests/cli/test_fhir_client.sh, tests/cli/test_fhir_mutations.sh), after
# tests/cli/lib.sh: installs the pinned npm packages of tests/js once per
# machine, starts a server on a fresh store, makes accounts and logs them in.
#
# Why this exists: both drivers need the same three steps, and the npm part
# has to be right once -- pinned by tests/js/package-lock.json, installed
# outside the source tree into ${TMPDIR:-/tmp}/medvault-npm-cache (keyed by
# the lockfile's hash, so a changed lockfile gets a fresh install and an
# unchanged one needs no network), under a lock so that two tests started
# together by ctest -j do not install over each other.

JS_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NPM_CACHE_DIR="${TMPDIR:-/tmp}/medvault-npm-cache"

# The node_modules directory of tests/js's lockfile, installed if missing:
# sets JS_MODULES.  Returns 1 (after fail) when Node or npm cannot provide it.
js_install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        fail "node and npm are needed (Node.js >= 18)"
        return 1
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        fail "the JavaScript tests need Node.js >= 18, this is $(node --version)"
        return 1
    fi
    local key dir
    key=$(cat "$JS_SRC/package.json" "$JS_SRC/package-lock.json" | sha256sum | cut -c1-16)
    dir="$NPM_CACHE_DIR/medvault-js-$key"
    JS_MODULES="$dir/node_modules"
    mkdir -p "$NPM_CACHE_DIR"
    (
        flock 9
        [ -f "$dir/.installed" ] && exit 0
        rm -rf "$dir" "$dir.tmp"
        mkdir -p "$dir.tmp"
        cp "$JS_SRC/package.json" "$JS_SRC/package-lock.json" "$dir.tmp/"
        npm ci --prefix "$dir.tmp" --no-audit --no-fund --loglevel=error >&2 || exit 1
        touch "$dir.tmp/.installed"
        mv "$dir.tmp" "$dir"
    ) 9> "$NPM_CACHE_DIR/medvault-js.lock" || { fail "npm ci of tests/js failed"; return 1; }
}

# Copies the test scripts into $WORK/js beside a link to the installed
# node_modules, so that plain `import ... from 'fhir-kit-client'` resolves
# without a node_modules in the source tree: sets JS_RUN.
js_stage() {
    JS_RUN="$WORK/js"
    mkdir -p "$JS_RUN"
    cp "$JS_SRC"/*.mjs "$JS_SRC/package.json" "$JS_RUN/"
    ln -s "$JS_MODULES" "$JS_RUN/node_modules"
}

# A fresh store with its admin, served on a free loopback port: sets D, K,
# PID, BASE (http://127.0.0.1:PORT) and ADMIN (a session token).
js_start_server() {
    D="$WORK/store"; K="$WORK/store.key"
    local admin_pw="correct horse battery staple 1984"
    printf '%s\n' "$admin_pw" |
        "$MEDVAULT" init --data "$D" --key-file "$K" --admin-password-stdin --json \
            > "$WORK/init.json" || { fail "init"; return 1; }
    # the second person of two-person control, made by the local operator
    printf '%s\n' "$JS_USER_PW" | "$MEDVAULT" user add --username approver --role security \
        --json --data "$D" --key-file "$K" > "$WORK/approver.json" 2>/dev/null ||
        { fail "the first security officer"; return 1; }
    "$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/nodetect.conf" --listen http://127.0.0.1:0 \
        > "$WORK/serve.out" 2> "$WORK/serve.err" &
    PID=$!
    trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
    local port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$WORK/serve.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { fail "server did not start: $(cat "$WORK/serve.err")"; return 1; }
    BASE="http://127.0.0.1:$port"
    ADMIN=$(js_login admin "$admin_pw" "$(js_json_get secret < "$WORK/init.json")")
    [ -n "$ADMIN" ] || { fail "admin login"; return 1; }
    APPROVER=$(js_login approver "$JS_USER_PW" "$(js_json_get secret < "$WORK/approver.json")")
    [ -n "$APPROVER" ] || { fail "security officer login"; return 1; }
}

# SIGTERM, then the exit status must be 0: under ASan/UBSan a leak or an
# error report in the server (which the HTTP answers cannot show) fails here.
js_stop_server() {
    kill -TERM "$PID"
    wait "$PID"
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        pass
    else
        fail "the server exited $rc: $(tail -n 30 "$WORK/serve.err")"
    fi
}

js_json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# USER PASSWORD TOTP_SECRET -> prints a session token.  Secrets travel
# through stdin and files, never argv.
js_login() {
    local code
    code=$(printf '%s\n' "$3" | oathtool --totp -b -)
    curl -s -H 'Content-Type: application/json' --data-binary @- "$BASE/auth/login" <<EOF | js_json_get token
{"username":"$1","password":"$2","totp":"$code"}
EOF
}

JS_USER_PW="a long passphrase for the client tests"

# NAME ROLE [EXTRA JSON MEMBERS] -> prints the new account's session token.
js_adduser() {
    local answer secret
    (umask 077; printf 'Authorization: Bearer %s\n' "$ADMIN" > "$WORK/admin.header")
    answer=$(curl -s -H @"$WORK/admin.header" -H 'Content-Type: application/json' \
        --data-binary @- "$BASE/api/users" <<EOF
{"username":"$1","role":"$2","password":"$JS_USER_PW"${3:-}}
EOF
    )
    secret=$(printf '%s' "$answer" | js_json_get secret)
    [ -n "$secret" ] || { fail "could not create $1: $answer"; return 1; }
    local id status
    id=$(printf '%s' "$answer" | sed -n 's/.*"approval":{.*"id":"\([^"]*\)".*/\1/p')
    (umask 077; printf 'Authorization: Bearer %s\n' "$APPROVER" > "$WORK/approver.header")
    status=$(curl -s -o "$WORK/approve.out" -w '%{http_code}' -X POST -H @"$WORK/approver.header" \
        "$BASE/api/approvals/$id/approve")
    [ "$status" = 200 ] || { fail "approving $1: $status $(cat "$WORK/approve.out")"; return 1; }
    js_login "$1" "$JS_USER_PW" "$secret"
}
