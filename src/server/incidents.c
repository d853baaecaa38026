/*
 * incidents.c -- the register of personal-data breaches, and the
 * containment that comes with opening one.
 *
 * Why it exists: GDPR Art. 33(5) requires the controller to document every
 * breach (facts, effects, remedial action), and in the 2024 breach the
 * stolen account kept reading while people worked out what had happened.
 * So opening an incident is one act: the account involved is contained
 * (sessions revoked, account locked) and the incident is recorded with
 * every measure taken and its timeline (detected, contained, closed), which
 * the CNIL notification (`medvault incident report`) is drafted from.
 *
 * Each incident is a sealed "_Incident" record under the system key, as the
 * alerts are (it names accounts and addresses), indexed by kind, status and
 * actor through the blind index; every change is a new version committed
 * with its audit entry.  The API (/api/incidents) and the CLI (`medvault
 * incident`) share these functions.
 */
#include "server_internal.h"
#include "../crypto/crypto.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define INCIDENT_TYPE "_Incident"
/* How far back `open --actor` looks in the trail for the addresses used. */
#define SOURCE_LOOKBACK 200000
#define SOURCES_MAX 64

/* ---- storing a document ------------------------------------------------------- */

typedef struct save_ctx {
    json_t *doc;
    int64_t if_version;
} save_ctx;

static int apply_save(store_txn *t, void *ctx, mv_err *err)
{
    save_ctx *sc = ctx;
    const char *id = json_string_value(json_object_get(sc->doc, "id"));
    const char *status = json_string_value(json_object_get(sc->doc, "status"));
    json_t *actors = json_object_get(sc->doc, "actors");
    const char *actor = json_string_value(json_object_get(json_array_get(actors, 0), "id"));
    char *body = json_text(sc->doc);
    if (body == NULL || id == NULL || status == NULL)
        return free(body), mv_fail(err, MV_E_INVALID, "incident without id or status");
    store_term terms[] = { { "kind", "incident", 0 }, { "status", status, 0 },
                           { "actor", actor ? actor : "-", 0 } };
    store_write w = { .type = INCIDENT_TYPE, .id = id, .if_version = sc->if_version,
                      .body = body, .body_len = strlen(body), .terms = terms, .n_terms = 3 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

/* Commit doc (version if_version: 0 = new) with one audit entry. */
static int save(audit_trail *trail, json_t *doc, int64_t if_version, const char *action,
                const char *outcome, const char *by, const char *source, mv_err *err)
{
    char ref[80];
    snprintf(ref, sizeof ref, "Incident/%.40s",
             json_string_value(json_object_get(doc, "id")));
    audit_event ev = { .actor = by, .action = action, .outcome = outcome,
                       .resources = ref, .source = source };
    save_ctx sc = { doc, if_version };
    return audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
}

static void set_time(json_t *doc, const char *name, int64_t us)
{
    char when[MV_TIME_STR_MAX], key[48];
    mv_time_format(us, when);
    json_object_set_new(doc, name, json_string(when));
    snprintf(key, sizeof key, "%s_us", name);
    json_object_set_new(doc, key, json_integer(us));
}

static void add_measure(json_t *doc, const char *what)
{
    char when[MV_TIME_STR_MAX];
    mv_time_format(mv_now_us(), when);
    json_array_append_new(json_object_get(doc, "measures"),
                          json_pack("{s:s, s:s}", "at", when, "what", what));
}

/* ---- who and where ---------------------------------------------------------------- */

/* The account named by a username or an account id. */
static int find_account(auth *au, const char *name, auth_account *out, mv_err *err)
{
    if (auth_account_get(au, name, out, NULL) == 0 ||
        auth_account_get_id(au, name, out, NULL) == 0)
        return 0;
    return mv_fail(err, MV_E_NOTFOUND, "no account '%s'", name);
}

typedef struct sources_ctx {
    char actor[AUTH_NAME_MAX + 8];
    json_t *sources;
} sources_ctx;

static int has_string(json_t *arr, const char *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
        if (strcmp(json_string_value(x), v) == 0)
            return 1;
    return 0;
}

/* A network address the account used ("cli" and "local" are not). */
static void add_source(json_t *arr, const char *src)
{
    if (src == NULL || *src == '\0' || strcmp(src, "cli") == 0 ||
        strcmp(src, "local") == 0 || json_array_size(arr) >= SOURCES_MAX)
        return;
    if (!has_string(arr, src))
        json_array_append_new(arr, json_string(src));
}

static int collect_source(const store_audit_row *row, void *ctx)
{
    sources_ctx *sc = ctx;
    if (row->actor && strcmp(row->actor, sc->actor) == 0)
        add_source(sc->sources, row->source);
    return 0;
}

/* The addresses the account used in the recent trail. */
static int recent_sources(mv_store *s, const char *account_id, json_t *sources,
                          mv_err *err)
{
    int64_t head;
    unsigned char hash[MV_HASH_BYTES];
    if (store_audit_last(s, &head, hash, err) != 0)
        return -1;
    sources_ctx sc = { .sources = sources };
    snprintf(sc.actor, sizeof sc.actor, "user:%s", account_id);
    int64_t from = head > SOURCE_LOOKBACK ? head - SOURCE_LOOKBACK : 1;
    return store_audit_scan(s, from, 0, collect_source, &sc, err) < 0 ? -1 : 0;
}

/* ---- opening ------------------------------------------------------------------------ */

/* The new document, before containment. */
static json_t *new_document(const server_incident_spec *spec, const char *by,
                            int64_t now)
{
    char id[33];
    crypto_random_id(id);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[], s:[], s:[]}", "id", id,
                            "kind", spec->kind ? spec->kind : "account-misuse",
                            "status", "open", "opened_by", by, "actors", "sources",
                            "blocked_sources", "measures");
    if (doc == NULL)
        return NULL;
    set_time(doc, "opened_at", now);
    set_time(doc, "detected_at", now);
    if (spec->summary)
        json_object_set_new(doc, "summary", json_string(spec->summary));
    return doc;
}

/* Take the actor, source and time of the alert; the actor's account id
 * goes to *actor. */
static int from_alert(mv_store *s, json_t *doc, const char *alert_id, char *actor,
                      size_t cap, mv_err *err)
{
    char *text = NULL;
    if (server_alert_get(s, alert_id, &text, NULL, err) != 0)
        return err->code == MV_E_NOTFOUND
                   ? mv_fail(err, MV_E_NOTFOUND, "no alert %s", alert_id) : -1;
    json_t *alert = json_loads(text, 0, NULL);
    free(text);
    if (alert == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "alert %s is not readable", alert_id);
    json_object_set_new(doc, "alert", json_string(alert_id));
    add_source(json_object_get(doc, "sources"), json_string_value(json_object_get(alert, "source")));
    json_int_t at = json_integer_value(json_object_get(alert, "time_us"));
    if (at > 0)
        set_time(doc, "detected_at", at);
    const char *who = json_string_value(json_object_get(alert, "actor"));
    snprintf(actor, cap, "%s", who ? who : "");
    json_decref(alert);
    return 0;
}

/* Revoke the account's sessions, lock it, record both (and the blocked
 * addresses) as measures. */
static int contain(auth *au, json_t *doc, const auth_account *a, int block,
                   const char *by, mv_err *err)
{
    char reason[96], line[200];
    size_t n = 0;
    snprintf(reason, sizeof reason, "incident %s",
             json_string_value(json_object_get(doc, "id")));
    if (auth_account_revoke_sessions(au, a->username, by, &n, err) != 0 ||
        auth_account_lock(au, a->username, reason, by, err) != 0)
        return -1;
    set_time(doc, "contained_at", mv_now_us());
    snprintf(line, sizeof line, "account %s locked; %zu session(s) revoked", a->username, n);
    add_measure(doc, line);
    json_t *sources = json_object_get(doc, "sources"), *v;
    size_t i;
    json_array_foreach(sources, i, v) {
        if (!block)
            break;
        json_array_append(json_object_get(doc, "blocked_sources"), v);
        snprintf(line, sizeof line, "source address %s recorded as blocked",
                 json_string_value(v));
        add_measure(doc, line);
    }
    return 0;
}

static int check_spec(const server_incident_spec *spec, mv_err *err)
{
    int stolen = spec->kind && strcmp(spec->kind, "stolen-database") == 0;
    if (spec->kind && !stolen && strcmp(spec->kind, "account-misuse") != 0)
        return mv_fail(err, MV_E_INVALID, "an incident's kind is account-misuse or "
                       "stolen-database");
    if (!stolen && spec->actor == NULL && spec->alert == NULL)
        return mv_fail(err, MV_E_INVALID, "an account-misuse incident names an actor "
                       "or an alert");
    if (spec->actor && spec->alert)
        return mv_fail(err, MV_E_INVALID, "give an actor or an alert, not both");
    return 0;
}

/* Find the account, its addresses, and contain it. */
static int involve_account(mv_store *s, auth *au, json_t *doc,
                           const server_incident_spec *spec, const char *by, mv_err *err)
{
    char actor[AUTH_NAME_MAX] = "";
    if (spec->alert && from_alert(s, doc, spec->alert, actor, sizeof actor, err) != 0)
        return -1;
    if (spec->actor)
        snprintf(actor, sizeof actor, "%s", spec->actor);
    if (actor[0] == '\0')
        return 0;                       /* an alert about an address alone */
    auth_account a;
    if (find_account(au, actor, &a, err) != 0 ||
        recent_sources(s, a.id, json_object_get(doc, "sources"), err) != 0)
        return -1;
    json_array_append_new(json_object_get(doc, "actors"),
                          json_pack("{s:s, s:s}", "id", a.id, "username", a.username));
    return contain(au, doc, &a, spec->block_sources, by, err);
}

/* The alert it came from is worked: closed as an incident (when still open). */
static void close_alert(mv_store *s, audit_trail *trail, json_t *doc, const char *by,
                        const char *source)
{
    const char *alert = json_string_value(json_object_get(doc, "alert"));
    char note[80];
    if (alert == NULL)
        return;
    snprintf(note, sizeof note, "incident %s", json_string_value(json_object_get(doc, "id")));
    if (server_alert_transition(s, trail, alert, "close", "incident", note, by, source,
                                NULL, NULL) == 0)
        add_measure(doc, "alert closed as an incident");
}

int server_incident_open(mv_store *s, audit_trail *trail, auth *au,
                         const server_incident_spec *spec, const char *by,
                         const char *source, char **json_out, mv_err *err)
{
    if (check_spec(spec, err) != 0)
        return -1;
    json_t *doc = new_document(spec, by, mv_now_us());
    if (doc == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = involve_account(s, au, doc, spec, by, err);
    if (rc == 0) {
        close_alert(s, trail, doc, by, source);
        rc = save(trail, doc, 0, "incident.open", "success", by, source, err);
    }
    if (rc == 0 && json_out) {
        *json_out = json_text(doc);
        if (*json_out == NULL)
            rc = mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    json_decref(doc);
    return rc;
}

int server_incident_open_for(mv_store *s, audit_trail *trail, auth *au,
                             const char *actor, const char *summary, const char *by,
                             char **json_out, mv_err *err)
{
    server_incident_spec spec = { .actor = actor, .summary = summary };
    return server_incident_open(s, trail, au, &spec, by, "cli", json_out, err);
}

/* ---- reading ------------------------------------------------------------------------- */

int server_incident_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                        mv_err *err)
{
    if (records_get(s, INCIDENT_TYPE, id, json_out, version, err) != 0)
        return err->code == MV_E_NOTFOUND
                   ? mv_fail(err, MV_E_NOTFOUND, "no incident %s", id) : -1;
    return 0;
}

/* Newest first by the opening time. */
static int by_opening_desc(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "opened_at_us"));
    json_int_t ty = json_integer_value(json_object_get(y, "opened_at_us"));
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

int server_incident_list(mv_store *s, const char *status, char **json_array_out,
                         mv_err *err)
{
    store_term terms[] = { { "kind", "incident", 0 }, { "status", status, 0 } };
    return records_list(s, INCIDENT_TYPE, terms, status ? 2 : 1, by_opening_desc,
                        json_array_out, err);
}

/* ---- closing ---------------------------------------------------------------------------- */

int server_incident_close(mv_store *s, audit_trail *trail, const char *id,
                          const char *note, const char *by, const char *source,
                          char **json_out, mv_err *err)
{
    char *text = NULL;
    int64_t version = 0;
    if (server_incident_get(s, id, &text, &version, err) != 0)
        return -1;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "incident %s is not readable", id);
    const char *status = json_string_value(json_object_get(doc, "status"));
    int rc = 0;
    if (status && strcmp(status, "closed") == 0) {
        rc = mv_fail(err, MV_E_CONFLICT, "incident %s is already closed", id);
    } else {
        json_object_set_new(doc, "status", json_string("closed"));
        json_object_set_new(doc, "closed_by", json_string(by));
        set_time(doc, "closed_at", mv_now_us());
        if (note)
            json_object_set_new(doc, "note", json_string(note));
        rc = save(trail, doc, version, "incident.close", "closed", by, source, err);
    }
    if (rc == 0 && json_out)
        *json_out = json_text(doc);
    json_decref(doc);
    return rc;
}
