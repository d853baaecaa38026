/*
 * sim_run.c -- the simulator's driver: turn simulated events into the
 * detector's events, feed them to the real engine in time order, react to
 * the verdicts as the server and the people would, and count.
 *
 * Why it exists: the detector must be judged by the same calls the server
 * makes -- detect_gate() before a request, detect_observe() before its
 * response leaves, detect_max_page() for the page size -- in the same
 * order.  A legitimate user asked for a step-up does it; one throttled waits
 * (the request is dropped); one contained is counted as a false lockout and
 * unlocked by a security officer (detect_release), as is a blocked address.
 * Every alert raised on legitimate traffic is a false alert.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_US (24LL * 3600 * 1000000)
#define COMMISSION_DAYS 7

static const char *role_name(int role)
{
    static const char *const names[] = {
        "clinician", "nurse", "admin", "security", "service" };
    return names[role];
}

detect_engine *sim_engine_new(const sim_world *w, int model, mv_err *err)
{
    detect_config c;
    detect_config_default(&c);
    c.model_enabled = model;
    c.hash_seed = w->cfg.seed;
    detect_engine *e = detect_new(&c, err);
    if (e == NULL)
        return NULL;
    /* The server would load these from the accounts: the interfaces' source
     * network, and the warehouse's declaration approved by security. */
    const char *approver = "sec-0000";
    for (int s = 0; s < w->n_staff; s++)
        if (w->staff[s].role == SIM_SECURITY) {
            approver = w->staff[s].id;
            break;
        }
    int wh = w->service_staff[SVC_WAREHOUSE];
    int rc = 0;
    for (int svc = 1; svc < SVC_COUNT && rc == 0; svc++)
        rc = detect_set_networks(e, w->staff[w->service_staff[svc]].id,
                                 "10.200.0.0/24", err);
    if (rc == 0)
        rc = detect_declare_bulk(e, w->staff[wh].id, (int64_t)w->n_real * 11 / 10,
                                 w->start_us + 3650 * DAY_US, approver, err);
    /* The interfaces are commissioned with their expected daily volume
     * declared for their first week; then the declaration is renewed from
     * what they were measured to touch (renew_declarations).  An
     * undeclared account's learned limits never pass learned_ceiling x a
     * new actor's (a ratcheted baseline meets them), so a feed that
     * touches more than that every day stays declared, as a hospital
     * declares its interfaces. */
    static const double per_inpatient[SVC_COUNT] = { 0, 3, 2, 0.5, 0 };
    for (int svc = SVC_LAB; svc <= SVC_IMAGING && rc == 0; svc++)
        rc = detect_declare_bulk(e, w->staff[w->service_staff[svc]].id,
                                 (int64_t)(per_inpatient[svc] * 1.3 * (w->n_real / 8)) + 20,
                                 w->start_us + COMMISSION_DAYS * DAY_US, approver, err);
    if (rc != 0) {
        detect_free(e);
        return NULL;
    }
    return e;
}

/* ---- Conversion ----------------------------------------------------------------------- */

typedef struct converted {
    detect_event ev;
    detect_patient patients[100];
    char session[24], source[16];
} converted;

static void convert_patients(const sim_world *w, const sim_event *s, converted *c)
{
    detect_event *ev = &c->ev;
    if (s->kind == EV_PAGE) {
        int n = s->count > 100 ? 100 : s->count;
        for (int i = 0; i < n; i++) {
            const sim_patient *p = &w->patients[s->patient + i];
            c->patients[i].id = p->id;
            c->patients[i].flags = (p->dept >= 0 ? DETECT_PAT_EXPLAINED : 0) |
                (p->vip ? DETECT_PAT_VIP : 0) | (p->decoy ? DETECT_PAT_DECOY : 0);
        }
        ev->patients = c->patients;
        ev->n_patients = (size_t)n;
        ev->page_size = 100;
        ev->page_index = s->patient / 100;
        ev->flags = DETECT_EV_BROAD_SEARCH;
        return;
    }
    if (s->patient < 0)
        return;
    c->patients[0].id = w->patients[s->patient].id;
    c->patients[0].flags = s->flags;
    ev->patients = c->patients;
    ev->n_patients = 1;
}

static void convert(const sim_world *w, const sim_event *s, converted *c)
{
    static const struct { const char *action, *type; detect_outcome outcome; } kinds[] = {
        [EV_READ] = { "fhir.read", "Patient", DETECT_GRANTED },
        [EV_SEARCH] = { "fhir.search", "Observation", DETECT_GRANTED },
        [EV_CREATE] = { "fhir.create", "Observation", DETECT_GRANTED },
        [EV_EVERYTHING] = { "fhir.everything", "Patient", DETECT_GRANTED },
        [EV_PAGE] = { "fhir.search", "Patient", DETECT_GRANTED },
        [EV_DIRECTORY] = { "fhir.search", "Practitioner", DETECT_GRANTED },
        [EV_LOGIN] = { "auth.login", NULL, DETECT_GRANTED },
        [EV_LOGIN_BAD_PASSWORD] = { "auth.login", NULL, DETECT_FAILED },
        [EV_LOGIN_BAD_TOTP] = { "auth.login.second-factor-wrong", NULL, DETECT_FAILED },
        [EV_STEP_UP] = { "auth.step-up", NULL, DETECT_GRANTED },
    };
    const sim_staff *st = &w->staff[s->actor];
    memset(c, 0, sizeof *c);
    snprintf(c->session, sizeof c->session, "s%u", s->session);
    sim_ip_text(s->ip, c->source);
    c->ev.time_us = s->t;
    c->ev.actor = st->id;
    c->ev.role = role_name(st->role);
    c->ev.session = c->session;
    c->ev.source = c->source;
    c->ev.action = kinds[s->kind].action;
    c->ev.resource_type = kinds[s->kind].type;
    c->ev.outcome = kinds[s->kind].outcome;
    if (s->kind == EV_SEARCH)
        c->ev.page_size = 20;
    convert_patients(w, s, c);
}

int sim_observe(const sim_world *w, detect_engine *e, const sim_event *ev,
                detect_verdict *v)
{
    converted c;
    convert(w, ev, &c);
    return detect_observe(e, &c.ev, DETECT_LIVE, v, NULL);
}

/* ---- Legitimate traffic ----------------------------------------------------------------- */

static void report(const sim_world *w, const sim_event *ev, const detect_verdict *v,
                   int verbose)
{
    if (!verbose)
        return;
    for (size_t i = 0; i < v->n_alerts; i++) {
        char when[MV_TIME_STR_MAX];
        mv_time_format(v->alerts[i].time_us, when);
        fprintf(stderr, "false alert %s %s [%s] %s\n", when,
                w->staff[ev->actor].id, detect_response_name(v->alerts[i].response),
                v->alerts[i].explanation);
    }
}

static void step_up(const sim_world *w, detect_engine *e, const sim_event *ev)
{
    sim_event s = *ev;
    s.kind = EV_STEP_UP;
    s.patient = -1;
    s.count = 0;
    detect_verdict v;
    sim_observe(w, e, &s, &v);
    detect_verdict_clear(&v);
}

static void feed_benign(const sim_world *w, detect_engine *e, const sim_event *ev,
                        sim_attacker *attack, sim_benign *b, int verbose)
{
    const char *actor = w->staff[ev->actor].id;
    char source[16];
    sim_ip_text(ev->ip, source);
    int64_t retry;
    detect_response gate = detect_gate(e, actor, source, ev->t, &retry);
    if (gate == DETECT_THROTTLE || gate == DETECT_CONTAIN)
        return;                            /* refused; the person waits */
    if (gate == DETECT_STEP_UP)
        step_up(w, e, ev);
    detect_verdict v;
    if (sim_observe(w, e, ev, &v) != 0)
        return;
    b->events++;
    b->alerts += (long)v.n_alerts;
    report(w, ev, &v, verbose);
    if (attack != NULL) {           /* measuring an attack, not false alarms */
        sim_attacker_saw(attack, actor, &v, ev->t);
        detect_verdict_clear(&v);
        return;
    }
    if (v.response == DETECT_STEP_UP) {
        b->step_ups++;
        step_up(w, e, ev);
    } else if (v.response == DETECT_THROTTLE) {
        b->throttles++;
    } else if (v.response == DETECT_CONTAIN) {
        b->lockouts++;
        if (verbose)
            fprintf(stderr, "false lockout: %s\n", actor);
        detect_release(e, actor);
    }
    if (v.source_response == DETECT_CONTAIN) {
        b->source_blocks++;
        detect_release_source(e, source);
    }
    detect_verdict_clear(&v);
}

/* ---- Days -------------------------------------------------------------------------------- */

static int run_day(sim_world *w, detect_engine *e, sim_attacker *attack,
                   int day, sim_events *today, sim_events *carry,
                   sim_benign *b, unsigned char *active, int verbose)
{
    int64_t day_end = w->start_us + (int64_t)(day + 1) * DAY_US;
    sim_events_sort(today);
    for (size_t i = 0; i < today->n; i++) {
        const sim_event *ev = &today->v[i];
        if (ev->t >= day_end) {
            if (sim_events_push(carry, ev) != 0)
                return -1;
            continue;
        }
        while (attack != NULL && sim_attacker_next(attack) <= ev->t)
            sim_attacker_step(attack, e);
        active[ev->actor] = 1;
        feed_benign(w, e, ev, attack, b, verbose);
    }
    while (attack != NULL && sim_attacker_next(attack) < day_end)
        sim_attacker_step(attack, e);
    return 0;
}

/* The interfaces' busiest 24 hours so far (measured at each day's end). */
static void measure_services(const sim_world *w, detect_engine *e, int day,
                             int peak[SVC_COUNT])
{
    int64_t end = w->start_us + (int64_t)(day + 1) * DAY_US - 1;
    for (int svc = SVC_LAB; svc <= SVC_IMAGING; svc++) {
        detect_actor_info info;
        detect_actor_state(e, w->staff[w->service_staff[svc]].id, end, &info);
        if (info.patients_24h > peak[svc])
            peak[svc] = info.patients_24h;
    }
}

/* After the commissioning week, security renews each interface's
 * declaration at 1.3 x its busiest measured day (the opening day, when
 * every bed is filled at once, left out). */
static int renew_declarations(const sim_world *w, detect_engine *e, int day,
                              const int peak[SVC_COUNT], mv_err *err)
{
    for (int svc = SVC_LAB; svc <= SVC_IMAGING; svc++)
        if (detect_declare_bulk(e, w->staff[w->service_staff[svc]].id,
                                (int64_t)(1.3 * peak[svc]) + 20,
                                w->start_us + (int64_t)(day + 3650) * DAY_US,
                                "sec-renewal", err) != 0)
            return -1;
    return 0;
}

int sim_run(sim_world *w, detect_engine *e, sim_attacker *attack, int days,
            sim_benign *b, int verbose, mv_err *err)
{
    int peak[SVC_COUNT] = { 0 };
    sim_events today = { 0 }, carry = { 0 };
    unsigned char *active = mv_calloc((size_t)w->n_staff, 1, err);
    if (active == NULL)
        return -1;
    int rc = 0;
    for (int day = 0; day < days && rc == 0; day++) {
        sim_world_admissions(w, day);
        sim_events t = today;
        today = carry;            /* last night's shifts go on this morning */
        carry = t;
        carry.n = 0;
        memset(active, 0, (size_t)w->n_staff);
        if (day == COMMISSION_DAYS)
            rc = renew_declarations(w, e, day, peak, err);
        if (rc == 0)
            rc = sim_day_generate(w, day, &today);
        if (rc == 0)
            rc = run_day(w, e, attack, day, &today, &carry, b, active, verbose);
        today.n = 0;
        if (day >= 1 && day < COMMISSION_DAYS)   /* not the opening day's rush */
            measure_services(w, e, day, peak);
        for (int s = 0; s < w->n_staff; s++)
            b->user_days += active[s];
    }
    free(active);
    sim_events_free(&today);
    sim_events_free(&carry);
    if (rc != 0)
        return mv_fail(err, MV_E_NOMEM, "simulate: out of memory");
    return 0;
}
