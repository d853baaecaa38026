/*
 * routes_search.c -- FHIR type-level search (GET /fhir/Type?param=value...)
 * answered from the blind indexes only.
 *
 * Each parameter becomes the canonical values fhir_query_terms() derives
 * (ORed: a date range is a covering set), the store finds the ids holding
 * each value's keyed token, parameters are ANDed.  Every match is then
 * opened and put through the policy decision: what the caller may not see
 * is dropped before counting, so neither a total nor a page reveals that a
 * hidden patient exists.  One audit entry per disclosed patient names the
 * resources returned; the query's values (names, identifiers) never reach
 * the trail, only its parameter names.
 */
#include "fhir_internal.h"

#include <stdio.h>
#include <string.h>

#include "../search/search.h"

#define FHIR_JSON "application/fhir+json"
#define DEFAULT_COUNT 20
#define MAX_COUNT 100           /* what one page may disclose        */
#define MAX_MATCHES 10000       /* matches examined before refusing  */
#define MAX_PARAMS 16

typedef struct id_set {
    char **v;
    size_t n;
} id_set;

static void set_free(id_set *s)
{
    store_ids_free(s->v, s->n);
    s->v = NULL;
    s->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates in place. */
static void set_normalise(id_set *s)
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

static int set_add_all(id_set *s, char **v, size_t n)
{
    if (n == 0) {
        free(v);
        return 0;
    }
    char **grown = realloc(s->v, (s->n + n + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    s->v = grown;
    memcpy(s->v + s->n, v, n * sizeof *v);
    s->n += n;
    free(v);                       /* the strings moved into s */
    return 0;
}

/* Keep in a only what b also holds (both normalised). */
static void set_intersect(id_set *a, const id_set *b)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (bsearch(&a->v[i], b->v, b->n, sizeof b->v[0], cmp_str))
            a->v[k++] = a->v[i];
        else
            free(a->v[i]);
    }
    a->n = k;
}

/* ---- The query ------------------------------------------------------------- */

typedef struct param {
    char name[64];
    char modifier[64];
    const char *value;
} param;

typedef struct query {
    const char *type;
    param p[MAX_PARAMS];
    size_t n;
    long count, offset;
    int sort;                      /* 0 none, 1 _lastUpdated, -1 -_lastUpdated */
    int summary_count;
    char error[200];
} query;

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int control_param(query *q, const char *name, const char *value)
{
    if (strcmp(name, "_count") == 0)
        return parse_long(value, 0, MAX_COUNT, &q->count) == 0 ? 1 : -1;
    if (strcmp(name, "_offset") == 0)
        return parse_long(value, 0, MAX_MATCHES, &q->offset) == 0 ? 1 : -1;
    if (strcmp(name, "_summary") == 0)
        return strcmp(value, "count") == 0 ? (q->summary_count = 1) : -1;
    if (strcmp(name, "_sort") == 0) {
        if (strcmp(value, "_lastUpdated") == 0) q->sort = 1;
        else if (strcmp(value, "-_lastUpdated") == 0) q->sort = -1;
        else return -1;
        return 1;
    }
    return 0;
}

static int collect_param(const char *name, const char *value, void *ctx)
{
    query *q = ctx;
    int c = control_param(q, name, value);
    if (c < 0) {
        snprintf(q->error, sizeof q->error, "bad value for %.40s", name);
        return 1;
    }
    if (c > 0)
        return 0;
    if (q->n == MAX_PARAMS) {
        snprintf(q->error, sizeof q->error, "at most %d search parameters", MAX_PARAMS);
        return 1;
    }
    param *p = &q->p[q->n++];
    const char *colon = strchr(name, ':');
    size_t len = colon ? (size_t)(colon - name) : strlen(name);
    if (len >= sizeof p->name || (colon && strlen(colon + 1) >= sizeof p->modifier)) {
        snprintf(q->error, sizeof q->error, "search parameter name too long");
        return 1;
    }
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    snprintf(p->modifier, sizeof p->modifier, "%s", colon ? colon + 1 : "");
    p->value = value;
    return 0;
}

/* ---- Matching ---------------------------------------------------------------- */

/* The ids matching one parameter: the union over its canonical values. */
static int param_ids(mv_store *s, const char *type, const param *p, id_set *out,
                     mv_err *err)
{
    fhir_term *t = NULL;
    size_t nt = 0;
    if (fhir_query_terms(type, p->name, p->modifier[0] ? p->modifier : NULL, p->value,
                         &t, &nt, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < nt && rc == 0; i++) {
        store_term term = { t[i].param, t[i].value };
        char **ids = NULL;
        size_t n = 0;
        rc = store_search(s, type, &term, 1, &ids, &n, err);
        if (rc == 0 && set_add_all(out, ids, n) != 0)
            rc = mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    fhir_terms_free(t, nt);
    set_normalise(out);
    return rc;
}

static int matching_ids(mv_store *s, const query *q, id_set *out, mv_err *err)
{
    if (q->n == 0)
        return store_search(s, q->type, NULL, 0, &out->v, &out->n, err);
    for (size_t i = 0; i < q->n; i++) {
        id_set one = {0};
        if (param_ids(s, q->type, &q->p[i], &one, err) != 0) {
            set_free(&one);
            return -1;
        }
        if (i == 0) {
            *out = one;
        } else {
            set_intersect(out, &one);
            set_free(&one);
        }
    }
    return 0;
}

/* A string query with several words or over 24 characters looked up only a
 * prefix of its first word (fhir_query_terms): keep the match only when a
 * whole value of that parameter holds the whole folded query at the start
 * of a word.  One short word, and :exact (a whole-value token), were
 * matched exactly by the index already. */
#define INDEXED_PREFIX_MAX 24

static int needs_post_filter(const param *p, const char *folded)
{
    return strcmp(p->modifier, "exact") != 0 &&
           (strchr(folded, ' ') != NULL || strlen(folded) > INDEXED_PREFIX_MAX);
}

static int value_matches(const char *value, const char *folded)
{
    size_t n = strlen(folded);
    for (const char *w = value; w; w = strchr(w, ' ') ? strchr(w, ' ') + 1 : NULL)
        if (strncmp(w, folded, n) == 0)
            return 1;
    return 0;
}

static int string_post_filter_ok(const query *q, const store_resource *r)
{
    fhir_term *t = NULL;
    size_t nt = 0;
    int ok = 1, loaded = 0;
    for (size_t i = 0; i < q->n && ok; i++) {
        fhir_param_type pt;
        char *folded = NULL;
        if (fhir_search_param(q->type, q->p[i].name, &pt) != 0 || pt != FHIR_PARAM_STRING ||
            search_fold_name(q->p[i].value, &folded, NULL) != 0)
            continue;
        if (needs_post_filter(&q->p[i], folded)) {
            if (!loaded && fhir_index_terms((const char *)r->body.data, r->body.len,
                                            &t, &nt, NULL) != 0)
                nt = 0;
            loaded = 1;
            int found = 0;
            for (size_t k = 0; k < nt && !found; k++)
                found = strcmp(t[k].param, q->p[i].name) == 0 &&
                        strncmp(t[k].value, "x:", 2) == 0 &&
                        value_matches(t[k].value + 2, folded);
            ok = found;
        }
        free(folded);
    }
    fhir_terms_free(t, nt);
    return ok;
}

/* ---- Disclosure ------------------------------------------------------------------ */

typedef struct hit {
    store_resource r;
} hit;

static int cmp_updated(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    return (x->r.updated_us > y->r.updated_us) - (x->r.updated_us < y->r.updated_us);
}

/* Open each match and keep what the caller may see. */
static int visible_hits(call *c, const query *q, const id_set *ids, hit **out,
                        size_t *n_out)
{
    hit *v = mv_calloc(ids->n ? ids->n : 1, sizeof *v, NULL);
    if (v == NULL)
        return -1;
    policy_subject who = fhir_subject(c);
    policy_facts facts = fhir_facts(c->srv);
    size_t n = 0;
    int64_t now = mv_now_us();
    for (size_t i = 0; i < ids->n; i++) {
        store_resource r;
        if (store_get(c->srv->store, q->type, ids->v[i], 0, &r, NULL) != 0)
            continue;                   /* erased meanwhile: not disclosed */
        policy_target t = { q->type, r.patient };
        policy_decision d;
        int keep = !r.deleted &&
                   policy_decide(NULL, &who, POLICY_SEARCH, &t, NULL, &facts, now, &d,
                                 NULL) == 0 &&
                   d.effect == POLICY_PERMIT && string_post_filter_ok(q, &r);
        if (keep)
            v[n++].r = r;
        else
            store_resource_free(&r);
    }
    if (q->sort)
        qsort(v, n, sizeof *v, cmp_updated);
    if (q->sort < 0)
        for (size_t i = 0; i < n / 2; i++) {
            hit tmp = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = tmp;
        }
    *out = v;
    *n_out = n;
    return 0;
}

static void hits_free(hit *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_resource_free(&v[i].r);
    free(v);
}

/* One audit event per disclosed patient (plus one when none), listing the
 * resources of that patient on this page. */
static int audit_search(call *c, const query *q, const hit *page, size_t n, mv_err *err)
{
    const char *actor = c->res->actor, *session = c->session_ref;
    char params[256] = "";
    for (size_t i = 0; i < q->n; i++) {
        size_t used = strlen(params);
        snprintf(params + used, sizeof params - used, "%s%s", used ? "," : "", q->p[i].name);
    }
    char outcome[300];
    snprintf(outcome, sizeof outcome, "success: %s?%s", q->type, params);
    audit_event *ev = mv_calloc(n + 1, sizeof *ev, err);
    mv_buf *refs = mv_calloc(n + 1, sizeof *refs, err);
    if (ev == NULL || refs == NULL) {
        free(ev);
        free(refs);
        return -1;
    }
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;                       /* this patient's event, if any */
        while (k < ne && !(ev[k].patient && page[i].r.patient &&
                           strcmp(ev[k].patient, page[i].r.patient) == 0))
            k++;
        if (k == ne)
            ev[ne++] = (audit_event){ .actor = actor, .action = "fhir.search",
                                      .outcome = outcome, .patient = page[i].r.patient,
                                      .source = c->req->source, .session = session,
                                      .request_id = c->req->request_id };
        char ref[200];
        snprintf(ref, sizeof ref, "%s%s/%s/_history/%lld", refs[k].len ? " " : "",
                 q->type, page[i].r.id, (long long)page[i].r.version);
        mv_buf_append(&refs[k], ref, strlen(ref), NULL);
    }
    if (ne == 0)
        ev[ne++] = (audit_event){ .actor = actor, .action = "fhir.search",
                                  .outcome = outcome, .source = c->req->source,
                                  .session = session, .request_id = c->req->request_id };
    for (size_t k = 0; k < ne; k++) {
        mv_buf_append(&refs[k], "", 1, NULL);          /* NUL-terminate */
        ev[k].resources = refs[k].len > 1 ? (const char *)refs[k].data : NULL;
    }
    int rc = audit_record(c->srv->trail, ev, ne, NULL, NULL, NULL, err);
    for (size_t k = 0; k <= n; k++)
        mv_buf_free(&refs[k]);
    free(refs);
    free(ev);
    return rc;
}

static json_t *page_link(const query *q, const char *relation, long offset)
{
    char url[300];
    snprintf(url, sizeof url, "/fhir/%s?_count=%ld&_offset=%ld%s", q->type, q->count,
             offset, q->sort > 0 ? "&_sort=_lastUpdated" : q->sort < 0 ? "&_sort=-_lastUpdated" : "");
    return json_pack("{s:s, s:s}", "relation", relation, "url", url);
}

static void reply_bundle(call *c, const query *q, const hit *page, size_t n, size_t total)
{
    json_t *links = json_array();
    json_array_append_new(links, page_link(q, "self", q->offset));
    if (!q->summary_count && (size_t)(q->offset + q->count) < total)
        json_array_append_new(links, page_link(q, "next", q->offset + q->count));
    json_t *b = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                          "searchset", "total", (json_int_t)total, "link", links);
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++) {
        char url[200];
        snprintf(url, sizeof url, "%s/%s", q->type, page[i].r.id);
        json_t *res = json_loadb((const char *)page[i].r.body.data, page[i].r.body.len, 0, NULL);
        json_array_append_new(entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url,
                                                 "resource", res ? res : json_null(),
                                                 "search", "mode", "match"));
    }
    if (n)
        json_object_set_new(b, "entry", entries);
    else
        json_decref(entries);
    char *text = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    http_response_text(c->res, 200, FHIR_JSON, text ? text : "{}");
    free(text);
}

void fhir_search(call *c, const char *type)
{
    query q = { .type = type, .count = DEFAULT_COUNT };
    http_query_each(c->req, collect_param, &q);
    if (q.error[0]) {
        call_fail(c, 400, "invalid", q.error);
        return;
    }
    mv_err e;
    id_set ids = {0};
    if (matching_ids(c->srv->store, &q, &ids, &e) != 0) {
        call_fail_err(c, &e);
        return;
    }
    if (ids.n > MAX_MATCHES) {
        set_free(&ids);
        call_fail(c, 400, "too-costly", "too many matches: narrow the search");
        return;
    }
    hit *v = NULL;
    size_t n = 0;
    if (visible_hits(c, &q, &ids, &v, &n) != 0) {
        set_free(&ids);
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    set_free(&ids);
    size_t from = (size_t)q.offset < n ? (size_t)q.offset : n;
    size_t len = q.summary_count ? 0 : n - from < (size_t)q.count ? n - from : (size_t)q.count;
    if (audit_search(c, &q, v + from, len, &e) != 0)
        call_internal(c, &e);
    else
        reply_bundle(c, &q, v + from, len, n);
    hits_free(v, n);
}
