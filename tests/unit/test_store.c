/*
 * test_store.c -- the store's promises, each checked from the outside: a
 * stolen data directory reveals no name, NIR or diagnosis; a tampered or
 * moved ciphertext never opens; erasure makes every version unreadable and
 * leaves no copy of the destroyed key in any file; rotation survives being
 * interrupted; reads run while a writer writes.  Tampering is done with
 * sqlite3 directly on the database file, as an attacker would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "testutil.h"

typedef struct fixture {
    char *tmp;      /* scratch root                                  */
    char *dir;      /* the store directory (tmp/data)                */
    char *key;      /* the key file, outside dir (tmp/store.key)     */
    char *db;       /* dir/medvault.db                               */
    mv_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mv_err err;
    assert_int_equal(crypto_init(&err), 0);
    f->tmp = tu_mkdtemp();
    f->dir = tu_path(f->tmp, "data");
    f->key = tu_path(f->tmp, "store.key");
    f->db = tu_path(f->dir, "medvault.db");
    assert_int_equal(crypto_keyfile_create(f->key, &err), 0);
    store_unlock u = { .key_file = f->key };
    if (store_create(f->dir, &u, &f->s, &err) != 0)
        fail_msg("create: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->s);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->key);
    free(f->db);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    mv_err err;
    store_close(f->s);
    store_unlock u = { .key_file = f->key };
    f->s = NULL;
    if (store_open(f->dir, &u, &f->s, &err) != 0)
        fail_msg("reopen: %s", err.msg);
}

/* ---- Helpers --------------------------------------------------------------- */

static int64_t put_full(mv_store *s, const char *type, const char *id,
                        const char *patient, int64_t if_version,
                        const char *body, const store_term *terms,
                        size_t n_terms, mv_err *err)
{
    store_txn *t;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    store_write w = { .type = type, .id = id, .patient = patient,
                      .if_version = if_version, .body = body,
                      .body_len = body ? strlen(body) : 0, .deleted = !body,
                      .terms = terms, .n_terms = n_terms };
    int64_t v = 0;
    if (store_put(t, &w, &v, err) != 0) {
        store_txn_rollback(t);
        return -1;
    }
    if (store_txn_commit(t, err) != 0)
        return -1;
    return v;
}

static int64_t put_ok(mv_store *s, const char *type, const char *id,
                      const char *patient, const char *body)
{
    mv_err err;
    int64_t v = put_full(s, type, id, patient, -1, body, NULL, 0, &err);
    if (v < 0)
        fail_msg("put %s/%s: %s", type, id, err.msg);
    return v;
}

static void assert_body(mv_store *s, const char *type, const char *id,
                        int64_t version, const char *expect)
{
    mv_err err;
    store_resource r;
    if (store_get(s, type, id, version, &r, &err) != 0)
        fail_msg("get %s/%s: %s", type, id, err.msg);
    assert_int_equal(r.body.len, strlen(expect));
    assert_memory_equal(r.body.data, expect, strlen(expect));
    store_resource_free(&r);
}

static mv_code get_code(mv_store *s, const char *type, const char *id,
                        int64_t version, mv_err *err)
{
    store_resource r;
    int rc = store_get(s, type, id, version, &r, err);
    store_resource_free(&r);
    return rc == 0 ? MV_OK : err->code;
}

static sqlite3 *raw_db(const fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    return db;
}

/* A blob column of one row, copied (caller frees). */
static unsigned char *raw_blob(const fixture *f, const char *sql,
                               const char *a, const char *b, int64_t c,
                               size_t *len)
{
    sqlite3 *db = raw_db(f);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (c)
        sqlite3_bind_int64(st, 3, c);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *len = (size_t)sqlite3_column_bytes(st, 0);
    unsigned char *p = malloc(*len);
    memcpy(p, sqlite3_column_blob(st, 0), *len);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return p;
}

static unsigned char *raw_body(const fixture *f, const char *type,
                               const char *id, int64_t version, size_t *len)
{
    return raw_blob(f, "SELECT body FROM resources WHERE type = ?1 AND "
                    "id = ?2 AND version = ?3", type, id, version, len);
}

static void raw_set_body(const fixture *f, const char *type, const char *id,
                         int64_t version, const void *body, size_t len)
{
    sqlite3 *db = raw_db(f);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE resources SET body = ?4 "
                                        "WHERE type = ?1 AND id = ?2 AND "
                                        "version = ?3", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_blob(st, 4, body, (int)len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t raw_count(const fixture *f, const char *sql)
{
    sqlite3 *db = raw_db(f);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static size_t search_n(mv_store *s, const char *type, const store_term *terms,
                       size_t n_terms, char ***ids)
{
    mv_err err;
    size_t n = 0;
    if (store_search(s, type, terms, n_terms, ids, &n, &err) != 0)
        fail_msg("search: %s", err.msg);
    return n;
}

/* ---- Lifecycle ------------------------------------------------------------- */

static void test_create_open_keyfile(void **state)
{
    fixture *f = *state;
    mv_err err;
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    unsigned char id1[MV_STORE_ID_BYTES], id2[MV_STORE_ID_BYTES];
    store_id(f->s, id1);
    put_ok(f->s, "Patient", "p1", "p1", "{\"a\":1}");
    reopen(f);
    store_id(f->s, id2);
    assert_memory_equal(id1, id2, sizeof id1);
    assert_string_equal(store_dir(f->s), f->dir);
    assert_body(f->s, "Patient", "p1", 0, "{\"a\":1}");
    /* Opening where there is no store: not found, and nothing created. */
    char *none = tu_path(f->tmp, "nothing");
    store_unlock u = { .key_file = f->key };
    mv_store *s2 = NULL;
    assert_int_equal(store_open(none, &u, &s2, &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "no medvault store"));
    assert_int_equal(stat(none, &st), -1);
    free(none);
}

static void test_create_open_passphrase(void **state)
{
    fixture *f = *state;
    mv_err err;
    char *dir = tu_path(f->tmp, "pass");
    store_unlock good = { .passphrase = "correct horse", .passphrase_len = 13 };
    store_unlock bad = { .passphrase = "correct horsf", .passphrase_len = 13 };
    store_unlock kf = { .key_file = f->key };
    mv_store *s = NULL;
    assert_int_equal(store_create(dir, &good, &s, &err), 0);
    put_ok(s, "Patient", "p1", "p1", "{\"x\":\"y\"}");
    store_close(s);
    s = NULL;
    assert_int_equal(store_open(dir, &bad, &s, &err), -1);
    assert_int_equal(err.code, MV_E_KEY);
    assert_non_null(strstr(err.msg, "wrong passphrase or key file"));
    assert_int_equal(store_open(dir, &kf, &s, &err), -1);
    assert_int_equal(err.code, MV_E_KEY);
    assert_non_null(strstr(err.msg, "passphrase"));
    assert_int_equal(store_open(dir, &good, &s, &err), 0);
    assert_body(s, "Patient", "p1", 0, "{\"x\":\"y\"}");
    store_close(s);
    /* And the other way round: a passphrase on a key-file store. */
    reopen(f);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->dir, &good, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_KEY);
    assert_non_null(strstr(err.msg, "key file"));
    reopen(f);
    free(dir);
}

static void test_create_refuses_non_empty(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_unlock u = { .key_file = f->key };
    mv_store *s = NULL;
    assert_int_equal(store_create(f->dir, &u, &s, &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    assert_non_null(strstr(err.msg, "already holds a store"));

    char *other = tu_path(f->tmp, "other");
    assert_int_equal(mkdir(other, 0755), 0);
    char *junk = tu_path(other, "notes.txt");
    assert_int_equal(mv_file_write_new(junk, 0600, "x", 1, &err), 0);
    assert_int_equal(store_create(other, &u, &s, &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    assert_non_null(strstr(err.msg, "is not empty"));
    unlink(junk);

    /* An existing empty directory is accepted and made 0700. */
    assert_int_equal(store_create(other, &u, &s, &err), 0);
    struct stat st;
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    store_close(s);
    free(junk);
    free(other);
}

static void test_open_wrong_key_and_unsafe_key(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_close(f->s);
    f->s = NULL;
    char *key2 = tu_path(f->tmp, "other.key");
    assert_int_equal(crypto_keyfile_create(key2, &err), 0);
    store_unlock u2 = { .key_file = key2 };
    assert_int_equal(store_open(f->dir, &u2, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_KEY);
    assert_non_null(strstr(err.msg, "wrong passphrase or key file"));

    assert_int_equal(chmod(f->key, 0644), 0);
    store_unlock u = { .key_file = f->key };
    assert_int_equal(store_open(f->dir, &u, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_PERM);
    /* A failed create removes the directory it made. */
    char *dir2 = tu_path(f->tmp, "fresh");
    assert_int_equal(store_create(dir2, &u, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_PERM);
    struct stat st;
    assert_int_equal(stat(dir2, &st), -1);
    assert_int_equal(chmod(f->key, 0600), 0);

    /* A key file kept inside the store directory defeats the design. */
    char *inside = tu_path(f->dir, "inside.key");
    assert_int_equal(crypto_keyfile_create(inside, &err), 0);
    store_unlock ui = { .key_file = inside };
    assert_int_equal(store_open(f->dir, &ui, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_PERM);
    unlink(inside);
    free(inside);

    /* Exactly one unlock method. */
    store_unlock both = { .key_file = f->key, .passphrase = "x",
                          .passphrase_len = 1 };
    assert_int_equal(store_open(f->dir, &both, &f->s, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    reopen(f);
    free(dir2);
    free(key2);
}

/* ---- Resources ------------------------------------------------------------- */

static void test_put_get_versions_history(void **state)
{
    fixture *f = *state;
    mv_err err;
    assert_int_equal(put_full(f->s, "Observation", "o1", "p1", 0, "{\"v\":1}",
                              NULL, 0, &err), 1);
    assert_int_equal(put_full(f->s, "Observation", "o1", "p1", 1, "{\"v\":2}",
                              NULL, 0, &err), 2);
    assert_int_equal(put_ok(f->s, "Observation", "o1", "p1", "{\"v\":3}"), 3);
    put_ok(f->s, "Observation", "o2", "p2", "{\"other\":1}");
    put_ok(f->s, "Organization", "org1", NULL, "{\"name\":\"clinic\"}");

    assert_body(f->s, "Observation", "o1", 0, "{\"v\":3}");
    assert_body(f->s, "Observation", "o1", 1, "{\"v\":1}");
    assert_body(f->s, "Observation", "o1", 2, "{\"v\":2}");
    assert_body(f->s, "Organization", "org1", 0, "{\"name\":\"clinic\"}");

    store_resource r;
    assert_int_equal(store_get(f->s, "Observation", "o1", 0, &r, &err), 0);
    assert_string_equal(r.type, "Observation");
    assert_string_equal(r.id, "o1");
    assert_string_equal(r.patient, "p1");
    assert_int_equal(r.version, 3);
    assert_int_equal(r.deleted, 0);
    assert_true(r.updated_us > 0);
    store_resource_free(&r);
    assert_int_equal(store_get(f->s, "Organization", "org1", 0, &r, &err), 0);
    assert_null(r.patient);
    store_resource_free(&r);

    assert_int_equal(get_code(f->s, "Observation", "nope", 0, &err),
                     MV_E_NOTFOUND);
    assert_int_equal(get_code(f->s, "Observation", "o1", 9, &err),
                     MV_E_NOTFOUND);

    store_resource *h;
    size_t n;
    assert_int_equal(store_history(f->s, "Observation", "o1", 0, &h, &n,
                                   &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(h[i].version, 3 - (int64_t)i);
    assert_memory_equal(h[2].body.data, "{\"v\":1}", 7);
    store_resources_free(h, n);
    assert_int_equal(store_history(f->s, "Observation", "o1", 2, &h, &n,
                                   &err), 0);
    assert_int_equal(n, 2);
    store_resources_free(h, n);
    assert_int_equal(store_history(f->s, "Observation", NULL, 0, &h, &n,
                                   &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(h[0].id, "o2");     /* newest first */
    store_resources_free(h, n);
    assert_int_equal(store_history(f->s, "Observation", "nope", 0, &h, &n,
                                   &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);

    /* A resource cannot move to another patient. */
    assert_int_equal(put_full(f->s, "Observation", "o1", "p2", -1, "{}", NULL,
                              0, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(put_full(f->s, "Observation", "o1", NULL, -1, "{}", NULL,
                              0, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
}

static void test_if_match_conflict(void **state)
{
    fixture *f = *state;
    mv_err err;
    put_ok(f->s, "Patient", "p1", "p1", "{\"v\":1}");
    put_ok(f->s, "Patient", "p1", "p1", "{\"v\":2}");
    assert_int_equal(put_full(f->s, "Patient", "p1", "p1", 1, "{}", NULL, 0,
                              &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "expected version 1"));
    assert_non_null(strstr(err.msg, "current is 2"));
    assert_int_equal(put_full(f->s, "Patient", "p1", "p1", 0, "{}", NULL, 0,
                              &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    assert_int_equal(put_full(f->s, "Patient", "p9", "p9", 3, "{}", NULL, 0,
                              &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    /* Nothing was written by the refused puts. */
    assert_body(f->s, "Patient", "p1", 0, "{\"v\":2}");
    assert_int_equal(get_code(f->s, "Patient", "p9", 0, &err), MV_E_NOTFOUND);
    assert_int_equal(put_full(f->s, "Patient", "p1", "p1", 2, "{\"v\":3}",
                              NULL, 0, &err), 3);
}

/* A stolen index must not tell equal values: clinical tokens are kept at
 * the width the caller names (the last byte masked), so values share
 * buckets and a search answers candidates; a clinical term without a width
 * is refused rather than silently indexed whole; registers keep whole
 * tokens. */
static void test_truncated_tokens(void **state)
{
    fixture *f = *state;
    mv_err err;
    char id[16], value[16];
    for (int i = 0; i < 8; i++) {       /* eight values in two buckets */
        snprintf(id, sizeof id, "p%d", i);
        snprintf(value, sizeof value, "name%d", i);
        store_term t = { "family", value, 1 };
        assert_int_equal(put_full(f->s, "Patient", id, id, -1, "{}", &t, 1, &err), 1);
    }
    assert_int_equal(raw_count(f, "SELECT count(*) FROM search_index WHERE type = 'Patient' "
                                  "AND (length(token) != 1 OR hex(token) NOT IN ('00', '80'))"), 0);
    assert_true(raw_count(f, "SELECT count(DISTINCT token) FROM search_index "
                             "WHERE type = 'Patient'") <= 2);
    /* Eight values, at most two buckets: some search answers others too,
     * and every search answers its own. */
    char **ids;
    size_t n, widest = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "p%d", i);
        snprintf(value, sizeof value, "name%d", i);
        store_term q = { "family", value, 1 };
        n = search_n(f->s, "Patient", &q, 1, &ids);
        int own = 0;
        for (size_t k = 0; k < n; k++)
            own |= strcmp(ids[k], id) == 0;
        assert_true(own);
        widest = n > widest ? n : widest;
        store_ids_free(ids, n);
    }
    assert_true(widest >= 4);

    store_term twelve = { "family", "martin", 12 };
    assert_int_equal(put_full(f->s, "Patient", "p9", "p9", -1, "{}", &twelve, 1, &err), 1);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM search_index WHERE id = 'p9' AND "
                                  "length(token) = 2 AND substr(hex(token), 4, 1) = '0'"), 1);

    store_term whole = { "family", "martin", 0 };
    assert_int_equal(put_full(f->s, "Patient", "p10", "p10", -1, "{}", &whole, 1, &err), -1);
    assert_int_equal(err.code, MV_E_INTERNAL);
    assert_int_equal(get_code(f->s, "Patient", "p10", 0, &err), MV_E_NOTFOUND);
    assert_int_equal(store_search(f->s, "Patient", &whole, 1, &ids, &n, &err), -1);
    store_term reg = { "kind", "alert", 0 };
    assert_int_equal(put_full(f->s, "_Alert", "a1", NULL, -1, "{}", &reg, 1, &err), 1);
    assert_int_equal(raw_count(f, "SELECT length(token) FROM search_index "
                                  "WHERE type = '_Alert'"), 32);

    /* Re-indexing replaces a resource's tokens without a new version. */
    store_term wider = { "family", "martin", 24 };
    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_reindex(t, "Patient", "p9", &wider, 1, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(raw_count(f, "SELECT length(token) FROM search_index WHERE id = 'p9'"), 3);
    assert_int_equal(search_n(f->s, "Patient", &wider, 1, &ids), 1);
    store_ids_free(ids, 1);
    store_resource r;
    assert_int_equal(store_head(f->s, "Patient", "p9", 0, &r, &err), 0);
    assert_int_equal(r.version, 1);
    store_resource_free(&r);
    char **types;
    assert_int_equal(store_types(f->s, &types, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(types[0], "Patient");
    assert_string_equal(types[1], "_Alert");
    store_ids_free(types, n);
}

static void test_logical_delete(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_term t = { "family", "martin", 256 };
    assert_int_equal(put_full(f->s, "Patient", "p1", "p1", -1, "{\"n\":1}",
                              &t, 1, &err), 1);
    char **ids;
    assert_int_equal(search_n(f->s, "Patient", &t, 1, &ids), 1);
    store_ids_free(ids, 1);
    assert_int_equal(put_full(f->s, "Patient", "p1", "p1", 1, NULL, &t, 1,
                              &err), 2);
    store_resource r;
    assert_int_equal(store_get(f->s, "Patient", "p1", 0, &r, &err), 0);
    assert_int_equal(r.deleted, 1);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.body.len, 0);
    store_resource_free(&r);
    assert_body(f->s, "Patient", "p1", 1, "{\"n\":1}");
    assert_int_equal(search_n(f->s, "Patient", &t, 1, &ids), 0);
    store_ids_free(ids, 0);
    assert_int_equal(search_n(f->s, "Patient", NULL, 0, &ids), 0);
    store_ids_free(ids, 0);
    assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM resources WHERE "
                               "version = 2 AND body IS NULL"), 1);
}

static void test_flipped_byte_is_integrity(void **state)
{
    fixture *f = *state;
    mv_err err;
    put_ok(f->s, "Condition", "c1", "p1", "{\"code\":\"secret diagnosis\"}");
    store_close(f->s);
    f->s = NULL;
    size_t len;
    unsigned char *body = raw_body(f, "Condition", "c1", 1, &len);
    body[len / 2] ^= 0x01;
    raw_set_body(f, "Condition", "c1", 1, body, len);
    free(body);
    reopen(f);
    assert_int_equal(get_code(f->s, "Condition", "c1", 0, &err),
                     MV_E_INTEGRITY);
    assert_non_null(strstr(err.msg, "Condition/c1 version 1"));
    store_resource *h;
    size_t n;
    assert_int_equal(store_history(f->s, "Condition", "c1", 0, &h, &n, &err),
                     -1);
    assert_int_equal(err.code, MV_E_INTEGRITY);
}

static void test_moved_body_is_integrity(void **state)
{
    fixture *f = *state;
    mv_err err;
    put_ok(f->s, "Observation", "a", "p1", "{\"a\":1}");
    put_ok(f->s, "Observation", "b", "p1", "{\"b\":1}");
    put_ok(f->s, "Observation", "c", "p2", "{\"c\":1}");
    put_ok(f->s, "Observation", "a", "p1", "{\"a\":2}");
    store_close(f->s);
    f->s = NULL;
    size_t len;
    /* Same patient, other resource. */
    unsigned char *a1 = raw_body(f, "Observation", "a", 1, &len);
    raw_set_body(f, "Observation", "b", 1, a1, len);
    /* Another patient. */
    raw_set_body(f, "Observation", "c", 1, a1, len);
    /* Same resource, other version (rollback to old content). */
    raw_set_body(f, "Observation", "a", 2, a1, len);
    free(a1);
    reopen(f);
    assert_body(f->s, "Observation", "a", 1, "{\"a\":1}");
    assert_int_equal(get_code(f->s, "Observation", "b", 0, &err),
                     MV_E_INTEGRITY);
    assert_int_equal(get_code(f->s, "Observation", "c", 0, &err),
                     MV_E_INTEGRITY);
    assert_int_equal(get_code(f->s, "Observation", "a", 2, &err),
                     MV_E_INTEGRITY);
}

/* ---- Stolen database and search -------------------------------------------- */

static const char *const secrets[] = {
    "Dupont-Moreau", "dupont moreau", "Elodie", "elodie",
    "185057800608436", "1850578006084", "Carcinome hepatocellulaire",
    "carcinome", "1985-05-07",
};

static void put_clinical_data(mv_store *s)
{
    mv_err err;
    store_term p1[] = { { "family", "dupont moreau", 256 }, { "given", "elodie", 256 },
                        { "identifier", "185057800608436", 256 },
                        { "birthdate", "1985-05-07", 256 } };
    store_term p2[] = { { "family", "dupont moreau", 256 }, { "given", "jean", 256 },
                        { "birthdate", "1950-01-01", 256 } };
    store_term c1[] = { { "code", "carcinome", 256 } };
    if (put_full(s, "Patient", "pat-1", "pat-1", 0,
                 "{\"name\":[{\"family\":\"Dupont-Moreau\",\"given\":"
                 "[\"Elodie\"]}],\"identifier\":[{\"value\":"
                 "\"185057800608436\"}],\"birthDate\":\"1985-05-07\"}",
                 p1, 4, &err) != 1 ||
        put_full(s, "Patient", "pat-2", "pat-2", 0,
                 "{\"name\":[{\"family\":\"Dupont-Moreau\",\"given\":"
                 "[\"Jean\"]}]}", p2, 3, &err) != 1 ||
        put_full(s, "Condition", "cond-1", "pat-1", 0,
                 "{\"code\":{\"text\":\"Carcinome hepatocellulaire\"}}",
                 c1, 1, &err) != 1)
        fail_msg("put: %s", err.msg);
}

static void assert_no_secret_on_disk(const char *dir)
{
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (tu_tree_contains(dir, secrets[i], strlen(secrets[i])))
            fail_msg("'%s' found in a file under %s", secrets[i], dir);
}

static void test_stolen_database_reveals_nothing(void **state)
{
    fixture *f = *state;
    put_clinical_data(f->s);
    /* The search works on what was stored... */
    store_term t = { "identifier", "185057800608436", 256 };
    char **ids;
    assert_int_equal(search_n(f->s, "Patient", &t, 1, &ids), 1);
    store_ids_free(ids, 1);
    /* ...the finder does find plaintext that is stored (ids, types)... */
    assert_true(tu_tree_contains(f->dir, "cond-1", 6));
    /* ...but no value, neither with the WAL live nor after close. */
    assert_no_secret_on_disk(f->dir);
    store_close(f->s);
    f->s = NULL;
    assert_no_secret_on_disk(f->dir);
    reopen(f);
}

static void test_search_blind_index(void **state)
{
    fixture *f = *state;
    put_clinical_data(f->s);
    char **ids;
    store_term fam = { "family", "dupont moreau", 256 };
    assert_int_equal(search_n(f->s, "Patient", &fam, 1, &ids), 2);
    assert_string_equal(ids[0], "pat-1");
    assert_string_equal(ids[1], "pat-2");
    store_ids_free(ids, 2);

    store_term both[] = { { "family", "dupont moreau", 256 },
                          { "birthdate", "1950-01-01", 256 } };
    assert_int_equal(search_n(f->s, "Patient", both, 2, &ids), 1);
    assert_string_equal(ids[0], "pat-2");
    store_ids_free(ids, 1);

    /* Same value, other parameter or type: a different token. */
    store_term given = { "given", "dupont moreau", 256 };
    assert_int_equal(search_n(f->s, "Patient", &given, 1, &ids), 0);
    store_ids_free(ids, 0);
    assert_int_equal(search_n(f->s, "Condition", &fam, 1, &ids), 0);
    store_ids_free(ids, 0);
    store_term miss = { "family", "durand", 256 };
    assert_int_equal(search_n(f->s, "Patient", &miss, 1, &ids), 0);
    store_ids_free(ids, 0);

    /* A new version replaces the tokens. */
    mv_err err;
    store_term renamed = { "family", "durand", 256 };
    assert_int_equal(put_full(f->s, "Patient", "pat-2", "pat-2", 1, "{}",
                              &renamed, 1, &err), 2);
    assert_int_equal(search_n(f->s, "Patient", &fam, 1, &ids), 1);
    assert_string_equal(ids[0], "pat-1");
    store_ids_free(ids, 1);
    assert_int_equal(search_n(f->s, "Patient", &renamed, 1, &ids), 1);
    assert_string_equal(ids[0], "pat-2");
    store_ids_free(ids, 1);
    /* No term: every current resource of the type. */
    assert_int_equal(search_n(f->s, "Patient", NULL, 0, &ids), 2);
    store_ids_free(ids, 2);
    /* Survives a reopen (index key reloaded). */
    reopen(f);
    assert_int_equal(search_n(f->s, "Patient", &renamed, 1, &ids), 1);
    store_ids_free(ids, 1);
}

/* ---- Versions by time ------------------------------------------------------ */

/* Store a version at a given time (body NULL: a delete). */
static void put_at(mv_store *s, const char *type, const char *id,
                   const char *patient, const char *body, int64_t at_us)
{
    mv_err err;
    store_txn *t;
    store_write w = { .type = type, .id = id, .patient = patient,
                      .if_version = -1, .body = body,
                      .body_len = body ? strlen(body) : 0, .deleted = !body,
                      .updated_us = at_us };
    int64_t v;
    if (store_txn_begin(s, &t, &err) != 0 || store_put(t, &w, &v, &err) != 0 ||
        store_txn_commit(t, &err) != 0)
        fail_msg("put %s/%s at %lld: %s", type, id, (long long)at_us, err.msg);
}

static size_t versions_n(mv_store *s, const char *type, int64_t since,
                         size_t limit, store_version **v)
{
    mv_err err;
    size_t n = 0;
    if (store_type_versions(s, type, since, limit, v, &n, &err) != 0)
        fail_msg("versions of %s: %s", type, err.msg);
    return n;
}

static void assert_version(const store_version *v, const char *id,
                           const char *patient, int64_t version,
                           int64_t at_us, int deleted)
{
    assert_string_equal(v->id, id);
    if (patient)
        assert_string_equal(v->patient, patient);
    else
        assert_null(v->patient);
    assert_int_equal(v->version, version);
    assert_int_equal(v->updated_us, at_us);
    assert_int_equal(v->deleted, deleted);
}

static void test_type_versions_by_time(void **state)
{
    fixture *f = *state;
    put_at(f->s, "Observation", "o1", "p1", "{\"o1\":1}", 1000);
    put_at(f->s, "Observation", "o2", "p2", "{\"o2\":1}", 2000);
    put_at(f->s, "Organization", "org", NULL, "{\"org\":1}", 2500);
    put_at(f->s, "Observation", "o1", "p1", "{\"o1\":2}", 3000);
    put_at(f->s, "Observation", "o2", "p2", NULL, 4000);
    put_ok(f->s, "Patient", "p1", "p1", "{}");

    /* Every version of the type, newest first, deletes included. */
    store_version *v;
    assert_int_equal(versions_n(f->s, "Observation", 0, 0, &v), 4);
    assert_version(&v[0], "o2", "p2", 2, 4000, 1);
    assert_version(&v[1], "o1", "p1", 2, 3000, 0);
    assert_version(&v[2], "o2", "p2", 1, 2000, 0);
    assert_version(&v[3], "o1", "p1", 1, 1000, 0);
    /* A listed version opens through the ordinary read. */
    assert_body(f->s, "Observation", v[2].id, v[2].version, "{\"o2\":1}");
    store_versions_free(v, 4);

    /* _since is inclusive; a limit keeps the newest. */
    assert_int_equal(versions_n(f->s, "Observation", 2000, 0, &v), 3);
    assert_version(&v[2], "o2", "p2", 1, 2000, 0);
    store_versions_free(v, 3);
    assert_int_equal(versions_n(f->s, "Observation", 2001, 0, &v), 2);
    store_versions_free(v, 2);
    assert_int_equal(versions_n(f->s, "Observation", 0, 1, &v), 1);
    assert_version(&v[0], "o2", "p2", 2, 4000, 1);
    store_versions_free(v, 1);
    assert_int_equal(versions_n(f->s, "Observation", 4001, 0, &v), 0);
    store_versions_free(v, 0);

    /* A system resource, and a type with nothing stored. */
    assert_int_equal(versions_n(f->s, "Organization", 0, 0, &v), 1);
    assert_version(&v[0], "org", NULL, 1, 2500, 0);
    store_versions_free(v, 1);
    assert_int_equal(versions_n(f->s, "Condition", 0, 0, &v), 0);
    store_versions_free(v, 0);

    /* An erased patient's versions are no longer listed. */
    mv_err err;
    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_erase_patient(t, "p2", &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(versions_n(f->s, "Observation", 0, 0, &v), 2);
    assert_string_equal(v[0].id, "o1");
    assert_string_equal(v[1].id, "o1");
    store_versions_free(v, 2);

    size_t n;
    assert_int_equal(store_type_versions(f->s, NULL, 0, 0, &v, &n, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
}

static size_t updated_n(mv_store *s, int64_t from, int64_t to, int outside,
                        char ***ids)
{
    mv_err err;
    size_t n = 0;
    if (store_search_updated(s, "Observation", from, to, outside, ids, &n,
                             &err) != 0)
        fail_msg("search by time: %s", err.msg);
    return n;
}

static void test_search_updated(void **state)
{
    fixture *f = *state;
    put_at(f->s, "Observation", "a", "p1", "{}", 1000);
    put_at(f->s, "Observation", "b", "p1", "{}", 2000);
    put_at(f->s, "Observation", "d", "p1", "{}", 2500);
    put_at(f->s, "Observation", "c", "p2", "{}", 3000);
    put_at(f->s, "Observation", "c", "p2", "{\"v\":2}", 4000);
    put_at(f->s, "Observation", "d", "p1", NULL, 5000);
    put_at(f->s, "Condition", "x", "p1", "{}", 2000);

    char **ids;
    /* Only current versions count: c was stored at 3000, but is now 4000. */
    assert_int_equal(updated_n(f->s, 2000, 3500, 0, &ids), 1);
    assert_string_equal(ids[0], "b");
    store_ids_free(ids, 1);
    assert_int_equal(updated_n(f->s, 3500, INT64_MAX, 0, &ids), 1);
    assert_string_equal(ids[0], "c");
    store_ids_free(ids, 1);
    /* Open ends; deleted d is never found; sorted by id. */
    assert_int_equal(updated_n(f->s, INT64_MIN, INT64_MAX, 0, &ids), 3);
    assert_string_equal(ids[0], "a");
    assert_string_equal(ids[1], "b");
    assert_string_equal(ids[2], "c");
    store_ids_free(ids, 3);
    /* The upper end is exclusive, the lower inclusive. */
    assert_int_equal(updated_n(f->s, INT64_MIN, 1000, 0, &ids), 0);
    store_ids_free(ids, 0);
    assert_int_equal(updated_n(f->s, 1000, 1001, 0, &ids), 1);
    store_ids_free(ids, 1);
    /* outside: everything not in [2000, 4000). */
    assert_int_equal(updated_n(f->s, 2000, 4000, 1, &ids), 2);
    assert_string_equal(ids[0], "a");
    assert_string_equal(ids[1], "c");
    store_ids_free(ids, 2);

    /* An erased patient's resources are not found. */
    mv_err err;
    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_erase_patient(t, "p2", &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(updated_n(f->s, INT64_MIN, INT64_MAX, 0, &ids), 2);
    store_ids_free(ids, 2);

    /* A version time is given or taken now, never negative. */
    assert_int_equal(put_ok(f->s, "Observation", "now", "p1", "{}"), 1);
    store_resource r;
    assert_int_equal(store_get(f->s, "Observation", "now", 0, &r, &err), 0);
    assert_true(r.updated_us > 5000);
    store_resource_free(&r);
    store_write w = { .type = "Observation", .id = "neg", .patient = "p1",
                      .if_version = -1, .body = "{}", .body_len = 2,
                      .updated_us = -1 };
    int64_t v;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_put(t, &w, &v, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    store_txn_rollback(t);
}

/* ---- Rotation -------------------------------------------------------------- */

#define ROT_PATIENTS 12

static void test_rotation_interrupted_and_resumed(void **state)
{
    fixture *f = *state;
    mv_err err;
    char id[32], body[64];
    for (int i = 0; i < ROT_PATIENTS; i++) {
        snprintf(id, sizeof id, "p%02d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        put_ok(f->s, "Patient", id, id, body);
    }
    put_ok(f->s, "Organization", "org", NULL, "{\"sys\":1}");
    crypto_dk_ref ref;
    unsigned char pub1[MV_PUBKEY_BYTES], pub2[MV_PUBKEY_BYTES];
    assert_int_equal(store_owner_ref(f->s, MV_OWNER_AUDIT, &ref, &err), 0);
    assert_int_equal(ref.mk_version, 1);
    assert_int_equal(crypto_sign_pubkey(store_keyring(f->s), &ref, pub1, &err),
                     0);

    uint32_t version = 0;
    int resumed = -1;
    size_t done = 0, remaining = 0;
    assert_int_equal(store_rotate_begin(f->s, &version, &resumed, &err), 0);
    assert_int_equal(version, 2);
    assert_int_equal(resumed, 0);
    assert_int_equal(store_rotate_step(f->s, 1, &done, &remaining, &err), 0);
    assert_int_equal(done, 1);
    assert_int_equal(remaining, ROT_PATIENTS + 3 - 1);
    /* Killed here: reopen and resume. */
    reopen(f);
    assert_body(f->s, "Patient", "p05", 0, "{\"n\":5}");
    assert_int_equal(store_rotate_begin(f->s, &version, &resumed, &err), 0);
    assert_int_equal(version, 2);
    assert_int_equal(resumed, 1);
    assert_int_equal(store_rotate_step(f->s, 4, &done, &remaining, &err), 0);
    assert_int_equal(done, 4);
    assert_int_equal(store_rotate_finish(f->s, &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    while (remaining > 0)
        assert_int_equal(store_rotate_step(f->s, 4, &done, &remaining, &err),
                         0);
    assert_int_equal(store_rotate_finish(f->s, &err), 0);
    assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM master_keys"), 1);
    assert_int_equal(raw_count(f, "SELECT MIN(version) FROM master_keys"), 2);
    assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM data_keys WHERE "
                               "mk_version <> 2"), 0);

    /* The reserved refs follow, the keys behind them did not change. */
    assert_int_equal(store_owner_ref(f->s, MV_OWNER_AUDIT, &ref, &err), 0);
    assert_int_equal(ref.mk_version, 2);
    assert_int_equal(crypto_sign_pubkey(store_keyring(f->s), &ref, pub2, &err),
                     0);
    assert_memory_equal(pub1, pub2, sizeof pub1);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ROT_PATIENTS; i++) {
            snprintf(id, sizeof id, "p%02d", i);
            snprintf(body, sizeof body, "{\"n\":%d}", i);
            assert_body(f->s, "Patient", id, 0, body);
        }
        assert_body(f->s, "Organization", "org", 0, "{\"sys\":1}");
        reopen(f);      /* second pass: only master v2 is left to load */
    }
    /* A later rotation starts a new version. */
    assert_int_equal(store_rotate_begin(f->s, &version, &resumed, &err), 0);
    assert_int_equal(version, 3);
    assert_int_equal(resumed, 0);
    /* New data keys made during a rotation are under the new master. */
    put_ok(f->s, "Patient", "newcomer", "newcomer", "{\"new\":1}");
    do
        assert_int_equal(store_rotate_step(f->s, 100, &done, &remaining,
                                           &err), 0);
    while (remaining > 0);
    assert_int_equal(done, ROT_PATIENTS + 3);
    assert_int_equal(store_rotate_finish(f->s, &err), 0);
    reopen(f);
    assert_body(f->s, "Patient", "newcomer", 0, "{\"new\":1}");
    assert_body(f->s, "Patient", "p00", 0, "{\"n\":0}");
}

/* ---- Erasure --------------------------------------------------------------- */

static void test_erase_patient(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_term ta = { "family", "erasable", 256 }, tb = { "family", "keeper", 256 };
    assert_int_equal(put_full(f->s, "Patient", "A", "A", -1, "{\"a\":1}", &ta,
                              1, &err), 1);
    put_ok(f->s, "Patient", "A", "A", "{\"a\":2}");
    assert_int_equal(put_full(f->s, "Patient", "A", "A", 2, "{\"a\":3}", &ta,
                              1, &err), 3);
    put_ok(f->s, "Observation", "obsA", "A", "{\"obs\":\"a\"}");
    put_ok(f->s, "Observation", "delA", "A", "{\"obs\":\"gone\"}");
    put_ok(f->s, "Observation", "delA", "A", NULL);
    assert_int_equal(put_full(f->s, "Patient", "B", "B", -1, "{\"b\":1}", &tb,
                              1, &err), 1);
    put_ok(f->s, "Observation", "obsB", "B", "{\"obs\":\"b\"}");
    store_close(f->s);
    f->s = NULL;
    size_t klen;
    unsigned char *wrapped = raw_blob(f, "SELECT wrapped FROM data_keys WHERE "
                                      "owner = ?1", "A", NULL, 0, &klen);
    assert_true(tu_tree_contains(f->dir, wrapped, klen));   /* can fail */
    reopen(f);

    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_erase_patient(t, "A", &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);

    /* Every version (0 = current) of every resource of A. */
    static const struct { const char *type, *id; int64_t version; } gone[] = {
        { "Patient", "A", 0 }, { "Patient", "A", 1 }, { "Patient", "A", 2 },
        { "Patient", "A", 3 }, { "Observation", "obsA", 0 },
        { "Observation", "obsA", 1 }, { "Observation", "delA", 0 },
        { "Observation", "delA", 1 }, { "Observation", "delA", 2 },
    };
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        assert_int_equal(get_code(f->s, gone[i].type, gone[i].id,
                                  gone[i].version, &err), MV_E_GONE);
        assert_non_null(strstr(err.msg, "patient A was erased"));
    }
    store_resource *h;
    size_t n;
    assert_int_equal(store_history(f->s, "Patient", "A", 0, &h, &n, &err), -1);
    assert_int_equal(err.code, MV_E_GONE);
    assert_int_equal(store_history(f->s, "Observation", NULL, 0, &h, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].id, "obsB");
    store_resources_free(h, n);
    assert_body(f->s, "Patient", "B", 0, "{\"b\":1}");
    assert_body(f->s, "Observation", "obsB", 0, "{\"obs\":\"b\"}");

    char **ids;
    assert_int_equal(search_n(f->s, "Patient", &ta, 1, &ids), 0);
    store_ids_free(ids, 0);
    assert_int_equal(search_n(f->s, "Patient", &tb, 1, &ids), 1);
    store_ids_free(ids, 1);
    assert_int_equal(search_n(f->s, "Patient", NULL, 0, &ids), 1);
    store_ids_free(ids, 1);
    assert_int_equal(store_patient_erased(f->s, "A", &err), 1);
    assert_int_equal(store_patient_erased(f->s, "B", &err), 0);
    assert_int_equal(store_patients(f->s, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "B");
    store_ids_free(ids, n);

    /* No new data for an erased patient; erasing twice or nobody fails. */
    assert_int_equal(put_full(f->s, "Observation", "obsA2", "A", -1, "{}",
                              NULL, 0, &err), -1);
    assert_int_equal(err.code, MV_E_GONE);
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_erase_patient(t, "A", &err), -1);
    assert_int_equal(err.code, MV_E_GONE);
    assert_int_equal(store_erase_patient(t, "Z", &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
    store_txn_rollback(t);

    assert_int_equal(store_scrub(f->s, &err), 0);
    if (tu_tree_contains(f->dir, wrapped, klen))
        fail_msg("the erased patient's wrapped key survives under %s", f->dir);
    store_close(f->s);
    f->s = NULL;
    assert_false(tu_tree_contains(f->dir, wrapped, klen));
    free(wrapped);
    reopen(f);
    assert_int_equal(get_code(f->s, "Patient", "A", 0, &err), MV_E_GONE);
}

/* ---- Transactions ---------------------------------------------------------- */

static void test_savepoints_and_own_reads(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_txn *t, *t2;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_ptr_equal(store_txn_store(t), f->s);
    assert_int_equal(store_txn_begin(f->s, &t2, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    store_write w = { .type = "Patient", .id = "x", .patient = "x",
                      .if_version = -1, .body = "{}", .body_len = 2 };
    assert_int_equal(store_txn_savepoint(t, &err), 0);
    assert_int_equal(store_put(t, &w, NULL, &err), 0);
    assert_int_equal(get_code(f->s, "Patient", "x", 0, &err), MV_OK);
    assert_int_equal(store_txn_rollback_to(t, &err), 0);
    assert_int_equal(get_code(f->s, "Patient", "x", 0, &err), MV_E_NOTFOUND);
    assert_int_equal(store_txn_release(t, &err), -1);
    w.id = "y";
    w.patient = "y";
    assert_int_equal(store_txn_savepoint(t, &err), 0);
    assert_int_equal(store_put(t, &w, NULL, &err), 0);
    assert_int_equal(store_txn_release(t, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(get_code(f->s, "Patient", "x", 0, &err), MV_E_NOTFOUND);
    assert_int_equal(get_code(f->s, "Patient", "y", 0, &err), MV_OK);

    /* A rolled-back first write leaves no data key behind. */
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    w.id = "z";
    w.patient = "z";
    assert_int_equal(store_put(t, &w, NULL, &err), 0);
    store_txn_rollback(t);
    assert_int_equal(get_code(f->s, "Patient", "z", 0, &err), MV_E_NOTFOUND);
    assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM data_keys WHERE "
                               "owner = 'z'"), 0);
    put_ok(f->s, "Patient", "z", "z", "{\"z\":1}");
    reopen(f);
    assert_body(f->s, "Patient", "z", 0, "{\"z\":1}");
}

/* ---- Audit rows, checkpoints, meta ---------------------------------------- */

typedef struct scan_ctx {
    int n;
    int stop_at;
    int64_t seqs[8];
    int null_actor_seen;
} scan_ctx;

static int scan_cb(const store_audit_row *row, void *p)
{
    scan_ctx *c = p;
    c->seqs[c->n++] = row->seq;
    if (row->seq == 2) {
        c->null_actor_seen = row->patient == NULL && row->purpose == NULL &&
                             row->session == NULL &&
                             strcmp(row->actor, "cli") == 0 &&
                             row->prev[0] == 2 && row->hash[0] == 3;
    }
    return c->stop_at && row->seq == c->stop_at ? 7 : 0;
}

static void test_audit_rows(void **state)
{
    fixture *f = *state;
    mv_err err;
    int64_t seq = -1;
    unsigned char hash[MV_HASH_BYTES];
    memset(hash, 0xaa, sizeof hash);
    assert_int_equal(store_audit_last(f->s, &seq, hash, &err), 0);
    assert_int_equal(seq, 0);
    unsigned char zero[MV_HASH_BYTES] = {0};
    assert_memory_equal(hash, zero, sizeof zero);

    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    for (int i = 1; i <= 3; i++) {
        store_audit_row r = { .seq = i, .ts_us = 1000 * i, .actor = "cli",
                              .action = "read", .outcome = "ok",
                              .resources = "Patient/p1/_history/1",
                              .patient = i == 2 ? NULL : "p1",
                              .source = "cli", .session = i == 2 ? NULL : "s",
                              .purpose = i == 2 ? NULL : "BTG: test",
                              .request_id = "r" };
        memset(r.prev, i, sizeof r.prev);
        memset(r.hash, i + 1, sizeof r.hash);
        assert_int_equal(store_audit_append(t, &r, &err), 0);
    }
    /* Inside the transaction, its own rows are visible. */
    assert_int_equal(store_audit_last(f->s, &seq, hash, &err), 0);
    assert_int_equal(seq, 3);
    store_audit_row dup = { .seq = 2, .actor = "x" };
    assert_int_equal(store_audit_append(t, &dup, &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    store_checkpoint cp = { .seq = 3, .ts_us = 42 };
    memset(cp.hash, 4, sizeof cp.hash);
    memset(cp.sig, 5, sizeof cp.sig);
    assert_int_equal(store_checkpoint_put(t, &cp, &err), 0);
    assert_int_equal(store_meta_put(t, "audit_pubkey", "PUB", 3, &err), 0);
    assert_int_equal(store_meta_put(t, "master_current", "9", 1, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(store_txn_commit(t, &err), 0);

    reopen(f);
    assert_int_equal(store_audit_last(f->s, &seq, hash, &err), 0);
    assert_int_equal(seq, 3);
    assert_int_equal(hash[0], 4);
    scan_ctx c = {0};
    assert_int_equal(store_audit_scan(f->s, 1, 0, scan_cb, &c, &err), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seqs[0], 1);
    assert_int_equal(c.seqs[2], 3);
    assert_true(c.null_actor_seen);
    scan_ctx c2 = { .stop_at = 2 };
    assert_int_equal(store_audit_scan(f->s, 2, 0, scan_cb, &c2, &err), 7);
    assert_int_equal(c2.n, 1);
    scan_ctx c4 = {0};                       /* a bounded range */
    assert_int_equal(store_audit_scan(f->s, 2, 2, scan_cb, &c4, &err), 0);
    assert_int_equal(c4.n, 1);
    assert_int_equal(c4.seqs[0], 2);

    store_checkpoint *cps;
    size_t n;
    assert_int_equal(store_checkpoints(f->s, &cps, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cps[0].seq, 3);
    assert_int_equal(cps[0].ts_us, 42);
    assert_int_equal(cps[0].sig[63], 5);
    free(cps);

    mv_buf b = {0};
    assert_int_equal(store_meta_get(f->s, "audit_pubkey", &b, &err), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "PUB", 3);
    mv_buf_free(&b);
    assert_int_equal(store_meta_get(f->s, "nothing", &b, &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
    assert_int_equal(store_meta_get(f->s, "format", &b, &err), 0);
    assert_memory_equal(b.data, "1", 1);
    mv_buf_free(&b);

    /* A tampered row (wrong hash size) is reported, not misread. */
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = raw_db(f);
    assert_int_equal(sqlite3_exec(db, "UPDATE audit SET hash = x'00' "
                                  "WHERE seq = 2", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    scan_ctx c3 = {0};
    assert_int_equal(store_audit_scan(f->s, 1, 0, scan_cb, &c3, &err), -1);
    assert_int_equal(err.code, MV_E_TAMPER);
    assert_int_equal(c3.n, 1);
}

static void test_owner_ref(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_dk_ref r;
    assert_int_equal(store_owner_ref(f->s, MV_OWNER_INDEX, &r, &err), 0);
    assert_string_equal(r.owner, MV_OWNER_INDEX);
    assert_true(r.wrapped_len > 0);
    assert_int_equal(store_owner_ref(f->s, "patient-1", &r, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_non_null(store_keyring(f->s));
}

/* ---- Concurrency ----------------------------------------------------------- */

#define READERS 6
#define WRITES 150

typedef struct reader_arg {
    mv_store *s;
    atomic_int *stop;
    int reads;
    int errors;
    char msg[MV_ERR_MSG_MAX];
} reader_arg;

static void *reader_main(void *p)
{
    reader_arg *a = p;
    mv_err err;
    store_term t = { "family", "stable", 256 };
    while (!*a->stop || a->reads < 50) {
        store_resource r;
        char **ids;
        size_t n;
        int ok = store_get(a->s, "Patient", "stable", 0, &r, &err) == 0 &&
                 r.body.len == 12 && memcmp(r.body.data, "{\"stable\":1}",
                                            12) == 0;
        store_resource_free(&r);
        ok = ok && store_search(a->s, "Patient", &t, 1, &ids, &n, &err) == 0;
        if (ok) {
            ok = n == 1;
            store_ids_free(ids, n);
        }
        if (!ok) {
            a->errors++;
            snprintf(a->msg, sizeof a->msg, "%s", err.msg);
        }
        a->reads++;
    }
    return NULL;
}

static void test_concurrent_reads_while_writing(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_term t = { "family", "stable", 256 };
    assert_int_equal(put_full(f->s, "Patient", "stable", "stable", -1,
                              "{\"stable\":1}", &t, 1, &err), 1);
    atomic_int stop = 0;
    pthread_t th[READERS];
    reader_arg args[READERS];
    for (int i = 0; i < READERS; i++) {
        args[i] = (reader_arg){ .s = f->s, .stop = &stop };
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]),
                         0);
    }
    char id[32];
    for (int i = 0; i < WRITES; i++) {
        snprintf(id, sizeof id, "w%03d", i);
        put_ok(f->s, "Observation", id, i % 2 ? "stable" : "other", "{}");
    }
    stop = 1;
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        if (args[i].errors)
            fail_msg("reader %d: %d errors, last: %s", i, args[i].errors,
                     args[i].msg);
        assert_true(args[i].reads >= 50);
    }
    char **ids;
    assert_int_equal(search_n(f->s, "Observation", NULL, 0, &ids), WRITES);
    store_ids_free(ids, WRITES);
}

/* The server keeps its store open while an operator rotates the master key
 * from the CLI (another handle, another process): the server must read keys
 * re-wrapped under the new version, and never wrap a new key under the old
 * one the rotation deleted. */
static void test_rotation_by_another_handle(void **state)
{
    fixture *f = *state;
    mv_err err;
    put_ok(f->s, "Patient", "p1", "p1", "{\"a\":1}");
    store_unlock u = { .key_file = f->key };
    mv_store *cli;
    assert_int_equal(store_open(f->dir, &u, &cli, &err), 0);
    uint32_t version;
    int resumed;
    size_t done, remaining;
    assert_int_equal(store_rotate_begin(cli, &version, &resumed, &err), 0);
    do
        assert_int_equal(store_rotate_step(cli, 100, &done, &remaining, &err), 0);
    while (remaining > 0);
    assert_int_equal(store_rotate_finish(cli, &err), 0);
    store_close(cli);

    assert_body(f->s, "Patient", "p1", 0, "{\"a\":1}");   /* re-wrapped key */
    put_ok(f->s, "Patient", "p2", "p2", "{\"b\":2}");       /* a new data key */
    reopen(f);                                               /* a third process */
    assert_body(f->s, "Patient", "p1", 0, "{\"a\":1}");
    assert_body(f->s, "Patient", "p2", 0, "{\"b\":2}");
}

/* ---- sessions ------------------------------------------------------------ */

static void session_insert(fixture *f, unsigned char tag, const char *account,
                           int64_t at)
{
    store_session ss = { .created_us = at, .last_seen_us = at, .mfa_us = at };
    memset(ss.token_hash, tag, sizeof ss.token_hash);
    snprintf(ss.account, sizeof ss.account, "%s", account);
    snprintf(ss.source, sizeof ss.source, "127.0.0.1");
    store_txn *t;
    mv_err err;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_session_insert(t, &ss, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
}

static void test_sessions(void **state)
{
    fixture *f = *state;
    mv_err err;
    int64_t now = mv_now_us();
    session_insert(f, 1, "acct-a", now);
    session_insert(f, 2, "acct-a", now);
    session_insert(f, 3, "acct-b", now - 3600 * 1000000LL);

    unsigned char h[MV_HASH_BYTES];
    memset(h, 1, sizeof h);
    store_session got;
    assert_int_equal(store_session_get(f->s, h, &got, &err), 0);
    assert_string_equal(got.account, "acct-a");
    assert_string_equal(got.source, "127.0.0.1");
    assert_int_equal(got.revoked, 0);

    /* touch: last_seen only moves forward; mfa only when given */
    assert_int_equal(store_session_touch(f->s, h, now + 5, 0, &err), 0);
    assert_int_equal(store_session_touch(f->s, h, now + 1, 0, &err), 0);
    assert_int_equal(store_session_get(f->s, h, &got, &err), 0);
    assert_int_equal(got.last_seen_us, now + 5);
    assert_int_equal(got.mfa_us, now);
    assert_int_equal(store_session_touch(f->s, h, now + 6, now + 6, &err), 0);
    assert_int_equal(store_session_get(f->s, h, &got, &err), 0);
    assert_int_equal(got.mfa_us, now + 6);

    size_t n;
    assert_int_equal(store_session_count(f->s, "acct-a", 0, &n, &err), 0);
    assert_int_equal(n, 2);

    /* revoke one, then every session of an account */
    store_txn *t;
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_session_revoke(t, h, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(store_session_get(f->s, h, &got, &err), 0);
    assert_int_equal(got.revoked, 1);
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_session_revoke_account(t, "acct-a", &n, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(n, 1);                     /* the other one was live */
    assert_int_equal(store_session_count(f->s, "acct-a", 0, &n, &err), 0);
    assert_int_equal(n, 0);

    /* purge what was last seen before a cutoff */
    assert_int_equal(store_txn_begin(f->s, &t, &err), 0);
    assert_int_equal(store_session_purge(t, now - 60 * 1000000LL, &n, &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    assert_int_equal(n, 1);
    memset(h, 3, sizeof h);
    assert_int_equal(store_session_get(f->s, h, &got, &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);

    /* no token-shaped secret is ever stored: only what was given */
    reopen(f);
    memset(h, 2, sizeof h);
    assert_int_equal(store_session_get(f->s, h, &got, &err), 0);
    assert_int_equal(got.revoked, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_by_another_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_open_keyfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_open_passphrase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_non_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_wrong_key_and_unsafe_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_versions_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_match_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logical_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_is_integrity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_body_is_integrity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stolen_database_reveals_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_blind_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_versions_by_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_updated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_interrupted_and_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_patient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_savepoints_and_own_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_ref, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reads_while_writing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
