/*
 * test_fhir_facts.c -- the facts behind the access policy, answered from a
 * real store (src/server/fhir_facts.c): when is a practitioner caring for a
 * patient, and when does a break-the-glass grant hold.
 *
 * Why this exists: the policy is only as strict as these facts.  A CareTeam
 * that ended in June 2021 ("period": {"end": "2021-06"}) once counted as a
 * current relationship because its partial date did not parse, and so did
 * a team that had not started yet, or whose member's own participation had
 * ended.  Each case stores the resources the way the API would (index terms
 * from fhir/, sealed by store/) and asks the fact for one patient.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "fhir/fhir.h"
#include "server/fhir_internal.h"
#include "store/store.h"
#include "testutil.h"

/* 2026-01-01T00:00:00Z */
#define NOW_US (1767225600LL * 1000000LL)
#define PRAC "prac-1"

typedef struct fixture {
    char *tmp, *dir, *key;
    server srv;
    int next_id;
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
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->srv.store);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->key);
    free(f);
    return 0;
}

/* Store body (deleted when NULL) as type/id of patient, indexed as the
 * API indexes it. */
static void put(fixture *f, const char *type, const char *id, const char *patient,
                const char *body)
{
    mv_err err;
    fhir_term *t = NULL;
    size_t nt = 0;
    if (body && fhir_index_terms(body, strlen(body), &t, &nt, &err) != 0)
        fail_msg("index %s: %s", body, err.msg);
    store_term *st = calloc(nt ? nt : 1, sizeof *st);
    size_t nst = 0;
    for (size_t i = 0; i < nt; i++)
        if (fhir_param_bits(type, t[i].param) > 0)
            st[nst++] = (store_term){ t[i].param, t[i].value, fhir_param_bits(type, t[i].param) };
    store_txn *txn;
    assert_int_equal(store_txn_begin(f->srv.store, &txn, &err), 0);
    store_write w = { .type = type, .id = id, .patient = patient, .if_version = -1,
                      .body = body, .body_len = body ? strlen(body) : 0,
                      .deleted = body == NULL, .terms = st, .n_terms = nst };
    int64_t v;
    if (store_put(txn, &w, &v, &err) != 0)
        fail_msg("put %s/%s: %s", type, id, err.msg);
    assert_int_equal(store_txn_commit(txn, &err), 0);
    free(st);
    fhir_terms_free(t, nt);
}

/* A CareTeam of patient with status, extra JSON members (may be ""), and
 * participants (a JSON array). */
static void care_team(fixture *f, const char *id, const char *patient, const char *status,
                      const char *extra, const char *participants)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"resourceType\":\"CareTeam\",\"id\":\"%s\","
             "\"status\":\"%s\",\"subject\":{\"reference\":\"Patient/%s\"}%s%s,"
             "\"participant\":%s}", id, status, patient, extra[0] ? "," : "", extra,
             participants);
    put(f, "CareTeam", id, patient, body);
}

#define MEMBER "[{\"member\":{\"reference\":\"Practitioner/" PRAC "\"}}]"

static int related(fixture *f, const char *patient)
{
    policy_facts facts = fhir_facts(&f->srv);
    return facts.care_relationship(facts.ctx, PRAC, patient, NOW_US);
}

/* One CareTeam per case, each for its own patient. */
static void expect_team(fixture *f, const char *status, const char *extra,
                        const char *participants, int want)
{
    char patient[32], id[32];
    snprintf(patient, sizeof patient, "pat-%d", f->next_id);
    snprintf(id, sizeof id, "ct-%d", f->next_id++);
    care_team(f, id, patient, status, extra, participants);
    int got = related(f, patient);
    if (got != want)
        print_message("CareTeam %s %s: got %d, want %d\n", status, extra, got, want);
    assert_int_equal(got, want);
}

static void test_care_team_periods(void **state)
{
    fixture *f = *state;
    expect_team(f, "active", "", MEMBER, 1);
    /* over: a day, a month, a year, an instant with an offset */
    expect_team(f, "active", "\"period\":{\"end\":\"2020-01-01\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2021-06\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2019\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2022-03-04T10:00:00+02:00\"}",
                MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2025-12-31T23:59:59.999999Z\"}",
                MEMBER, 0);
    /* a partial end lasts to the end of its day, month or year */
    expect_team(f, "active", "\"period\":{\"end\":\"2026-01-01\"}", MEMBER, 1);
    expect_team(f, "active", "\"period\":{\"end\":\"2026-01\"}", MEMBER, 1);
    expect_team(f, "active", "\"period\":{\"end\":\"2026\"}", MEMBER, 1);
    expect_team(f, "active", "\"period\":{\"start\":\"2020\",\"end\":\"2999-12-31\"}",
                MEMBER, 1);
    /* not begun yet */
    expect_team(f, "active", "\"period\":{\"start\":\"2999-01-01\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"start\":\"2026-01-01T00:00:01Z\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"start\":\"2026\"}", MEMBER, 1);
    /* a date that cannot be read never makes a relationship */
    expect_team(f, "active", "\"period\":{\"end\":\"soon\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2999-02-30\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2999-13\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":\"2999-1-01\"}", MEMBER, 0);
    expect_team(f, "active", "\"period\":{\"end\":2999}", MEMBER, 0);
    expect_team(f, "active", "\"period\":\"always\"", MEMBER, 0);
    /* only an active team counts */
    expect_team(f, "inactive", "", MEMBER, 0);
    expect_team(f, "suspended", "", MEMBER, 0);
    expect_team(f, "proposed", "", MEMBER, 0);
}

static void test_participation_periods(void **state)
{
    fixture *f = *state;
    /* the member's own participation ended, or has not begun */
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/" PRAC "\"},"
                "\"period\":{\"end\":\"2020-01-01\"}}]", 0);
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/" PRAC "\"},"
                "\"period\":{\"start\":\"2999\"}}]", 0);
    /* ... unless another current entry names them */
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/" PRAC "\"},"
                "\"period\":{\"end\":\"2020-01-01\"}},"
                "{\"member\":{\"reference\":\"Practitioner/" PRAC "\"},"
                "\"period\":{\"start\":\"2020-01-01\"}}]", 1);
    /* someone else's participation says nothing about this practitioner */
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/" PRAC "\"},"
                "\"period\":{\"end\":\"2020-01-01\"}},"
                "{\"member\":{\"reference\":\"Practitioner/prac-2\"}}]", 0);
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/prac-10\"}}]", 0);
    expect_team(f, "active", "", "[{\"member\":{\"reference\":\"Practitioner/" PRAC
                "/_history/2\"}}]", 1);
}

static void test_deleted_and_changed_teams(void **state)
{
    fixture *f = *state;
    care_team(f, "gone", "pat-gone", "active", "", MEMBER);
    assert_int_equal(related(f, "pat-gone"), 1);
    put(f, "CareTeam", "gone", "pat-gone", NULL);
    assert_int_equal(related(f, "pat-gone"), 0);
    care_team(f, "lapsed", "pat-lapsed", "active", "", MEMBER);
    care_team(f, "lapsed", "pat-lapsed", "inactive", "", MEMBER);
    assert_int_equal(related(f, "pat-lapsed"), 0);
    /* the relationship is with that patient only */
    care_team(f, "mine", "pat-mine", "active", "", MEMBER);
    assert_int_equal(related(f, "pat-mine"), 1);
    assert_int_equal(related(f, "pat-other"), 0);
}

static void encounter(fixture *f, const char *id, const char *patient, const char *status,
                      const char *period, const char *participant_period)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"resourceType\":\"Encounter\",\"id\":\"%s\","
             "\"status\":\"%s\",\"class\":{\"system\":\"http://terminology.hl7.org/"
             "CodeSystem/v3-ActCode\",\"code\":\"IMP\"},\"subject\":{\"reference\":"
             "\"Patient/%s\"}%s%s,\"participant\":[{\"individual\":{\"reference\":"
             "\"Practitioner/" PRAC "\"}%s%s}]}", id, status, patient,
             period[0] ? "," : "", period, participant_period[0] ? "," : "",
             participant_period);
    put(f, "Encounter", id, patient, body);
}

static void test_encounters(void **state)
{
    fixture *f = *state;
    encounter(f, "e1", "pat-e1", "in-progress", "", "");
    assert_int_equal(related(f, "pat-e1"), 1);
    encounter(f, "e2", "pat-e2", "finished", "", "");
    assert_int_equal(related(f, "pat-e2"), 0);
    encounter(f, "e3", "pat-e3", "in-progress",
              "\"period\":{\"start\":\"2019-12-31\",\"end\":\"2020-01-01\"}", "");
    assert_int_equal(related(f, "pat-e3"), 0);
    encounter(f, "e4", "pat-e4", "in-progress", "",
              "\"period\":{\"start\":\"2019-12-31\",\"end\":\"2020-01\"}");
    assert_int_equal(related(f, "pat-e4"), 0);
    encounter(f, "e5", "pat-e5", "in-progress", "\"period\":{\"start\":\"2025-12-31\"}",
              "\"period\":{\"start\":\"2025-12-31T22:00:00Z\"}");
    assert_int_equal(related(f, "pat-e5"), 1);
}

static void test_btg_grants(void **state)
{
    fixture *f = *state;
    mv_err err;
    store_txn *t;
    static const char g1[] = "0123456789abcdef0123456789abcdef";
    static const char g2[] = "fedcba9876543210fedcba9876543210";
    assert_int_equal(store_txn_begin(f->srv.store, &t, &err), 0);
    assert_int_equal(fhir_grant_put(t, g1, "acct-1", "pat-g", NOW_US + 1,
                                    "Unconscious, a reason long enough", &err), 0);
    assert_int_equal(fhir_grant_put(t, g2, "acct-2", "pat-g", NOW_US, "a reason, long",
                                    &err), 0);
    assert_int_equal(store_txn_commit(t, &err), 0);
    policy_facts facts = fhir_facts(&f->srv);
    assert_int_equal(facts.btg_grant_active(facts.ctx, "acct-1", "pat-g", NOW_US), 1);
    assert_int_equal(facts.btg_grant_active(facts.ctx, "acct-1", "pat-g", NOW_US + 1), 0);
    assert_int_equal(facts.btg_grant_active(facts.ctx, "acct-2", "pat-g", NOW_US), 0);
    assert_int_equal(facts.btg_grant_active(facts.ctx, "acct-1", "pat-h", NOW_US), 0);

    /* The reason is read back, sealed, through the purpose that names it. */
    char purpose[64], reason[128];
    snprintf(purpose, sizeof purpose, "%s%s", FHIR_PURPOSE_BTG_GRANT, g1);
    assert_int_equal(fhir_grant_reason(&f->srv, purpose, reason, sizeof reason), 1);
    assert_string_equal(reason, "Unconscious, a reason long enough");
    assert_int_equal(fhir_grant_reason(&f->srv, FHIR_PURPOSE_BTG, reason, sizeof reason), 0);
    assert_int_equal(fhir_grant_reason(&f->srv, "BTG grant:nosuchgrant", reason,
                                       sizeof reason), 0);
    assert_int_equal(fhir_grant_reason(&f->srv, NULL, reason, sizeof reason), 0);
}

/* A relationship its author wrote under break-the-glass is labelled, and
 * explains nothing for that author until another writer drops the label. */
static void test_relationships_written_under_btg(void **state)
{
    fixture *f = *state;
    char body[512];
    snprintf(body, sizeof body, "{\"resourceType\":\"CareTeam\",\"id\":\"ct-btg\","
             "\"status\":\"active\",\"subject\":{\"reference\":\"Patient/pat-btg\"},"
             "\"meta\":{\"versionId\":\"1\"},\"participant\":[{\"member\":{\"reference\":"
             "\"Practitioner/" PRAC "\"}},{\"member\":{\"reference\":\"Practitioner/other\"}}]}");
    assert_null(fhir_relationship_labelled("Observation", body, PRAC));
    assert_null(fhir_relationship_labelled("CareTeam", body, NULL));     /* nothing to do */
    char *labelled = fhir_relationship_labelled("CareTeam", body, PRAC);
    assert_non_null(labelled);
    assert_non_null(strstr(labelled, FHIR_BTG_LABEL_SYSTEM));
    put(f, "CareTeam", "ct-btg", "pat-btg", labelled);
    policy_facts facts = fhir_facts(&f->srv);
    assert_int_equal(facts.care_relationship(facts.ctx, PRAC, "pat-btg", NOW_US), 0);
    assert_int_equal(facts.care_relationship(facts.ctx, "other", "pat-btg", NOW_US), 1);

    /* Another writer's version, though it carries the label it read: gone. */
    char *confirmed = fhir_relationship_labelled("CareTeam", labelled, NULL);
    assert_non_null(confirmed);
    assert_null(strstr(confirmed, FHIR_BTG_LABEL_SYSTEM));
    assert_null(strstr(confirmed, "\"security\""));
    put(f, "CareTeam", "ct-btg", "pat-btg", confirmed);
    assert_int_equal(facts.care_relationship(facts.ctx, PRAC, "pat-btg", NOW_US), 1);
    free(labelled);
    free(confirmed);
}

/* The detector's cache of who is in active care belongs to its server: a
 * second server in the same process, on another store where the same
 * patient id is in nobody's care, does not get the first one's answer
 * (it was a process-wide static). */
static void test_care_cache_is_the_servers_own(void **state)
{
    fixture *a = *state;
    void *other = NULL;
    setup(&other);
    fixture *b = other;
    mv_err err;
    assert_int_equal(facts_cache_open(&a->srv, &err), 0);
    assert_int_equal(facts_cache_open(&b->srv, &err), 0);
    care_team(a, "ct-a", "p-shared", "active", "", MEMBER);
    assert_int_equal(detection_in_active_care(&a->srv, "p-shared"), 1);
    assert_int_equal(detection_in_active_care(&b->srv, "p-shared"), 0);
    care_team(b, "ct-b", "p-other", "active", "", MEMBER);
    assert_int_equal(detection_in_active_care(&b->srv, "p-other"), 1);
    assert_int_equal(detection_in_active_care(&a->srv, "p-other"), 0);
    facts_cache_close(&a->srv);                 /* a restart: asked again */
    assert_int_equal(facts_cache_open(&a->srv, &err), 0);
    assert_int_equal(detection_in_active_care(&a->srv, "p-shared"), 1);
    facts_cache_close(&a->srv);
    facts_cache_close(&b->srv);
    teardown(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_care_team_periods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_participation_periods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_and_changed_teams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encounters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_btg_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relationships_written_under_btg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_care_cache_is_the_servers_own, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
