/*
 * routes_fhir.c -- the FHIR R4 REST interactions on /fhir: read, vread,
 * create, update, delete, instance history, and the CapabilityStatement.
 *
 * Every interaction takes the same path: authenticate -> validate the body
 * against the R4 definitions (fhir/) -> find the patient compartment ->
 * one policy decision per patient (policy/, facts from the store) -> the
 * store, sealed under the patient's key, index terms as blind tokens -> the
 * audit entry, durable before a byte of the answer leaves.  A decision to
 * hide a patient answers exactly what a missing resource answers (404).
 */
#include "fhir_internal.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../crypto/crypto.h"

#define FHIR_JSON "application/fhir+json"
#define FHIR_ID_MAX 64

typedef struct fhir_path {
    char type[64];
    char id[FHIR_ID_MAX + 1];
    int history;            /* .../_history                   */
    int64_t vid;            /* .../_history/N, 0 = current     */
    int everything;         /* Patient/id/$everything          */
    char in_type[64];       /* Patient/id/Type: a compartment search */
    int search_post;        /* Type/_search (POST)             */
} fhir_path;

/* ---- Paths -------------------------------------------------------------------- */

static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > FHIR_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/* Split "/Type[/id[/_history[/vid]]]" (a trailing slash allowed). */
static int parse_path(const char *rest, fhir_path *p)
{
    memset(p, 0, sizeof *p);
    char seg[4][80];
    int n = 0;
    for (const char *s = rest; *s;) {
        while (*s == '/')
            s++;
        if (*s == '\0')
            break;
        size_t len = strcspn(s, "/");
        if (n == 4 || len >= sizeof seg[0])
            return -1;
        memcpy(seg[n], s, len);
        seg[n++][len] = '\0';
        s += len;
    }
    if (n == 0 || !fhir_type_known(seg[0]))
        return -1;
    snprintf(p->type, sizeof p->type, "%.63s", seg[0]);   /* known types are short */
    if (n == 2 && strcmp(seg[1], "_search") == 0) {
        p->search_post = 1;                                /* POST Type/_search */
        return 0;
    }
    if (n == 2 && strcmp(seg[1], "_history") == 0) {
        p->history = 1;                                    /* type history */
        return 0;
    }
    if (n >= 2 && !valid_id(seg[1], strlen(seg[1])))
        return -1;
    if (n >= 2)
        snprintf(p->id, sizeof p->id, "%.64s", seg[1]);     /* valid_id: <= 64 */
    if (n == 3 && strcmp(seg[0], "Patient") == 0 && strcmp(seg[2], "$everything") == 0) {
        p->everything = 1;
        return 0;
    }
    if (n == 3 && strcmp(seg[0], "Patient") == 0 && fhir_type_known(seg[2])) {
        snprintf(p->in_type, sizeof p->in_type, "%.63s", seg[2]);   /* compartment */
        return 0;
    }
    if (n >= 3 && strcmp(seg[2], "_history") != 0)
        return -1;
    p->history = n >= 3;
    if (n == 4) {
        char *end;
        long long v = strtoll(seg[3], &end, 10);
        if (*end || v < 1)
            return -1;
        p->vid = v;
    }
    return 0;
}

/* ---- Answers ------------------------------------------------------------------ */

static void http_date(int64_t us, char out[40])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110) as seconds
 * since the epoch; -1 when it is not one. */
static int http_date_parse(const char *s, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wday[4], mon[4], zone[4];
    struct tm tm = {0};
    int used = 0;
    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s%n", wday, &tm.tm_mday, mon, &tm.tm_year,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, zone, &used) != 8 || s[used] != '\0' ||
        strcmp(zone, "GMT") != 0)
        return -1;
    const char *m = strstr(months, mon);
    if (m == NULL || (m - months) % 3 != 0)
        return -1;
    tm.tm_mon = (int)((m - months) / 3);
    tm.tm_year -= 1900;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static void version_headers(call *c, int64_t version, int64_t updated_us)
{
    char etag[32], date[40];
    snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)version);
    http_date(updated_us, date);
    http_response_header(c->res, "ETag", etag);
    http_response_header(c->res, "Last-Modified", date);
}

static void reply_body(call *c, int status, const void *body, size_t len)
{
    http_response_text(c->res, status, FHIR_JSON, NULL);
    mv_buf_append(&c->res->body, body, len, NULL);
}

/* A FHIR document (stolen) as the answer; 500 when it cannot be written. */
static void reply_doc(call *c, int status, json_t *doc)
{
    char *text = doc ? json_text(doc) : NULL;
    json_decref(doc);
    if (text == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    reply_body(c, status, text, strlen(text));
    free(text);
}

/* A write's answer as the client's Prefer header asks (R4 3.1.0.4.1):
 * return=minimal no body, return=OperationOutcome an outcome, otherwise
 * (return=representation, the default) the resource as stored. */
static void reply_written(call *c, int status, const char *text)
{
    const char *prefer = http_header(c->req, "Prefer");
    if (prefer && strstr(prefer, "return=minimal")) {
        http_response_text(c->res, status, FHIR_JSON, NULL);
    } else if (prefer && strstr(prefer, "return=OperationOutcome")) {
        reply_doc(c, status, json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType",
                                       "OperationOutcome", "issue", "severity",
                                       "information", "code", "informational",
                                       "diagnostics", status == 201 ? "created" : "updated"));
    } else {
        reply_body(c, status, text, strlen(text));
    }
}

/* If-None-Match naming the current version, or If-Modified-Since not
 * before its last change: the client's copy is current (304). */
static int not_modified(const call *c, int64_t version, int64_t updated_us)
{
    const char *none = http_header(c->req, "If-None-Match");
    const char *since = http_header(c->req, "If-Modified-Since");
    if (none) {
        char etag[32];
        snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)version);
        return strcmp(none, etag) == 0 || strcmp(none, etag + 2) == 0 ||
               strcmp(none, "*") == 0;
    }
    int64_t t;
    return since && http_date_parse(since, &t) == 0 && updated_us / 1000000 <= t;
}

static void reply_not_found(call *c, const fhir_path *p)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s/%s is not known", p->type, p->id);
    call_fail(c, 404, "not-found", msg);
}

/* ---- Policy and audit ---------------------------------------------------------- */

policy_subject fhir_subject(const call *c)
{
    const auth_account *a = &c->who.account;
    policy_subject s = { a->role, a->id, a->practitioner, a->patient, a->scopes };
    return s;
}

/* Decide for each patient (NULL: none); the first deny decides. */
static int decide(call *c, policy_action act, const char *type, char **patients,
                  size_t n, policy_decision *d)
{
    policy_subject who = fhir_subject(c);
    policy_facts facts = fhir_facts(c->srv);
    const char *btg = http_header(c->req, "X-Break-Glass-Reason");
    int64_t now = mv_now_us();
    mv_err err;
    for (size_t i = 0; i < (n ? n : 1); i++) {
        policy_target t = { type, n ? patients[i] : NULL };
        if (policy_decide(NULL, &who, act, &t, btg, &facts, now, d, &err) != 0) {
            call_internal(c, &err);
            return -1;
        }
        if (d->effect != POLICY_PERMIT)
            return 0;
    }
    return 0;
}

/* A data change waiting for its audit entry (create, update, delete). */
typedef struct write_ctx {
    store_write w;
    int64_t version;         /* the new version, once stored */
} write_ctx;

typedef struct access {
    call *c;
    const char *action;          /* "fhir.read", ...                     */
    const char *resources;       /* "Type/id/_history/n"                 */
    const char *patient;
    const policy_decision *d;
    write_ctx *write;            /* the data change, if any              */
} access;

/* An access on its way into the trail, with the id of the BTG grant it
 * makes ("" when none). */
typedef struct recorded {
    const access *a;
    char grant_id[33];
} recorded;

static const char *btg_reason(const call *c)
{
    return http_header(c->req, "X-Break-Glass-Reason");
}

/* The change of this access plus, when policy asks, the new BTG grant. */
static int apply_access(store_txn *t, void *ctx, mv_err *err)
{
    const recorded *r = ctx;
    const access *a = r->a;
    if (a->d && a->d->grant_btg && a->patient &&
        fhir_grant_put(t, r->grant_id, a->c->who.account.id, a->patient,
                       a->d->btg_expires_us, btg_reason(a->c), err) != 0)
        return -1;
    if (a->write && fhir_type_relates(a->write->w.type))
        fhir_care_changed();
    return a->write ? store_put(t, &a->write->w, &a->write->version, err) : 0;
}

/* Inside a Bundle: keep the access for the Bundle's one commit.  A
 * transaction's change waits too, and its version is the one it will get
 * (store_put refuses it at the commit if another writer came first). */
static int collect(const recorded *r, const audit_event *ev, int granted, mv_err *err)
{
    const access *a = r->a;
    fhir_pending *p = a->c->pending;
    int grant = granted && a->d->grant_btg && a->patient;
    const store_write *w = granted && a->write ? &a->write->w : NULL;
    if (w && !fhir_pending_atomic(p)) {
        /* a batch entry's change commits on its own, its event with it */
        return audit_record(a->c->srv->trail, ev, 1, apply_access, (void *)r, NULL, err);
    }
    if (w)
        a->write->version = w->if_version > 0 ? w->if_version + 1 : 1;
    return fhir_pending_add(p, ev, w, r->grant_id, grant ? a->c->who.account.id : NULL,
                            a->patient, grant ? a->d->btg_expires_us : 0,
                            grant ? btg_reason(a->c) : NULL, err);
}

/* The detector sees the access once it is recorded; its verdict is applied
 * before the answer leaves (detection.c). */
static void observe_access(const access *a, int granted)
{
    call *c = a->c;
    int reading = a->write == NULL;
    unsigned flags = c->srv->detect && (granted || reading)
                     ? call_patient_flags(c, a->patient, granted && a->d && a->d->break_glass,
                                          reading)
                     : 0;
    detect_patient p = { a->patient, flags };
    detect_outcome o = granted ? DETECT_GRANTED
                     : a->d && a->d->status == 404 ? DETECT_HIDDEN : DETECT_DENIED;
    const char *slash = a->resources ? strchr(a->resources, '/') : NULL;
    char type[64] = "";
    if (slash && (size_t)(slash - a->resources) < sizeof type)
        snprintf(type, sizeof type, "%.*s", (int)(slash - a->resources), a->resources);
    call_observe(c, a->action, o, type[0] ? type : NULL, a->patient ? &p : NULL,
                 a->patient != NULL, 0, reading ? 0 : DETECT_EV_WRITE);
}

/* Record the access (granted or denied) durably; -1 with err.  A
 * break-the-glass access carries purpose BTG in clear; the reason given for
 * it, free text that is often clinical, is sealed in the grant the entry
 * names, never written into the trail. */
static int record(const access *a, const char *outcome, mv_err *err)
{
    recorded r = { .a = a };
    call *c = a->c;
    char purpose[64] = "";
    if (a->d && a->d->break_glass && a->d->grant_btg && a->patient) {
        crypto_random_id(r.grant_id);
        snprintf(purpose, sizeof purpose, "%s%s", FHIR_PURPOSE_BTG_GRANT, r.grant_id);
    } else if (a->d && a->d->break_glass) {
        snprintf(purpose, sizeof purpose, "%s", FHIR_PURPOSE_BTG);
    }
    audit_event ev = {
        .actor = c->res->actor, .action = a->action, .outcome = outcome,
        .resources = a->resources, .patient = a->patient, .source = c->req->source,
        .session = c->session_ref, .purpose = purpose[0] ? purpose : NULL,
        .request_id = c->req->request_id,
    };
    int granted = a->d && a->d->effect == POLICY_PERMIT;
    int rc = c->pending ? collect(&r, &ev, granted, err)
                        : audit_record(c->srv->trail, &ev, 1, granted ? apply_access : NULL,
                                       &r, NULL, err);
    /* once more after the commit: a fact cached between the bump inside the
     * transaction and the commit would hold the old relationship */
    if (rc == 0 && granted && a->write && fhir_type_relates(a->write->w.type))
        fhir_care_changed();
    if (rc == 0)
        observe_access(a, granted);
    return rc;
}

/* A denial: audited, then answered (404 indistinguishable from missing). */
static void deny(call *c, const fhir_path *p, access *a, const policy_decision *d)
{
    char outcome[200];
    mv_err err;
    snprintf(outcome, sizeof outcome, "denied: %s", d->reason);
    if (record(a, outcome, &err) != 0) {
        call_internal(c, &err);
        return;
    }
    if (d->status == 404)
        reply_not_found(c, p);
    else
        call_fail(c, d->status, "forbidden", d->reason);
}

/* ---- Decisions taken before any lookup -------------------------------------------- */

/* A care giver's X-Break-Glass-Reason that policy would refuse: refused for
 * every request, whatever it names, so that it reveals nothing.  1 with *d
 * the denial. */
static int malformed_btg(const call *c, policy_decision *d)
{
    auth_role role = c->who.account.role;
    const char *btg = btg_reason(c);
    memset(d, 0, sizeof *d);
    if ((role != AUTH_ROLE_CLINICIAN && role != AUTH_ROLE_NURSE) || btg == NULL ||
        policy_btg_reason_valid(NULL, btg))
        return 0;
    d->effect = POLICY_DENY;
    d->status = 403;
    snprintf(d->reason, sizeof d->reason, "break-the-glass reason too short: give at "
             "least %zu letters", policy_default_config().btg_min_reason);
    return 1;
}

/* The patient the stored resource (type, id) belongs to, for the trail of a
 * denial only (copied into out; "" when missing or not a patient's). */
static void stored_patient(call *c, const char *type, const char *id, char *out, size_t cap)
{
    store_resource r;
    out[0] = '\0';
    if (id == NULL || id[0] == '\0' || store_get(c->srv->store, type, id, 0, &r, NULL) != 0)
        return;
    if (r.patient)
        snprintf(out, cap, "%s", r.patient);
    store_resource_free(&r);
}

/* A malformed break-the-glass reason, and every decision that cannot depend
 * on the patient (admin, security, service), are answered before the answer
 * could depend on what is stored: an existing and a missing resource, a
 * visible and a hidden patient, then get the same answer.  The denial is
 * still recorded with the patient the resource belongs to, when there is
 * one.  patient: the one the URL names ($everything), else NULL; id: the
 * resource the URL names, else NULL.  Returns 1 when it answered. */
static int precheck_as(call *c, policy_action act, const char *type, const char *id,
                       const char *patient, const char *action)
{
    policy_subject who = fhir_subject(c);
    policy_decision d;
    if (malformed_btg(c, &d)) {
        /* answered below */
    } else if (!policy_patient_independent(&who)) {
        return 0;
    } else if (decide(c, act, type, (char **)&patient, patient ? 1 : 0, &d) != 0) {
        return 1;
    } else if (d.effect == POLICY_PERMIT) {
        return 0;
    }
    char outcome[200], owner[FHIR_ID_MAX + 1] = "";
    mv_err err;
    snprintf(outcome, sizeof outcome, "denied: %s", d.reason);
    if (patient == NULL)
        stored_patient(c, type, id, owner, sizeof owner);
    access a = { c, action, NULL, patient ? patient : owner[0] ? owner : NULL, &d, NULL };
    if (record(&a, outcome, &err) != 0)
        call_internal(c, &err);
    else
        call_fail(c, d.status, "forbidden", d.reason);
    return 1;
}

static int precheck(call *c, policy_action act, const fhir_path *p, const char *action)
{
    return precheck_as(c, act, p->type, p->id, NULL, action);
}

/* ---- read / vread / history ------------------------------------------------------- */

static void answer_store_error(call *c, const fhir_path *p, const mv_err *e)
{
    if (e->code == MV_E_NOTFOUND)
        reply_not_found(c, p);
    else if (e->code == MV_E_GONE)
        call_fail(c, 410, "deleted", "this resource's patient was erased");
    else
        call_internal(c, e);
}

/* A read's body, cut down when _summary or _elements ask (summary.c). */
static void reply_read(call *c, const store_resource *r)
{
    const char *summary = http_query(c->req, "_summary");
    const char *elements = http_query(c->req, "_elements");
    if (summary == NULL && elements == NULL) {
        reply_body(c, 200, r->body.data, r->body.len);
        return;
    }
    if (!fhir_summary_valid(summary)) {
        call_fail(c, 400, "invalid", "_summary takes true, text, data or false on a read");
        return;
    }
    json_t *res = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    if (res && fhir_subset(res, summary, elements) != 0) {
        json_decref(res);
        res = NULL;
    }
    reply_doc(c, 200, res);
}

/* Hidden and missing alike, in time too: a read of an id that does not
 * exist does the work a hidden one does -- the same decision, for a patient
 * that cannot exist (so the same relationship lookups run and find
 * nothing), and an audit entry with its fsync -- then answers the same 404.
 * It names no patient, so it can make no break-the-glass grant. */
static void read_missing(call *c, const fhir_path *p)
{
    char ghost[33], ref[200];
    crypto_random_id(ghost);
    char *pat = ghost;
    policy_decision d;
    if (decide(c, p->vid ? POLICY_VREAD : POLICY_READ, p->type, &pat, 1, &d) != 0)
        return;
    /* The type only: an id that names nothing is whatever the client typed
     * (a name, a social security number), and the trail keeps no such text. */
    snprintf(ref, sizeof ref, "%s", p->type);
    access a = { c, p->vid ? "fhir.vread" : "fhir.read", ref, NULL, &d, NULL };
    mv_err e;
    if (record(&a, "failure: not found", &e) != 0)
        call_internal(c, &e);
    else
        reply_not_found(c, p);
}

/* Decided on the row's head, decrypted only once permitted: a hidden
 * resource is never opened. */
static void fhir_read(call *c, const fhir_path *p)
{
    store_resource r;
    mv_err e;
    if (store_head(c->srv->store, p->type, p->id, p->vid, &r, &e) != 0) {
        if (e.code == MV_E_NOTFOUND)
            read_missing(c, p);
        else
            answer_store_error(c, p, &e);
        return;
    }
    char ref[200];
    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", p->type, p->id, (long long)r.version);
    policy_decision d;
    char *pat = r.patient;
    if (decide(c, p->vid ? POLICY_VREAD : POLICY_READ, p->type, pat ? &pat : NULL,
               pat ? 1 : 0, &d) != 0)
        goto done;
    access a = { c, p->vid ? "fhir.vread" : "fhir.read", ref, r.patient, &d, NULL };
    if (d.effect != POLICY_PERMIT) {
        deny(c, p, &a, &d);
        goto done;
    }
    store_resource opened;
    if (!r.deleted) {
        if (store_get(c->srv->store, p->type, p->id, r.version, &opened, &e) != 0) {
            answer_store_error(c, p, &e);
            goto done;
        }
        store_resource_free(&r);
        r = opened;
        a.patient = r.patient;
    }
    if (record(&a, r.deleted ? "success: deleted" : "success", &e) != 0) {
        call_internal(c, &e);
        goto done;
    }
    version_headers(c, r.version, r.updated_us);
    if (r.deleted)
        call_fail(c, 410, "deleted", "this resource was deleted");
    else if (not_modified(c, r.version, r.updated_us))
        http_response_text(c->res, 304, FHIR_JSON, NULL);
    else
        reply_read(c, &r);
done:
    store_resource_free(&r);
}

/* One version as a history entry: fullUrl and request.url name the
 * resource (bdl-8: never a version), response.location the version. */
static json_t *history_entry(const fhir_path *p, const store_resource *r)
{
    char full[160], location[200], etag[32], when[MV_TIME_STR_MAX];
    snprintf(full, sizeof full, "%s/%s", p->type, p->id);
    snprintf(location, sizeof location, "%s/_history/%lld", full, (long long)r->version);
    snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)r->version);
    mv_time_format(r->updated_us, when);
    json_t *e = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}}", "fullUrl", full,
                          "request", "method", r->deleted ? "DELETE" : "PUT", "url", full,
                          "response", "status", r->deleted ? "204" : "200",
                          "location", location, "etag", etag, "lastModified", when);
    if (!r->deleted) {
        json_t *res = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        if (res)
            json_object_set_new(e, "resource", res);
    }
    return e;
}

static void fhir_history(call *c, const fhir_path *p)
{
    store_resource *v = NULL;
    size_t n = 0;
    mv_err e;
    if (store_history(c->srv->store, p->type, p->id, 0, &v, &n, &e) != 0) {
        answer_store_error(c, p, &e);
        return;
    }
    if (n == 0) {
        reply_not_found(c, p);
        return;
    }
    char ref[200];
    snprintf(ref, sizeof ref, "%s/%s", p->type, p->id);
    policy_decision d;
    char *pat = v[0].patient;
    if (decide(c, POLICY_HISTORY, p->type, pat ? &pat : NULL, pat ? 1 : 0, &d) == 0) {
        access a = { c, "fhir.history", ref, v[0].patient, &d, NULL };
        if (d.effect != POLICY_PERMIT) {
            deny(c, p, &a, &d);
        } else if (record(&a, "success", &e) != 0) {
            call_internal(c, &e);
        } else {
            json_t *entries = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(entries, history_entry(p, &v[i]));
            json_t *b = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle",
                                  "type", "history", "total", (json_int_t)n,
                                  "entry", entries);
            char *text = json_text(b);
            json_decref(b);
            if (text)
                reply_body(c, 200, text, strlen(text));
            free(text);
        }
    }
    store_resources_free(v, n);
}

/* ---- create / update / delete --------------------------------------------------------- */

/* The body, validated and of the URL's type, with id and meta set; NULL
 * after answering the error. */
static char *prepared_from(call *c, const fhir_path *p, const char *id, int64_t version,
                           int64_t now, const char *body, size_t len);

static char *prepared_body(call *c, const fhir_path *p, const char *id,
                           int64_t version, int64_t now)
{
    if (!fhir_is_json_type(http_header(c->req, "Content-Type"))) {
        call_fail(c, 415, "not-supported", "send application/fhir+json");
        return NULL;
    }
    return prepared_from(c, p, id, version, now, (const char *)c->req->body, c->req->body_len);
}

/* body (a client's, or a patched one) prepared as prepared_body does. */
static char *prepared_from(call *c, const fhir_path *p, const char *id, int64_t version,
                           int64_t now, const char *body, size_t len)
{
    mv_err e;
    char *type = NULL;
    if (fhir_validate(body, len, &type, &e) != 0) {
        call_fail(c, 400, "structure", e.msg);
        return NULL;
    }
    int same = strcmp(type, p->type) == 0;
    free(type);
    if (!same) {
        call_fail(c, 400, "invalid", "the body's resourceType is not the URL's type");
        return NULL;
    }
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *body_id = json_string_value(json_object_get(o, "id"));
    if (p->id[0] && (body_id == NULL || strcmp(body_id, p->id) != 0)) {
        json_decref(o);
        call_fail(c, 400, "invalid", "an update's body must carry the id of its URL");
        return NULL;
    }
    char vid[24], when[MV_TIME_STR_MAX];
    snprintf(vid, sizeof vid, "%lld", (long long)version);
    mv_time_format(now, when);
    json_object_set_new(o, "id", json_string(id));
    json_t *meta = json_object_get(o, "meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(o, "meta", meta);
    }
    json_object_set_new(meta, "versionId", json_string(vid));
    json_object_set_new(meta, "lastUpdated", json_string(when));
    char *text = json_text(o);
    json_decref(o);
    if (text == NULL)
        call_fail(c, 500, "exception", "out of memory");
    return text;
}

/* Patients of the prepared body; -1 after answering (422 when a
 * compartment resource names none). */
static int body_patients(call *c, const char *type, const char *text,
                         char ***ids, size_t *n)
{
    mv_err e;
    if (fhir_compartment_patients(text, strlen(text), ids, n, &e) != 0) {
        call_fail(c, 400, "invalid", e.msg);
        return -1;
    }
    if (*n == 0 && fhir_type_in_patient_compartment(type)) {
        call_fail(c, 422, "business-rule", "this resource belongs to a patient's "
                  "record but names no patient (subject/patient)");
        return -1;
    }
    return 0;
}

/* The body's terms, and the store terms for those the index keeps: each
 * with its width, low-cardinality parameters left out (fhir.h). */
static int index_terms(call *c, const char *type, const char *text, fhir_term **t,
                       size_t *nt, store_term **st, size_t *nst)
{
    mv_err e;
    if (fhir_index_terms(text, strlen(text), t, nt, &e) != 0) {
        call_fail(c, 400, "invalid", e.msg);
        return -1;
    }
    *st = mv_calloc(*nt ? *nt : 1, sizeof **st, &e);
    if (*st == NULL) {
        fhir_terms_free(*t, *nt);
        call_fail(c, 500, "exception", "out of memory");
        return -1;
    }
    *nst = 0;
    for (size_t i = 0; i < *nt; i++) {
        int bits = fhir_param_bits(type, (*t)[i].param);
        if (bits > 0)
            (*st)[(*nst)++] = (store_term){ (*t)[i].param, (*t)[i].value, bits };
    }
    return 0;
}

/* Parse If-Match: W/"n" (or "n"); 0 when absent, -1 when malformed. */
static int64_t if_match(const call *c)
{
    const char *h = http_header(c->req, "If-Match");
    if (h == NULL)
        return 0;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    long long v;
    int end = 0;
    if (sscanf(h, "\"%lld\"%n", &v, &end) != 1 || end == 0 || h[end] != '\0' || v < 1)
        return -1;
    return v;
}

/* Store text as version `version` of (type, id) for the first patient,
 * after the policy and with the audit entry; answers everything. */
static void write_version(call *c, const fhir_path *p, const char *id, char *text,
                          int64_t version, int64_t expect, policy_action act,
                          int created, const char *stored_patient, int stale,
                          int64_t now)
{
    char **pats = NULL;
    size_t np = 0;
    fhir_term *terms = NULL;
    size_t nt = 0;
    store_term *st = NULL;
    size_t nst = 0;
    char *labelled = NULL;
    policy_decision d;
    fhir_path where = *p;
    snprintf(where.id, sizeof where.id, "%s", id);
    /* An update is decided for the patient the stored resource belongs to
     * as well as for those its new body names: otherwise a caller could
     * learn, from the store refusing the move, that a hidden resource
     * exists -- and the attempt would leave no denial in the trail. */
    char *stored = (char *)stored_patient;
    const char *denied_patient = NULL;
    if (body_patients(c, p->type, text, &pats, &np) != 0)
        goto done;
    if (malformed_btg(c, &d))
        denied_patient = stored;
    else if (stored && decide(c, act, p->type, &stored, 1, &d) != 0)
        goto done;
    else if (stored && d.effect != POLICY_PERMIT)
        denied_patient = stored;
    else if (decide(c, act, p->type, pats, np, &d) != 0)
        goto done;
    if (index_terms(c, p->type, text, &terms, &nt, &st, &nst) != 0)
        goto done;
    char ref[200];
    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", p->type, id, (long long)version);
    /* BTG stays BTG: a relationship its author wrote under break-the-glass
     * explains none of their access until someone else confirms it. */
    if (d.effect == POLICY_PERMIT) {
        labelled = fhir_relationship_labelled(p->type, text, d.break_glass
                                              ? c->who.account.practitioner : NULL);
        if (labelled != NULL)
            text = labelled;
    }
    write_ctx wc = { .w = { .type = p->type, .id = id, .patient = np ? pats[0] : NULL,
                            .if_version = expect, .body = text, .body_len = strlen(text),
                            .terms = st, .n_terms = nst, .updated_us = now } };
    access a = { c, created ? "fhir.create" : "fhir.update", ref,
                 denied_patient ? denied_patient : np ? pats[0] : NULL, &d, &wc };
    if (d.effect != POLICY_PERMIT) {
        deny(c, &where, &a, &d);
        goto done;
    }
    if (stale) {        /* only now: a hidden resource's version is no answer */
        call_fail(c, 412, "conflict", "If-Match does not name the current version");
        goto done;
    }
    mv_err e;
    if (record(&a, "success", &e) != 0) {
        if (e.code == MV_E_CONFLICT)
            call_fail(c, http_header(c->req, "If-Match") ? 412 : 409, "conflict",
                      "the resource changed meanwhile: read it again");
        else if (e.code == MV_E_GONE)
            call_fail(c, 410, "deleted", "this patient was erased");
        else
            call_fail_err(c, &e);
        goto done;
    }
    char location[sizeof ref + 8];
    snprintf(location, sizeof location, "/fhir/%s", ref);
    if (created)
        http_response_header(c->res, "Location", location);
    version_headers(c, wc.version, now);
    reply_written(c, created ? 201 : 200, text);
done:
    fhir_ids_free(pats, np);
    fhir_terms_free(terms, nt);
    free(st);
    free(labelled);
}

static void fhir_create_new(call *c, const fhir_path *p)
{
    char id[FHIR_ID_MAX + 1];
    if (c->preset_id)
        snprintf(id, sizeof id, "%s", c->preset_id);
    else
        crypto_random_id(id);
    int64_t now = call_write_time(c); /* meta.lastUpdated is the stored time */
    char *text = prepared_body(c, p, id, 1, now);
    if (text == NULL)
        return;
    write_version(c, p, id, text, 1, 0, POLICY_CREATE, 1, NULL, 0, now);
    free(text);
}

/* Conditional creates are serialised, so two retries of one create racing
 * each other cannot both find nothing and both create.  (Within one
 * process; a transaction's create commits after the lock is released.) */
static pthread_mutex_t conditional_lock = PTHREAD_MUTEX_INITIALIZER;

/* If-None-Exist (R4 3.1.0.8.1): no match creates; one match the caller may
 * see is answered as a read of it (200, audited as a read); more are 412. */
static void fhir_create_if_none(call *c, const fhir_path *p, const char *condition)
{
    char found[FHIR_ID_MAX + 1];
    size_t count;
    mv_err e;
    pthread_mutex_lock(&conditional_lock);
    if (fhir_conditional_match(c, p->type, condition, found, sizeof found, &count, &e) != 0) {
        if (e.code == MV_E_INVALID) {
            char msg[300];
            snprintf(msg, sizeof msg, "If-None-Exist: %s", e.msg);
            call_fail(c, 400, "invalid", msg);
        } else {
            call_internal(c, &e);
        }
    } else if (count > 1) {
        call_fail(c, 412, "duplicate", "If-None-Exist matches more than one resource");
    } else if (count == 1) {
        fhir_path at = *p;
        snprintf(at.id, sizeof at.id, "%s", found);
        at.vid = 0;
        store_resource head;
        int64_t version = store_head(c->srv->store, p->type, found, 0, &head, NULL) == 0
                          ? head.version : 0;
        if (version)
            store_resource_free(&head);
        fhir_read(c, &at);
        if (c->res->status == 200 && version) {
            char location[200];
            snprintf(location, sizeof location, "/fhir/%s/%s/_history/%lld", p->type, found,
                     (long long)version);
            http_response_header(c->res, "Location", location);
        }
    } else {
        fhir_create_new(c, p);
    }
    pthread_mutex_unlock(&conditional_lock);
}

static void fhir_create(call *c, const fhir_path *p)
{
    const char *condition = http_header(c->req, "If-None-Exist");
    if (condition != NULL)
        fhir_create_if_none(c, p, condition);
    else
        fhir_create_new(c, p);
}

/* Writes to one resource are serialised in this process, striped by type
 * and id: two PUTs without If-Match then both land, one after the other,
 * rather than one answering 409 because the other won the race between
 * reading the current version and writing the next.  (A transaction's
 * entries commit after their stripe is released: they can still conflict.) */
#define WRITE_STRIPES 64
static pthread_mutex_t write_stripes[WRITE_STRIPES] = {
    [0 ... WRITE_STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER
};

static pthread_mutex_t *write_stripe(const fhir_path *p)
{
    uint32_t h = 2166136261u;                        /* FNV-1a */
    for (const char *s = p->type; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = p->id; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return &write_stripes[h % WRITE_STRIPES];
}

static void fhir_update_locked(call *c, const fhir_path *p);

static void fhir_update(call *c, const fhir_path *p)
{
    pthread_mutex_t *stripe = write_stripe(p);
    pthread_mutex_lock(stripe);
    fhir_update_locked(c, p);
    pthread_mutex_unlock(stripe);
}

/* Decided on the stored head (owner, version): the current body is never
 * decrypted to be replaced. */
static void fhir_update_locked(call *c, const fhir_path *p)
{
    int64_t expect = if_match(c);
    if (expect < 0) {
        call_fail(c, 400, "invalid", "If-Match must be W/\"<version>\"");
        return;
    }
    store_resource cur;
    mv_err e;
    int exists = store_head(c->srv->store, p->type, p->id, 0, &cur, &e) == 0;
    if (!exists && e.code != MV_E_NOTFOUND) {
        answer_store_error(c, p, &e);
        return;
    }
    int64_t current = exists ? cur.version : 0;
    int64_t now = call_write_time(c); /* meta.lastUpdated is the stored time */
    char *text = prepared_body(c, p, p->id, current + 1, now);
    if (text != NULL)
        write_version(c, p, p->id, text, current + 1, current,
                      exists ? POLICY_UPDATE : POLICY_CREATE, !exists,
                      exists ? cur.patient : NULL, expect > 0 && expect != current, now);
    free(text);
    if (exists)
        store_resource_free(&cur);
}

/* The permitted patch: open, apply, and write as an update would. */
static void patch_permitted(call *c, const fhir_path *p, const store_resource *head,
                            int64_t expect)
{
    store_resource cur;
    mv_err e;
    char *patched = NULL;
    if (store_get(c->srv->store, p->type, p->id, head->version, &cur, &e) != 0) {
        answer_store_error(c, p, &e);
        return;
    }
    if (fhir_json_patch((const char *)cur.body.data, cur.body.len,
                        (const char *)c->req->body, c->req->body_len, &patched, &e) != 0) {
        if (e.code == MV_E_CONFLICT)
            call_fail(c, 422, "processing", e.msg);
        else
            call_fail_err(c, &e);
    } else {
        int64_t now = call_write_time(c);
        char *text = prepared_from(c, p, p->id, cur.version + 1, now, patched,
                                   strlen(patched));
        if (text != NULL)
            write_version(c, p, p->id, text, cur.version + 1, cur.version, POLICY_UPDATE, 0,
                          cur.patient, expect > 0 && expect != cur.version, now);
        free(text);
    }
    if (patched) {
        crypto_wipe(patched, strlen(patched));
        free(patched);
    }
    store_resource_free(&cur);
}

/* PATCH with a JSON Patch (RFC 6902): decided on the stored head first,
 * like an update; only then is the current body opened, patched, validated
 * and written as the next version.  A failed test operation is a 422. */
static void fhir_patch_locked(call *c, const fhir_path *p)
{
    const char *ct = http_header(c->req, "Content-Type");
    if (ct == NULL || strncmp(ct, "application/json-patch+json", 27) != 0) {
        call_fail(c, 415, "not-supported", "PATCH takes a JSON Patch "
                  "(application/json-patch+json)");
        return;
    }
    int64_t expect = if_match(c);
    if (expect < 0) {
        call_fail(c, 400, "invalid", "If-Match must be W/\"<version>\"");
        return;
    }
    store_resource cur;
    mv_err e;
    if (store_head(c->srv->store, p->type, p->id, 0, &cur, &e) != 0) {
        if (e.code == MV_E_NOTFOUND)
            read_missing(c, p);              /* as a read of a missing id */
        else
            answer_store_error(c, p, &e);
        return;
    }
    policy_decision d;
    char *pat = cur.patient;
    if (cur.deleted) {
        call_fail(c, 410, "deleted", "this resource was deleted");
    } else if (decide(c, POLICY_UPDATE, p->type, pat ? &pat : NULL, pat ? 1 : 0, &d) != 0) {
        /* answered */
    } else if (d.effect != POLICY_PERMIT) {
        char ref[200];
        snprintf(ref, sizeof ref, "%s/%s/_history/%lld", p->type, p->id,
                 (long long)cur.version + 1);
        access a = { c, "fhir.update", ref, cur.patient, &d, NULL };
        deny(c, p, &a, &d);
    } else {
        patch_permitted(c, p, &cur, expect);
    }
    store_resource_free(&cur);
}

static void fhir_patch(call *c, const fhir_path *p)
{
    pthread_mutex_t *stripe = write_stripe(p);
    pthread_mutex_lock(stripe);
    fhir_patch_locked(c, p);
    pthread_mutex_unlock(stripe);
}

static void fhir_delete_locked(call *c, const fhir_path *p);

static void fhir_delete(call *c, const fhir_path *p)
{
    pthread_mutex_t *stripe = write_stripe(p);
    pthread_mutex_lock(stripe);
    fhir_delete_locked(c, p);
    pthread_mutex_unlock(stripe);
}

static void fhir_delete_locked(call *c, const fhir_path *p)
{
    store_resource cur;
    mv_err e;
    if (store_head(c->srv->store, p->type, p->id, 0, &cur, &e) != 0) {
        answer_store_error(c, p, &e);
        return;
    }
    char ref[200];
    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", p->type, p->id,
             (long long)cur.version + 1);
    policy_decision d;
    char *pat = cur.patient;
    if (decide(c, POLICY_DELETE, p->type, pat ? &pat : NULL, pat ? 1 : 0, &d) != 0)
        goto done;
    write_ctx wc = { .w = { .type = p->type, .id = p->id, .patient = cur.patient,
                            .if_version = cur.version, .deleted = 1 } };
    access a = { c, "fhir.delete", ref, cur.patient, &d, cur.deleted ? NULL : &wc };
    if (d.effect != POLICY_PERMIT)
        deny(c, p, &a, &d);
    else if (record(&a, cur.deleted ? "success: already deleted" : "success", &e) != 0)
        call_fail_err(c, &e);
    else
        c->res->status = 204;
done:
    store_resource_free(&cur);
}

/* ---- Patient/$everything -------------------------------------------------------------- */

#define EVERYTHING_DEFAULT_COUNT 50
#define EVERYTHING_MAX_COUNT 100   /* what one page may disclose */

static long query_long(const call *c, const char *name, long dflt, long lo, long hi)
{
    const char *v = http_query(c->req, name);
    if (v == NULL)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return (*v && !*end && n >= lo && n <= hi) ? n : -1;
}

/* The page's resources as searchset entries; refs lists them for the trail. */
static json_t *everything_entries(call *c, char **refs, size_t from, size_t to,
                                  mv_buf *trail_refs)
{
    json_t *entries = json_array();
    for (size_t i = from; i < to; i++) {
        char type[64], id[FHIR_ID_MAX + 1];
        const char *slash = strchr(refs[i], '/');
        if (slash == NULL || (size_t)(slash - refs[i]) >= sizeof type)
            continue;
        snprintf(type, sizeof type, "%.*s", (int)(slash - refs[i]), refs[i]);
        snprintf(id, sizeof id, "%.64s", slash + 1);
        store_resource r;
        if (store_get(c->srv->store, type, id, 0, &r, NULL) != 0)
            continue;
        json_t *res = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        if (res) {
            json_array_append_new(entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl",
                                                     refs[i], "resource", res, "search",
                                                     "mode", "match"));
            char ref[200];
            snprintf(ref, sizeof ref, "%s%s/_history/%lld", trail_refs->len ? " " : "",
                     refs[i], (long long)r.version);
            mv_buf_append(trail_refs, ref, strlen(ref), NULL);
        }
        store_resource_free(&r);
    }
    mv_buf_append(trail_refs, "", 1, NULL);
    return entries;
}

static void fhir_everything(call *c, const fhir_path *p)
{
    long count = query_long(c, "_count", EVERYTHING_DEFAULT_COUNT, 1, LONG_MAX);
    if (count > EVERYTHING_MAX_COUNT)
        count = EVERYTHING_MAX_COUNT;             /* the maximum, with a next link */
    if (count > 0)
        count = call_page_cap(c, (int)count);     /* the detector's allowance */
    long offset = query_long(c, "_offset", 0, 0, 1000000);
    if (count < 0 || offset < 0) {
        call_fail(c, 400, "invalid", "_count must be a number >= 1 and _offset >= 0");
        return;
    }
    policy_decision d;
    char *pat = (char *)p->id;
    if (decide(c, POLICY_EVERYTHING, "Patient", &pat, 1, &d) != 0)
        return;
    access a = { c, "fhir.everything", NULL, p->id, &d, NULL };
    if (d.effect != POLICY_PERMIT) {
        deny(c, p, &a, &d);
        return;
    }
    char **refs = NULL;
    size_t n = 0;
    mv_err e;
    if (store_patient_refs(c->srv->store, p->id, &refs, &n, &e) != 0) {
        call_internal(c, &e);
        return;
    }
    if (n == 0) {
        store_ids_free(refs, n);
        reply_not_found(c, p);
        return;
    }
    size_t from = (size_t)offset < n ? (size_t)offset : n;
    size_t to = from + (size_t)count < n ? from + (size_t)count : n;
    mv_buf trail_refs = {0};
    json_t *entries = everything_entries(c, refs, from, to, &trail_refs);
    a.resources = trail_refs.len > 1 ? (const char *)trail_refs.data : NULL;
    json_t *links = json_array();
    char url[400], base[200];
    fhir_base_url(c, base, sizeof base);     /* absolute, as clients follow them */
    snprintf(url, sizeof url, "%s/Patient/%s/$everything?_count=%ld&_offset=%zu",
             base, p->id, count, from);
    json_array_append_new(links, json_pack("{s:s, s:s}", "relation", "self", "url", url));
    if (to < n) {
        snprintf(url, sizeof url, "%s/Patient/%s/$everything?_count=%ld&_offset=%zu",
                 base, p->id, count, to);
        json_array_append_new(links, json_pack("{s:s, s:s}", "relation", "next", "url", url));
    }
    json_t *b = json_pack("{s:s, s:s, s:I, s:o, s:o}", "resourceType", "Bundle", "type",
                          "searchset", "total", (json_int_t)n, "link", links,
                          "entry", entries);
    if (record(&a, "success", &e) != 0) {
        call_internal(c, &e);
    } else {
        char *text = json_text(b);
        if (text)
            reply_body(c, 200, text, strlen(text));
        free(text);
    }
    json_decref(b);
    mv_buf_free(&trail_refs);
    store_ids_free(refs, n);
}

/* ---- CapabilityStatement ------------------------------------------------------------ */

static void add_search_param(const char *name, fhir_param_type t, void *ctx)
{
    static const char *const kinds[] = { "token", "string", "date", "reference" };
    json_array_append_new(ctx, json_pack("{s:s, s:s}", "name", name, "type",
                                         (unsigned)t < 4 ? kinds[t] : "special"));
}

/* Resource types medvault refuses to store because storing them would
 * promise something it does not do: a Subscription asks the server to send
 * notifications, and medvault sends none (its data leaves only through
 * audited, policy-checked requests).  Not listed in the CapabilityStatement. */
static int type_refused(const char *type)
{
    return strcmp(type, "Subscription") == 0;
}

typedef struct include_ctx {
    const char *type;
    json_t *list;
} include_ctx;

/* Each reference parameter is an _include value ("Observation:subject"). */
static void add_include(const char *name, fhir_param_type t, void *ctx)
{
    include_ctx *ic = ctx;
    char value[160];
    if (t != FHIR_PARAM_REFERENCE)
        return;
    snprintf(value, sizeof value, "%s:%s", ic->type, name);
    json_array_append_new(ic->list, json_string(value));
}

static void add_type(const char *type, void *ctx)
{
    if (type_refused(type))
        return;
    if (strcmp(type, "AuditEvent") == 0) {
        json_array_append_new(ctx, json_pack("{s:s, s:[{s:s}], s:[{s:s, s:s}]}", "type",
                                             type, "interaction", "code", "search-type",
                                             "searchParam", "name", "patient", "type",
                                             "reference"));
        return;
    }
    json_t *interactions = json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s},{s:s},{s:s},"
                                     "{s:s}]",
                                     "code", "read", "code", "vread", "code", "create",
                                     "code", "update", "code", "patch", "code", "delete",
                                     "code", "history-instance", "code", "history-type",
                                     "code", "search-type");
    json_t *params = json_array();
    fhir_each_search_param(type, add_search_param, params);
    json_t *includes = json_array();
    include_ctx ic = { type, includes };
    fhir_each_search_param(type, add_include, &ic);
    json_t *entry = json_pack("{s:s, s:o, s:s, s:b, s:b, s:b, s:o, s:o}", "type",
                              type, "interaction", interactions,
                              "versioning", "versioned-update",
                              "readHistory", 1, "updateCreate", 1,
                              "conditionalCreate", 1,
                              "searchInclude", includes,
                              "searchParam", params);
    if (strcmp(type, "Patient") == 0)
        json_object_set_new(entry, "operation", json_pack("[{s:s, s:s}]", "name",
                            "everything", "definition",
                            "http://hl7.org/fhir/OperationDefinition/Patient-everything"));
    json_array_append_new(ctx, entry);
}

static void fhir_metadata(call *c)
{
    json_t *types = json_array();
    fhir_each_resource_type(add_type, types);
    char now[MV_TIME_STR_MAX];
    mv_time_format(mv_now_us(), now);
    json_t *cs = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:[s], s:[{s:s, s:{s:s}, s:o,"
        " s:[{s:s}, {s:s}]}]}",
        "resourceType", "CapabilityStatement", "status", "active", "date", now,
        "kind", "instance", "software", "name", "medvault", "fhirVersion", "4.0.1",
        "format", FHIR_JSON, "rest", "mode", "server", "security", "description",
        "Bearer session tokens from POST /auth/login (password and a TOTP code); "
        "no OAuth or SMART endpoint", "resource", types,
        "interaction", "code", "transaction", "code", "batch");
    reply_doc(c, 200, cs);
}

/* ---- Dispatch ---------------------------------------------------------------------- */

void route_fhir(call *c, const char *rest)
{
    const char *m = c->req->method;
    if (!fhir_acceptable(c))
        return;
    if (strcmp(rest, "/metadata") == 0 || strcmp(rest, "/metadata/") == 0) {
        if (strcmp(m, "GET") == 0)
            fhir_metadata(c);
        else
            call_fail(c, 405, "not-supported", "metadata is read with GET");
        return;
    }
    if (rest[strspn(rest, "/")] == '\0') {                  /* the base: /fhir */
        if (strcmp(m, "POST") != 0)
            call_fail(c, 405, "not-supported", "POST a transaction or batch Bundle "
                      "to /fhir");
        else if (call_authenticate(c) == 0)
            fhir_bundle(c);
        return;
    }
    fhir_path p;
    if (parse_path(rest, &p) != 0) {
        call_fail(c, 404, "not-found", "not a FHIR resource type, id or history path");
        return;
    }
    if (call_authenticate(c) != 0)
        return;
    if (type_refused(p.type)) {
        call_fail(c, 405, "not-supported", "Subscription is not supported: medvault "
                  "sends no notifications");
        return;
    }
    int get = strcmp(m, "GET") == 0;
    if (strcmp(p.type, "AuditEvent") == 0) {
        /* AuditEvents are the trail itself, never stored resources. */
        if (get && p.id[0] == '\0')
            fhir_audit_log(c);
        else
            call_fail(c, 405, "not-supported", "AuditEvent is read from the audit "
                      "trail: GET /fhir/AuditEvent?patient=ID");
        return;
    }
    if (p.everything && get) {
        /* $everything names its patient in the URL */
        if (!precheck_as(c, POLICY_EVERYTHING, p.type, NULL, p.id, "fhir.everything"))
            fhir_everything(c, &p);
    } else if (p.in_type[0] && get) {
        /* Patient/ID/Type: a search of Type within the patient's compartment */
        if (!precheck_as(c, POLICY_SEARCH, p.in_type, NULL, NULL, "fhir.search"))
            fhir_search_in(c, p.in_type, p.id);
    } else if (p.search_post && strcmp(m, "POST") == 0) {
        if (!precheck(c, POLICY_SEARCH, &p, "fhir.search"))
            fhir_search_posted(c, p.type);
    } else if (p.id[0] == '\0' && strcmp(m, "POST") == 0 && !p.history && !p.search_post) {
        fhir_create(c, &p);         /* decided on the patients its body names */
    } else if (p.id[0] == '\0' && !p.history && get) {
        if (!precheck(c, POLICY_SEARCH, &p, "fhir.search"))
            fhir_search(c, p.type);
    } else if (p.id[0] == '\0' && p.history && get) {
        if (!precheck(c, POLICY_HISTORY, &p, "fhir.history"))
            fhir_type_history(c, p.type);
    } else if (p.id[0] && p.history && p.vid == 0 && get) {
        if (!precheck(c, POLICY_HISTORY, &p, "fhir.history"))
            fhir_history(c, &p);
    } else if (p.id[0] && get) {
        if (!precheck(c, p.vid ? POLICY_VREAD : POLICY_READ, &p,
                      p.vid ? "fhir.vread" : "fhir.read"))
            fhir_read(c, &p);
    } else if (p.id[0] && !p.history && strcmp(m, "PUT") == 0) {
        fhir_update(c, &p);         /* an update or a create: the store says which */
    } else if (p.id[0] && !p.history && p.vid == 0 && strcmp(m, "PATCH") == 0) {
        fhir_patch(c, &p);          /* decided on the stored head, then opened */
    } else if (p.id[0] && !p.history && strcmp(m, "DELETE") == 0) {
        if (!precheck(c, POLICY_DELETE, &p, "fhir.delete"))
            fhir_delete(c, &p);
    } else {
        call_fail(c, 405, "not-supported", "this interaction is not supported here; "
                  "see /fhir/metadata");
    }
}
