/*
 * routes_incidents.c -- /api/incidents: the breach register over the API.
 *
 *   GET  /api/incidents[?status=open|closed]     newest first
 *   GET  /api/incidents/{id}
 *   POST /api/incidents        {"actor"|"alert"|"kind", "summary", "block_sources"}
 *                              records the incident and contains the account
 *   POST /api/incidents/{id}/close   {"note"}
 *
 * Why only security: an incident names an account, its addresses and what
 * it reached, and opening one locks that account; it is the security
 * officer's to work (an admin could be the actor).  Every change is audited
 * by server_incident_open / server_incident_close.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

static void list_incidents(call *c)
{
    static const char *const statuses[] = { "open", "closed", NULL };
    const char *status;
    char *text = NULL;
    mv_err err;
    if (call_status_query(c, statuses, &status) != 0)
        return;
    if (server_incident_list(c->srv->store, status, &text, &err) != 0)
        call_fail_err(c, &err);
    else
        call_reply_list(c, "incidents", text);
}

static void show_incident(call *c, const char *id)
{
    char *text = NULL;
    mv_err err;
    if (server_incident_get(c->srv->store, id, &text, NULL, &err) != 0) {
        call_fail_err(c, &err);
        return;
    }
    call_reply_text(c, 200, text);
    free(text);
}

static void open_incident(call *c)
{
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    server_incident_spec spec = { .actor = json_str(body, "actor"),
                                  .alert = json_str(body, "alert"),
                                  .summary = json_str(body, "summary"),
                                  .kind = json_str(body, "kind"),
                                  .block_sources = json_is_true(json_object_get(body,
                                                                "block_sources")) };
    char by[120], *text = NULL;
    snprintf(by, sizeof by, "user:%s", c->who.account.id);
    mv_err err;
    int rc = server_incident_open(c->srv->store, c->srv->trail, c->srv->auth, &spec, by,
                                  c->req->source, &text, &err);
    json_decref(body);
    if (rc != 0)
        call_fail_err(c, &err);
    else
        call_reply_text(c, 201, text);
    free(text);
}

static void close_incident(call *c, const char *id)
{
    json_t *body = c->req->body_len ? call_json_body(c) : json_object();
    if (body == NULL)
        return;
    char by[120], *text = NULL;
    snprintf(by, sizeof by, "user:%s", c->who.account.id);
    mv_err err;
    int rc = server_incident_close(c->srv->store, c->srv->trail, id, json_str(body, "note"),
                                   by, c->req->source, &text, &err);
    json_decref(body);
    if (rc != 0)
        call_fail_err(c, &err);
    else
        call_reply_text(c, 200, text);
    free(text);
}

void route_incidents(call *c, const char *rest)
{
    if (call_authenticate(c) != 0)
        return;
    if (c->who.account.role != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "incidents are for security officers");
        return;
    }
    const char *m = c->req->method;
    char id[64] = "", action[16] = "";
    if (*rest == '/') {
        size_t n = strcspn(rest + 1, "/");
        if (n == 0 || n >= sizeof id) {
            call_fail(c, 404, "not-found", "no such incident");
            return;
        }
        memcpy(id, rest + 1, n);
        const char *after = rest + 1 + n;
        if (*after == '/')
            snprintf(action, sizeof action, "%.15s", after + 1);
    }
    if (id[0] == '\0' && strcmp(m, "GET") == 0)
        list_incidents(c);
    else if (id[0] == '\0' && strcmp(m, "POST") == 0)
        open_incident(c);
    else if (id[0] && action[0] == '\0' && strcmp(m, "GET") == 0)
        show_incident(c, id);
    else if (id[0] && strcmp(m, "POST") == 0 && strcmp(action, "close") == 0)
        close_incident(c, id);
    else
        call_fail(c, 405, "not-supported", "GET /api/incidents[/ID], POST /api/incidents, "
                  "POST /api/incidents/ID/close");
}
