/*
 * index_internal.h -- what index.c shares with query.c, and nothing else.
 *
 * Why this exists: a query is verified on a decrypted body with the very
 * folding the index used to write it; one definition keeps the two equal.
 */
#ifndef MV_FHIR_INDEX_INTERNAL_H
#define MV_FHIR_INDEX_INTERNAL_H

#include "util/util.h"

#define PREFIX_MAX_CHARS 24  /* longest indexed word prefix, in characters */

/* Fold text like a name (search_fold_name); a value without letters
 * ("75001") gets the same treatment.  *out is NULL when nothing is left. */
int fhir_index_fold(const char *in, char **out, mv_err *err);

#endif /* MV_FHIR_INDEX_INTERNAL_H */
