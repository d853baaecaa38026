/*
 * resources.c -- versions of resources: sealed on the way in, opened on the
 * way out.
 *
 * Why this exists: this is where the promise "every clinical byte is sealed
 * under its patient's data key" is kept.  Each body is sealed with associated
 * data binding (type, id, patient, version), so a ciphertext moved to another
 * row, resource or patient fails to open (MV_E_INTEGRITY) instead of showing
 * the wrong record; and a patient's erasure is checked before any decryption
 * is even attempted (MV_E_GONE).
 */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- Shared ---------------------------------------------------------------- */

static const char *owner_of(const char *patient)
{
    return patient ? patient : MV_OWNER_SYSTEM;
}

/* What a sealed body is bound to: its type, id, patient and version, and
 * (v2, every version written with the trail's link) the audit entry that
 * wrote it -- so that the link cannot be cleared or moved to make an
 * emptied trail look like a store written before links existed.  A v1 body
 * (written before) has no link to bind. */
static int body_ad(const char *type, const char *id, const char *patient,
                   int64_t version, int64_t audit_seq, mv_buf *ad, mv_err *err)
{
    static const char v1[] = "medvault/resource/v1", v2[] = "medvault/resource/v2";
    int rc = audit_seq > 0 ? mv_buf_append(ad, v2, sizeof v2 - 1, err)
                           : mv_buf_append(ad, v1, sizeof v1 - 1, err);
    if (rc != 0 ||
        mv_buf_append_str_field(ad, type, err) != 0 ||
        mv_buf_append_str_field(ad, id, err) != 0 ||
        mv_buf_append_str_field(ad, patient ? patient : "", err) != 0 ||
        mv_buf_append_u64(ad, (uint64_t)version, err) != 0 ||
        (audit_seq > 0 && mv_buf_append_u64(ad, (uint64_t)audit_seq, err) != 0)) {
        mv_buf_free(ad);
        return -1;
    }
    return 0;
}

static int erased_fail(const char *patient, mv_err *err)
{
    return mv_fail(err, MV_E_GONE, "patient %s was erased", patient);
}

void store_resource_free(store_resource *r)
{
    if (r == NULL)
        return;
    free(r->type);
    free(r->id);
    free(r->patient);
    if (r->body.data != NULL)
        crypto_wipe(r->body.data, r->body.len);
    mv_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

void store_resources_free(store_resource *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_resource_free(&v[i]);
    free(v);
}

/* ---- Put ------------------------------------------------------------------- */

static int write_check(const store_write *w, mv_err *err)
{
    if (w == NULL || w->type == NULL || w->type[0] == '\0' || w->id == NULL ||
        w->id[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "a resource needs a type and an id");
    if (w->patient != NULL && (w->patient[0] == '\0' || w->patient[0] == '#'))
        return mv_fail(err, MV_E_INVALID, "%s/%s: invalid patient id",
                       w->type, w->id);
    if (w->updated_us < 0)
        return mv_fail(err, MV_E_INVALID, "%s/%s: invalid version time",
                       w->type, w->id);
    if (w->if_version < -1)
        return mv_fail(err, MV_E_INVALID, "%s/%s: invalid expected version",
                       w->type, w->id);
    if (w->deleted ? w->body_len != 0 : (w->body == NULL && w->body_len != 0))
        return mv_fail(err, MV_E_INVALID, "%s/%s: %s", w->type, w->id,
                       w->deleted ? "a delete carries no body"
                                  : "body missing");
    for (size_t i = 0; i < w->n_terms; i++)
        if (w->terms[i].param == NULL || w->terms[i].value == NULL)
            return mv_fail(err, MV_E_INVALID, "%s/%s: incomplete search term",
                           w->type, w->id);
    return 0;
}

/* The current version (0 when none) and its patient (owned, may be NULL). */
static int current_of(store_conn *c, const store_write *w, int64_t *version,
                      char **patient, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_RES_CURRENT, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, w->type, err) == 0 &&
        bind_text(c, st, 2, w->id, err) == 0)
        rc = stmt_step(c, st, "cannot read a resource", err);
    *version = 0;
    *patient = NULL;
    if (rc == 1) {
        *version = sqlite3_column_int64(st, 0);
        const char *p = (const char *)sqlite3_column_text(st, 1);
        if (p != NULL && (*patient = mv_strdup(p, err)) == NULL)
            rc = -1;
    }
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

static int version_check(const store_write *w, int64_t current, mv_err *err)
{
    if (w->if_version == 0 && current != 0)
        return mv_fail(err, MV_E_CONFLICT,
                       "%s/%s: expected no version, current is %" PRId64,
                       w->type, w->id, current);
    if (w->if_version > 0 && w->if_version != current)
        return mv_fail(err, MV_E_CONFLICT,
                       "%s/%s: expected version %" PRId64 ", current is %"
                       PRId64, w->type, w->id, w->if_version, current);
    return 0;
}

static int patient_check(const store_write *w, int64_t current,
                         const char *current_patient, mv_err *err)
{
    int same = (w->patient == NULL && current_patient == NULL) ||
               (w->patient != NULL && current_patient != NULL &&
                strcmp(w->patient, current_patient) == 0);
    if (current != 0 && !same)
        return mv_fail(err, MV_E_INVALID,
                       "%s/%s cannot move to another patient", w->type, w->id);
    return 0;
}

/* The owner's data key, created on the patient's first resource. */
static int owner_key_for_put(store_txn *t, const char *patient, dk_row *key,
                             mv_err *err)
{
    int found = dk_load(t->c, owner_of(patient), key, err);
    if (found != 0)
        return found < 0 ? -1 : 0;
    if (patient == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "%s has no %s data key",
                       t->s->dir, MV_OWNER_SYSTEM);
    return dk_create(t, patient, key, err);
}

static int seal_body(store_txn *t, const store_write *w, int64_t version,
                     mv_buf *sealed, mv_err *err)
{
    dk_row key = {0};
    mv_buf ad = {0};
    int rc = -1;
    if (owner_key_for_put(t, w->patient, &key, err) == 0 &&
        body_ad(w->type, w->id, w->patient, version, t->audit_seq, &ad, err) == 0) {
        crypto_dk_ref ref = dk_ref(&key);
        rc = crypto_seal(t->s->kr, &ref, ad.data, ad.len, w->body,
                         w->body_len, sealed, err);
    }
    mv_buf_free(&ad);
    dk_row_free(&key);
    return rc;
}

static int insert_version(store_conn *c, const store_write *w, int64_t version,
                          const mv_buf *sealed, int64_t audit_seq, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_RES_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, w->type, err) == 0 &&
        bind_text(c, st, 2, w->id, err) == 0 &&
        bind_i64(c, st, 3, version, err) == 0 &&
        bind_text(c, st, 4, w->patient, err) == 0 &&
        bind_i64(c, st, 5, w->updated_us ? w->updated_us : mv_now_us(),
                 err) == 0 &&
        bind_i64(c, st, 6, w->deleted ? 1 : 0, err) == 0 &&
        (w->deleted || bind_blob(c, st, 7, sealed->data, sealed->len,
                                 err) == 0) &&
        (audit_seq == 0 || bind_i64(c, st, 8, audit_seq, err) == 0))
        rc = stmt_step(c, st, "cannot store a resource", err) < 0 ? -1 : 0;
    stmt_done(st);
    return rc;
}

static int put_version(store_txn *t, const store_write *w, int64_t version,
                       mv_err *err)
{
    if (w->patient != NULL) {
        int erased = patient_is_erased(t->c, w->patient, err);
        if (erased != 0)
            return erased < 0 ? -1 : erased_fail(w->patient, err);
    }
    mv_buf sealed = {0};
    int rc = -1;
    if ((w->deleted || seal_body(t, w, version, &sealed, err) == 0) &&
        insert_version(t->c, w, version, &sealed, t->audit_seq, err) == 0 &&
        index_replace(t, w, version > 1, err) == 0)
        rc = 0;
    mv_buf_free(&sealed);
    return rc;
}

static int put_unit(store_txn *t, const store_write *w, int64_t *version,
                    mv_err *err)
{
    int64_t current = 0;
    char *current_patient = NULL;
    if (current_of(t->c, w, &current, &current_patient, err) != 0)
        return -1;
    int rc = -1;
    if (version_check(w, current, err) == 0 &&
        patient_check(w, current, current_patient, err) == 0 &&
        put_version(t, w, current + 1, err) == 0) {
        *version = current + 1;
        rc = 0;
    }
    free(current_patient);
    return rc;
}

int store_put(store_txn *t, const store_write *w, int64_t *version_out,
              mv_err *err)
{
    if (write_check(w, err) != 0 || txn_unit_begin(t, err) != 0)
        return -1;
    int64_t version = 0;
    int rc = put_unit(t, w, &version, err);
    if (txn_unit_end(t, rc == 0, err) != 0) {
        db_fail_name(err, w->type, w->id);
        return -1;
    }
    if (version_out != NULL)
        *version_out = version;
    return 0;
}

/* ---- Reads ----------------------------------------------------------------- */

/* The columns of a RES_READ row (db.c), borrowed from the positioned
 * statement: the version, whether its patient was erased, and the owner's
 * data-key row (wrapped == NULL when there is none). */
typedef struct row_view {
    const char *type, *id, *patient;
    int64_t version, updated_us;
    int deleted;
    const void *body;
    size_t body_len;
    crypto_dk_ref key;
    int64_t audit_seq;          /* 0: written before versions were linked */
} row_view;

static row_view row_columns(sqlite3_stmt *st)
{
    row_view v = {
        .type = (const char *)sqlite3_column_text(st, 0),
        .id = (const char *)sqlite3_column_text(st, 1),
        .version = sqlite3_column_int64(st, 2),
        .patient = (const char *)sqlite3_column_text(st, 3),
        .updated_us = sqlite3_column_int64(st, 4),
        .deleted = sqlite3_column_int(st, 5) != 0,
        .body = sqlite3_column_blob(st, 6),
        .body_len = (size_t)sqlite3_column_bytes(st, 6),
    };
    v.key = (crypto_dk_ref){
        .owner = owner_of(v.patient),
        .mk_version = (uint32_t)sqlite3_column_int64(st, 7),
        .wrapped = sqlite3_column_blob(st, 8),
        .wrapped_len = (size_t)sqlite3_column_bytes(st, 8),
    };
    v.audit_seq = sqlite3_column_int64(st, 9);   /* NULL reads as 0 */
    return v;
}

/* The slow path of a read: the owner has no data-key row.  Erasure is the
 * legitimate reason; anything else means the store was damaged. */
static int missing_key_fail(mv_store *s, const row_view *v, mv_err *err)
{
    if (v->patient == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "%s has no %s data key", s->dir,
                       MV_OWNER_SYSTEM);
    int erased = store_patient_erased(s, v->patient, err);
    if (erased < 0)
        return -1;
    if (erased)
        return erased_fail(v->patient, err);
    return mv_fail(err, MV_E_INTEGRITY, "the data key of patient %s is missing",
                   v->patient);
}

/* Sync master keys from a read path: a write transaction's start does it. */
static int store_sync_keys(mv_store *s)
{
    if (store_tl_txn == s)
        return -1;          /* our own transaction already synced at begin */
    store_txn *t;
    if (store_txn_begin(s, &t, NULL) != 0)
        return -1;
    store_txn_rollback(t);
    return 0;
}

/* Open v's body with the data bound as if written with audit_seq. */
static int open_bound(mv_store *s, const row_view *v, int64_t audit_seq, mv_buf *out,
                      mv_err *e)
{
    mv_buf ad = {0};
    if (body_ad(v->type, v->id, v->patient, v->version, audit_seq, &ad, e) != 0)
        return -1;
    int rc = crypto_open(s->kr, &v->key, ad.data, ad.len, v->body, v->body_len, out, e);
    mv_buf_free(&ad);
    return rc;
}

static int open_body(mv_store *s, const row_view *v, mv_buf *out, mv_err *err)
{
    if (v->key.wrapped == NULL)
        return missing_key_fail(s, v, err);
    if (v->body == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "%s/%s version %" PRId64
                       " has no body", v->type, v->id, v->version);
    mv_err e;
    int rc = open_bound(s, v, v->audit_seq, out, &e);
    if (rc != 0 && e.code == MV_E_KEY && store_sync_keys(s) == 0)
        rc = open_bound(s, v, v->audit_seq, out, &e);  /* rotated meanwhile: once more */
    /* Versions linked before the link was sealed with the body (one
     * release) are v1: their link stays as unprotected as it was. */
    if (rc != 0 && e.code == MV_E_INTEGRITY && v->audit_seq > 0)
        rc = open_bound(s, v, 0, out, &e);
    if (rc != 0 && err != NULL)
        *err = e;
    if (rc != 0 && err != NULL && err->code == MV_E_INTEGRITY)
        mv_fail(err, MV_E_INTEGRITY, "%s/%s version %" PRId64
                " failed authentication (tampered or moved)", v->type, v->id,
                v->version);
    return rc;
}

/* An erased patient's versions answer MV_E_GONE before any decryption;
 * with open == 0 nothing is decrypted at all (the body stays empty). */
static int row_to_resource_as(mv_store *s, sqlite3_stmt *st, int open,
                              store_resource *out, mv_err *err)
{
    row_view v = row_columns(st);
    if (v.type == NULL || v.id == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "a resource row has no type or id");
    if (v.key.wrapped == NULL)
        return missing_key_fail(s, &v, err);
    store_resource r = { .version = v.version, .updated_us = v.updated_us,
                         .deleted = v.deleted };
    if ((r.type = mv_strdup(v.type, err)) == NULL ||
        (r.id = mv_strdup(v.id, err)) == NULL ||
        (v.patient && (r.patient = mv_strdup(v.patient, err)) == NULL) ||
        (open && !v.deleted && open_body(s, &v, &r.body, err) != 0)) {
        store_resource_free(&r);
        return -1;
    }
    *out = r;
    return 0;
}

static int row_to_resource(mv_store *s, sqlite3_stmt *st, store_resource *out,
                           mv_err *err)
{
    return row_to_resource_as(s, st, 1, out, err);
}

static int get_version(mv_store *s, const char *type, const char *id, int64_t version,
                       int open, store_resource *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    if (type == NULL || id == NULL || version < 0)
        return mv_fail(err, MV_E_INVALID, "a read needs a type, an id and a "
                       "version >= 0");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, version ? ST_RES_VERSION : ST_RES_LATEST,
                                 err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, type, err) == 0 &&
        bind_text(r.c, st, 2, id, err) == 0 &&
        (version == 0 || bind_i64(r.c, st, 3, version, err) == 0))
        rc = stmt_step(r.c, st, "cannot read a resource", err);
    if (rc == 0)
        rc = version ? mv_fail(err, MV_E_NOTFOUND, "%s/%s version %" PRId64
                               " not found", type, id, version)
                     : mv_fail(err, MV_E_NOTFOUND, "%s/%s not found", type, id);
    else if (rc == 1)
        rc = row_to_resource_as(s, st, open, out, err);
    stmt_done(st);
    read_end(&r);
    if (rc < 0)
        db_fail_name(err, type, id);
    return rc < 0 ? -1 : 0;
}

int store_get(mv_store *s, const char *type, const char *id, int64_t version,
              store_resource *out, mv_err *err)
{
    return get_version(s, type, id, version, 1, out, err);
}

int store_head(mv_store *s, const char *type, const char *id, int64_t version,
               store_resource *out, mv_err *err)
{
    return get_version(s, type, id, version, 0, out, err);
}

/* One read snapshot for many heads: a listing decides on every match's
 * head, and one implicit transaction per row made each match cost more than
 * the decision itself (time told how many matches a caller may not see). */
int store_heads(mv_store *s, const char *type, char *const *ids, size_t n,
                store_resource *out, mv_err *err)
{
    memset(out, 0, n * sizeof *out);
    if (type == NULL)
        return mv_fail(err, MV_E_INVALID, "a read needs a type");
    store_read r;
    if (read_begin(s, &r, 1, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_LATEST, err);
    int rc = st ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int step = bind_text(r.c, st, 1, type, err) == 0 &&
                   bind_text(r.c, st, 2, ids[i], err) == 0
                   ? stmt_step(r.c, st, "cannot read a resource", err) : -1;
        if (step == 1 && row_to_resource_as(s, st, 0, &out[i], NULL) != 0)
            memset(&out[i], 0, sizeof out[i]);   /* erased, unreadable: no head */
        if (step < 0)
            rc = -1;
        sqlite3_reset(st);
    }
    stmt_done(st);
    read_end(&r);
    for (size_t i = 0; rc != 0 && i < n; i++)
        store_resource_free(&out[i]);
    return rc;
}

int store_owners(mv_store *s, const char *type, char *const *ids, size_t n,
                 char **owners, mv_err *err)
{
    memset(owners, 0, n * sizeof *owners);
    store_read r;
    if (type == NULL)
        return mv_fail(err, MV_E_INVALID, "a read needs a type");
    if (read_begin(s, &r, 1, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_CURRENT, err);
    int rc = st ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int step = bind_text(r.c, st, 1, type, err) == 0 &&
                   bind_text(r.c, st, 2, ids[i], err) == 0
                   ? stmt_step(r.c, st, "cannot read a resource", err) : -1;
        const char *patient = step == 1 ? (const char *)sqlite3_column_text(st, 1) : NULL;
        if (patient && (owners[i] = mv_strdup(patient, err)) == NULL)
            step = -1;
        if (step < 0)
            rc = -1;
        sqlite3_reset(st);
    }
    stmt_done(st);
    read_end(&r);
    for (size_t i = 0; rc != 0 && i < n; i++) {
        free(owners[i]);
        owners[i] = NULL;
    }
    return rc;
}

/* ---- History --------------------------------------------------------------- */

static int history_push(mv_store *s, sqlite3_stmt *st,
                        store_resource **v, size_t *n, size_t *cap,
                        mv_err *err)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        store_resource *nv = realloc(*v, ncap * sizeof *nv);
        if (nv == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        *v = nv;
        *cap = ncap;
    }
    if (row_to_resource(s, st, &(*v)[*n], err) != 0)
        return -1;
    (*n)++;
    return 0;
}

static int history_collect(mv_store *s, store_conn *c, sqlite3_stmt *st,
                           store_resource **out, size_t *n, mv_err *err)
{
    store_resource *v = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = stmt_step(c, st, "cannot read history", err)) == 1)
        if (history_push(s, st, &v, &count, &cap, err) != 0) {
            rc = -1;
            break;
        }
    if (rc < 0) {
        store_resources_free(v, count);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

/* For one resource, an erased patient makes the whole history MV_E_GONE;
 * for a whole type, erased patients' resources are simply left out. */
int store_history(mv_store *s, const char *type, const char *id,
                  size_t limit, store_resource **out, size_t *n, mv_err *err)
{
    *out = NULL;
    *n = 0;
    if (type == NULL)
        return mv_fail(err, MV_E_INVALID, "history needs a resource type");
    int64_t sql_limit = db_limit(limit);
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, id ? ST_RES_HISTORY_ID
                                         : ST_RES_HISTORY_TYPE, err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, type, err) == 0 &&
        (id == NULL || bind_text(r.c, st, 2, id, err) == 0) &&
        bind_i64(r.c, st, id ? 3 : 2, sql_limit, err) == 0)
        rc = history_collect(s, r.c, st, out, n, err);
    stmt_done(st);
    read_end(&r);
    if (rc < 0)
        db_fail_name(err, type, id);
    if (rc == 0 && id != NULL && *n == 0)
        rc = mv_fail(err, MV_E_NOTFOUND, "%s/%s not found", type, id);
    return rc;
}

/* ---- What the trail must account for ----------------------------------------- */

void store_txn_set_audit_seq(store_txn *t, int64_t seq)
{
    t->audit_seq = seq;
}

int store_audit_links(mv_store *s, store_audit_link_count *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_AUDIT_LINKS, err);
    int rc = st ? stmt_step(r.c, st, "cannot read the resources' audit links", err) : -1;
    if (rc == 1) {
        out->linked = sqlite3_column_int64(st, 0);
        out->beyond = sqlite3_column_int64(st, 1);
        out->highest = sqlite3_column_int64(st, 2);
        out->trail_end = sqlite3_column_int64(st, 3);
    }
    stmt_done(st);
    read_end(&r);
    return rc < 0 ? -1 : 0;
}
