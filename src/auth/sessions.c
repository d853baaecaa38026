/*
 * sessions.c -- bearer tokens and what each request learns from one:
 * checking, logging out, and refreshing the second factor (step-up).
 *
 * Why it exists: a session is the thing an attacker steals once a login is
 * hard, so it is short-lived (idle and absolute limits), stored only as a
 * hash of its 256-bit token, and read from the store on every request, so a
 * revocation -- from logout, a lock, a reset, or another process -- denies
 * the very next request.  Sensitive actions additionally need a recent
 * second factor, which step-up refreshes without a new login.
 */
#include "auth_internal.h"

#include <stdio.h>
#include <string.h>

#define TOKEN_RAW_BYTES 32

void session_token_hash(const char *token, unsigned char hash[MV_HASH_BYTES])
{
    crypto_digest(token, strlen(token), hash);
}

void session_token_new(char token[AUTH_TOKEN_MAX],
                       unsigned char hash[MV_HASH_BYTES])
{
    unsigned char raw[TOKEN_RAW_BYTES];
    char b64[AUTH_TOKEN_MAX];   /* crypto_b64_len(32) = 45 */
    crypto_random(raw, sizeof raw);
    crypto_b64_encode(raw, sizeof raw, b64);
    size_t o = 0;
    for (const char *p = b64; *p && *p != '=' && o + 1 < AUTH_TOKEN_MAX; p++)
        token[o++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;   /* base64url */
    token[o] = '\0';
    crypto_wipe(raw, sizeof raw);
    crypto_wipe(b64, sizeof b64);
    session_token_hash(token, hash);
}

void session_ref(const unsigned char hash[MV_HASH_BYTES],
                 char out[SESSION_REF_HEX + 1])
{
    mv_hex_encode(hash, SESSION_REF_HEX / 2, out);
}

static auth_result denied(mv_err *err, const char *why)
{
    mv_fail(err, MV_E_INVALID, "%s", why);
    return AUTH_DENIED;
}

/* A store error that means "no such thing" denies; anything else is ours. */
static auth_result lookup_failed(const mv_err *e, mv_err *err, const char *why)
{
    if (e->code == MV_E_NOTFOUND || e->code == MV_E_GONE)
        return denied(err, why);
    if (err)
        *err = *e;
    return AUTH_ERROR;
}

/* The account behind a session: OK when it exists and is not locked. */
static auth_result session_account(auth *a, const char *id, auth_account *out,
                                   mv_err *err)
{
    mv_err e;
    if (auth_account_get_id(a, id, out, &e) != 0)
        return lookup_failed(&e, err, "the session's account is gone");
    return auth_account_inert(out) ? denied(err, "the session's account is locked")
                       : AUTH_OK;
}

/* Find and check the session behind token (no activity recorded). */
static auth_result session_load(auth *a, const char *token, int64_t now,
                                unsigned char hash[MV_HASH_BYTES],
                                auth_session_info *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    if (token == NULL || token[0] == '\0' ||
        strnlen(token, AUTH_TOKEN_MAX) >= AUTH_TOKEN_MAX)
        return denied(err, "no valid session token");
    session_token_hash(token, hash);
    store_session *ss = &out->session;
    mv_err e;
    if (store_session_get(a->s, hash, ss, &e) != 0)
        return lookup_failed(&e, err, "no such session");
    if (ss->revoked)
        return denied(err, "the session was revoked");
    if (now - ss->last_seen_us > a->cfg.idle_timeout_us)
        return denied(err, "the session expired (idle)");
    if (now - ss->created_us > a->cfg.absolute_timeout_us)
        return denied(err, "the session expired");
    return session_account(a, ss->account, &out->account, err);
}

auth_result auth_check(auth *a, const char *token, const char *source,
                       auth_session_info *out, mv_err *err)
{
    (void)source;   /* addresses change (mobile networks): not a check */
    unsigned char hash[MV_HASH_BYTES];
    int64_t now = mv_now_us();
    auth_result r = session_load(a, token, now, hash, out, err);
    if (r != AUTH_OK)
        return r;
    store_session *ss = &out->session;
    /* Record activity at most every few seconds (a write per request would
     * cost an fsync each), but often enough that a short idle timeout still
     * sees an active session as active. */
    int64_t every = a->cfg.idle_timeout_us / 10;
    if (every > TOUCH_EVERY_US)
        every = TOUCH_EVERY_US;
    if (now - ss->last_seen_us > every) {
        if (store_session_touch(a->s, hash, now, 0, err) != 0)
            return AUTH_ERROR;
        ss->last_seen_us = now;
    }
    out->expires_in_s = (ss->last_seen_us + a->cfg.idle_timeout_us - now) / 1000000;
    return AUTH_OK;
}

int auth_mfa_fresh(const auth *a, const auth_session_info *s)
{
    return mv_now_us() - s->session.mfa_us <= a->cfg.step_up_valid_us;
}

/* ---- Logout -------------------------------------------------------------------- */

static int apply_revoke(store_txn *t, void *ctx, mv_err *err)
{
    return store_session_revoke(t, ctx, err);
}

auth_result auth_logout(auth *a, const char *token, const char *source,
                        const char *request_id, mv_err *err)
{
    unsigned char hash[MV_HASH_BYTES];
    auth_session_info info;
    auth_result r = session_load(a, token, mv_now_us(), hash, &info, err);
    if (r != AUTH_OK)
        return r;
    char actor[ACTOR_MAX], ref[SESSION_REF_HEX + 1];
    snprintf(actor, sizeof actor, "user:%s", info.account.id);
    session_ref(hash, ref);
    audit_event ev = { .actor = actor, .action = "auth.logout",
                       .outcome = "success", .source = source,
                       .session = ref, .request_id = request_id };
    if (audit_record(a->trail, &ev, 1, apply_revoke, hash, NULL, err) != 0)
        return AUTH_ERROR;
    return AUTH_OK;
}

/* ---- Step-up ------------------------------------------------------------------- */

typedef struct step_up {
    const char *code;
    int64_t now;
    const char *source, *request_id, *ref;
} step_up;

static int plan_step_up(acct_change *c, void *ctx, mv_err *err)
{
    const step_up *s = ctx;
    int64_t step;
    if (auth_account_inert(&c->rec.pub))
        return ACCT_REFUSED;
    int ok = mfa_totp_check(&c->rec, s->code, s->now, &step, err);
    if (ok <= 0)
        return ok < 0 ? -1 : ACCT_REFUSED;
    c->rec.totp_last_step = step;
    c->ev[0] = (audit_event){ .actor = c->actor, .action = "auth.step-up",
                              .outcome = "success", .source = s->source,
                              .session = s->ref, .request_id = s->request_id };
    c->n_ev = 1;
    return 0;
}

static auth_result step_up_throttled(auth *a, const auth_account *acc,
                                     const step_up *s, mv_err *err)
{
    char actor[ACTOR_MAX];
    snprintf(actor, sizeof actor, "user:%s", acc->id);
    audit_event ev = { .actor = actor, .action = "auth.step-up",
                       .outcome = "denied: throttled", .source = s->source,
                       .session = s->ref, .request_id = s->request_id };
    if (audit_record(a->trail, &ev, 1, NULL, NULL, NULL, err) != 0)
        return AUTH_ERROR;
    return AUTH_THROTTLED;
}

auth_result auth_step_up(auth *a, const char *token, const char *totp,
                         const char *source, const char *request_id,
                         mv_err *err)
{
    unsigned char hash[MV_HASH_BYTES];
    auth_session_info info;
    char ref[SESSION_REF_HEX + 1];
    step_up s = { totp, mv_now_us(), source, request_id, ref };
    auth_result r = session_load(a, token, s.now, hash, &info, err);
    if (r != AUTH_OK)
        return r;
    session_ref(hash, ref);
    const auth_account *acc = &info.account;
    if (throttle_user_wait(&a->thr, acc->username, s.now) > 0)
        return step_up_throttled(a, acc, &s, err);
    int rc = acct_commit(a, acc->id, plan_step_up, &s, err);
    if (rc < 0)
        return AUTH_ERROR;
    if (rc == ACCT_REFUSED)
        return login_failed(a, acc->id, acc->username, "auth.step-up",
                            "failure: second factor wrong", source,
                            request_id, err);
    if (store_session_touch(a->s, hash, s.now, s.now, err) != 0)
        return AUTH_ERROR;
    throttle_user_reset(&a->thr, acc->username);
    return AUTH_OK;
}
