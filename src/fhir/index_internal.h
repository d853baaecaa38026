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

/* fhir_index_terms, plus for every string "e:<raw value>" (what :exact is
 * checked against, case and accents kept) and "v:<text>" (search_fold_text:
 * case and accents folded, spaces and punctuation kept, what a string
 * query and :contains are checked against, as R4 compares), for every date
 * "r:<lo>:<hi>" (its exact range), for every token "t:<system>\x1f<code>"
 * (as written), "d:<text>" for each display and CodeableConcept.text (:text)
 * and "o:<type system>\x1f<type code>\x1f<value>" for each typed Identifier
 * (:of-type), and for each reference with an identifier "i:<system>\x1f
 * <value>" (:identifier).  Never stored. */
int fhir_index_terms_verify(const char *json, size_t len, fhir_term **out, size_t *n,
                            mv_err *err);

/* A date query: its prefix and the range its value names ([lo, hi) in UTC
 * microseconds; ap already widened by its tolerance). */
typedef enum fhir_date_prefix {
    FHIR_DATE_EQ, FHIR_DATE_NE, FHIR_DATE_GT, FHIR_DATE_LT, FHIR_DATE_GE,
    FHIR_DATE_LE, FHIR_DATE_SA, FHIR_DATE_EB, FHIR_DATE_AP
} fhir_date_prefix;

typedef struct fhir_date_query {
    fhir_date_prefix prefix;
    int64_t lo, hi;
} fhir_date_query;

/* "[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]][zone]]]]"; MV_E_INVALID names the
 * parameter. */
int fhir_date_query_parse(const char *name, const char *value, fhir_date_query *q,
                          mv_err *err);
/* 1 when a stored range [lo, hi) satisfies the query, R4's rules
 * (search.html#prefix): eq the value's range contains it, ne it does not,
 * gt/lt it reaches beyond/before the value's range, ge/le either of those
 * or contained, sa/eb it starts after/ends before, ap it overlaps the
 * widened range. */
int fhir_date_query_holds(const fhir_date_query *q, int64_t lo, int64_t hi);

#endif /* MV_FHIR_INDEX_INTERNAL_H */
