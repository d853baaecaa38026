/*
 * erase.c -- the GDPR right to erasure, as crypto-shredding, and the list of
 * patients the store holds keys for.
 *
 * Why this exists: resource bodies live in many versions, in the WAL and in
 * backups; deleting them all is not possible, destroying the one key that
 * opens them is.  Erasing deletes the patient's wrapped data key (secure_delete
 * zeroes the freed bytes), records the erasure (so later reads answer
 * MV_E_GONE and later writes are refused), drops the patient's index tokens,
 * and wipes any cached copy of the key.  store_scrub then checkpoints and
 * truncates the WAL so that no older page holding the wrapped key survives.
 */
#include "store_internal.h"


static int run_patient(store_conn *c, stmt_id id, const char *patient,
                       int with_time, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, id, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, patient, err) == 0 &&
        (!with_time || bind_i64(c, st, 2, mv_now_us(), err) == 0))
        rc = stmt_step(c, st, "cannot erase a patient", err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

/* 0 when patient holds a data key, else the failure (GONE / NOTFOUND). */
static int erase_check(store_conn *c, const char *patient, mv_err *err)
{
    int erased = patient_is_erased(c, patient, err);
    if (erased != 0)
        return erased < 0 ? -1 : mv_fail(err, MV_E_GONE,
                                         "patient %s was erased", patient);
    dk_row key = {0};
    int found = dk_load(c, patient, &key, err);
    dk_row_free(&key);
    if (found == 0)
        return mv_fail(err, MV_E_NOTFOUND, "no patient %s in this store",
                       patient);
    return found < 0 ? -1 : 0;
}

static int erase_unit(store_txn *t, const char *patient, mv_err *err)
{
    if (txn_unit_begin(t, err) != 0)
        return -1;
    int rc = run_patient(t->c, ST_IDX_DELETE_PATIENT, patient, 0, err);
    if (rc == 0)
        rc = run_patient(t->c, ST_DK_DELETE, patient, 0, err);
    if (rc == 0)
        rc = run_patient(t->c, ST_ERASED_INSERT, patient, 1, err);
    return txn_unit_end(t, rc == 0, err);
}

int store_erase_patient(store_txn *t, const char *patient, mv_err *err)
{
    if (patient == NULL || patient[0] == '\0' || patient[0] == '#')
        return mv_fail(err, MV_E_INVALID, "not a patient id");
    if (erase_check(t->c, patient, err) != 0 ||
        txn_forget_later(t, patient, err) != 0 ||
        erase_unit(t, patient, err) != 0)
        return -1;
    crypto_dk_forget(t->s->kr, patient);
    return 0;
}

int store_scrub(mv_store *s, mv_err *err)
{
    if (store_tl_txn == s)
        return mv_fail(err, MV_E_INVALID,
                       "cannot scrub %s inside a transaction", s->dir);
    pthread_mutex_lock(&s->write_lock);
    store_conn *c = s->writer;
    sqlite3_stmt *st = conn_stmt(c, ST_CHECKPOINT, err);
    int rc = st ? stmt_step(c, st, "cannot checkpoint", err) : -1;
    /* Columns: busy flag, WAL frames, frames checkpointed. */
    if (rc == 1 && sqlite3_column_int(st, 0) != 0)
        rc = mv_fail(err, MV_E_IO, "cannot scrub %s: the database is busy "
                     "(a reader holds an old snapshot)", s->dir);
    else if (rc == 0)
        rc = mv_fail(err, MV_E_IO, "cannot scrub %s: no checkpoint result",
                     s->dir);
    stmt_done(st);
    pthread_mutex_unlock(&s->write_lock);
    return rc < 0 ? -1 : 0;
}

int store_patients(mv_store *s, char ***ids, size_t *n, mv_err *err)
{
    *ids = NULL;
    *n = 0;
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    id_list l = {0};
    sqlite3_stmt *st = conn_stmt(r.c, ST_DK_PATIENTS, err);
    int rc = st ? collect_ids(r.c, st, &l, err) : -1;
    read_end(&r);
    if (rc != 0) {
        id_list_free(&l);
        return -1;
    }
    *ids = l.v;
    *n = l.n;
    return 0;
}

int store_patient_erased(mv_store *s, const char *patient, mv_err *err)
{
    if (patient == NULL)
        return mv_fail(err, MV_E_INVALID, "not a patient id");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    int rc = patient_is_erased(r.c, patient, err);
    read_end(&r);
    return rc;
}
