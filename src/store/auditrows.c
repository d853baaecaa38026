/*
 * auditrows.c -- the rows of the audit trail and its signed checkpoints,
 * stored exactly as audit/ computed them.
 *
 * Why this exists: audit/ owns the chain (keyed hashes, signatures); the
 * store only keeps rows in seq order and streams them back fast enough to
 * verify millions of entries (one prepared statement, strings handed to the
 * callback straight from SQLite without copying).  A row whose hash fields
 * have the wrong size is reported as MV_E_TAMPER naming its seq.
 */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { A_SEQ, A_TS, A_ACTOR, A_ACTION, A_OUTCOME, A_RESOURCES, A_PATIENT,
       A_SOURCE, A_SESSION, A_PURPOSE, A_REQUEST_ID, A_PREV, A_HASH };

static int bind_audit_row(store_conn *c, sqlite3_stmt *st,
                          const store_audit_row *row, mv_err *err)
{
    const char *text[] = { row->actor, row->action, row->outcome,
                           row->resources, row->patient, row->source,
                           row->session, row->purpose, row->request_id };
    if (bind_i64(c, st, A_SEQ + 1, row->seq, err) != 0 ||
        bind_i64(c, st, A_TS + 1, row->ts_us, err) != 0)
        return -1;
    for (int i = 0; i < (int)(sizeof text / sizeof *text); i++)
        if (bind_text(c, st, A_ACTOR + 1 + i, text[i], err) != 0)
            return -1;
    if (bind_blob(c, st, A_PREV + 1, row->prev, MV_HASH_BYTES, err) != 0 ||
        bind_blob(c, st, A_HASH + 1, row->hash, MV_HASH_BYTES, err) != 0)
        return -1;
    return 0;
}

int store_audit_append(store_txn *t, const store_audit_row *row, mv_err *err)
{
    if (row == NULL || row->seq <= 0)
        return mv_fail(err, MV_E_INVALID, "audit rows start at seq 1");
    store_conn *c = t->c;
    sqlite3_stmt *st = conn_stmt(c, ST_AUDIT_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_audit_row(c, st, row, err) == 0) {
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        if (rc != 0 && db_is_constraint(c))
            mv_fail(err, MV_E_EXISTS, "audit row %" PRId64 " already exists",
                    row->seq);
        else if (rc != 0)
            db_fail(c, "cannot append an audit row", err);
    }
    stmt_done(st);
    return rc;
}

static int copy_hash(sqlite3_stmt *st, int col, int64_t seq,
                     unsigned char out[MV_HASH_BYTES], mv_err *err)
{
    if (sqlite3_column_bytes(st, col) != MV_HASH_BYTES)
        return mv_fail(err, MV_E_TAMPER, "audit row %" PRId64 " is malformed "
                       "(hash size)", seq);
    memcpy(out, sqlite3_column_blob(st, col), MV_HASH_BYTES);
    return 0;
}

int store_audit_last(mv_store *s, int64_t *seq,
                     unsigned char hash[MV_HASH_BYTES], mv_err *err)
{
    *seq = 0;
    memset(hash, 0, MV_HASH_BYTES);
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_AUDIT_LAST, err);
    int rc = st ? stmt_step(r.c, st, "cannot read the audit trail", err) : -1;
    if (rc == 1) {
        int64_t last = sqlite3_column_int64(st, 0);
        rc = copy_hash(st, 1, last, hash, err);
        if (rc == 0)
            *seq = last;
    }
    stmt_done(st);
    read_end(&r);
    return rc < 0 ? -1 : 0;
}

static const char *col_str(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

static int scan_row(sqlite3_stmt *st, store_audit_row *row, mv_err *err)
{
    row->seq = sqlite3_column_int64(st, A_SEQ);
    row->ts_us = sqlite3_column_int64(st, A_TS);
    row->actor = col_str(st, A_ACTOR);
    row->action = col_str(st, A_ACTION);
    row->outcome = col_str(st, A_OUTCOME);
    row->resources = col_str(st, A_RESOURCES);
    row->patient = col_str(st, A_PATIENT);
    row->source = col_str(st, A_SOURCE);
    row->session = col_str(st, A_SESSION);
    row->purpose = col_str(st, A_PURPOSE);
    row->request_id = col_str(st, A_REQUEST_ID);
    if (copy_hash(st, A_PREV, row->seq, row->prev, err) != 0 ||
        copy_hash(st, A_HASH, row->seq, row->hash, err) != 0)
        return -1;
    return 0;
}

static int scan_rows(store_conn *c, sqlite3_stmt *st, store_audit_fn fn,
                     void *ctx, mv_err *err)
{
    store_audit_row row;
    int rc;
    while ((rc = stmt_step(c, st, "cannot read the audit trail", err)) == 1) {
        if (scan_row(st, &row, err) != 0)
            return -1;
        int stop = fn(&row, ctx);
        if (stop != 0)
            return stop;
    }
    return rc;
}

int store_audit_scan(mv_store *s, int64_t from, int64_t to, store_audit_fn fn,
                     void *ctx, mv_err *err)
{
    if (fn == NULL)
        return mv_fail(err, MV_E_INVALID, "audit scan needs a callback");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_AUDIT_SCAN, err);
    int rc = -1;
    if (st != NULL && bind_i64(r.c, st, 1, from, err) == 0 &&
        bind_i64(r.c, st, 2, to > 0 ? to : INT64_MAX, err) == 0)
        rc = scan_rows(r.c, st, fn, ctx, err);
    stmt_done(st);
    read_end(&r);
    return rc;
}

int store_audit_scan_patient(mv_store *s, const char *patient, size_t limit,
                             store_audit_fn fn, void *ctx, mv_err *err)
{
    if (fn == NULL || patient == NULL)
        return mv_fail(err, MV_E_INVALID, "a patient's audit scan needs a patient "
                       "and a callback");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_AUDIT_BY_PATIENT, err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, patient, err) == 0 &&
        bind_i64(r.c, st, 2, limit ? (int64_t)limit : -1, err) == 0)
        rc = scan_rows(r.c, st, fn, ctx, err);
    stmt_done(st);
    read_end(&r);
    return rc;
}

/* ---- Checkpoints ----------------------------------------------------------- */

int store_checkpoint_put(store_txn *t, const store_checkpoint *cp, mv_err *err)
{
    store_conn *c = t->c;
    sqlite3_stmt *st = conn_stmt(c, ST_CP_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_i64(c, st, 1, cp->seq, err) == 0 &&
        bind_i64(c, st, 2, cp->ts_us, err) == 0 &&
        bind_blob(c, st, 3, cp->hash, MV_HASH_BYTES, err) == 0 &&
        bind_blob(c, st, 4, cp->sig, MV_SIG_BYTES, err) == 0) {
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        if (rc != 0 && db_is_constraint(c))
            mv_fail(err, MV_E_EXISTS, "a checkpoint at audit row %" PRId64
                    " already exists", cp->seq);
        else if (rc != 0)
            db_fail(c, "cannot store a checkpoint", err);
    }
    stmt_done(st);
    return rc;
}

static int checkpoint_row(sqlite3_stmt *st, store_checkpoint *cp, mv_err *err)
{
    cp->seq = sqlite3_column_int64(st, 0);
    cp->ts_us = sqlite3_column_int64(st, 1);
    if (sqlite3_column_bytes(st, 2) != MV_HASH_BYTES ||
        sqlite3_column_bytes(st, 3) != MV_SIG_BYTES)
        return mv_fail(err, MV_E_TAMPER, "checkpoint at audit row %" PRId64
                       " is malformed", cp->seq);
    memcpy(cp->hash, sqlite3_column_blob(st, 2), MV_HASH_BYTES);
    memcpy(cp->sig, sqlite3_column_blob(st, 3), MV_SIG_BYTES);
    return 0;
}

static int checkpoints_collect(store_conn *c, sqlite3_stmt *st,
                               store_checkpoint **out, size_t *n, mv_err *err)
{
    store_checkpoint *v = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = stmt_step(c, st, "cannot read checkpoints", err)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            store_checkpoint *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                rc = mv_fail(err, MV_E_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (checkpoint_row(st, &v[count], err) != 0) {
            rc = -1;
            break;
        }
        count++;
    }
    if (rc < 0) {
        free(v);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

int store_checkpoints(mv_store *s, store_checkpoint **out, size_t *n,
                      mv_err *err)
{
    *out = NULL;
    *n = 0;
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(r.c, ST_CP_ALL, err);
    int rc = st ? checkpoints_collect(r.c, st, out, n, err) : -1;
    stmt_done(st);
    read_end(&r);
    return rc;
}
