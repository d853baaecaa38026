/*
 * sim_day.c -- one day of legitimate accesses in the simulated hospital.
 *
 * Why it exists: false alerts and false lockouts are measured on this
 * traffic, so it must look like a hospital's: physicians round on the
 * in-patients of their care teams in the morning and see outpatients in the
 * afternoon; nurses work day, evening or night shifts and give medication
 * rounds on their ward three times a shift; emergency staff see a stream of
 * arrivals day and night; everyone logs in again when a session expires and
 * sometimes mistypes a password or a TOTP code; a few emergencies break the
 * glass; the laboratory, pharmacy and imaging interfaces follow the ward's
 * daily rhythm; the data warehouse exports every patient each night under
 * its declaration.  The day's random numbers come from (seed, day) alone,
 * so the legitimate traffic is the same whatever the detector answers.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#define MIN_US  (60LL * 1000000)
#define HOUR_US (60 * MIN_US)
#define DAY_US  (24 * HOUR_US)

enum { STREAM_DAY = 10 };

/* ---- Event lists -------------------------------------------------------------------- */

int sim_events_push(sim_events *e, const sim_event *ev)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 4096;
        sim_event *v = realloc(e->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = *ev;
    return 0;
}

void sim_events_free(sim_events *e)
{
    free(e->v);
    memset(e, 0, sizeof *e);
}

static int by_time(const void *a, const void *b)
{
    const sim_event *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->actor != y->actor ? (x->actor < y->actor ? -1 : 1) : 0;
}

void sim_events_sort(sim_events *e)
{
    qsort(e->v, e->n, sizeof *e->v, by_time);
}

/* ---- One day ---------------------------------------------------------------------------- */

#define MAX_SESSIONS 8

/* A shift's sessions: one per login, a new one when the last expires. */
typedef struct shift {
    int s;                     /* staff index                                  */
    int64_t start, end;
    int n;
    int64_t login[MAX_SESSIONS];
    uint32_t ip[MAX_SESSIONS];
    uint32_t id[MAX_SESSIONS];
} shift;

typedef struct day_ctx {
    const sim_world *w;
    int day;
    int64_t day0;
    sim_events *out;
    sim_rng r;
    int failed;
} day_ctx;

static void emit(day_ctx *c, const shift *sh, int64_t t, int kind, int patient,
                 unsigned flags)
{
    int k = 0;
    while (k + 1 < sh->n && sh->login[k + 1] <= t)
        k++;
    sim_event ev = { .t = t, .actor = sh->s, .kind = (int16_t)kind,
                     .flags = (uint16_t)flags, .patient = patient, .count = 0,
                     .ip = sh->ip[k], .session = sh->id[k] };
    if (sim_events_push(c->out, &ev) != 0)
        c->failed = 1;
}

static uint32_t workstation(day_ctx *c, const sim_staff *st)
{
    int net = st->ip_net;
    if (st->role != SIM_SERVICE && st->ip_net <= SIM_DEPTS && sim_chance(&c->r, 0.1))
        net = 1 + sim_below(&c->r, SIM_DEPTS);    /* a consult on another ward */
    if (st->role == SIM_SERVICE)
        return sim_ip(10, 200, 0, 10 + st->service);
    return sim_ip(10, net, 0, 1 + sim_below(&c->r, 250));
}

/* Log in at the start and again every ~2.5 hours (idle sessions expire),
 * sometimes after a mistyped password or TOTP code. */
static void open_shift(day_ctx *c, shift *sh, int s, int64_t start, int64_t end)
{
    memset(sh, 0, sizeof *sh);
    sh->s = s;
    sh->start = start;
    sh->end = end;
    const sim_staff *st = &c->w->staff[s];
    for (int64_t t = start; t < end && sh->n < MAX_SESSIONS;
         t += 2 * HOUR_US + (int64_t)sim_below(&c->r, 60) * MIN_US) {
        int k = sh->n++;
        sh->login[k] = t;
        sh->ip[k] = workstation(c, st);
        sh->id[k] = (uint32_t)(c->day * 100000 + s * 10 + k);
    }
    for (int k = 0; k < sh->n; k++) {
        int64_t t = sh->login[k];
        if (st->role != SIM_SERVICE && sim_chance(&c->r, 0.03))
            emit(c, sh, t - 20 * 1000000LL, EV_LOGIN_BAD_PASSWORD, -1, 0);
        if (st->role != SIM_SERVICE && sim_chance(&c->r, 0.02)) {
            emit(c, sh, t - 15 * 1000000LL, EV_LOGIN_BAD_TOTP, -1, 0);
            if (sim_chance(&c->r, 0.15))
                emit(c, sh, t - 8 * 1000000LL, EV_LOGIN_BAD_TOTP, -1, 0);
        }
        emit(c, sh, t, EV_LOGIN, -1, 0);
    }
}

static unsigned patient_flags(const day_ctx *c, int s, int p, int explained,
                              int btg)
{
    const sim_patient *x = &c->w->patients[p];
    unsigned f = (explained ? DETECT_PAT_EXPLAINED : 0) | (btg ? DETECT_PAT_BTG : 0);
    if (x->vip)
        f |= DETECT_PAT_VIP;
    if (x->decoy)
        f |= DETECT_PAT_DECOY;
    if (c->w->staff[s].role != SIM_SERVICE && x->family == c->w->staff[s].family)
        f |= DETECT_PAT_SAME_FAMILY;
    return f;
}

/* Open a patient's record: the Patient, then a few searches in it. */
static int64_t open_record(day_ctx *c, const shift *sh, int64_t t, int p,
                           int explained, int btg, int searches)
{
    unsigned f = patient_flags(c, sh->s, p, explained, btg);
    emit(c, sh, t, EV_READ, p, f);
    for (int i = 0; i < searches; i++) {
        t += (20 + sim_below(&c->r, 100)) * 1000000LL;
        emit(c, sh, t, EV_SEARCH, p, f);
    }
    return t;
}

static int64_t uniform_in(day_ctx *c, int64_t from, int64_t to)
{
    return from + (int64_t)(sim_unit(&c->r) * (double)(to - from));
}

static int random_real(day_ctx *c)
{
    return sim_below(&c->r, c->w->n_real);
}

/* A patient the staff member does not care for, reached by breaking the
 * glass: an emergency. */
static void break_glass(day_ctx *c, const shift *sh, double p)
{
    if (!sim_chance(&c->r, p))
        return;
    int n = sim_chance(&c->r, 0.1) ? 2 : 1;
    int64_t t = uniform_in(c, sh->start, sh->end - HOUR_US);
    for (int i = 0; i < n; i++) {
        int x = random_real(c);
        if (sim_cares_for(c->w, sh->s, x))
            continue;
        t = open_record(c, sh, t, x, 0, 1, 1 + sim_below(&c->r, 2));
        t += (int64_t)sim_below(&c->r, 30) * MIN_US;
    }
}

/* ---- Who does what ------------------------------------------------------------------------- */

static int working(day_ctx *c, const sim_staff *st)
{
    int weekend = sim_day_of_week(c->day) >= 5;
    if (st->role == SIM_ADMIN || st->role == SIM_SECURITY)
        return !weekend && sim_chance(&c->r, 0.9);
    if (st->role == SIM_CLINICIAN && st->dept != 0)
        return weekend ? sim_chance(&c->r, 0.2) : sim_chance(&c->r, 0.92);
    return sim_chance(&c->r, 5.0 / 7);
}

static void ward_physician(day_ctx *c, int s)
{
    shift sh;
    int64_t start = c->day0 + 8 * HOUR_US + (int64_t)sim_below(&c->r, 30) * MIN_US;
    open_shift(c, &sh, s, start, c->day0 + 18 * HOUR_US);
    int64_t t = start + 20 * MIN_US;
    const sim_world *w = c->w;
    for (int i = 0; i < w->n_admitted; i++) {           /* morning rounds */
        int p = w->admitted[i];
        if (!sim_cares_for(w, s, p))
            continue;
        t = open_record(c, &sh, t + 3 * MIN_US + (int64_t)sim_exp(&c->r, 6 * MIN_US),
                        p, 1, 0, 1 + sim_below(&c->r, 3));
        if (sim_chance(&c->r, 0.3))                     /* afternoon revisit */
            emit(c, &sh, uniform_in(c, c->day0 + 14 * HOUR_US, sh.end - 15 * MIN_US),
                 EV_READ, p, patient_flags(c, s, p, 1, 0));
    }
    if (sim_day_of_week(c->day) < 5 && sim_chance(&c->r, 0.5)) {   /* clinic */
        int n = 6 + sim_below(&c->r, 9);
        for (int i = 0; i < n; i++)
            open_record(c, &sh, c->day0 + 13 * HOUR_US + 30 * MIN_US + i * 20 * MIN_US +
                        (int64_t)sim_below(&c->r, 5) * MIN_US,
                        random_real(c), 1, 0, 2);
    }
    break_glass(c, &sh, 0.02);
}

static void shift_hours(const sim_staff *st, int64_t day0, int64_t *from, int64_t *to)
{
    if (st->role == SIM_CLINICIAN) {           /* emergency physicians: 12 h */
        *from = day0 + (st->shift == SHIFT_NIGHT ? 20 : 8) * HOUR_US;
        *to = *from + 12 * HOUR_US;
        return;
    }
    static const int starts[3] = { 7, 15, 23 };
    *from = day0 + starts[st->shift] * HOUR_US;
    *to = *from + 8 * HOUR_US;
}

/* Emergency department: arrivals seen during the shift (the ED encounter
 * explains the access). */
static void emergency(day_ctx *c, int s)
{
    const sim_staff *st = &c->w->staff[s];
    shift sh;
    int64_t from, to;
    shift_hours(st, c->day0, &from, &to);
    open_shift(c, &sh, s, from, to);
    int n = st->role == SIM_CLINICIAN ? 10 + sim_below(&c->r, 11) : 8 + sim_below(&c->r, 8);
    for (int i = 0; i < n; i++)
        open_record(c, &sh, uniform_in(c, from + 10 * MIN_US, to - 20 * MIN_US),
                    random_real(c), 1, 0, 2 + sim_below(&c->r, 3));
    break_glass(c, &sh, st->role == SIM_CLINICIAN ? 0.06 : 0.04);
}

/* A ward nurse: a handful of the ward's patients, three medication rounds. */
static void ward_nurse(day_ctx *c, int s)
{
    const sim_staff *st = &c->w->staff[s];
    const sim_world *w = c->w;
    shift sh;
    int64_t from, to;
    shift_hours(st, c->day0, &from, &to);
    open_shift(c, &sh, s, from, to);
    int mine[16], n = 0, want = 4 + sim_below(&c->r, 6);
    int offset = w->n_admitted ? sim_below(&c->r, w->n_admitted) : 0;
    for (int i = 0; i < w->n_admitted && n < want; i++) {
        int p = w->admitted[(i + offset) % w->n_admitted];
        if (w->patients[p].dept == st->dept)
            mine[n++] = p;
    }
    for (int round = 0; round < 3; round++) {
        int64_t t = from + 30 * MIN_US + round * 3 * HOUR_US;
        for (int i = 0; i < n; i++) {
            t += (2 + sim_below(&c->r, 5)) * MIN_US;
            open_record(c, &sh, t, mine[i], 1, 0, 1);
        }
    }
    break_glass(c, &sh, 0.01);
}

static void office(day_ctx *c, int s)
{
    shift sh;
    int64_t from = c->day0 + 9 * HOUR_US, to = c->day0 + 17 * HOUR_US;
    open_shift(c, &sh, s, from, to);
    int n = 5 + sim_below(&c->r, 16);
    for (int i = 0; i < n; i++)
        emit(c, &sh, uniform_in(c, from + MIN_US, to), EV_DIRECTORY, -1, 0);
}

/* ---- Services ----------------------------------------------------------------------------- */

/* Spread volume events over the day with hourly weights; each opens one
 * in-patient (two events: a search by identifier and a write or read). */
static void service_rhythm(day_ctx *c, int s, double volume, const double weight[24],
                           int second_kind)
{
    const sim_world *w = c->w;
    shift sh;
    open_shift(c, &sh, s, c->day0, c->day0 + DAY_US);
    double total = 0;
    for (int h = 0; h < 24; h++)
        total += weight[h];
    for (int h = 0; h < 24 && w->n_admitted > 0; h++) {
        int n = sim_poisson(&c->r, volume * weight[h] / total);
        for (int i = 0; i < n; i++) {
            int64_t t = c->day0 + h * HOUR_US + (int64_t)(sim_unit(&c->r) * HOUR_US);
            int p = w->admitted[sim_below(&c->r, w->n_admitted)];
            unsigned f = patient_flags(c, s, p, 1, 0);
            emit(c, &sh, t, EV_SEARCH, p, f);
            emit(c, &sh, t + 2000000, second_kind, p, f);
        }
    }
}

static void services(day_ctx *c)
{
    static const double lab[24] = { .4, .4, .4, .4, .4, .4, 2, 2, 2, 2, 2,
        1, 1, 1, 1, 1, 1, 1, .6, .6, .6, .6, .6, .6 };
    static const double pharmacy[24] = { .3, .3, .3, .3, .3, .3, .3, 1.3, 1.3,
        1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, .5, .5, .5 };
    static const double imaging[24] = { .1, .1, .1, .1, .1, .1, .1, .1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, .1, .1, .1, .1, .1 };
    const sim_world *w = c->w;
    int weekend = sim_day_of_week(c->day) >= 5;
    double census = w->n_admitted;
    service_rhythm(c, w->service_staff[SVC_LAB], census * (weekend ? 2.1 : 3), lab,
                   EV_CREATE);
    service_rhythm(c, w->service_staff[SVC_PHARMACY], census * 2, pharmacy, EV_READ);
    service_rhythm(c, w->service_staff[SVC_IMAGING], census * (weekend ? .2 : .5),
                   imaging, EV_READ);
}

/* The nightly export: every real patient, pages of 100, one every 2 s. */
static void warehouse(day_ctx *c)
{
    int s = c->w->service_staff[SVC_WAREHOUSE];
    shift sh;
    int64_t t = c->day0 + HOUR_US;
    open_shift(c, &sh, s, t, t + 4 * HOUR_US);
    for (int first = 0; first < c->w->n_real; first += 100) {
        t += 2000000;
        int n = c->w->n_real - first < 100 ? c->w->n_real - first : 100;
        sim_event ev = { .t = t, .actor = s, .kind = EV_PAGE, .patient = first,
                         .count = n, .ip = sh.ip[0], .session = sh.id[0] };
        if (sim_events_push(c->out, &ev) != 0)
            c->failed = 1;
    }
}

int sim_day_generate(const sim_world *w, int day, sim_events *out)
{
    day_ctx c = { .w = w, .day = day, .out = out };
    c.day0 = w->start_us + (int64_t)day * DAY_US;
    sim_rng_init(&c.r, w->cfg.seed, STREAM_DAY, (uint64_t)day);
    for (int s = 0; s < w->n_staff; s++) {
        const sim_staff *st = &w->staff[s];
        if (st->role == SIM_SERVICE || !working(&c, st))
            continue;
        if (st->role == SIM_ADMIN || st->role == SIM_SECURITY)
            office(&c, s);
        else if (st->dept == 0)
            emergency(&c, s);
        else if (st->role == SIM_CLINICIAN)
            ward_physician(&c, s);
        else
            ward_nurse(&c, s);
    }
    services(&c);
    warehouse(&c);
    return c.failed ? -1 : 0;
}
