/*
 * meta.c -- small named values that are not secret: the store's own
 * settings (format, store id, unlock kind, KDF salt and cost, current master
 * version) and those of other subsystems (audit's public key, ...).
 *
 * Why this exists: one table, one encoding.  Numbers are stored as decimal
 * text inside the BLOB so the file stays inspectable with the sqlite3 shell.
 * The store's own keys are refused to store_meta_put: overwriting
 * 'master_current' from outside would make the store unopenable.
 */
#include "store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reserved_meta[] = {
    "format", "store_id", "unlock", "kdf_salt", "kdf_opslimit",
    "kdf_memlimit", "master_current"
};

int meta_put_raw(store_conn *c, const char *key, const void *v, size_t n,
                 mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_META_PUT, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, key, err) == 0 &&
        bind_blob(c, st, 2, v, n, err) == 0)
        rc = stmt_step(c, st, "cannot write metadata", err) < 0 ? -1 : 0;
    stmt_done(st);
    return rc;
}

int meta_put_u64(store_conn *c, const char *key, uint64_t v, mv_err *err)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, v);
    return meta_put_raw(c, key, text, (size_t)n, err);
}

int meta_get_raw(store_conn *c, const char *key, mv_buf *out, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_META_GET, err);
    if (st == NULL || bind_text(c, st, 1, key, err) != 0) {
        stmt_done(st);
        return -1;
    }
    int rc = stmt_step(c, st, "cannot read metadata", err);
    if (rc == 1) {
        mv_buf b = {0};
        if (mv_buf_append(&b, sqlite3_column_blob(st, 0),
                          (size_t)sqlite3_column_bytes(st, 0), err) != 0)
            rc = -1;
        else
            *out = b;
    }
    stmt_done(st);
    return rc;
}

int meta_get_u64(store_conn *c, const char *key, uint64_t *v, mv_err *err)
{
    mv_buf b = {0};
    int rc = meta_get_raw(c, key, &b, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return mv_fail(err, MV_E_INTEGRITY, "metadata '%s' is missing", key);
    char text[24];
    int ok = b.len > 0 && b.len < sizeof text;
    if (ok) {
        memcpy(text, b.data, b.len);
        text[b.len] = '\0';
        char *end = NULL;
        *v = strtoull(text, &end, 10);
        ok = *end == '\0' && text[0] >= '0' && text[0] <= '9';
    }
    mv_buf_free(&b);
    return ok ? 0 : mv_fail(err, MV_E_INTEGRITY,
                            "metadata '%s' is not a number", key);
}

int store_meta_get(mv_store *s, const char *key, mv_buf *out, mv_err *err)
{
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    int rc = meta_get_raw(r.c, key, out, err);
    read_end(&r);
    if (rc == 0)
        return mv_fail(err, MV_E_NOTFOUND, "no metadata '%.64s' in %s", key,
                       s->dir);
    return rc < 0 ? -1 : 0;
}

int store_meta_put(store_txn *t, const char *key, const void *v, size_t n,
                   mv_err *err)
{
    for (size_t i = 0; i < sizeof reserved_meta / sizeof *reserved_meta; i++)
        if (strcmp(key, reserved_meta[i]) == 0)
            return mv_fail(err, MV_E_INVALID,
                           "metadata '%s' belongs to the store", key);
    return meta_put_raw(t->c, key, v, n, err);
}
