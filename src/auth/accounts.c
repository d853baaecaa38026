/*
 * accounts.c -- creating accounts and the administrative changes to them:
 * lock, unlock, new password, new second factor, revoke sessions.
 *
 * Why it exists: these are the operations a security officer uses after an
 * incident, so each must take effect on the very next request (every one
 * that weakens trust in the account revokes its sessions in the same
 * transaction) and each leaves an audit entry committed with the change.
 * Creation also enforces who an account may speak for: a practitioner link
 * only for clinicians and nurses, a patient link only for patients, SMART
 * scopes only (and always) for services.
 */
#include "auth_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- What a new account may look like ---------------------------------------- */

static int is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* A FHIR id: [A-Za-z0-9.-], 1..64 characters. */
static int fhir_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AUTH_NAME_MAX)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789.-") == n;
}

/* "c?r?u?d?s?", at least one letter, in that order. */
static int permissions_ok(const char *p, size_t n)
{
    static const char order[] = "cruds";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (order[k] != '\0' && order[k] != p[i])
            k++;
        if (order[k] == '\0')
            return 0;
        k++;
    }
    return n > 0;
}

/* "*" or a resource type name: [A-Z][A-Za-z]*. */
static int scope_type_ok(const char *t, size_t n)
{
    if (n == 1 && t[0] == '*')
        return 1;
    if (n == 0 || n >= AUTH_NAME_MAX || t[0] < 'A' || t[0] > 'Z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z')))
            return 0;
    return 1;
}

/* One SMART v2 scope: (system|user|patient)/<Type or *>.<cruds>. */
static int scope_ok(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    if (slash == NULL)
        return 0;
    size_t ctx = (size_t)(slash - s);
    if (!((ctx == 6 && memcmp(s, "system", 6) == 0) ||
          (ctx == 4 && memcmp(s, "user", 4) == 0) ||
          (ctx == 7 && memcmp(s, "patient", 7) == 0)))
        return 0;
    const char *type = slash + 1, *end = s + n, *dot = NULL;
    for (const char *p = type; p < end; p++)
        if (*p == '.')
            dot = p;
    return dot != NULL && scope_type_ok(type, (size_t)(dot - type)) &&
           permissions_ok(dot + 1, (size_t)(end - dot - 1));
}

static int scopes_ok(const char *scopes)
{
    if (strlen(scopes) >= AUTH_SCOPES_MAX)
        return 0;
    size_t count = 0;
    for (const char *p = scopes; *p;) {
        size_t n = strcspn(p, " ");
        if (n > 0 && !scope_ok(p, n))
            return 0;
        count += n > 0;
        p += n;
        p += strspn(p, " ");
    }
    return count > 0;
}

static int department_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n < AUTH_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._- ") == n;
}

static int links_check(const auth_new_account *spec, mv_err *err)
{
    auth_role r = spec->role;
    int clinical = r == AUTH_ROLE_CLINICIAN || r == AUTH_ROLE_NURSE;
    if (is_set(spec->practitioner) && (!clinical || !fhir_id_ok(spec->practitioner)))
        return mv_fail(err, MV_E_INVALID, "a practitioner link needs a valid "
                       "id and the clinician or nurse role");
    if (is_set(spec->patient) && (r != AUTH_ROLE_PATIENT || !fhir_id_ok(spec->patient)))
        return mv_fail(err, MV_E_INVALID, "a patient link needs a valid id "
                       "and the patient role");
    if (is_set(spec->scopes) != (r == AUTH_ROLE_SERVICE))
        return mv_fail(err, MV_E_INVALID, "scopes are required for, and only "
                       "for, service accounts");
    if (is_set(spec->scopes) && !scopes_ok(spec->scopes))
        return mv_fail(err, MV_E_INVALID, "scopes must be SMART v2 scopes, "
                       "e.g. system/Patient.rs");
    if (is_set(spec->department) && !department_ok(spec->department))
        return mv_fail(err, MV_E_INVALID, "a department is 1 to 64 letters, digits, "
                       "spaces, dots, dashes or underscores");
    return 0;
}

/* Validate spec and copy it into the public part of r. */
static int spec_fill(const auth_new_account *spec, acct_rec *r, mv_err *err)
{
    if (spec == NULL)
        return mv_fail(err, MV_E_INVALID, "no account given");
    if (strcmp(auth_role_name(spec->role), "unknown") == 0)
        return mv_fail(err, MV_E_INVALID, "unknown role");
    if (acct_username_norm(spec->username, r->pub.username, err) != 0 ||
        links_check(spec, err) != 0)
        return -1;
    r->pub.role = spec->role;
    acct_copy_text(r->pub.practitioner, sizeof r->pub.practitioner, spec->practitioner);
    acct_copy_text(r->pub.patient, sizeof r->pub.patient, spec->patient);
    acct_copy_text(r->pub.scopes, sizeof r->pub.scopes, spec->scopes);
    acct_copy_text(r->pub.department, sizeof r->pub.department, spec->department);
    return 0;
}

/* ---- Create -------------------------------------------------------------------- */

/* Inside the audit transaction: the username check and the insert commit
 * together, so two creations of one name cannot both succeed. */
static int apply_create(store_txn *t, void *ctx, mv_err *err)
{
    const acct_rec *r = ctx;
    char id[AUTH_NAME_MAX];
    int found = acct_find(store_txn_store(t), r->pub.username, id, err);
    if (found != 0)
        return found < 0 ? -1 : mv_fail(err, MV_E_EXISTS,
                                         "username %s is taken", r->pub.username);
    return acct_put(t, r, err);
}

static int new_record(const auth_new_account *spec, const char *password,
                      size_t len, acct_rec *r, auth_enrollment *enroll,
                      mv_err *err)
{
    char id[33];
    if (spec_fill(spec, r, err) != 0 ||
        auth_password_acceptable(r->pub.username, password, len, err) != 0 ||
        crypto_password_hash(password, len, r->pw_hash, err) != 0)
        return -1;
    crypto_random_id(id);
    acct_copy_text(r->pub.id, sizeof r->pub.id, id);
    r->pub.created_us = mv_now_us();
    return mfa_enroll(r, enroll, err);
}

/* Whoever gives an account its credentials heads its lineage; the one
 * who approves it joins when they do. */
static void lineage_start(auth_account *p, const char *actor)
{
    acct_copy_text(p->lineage[0], sizeof p->lineage[0], actor ? actor : "system");
    p->lineage[1][0] = '\0';
    p->lineage_since_us = mv_now_us();
}

int auth_account_inert(const auth_account *a)
{
    return a->locked || strcmp(a->pending, "create") == 0 ||
           strcmp(a->pending, "refused") == 0;
}

int auth_account_lineage_has(const auth_account *a, const char *actor)
{
    return is_set(actor) && (strcmp(a->lineage[0], actor) == 0 ||
                             strcmp(a->lineage[1], actor) == 0);
}

int auth_account_create(auth *a, const auth_new_account *spec,
                        const char *password, size_t len, const char *actor,
                        auth_enrollment *enroll, mv_err *err)
{
    acct_rec r;
    memset(&r, 0, sizeof r);
    memset(enroll, 0, sizeof *enroll);
    int rc = new_record(spec, password, len, &r, enroll, err);
    if (rc == 0) {
        lineage_start(&r.pub, actor);
        if (is_set(spec->pending_request)) {
            acct_copy_text(r.pub.pending, sizeof r.pub.pending, "create");
            acct_copy_text(r.pub.pending_request, sizeof r.pub.pending_request,
                           spec->pending_request);
        }
        char resource[RESOURCE_MAX];
        snprintf(resource, sizeof resource, "%s/%s", ACCOUNT_TYPE, r.pub.id);
        audit_event ev = { .actor = actor ? actor : "system",
                           .action = "account.create",
                           .outcome = r.pub.pending[0] ? "pending" : "success",
                           .resources = resource };
        rc = audit_record(a->trail, &ev, 1, apply_create, &r, NULL, err);
    }
    if (rc != 0)
        crypto_wipe(enroll, sizeof *enroll);
    acct_wipe(&r);
    return rc;
}

/* ---- Read ---------------------------------------------------------------------- */

int auth_account_get(auth *a, const char *username, auth_account *out,
                     mv_err *err)
{
    acct_rec r;
    memset(out, 0, sizeof *out);
    if (acct_load_username(a->s, username, &r, err) != 0)
        return -1;
    *out = r.pub;
    acct_wipe(&r);
    return 0;
}

static int by_username(const void *x, const void *y)
{
    const auth_account *p = x, *q = y;
    return strcmp(p->username, q->username);
}

int auth_account_count(auth *a, size_t *n, mv_err *err)
{
    char **ids = NULL;
    *n = 0;
    if (store_search(a->s, ACCOUNT_TYPE, NULL, 0, &ids, n, err) != 0)
        return -1;
    store_ids_free(ids, *n);
    return 0;
}

int auth_account_list(auth *a, auth_account **out, size_t *n, mv_err *err)
{
    char **ids = NULL;
    size_t count = 0, kept = 0;
    *out = NULL;
    *n = 0;
    if (store_search(a->s, ACCOUNT_TYPE, NULL, 0, &ids, &count, err) != 0)
        return -1;
    auth_account *v = mv_calloc(count ? count : 1, sizeof *v, err);
    int rc = v ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        acct_rec r;
        rc = acct_load_id(a->s, ids[i], &r, err);
        if (rc == 0)
            v[kept++] = r.pub;
        acct_wipe(&r);
    }
    store_ids_free(ids, count);
    if (rc != 0) {
        free(v);
        return -1;
    }
    qsort(v, kept, sizeof *v, by_username);
    *out = v;
    *n = kept;
    return 0;
}

/* ---- Administrative changes ------------------------------------------------------ */

/* What an administrative plan needs: who, and the new values. */
typedef struct admin_op {
    const char *actor;
    const char *reason;          /* lock                                 */
    const char *pw_hash;         /* reset-password                       */
    const acct_rec *mfa;         /* reset-mfa: new secret and code hashes */
    const char *request;         /* two-person control: the approval request */
    int approve;                 /* settle: 1 approve, 0 refuse            */
    size_t *revoked;
} admin_op;

static void admin_event_as(acct_change *c, const admin_op *op, const char *action,
                           const char *outcome)
{
    c->ev[0] = (audit_event){ .actor = op->actor ? op->actor : "system",
                              .action = action, .outcome = outcome,
                              .resources = c->resource };
    c->n_ev = 1;
}

static void admin_event(acct_change *c, const admin_op *op, const char *action)
{
    admin_event_as(c, op, action, "success");
}

static int plan_lock(acct_change *c, void *ctx, mv_err *err)
{
    (void)err;
    const admin_op *op = ctx;
    /* Locking again keeps the first reason: a detector's containment must
     * not become a person's lock that a person alone may lift. */
    if (!c->rec.pub.locked)
        acct_copy_text(c->rec.pub.lock_reason, sizeof c->rec.pub.lock_reason,
                       is_set(op->reason) ? op->reason : "locked by an administrator");
    c->rec.pub.locked = 1;
    c->revoke_sessions = 1;
    admin_event(c, op, "account.lock");
    return 0;
}

static int plan_unlock(acct_change *c, void *ctx, mv_err *err)
{
    (void)err;
    c->rec.pub.locked = 0;
    c->rec.pub.lock_reason[0] = '\0';
    c->rec.pub.failed_logins = 0;
    c->rec.pub.password_locked_until_us = 0;
    admin_event(c, ctx, "account.unlock");
    return 0;
}

static int plan_reset_password(acct_change *c, void *ctx, mv_err *err)
{
    (void)err;
    const admin_op *op = ctx;
    acct_copy_text(c->rec.pw_hash, sizeof c->rec.pw_hash, op->pw_hash);
    lineage_start(&c->rec.pub, op->actor);
    c->revoke_sessions = 1;
    admin_event(c, op, "account.reset-password");
    return 0;
}

static int plan_reset_mfa(acct_change *c, void *ctx, mv_err *err)
{
    (void)err;
    const admin_op *op = ctx;
    memcpy(c->rec.totp_b32, op->mfa->totp_b32, sizeof c->rec.totp_b32);
    memcpy(c->rec.recovery, op->mfa->recovery, sizeof c->rec.recovery);
    c->rec.totp_last_step = 0;
    c->rec.pub.recovery_left = op->mfa->pub.recovery_left;
    lineage_start(&c->rec.pub, op->actor);
    c->revoke_sessions = 1;
    admin_event(c, op, "account.reset-mfa");
    return 0;
}

/* ---- Two-person control: changes held aside until a second person answers ---------- */

static void pending_clear(acct_rec *r)
{
    r->pub.pending[0] = r->pub.pending_request[0] = '\0';
    crypto_wipe(r->pend_pw_hash, sizeof r->pend_pw_hash);
    crypto_wipe(r->pend_totp_b32, sizeof r->pend_totp_b32);
    crypto_wipe(r->pend_recovery, sizeof r->pend_recovery);
}

/* One pending change at a time: a second request waits for the first. */
static int pending_start(acct_change *c, const admin_op *op, const char *kind,
                         mv_err *err)
{
    if (strcmp(c->rec.pub.pending, "refused") == 0) {
        mv_fail(err, MV_E_INVALID, "account %s was refused: it cannot be changed",
                c->rec.pub.username);
        return -1;
    }
    if (c->rec.pub.pending[0] != '\0') {
        mv_fail(err, MV_E_EXISTS, "account %s already has a change awaiting "
                "approval (request %s)", c->rec.pub.username, c->rec.pub.pending_request);
        return -1;
    }
    pending_clear(&c->rec);
    acct_copy_text(c->rec.pub.pending, sizeof c->rec.pub.pending, kind);
    acct_copy_text(c->rec.pub.pending_request, sizeof c->rec.pub.pending_request,
                   op->request);
    return 0;
}

static int plan_propose_password(acct_change *c, void *ctx, mv_err *err)
{
    const admin_op *op = ctx;
    if (pending_start(c, op, "reset-password", err) != 0)
        return -1;
    acct_copy_text(c->rec.pend_pw_hash, sizeof c->rec.pend_pw_hash, op->pw_hash);
    admin_event_as(c, op, "account.reset-password", "pending");
    return 0;
}

static int plan_propose_mfa(acct_change *c, void *ctx, mv_err *err)
{
    const admin_op *op = ctx;
    if (pending_start(c, op, "reset-mfa", err) != 0)
        return -1;
    memcpy(c->rec.pend_totp_b32, op->mfa->totp_b32, sizeof c->rec.pend_totp_b32);
    memcpy(c->rec.pend_recovery, op->mfa->recovery, sizeof c->rec.pend_recovery);
    admin_event_as(c, op, "account.reset-mfa", "pending");
    return 0;
}

/* Put the held-aside change into effect. */
static void pending_apply(acct_change *c, const char *approver)
{
    acct_rec *r = &c->rec;
    if (strcmp(r->pub.pending, "reset-password") == 0) {
        memcpy(r->pw_hash, r->pend_pw_hash, sizeof r->pw_hash);
        c->revoke_sessions = 1;
    } else if (strcmp(r->pub.pending, "reset-mfa") == 0) {
        memcpy(r->totp_b32, r->pend_totp_b32, sizeof r->totp_b32);
        memcpy(r->recovery, r->pend_recovery, sizeof r->recovery);
        r->totp_last_step = 0;
        r->pub.recovery_left = mfa_recovery_count(r);
        c->revoke_sessions = 1;
    }
    acct_copy_text(r->pub.lineage[1], sizeof r->pub.lineage[1], approver);
    r->pub.lineage_since_us = mv_now_us();
}

static int plan_settle(acct_change *c, void *ctx, mv_err *err)
{
    const admin_op *op = ctx;
    acct_rec *r = &c->rec;
    if (r->pub.pending[0] == '\0' || strcmp(r->pub.pending, "refused") == 0 ||
        strcmp(r->pub.pending_request, op->request) != 0) {
        mv_fail(err, MV_E_NOTFOUND, "account %s has no change awaiting request %s",
                r->pub.username, op->request);
        return -1;
    }
    char action[48];
    snprintf(action, sizeof action, "account.%s", r->pub.pending);
    snprintf(c->note, sizeof c->note, "%s", op->approve ? "approved" : "refused");
    int refused_creation = !op->approve && strcmp(r->pub.pending, "create") == 0;
    if (op->approve)
        pending_apply(c, op->actor);
    pending_clear(r);
    if (refused_creation)     /* inert for good: no unlock opens it */
        acct_copy_text(r->pub.pending, sizeof r->pub.pending, "refused");
    snprintf(c->action, sizeof c->action, "%s", action);
    admin_event_as(c, op, c->action, c->note);
    return 0;
}

/* The id of an existing account, from a typed username. */
static int account_id(auth *a, const char *username, char name[AUTH_NAME_MAX],
                      char id[AUTH_NAME_MAX], mv_err *err)
{
    if (acct_username_norm(username, name, NULL) != 0)
        return mv_fail(err, MV_E_NOTFOUND, "no such account");
    int found = acct_find(a->s, name, id, err);
    if (found == 0)
        return mv_fail(err, MV_E_NOTFOUND, "no account named %s", name);
    return found < 0 ? -1 : 0;
}

static int admin_change(auth *a, const char *username, acct_plan_fn plan,
                        admin_op *op, mv_err *err)
{
    char name[AUTH_NAME_MAX], id[AUTH_NAME_MAX];
    if (account_id(a, username, name, id, err) != 0)
        return -1;
    return acct_commit(a, id, plan, op, err) == 0 ? 0 : -1;
}

int auth_account_lock(auth *a, const char *username, const char *reason,
                      const char *actor, mv_err *err)
{
    admin_op op = { .actor = actor, .reason = reason };
    return admin_change(a, username, plan_lock, &op, err);
}

int auth_account_unlock(auth *a, const char *username, const char *actor,
                        mv_err *err)
{
    admin_op op = { .actor = actor };
    if (admin_change(a, username, plan_unlock, &op, err) != 0)
        return -1;
    throttle_user_reset(&a->thr, username);
    return 0;
}

int auth_account_reset_password(auth *a, const char *username,
                                const char *password, size_t len,
                                const char *actor, mv_err *err)
{
    char name[AUTH_NAME_MAX], id[AUTH_NAME_MAX], hash[MV_PWHASH_MAX];
    if (account_id(a, username, name, id, err) != 0 ||
        auth_password_acceptable(name, password, len, err) != 0 ||
        crypto_password_hash(password, len, hash, err) != 0)
        return -1;
    admin_op op = { .actor = actor, .pw_hash = hash };
    int rc = acct_commit(a, id, plan_reset_password, &op, err) == 0 ? 0 : -1;
    crypto_wipe(hash, sizeof hash);
    return rc;
}

int auth_account_reset_mfa(auth *a, const char *username, const char *actor,
                           auth_enrollment *enroll, mv_err *err)
{
    char id[AUTH_NAME_MAX];
    acct_rec fresh;
    memset(&fresh, 0, sizeof fresh);
    memset(enroll, 0, sizeof *enroll);
    int rc = account_id(a, username, fresh.pub.username, id, err);
    if (rc == 0)
        rc = mfa_enroll(&fresh, enroll, err);
    admin_op op = { .actor = actor, .mfa = &fresh };
    if (rc == 0)
        rc = acct_commit(a, id, plan_reset_mfa, &op, err) == 0 ? 0 : -1;
    if (rc != 0)
        crypto_wipe(enroll, sizeof *enroll);
    acct_wipe(&fresh);
    return rc;
}

int auth_account_propose_password(auth *a, const char *username,
                                  const char *password, size_t len,
                                  const char *request_id, const char *actor,
                                  mv_err *err)
{
    char name[AUTH_NAME_MAX], id[AUTH_NAME_MAX], hash[MV_PWHASH_MAX];
    if (!is_set(request_id))
        return mv_fail(err, MV_E_INVALID, "a proposed change needs its request");
    if (account_id(a, username, name, id, err) != 0 ||
        auth_password_acceptable(name, password, len, err) != 0 ||
        crypto_password_hash(password, len, hash, err) != 0)
        return -1;
    admin_op op = { .actor = actor, .pw_hash = hash, .request = request_id };
    int rc = acct_commit(a, id, plan_propose_password, &op, err) == 0 ? 0 : -1;
    crypto_wipe(hash, sizeof hash);
    return rc;
}

int auth_account_propose_mfa(auth *a, const char *username,
                             const char *request_id, const char *actor,
                             auth_enrollment *enroll, mv_err *err)
{
    char id[AUTH_NAME_MAX];
    acct_rec fresh;
    memset(&fresh, 0, sizeof fresh);
    memset(enroll, 0, sizeof *enroll);
    if (!is_set(request_id))
        return mv_fail(err, MV_E_INVALID, "a proposed change needs its request");
    int rc = account_id(a, username, fresh.pub.username, id, err);
    if (rc == 0)
        rc = mfa_enroll(&fresh, enroll, err);
    admin_op op = { .actor = actor, .mfa = &fresh, .request = request_id };
    if (rc == 0)
        rc = acct_commit(a, id, plan_propose_mfa, &op, err) == 0 ? 0 : -1;
    if (rc != 0)
        crypto_wipe(enroll, sizeof *enroll);
    acct_wipe(&fresh);
    return rc;
}

int auth_account_settle(auth *a, const char *username, const char *request_id,
                        int approve, const char *actor, mv_err *err)
{
    if (!is_set(request_id) || !is_set(actor))
        return mv_fail(err, MV_E_INVALID, "settling a change needs its request and who");
    admin_op op = { .actor = actor, .request = request_id, .approve = approve };
    return admin_change(a, username, plan_settle, &op, err);
}

/* ---- Revoke sessions (the record itself does not change) ------------------------- */

typedef struct revoke_ctx {
    const char *id;
    size_t *n;
} revoke_ctx;

static int apply_revoke_account(store_txn *t, void *ctx, mv_err *err)
{
    const revoke_ctx *r = ctx;
    return store_session_revoke_account(t, r->id, r->n, err);
}

int auth_account_revoke_sessions(auth *a, const char *username,
                                 const char *actor, size_t *n, mv_err *err)
{
    char name[AUTH_NAME_MAX], id[AUTH_NAME_MAX], resource[RESOURCE_MAX];
    size_t count = 0;
    if (account_id(a, username, name, id, err) != 0)
        return -1;
    snprintf(resource, sizeof resource, "%s/%s", ACCOUNT_TYPE, id);
    audit_event ev = { .actor = actor ? actor : "system",
                       .action = "account.revoke-sessions",
                       .outcome = "success", .resources = resource };
    revoke_ctx ctx = { id, &count };
    if (audit_record(a->trail, &ev, 1, apply_revoke_account, &ctx, NULL, err) != 0)
        return -1;
    if (n)
        *n = count;
    return 0;
}

/* Through the cache of public views (account_cache.c): a session check
 * and an access-log page each look accounts up by id. */
int auth_account_get_id(auth *a, const char *id, auth_account *out, mv_err *err)
{
    if (acct_cache_get(&a->accounts, id, mv_now_us(), out))
        return 0;
    acct_rec r;
    if (acct_load_id(a->s, id, &r, err) != 0)
        return -1;
    *out = r.pub;
    acct_wipe(&r);
    acct_cache_put(&a->accounts, out, mv_now_us());
    return 0;
}
