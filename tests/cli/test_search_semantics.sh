#!/usr/bin/env bash
# Search semantics of R4 (issue 12), checked against what each resource
# really holds, on resources written for the purpose:
#   - a comma-separated value is an OR of its values, for tokens
#     (gender=female,male; a coded clinical status with and without its
#     system) and strings (family=A,B), combined with other parameters as an
#     AND; "\," is a literal comma; an empty value in the list is a 400
#     naming the parameter;
#   - a string matches at the start of the value (not of any word in it),
#     ignoring case and accents; :exact is the whole value, case and accents
#     kept;
#   - :missing, :not (tokens), :contains (strings), :text (tokens),
#     :of-type (identifiers) and :identifier (references), decided on the
#     bodies; an unsupported modifier is a 400 naming the parameter;
#   - _sort on any parameter, several keys, descending, kept by the paging
#     links;
#   - _summary (true, text, data) and _elements, on searches and reads;
#   - a token matches as written: a phone, an e-mail, an identifier or a
#     code in another form or case is another value.
. "$(dirname "$0")/lib.sh"

api_server s
REG=$(adduser registrar service ',"scopes":"system/Patient.cruds system/Condition.cruds"')
FJ=(-H 'Content-Type: application/fhir+json')
as() { local t=$1; shift; req -H "Authorization: Bearer $t" "$@"; }
total() { printf '%s' "$BODY" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'; }
ids() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/.*\///; s/"$//' | sort | tr '\n' ' '; }
sorted() { printf '%s\n' "$@" | sort | tr '\n' ' '; }
patient() {  # FAMILY GENDER -> prints the id
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Patient\",\"gender\":\"$2\",\"name\":[{\"family\":\"$1\"}]}" "$BASE/fhir/Patient"
    [ "$STATUS" = 201 ] || fail "patient $1: $STATUS $BODY"
    printf '%s' "$BODY" | json_get id
}
condition() {  # PATIENT STATUS -> prints the id
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Condition\",\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"$2\"}]},\"code\":{\"text\":\"asthma\"},\"subject\":{\"reference\":\"Patient/$1\"}}" "$BASE/fhir/Condition"
    [ "$STATUS" = 201 ] || fail "condition $2: $STATUS $BODY"
    printf '%s' "$BODY" | json_get id
}

F1=$(patient Orvalle female); F2=$(patient Brisemont female)
M1=$(patient Orvalle male); O1=$(patient Quintard other); U1=$(patient Brisemont unknown)
C_ACT=$(condition "$F1" active); C_REC=$(condition "$F1" recurrence)
C_RES=$(condition "$M1" resolved); C_INA=$(condition "$O1" inactive)

# --- comma OR lists ----------------------------------------------------------------------
as "$REG" "$BASE/fhir/Patient?gender=female,male&_count=50"
expect_eq "$STATUS" "200" "gender=female,male"
expect_eq "$(ids)" "$(sorted "$F1" "$F2" "$M1")" "female or male: exactly those three"
expect_eq "$(total)" "3" "the total counts the OR"
as "$REG" "$BASE/fhir/Patient?gender=male,other,unknown&_count=50"
expect_eq "$(ids)" "$(sorted "$M1" "$O1" "$U1")" "three alternatives"
as "$REG" "$BASE/fhir/Patient?family=Orvalle,Quintard&_count=50"
expect_eq "$(ids)" "$(sorted "$F1" "$M1" "$O1")" "strings: family A or B"
as "$REG" "$BASE/fhir/Patient?family=Orvalle,Brisemont&gender=female&_count=50"
expect_eq "$(ids)" "$(sorted "$F1" "$F2")" "an OR list ANDed with another parameter"
as "$REG" "$BASE/fhir/Condition?clinical-status=active,recurrence&_count=50"
expect_eq "$(ids)" "$(sorted "$C_ACT" "$C_REC")" "clinical-status=active,recurrence"
as "$REG" "$BASE/fhir/Condition?clinical-status=http://terminology.hl7.org/CodeSystem/condition-clinical%7Cresolved,inactive&_count=50"
expect_eq "$(ids)" "$(sorted "$C_RES" "$C_INA")" "with and without a system in one list"
as "$REG" "$BASE/fhir/Patient?gender=female&gender=male"
expect_eq "$(total)" "0" "a repeated parameter is an AND"

# --- strings: the start of the value; :exact is exact ---------------------------------------------
address() {  # CITY FAMILY -> prints the id
    as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"$2\"}],\"address\":[{\"city\":\"$1\"}]}" "$BASE/fhir/Patient"
    [ "$STATUS" = 201 ] || fail "patient in $1: $STATUS $BODY"
    printf '%s' "$BODY" | json_get id
}
KC=$(address "Kansas City" Pfeffer420); CP=$(address "City of Angels" Pfeffer421)
ST=$(address "Saint-Étienne" "Lefèvre"); SL=$(address "Saint-Lô" "Lefevre")
as "$REG" "$BASE/fhir/Patient?address-city=city&_count=50"
expect_eq "$(ids)" "$(sorted "$CP")" "a string matches at the start of the value, not of any word"
as "$REG" "$BASE/fhir/Patient?address-city=kansas%20ci&_count=50"
expect_eq "$(ids)" "$(sorted "$KC")" "several words: the start of the value"
as "$REG" "$BASE/fhir/Patient?address-city=saint&_count=50"
expect_eq "$(ids)" "$(sorted "$ST" "$SL")" "case and accents ignored without :exact"
as "$REG" "$BASE/fhir/Patient?address-city=saint-etienne&_count=50"
expect_eq "$(ids)" "$(sorted "$ST")" "accents ignored: saint-etienne"
as "$REG" "$BASE/fhir/Patient?family:exact=pfeffer420&_count=50"
expect_eq "$(total)" "0" ":exact is case-sensitive"
as "$REG" "$BASE/fhir/Patient?family:exact=Pfeffer420&_count=50"
expect_eq "$(ids)" "$(sorted "$KC")" ":exact finds the exact value"
as "$REG" "$BASE/fhir/Patient?family:exact=Pfeffer&_count=50"
expect_eq "$(total)" "0" ":exact is the whole value, not its start"
as "$REG" "$BASE/fhir/Patient?family:exact=Lefevre&_count=50"
expect_eq "$(ids)" "$(sorted "$SL")" ":exact keeps accents: Lefevre is not Lefèvre"
as "$REG" "$BASE/fhir/Patient?family:exact=Lef%C3%A8vre,Lefevre&_count=50"
expect_eq "$(ids)" "$(sorted "$ST" "$SL")" ":exact in an OR list"

# --- tokens match as written (R4), not in a canonical form ---------------------------------------
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"2 70 11 99 123 456 78"}],"telecom":[{"system":"phone","value":"+33 6 98 76 54 32"},{"system":"email","value":"Jeanne.Tissot@example.fr"}]}' "$BASE/fhir/Patient"
TOK=$(printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Patient?telecom=%2B33698765432"
expect_eq "$(total)" "0" "telecom=+33698765432 is not +33 6 98 76 54 32"
as "$REG" "$BASE/fhir/Patient?telecom=0698765432"
expect_eq "$(total)" "0" "nor is 0698765432"
as "$REG" "$BASE/fhir/Patient?telecom=%2B33%206%2098%2076%2054%2032"
expect_eq "$(ids)" "$(sorted "$TOK")" "the phone as written"
as "$REG" "$BASE/fhir/Patient?telecom=jeanne.tissot@example.fr"
expect_eq "$(total)" "0" "an e-mail in another case"
as "$REG" "$BASE/fhir/Patient?telecom=Jeanne.Tissot@example.fr"
expect_eq "$(ids)" "$(sorted "$TOK")" "the e-mail as written"
as "$REG" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C270119912345678"
expect_eq "$(total)" "0" "an identifier without its spaces"
as "$REG" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C2%2070%2011%2099%20123%20456%2078"
expect_eq "$(ids)" "$(sorted "$TOK")" "the identifier as written"
as "$REG" "$BASE/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7C&_count=100"
expect_contains "$(ids)" "$TOK" "system| finds any value of the system"
as "$REG" "$BASE/fhir/Patient?gender=Female"
expect_eq "$(total)" "0" "a code in another case"

# --- modifiers the index cannot serve: the bodies decide ----------------------------------------------------
NOV=$(as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","name":[{"family":"Novalgender"}]}' "$BASE/fhir/Patient"; printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Patient?gender:not=female&family=Orvalle,Brisemont,Quintard,Novalgender&_count=50"
expect_eq "$(ids)" "$(sorted "$M1" "$O1" "$U1" "$NOV")" ":not is every other code, and no code at all"
as "$REG" "$BASE/fhir/Patient?gender:missing=true&family=Orvalle,Brisemont,Quintard,Novalgender&_count=50"
expect_eq "$(ids)" "$(sorted "$NOV")" ":missing=true"
as "$REG" "$BASE/fhir/Patient?gender:missing=false&family=Orvalle,Novalgender&_count=50"
expect_eq "$(ids)" "$(sorted "$F1" "$M1")" ":missing=false"
as "$REG" "$BASE/fhir/Patient?address-city:missing=false&family=Pfeffer420,Orvalle&_count=50"
expect_eq "$(ids)" "$(sorted "$KC")" ":missing on a string"
as "$REG" "$BASE/fhir/Patient?address-city:contains=city&_count=50"
expect_eq "$(ids)" "$(sorted "$KC" "$CP")" ":contains finds inside the value"
as "$REG" "$BASE/fhir/Patient?address-city:contains=ETIEN&_count=50"
expect_eq "$(ids)" "$(sorted "$ST")" ":contains ignores case and accents"
C_TXT=$(as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Condition\",\"code\":{\"text\":\"Asthme allergique\",\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"195967001\",\"display\":\"Asthmatic bronchitis\"}]},\"subject\":{\"reference\":\"Patient/$F1\"}}" "$BASE/fhir/Condition"; printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Condition?code:text=ASTHME%20a&_count=50"
expect_eq "$(ids)" "$(sorted "$C_TXT")" ":text matches the start of the CodeableConcept's text"
as "$REG" "$BASE/fhir/Condition?code:text=asthmatic&_count=50"
expect_eq "$(ids)" "$(sorted "$C_TXT")" ":text matches a coding's display"
as "$REG" "$BASE/fhir/Condition?code:text=allergique&_count=50"
expect_eq "$(total)" "0" ":text is the start of the text, not a word inside it"
MRN=$(as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:1.2.3","value":"MRN-77"}]}' "$BASE/fhir/Patient"; printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7CMR%7CMRN-77"
expect_eq "$(ids)" "$(sorted "$MRN")" ":of-type finds an identifier by its type and value"
as "$REG" "$BASE/fhir/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203%7CSS%7CMRN-77"
expect_eq "$(total)" "0" ":of-type: another type"
as "$REG" "$BASE/fhir/Patient?identifier:of-type=MR%7CMRN-77"
expect_eq "$STATUS" "400" ":of-type takes system|code|value"
as "$REG" "${FJ[@]}" -d "{\"resourceType\":\"Condition\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/$F1\"},\"asserter\":{\"identifier\":{\"system\":\"urn:oid:1.2.250.1.71.4.2.1\",\"value\":\"10001234567\"}}}" "$BASE/fhir/Condition"
C_ID=$(printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Condition?asserter:identifier=urn:oid:1.2.250.1.71.4.2.1%7C10001234567"
expect_eq "$(ids)" "$(sorted "$C_ID")" ":identifier finds a reference by its identifier"
as "$REG" "$BASE/fhir/Condition?asserter:identifier=urn:oid:1.2.250.1.71.4.2.1%7C10001234568"
expect_eq "$(total)" "0" ":identifier: another value"
as "$REG" "$BASE/fhir/Patient?gender:missing=maybe"
expect_eq "$STATUS" "400" ":missing takes true or false"
as "$REG" "$BASE/fhir/Patient?family:not=x"
expect_eq "$STATUS" "400" ":not on a string"
as "$REG" "$BASE/fhir/Patient?gender:above=x"
expect_eq "$STATUS" "400" "an unsupported modifier"
expect_contains "$BODY" "gender" "names the parameter"

# --- _sort on parameters, several keys, descending ---------------------------------------------------------------
in_order() { printf '%s' "$BODY" | grep -o '"fullUrl":"[^"]*"' | sed 's/.*\///; s/"$//' | tr '\n' ' '; }
as "$REG" "$BASE/fhir/Patient?family=Orvalle,Brisemont,Quintard&_sort=family,-gender&_count=50"
expect_eq "$(in_order)" "$U1 $F2 $M1 $F1 $O1 " "_sort=family,-gender"
as "$REG" "$BASE/fhir/Patient?family=Orvalle,Brisemont,Quintard&_sort=-family,gender&_count=2"
expect_eq "$(in_order)" "$O1 $F1 " "_sort=-family,gender, first page"
NEXT=$(printf '%s' "$BODY" | grep -o '"relation":"next","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
expect_contains "$NEXT" "_sort=-family%2Cgender" "the next link keeps the sort"
req -H "Authorization: Bearer $REG" "$NEXT"
expect_eq "$(in_order)" "$M1 $F2 " "the next page follows in order"
PREV=$(printf '%s' "$BODY" | grep -o '"relation":"previous","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
expect_contains "$PREV" "_offset=0" "the second page links back to the first"
LAST=$(printf '%s' "$BODY" | grep -o '"relation":"last","url":"[^"]*"' | sed 's/.*"url":"//; s/"$//')
req -H "Authorization: Bearer $REG" "$LAST"
expect_eq "$(in_order)" "$U1 " "the last page holds the fifth"
expect_not_contains "$BODY" '"relation":"next"' "and no next link"
req -H "Authorization: Bearer $REG" "$PREV"
expect_eq "$(in_order)" "$O1 $F1 " "previous leads back"
as "$REG" "$BASE/fhir/Patient?family=Orvalle&_sort=nosuch"
expect_eq "$STATUS" "400" "_sort on an unknown parameter"
expect_contains "$BODY" "nosuch" "names it"

# --- _summary and _elements ---------------------------------------------------------------------------
as "$REG" "${FJ[@]}" -d '{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Summarised</div>"},"name":[{"family":"Summarised"}],"gender":"female","contact":[{"name":{"family":"Proche"}}]}' "$BASE/fhir/Patient"
SUM=$(printf '%s' "$BODY" | json_get id)
as "$REG" "$BASE/fhir/Patient?family=Summarised&_summary=true"
expect_contains "$BODY" '"family":"Summarised"' "_summary=true keeps the name (isSummary)"
expect_not_contains "$BODY" 'Proche' "and drops the contact (not in the summary)"
expect_not_contains "$BODY" 'Summarised</div>' "and the narrative"
expect_contains "$BODY" '"code":"SUBSETTED"' "tagged SUBSETTED"
as "$REG" "$BASE/fhir/Patient?family=Summarised&_summary=data"
expect_contains "$BODY" 'Proche' "_summary=data keeps the data"
expect_not_contains "$BODY" 'Summarised</div>' "without the narrative"
as "$REG" "$BASE/fhir/Patient?family=Summarised&_summary=text"
expect_contains "$BODY" 'Summarised</div>' "_summary=text keeps the narrative"
expect_not_contains "$BODY" '"gender"' "and drops the rest"
as "$REG" "$BASE/fhir/Patient?family=Summarised&_elements=gender"
expect_contains "$BODY" '"gender":"female"' "_elements keeps what it lists"
expect_not_contains "$BODY" '"family":"Summarised"' "and only that"
expect_contains "$BODY" "\"id\":\"$SUM\"" "id always stays"
as "$REG" "$BASE/fhir/Patient/$SUM?_elements=name"
expect_contains "$BODY" '"family":"Summarised"' "_elements on a read"
expect_not_contains "$BODY" '"gender"' "cuts the read"
as "$REG" "$BASE/fhir/Patient/$SUM"
expect_not_contains "$BODY" 'SUBSETTED' "a plain read is whole"
as "$REG" "$BASE/fhir/Patient?family=Summarised&_summary=maybe"
expect_eq "$STATUS" "400" "an unknown _summary"

# --- escapes and errors ------------------------------------------------------------------------
C_COMMA=$(patient 'Dupont,Durand' female)
as "$REG" "$BASE/fhir/Patient?family=Dupont%5C,Durand&_count=50"
expect_eq "$(ids)" "$(sorted "$C_COMMA")" "\\, is a literal comma, not an OR"
as "$REG" "$BASE/fhir/Patient?gender=female,"
expect_eq "$STATUS" "400" "an empty value in a list"
expect_contains "$BODY" "gender" "the 400 names the parameter"
expect_contains "$BODY" "OperationOutcome" "as an OperationOutcome"

finish
