/*
 * fuzz_fhir_resource.c -- libFuzzer harness for the FHIR JSON resource path.
 *
 * Why this exists: every resource body the API stores comes from a client and
 * goes through fhir_validate, then fhir_compartment_patients (access) and
 * fhir_index_terms (blind index).  This feeds arbitrary bytes to the same
 * chain so that crashes, leaks, undefined behaviour and runaway work in fhir/
 * and search/ show up here rather than in production.  It also checks the
 * contract between them: a body that validates must be accepted by the other
 * two, and index terms come back sorted and without duplicates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_terms(const fhir_term *t, size_t n)
{
    if ((n == 0) != (t == NULL))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (t[i].param == NULL || t[i].value == NULL)
            abort();
        if (i > 0) {
            int c = strcmp(t[i - 1].param, t[i].param);
            if (c > 0 || (c == 0 && strcmp(t[i - 1].value, t[i].value) >= 0))
                abort(); /* not sorted, or a duplicate */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    mv_err err;
    char *type = NULL;
    if (fhir_validate(json, size, &type, &err) != 0)
        return 0;
    if (type == NULL || !fhir_type_known(type))
        abort();
    free(type);

    char **ids = NULL;
    size_t n_ids = 0;
    if (fhir_compartment_patients(json, size, &ids, &n_ids, &err) != 0)
        abort(); /* a valid resource must have a compartment answer */
    if ((n_ids == 0) != (ids == NULL))
        abort();
    fhir_ids_free(ids, n_ids);

    fhir_term *terms = NULL;
    size_t n_terms = 0;
    if (fhir_index_terms(json, size, &terms, &n_terms, &err) != 0)
        abort(); /* a valid resource must be indexable */
    check_terms(terms, n_terms);
    fhir_terms_free(terms, n_terms);
    return 0;
}
