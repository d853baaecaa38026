/*
 * db.c -- SQLite connections: the PRAGMAs every connection needs, the cache
 * of prepared statements, error mapping, and the pool of reader connections.
 *
 * Why this exists: every statement medvault runs is listed here, once, with
 * bound parameters only; nothing outside store/ sees SQL.  Statements are
 * prepared on first use per connection and reset after each use, so the hot
 * paths (reads, audit scans) never re-parse SQL.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define RES_COLS "type, id, version, patient, updated_us, deleted, body"
/* A version joined with the owner's data-key row, so that a read is one
 * statement (one snapshot).  An erased patient has no data-key row, so the
 * hot path needs no look at `erased`: only a missing key sends the reader
 * there, to tell an erasure from a damaged store. */
#define RES_READ "SELECT r.type, r.id, r.version, r.patient, r.updated_us, " \
    "r.deleted, r.body, k.mk_version, k.wrapped, r.audit_seq " \
    "FROM resources r LEFT JOIN data_keys k ON k.owner = COALESCE(r.patient, '" \
    MV_OWNER_SYSTEM "') "
#define AUDIT_COLS "seq, ts_us, actor, action, outcome, resources, patient, " \
                   "source, session, purpose, request_id, prev, hash"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN]           = "BEGIN",
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_COMMIT]          = "COMMIT",
    [ST_ROLLBACK]        = "ROLLBACK",
    [ST_SAVEPOINT]       = "SAVEPOINT mv_unit",
    [ST_RELEASE]         = "RELEASE mv_unit",
    [ST_ROLLBACK_TO]     = "ROLLBACK TO mv_unit",
    [ST_CHECKPOINT]      = "PRAGMA wal_checkpoint(TRUNCATE)",

    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",

    [ST_MK_ALL]        = "SELECT version, wrapped FROM master_keys "
                         "ORDER BY version",
    [ST_MK_INSERT]     = "INSERT INTO master_keys(version, wrapped, created_us) "
                         "VALUES (?1, ?2, ?3)",
    [ST_MK_MAX]        = "SELECT COALESCE(MAX(version), 0) FROM master_keys",
    [ST_MK_OLD]        = "SELECT version FROM master_keys WHERE version < ?1 "
                         "ORDER BY version",
    [ST_MK_DELETE_OLD] = "DELETE FROM master_keys WHERE version < ?1",

    [ST_DK_GET]       = "SELECT mk_version, wrapped FROM data_keys "
                        "WHERE owner = ?1",
    [ST_DK_INSERT]    = "INSERT INTO data_keys(owner, mk_version, wrapped) "
                        "VALUES (?1, ?2, ?3)",
    [ST_DK_DELETE]    = "DELETE FROM data_keys WHERE owner = ?1",
    [ST_DK_OLD_COUNT] = "SELECT COUNT(*) FROM data_keys WHERE mk_version < ?1",
    [ST_DK_OLD_BATCH] = "SELECT owner, mk_version, wrapped FROM data_keys "
                        "WHERE mk_version < ?1 ORDER BY owner LIMIT ?2",
    [ST_DK_UPDATE]    = "UPDATE data_keys SET mk_version = ?2, wrapped = ?3 "
                        "WHERE owner = ?1",
    [ST_DK_PATIENTS]  = "SELECT owner FROM data_keys "
                        "WHERE substr(owner, 1, 1) <> '#' ORDER BY owner",

    [ST_ERASED_GET]    = "SELECT 1 FROM erased WHERE patient = ?1",
    [ST_ERASED_INSERT] = "INSERT INTO erased(patient, erased_us) VALUES (?1, ?2)",

    [ST_RES_CURRENT] = "SELECT version, patient FROM resources "
                       "WHERE type = ?1 AND id = ?2 "
                       "ORDER BY version DESC LIMIT 1",
    [ST_RES_LATEST]  = RES_READ "WHERE r.type = ?1 AND r.id = ?2 "
                       "ORDER BY r.version DESC LIMIT 1",
    [ST_RES_VERSION] = RES_READ "WHERE r.type = ?1 AND r.id = ?2 AND "
                       "r.version = ?3",
    [ST_RES_INSERT]  = "INSERT INTO resources(" RES_COLS ", audit_seq) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* One snapshot for both tables: a version and its entry commit together. */
    [ST_RES_AUDIT_LINKS] = "SELECT count(r.audit_seq), "
                           "coalesce(sum(r.audit_seq > e.last), 0), "
                           "coalesce(max(r.audit_seq), 0), e.last "
                           "FROM resources r, (SELECT coalesce(max(seq), 0) AS last "
                           "FROM audit) e",
    [ST_RES_HISTORY_ID]   = RES_READ "WHERE r.type = ?1 AND r.id = ?2 "
                            "ORDER BY r.version DESC LIMIT ?3",
    [ST_RES_HISTORY_TYPE] = RES_READ "WHERE r.type = ?1 AND k.owner IS NOT NULL "
                            "ORDER BY r.seq DESC LIMIT ?2",
    /* SQLite takes the bare columns of a MAX() aggregate from the max row. */
    [ST_RES_CURRENT_IDS]  = "SELECT id FROM (SELECT id, deleted, patient, "
                            "MAX(version) FROM resources WHERE type = ?1 "
                            "GROUP BY id) WHERE deleted = 0 AND (patient IS "
                            "NULL OR patient NOT IN (SELECT patient FROM "
                            "erased)) ORDER BY id",

    /* A type's versions by time, without bodies (the clear columns only);
     * the join leaves out erased patients (their key row is gone). */
    [ST_RES_TYPE_VERSIONS] = "SELECT r.id, r.version, r.patient, r.updated_us, "
                             "r.deleted FROM resources r JOIN data_keys k ON "
                             "k.owner = COALESCE(r.patient, '" MV_OWNER_SYSTEM "') "
                             "WHERE r.type = ?1 AND r.updated_us >= ?2 "
                             "ORDER BY r.seq DESC LIMIT ?3",
    /* Current versions stored inside [?2, ?3) (?4 = 0) or outside it (?4 = 1). */
    [ST_RES_UPDATED_IDS]  = "SELECT id FROM (SELECT id, deleted, patient, "
                            "updated_us, MAX(version) FROM resources WHERE "
                            "type = ?1 GROUP BY id) WHERE deleted = 0 AND "
                            "((updated_us >= ?2 AND updated_us < ?3) <> ?4) AND "
                            "(patient IS NULL OR patient NOT IN (SELECT patient "
                            "FROM erased)) ORDER BY id",

    /* The bare columns of a MAX() aggregate come from the max row. */
    [ST_RES_PATIENT_REFS] = "SELECT type || '/' || id FROM (SELECT type, id, "
                            "deleted, MAX(version) FROM resources WHERE "
                            "patient = ?1 GROUP BY type, id) WHERE deleted = 0 "
                            "ORDER BY 1",

    [ST_IDX_DELETE] = "DELETE FROM search_index WHERE type = ?1 AND id = ?2",
    [ST_IDX_INSERT] = "INSERT OR IGNORE INTO search_index(type, param, token, "
                      "id) VALUES (?1, ?2, ?3, ?4)",
    [ST_IDX_FIND]   = "SELECT id FROM search_index WHERE type = ?1 AND "
                      "param = ?2 AND token = ?3 ORDER BY id",
    [ST_IDX_HAS]    = "SELECT 1 FROM search_index WHERE type = ?1 AND "
                      "param = ?2 AND token = ?3 AND id = ?4",
    [ST_IDX_DELETE_PATIENT] = "DELETE FROM search_index WHERE (type, id) IN "
                              "(SELECT type, id FROM resources "
                              "WHERE patient = ?1)",

    [ST_AUDIT_INSERT] = "INSERT INTO audit(" AUDIT_COLS ") VALUES (?1, ?2, "
                        "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_AUDIT_LAST]   = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ST_AUDIT_SCAN]   = "SELECT " AUDIT_COLS " FROM audit WHERE seq >= ?1 AND seq <= ?2 "
                        "ORDER BY seq",

    [ST_AUDIT_BY_PATIENT] = "SELECT " AUDIT_COLS " FROM audit WHERE patient = ?1 "
                            "ORDER BY seq DESC LIMIT ?2",

    [ST_CP_INSERT] = "INSERT INTO audit_checkpoints(seq, ts_us, hash, sig) "
                     "VALUES (?1, ?2, ?3, ?4)",
    [ST_CP_ALL]    = "SELECT seq, ts_us, hash, sig FROM audit_checkpoints "
                     "ORDER BY seq",

    [ST_SESS_INSERT] = "INSERT INTO sessions(token_hash, account, created_us, "
                       "last_seen_us, mfa_us, revoked, source) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
    [ST_SESS_GET]    = "SELECT account, created_us, last_seen_us, mfa_us, revoked, "
                       "source FROM sessions WHERE token_hash = ?1",
    [ST_SESS_TOUCH]  = "UPDATE sessions SET last_seen_us = max(last_seen_us, ?2), "
                       "mfa_us = CASE WHEN ?3 > 0 THEN ?3 ELSE mfa_us END "
                       "WHERE token_hash = ?1",
    [ST_SESS_REVOKE] = "UPDATE sessions SET revoked = ?2 WHERE token_hash = ?1 "
                       "AND revoked = 0",
    [ST_SESS_REVOKE_ACCOUNT] = "UPDATE sessions SET revoked = ?2 "
                               "WHERE account = ?1 AND revoked = 0",
    [ST_SESS_COUNT]  = "SELECT count(*) FROM sessions WHERE account = ?1 "
                       "AND revoked = 0 AND last_seen_us >= ?2",
    [ST_SESS_PURGE]  = "DELETE FROM sessions WHERE last_seen_us < ?1 "
                       "OR (revoked > 0 AND revoked < ?1)",
};

/* Static text, no values: the same on every connection. */
static const char conn_pragmas[] =
    "PRAGMA synchronous = FULL;"
    "PRAGMA foreign_keys = ON;"
    "PRAGMA secure_delete = ON;"
    "PRAGMA busy_timeout = 5000;"
    "PRAGMA trusted_schema = OFF;"
    /* 32 MiB of page cache per connection (SQLite's default is 2 MiB): a
     * read then finds its index and overflow pages in memory instead of
     * paying a pread() each.  Bounded: at most 1 writer + 8 readers. */
    "PRAGMA cache_size = -32768;";

int db_fail(store_conn *c, const char *what, mv_err *err)
{
    return mv_fail(err, MV_E_IO, "%s: %s", what,
                   c && c->db ? sqlite3_errmsg(c->db) : "no database");
}

void db_fail_name(mv_err *err, const char *type, const char *id)
{
    if (err == NULL || err->code != MV_E_IO)
        return;
    char msg[MV_ERR_MSG_MAX];
    memcpy(msg, err->msg, sizeof msg);
    mv_fail(err, MV_E_IO, "%s/%s: %s", type, id ? id : "*", msg);
}

int db_is_constraint(store_conn *c)
{
    return (sqlite3_extended_errcode(c->db) & 0xff) == SQLITE_CONSTRAINT;
}

static int conn_exec_text(store_conn *c, const char *sql, const char *what,
                          mv_err *err)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(c, what, err);
    return 0;
}

static int conn_enable_wal(store_conn *c, mv_err *err)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st,
                                NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    int rc = ok ? 0 : db_fail(c, "cannot switch the database to WAL", err);
    sqlite3_finalize(st);
    return rc;
}

static int conn_configure(store_conn *c, int create, int reader, mv_err *err)
{
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (conn_exec_text(c, conn_pragmas, "cannot configure the database", err))
        return -1;
    if (create && conn_enable_wal(c, err) != 0)
        return -1;
    if (reader && conn_exec_text(c, "PRAGMA query_only = ON;",
                                 "cannot configure a reader", err) != 0)
        return -1;
    return 0;
}

int conn_open(const char *path, int create, int reader, store_conn **out,
              mv_err *err)
{
    store_conn *c = mv_calloc(1, sizeof *c, err);
    if (c == NULL)
        return -1;
    /* Never SQLITE_OPEN_CREATE: the creator makes the file itself (0600). */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        mv_fail(err, MV_E_IO, "cannot open %s: %s", path,
                c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return -1;
    }
    if (conn_configure(c, create, reader, err) != 0) {
        conn_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

void conn_close(store_conn *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

sqlite3_stmt *conn_stmt(store_conn *c, stmt_id id, mv_err *err)
{
    sqlite3_stmt *st = c->stmt[id];
    if (st == NULL) {
        if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1,
                               SQLITE_PREPARE_PERSISTENT, &st,
                               NULL) != SQLITE_OK) {
            db_fail(c, "cannot prepare a statement", err);
            return NULL;
        }
        c->stmt[id] = st;
    }
    /* A cached statement cannot serve two callers at once (re-entrancy,
     * e.g. an audit scan callback scanning again on the same connection). */
    if (sqlite3_stmt_busy(st)) {
        mv_fail(err, MV_E_INTERNAL, "statement %d re-entered", (int)id);
        return NULL;
    }
    return st;
}

void stmt_done(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int stmt_step(store_conn *c, sqlite3_stmt *st, const char *what, mv_err *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(c, what, err);
}

int conn_run(store_conn *c, stmt_id id, const char *what, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, id, err);
    if (st == NULL)
        return -1;
    int rc = stmt_step(c, st, what, err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

int bind_text(store_conn *c, sqlite3_stmt *st, int i, const char *s,
              mv_err *err)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC)
               : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : db_fail(c, "cannot bind a value", err);
}

int bind_blob(store_conn *c, sqlite3_stmt *st, int i, const void *p, size_t n,
              mv_err *err)
{
    /* A NULL pointer would bind SQL NULL: an empty value is a zero blob. */
    int rc = n == 0 ? sqlite3_bind_zeroblob(st, i, 0)
                    : sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
    return rc == SQLITE_OK ? 0 : db_fail(c, "cannot bind a value", err);
}

int64_t db_limit(size_t limit)
{
    return limit == 0 || (uint64_t)limit > (uint64_t)INT64_MAX ? -1
                                                              : (int64_t)limit;
}

int bind_i64(store_conn *c, sqlite3_stmt *st, int i, int64_t v, mv_err *err)
{
    int rc = sqlite3_bind_int64(st, i, v);
    return rc == SQLITE_OK ? 0 : db_fail(c, "cannot bind a value", err);
}

/* ---- Reader pool ---------------------------------------------------------- */

static int reader_acquire(mv_store *s, store_conn **out, mv_err *err)
{
    pthread_mutex_lock(&s->pool_lock);
    while (s->free_readers == NULL && s->n_readers >= STORE_MAX_READERS)
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    store_conn *c = s->free_readers;
    if (c != NULL) {
        s->free_readers = c->next_free;
        c->next_free = NULL;
    } else {
        s->n_readers++;     /* reserve the slot, open outside the lock */
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (c != NULL) {
        *out = c;
        return 0;
    }
    if (conn_open(s->db_path, 0, 1, out, err) == 0)
        return 0;
    pthread_mutex_lock(&s->pool_lock);
    s->n_readers--;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
    return -1;
}

static void reader_release(mv_store *s, store_conn *c)
{
    pthread_mutex_lock(&s->pool_lock);
    c->next_free = s->free_readers;
    s->free_readers = c;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

int read_begin(mv_store *s, store_read *r, int snapshot, mv_err *err)
{
    r->s = s;
    if (store_tl_txn == s) {
        r->c = s->writer;
        r->pooled = 0;
        return 0;
    }
    if (reader_acquire(s, &r->c, err) != 0)
        return -1;
    r->pooled = 1;
    if (snapshot &&
        conn_run(r->c, ST_BEGIN, "cannot begin a read", err) != 0) {
        reader_release(s, r->c);
        return -1;
    }
    return 0;
}

void read_end(store_read *r)
{
    if (!r->pooled)
        return;
    if (!sqlite3_get_autocommit(r->c->db))
        conn_run(r->c, ST_ROLLBACK, "cannot end a read", NULL);
    reader_release(r->s, r->c);
}
