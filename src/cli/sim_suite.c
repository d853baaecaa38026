/*
 * sim_suite.c -- the frozen benign suite of `medvault simulate --suite`:
 * clinical work the simulator's own hospital (sim_world.c, sim_day.c) does
 * not model, played against the real detector over 30 days.
 *
 * Why it exists: the simulator's benign staff were written by the people
 * who tuned the detector against them, so "1 false alert per 1,000
 * user-days" only said that the detector fits its own model.  This suite is
 * written from how clinical software is used (audit-log studies: about a
 * thousand EHR events per clinician per day, patient lists loaded at the
 * start of a session) and is FROZEN: the detector is never tuned by editing
 * it.  tests/cli/test_sim_suite.sh records this file's SHA-256, so a change
 * here fails the suite's test until the record is updated on purpose, in a
 * commit that says why.
 *
 * The hospital: 12 wards of 40 to 60 beds (two physician teams each, a
 * sixth of the beds turning over every day), an emergency department, a
 * pool of 30,000 patients, and staff in nine workloads:
 *   ward-census          a ward physician loads the census of the team's
 *                        20-30 patients at login and reloads it at 11:00,
 *                        14:00 and 16:30, every patient fetched in seconds
 *                        each time; rounds with 5-15 searches per record;
 *                        clinic afternoons (Appointment)
 *   shift-handover       a ward nurse reads every patient of the unit (40-60)
 *                        in 15 minutes at the start and at the end of her
 *                        shift, and gives three medication rounds
 *   ed-triage            30-50 arrivals a 12-hour shift, each with no prior
 *                        relationship: the nurse creates the Encounter, then
 *                        reads
 *   ed-physician         15-25 arrivals a shift, on the Encounter
 *   radiology-worklist   100-300 patients a weekday (ServiceRequest), the
 *                        worklist loaded 20 at a time
 *   lab-worklist         the same for a biologist (DiagnosticReport)
 *   pharmacy-verification  every new MedicationRequest of the hospital,
 *                        shared by the pharmacists on duty (Task)
 *   medical-secretary    20-40 letters a day for the ward's discharged
 *                        patients (Task)
 *   night-on-call        two nights a week covering three wards (a CareTeam
 *                        participation for the night): their lists at
 *                        20:00, then the patients who need attention
 * Every access is explained as the server would explain it (the patient is
 * in the actor's care, stay, order or task), except a few emergencies a
 * day that break the glass.  Day 0 is the hospital's first day (no
 * baseline for anyone); a tenth of the staff arrive later (their first day
 * is their own cold start).  Logins and mistyped passwords and codes as in
 * sim_day.c.
 *
 * The driver reacts as people do: a step-up asked is answered, a throttled
 * request is dropped, a lockout is released by security and counted.  What
 * it must never do: touch a store, the network or a clock.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_US  (60LL * 1000000)
#define HOUR_US (60 * MIN_US)
#define DAY_US  (24 * HOUR_US)

enum { STREAM_SUITE_STAFF = 40, STREAM_SUITE_DAY = 41, STREAM_SUITE_WARD = 42,
       STREAM_SUITE_WORK = 43 };

#define WARDS 12
#define BEDS_MAX 60
#define POOL 30000
#define LIST_MAX 64

/* ---- Workloads ----------------------------------------------------------------------- */

static const sim_suite_workload workloads[SIM_WL_COUNT] = {
    [SIM_WL_CENSUS] = { "ward-census", "clinician", 90,
        "ward physician: census of 20-30 loaded at login and 3 reloads, rounds, clinic" },
    [SIM_WL_HANDOVER] = { "shift-handover", "nurse", 110,
        "ward nurse: the unit's 40-60 patients at shift start and end, 3 medication rounds" },
    [SIM_WL_ED_TRIAGE] = { "ed-triage", "nurse", 20,
        "ED triage nurse: 30-50 arrivals a 12 h shift, Encounter created at arrival" },
    [SIM_WL_ED_PHYSICIAN] = { "ed-physician", "clinician", 20,
        "ED physician: 15-25 arrivals a 12 h shift, on their Encounter" },
    [SIM_WL_RADIOLOGY] = { "radiology-worklist", "clinician", 10,
        "radiologist: 100-300 patients a weekday by ServiceRequest, listed 20 at a time" },
    [SIM_WL_LAB] = { "lab-worklist", "clinician", 8,
        "lab biologist: 100-300 patients a day by DiagnosticReport worklist" },
    [SIM_WL_PHARMACY] = { "pharmacy-verification", "clinician", 7,
        "pharmacist: every new MedicationRequest of the hospital, shared (Task)" },
    [SIM_WL_SECRETARY] = { "medical-secretary", "nurse", 20,
        "medical secretary: 20-40 letters a day for the ward's discharged patients" },
    [SIM_WL_ON_CALL] = { "night-on-call", "clinician", 15,
        "night on-call physician: 3 wards' lists at 20:00, then who needs attention" },
};

const sim_suite_workload *sim_suite_workload_get(int wl)
{
    return wl >= 0 && wl < SIM_WL_COUNT ? &workloads[wl] : NULL;
}

/* ---- The hospital ----------------------------------------------------------------------- */

typedef struct person {
    char id[32];
    int wl;
    int ward;                 /* wards, 0..WARDS-1 (ED staff: 0)          */
    int team;                 /* physicians: 0 or 1                        */
    int shift;                /* nurses: 0 day, 1 evening, 2 night; ED: 0 day, 1 night */
    int first_day;            /* 0 for the hospital's own staff            */
} person;

typedef struct ward_t {
    int beds;
    int32_t patient[BEDS_MAX];
    int32_t discharged[BEDS_MAX];   /* yesterday's discharges (letters)    */
    int n_discharged;
} ward_t;

struct sim_suite {
    uint64_t seed;
    int days;
    int n;
    person *staff;
    ward_t wards[WARDS];
    int64_t start_us;
};

/* Split the staff between the workloads in proportion to their share of
 * 300, at least one each. */
static int workload_of(int k, int people)
{
    int total = 0;
    for (int wl = 0; wl < SIM_WL_COUNT; wl++)
        total += workloads[wl].per300;
    int at = 0;
    for (int wl = 0; wl < SIM_WL_COUNT; wl++) {
        int share = workloads[wl].per300 * people / total;
        at += share > 0 ? share : 1;
        if (k < at)
            return wl;
    }
    return SIM_WL_CENSUS;
}

static void add_staff(sim_suite *h, int k)
{
    person *p = &h->staff[k];
    sim_rng r;
    sim_rng_init(&r, h->seed, STREAM_SUITE_STAFF, (uint64_t)k);
    p->wl = workload_of(k, h->n);
    snprintf(p->id, sizeof p->id, "%s-%04d", workloads[p->wl].name, k);
    p->ward = sim_below(&r, WARDS);
    p->team = sim_below(&r, 2);
    p->shift = sim_below(&r, p->wl == SIM_WL_HANDOVER ? 3 : 2);
    /* a tenth of the staff start later: their own first day */
    p->first_day = k % 10 == 9 && h->days > 3 ? 1 + sim_below(&r, h->days - 2) : 0;
}

static int pool_patient(sim_rng *r)
{
    return sim_below(r, POOL);
}

static void build_wards(sim_suite *h)
{
    sim_rng r;
    sim_rng_init(&r, h->seed, STREAM_SUITE_WARD, 0);
    for (int w = 0; w < WARDS; w++) {
        ward_t *x = &h->wards[w];
        x->beds = 40 + sim_below(&r, BEDS_MAX - 40 + 1);
        for (int b = 0; b < x->beds; b++)
            x->patient[b] = pool_patient(&r);
    }
}

/* A sixth of each ward's beds turn over every morning. */
static void turn_over(sim_suite *h, int day)
{
    sim_rng r;
    sim_rng_init(&r, h->seed, STREAM_SUITE_WARD, (uint64_t)day + 1);
    for (int w = 0; w < WARDS; w++) {
        ward_t *x = &h->wards[w];
        x->n_discharged = 0;
        for (int b = 0; b < x->beds; b++)
            if (sim_chance(&r, 1.0 / 6)) {
                x->discharged[x->n_discharged++] = x->patient[b];
                x->patient[b] = pool_patient(&r);
            }
    }
}

sim_suite *sim_suite_new(int days, int staff, uint64_t seed, mv_err *err)
{
    sim_suite *h = mv_calloc(1, sizeof *h, err);
    if (h == NULL)
        return NULL;
    h->seed = seed;
    h->days = days;
    h->n = staff;
    h->staff = mv_calloc((size_t)staff, sizeof *h->staff, err);
    if (h->staff == NULL || mv_time_parse("2026-01-05T00:00:00Z", &h->start_us, err) != 0) {
        sim_suite_free(h);
        return NULL;
    }
    for (int k = 0; k < staff; k++)
        add_staff(h, k);
    build_wards(h);
    return h;
}

void sim_suite_free(sim_suite *h)
{
    if (h == NULL)
        return;
    free(h->staff);
    free(h);
}

/* ---- Events ------------------------------------------------------------------------------- */

enum { K_LOGIN, K_LOGIN_BAD_PASSWORD, K_LOGIN_BAD_TOTP, K_READ, K_SEARCH, K_WRITE,
       K_LIST_WARD, K_LIST_WORK };

/* One request.  A list is resolved when it is made (the ward's beds at that
 * moment, or positions [from, from+n) of the actor's work of that day). */
typedef struct sev {
    int64_t t;
    int32_t staff;
    int16_t kind, day;
    int32_t patient;          /* K_READ/SEARCH/WRITE; K_LIST_WORK: from    */
    int16_t n;                /* K_LIST_WORK: how many                      */
    int8_t ward, team;        /* K_LIST_WARD (team -1: the whole ward)     */
    uint8_t unexplained;      /* broke the glass                            */
    uint32_t session, ip;
} sev;

typedef struct sevs {
    sev *v;
    size_t n, cap;
    int failed;
} sevs;

static void push(sevs *e, const sev *x)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 65536;
        sev *v = realloc(e->v, cap * sizeof *v);
        if (v == NULL) {
            e->failed = 1;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = *x;
}

static int by_time(const void *a, const void *b)
{
    const sev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->staff != y->staff ? (x->staff < y->staff ? -1 : 1) : 0;
}

/* The k-th patient of an actor's work on a day (arrivals, worklist, queue):
 * the same whenever asked. */
static int work_patient(const sim_suite *h, int s, int day, int k)
{
    sim_rng r;
    sim_rng_init(&r, h->seed, STREAM_SUITE_WORK,
                 (uint64_t)day * 1000003u + (uint64_t)s * 4099u + (uint64_t)k);
    int wl = h->staff[s].wl;
    if (wl == SIM_WL_SECRETARY) {
        const ward_t *x = &h->wards[h->staff[s].ward];
        if (x->n_discharged > 0)
            return x->discharged[k % x->n_discharged];
    }
    if (wl == SIM_WL_PHARMACY && sim_chance(&r, 0.7)) {
        const ward_t *x = &h->wards[sim_below(&r, WARDS)];
        return x->patient[sim_below(&r, x->beds)];
    }
    return pool_patient(&r);
}

/* ---- One day's work ------------------------------------------------------------------------- */

#define SESSIONS 8

typedef struct shift {
    int s, day;
    int64_t from, to;
    int n;
    int64_t login[SESSIONS];
    uint32_t ip[SESSIONS], id[SESSIONS];
} shift;

typedef struct gen {
    const sim_suite *h;
    int day;
    int64_t day0;
    sim_rng r;
    sevs *out;
} gen;

static int64_t between(gen *g, int64_t from, int64_t to)
{
    return from + (int64_t)(sim_unit(&g->r) * (double)(to - from));
}

static uint32_t net_of(const person *p)
{
    switch (p->wl) {
    case SIM_WL_ED_TRIAGE: case SIM_WL_ED_PHYSICIAN: return 50;
    case SIM_WL_RADIOLOGY: return 60;
    case SIM_WL_LAB:       return 61;
    case SIM_WL_PHARMACY:  return 62;
    default:               return 1 + (uint32_t)p->ward;
    }
}

static void emit(gen *g, const shift *sh, int64_t t, int kind, int patient)
{
    int k = 0;
    while (k + 1 < sh->n && sh->login[k + 1] <= t)
        k++;
    sev x = { .t = t, .staff = sh->s, .kind = (int16_t)kind, .day = (int16_t)sh->day,
              .patient = patient, .session = sh->id[k], .ip = sh->ip[k],
              .ward = -1, .team = -1 };
    push(g->out, &x);
}

static void emit_list(gen *g, const shift *sh, int64_t t, int ward, int team)
{
    emit(g, sh, t, K_LIST_WARD, -1);
    sev *x = &g->out->v[g->out->n - 1];
    if (!g->out->failed) {
        x->ward = (int8_t)ward;
        x->team = (int8_t)team;
    }
}

static void emit_work_list(gen *g, const shift *sh, int64_t t, int from, int n)
{
    emit(g, sh, t, K_LIST_WORK, from);
    if (!g->out->failed)
        g->out->v[g->out->n - 1].n = (int16_t)n;
}

/* Log in at the start and again when the session expires (~2.5 h), with a
 * mistyped password or code now and then. */
static void open_shift(gen *g, shift *sh, int s, int64_t from, int64_t to)
{
    memset(sh, 0, sizeof *sh);
    sh->s = s;
    sh->day = g->day;
    sh->from = from;
    sh->to = to;
    const person *p = &g->h->staff[s];
    for (int64_t t = from; t < to && sh->n < SESSIONS;
         t += 2 * HOUR_US + (int64_t)sim_below(&g->r, 60) * MIN_US) {
        int k = sh->n++;
        sh->login[k] = t;
        sh->ip[k] = sim_ip(10, (int)net_of(p), 0, 1 + sim_below(&g->r, 250));
        sh->id[k] = (uint32_t)(g->day * 100000 + s * 10 + k);
    }
    for (int k = 0; k < sh->n; k++) {
        if (sim_chance(&g->r, 0.03))
            emit(g, sh, sh->login[k] - 20 * 1000000LL, K_LOGIN_BAD_PASSWORD, -1);
        if (sim_chance(&g->r, 0.02))
            emit(g, sh, sh->login[k] - 15 * 1000000LL, K_LOGIN_BAD_TOTP, -1);
        emit(g, sh, sh->login[k], K_LOGIN, -1);
    }
}

/* Open a record: the Patient, then searches in it a minute or two apart. */
static int64_t open_record(gen *g, const shift *sh, int64_t t, int patient,
                           int searches, int64_t gap)
{
    emit(g, sh, t, K_READ, patient);
    for (int i = 0; i < searches; i++) {
        t += gap / 2 + (int64_t)sim_below(&g->r, (int)(gap / 1000000)) * 1000000LL;
        emit(g, sh, t, K_SEARCH, patient);
    }
    return t;
}

/* A census: the list, then every member fetched within seconds (the EHR
 * prefetches the census it displays). */
static void census(gen *g, const shift *sh, int64_t t, int ward, int team)
{
    emit_list(g, sh, t, ward, team);
    const ward_t *x = &g->h->wards[ward];
    for (int b = 0; b < x->beds; b++)
        if (team < 0 || b % 2 == team)
            emit(g, sh, t + 1000000 + b * 300000LL, K_READ, x->patient[b]);
}

/* An emergency: a patient outside the actor's care, through the glass. */
static void break_glass(gen *g, const shift *sh, double p)
{
    if (!sim_chance(&g->r, p))
        return;
    int patient = pool_patient(&g->r);
    int64_t t = between(g, sh->from, sh->to - HOUR_US);
    emit(g, sh, t, K_READ, patient);
    g->out->v[g->out->n - 1].unexplained = 1;
    emit(g, sh, t + 40 * 1000000LL, K_SEARCH, patient);
    g->out->v[g->out->n - 1].unexplained = 1;
}

static void ward_census(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    shift sh;
    int64_t start = g->day0 + 8 * HOUR_US + (int64_t)sim_below(&g->r, 30) * MIN_US;
    open_shift(g, &sh, s, start, g->day0 + 18 * HOUR_US);
    census(g, &sh, start + MIN_US, p->ward, p->team);
    static const int reload_min[] = { 11 * 60, 14 * 60, 16 * 60 + 30 };
    for (int i = 0; i < 3; i++)
        census(g, &sh, g->day0 + reload_min[i] * MIN_US +
               (int64_t)sim_below(&g->r, 20) * MIN_US, p->ward, p->team);
    const ward_t *x = &g->h->wards[p->ward];
    int64_t t = start + 10 * MIN_US;
    for (int b = p->team; b < x->beds; b += 2)          /* rounds */
        t = open_record(g, &sh, t + 2 * MIN_US, x->patient[b],
                        5 + sim_below(&g->r, 11), 40 * 1000000LL);
    if (sim_day_of_week(g->day) < 5 && sim_chance(&g->r, 0.5)) {   /* clinic */
        int n = 6 + sim_below(&g->r, 9);
        for (int i = 0; i < n; i++)
            open_record(g, &sh, g->day0 + 13 * HOUR_US + 30 * MIN_US + i * 20 * MIN_US,
                        work_patient(g->h, s, g->day, i), 6, 60 * 1000000LL);
    }
    break_glass(g, &sh, 0.02);
}

static void nurse_hours(const person *p, int64_t day0, int64_t *from, int64_t *to)
{
    static const int starts[3] = { 7, 15, 23 };
    *from = day0 + starts[p->shift] * HOUR_US;
    *to = *from + 8 * HOUR_US;
}

/* Read the whole unit within 15 minutes: the handover. */
static void handover(gen *g, const shift *sh, int64_t t, int ward)
{
    emit_list(g, sh, t, ward, -1);
    const ward_t *x = &g->h->wards[ward];
    int64_t step = 15 * MIN_US / x->beds;
    for (int b = 0; b < x->beds; b++)
        open_record(g, sh, t + 20 * 1000000LL + b * step, x->patient[b], 2,
                    10 * 1000000LL);
}

static void shift_handover(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    shift sh;
    int64_t from, to;
    nurse_hours(p, g->day0, &from, &to);
    open_shift(g, &sh, s, from, to);
    const ward_t *x = &g->h->wards[p->ward];
    handover(g, &sh, from + MIN_US, p->ward);
    int first = sim_below(&g->r, x->beds), mine = 8 + sim_below(&g->r, 5);
    for (int round = 0; round < 3; round++) {          /* medication rounds */
        int64_t t = from + 45 * MIN_US + round * 2 * HOUR_US;
        for (int i = 0; i < mine; i++)
            t = open_record(g, &sh, t + 2 * MIN_US,
                            x->patient[(first + i) % x->beds], 3, 30 * 1000000LL);
    }
    handover(g, &sh, to - 25 * MIN_US, p->ward);
    break_glass(g, &sh, 0.01);
}

static void ed_shift(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    shift sh;
    int64_t from = g->day0 + (p->shift ? 20 : 8) * HOUR_US, to = from + 12 * HOUR_US;
    open_shift(g, &sh, s, from, to);
    int triage = p->wl == SIM_WL_ED_TRIAGE;
    int n = triage ? 30 + sim_below(&g->r, 21) : 15 + sim_below(&g->r, 11);
    for (int i = 0; i < n; i++) {
        int64_t t = from + 10 * MIN_US + i * (11 * HOUR_US / n) +
                    (int64_t)sim_below(&g->r, 10) * MIN_US;
        int patient = work_patient(g->h, s, g->day, i);
        if (triage)
            emit(g, &sh, t - 30 * 1000000LL, K_WRITE, patient);   /* the Encounter */
        open_record(g, &sh, t, patient, triage ? 3 : 6 + sim_below(&g->r, 6),
                    90 * 1000000LL);
        if (!triage)
            emit(g, &sh, t + 20 * MIN_US, K_WRITE, patient);
    }
    break_glass(g, &sh, triage ? 0.02 : 0.05);
}

/* A worklist or a queue: listed 20 at a time, each item read, searched
 * and answered with a write (report, verification, letter). */
static void worklist(gen *g, int s, int n, int64_t from, int64_t to, int searches)
{
    shift sh;
    open_shift(g, &sh, s, from, to);
    int64_t step = (to - from - 20 * MIN_US) / (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        int64_t t = from + 5 * MIN_US + i * step;
        if (i % 20 == 0)
            emit_work_list(g, &sh, t - 30 * 1000000LL, i, n - i < 20 ? n - i : 20);
        int patient = work_patient(g->h, s, g->day, i);
        int64_t end = open_record(g, &sh, t, patient, searches, 20 * 1000000LL);
        emit(g, &sh, end + 30 * 1000000LL, K_WRITE, patient);
    }
}

static void day_worker(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    int weekday = sim_day_of_week(g->day) < 5;
    int64_t d = g->day0;
    switch (p->wl) {
    case SIM_WL_RADIOLOGY:
        if (weekday)
            worklist(g, s, 100 + sim_below(&g->r, 201), d + 8 * HOUR_US, d + 18 * HOUR_US, 1);
        return;
    case SIM_WL_LAB:
        worklist(g, s, (weekday ? 100 : 60) + sim_below(&g->r, weekday ? 201 : 60),
                 d + 7 * HOUR_US, d + 17 * HOUR_US, 2);
        return;
    case SIM_WL_PHARMACY:
        worklist(g, s, 150 + sim_below(&g->r, 101), d + 8 * HOUR_US, d + 18 * HOUR_US, 2);
        return;
    case SIM_WL_SECRETARY:
        if (weekday)
            worklist(g, s, 20 + sim_below(&g->r, 21), d + 9 * HOUR_US, d + 17 * HOUR_US, 2);
        return;
    }
}

static void night_on_call(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    shift sh;
    int64_t from = g->day0 + 20 * HOUR_US;
    open_shift(g, &sh, s, from, from + 12 * HOUR_US);
    for (int k = 0; k < 3; k++)
        emit_list(g, &sh, from + 2 * MIN_US + k * MIN_US, (p->ward + k) % WARDS, -1);
    int n = 10 + sim_below(&g->r, 16);
    for (int i = 0; i < n; i++) {
        const ward_t *x = &g->h->wards[(p->ward + sim_below(&g->r, 3)) % WARDS];
        open_record(g, &sh, between(g, from + 10 * MIN_US, from + 11 * HOUR_US),
                    x->patient[sim_below(&g->r, x->beds)], 3 + sim_below(&g->r, 6),
                    60 * 1000000LL);
    }
    break_glass(g, &sh, 0.03);
}

static int works_today(gen *g, int s)
{
    const person *p = &g->h->staff[s];
    if (g->day < p->first_day)
        return 0;
    int weekend = sim_day_of_week(g->day) >= 5;
    switch (p->wl) {
    case SIM_WL_CENSUS:   return sim_chance(&g->r, weekend ? 0.25 : 0.92);
    case SIM_WL_ON_CALL:  return (g->day + s) % 4 == 0 || g->day == p->first_day;
    case SIM_WL_PHARMACY: return sim_chance(&g->r, weekend ? 0.3 : 0.8);
    default:              return g->day == p->first_day || sim_chance(&g->r, 5.0 / 7);
    }
}

static void generate_day(const sim_suite *h, int day, sevs *out)
{
    gen g = { .h = h, .day = day, .day0 = h->start_us + (int64_t)day * DAY_US, .out = out };
    sim_rng_init(&g.r, h->seed, STREAM_SUITE_DAY, (uint64_t)day);
    for (int s = 0; s < h->n; s++) {
        if (!works_today(&g, s))
            continue;
        switch (h->staff[s].wl) {
        case SIM_WL_CENSUS:       ward_census(&g, s); break;
        case SIM_WL_HANDOVER:     shift_handover(&g, s); break;
        case SIM_WL_ED_TRIAGE:
        case SIM_WL_ED_PHYSICIAN: ed_shift(&g, s); break;
        case SIM_WL_ON_CALL:      night_on_call(&g, s); break;
        default:                  day_worker(&g, s); break;
        }
    }
}

/* ---- Conversion to the detector's events ------------------------------------------------ */

typedef struct conv {
    detect_event ev;
    detect_patient p[LIST_MAX];
    char ids[LIST_MAX][16];
    char session[24], source[16];
} conv;

static void add_patient(conv *c, int patient, int unexplained)
{
    size_t i = c->ev.n_patients;
    if (i >= LIST_MAX)
        return;
    snprintf(c->ids[i], sizeof c->ids[i], "sp-%06d", patient);
    c->p[i].id = c->ids[i];
    c->p[i].flags = unexplained ? DETECT_PAT_BTG : DETECT_PAT_EXPLAINED;
    c->ev.n_patients = i + 1;
}

static void convert(const sim_suite *h, const sev *x, conv *c)
{
    static const struct { const char *action, *type; detect_outcome outcome; } kinds[] = {
        [K_LOGIN] = { "auth.login", NULL, DETECT_GRANTED },
        [K_LOGIN_BAD_PASSWORD] = { "auth.login", NULL, DETECT_FAILED },
        [K_LOGIN_BAD_TOTP] = { "auth.login.second-factor-wrong", NULL, DETECT_FAILED },
        [K_READ] = { "fhir.read", "Patient", DETECT_GRANTED },
        [K_SEARCH] = { "fhir.search", "Observation", DETECT_GRANTED },
        [K_WRITE] = { "fhir.create", "Observation", DETECT_GRANTED },
        [K_LIST_WARD] = { "fhir.search", "Patient", DETECT_GRANTED },
        [K_LIST_WORK] = { "fhir.search", "ServiceRequest", DETECT_GRANTED },
    };
    const person *p = &h->staff[x->staff];
    memset(c, 0, sizeof *c);
    snprintf(c->session, sizeof c->session, "q%u", x->session);
    sim_ip_text(x->ip, c->source);
    c->ev = (detect_event){ .time_us = x->t, .actor = p->id, .role = workloads[p->wl].role,
        .session = c->session, .source = c->source, .action = kinds[x->kind].action,
        .resource_type = kinds[x->kind].type, .outcome = kinds[x->kind].outcome };
    c->ev.patients = c->p;
    if (x->kind == K_READ || x->kind == K_SEARCH || x->kind == K_WRITE)
        add_patient(c, x->patient, x->unexplained);
    if (x->kind == K_SEARCH)
        c->ev.page_size = 20;
    if (x->kind == K_WRITE)
        c->ev.flags = DETECT_EV_WRITE;
    if (x->kind == K_LIST_WARD) {
        const ward_t *w = &h->wards[x->ward];
        for (int b = 0; b < w->beds; b++)
            if (x->team < 0 || b % 2 == x->team)
                add_patient(c, w->patient[b], 0);
    }
    if (x->kind == K_LIST_WORK)
        for (int i = 0; i < x->n; i++)
            add_patient(c, work_patient(h, x->staff, x->day, x->patient + i), 0);
    if (x->kind == K_LIST_WARD || x->kind == K_LIST_WORK) {
        c->ev.flags = DETECT_EV_BROAD_SEARCH;
        c->ev.page_size = (int)c->ev.n_patients;
    }
}

/* ---- Driver ---------------------------------------------------------------------------------- */

/* What one person's day came to. */
typedef struct tally {
    uint8_t active, unexplained;
    uint16_t alerts, step_ups, refused, lockouts;
    uint32_t requests;
} tally;

typedef struct run {
    sim_suite *h;
    detect_engine *e;
    tally *t[2];              /* by day parity: a night shift ends next morning */
    sim_suite_result *out;
    int verbose;
} run;

static void step_up(run *r, const conv *c)
{
    detect_event ev = c->ev;
    ev.action = "auth.step-up";
    ev.resource_type = NULL;
    ev.patients = NULL;
    ev.n_patients = 0;
    ev.flags = 0;
    ev.page_size = 0;
    detect_verdict v;
    detect_observe(r->e, &ev, DETECT_LIVE, &v, NULL);
    detect_verdict_clear(&v);
}

static void report(const run *r, const conv *c, const detect_verdict *v)
{
    for (size_t i = 0; r->verbose && i < v->n_alerts; i++) {
        char when[MV_TIME_STR_MAX];
        mv_time_format(v->alerts[i].time_us, when);
        fprintf(stderr, "suite alert %s %s [%s] %s\n", when, c->ev.actor,
                detect_response_name(v->alerts[i].response), v->alerts[i].explanation);
    }
}

static void play(run *r, const sev *x)
{
    conv c;
    convert(r->h, x, &c);
    tally *t = &r->t[x->day & 1][x->staff];
    t->active = 1;
    t->requests++;
    if (x->unexplained)
        t->unexplained = 1;
    int64_t retry;
    detect_response gate = detect_gate(r->e, c.ev.actor, c.source, x->t, &retry);
    if (gate == DETECT_THROTTLE || gate == DETECT_CONTAIN) {
        t->refused++;
        return;
    }
    if (gate == DETECT_STEP_UP) {
        t->step_ups++;
        step_up(r, &c);
    }
    detect_verdict v;
    if (detect_observe(r->e, &c.ev, DETECT_LIVE, &v, NULL) != 0)
        return;
    t->alerts = (uint16_t)(t->alerts + v.n_alerts);
    report(r, &c, &v);
    if (v.response == DETECT_STEP_UP) {
        t->step_ups++;
        step_up(r, &c);
    } else if (v.response == DETECT_THROTTLE) {
        t->refused++;
    } else if (v.response == DETECT_CONTAIN) {
        t->lockouts++;
        t->refused++;
        if (r->verbose)
            fprintf(stderr, "suite lockout: %s\n", c.ev.actor);
        detect_release(r->e, c.ev.actor);
    }
    if (v.source_response == DETECT_CONTAIN) {
        t->lockouts++;
        detect_release_source(r->e, c.source);
    }
    detect_verdict_clear(&v);
}

static void add_to(sim_suite_row *row, const tally *t)
{
    row->user_days++;
    row->requests += t->requests;
    row->alerts += t->alerts;
    row->step_ups += t->step_ups;
    row->refused += t->refused;
    row->lockouts += t->lockouts;
    if (!t->unexplained) {
        row->explained_days++;
        row->explained_step_ups += t->step_ups;
    }
}

/* Fold the day's tallies into the rows: its workload, all staff, and the
 * cold starts (the hospital's first day; a new arrival's first day). */
static void fold(run *r, int day)
{
    tally *ts = r->t[day & 1];
    for (int s = 0; s < r->h->n; s++) {
        const tally *t = &ts[s];
        if (!t->active)
            continue;
        const person *p = &r->h->staff[s];
        add_to(&r->out->rows[p->wl], t);
        add_to(&r->out->rows[SIM_SUITE_ALL], t);
        if (day == 0)
            add_to(&r->out->rows[SIM_SUITE_FIRST_HOSPITAL_DAY], t);
        else if (day == p->first_day)
            add_to(&r->out->rows[SIM_SUITE_FIRST_STAFF_DAY], t);
    }
    memset(ts, 0, (size_t)r->h->n * sizeof *ts);
}

static int play_days(run *r, mv_err *err)
{
    sevs today = { 0 }, carry = { 0 };
    int rc = 0;
    for (int day = 0; day < r->h->days && rc == 0; day++) {
        if (day > 0)
            turn_over(r->h, day);
        sevs t = today;
        today = carry;                     /* last night's shifts go on */
        carry = t;
        carry.n = 0;
        generate_day(r->h, day, &today);
        if (today.failed || carry.failed) {
            rc = mv_fail(err, MV_E_NOMEM, "simulate: out of memory");
            break;
        }
        qsort(today.v, today.n, sizeof *today.v, by_time);
        int64_t end = r->h->start_us + (int64_t)(day + 1) * DAY_US;
        for (size_t i = 0; i < today.n; i++) {
            if (today.v[i].t >= end)
                push(&carry, &today.v[i]);
            else
                play(r, &today.v[i]);
        }
        today.n = 0;
        if (day > 0)
            fold(r, day - 1);      /* yesterday's night shifts are over */
    }
    if (rc == 0) {
        for (size_t i = 0; i < carry.n; i++)
            play(r, &carry.v[i]);
        fold(r, r->h->days - 1);
    }
    free(today.v);
    free(carry.v);
    return rc;
}

int sim_suite_run(sim_suite *h, int model, int verbose, sim_suite_result *out,
                  mv_err *err)
{
    memset(out, 0, sizeof *out);
    detect_config c;
    detect_config_default(&c);
    c.model_enabled = model;
    c.hash_seed = h->seed;
    detect_engine *e = detect_new(&c, err);
    if (e == NULL)
        return -1;
    run r = { .h = h, .e = e, .out = out, .verbose = verbose };
    r.t[0] = mv_calloc((size_t)h->n, sizeof(tally), err);
    r.t[1] = mv_calloc((size_t)h->n, sizeof(tally), err);
    int rc = r.t[0] && r.t[1] ? play_days(&r, err) : -1;
    /* the suite is replayed from scratch for each mode: the hospital's
     * wards are rebuilt so that both modes see the same days */
    build_wards(h);
    free(r.t[0]);
    free(r.t[1]);
    detect_free(e);
    return rc;
}

int sim_suite_row_met(const sim_suite_row *row)
{
    return row->lockouts == 0 &&
           (row->alerts == 0 || row->alerts * 100 < row->user_days) &&
           (row->explained_step_ups == 0 ||
            row->explained_step_ups * 100 < row->explained_days);
}
