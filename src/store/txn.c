/*
 * txn.c -- write transactions: one writer connection, one writer at a time.
 *
 * Why this exists: SQLite allows a single writer; serialising writers on a
 * mutex here (held from BEGIN IMMEDIATE to COMMIT/ROLLBACK) means a writer
 * never meets SQLITE_BUSY from another thread of the same process, while
 * readers keep running on their own connections (WAL).  Savepoints give
 * callers (group commit) and store_put itself all-or-nothing units inside one
 * transaction.
 */
#include "store_internal.h"

#include <stdlib.h>

_Thread_local mv_store *store_tl_txn = NULL;

int store_txn_begin(mv_store *s, store_txn **out, mv_err *err)
{
    if (store_tl_txn == s)
        return mv_fail(err, MV_E_INVALID,
                       "this thread already holds a transaction on %s", s->dir);
    store_txn *t = mv_calloc(1, sizeof *t, err);
    if (t == NULL)
        return -1;
    pthread_mutex_lock(&s->write_lock);
    if (conn_run(s->writer, ST_BEGIN_IMMEDIATE, "cannot begin a transaction",
                 err) != 0) {
        pthread_mutex_unlock(&s->write_lock);
        free(t);
        return -1;
    }
    /* Under the write lock: a rotation by another process is seen before
     * anything is wrapped under our (possibly retired) master key. */
    if (masters_sync(s, s->writer, err) != 0) {
        conn_run(s->writer, ST_ROLLBACK, "cannot roll back", NULL);
        pthread_mutex_unlock(&s->write_lock);
        free(t);
        return -1;
    }
    t->s = s;
    t->c = s->writer;
    store_tl_txn = s;
    *out = t;
    return 0;
}

/* Release the writer and free t.  Cached copies of erased owners' data keys
 * are dropped again here: a reader may have re-cached one meanwhile. */
static void txn_end(store_txn *t)
{
    mv_store *s = t->s;
    for (size_t i = 0; i < t->n_forget; i++) {
        crypto_dk_forget(s->kr, t->forget[i]);
        free(t->forget[i]);
    }
    free(t->forget);
    store_tl_txn = NULL;
    pthread_mutex_unlock(&s->write_lock);
    free(t);
}

int store_txn_commit(store_txn *t, mv_err *err)
{
    int rc = conn_run(t->c, ST_COMMIT, "cannot commit", err);
    if (rc != 0 && !sqlite3_get_autocommit(t->c->db))
        conn_run(t->c, ST_ROLLBACK, "cannot roll back", NULL);
    txn_end(t);
    return rc;
}

void store_txn_rollback(store_txn *t)
{
    if (t == NULL)
        return;
    if (!sqlite3_get_autocommit(t->c->db))
        conn_run(t->c, ST_ROLLBACK, "cannot roll back", NULL);
    txn_end(t);
}

int store_txn_savepoint(store_txn *t, mv_err *err)
{
    if (conn_run(t->c, ST_SAVEPOINT, "cannot open a savepoint", err) != 0)
        return -1;
    t->depth++;
    return 0;
}

int store_txn_release(store_txn *t, mv_err *err)
{
    if (t->depth == 0)
        return mv_fail(err, MV_E_INVALID, "no savepoint to release");
    if (conn_run(t->c, ST_RELEASE, "cannot release a savepoint", err) != 0)
        return -1;
    t->depth--;
    return 0;
}

/* Undo the innermost unit and close it (SQLite's ROLLBACK TO keeps the
 * savepoint open; a unit that was undone is finished, so release it too). */
int store_txn_rollback_to(store_txn *t, mv_err *err)
{
    if (t->depth == 0)
        return mv_fail(err, MV_E_INVALID, "no savepoint to roll back to");
    if (conn_run(t->c, ST_ROLLBACK_TO, "cannot roll back a savepoint",
                 err) != 0 ||
        conn_run(t->c, ST_RELEASE, "cannot release a savepoint", err) != 0)
        return -1;
    t->depth--;
    return 0;
}

mv_store *store_txn_store(store_txn *t)
{
    return t->s;
}

int txn_unit_begin(store_txn *t, mv_err *err)
{
    return conn_run(t->c, ST_SAVEPOINT, "cannot open a savepoint", err);
}

int txn_unit_end(store_txn *t, int ok, mv_err *err)
{
    if (ok)
        return conn_run(t->c, ST_RELEASE, "cannot release a savepoint", err);
    mv_err ignored;
    if (conn_run(t->c, ST_ROLLBACK_TO, "cannot roll back a savepoint",
                 &ignored) == 0)
        conn_run(t->c, ST_RELEASE, "cannot release a savepoint", &ignored);
    return -1;
}

int txn_forget_later(store_txn *t, const char *owner, mv_err *err)
{
    char **v = realloc(t->forget, (t->n_forget + 1) * sizeof *v);
    if (v == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    t->forget = v;
    char *copy = mv_strdup(owner, err);
    if (copy == NULL)
        return -1;
    t->forget[t->n_forget++] = copy;
    return 0;
}
