/*
 * query.c -- a FHIR search compiled once, and checked against a decrypted
 * resource.
 *
 * Why this exists: the blind index only proposes.  Its tokens are truncated
 * so that a stolen database cannot tell equal values apart from values that
 * merely share a bucket, and low-cardinality parameters (gender, status) are
 * not indexed at all (fhir.h).  So whoever searches -- the API, the
 * caseload lookups, the decoy planter, leak tracing -- finds candidates in
 * the index and keeps only those whose body, indexed again here exactly as
 * the write side indexed it, holds one of each parameter's canonical values.
 * One definition of "matches" for every caller.  A comma-separated value
 * ("gender=female,male") is an OR of its values (FHIR's "\," is a literal
 * comma); repeating a parameter is an AND.  A date is decided on the exact
 * range each stored value names, by its prefix's rule.  A token matches as
 * written (R4: case and spaces count, "+33612345678" is not "+33 6 12 34 56
 * 78"), unless the query asked for canonical tokens: the identity checks
 * (is this NIR or phone already someone's?) compare the index's canonical
 * forms, however either side wrote them.
 *
 * Ownership: a fhir_query owns its parameters' terms and folded strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/index_internal.h"

/* One value of a parameter: "a,b" is two, either of which matches. */
typedef struct query_alt {
    fhir_term *terms;            /* canonical values, ORed */
    size_t n;
    char *phrase;                /* a string query, folded: some whole value
                                    of the parameter starts with it (R4: a
                                    string matches at the start of the
                                    value); NULL otherwise */
    char *exact;                 /* :exact: the raw value, case and accents
                                    kept, that some value must equal */
    int is_date;                 /* a date: some stored range satisfies date */
    fhir_date_query date;
    int is_token;                /* a token, matched as written (R4): */
    char *tok_system;            /*   NULL any system, "" none          */
    char *tok_code;              /*   "" any code of tok_system         */
} query_alt;

typedef struct query_param {
    query_alt *alt;              /* the comma-separated values, ORed */
    size_t n_alt;
    fhir_term *all;              /* every alternative's terms: the candidates */
    size_t n_all;
    int bits;                    /* fhir_param_bits: 0 = not indexed */
    int scan;                    /* some value cannot narrow (a date's ne):
                                    the bodies decide alone */
    char *name;
} query_param;

struct fhir_query {
    char *type;
    int canonical;               /* tokens compare in canonical form */
    query_param *p;
    size_t n, cap;
};

static void param_free(query_param *p)
{
    for (size_t k = 0; k < p->n_alt; k++) {
        fhir_terms_free(p->alt[k].terms, p->alt[k].n);
        free(p->alt[k].phrase);
        free(p->alt[k].exact);
        free(p->alt[k].tok_system);
        free(p->alt[k].tok_code);
    }
    free(p->alt);
    free(p->all);               /* its strings belong to the alternatives */
    free(p->name);
    memset(p, 0, sizeof *p);
}

fhir_query *fhir_query_new(const char *type)
{
    fhir_query *q = calloc(1, sizeof *q);
    if (q == NULL || (q->type = strdup(type ? type : "")) == NULL) {
        free(q);
        return NULL;
    }
    return q;
}

void fhir_query_canonical_tokens(fhir_query *q)
{
    q->canonical = 1;
}

void fhir_query_free(fhir_query *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        param_free(&q->p[i]);
    free(q->p);
    free(q->type);
    free(q);
}

size_t fhir_query_size(const fhir_query *q)
{
    return q ? q->n : 0;
}

const fhir_term *fhir_query_terms_of(const fhir_query *q, size_t i, int *bits, size_t *n)
{
    *bits = q->p[i].scan ? 0 : q->p[i].bits;
    *n = q->p[i].n_all;
    return q->p[i].all;
}

/* A string query was looked up by the start of its first word (any word
 * of a value has its prefixes indexed): the folded query, which a whole
 * value must start with; :exact is looked up whole and checked raw. */
static int phrase_of(const char *type, const char *name, const char *modifier,
                     const char *value, query_alt *a, mv_err *err)
{
    fhir_param_type pt;
    if (fhir_search_param(type, name, &pt) != 0)
        return 0;
    if (pt == FHIR_PARAM_DATE) {
        a->is_date = 1;
        return fhir_date_query_parse(name, value, &a->date, err);
    }
    if (pt == FHIR_PARAM_TOKEN && strcmp(name, "_id") != 0) {
        const char *bar = strchr(value, '|');
        a->is_token = 1;
        a->tok_system = bar ? strndup(value, (size_t)(bar - value)) : NULL;
        a->tok_code = strdup(bar ? bar + 1 : value);
        return a->tok_code && (!bar || a->tok_system) ? 0
               : mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    if (pt != FHIR_PARAM_STRING)
        return 0;
    if (modifier && strcmp(modifier, "exact") == 0)
        return (a->exact = strdup(value)) ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
    return fhir_index_fold(value, &a->phrase, err);
}

/* The next comma-separated value of v (FHIR escapes a literal comma as
 * "\,"), unescaped into a new string at *out; the rest after it, or NULL
 * at the end.  An empty value is refused by the caller. */
static const char *next_value(const char *v, char **out)
{
    size_t len = strlen(v), k = 0;
    char *s = malloc(len + 1);
    *out = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '\\' && v[i + 1] == ',') {
            s[k++] = ',';
            i++;
        } else if (v[i] == ',') {
            s[k] = '\0';
            return v + i + 1;
        } else {
            s[k++] = v[i];
        }
    }
    s[k] = '\0';
    return NULL;
}

static int add_alt(query_param *p, const char *type, const char *name,
                   const char *modifier, const char *value, mv_err *err)
{
    query_alt *grown = realloc(p->alt, (p->n_alt + 1) * sizeof *grown);
    if (grown == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    p->alt = grown;
    query_alt *a = &p->alt[p->n_alt];
    memset(a, 0, sizeof *a);
    if (fhir_query_terms(type, name, modifier, value, &a->terms, &a->n, err) != 0)
        return -1;
    if (phrase_of(type, name, modifier, value, a, err) != 0) {
        fhir_terms_free(a->terms, a->n);
        free(a->phrase);
        free(a->exact);
        free(a->tok_system);
        free(a->tok_code);
        return -1;
    }
    p->n_alt++;
    if (a->is_date && a->n == 0)
        p->scan = 1;
    return 0;
}

/* Every alternative's terms in one list (borrowed strings). */
static int gather_all(query_param *p, mv_err *err)
{
    size_t n = 0;
    for (size_t k = 0; k < p->n_alt; k++)
        n += p->alt[k].n;
    p->all = calloc(n ? n : 1, sizeof *p->all);
    if (p->all == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    for (size_t k = 0; k < p->n_alt; k++)
        for (size_t i = 0; i < p->alt[k].n; i++)
            p->all[p->n_all++] = p->alt[k].terms[i];
    return 0;
}

int fhir_query_add(fhir_query *q, const char *name, const char *modifier,
                   const char *value, mv_err *err)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 4;
        query_param *grown = realloc(q->p, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        q->p = grown;
        q->cap = cap;
    }
    query_param *p = &q->p[q->n];
    memset(p, 0, sizeof *p);
    const char *mod = modifier && *modifier ? modifier : NULL;
    int rc = (p->name = strdup(name)) == NULL ? mv_fail(err, MV_E_NOMEM, "out of memory") : 0;
    for (const char *rest = value; rc == 0 && rest != NULL;) {
        char *one = NULL;
        rest = next_value(rest, &one);
        if (one == NULL)
            rc = mv_fail(err, MV_E_NOMEM, "out of memory");
        else if (one[0] == '\0')
            rc = mv_fail(err, MV_E_INVALID, "%s: an empty value in a comma-separated list",
                         name);
        else
            rc = add_alt(p, q->type, name, mod, one, err);
        free(one);
    }
    if (rc == 0)
        rc = gather_all(p, err);
    if (rc != 0) {
        param_free(p);
        return -1;
    }
    p->bits = fhir_param_bits(q->type, name);
    q->n++;
    return 0;
}

static int term_cmp(const void *a, const void *b)
{
    const fhir_term *x = a, *y = b;
    int c = strcmp(x->param, y->param);
    return c ? c : strcmp(x->value, y->value);
}

static int has_term(const fhir_term *have, size_t n, const fhir_term *t)
{
    return n > 0 && bsearch(t, have, n, sizeof *have, term_cmp) != NULL;
}

/* 1 when some whole value ("x:...") of the parameter starts with the
 * phrase (folded both). */
static int phrase_found(const fhir_term *have, size_t n, const char *param,
                        const char *phrase)
{
    size_t len = strlen(phrase);
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "x:", 2) == 0 &&
            strncmp(have[k].value + 2, phrase, len) == 0)
            return 1;
    return 0;
}

/* 1 when some raw value ("e:...") of the parameter equals value exactly. */
static int exact_found(const fhir_term *have, size_t n, const char *param,
                       const char *value)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "e:", 2) == 0 &&
            strcmp(have[k].value + 2, value) == 0)
            return 1;
    return 0;
}

/* 1 when some stored range ("r:lo:hi") of the parameter satisfies q. */
static int date_found(const fhir_term *have, size_t n, const char *param,
                      const fhir_date_query *q)
{
    for (size_t k = 0; k < n; k++) {
        long long lo, hi;
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "r:", 2) == 0 &&
            sscanf(have[k].value + 2, "%lld:%lld", &lo, &hi) == 2 &&
            fhir_date_query_holds(q, lo, hi))
            return 1;
    }
    return 0;
}

/* 1 when some token of the parameter, as written ("t:<system>\x1f<code>"),
 * matches: the code alone (any system), "|code" (no system),
 * "system|code", or "system|" (any code of it); case and spaces count. */
static int token_found(const fhir_term *have, size_t n, const char *param,
                       const query_alt *a)
{
    for (size_t k = 0; k < n; k++) {
        if (strcmp(have[k].param, param) != 0 || strncmp(have[k].value, "t:", 2) != 0)
            continue;
        const char *system = have[k].value + 2;
        const char *sep = strchr(system, '\x1f');
        if (sep == NULL)
            continue;
        size_t slen = (size_t)(sep - system);
        int system_ok = a->tok_system == NULL ||
                        (strlen(a->tok_system) == slen &&
                         strncmp(a->tok_system, system, slen) == 0);
        int code_ok = (a->tok_system && a->tok_system[0] && a->tok_code[0] == '\0') ||
                      strcmp(a->tok_code, sep + 1) == 0;
        if (system_ok && code_ok)
            return 1;
    }
    return 0;
}

static int alt_holds(const query_alt *a, const char *name, const fhir_term *have,
                     size_t n, int canonical)
{
    if (a->is_date)
        return date_found(have, n, name, &a->date);
    if (a->is_token && !canonical)
        return token_found(have, n, name, a);
    int any = 0;
    for (size_t i = 0; i < a->n && !any; i++)
        any = has_term(have, n, &a->terms[i]);
    return any && (a->phrase == NULL || phrase_found(have, n, name, a->phrase)) &&
           (a->exact == NULL || exact_found(have, n, name, a->exact));
}

/* One of the parameter's values (a comma list is an OR) holds. */
static int param_holds(const query_param *p, const fhir_term *have, size_t n,
                       int canonical)
{
    for (size_t k = 0; k < p->n_alt; k++)
        if (alt_holds(&p->alt[k], p->name, have, n, canonical))
            return 1;
    return 0;
}

int fhir_query_matches(const fhir_query *q, const char *json, size_t len)
{
    if (q->n == 0)
        return 1;
    fhir_term *have = NULL;
    size_t n = 0;
    if (fhir_index_terms_verify(json, len, &have, &n, NULL) != 0)
        return -1;
    int ok = 1;
    for (size_t i = 0; i < q->n && ok; i++)
        ok = param_holds(&q->p[i], have, n, q->canonical);
    fhir_terms_free(have, n);
    return ok;
}
