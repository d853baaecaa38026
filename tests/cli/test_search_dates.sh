#!/usr/bin/env bash
# Date search as R4 defines it (search.html#date), over the blind index,
# on resources written for the purpose:
#   - the time of day and the offset count: 2020-06-30T23:30:00-05:00 is
#     2020-07-01T04:30:00Z, found by that instant and by 2020-07-01, and an
#     instant at noon is not found by 04:30;
#   - a partial stored value ("1975", "1980-02") is a range, matched by
#     finer searches as the prefixes say (ge1975-01-01 finds 1975);
#   - a Period is a range: eq is containment (not overlap), a Period with no
#     end goes on (gt finds it), a long Period is found inside its span by
#     ge and le;
#   - every prefix: eq ne gt lt ge le sa eb ap; a malformed date or an
#     unknown prefix is a 400 naming the parameter.
. "$(dirname "$0")/lib.sh"

api_server s
REG=$(adduser registrar service ',"scopes":"system/Patient.cruds system/Observation.cruds system/Encounter.cruds"')
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
ids() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/.*\///; s/"$//' | sort | tr '\n' ' '; }
sorted() { [ $# -gt 0 ] && printf '%s\n' "$@" | sort | tr '\n' ' '; }
create() {  # TYPE JSON -> prints the id
    as "$REG" "${FJ[@]}" -d "$2" "$BASE/fhir/$1"
    [ "$STATUS" = 201 ] || fail "$1: $STATUS $BODY"
    printf '%s' "$BODY" | json_get id
}
search() {  # WHAT QUERY EXPECTED-IDS...
    local what=$1 query=$2; shift 2
    as "$REG" "$BASE/fhir/$query&_count=100"
    expect_eq "$STATUS" "200" "$what: status"
    expect_eq "$(ids)" "$(sorted "$@")" "$what"
}

patient() { create Patient "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Datequin\"}]${1:+,\"birthDate\":\"$1\"}}"; }
P75=$(patient 1975); P80=$(patient 1980-02); P85=$(patient 1985-05-12); PNONE=$(patient "")
obs() { create Observation "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"pulse\"},\"subject\":{\"reference\":\"Patient/$P85\"},\"effectiveDateTime\":\"$1\"}"; }
O_0430=$(obs 2020-07-01T04:30:00Z); O_NOON=$(obs 2020-07-01T12:00:00Z)
O_NY=$(obs 2020-06-30T23:30:00-05:00); O_PARIS=$(obs 2020-07-01T01:30:00+02:00)
enc() { create Encounter "{\"resourceType\":\"Encounter\",\"status\":\"$1\",\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"IMP\"},\"subject\":{\"reference\":\"Patient/$P80\"},\"period\":$2}"; }
E_OPEN=$(enc in-progress '{"start":"2020-01-01T08:00:00Z"}')
E_JAN=$(enc finished '{"start":"2020-01-01","end":"2020-01-31"}')
E_LONG=$(enc finished '{"start":"2019-03-15","end":"2021-02-10"}')

# --- instants: the time of day and the offset ----------------------------------------------
search "an instant finds that instant, whatever offset it was written in" \
    "Observation?date=eq2020-07-01T04:30:00Z" "$O_0430" "$O_NY"
search "the same instant written with an offset" \
    "Observation?date=2020-06-30T23:30:00-05:00" "$O_0430" "$O_NY"
search "a day finds what falls in it in UTC" "Observation?date=2020-07-01" "$O_0430" "$O_NOON" "$O_NY"
search "01:30+02:00 is the day before in UTC" "Observation?date=2020-06-30" "$O_PARIS"
search "gt an instant" "Observation?date=gt2020-07-01T04:30:00Z" "$O_NOON"
search "lt an instant" "Observation?date=lt2020-07-01T04:30:00Z" "$O_PARIS"
search "le a minute" "Observation?date=le2020-07-01T04:30Z" "$O_0430" "$O_NY" "$O_PARIS"

# --- partial stored values ---------------------------------------------------------------------------
search "ge1975-01-01 finds 1975" "Patient?family=Datequin&birthdate=ge1975-01-01" "$P75" "$P80" "$P85"
search "eq1975 finds 1975" "Patient?family=Datequin&birthdate=1975" "$P75"
search "eq1975-06 does not contain 1975" "Patient?family=Datequin&birthdate=eq1975-06"
search "lt1980-02-15: 1975 and February 1980" "Patient?family=Datequin&birthdate=lt1980-02-15" "$P75" "$P80"
search "le1975-06-01: 1975 starts before" "Patient?family=Datequin&birthdate=le1975-06-01" "$P75"
search "gt1980-02-15: February 1980 ends after, 1985" "Patient?family=Datequin&birthdate=gt1980-02-15" "$P80" "$P85"
search "sa1979" "Patient?family=Datequin&birthdate=sa1979" "$P80" "$P85"
search "eb1980-03" "Patient?family=Datequin&birthdate=eb1980-03" "$P75" "$P80"
search "eb1980-02 (February does not end before itself)" "Patient?family=Datequin&birthdate=eb1980-02" "$P75"
search "ne1980-02: those with another birth date" "Patient?family=Datequin&birthdate=ne1980-02" "$P75" "$P85"
search "ap1985-05-20 is near 1985-05-12" "Patient?family=Datequin&birthdate=ap1985-05-20" "$P85"
search "an OR of dates" "Patient?family=Datequin&birthdate=1975,1985" "$P75" "$P85"
search "an AND of prefixes: a range" "Patient?family=Datequin&birthdate=ge1976&birthdate=le1984" "$P80"

# --- Periods -------------------------------------------------------------------------------------------------
search "eq is containment: January" "Encounter?date=eq2020-01" "$E_JAN"
search "eq a day inside a long Period: not contained" "Encounter?date=2020-07-01"
search "gt: a Period with no end goes on" "Encounter?date=gt2020-06-01" "$E_OPEN" "$E_LONG"
search "ge a day inside the long Period" "Encounter?date=ge2020-07-01" "$E_OPEN" "$E_LONG"
search "le a day: every Period that started before" "Encounter?date=le2020-07-01" "$E_OPEN" "$E_JAN" "$E_LONG"
search "lt 2019-03-15: none started before" "Encounter?date=lt2019-03-15"
search "sa 2019: started after" "Encounter?date=sa2019" "$E_OPEN" "$E_JAN"
search "eb 2050: ended before (the open one has not)" "Encounter?date=eb2050" "$E_JAN" "$E_LONG"
search "ne January 2020" "Encounter?date=ne2020-01" "$E_OPEN" "$E_LONG"
search "gt 2099: the open Period still" "Encounter?date=gt2099-12-31" "$E_OPEN"

# --- _lastUpdated takes every prefix too -------------------------------------------------------------------
TODAY=$(date -u +%Y-%m-%d)
search "_lastUpdated=sa2000" "Patient?family=Datequin&_lastUpdated=sa2000" "$P75" "$P80" "$P85" "$PNONE"
search "_lastUpdated=eb2000" "Patient?family=Datequin&_lastUpdated=eb2000"
search "_lastUpdated=ap today" "Patient?family=Datequin&_lastUpdated=ap$TODAY" "$P75" "$P80" "$P85" "$PNONE"
search "_lastUpdated=ap 1990" "Patient?family=Datequin&_lastUpdated=ap1990"

# --- _sort on a date: its start; no date sorts last ---------------------------------------------------------------
in_order() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/.*\///; s/"$//' | tr '\n' ' '; }
as "$REG" "$BASE/fhir/Patient?family=Datequin&_sort=-birthdate"
expect_eq "$(in_order)" "$P85 $P80 $P75 $PNONE " "_sort=-birthdate"
as "$REG" "$BASE/fhir/Patient?family=Datequin&_sort=birthdate"
expect_eq "$(in_order)" "$P75 $P80 $P85 $PNONE " "_sort=birthdate"
as "$REG" "$BASE/fhir/Observation?date=2020-07-01&_sort=date"
expect_eq "$(in_order | cut -d' ' -f3)" "$O_NOON" "_sort=date: instants in UTC order, noon after 04:30"
as "$REG" "$BASE/fhir/Observation?date=2020-07-01&_sort=-date"
expect_eq "$(in_order | cut -d' ' -f1)" "$O_NOON" "_sort=-date: noon first"

# --- errors ----------------------------------------------------------------------------------------------------
for bad in 2020-13-01 xx2020 2020-02-30 20200101 2020-01-01T25:00Z; do
    as "$REG" "$BASE/fhir/Observation?date=$bad"
    expect_eq "$STATUS" "400" "malformed date $bad"
    expect_contains "$BODY" "date" "the 400 names the parameter ($bad)"
done

finish
