/*
 * rotate.c -- master-key rotation in small committed steps.
 *
 * Why this exists: re-wrapping every data key of a large store cannot be one
 * transaction, and the process may be killed at any point.  So the state of a
 * rotation lives in the database itself: meta 'master_current' names the new
 * version from the moment it exists, and every data_keys row records the
 * master version that wraps it.  A rotation is "in progress" exactly while
 * some row has mk_version < master_current; rerunning begin resumes it, steps
 * re-wrap a batch per transaction, and finish deletes the old master keys
 * only when no row needs them.  Data keys themselves never change, so bodies
 * are never re-encrypted.
 */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int count_old_keys(store_conn *c, uint32_t current, int64_t *n,
                          mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_DK_OLD_COUNT, err);
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, current, err) == 0)
        rc = stmt_step(c, st, "cannot count data keys", err);
    if (rc == 1)
        *n = sqlite3_column_int64(st, 0);
    stmt_done(st);
    return rc == 1 ? 0 : -1;
}

static int current_master(store_conn *c, uint32_t *v, mv_err *err)
{
    uint64_t cur = 0;
    if (meta_get_u64(c, "master_current", &cur, err) != 0)
        return -1;
    if (cur == 0 || cur > UINT32_MAX)
        return mv_fail(err, MV_E_INTEGRITY, "invalid current master version");
    *v = (uint32_t)cur;
    return 0;
}

static int next_master_version(store_conn *c, uint32_t *v, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_MAX, err);
    int rc = st ? stmt_step(c, st, "cannot read master keys", err) : -1;
    int64_t max = rc == 1 ? sqlite3_column_int64(st, 0) : 0;
    stmt_done(st);
    if (rc != 1)
        return -1;
    if (max < 0 || max >= UINT32_MAX)
        return mv_fail(err, MV_E_INTEGRITY, "master key versions exhausted");
    *v = (uint32_t)max + 1;
    return 0;
}

static int insert_master(store_conn *c, uint32_t version,
                         const crypto_wrapped *w, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, version, err) == 0 &&
        bind_blob(c, st, 2, w->data, w->len, err) == 0 &&
        bind_i64(c, st, 3, mv_now_us(), err) == 0)
        rc = stmt_step(c, st, "cannot store a master key", err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

/* Create master `version`, store it, make it current (in memory too, while
 * the writer lock keeps any new data key from being wrapped meanwhile). */
static int add_master(store_txn *t, uint32_t version, mv_err *err)
{
    crypto_wrapped w = {0};
    if (crypto_master_new(t->s->kr, version, &w, err) != 0)
        return -1;
    int rc = insert_master(t->c, version, &w, err);
    crypto_wrapped_free(&w);
    if (rc == 0)
        rc = meta_put_u64(t->c, "master_current", version, err);
    if (rc == 0)
        rc = crypto_master_use(t->s->kr, version, err);
    if (rc != 0)
        crypto_master_forget(t->s->kr, version);
    return rc;
}

static int rotate_begin_in(store_txn *t, uint32_t *version, int *resumed,
                           mv_err *err)
{
    uint32_t current = 0;
    int64_t old = 0;
    if (current_master(t->c, &current, err) != 0 ||
        count_old_keys(t->c, current, &old, err) != 0)
        return -1;
    if (old > 0) {
        *resumed = 1;
        *version = current;
        return 0;
    }
    *resumed = 0;
    if (next_master_version(t->c, version, err) != 0)
        return -1;
    return add_master(t, *version, err);
}

int store_rotate_begin(mv_store *s, uint32_t *version, int *resumed,
                       mv_err *err)
{
    store_txn *t = NULL;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    uint32_t previous = crypto_master_current(s->kr);
    if (rotate_begin_in(t, version, resumed, err) != 0) {
        store_txn_rollback(t);
        return -1;
    }
    if (store_txn_commit(t, err) != 0) {
        if (!*resumed) {
            crypto_master_use(s->kr, previous, NULL);
            crypto_master_forget(s->kr, *version);
        }
        return -1;
    }
    return 0;
}

/* ---- Steps ----------------------------------------------------------------- */

typedef struct old_key {
    char *owner;
    dk_row row;
} old_key;

static void old_keys_free(old_key *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].owner);
        dk_row_free(&v[i].row);
    }
    free(v);
}

static int old_key_copy(sqlite3_stmt *st, old_key *k, mv_err *err)
{
    const char *owner = (const char *)sqlite3_column_text(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    if (owner == NULL || (k->owner = mv_strdup(owner, err)) == NULL)
        return owner ? -1 : mv_fail(err, MV_E_INTEGRITY, "data key without "
                                    "owner");
    k->row.owner = k->owner;
    k->row.mk_version = (uint32_t)sqlite3_column_int64(st, 1);
    k->row.wrapped = malloc(len ? len : 1);
    if (k->row.wrapped == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    if (len)
        memcpy(k->row.wrapped, sqlite3_column_blob(st, 2), len);
    k->row.len = len;
    return 0;
}

/* Up to batch rows still under an older master (copied out of SQLite first:
 * they are updated while the select would still be running). */
static int load_old_keys(store_conn *c, uint32_t current, size_t batch,
                         old_key **out, size_t *n, mv_err *err)
{
    old_key *v = mv_calloc(batch, sizeof *v, err);
    sqlite3_stmt *st = v ? conn_stmt(c, ST_DK_OLD_BATCH, err) : NULL;
    size_t count = 0;
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, current, err) == 0 &&
        bind_i64(c, st, 2, (int64_t)batch, err) == 0)
        while ((rc = stmt_step(c, st, "cannot read data keys", err)) == 1 &&
               count < batch)
            if (old_key_copy(st, &v[count++], err) != 0) {
                rc = -1;
                break;
            }
    stmt_done(st);
    if (rc < 0) {
        old_keys_free(v, count);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

static int rewrap_one(store_txn *t, const dk_row *row, mv_err *err)
{
    crypto_dk_ref ref = dk_ref(row);
    crypto_wrapped w = {0};
    uint32_t mk_version = 0;
    if (crypto_dk_rewrap(t->s->kr, &ref, &mk_version, &w, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(t->c, ST_DK_UPDATE, err);
    int rc = -1;
    if (st != NULL && bind_text(t->c, st, 1, row->owner, err) == 0 &&
        bind_i64(t->c, st, 2, mk_version, err) == 0 &&
        bind_blob(t->c, st, 3, w.data, w.len, err) == 0)
        rc = stmt_step(t->c, st, "cannot store a data key", err);
    stmt_done(st);
    crypto_wrapped_free(&w);
    return rc < 0 ? -1 : 0;
}

static int rotate_step_in(store_txn *t, size_t batch, size_t *done,
                          size_t *remaining, mv_err *err)
{
    uint32_t current = 0;
    old_key *keys = NULL;
    size_t n = 0;
    if (current_master(t->c, &current, err) != 0 ||
        load_old_keys(t->c, current, batch, &keys, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = rewrap_one(t, &keys[i].row, err);
    old_keys_free(keys, n);
    int64_t left = 0;
    if (rc == 0)
        rc = count_old_keys(t->c, current, &left, err);
    /* The new wrapping is valid whether or not the commit succeeds. */
    if (rc == 0)
        rc = owners_refresh(t->s, t->c, err);
    *done = rc == 0 ? n : 0;
    *remaining = (size_t)left;
    return rc;
}

int store_rotate_step(mv_store *s, size_t batch, size_t *done,
                      size_t *remaining, mv_err *err)
{
    if (batch == 0 || batch > INT32_MAX)
        return mv_fail(err, MV_E_INVALID, "invalid rotation batch size");
    store_txn *t = NULL;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    if (rotate_step_in(t, batch, done, remaining, err) != 0) {
        store_txn_rollback(t);
        return -1;
    }
    return store_txn_commit(t, err);
}

/* ---- Finish ---------------------------------------------------------------- */

static int old_master_versions(store_conn *c, uint32_t current,
                               uint32_t **out, size_t *n, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_OLD, err);
    uint32_t *v = NULL;
    size_t count = 0;
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, current, err) == 0)
        while ((rc = stmt_step(c, st, "cannot read master keys", err)) == 1) {
            uint32_t *nv = realloc(v, (count + 1) * sizeof *nv);
            if (nv == NULL) {
                rc = mv_fail(err, MV_E_NOMEM, "out of memory");
                break;
            }
            v = nv;
            v[count++] = (uint32_t)sqlite3_column_int64(st, 0);
        }
    stmt_done(st);
    if (rc < 0) {
        free(v);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

static int delete_old_masters(store_conn *c, uint32_t current, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_DELETE_OLD, err);
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, current, err) == 0)
        rc = stmt_step(c, st, "cannot delete old master keys", err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

static int rotate_finish_in(store_txn *t, uint32_t **old, size_t *n_old,
                            mv_err *err)
{
    uint32_t current = 0;
    int64_t left = 0;
    if (current_master(t->c, &current, err) != 0 ||
        count_old_keys(t->c, current, &left, err) != 0)
        return -1;
    if (left > 0)
        return mv_fail(err, MV_E_CONFLICT, "%" PRId64 " data keys of %s are "
                       "still under an older master key", left, t->s->dir);
    if (old_master_versions(t->c, current, old, n_old, err) != 0)
        return -1;
    return delete_old_masters(t->c, current, err);
}

int store_rotate_finish(mv_store *s, mv_err *err)
{
    store_txn *t = NULL;
    uint32_t *old = NULL;
    size_t n_old = 0;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    if (rotate_finish_in(t, &old, &n_old, err) != 0) {
        free(old);
        store_txn_rollback(t);
        return -1;
    }
    int rc = store_txn_commit(t, err);
    for (size_t i = 0; rc == 0 && i < n_old; i++)
        crypto_master_forget(s->kr, old[i]);
    free(old);
    return rc;
}
