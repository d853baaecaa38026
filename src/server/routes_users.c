/*
 * routes_users.c -- /api/users: account management over the API, the same
 * operations `medvault user` offers on the command line.
 *
 * Who may do what: admin manages accounts; security may read them and
 * contain one (lock, unlock, revoke its sessions) but not create or reset;
 * nobody else touches this API.  Creating an account or resetting a
 * credential needs a fresh second factor (login or /auth/step-up within the
 * configured window), and takes effect only when a security officer
 * approves it (two-person control, approvals.c): the answer is 202 with
 * the pending request.  Unlocking an account the detector contained is a
 * request too.  A stolen admin alone mints nothing that can read.
 */
#include "server_internal.h"

#include <stdio.h>
#include <string.h>

#include "../crypto/crypto.h"

enum { NEED_ADMIN = 1, NEED_ADMIN_OR_SECURITY = 2 };

static int permitted(call *c, int need)
{
    auth_role r = c->who.account.role;
    int ok = r == AUTH_ROLE_ADMIN ||
             (need == NEED_ADMIN_OR_SECURITY && r == AUTH_ROLE_SECURITY);
    if (!ok)
        call_fail(c, 403, "forbidden", need == NEED_ADMIN
                  ? "only an admin account may do this"
                  : "only an admin or security account may do this");
    return ok;
}

static json_t *account_json(const auth_account *a)
{
    char created[MV_TIME_STR_MAX], closed[MV_TIME_STR_MAX] = "";
    mv_time_format(a->created_us, created);
    if (a->password_locked_until_us > mv_now_us())
        mv_time_format(a->password_locked_until_us, closed);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:i, s:s, s:i, s:s, "
                     "s:s, s:s, s:[s, s]}",
                     "id", a->id, "username", a->username,
                     "role", auth_role_name(a->role),
                     "practitioner", a->practitioner, "patient", a->patient,
                     "department", a->department,
                     "scopes", a->scopes, "locked", a->locked,
                     "lock_reason", a->lock_reason,
                     "failed_logins", a->failed_logins,
                     "password_locked_until", closed,
                     "recovery_codes_left", a->recovery_left,
                     "created", created,
                     "pending", a->pending, "pending_request", a->pending_request,
                     "lineage", a->lineage[0], a->lineage[1]);
}

static json_t *enrollment_json(const char *username, const auth_enrollment *e)
{
    json_t *codes = json_array();
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++)
        json_array_append_new(codes, json_string(e->recovery[i]));
    return json_pack("{s:s, s:s, s:s, s:o}", "username", username,
                     "otpauth_uri", e->otpauth_uri, "secret", e->secret_b32,
                     "recovery_codes", codes);
}

static void wipe_password_member(json_t *body)
{
    json_t *pw = json_object_get(body, "password");
    if (pw)
        crypto_wipe((void *)json_string_value(pw), json_string_length(pw));
}

static void list_users(call *c)
{
    if (!permitted(c, NEED_ADMIN_OR_SECURITY))
        return;
    auth_account *v = NULL;
    size_t n = 0;
    mv_err err;
    if (auth_account_list(c->srv->auth, &v, &n, &err) != 0) {
        call_fail_err(c, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, account_json(&v[i]));
    free(v);
    call_reply_json(c, 200, json_pack("{s:o}", "users", arr));
}

static void create_user(call *c)
{
    if (!permitted(c, NEED_ADMIN) || !call_fresh_second_factor(c))
        return;
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    auth_new_account spec = {
        .username = json_str(body, "username"),
        .practitioner = json_str(body, "practitioner"),
        .patient = json_str(body, "patient"),
        .scopes = json_str(body, "scopes"),
        .department = json_str(body, "department"),
    };
    const char *role = json_str(body, "role"), *password = json_str(body, "password");
    mv_err err;
    if (spec.username == NULL || role == NULL || password == NULL) {
        call_fail(c, 400, "required", "a new user needs \"username\", \"role\" and "
                  "\"password\"");
    } else if (auth_role_parse(role, &spec.role) != 0) {
        call_fail(c, 400, "invalid", "unknown role (clinician, nurse, admin, "
                  "security, patient or service)");
    } else {
        /* Two-person control: the account exists, inert, until a security
         * officer approves it; its enrollment is shown now, once. */
        auth_enrollment e;
        char id[33] = "", summary[AUTH_SCOPES_MAX + 400];
        crypto_random_id(id);
        spec.pending_request = id;
        snprintf(summary, sizeof summary, "create the %s account %s%s%s%s%s%s%s%s%s",
                 role, spec.username,
                 spec.practitioner ? ", Practitioner/" : "", spec.practitioner ? spec.practitioner : "",
                 spec.patient ? ", Patient/" : "", spec.patient ? spec.patient : "",
                 spec.scopes ? ", scopes " : "", spec.scopes ? spec.scopes : "",
                 spec.department ? ", department " : "",
                 spec.department ? spec.department : "");
        auth_account made;
        if (auth_account_create(c->srv->auth, &spec, password,
                                json_string_length(json_object_get(body, "password")),
                                c->res->actor, &e, &err) != 0)
            call_fail_err(c, &err);
        else if (auth_account_get(c->srv->auth, spec.username, &made, &err) != 0)
            call_fail_err(c, &err);
        else if (call_request_approval(c, "account.create", made.id, made.username,
                                       summary, NULL, id) == 0)
            call_reply_pending(c, id, enrollment_json(made.username, &e));
        crypto_wipe(&e, sizeof e);
    }
    wipe_password_member(body);
    json_decref(body);
}

static void show_user(call *c, const char *name)
{
    if (!permitted(c, NEED_ADMIN_OR_SECURITY))
        return;
    auth_account a;
    mv_err err;
    if (auth_account_get(c->srv->auth, name, &a, &err) != 0)
        call_fail_err(c, &err);
    else
        call_reply_json(c, 200, account_json(&a));
}

/* The account a request names, with "reset-password of nurse gina" words. */
static int target_account(call *c, const char *name, const char *change,
                          auth_account *a, char *summary, size_t cap)
{
    mv_err err;
    if (auth_account_get(c->srv->auth, name, a, &err) != 0) {
        call_fail_err(c, &err);
        return -1;
    }
    snprintf(summary, cap, "%s of the %s account %s", change, auth_role_name(a->role),
             a->username);
    return 0;
}

/* The new password is held aside until a security officer approves. */
static void reset_password(call *c, const char *name)
{
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    const char *password = json_str(body, "password");
    char id[33] = "", summary[200];
    auth_account a;
    mv_err err;
    crypto_random_id(id);
    if (password == NULL)
        call_fail(c, 400, "required", "reset-password needs \"password\"");
    else if (target_account(c, name, "reset the password", &a, summary, sizeof summary) != 0)
        ;
    else if (auth_account_propose_password(c->srv->auth, a.username, password,
                                           json_string_length(json_object_get(body, "password")),
                                           id, c->res->actor, &err) != 0)
        call_fail_err(c, &err);
    else if (call_request_approval(c, "account.reset-password", a.id, a.username,
                                   summary, NULL, id) == 0)
        call_reply_pending(c, id, json_pack("{s:s}", "username", a.username));
    wipe_password_member(body);
    json_decref(body);
}

/* The new second factor is shown now and works once approved. */
static void reset_mfa(call *c, const char *name)
{
    auth_enrollment e;
    char id[33] = "", summary[200];
    auth_account a;
    mv_err err;
    memset(&e, 0, sizeof e);
    crypto_random_id(id);
    if (target_account(c, name, "reset the second factor", &a, summary, sizeof summary) != 0)
        ;
    else if (auth_account_propose_mfa(c->srv->auth, a.username, id, c->res->actor, &e,
                                      &err) != 0)
        call_fail_err(c, &err);
    else if (call_request_approval(c, "account.reset-mfa", a.id, a.username, summary,
                                   NULL, id) == 0)
        call_reply_pending(c, id, enrollment_json(a.username, &e));
    crypto_wipe(&e, sizeof e);
}

/* An account the detector contained is unlocked by two security officers:
 * one asks, after reviewing the alert, and a second one approves.  An
 * administrator could be the one whose account was stolen, or the insider.
 * 1 after answering (403, or 202 with the request). */
static int contained_by_detector(call *c, const char *name)
{
    auth_account a;
    if (auth_account_get(c->srv->auth, name, &a, NULL) != 0 || !a.locked ||
        strncmp(a.lock_reason, "contained by the detector", 25) != 0)
        return 0;
    if (c->who.account.role != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "this account was contained by the detector: only "
                  "a security officer asks to unlock it, after reviewing the alert");
        return 1;
    }
    char id[33] = "", summary[300];
    snprintf(summary, sizeof summary, "unlock the %s account %s (%s)",
             auth_role_name(a.role), a.username, a.lock_reason);
    if (call_fresh_second_factor(c) &&
        call_request_approval(c, "account.unlock", a.id, a.username, summary, NULL, id) == 0)
        call_reply_pending(c, id, json_pack("{s:s}", "username", a.username));
    return 1;
}

static void user_action(call *c, const char *name, const char *action)
{
    if (route_declarations(c, name, action))
        return;
    mv_err err;
    int rc = 0;
    size_t n = 0;
    if (strcmp(action, "lock") == 0 || strcmp(action, "unlock") == 0 ||
        strcmp(action, "revoke-sessions") == 0) {
        if (!permitted(c, NEED_ADMIN_OR_SECURITY))
            return;
        if (action[0] == 'l')
            rc = auth_account_lock(c->srv->auth, name, "locked by an administrator",
                                   c->res->actor, &err);
        else if (action[0] == 'u' && contained_by_detector(c, name))
            return;
        else if (action[0] == 'u')
            rc = auth_account_unlock(c->srv->auth, name, c->res->actor, &err);
        else
            rc = auth_account_revoke_sessions(c->srv->auth, name, c->res->actor, &n, &err);
        if (rc != 0)
            call_fail_err(c, &err);
        else if (action[0] == 'r')
            call_reply_json(c, 200, json_pack("{s:I}", "revoked", (json_int_t)n));
        else
            c->res->status = 204;
        return;
    }
    if (strcmp(action, "reset-password") != 0 && strcmp(action, "reset-mfa") != 0) {
        call_fail(c, 404, "not-found", "unknown user action");
        return;
    }
    if (!permitted(c, NEED_ADMIN) || !call_fresh_second_factor(c))
        return;
    if (strcmp(action, "reset-password") == 0)
        reset_password(c, name);
    else
        reset_mfa(c, name);
}

void route_users(call *c, const char *rest)
{
    if (call_authenticate(c) != 0)
        return;
    const char *method = c->req->method;
    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        if (strcmp(method, "GET") == 0)
            list_users(c);
        else if (strcmp(method, "POST") == 0)
            create_user(c);
        else
            call_fail(c, 405, "not-supported", "use GET or POST on /api/users");
        return;
    }
    char name[AUTH_NAME_MAX], action[32] = "";
    const char *p = rest + 1, *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || len >= sizeof name ||
        (slash && strlen(slash + 1) >= sizeof action)) {
        call_fail(c, 404, "not-found", "no such user path");
        return;
    }
    memcpy(name, p, len);
    name[len] = '\0';
    if (slash)
        snprintf(action, sizeof action, "%s", slash + 1);
    if (action[0] == '\0' && strcmp(method, "GET") == 0)
        show_user(c, name);
    else if (action[0] != '\0' && strcmp(method, "POST") == 0)
        user_action(c, name, action);
    else
        call_fail(c, 405, "not-supported", "use GET /api/users/NAME or "
                  "POST /api/users/NAME/ACTION");
}
