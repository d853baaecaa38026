#!/usr/bin/env bash
# Validates the official FHIR R4 examples (hl7.fhir.r4.examples@4.0.1, CC0)
# with the fhir/ validator, through the test_fhir unit-test binary built next
# to medvault: at least 95% of the example resources must be accepted; then
# indexes every accepted example for the blind index (test_fhir_index): none
# may fail.
#
# Why this exists: hand-written tests show the rules; the ~5300 official
# examples show that the definitions-driven model accepts real R4 resources.
# The package comes from the npm registry, cached under
# ${TMPDIR:-/tmp}/medvault-npm-cache and reused when present.
set -euo pipefail

: "${MEDVAULT:?set MEDVAULT to the medvault binary}"
PKG=hl7.fhir.r4.examples@4.0.1
CACHE="${TMPDIR:-/tmp}/medvault-npm-cache"
EXAMPLES="$CACHE/node_modules/hl7.fhir.r4.examples"
TEST_FHIR="$(dirname "$MEDVAULT")/test_fhir"
TEST_FHIR_INDEX="$(dirname "$MEDVAULT")/test_fhir_index"

for bin in "$TEST_FHIR" "$TEST_FHIR_INDEX"; do
    if [ ! -x "$bin" ]; then
        echo "FAIL: $bin not built (build the $(basename "$bin") target)" >&2
        exit 1
    fi
done
if [ ! -f "$EXAMPLES/StructureDefinition-Patient.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "FAIL: npm is needed to fetch $PKG (install Node.js and npm)" >&2
        exit 1
    fi
    mkdir -p "$CACHE"
    if ! npm install --no-audit --no-fund --prefix "$CACHE" "$PKG" >&2; then
        echo "FAIL: npm could not install $PKG" >&2
        exit 1
    fi
fi

FHIR_EXAMPLES_DIR="$EXAMPLES" "$TEST_FHIR"
FHIR_EXAMPLES_DIR="$EXAMPLES" "$TEST_FHIR_INDEX"
