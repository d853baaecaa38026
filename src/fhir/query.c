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
#include "search/search.h"

/* How an alternative is decided on the body. */
typedef enum alt_mode {
    ALT_MATCH,                   /* the value matches (the default)         */
    ALT_MISSING,                 /* :missing=true: the parameter has no value */
    ALT_PRESENT,                 /* :missing=false: it has some value        */
    ALT_NOT,                     /* :not: no token matches (none at all too) */
    ALT_CONTAINS,                /* :contains: some value contains phrase    */
    ALT_TEXT,                    /* :text: a display or text starts with phrase */
    ALT_OF_TYPE,                 /* :of-type: an identifier of a type         */
    ALT_IDENTIFIER               /* :identifier: a reference's identifier     */
} alt_mode;

/* One value of a parameter: "a,b" is two, either of which matches. */
typedef struct query_alt {
    alt_mode mode;
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

static void alt_free(query_alt *a);

static void param_free(query_param *p)
{
    for (size_t k = 0; k < p->n_alt; k++)
        alt_free(&p->alt[k]);
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
    return search_fold_text(value, &a->phrase, err);
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

/* :of-type "system|code|value" (a token naming an Identifier by its type)
 * and :identifier "system|value" (a reference by its identifier), kept as
 * the verification term they must equal, with \x1f between the parts. */
static int typed_identifier(const char *name, const char *modifier, fhir_param_type pt,
                            const char *value, query_alt *a, mv_err *err)
{
    int of_type = strcmp(modifier, "of-type") == 0;
    if (pt != (of_type ? FHIR_PARAM_TOKEN : FHIR_PARAM_REFERENCE))
        return mv_fail(err, MV_E_INVALID, "search parameter %s: :%s applies to %s", name,
                       modifier, of_type ? "identifier tokens" : "references");
    size_t bars = 0;
    for (const char *p = value; *p; p++)
        bars += *p == '|';
    if (bars != (of_type ? 2u : 1u))
        return mv_fail(err, MV_E_INVALID, "search parameter %s:%s takes %s", name, modifier,
                       of_type ? "system|code|value" : "system|value");
    char *v = malloc(strlen(value) + 3);
    if (v == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    char *o = v;
    *o++ = of_type ? 'o' : 'i';
    *o++ = ':';
    for (const char *p = value; *p; p++)
        *o++ = *p == '|' ? '\x1f' : *p;
    *o = '\0';
    a->mode = of_type ? ALT_OF_TYPE : ALT_IDENTIFIER;
    a->exact = v;
    return 1;
}

/* Modifiers the index cannot serve (R4 search.html#modifiers): no terms,
 * the bodies decide over every resource of the type the caller may see.
 * 1 when modifier is one of them (a set up), 0 when not, -1 on error. */
static int scan_modifier(const char *type, const char *name, const char *modifier,
                         const char *value, query_alt *a, mv_err *err)
{
    fhir_param_type pt;
    static const char *const scanned[] = { "missing", "not", "contains", "text", "of-type",
                                           "identifier", NULL };
    size_t k = 0;
    while (modifier != NULL && scanned[k] != NULL && strcmp(modifier, scanned[k]) != 0)
        k++;
    if (modifier == NULL || scanned[k] == NULL)
        return 0;
    if (fhir_search_param(type, name, &pt) != 0)
        return mv_fail(err, MV_E_INVALID, "unknown search parameter %s for %s", name, type);
    if (strcmp(modifier, "missing") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return mv_fail(err, MV_E_INVALID, "search parameter %s:missing takes true or "
                           "false", name);
        a->mode = strcmp(value, "true") == 0 ? ALT_MISSING : ALT_PRESENT;
        return 1;
    }
    if (strcmp(modifier, "not") == 0) {
        if (pt != FHIR_PARAM_TOKEN)
            return mv_fail(err, MV_E_INVALID, "search parameter %s: :not applies to "
                           "tokens", name);
        const char *bar = strchr(value, '|');
        a->mode = ALT_NOT;
        a->tok_system = bar ? strndup(value, (size_t)(bar - value)) : NULL;
        a->tok_code = strdup(bar ? bar + 1 : value);
        return a->tok_code && (!bar || a->tok_system) ? 1
               : mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    if (strcmp(modifier, "text") == 0) {
        if (pt != FHIR_PARAM_TOKEN)
            return mv_fail(err, MV_E_INVALID, "search parameter %s: :text applies to "
                           "tokens", name);
        a->mode = ALT_TEXT;
        return search_fold_text(value, &a->phrase, err) == 0 ? 1 : -1;
    }
    if (strcmp(modifier, "of-type") == 0 || strcmp(modifier, "identifier") == 0)
        return typed_identifier(name, modifier, pt, value, a, err);
    if (pt != FHIR_PARAM_STRING)
        return mv_fail(err, MV_E_INVALID, "search parameter %s: :contains applies to "
                       "strings", name);
    a->mode = ALT_CONTAINS;
    return search_fold_text(value, &a->phrase, err) == 0 ? 1 : -1;
}

static void alt_free(query_alt *a)
{
    fhir_terms_free(a->terms, a->n);
    free(a->phrase);
    free(a->exact);
    free(a->tok_system);
    free(a->tok_code);
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
    int scan = scan_modifier(type, name, modifier, value, a, err);
    if (scan != 0) {
        if (scan < 0) {
            alt_free(a);
            return -1;
        }
        p->n_alt++;
        p->scan = 1;
        return 0;
    }
    if (fhir_query_terms(type, name, modifier, value, &a->terms, &a->n, err) != 0)
        return -1;
    if (phrase_of(type, name, modifier, value, a, err) != 0) {
        alt_free(a);
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

/* 1 when some whole value ("v:...", folded as R4 compares: case and
 * accents) of the parameter starts with the phrase. */
static int phrase_found(const fhir_term *have, size_t n, const char *param,
                        const char *phrase)
{
    size_t len = strlen(phrase);
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "v:", 2) == 0 &&
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

/* 1 when the parameter has any value at all: a display, a text or an
 * identifier of a reference alone is no value of a token or reference
 * parameter (what :text and :identifier look at, not what it holds). */
static int param_present(const fhir_term *have, size_t n, const char *param)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "d:", 2) != 0 &&
            strncmp(have[k].value, "o:", 2) != 0 && strncmp(have[k].value, "i:", 2) != 0)
            return 1;
    return 0;
}

/* 1 when some term of the parameter is "<tag><text>" with text starting
 * with phrase. */
static int prefixed_found(const fhir_term *have, size_t n, const char *param,
                          const char *tag, const char *phrase)
{
    size_t tlen = strlen(tag), plen = strlen(phrase);
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, tag, tlen) == 0 &&
            strncmp(have[k].value + tlen, phrase, plen) == 0)
            return 1;
    return 0;
}

/* 1 when the parameter holds exactly the term value. */
static int term_found(const fhir_term *have, size_t n, const char *param, const char *value)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strcmp(have[k].value, value) == 0)
            return 1;
    return 0;
}

/* 1 when some whole value ("v:...", folded) contains the phrase. */
static int contains_found(const fhir_term *have, size_t n, const char *param,
                          const char *phrase)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(have[k].param, param) == 0 && strncmp(have[k].value, "v:", 2) == 0 &&
            strstr(have[k].value + 2, phrase) != NULL)
            return 1;
    return 0;
}

static int alt_holds(const query_alt *a, const char *name, const fhir_term *have,
                     size_t n, int canonical)
{
    switch (a->mode) {
    case ALT_MISSING:  return !param_present(have, n, name);
    case ALT_PRESENT:  return param_present(have, n, name);
    case ALT_NOT:      return !token_found(have, n, name, a);
    case ALT_CONTAINS: return contains_found(have, n, name, a->phrase);
    case ALT_TEXT:     return prefixed_found(have, n, name, "d:", a->phrase);
    case ALT_OF_TYPE:
    case ALT_IDENTIFIER: return term_found(have, n, name, a->exact);
    case ALT_MATCH:    break;
    }
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

/* ---- Sorting (R4 _sort) ------------------------------------------------------ */

/* A date's start as text that sorts like the number. */
static void date_key(long long lo, char out[24])
{
    snprintf(out, 24, "%020llu", (unsigned long long)lo ^ 0x8000000000000000ull);
}

/* The key one verification term gives for the parameter, or NULL. */
static const char *term_key(const fhir_term *t, fhir_param_type pt, char buf[24])
{
    long long lo, hi;
    switch (pt) {
    case FHIR_PARAM_DATE:
        if (strncmp(t->value, "r:", 2) != 0 || sscanf(t->value + 2, "%lld:%lld", &lo, &hi) != 2)
            return NULL;
        date_key(lo, buf);
        return buf;
    case FHIR_PARAM_STRING:
        return strncmp(t->value, "x:", 2) == 0 ? t->value + 2 : NULL;
    case FHIR_PARAM_TOKEN: {
        const char *sep = strncmp(t->value, "t:", 2) == 0 ? strchr(t->value, '\x1f') : NULL;
        if (sep)
            return sep + 1;
        return strcmp(t->param, "_id") == 0 && t->value[0] == '|' ? t->value + 1 : NULL;
    }
    case FHIR_PARAM_REFERENCE:
        return strchr(t->value, '/') ? t->value : NULL;
    }
    return NULL;
}

int fhir_sort_key(const char *type, const char *name, int descending, const char *json,
                  size_t len, char **key, mv_err *err)
{
    *key = NULL;
    fhir_param_type pt;
    if (fhir_search_param(type, name, &pt) != 0)
        return mv_fail(err, MV_E_INVALID, "_sort: unknown search parameter %s for %s",
                       name, type);
    fhir_term *have = NULL;
    size_t n = 0;
    if (fhir_index_terms_verify(json, len, &have, &n, err) != 0)
        return -1;
    const char *best = NULL;
    char buf[24], best_buf[24];
    for (size_t k = 0; k < n; k++) {
        if (strcmp(have[k].param, name) != 0)
            continue;
        const char *v = term_key(&have[k], pt, buf);
        if (v != NULL && (best == NULL || (strcmp(v, best) < 0) != descending)) {
            if (v == buf) {
                memcpy(best_buf, buf, sizeof best_buf);
                v = best_buf;
            }
            best = v;
        }
    }
    int rc = 0;
    if (best != NULL && (*key = strdup(best)) == NULL)
        rc = mv_fail(err, MV_E_NOMEM, "out of memory");
    fhir_terms_free(have, n);
    return rc;
}

/* ---- References a resource holds (chaining, _has, _include) ------------------ */

int fhir_param_references(const char *type, const char *name, const char *json, size_t len,
                          char ***refs, size_t *n, mv_err *err)
{
    *refs = NULL;
    *n = 0;
    fhir_param_type pt;
    if (fhir_search_param(type, name, &pt) != 0 || pt != FHIR_PARAM_REFERENCE)
        return mv_fail(err, MV_E_INVALID, "%s is not a reference search parameter of %s",
                       name, type);
    fhir_term *have = NULL;
    size_t nh = 0;
    if (fhir_index_terms(json, len, &have, &nh, err) != 0)
        return -1;
    char **out = calloc(nh ? nh : 1, sizeof *out);
    int rc = out ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
    for (size_t k = 0; rc == 0 && k < nh; k++)
        if (strcmp(have[k].param, name) == 0 && strchr(have[k].value, '/') != NULL) {
            out[*n] = have[k].value;         /* taken from have */
            have[k].value = NULL;
            (*n)++;
        }
    fhir_terms_free(have, nh);
    if (rc != 0 || *n == 0) {
        free(out);
        return rc;
    }
    *refs = out;
    return 0;
}
