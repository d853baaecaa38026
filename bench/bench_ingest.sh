#!/usr/bin/env bash
# bench_ingest.sh -- transaction-Bundle ingestion into a fresh store, in
# resources per second (published anchor: ~600 resources/s per core).
# usage: bench/bench_ingest.sh BUILD_DIR [ROUNDS] [BUNDLE_SIZE] [IN_FLIGHT]
# Prints a Markdown table row for BENCHMARKS.md.
set -euo pipefail
B=${1:-build}; ROUNDS=${2:-3}; SIZE=${3:-200}; CONC=${4:-4}
MV="$B/medvault"
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="${MEDVAULT_SHARED:-$HERE/../../shared}/data/fhir/synthea-10-patients"
[ -d "$DATA" ] || { echo "bench_ingest: $DATA not found" >&2; exit 1; }
W=$(mktemp -d /tmp/medvault-bench-ingest-XXXXXX)
trap 'kill $SRV 2>/dev/null || true; rm -rf "$W"' EXIT
PW="benchmark passphrase for the boss"
printf '%s\n' "$PW" | "$MV" init --data "$W/d" --key-file "$W/k" --admin-password-stdin --json > "$W/init.json"
SECRET=$(sed -n 's/.*"secret":"\([^"]*\)".*/\1/p' "$W/init.json")
# A bulk load is exactly what the misuse detector contains unless declared:
# this measures ingestion itself, with detection off.
printf 'detect = off\n' > "$W/conf"
"$MV" serve --data "$W/d" --key-file "$W/k" --config "$W/conf" --listen http://127.0.0.1:0 \
    > "$W/out" 2> "$W/access.log" &
SRV=$!
for _ in $(seq 100); do PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$W/out"); [ -n "$PORT" ] && break; sleep 0.05; done
BASE="http://127.0.0.1:$PORT"
login() {
    curl -s -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$2\",\"totp\":\"$3\"}" "$BASE/auth/login" |
        sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
ADMIN=$(login admin "$PW" "$(oathtool --totp -b "$SECRET")")
UPW="a loader passphrase for benchmarking"
ANSWER=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bulkload\",\"role\":\"service\",\"scopes\":\"system/*.cruds\",\"password\":\"$UPW\"}" \
    "$BASE/api/users")
LS=$(printf '%s' "$ANSWER" | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')
# two-person control: the local operator approves (the store has no officer)
RID=$(printf '%s' "$ANSWER" | sed -n 's/.*"approval":{.*"id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$LS" ] && "$MV" approvals approve "$RID" --data "$W/d" --key-file "$W/k" >/dev/null ||
    { echo "bench_ingest: creating the loading account failed" >&2; exit 1; }
login bulkload "$UPW" "$(oathtool --totp -b "$LS")" > "$W/token"
[ -s "$W/token" ] || { echo "bench_ingest: the loading account could not log in" >&2; exit 1; }
node "$HERE/ingest.mjs" "$BASE" "$W/token" "$DATA" "$ROUNDS" "$SIZE" "$CONC"
