/*
 * fuzz_fhir_query.c -- libFuzzer harness for FHIR search parameters.
 *
 * Why this exists: "GET /Patient?birthdate=ge1985" hands a client-chosen
 * type, name, modifier and value to fhir_search_param and fhir_query_terms,
 * whose date, token, string and reference parsers must survive any bytes.
 *
 * Input format (readable, so seeds are plain text):
 *
 *     [TYPE?]NAME[:MODIFIER]=VALUE
 *
 * TYPE defaults to Patient.  When the first byte is a control byte (< 0x20)
 * it selects TYPE from a fixed list of real types instead, so that mutations
 * reach deep code rather than dying on an unknown type.  Every part ends at
 * the end of the input or at its separator; NUL bytes simply end a C string
 * early, as they would for the server.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {
    "Patient", "Observation", "Encounter", "Condition", "MedicationRequest",
    "CareTeam", "Questionnaire", "QuestionnaireResponse", "Bundle", "Practitioner",
    "DiagnosticReport", "Procedure", "Immunization", "AllergyIntolerance",
    "Appointment", "DocumentReference",
};
#define N_TYPES (sizeof types / sizeof types[0])

/* A NUL-terminated copy of p[0..n). */
static char *dup_part(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The index of the first c in p[0..n), or n. */
static size_t find(const char *p, size_t n, char c)
{
    const char *hit = memchr(p, c, n);
    return hit ? (size_t)(hit - p) : n;
}

static void run(const char *type, const char *name, const char *modifier, const char *value)
{
    fhir_param_type kind;
    int known = fhir_search_param(type, name, &kind) == 0;
    if (known && kind != FHIR_PARAM_TOKEN && kind != FHIR_PARAM_STRING &&
        kind != FHIR_PARAM_DATE && kind != FHIR_PARAM_REFERENCE)
        abort();

    fhir_term *t = NULL;
    size_t n = 0;
    mv_err err;
    if (fhir_query_terms(type, name, modifier, value, &t, &n, &err) != 0)
        return;
    if (!known || (n == 0) != (t == NULL))
        abort(); /* terms for a parameter the type does not have */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].param, name) != 0 || t[i].value == NULL)
            abort();
    }
    fhir_terms_free(t, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *type_name = "Patient";
    char *type = NULL;
    if (size > 0 && data[0] < 0x20) {
        type_name = types[data[0] % N_TYPES];
        p++;
        size--;
    } else {
        size_t q = find(p, size, '?');
        if (q < size) {
            type = dup_part(p, q);
            p += q + 1;
            size -= q + 1;
        }
    }
    size_t eq = find(p, size, '=');
    size_t colon = find(p, eq, ':');
    char *name = dup_part(p, colon);
    char *modifier = colon < eq ? dup_part(p + colon + 1, eq - colon - 1) : NULL;
    char *value = eq < size ? dup_part(p + eq + 1, size - eq - 1) : NULL;

    run(type ? type : type_name, name, modifier, value);

    free(type);
    free(name);
    free(modifier);
    free(value);
    return 0;
}
