/*
 * bench_store.c -- the price of encryption at rest: put and get of a 2 KiB
 * resource through store.h (sealed under a per-patient data key, AD-bound)
 * against the same operations on a plaintext SQLite table with the same
 * shape, the same PRAGMAs and the same batching.  Target: encryption overhead
 * under 15%.
 *
 * This file holds SQL for the *baseline* only: it is a measuring instrument,
 * not part of medvault.
 *
 * usage: bench_store [N]   (default 20000 resources over 2000 patients)
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "store/store.h"

#define BODY_BYTES 2048
#define BATCH 500
#define PATIENTS 2000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void make_body(char *body, int i)
{
    int n = snprintf(body, BODY_BYTES, "{\"resourceType\":\"Observation\",\"id\":\"o%d\","
                     "\"note\":[{\"text\":\"", i);
    memset(body + n, 'a' + i % 26, BODY_BYTES - n - 4);
    memcpy(body + BODY_BYTES - 4, "\"}]}", 4);
}

static int die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, msg);
    exit(1);
}

/* ---- medvault store -------------------------------------------------------- */

static void medvault_run(const char *tmp, int n, double *put_s, double *get_s)
{
    char dir[256], key[256], id[32], patient[32], body[BODY_BYTES];
    snprintf(dir, sizeof dir, "%s/mv", tmp);
    snprintf(key, sizeof key, "%s/mv.key", tmp);
    mv_err err;
    mv_store *s;
    store_unlock u = { .key_file = key };
    if (crypto_keyfile_create(key, &err) != 0 || store_create(dir, &u, &s, &err) != 0)
        die("setup", err.msg);
    double t0 = now_s();
    for (int b = 0; b < n; b += BATCH) {
        store_txn *t;
        if (store_txn_begin(s, &t, &err) != 0)
            die("begin", err.msg);
        for (int i = b; i < b + BATCH && i < n; i++) {
            snprintf(id, sizeof id, "o%d", i);
            snprintf(patient, sizeof patient, "p%d", i % PATIENTS);
            make_body(body, i);
            store_write w = { .type = "Observation", .id = id, .patient = patient,
                              .if_version = -1, .body = body, .body_len = BODY_BYTES };
            int64_t v;
            if (store_put(t, &w, &v, &err) != 0)
                die("put", err.msg);
        }
        if (store_txn_commit(t, &err) != 0)
            die("commit", err.msg);
    }
    *put_s = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "o%d", (int)((i * 7919L) % n));
        store_resource r;
        if (store_get(s, "Observation", id, 0, &r, &err) != 0)
            die("get", err.msg);
        if (r.body.len != BODY_BYTES)
            die("get", "wrong length");
        store_resource_free(&r);
    }
    *get_s = now_s() - t0;
    store_close(s);
}

/* ---- plaintext SQLite baseline ------------------------------------------------- */

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(db));
    return st;
}

static void plain_run(const char *tmp, int n, double *put_s, double *get_s)
{
    char path[256], id[32], patient[32], body[BODY_BYTES];
    snprintf(path, sizeof path, "%s/plain.db", tmp);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("open", "plain");
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "PRAGMA secure_delete=ON;"
                 "CREATE TABLE resources(type TEXT, id TEXT, version INTEGER,"
                 " patient TEXT, updated_us INTEGER, deleted INTEGER, body BLOB,"
                 " PRIMARY KEY(type, id, version));", NULL, NULL, NULL);
    sqlite3_stmt *cur = prep(db, "SELECT max(version) FROM resources WHERE type=? AND id=?");
    sqlite3_stmt *ins = prep(db, "INSERT INTO resources VALUES(?,?,?,?,?,0,?)");
    sqlite3_stmt *get = prep(db, "SELECT version, patient, body FROM resources "
                                 "WHERE type=? AND id=? ORDER BY version DESC LIMIT 1");
    double t0 = now_s();
    for (int b = 0; b < n; b += BATCH) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (int i = b; i < b + BATCH && i < n; i++) {
            snprintf(id, sizeof id, "o%d", i);
            snprintf(patient, sizeof patient, "p%d", i % PATIENTS);
            make_body(body, i);
            sqlite3_bind_text(cur, 1, "Observation", -1, SQLITE_STATIC);
            sqlite3_bind_text(cur, 2, id, -1, SQLITE_STATIC);
            sqlite3_step(cur);
            int64_t v = sqlite3_column_int64(cur, 0) + 1;
            sqlite3_reset(cur);
            sqlite3_bind_text(ins, 1, "Observation", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 3, v);
            sqlite3_bind_text(ins, 4, patient, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 5, (int64_t)time(NULL));
            sqlite3_bind_blob(ins, 6, body, BODY_BYTES, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                die("insert", sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    *put_s = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "o%d", (int)((i * 7919L) % n));
        sqlite3_bind_text(get, 1, "Observation", -1, SQLITE_STATIC);
        sqlite3_bind_text(get, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW)
            die("get", "missing");
        /* Copy out, as store_get does, so both sides hand back owned bytes. */
        size_t len = (size_t)sqlite3_column_bytes(get, 2);
        char *copy = malloc(len);
        memcpy(copy, sqlite3_column_blob(get, 2), len);
        free(copy);
        sqlite3_reset(get);
    }
    *get_s = now_s() - t0;
    sqlite3_finalize(cur);
    sqlite3_finalize(ins);
    sqlite3_finalize(get);
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    mv_err err;
    if (crypto_init(&err) != 0)
        die("init", err.msg);
    char tmpl[] = "/tmp/medvault-bench-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    double mp, mg, pp, pg;
    plain_run(tmp, n, &pp, &pg);
    medvault_run(tmp, n, &mp, &mg);
    printf("| put 2 KiB, batches of %d (plaintext SQLite / medvault encrypted) "
           "| %d | %.0f/s / %.0f/s | overhead %+.1f%% |\n",
           BATCH, n, n / pp, n / mp, (mp / pp - 1) * 100);
    printf("| get 2 KiB by id (plaintext SQLite / medvault encrypted) "
           "| %d | %.0f/s / %.0f/s | overhead %+.1f%% |\n",
           n, n / pg, n / mg, (mg / pg - 1) * 100);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : 1;
}
