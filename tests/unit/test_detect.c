/*
 * test_detect.c -- unit tests for the misuse and exfiltration detector
 * (src/detect).
 *
 * Why this exists: the detector decides, before a response leaves, whether
 * an account is locked out.  Too timid and a stolen account reads out the
 * hospital (the 2024 breach); too eager and a nurse is locked out at 3 a.m.
 * So every signal is tried twice: on a crafted sequence where it must fire,
 * and on its benign twin where it must stay silent.  Then the properties the
 * server relies on: a decoy contains at once; a declaration raises the
 * limits and still alerts beyond them; a replay rebuilds state without
 * raising anything; memory stays bounded; many threads may observe at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>
#include <jansson.h>

#include "detect/detect.h"

#define S_US    1000000LL
#define MIN_US  (60 * S_US)
#define HOUR_US (60 * MIN_US)
#define DAY_US  (24 * HOUR_US)
#define T0      (1767571200LL * S_US)     /* 2026-01-05 00:00 UTC, a Monday */

/* ---- Helpers ------------------------------------------------------------------ */

static detect_engine *engine_with(int model)
{
    detect_config c;
    detect_config_default(&c);
    c.hash_seed = 42;
    c.model_enabled = model;
    mv_err err;
    detect_engine *e = detect_new(&c, &err);
    assert_non_null(e);
    return e;
}

typedef struct ev_spec {
    int64_t t;
    const char *actor, *role, *source, *session, *action;
    const char *department;
    detect_outcome outcome;
    unsigned patient_flags;
    int page_size, page_index;
} ev_spec;

/* Observe one event about n patients named "<prefix>-<first + i>". */
static detect_response see(detect_engine *e, const ev_spec *s, const char *prefix,
                           int first, int n, detect_verdict *keep)
{
    char ids[100][32];
    detect_patient pats[100];
    for (int i = 0; i < n && i < 100; i++) {
        snprintf(ids[i], sizeof ids[i], "%s-%d", prefix, first + i);
        pats[i].id = ids[i];
        pats[i].flags = s->patient_flags;
    }
    detect_event ev = {
        .time_us = s->t, .actor = s->actor, .role = s->role,
        .department = s->department,
        .session = s->session ? s->session : "sess-1",
        .source = s->source ? s->source : "10.1.0.5",
        .action = s->action ? s->action : "fhir.read",
        .outcome = s->outcome, .resource_type = "Patient",
        .patients = pats, .n_patients = (size_t)(n < 100 ? n : 100),
        .page_size = s->page_size, .page_index = s->page_index };
    detect_verdict v;
    mv_err err;
    assert_int_equal(detect_observe(e, &ev, DETECT_LIVE, &v, &err), 0);
    detect_response r = v.response;
    if (keep != NULL)
        *keep = v;
    else
        detect_verdict_clear(&v);
    return r;
}

/* An account's ordinary days: 8 patients each morning, one every 6
 * minutes, from its ward (a clinician's are its care team's). */
static void ordinary_days_as(detect_engine *e, const char *actor, const char *role, int days)
{
    for (int d = 0; d < days; d++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s-day%d", actor, d);
        for (int i = 0; i < 8; i++) {
            ev_spec s = { .t = T0 + d * DAY_US + 9 * HOUR_US + i * 6 * MIN_US,
                          .actor = actor, .role = role,
                          .patient_flags = DETECT_PAT_EXPLAINED };
            assert_int_equal(see(e, &s, prefix, i, 1, NULL), DETECT_NONE);
        }
    }
}

static void ordinary_days(detect_engine *e, const char *actor, int days)
{
    ordinary_days_as(e, actor, "clinician", days);
}

static detect_verdict login(detect_engine *e, int64_t t, const char *actor,
                            const char *source, const char *action,
                            detect_outcome outcome);

static int has_alert_with(const detect_verdict *v, unsigned signal)
{
    for (size_t i = 0; i < v->n_alerts; i++)
        if (v->alerts[i].detectors & signal)
            return 1;
    return 0;
}

/* ---- 1. volume ---------------------------------------------------------------------- */

static void test_volume_fires_and_contains_within_target(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days_as(e, "alice", "service", 5);
    int released = 0, alerted = 0;
    detect_response last = DETECT_NONE;
    for (int i = 0; i < 60 && last != DETECT_CONTAIN; i++) {
        ev_spec s = { .t = T0 + 5 * DAY_US + 10 * HOUR_US + i * 3 * S_US,
                      .actor = "alice", .role = "service",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        detect_verdict v;
        last = see(e, &s, "bulk", i, 1, &v);
        alerted |= has_alert_with(&v, DETECT_SIG_VOLUME);
        released += v.response <= DETECT_ALERT;
        detect_verdict_clear(&v);
    }
    assert_int_equal(last, DETECT_CONTAIN);
    assert_true(alerted);
    assert_true(released <= 20);
    assert_int_equal(detect_gate(e, "alice", NULL, T0 + 5 * DAY_US + 11 * HOUR_US, NULL),
                     DETECT_CONTAIN);
    detect_free(e);
}

/* A care giver's own patients are its work: a new clinician's ward census
 * (25 patients in seconds, three rounds) is silent; reading 500 of its own
 * patients in fifty minutes is reviewed (an alert released with the answer),
 * never refused; the same pace through break-the-glass is contained. */
static void test_own_patients_reviewed_never_refused(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 25; i++) {
            ev_spec s = { .t = T0 + 8 * HOUR_US + round * 10 * S_US + i * 300000,
                          .actor = "newdoc", .role = "clinician",
                          .patient_flags = DETECT_PAT_EXPLAINED };
            detect_verdict v;
            assert_int_equal(see(e, &s, "ward", i, 1, &v), DETECT_NONE);
            assert_int_equal(v.n_alerts, 0);
            detect_verdict_clear(&v);
        }
    int alerted = 0;
    for (int i = 0; i < 500; i++) {
        ev_spec s = { .t = T0 + 9 * HOUR_US + i * 6 * S_US, .actor = "nurse1",
                      .role = "nurse", .patient_flags = DETECT_PAT_EXPLAINED };
        detect_verdict v;
        assert_true(see(e, &s, "caseload", i, 1, &v) <= DETECT_ALERT);
        alerted |= has_alert_with(&v, DETECT_SIG_VOLUME);
        detect_verdict_clear(&v);
    }
    assert_true(alerted);
    detect_response last = DETECT_NONE;
    int released = 0;
    for (int i = 0; i < 60 && last != DETECT_CONTAIN; i++) {
        ev_spec s = { .t = T0 + 10 * HOUR_US + i * 3 * S_US, .actor = "snoop",
                      .role = "clinician", .patient_flags = DETECT_PAT_BTG };
        last = see(e, &s, "glass", i, 1, NULL);
        released += last <= DETECT_ALERT;
    }
    assert_int_equal(last, DETECT_CONTAIN);
    assert_true(released <= 10);
    detect_free(e);
}

static void test_volume_silent_on_usual_day(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "alice", 12);      /* asserts DETECT_NONE every time */
    detect_actor_info info;
    detect_actor_state(e, "alice", T0 + 12 * DAY_US, &info);
    assert_true(info.known);
    assert_true(info.has_baseline);
    detect_free(e);
}

/* An admission feed writes an Encounter for 40 arriving patients in two
 * minutes: a write tells the writer nothing it did not send, so it is no
 * disclosure; the same 40 read back are. */
static void test_writes_are_no_disclosure(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    detect_response worst = DETECT_NONE;
    for (int i = 0; i < 40; i++) {
        ev_spec s = { .t = T0 + 9 * HOUR_US + i * 3 * S_US, .actor = "adt",
                      .role = "service", .action = "fhir.create",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        char ids[32];
        snprintf(ids, sizeof ids, "arrival-%d", i);
        detect_patient p = { ids, DETECT_PAT_EXPLAINED };
        detect_event ev = { .time_us = s.t, .actor = "adt", .role = "service",
                            .source = "10.1.0.5", .action = "fhir.create",
                            .outcome = DETECT_GRANTED, .resource_type = "Encounter",
                            .patients = &p, .n_patients = 1, .flags = DETECT_EV_WRITE };
        detect_verdict v;
        assert_int_equal(detect_observe(e, &ev, DETECT_LIVE, &v, NULL), 0);
        worst = v.response > worst ? v.response : worst;
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
    }
    assert_int_equal(worst, DETECT_NONE);
    for (int i = 0; i < 40 && worst < DETECT_STEP_UP; i++) {
        ev_spec s = { .t = T0 + 9 * HOUR_US + 3 * MIN_US + i * 3 * S_US, .actor = "adt",
                      .role = "service", .patient_flags = DETECT_PAT_EXPLAINED };
        worst = see(e, &s, "arrival", i, 1, NULL);
    }
    assert_true(worst >= DETECT_STEP_UP);
    detect_free(e);
}

/* Ratcheting: a stolen service account reads 120 patients a day (a new
 * account's daily limit) for three days, then 1.45 times more each day,
 * every read through the server's gate as a request would be.  The attack
 * run read 1,151 patients with no alert that way; the week's reach stops
 * it before 200, and it never gets the growing limits it was counting on. */
static void test_ratchet_contained_before_200(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    long released = 0, day_of_first_refusal = -1;
    detect_response standing = DETECT_NONE;
    double volume = 120;
    for (int d = 0; d < 10 && standing != DETECT_CONTAIN; d++) {
        if (d >= 3)
            volume *= 1.45;
        int n = (int)volume;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "r%d", d);
        for (int i = 0; i < n && standing != DETECT_CONTAIN; i++) {
            int64_t t = T0 + d * DAY_US + 8 * HOUR_US + (int64_t)i * (10 * HOUR_US / n);
            standing = detect_gate(e, "ratchet", "10.200.0.9", t, NULL);
            if (standing >= DETECT_STEP_UP) {
                if (day_of_first_refusal < 0)
                    day_of_first_refusal = d;
                continue;
            }
            ev_spec s = { .t = t, .actor = "ratchet", .role = "service",
                          .source = "10.200.0.9", .patient_flags = DETECT_PAT_EXPLAINED };
            detect_response r = see(e, &s, prefix, i, 1, NULL);
            released += r <= DETECT_ALERT;
        }
    }
    assert_int_equal(standing, DETECT_CONTAIN);
    assert_true(released < 200);
    assert_true(day_of_first_refusal >= 0 && day_of_first_refusal <= 1);
    detect_free(e);
}

/* Its benign twin: a service with the same 60 in-care patients a day every
 * day (a pharmacy interface of a 60-bed ward) is never refused. */
static void test_steady_service_never_refused(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    for (int d = 0; d < 14; d++)
        for (int i = 0; i < 60; i++) {
            int64_t t = T0 + d * DAY_US + 8 * HOUR_US + (int64_t)i * 10 * MIN_US;
            ev_spec s = { .t = t, .actor = "pharmacy", .role = "service",
                          .source = "10.200.0.10", .patient_flags = DETECT_PAT_EXPLAINED };
            char prefix[32];
            snprintf(prefix, sizeof prefix, "bed%d", (d / 5) % 3);  /* turnover */
            assert_true(see(e, &s, prefix, i, 1, NULL) <= DETECT_ALERT);
        }
    detect_free(e);
}

/* ---- 2. relationship --------------------------------------------------------------- */

static void test_btg_spree_contained_by_eight(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    ordinary_days(e, "bob", 4);
    int n = 0;
    detect_response r = DETECT_NONE;
    int alerted = 0;
    while (r != DETECT_CONTAIN && n < 20) {
        ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US + n * MIN_US,
                      .actor = "bob", .role = "clinician",
                      .patient_flags = DETECT_PAT_BTG };
        detect_verdict v;
        r = see(e, &s, "btg", n, 1, &v);
        alerted |= has_alert_with(&v, DETECT_SIG_RELATIONSHIP);
        if (r == DETECT_STEP_UP) {      /* the worst case: it has the TOTP */
            ev_spec up = s;
            up.action = "auth.step-up";
            see(e, &up, "none", 0, 0, NULL);
        }
        detect_verdict_clear(&v);
        n++;
    }
    assert_int_equal(r, DETECT_CONTAIN);
    assert_true(alerted);
    assert_true(n <= 10);
    detect_free(e);
}

static void test_one_btg_emergency_is_silent(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "bob", 4);
    ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US, .actor = "bob",
                  .role = "clinician", .patient_flags = DETECT_PAT_BTG };
    detect_verdict v;
    assert_int_equal(see(e, &s, "er", 1, 1, &v), DETECT_NONE);
    assert_int_equal(v.n_alerts, 0);
    assert_true(v.detectors & DETECT_SIG_RELATIONSHIP);   /* noted, not alerted */
    detect_verdict_clear(&v);
    detect_free(e);
}

/* Ten stolen clinician accounts, each from its own address and kept under
 * its own limits (one unexplained patient every six hours), all at once:
 * the hospital's count of unexplained patients rises far above usual and
 * each account is stopped at its next one.  The worst case: it answers
 * every step-up. */
static int spread_exposed(int accounts, int64_t gap_us, int *contained)
{
    detect_engine *e = engine_with(0);
    char names[10][16];
    for (int k = 0; k < accounts; k++) {
        snprintf(names[k], sizeof names[k], "doc%d", k);
        ordinary_days(e, names[k], 4);
    }
    unsigned char out[10] = { 0 };
    int exposed = 0;
    *contained = 0;
    for (int i = 0; i < 24 * accounts && *contained < accounts; i++) {
        int k = i % accounts;
        if (out[k])
            continue;
        char source[16];
        snprintf(source, sizeof source, "10.97.0.%d", 10 + k);
        ev_spec s = { .t = T0 + 4 * DAY_US + i * gap_us, .actor = names[k],
                      .role = "clinician", .source = source,
                      .patient_flags = DETECT_PAT_BTG };
        detect_response r = see(e, &s, "spread", i, 1, NULL);
        if (r == DETECT_STEP_UP) {
            ev_spec up = s;
            up.action = "auth.step-up";
            see(e, &up, "none", 0, 0, NULL);
            r = see(e, &s, "spread", i, 1, NULL);
        }
        if (r <= DETECT_ALERT)
            exposed++;
        if (r == DETECT_CONTAIN) {
            out[k] = 1;
            ++*contained;
        }
    }
    detect_free(e);
    return exposed;
}

static void test_spread_over_accounts_held_to_thirty(void **state)
{
    (void)state;
    int contained;
    int exposed = spread_exposed(10, 6 * HOUR_US / 10, &contained);
    assert_true(exposed <= 30);
    assert_true(contained >= 5);
}

/* Its benign twin: a handful of emergencies across the hospital in a day
 * (one each for six clinicians) stays silent -- even just after one
 * runaway account read a dozen unexplained patients (its own rules stop it;
 * one account is no hospital-wide wave). */
static void test_a_few_emergencies_across_the_hospital_are_silent(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    for (int i = 0; i < 12; i++) {
        ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US + i * 10 * S_US,
                      .actor = "runaway", .role = "service", .source = "10.200.0.7",
                      .patient_flags = 0 };
        see(e, &s, "runaway", i, 1, NULL);
    }
    for (int k = 0; k < 6; k++) {
        char name[16], source[16];
        snprintf(name, sizeof name, "doc%d", k);
        snprintf(source, sizeof source, "10.%d.0.9", 1 + k);
        ordinary_days(e, name, 4);
        ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US + 5 * MIN_US + k * 8 * MIN_US,
                      .actor = name, .role = "clinician", .source = source,
                      .patient_flags = DETECT_PAT_BTG };
        detect_verdict v;
        assert_int_equal(see(e, &s, "er", k, 1, &v), DETECT_NONE);
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
    }
    detect_free(e);
}

/* A care giver reading four patients outside its care every day, under its
 * hourly and daily limits, is stopped by its week before 20. */
static void test_outside_care_every_day_stopped_by_the_week(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    ordinary_days(e, "rad", 4);
    int exposed = 0, alerted = 0;
    detect_response r = DETECT_NONE;
    for (int i = 0; i < 40 && r != DETECT_CONTAIN; i++) {
        ev_spec s = { .t = T0 + 4 * DAY_US + (i / 4) * DAY_US + 9 * HOUR_US +
                           (i % 4) * 2 * HOUR_US,
                      .actor = "rad", .role = "clinician",
                      .patient_flags = DETECT_PAT_BTG };
        detect_verdict v;
        r = see(e, &s, "outside", i, 1, &v);
        alerted |= has_alert_with(&v, DETECT_SIG_RELATIONSHIP);
        detect_verdict_clear(&v);
        if (r == DETECT_STEP_UP) {
            ev_spec up = s;
            up.action = "auth.step-up";
            see(e, &up, "none", 0, 0, NULL);
            r = see(e, &s, "outside", i, 1, NULL);
        }
        if (r <= DETECT_ALERT)
            exposed++;
    }
    assert_int_equal(r, DETECT_CONTAIN);
    assert_true(alerted);
    assert_true(exposed < 20);
    detect_free(e);
}

/* Reads 10 new patients every 10 minutes for an hour as a new service
 * account of that department; the worst response it met. */
static detect_response new_feed_hour(detect_engine *e, const char *actor,
                                     const char *department)
{
    detect_response worst = DETECT_NONE;
    for (int i = 0; i < 70; i++) {
        ev_spec s = { .t = T0 + 10 * HOUR_US + (i / 10) * 10 * MIN_US + (i % 10) * S_US,
                      .actor = actor, .role = "service", .department = department,
                      .source = "10.200.0.9", .action = "fhir.read",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        detect_response r = see(e, &s, actor, i, 1, NULL);
        if (r > worst)
            worst = r;
    }
    return worst;
}

/* One patient outside its care a day, every day for two months: under
 * every hour's, day's and week's limit, and still a read-out -- the month
 * sees it. */
static void test_one_a_day_outside_care_seen_by_the_month(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    ordinary_days(e, "slow", 4);
    int exposed = 0, alerted_at = -1;
    detect_response r = DETECT_NONE;
    for (int d = 0; d < 60 && r != DETECT_CONTAIN; d++) {
        ev_spec s = { .t = T0 + (4 + d) * DAY_US + 10 * HOUR_US, .actor = "slow",
                      .role = "clinician", .patient_flags = DETECT_PAT_BTG };
        detect_verdict v;
        r = see(e, &s, "month", d, 1, &v);
        if (alerted_at < 0 && has_alert_with(&v, DETECT_SIG_RELATIONSHIP))
            alerted_at = exposed;
        detect_verdict_clear(&v);
        if (r == DETECT_STEP_UP) {
            ev_spec up = s;
            up.action = "auth.step-up";
            see(e, &up, "none", 0, 0, NULL);
            r = see(e, &s, "month", d, 1, NULL);
        }
        if (r == DETECT_THROTTLE) {      /* it waits, and comes back tomorrow */
            r = DETECT_NONE;
            continue;
        }
        if (r <= DETECT_ALERT)
            exposed++;
    }
    /* alerted by its 16th, held back from its 28th: two months give it
     * fewer than 30 (each day's next one is throttled, and asking again is
     * no free pass) */
    assert_true(alerted_at >= 0 && alerted_at <= 16);
    assert_true(exposed < 30);
    detect_free(e);
}

/* Cold start from priors: a department's prior (the laboratory's feeds
 * read 70 patients in their first hour) wins over its role's, and is
 * bounded so that priors cannot switch the detector off. */
static void test_priors_set_cold_start_limits(void **state)
{
    (void)state;
    mv_err err;
    detect_engine *e = engine_with(0);
    assert_true(new_feed_hour(e, "feed-0", "lab") >= DETECT_STEP_UP);   /* defaults */
    detect_engine *p = engine_with(0);
    detect_prior priors[] = { { "service", NULL, 6, 20, 60 },
                              { "service", "lab", 20, 80, 240 } };
    assert_int_equal(detect_set_priors(p, priors, 2, &err), 0);
    assert_true(new_feed_hour(p, "feed-1", "lab") <= DETECT_ALERT);
    assert_true(new_feed_hour(p, "feed-2", "billing") >= DETECT_STEP_UP);
    detect_actor_info info;
    detect_actor_state(p, "feed-2", T0 + 11 * HOUR_US, &info);
    assert_int_equal(info.limit_1h, 20);
    detect_actor_state(p, "feed-1", T0 + 11 * HOUR_US, &info);
    assert_int_equal(info.limit_1h, 80);
    /* bounds: not above learned_ceiling x the default, not for patients,
     * not shrinking with the window */
    detect_config c;
    detect_config_default(&c);
    detect_prior too_big = { "service", NULL, 12, 40, 1000 };
    assert_int_equal(detect_prior_check(&c, &too_big, &err), -1);
    assert_non_null(strstr(err.msg, "daily"));
    detect_prior hard = { "admin", NULL, 30, 40, 120 };
    assert_int_equal(detect_prior_check(&c, &hard, &err), -1);
    detect_prior patient = { "patient", NULL, 1, 2, 3 };
    assert_int_equal(detect_prior_check(&c, &patient, &err), -1);
    detect_prior shrinking = { "nurse", NULL, 10, 5, 100 };
    assert_int_equal(detect_prior_check(&c, &shrinking, &err), -1);
    assert_int_equal(detect_set_priors(p, &too_big, 1, &err), -1);
    /* a refused set leaves the priors as they were */
    detect_actor_state(p, "feed-1", T0 + 11 * HOUR_US, &info);
    assert_int_equal(info.limit_1h, 80);
    detect_free(e);
    detect_free(p);
}

/* The daily review: a clinician session paging through its own patients
 * around the clock is never refused (they are its care) but ranks first,
 * with the reasons in words; its colleagues' ordinary days do not. */
static void test_review_ranks_paced_in_care_reading(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    char names[6][16];
    for (int k = 0; k < 6; k++) {
        snprintf(names[k], sizeof names[k], "doc%d", k);
        ordinary_days(e, names[k], 5);
    }
    int refused = 0;
    for (int i = 0; i < 130; i++) {        /* day 5, from 01:00, one every 10 min */
        ev_spec s = { .t = T0 + 5 * DAY_US + 1 * HOUR_US + i * 10 * MIN_US,
                      .actor = "doc0", .role = "clinician",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        refused += see(e, &s, "caseload", i, 1, NULL) >= DETECT_STEP_UP;
    }
    for (int k = 1; k < 6; k++)
        for (int i = 0; i < 8; i++) {
            ev_spec s = { .t = T0 + 5 * DAY_US + 9 * HOUR_US + i * 6 * MIN_US,
                          .actor = names[k], .role = "clinician",
                          .patient_flags = DETECT_PAT_EXPLAINED };
            see(e, &s, names[k], 100 + i, 1, NULL);
        }
    assert_int_equal(refused, 0);
    detect_review_row rows[4];
    size_t n = detect_review(e, T0 + 5 * DAY_US + 23 * HOUR_US, rows, 4);
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].actor, "doc0");
    assert_int_equal(rows[0].patients_24h, 130);
    assert_true(rows[0].off_hours_24h >= 30);        /* 01:00 to 06:00 */
    assert_true(rows[0].score > 3 * rows[1].score);
    assert_non_null(strstr(rows[0].explanation, "times its role's usual"));
    assert_true(rows[1].patients_24h <= 8);
    detect_free(e);
}

/* A stolen session cannot answer a step-up; going on regardless contains. */
static void test_ignored_step_up_contains(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    ordinary_days(e, "bob", 4);
    int64_t t = T0 + 4 * DAY_US + 10 * HOUR_US;
    detect_response r = DETECT_NONE;
    for (int n = 0; n < 10 && r != DETECT_STEP_UP; n++) {
        ev_spec s = { .t = t + n * MIN_US, .actor = "bob", .role = "clinician",
                      .session = "s-stolen", .patient_flags = DETECT_PAT_BTG };
        r = see(e, &s, "btg", n, 1, NULL);
    }
    assert_int_equal(r, DETECT_STEP_UP);
    t += 10 * MIN_US;
    for (int i = 0; i < 9; i++)
        assert_int_equal(detect_gate(e, "bob", "10.99.0.1", t + i * S_US, NULL),
                         DETECT_STEP_UP);
    assert_int_equal(detect_gate(e, "bob", "10.99.0.1", t + 9 * S_US, NULL),
                     DETECT_CONTAIN);
    detect_verdict v = login(e, t + 10 * S_US, "someone", "10.1.0.9", "auth.login",
                             DETECT_GRANTED);
    assert_int_equal(v.n_alerts, 1);
    assert_string_equal(v.alerts[0].actor, "bob");
    assert_int_equal(v.alerts[0].response, DETECT_CONTAIN);
    assert_non_null(strstr(v.alerts[0].explanation, "second factor"));
    detect_verdict_clear(&v);
    /* the owner's step-up in its own session would have waived it: twin */
    detect_engine *twin = engine_with(0);
    ordinary_days(twin, "bob", 4);
    r = DETECT_NONE;
    for (int n = 0; n < 10 && r != DETECT_STEP_UP; n++) {
        ev_spec s = { .t = t + n * MIN_US, .actor = "bob", .role = "clinician",
                      .session = "s-own", .patient_flags = DETECT_PAT_BTG };
        r = see(twin, &s, "btg", n, 1, NULL);
    }
    ev_spec up = { .t = t + 11 * MIN_US, .actor = "bob", .role = "clinician",
                   .session = "s-own", .action = "auth.step-up" };
    see(twin, &up, "none", 0, 0, NULL);
    for (int i = 0; i < 12; i++)
        assert_int_equal(detect_gate(twin, "bob", "10.1.0.5", t + 12 * MIN_US + i * S_US,
                                     NULL), DETECT_NONE);
    detect_free(twin);
    detect_free(e);
}

/* ---- 3. enumeration ----------------------------------------------------------------- */

/* A step-up answered vouches for what it was asked for, for the rest of
 * the shift in that session: the same pattern is not asked again (a
 * clinician working a run of emergencies under break-the-glass answers
 * once); another session, or a stronger verdict, still is. */
static void test_step_up_answered_once_a_shift(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    int64_t t = T0 + 10 * HOUR_US;
    detect_response r = DETECT_NONE;
    for (int i = 0; i < 4; i++) {
        ev_spec s = { .t = t + i * MIN_US, .actor = "carol", .role = "clinician",
                      .session = "s-ward", .patient_flags = DETECT_PAT_BTG };
        r = see(e, &s, "er", i, 1, NULL);
    }
    assert_int_equal(r, DETECT_STEP_UP);
    detect_event up = { .time_us = t + 5 * MIN_US, .actor = "carol", .role = "clinician",
                        .session = "s-ward", .source = "10.1.0.5", .action = "auth.step-up",
                        .outcome = DETECT_GRANTED };
    detect_verdict v;
    assert_int_equal(detect_observe(e, &up, DETECT_LIVE, &v, NULL), 0);
    detect_verdict_clear(&v);
    ev_spec later = { .t = t + 40 * MIN_US, .actor = "carol", .role = "clinician",
                      .session = "s-ward", .patient_flags = DETECT_PAT_BTG };
    assert_true(see(e, &later, "er", 4, 1, NULL) <= DETECT_ALERT);
    ev_spec other = { .t = t + 41 * MIN_US, .actor = "carol", .role = "clinician",
                      .session = "s-elsewhere", .patient_flags = DETECT_PAT_BTG };
    assert_true(see(e, &other, "er", 4, 1, NULL) >= DETECT_STEP_UP);
    detect_free(e);
}

static void test_many_hidden_404s_contain(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    ordinary_days(e, "carol", 4);
    detect_response r = DETECT_NONE;
    int n = 0, alerted = 0;
    while (r != DETECT_CONTAIN && n < 40) {
        ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US + n * 5 * S_US,
                      .actor = "carol", .role = "clinician",
                      .outcome = DETECT_HIDDEN };
        detect_verdict v;
        r = see(e, &s, "guess", n, 0, &v);
        alerted |= has_alert_with(&v, DETECT_SIG_ENUMERATION);
        if (r == DETECT_STEP_UP) {
            ev_spec up = s;
            up.action = "auth.step-up";
            up.outcome = DETECT_GRANTED;
            see(e, &up, "none", 0, 0, NULL);
        }
        detect_verdict_clear(&v);
        n++;
    }
    assert_int_equal(r, DETECT_CONTAIN);
    assert_true(alerted);
    assert_true(n <= 20);
    detect_free(e);
}

static void test_a_few_not_found_are_silent(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "carol", 4);
    for (int i = 0; i < 3; i++) {
        ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US + i * MIN_US,
                      .actor = "carol", .role = "clinician",
                      .outcome = DETECT_NOT_FOUND };
        detect_verdict v;
        assert_int_equal(see(e, &s, "typo", i, 0, &v), DETECT_NONE);
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
    }
    detect_free(e);
}

static void test_everything_on_many_patients(void **state)
{
    (void)state;
    detect_engine *e = engine_with(0);
    detect_response r = DETECT_NONE;
    int n = 0, alerted = 0;
    while (r != DETECT_CONTAIN && n < 40) {
        ev_spec s = { .t = T0 + 10 * HOUR_US + n * 20 * S_US, .actor = "svc",
                      .role = "service", .action = "fhir.everything",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        detect_verdict v;
        r = see(e, &s, "all", n, 1, &v);
        alerted |= has_alert_with(&v, DETECT_SIG_ENUMERATION);
        detect_verdict_clear(&v);
        if (r == DETECT_THROTTLE)
            break;
        if (r == DETECT_STEP_UP) {
            ev_spec up = s;
            up.action = "auth.step-up";
            see(e, &up, "none", 0, 0, NULL);
        }
        n++;
    }
    assert_true(alerted);
    assert_true(r >= DETECT_THROTTLE);
    assert_true(n <= 20);
    detect_free(e);
}

/* ---- 4. decoys ----------------------------------------------------------------------- */

static void test_decoy_contains_at_first_touch(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "dave", 4);
    ev_spec ok = { .t = T0 + 4 * DAY_US + 10 * HOUR_US, .actor = "dave",
                   .role = "clinician", .patient_flags = DETECT_PAT_EXPLAINED };
    assert_int_equal(see(e, &ok, "real", 1, 1, NULL), DETECT_NONE);   /* the twin */
    ev_spec decoy = ok;
    decoy.t += MIN_US;
    decoy.patient_flags = DETECT_PAT_DECOY;
    detect_verdict v;
    assert_int_equal(see(e, &decoy, "honey", 1, 1, &v), DETECT_CONTAIN);
    assert_true(has_alert_with(&v, DETECT_SIG_DECOY));
    assert_non_null(strstr(v.alerts[0].explanation, "decoy"));
    detect_verdict_clear(&v);
    assert_int_equal(detect_max_page(e, "dave", decoy.t + S_US), 0);
    detect_release(e, "dave");
    assert_int_equal(detect_gate(e, "dave", NULL, decoy.t + HOUR_US, NULL), DETECT_NONE);
    detect_free(e);
}

/* ---- 5. context ---------------------------------------------------------------------- */

static void test_service_outside_its_networks(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    mv_err err;
    assert_int_equal(detect_set_networks(e, "lab", "10.200.0.0/24, fd00::/8", &err), 0);
    assert_int_equal(detect_set_networks(e, "lab", "10.200.0.0/33", &err), -1);
    ev_spec in = { .t = T0 + HOUR_US, .actor = "lab", .role = "service",
                   .source = "10.200.0.7", .patient_flags = DETECT_PAT_EXPLAINED };
    assert_int_equal(see(e, &in, "p", 1, 1, NULL), DETECT_NONE);
    ev_spec v6 = in;
    v6.source = "fd00::1:2";
    assert_int_equal(see(e, &v6, "p", 2, 1, NULL), DETECT_NONE);
    ev_spec out = in;
    out.t += MIN_US;
    out.source = "192.0.2.7";
    detect_verdict v;
    assert_true(see(e, &out, "p", 3, 1, &v) >= DETECT_THROTTLE);
    assert_true(has_alert_with(&v, DETECT_SIG_CONTEXT));
    assert_non_null(strstr(v.alerts[0].explanation, "192.0.2.7"));
    detect_verdict_clear(&v);
    detect_free(e);
}

static void test_session_from_two_places(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "erin", 4);
    int64_t t = T0 + 4 * DAY_US + 10 * HOUR_US;
    ev_spec ward = { .t = t, .actor = "erin", .role = "clinician",
                     .session = "s-ward", .source = "10.1.0.5",
                     .patient_flags = DETECT_PAT_EXPLAINED };
    detect_verdict v;
    see(e, &ward, "x", 1, 1, &v);
    assert_false(v.detectors & DETECT_SIG_CONTEXT);     /* the benign twin */
    detect_verdict_clear(&v);
    ev_spec away = ward;
    away.t = t + MIN_US;
    away.session = "s-ward";                 /* the same session, elsewhere */
    away.source = "203.0.113.9";
    see(e, &away, "x", 2, 1, &v);
    assert_true(v.detectors & DETECT_SIG_CONTEXT);
    detect_verdict_clear(&v);
    detect_free(e);
}

/* ---- 6. authentication ----------------------------------------------------------------- */

static detect_verdict login(detect_engine *e, int64_t t, const char *actor,
                            const char *source, const char *action,
                            detect_outcome outcome)
{
    detect_event ev = { .time_us = t, .actor = actor, .source = source,
                        .action = action, .outcome = outcome };
    detect_verdict v;
    assert_int_equal(detect_observe(e, &ev, DETECT_LIVE, &v, NULL), 0);
    return v;
}

static void test_spraying_blocks_the_source(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    detect_response worst = DETECT_NONE;
    int alerted = 0, blocked_at = -1;
    for (int i = 0; i < 12 && blocked_at < 0; i++) {
        char account[32];
        snprintf(account, sizeof account, "user%d", i);
        detect_verdict v = login(e, T0 + i * 2 * S_US, account, "198.51.100.9",
                                 "auth.login", DETECT_FAILED);
        if (v.source_response > worst)
            worst = v.source_response;
        alerted |= has_alert_with(&v, DETECT_SIG_AUTH);
        if (v.source_response == DETECT_CONTAIN)
            blocked_at = i;
        detect_verdict_clear(&v);
    }
    assert_int_equal(worst, DETECT_CONTAIN);
    assert_true(alerted);
    assert_true(blocked_at <= 8);
    assert_int_equal(detect_gate(e, NULL, "198.51.100.9", T0 + MIN_US, NULL),
                     DETECT_CONTAIN);
    /* the benign twin: three people mistyping from three desks */
    detect_engine *calm = engine_with(1);
    for (int i = 0; i < 3; i++) {
        char account[32], source[32];
        snprintf(account, sizeof account, "user%d", i);
        snprintf(source, sizeof source, "10.1.0.%d", 10 + i);
        detect_verdict v = login(calm, T0 + i * MIN_US, account, source, "auth.login",
                                 DETECT_FAILED);
        assert_int_equal(v.source_response, DETECT_NONE);
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
    }
    detect_free(calm);
    detect_free(e);
}

static void test_totp_wrong_after_right_password(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    /* A typo corrected at once: never an alert, even later. */
    detect_verdict v = login(e, T0, "frank", "10.1.0.5",
                             "auth.login.second-factor-wrong", DETECT_FAILED);
    assert_int_equal(v.n_alerts, 0);
    detect_verdict_clear(&v);
    v = login(e, T0 + 20 * S_US, "frank", "10.1.0.5", "auth.login", DETECT_GRANTED);
    detect_verdict_clear(&v);
    v = login(e, T0 + 30 * MIN_US, "someone", "10.1.0.9", "auth.login", DETECT_GRANTED);
    assert_int_equal(v.n_alerts, 0);
    detect_verdict_clear(&v);
    /* Left wrong: an alert once ten minutes have passed. */
    v = login(e, T0 + HOUR_US, "grace", "10.1.0.6",
              "auth.login.second-factor-wrong", DETECT_FAILED);
    assert_int_equal(v.n_alerts, 0);
    detect_verdict_clear(&v);
    v = login(e, T0 + HOUR_US + 11 * MIN_US, "someone", "10.1.0.9", "auth.login",
              DETECT_GRANTED);
    assert_int_equal(v.n_alerts, 1);
    assert_string_equal(v.alerts[0].actor, "grace");
    assert_true(v.alerts[0].detectors & DETECT_SIG_AUTH);
    assert_non_null(strstr(v.alerts[0].explanation, "TOTP wrong"));
    detect_verdict_clear(&v);
    /* Guessing codes: the account is contained. */
    detect_response r = DETECT_NONE;
    for (int i = 0; i < 6 && r != DETECT_CONTAIN; i++) {
        v = login(e, T0 + 2 * HOUR_US + i * 5 * S_US, "heidi", "203.0.113.50",
                  "auth.login.second-factor-wrong", DETECT_FAILED);
        r = v.response;
        detect_verdict_clear(&v);
    }
    assert_int_equal(r, DETECT_CONTAIN);
    detect_free(e);
}

/* ---- 7. patient-centred ------------------------------------------------------------------ */

static void test_patient_centred(void **state)
{
    (void)state;
    static const unsigned fires[] = {
        DETECT_PAT_VIP | DETECT_PAT_BTG, DETECT_PAT_SAME_FAMILY | DETECT_PAT_BTG,
        DETECT_PAT_OWN_RECORD | DETECT_PAT_EXPLAINED };
    for (size_t k = 0; k < sizeof fires / sizeof fires[0]; k++) {
        detect_engine *e = engine_with(1);
        ordinary_days(e, "ivan", 4);
        ev_spec s = { .t = T0 + 4 * DAY_US + 11 * HOUR_US, .actor = "ivan",
                      .role = "clinician", .patient_flags = fires[k] };
        detect_verdict v;
        see(e, &s, "special", 1, 1, &v);
        assert_true(has_alert_with(&v, DETECT_SIG_PATIENT));
        detect_verdict_clear(&v);
        /* the twin: the same patient in its care, no family tie, not itself */
        ev_spec twin = s;
        twin.actor = "judy";
        twin.patient_flags = DETECT_PAT_EXPLAINED |
                             (fires[k] & DETECT_PAT_VIP);
        ordinary_days(e, "judy", 4);
        assert_int_equal(see(e, &twin, "special", 1, 1, &v), DETECT_NONE);
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
        detect_free(e);
    }
}

/* ---- Declarations ----------------------------------------------------------------------- */

static detect_response page(detect_engine *e, const char *actor, int64_t t, int first,
                            detect_verdict *v)
{
    ev_spec s = { .t = t, .actor = actor, .role = "service", .action = "fhir.search",
                  .page_size = 100, .page_index = first / 100 };
    return see(e, &s, "wh", first, 100, v);
}

static void test_declaration_raises_limits_and_still_watches(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    mv_err err;
    assert_int_equal(detect_declare_bulk(e, "etl", 1000, T0 + 30 * DAY_US, "etl", &err), -1);
    assert_int_equal(detect_declare_bulk(e, "etl", 1000, T0 + 30 * DAY_US, "sec-1", &err), 0);
    assert_int_equal(detect_max_page(e, "etl", T0), 12);  /* unseen: a new actor */
    detect_verdict v;
    int first = 0;
    for (; first < 1000; first += 100) {
        assert_int_equal(page(e, "etl", T0 + HOUR_US + first * S_US, first, &v), DETECT_NONE);
        assert_int_equal(v.n_alerts, 0);
        detect_verdict_clear(&v);
    }
    assert_int_equal(detect_max_page(e, "etl", T0 + 2 * HOUR_US), 100);
    /* beyond the declared volume: an alert naming who approved it */
    page(e, "etl", T0 + 2 * HOUR_US, first, &v);
    assert_true(has_alert_with(&v, DETECT_SIG_VOLUME));
    assert_non_null(strstr(v.alerts[0].explanation, "sec-1"));
    detect_verdict_clear(&v);
    detect_response r = DETECT_NONE;
    for (first += 100; first < 2000 && r != DETECT_CONTAIN; first += 100) {
        r = page(e, "etl", T0 + 2 * HOUR_US + first * S_US, first, &v);
        detect_verdict_clear(&v);
    }
    assert_int_equal(r, DETECT_CONTAIN);
    assert_true(first <= 1700);
    /* the undeclared twin is contained at its first page */
    assert_true(page(e, "other", T0 + HOUR_US, 0, NULL) >= DETECT_THROTTLE);
    detect_free(e);
}

/* ---- Replay ------------------------------------------------------------------------------- */

static void replay_btg(detect_engine *e, int64_t t, int i)
{
    char id[32];
    snprintf(id, sizeof id, "btg-%d", i);
    detect_patient p = { id, DETECT_PAT_BTG };
    detect_event ev = { .time_us = t, .actor = "kim", .role = "clinician",
                        .session = "s1", .source = "10.1.0.5", .action = "fhir.read",
                        .outcome = DETECT_GRANTED, .patients = &p, .n_patients = 1 };
    detect_verdict v;
    assert_int_equal(detect_observe(e, &ev, DETECT_REPLAY, &v, NULL), 0);
    assert_int_equal(v.response, DETECT_NONE);
    assert_int_equal(v.n_alerts, 0);
}

static void test_replay_rebuilds_state_silently(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    int64_t t = T0 + 10 * HOUR_US;
    for (int i = 0; i < 7; i++)               /* seven break-the-glass, replayed */
        replay_btg(e, t + i * MIN_US, i);
    detect_stats st;
    detect_get_stats(e, &st);
    assert_int_equal(st.alerts, 0);
    detect_actor_info info;
    detect_actor_state(e, "kim", t + 8 * MIN_US, &info);
    assert_int_equal(info.unexplained_1h, 7);
    assert_int_equal(info.standing, DETECT_NONE);
    ev_spec live = { .t = t + 8 * MIN_US, .actor = "kim", .role = "clinician",
                     .session = "s1", .patient_flags = DETECT_PAT_BTG };
    detect_verdict v;
    assert_int_equal(see(e, &live, "btg", 7, 1, &v), DETECT_CONTAIN);
    assert_true(has_alert_with(&v, DETECT_SIG_RELATIONSHIP));
    detect_verdict_clear(&v);
    detect_free(e);
}

/* ---- Memory, threads, configuration ---------------------------------------------------------- */

static void test_memory_caps_hold(void **state)
{
    (void)state;
    detect_config c;
    detect_config_default(&c);
    c.max_actors = 100;
    c.max_sources = 50;
    size_t bytes = detect_memory_bytes(&c);
    detect_config big = c;
    big.max_actors = 200;
    assert_true(detect_memory_bytes(&big) > bytes);
    detect_engine *e = detect_new(&c, NULL);
    assert_non_null(e);
    for (int i = 0; i < 1000; i++) {
        char actor[32], source[32];
        snprintf(actor, sizeof actor, "actor-%d", i);
        snprintf(source, sizeof source, "198.18.%d.%d", i / 250, 1 + i % 250);
        ev_spec s = { .t = T0 + i * S_US, .actor = actor, .role = "nurse",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        see(e, &s, "p", i, 1, NULL);
        detect_verdict v = login(e, T0 + i * S_US, actor, source, "auth.login",
                                 DETECT_FAILED);
        detect_verdict_clear(&v);
    }
    detect_stats st;
    detect_get_stats(e, &st);
    assert_int_equal(st.actors, 100);
    assert_int_equal(st.sources, 50);
    assert_true(st.evictions >= 900 + 950);
    detect_actor_info info;
    detect_actor_state(e, "actor-0", T0 + 1000 * S_US, &info);
    assert_false(info.known);                  /* the least recently seen went */
    detect_actor_state(e, "actor-999", T0 + 1000 * S_US, &info);
    assert_true(info.known);
    detect_free(e);
}

/* Logins with names nobody has take no actor state: a flood of them, each
 * from its own address, leaves a stolen account's windows and verdicts as
 * they were (the attack run evicted it with 10,300 such logins); and the
 * names still count as accounts tried from one address (spraying). */
static detect_verdict unknown_login(detect_engine *e, int64_t t, const char *name,
                                   const char *source)
{
    detect_event ev = { .time_us = t, .claimed = name, .source = source,
                        .action = "auth.login", .outcome = DETECT_FAILED };
    detect_verdict v;
    assert_int_equal(detect_observe(e, &ev, DETECT_LIVE, &v, NULL), 0);
    return v;
}

/* A stolen service account reads 10 patients, flood unknown logins come
 * in, then it reads 6 more: the worst verdict of those. */
static detect_response thief_reads(int flood)
{
    detect_config c;
    detect_config_default(&c);
    c.hash_seed = 42;
    c.max_actors = 10;
    c.max_sources = 16;
    detect_engine *mine = detect_new(&c, NULL);
    assert_non_null(mine);
    for (int i = 0; i < 10; i++) {
        ev_spec s = { .t = T0 + i * S_US, .actor = "stolen", .role = "service",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        assert_true(see(mine, &s, "p", i, 1, NULL) <= DETECT_ALERT);
    }
    for (int i = 0; i < flood; i++) {
        char name[32], source[32];
        snprintf(name, sizeof name, "unknown:%08x", i);
        snprintf(source, sizeof source, "127.0.%d.%d", i / 250, 1 + i % 250);
        detect_verdict v = unknown_login(mine, T0 + 11 * S_US + i * 1000, name, source);
        detect_verdict_clear(&v);
    }
    detect_actor_info info;
    detect_actor_state(mine, "stolen", T0 + 20 * S_US, &info);
    assert_true(info.known);
    assert_int_equal(info.patients_5m, 10);
    detect_response worst = DETECT_NONE;
    for (int i = 10; i < 16; i++) {
        ev_spec s = { .t = T0 + 20 * S_US + i * S_US, .actor = "stolen", .role = "service",
                      .patient_flags = DETECT_PAT_EXPLAINED };
        detect_response r = see(mine, &s, "p", i, 1, NULL);
        worst = r > worst ? r : worst;
    }
    detect_stats st;
    detect_get_stats(mine, &st);
    assert_true(st.actors <= 1);
    detect_free(mine);
    return worst;
}

static void test_unknown_names_evict_nothing(void **state)
{
    (void)state;
    assert_int_equal(thief_reads(1000), thief_reads(0));
    assert_true(thief_reads(1000) >= DETECT_STEP_UP);
    detect_engine *e = engine_with(1);
    detect_response worst = DETECT_NONE;
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "unknown:%08x", i);
        detect_verdict v = unknown_login(e, T0 + i * S_US, name, "198.51.100.7");
        worst = v.source_response > worst ? v.source_response : worst;
        detect_verdict_clear(&v);
    }
    assert_int_equal(worst, DETECT_CONTAIN);
    detect_free(e);
}

typedef struct worker {
    detect_engine *e;
    int id, failed;
} worker;

#define THREAD_EVENTS 5000
static void *observer(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < THREAD_EVENTS; i++) {
        char actor[32], pid[32];
        snprintf(actor, sizeof actor, "t%d-a%d", w->id, i % 50);
        snprintf(pid, sizeof pid, "t%d-p%d", w->id, i % 400);
        detect_patient p = { pid, DETECT_PAT_EXPLAINED };
        detect_event ev = { .time_us = T0 + (int64_t)i * 100000, .actor = actor,
                            .role = "nurse", .session = "s", .source = "10.1.0.1",
                            .action = "fhir.read", .outcome = DETECT_GRANTED,
                            .patients = &p, .n_patients = 1 };
        detect_verdict v;
        if (detect_observe(w->e, &ev, DETECT_LIVE, &v, NULL) != 0)
            w->failed++;
        detect_verdict_clear(&v);
        detect_gate(w->e, actor, "10.1.0.1", ev.time_us, NULL);
        detect_max_page(w->e, actor, ev.time_us);
    }
    return NULL;
}

static void test_threads_observe_at_once(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){ e, i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, observer, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    detect_stats st;
    detect_get_stats(e, &st);
    assert_int_equal(st.events, 4 * THREAD_EVENTS);
    assert_int_equal(st.actors, 4 * 50);
    detect_free(e);
}

static void test_config_and_event_validation(void **state)
{
    (void)state;
    detect_config c;
    detect_config_default(&c);
    c.score_step_up = c.score_alert - 1;          /* the ladder must rise */
    mv_err err;
    assert_null(detect_new(&c, &err));
    assert_int_equal(err.code, MV_E_INVALID);
    detect_engine *e = engine_with(1);
    detect_event ev = { .time_us = 0, .action = "fhir.read" };
    assert_int_equal(detect_observe(e, &ev, DETECT_LIVE, NULL, &err), -1);
    assert_int_equal(detect_max_page(e, "nobody", T0), 12);
    assert_string_equal(detect_response_name(DETECT_THROTTLE), "throttle");
    assert_string_equal(detect_signal_name(DETECT_SIG_DECOY), "decoy");
    assert_null(detect_signal_name(3));
    detect_free(e);
}

/* ---- Alerts: evidence and the learned model ---------------------------------------------------- */

static void test_alert_evidence_is_json_without_names(void **state)
{
    (void)state;
    detect_engine *e = engine_with(1);
    ordinary_days(e, "lea", 4);
    ev_spec s = { .t = T0 + 4 * DAY_US + 10 * HOUR_US, .actor = "lea",
                  .role = "clinician", .patient_flags = DETECT_PAT_DECOY };
    detect_verdict v;
    see(e, &s, "honey", 1, 1, &v);
    assert_int_equal(v.n_alerts, 1);
    const detect_alert *a = &v.alerts[0];
    assert_true(a->id[0] != '\0');
    assert_string_equal(a->actor, "lea");
    assert_string_equal(a->source, "10.1.0.5");
    assert_int_equal(a->response, DETECT_CONTAIN);
    json_error_t jerr;
    json_t *j = json_loads(a->evidence_json, 0, &jerr);
    assert_non_null(j);
    assert_non_null(json_object_get(j, "windows"));
    assert_non_null(json_object_get(j, "model"));
    json_t *pats = json_object_get(j, "patients");
    assert_string_equal(json_string_value(json_array_get(pats, 0)), "honey-1");
    json_decref(j);
    detect_verdict_clear(&v);
    detect_free(e);
}

/* A service opening ~6 new patients every 10 minutes for four days (declared
 * while it is new; its learned limits allowed far above the default
 * ceiling), then a sustained excess of 3 more per bucket (+50%): the model
 * notices, the rules alone do not. */
static unsigned steady_then_excess(int model, double *model_points)
{
    detect_config c;
    detect_config_default(&c);
    c.hash_seed = 42;
    c.model_enabled = model;
    c.learned_ceiling = 50;          /* a feed the hospital let grow that far */
    detect_engine *e = detect_new(&c, NULL);
    assert_non_null(e);
    unsigned seen = 0;
    int id = 0;
    /* commissioned with its volume declared until its rhythm is learned */
    assert_int_equal(detect_declare_bulk(e, "feed", 1200, T0 + 4 * DAY_US, "sec-1",
                                         NULL), 0);
    *model_points = 0;
    for (int b = 0; b < 4 * 144 + 30; b++) {
        int extra = b >= 4 * 144 ? 3 : 0;
        int n = 5 + (b % 3) + extra;
        for (int i = 0; i < n; i++) {
            ev_spec s = { .t = T0 + b * 10 * MIN_US + i * 60 * S_US, .actor = "feed",
                          .role = "service", .source = "10.200.0.10",
                          .patient_flags = DETECT_PAT_EXPLAINED };
            detect_verdict v;
            see(e, &s, "q", id++, 1, &v);
            if (b >= 4 * 144) {
                seen |= v.detectors;
                for (size_t k = 0; k < v.n_alerts; k++)
                    if (v.alerts[k].model_score > *model_points)
                        *model_points = v.alerts[k].model_score;
            }
            detect_verdict_clear(&v);
        }
    }
    detect_free(e);
    return seen;
}

static void test_model_sees_sustained_excess(void **state)
{
    (void)state;
    double pts;
    unsigned with = steady_then_excess(1, &pts);
    assert_true(with & DETECT_SIG_MODEL);
    assert_true(pts > 0);
    unsigned without = steady_then_excess(0, &pts);
    assert_false(without & DETECT_SIG_MODEL);
    assert_false(without & DETECT_SIG_VOLUME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_volume_fires_and_contains_within_target),
        cmocka_unit_test(test_volume_silent_on_usual_day),
        cmocka_unit_test(test_own_patients_reviewed_never_refused),
        cmocka_unit_test(test_writes_are_no_disclosure),
        cmocka_unit_test(test_ratchet_contained_before_200),
        cmocka_unit_test(test_steady_service_never_refused),
        cmocka_unit_test(test_btg_spree_contained_by_eight),
        cmocka_unit_test(test_one_btg_emergency_is_silent),
        cmocka_unit_test(test_spread_over_accounts_held_to_thirty),
        cmocka_unit_test(test_a_few_emergencies_across_the_hospital_are_silent),
        cmocka_unit_test(test_outside_care_every_day_stopped_by_the_week),
        cmocka_unit_test(test_one_a_day_outside_care_seen_by_the_month),
        cmocka_unit_test(test_priors_set_cold_start_limits),
        cmocka_unit_test(test_review_ranks_paced_in_care_reading),
        cmocka_unit_test(test_ignored_step_up_contains),
        cmocka_unit_test(test_step_up_answered_once_a_shift),
        cmocka_unit_test(test_many_hidden_404s_contain),
        cmocka_unit_test(test_a_few_not_found_are_silent),
        cmocka_unit_test(test_everything_on_many_patients),
        cmocka_unit_test(test_decoy_contains_at_first_touch),
        cmocka_unit_test(test_service_outside_its_networks),
        cmocka_unit_test(test_session_from_two_places),
        cmocka_unit_test(test_spraying_blocks_the_source),
        cmocka_unit_test(test_totp_wrong_after_right_password),
        cmocka_unit_test(test_patient_centred),
        cmocka_unit_test(test_declaration_raises_limits_and_still_watches),
        cmocka_unit_test(test_replay_rebuilds_state_silently),
        cmocka_unit_test(test_memory_caps_hold),
        cmocka_unit_test(test_unknown_names_evict_nothing),
        cmocka_unit_test(test_threads_observe_at_once),
        cmocka_unit_test(test_config_and_event_validation),
        cmocka_unit_test(test_alert_evidence_is_json_without_names),
        cmocka_unit_test(test_model_sees_sustained_excess),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
