/*
 * search_links.c -- searches that follow references: chained parameters,
 * reverse chaining (_has), _include and _revinclude.
 *
 * Why this exists: "Observation?subject:Patient.name=peter" and
 * "Patient?_has:Observation:patient:code=1234" ask about one resource
 * through another, and _include hands the other back in the same Bundle.
 * Each is a way to reach a patient the caller did not name -- and so a way
 * around the access decision if done carelessly.  Here every hop is an
 * ordinary search of the caller's own (fhir_search_opened): the inner
 * resources are only those the caller may see, so a chain cannot match on
 * a hidden patient's name, _has cannot test a hidden patient's
 * observations, and an included resource is decided, opened and audited as
 * a match would be.  A chain is resolved into a plain parameter before the
 * outer search runs ("subject=Patient/a,Patient/b", "_id=a,b"), so the
 * blind index serves it like any other.
 *
 * Bounds: chains nest at most LINK_MAX_DEPTH deep and resolve to at most
 * LINK_MAX_IDS resources (more is a 400 asking to narrow); includes add at
 * most MAX_INCLUDED resources to a page, :iterate at most LINK_MAX_DEPTH
 * rounds.
 */
#include "fhir_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINK_MAX_DEPTH 3
#define LINK_MAX_IDS   1000
#define MAX_INCLUDED   500

/* ---- Growing lists of strings ------------------------------------------------------- */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int strs_has(const strs *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return 1;
    return 0;
}

/* Add a copy of x unless present. */
static int strs_add(strs *s, const char *x, mv_err *err)
{
    if (strs_has(s, x))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **grown = realloc(s->v, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        s->v = grown;
        s->cap = cap;
    }
    if ((s->v[s->n] = strdup(x)) == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    s->n++;
    return 0;
}

/* "a,b,c" (NULL when empty or out of memory). */
static char *strs_join(const strs *s)
{
    size_t len = 1;
    for (size_t i = 0; i < s->n; i++)
        len += strlen(s->v[i]) + 1;
    char *out = malloc(len);
    if (out == NULL || s->n == 0) {
        free(out);
        return NULL;
    }
    out[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, s->v[i]);
    }
    return out;
}

static void opened_free(store_resource *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_resource_free(&v[i]);
    free(v);
}

/* ---- Chains and _has --------------------------------------------------------------------- */

static int is_reference_param(const char *type, const char *name)
{
    fhir_param_type pt;
    return fhir_search_param(type, name, &pt) == 0 && pt == FHIR_PARAM_REFERENCE;
}

/* The references param of each resource holds to a resource of type
 * target (NULL: any), as "Type/id", into out. */
static int collect_references(const char *type, const char *param, const char *target,
                              const store_resource *v, size_t n, strs *out, mv_err *err)
{
    size_t tlen = target ? strlen(target) : 0;
    for (size_t i = 0; i < n; i++) {
        char **refs;
        size_t nr;
        if (fhir_param_references(type, param, (const char *)v[i].body.data, v[i].body.len,
                                  &refs, &nr, err) != 0)
            return -1;
        int rc = 0;
        for (size_t k = 0; k < nr; k++) {
            if (rc == 0 && (target == NULL || (strncmp(refs[k], target, tlen) == 0 &&
                                               refs[k][tlen] == '/')))
                rc = strs_add(out, refs[k], err);
            free(refs[k]);
        }
        free(refs);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int too_many(const char *what, size_t n, mv_err *err)
{
    if (n <= LINK_MAX_IDS)
        return 0;
    return mv_fail(err, MV_E_INVALID, "%s reaches more than %d resources: narrow it", what,
                   LINK_MAX_IDS);
}

/* "ref[:Type].inner" = value -> ref = "Type/a,Type/b". */
static int resolve_chain(call *c, const char *type, const char *full, const char *value,
                         int depth, char *out_name, size_t cap, char **out_value, mv_err *err)
{
    const char *dot = strchr(full, '.');
    char head[128], target[64] = "";
    size_t hlen = (size_t)(dot - full);
    if (hlen >= sizeof head)
        return mv_fail(err, MV_E_INVALID, "chained parameter too long");
    memcpy(head, full, hlen);
    head[hlen] = '\0';
    char *colon = strchr(head, ':');
    if (colon) {
        *colon = '\0';
        snprintf(target, sizeof target, "%s", colon + 1);
    } else if (fhir_reference_target(type, head)) {
        snprintf(target, sizeof target, "%s", fhir_reference_target(type, head));
    }
    if (!is_reference_param(type, head))
        return mv_fail(err, MV_E_INVALID, "chained parameter: %s is not a reference "
                       "parameter of %s", head, type);
    if (target[0] == '\0' || !fhir_type_known(target))
        return mv_fail(err, MV_E_INVALID, "chained parameter %s: name the target type "
                       "(%s:Type.parameter)", head, head);
    store_resource *found = NULL;
    size_t nf = 0;
    if (fhir_search_opened(c, target, dot + 1, value, depth + 1, &found, &nf, err) != 0)
        return -1;
    strs ids = {0};
    int rc = too_many("the chained parameter", nf, err);
    for (size_t i = 0; rc == 0 && i < nf; i++) {
        char ref[160];
        snprintf(ref, sizeof ref, "%s/%s", target, found[i].id);
        rc = strs_add(&ids, ref, err);
    }
    opened_free(found, nf);
    if (rc == 0) {
        snprintf(out_name, cap, "%s", head);
        *out_value = strs_join(&ids);
    }
    strs_free(&ids);
    return rc;
}

/* "_has:Source:ref:inner" = value -> _id = ids of type that a Source
 * resource matching inner references through ref. */
static int resolve_has(call *c, const char *type, const char *spec, const char *value,
                       int depth, char *out_name, size_t cap, char **out_value, mv_err *err)
{
    char source[64], ref[64];
    const char *p = spec;
    size_t n1 = strcspn(p, ":");
    const char *q = p[n1] ? p + n1 + 1 : p + n1;
    size_t n2 = strcspn(q, ":");
    if (n1 == 0 || n1 >= sizeof source || n2 == 0 || n2 >= sizeof ref || q[n2] != ':' ||
        q[n2 + 1] == '\0')
        return mv_fail(err, MV_E_INVALID, "_has takes _has:Type:reference:parameter");
    memcpy(source, p, n1);
    source[n1] = '\0';
    memcpy(ref, q, n2);
    ref[n2] = '\0';
    if (!fhir_type_known(source) || !is_reference_param(source, ref))
        return mv_fail(err, MV_E_INVALID, "_has: %s is not a reference parameter of %s", ref,
                       source);
    store_resource *found = NULL;
    size_t nf = 0;
    if (fhir_search_opened(c, source, q + n2 + 1, value, depth + 1, &found, &nf, err) != 0)
        return -1;
    strs refs = {0}, ids = {0};
    int rc = too_many("_has", nf, err);
    if (rc == 0)
        rc = collect_references(source, ref, type, found, nf, &refs, err);
    for (size_t i = 0; rc == 0 && i < refs.n; i++)
        rc = strs_add(&ids, strchr(refs.v[i], '/') + 1, err);
    opened_free(found, nf);
    if (rc == 0) {
        snprintf(out_name, cap, "_id");
        *out_value = strs_join(&ids);
    }
    strs_free(&refs);
    strs_free(&ids);
    return rc;
}

int fhir_search_link(call *c, const char *type, const char *name, const char *modifier,
                     const char *value, int depth, char *out_name, size_t cap,
                     char **out_value, mv_err *err)
{
    *out_value = NULL;
    int has = strcmp(name, "_has") == 0;
    if (!has && strchr(name, '.') == NULL && strchr(modifier, '.') == NULL)
        return 0;
    if (depth >= LINK_MAX_DEPTH)
        return mv_fail(err, MV_E_INVALID, "chains and _has nest at most %d deep",
                       LINK_MAX_DEPTH);
    if (has)
        return resolve_has(c, type, modifier, value, depth, out_name, cap, out_value, err)
               ? -1 : 1;
    char full[256];
    if ((size_t)snprintf(full, sizeof full, "%s%s%s", name, *modifier ? ":" : "", modifier)
        >= sizeof full)
        return mv_fail(err, MV_E_INVALID, "chained parameter too long");
    return resolve_chain(c, type, full, value, depth, out_name, cap, out_value, err) ? -1 : 1;
}

/* ---- _include and _revinclude -------------------------------------------------------------- */

/* "Source:param[:Target]" split; -1 after setting err. */
static int parse_include(const char *spec, char source[64], char param[64], char target[64],
                         mv_err *err)
{
    source[0] = param[0] = target[0] = '\0';
    size_t n1 = strcspn(spec, ":");
    const char *p = spec + n1 + (spec[n1] == ':');
    size_t n2 = strcspn(p, ":");
    const char *t = p + n2 + (p[n2] == ':');
    if (n1 == 0 || n1 >= 64 || n2 == 0 || n2 >= 64 || strlen(t) >= 64 || spec[n1] != ':')
        return mv_fail(err, MV_E_INVALID, "_include and _revinclude take Type:parameter"
                       "[:Target]");
    memcpy(source, spec, n1);
    source[n1] = '\0';
    memcpy(param, p, n2);
    param[n2] = '\0';
    snprintf(target, 64, "%s", t);
    if (!fhir_type_known(source) || !is_reference_param(source, param) ||
        (target[0] && !fhir_type_known(target)))
        return mv_fail(err, MV_E_INVALID, "_include/_revinclude: %s is not a reference "
                       "parameter of %s", param, source);
    return 0;
}

typedef struct include_run {
    call *c;
    strs seen;                  /* "Type/id" of the page and what was added  */
    store_resource *added;
    size_t n_added, cap;
    int truncated;
} include_run;

static int add_opened(include_run *r, store_resource *res, mv_err *err)
{
    char ref[160];
    snprintf(ref, sizeof ref, "%s/%s", res->type, res->id);
    if (strs_has(&r->seen, ref) || r->truncated) {
        r->truncated |= !strs_has(&r->seen, ref);
        store_resource_free(res);
        return 0;
    }
    if (r->n_added == MAX_INCLUDED) {
        r->truncated = 1;
        store_resource_free(res);
        return 0;
    }
    if (r->n_added == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        store_resource *grown = realloc(r->added, cap * sizeof *grown);
        if (grown == NULL) {
            store_resource_free(res);
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        }
        r->added = grown;
        r->cap = cap;
    }
    r->added[r->n_added++] = *res;
    return strs_add(&r->seen, ref, err);
}

/* The resources refs ("Type/id") name that the caller may see, opened. */
static int include_refs(include_run *r, const strs *refs, mv_err *err)
{
    for (size_t i = 0; i < refs->n; i++) {
        if (strs_has(&r->seen, refs->v[i]))
            continue;
        const char *slash = strchr(refs->v[i], '/');
        char type[64];
        snprintf(type, sizeof type, "%.*s", (int)(slash - refs->v[i]), refs->v[i]);
        char query[200];
        snprintf(query, sizeof query, "%s", slash + 1);
        store_resource *found = NULL;
        size_t nf = 0;
        if (fhir_search_opened(r->c, type, "_id", query, 0, &found, &nf, err) != 0)
            return -1;
        for (size_t k = 0; k < nf; k++)
            if (add_opened(r, &found[k], err) != 0) {
                for (size_t j = k + 1; j < nf; j++)
                    store_resource_free(&found[j]);
                free(found);
                return -1;
            }
        free(found);
    }
    return 0;
}

/* One _include over from[0..n). */
static int include_one(include_run *r, const fhir_include *inc, const store_resource *from,
                       size_t n, mv_err *err)
{
    char source[64], param[64], target[64];
    if (parse_include(inc->spec, source, param, target, err) != 0)
        return -1;
    strs refs = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (strcmp(from[i].type, source) == 0)
            rc = collect_references(source, param, target[0] ? target : NULL, &from[i], 1,
                                    &refs, err);
    if (rc == 0)
        rc = include_refs(r, &refs, err);
    strs_free(&refs);
    return rc;
}

/* One _revinclude over from[0..n): the Source resources whose param
 * references one of them. */
static int revinclude_one(include_run *r, const fhir_include *inc, const store_resource *from,
                          size_t n, mv_err *err)
{
    char source[64], param[64], target[64];
    if (parse_include(inc->spec, source, param, target, err) != 0)
        return -1;
    strs refs = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (target[0] && strcmp(from[i].type, target) != 0)
            continue;
        char ref[160];
        snprintf(ref, sizeof ref, "%s/%s", from[i].type, from[i].id);
        rc = strs_add(&refs, ref, err);
    }
    char *value = rc == 0 ? strs_join(&refs) : NULL;
    store_resource *found = NULL;
    size_t nf = 0;
    if (value != NULL)
        rc = fhir_search_opened(r->c, source, param, value, 0, &found, &nf, err);
    for (size_t k = 0; k < nf; k++)
        if (rc == 0)
            rc = add_opened(r, &found[k], err);
        else
            store_resource_free(&found[k]);
    free(found);
    free(value);
    strs_free(&refs);
    return rc;
}

int fhir_search_includes(call *c, const store_resource *page, size_t n,
                         const fhir_include *inc, size_t n_inc, store_resource **out,
                         size_t *n_out, int *truncated, mv_err *err)
{
    include_run r = { .c = c };
    *out = NULL;
    *n_out = 0;
    *truncated = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char ref[160];
        snprintf(ref, sizeof ref, "%s/%s", page[i].type, page[i].id);
        rc = strs_add(&r.seen, ref, err);
    }
    /* The first round from the page; :iterate ones again from what the
     * previous round added. */
    size_t from = 0, upto = 0;
    for (int round = 0; rc == 0 && round < LINK_MAX_DEPTH; round++) {
        const store_resource *base = round == 0 ? page : r.added + from;
        size_t nb = round == 0 ? n : upto - from;
        size_t before = r.n_added;
        for (size_t k = 0; rc == 0 && k < n_inc; k++) {
            if (round > 0 && !inc[k].iterate)
                continue;
            rc = inc[k].reverse ? revinclude_one(&r, &inc[k], base, nb, err)
                                : include_one(&r, &inc[k], base, nb, err);
            base = round == 0 ? page : r.added + from;    /* r.added may move */
        }
        from = before;
        upto = r.n_added;
        if (upto == from)
            break;
    }
    strs_free(&r.seen);
    if (rc != 0) {
        opened_free(r.added, r.n_added);
        return -1;
    }
    *out = r.added;
    *n_out = r.n_added;
    *truncated = r.truncated;
    return 0;
}
