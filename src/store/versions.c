/*
 * versions.c -- a type's versions by time, listed from the clear columns
 * (id, version, patient, time, deleted) without opening a single body.
 *
 * Why this exists: a type-level history must be filtered by the caller's
 * access policy, patient by patient, before it is counted or paged, so the
 * server needs the whole list first; opening every sealed body of a type
 * only to drop most of them would cost a decryption per version and hold
 * plaintext no one asked for.  The bodies actually disclosed are opened
 * afterwards through store_get(), the one unseal path.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

void store_versions_free(store_version *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].patient);
    }
    free(v);
}

typedef struct version_list {
    store_version *v;
    size_t n, cap;
} version_list;

/* Append the row st is positioned on. */
static int version_push(version_list *l, sqlite3_stmt *st, mv_err *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        store_version *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *patient = (const char *)sqlite3_column_text(st, 2);
    if (id == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "a resource row has no id");
    store_version one = {
        .version = sqlite3_column_int64(st, 1),
        .updated_us = sqlite3_column_int64(st, 3),
        .deleted = sqlite3_column_int(st, 4) != 0,
    };
    if ((one.id = mv_strdup(id, err)) == NULL ||
        (patient && (one.patient = mv_strdup(patient, err)) == NULL)) {
        free(one.id);
        return -1;
    }
    l->v[l->n++] = one;
    return 0;
}

static int versions_collect(store_conn *c, sqlite3_stmt *st, version_list *l,
                            mv_err *err)
{
    int rc;
    while ((rc = stmt_step(c, st, "cannot list versions", err)) == 1)
        if (version_push(l, st, err) != 0)
            return -1;
    return rc;
}

int store_type_versions(mv_store *s, const char *type, int64_t since_us,
                        size_t limit, store_version **out, size_t *n,
                        mv_err *err)
{
    *out = NULL;
    *n = 0;
    if (type == NULL)
        return mv_fail(err, MV_E_INVALID, "a history needs a resource type");
    int64_t sql_limit = db_limit(limit);
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    version_list l = {0};
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_TYPE_VERSIONS, err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, type, err) == 0 &&
        bind_i64(r.c, st, 2, since_us, err) == 0 &&
        bind_i64(r.c, st, 3, sql_limit, err) == 0)
        rc = versions_collect(r.c, st, &l, err);
    stmt_done(st);
    read_end(&r);
    if (rc < 0) {
        db_fail_name(err, type, NULL);
        store_versions_free(l.v, l.n);
        return -1;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}
