#!/usr/bin/env bash
# bench_http.sh -- the server's numbers:
#   1. logins per second: every login runs Argon2id (19 MiB, 2 passes) on
#      purpose, so this is a ceiling we chose, not one we hit;
#   2. requests per second on an authenticated no-op endpoint (bearer check:
#      session lookup, account read and decryption) against nginx serving a
#      static file of the same size on the same machine (the ceiling).
# Both over plain HTTP on loopback, driven by wrk.  Installs wrk and
# nginx-light when missing (benchmarks only; never in the test suite).
# usage: bench/bench_http.sh BUILD_DIR [USERS] [SECONDS]
set -euo pipefail
B=${1:-build}; USERS=${2:-64}; SECS=${3:-10}
MV="$B/medvault"
for c in wrk nginx oathtool curl bc; do
    command -v $c >/dev/null || { apt-get install -y -qq wrk nginx-light oathtool curl bc >/dev/null; break; }
done
W=$(mktemp -d /tmp/medvault-bench-http-XXXXXX)
cleanup() { kill $SRV 2>/dev/null || true; [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

PW="benchmark passphrase for the boss"
printf '%s\n' "$PW" | "$MV" init --data "$W/d" --key-file "$W/k" --admin-password-stdin --json > "$W/init.json"
SECRET=$(sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$W/init.json")
cat > "$W/conf" <<CONF
lock_after = 1000000
source_max_failures = 100000
idle_timeout = 1h
detect = ${DETECT:-on}
CONF
"$MV" serve --data "$W/d" --key-file "$W/k" --config "$W/conf" --listen http://127.0.0.1:0 \
    > "$W/out" 2> "$W/access.log" &
SRV=$!
for _ in $(seq 100); do PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$W/out"); [ -n "$PORT" ] && break; sleep 0.05; done
[ -n "${PORT:-}" ] || { echo "bench_http: the server did not start: $(cat "$W/access.log")" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
login() {  # USER PASSWORD CODE -> token
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$3\"}" "$BASE/auth/login" |
        sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
ADMIN=$(login admin "$PW" "$(oathtool --totp -b "$SECRET")")

# Users to log in: each successful login needs an unused TOTP time step, so
# every user logs in once, with its own secret.
UPW="a user passphrase for benchmarking"
RIDS=()
for i in $(seq "$USERS"); do
    curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d "{\"username\":\"user$i\",\"role\":\"nurse\",\"password\":\"$UPW\"}" "$BASE/api/users" \
        > "$W/answer.$i"
    sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$W/answer.$i" > "$W/secret.$i"
    [ -s "$W/secret.$i" ] || { echo "bench_http: creating user$i failed" >&2; exit 1; }
    RIDS+=("$(sed -n 's/.*"approval":{.*"id":"\([0-9a-f]*\)".*/\1/p' "$W/answer.$i")")
done
# two-person control: the local operator approves them (the store has no officer)
"$MV" approvals approve "${RIDS[@]}" --data "$W/d" --key-file "$W/k" >/dev/null ||
    { echo "bench_http: approving the users failed" >&2; exit 1; }
for i in $(seq "$USERS"); do
    printf '{"username":"user%d","password":"%s","totp":"%s"}\n' "$i" "$UPW" \
        "$(oathtool --totp -b "$(cat "$W/secret.$i")")" > "$W/login.$i"
done
start=$(date +%s.%N)
seq "$USERS" | xargs -P "$(nproc)" -I{} curl -s -o "$W/answer.{}" -H 'Content-Type: application/json' \
    --data-binary @"$W/login.{}" "$BASE/auth/login"
end=$(date +%s.%N)
ok=$(grep -l '"token"' "$W"/answer.* | wc -l)
echo "| logins (Argon2id m=19 MiB t=2, TOTP, session, durable audit), $(nproc) clients | $ok of $USERS succeeded | $(echo "$ok / ($end - $start)" | bc -l | xargs printf '%.1f') logins/s |"

# The authenticated no-op against nginx.
TOKEN=$(cat "$W/answer.1" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
BODY=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/api/whoami")
mkdir -p "$W/www"; printf '%s' "$BODY" > "$W/www/whoami.json"
NPORT=$((PORT + 1))
cat > "$W/nginx.conf" <<NGINX
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:$NPORT; root $W/www; location / { add_header Cache-Control no-store; } }
}
NGINX
nginx -c "$W/nginx.conf"
sleep 0.3
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
MVRPS=$(wrk -t2 -c32 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/whoami" | rps)
NGRPS=$(wrk -t2 -c32 -d"${SECS}s" "http://127.0.0.1:$NPORT/whoami.json" | rps)
echo "| GET /api/whoami, bearer-authenticated (wrk -t2 -c32 -d${SECS}s) | ${#BODY} B | $MVRPS req/s |"
echo "| nginx static file of the same bytes (same wrk) | ${#BODY} B | $NGRPS req/s ($(echo "100 * $MVRPS / $NGRPS" | bc -l | xargs printf '%.0f')% reached by medvault) |"

# An authorized FHIR read: policy decision, decryption under the patient's
# key, and an audit entry made durable (group commit) before the answer.
ANSWER=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench-svc\",\"role\":\"service\",\"scopes\":\"system/Patient.cruds\",\"password\":\"$UPW\"}" \
    "$BASE/api/users")
SVC_SECRET=$(printf '%s' "$ANSWER" | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')
"$MV" approvals approve "$(printf '%s' "$ANSWER" | sed -n 's/.*"approval":{.*"id":"\([0-9a-f]*\)".*/\1/p')" \
    --data "$W/d" --key-file "$W/k" >/dev/null || { echo "bench_http: approving failed" >&2; exit 1; }
SVC=$(login bench-svc "$UPW" "$(oathtool --totp -b "$SVC_SECRET")")
PID_=$(curl -s -H "Authorization: Bearer $SVC" -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Martin","given":["Léa"]}],"birthDate":"1990-02-03","gender":"female","address":[{"city":"Lyon","postalCode":"69003"}]}' \
    "$BASE/fhir/Patient" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
[ -n "$PID_" ] || { echo "bench_http: creating the benchmark Patient failed" >&2; exit 1; }
PBODY=$(curl -s -H "Authorization: Bearer $SVC" "$BASE/fhir/Patient/$PID_")
printf '%s' "$PBODY" > "$W/www/patient.json"
FRPS=$(wrk -t2 -c32 -d"${SECS}s" -H "Authorization: Bearer $SVC" "$BASE/fhir/Patient/$PID_" | rps)
NPRPS=$(wrk -t2 -c32 -d"${SECS}s" "http://127.0.0.1:$NPORT/patient.json" | rps)
echo "| GET /fhir/Patient/{id}: policy + decryption + durable audit entry (wrk -t2 -c32 -d${SECS}s) | ${#PBODY} B | $FRPS req/s |"
echo "| nginx static file of the same bytes (same wrk) | ${#PBODY} B | $NPRPS req/s ($(echo "100 * $FRPS / $NPRPS" | bc -l | xargs printf '%.0f')% reached by medvault; target 50%) |"
