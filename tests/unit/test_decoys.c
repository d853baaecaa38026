/*
 * test_decoys.c -- the decoy registry and the running server's decoy set
 * (src/server/decoys.c), on a real store.
 *
 * Why this exists: a decoy the server does not recognise is a read-out that
 * goes unnoticed, and a lookup that races a refresh is a crash in the
 * request path of every access.  So: the registry keeps what it is given,
 * refuses malformed and duplicate decoys, audits each plant and watermark;
 * the set knows exactly the registered ids (not a prefix, not a
 * near-miss), only after a refresh, across table growth; and request
 * threads keep getting right answers while refreshes swap the table under
 * them (run under ASan, a use-after-free there is a failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "server/server_internal.h"
#include "store/store.h"
#include "testutil.h"

typedef struct fixture {
    char *tmp, *dir, *key;
    server srv;
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
    if (store_create(f->dir, &u, &f->srv.store, &err) != 0)
        fail_msg("create: %s", err.msg);
    if (audit_open(f->srv.store, NULL, &f->srv.trail, &err) != 0)
        fail_msg("audit: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    decoys_free(&f->srv);
    audit_close(f->srv.trail, NULL);
    store_close(f->srv.store);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->key);
    free(f);
    return 0;
}

static void plant(fixture *f, const char *patient)
{
    char doc[160];
    snprintf(doc, sizeof doc, "{\"patient\":\"%s\",\"family\":\"Martin\"}", patient);
    mv_err err;
    if (server_decoy_save(f->srv.trail, doc, "cli:tester", "cli", &err) != 0)
        fail_msg("plant %s: %s", patient, err.msg);
}

static void refresh(fixture *f)
{
    mv_err err;
    if (decoys_refresh(&f->srv, &err) != 0)
        fail_msg("refresh: %s", err.msg);
}

static json_t *get_doc(fixture *f, const char *patient)
{
    char *text = NULL;
    mv_err err;
    if (server_decoy_get(f->srv.store, patient, &text, &err) != 0)
        fail_msg("get %s: %s", patient, err.msg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(doc);
    return doc;
}

static json_t *list(fixture *f, const char *purpose)
{
    char *text = NULL;
    mv_err err;
    if (server_decoy_list(f->srv.store, purpose, &text, &err) != 0)
        fail_msg("list: %s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    assert_true(json_is_array(arr));
    return arr;
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "(none)";
}

/* ---- The registry ------------------------------------------------------------------------ */

typedef struct audit_count {
    const char *action;
    char resources[1024];
    char actor[64];          /* of the last one */
    int n;
} audit_count;

static int count_row(const store_audit_row *r, void *ctx)
{
    audit_count *c = ctx;
    if (strcmp(r->action, c->action) == 0) {
        c->n++;
        strncat(c->resources, r->resources ? r->resources : "-",
                sizeof c->resources - strlen(c->resources) - 2);
        strcat(c->resources, " ");
        snprintf(c->actor, sizeof c->actor, "%s", r->actor);
    }
    return 0;
}

static audit_count count_audit(fixture *f, const char *action)
{
    audit_count c = { .action = action };
    mv_err err;
    if (store_audit_scan(f->srv.store, 1, 0, count_row, &c, &err) != 0)
        fail_msg("scan: %s", err.msg);
    return c;
}

static void test_registry_keeps_and_lists_decoys(void **state)
{
    fixture *f = *state;
    plant(f, "pat-b");
    plant(f, "pat-a");
    plant(f, "pat-c");
    json_t *doc = get_doc(f, "pat-a");
    assert_string_equal(str(doc, "patient"), "pat-a");
    assert_string_equal(str(doc, "purpose"), "decoy");
    assert_string_equal(str(doc, "planted_by"), "cli:tester");
    assert_string_equal(str(doc, "family"), "Martin");
    assert_true(json_is_object(json_object_get(doc, "output")));
    assert_int_equal(json_object_size(json_object_get(doc, "output")), 0);
    assert_true(strlen(str(doc, "planted_at")) >= 20);
    json_decref(doc);

    json_t *all = list(f, NULL);                         /* in planting order */
    assert_int_equal(json_array_size(all), 3);
    assert_string_equal(str(json_array_get(all, 0), "patient"), "pat-b");
    assert_string_equal(str(json_array_get(all, 1), "patient"), "pat-a");
    assert_string_equal(str(json_array_get(all, 2), "patient"), "pat-c");
    json_decref(all);
    json_t *marks = list(f, "watermark");
    assert_int_equal(json_array_size(marks), 0);
    json_decref(marks);

    char **ids = NULL;
    size_t n = 0;
    mv_err err;
    assert_int_equal(server_decoy_ids(f->srv.store, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    store_ids_free(ids, n);

    audit_count c = count_audit(f, "decoy.plant");     /* each plant, with its patient */
    assert_int_equal(c.n, 3);
    assert_string_equal(c.actor, "cli:tester");
    assert_non_null(strstr(c.resources, "Patient/pat-a "));
    assert_non_null(strstr(c.resources, "Patient/pat-b "));
    assert_non_null(strstr(c.resources, "Patient/pat-c "));
    char *text = NULL;
    assert_int_equal(server_decoy_get(f->srv.store, "pat-z", &text, &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
}

static void test_registry_refuses_bad_and_duplicate_decoys(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "not json", "[]", "{}", "{\"patient\":\"\"}", "{\"patient\":7}",
        "{\"patient\":\"Patient/p1\"}",
        "{\"patient\":\"p1\",\"purpose\":\"bait\"}",
        "{\"patient\":\"p1\",\"output\":{\"reference\":\"x\"}}",
        "{\"patient\":\"p1\",\"purpose\":\"watermark\"}",
        "{\"patient\":\"p1\",\"purpose\":\"watermark\",\"output\":{\"reference\":\"x\"}}",
        "{\"patient\":\"p1\",\"output\":[]}",
    };
    mv_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (server_decoy_save(f->srv.trail, bad[i], "cli:tester", "cli", &err) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, MV_E_INVALID);
    }
    plant(f, "p1");
    assert_int_equal(server_decoy_save(f->srv.trail, "{\"patient\":\"p1\"}", "cli:tester",
                                       "cli", &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    assert_int_equal(count_audit(f, "decoy.plant").n, 1);   /* nothing of the refusals */

    const char *mark = "{\"patient\":\"p2\",\"purpose\":\"watermark\",\"output\":"
                       "{\"reference\":\"export/42\",\"actor\":\"user:etl\"}}";
    assert_int_equal(server_decoy_save(f->srv.trail, mark, "system", "local", &err), 0);
    json_t *doc = get_doc(f, "p2");
    assert_string_equal(str(json_object_get(doc, "output"), "reference"), "export/42");
    json_decref(doc);
}

static void test_watermark_names_one_output(void **state)
{
    fixture *f = *state;
    plant(f, "w1");
    plant(f, "w2");
    mv_err err;
    assert_int_equal(server_decoy_watermark(f->srv.store, f->srv.trail, "w1", "Bundle/ex-7",
                                            "user:acc-9", "system:export", "local", &err), 0);
    json_t *doc = get_doc(f, "w1");
    assert_string_equal(str(doc, "purpose"), "watermark");
    json_t *out = json_object_get(doc, "output");
    assert_string_equal(str(out, "reference"), "Bundle/ex-7");
    assert_string_equal(str(out, "actor"), "user:acc-9");
    assert_true(strlen(str(out, "at")) >= 20);
    assert_string_equal(str(doc, "planted_by"), "cli:tester");    /* kept */
    json_decref(doc);

    /* One decoy marks one output only. */
    assert_int_equal(server_decoy_watermark(f->srv.store, f->srv.trail, "w1", "Bundle/ex-8",
                                            "user:other", "system:export", "local", &err), -1);
    assert_int_equal(err.code, MV_E_CONFLICT);
    assert_int_equal(server_decoy_watermark(f->srv.store, f->srv.trail, "w2", "",
                                            "user:x", "system:export", "local", &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(server_decoy_watermark(f->srv.store, f->srv.trail, "nope", "r",
                                            "user:x", "system:export", "local", &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);

    json_t *marks = list(f, "watermark"), *plain = list(f, "decoy");
    assert_int_equal(json_array_size(marks), 1);
    assert_string_equal(str(json_array_get(marks, 0), "patient"), "w1");
    assert_int_equal(json_array_size(plain), 1);
    assert_string_equal(str(json_array_get(plain, 0), "patient"), "w2");
    json_decref(marks);
    json_decref(plain);
    audit_count c = count_audit(f, "decoy.watermark");
    assert_int_equal(c.n, 1);
    assert_string_equal(c.resources, "Patient/w1 ");
}

/* ---- The set ------------------------------------------------------------------------------ */

static void test_set_knows_exactly_the_registered_ids(void **state)
{
    fixture *f = *state;
    assert_int_equal(decoy_is(&f->srv, "d-1"), 0);          /* no set yet */
    refresh(f);                                              /* an empty one */
    assert_int_equal(decoy_is(&f->srv, "d-1"), 0);
    plant(f, "d-1");
    plant(f, "d-2");
    assert_int_equal(decoy_is(&f->srv, "d-1"), 0);          /* not until a refresh */
    refresh(f);
    assert_int_equal(decoy_is(&f->srv, "d-1"), 1);
    assert_int_equal(decoy_is(&f->srv, "d-2"), 1);
    assert_int_equal(decoy_is(&f->srv, "d-"), 0);
    assert_int_equal(decoy_is(&f->srv, "d-10"), 0);
    assert_int_equal(decoy_is(&f->srv, "D-1"), 0);
    assert_int_equal(decoy_is(&f->srv, ""), 0);
    assert_int_equal(decoy_is(&f->srv, NULL), 0);
    assert_int_equal(decoy_is(NULL, "d-1"), 0);

    /* Past the first table sizes: every id found, no other. */
    mv_err err;
    store_txn *t;
    assert_int_equal(store_txn_begin(f->srv.store, &t, &err), 0);
    for (int i = 0; i < 300; i++) {
        char id[32], body[64];
        snprintf(id, sizeof id, "bulk-%d", i);
        snprintf(body, sizeof body, "{\"patient\":\"%s\"}", id);
        store_term terms[] = { { "kind", "decoy", 0 }, { "purpose", "decoy", 0 } };
        store_write w = { .type = "_Decoy", .id = id, .body = body,
                          .body_len = strlen(body), .terms = terms, .n_terms = 2 };
        int64_t v;
        assert_int_equal(store_put(t, &w, &v, &err), 0);
    }
    assert_int_equal(store_txn_commit(t, &err), 0);
    refresh(f);
    for (int i = 0; i < 300; i++) {
        char id[32], other[32];
        snprintf(id, sizeof id, "bulk-%d", i);
        snprintf(other, sizeof other, "bulk-%d", i + 300);
        assert_int_equal(decoy_is(&f->srv, id), 1);
        assert_int_equal(decoy_is(&f->srv, other), 0);
    }
    assert_int_equal(decoy_is(&f->srv, "d-2"), 1);
    decoys_free(&f->srv);
    assert_null(f->srv.decoys);
    assert_int_equal(decoy_is(&f->srv, "d-2"), 0);
    decoys_free(&f->srv);                                    /* twice is harmless */
}

/* Request threads asking while refreshes swap the table under them. */
typedef struct reader {
    fixture *f;
    int *stop;
    long lookups, wrong;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    char id[32];
    while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < 40; i++) {
            snprintf(id, sizeof id, "base-%d", i);
            r->wrong += decoy_is(&r->f->srv, id) != 1;
            snprintf(id, sizeof id, "real-%d", i);
            r->wrong += decoy_is(&r->f->srv, id) != 0;
            r->lookups += 2;
        }
    }
    return NULL;
}

/* The first refresh runs on several threads at once (the set is made once). */
static void *refresh_loop(void *arg)
{
    fixture *f = arg;
    mv_err err;
    for (int i = 0; i < 50; i++)
        if (decoys_refresh(&f->srv, &err) != 0)
            return (void *)1;
    return NULL;
}

#define READERS 4
#define REFRESHERS 2

static void test_lookups_stay_right_during_refreshes(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "base-%d", i);
        plant(f, id);
    }
    refresh(f);
    int stop = 0;
    pthread_t readers[READERS], refreshers[REFRESHERS];
    reader r[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (reader){ f, &stop, 0, 0 };
        assert_int_equal(pthread_create(&readers[i], NULL, read_loop, &r[i]), 0);
    }
    for (int i = 0; i < REFRESHERS; i++)
        assert_int_equal(pthread_create(&refreshers[i], NULL, refresh_loop, f), 0);
    for (int round = 0; round < 5; round++) {         /* the set grows meanwhile */
        char id[32];
        snprintf(id, sizeof id, "late-%d", round);
        plant(f, id);
        refresh(f);
        assert_int_equal(decoy_is(&f->srv, id), 1);
    }
    for (int i = 0; i < REFRESHERS; i++) {
        void *rc;
        pthread_join(refreshers[i], &rc);
        assert_null(rc);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < READERS; i++) {
        pthread_join(readers[i], NULL);
        assert_true(r[i].lookups > 0);
        assert_int_equal(r[i].wrong, 0);
    }
}

static void test_first_refreshes_race_to_make_the_set(void **state)
{
    fixture *f = *state;
    plant(f, "x-1");
    pthread_t t[REFRESHERS];
    for (int i = 0; i < REFRESHERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, refresh_loop, f), 0);
    for (int i = 0; i < REFRESHERS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    assert_int_equal(decoy_is(&f->srv, "x-1"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_keeps_and_lists_decoys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_refuses_bad_and_duplicate_decoys,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_watermark_names_one_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_knows_exactly_the_registered_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lookups_stay_right_during_refreshes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_refreshes_race_to_make_the_set, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
