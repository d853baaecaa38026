#!/usr/bin/env bash
# The search oracle (tests/js/oracle.mjs): the official R4 examples and
# edge cases loaded, then every parameter the CapabilityStatement lists
# queried with each prefix, modifier and OR list it claims, and each answer
# (every page) compared with the ids HL7's FHIRPath engine selects through
# the official SearchParameter expressions under R4's matching rules.  No
# wrong answer and no refusal of a listed parameter may remain; the counts
# are printed ("oracle: ...") for BENCHMARKS.md and the README.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../js/harness.sh"

js_install || { finish; exit 1; }
js_stage
js_start_server || { finish; exit 1; }
ORACLE=$(js_adduser oracle service ',"scopes":"system/*.cruds"')
[ -n "$ORACLE" ] || { finish; exit 1; }
if MV_FHIR_BASE="$BASE/fhir" MV_TOKEN="$ORACLE" node "$JS_RUN/oracle.mjs" > "$WORK/oracle.out" 2>&1; then
    pass
else
    fail "tests/js/oracle.mjs: $(grep -c '^FAIL' "$WORK/oracle.out") failures"
    grep -v "^not loaded" "$WORK/oracle.out" | grep -v "^oracle:" | head -40 >&2
fi
grep '^oracle:' "$WORK/oracle.out"
# which examples the server refused, and why (not a failure: reported)
grep '^not loaded' "$WORK/oracle.out" | sed 's/^not loaded: [^:]*: //' | cut -c1-90 | sort | uniq -c |
    sort -rn | head -15 | sed 's/^/  refused: /'
js_stop_server
finish
