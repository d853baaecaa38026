/*
 * login.c -- turning a username, a password and a second factor into a
 * session, or into one generic refusal.
 *
 * Why it exists: this is where the 2024 breach would be stopped or not.
 * The order matters and is fixed: throttles first (cheap, per source and
 * per typed username), then exactly one Argon2id verification whether or
 * not the account exists, then the password (and whether its path is
 * closed), the second factor, and only then the lock.
 *
 * Failures must never be a weapon: lock_after wrong passwords close the
 * password path for lock_time (persisted in the account, so a restart
 * changes nothing), they revoke no session, and the closed path answers
 * exactly like a wrong password, for a known name as for an unknown one.
 * Whether an account is locked by a person or the detector (423) is told
 * only to whoever proved both its password and its second factor.
 * Every path through here is audited; an unknown username is recorded as
 * "anonymous" and never by what was typed; a correct password with a wrong
 * second factor is its own event, because it means the password is known
 * to someone else.
 */
#include "auth_internal.h"

#include <stdio.h>
#include <string.h>

#define OUTCOME_BAD_CREDENTIALS "failure: bad credentials"
#define OUTCOME_BAD_FACTOR "failure: password correct, second factor wrong"
#define OUTCOME_CLOSED "failure: password path closed after failures"
#define OUTCOME_CLOSED_RIGHT "failure: password correct while its path is closed"

/* ---- Events that change no account -------------------------------------------- */

/* One event for the login attempt; actor is the account or "anonymous". */
static int login_event(auth *a, const char *id, const char *action,
                       const char *outcome, const char *source,
                       const char *request_id, mv_err *err)
{
    char actor[ACTOR_MAX];
    if (id)
        snprintf(actor, sizeof actor, "user:%s", id);
    else
        snprintf(actor, sizeof actor, "anonymous");
    audit_event ev = { .actor = actor, .action = action, .outcome = outcome,
                       .source = source, .request_id = request_id };
    return audit_record(a->trail, &ev, 1, NULL, NULL, NULL, err);
}

/* ---- Failures -------------------------------------------------------------------- */

typedef struct failure {
    const auth_config *cfg;
    const char *action, *outcome, *source, *request_id;
} failure;

/* Count the failure; at lock_after, close the password path for lock_time
 * (and say so in its own event).  A failure while it is closed does not
 * extend it, so nobody can keep an account shut by guessing. */
static int plan_failure(acct_change *c, void *ctx, mv_err *err)
{
    (void)err;
    const failure *f = ctx;
    auth_account *p = &c->rec.pub;
    int64_t now = mv_now_us();
    p->failed_logins++;
    c->ev[0] = (audit_event){ .actor = c->actor, .action = f->action,
                              .outcome = f->outcome, .source = f->source,
                              .request_id = f->request_id };
    c->n_ev = 1;
    if (p->failed_logins >= f->cfg->lock_after && p->password_locked_until_us <= now) {
        p->password_locked_until_us = now + f->cfg->lock_time_us;
        c->ev[1] = (audit_event){ .actor = "system", .action = "account.password-lock",
                                  .outcome = "success: too many failed logins; the "
                                             "password path is closed for lock_time, "
                                             "sessions are kept",
                                  .resources = c->resource, .source = f->source,
                                  .request_id = f->request_id };
        c->n_ev = 2;
    }
    return 0;
}

auth_result login_failed(auth *a, const char *id, const char *username,
                         const char *action, const char *outcome,
                         const char *source, const char *request_id,
                         mv_err *err)
{
    throttle_failure(&a->thr, username, source, mv_now_us());
    int rc;
    if (id == NULL) {
        rc = login_event(a, NULL, action, outcome, source, request_id, err);
    } else {
        failure f = { &a->cfg, action, outcome, source, request_id };
        rc = acct_commit(a, id, plan_failure, &f, err);
    }
    return rc == 0 ? AUTH_DENIED : AUTH_ERROR;
}

/* An account locked by a person or the detector, to someone who proved
 * both factors: 423, and no session. */
static auth_result login_locked(auth *a, const char *id, const char *username,
                                const auth_login_request *req, mv_err *err)
{
    throttle_failure(&a->thr, username, req->source, mv_now_us());
    if (login_event(a, id, "auth.login", "denied: locked", req->source,
                    req->request_id, err) != 0)
        return AUTH_ERROR;
    return AUTH_LOCKED;
}

/* ---- Lookup ---------------------------------------------------------------------- */

/* The account's id for a typed username: 1 found, 0 not, -1 error. */
static int login_find(auth *a, const char *typed, char id[AUTH_NAME_MAX],
                      mv_err *err)
{
    char name[AUTH_NAME_MAX];
    if (acct_username_norm(typed, name, NULL) != 0)
        return 0;   /* cannot exist */
    return acct_find(a->s, name, id, err);
}

static int login_lookup(auth *a, const char *typed, acct_rec *r, mv_err *err)
{
    char id[AUTH_NAME_MAX];
    mv_err e;
    memset(r, 0, sizeof *r);
    int found = login_find(a, typed, id, err);
    if (found != 1)
        return found;
    if (acct_load_id(a->s, id, r, &e) == 0)
        return 1;
    if (e.code == MV_E_NOTFOUND)
        return 0;   /* deleted meanwhile */
    if (err)
        *err = e;
    return -1;
}

static auth_result login_throttled(auth *a, const auth_login_request *req,
                                   const char *typed, int64_t wait_us,
                                   int64_t *retry_after_s, mv_err *err)
{
    char id[AUTH_NAME_MAX];
    int found = login_find(a, typed, id, err);
    if (found < 0 ||
        login_event(a, found ? id : NULL, "auth.login", "denied: throttled",
                    req->source, req->request_id, err) != 0)
        return AUTH_ERROR;
    if (retry_after_s)
        *retry_after_s = (wait_us + 999999) / 1000000;
    return AUTH_THROTTLED;
}

/* ---- Success --------------------------------------------------------------------- */

typedef enum refusal {
    REFUSED_NONE, REFUSED_LOCKED, REFUSED_PASSWORD, REFUSED_FACTOR
} refusal;

typedef struct login_ctx {
    const auth_login_request *req;
    int64_t now;
    char verified_hash[MV_PWHASH_MAX];   /* the hash the password matched  */
    char new_hash[MV_PWHASH_MAX];        /* a rehash, or ""                */
    store_session session;
    char ref[SESSION_REF_HEX + 1];
    refusal refused;
    auth_account account;                /* out: the state committed       */
} login_ctx;

/* 1 when the second factor holds on r (and r now records its use). */
static int second_factor(acct_rec *r, login_ctx *x, const char **outcome,
                         mv_err *err)
{
    const auth_login_request *req = x->req;
    if (req->totp != NULL && req->totp[0] != '\0') {
        int64_t step;
        int ok = mfa_totp_check(r, req->totp, x->now, &step, err);
        if (ok == 1)
            r->totp_last_step = step;
        *outcome = "success";
        return ok;
    }
    int i = req->recovery_code ? mfa_recovery_find(r, req->recovery_code) : -1;
    if (i < 0)
        return 0;
    mfa_recovery_remove(r, i);
    *outcome = "success: recovery code used";
    return 1;
}

static int plan_success(acct_change *c, void *ctx, mv_err *err)
{
    login_ctx *x = ctx;
    acct_rec *r = &c->rec;
    const char *outcome = "success";
    x->refused = strcmp(r->pw_hash, x->verified_hash) != 0 ? REFUSED_PASSWORD
                                                           : REFUSED_NONE;
    if (x->refused != REFUSED_NONE)
        return ACCT_REFUSED;
    int ok = second_factor(r, x, &outcome, err);
    if (ok <= 0) {
        x->refused = REFUSED_FACTOR;
        return ok < 0 ? -1 : ACCT_REFUSED;
    }
    /* Both factors held: now, and only now, the lock may be told.  Nothing
     * of this attempt is committed (a recovery code stays unspent). */
    if (auth_account_inert(&r->pub)) {
        x->refused = REFUSED_LOCKED;
        return ACCT_REFUSED;
    }
    r->pub.failed_logins = 0;
    if (x->new_hash[0] != '\0')
        memcpy(r->pw_hash, x->new_hash, sizeof r->pw_hash);
    c->new_session = &x->session;
    c->ev[0] = (audit_event){ .actor = c->actor, .action = "auth.login",
                              .outcome = outcome, .source = x->req->source,
                              .session = x->ref,
                              .request_id = x->req->request_id };
    c->n_ev = 1;
    x->account = r->pub;
    return 0;
}

static void login_prepare(const acct_rec *r, login_ctx *x,
                          char token[AUTH_TOKEN_MAX])
{
    const auth_login_request *req = x->req;
    memcpy(x->verified_hash, r->pw_hash, sizeof x->verified_hash);
    if (crypto_password_needs_rehash(r->pw_hash) &&
        crypto_password_hash(req->password, req->password_len, x->new_hash,
                             NULL) != 0)
        x->new_hash[0] = '\0';   /* keep the old hash; try next time */
    session_token_new(token, x->session.token_hash);
    session_ref(x->session.token_hash, x->ref);
    acct_copy_text(x->session.account, sizeof x->session.account, r->pub.id);
    x->session.created_us = x->session.last_seen_us = x->session.mfa_us = x->now;
    acct_copy_text(x->session.source, sizeof x->session.source,
                   req->source ? req->source : "");
}

static auth_result login_refused(auth *a, const acct_rec *r, const char *typed,
                                 const login_ctx *x, mv_err *err)
{
    const auth_login_request *req = x->req;
    if (x->refused == REFUSED_LOCKED)
        return login_locked(a, r->pub.id, typed, req, err);
    return login_failed(a, r->pub.id, typed, "auth.login",
                        x->refused == REFUSED_FACTOR ? OUTCOME_BAD_FACTOR
                                                     : OUTCOME_BAD_CREDENTIALS,
                        req->source, req->request_id, err);
}

/* The password was right: check the second factor and open the session. */
static auth_result login_complete(auth *a, const acct_rec *r, const char *typed,
                                  const auth_login_request *req,
                                  auth_session_info *out, mv_err *err)
{
    login_ctx x;
    char token[AUTH_TOKEN_MAX];
    memset(&x, 0, sizeof x);
    x.req = req;
    x.now = mv_now_us();
    login_prepare(r, &x, token);
    int rc = acct_commit(a, r->pub.id, plan_success, &x, err);
    auth_result res = rc < 0 ? AUTH_ERROR
        : rc == ACCT_REFUSED ? login_refused(a, r, typed, &x, err) : AUTH_OK;
    if (res == AUTH_OK) {
        throttle_user_reset(&a->thr, typed);
        memcpy(out->token, token, sizeof out->token);
        out->expires_in_s = a->cfg.idle_timeout_us / 1000000;
        out->account = x.account;
        out->session = x.session;
    }
    crypto_wipe(token, sizeof token);
    crypto_wipe(&x, sizeof x);
    return res;
}

/* ---- Login ----------------------------------------------------------------------- */

auth_result auth_login(auth *a, const auth_login_request *req,
                       auth_session_info *out, int64_t *retry_after_s,
                       mv_err *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (retry_after_s)
        *retry_after_s = 0;
    if (a == NULL || req == NULL || out == NULL ||
        (req->password == NULL && req->password_len > 0)) {
        mv_fail(err, MV_E_INVALID, "incomplete login request");
        return AUTH_ERROR;
    }
    const char *typed = req->username ? req->username : "";
    int64_t now = mv_now_us();
    int64_t wait = throttle_source_wait(&a->thr, req->source, now);
    if (wait == 0)
        wait = throttle_user_wait(&a->thr, typed, now);
    if (wait > 0)
        return login_throttled(a, req, typed, wait, retry_after_s, err);

    acct_rec r;
    int known = login_lookup(a, typed, &r, err);
    if (known < 0)
        return AUTH_ERROR;
    /* Always exactly one Argon2id verification, known user or not. */
    int pw_ok = crypto_password_verify(known ? r.pw_hash : a->dummy_hash,
                                       req->password ? req->password : "",
                                       req->password_len) == 0 && known;
    /* A closed password path answers as a wrong password does. */
    int closed = known && r.pub.password_locked_until_us > now;
    const char *id = known ? r.pub.id : NULL;
    auth_result res;
    if (!pw_ok || closed)
        res = login_failed(a, id, typed, "auth.login",
                           !closed ? OUTCOME_BAD_CREDENTIALS
                           : pw_ok ? OUTCOME_CLOSED_RIGHT : OUTCOME_CLOSED,
                           req->source, req->request_id, err);
    else
        res = login_complete(a, &r, typed, req, out, err);
    if (res != AUTH_OK && known) {
        memcpy(out->refused_account, r.pub.id, sizeof out->refused_account);
        out->refused_password_ok = pw_ok;
    }
    acct_wipe(&r);
    return res;
}
