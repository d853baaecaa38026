#!/usr/bin/env bash
# Type-level history and the _lastUpdated search parameter, end to end on a
# fresh store: GET /fhir/Type/_history lists every version (updates and
# deletes) newest first, honours _since and pages with next links that
# visit every version exactly once; a clinician sees only its care-team
# patients' versions and the total does not count the others; the page's
# disclosure is audited per patient.  _lastUpdated takes each date prefix,
# whole days, years, seconds and zones, combines with patient= and with
# _sort both ways, and its paging links keep the query.
. "$(dirname "$0")/lib.sh"

api_server s
REG=$(adduser registrar service ',"scopes":"system/Patient.cruds system/CareTeam.cruds system/Observation.cruds system/Condition.rs"')
HOUSE=$(adduser drhouse clinician ',"practitioner":"prac-1"')
WHO=$(adduser drwho clinician ',"practitioner":"prac-2"')
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
created_id() { printf '%s' "$BODY" | json_get id; }
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
# The entries' fullUrls / versions (a history's response.location) /
# lastModified, in order, one per line.
urls() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/^"fullUrl":"//; s/"$//'; }
versions() { printf '%s' "$BODY" | grep -o '"location":"[^"]*"' | sed 's/^"location":"//; s/"$//'; }
times() { printf '%s' "$BODY" | grep -o '"lastModified":"[^"]*"' | sed 's/^"lastModified":"//; s/"$//'; }
next_link() { printf '%s' "$BODY" | grep -o '"relation":"next","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//'; }
line() { tr '\n' ' ' | sed 's/ $//'; }
request_id() { sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([0-9a-f]*\).*/\1/p' "$WORK/headers"; }
# Follow the next links from URL as TOKEN: every page's fullUrls, in order;
# PAGES gets the number of pages and TOTALS their totals.
walk() {  # TOKEN URL
    local url=$2 seen=""
    PAGES=0; TOTALS=""
    while [ -n "$url" ] && [ "$PAGES" -lt 50 ]; do
        case $url in http*) ;; *) url="$BASE$url" ;; esac
        as "$1" "$url"
        [ "$STATUS" = 200 ] || { fail "page $url: $STATUS $BODY"; break; }
        PAGES=$((PAGES + 1)); TOTALS="$TOTALS $(total)"
        case $url in *_history*) seen="$seen $(versions | line)" ;; *) seen="$seen $(urls | line)" ;; esac
        url=$(next_link)
    done
    WALKED=$(printf '%s' "$seen" | sed 's/^ *//; s/  */ /g')
}

obs() {  # PATIENT VALUE [ID] -> an Observation body
    printf '{"resourceType":"Observation",%s"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%s,"unit":"/min"}}' \
        "${3:+\"id\":\"$3\",}" "$1" "$2"
}

# --- a small record: two patients, one care team, observations with history ------
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Zyxwarowska"}]}' "$BASE/fhir/Patient"
expect_eq "$STATUS" "201" "create patient 1"
P1=$(created_id)
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Quillebeuf"}]}' "$BASE/fhir/Patient"
P2=$(created_id)
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"subject\":{\"reference\":\"Patient/$P1\"},\"participant\":[{\"member\":{\"reference\":\"Practitioner/prac-1\"}}]}" "$BASE/fhir/CareTeam"
expect_eq "$STATUS" "201" "care team of patient 1"
as "$REG" "${FJ[@]}" -d "$(obs "$P1" 72)" "$BASE/fhir/Observation"; O1=$(created_id)
as "$REG" "${FJ[@]}" -d "$(obs "$P2" 61)" "$BASE/fhir/Observation"; O2=$(created_id)
as "$REG" "${FJ[@]}" -d "$(obs "$P1" 90)" "$BASE/fhir/Observation"; O3=$(created_id)
expect_eq "$STATUS" "201" "three observations"
as "$REG" "${FJ[@]}" -X PUT -d "$(obs "$P1" 75 "$O1")" "$BASE/fhir/Observation/$O1"
expect_eq "$STATUS" "200" "update observation 1"
as "$REG" -X DELETE "$BASE/fhir/Observation/$O3"
expect_eq "$STATUS" "204" "delete observation 3"
as "$REG" "${FJ[@]}" -X PUT -d "$(obs "$P2" 64 "$O2")" "$BASE/fhir/Observation/$O2"
expect_eq "$STATUS" "200" "update observation 2"
o() { printf 'Observation/%s/_history/%s' "$1" "$2"; }
ALL="$(o "$O2" 2) $(o "$O3" 2) $(o "$O1" 2) $(o "$O3" 1) $(o "$O2" 1) $(o "$O1" 1)"
MINE="$(o "$O3" 2) $(o "$O1" 2) $(o "$O3" 1) $(o "$O1" 1)"

# --- type history: every version, newest first -------------------------------------
as "$REG" "$BASE/fhir/Observation/_history"
expect_eq "$STATUS" "200" "type history"
expect_contains "$BODY" '"resourceType":"Bundle","type":"history"' "a history bundle"
expect_eq "$(total)" "6" "every version counted (updates and deletes)"
expect_eq "$(versions | line)" "$ALL" "every version, newest first"
expect_not_contains "$(urls | line)" "_history" "no fullUrl names a version (bdl-8)"
times | sort -r -c 2>/dev/null && pass || fail "lastModified not newest first: $(times | line)"
if printf '%s' "$BODY" | grep_q -E "\"request\":\{\"method\":\"DELETE\",\"url\":\"Observation/$O3\"\},\"response\":\{\"status\":\"204\",\"location\":\"$(o "$O3" 2)\",[^}]*\}\}"; then
    pass; else fail "a delete is an entry with DELETE, 204 and no resource: $BODY"; fi
expect_contains "$BODY" "{\"fullUrl\":\"Observation/$O1\",\"request\":{\"method\":\"PUT\",\"url\":\"Observation/$O1\"},\"response\":{\"status\":\"200\",\"location\":\"$(o "$O1" 1)\"" "an update entry"
expect_contains "$BODY" '"value":72' "the old version's body is there"
expect_contains "$BODY" '"value":75' "and the new one's"
expect_contains "$BODY" '"etag":"W/\"2\""' "entries carry their etag"
expect_not_contains "$BODY" '"relation":"next"' "one page: no next link"
as "$REG" "$BASE/fhir/Patient/_history/"
expect_eq "$STATUS $(total)" "200 2" "Patient type history (trailing slash)"
as "$REG" "$BASE/fhir/Condition/_history"
expect_eq "$STATUS $(total)" "200 0" "a type with no version"
expect_not_contains "$BODY" '"entry"' "no entries"

# --- paging: every version exactly once -------------------------------------------------
as "$REG" "$BASE/fhir/Observation/_history?_count=2"
expect_eq "$(next_link)" "$BASE/fhir/Observation/_history?_count=2&_offset=2" "an absolute next link"
# The link's host is the server's own, never the request's Host header: a
# client following it would send its token there.
as "$REG" -H 'Host: attacker.example:443' "$BASE/fhir/Observation/_history?_count=2"
expect_eq "$(next_link)" "$BASE/fhir/Observation/_history?_count=2&_offset=2" "Host is not echoed in history links"
as "$REG" -H 'Host: attacker.example' "$BASE/fhir/Observation?_count=1"
expect_contains "$(next_link)" "$BASE/fhir/Observation?" "Host is not echoed in search links"
expect_not_contains "$BODY" "attacker.example" "no link names the Host header"
walk "$REG" "/fhir/Observation/_history?_count=2"
expect_eq "$WALKED" "$ALL" "next links visit every version once, in order"
expect_eq "$PAGES" "3" "three pages of two"
expect_eq "$TOTALS" " 6 6 6" "the same total on every page"
walk "$REG" "/fhir/Observation/_history?_count=4"
expect_eq "$WALKED" "$ALL" "pages of four"
expect_eq "$PAGES" "2" "two pages"
as "$REG" "$BASE/fhir/Observation/_history?_count=0"
expect_eq "$STATUS $(total)" "200 6" "_count=0: only the total"
expect_not_contains "$BODY" '"relation":"next"' "_count=0: no next link"
as "$REG" "$BASE/fhir/Observation/_history?_count=2&_offset=5"
expect_eq "$(versions | line)" "$(o "$O1" 1)" "an offset into the last page"

# --- _since ---------------------------------------------------------------------------------
as "$REG" "$BASE/fhir/Observation/_history"
SINCE=$(times | sed -n 3p)              # the update of observation 1
as "$REG" "$BASE/fhir/Observation/_history?_since=$SINCE"
expect_eq "$STATUS $(total)" "200 3" "_since is inclusive"
expect_eq "$(versions | line)" "$(o "$O2" 2) $(o "$O3" 2) $(o "$O1" 2)" "_since keeps the newer versions"
walk "$REG" "/fhir/Observation/_history?_since=$SINCE&_count=1"
expect_eq "$WALKED" "$(o "$O2" 2) $(o "$O3" 2) $(o "$O1" 2)" "_since is kept by the next links"
as "$REG" "$BASE/fhir/Observation/_history?_since=2999-01-01T00:00:00Z"
expect_eq "$STATUS $(total)" "200 0" "_since in the future"
as "$REG" "$BASE/fhir/Observation/_history?_since=${SINCE:0:10}"
expect_eq "$(total)" "6" "_since a whole day: from its start"

# --- who sees what ----------------------------------------------------------------------------
as "$HOUSE" "$BASE/fhir/Observation/_history"
expect_eq "$STATUS" "200" "a clinician's type history"
HOUSE_RID=$(request_id)
expect_eq "$(total)" "4" "the total counts only the care team's patient"
expect_eq "$(versions | line)" "$MINE" "only the care team's patient's versions"
expect_not_contains "$BODY" "$O2" "nothing of the other patient"
expect_not_contains "$BODY" "$P2" "not even its id"
walk "$HOUSE" "/fhir/Observation/_history?_count=3"
expect_eq "$WALKED" "$MINE" "the clinician's pages visit its versions once"
expect_eq "$TOTALS" " 4 4" "and never count the hidden ones"
as "$WHO" "$BASE/fhir/Observation/_history"
expect_eq "$STATUS $(total)" "200 0" "no care relationship: nothing, and a zero total"
expect_not_contains "$BODY" '"entry"' "no entries for a stranger"
as "$ADMIN" "$BASE/fhir/Observation/_history"
expect_eq "$STATUS" "403" "admin reads no clinical history"
expect_not_contains "$BODY" "$O1" "nothing of it"
as "$REG" "$BASE/fhir/Observation/_history"
REG_RID=$(request_id)

# --- refused queries ---------------------------------------------------------------------------
as "$REG" "$BASE/fhir/Observation/_history?_count=101"
expect_eq "$STATUS" "200" "_count above the maximum is served (issue 12)"
expect_contains "$BODY" "_count=100" "capped at the maximum page"
as "$REG" "$BASE/fhir/Observation/_history?_count=ten"
expect_eq "$STATUS" "400" "a _count that is no number"
as "$REG" "$BASE/fhir/Observation/_history?_since=yesterday"
expect_eq "$STATUS" "400" "a malformed _since"
expect_contains "$BODY" '"resourceType":"OperationOutcome"' "an OperationOutcome"
as "$REG" "$BASE/fhir/Observation/_history?_at=2026"
expect_eq "$STATUS" "400" "an unsupported history parameter"
req "$BASE/fhir/Observation/_history"
expect_eq "$STATUS" "401" "no token"

# --- _lastUpdated ------------------------------------------------------------------------------
as "$REG" "${FJ[@]}" -d "$(obs "$P1" 81)" "$BASE/fhir/Observation"; E1=$(created_id)
as "$REG" "${FJ[@]}" -d "$(obs "$P2" 82)" "$BASE/fhir/Observation"; E2=$(created_id)
as "$REG" "${FJ[@]}" -d "$(obs "$P1" 83)" "$BASE/fhir/Observation"; E3=$(created_id)
expect_eq "$STATUS" "201" "three more observations"
# The stored time of each current version, from the history (newest first).
as "$REG" "$BASE/fhir/Observation/_history"
paste -d' ' <(versions) <(times) > "$WORK/versions"
stored() { sed -n "s|^Observation/$1/_history/[0-9]* ||p" "$WORK/versions" | head -1; }
declare -A T
for id in "$O1" "$O2" "$E1" "$E2" "$E3"; do T[$id]=$(stored "$id"); done
CURRENT="$O1 $O2 $E1 $E2 $E3"           # in the order they were last stored
# The ids a _lastUpdated search finds, sorted.
found() { urls | sed 's|^Observation/||' | sort | line; }
ids() { printf '%s\n' "$@" | sort | line; }
# Those of CURRENT whose stored time passes TEST (a bash condition on $t).
expected() { local id t out=(); for id in $CURRENT; do t=${T[$id]}; eval "$1" && out+=("$id"); done; ids "${out[@]}"; }
lastupdated() {  # VALUE EXPECTED_IDS WHAT
    as "$REG" "$BASE/fhir/Observation?_lastUpdated=$1"
    expect_eq "$STATUS" "200" "$3: status"
    expect_eq "$(found)" "$2" "$3"
}
t1=${T[$E1]}; t2=${T[$E2]}
lastupdated "ge$t1" "$(ids "$E1" "$E2" "$E3")" "ge an instant: from it on"
lastupdated "gt$t1" "$(ids "$E2" "$E3")" "gt an instant: after it"
lastupdated "lt$t2" "$(ids "$O1" "$O2" "$E1")" "lt an instant: before it"
lastupdated "le$t2" "$(ids "$O1" "$O2" "$E1" "$E2")" "le an instant: up to it"
lastupdated "eq$t2" "$(ids "$E2")" "eq an instant: that version only"
lastupdated "$t2" "$(ids "$E2")" "no prefix means eq"
lastupdated "ne$t2" "$(ids "$O1" "$O2" "$E1" "$E3")" "ne an instant: all others"
DAY=${t2:0:10}
lastupdated "$DAY" "$(expected '[ "${t:0:10}" = "$DAY" ]')" "a whole day"
lastupdated "eq$DAY" "$(expected '[ "${t:0:10}" = "$DAY" ]')" "eq a whole day"
lastupdated "lt$DAY" "$(expected '[[ "$t" < "$DAY" ]]')" "lt a day: before it starts"
lastupdated "gt$DAY" "$(expected '[[ "${t:0:10}" > "$DAY" ]]')" "gt a day: after it ends"
lastupdated "le$DAY" "$(expected '[[ ! "${t:0:10}" > "$DAY" ]]')" "le a day: up to its end"
lastupdated "ne$DAY" "$(expected '[ "${t:0:10}" != "$DAY" ]')" "ne a day"
lastupdated "${t2:0:4}" "$(expected '[ "${t:0:4}" = "${t2:0:4}" ]')" "a whole year"
lastupdated "${t2:0:19}Z" "$(expected '[ "${t:0:19}" = "${t2:0:19}" ]')" "a whole second"
lastupdated "lt${t2:0:4}" "" "before this year: nothing"
# The same instant written in another zone (+02:00, percent-encoded).
t2_east=$(TZ=XXX-2 date -d "$t2" +%Y-%m-%dT%H:%M:%S.%6N)
lastupdated "ge${t2_east}%2B02:00" "$(ids "$E2" "$E3")" "an instant with a zone offset"
as "$REG" "$BASE/fhir/Observation?_lastUpdated=gt$t1&_lastUpdated=lt${T[$E3]}"
expect_eq "$(found)" "$(ids "$E2")" "two _lastUpdated bounds are ANDed"

# Combined with patient=, and what a clinician may see.
as "$REG" "$BASE/fhir/Observation?patient=$P1&_lastUpdated=ge$t1"
expect_eq "$(total) $(found)" "2 $(ids "$E1" "$E3")" "combined with patient="
as "$REG" "$BASE/fhir/Observation?_lastUpdated=ge$t1&patient=Patient/$P2"
expect_eq "$(total) $(found)" "1 $E2" "in either order"
as "$HOUSE" "$BASE/fhir/Observation?_lastUpdated=ge$t1"
expect_eq "$(total) $(found)" "2 $(ids "$E1" "$E3")" "a clinician: hidden patients not counted"
as "$REG" "$BASE/fhir/Observation?_lastUpdated=ge$t1&_sort=_lastUpdated"
SEARCH_RID=$(request_id)
as "$REG" "$BASE/fhir/Patient?family=zyxwar&_lastUpdated=le${T[$E3]}"
expect_eq "$(total)" "1" "combined with a blind-index string parameter"

# Sorted both ways, and paged with the query kept.
as "$REG" "$BASE/fhir/Observation?_lastUpdated=ge$t1&_sort=_lastUpdated"
expect_eq "$(urls | line)" "Observation/$E1 Observation/$E2 Observation/$E3" "_sort=_lastUpdated"
as "$REG" "$BASE/fhir/Observation?_lastUpdated=ge$t1&_sort=-_lastUpdated"
expect_eq "$(urls | line)" "Observation/$E3 Observation/$E2 Observation/$E1" "_sort=-_lastUpdated"
walk "$REG" "/fhir/Observation?_lastUpdated=ge${T[$O2]}&_sort=_lastUpdated&_count=1"
expect_eq "$WALKED" "Observation/$O2 Observation/$E1 Observation/$E2 Observation/$E3" \
    "next links keep _lastUpdated and _sort"
expect_eq "$TOTALS" " 4 4 4 4" "each page counts the same matches"
walk "$REG" "/fhir/Observation?patient=$P1&_lastUpdated=ge$t1&_sort=-_lastUpdated&_count=1"
expect_eq "$WALKED" "Observation/$E3 Observation/$E1" "next links keep patient= too"

# Refused values, and the CapabilityStatement.
for bad in "xx$DAY" "2026-13" "${DAY}T25:00" "ge" "yesterday"; do
    as "$REG" "$BASE/fhir/Observation?_lastUpdated=$bad"
    expect_eq "$STATUS" "400" "_lastUpdated=$bad refused"
done
as "$REG" "$BASE/fhir/Observation?_lastUpdated:missing=true"
expect_eq "$STATUS" "400" "no modifier on _lastUpdated"
req "$BASE/fhir/metadata"
expect_contains "$BODY" '{"name":"_lastUpdated","type":"date"}' "the CapabilityStatement lists _lastUpdated"

# --- the trail: one entry per patient returned, naming its versions ----------------------------
kill -TERM $PID; wait $PID
run 0 "$MEDVAULT" audit verify --data "$D" --key-file "$K"
q() { sqlite3 "$D/medvault.db" "$1"; }
expect_eq "$(q "SELECT DISTINCT action||' '||outcome||' '||ifnull(patient,'-') FROM audit WHERE request_id='$HOUSE_RID'")" \
    "fhir.history success: Observation/_history $P1" "the clinician's history: one patient, audited"
house_refs=$(q "SELECT resources FROM audit WHERE request_id='$HOUSE_RID'")
for v in $MINE; do expect_contains "$house_refs" "$v" "the audit entry names $v"; done
expect_not_contains "$house_refs" "$O2" "the hidden patient's versions were not disclosed"
expect_eq "$(q "SELECT patient FROM audit WHERE request_id='$REG_RID' ORDER BY patient" | line)" \
    "$(ids "$P1" "$P2")" "a multi-patient history: one entry per patient returned"
expect_eq "$(q "SELECT outcome||' '||patient||' '||resources FROM audit WHERE request_id='$SEARCH_RID' ORDER BY patient" | line)" \
    "$(for p in $(ids "$P1" "$P2"); do
           if [ "$p" = "$P1" ]; then r="$(o "$E1" 1) $(o "$E3" 1)"; else r=$(o "$E2" 1); fi
           printf 'success: Observation?_lastUpdated %s %s\n' "$p" "$r"
       done | line)" \
    "a _lastUpdated search: one entry per patient returned, naming its versions"
expect_not_contains "$(q "SELECT group_concat(outcome) FROM audit WHERE action='fhir.search'")" "$t1" \
    "query values stay out of the trail"

# --- behind a reverse proxy: links name the configured public URL ------------------
api_stop
printf 'detect = off\npublic_url = https://ehr.example.org/medvault\n' > "$WORK/public.conf"
api_serve "$WORK/public.conf"
as "$REG" -H 'Host: attacker.example' "$BASE/fhir/Observation?_count=1"
expect_eq "$STATUS" "200" "a session survives the restart"
case $(next_link) in
    https://ehr.example.org/medvault/fhir/Observation\?*) pass ;;
    *) fail "the next link does not start with the public URL: $(next_link)" ;;
esac
printf 'public_url = https://ehr.example.org/?x=1\n' > "$WORK/bad.conf"
run 1 "$MEDVAULT" serve --data "$D" --key-file "$K" --config "$WORK/bad.conf" --listen http://127.0.0.1:0
expect_contains "$ERR" "public_url" "a bad public_url is named"
expect_one_line "$ERR" "a bad public_url: one line"
finish
