/*
 * find.c -- finding clinical resources: the truncated blind index proposes,
 * the decrypted body decides.
 *
 * Why this exists: index tokens are cut short and low-cardinality
 * parameters are not indexed at all (fhir.h), so that a stolen database
 * shows buckets rather than values.  An index lookup therefore answers a
 * superset.  Every search of clinical data -- the API's, the caseload's,
 * the decoy planter's -- takes its candidates from here and keeps a
 * candidate only when fhir_query_matches says its body holds the values.
 *
 * Ownership: id sets own their strings; callers free them with
 * store_ids_free (or id_set_free).
 */
#include "fhir_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Sets of ids -------------------------------------------------------------- */

void id_set_free(id_set *s)
{
    store_ids_free(s->v, s->n);
    s->v = NULL;
    s->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void id_set_normalise(id_set *s)
{
    if (s->n < 2)
        return;
    qsort(s->v, s->n, sizeof s->v[0], cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->v[i], s->v[k - 1]) == 0)
            free(s->v[i]);
        else
            s->v[k++] = s->v[i];
    }
    s->n = k;
}

/* Move the n strings of v (and v itself) into s. */
static int set_add_all(id_set *s, char **v, size_t n)
{
    if (n == 0) {
        free(v);
        return 0;
    }
    char **grown = realloc(s->v, (s->n + n + 1) * sizeof *grown);
    if (grown == NULL) {
        store_ids_free(v, n);
        return -1;
    }
    s->v = grown;
    memcpy(s->v + s->n, v, n * sizeof *v);
    s->n += n;
    free(v);
    return 0;
}

void id_set_intersect(id_set *a, const id_set *b)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (b->n > 0 && bsearch(&a->v[i], b->v, b->n, sizeof b->v[0], cmp_str))
            a->v[k++] = a->v[i];
        else
            free(a->v[i]);
    }
    a->n = k;
}

/* ---- Candidates ------------------------------------------------------------------ */

/* The ids carrying any of one parameter's terms (its bucket). */
static int param_candidates(mv_store *s, const char *type, const fhir_term *t, size_t nt,
                            int bits, id_set *out, mv_err *err)
{
    for (size_t i = 0; i < nt; i++) {
        store_term term = { t[i].param, t[i].value, bits };
        char **ids = NULL;
        size_t n = 0;
        if (store_search(s, type, &term, 1, &ids, &n, err) != 0)
            return -1;
        if (set_add_all(out, ids, n) != 0)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    id_set_normalise(out);
    return 0;
}

int fhir_candidates(mv_store *s, const char *type, const fhir_query *q, id_set *out,
                    int *every, mv_err *err)
{
    memset(out, 0, sizeof *out);
    *every = 1;
    for (size_t i = 0; i < fhir_query_size(q); i++) {
        int bits;
        size_t nt;
        const fhir_term *t = fhir_query_terms_of(q, i, &bits, &nt);
        if (bits == 0)
            continue;                    /* not indexed: the body decides */
        id_set one = {0};
        if (param_candidates(s, type, t, nt, bits, &one, err) != 0) {
            id_set_free(&one);
            id_set_free(out);
            return -1;
        }
        if (*every) {
            *out = one;
            *every = 0;
        } else {
            id_set_intersect(out, &one);
            id_set_free(&one);
        }
    }
    if (*every && store_search(s, type, NULL, 0, &out->v, &out->n, err) != 0)
        return -1;
    return 0;
}

/* ---- Verified finding ------------------------------------------------------------ */

int server_find(mv_store *s, const char *type, const server_param *p, size_t n,
                char ***ids, size_t *n_ids, mv_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    fhir_query *q = fhir_query_new(type);
    if (q == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    fhir_query_canonical_tokens(q);      /* the same identity, however written */
    for (size_t i = 0; i < n; i++)
        if (fhir_query_add(q, p[i].name, p[i].modifier, p[i].value, err) != 0) {
            fhir_query_free(q);
            return -1;
        }
    id_set c;
    int every;
    if (fhir_candidates(s, type, q, &c, &every, err) != 0) {
        fhir_query_free(q);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < c.n; i++) {
        store_resource r = {0};
        int keep = store_get(s, type, c.v[i], 0, &r, NULL) == 0 && !r.deleted &&
                   fhir_query_matches(q, (const char *)r.body.data, r.body.len) == 1;
        store_resource_free(&r);
        if (keep)
            c.v[kept++] = c.v[i];
        else
            free(c.v[i]);
    }
    fhir_query_free(q);
    *ids = c.v;
    *n_ids = kept;
    if (kept == 0) {
        free(c.v);
        *ids = NULL;
    }
    return 0;
}
