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
 * be the actor).  Every change is audited (server_alert_transition).  A
 * security officer involved in an alert (it is about them, or about an
 * account of their making or approval, or one that made them) asks a
 * second one to close it: 202 with the request (approvals.c).
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

static void list_alerts(call *c)
{
    static const char *const statuses[] = { "open", "acknowledged", "closed", NULL };
    const char *status;
    char *text = NULL;
    mv_err err;
    if (call_status_query(c, statuses, &status) != 0)
        return;
    if (server_alert_list(c->srv->store, status, &text, &err) != 0)
        call_fail_err(c, &err);
    else
        call_reply_list(c, "alerts", text);
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
    call_reply_text(c, 200, text);
    free(text);
}

/* Closing an alert about oneself, or about an account one created, reset
 * or approved (or that did so for oneself), is a request a second security
 * officer approves.  1 after answering (202, or an error). */
static int close_needs_second_person(call *c, const char *id, json_t *body)
{
    char *text = NULL;
    if (server_alert_get(c->srv->store, id, &text, NULL, NULL) != 0)
        return 0;                      /* the transition answers 404 */
    int involved = server_alert_involves(c->srv->auth, text, &c->who.account);
    free(text);
    if (!involved)
        return 0;
    const char *as = json_str(body, "resolution");
    if (as == NULL || (strcmp(as, "benign") != 0 && strcmp(as, "incident") != 0)) {
        call_fail(c, 400, "invalid", "close an alert as benign or as incident");
        return 1;
    }
    json_t *params = json_pack("{s:s, s:s}", "resolution", as, "note",
                               json_str(body, "note") ? json_str(body, "note") : "");
    char *ptext = json_text(params), summary[120], rid[33] = "";
    json_decref(params);
    snprintf(summary, sizeof summary, "close alert %s as %s", id, as);
    if (call_fresh_second_factor(c) &&
        call_request_approval(c, "alert.close", id, id, summary, ptext, rid) == 0)
        call_reply_pending(c, rid, NULL);
    free(ptext);
    return 1;
}

static void change_alert(call *c, const char *id, const char *action)
{
    json_t *body = c->req->body_len ? call_json_body(c) : json_object();
    if (body == NULL)
        return;
    if (strcmp(action, "close") == 0 && close_needs_second_person(c, id, body)) {
        json_decref(body);
        return;
    }
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
    call_reply_text(c, 200, text);
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
