/*
 * alerts.c -- the record of what the detector raised, and of what the
 * security officer made of it.
 *
 * Why it exists: an alert must outlive the process that raised it, be
 * listed and worked by a security officer (API and CLI alike), and carry
 * its own history (who acknowledged it, who closed it and as what).  Each
 * alert is a sealed "_Alert" record under the system key -- its evidence
 * holds pseudonymous patient references, which are still worth sealing --
 * indexed by status and actor through the blind index, and every change
 * of status is a new version committed with its audit entry.
 *
 * The document (JSON): id, time, actor, source, detectors [..], score,
 * model_score, evidence {..}, explanation, response, status ("open",
 * "acknowledged", "closed"), resolution ("benign" | "incident", when
 * closed), acknowledged_by/at, closed_by/at, note.
 */
#include "server_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ALERT_TYPE "_Alert"

static int put_alert(store_txn *t, json_t *doc, int64_t if_version, mv_err *err)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *actor = json_string_value(json_object_get(doc, "actor"));
    char *body = json_text(doc);
    if (body == NULL || id == NULL || status == NULL)
        return free(body), mv_fail(err, MV_E_INVALID, "alert without id or status");
    const char *notify = json_string_value(json_object_get(doc, "notify"));
    store_term terms[] = { { "kind", "alert", 0 }, { "status", status, 0 },
                           { "actor", actor ? actor : "-", 0 },
                           { "notify", notify ? notify : "-", 0 } };
    store_write w = { .type = ALERT_TYPE, .id = id, .if_version = if_version, .body = body,
                      .body_len = strlen(body), .terms = terms, .n_terms = 4 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

typedef struct save_ctx {
    json_t *doc;
    int64_t if_version;
} save_ctx;

static int apply_save(store_txn *t, void *ctx, mv_err *err)
{
    save_ctx *sc = ctx;
    return put_alert(t, sc->doc, sc->if_version, err);
}

int server_alert_save(audit_trail *trail, const char *alert_json, mv_err *err)
{
    json_t *doc = json_loads(alert_json, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return mv_fail(err, MV_E_INVALID, "an alert is a JSON object");
    }
    json_object_set_new(doc, "status", json_string("open"));
    char ref[80];
    snprintf(ref, sizeof ref, "Alert/%.40s",
             json_string_value(json_object_get(doc, "id")) ?
             json_string_value(json_object_get(doc, "id")) : "-");
    audit_event ev = { .actor = "system:detect", .action = "detect.alert",
                       .outcome = json_string_value(json_object_get(doc, "response")),
                       .resources = ref,
                       .source = json_string_value(json_object_get(doc, "source")) };
    if (ev.outcome == NULL)
        ev.outcome = "alert";
    save_ctx sc = { doc, 0 };
    int rc = audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
    json_decref(doc);
    return rc;
}

int server_alert_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                     mv_err *err)
{
    return records_get(s, ALERT_TYPE, id, json_out, version, err);
}

/* Newest first by the alert's time. */
static int by_time_desc(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "time_us"));
    json_int_t ty = json_integer_value(json_object_get(y, "time_us"));
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

int server_alert_list(mv_store *s, const char *status, char **json_array_out, mv_err *err)
{
    store_term terms[] = { { "kind", "alert", 0 }, { "status", status, 0 } };
    return records_list(s, ALERT_TYPE, terms, status ? 2 : 1, by_time_desc, json_array_out, err);
}

/* The change a transition makes to the document; -1 when not allowed. */
static int transition(json_t *doc, const char *action, const char *resolution,
                      const char *note, const char *by, int64_t now, mv_err *err)
{
    const char *status = json_string_value(json_object_get(doc, "status"));
    char when[MV_TIME_STR_MAX];
    mv_time_format(now, when);
    if (status && strcmp(status, "closed") == 0)
        return mv_fail(err, MV_E_CONFLICT, "the alert is already closed");
    if (strcmp(action, "ack") == 0) {
        if (strcmp(status, "open") != 0)
            return mv_fail(err, MV_E_CONFLICT, "only an open alert is acknowledged");
        json_object_set_new(doc, "status", json_string("acknowledged"));
        json_object_set_new(doc, "acknowledged_by", json_string(by));
        json_object_set_new(doc, "acknowledged_at", json_string(when));
    } else if (strcmp(action, "close") == 0) {
        if (resolution == NULL ||
            (strcmp(resolution, "benign") != 0 && strcmp(resolution, "incident") != 0))
            return mv_fail(err, MV_E_INVALID, "close an alert as benign or as incident");
        json_object_set_new(doc, "status", json_string("closed"));
        json_object_set_new(doc, "resolution", json_string(resolution));
        json_object_set_new(doc, "closed_by", json_string(by));
        json_object_set_new(doc, "closed_at", json_string(when));
    } else {
        return mv_fail(err, MV_E_INVALID, "an alert is acknowledged (ack) or closed");
    }
    if (note)
        json_object_set_new(doc, "note", json_string(note));
    return 0;
}

int server_alert_transition(mv_store *s, audit_trail *trail, const char *id,
                            const char *action, const char *resolution, const char *note,
                            const char *by, const char *source, char **json_out,
                            mv_err *err)
{
    char *text = NULL;
    int64_t version = 0;
    if (server_alert_get(s, id, &text, &version, err) != 0)
        return -1;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "alert %s is not readable", id);
    if (transition(doc, action, resolution, note, by, mv_now_us(), err) != 0) {
        json_decref(doc);
        return -1;
    }
    /* Only a closing has a resolution: an ack carrying one says nothing more. */
    const char *as = strcmp(action, "close") == 0 ? resolution : NULL;
    char ref[80], outcome[64];
    snprintf(ref, sizeof ref, "Alert/%.40s", id);
    snprintf(outcome, sizeof outcome, "%s%s%s", json_string_value(json_object_get(doc, "status")),
             as ? ": " : "", as ? as : "");
    audit_event ev = { .actor = by, .action = "detect.alert.update", .outcome = outcome,
                       .resources = ref, .source = source };
    save_ctx sc = { doc, version };
    int rc = audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
    if (rc == 0 && json_out)
        *json_out = json_text(doc);
    json_decref(doc);
    return rc;
}

/* ---- Alerts stored by another process --------------------------------------------------
 * An alert the CLI stores (a privileged change by the local operator)
 * carries "notify": "pending"; the running server sends it to syslog and
 * the webhook on its next tick and records that it did ("sent"). */

static int mark_sent(audit_trail *trail, json_t *doc, int64_t version, mv_err *err)
{
    json_object_set_new(doc, "notify", json_string("sent"));
    char ref[80];
    snprintf(ref, sizeof ref, "Alert/%.40s", json_string_value(json_object_get(doc, "id")));
    audit_event ev = { .actor = "system:notify", .action = "detect.alert.notify",
                       .outcome = "success", .resources = ref };
    save_ctx sc = { doc, version };
    return audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
}

int alerts_notify_pending(server *srv, mv_err *err)
{
    store_term terms[] = { { "kind", "alert", 0 }, { "notify", "pending", 0 } };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(srv->store, ALERT_TYPE, terms, 2, &ids, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *text = NULL;
        int64_t version = 0;
        if (server_alert_get(srv->store, ids[i], &text, &version, err) != 0) {
            rc = -1;
            break;
        }
        json_t *doc = json_loads(text, 0, NULL);
        free(text);
        if (doc == NULL)
            continue;
        json_object_del(doc, "notify");
        json_t *raised = json_deep_copy(doc);      /* as raised: without its status */
        json_object_del(raised, "status");
        char *sent = raised ? json_text(raised) : NULL;
        json_decref(raised);
        if (mark_sent(srv->trail, doc, version, err) != 0)
            rc = err->code == MV_E_CONFLICT ? 0 : -1;   /* another process did */
        else if (sent)
            notifier_send(srv->notify, sent);
        free(sent);
        json_decref(doc);
    }
    store_ids_free(ids, n);
    return rc;
}
