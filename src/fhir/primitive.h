/*
 * primitive.h -- format checks of the R4 primitive types (primitive.c).
 *
 * Why this exists: the validator and the compartment code both need to know
 * whether a value is a well-formed primitive (an id, above all) without
 * either owning the formats.  Internal to src/fhir.
 */
#ifndef MV_FHIR_PRIMITIVE_H
#define MV_FHIR_PRIMITIVE_H

#include <jansson.h>

#include "fhir/r4_model.h"

/* NULL when v is a valid JSON value of primitive type prim, else a short
 * description of what was expected ("expected a string"); never the value. */
const char *fhir_prim_check(fhir_prim prim, const json_t *v);

/* 1 when s is a valid FHIR id: [A-Za-z0-9\-\.]{1,64}. */
int fhir_prim_valid_id(const char *s);

#endif /* MV_FHIR_PRIMITIVE_H */
