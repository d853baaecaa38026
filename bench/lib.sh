# lib.sh -- what the FHIR benchmarks (bench_search.sh, bench_create.sh) share:
# a fresh store served over plain HTTP on loopback, accounts made through the
# API and logged in with TOTP, bulk loading with one parallel curl, and wrk
# runs whose bearer token stays in files (a Lua script, a curl config), never
# on a command line.  Sourced, not run; benchmarks only, never the tests.
set -euo pipefail

for c in wrk oathtool curl bc; do
    command -v $c >/dev/null || { apt-get install -y -qq wrk oathtool curl bc >/dev/null; break; }
done
W=$(mktemp -d /tmp/medvault-bench-fhir-XXXXXX)
chmod 700 "$W"
SRV=
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

json_get() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# Start `medvault serve` on a new store with binary $1: sets BASE and ADMIN
# (the admin's token, also in the header file $W/admin.h).
bench_serve() {
    BENCH_MV=$1
    local pw="benchmark passphrase for the boss"
    printf '%s\n' "$pw" | "$1" init --data "$W/d" --key-file "$W/k" --admin-password-stdin \
        --json > "$W/init.json"
    # The benchmarks load thousands of patients through the API, which the
    # misuse detector rightly contains unless the load is declared: they
    # measure the store and the API with detection off (DETECT=on to keep it).
    printf 'lock_after = 1000000\nsource_max_failures = 100000\nidle_timeout = 1h\ndetect = %s\n' \
        "${DETECT:-off}" > "$W/conf"
    "$1" serve --data "$W/d" --key-file "$W/k" --config "$W/conf" --listen http://127.0.0.1:0 \
        > "$W/out" 2> "$W/access.log" &
    SRV=$!
    local port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$W/out"); [ -n "$port" ] && break; sleep 0.05
    done
    [ -n "$port" ] || { echo "bench: the server did not start: $(cat "$W/access.log")" >&2; exit 1; }
    BASE="http://127.0.0.1:$port"
    ADMIN=$(bench_login admin "$pw" "$(json_get secret < "$W/init.json")")
    bench_auth_file "$ADMIN" "$W/admin.h"
}

bench_login() {  # USER PASSWORD TOTP_SECRET -> token
    printf '{"username":"%s","password":"%s","totp":"%s"}' "$1" "$2" "$(oathtool --totp -b "$3")" |
        curl -s -H 'Content-Type: application/json' --data-binary @- "$BASE/auth/login" | json_get token
}

# Approve the two-person requests in the answer on stdin, as the local
# operator (the benchmark's store has no security officer to ask).
bench_approve() {  # MEDVAULT DATA KEY < ANSWER
    local ids
    ids=$(sed -n 's/.*"approval":{.*"id":"\([0-9a-f]*\)".*/\1/p')
    [ -n "$ids" ] && "$1" approvals approve $ids --data "$2" --key-file "$3" >/dev/null
}

# A new account (NAME ROLE EXTRA_JSON), logged in: prints its token.
bench_user() {
    local pw="a user passphrase for benchmarking" answer secret
    answer=$(printf '{"username":"%s","role":"%s","password":"%s"%s}' "$1" "$2" "$pw" "${3:-}" |
        curl -s -H @"$W/admin.h" -H 'Content-Type: application/json' --data-binary @- \
            "$BASE/api/users")
    secret=$(printf '%s' "$answer" | json_get secret)
    [ -n "$secret" ] && printf '%s' "$answer" | bench_approve "$BENCH_MV" "$W/d" "$W/k" ||
        { echo "bench: creating $1 failed" >&2; exit 1; }
    bench_login "$1" "$pw" "$secret"
}

# Headers file for curl -H @FILE (keeps the token off the command line).
bench_auth_file() {  # TOKEN FILE
    printf 'Authorization: Bearer %s\n' "$1" > "$2"
}

# Run the curl config CFG (requests separated by "next"), 16 at a time;
# exits when any answer is not 2xx.
bench_load() {  # CFG WHAT
    local n bad
    sed '$ { /^next$/d }' "$1" > "$W/load.cfg"            # no empty last operation
    curl -s --parallel --parallel-max 16 -K "$W/load.cfg" > "$W/load.codes" 2> "$W/load.err" ||
        { echo "bench: loading $2: $(tail -1 "$W/load.err")" >&2; exit 1; }
    n=$(grep -c '' "$W/load.codes"); bad=$(grep -vc '^2' "$W/load.codes" || true)
    [ "$bad" -eq 0 ] || { echo "bench: $bad of $n requests loading $2 failed" >&2; exit 1; }
}

# One PUT of BODY to PATH as the token of header file H, in curl config form.
bench_put_cfg() {  # PATH BODY H
    local escaped=${2//\\/\\\\}
    escaped=${escaped//\"/\\\"}
    printf 'url = "%s%s"\nsilent\nrequest = "PUT"\nheader = "@%s"\nheader = "Content-Type: application/fhir+json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n' \
        "$BASE" "$1" "$3" "$escaped"
}

# wrk -t2 -cCONNS -dSECS (-t1 for one connection) with Lua script LUA (which
# sets the token header):
# sets WRK_RPS to the requests per second, WRK_ERRORS to the non-2xx answers
# plus socket errors, and WRK_LATENCY to the mean latency.
bench_wrk() {  # LUA URL CONNS SECS
    wrk -t"$(($3 < 2 ? 1 : 2))" -c"$3" -d"$4s" -s "$1" "$2" > "$W/wrk.out"
    local non2xx sock
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$W/wrk.out")
    sock=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' "$W/wrk.out")
    WRK_ERRORS=$(( ${non2xx:-0} + ${sock:-0} ))
    WRK_LATENCY=$(awk '$1 == "Latency" { print $2; exit }' "$W/wrk.out")
    WRK_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$W/wrk.out")
}

# A Lua prelude setting the bearer token.
bench_lua_auth() {  # TOKEN
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$1"
}

# Surnames from three syllables of a table: distinct, foldable, and none a
# prefix of another (all six letters).  bench_name I for I < 8000.
SYLL=(ba be bi bo bu da de di do du la le li lo lu ma me mi mo mu)
bench_name() {
    local i=$1
    local s="${SYLL[i % 20]}${SYLL[i / 20 % 20]}${SYLL[i / 400 % 20]}"
    printf '%s%s' "$(printf '%s' "${s:0:1}" | tr a-z A-Z)" "${s:1}"
}
