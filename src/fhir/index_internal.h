/*
 * index_internal.h -- what index.c shares with query.c, and nothing else.
 *
 * Why this exists: a query is verified on a decrypted body with the very
 * folding the index used to write it; one definition keeps the two equal.
 */
#ifndef MV_FHIR_INDEX_INTERNAL_H
#define MV_FHIR_INDEX_INTERNAL_H

#include "util/util.h"
#include "fhir/fhir.h"

#define PREFIX_MAX_CHARS 24  /* longest indexed word prefix, in characters */

/* Fold text like a name (search_fold_name); a value without letters
 * ("75001") gets the same treatment.  *out is NULL when nothing is left. */
int fhir_index_fold(const char *in, char **out, mv_err *err);

/* fhir_index_terms, plus "e:<raw value>" for every string: what a query's
 * :exact is checked against (case and accents kept).  Never stored. */
int fhir_index_terms_verify(const char *json, size_t len, fhir_term **out, size_t *n,
                            mv_err *err);

#endif /* MV_FHIR_INDEX_INTERNAL_H */
