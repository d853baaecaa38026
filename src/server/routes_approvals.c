/*
 * routes_approvals.c -- /api/approvals: the second person's worklist.
 *
 *   GET  /api/approvals[?status=pending|approved|refused|expired]  newest first
 *   GET  /api/approvals/{id}
 *   POST /api/approvals/{id}/approve   {"note"}    security, not the requester,
 *   POST /api/approvals/{id}/refuse    {"note"}    not involved (fresh 2FA)
 *
 * Why it exists: two-person control is only as good as the second person's
 * view of what they approve.  Admins and security officers see the list
 * (an admin follows their own requests); only a security officer decides,
 * and the rules of who may decide live in approvals.c, shared with the CLI.
 * The helpers the routes that open requests use live here too.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

int call_fresh_second_factor(call *c)
{
    if (auth_mfa_fresh(c->srv->auth, &c->who))
        return 1;
    http_response_header(c->res, "WWW-Authenticate",
                         "Bearer error=\"insufficient_user_authentication\", "
                         "error_description=\"step-up required\"");
    call_fail(c, 401, "security", "step-up required: POST /auth/step-up with a "
              "fresh TOTP code, then retry");
    return 0;
}

/* A burst of account creations and resets by one person is a signal of its
 * own: the admin minting readers, or taking over clinicians. */
static void watch_burst(call *c, const char *by)
{
    int limit = c->srv->cfg.privilege_burst;
    int n = server_approval_recent(c->srv->store, by, mv_now_us() - 3600 * 1000000LL);
    if (limit <= 0 || n <= limit || (n - limit - 1) % limit != 0)
        return;     /* once past the limit, then once per limit more */
    char words[300], *text = NULL;
    snprintf(words, sizeof words, "%s asked for %d account creations or credential "
             "resets within an hour (more than %d): minting many accounts, or taking "
             "over existing ones, is how one stolen administrator reads a hospital out.",
             c->who.account.username, n, limit);
    if (server_alert_privilege(c->srv->trail, by, c->req->source, "burst of account "
                               "changes", c->who.account.username, words, &text) == 0)
        notifier_send(c->srv->notify, text);
    free(text);
}

int call_request_approval(call *c, const char *kind, const char *target,
                          const char *target_name, const char *summary,
                          const char *params_json, char id[33])
{
    char by[AUTH_NAME_MAX + 8];
    snprintf(by, sizeof by, "user:%s", c->who.account.id);
    server_approval_new n = { .kind = kind, .target = target, .target_name = target_name,
                              .summary = summary, .params_json = params_json, .by = by,
                              .by_username = c->who.account.username,
                              .source = c->req->source, .ttl_us = c->srv->cfg.approval_ttl_us };
    mv_err err;
    if (server_approval_open(c->srv->trail, &n, id, &err) != 0) {
        call_fail_err(c, &err);
        return -1;
    }
    if (strncmp(kind, "account.", 8) == 0 && strcmp(kind, "account.unlock") != 0)
        watch_burst(c, by);
    return 0;
}

void call_reply_pending(call *c, const char *id, json_t *extra)
{
    char *text = NULL;
    json_t *approval = NULL;
    if (server_approval_get(c->srv->store, id, &text, NULL, NULL) == 0)
        approval = json_loads(text, 0, NULL);
    free(text);
    json_t *doc = extra ? extra : json_object();
    json_object_set_new(doc, "status", json_string("pending-approval"));
    json_object_set_new(doc, "approval", approval ? approval : json_pack("{s:s}", "id", id));
    char location[80];
    snprintf(location, sizeof location, "/api/approvals/%s", id);
    http_response_header(c->res, "Location", location);
    call_reply_json(c, 202, doc);
}

/* ---- The routes ------------------------------------------------------------------------------ */

static void list_approvals(call *c)
{
    static const char *const statuses[] = { "pending", "approved", "refused", "expired",
                                            NULL };
    const char *status;
    char *text = NULL;
    mv_err err;
    if (call_status_query(c, statuses, &status) != 0)
        return;
    if (server_approval_list(c->srv->store, status, &text, &err) != 0)
        call_fail_err(c, &err);
    else
        call_reply_list(c, "approvals", text);
}

static void show_approval(call *c, const char *id)
{
    char *text = NULL;
    mv_err err;
    if (server_approval_get(c->srv->store, id, &text, NULL, &err) != 0) {
        call_fail_err(c, &err);
        return;
    }
    call_reply_text(c, 200, text);
    free(text);
}

static void decide(call *c, const char *id, int approve)
{
    if (c->who.account.role != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "a security officer approves or refuses");
        return;
    }
    if (!call_fresh_second_factor(c))
        return;
    json_t *body = c->req->body_len ? call_json_body(c) : json_object();
    if (body == NULL)
        return;
    char by[AUTH_NAME_MAX + 8], *text = NULL;
    snprintf(by, sizeof by, "user:%s", c->who.account.id);
    server_approval_env env = { .store = c->srv->store, .trail = c->srv->trail,
                                .auth = c->srv->auth, .decider = &c->who.account,
                                .by = by, .source = c->req->source };
    mv_err err;
    int rc = server_approval_decide(&env, id, approve, json_str(body, "note"), &text, &err);
    json_decref(body);
    if (rc != 0) {
        call_fail_err(c, &err);
        return;
    }
    call_reply_text(c, 200, text);
    free(text);
}

void route_approvals(call *c, const char *rest)
{
    if (call_authenticate(c) != 0)
        return;
    auth_role r = c->who.account.role;
    if (r != AUTH_ROLE_SECURITY && r != AUTH_ROLE_ADMIN) {
        call_fail(c, 403, "forbidden", "approvals are for administrators and security "
                  "officers");
        return;
    }
    const char *m = c->req->method;
    char id[40] = "", action[16] = "";
    if (*rest == '/') {
        size_t n = strcspn(rest + 1, "/");
        if (n == 0 || n >= sizeof id) {
            call_fail(c, 404, "not-found", "no such approval request");
            return;
        }
        memcpy(id, rest + 1, n);
        const char *after = rest + 1 + n;
        if (*after == '/')
            snprintf(action, sizeof action, "%.15s", after + 1);
    }
    if (id[0] == '\0' && strcmp(m, "GET") == 0)
        list_approvals(c);
    else if (id[0] && action[0] == '\0' && strcmp(m, "GET") == 0)
        show_approval(c, id);
    else if (id[0] && strcmp(m, "POST") == 0 && strcmp(action, "approve") == 0)
        decide(c, id, 1);
    else if (id[0] && strcmp(m, "POST") == 0 && strcmp(action, "refuse") == 0)
        decide(c, id, 0);
    else
        call_fail(c, 405, "not-supported", "GET /api/approvals[/ID], POST "
                  "/api/approvals/ID/approve|refuse");
}
