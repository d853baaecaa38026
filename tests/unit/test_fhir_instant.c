/*
 * test_fhir_instant.c -- unit tests of the date search on instants the
 * server keeps itself (_lastUpdated, a history's _since): src/fhir/instant.c.
 *
 * Why this exists: a _lastUpdated search is compared by the store against
 * microsecond times, so the range a value names (its precision, its zone)
 * and what each prefix keeps must be exact to the microsecond; these tests
 * pin them against times computed independently (timegm), and check that
 * malformed values are refused without echoing them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fhir/fhir.h"
#include "util/util.h"

#define S 1000000LL

static int64_t utc_us(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return (int64_t)timegm(&tm) * S;
}

static void assert_range(const char *value, int64_t from, int64_t to)
{
    int64_t lo = 0, hi = 0;
    mv_err err;
    if (fhir_instant_parse("_lastUpdated", value, &lo, &hi, &err) != 0)
        fail_msg("%s: %s", value, err.msg);
    assert_int_equal(lo, from);
    assert_int_equal(hi, to);
}

static void test_precision_sets_the_range(void **state)
{
    (void)state;
    assert_range("2026", utc_us(2026, 1, 1, 0, 0, 0), utc_us(2027, 1, 1, 0, 0, 0));
    assert_range("2026-02", utc_us(2026, 2, 1, 0, 0, 0), utc_us(2026, 3, 1, 0, 0, 0));
    assert_range("2026-12", utc_us(2026, 12, 1, 0, 0, 0), utc_us(2027, 1, 1, 0, 0, 0));
    assert_range("2026-11-28", utc_us(2026, 11, 28, 0, 0, 0), utc_us(2026, 11, 29, 0, 0, 0));
    assert_range("2024-02-29", utc_us(2024, 2, 29, 0, 0, 0), utc_us(2024, 3, 1, 0, 0, 0));
    assert_range("2026-11-28T10:03Z", utc_us(2026, 11, 28, 10, 3, 0),
                 utc_us(2026, 11, 28, 10, 4, 0));
    assert_range("2026-11-28T10:03:44Z", utc_us(2026, 11, 28, 10, 3, 44),
                 utc_us(2026, 11, 28, 10, 3, 45));
    int64_t t = utc_us(2026, 11, 28, 10, 3, 44);
    assert_range("2026-11-28T10:03:44.5Z", t + 500000, t + 600000);
    assert_range("2026-11-28T10:03:44.123456Z", t + 123456, t + 123457);
    /* Digits beyond the microsecond only narrow: the same microsecond. */
    assert_range("2026-11-28T10:03:44.1234569Z", t + 123456, t + 123457);
    /* A time without a zone is UTC. */
    assert_range("2026-11-28T10:03:44", t, t + S);
}

static void test_zones(void **state)
{
    (void)state;
    int64_t t = utc_us(2026, 11, 28, 8, 3, 44);
    assert_range("2026-11-28T10:03:44+02:00", t, t + S);
    assert_range("2026-11-28T10:03:44 02:00", t, t + S);   /* '+' decoded as ' ' */
    assert_range("2026-11-28T06:03:44-02:00", t, t + S);
    assert_range("2026-11-28T08:03:44.000001+00:00", t + 1, t + 2);
}

static void test_malformed_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "26", "2026-", "2026-13", "2026-00", "2026-02-30", "2025-02-29",
        "2026-11-28T", "2026-11-28T24:00", "2026-11-28T10", "2026-11-28T10:60",
        "2026-11-28T10:03:60Z", "2026-11-28T10:03:44.Z", "2026-11-28T10:03:44+1",
        "2026-11-28T10:03:44+15:00", "2026-11-28T10:03:44Zjunk", "2026-11-28Z",
        "2026/11/28", "x2026", "0000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t lo, hi;
        mv_err err;
        if (fhir_instant_parse("_lastUpdated", bad[i], &lo, &hi, &err) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(err.code, MV_E_INVALID);
        assert_non_null(strstr(err.msg, "_lastUpdated"));
        if (bad[i][0])
            assert_null(strstr(err.msg, bad[i]));       /* never the value */
    }
}

static fhir_instant_range query(const char *value)
{
    fhir_instant_range r;
    mv_err err;
    if (fhir_query_instants("_lastUpdated", NULL, value, &r, &err) != 0)
        fail_msg("%s: %s", value, err.msg);
    return r;
}

static int matches(fhir_instant_range r, int64_t t)
{
    return (r.from_us <= t && t < r.to_us) != r.outside;
}

/* Each prefix against instants just before, at the start of, inside, at
 * the last microsecond of, and just after the day 2026-11-28. */
static void test_prefixes(void **state)
{
    (void)state;
    int64_t lo = utc_us(2026, 11, 28, 0, 0, 0), hi = utc_us(2026, 11, 29, 0, 0, 0);
    const int64_t at[] = { lo - 1, lo, lo + 12 * 3600 * S, hi - 1, hi };
    static const struct { const char *value; int expect[5]; } cases[] = {
        { "2026-11-28",   {0, 1, 1, 1, 0} },
        { "eq2026-11-28", {0, 1, 1, 1, 0} },
        { "ne2026-11-28", {1, 0, 0, 0, 1} },
        { "gt2026-11-28", {0, 0, 0, 0, 1} },
        { "ge2026-11-28", {0, 1, 1, 1, 1} },
        { "lt2026-11-28", {1, 0, 0, 0, 0} },
        { "le2026-11-28", {1, 1, 1, 1, 0} },
        { "sa2026-11-28", {0, 0, 0, 0, 1} },
        { "eb2026-11-28", {1, 0, 0, 0, 0} },
        { "ap2026-11-28", {1, 1, 1, 1, 1} },     /* a day either side at least */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fhir_instant_range r = query(cases[c].value);
        for (size_t i = 0; i < 5; i++)
            if (matches(r, at[i]) != cases[c].expect[i])
                fail_msg("%s: instant %zu should %smatch", cases[c].value, i,
                         cases[c].expect[i] ? "" : "not ");
    }
}

static void test_refused_queries(void **state)
{
    (void)state;
    fhir_instant_range r;
    mv_err err;
    assert_int_equal(fhir_query_instants("_lastUpdated", NULL, "xx2026", &r, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(fhir_query_instants("_lastUpdated", NULL, "", &r, &err), -1);
    assert_int_equal(fhir_query_instants("_lastUpdated", NULL, "ge", &r, &err), -1);
    assert_int_equal(fhir_query_instants("_lastUpdated", "exact", "2026", &r, &err), -1);
    assert_non_null(strstr(err.msg, "modifier"));
    assert_int_equal(fhir_query_instants("_lastUpdated", "", "2026", &r, &err), 0);
}

/* The CapabilityStatement's list names _lastUpdated, as a date, once. */
static void count_last_updated(const char *name, fhir_param_type t, void *ctx)
{
    if (strcmp(name, FHIR_PARAM_LAST_UPDATED) == 0 && t == FHIR_PARAM_DATE)
        ++*(int *)ctx;
}

static void test_listed_for_every_type(void **state)
{
    (void)state;
    static const char *const types[] = { "Patient", "Observation", "Organization" };
    for (size_t i = 0; i < 3; i++) {
        int n = 0;
        fhir_each_search_param(types[i], count_last_updated, &n);
        assert_int_equal(n, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precision_sets_the_range),
        cmocka_unit_test(test_zones),
        cmocka_unit_test(test_malformed_values),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_refused_queries),
        cmocka_unit_test(test_listed_for_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
