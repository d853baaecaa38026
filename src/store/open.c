/*
 * open.c -- a store's life: create (directory, schema, first keys), open
 * (metadata, root key, master keys), close (wipe every key).
 *
 * Why this exists: the order of these steps is what makes a stolen data
 * directory useless.  The root key never enters DIR (key file elsewhere, or
 * Argon2id of a passphrase whose salt and cost alone are stored); master keys
 * are stored wrapped under it with the store id as associated data; so
 * opening with the wrong root key fails at the first master key (MV_E_KEY)
 * before any data key or body is touched.
 *
 * There is deliberately no switch to weaken the passphrase KDF: an
 * environment variable left set on a production host would silently create
 * a store that falls to a GPU in an afternoon.
 */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNLOCK_KEYFILE    "keyfile"
#define UNLOCK_PASSPHRASE "passphrase"

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE TABLE master_keys(version INTEGER PRIMARY KEY,"
    "  wrapped BLOB NOT NULL, created_us INTEGER NOT NULL) STRICT;"
    "CREATE TABLE data_keys(owner TEXT PRIMARY KEY,"
    "  mk_version INTEGER NOT NULL, wrapped BLOB NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE INDEX data_keys_mk ON data_keys(mk_version);"
    "CREATE TABLE erased(patient TEXT PRIMARY KEY,"
    "  erased_us INTEGER NOT NULL) STRICT, WITHOUT ROWID;"
    /* audit_seq: the audit entry that wrote the version (NULL: written
     * outside the trail, or before stores recorded it). */
    "CREATE TABLE resources(seq INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    "  id TEXT NOT NULL, version INTEGER NOT NULL, patient TEXT,"
    "  updated_us INTEGER NOT NULL, deleted INTEGER NOT NULL, body BLOB,"
    "  audit_seq INTEGER, UNIQUE(type, id, version)) STRICT;"
    "CREATE INDEX resources_patient ON resources(patient);"
    "CREATE TABLE search_index(type TEXT NOT NULL, param TEXT NOT NULL,"
    "  token BLOB NOT NULL, id TEXT NOT NULL) STRICT;"
    "CREATE UNIQUE INDEX search_lookup ON search_index(type, param, token, id);"
    "CREATE INDEX search_owner ON search_index(type, id);"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL,"
    "  actor TEXT, action TEXT, outcome TEXT, resources TEXT, patient TEXT,"
    "  source TEXT, session TEXT, purpose TEXT, request_id TEXT,"
    "  prev BLOB NOT NULL, hash BLOB NOT NULL) STRICT;"
    "CREATE INDEX audit_patient ON audit(patient, seq);"
    "CREATE TABLE audit_checkpoints(seq INTEGER PRIMARY KEY,"
    "  ts_us INTEGER NOT NULL, hash BLOB NOT NULL, sig BLOB NOT NULL) STRICT;"
    /* revoked: 0 live, else the revocation time (us). */
    "CREATE TABLE sessions(token_hash BLOB PRIMARY KEY, account TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,"
    "  mfa_us INTEGER NOT NULL, revoked INTEGER NOT NULL, source TEXT)"
    "  STRICT, WITHOUT ROWID;"
    "CREATE INDEX sessions_account ON sessions(account);";

static const char *const db_suffixes[] = { "", "-wal", "-shm" };

/* ---- The mv_store object -------------------------------------------------- */

static mv_store *store_alloc(const char *dir, mv_err *err)
{
    mv_store *s = mv_calloc(1, sizeof *s, err);
    if (s == NULL)
        return NULL;
    s->dir = mv_strdup(dir, err);
    s->db_path = s->dir ? mv_path_join(dir, STORE_DB_NAME, err) : NULL;
    if (s->db_path == NULL) {
        free(s->dir);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->owners_lock, NULL);
    return s;
}

void store_close(mv_store *s)
{
    if (s == NULL)
        return;
    conn_close(s->writer);
    while (s->free_readers != NULL) {
        store_conn *c = s->free_readers;
        s->free_readers = c->next_free;
        conn_close(c);
    }
    owners_free(s);
    crypto_keyring_free(s->kr);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->owners_lock);
    free(s->db_path);
    free(s->dir);
    free(s);
}

static int unlock_check(const store_unlock *u, mv_err *err)
{
    if (u == NULL || (u->key_file == NULL) == (u->passphrase == NULL))
        return mv_fail(err, MV_E_INVALID,
                       "give exactly one of a key file or a passphrase");
    return 0;
}

/* ---- Create ----------------------------------------------------------------*/

static int dir_check_empty(const char *dir, mv_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return mv_fail(err, errno == ENOTDIR ? MV_E_EXISTS : MV_E_IO,
                       "cannot use %s: %s", dir, strerror(errno));
    int has_store = 0, has_any = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        has_any = 1;
        has_store |= strcmp(e->d_name, STORE_DB_NAME) == 0;
    }
    closedir(d);
    if (has_store)
        return mv_fail(err, MV_E_EXISTS, "%s already holds a store", dir);
    if (has_any)
        return mv_fail(err, MV_E_EXISTS, "%s is not empty", dir);
    return 0;
}

/* Create dir 0700, or accept an existing empty one and make it 0700. */
static int dir_prepare(const char *dir, int *made, mv_err *err)
{
    *made = 0;
    if (mkdir(dir, 0700) == 0) {
        *made = 1;
    } else if (errno != EEXIST) {
        return mv_fail(err, MV_E_IO, "cannot create %s: %s", dir,
                       strerror(errno));
    } else if (dir_check_empty(dir, err) != 0) {
        return -1;
    }
    if (chmod(dir, 0700) != 0) {
        int e = errno;
        if (*made)
            rmdir(dir);
        return mv_fail(err, MV_E_IO, "cannot chmod %s: %s", dir, strerror(e));
    }
    return 0;
}

/* Undo a failed create: close the writer first so SQLite lets go of the
 * files, then remove only what this call made. */
static void remove_created(mv_store *s, int made_db, int made_dir)
{
    conn_close(s->writer);
    s->writer = NULL;
    size_t n = strlen(s->db_path);
    char *p = made_db ? malloc(n + 8) : NULL;
    for (size_t i = 0; p && i < sizeof db_suffixes / sizeof *db_suffixes; i++) {
        memcpy(p, s->db_path, n);
        strcpy(p + n, db_suffixes[i]);
        unlink(p);
    }
    free(p);
    if (made_dir)
        rmdir(s->dir);
}

/* The database file is made here, 0600 whatever the umask (SQLite gives the
 * -wal and -shm files the same mode), never by SQLite itself. */
static int db_file_create(const char *path, mv_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return mv_fail(err, errno == EEXIST ? MV_E_EXISTS : MV_E_IO,
                       "cannot create %s: %s", path, strerror(errno));
    int rc = fchmod(fd, 0600);
    close(fd);
    return rc == 0 ? 0 : mv_fail(err, MV_E_IO, "cannot chmod %s", path);
}

/* The root key of a new store; unlock settings go to meta (inside the
 * creating transaction, on c). */
static int create_keyring(mv_store *s, const store_unlock *u, mv_err *err)
{
    if (u->key_file != NULL)
        return crypto_keyring_from_keyfile(u->key_file, &s->kr, err);
    if (u->passphrase_len == 0)
        return mv_fail(err, MV_E_INVALID, "empty passphrase");
    unsigned char salt[MV_SALT_BYTES];
    crypto_random(salt, sizeof salt);
    crypto_kdf_params params = crypto_kdf_default();
    store_conn *c = s->writer;
    if (meta_put_raw(c, "kdf_salt", salt, sizeof salt, err) != 0 ||
        meta_put_u64(c, "kdf_opslimit", params.opslimit, err) != 0 ||
        meta_put_u64(c, "kdf_memlimit", params.memlimit, err) != 0)
        return -1;
    return crypto_keyring_from_passphrase(u->passphrase, u->passphrase_len,
                                          salt, params, &s->kr, err);
}

static int create_master_v1(mv_store *s, mv_err *err)
{
    crypto_wrapped w = {0};
    if (crypto_master_new(s->kr, 1, &w, err) != 0)
        return -1;
    sqlite3_stmt *st = conn_stmt(s->writer, ST_MK_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_i64(s->writer, st, 1, 1, err) == 0 &&
        bind_blob(s->writer, st, 2, w.data, w.len, err) == 0 &&
        bind_i64(s->writer, st, 3, mv_now_us(), err) == 0 &&
        stmt_step(s->writer, st, "cannot store the master key", err) == 0)
        rc = 0;
    stmt_done(st);
    crypto_wrapped_free(&w);
    if (rc != 0)
        return -1;
    if (meta_put_u64(s->writer, "master_current", 1, err) != 0)
        return -1;
    return crypto_master_use(s->kr, 1, err);
}

static int create_reserved_keys(mv_store *s, mv_err *err)
{
    static const char *const owners[] = {
        MV_OWNER_SYSTEM, MV_OWNER_INDEX, MV_OWNER_AUDIT
    };
    store_txn t = { .s = s, .c = s->writer };
    for (size_t i = 0; i < sizeof owners / sizeof *owners; i++) {
        dk_row row = {0};
        if (dk_create(&t, owners[i], &row, err) != 0)
            return -1;
        dk_row_free(&row);
    }
    return 0;
}

static int create_contents(mv_store *s, const store_unlock *u, mv_err *err)
{
    store_conn *c = s->writer;
    const char *kind = u->key_file ? UNLOCK_KEYFILE : UNLOCK_PASSPHRASE;
    crypto_random(s->id, sizeof s->id);
    if (sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(c, "cannot create the schema", err);
    if (meta_put_u64(c, "format", STORE_FORMAT, err) != 0 ||
        meta_put_raw(c, "store_id", s->id, sizeof s->id, err) != 0 ||
        meta_put_raw(c, "unlock", kind, strlen(kind), err) != 0 ||
        create_keyring(s, u, err) != 0)
        return -1;
    crypto_keyring_set_store_id(s->kr, s->id);
    unsigned char check[MV_HASH_BYTES];
    crypto_root_check(s->kr, check);
    if (meta_put_raw(c, "root_check", check, sizeof check, err) != 0 ||
        create_master_v1(s, err) != 0 || create_reserved_keys(s, err) != 0)
        return -1;
    return 0;
}

static int create_in(mv_store *s, const store_unlock *u, int *made_db,
                     mv_err *err)
{
    if (db_file_create(s->db_path, err) != 0)
        return -1;
    *made_db = 1;
    if (conn_open(s->db_path, 1, 0, &s->writer, err) != 0 ||
        conn_run(s->writer, ST_BEGIN_IMMEDIATE, "cannot begin", err) != 0)
        return -1;
    if (create_contents(s, u, err) != 0 ||
        conn_run(s->writer, ST_COMMIT, "cannot commit the new store",
                 err) != 0) {
        conn_run(s->writer, ST_ROLLBACK, "cannot roll back", NULL);
        return -1;
    }
    return owners_refresh(s, s->writer, err);
}

int store_create(const char *dir, const store_unlock *u, mv_store **out,
                 mv_err *err)
{
    if (unlock_check(u, err) != 0 || crypto_init(err) != 0)
        return -1;
    int made_dir = 0;
    if (dir_prepare(dir, &made_dir, err) != 0)
        return -1;
    mv_store *s = store_alloc(dir, err);
    if (s == NULL) {
        if (made_dir)
            rmdir(dir);
        return -1;
    }
    int made_db = 0;
    if (create_in(s, u, &made_db, err) != 0) {
        remove_created(s, made_db, made_dir);
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- Open ------------------------------------------------------------------*/

static int keyfile_outside_dir(const char *key_file, const char *dir,
                               mv_err *err)
{
    char *k = mv_path_real(key_file, err);
    if (k == NULL)
        return -1;
    char *d = mv_path_real(dir, err);
    int inside = d ? mv_path_is_under(k, d) : -1;
    free(k);
    free(d);
    if (inside < 0)
        return -1;
    if (inside)
        return mv_fail(err, MV_E_PERM,
                       "key file %s lies inside the store directory %s",
                       key_file, dir);
    return 0;
}

static int open_passphrase_keyring(mv_store *s, const store_unlock *u,
                                   mv_err *err)
{
    mv_buf salt = {0};
    crypto_kdf_params params;
    uint64_t ops = 0, mem = 0;
    int found = meta_get_raw(s->writer, "kdf_salt", &salt, err);
    int rc = -1;
    if (found == 0 || (found == 1 && salt.len != MV_SALT_BYTES))
        mv_fail(err, MV_E_INTEGRITY, "%s has no valid KDF salt", s->dir);
    else if (found == 1 &&
             meta_get_u64(s->writer, "kdf_opslimit", &ops, err) == 0 &&
             meta_get_u64(s->writer, "kdf_memlimit", &mem, err) == 0) {
        params.opslimit = ops;
        params.memlimit = (size_t)mem;
        rc = crypto_keyring_from_passphrase(u->passphrase, u->passphrase_len,
                                            salt.data, params, &s->kr, err);
    }
    mv_buf_free(&salt);
    return rc;
}

static int open_keyring(mv_store *s, const store_unlock *u, mv_err *err)
{
    mv_buf kind = {0};
    int found = meta_get_raw(s->writer, "unlock", &kind, err);
    if (found < 0)
        return -1;
    int is_keyfile = found && kind.len == strlen(UNLOCK_KEYFILE) &&
                     memcmp(kind.data, UNLOCK_KEYFILE, kind.len) == 0;
    int is_pass = found && kind.len == strlen(UNLOCK_PASSPHRASE) &&
                  memcmp(kind.data, UNLOCK_PASSPHRASE, kind.len) == 0;
    mv_buf_free(&kind);
    if (!is_keyfile && !is_pass)
        return mv_fail(err, MV_E_INTEGRITY, "%s: unknown unlock method",
                       s->dir);
    if (is_keyfile && u->key_file == NULL)
        return mv_fail(err, MV_E_KEY,
                       "%s is unlocked with a key file, not a passphrase",
                       s->dir);
    if (is_pass && u->passphrase == NULL)
        return mv_fail(err, MV_E_KEY,
                       "%s is unlocked with a passphrase, not a key file",
                       s->dir);
    if (is_pass)
        return open_passphrase_keyring(s, u, err);
    if (keyfile_outside_dir(u->key_file, s->dir, err) != 0)
        return -1;
    return crypto_keyring_from_keyfile(u->key_file, &s->kr, err);
}

static int open_check_format(mv_store *s, mv_err *err)
{
    uint64_t format = 0;
    if (meta_get_u64(s->writer, "format", &format, err) != 0)
        return -1;
    if (format != STORE_FORMAT)
        return mv_fail(err, MV_E_INVALID,
                       "%s has store format %llu; this medvault reads %d",
                       s->dir, (unsigned long long)format, STORE_FORMAT);
    mv_buf id = {0};
    int found = meta_get_raw(s->writer, "store_id", &id, err);
    int ok = found == 1 && id.len == MV_STORE_ID_BYTES;
    if (ok)
        memcpy(s->id, id.data, MV_STORE_ID_BYTES);
    mv_buf_free(&id);
    if (found < 0)
        return -1;
    return ok ? 0 : mv_fail(err, MV_E_INTEGRITY, "%s has no valid store id",
                            s->dir);
}

/* The key given must be this store's before any master key is tried, so a
 * master key that then fails to open is known to be damaged, not the key
 * wrong. */
static int check_root_key(mv_store *s, mv_err *err)
{
    mv_buf stored = {0};
    int found = meta_get_raw(s->writer, "root_check", &stored, err);
    if (found < 0)
        return -1;
    if (found == 0)
        return mv_fail(err, MV_E_INTEGRITY, "%s has no root key check", s->dir);
    unsigned char check[MV_HASH_BYTES];
    crypto_root_check(s->kr, check);
    int same = stored.len == sizeof check &&
               crypto_memcmp(stored.data, check, sizeof check) == 0;
    mv_buf_free(&stored);
    return same ? 0 : mv_fail(err, MV_E_KEY, "wrong passphrase or key file for %s",
                              s->dir);
}

/* 1 when master key version v still has a row. */
static int master_row_exists(store_conn *c, uint32_t v)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_ALL, NULL);
    int found = 0;
    while (st && stmt_step(c, st, "cannot read master keys", NULL) == 1)
        if ((uint32_t)sqlite3_column_int64(st, 0) == v)
            found = 1;
    stmt_done(st);
    return found;
}

static int load_one_master(mv_store *s, sqlite3_stmt *st, mv_err *err)
{
    uint32_t version = (uint32_t)sqlite3_column_int64(st, 0);
    if (crypto_master_load(s->kr, version, sqlite3_column_blob(st, 1),
                           (size_t)sqlite3_column_bytes(st, 1), err) == 0)
        return 0;
    if (err && err->code == MV_E_KEY)
        mv_fail(err, MV_E_INTEGRITY, "master key version %u of %s is damaged "
                "(the key is right, the stored master key does not open)",
                version, s->dir);
    return -1;
}

static int load_masters(mv_store *s, store_conn *c, mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_MK_ALL, err);
    if (st == NULL)
        return -1;
    int rc, n = 0;
    while ((rc = stmt_step(c, st, "cannot read master keys", err)) == 1) {
        if (load_one_master(s, st, err) != 0) {
            rc = -1;
            break;
        }
        n++;
    }
    stmt_done(st);
    if (rc < 0)
        return -1;
    uint64_t current = 0;
    if (n == 0)
        return mv_fail(err, MV_E_INTEGRITY, "%s has no master key", s->dir);
    if (meta_get_u64(c, "master_current", &current, err) != 0)
        return -1;
    return crypto_master_use(s->kr, (uint32_t)current, err);
}

int masters_sync(mv_store *s, store_conn *c, mv_err *err)
{
    uint64_t current;
    if (meta_get_u64(c, "master_current", &current, err) != 0)
        return -1;
    if (current == crypto_master_current(s->kr))
        return 0;
    /* Another process rotated: load the new version, make it current, and
     * drop the versions a finished rotation deleted (they wrap nothing). */
    uint32_t before = crypto_master_current(s->kr);
    if (load_masters(s, c, err) != 0 || owners_refresh(s, c, err) != 0)
        return -1;
    for (uint32_t v = 1; v < before && v < (uint32_t)current; v++)
        if (!master_row_exists(c, v))
            crypto_master_forget(s->kr, v);
    return 0;
}

/* Stores made before versions named their audit entry get the column (its
 * rows stay NULL).  Best effort: a store opened read-only, or busy, keeps
 * working without it until an open that can add it. */
static void add_audit_links(mv_store *s)
{
    (void)sqlite3_exec(s->writer->db,
                       "ALTER TABLE resources ADD COLUMN audit_seq INTEGER",
                       NULL, NULL, NULL);
}

static int open_in(mv_store *s, const store_unlock *u, mv_err *err)
{
    struct stat st;
    if (stat(s->db_path, &st) != 0)
        return mv_fail(err, errno == ENOENT || errno == ENOTDIR ?
                       MV_E_NOTFOUND : MV_E_IO,
                       "no medvault store in %s", s->dir);
    if (conn_open(s->db_path, 0, 0, &s->writer, err) != 0)
        return -1;
    /* One snapshot for everything opening reads. */
    if (conn_run(s->writer, ST_BEGIN, "cannot read the store", err) != 0)
        return -1;
    int rc = -1;
    if (open_check_format(s, err) == 0 && open_keyring(s, u, err) == 0) {
        crypto_keyring_set_store_id(s->kr, s->id);
        if (check_root_key(s, err) == 0 && load_masters(s, s->writer, err) == 0 &&
            owners_refresh(s, s->writer, err) == 0)
            rc = 0;
    }
    conn_run(s->writer, ST_ROLLBACK, "cannot end a read", NULL);
    if (rc == 0)
        add_audit_links(s);
    return rc;
}

int store_open(const char *dir, const store_unlock *u, mv_store **out,
               mv_err *err)
{
    if (unlock_check(u, err) != 0 || crypto_init(err) != 0)
        return -1;
    mv_store *s = store_alloc(dir, err);
    if (s == NULL)
        return -1;
    if (open_in(s, u, err) != 0) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}
