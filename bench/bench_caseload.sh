#!/usr/bin/env bash
# bench_caseload.sh -- what a busy nurse's searches cost the server: the
# seeded demo nurse (a caseload of about 250 of 400 patients) lists her
# patients (_count=20), searches a family name that one patient has, and one
# nobody has; 200 of each, the median of the server's own time for each
# (its access log), so curl's share is out of it.  Issue 11 made a listing
# decide through the caller's caseload read once (hidden matches must not
# cost time); this is what that costs where a caseload is large.
# usage: bench/bench_caseload.sh BUILD_DIR [PATIENTS]      (benchmarks only)
set -euo pipefail
B=${1:-build}; PATIENTS=${2:-400}
MV="$B/medvault"
command -v oathtool >/dev/null || apt-get install -y -qq oathtool >/dev/null
W=$(mktemp -d /tmp/medvault-bench-caseload-XXXXXX)
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
jg() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

"$MV" init --data "$W/d" --key-file "$W/k" > /dev/null 2>&1
"$MV" seed --patients "$PATIENTS" --staff 4 --seed 5 --json --data "$W/d" --key-file "$W/k" \
    > "$W/seed.json" 2> /dev/null
acct() { grep "\"username\":\"$1\"" "$W/seed.json" | jg "$2"; }
printf 'detect = off\n' > "$W/conf"
"$MV" serve --data "$W/d" --key-file "$W/k" --config "$W/conf" --listen http://127.0.0.1:0 \
    > "$W/out" 2> "$W/log" &
SRV=$!
for _ in $(seq 100); do PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$W/out"); [ -n "$PORT" ] && break; sleep 0.05; done
BASE="http://127.0.0.1:$PORT"
printf '{"username":"demo-nurse","password":"%s","totp":"%s"}' "$(acct demo-nurse password)" \
    "$(oathtool --totp -b "$(acct demo-nurse secret)")" > "$W/login.json"
TOKEN=$(curl -s -H 'Content-Type: application/json' --data-binary @"$W/login.json" "$BASE/auth/login" | jg token)
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$W/auth.h"
FAMILY=$(curl -s -H @"$W/auth.h" "$BASE/fhir/Patient?_count=1" |
    sed -n 's/.*"family":"\([^"]*\)".*/\1/p' | head -1)

median_of() {  # QUERY -> the server's median ms over 200
    local before
    before=$(grep -c 'GET /fhir/Patient ' "$W/log" || true)
    for _ in $(seq 200); do curl -s -o /dev/null -H @"$W/auth.h" "$BASE/fhir/Patient?$1"; done
    grep 'GET /fhir/Patient ' "$W/log" | tail -n +"$((before + 1))" |
        sed -n 's/.* 200 \([0-9.]*\)ms.*/\1/p' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
TOTAL=$(curl -s -H @"$W/auth.h" "$BASE/fhir/Patient?_count=1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
echo "| demo-nurse (sees $TOTAL of $PATIENTS patients) | server median ms |"
echo "|---|---|"
echo "| Patient?_count=20 (her list) | $(median_of "_count=20") |"
echo "| Patient?family=<a name one patient has> | $(median_of "family=$FAMILY") |"
echo "| Patient?family=<a name nobody has> | $(median_of "family=Zzzznobody") |"
