/*
 * test_fhir_index.c -- unit tests of the blind-index terms of resources and
 * queries (src/fhir/index.c).
 *
 * Why this exists: a blind index only finds what both sides canonicalise
 * identically; these tests pin the exact terms of a Patient and an
 * Observation and check that natural queries look up terms the resources
 * hold (and that a non-overlapping date range does not).  With the
 * environment variable FHIR_EXAMPLES_DIR naming the unpacked official R4
 * examples, every example the validator accepts must also index.
 */
#include <dirent.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fhir/fhir.h"
#include "util/util.h"

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"identifier\":[{\"system\":\"urn:oid:1.2.250.1.213.1.4.8\","
    "\"value\":\"1 85 05 78 006 084 91\"}],"
    "\"name\":[{\"family\":\"Dupont-Lef\xc3\xa8vre\",\"given\":[\"\xc3\x89lodie\"]}],"
    "\"telecom\":[{\"system\":\"phone\",\"value\":\"0612345678\"}],"
    "\"gender\":\"female\",\"birthDate\":\"1985-05-12\"}";

static const char OBSERVATION[] =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
    "\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"encounter\":{\"reference\":\"Encounter/e1\"},"
    "\"effectiveDateTime\":\"2020-03-01T10:00:00+01:00\"}";

typedef struct terms {
    fhir_term *t;
    size_t n;
} terms;

static terms index_of(const char *json)
{
    terms r = {NULL, 0};
    mv_err err = {0};
    int rc = fhir_index_terms(json, strlen(json), &r.t, &r.n, &err);
    if (rc != 0)
        print_message("index failed: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return r;
}

static int has_term(const terms *r, const char *param, const char *value)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->t[i].param, param) == 0 && strcmp(r->t[i].value, value) == 0)
            return 1;
    }
    return 0;
}

static size_t count_param(const terms *r, const char *param)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += strcmp(r->t[i].param, param) == 0;
    return n;
}

/* The terms of param are exactly want (n_want of them). */
static void expect_exact(const terms *r, const char *param, const char *const *want,
                         size_t n_want)
{
    for (size_t i = 0; i < n_want; i++) {
        if (!has_term(r, param, want[i]))
            print_message("missing %s=%s\n", param, want[i]);
        assert_true(has_term(r, param, want[i]));
    }
    assert_int_equal(count_param(r, param), n_want);
}

/* 1 when the query's terms and the resource's share a term. */
static int query_hits(const terms *r, const char *type, const char *name,
                      const char *modifier, const char *value)
{
    fhir_term *q = NULL;
    size_t n = 0;
    mv_err err = {0};
    int rc = fhir_query_terms(type, name, modifier, value, &q, &n, &err);
    if (rc != 0)
        print_message("query %s failed: %s\n", name, err.msg);
    assert_int_equal(rc, 0);
    assert_true(n > 0 && n < 260);
    int hit = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(q[i].param, name);
        hit |= has_term(r, q[i].param, q[i].value);
    }
    fhir_terms_free(q, n);
    return hit;
}

static void test_patient_terms(void **state)
{
    (void)state;
    terms r = index_of(PATIENT);
    static const char *const identifier[] = {
        "urn:oid:1.2.250.1.213.1.4.8|185057800608491", "*|185057800608491",
        "urn:oid:1.2.250.1.213.1.4.8|*"};
    expect_exact(&r, "identifier", identifier, 3);
    static const char *const family[] = {
        "x:dupont lefevre", "p:d", "p:du", "p:dup", "p:dupo", "p:dupon", "p:dupont",
        "p:l", "p:le", "p:lef", "p:lefe", "p:lefev", "p:lefevr", "p:lefevre"};
    expect_exact(&r, "family", family, 14);
    static const char *const given[] = {
        "x:elodie", "p:e", "p:el", "p:elo", "p:elod", "p:elodi", "p:elodie"};
    expect_exact(&r, "given", given, 7);
    for (size_t i = 0; i < 14; i++)
        assert_true(has_term(&r, "name", family[i]));
    for (size_t i = 0; i < 7; i++)
        assert_true(has_term(&r, "name", given[i]));
    assert_int_equal(count_param(&r, "name"), 21);
    static const char *const birthdate[] = {"cD:1985-05-12", "aM:1985-05", "aY:1985",
                                            "aZ:198"};
    expect_exact(&r, "birthdate", birthdate, 4);
    static const char *const gender[] = {"|female", "*|female"};
    expect_exact(&r, "gender", gender, 2);
    /* phones are indexed as digits with the country code, however written */
    static const char *const telecom[] = {"|33612345678", "*|33612345678"};
    expect_exact(&r, "telecom", telecom, 2);
    assert_true(query_hits(&r, "Patient", "telecom", NULL, "+33 6 12 34 56 78"));
    assert_true(query_hits(&r, "Patient", "telecom", NULL, "06.12.34.56.78"));
    assert_false(query_hits(&r, "Patient", "telecom", NULL, "06 12 34 56 79"));
    static const char *const id[] = {"|p1"};
    expect_exact(&r, "_id", id, 1);
    fhir_terms_free(r.t, r.n);
}

static void test_observation_terms(void **state)
{
    (void)state;
    terms r = index_of(OBSERVATION);
    static const char *const subject[] = {"Patient/p1"};
    expect_exact(&r, "subject", subject, 1);
    expect_exact(&r, "patient", subject, 1);
    static const char *const encounter[] = {"Encounter/e1"};
    expect_exact(&r, "encounter", encounter, 1);
    static const char *const code[] = {"http://loinc.org|8867-4", "*|8867-4",
                                       "http://loinc.org|*"};
    expect_exact(&r, "code", code, 3);
    /* 10:00+01:00 is 09:00 UTC, the same day */
    static const char *const date[] = {"cD:2020-03-01", "aM:2020-03", "aY:2020", "aZ:202"};
    expect_exact(&r, "date", date, 4);
    fhir_terms_free(r.t, r.n);
}

static void test_group_subject_not_patient(void **state)
{
    (void)state;
    terms r = index_of("{\"resourceType\":\"Observation\",\"status\":\"final\","
                       "\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Group/g1\"}}");
    assert_true(has_term(&r, "subject", "Group/g1"));
    assert_int_equal(count_param(&r, "patient"), 0);
    fhir_terms_free(r.t, r.n);
}

static void test_period_terms(void **state)
{
    (void)state;
    terms r = index_of("{\"resourceType\":\"Encounter\",\"status\":\"finished\","
                       "\"class\":{\"code\":\"IMP\"},"
                       "\"period\":{\"start\":\"2020-01-30\",\"end\":\"2020-02-02\"}}");
    static const char *const date[] = {"cD:2020-01-30", "cD:2020-01-31", "cD:2020-02-01",
                                       "cD:2020-02-02", "aM:2020-01", "aM:2020-02",
                                       "aY:2020", "aZ:202"};
    expect_exact(&r, "date", date, 8);
    fhir_terms_free(r.t, r.n);
    r = index_of("{\"resourceType\":\"Encounter\",\"status\":\"finished\","
                 "\"class\":{\"code\":\"IMP\"},"
                 "\"period\":{\"start\":\"2018-12-30\",\"end\":\"2021-01-02\"}}");
    /* the fewest calendar nodes: two days, two whole years, two days */
    static const char *const long_date[] = {"cD:2018-12-30", "cD:2018-12-31", "cY:2019",
                                            "cY:2020", "cD:2021-01-01", "cD:2021-01-02",
                                            "aM:2018-12", "aY:2018", "aZ:201", "aZ:202",
                                            "aM:2021-01", "aY:2021"};
    expect_exact(&r, "date", long_date, 12);
    fhir_terms_free(r.t, r.n);
    /* an open Period goes on: whole decades to 2100, then "after" */
    r = index_of("{\"resourceType\":\"Encounter\",\"status\":\"in-progress\","
                 "\"class\":{\"code\":\"IMP\"},\"period\":{\"start\":\"2080-01-01\"}}");
    static const char *const open[] = {"cZ:208", "cZ:209", "c>"};
    expect_exact(&r, "date", open, 3);
    fhir_terms_free(r.t, r.n);
    /* an offset moves the value to its UTC day */
    r = index_of("{\"resourceType\":\"Observation\",\"status\":\"final\","
                 "\"code\":{\"text\":\"x\"},"
                 "\"effectiveDateTime\":\"2020-06-30T23:30:00-05:00\"}");
    assert_true(has_term(&r, "date", "cD:2020-07-01"));
    assert_false(has_term(&r, "date", "cD:2020-06-30"));
    fhir_terms_free(r.t, r.n);
}

static void test_query_round_trip(void **state)
{
    (void)state;
    terms p = index_of(PATIENT);
    assert_true(query_hits(&p, "Patient", "family", NULL, "dupont"));
    assert_true(query_hits(&p, "Patient", "family", NULL, "LEF"));
    assert_true(query_hits(&p, "Patient", "family", "exact", "Dupont-Lef\xc3\xa8vre"));
    assert_false(query_hits(&p, "Patient", "family", "exact", "Dupont"));
    assert_true(query_hits(&p, "Patient", "given", NULL, "elo"));
    assert_true(query_hits(&p, "Patient", "name", NULL, "\xc3\x89lodie"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "1985-05-12"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "eq1985-05"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "1985"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "ge1985-01-01"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "ge1985-05-12"));
    assert_false(query_hits(&p, "Patient", "birthdate", NULL, "gt1985-05-12"));
    assert_true(query_hits(&p, "Patient", "birthdate", NULL, "le1985-05-12"));
    assert_false(query_hits(&p, "Patient", "birthdate", NULL, "lt1985-05-12"));
    assert_false(query_hits(&p, "Patient", "birthdate", NULL, "lt1985-01-01"));
    assert_true(query_hits(&p, "Patient", "identifier", NULL,
                           "urn:oid:1.2.250.1.213.1.4.8|185057800608491"));
    assert_true(query_hits(&p, "Patient", "identifier", NULL, "1 85 05 78 006 084 91"));
    assert_true(query_hits(&p, "Patient", "identifier", NULL, "urn:oid:1.2.250.1.213.1.4.8|"));
    assert_true(query_hits(&p, "Patient", "gender", NULL, "female"));
    assert_true(query_hits(&p, "Patient", "gender", NULL, "|female"));
    assert_false(query_hits(&p, "Patient", "gender", NULL, "male"));
    assert_true(query_hits(&p, "Patient", "_id", NULL, "p1"));
    fhir_terms_free(p.t, p.n);

    terms o = index_of(OBSERVATION);
    assert_true(query_hits(&o, "Observation", "code", NULL, "http://loinc.org|8867-4"));
    assert_true(query_hits(&o, "Observation", "code", NULL, "8867-4"));
    assert_true(query_hits(&o, "Observation", "subject", NULL, "Patient/p1"));
    assert_true(query_hits(&o, "Observation", "subject", "Patient", "p1"));
    assert_true(query_hits(&o, "Observation", "patient", NULL, "p1"));
    assert_true(query_hits(&o, "Observation", "encounter", NULL, "e1"));
    assert_true(query_hits(&o, "Observation", "date", NULL, "2020-03-01T08:00"));
    assert_true(query_hits(&o, "Observation", "date", NULL, "lt2021"));
    fhir_terms_free(o.t, o.n);
}

static void expect_query_error(const char *type, const char *name, const char *modifier,
                               const char *value)
{
    fhir_term *q = NULL;
    size_t n = 0;
    mv_err err = {0};
    assert_int_equal(fhir_query_terms(type, name, modifier, value, &q, &n, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_null(q);
    if (value != NULL && *value != '\0')
        assert_null(strstr(err.msg, value)); /* never the value */
}

static void test_query_errors_and_lookup(void **state)
{
    (void)state;
    fhir_param_type t;
    assert_int_equal(fhir_search_param("Patient", "family", &t), 0);
    assert_int_equal(t, FHIR_PARAM_STRING);
    assert_int_equal(fhir_search_param("Patient", "birthdate", &t), 0);
    assert_int_equal(t, FHIR_PARAM_DATE);
    assert_int_equal(fhir_search_param("Observation", "subject", &t), 0);
    assert_int_equal(t, FHIR_PARAM_REFERENCE);
    assert_int_equal(fhir_search_param("Observation", "_id", &t), 0);
    assert_int_equal(t, FHIR_PARAM_TOKEN);
    assert_int_equal(fhir_search_param("Patient", "_lastUpdated", &t), -1);
    assert_int_equal(fhir_search_param("Patient", "nope", &t), -1);
    assert_int_equal(fhir_search_param("HumanName", "family", &t), -1);

    expect_query_error("Patient", "birthdate", NULL, "ap1985-13-45");
    expect_query_error("Patient", "birthdate", NULL, "1985-13-45");
    expect_query_error("Patient", "gender", "text", "female");
    expect_query_error("Observation", "subject", NULL, "p1secret");
    expect_query_error("Observation", "subject", NULL, "http://x/Patient/p1");
    expect_query_error("Patient", "family", "contains", "dup");
    expect_query_error("Patient", "nope", NULL, "x");

    fhir_term *q = NULL;
    size_t n = 0;
    mv_err err = {0};
    assert_int_equal(fhir_query_terms("Patient", "birthdate", NULL, "ge1985-05-12", &q, &n,
                                      &err), 0);
    /* days 12..31, months 6..12, years 1986..1989, decades 199..209, each as
     * "c" and "a"; their ancestors 1985-05, 1985, 198 as "c"; and "after" */
    assert_int_equal(n, (20 + 7 + 4 + 11) * 2 + 3 + 1);
    int day = 0, after = 0;
    for (size_t i = 0; i < n; i++) {
        day |= strcmp(q[i].value, "cD:1985-05-12") == 0;
        after |= strcmp(q[i].value, "c>") == 0;
    }
    assert_true(day && after);
    fhir_terms_free(q, n);
    assert_int_equal(fhir_query_terms("Patient", "birthdate", NULL, "ne1985-05-12", &q, &n,
                                      &err), 0);
    assert_int_equal(n, 0);      /* ne cannot narrow: the bodies decide */
    assert_int_equal(fhir_query_terms("Patient", "family", NULL,
                                      "Abcdefghijklmnopqrstuvwxyzabc Smith", &q, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(q[0].value, "p:abcdefghijklmnopqrstuvwx");
    fhir_terms_free(q, n);
}

/* ---- The official examples (FHIR_EXAMPLES_DIR) --------------------------- */

typedef struct example_stats {
    size_t indexed;
    size_t failed;
    size_t skipped; /* not a resource, or rejected by the validator */
    size_t terms;
} example_stats;

static int has_json_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static void index_example(const char *dir, const char *name, example_stats *st)
{
    mv_err err = {0};
    char *path = mv_path_join(dir, name, &err);
    assert_non_null(path);
    mv_buf b = {0};
    assert_int_equal(mv_file_read(path, 64u << 20, &b, &err), 0);
    free(path);
    if (fhir_validate((const char *)b.data, b.len, NULL, &err) != 0) {
        st->skipped++;
    } else {
        fhir_term *t = NULL;
        size_t n = 0;
        if (fhir_index_terms((const char *)b.data, b.len, &t, &n, &err) == 0) {
            st->indexed++;
            st->terms += n;
            fhir_terms_free(t, n);
        } else {
            st->failed++;
            print_message("index failed %s: %s\n", name, err.msg);
        }
    }
    mv_buf_free(&b);
}

/* What the index keeps: low-cardinality parameters nothing, identifiers
 * and references wide tokens, codes, names and dates narrow ones. */
static void test_param_bits(void **state)
{
    (void)state;
    assert_int_equal(fhir_param_bits("Patient", "gender"), 0);
    assert_int_equal(fhir_param_bits("Patient", "active"), 0);
    assert_int_equal(fhir_param_bits("Observation", "status"), 0);
    assert_int_equal(fhir_param_bits("Observation", "category"), 0);
    assert_int_equal(fhir_param_bits("Condition", "clinical-status"), 0);
    assert_int_equal(fhir_param_bits("Condition", "verification-status"), 0);
    assert_int_equal(fhir_param_bits("Encounter", "class"), 0);
    assert_int_equal(fhir_param_bits("CareTeam", "status"), 0);
    assert_int_equal(fhir_param_bits("Patient", "identifier"), 32);
    assert_int_equal(fhir_param_bits("Patient", "telecom"), 32);
    assert_int_equal(fhir_param_bits("Patient", "_id"), 32);
    assert_int_equal(fhir_param_bits("Observation", "subject"), 32);
    assert_int_equal(fhir_param_bits("CareTeam", "participant"), 32);
    assert_int_equal(fhir_param_bits("Condition", "code"), 10);
    assert_int_equal(fhir_param_bits("Observation", "code"), 10);
    assert_int_equal(fhir_param_bits("Patient", "family"), 12);
    assert_int_equal(fhir_param_bits("Patient", "birthdate"), 12);
    assert_int_equal(fhir_param_bits("Patient", "no-such-param"), 0);
}

static int matches_as(int canonical, const char *type, const char *body, const char *name,
                      const char *modifier, const char *value)
{
    fhir_query *q = fhir_query_new(type);
    if (canonical)
        fhir_query_canonical_tokens(q);
    mv_err err;
    if (fhir_query_add(q, name, modifier, value, &err) != 0)
        fail_msg("%s=%s: %s", name, value, err.msg);
    int m = fhir_query_matches(q, body, strlen(body));
    fhir_query_free(q);
    return m;
}

static int matches(const char *type, const char *body, const char *name,
                   const char *modifier, const char *value)
{
    return matches_as(0, type, body, name, modifier, value);
}

/* The body decides: what the truncated index only proposes is checked
 * against the values the resource really holds, with the search's own
 * semantics (ORed values, the start of the value, exact). */
static void test_query_matches(void **state)
{
    (void)state;
    assert_int_equal(matches("Patient", PATIENT, "gender", NULL, "female"), 1);
    assert_int_equal(matches("Patient", PATIENT, "gender", NULL, "male"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "dupont"), 1);
    /* R4: a string matches at the start of the value, not of a word in it */
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "lef"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "DUPONT-LEFE"), 1);
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "dupont-lef"), 1);
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "dupont-lefz"), 0);
    /* R4 folds case and accents only: a space is not a hyphen, and a
     * trailing space is part of the query */
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "dupont lef"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", NULL, "dupont "), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", "contains", "NT-LÉF"), 1);
    assert_int_equal(matches("Patient", PATIENT, "family", "contains", "nt lef"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", "exact", "dupont"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", "exact", "Dupont-Lef\xc3\xa8vre"), 1);
    /* :exact keeps case and accents */
    assert_int_equal(matches("Patient", PATIENT, "family", "exact", "dupont-lef\xc3\xa8vre"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", "exact", "Dupont-Lefevre"), 0);
    assert_int_equal(matches("Patient", PATIENT, "family", "exact",
                             "Dupont,Dupont-Lef\xc3\xa8vre"), 1);    /* an OR list */
    /* R4: a token matches as written; canonical forms are for identity checks */
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL, "1 85 05 78 006 084 91"), 1);
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL,
                             "urn:oid:1.2.250.1.213.1.4.8|1 85 05 78 006 084 91"), 1);
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL,
                             "urn:oid:1.2.250.1.213.1.4.8|"), 1);
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL,
                             "urn:oid:9|1 85 05 78 006 084 91"), 0);
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL,
                             "|1 85 05 78 006 084 91"), 0);      /* it has a system */
    assert_int_equal(matches("Patient", PATIENT, "identifier", NULL, "185057800608491"), 0);
    assert_int_equal(matches_as(1, "Patient", PATIENT, "identifier", NULL, "185057800608491"), 1);
    assert_int_equal(matches_as(1, "Patient", PATIENT, "identifier", NULL, "185057800608492"), 0);
    assert_int_equal(matches("Patient", PATIENT, "telecom", NULL, "0612345678"), 1);
    assert_int_equal(matches("Patient", PATIENT, "telecom", NULL, "+33612345678"), 0);
    assert_int_equal(matches_as(1, "Patient", PATIENT, "telecom", NULL, "+33 6 12 34 56 78"), 1);
    assert_int_equal(matches("Patient", PATIENT, "gender", NULL, "Female"), 0);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "1985"), 1);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "ge1986"), 0);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "ne1985-05-12"), 0);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "ne1985-05-13"), 1);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "sa1985-05-11"), 1);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "sa1985-05-12"), 0);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "eb1985-05-13"), 1);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "eb1985-05"), 0);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "ap1985-05-20"), 1);
    assert_int_equal(matches("Patient", PATIENT, "birthdate", NULL, "ap1995"), 0);
    /* the time of day and the offset count: 10:00+01:00 is 09:00Z */
    assert_int_equal(matches("Observation", OBSERVATION, "date", NULL,
                             "2020-03-01T09:00:00Z"), 1);
    assert_int_equal(matches("Observation", OBSERVATION, "date", NULL,
                             "2020-03-01T10:00:00Z"), 0);
    assert_int_equal(matches("Observation", OBSERVATION, "date", NULL,
                             "gt2020-03-01T09:00:00Z"), 0);
    assert_int_equal(matches("Observation", OBSERVATION, "date", NULL,
                             "ge2020-03-01T09:00:00Z"), 1);
    assert_int_equal(matches("Observation", OBSERVATION, "date", NULL,
                             "lt2020-03-01T09:00:01Z"), 1);
    assert_int_equal(matches("Observation", OBSERVATION, "code", NULL, "http://loinc.org|8867-4"), 1);
    assert_int_equal(matches("Observation", OBSERVATION, "code", NULL, "http://loinc.org|8867-5"), 0);
    assert_int_equal(matches("Observation", OBSERVATION, "status", NULL, "final"), 1);
    assert_int_equal(matches("Observation", OBSERVATION, "subject", NULL, "Patient/p1"), 1);
    /* Every parameter must hold. */
    fhir_query *q = fhir_query_new("Patient");
    mv_err err;
    assert_int_equal(fhir_query_add(q, "family", NULL, "dupont", &err), 0);
    assert_int_equal(fhir_query_add(q, "gender", NULL, "male", &err), 0);
    assert_int_equal(fhir_query_size(q), 2);
    assert_int_equal(fhir_query_matches(q, PATIENT, strlen(PATIENT)), 0);
    assert_int_equal(fhir_query_add(q, "nonsense", NULL, "x", &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(fhir_query_matches(q, "not json", 8), -1);
    fhir_query_free(q);
}

static void test_official_examples(void **state)
{
    (void)state;
    const char *dir = getenv("FHIR_EXAMPLES_DIR");
    if (dir == NULL || *dir == '\0')
        skip();
    DIR *d = opendir(dir);
    assert_non_null(d);
    example_stats st = {0, 0, 0, 0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && has_json_suffix(de->d_name))
            index_example(dir, de->d_name, &st);
    }
    closedir(d);
    print_message("official examples: %zu indexed (%zu terms), %zu failed, %zu not valid\n",
                  st.indexed, st.terms, st.failed, st.skipped);
    assert_true(st.indexed > 1000);
    assert_int_equal(st.failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_terms),
        cmocka_unit_test(test_observation_terms),
        cmocka_unit_test(test_group_subject_not_patient),
        cmocka_unit_test(test_period_terms),
        cmocka_unit_test(test_query_round_trip),
        cmocka_unit_test(test_query_errors_and_lookup),
        cmocka_unit_test(test_param_bits),
        cmocka_unit_test(test_query_matches),
        cmocka_unit_test(test_official_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
