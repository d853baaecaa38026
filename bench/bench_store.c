/*
 * bench_store.c -- the price of encryption at rest: put and get of a 2 KiB
 * resource through store.h (sealed under a per-patient data key, AD-bound)
 * against the same operations on a plaintext SQLite table with the same
 * shape, the same PRAGMAs and the same batching.  Target: encryption overhead
 * under 15%.  The two sides alternate round by round and medians are
 * reported: on a shared 2-core machine, whichever ran second used to lose.
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

#define ROUNDS 5   /* each side is timed 5 times, alternately; medians reported */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof v[0], cmp_double);
    return v[ROUNDS / 2];
}

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

static mv_store *medvault_open(const char *tmp, int round)
{
    char dir[256], key[256];
    snprintf(dir, sizeof dir, "%s/mv%d", tmp, round);
    snprintf(key, sizeof key, "%s/mv%d.key", tmp, round);
    mv_err err;
    mv_store *s;
    store_unlock u = { .key_file = key };
    if (crypto_keyfile_create(key, &err) != 0 || store_create(dir, &u, &s, &err) != 0)
        die("setup", err.msg);
    return s;
}

static double medvault_puts(mv_store *s, int n)
{
    char id[32], patient[32], body[BODY_BYTES];
    mv_err err;
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
    return now_s() - t0;
}

static double medvault_gets(mv_store *s, int n)
{
    char id[32];
    mv_err err;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "o%d", (int)((i * 7919L) % n));
        store_resource r;
        if (store_get(s, "Observation", id, 0, &r, &err) != 0)
            die("get", err.msg);
        if (r.body.len != BODY_BYTES)
            die("get", "wrong length");
        store_resource_free(&r);
    }
    return now_s() - t0;
}

/* ---- plaintext SQLite baseline ------------------------------------------------- */

typedef struct plain {
    sqlite3 *db;
    sqlite3_stmt *cur, *ins, *get;
} plain;

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(db));
    return st;
}

/* The same table shape and the same PRAGMAs as src/store/ uses. */
static void plain_open(const char *tmp, int round, plain *p)
{
    char path[256];
    snprintf(path, sizeof path, "%s/plain%d.db", tmp, round);
    if (sqlite3_open(path, &p->db) != SQLITE_OK)
        die("open", "plain");
    sqlite3_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "PRAGMA secure_delete=ON; PRAGMA cache_size=-32768;"
                 "CREATE TABLE resources(seq INTEGER PRIMARY KEY, type TEXT NOT NULL,"
                 " id TEXT NOT NULL, version INTEGER NOT NULL, patient TEXT,"
                 " updated_us INTEGER NOT NULL, deleted INTEGER NOT NULL, body BLOB,"
                 " UNIQUE(type, id, version)) STRICT;"
                 "CREATE INDEX resources_patient ON resources(patient);",
                 NULL, NULL, NULL);
    p->cur = prep(p->db, "SELECT max(version) FROM resources WHERE type=? AND id=?");
    p->ins = prep(p->db, "INSERT INTO resources(type, id, version, patient, updated_us,"
                         " deleted, body) VALUES(?,?,?,?,?,0,?)");
    p->get = prep(p->db, "SELECT version, patient, body FROM resources "
                         "WHERE type=? AND id=? ORDER BY version DESC LIMIT 1");
}

static void plain_close(plain *p)
{
    sqlite3_finalize(p->cur);
    sqlite3_finalize(p->ins);
    sqlite3_finalize(p->get);
    sqlite3_close(p->db);
}

static double plain_puts(plain *p, int n)
{
    char id[32], patient[32], body[BODY_BYTES];
    double t0 = now_s();
    for (int b = 0; b < n; b += BATCH) {
        sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (int i = b; i < b + BATCH && i < n; i++) {
            snprintf(id, sizeof id, "o%d", i);
            snprintf(patient, sizeof patient, "p%d", i % PATIENTS);
            make_body(body, i);
            sqlite3_bind_text(p->cur, 1, "Observation", -1, SQLITE_STATIC);
            sqlite3_bind_text(p->cur, 2, id, -1, SQLITE_STATIC);
            sqlite3_step(p->cur);
            int64_t v = sqlite3_column_int64(p->cur, 0) + 1;
            sqlite3_reset(p->cur);
            sqlite3_bind_text(p->ins, 1, "Observation", -1, SQLITE_STATIC);
            sqlite3_bind_text(p->ins, 2, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(p->ins, 3, v);
            sqlite3_bind_text(p->ins, 4, patient, -1, SQLITE_STATIC);
            sqlite3_bind_int64(p->ins, 5, (int64_t)time(NULL));
            sqlite3_bind_blob(p->ins, 6, body, BODY_BYTES, SQLITE_STATIC);
            if (sqlite3_step(p->ins) != SQLITE_DONE)
                die("insert", sqlite3_errmsg(p->db));
            sqlite3_reset(p->ins);
        }
        sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
    }
    return now_s() - t0;
}

static double plain_gets(plain *p, int n)
{
    char id[32];
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "o%d", (int)((i * 7919L) % n));
        sqlite3_bind_text(p->get, 1, "Observation", -1, SQLITE_STATIC);
        sqlite3_bind_text(p->get, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(p->get) != SQLITE_ROW)
            die("get", "missing");
        /* Copy out, as store_get does, so both sides hand back owned bytes. */
        size_t len = (size_t)sqlite3_column_bytes(p->get, 2);
        char *copy = malloc(len);
        memcpy(copy, sqlite3_column_blob(p->get, 2), len);
        free(copy);
        sqlite3_reset(p->get);
    }
    return now_s() - t0;
}

/* Rounds alternate between the two sides so that neither always runs on a
 * warmer (or more fragmented) machine than the other; medians are reported. */
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    mv_err err;
    if (crypto_init(&err) != 0)
        die("init", err.msg);
    char tmpl[] = "/tmp/medvault-bench-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    double mp[ROUNDS], pp[ROUNDS], mg[ROUNDS], pg[ROUNDS];
    mv_store *s = NULL;
    plain p = {0};
    for (int r = 0; r < ROUNDS; r++) {      /* each put round on fresh files */
        if (s) {
            store_close(s);
            plain_close(&p);
        }
        plain_open(tmp, r, &p);
        s = medvault_open(tmp, r);
        if (r % 2) {
            mp[r] = medvault_puts(s, n);
            pp[r] = plain_puts(&p, n);
        } else {
            pp[r] = plain_puts(&p, n);
            mp[r] = medvault_puts(s, n);
        }
    }
    for (int r = 0; r < ROUNDS; r++) {      /* reads on the last pair */
        if (r % 2) {
            mg[r] = medvault_gets(s, n);
            pg[r] = plain_gets(&p, n);
        } else {
            pg[r] = plain_gets(&p, n);
            mg[r] = medvault_gets(s, n);
        }
    }
    store_close(s);
    plain_close(&p);
    double mpm = median(mp), ppm = median(pp), mgm = median(mg), pgm = median(pg);
    printf("| put 2 KiB, batches of %d (plaintext SQLite / medvault encrypted), "
           "median of %d | %d | %.0f/s / %.0f/s, overhead %+.1f%% |\n",
           BATCH, ROUNDS, n, n / ppm, n / mpm, (mpm / ppm - 1) * 100);
    printf("| get 2 KiB by id (plaintext SQLite / medvault encrypted), "
           "median of %d | %d | %.0f/s / %.0f/s, overhead %+.1f%% |\n",
           ROUNDS, n, n / pgm, n / mgm, (mgm / pgm - 1) * 100);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : 1;
}
