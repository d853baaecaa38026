/*
 * test_audit.c -- the audit trail as a library: group commit under
 * concurrency, atomicity of a data change with its entry, checkpoints every N
 * entries and at close, and verification of every kind of tampering done
 * directly on the database file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/chain.h"
#include "crypto/crypto.h"
#include "store/store.h"
#include "testutil.h"

typedef struct fixture {
    char *tmp;
    char *dir;
    char *key;
    mv_store *s;
    audit_trail *t;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mv_err err;
    assert_int_equal(crypto_init(&err), 0);
    f->tmp = tu_mkdtemp();
    f->dir = tu_path(f->tmp, "data");
    f->key = tu_path(f->tmp, "store.key");
    assert_int_equal(crypto_keyfile_create(f->key, &err), 0);
    store_unlock u = { .key_file = f->key };
    assert_int_equal(store_create(f->dir, &u, &f->s, &err), 0);
    audit_options o = { .checkpoint_every = 10, .checkpoint_interval_us = 3600 * 1000000LL };
    assert_int_equal(audit_open(f->s, &o, &f->t, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->t)
        audit_close(f->t, NULL);
    store_close(f->s);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->key);
    free(f);
    return 0;
}

static void record(fixture *f, const char *action)
{
    audit_event ev = { .actor = "user:test", .action = action, .outcome = "success",
                       .patient = "p1", .source = "127.0.0.1" };
    mv_err err;
    assert_int_equal(audit_record(f->t, &ev, 1, NULL, NULL, NULL, &err), 0);
}

static void verify_ok(fixture *f)
{
    audit_report rep;
    mv_err err;
    int rc = audit_verify(f->s, NULL, 0, &rep, &err);
    if (rc != 0)
        fail_msg("verify failed: %s", err.msg);
}

/* Run SQL directly on the database file: the attacker's view. */
static void tamper(fixture *f, const char *sql)
{
    char *db = tu_path(f->dir, "medvault.db");
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("tamper SQL failed: %s", msg);
    sqlite3_close(h);
    free(db);
}

/* Every segmentation of the walk must name the same first bad entry: the
 * seams of a parallel verify may not hide or move a problem. */
static void expect_tamper_at(fixture *f, int64_t seq)
{
    for (size_t segments = 1; segments <= 4; segments++) {
        audit_report rep;
        mv_err err;
        mv_err_clear(&err);
        int rc = audit_verify_segmented(f->s, NULL, 0, segments, &rep, &err);
        if (rc != -1 || err.code != MV_E_TAMPER || rep.bad_seq != seq)
            fail_msg("%zu segments: rc %d, code %s, bad entry %lld (want %lld): %s",
                     segments, rc, mv_code_name(err.code), (long long)rep.bad_seq,
                     (long long)seq, err.msg);
    }
}

static void expect_clean(fixture *f, int64_t entries)
{
    for (size_t segments = 1; segments <= 4; segments++) {
        audit_report rep;
        mv_err err;
        if (audit_verify_segmented(f->s, NULL, 0, segments, &rep, &err) != 0)
            fail_msg("%zu segments: %s", segments, err.msg);
        assert_int_equal(rep.entries, entries);
        assert_int_equal(rep.last_seq, entries);
    }
}

/* ---- appending -------------------------------------------------------------- */

static void test_sequence_and_head(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 25; i++)
        record(f, "test.event");
    assert_int_equal(audit_head(f->t), 25);
    verify_ok(f);
}

static void test_checkpoints_every_n_and_at_close(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 25; i++)
        record(f, "test.event");
    store_checkpoint *cps;
    size_t n;
    mv_err err;
    assert_int_equal(store_checkpoints(f->s, &cps, &n, &err), 0);
    assert_int_equal(n, 2);         /* at 10 and 20 */
    assert_int_equal(cps[0].seq, 10);
    assert_int_equal(cps[1].seq, 20);
    free(cps);
    assert_int_equal(audit_close(f->t, &err), 0);
    f->t = NULL;
    assert_int_equal(store_checkpoints(f->s, &cps, &n, &err), 0);
    assert_int_equal(n, 3);         /* and the final one at close */
    assert_int_equal(cps[2].seq, 25);
    free(cps);
    verify_ok(f);
}

static void test_checkpoint_by_time(void **state)
{
    fixture *f = *state;
    mv_err err;
    audit_close(f->t, NULL);
    audit_options o = { .checkpoint_every = 1000000, .checkpoint_interval_us = 1 };
    assert_int_equal(audit_open(f->s, &o, &f->t, &err), 0);
    record(f, "a");
    assert_int_equal(audit_tick(f->t, &err), 0);
    store_checkpoint *cps;
    size_t n;
    assert_int_equal(store_checkpoints(f->s, &cps, &n, &err), 0);
    assert_true(n >= 1);
    assert_int_equal(cps[n - 1].seq, audit_head(f->t));
    free(cps);
}

static void test_event_needs_actor(void **state)
{
    fixture *f = *state;
    audit_event ev = { .action = "x", .outcome = "success" };
    mv_err err;
    assert_int_equal(audit_record(f->t, &ev, 1, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(audit_head(f->t), 0);
}

/* ---- atomicity with the data change ------------------------------------------ */

typedef struct put_ctx {
    const char *id;
    int64_t version;
} put_ctx;

static int apply_put(store_txn *txn, void *ctx, mv_err *err)
{
    put_ctx *p = ctx;
    static const char body[] = "{\"resourceType\":\"Patient\"}";
    store_write w = { .type = "Patient", .id = p->id, .patient = p->id,
                      .if_version = 0, .body = body, .body_len = sizeof body - 1 };
    return store_put(txn, &w, &p->version, err);
}

static void test_change_and_entry_commit_together(void **state)
{
    fixture *f = *state;
    audit_event ev = { .actor = "user:a", .action = "resource.create",
                       .outcome = "success", .patient = "px" };
    put_ctx p = { "px", 0 };
    mv_err err;
    int64_t seq = 0;
    assert_int_equal(audit_record(f->t, &ev, 1, apply_put, &p, &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(p.version, 1);
    /* The same create again conflicts (if_version 0): neither the change nor
     * its entry may be kept. */
    assert_int_equal(audit_record(f->t, &ev, 1, apply_put, &p, &seq, &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    assert_int_equal(audit_head(f->t), 1);
    store_resource r;
    assert_int_equal(store_get(f->s, "Patient", "px", 0, &r, &err), 0);
    assert_int_equal(r.version, 1);
    store_resource_free(&r);
    record(f, "after");          /* the chain continues from seq 1 */
    assert_int_equal(audit_head(f->t), 2);
    verify_ok(f);
}

/* ---- group commit ----------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 300

static void *hammer(void *arg)
{
    fixture *f = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        audit_event ev = { .actor = "user:t", .action = "resource.read",
                           .outcome = "success", .resources = "Patient/x" };
        mv_err err;
        if (audit_record(f->t, &ev, 1, NULL, NULL, NULL, &err) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_appends_form_one_chain(void **state)
{
    fixture *f = *state;
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, f);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_null(rc);
    }
    assert_int_equal(audit_head(f->t), THREADS * PER_THREAD);
    verify_ok(f);
    audit_report rep;
    mv_err err;
    assert_int_equal(audit_verify(f->s, NULL, 0, &rep, &err), 0);
    assert_int_equal(rep.entries, THREADS * PER_THREAD);
    assert_true(rep.checkpoints >= THREADS * PER_THREAD / 10 / 2);
}

static void test_reopen_continues_chain(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++)
        record(f, "before");
    mv_err err;
    assert_int_equal(audit_close(f->t, &err), 0);
    assert_int_equal(audit_open(f->s, NULL, &f->t, &err), 0);
    assert_int_equal(audit_head(f->t), 5);
    record(f, "after");
    verify_ok(f);
}

/* Two handles on one store (as the server and a CLI command are two
 * processes): appends interleave and still form one chain. */
static void test_two_writers_on_one_store(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_unlock u = { .key_file = f->key };
    mv_store *s2;
    audit_trail *t2;
    assert_int_equal(store_open(f->dir, &u, &s2, &err), 0);
    assert_int_equal(audit_open(s2, NULL, &t2, &err), 0);
    audit_event ev = { .actor = "cli:root", .action = "account.unlock",
                       .outcome = "success" };
    for (int i = 0; i < 12; i++) {
        record(f, "server.event");
        if (audit_record(t2, &ev, 1, NULL, NULL, NULL, &err) != 0)
            fail_msg("second writer: %s", err.msg);
    }
    assert_int_equal(audit_checkpoint(t2, &err), 0);
    assert_int_equal(audit_close(t2, &err), 0);
    store_close(s2);
    record(f, "after");
    assert_int_equal(audit_checkpoint(f->t, &err), 0);
    expect_clean(f, 25);
}

/* ---- tampering ----------------------------------------------------------------------- */

static void fill(fixture *f, int n)
{
    for (int i = 0; i < n; i++)
        record(f, "test.event");
    mv_err err;
    assert_int_equal(audit_checkpoint(f->t, &err), 0);
}

static void test_detects_edit(void **state)
{
    fixture *f = *state;
    fill(f, 15);
    tamper(f, "UPDATE audit SET outcome = 'denied' WHERE seq = 7");
    expect_tamper_at(f, 7);
}

static void test_detects_edit_with_recomputed_unkeyed_hash(void **state)
{
    /* Without the keys nobody can produce a matching link: replacing an
     * entry's hash (and the next prev) with any other value is caught. */
    fixture *f = *state;
    fill(f, 15);
    tamper(f, "UPDATE audit SET patient = 'p2', hash = zeroblob(32) WHERE seq = 7;"
              "UPDATE audit SET prev = zeroblob(32) WHERE seq = 8");
    expect_tamper_at(f, 7);
}

static void test_detects_delete(void **state)
{
    fixture *f = *state;
    fill(f, 15);
    tamper(f, "DELETE FROM audit WHERE seq = 3");
    expect_tamper_at(f, 3);
}

static void test_detects_reorder(void **state)
{
    fixture *f = *state;
    fill(f, 15);
    tamper(f, "UPDATE audit SET seq = -1 WHERE seq = 4;"
              "UPDATE audit SET seq = 4 WHERE seq = 5;"
              "UPDATE audit SET seq = 5 WHERE seq = -1");
    expect_tamper_at(f, 4);
}

static void test_detects_truncation_by_checkpoint(void **state)
{
    fixture *f = *state;
    fill(f, 15);                       /* checkpoints at 10 and 15 */
    tamper(f, "DELETE FROM audit WHERE seq > 12");
    expect_tamper_at(f, 13);
}

static void test_external_checkpoint_catches_full_truncation(void **state)
{
    fixture *f = *state;
    fill(f, 15);
    mv_buf json = {0};
    mv_err err;
    assert_int_equal(audit_export_checkpoint(f->s, &json, &err), 0);
    tamper(f, "DELETE FROM audit WHERE seq > 8;"
              "DELETE FROM audit_checkpoints WHERE seq > 8");
    audit_report rep;
    assert_int_equal(audit_verify(f->s, NULL, 0, &rep, &err), 0);
    assert_int_equal(audit_verify(f->s, (const char *)json.data, json.len, &rep, &err), -1);
    assert_int_equal(err.code, MV_E_TAMPER);
    assert_non_null(strstr(err.msg, "truncated"));
    mv_buf_free(&json);
}

/* 16 entries: the seams of 2, 3 and 4 segments fall at 9, 6/11 and 5/9/13. */
static void test_seams_clean(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    expect_clean(f, 16);
}

static void test_seam_first_entry_of_segment_deleted(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "DELETE FROM audit WHERE seq = 9");
    expect_tamper_at(f, 9);
}

static void test_seam_last_entry_of_segment_edited(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "UPDATE audit SET actor = 'user:x' WHERE seq = 8");
    expect_tamper_at(f, 8);
}

static void test_seam_reorder_across(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "UPDATE audit SET seq = -1 WHERE seq = 8;"
              "UPDATE audit SET seq = 8 WHERE seq = 9;"
              "UPDATE audit SET seq = 9 WHERE seq = -1");
    expect_tamper_at(f, 8);
}

static void test_seam_first_entry_relinked(void **state)
{
    /* The first entry of the trail must link to nothing (a zero hash). */
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "UPDATE audit SET prev = randomblob(32) WHERE seq = 1");
    expect_tamper_at(f, 1);
}

static void test_seam_tail_deleted(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "DELETE FROM audit WHERE seq IN (15, 16)");
    expect_tamper_at(f, 15);   /* the checkpoint at 16 is past the end */
}

/* An attacker holding the keys forges entry 9 with a valid hash over a wrong
 * prev: only the link checks (inside a segment and at a seam) catch it. */
typedef struct forge_ctx {
    int64_t seq;
    store_audit_row row;
    char strings[9][64];
} forge_ctx;

static int grab_row(const store_audit_row *r, void *p)
{
    forge_ctx *c = p;
    if (r->seq != c->seq)
        return 0;
    c->row = *r;
    const char *src[9] = { r->actor, r->action, r->outcome, r->resources, r->patient,
                           r->source, r->session, r->purpose, r->request_id };
    const char **dst[9] = { &c->row.actor, &c->row.action, &c->row.outcome,
                            &c->row.resources, &c->row.patient, &c->row.source,
                            &c->row.session, &c->row.purpose, &c->row.request_id };
    for (int i = 0; i < 9; i++) {
        *dst[i] = src[i] ? strncpy(c->strings[i], src[i], 63) : NULL;
    }
    return 1;
}

static void test_forged_entry_with_valid_hash_but_wrong_link(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    forge_ctx c = { .seq = 9 };
    mv_err err;
    assert_int_equal(store_audit_scan(f->s, 9, 9, grab_row, &c, &err), 1);
    crypto_chain *chain;
    assert_int_equal(chain_open(f->s, &chain, &err), 0);
    crypto_random(c.row.prev, sizeof c.row.prev);
    mv_buf scratch = {0};
    assert_int_equal(chain_link_row(chain, &c.row, &scratch, c.row.hash, &err), 0);
    mv_buf_free(&scratch);
    crypto_chain_close(chain);
    char prev_hex[65], hash_hex[65], sql[300];
    mv_hex_encode(c.row.prev, 32, prev_hex);
    mv_hex_encode(c.row.hash, 32, hash_hex);
    /* Entry 10's prev follows the forgery, so only 9's link is broken. */
    snprintf(sql, sizeof sql,
             "UPDATE audit SET prev = X'%s', hash = X'%s' WHERE seq = 9;"
             "UPDATE audit SET prev = X'%s' WHERE seq = 10;",
             prev_hex, hash_hex, hash_hex);
    tamper(f, sql);
    expect_tamper_at(f, 9);
}

static void test_two_problems_first_named(void **state)
{
    fixture *f = *state;
    fill(f, 16);
    tamper(f, "UPDATE audit SET action = 'x' WHERE seq = 14;"
              "UPDATE audit SET action = 'y' WHERE seq = 3");
    expect_tamper_at(f, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequence_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_every_n_and_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_by_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_needs_actor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_and_entry_commit_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends_form_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers_on_one_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_edit_with_recomputed_unkeyed_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_truncation_by_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_checkpoint_catches_full_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seams_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seam_first_entry_of_segment_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seam_last_entry_of_segment_edited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seam_reorder_across, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seam_first_entry_relinked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seam_tail_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_problems_first_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_entry_with_valid_hash_but_wrong_link, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
