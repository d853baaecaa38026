/*
 * routes_alerts.c -- /api/alerts: the security officer's worklist.
 *
 *   GET  /api/alerts[?status=open|acknowledged|closed]   newest first
 *   GET  /api/alerts/{id}
 *   POST /api/alerts/{id}/ack
 *   POST /api/alerts/{id}/close   {"resolution":"benign"|"incident","note":...}
 *
 * Why only security: an alert names who did what to how many patients; it
 * is the security officer's to work (separation of duties: an admin could
 * be the actor).  Every change is audited (server_alert_transition).
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

static void reply_text_json(call *c, int status, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (doc == NULL)
        call_fail(c, 500, "exception", "an alert could not be read");
    else
        call_reply_json(c, status, doc);
}

static void list_alerts(call *c)
{
    const char *status = http_query(c->req, "status");
    if (status && strcmp(status, "open") != 0 && strcmp(status, "acknowledged") != 0 &&
        strcmp(status, "closed") != 0) {
        call_fail(c, 400, "invalid", "status is open, acknowledged or closed");
        return;
    }
    char *text = NULL;
    mv_err err;
    if (server_alert_list(c->srv->store, status, &text, &err) != 0) {
        call_fail_err(c, &err);
        return;
    }
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    call_reply_json(c, 200, json_pack("{s:I, s:o}", "total",
                                      (json_int_t)json_array_size(arr), "alerts",
                                      arr ? arr : json_array()));
}

static void show_alert(call *c, const char *id)
{
    char *text = NULL;
    mv_err err;
    if (server_alert_get(c->srv->store, id, &text, NULL, &err) != 0) {
        if (err.code == MV_E_NOTFOUND)
            call_fail(c, 404, "not-found", "no such alert");
        else
            call_fail_err(c, &err);
        return;
    }
    reply_text_json(c, 200, text);
    free(text);
}

static void change_alert(call *c, const char *id, const char *action)
{
    json_t *body = c->req->body_len ? call_json_body(c) : json_object();
    if (body == NULL)
        return;
    char by[120], *text = NULL;
    snprintf(by, sizeof by, "user:%s", c->who.account.id);
    mv_err err;
    int rc = server_alert_transition(c->srv->store, c->srv->trail, id, action,
                                     json_str(body, "resolution"), json_str(body, "note"),
                                     by, c->req->source, &text, &err);
    json_decref(body);
    if (rc != 0) {
        call_fail_err(c, &err);     /* 404, 409 or 400 with the reason */
        return;
    }
    reply_text_json(c, 200, text);
    free(text);
}

void route_alerts(call *c, const char *rest)
{
    if (call_authenticate(c) != 0)
        return;
    if (c->who.account.role != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "alerts are for security officers");
        return;
    }
    const char *m = c->req->method;
    char id[DETECT_ALERT_ID_MAX] = "", action[16] = "";
    if (*rest == '/') {
        size_t n = strcspn(rest + 1, "/");
        if (n == 0 || n >= sizeof id) {
            call_fail(c, 404, "not-found", "no such alert");
            return;
        }
        memcpy(id, rest + 1, n);
        const char *after = rest + 1 + n;
        if (*after == '/')
            snprintf(action, sizeof action, "%.15s", after + 1);
    }
    if (id[0] == '\0' && strcmp(m, "GET") == 0)
        list_alerts(c);
    else if (id[0] && action[0] == '\0' && strcmp(m, "GET") == 0)
        show_alert(c, id);
    else if (id[0] && strcmp(m, "POST") == 0 &&
             (strcmp(action, "ack") == 0 || strcmp(action, "close") == 0))
        change_alert(c, id, action);
    else
        call_fail(c, 405, "not-supported", "GET /api/alerts[/ID], POST "
                  "/api/alerts/ID/ack|close");
}
