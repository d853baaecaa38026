/*
 * routes_bundle.c -- POST /fhir: transaction and batch Bundles.
 *
 * Why it exists: health software sends a patient's record as one Bundle
 * (Synthea, US Core test data, an EHR's export), its entries pointing at
 * each other through temporary "urn:uuid:" ids.  A transaction must be all
 * or nothing; a batch runs its entries independently.
 *
 * How: each entry runs through the very route a lone request takes
 * (route_fhir: validation, patient compartment, policy, index terms), as an
 * in-process request on behalf of the same caller, so a Bundle can never
 * do what its entries could not do one by one.  What differs is only the
 * commit: the entries' audit entries -- and, in a transaction, their data
 * changes -- are collected (fhir_pending.c) and committed as one unit by a
 * single audit_record(), before the answer is sent.  A transaction is
 * processed in FHIR's order (DELETE, POST, PUT, then GET after the commit);
 * POSTs get their ids ahead, so that every reference to an entry's fullUrl
 * can be rewritten to "Type/id" first.  One failing entry fails the
 * transaction with that entry's status and nothing is stored; the denials
 * it met are still recorded.
 *
 * A conditional create (ifNoneExist) is resolved before the ids are given,
 * so a transaction's references point at the resource it finds.  Not
 * supported (refused with 400, never ignored): conditional update and
 * delete (ifNoneMatch, "Type?search" URLs), PATCH, and Bundles nested in
 * entries.
 */
#include "fhir_internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/crypto.h"

#define FHIR_JSON "application/fhir+json"
#define BUNDLE_MAX_ENTRIES 10000
/* What one Bundle may cost to answer, whatever the caller's role: the
 * entries' answers together (held in memory until the reply is written),
 * and the time spent running them.  Entries past either budget are not run
 * and answer 413 each, so a batch of 10,000 reads of a 100 KB resource
 * costs the same as one of 70. */
#define BUNDLE_MAX_ANSWER_BYTES ((size_t)8 * 1024 * 1024)
#define BUNDLE_MAX_RUN_US       (20 * 1000000LL)
#define URL_MAX 512

enum phase { PHASE_DELETE, PHASE_POST, PHASE_PUT, PHASE_GET, PHASES };

typedef struct entry_plan {
    json_t *entry;              /* borrowed from the Bundle                   */
    const char *method;         /* borrowed: "GET", "POST", "PUT", "DELETE"   */
    char url[URL_MAX];          /* relative: "Patient", "Patient/1", "Obs?x=" */
    char preset_id[33];         /* a transaction's POST: its id, given ahead  */
    const char *if_match;       /* borrowed                                   */
    const char *if_none_exist;  /* borrowed: a conditional create's search    */
    enum phase phase;
    /* the answer */
    int status;
    char location[URL_MAX];
    char etag[32];
    json_t *body;               /* the response's JSON body, if any (owned)   */
    size_t body_bytes;          /* its size as text                           */
} entry_plan;

typedef struct bundle_run {
    call *c;
    int transaction;
    entry_plan *plans;
    size_t n;
    fhir_pending *pending;
    int representation;         /* Prefer: return=representation              */
    size_t answer_bytes;        /* the entries' answers so far                */
    int64_t started_us;
} bundle_run;

/* ---- Reading the Bundle -------------------------------------------------------- */

/* Answer 400 naming entry i. */
static void fail_entry(call *c, size_t i, const char *what)
{
    char msg[400];
    snprintf(msg, sizeof msg, "Bundle.entry[%zu]: %.360s", i, what);
    call_fail(c, 400, "invalid", msg);
}

/* "http://host/fhir/Patient/1" or "/fhir/Patient/1" or "Patient/1" -> the
 * part after the base; -1 when it names no resource path. */
static int relative_url(const char *url, char out[URL_MAX])
{
    const char *s = url;
    if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        const char *base = strstr(s, "/fhir/");
        if (base == NULL)
            return -1;
        s = base + 6;
    } else if (strncmp(s, "/fhir/", 6) == 0) {
        s += 6;
    }
    while (*s == '/')
        s++;
    if (*s == '\0' || *s == '?' || strlen(s) >= URL_MAX)
        return -1;
    snprintf(out, URL_MAX, "%s", s);
    return 0;
}

static int phase_of(const char *method, enum phase *out)
{
    static const char *const names[PHASES] = { "DELETE", "POST", "PUT", "GET" };
    for (int p = 0; p < PHASES; p++)
        if (strcmp(method, names[p]) == 0) {
            *out = (enum phase)p;
            return 0;
        }
    return -1;
}

/* A transaction's POST gets its id ahead, so references to its fullUrl can
 * be rewritten: a new one, or -- a conditional create that finds its
 * resource -- the id of the one it found, which the entry then answers. */
static int preset_id(bundle_run *b, size_t i, entry_plan *e)
{
    if (e->if_none_exist == NULL) {
        crypto_random_id(e->preset_id);
        return 0;
    }
    size_t count;
    mv_err err;
    char msg[300];
    if (fhir_conditional_match(b->c, e->url, e->if_none_exist, e->preset_id,
                               sizeof e->preset_id, &count, &err) != 0) {
        if (err.code != MV_E_INVALID) {
            call_internal(b->c, &err);
            return -1;
        }
        snprintf(msg, sizeof msg, "ifNoneExist: %s", err.msg);
        fail_entry(b->c, i, msg);
        return -1;
    }
    if (count > 1) {
        snprintf(msg, sizeof msg, "Bundle.entry[%zu]: ifNoneExist matches more than one "
                 "resource", i);
        call_fail(b->c, 412, "duplicate", msg);
        return -1;
    }
    if (count == 0)
        crypto_random_id(e->preset_id);
    return 0;
}

/* Check and plan entry i; answers 400 and returns -1 when it cannot run. */
static int plan_entry(bundle_run *b, size_t i, json_t *entry)
{
    entry_plan *e = &b->plans[i];
    e->entry = entry;
    json_t *req = json_object_get(entry, "request");
    const char *url = json_string_value(json_object_get(req, "url"));
    e->method = json_string_value(json_object_get(req, "method"));
    if (e->method == NULL || url == NULL) {
        fail_entry(b->c, i, "request.method and request.url are required");
        return -1;
    }
    if (phase_of(e->method, &e->phase) != 0) {
        fail_entry(b->c, i, "request.method must be GET, POST, PUT or DELETE");
        return -1;
    }
    if (relative_url(url, e->url) != 0) {
        fail_entry(b->c, i, "request.url must name a resource type, a resource or "
                   "a search (nested Bundles are not supported)");
        return -1;
    }
    if (json_object_get(req, "ifNoneMatch") || json_object_get(req, "ifModifiedSince") ||
        (e->phase != PHASE_GET && strchr(e->url, '?'))) {
        fail_entry(b->c, i, "conditional update and delete are not supported");
        return -1;
    }
    json_t *none = json_object_get(req, "ifNoneExist");
    if (none && (e->phase != PHASE_POST || !json_is_string(none))) {
        fail_entry(b->c, i, "ifNoneExist is a search string, on a POST only");
        return -1;
    }
    e->if_none_exist = json_string_value(none);
    int needs_body = e->phase == PHASE_POST || e->phase == PHASE_PUT;
    if (needs_body != json_is_object(json_object_get(entry, "resource"))) {
        fail_entry(b->c, i, needs_body ? "a POST or PUT entry needs a resource"
                                       : "only POST and PUT entries carry a resource");
        return -1;
    }
    e->if_match = json_string_value(json_object_get(req, "ifMatch"));
    if (b->transaction && e->phase == PHASE_POST)
        return preset_id(b, i, e);
    return 0;
}

/* ---- urn:uuid: references (transactions) ----------------------------------------- */

/* What "Type/id" entry i creates or replaces, for the fullUrl map. */
static int entry_target(const entry_plan *e, char out[URL_MAX])
{
    if (e->phase == PHASE_POST && strchr(e->url, '/') == NULL)
        return snprintf(out, URL_MAX, "%s/%s", e->url, e->preset_id) < URL_MAX ? 0 : -1;
    if (e->phase == PHASE_PUT || e->phase == PHASE_DELETE)
        return snprintf(out, URL_MAX, "%s", e->url) < URL_MAX ? 0 : -1;
    return -1;
}

/* fullUrl -> "Type/id" of every POST and PUT; duplicates refused. */
static json_t *fullurl_map(bundle_run *b)
{
    json_t *map = json_object(), *targets = json_object();
    for (size_t i = 0; i < b->n; i++) {
        char target[URL_MAX];
        if (entry_target(&b->plans[i], target) != 0)
            continue;
        if (json_object_get(targets, target)) {
            fail_entry(b->c, i, "the Bundle touches this resource twice");
            goto fail;
        }
        json_object_set_new(targets, target, json_true());
        const char *full = json_string_value(json_object_get(b->plans[i].entry, "fullUrl"));
        if (full && b->plans[i].phase != PHASE_DELETE)
            json_object_set_new(map, full, json_string(target));
    }
    json_decref(targets);
    return map;
fail:
    json_decref(targets);
    json_decref(map);
    return NULL;
}

/* Rewrite every "reference" naming a fullUrl; *dangling receives the first
 * urn: reference that names no entry. */
static void rewrite_refs(json_t *v, json_t *map, const char **dangling)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            rewrite_refs(x, map, dangling);
        return;
    }
    if (!json_is_object(v))
        return;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        const char *ref = strcmp(key, "reference") == 0 ? json_string_value(x) : NULL;
        json_t *to = ref ? json_object_get(map, ref) : NULL;
        if (to)
            json_string_set(x, json_string_value(to));
        else if (ref && strncmp(ref, "urn:", 4) == 0 && *dangling == NULL)
            *dangling = ref;
        else
            rewrite_refs(x, map, dangling);
    }
}

static int resolve_references(bundle_run *b)
{
    json_t *map = fullurl_map(b);
    if (map == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const char *dangling = NULL;
        rewrite_refs(json_object_get(b->plans[i].entry, "resource"), map, &dangling);
        if (dangling) {
            char msg[URL_MAX + 80];
            snprintf(msg, sizeof msg, "the reference %.300s names no entry of the "
                     "Bundle", dangling);
            fail_entry(b->c, i, msg);
            rc = -1;
        }
    }
    json_decref(map);
    return rc;
}

/* ---- Running one entry ------------------------------------------------------------- */

static const char *header_of(const http_response *res, const char *name)
{
    for (int i = 0; i < res->n_headers; i++)
        if (strcmp(res->header_name[i], name) == 0)
            return res->header_value[i];
    return NULL;
}

static void take_answer(entry_plan *e, http_response *res)
{
    e->status = res->status;
    const char *loc = header_of(res, "Location"), *etag = header_of(res, "ETag");
    if (loc)
        snprintf(e->location, sizeof e->location, "%s",
                 strncmp(loc, "/fhir/", 6) == 0 ? loc + 6 : loc);
    if (etag)
        snprintf(e->etag, sizeof e->etag, "%s", etag);
    e->body_bytes = res->body.len;
    if (res->body.len)
        e->body = json_loadb((const char *)res->body.data, res->body.len, 0, NULL);
    const char *type = json_string_value(json_object_get(e->body, "resourceType"));
    const char *id = json_string_value(json_object_get(e->body, "id"));
    const char *vid = json_string_value(
        json_object_get(json_object_get(e->body, "meta"), "versionId"));
    if (!loc && e->phase == PHASE_PUT && e->status < 300 && type && id && vid)
        snprintf(e->location, sizeof e->location, "%.64s/%.64s/_history/%.20s", type, id, vid);
    if (res->body.data)
        crypto_wipe(res->body.data, res->body.cap);
    mv_buf_free(&res->body);
}

/* Run entry e as an in-process request of the same caller. */
static void run_entry(bundle_run *b, entry_plan *e)
{
    call *c = b->c;
    char *body = NULL;
    json_t *resource = json_object_get(e->entry, "resource");
    if (resource)
        body = json_text(resource);
    char path[URL_MAX + 1];
    snprintf(path, sizeof path, "/%s", e->url);
    http_target target;
    mv_err err;
    if ((resource && body == NULL) || http_target_parse(path, &target, &err) != 0) {
        e->status = 400;
        e->body = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType",
                            "OperationOutcome", "issue", "severity", "error", "code",
                            "invalid", "diagnostics", "request.url is malformed");
        free(body);
        return;
    }
    http_pair headers[5];
    size_t nh = 0;
    headers[nh++] = (http_pair){ "Content-Type", FHIR_JSON };
    if (e->if_match)
        headers[nh++] = (http_pair){ "If-Match", e->if_match };
    if (e->if_none_exist)
        headers[nh++] = (http_pair){ "If-None-Exist", e->if_none_exist };
    const char *btg = http_header(c->req, "X-Break-Glass-Reason");
    if (btg)
        headers[nh++] = (http_pair){ "X-Break-Glass-Reason", btg };
    http_local local = { headers, nh, target.query, target.n_query };
    http_request req = { .method = e->method, .path = target.path,
                         .body = (const unsigned char *)(body ? body : ""),
                         .body_len = body ? strlen(body) : 0, .source = c->req->source,
                         .request_id = c->req->request_id, .local = &local };
    http_response res = { .status = 200 };
    snprintf(res.actor, sizeof res.actor, "%s", c->res->actor);
    call sub = *c;
    sub.req = &req;
    sub.res = &res;
    sub.pending = b->pending;
    sub.preset_id = e->preset_id[0] ? e->preset_id : NULL;
    route_fhir(&sub, target.path);
    if (sub.btg_seen != c->btg_seen)       /* the entry's own listing facts */
        json_decref(sub.btg_seen);
    take_answer(e, &res);
    http_target_free(&target);
    if (body) {
        crypto_wipe(body, strlen(body));
        free(body);
    }
}

/* Which budget, if any, stops entry e from running: it then answers 413. */
static const char *budget_spent(const bundle_run *b)
{
    if (b->answer_bytes >= BUNDLE_MAX_ANSWER_BYTES)
        return "not run: the Bundle's answers reached their budget of 8 MiB; "
               "ask for the rest in another Bundle";
    if (mv_now_us() - b->started_us >= BUNDLE_MAX_RUN_US)
        return "not run: the Bundle reached its time budget of 20 s; "
               "ask for the rest in another Bundle";
    return NULL;
}

/* Run entry e unless a budget is spent; count what its answer holds. */
static void run_within_budget(bundle_run *b, entry_plan *e)
{
    const char *spent = budget_spent(b);
    if (spent != NULL) {
        e->status = 413;
        e->body = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType",
                            "OperationOutcome", "issue", "severity", "error", "code",
                            "too-costly", "diagnostics", spent);
        return;
    }
    run_entry(b, e);
    b->answer_bytes += e->body_bytes;
}

/* ---- The answer ------------------------------------------------------------------------ */

static const char *status_line(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Payload Too Large";
    case 415: return "415 Unsupported Media Type";
    case 422: return "422 Unprocessable Entity";
    case 429: return "429 Too Many Requests";
    default:  return "500 Internal Server Error";
    }
}

static json_t *response_entry(const bundle_run *b, entry_plan *e)
{
    json_t *resp = json_pack("{s:s}", "status", status_line(e->status));
    if (e->location[0])
        json_object_set_new(resp, "location", json_string(e->location));
    if (e->etag[0])
        json_object_set_new(resp, "etag", json_string(e->etag));
    const char *updated = json_string_value(
        json_object_get(json_object_get(e->body, "meta"), "lastUpdated"));
    if (updated && e->status < 300)
        json_object_set_new(resp, "lastModified", json_string(updated));
    json_t *out = json_object();
    int is_write = e->phase != PHASE_GET;
    if (e->status >= 400 && e->body) {
        json_object_set(resp, "outcome", e->body);
    } else if (e->body && (!is_write || b->representation)) {
        json_object_set(out, "resource", e->body);
    }
    if (e->location[0] && e->status == 201) {
        const char *h = strstr(e->location, "/_history/");
        json_object_set_new(out, "fullUrl", json_stringn(e->location, h ? (size_t)(h - e->location)
                                                                      : strlen(e->location)));
    }
    json_object_set_new(out, "response", resp);
    return out;
}

static void reply_bundle(bundle_run *b)
{
    json_t *entries = json_array();
    for (size_t i = 0; i < b->n; i++)
        json_array_append_new(entries, response_entry(b, &b->plans[i]));
    json_t *out = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type",
                            b->transaction ? "transaction-response" : "batch-response",
                            "entry", entries);
    char *text = json_text(out);
    json_decref(out);
    if (text == NULL) {
        call_fail(b->c, 500, "exception", "out of memory");
        return;
    }
    http_response_text(b->c->res, 200, FHIR_JSON, NULL);
    mv_buf_append(&b->c->res->body, text, strlen(text), NULL);
    crypto_wipe(text, strlen(text));
    free(text);
}

/* A transaction failed at entry i: answer that entry's error, naming it. */
static void reply_entry_failure(call *c, size_t i, const entry_plan *e)
{
    json_t *issue = json_array_get(json_object_get(e->body, "issue"), 0);
    const char *why = json_string_value(json_object_get(issue, "diagnostics"));
    const char *code = json_string_value(json_object_get(issue, "code"));
    char msg[600];
    snprintf(msg, sizeof msg, "Bundle.entry[%zu] (%s %.200s): %s; nothing was stored",
             i, e->method, e->url, why ? why : status_line(e->status));
    call_fail(c, e->status, code ? code : "processing", msg);
}

/* ---- Transaction and batch --------------------------------------------------------------- */

static int commit(bundle_run *b, int events_only, size_t *failed)
{
    mv_err err;
    if (fhir_pending_commit(b->pending, b->c->srv->trail, events_only, failed, &err) == 0)
        return 0;
    if (events_only)
        call_internal(b->c, &err);
    else if (err.code == MV_E_CONFLICT)
        call_fail(b->c, 409, "conflict", "a resource of the transaction changed "
                  "meanwhile; nothing was stored: read it again");
    else if (err.code == MV_E_GONE)
        call_fail(b->c, 410, "deleted", "a patient of the transaction was erased; "
                  "nothing was stored");
    else
        call_fail_err(b->c, &err);
    return -1;
}

static void run_transaction(bundle_run *b)
{
    if (resolve_references(b) != 0)
        return;
    for (int phase = PHASE_DELETE; phase < PHASE_GET; phase++)
        for (size_t i = 0; i < b->n; i++) {
            entry_plan *e = &b->plans[i];
            if (e->phase != (enum phase)phase)
                continue;
            fhir_pending_set_entry(b->pending, i);
            run_entry(b, e);
            if (e->status >= 400) {
                if (commit(b, 1, NULL) == 0)       /* the denials stay recorded */
                    reply_entry_failure(b->c, i, e);
                return;
            }
        }
    size_t failed = 0;
    if (commit(b, 0, &failed) != 0)
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->plans[i].phase == PHASE_GET) {
            fhir_pending_set_entry(b->pending, i);
            run_within_budget(b, &b->plans[i]);
        }
    if (commit(b, 1, NULL) == 0)
        reply_bundle(b);
}

static void run_batch(bundle_run *b)
{
    for (size_t i = 0; i < b->n; i++) {
        fhir_pending_set_entry(b->pending, i);
        run_within_budget(b, &b->plans[i]);
    }
    if (commit(b, 1, NULL) == 0)
        reply_bundle(b);
}

/* Validate the Bundle itself against R4 with its entries' resources set
 * aside: each resource is validated by its own entry, so that a batch can
 * answer a bad resource in its entry and go on. */
static int validate_envelope(call *c, json_t *doc)
{
    json_t *shell = json_deep_copy(doc);
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(shell, "entry"), i, entry)
        if (json_object_size(entry) > 1)    /* an entry of nothing else stays whole */
            json_object_del(entry, "resource");
    char *text = shell ? json_dumps(shell, JSON_COMPACT) : NULL;
    json_decref(shell);
    if (text == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return -1;
    }
    char *type = NULL;
    mv_err e;
    int rc = fhir_validate(text, strlen(text), &type, &e);
    free(text);
    free(type);
    if (rc != 0)
        call_fail(c, 400, "structure", e.msg);
    return rc;
}

/* The Bundle's JSON, its envelope validated as an R4 Bundle; NULL after
 * answering. */
static json_t *read_bundle(call *c)
{
    if (!fhir_is_json_type(http_header(c->req, "Content-Type"))) {
        call_fail(c, 415, "not-supported", "send application/fhir+json");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)c->req->body, c->req->body_len, 0, &jerr);
    const char *rt = json_string_value(json_object_get(doc, "resourceType"));
    if (doc == NULL) {
        char msg[200];
        snprintf(msg, sizeof msg, "not JSON: %s (line %d)", jerr.text, jerr.line);
        call_fail(c, 400, "structure", msg);
        return NULL;
    }
    if (rt == NULL || strcmp(rt, "Bundle") != 0) {
        call_fail(c, 400, "invalid", "POST /fhir takes a Bundle (type transaction or "
                  "batch); other resources are created at /fhir/<Type>");
        json_decref(doc);
        return NULL;
    }
    if (validate_envelope(c, doc) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int prefers_representation(const call *c)
{
    const char *p = http_header(c->req, "Prefer");
    return p && strstr(p, "return=representation") != NULL;
}

void fhir_bundle(call *c)
{
    json_t *doc = read_bundle(c);
    if (doc == NULL)
        return;
    const char *type = json_string_value(json_object_get(doc, "type"));
    json_t *entries = json_object_get(doc, "entry");
    size_t n = json_array_size(entries);
    bundle_run b = { .c = c, .n = n, .representation = prefers_representation(c),
                     .started_us = mv_now_us() };
    mv_err err;
    if (type == NULL || (strcmp(type, "transaction") != 0 && strcmp(type, "batch") != 0)) {
        call_fail(c, 400, "invalid", "Bundle.type must be transaction or batch");
    } else if (n > BUNDLE_MAX_ENTRIES) {
        call_fail(c, 413, "too-costly", "a Bundle may hold at most 10000 entries");
    } else if ((b.plans = calloc(n ? n : 1, sizeof *b.plans)) == NULL ||
               (b.pending = fhir_pending_new(strcmp(type, "transaction") == 0, &err))
                   == NULL) {
        call_fail(c, 500, "exception", "out of memory");
    } else {
        b.transaction = strcmp(type, "transaction") == 0;
        size_t i = 0;
        while (i < n && plan_entry(&b, i, json_array_get(entries, i)) == 0)
            i++;
        if (i == n) {
            if (b.transaction)
                run_transaction(&b);
            else
                run_batch(&b);
        }
    }
    for (size_t i = 0; b.plans && i < n; i++)
        json_decref(b.plans[i].body);
    free(b.plans);
    fhir_pending_free(b.pending);
    json_decref(doc);
    /* Hand a large Bundle's memory back to the system, not just to malloc. */
    if (b.answer_bytes > (size_t)1024 * 1024 || n > 1000)
        malloc_trim(0);
}
