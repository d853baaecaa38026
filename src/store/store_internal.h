/*
 * store_internal.h -- what the files of store/ share and nobody else may see:
 * the SQLite connection with its cache of prepared statements, the pool of
 * reader connections, the write transaction, and the stored data-key rows.
 *
 * Why this exists: store.h is backend-neutral (a PostgreSQL backend will
 * implement it too); everything SQLite-shaped lives behind this header so
 * that no other subsystem can reach it.
 *
 * Connections: one writer, guarded by write_lock from store_txn_begin to
 * commit/rollback; up to STORE_MAX_READERS readers created lazily and handed
 * out from a mutex-protected free list.  A thread that holds the write
 * transaction reads through the writer, so it sees its own writes.
 */
#ifndef MV_STORE_INTERNAL_H
#define MV_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include "store.h"

#define STORE_DB_NAME     "medvault.db"
#define STORE_FORMAT      1
#define STORE_MAX_READERS 8

/* Every statement medvault runs after the schema exists: prepared once per
 * connection on first use (db.c holds the SQL), reset after each use. */
typedef enum stmt_id {
    ST_BEGIN, ST_BEGIN_IMMEDIATE, ST_COMMIT, ST_ROLLBACK,
    ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_CHECKPOINT,
    ST_META_GET, ST_META_PUT,
    ST_MK_ALL, ST_MK_INSERT, ST_MK_MAX, ST_MK_OLD, ST_MK_DELETE_OLD,
    ST_DK_GET, ST_DK_INSERT, ST_DK_DELETE, ST_DK_OLD_COUNT, ST_DK_OLD_BATCH,
    ST_DK_UPDATE, ST_DK_PATIENTS,
    ST_ERASED_GET, ST_ERASED_INSERT,
    ST_RES_CURRENT, ST_RES_LATEST, ST_RES_VERSION, ST_RES_INSERT, ST_RES_HISTORY_ID,
    ST_RES_HISTORY_TYPE, ST_RES_CURRENT_IDS, ST_RES_PATIENT_REFS,
    ST_RES_TYPE_VERSIONS, ST_RES_UPDATED_IDS, ST_RES_AUDIT_LINKS,
    ST_IDX_DELETE, ST_IDX_INSERT, ST_IDX_FIND, ST_IDX_HAS,
    ST_IDX_DELETE_PATIENT,
    ST_AUDIT_INSERT, ST_AUDIT_LAST, ST_AUDIT_SCAN, ST_AUDIT_BY_PATIENT,
    ST_CP_INSERT, ST_CP_ALL,
    ST_SESS_INSERT, ST_SESS_GET, ST_SESS_TOUCH, ST_SESS_REVOKE,
    ST_SESS_REVOKE_ACCOUNT, ST_SESS_COUNT, ST_SESS_PURGE,
    ST_COUNT
} stmt_id;

typedef struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    struct store_conn *next_free;   /* reader free list */
} store_conn;

/* The in-memory copy of one reserved owner's data-key row (store_owner_ref). */
typedef struct owner_copy {
    const char *owner;              /* MV_OWNER_* literal */
    uint32_t mk_version;
    unsigned char *wrapped;
    size_t len;
} owner_copy;

#define STORE_N_OWNERS 3

struct store_txn {
    mv_store *s;
    store_conn *c;                  /* the writer */
    int depth;                      /* caller savepoints open */
    char **forget;                  /* erased owners: drop cached keys at end */
    size_t n_forget;
    int64_t audit_seq;              /* the audit entry the writes belong to (0: none) */
};

struct mv_store {
    char *dir;
    char *db_path;
    unsigned char id[MV_STORE_ID_BYTES];
    crypto_keyring *kr;

    pthread_mutex_t write_lock;
    store_conn *writer;

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    store_conn *free_readers;
    size_t n_readers;

    pthread_mutex_t owners_lock;
    owner_copy owners[STORE_N_OWNERS];
    unsigned char **retired;        /* replaced wrapped copies, freed at close */
    size_t n_retired;
};

/* ---- db.c: connections and statements ------------------------------------ */

/* Open a connection to path with medvault's PRAGMAs.  create: the database
 * file is new (WAL is switched on).  reader: query_only. */
int  conn_open(const char *path, int create, int reader, store_conn **out,
               mv_err *err);
void conn_close(store_conn *c);
/* The cached statement id of c, prepared on first use. */
sqlite3_stmt *conn_stmt(store_conn *c, stmt_id id, mv_err *err);
/* Reset and clear bindings: every statement is left this way after use. */
void stmt_done(sqlite3_stmt *st);
/* Run a statement without parameters or rows (BEGIN, COMMIT, ...). */
int  conn_run(store_conn *c, stmt_id id, const char *what, mv_err *err);
/* Step: 1 = a row, 0 = done, -1 = error (err names what). */
int  stmt_step(store_conn *c, sqlite3_stmt *st, const char *what, mv_err *err);
/* MV_E_IO with SQLite's message. */
int  db_fail(store_conn *c, const char *what, mv_err *err);
/* Prefix a database error (MV_E_IO) with the resource it concerns. */
void db_fail_name(mv_err *err, const char *type, const char *id);
/* 1 when the last error on c was a constraint violation. */
int  db_is_constraint(store_conn *c);

/* A caller's row limit as SQL's LIMIT (0 = none, which SQLite spells -1). */
int64_t db_limit(size_t limit);

/* Binding helpers: NULL text binds SQL NULL; data must outlive the step. */
int bind_text(store_conn *c, sqlite3_stmt *st, int i, const char *s, mv_err *err);
int bind_blob(store_conn *c, sqlite3_stmt *st, int i, const void *p, size_t n,
              mv_err *err);
int bind_i64(store_conn *c, sqlite3_stmt *st, int i, int64_t v, mv_err *err);

/* A read: through a pooled reader, or through the writer when the calling
 * thread holds the write transaction.  snapshot: the read runs several
 * statements that must see one state (BEGIN ... ROLLBACK); a read of one
 * statement is its own snapshot and skips that. */
typedef struct store_read {
    mv_store *s;
    store_conn *c;
    int pooled;
} store_read;
int  read_begin(mv_store *s, store_read *r, int snapshot, mv_err *err);
void read_end(store_read *r);

/* ---- txn.c ---------------------------------------------------------------- */

/* The store whose write transaction this thread holds, or NULL. */
extern _Thread_local mv_store *store_tl_txn;
/* An internal all-or-nothing unit (a savepoint the caller does not see). */
int  txn_unit_begin(store_txn *t, mv_err *err);
int  txn_unit_end(store_txn *t, int ok, mv_err *err);
/* Remember an owner whose cached data key must be dropped when t ends. */
int  txn_forget_later(store_txn *t, const char *owner, mv_err *err);

/* ---- keys.c: stored data-key rows ----------------------------------------- */

typedef struct dk_row {
    const char *owner;              /* borrowed from the caller */
    uint32_t mk_version;
    unsigned char *wrapped;         /* owned copy */
    size_t len;
} dk_row;
/* 1 found, 0 absent, -1 error. */
int  dk_load(store_conn *c, const char *owner, dk_row *out, mv_err *err);
void dk_row_free(dk_row *r);
crypto_dk_ref dk_ref(const dk_row *r);
/* Create owner's data key under the current master and insert its row. */
int  dk_create(store_txn *t, const char *owner, dk_row *out, mv_err *err);
/* Reload the reserved owners' rows into s->owners. */
int  owners_refresh(mv_store *s, store_conn *c, mv_err *err);
void owners_free(mv_store *s);
/* 1 erased, 0 not, -1 error. */
int  patient_is_erased(store_conn *c, const char *patient, mv_err *err);

/* ---- search.c: id lists and index tokens -------------------------------- */

typedef struct id_list {
    char **v;
    size_t n, cap;
} id_list;
int  id_list_push(id_list *l, const char *id, mv_err *err);
void id_list_free(id_list *l);
/* Append column 0 of every row of st (bound by the caller), then reset st. */
int  collect_ids(store_conn *c, sqlite3_stmt *st, id_list *l, mv_err *err);
/* Replace the index tokens of w's resource (none for a delete);
 * had_tokens: an earlier version exists, so old tokens may too. */
/* The token of term for a resource of type, truncated to its width:
 * *len bytes of token (the last one masked).  MV_E_INTERNAL when a
 * clinical type's term has no width. */
int  index_token(crypto_keyring *kr, const dk_row *key, const char *type,
                 const store_term *term, unsigned char token[MV_INDEX_BYTES],
                 size_t *len, mv_err *err);
int  index_replace(store_txn *t, const store_write *w, int had_tokens,
                   mv_err *err);

/* ---- open.c --------------------------------------------------------------- */

/* When another process rotated the master key since we loaded ours (meta
 * master_current moved), load the new version and make it current, so that
 * no data key is ever wrapped under a deleted version.  Called at every
 * write transaction's start and when a read meets an unknown version. */
int masters_sync(mv_store *s, store_conn *c, mv_err *err);

/* ---- meta.c --------------------------------------------------------------- */

int meta_put_raw(store_conn *c, const char *key, const void *v, size_t n,
                 mv_err *err);
int meta_put_u64(store_conn *c, const char *key, uint64_t v, mv_err *err);
/* 1 found, 0 absent, -1 error. */
int meta_get_raw(store_conn *c, const char *key, mv_buf *out, mv_err *err);
int meta_get_u64(store_conn *c, const char *key, uint64_t *v, mv_err *err);

#endif /* MV_STORE_INTERNAL_H */
