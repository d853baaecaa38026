/*
 * routes_history.c -- GET /fhir/Type/_history: the versions of every
 * resource of a type, newest first, paged, optionally since an instant.
 *
 * A type's history crosses patients, so it is filtered exactly like a
 * search: the store lists the versions from its clear columns (no body
 * opened), each patient met is put once through the policy decision, and
 * the versions the caller may not see are dropped before anything is
 * counted or paged, so neither the total nor a page reveals that a hidden
 * patient exists.  Only the page's bodies are then opened (store_get, the
 * one unseal path), and the page's disclosure is audited -- one event per
 * patient returned, each naming its versions -- before the answer leaves.
 */
#include "fhir_internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define FHIR_JSON "application/fhir+json"
#define DEFAULT_COUNT 50
#define MAX_COUNT 100               /* what one page may disclose            */
#define MAX_VERSIONS 100000         /* versions examined before refusing     */

typedef struct history_query {
    const char *type;
    long count, offset;
    int64_t since_us;               /* 0: from the beginning                 */
    char since[MV_TIME_STR_MAX];    /* _since as given back in links, or ""  */
    char error[MV_ERR_MSG_MAX];
} history_query;

/* ---- The query ------------------------------------------------------------- */

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int parse_since(history_query *q, const char *value)
{
    int64_t to_us;
    mv_err e;
    if (fhir_instant_parse("_since", value, &q->since_us, &to_us, &e) != 0) {
        snprintf(q->error, sizeof q->error, "%s", e.msg);
        return 1;
    }
    if (q->since_us < 0)
        q->since_us = 0;                       /* nothing was stored before */
    mv_time_format(q->since_us, q->since);
    return 0;
}

static int collect_param(const char *name, const char *value, void *ctx)
{
    history_query *q = ctx;
    if (strcmp(name, "_since") == 0)
        return parse_since(q, value);
    if (strcmp(name, "_count") == 0 && parse_long(value, 0, LONG_MAX, &q->count) == 0) {
        if (q->count > MAX_COUNT)
            q->count = MAX_COUNT;          /* the maximum, with a next link */
        return 0;
    }
    if (strcmp(name, "_offset") == 0 && parse_long(value, 0, MAX_VERSIONS, &q->offset) == 0)
        return 0;
    if (strcmp(name, "_count") == 0)
        snprintf(q->error, sizeof q->error, "_count must be a number >= 0");
    else if (strcmp(name, "_offset") == 0)
        snprintf(q->error, sizeof q->error, "_offset must be 0..%d", MAX_VERSIONS);
    else
        snprintf(q->error, sizeof q->error, "%.40s is not supported on a history "
                 "(_count, _offset, _since)", name);
    return 1;
}

/* ---- What the caller may see ----------------------------------------------- */

/* Keep in v only the versions the caller may see, in order: one policy
 * decision per patient met (and one for resources of no patient). */
static int keep_visible(call *c, const char *type, store_version *v, size_t *n)
{
    const char **pats = mv_calloc(*n ? *n : 1, sizeof *pats, NULL);
    unsigned char *allowed = mv_calloc(*n ? *n : 1, 1, NULL);
    int rc = pats && allowed ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < *n; i++)
        pats[i] = v[i].patient;
    if (rc == 0)
        rc = fhir_permitted_each(c, POLICY_HISTORY, type, pats, *n, allowed);
    free(pats);                 /* borrowed v's strings: done before any free */
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        if (allowed[i]) {
            v[kept++] = v[i];
        } else {
            free(v[i].id);
            free(v[i].patient);
        }
    }
    if (rc == 0)
        *n = kept;
    free(allowed);
    return rc;
}

/* ---- The page ---------------------------------------------------------------- */

/* One entry, shaped like an instance history's (routes_fhir.c) except that
 * the version-specific URL is the response's location: a fullUrl may not
 * name a version (R4 invariant bdl-8). */
static json_t *version_entry(const char *type, const store_version *v,
                             const store_resource *r)
{
    char url[200], location[240], etag[32], when[MV_TIME_STR_MAX];
    snprintf(url, sizeof url, "%s/%s", type, v->id);
    snprintf(location, sizeof location, "%s/_history/%lld", url, (long long)v->version);
    snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)v->version);
    mv_time_format(v->updated_us, when);
    json_t *e = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}}", "fullUrl", url,
                          "request", "method", v->deleted ? "DELETE" : "PUT", "url", url,
                          "response", "status", v->deleted ? "204" : "200",
                          "location", location, "etag", etag, "lastModified", when);
    if (e && r) {
        json_t *res = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        if (res)
            json_object_set_new(e, "resource", res);
    }
    return e;
}

/* The entries of v[0..n) and, in shown, the versions they disclose: a
 * version whose body cannot be opened any more (its patient was erased
 * meanwhile) is left out. */
static json_t *page_entries(call *c, const char *type, const store_version *v,
                            size_t n, fhir_disclosed *shown, size_t *n_shown)
{
    json_t *entries = json_array();
    *n_shown = 0;
    for (size_t i = 0; i < n; i++) {
        store_resource r;
        int opened = !v[i].deleted &&
                     store_get(c->srv->store, type, v[i].id, v[i].version, &r, NULL) == 0;
        if (!v[i].deleted && !opened)
            continue;
        json_array_append_new(entries, version_entry(type, &v[i], opened ? &r : NULL));
        shown[(*n_shown)++] = (fhir_disclosed){ type, v[i].id, v[i].patient,
                                                v[i].version };
        if (opened)
            store_resource_free(&r);
    }
    return entries;
}

static json_t *page_link(call *c, const history_query *q, const char *relation,
                         long offset)
{
    char base[300], url[600];
    fhir_base_url(c, base, sizeof base);
    snprintf(url, sizeof url, "%s/%s/_history?_count=%ld&_offset=%ld%s%s", base, q->type,
             q->count, offset, q->since[0] ? "&_since=" : "", q->since);
    return json_pack("{s:s, s:s}", "relation", relation, "url", url);
}

static void reply_bundle(call *c, const history_query *q, json_t *entries, size_t total)
{
    json_t *links = json_array();
    json_array_append_new(links, page_link(c, q, "self", q->offset));
    if (q->count > 0 && (size_t)(q->offset + q->count) < total)
        json_array_append_new(links, page_link(c, q, "next", q->offset + q->count));
    json_t *b = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                          "history", "total", (json_int_t)total, "link", links);
    if (json_array_size(entries))
        json_object_set(b, "entry", entries);
    char *text = b ? json_text(b) : NULL;
    json_decref(b);
    if (text == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    http_response_text(c->res, 200, FHIR_JSON, text);
    free(text);
}

/* Open, audit and answer the page [offset, offset + count) of the visible
 * versions v[0..n). */
static void answer_page(call *c, const history_query *q, const store_version *v, size_t n)
{
    size_t from = (size_t)q->offset < n ? (size_t)q->offset : n;
    size_t len = n - from < (size_t)q->count ? n - from : (size_t)q->count;
    fhir_disclosed *shown = mv_calloc(len ? len : 1, sizeof *shown, NULL);
    if (shown == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    size_t n_shown = 0;
    json_t *entries = page_entries(c, q->type, v + from, len, shown, &n_shown);
    char outcome[120];
    snprintf(outcome, sizeof outcome, "success: %s/_history%s", q->type,
             q->since[0] ? "?_since" : "");
    mv_err e;
    if (fhir_audit_disclosure(c, "fhir.history", outcome, shown, n_shown, &e) != 0)
        call_internal(c, &e);
    else
        reply_bundle(c, q, entries, n - (len - n_shown));
    json_decref(entries);
    free(shown);
}

void fhir_type_history(call *c, const char *type)
{
    history_query q = { .type = type, .count = DEFAULT_COUNT };
    http_query_each(c->req, collect_param, &q);
    if (q.error[0]) {
        call_fail(c, 400, "invalid", q.error);
        return;
    }
    c->list_count = (int)q.count;               /* what was asked, for the detector */
    c->list_page = q.count > 0 ? (int)(q.offset / q.count) : 0;
    q.count = call_page_cap(c, (int)q.count);   /* the detector's allowance */
    store_version *v = NULL;
    size_t n = 0;
    mv_err e;
    if (store_type_versions(c->srv->store, type, q.since_us, MAX_VERSIONS + 1, &v, &n,
                            &e) != 0) {
        call_internal(c, &e);
        return;
    }
    if (n > MAX_VERSIONS)
        call_fail(c, 400, "too-costly", "too many versions: narrow the history "
                  "with _since");
    else if (keep_visible(c, type, v, &n) != 0)
        call_fail(c, 500, "exception", "out of memory");
    else
        answer_page(c, &q, v, n);
    store_versions_free(v, n);
}
