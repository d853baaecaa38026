/*
 * keys.c -- stored data-key rows: loading one, creating one, and the
 * in-memory copies of the reserved owners ("#system", "#index", "#audit")
 * that audit/ borrows through store_owner_ref.
 *
 * Why this exists: every seal, open and index token needs a crypto_dk_ref
 * built from a data_keys row.  Rows are copied out of SQLite so that a ref
 * never points into a statement that another step would invalidate.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const reserved_owners[STORE_N_OWNERS] = {
    MV_OWNER_SYSTEM, MV_OWNER_INDEX, MV_OWNER_AUDIT
};

static int copy_blob(sqlite3_stmt *st, int col, unsigned char **out,
                     size_t *len, mv_err *err)
{
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    const void *p = sqlite3_column_blob(st, col);
    unsigned char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    if (n)
        memcpy(copy, p, n);
    *out = copy;
    *len = n;
    return 0;
}

int dk_load(store_conn *c, const char *owner, dk_row *out, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_DK_GET, err);
    if (st == NULL || bind_text(c, st, 1, owner, err) != 0) {
        stmt_done(st);
        return -1;
    }
    int rc = stmt_step(c, st, "cannot read a data key", err);
    if (rc == 1) {
        out->owner = owner;
        out->mk_version = (uint32_t)sqlite3_column_int64(st, 0);
        if (copy_blob(st, 1, &out->wrapped, &out->len, err) != 0)
            rc = -1;
    }
    stmt_done(st);
    return rc;
}

void dk_row_free(dk_row *r)
{
    if (r == NULL)
        return;
    free(r->wrapped);
    r->wrapped = NULL;
    r->len = 0;
}

crypto_dk_ref dk_ref(const dk_row *r)
{
    return (crypto_dk_ref){ .owner = r->owner, .mk_version = r->mk_version,
                            .wrapped = r->wrapped, .wrapped_len = r->len };
}

static int dk_insert(store_conn *c, const char *owner, uint32_t mk_version,
                     const crypto_wrapped *w, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_DK_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, owner, err) == 0 &&
        bind_i64(c, st, 2, mk_version, err) == 0 &&
        bind_blob(c, st, 3, w->data, w->len, err) == 0)
        rc = stmt_step(c, st, "cannot store a data key", err) < 0 ? -1 : 0;
    stmt_done(st);
    return rc;
}

int dk_create(store_txn *t, const char *owner, dk_row *out, mv_err *err)
{
    mv_store *s = t->s;
    crypto_wrapped w = {0};
    uint32_t mk_version = 0;
    /* A rolled-back transaction may have left a cached key for this owner
     * that no stored row wraps any more. */
    crypto_dk_forget(s->kr, owner);
    if (crypto_dk_new(s->kr, owner, &mk_version, &w, err) != 0)
        return -1;
    int rc = dk_insert(t->c, owner, mk_version, &w, err);
    if (rc == 0) {
        out->owner = owner;
        out->mk_version = mk_version;
        out->wrapped = w.data;
        out->len = w.len;
        w.data = NULL;
        w.len = 0;
    }
    crypto_wrapped_free(&w);
    return rc;
}

int patient_is_erased(store_conn *c, const char *patient, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_ERASED_GET, err);
    if (st == NULL || bind_text(c, st, 1, patient, err) != 0) {
        stmt_done(st);
        return -1;
    }
    int rc = stmt_step(c, st, "cannot read the erasure list", err);
    stmt_done(st);
    return rc;
}

/* ---- Reserved owners ------------------------------------------------------ */

static int retire(mv_store *s, unsigned char *old, mv_err *err)
{
    if (old == NULL)
        return 0;
    unsigned char **v = realloc(s->retired, (s->n_retired + 1) * sizeof *v);
    if (v == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    s->retired = v;
    s->retired[s->n_retired++] = old;
    return 0;
}

static int owner_replace(mv_store *s, owner_copy *o, dk_row *row, mv_err *err)
{
    if (o->wrapped != NULL && o->mk_version == row->mk_version &&
        o->len == row->len && memcmp(o->wrapped, row->wrapped, o->len) == 0)
        return 0;                       /* unchanged: keep the old pointer */
    /* A borrowed ref may still point at the old copy: keep it until close. */
    if (retire(s, o->wrapped, err) != 0)
        return -1;
    o->mk_version = row->mk_version;
    o->wrapped = row->wrapped;
    o->len = row->len;
    row->wrapped = NULL;
    return 0;
}

int owners_refresh(mv_store *s, store_conn *c, mv_err *err)
{
    for (int i = 0; i < STORE_N_OWNERS; i++) {
        dk_row row = {0};
        int found = dk_load(c, reserved_owners[i], &row, err);
        if (found == 0)
            mv_fail(err, MV_E_INTEGRITY, "%s has no %s data key", s->dir,
                    reserved_owners[i]);
        if (found != 1)
            return -1;
        pthread_mutex_lock(&s->owners_lock);
        s->owners[i].owner = reserved_owners[i];
        int rc = owner_replace(s, &s->owners[i], &row, err);
        pthread_mutex_unlock(&s->owners_lock);
        dk_row_free(&row);
        if (rc != 0)
            return -1;
    }
    return 0;
}

void owners_free(mv_store *s)
{
    for (int i = 0; i < STORE_N_OWNERS; i++) {
        free(s->owners[i].wrapped);
        s->owners[i].wrapped = NULL;
    }
    for (size_t i = 0; i < s->n_retired; i++)
        free(s->retired[i]);
    free(s->retired);
    s->retired = NULL;
    s->n_retired = 0;
}

/* The ref's pointers stay valid until store_close (replaced copies are kept),
 * but after a rotation step it may name an older master version: fetch a
 * fresh ref after rotating, as store.h says. */
int store_owner_ref(mv_store *s, const char *reserved_owner,
                    crypto_dk_ref *out, mv_err *err)
{
    for (int i = 0; i < STORE_N_OWNERS; i++) {
        if (reserved_owner == NULL ||
            strcmp(reserved_owner, reserved_owners[i]) != 0)
            continue;
        pthread_mutex_lock(&s->owners_lock);
        const owner_copy *o = &s->owners[i];
        *out = (crypto_dk_ref){ .owner = reserved_owners[i],
                                .mk_version = o->mk_version,
                                .wrapped = o->wrapped,
                                .wrapped_len = o->len };
        pthread_mutex_unlock(&s->owners_lock);
        return 0;
    }
    return mv_fail(err, MV_E_INVALID, "'%s' is not a reserved owner",
                   reserved_owner ? reserved_owner : "(null)");
}

crypto_keyring *store_keyring(mv_store *s)
{
    return s->kr;
}

void store_id(const mv_store *s, unsigned char out[MV_STORE_ID_BYTES])
{
    memcpy(out, s->id, MV_STORE_ID_BYTES);
}

const char *store_dir(const mv_store *s)
{
    return s->dir;
}
