/*
 * routes_history.c -- GET /fhir/Type/_history: the type-level history.
 * Answers 405 until the store can list a type's versions across patients
 * with the search's policy filtering (being written).
 */
#include "fhir_internal.h"

void fhir_type_history(call *c, const char *type)
{
    (void)type;
    call_fail(c, 405, "not-supported", "type-level history is not supported yet; "
              "read a resource's history at /fhir/Type/id/_history");
}
