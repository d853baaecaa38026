/*
 * change.c -- the one way an account changes: read it, let a plan edit it
 * and name the events, then commit record and events together through
 * audit_record, retrying when another writer got there first.
 *
 * Why it exists: every account change (create aside) -- a failed login, a
 * lock, a reset, a successful login's bookkeeping -- must be audited in the
 * same transaction as the change, and must not lose a concurrent update
 * (two failed logins at once must count twice).  The store's if_version
 * check gives optimistic concurrency; this loop gives the retry, rebuilding
 * the plan from a fresh read so its preconditions (a TOTP step not yet used,
 * an unchanged password) are checked against what will actually be written.
 */
#include "auth_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void acct_change_names(acct_change *c)
{
    snprintf(c->actor, sizeof c->actor, "user:%s", c->rec.pub.id);
    snprintf(c->resource, sizeof c->resource, "%s/%s", ACCOUNT_TYPE,
             c->rec.pub.id);
}

/* Inside the audit transaction: the record, then the sessions. */
static int apply_change(store_txn *t, void *ctx, mv_err *err)
{
    acct_change *c = ctx;
    if (acct_put(t, &c->rec, err) != 0)
        return -1;
    if (c->revoke_sessions &&
        store_session_revoke_account(t, c->rec.pub.id, c->revoked, err) != 0)
        return -1;
    if (c->new_session && store_session_insert(t, c->new_session, err) != 0)
        return -1;
    return 0;
}

/* One attempt: 0 committed, ACCT_REFUSED, -1 with e filled. */
static int commit_once(auth *a, const char *id, acct_plan_fn plan, void *ctx,
                       mv_err *e)
{
    acct_change c;
    memset(&c, 0, sizeof c);
    if (acct_load_id(a->s, id, &c.rec, e) != 0)
        return -1;
    acct_change_names(&c);
    int rc = plan(&c, ctx, e);
    if (rc == 0 && c.n_ev == 0)
        rc = mv_fail(e, MV_E_INTERNAL, "an account change without an event");
    if (rc == 0)
        rc = audit_record(a->trail, c.ev, c.n_ev, apply_change, &c, NULL, e);
    acct_cache_forget(&a->accounts, id);
    acct_wipe(&c.rec);
    return rc;
}

/* After a lost race: a short random pause, growing with the attempt, so
 * that writers of one account stop colliding in lockstep. */
static void conflict_pause(int attempt)
{
    uint32_t r;
    crypto_random(&r, sizeof r);
    long max_us = 200L << attempt;
    struct timespec ts = { 0, (long)(r % (uint32_t)max_us) * 1000L };
    nanosleep(&ts, NULL);
}

int acct_commit(auth *a, const char *id, acct_plan_fn plan, void *ctx,
                mv_err *err)
{
    mv_err e;
    mv_err_clear(&e);
    for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        if (attempt > 0)
            conflict_pause(attempt);
        int rc = commit_once(a, id, plan, ctx, &e);
        if (rc >= 0)
            return rc;
        if (e.code != MV_E_CONFLICT)
            break;
    }
    if (err)
        *err = e;
    return -1;
}
