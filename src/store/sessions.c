/*
 * sessions.c -- the sessions table: token hashes, never tokens.
 *
 * Why sessions are not sealed resources like accounts: they hold no secret
 * and no health data (a BLAKE2b hash of a 256-bit random token, an account
 * id, times and an address), and every authenticated request reads one, so
 * they must cost one indexed lookup.  Keeping them in one table also makes
 * "revoke every session of this user" a single UPDATE that the server sees
 * on the very next request, even when the CLI issued it.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

int store_session_insert(store_txn *t, const store_session *ss, mv_err *err)
{
    store_conn *c = t->c;
    sqlite3_stmt *st = conn_stmt(c, ST_SESS_INSERT, err);
    int rc = -1;
    if (st && bind_blob(c, st, 1, ss->token_hash, MV_HASH_BYTES, err) == 0 &&
        bind_text(c, st, 2, ss->account, err) == 0 &&
        bind_i64(c, st, 3, ss->created_us, err) == 0 &&
        bind_i64(c, st, 4, ss->last_seen_us, err) == 0 &&
        bind_i64(c, st, 5, ss->mfa_us, err) == 0 &&
        bind_text(c, st, 6, ss->source, err) == 0)
        rc = stmt_step(c, st, "cannot store a session", err) < 0 ? -1 : 0;
    stmt_done(st);
    return rc;
}

int store_session_get(mv_store *s, const unsigned char hash[MV_HASH_BYTES],
                      store_session *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_SESS_GET, err);
    int rc = -1;
    if (st && bind_blob(r.c, st, 1, hash, MV_HASH_BYTES, err) == 0)
        rc = stmt_step(r.c, st, "cannot read a session", err);
    if (rc == 1) {
        memcpy(out->token_hash, hash, MV_HASH_BYTES);
        copy_text(out->account, sizeof out->account, sqlite3_column_text(st, 0));
        out->created_us = sqlite3_column_int64(st, 1);
        out->last_seen_us = sqlite3_column_int64(st, 2);
        out->mfa_us = sqlite3_column_int64(st, 3);
        out->revoked = sqlite3_column_int64(st, 4) != 0;
        copy_text(out->source, sizeof out->source, sqlite3_column_text(st, 5));
        rc = 0;
    } else if (rc == 0) {
        rc = mv_fail(err, MV_E_NOTFOUND, "no such session");
    }
    stmt_done(st);
    read_end(&r);
    return rc;
}

/* Run one UPDATE/DELETE bound to (hash or text, int64) on t's connection. */
static int change(store_conn *c, stmt_id id, const void *key, size_t key_len,
                  int key_is_text, int64_t v, size_t *n, const char *what,
                  mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, id, err);
    int rc = -1;
    int bound = st && (key == NULL ||
                       (key_is_text ? bind_text(c, st, 1, key, err)
                                    : bind_blob(c, st, 1, key, key_len, err)) == 0);
    if (bound && bind_i64(c, st, key ? 2 : 1, v, err) == 0)
        rc = stmt_step(c, st, what, err) < 0 ? -1 : 0;
    if (rc == 0 && n)
        *n = (size_t)sqlite3_changes(c->db);
    stmt_done(st);
    return rc;
}

int store_session_touch(mv_store *s, const unsigned char hash[MV_HASH_BYTES],
                        int64_t last_seen_us, int64_t mfa_us, mv_err *err)
{
    store_txn *t;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(t->c, ST_SESS_TOUCH, err);
    int rc = -1;
    if (st && bind_blob(t->c, st, 1, hash, MV_HASH_BYTES, err) == 0 &&
        bind_i64(t->c, st, 2, last_seen_us, err) == 0 &&
        bind_i64(t->c, st, 3, mfa_us, err) == 0)
        rc = stmt_step(t->c, st, "cannot record session activity", err) < 0 ? -1 : 0;
    stmt_done(st);
    if (rc != 0) {
        store_txn_rollback(t);
        return -1;
    }
    return store_txn_commit(t, err);
}

int store_session_revoke(store_txn *t, const unsigned char hash[MV_HASH_BYTES],
                         mv_err *err)
{
    return change(t->c, ST_SESS_REVOKE, hash, MV_HASH_BYTES, 0, mv_now_us(),
                  NULL, "cannot revoke a session", err);
}

int store_session_revoke_account(store_txn *t, const char *account, size_t *n,
                                 mv_err *err)
{
    return change(t->c, ST_SESS_REVOKE_ACCOUNT, account, 0, 1, mv_now_us(), n,
                  "cannot revoke sessions", err);
}

int store_session_purge(store_txn *t, int64_t cutoff_us, size_t *n, mv_err *err)
{
    return change(t->c, ST_SESS_PURGE, NULL, 0, 0, cutoff_us, n,
                  "cannot purge sessions", err);
}

int store_session_count(mv_store *s, const char *account, int64_t since_us,
                        size_t *n, mv_err *err)
{
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_SESS_COUNT, err);
    int rc = -1;
    if (st && bind_text(r.c, st, 1, account, err) == 0 &&
        bind_i64(r.c, st, 2, since_us, err) == 0 &&
        stmt_step(r.c, st, "cannot count sessions", err) == 1) {
        *n = (size_t)sqlite3_column_int64(st, 0);
        rc = 0;
    }
    stmt_done(st);
    read_end(&r);
    return rc;
}
