/*
 * approvals.c -- two-person control of privilege: a change that gives
 * someone clinical reach or power over the controls is a request until a
 * second person approves it.
 *
 * Why it exists: the 2024 breach began with one privileged account's
 * credentials.  With them alone an administrator could mint readers, reset
 * a clinician's password and second factor and log in as them, or mint a
 * security officer to close the alerts.  Here each of those is a request
 * ("_Approval", a sealed system record, committed with its audit entry):
 *
 *   account.create           an account of any role but a scope-less service
 *   account.reset-password   the new password is held aside on the account
 *   account.reset-mfa        the new second factor is held aside
 *   account.unlock           an account the detector contained
 *   alert.close              an alert about oneself, or about an account
 *                            one created, reset or approved (or that did so
 *                            for oneself)
 *
 * and it takes effect only when a security officer who is not the requester
 * and not involved with the account (not the account, not in its lineage,
 * not of its making) approves it.  Requests expire (approval_ttl, 24 h by
 * default); the request, the approval, the refusal and the expiry are each
 * audited.  The local operator (`medvault approvals approve`, holder of the
 * key file) may decide alone, and every time that raises an alert.
 *
 * The document (JSON): id, kind, target (account or alert id), target_name
 * (username or alert id), summary, params {} (alert.close: resolution,
 * note), requested_by (actor), requested_by_username, requested_at(_us),
 * expires_at(_us), approver_role ("security"), status ("pending",
 * "approved", "refused", "expired"), decided_by, decided_by_username,
 * decided_at, note.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../crypto/crypto.h"

#define APPROVAL_TYPE "_Approval"

/* ---- The register ----------------------------------------------------------------------- */

typedef struct put_ctx {
    json_t *doc;
    int64_t if_version;
} put_ctx;

static int apply_put(store_txn *t, void *ctx, mv_err *err)
{
    put_ctx *pc = ctx;
    const char *id = json_string_value(json_object_get(pc->doc, "id"));
    const char *status = json_string_value(json_object_get(pc->doc, "status"));
    char *body = json_text(pc->doc);
    if (body == NULL || id == NULL || status == NULL)
        return free(body), mv_fail(err, MV_E_INVALID, "an approval without id or status");
    const char *by = json_string_value(json_object_get(pc->doc, "requested_by"));
    store_term terms[] = { { "kind", "approval", 0 }, { "status", status, 0 },
                           { "by", by ? by : "-", 0 } };
    store_write w = { .type = APPROVAL_TYPE, .id = id, .if_version = pc->if_version,
                      .body = body, .body_len = strlen(body), .terms = terms, .n_terms = 3 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

/* Store doc (a new version of it when if_version > 0) with its audit entry. */
static int save(audit_trail *t, json_t *doc, int64_t if_version, const char *actor,
                const char *action, const char *outcome, const char *source, mv_err *err)
{
    char ref[80];
    snprintf(ref, sizeof ref, "Approval/%.40s",
             json_string_value(json_object_get(doc, "id")));
    audit_event ev = { .actor = actor, .action = action, .outcome = outcome,
                       .resources = ref, .source = source };
    put_ctx pc = { doc, if_version };
    return audit_record(t, &ev, 1, apply_put, &pc, NULL, err);
}

int server_approval_open(audit_trail *t, const server_approval_new *n, char id[33],
                         mv_err *err)
{
    if (n->kind == NULL || n->target == NULL || n->by == NULL || n->ttl_us <= 0)
        return mv_fail(err, MV_E_INVALID, "an approval request needs kind, target, "
                       "requester and a lifetime");
    int64_t now = mv_now_us(), until = now + n->ttl_us;
    char at[MV_TIME_STR_MAX], exp[MV_TIME_STR_MAX];
    mv_time_format(now, at);
    mv_time_format(until, exp);
    if (id[0] == '\0')
        crypto_random_id(id);
    json_t *params = n->params_json ? json_loads(n->params_json, 0, NULL) : NULL;
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:s, s:I, "
                            "s:s, s:s}",
                            "id", id, "kind", n->kind, "target", n->target,
                            "target_name", n->target_name ? n->target_name : n->target,
                            "summary", n->summary ? n->summary : n->kind,
                            "params", params ? params : json_object(),
                            "requested_by", n->by,
                            "requested_by_username", n->by_username ? n->by_username : "",
                            "requested_at", at, "requested_at_us", (json_int_t)now,
                            "expires_at", exp, "expires_at_us", (json_int_t)until,
                            "approver_role", "security", "status", "pending");
    if (doc == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = save(t, doc, 0, n->by, "approval.request", "pending", n->source, err);
    json_decref(doc);
    return rc;
}

static int by_time_desc(const void *a, const void *b);
#define by_time_desc_fwd by_time_desc

int server_approval_recent(mv_store *s, const char *by, int64_t since_us)
{
    store_term terms[] = { { "kind", "approval", 0 }, { "by", by, 0 } };
    char *text = NULL;
    if (records_list(s, APPROVAL_TYPE, terms, 2, by_time_desc_fwd, &text, NULL) != 0)
        return 0;
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    int n = 0;
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        const char *kind = json_string_value(json_object_get(d, "kind"));
        if (json_integer_value(json_object_get(d, "requested_at_us")) >= since_us &&
            kind && strncmp(kind, "account.", 8) == 0 && strcmp(kind, "account.unlock") != 0)
            n++;
    }
    json_decref(arr);
    return n;
}

int server_approval_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                        mv_err *err)
{
    if (records_get(s, APPROVAL_TYPE, id, json_out, version, err) != 0) {
        if (err && err->code == MV_E_NOTFOUND)
            mv_fail(err, MV_E_NOTFOUND, "no approval request %s", id);
        return -1;
    }
    return 0;
}

/* Newest first. */
static int by_time_desc(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "requested_at_us"));
    json_int_t ty = json_integer_value(json_object_get(y, "requested_at_us"));
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

int server_approval_list(mv_store *s, const char *status, char **json_array_out,
                         mv_err *err)
{
    store_term terms[] = { { "kind", "approval", 0 }, { "status", status, 0 } };
    return records_list(s, APPROVAL_TYPE, terms, status ? 2 : 1, by_time_desc,
                        json_array_out, err);
}

/* ---- Who is involved --------------------------------------------------------------------- */

static void actor_of(const char *account_id, char out[AUTH_NAME_MAX + 8])
{
    snprintf(out, AUTH_NAME_MAX + 8, "user:%s", account_id);
}

int server_account_involved(auth *au, const char *subject_id, const auth_account *who)
{
    if (subject_id == NULL || subject_id[0] == '\0')
        return 0;
    if (strcmp(subject_id, who->id) == 0)
        return 1;
    char subject[AUTH_NAME_MAX + 8], me[AUTH_NAME_MAX + 8];
    actor_of(subject_id, subject);
    actor_of(who->id, me);
    if (auth_account_lineage_has(who, subject))
        return 1;                          /* it made me, or approved me */
    auth_account s;
    return auth_account_get_id(au, subject_id, &s, NULL) == 0 &&
           auth_account_lineage_has(&s, me);   /* I made it, or approved it */
}

int server_alert_involves(auth *au, const char *alert_json, const auth_account *who)
{
    json_t *doc = json_loads(alert_json, 0, NULL);
    const char *actor = json_string_value(json_object_get(doc, "actor"));
    const char *via = json_string_value(json_object_get(doc, "via_account"));
    int involved = 0;
    if (actor && strncmp(actor, SERVER_LINEAGE_PREFIX, strlen(SERVER_LINEAGE_PREFIX)) == 0)
        actor += strlen(SERVER_LINEAGE_PREFIX);
    if (actor && strncmp(actor, "user:", 5) == 0)
        actor += 5;
    if (actor)
        involved = server_account_involved(au, actor, who);
    /* a lineage's alert: the account whose read raised it, too */
    if (!involved && via)
        involved = server_account_involved(au, via, who);
    json_decref(doc);
    return involved;
}

/* ---- Deciding ----------------------------------------------------------------------------- */

/* Why decider may not decide doc; NULL when it may. */
static const char *not_eligible(const server_approval_env *env, json_t *doc)
{
    auth *au = env->auth;
    const auth_account *decider = env->decider;
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *requester = json_string_value(json_object_get(doc, "requested_by"));
    const char *target = json_string_value(json_object_get(doc, "target"));
    char me[AUTH_NAME_MAX + 8];
    actor_of(decider->id, me);
    if (decider->role != AUTH_ROLE_SECURITY)
        return "a security officer approves or refuses";
    if (requester && strcmp(requester, me) == 0)
        return "a second person decides: not the one who asked";
    if (kind && strncmp(kind, "account.", 8) == 0 &&
        server_account_involved(au, target, decider))
        return "you are involved with this account (it is yours, or of your "
               "making, or it made or approved you): another security officer decides";
    if (kind && strcmp(kind, "alert.close") == 0) {
        char *alert = NULL;
        int involved = server_alert_get(env->store, target, &alert, NULL, NULL) == 0 &&
                       server_alert_involves(au, alert, decider);
        free(alert);
        if (involved)
            return "you are involved in this alert: another security officer decides";
    }
    return NULL;
}

/* What approving does. */
static int put_into_effect(const server_approval_env *env, json_t *doc, const char *by,
                           mv_err *err)
{
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *target = json_string_value(json_object_get(doc, "target"));
    const char *name = json_string_value(json_object_get(doc, "target_name"));
    const char *requester = json_string_value(json_object_get(doc, "requested_by"));
    if (strcmp(kind, "account.unlock") == 0)
        return auth_account_unlock(env->auth, name, by, err);
    if (strncmp(kind, "account.", 8) == 0)
        return auth_account_settle(env->auth, name, id, 1, by, err);
    if (strcmp(kind, "alert.close") == 0) {
        json_t *p = json_object_get(doc, "params");
        char note[600];
        snprintf(note, sizeof note, "%s (approved by %s, request %s)",
                 json_str(p, "note") ? json_str(p, "note") : "", by, id);
        return server_alert_transition(env->store, env->trail, target, "close",
                                       json_str(p, "resolution"), note, requester,
                                       env->source, NULL, err);
    }
    return mv_fail(err, MV_E_INTEGRITY, "approval %s has an unknown kind", id);
}

/* Record the decision on doc (a new version) with its audit entry. */
static int record_decision(const server_approval_env *env, json_t *doc, int64_t version,
                           const char *status, const char *by, const char *by_name,
                           const char *note, mv_err *err)
{
    char when[MV_TIME_STR_MAX];
    mv_time_format(mv_now_us(), when);
    json_object_set_new(doc, "status", json_string(status));
    json_object_set_new(doc, "decided_by", json_string(by));
    json_object_set_new(doc, "decided_by_username", json_string(by_name ? by_name : ""));
    json_object_set_new(doc, "decided_at", json_string(when));
    if (note)
        json_object_set_new(doc, "note", json_string(note));
    const char *action = strcmp(status, "expired") == 0 ? "approval.expire"
                       : strcmp(status, "approved") == 0 ? "approval.approve"
                       : "approval.refuse";
    return save(env->trail, doc, version, by, action, status, env->source, err);
}

/* 1 when kind holds a change held aside on an account (settled there). */
static int held_on_account(const char *kind)
{
    return strncmp(kind, "account.", 8) == 0 && strcmp(kind, "account.unlock") != 0;
}

/* A pending request past its time is marked expired (and a held-aside
 * change dropped); 1 when it was. */
static int expire_if_due(const server_approval_env *env, json_t *doc, int64_t version)
{
    json_int_t until = json_integer_value(json_object_get(doc, "expires_at_us"));
    if (until > mv_now_us())
        return 0;
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *name = json_string_value(json_object_get(doc, "target_name"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (held_on_account(kind))
        auth_account_settle(env->auth, name, id, 0, "system:approvals", NULL);
    record_decision(env, doc, version, "expired", "system:approvals", "", NULL, NULL);
    return 1;
}

/* Why env's decider may not take this decision; NULL when it may.  Refusing
 * grants nothing: any security officer may; approving is for a second,
 * uninvolved one.  The local operator (no decider) may do either. */
static const char *refusal_reason(const server_approval_env *env, json_t *doc, int approve)
{
    if (env->decider == NULL)
        return NULL;
    if (approve)
        return not_eligible(env, doc);
    return env->decider->role != AUTH_ROLE_SECURITY
           ? "a security officer approves or refuses" : NULL;
}

/* The decision's effect, then its record. */
static int decide_pending(const server_approval_env *env, json_t *doc, int64_t version,
                          int approve, const char *note, mv_err *err)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *name = json_string_value(json_object_get(doc, "target_name"));
    const char *why = refusal_reason(env, doc, approve);
    if (why)
        return mv_fail(err, MV_E_PERM, "%s", why);
    if (approve && put_into_effect(env, doc, env->by, err) != 0)
        return -1;
    if (!approve && held_on_account(kind) &&
        auth_account_settle(env->auth, name, id, 0, env->by, err) != 0)
        return -1;
    if (record_decision(env, doc, version, approve ? "approved" : "refused", env->by,
                        env->decider ? env->decider->username : "", note, err) != 0)
        return -1;
    if (env->decider == NULL) {                /* the operator alone: an alert */
        char what[160];
        snprintf(what, sizeof what, "%s %s", approve ? "approval" : "refusal", kind);
        server_alert_privilege(env->trail, env->by, "local", what, name, NULL, NULL);
    }
    return 0;
}

int server_approval_decide(const server_approval_env *env, const char *id, int approve,
                           const char *note, char **json_out, mv_err *err)
{
    char *text = NULL;
    int64_t version = 0;
    if (server_approval_get(env->store, id, &text, &version, err) != 0)
        return -1;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    const char *status = json_string_value(json_object_get(doc, "status"));
    int rc;
    if (status == NULL || json_string_value(json_object_get(doc, "kind")) == NULL ||
        json_string_value(json_object_get(doc, "target_name")) == NULL)
        rc = mv_fail(err, MV_E_INTEGRITY, "approval %s is not readable", id);
    else if (strcmp(status, "pending") != 0)
        rc = mv_fail(err, MV_E_CONFLICT, "request %s is %s already", id, status);
    else if (expire_if_due(env, doc, version))
        rc = mv_fail(err, MV_E_CONFLICT, "request %s has expired", id);
    else
        rc = decide_pending(env, doc, version, approve, note, err);
    if (rc == 0 && json_out)
        *json_out = json_text(doc);
    json_decref(doc);
    return rc;
}

/* ---- The local operator ------------------------------------------------------------------- */

int server_alert_privilege(audit_trail *t, const char *actor, const char *source,
                           const char *change, const char *target, const char *explanation,
                           char **json_out)
{
    char id[33], when[MV_TIME_STR_MAX], words[400];
    int64_t now = mv_now_us();
    crypto_random_id(id);
    mv_time_format(now, when);
    if (explanation)
        snprintf(words, sizeof words, "%s", explanation);
    else
        snprintf(words, sizeof words, "The local operator (%s, holder of the key file) "
                 "made a privileged change without a second person: %s of %s.  Check "
                 "that it was expected.", actor, change, target ? target : "-");
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[s], s:f, s:f, s:{s:s, s:s}, "
                            "s:s, s:s}",
                            "id", id, "time", when, "time_us", (json_int_t)now,
                            "actor", actor, "source", source ? source : "local",
                            "detectors", "privilege",
                            "score", 60.0, "model_score", 0.0,
                            "evidence", "change", change, "target", target ? target : "-",
                            "explanation", words, "response", "alert");
    if (doc && json_out == NULL)      /* not ours to send: the server will */
        json_object_set_new(doc, "notify", json_string("pending"));
    char *text = doc ? json_text(doc) : NULL;
    json_decref(doc);
    mv_err e;
    int rc = text ? server_alert_save(t, text, &e) : mv_fail(&e, MV_E_NOMEM, "out of memory");
    if (rc != 0)
        fprintf(stderr, "medvault: could not store a privilege alert: %s\n", e.msg);
    if (rc == 0 && json_out)
        *json_out = text;
    else
        free(text);
    return rc;
}
