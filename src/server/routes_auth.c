/*
 * routes_auth.c -- /auth/login, /auth/logout, /auth/step-up, /api/whoami,
 * and the bearer check every other route starts with.
 *
 * Every way a login can fail answers the same 401 with the same words: which
 * part was wrong is for the audit trail, not for the caller.  Locked (423)
 * and throttled (429 + Retry-After) are said as such, because auth/ gives
 * them for existing and unknown usernames alike.
 */
#include "server_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../crypto/crypto.h"

static const char *bearer_token(const http_request *req)
{
    const char *h = http_header(req, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

static void deny_unauthenticated(call *c)
{
    http_response_header(c->res, "WWW-Authenticate", "Bearer realm=\"medvault\"");
    call_fail(c, 401, "login", "authentication required: a valid, unexpired "
              "bearer token");
}

int call_authenticate(call *c)
{
    if (c->authenticated)          /* a Bundle entry or an in-process request */
        return 0;
    const char *token = bearer_token(c->req);
    if (token == NULL) {
        deny_unauthenticated(c);
        return -1;
    }
    mv_err err;
    auth_result r = auth_check(c->srv->auth, token, c->req->source, &c->who, &err);
    if (r == AUTH_ERROR) {
        call_internal(c, &err);
        return -1;
    }
    if (r != AUTH_OK) {
        deny_unauthenticated(c);
        return -1;
    }
    c->authenticated = 1;
    snprintf(c->res->actor, sizeof c->res->actor, "user:%s", c->who.account.id);
    mv_hex_encode(c->who.session.token_hash, 8, c->session_ref);
    /* the detector's standing verdict; the step-up itself must get through */
    return call_gate(c, strcmp(c->req->path, "/auth/step-up") == 0) ? -1 : 0;
}

/* The answer for a refused login: one generic 401, or 423 / 429. */
static void login_refused(call *c, auth_result r, int64_t retry_after, const mv_err *err)
{
    char seconds[24];
    switch (r) {
    case AUTH_LOCKED:
        call_fail(c, 423, "security", "account locked; ask a security officer");
        return;
    case AUTH_THROTTLED:
        snprintf(seconds, sizeof seconds, "%lld", (long long)(retry_after > 0 ? retry_after : 1));
        http_response_header(c->res, "Retry-After", seconds);
        call_fail(c, 429, "throttled", "too many failed logins; retry later");
        return;
    case AUTH_ERROR:
        call_internal(c, err);
        return;
    default:
        call_fail(c, 401, "login", "invalid username, password or second factor");
        return;
    }
}

static json_t *user_json(const auth_account *a)
{
    return json_pack("{s:s, s:s}", "username", a->username, "role",
                     auth_role_name(a->role));
}

void route_login(call *c)
{
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    const char *username = json_str(body, "username");
    const char *password = json_str(body, "password");
    const char *totp = json_str(body, "totp");
    const char *recovery = json_str(body, "recovery_code");
    if (username == NULL || password == NULL || (totp == NULL) == (recovery == NULL)) {
        json_decref(body);
        call_fail(c, 400, "required", "login needs \"username\", \"password\" and "
                  "one of \"totp\" or \"recovery_code\"");
        return;
    }
    auth_login_request lr = {
        .username = username, .password = password,
        .password_len = json_string_length(json_object_get(body, "password")),
        .totp = totp, .recovery_code = recovery,
        .source = c->req->source, .request_id = c->req->request_id,
    };
    auth_session_info s;
    int64_t retry_after = 0;
    mv_err err;
    if (call_gate(c, 0)) {                 /* a source the detector blocked */
        json_decref(body);
        return;
    }
    auth_result r = auth_login(c->srv->auth, &lr, &s, &retry_after, &err);
    if (r != AUTH_ERROR && r != AUTH_THROTTLED)   /* a throttled try checked nothing */
        call_observe_login(c, username, r == AUTH_OK, &s);
    /* jansson holds the password in its own string: wipe it before freeing. */
    json_t *pw = json_object_get(body, "password");
    if (pw)
        crypto_wipe((void *)json_string_value(pw), json_string_length(pw));
    json_decref(body);
    if (r != AUTH_OK) {
        login_refused(c, r, retry_after, &err);
        return;
    }
    snprintf(c->res->actor, sizeof c->res->actor, "user:%s", s.account.id);
    call_reply_json(c, 200, json_pack("{s:s, s:I, s:o}", "token", s.token,
                                      "expires_in", (json_int_t)s.expires_in_s,
                                      "user", user_json(&s.account)));
    crypto_wipe(s.token, sizeof s.token);
}

void route_logout(call *c)
{
    const char *token = bearer_token(c->req);
    if (call_authenticate(c) != 0)
        return;
    mv_err err;
    auth_result r = auth_logout(c->srv->auth, token, c->req->source,
                                c->req->request_id, &err);
    if (r == AUTH_ERROR)
        call_internal(c, &err);
    else if (r != AUTH_OK)
        deny_unauthenticated(c);
    else
        c->res->status = 204;
}

void route_step_up(call *c)
{
    const char *token = bearer_token(c->req);
    if (call_authenticate(c) != 0)
        return;
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    const char *totp = json_str(body, "totp");
    if (totp == NULL) {
        json_decref(body);
        call_fail(c, 400, "required", "step-up needs \"totp\"");
        return;
    }
    mv_err err;
    auth_result r = auth_step_up(c->srv->auth, token, totp, c->req->source,
                                 c->req->request_id, &err);
    json_decref(body);
    if (r == AUTH_ERROR)
        call_internal(c, &err);
    else if (r != AUTH_OK)
        call_fail(c, 401, "login", "invalid second factor");
    else {
        call_observe(c, "auth.step-up", DETECT_GRANTED, NULL, NULL, 0, 0, 0);
        call_reply_json(c, 200, json_pack("{s:I}", "mfa_valid_for",
                        (json_int_t)(c->srv->cfg.auth.step_up_valid_us / 1000000)));
    }
}

void route_whoami(call *c)
{
    if (call_authenticate(c) != 0)
        return;
    const auth_account *a = &c->who.account;
    call_reply_json(c, 200, json_pack("{s:s, s:s, s:s, s:s, s:b}",
                                      "id", a->id, "username", a->username,
                                      "role", auth_role_name(a->role),
                                      "practitioner", a->practitioner,
                                      "mfa_fresh", auth_mfa_fresh(c->srv->auth, &c->who)));
}
