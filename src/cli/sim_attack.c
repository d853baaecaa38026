/*
 * sim_attack.c -- the attacks of issue 5, as agents that act in simulated
 * time against the real detector and react to its verdicts.
 *
 * Why it exists: a detector's figures mean something only against an
 * attacker who behaves like one.  Each agent asks detect_gate() before a
 * request (as the server does), uses the page size detect_max_page() allows,
 * waits out a throttle (Retry-After), and answers a step-up: every data
 * attacker here holds the victim's second factor too (the worst case: a
 * phished TOTP seed, a service's credentials from its configuration file),
 * so only containment stops it.  Decoys are left out of the other scenarios'
 * targets (the attacker is lucky), so each row measures its own signal.
 * What counts as exposed: every distinct patient whose data a released
 * response carried.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_US    1000000LL
#define MIN_US  (60 * S_US)
#define HOUR_US (60 * MIN_US)
#define DAY_US  (24 * HOUR_US)
#define MAX_PAGE 100
#define TOTP_GUESS_P 3e-6          /* a random code in a +-1 step window      */
#define CREW_MAX 10                /* stolen accounts of the spread attack     */
#define SLOW_DAYS 6                /* the patient attacks' days                */

static const sim_scenario_info scenarios[SC_COUNT] = {
    [SC_BTG_SPREE] = { "btg-spree",
        "stolen clinician credentials: break-the-glass on one patient after another",
        "contained at <= 10 patients" },
    [SC_BULK_SERVICE] = { "bulk-service",
        "stolen laboratory interface account: paged searches as fast as it can",
        "contained at <= 20 patients" },
    [SC_BULK_EVERYTHING] = { "bulk-everything",
        "the same through Patient/$everything, one patient per request",
        "contained at <= 20 patients" },
    [SC_BULK_NEW_ACCOUNT] = { "bulk-new-account",
        "a service account created today (no baseline) reading out",
        "contained at <= 20 patients" },
    [SC_SLOW_READOUT] = { "slow-readout",
        "stolen laboratory interface reading 40% above its usual rate for 24 h",
        "detected before 500 patients" },
    [SC_SLOW_CAREFUL] = { "slow-readout-careful",
        "the same, reading only patients with an active encounter (explained)",
        "detected before 500 patients" },
    [SC_DECOY] = { "decoy",
        "stolen nurse credentials: two ward patients, then a decoy",
        "contained at the first decoy read" },
    [SC_SPRAYING] = { "spraying",
        "two common passwords on every account from 16 addresses",
        "no account obtained" },
    [SC_STUFFING] = { "stuffing",
        "leaked credential pairs for half the staff from 200 addresses",
        "no account obtained" },
    [SC_SNOOP_VIP] = { "snoop-vip",
        "an insider breaks the glass on a VIP patient",
        "alert at the first read" },
    [SC_SNOOP_RELATIVE] = { "snoop-relative",
        "an insider breaks the glass on a patient with its family name",
        "alert at the first read" },
    [SC_SPREAD] = { "spread",
        "10 stolen clinician accounts from 10 addresses, each kept under its own "
        "limits (4 unexplained patients a day), for 6 days",
        "<= 30 patients across all accounts" },
    [SC_WORKLIST] = { "worklist",
        "a busy worklist session (a report every 5 min, explained) reading 4 "
        "patients a day outside its list, for 6 days",
        "contained before 20 patients outside the list" },
};

const sim_scenario_info *sim_scenario_get(sim_scenario s)
{
    return s < SC_COUNT ? &scenarios[s] : NULL;
}

int sim_scenario_parse(const char *name, sim_scenario *out)
{
    for (int i = 0; i < SC_COUNT; i++)
        if (strcmp(scenarios[i].name, name) == 0) {
            *out = (sim_scenario)i;
            return 0;
        }
    return -1;
}

enum request { REQ_READ, REQ_PAGE, REQ_EVERYTHING, REQ_LOGIN };

struct sim_attacker {
    const sim_world *w;
    sim_scenario sc;
    sim_rng r;
    int64_t start_us, next_us, end_us;
    char actor[32], session[32], source[16];
    const char *role;
    int victim;                /* staff index, -1 for a new account        */
    enum request req;
    double gap_s;              /* mean seconds between requests            */
    int poisson;
    int *targets, n_targets, cursor;
    int decoy_at;              /* position of the decoy in targets, -1     */
    unsigned char *exposed;
    sim_outcome o;
    int finished;
    /* authentication attacks */
    int *accounts, n_accounts, account, password, passwords;
    double right_p;
    unsigned char *right;      /* per staff: this password is right         */
    int n_sources, src, per_source, on_source, totp_left, totp_tries;
    int verbose;
    /* several stolen accounts (spread), taken in turn */
    int crew[CREW_MAX], n_crew, turn, current;
    unsigned char crew_out[CREW_MAX];
    /* a worklist session: its explained work between the outside reads */
    unsigned char *on_list;    /* per target: part of the worklist          */
    int outside_every;
};

void sim_attacker_verbose(sim_attacker *a, int verbose)
{
    a->verbose = verbose;
}

static void trace(const sim_attacker *a, int64_t now, const detect_event *ev,
                  const detect_verdict *v)
{
    if (!a->verbose)
        return;
    fprintf(stderr, "attack +%.0fs %s %s n=%zu -> %s (score %.0f, retry %lld)%s\n",
            (now - a->start_us) / 1e6, ev->actor, ev->action, ev->n_patients,
            detect_response_name(v->response), v->score,
            (long long)v->retry_after_s, v->n_alerts ? " ALERT" : "");
    for (size_t i = 0; i < v->n_alerts; i++)
        fprintf(stderr, "    %s\n", v->alerts[i].explanation);
}

/* ---- Choosing victims and targets ---------------------------------------------------- */

static int pick_staff(const sim_world *w, sim_rng *r, int role, int ward)
{
    int off = sim_below(r, w->n_staff);
    for (int i = 0; i < w->n_staff; i++) {
        int s = (i + off) % w->n_staff;
        if (w->staff[s].role == role && (!ward || w->staff[s].dept != 0))
            return s;
    }
    return -1;
}

static int has_relative(const sim_world *w, int s)
{
    for (int p = 0; p < w->n_real; p++)
        if (w->patients[p].family == w->staff[s].family)
            return 1;
    return 0;
}

static int pick_relative_victim(const sim_world *w, sim_rng *r)
{
    int off = sim_below(r, w->n_staff);
    for (int i = 0; i < w->n_staff; i++) {
        int s = (i + off) % w->n_staff;
        if (w->staff[s].role == SIM_CLINICIAN && w->staff[s].dept != 0 &&
            has_relative(w, s))
            return s;
    }
    return pick_staff(w, r, SIM_CLINICIAN, 1);
}

static int add_target(sim_attacker *a, int p)
{
    int *t = realloc(a->targets, (size_t)(a->n_targets + 1) * sizeof *t);
    if (t == NULL)
        return -1;
    a->targets = t;
    a->targets[a->n_targets++] = p;
    return 0;
}

/* Everything the store holds, in the order a search pages, decoys left out. */
static int targets_everything(sim_attacker *a)
{
    for (int i = 0; i < a->w->n_patients; i++) {
        int p = a->w->store_order[i];
        if (!a->w->patients[p].decoy && add_target(a, p) != 0)
            return -1;
    }
    return 0;
}

/* Patients the victim has no care relationship with, matching want(). */
static int targets_unrelated(sim_attacker *a, int max, int (*want)(const sim_world *, int, int))
{
    int off = sim_below(&a->r, a->w->n_real);
    for (int i = 0; i < a->w->n_real && a->n_targets < max; i++) {
        int p = (i + off) % a->w->n_real;
        if (!sim_cares_for(a->w, a->victim, p) && want(a->w, a->victim, p) &&
            add_target(a, p) != 0)
            return -1;
    }
    return 0;
}

static int any_patient(const sim_world *w, int s, int p)
{
    (void)w; (void)s; (void)p;
    return 1;
}

static int vip_patient(const sim_world *w, int s, int p)
{
    (void)s;
    return w->patients[p].vip;
}

static int relative_patient(const sim_world *w, int s, int p)
{
    return w->patients[p].family == w->staff[s].family;
}

/* Patients nobody cares for today (not admitted), from a random start. */
static int targets_outpatients(sim_attacker *a, int max)
{
    int off = sim_below(&a->r, a->w->n_real);
    for (int i = 0; i < a->w->n_real && a->n_targets < max; i++) {
        int p = (i + off) % a->w->n_real;
        if (a->w->patients[p].dept < 0 && add_target(a, p) != 0)
            return -1;
    }
    return 0;
}

/* The worklist session: outside_every-1 patients of its list (explained by
 * their orders), then one outside it, over and over. */
static int targets_worklist(sim_attacker *a, int max)
{
    if (targets_outpatients(a, max) != 0)
        return -1;
    a->on_list = calloc((size_t)a->n_targets + 1, 1);
    if (a->on_list == NULL)
        return -1;
    for (int i = 0; i < a->n_targets; i++)
        a->on_list[i] = (unsigned char)((i + 1) % a->outside_every != 0);
    return 0;
}

/* Two patients of the nurse's ward (she cares for them), then a decoy. */
static int targets_decoy(sim_attacker *a)
{
    const sim_world *w = a->w;
    for (int i = 0; i < w->n_admitted && a->n_targets < 2; i++)
        if (sim_cares_for(w, a->victim, w->admitted[i]) &&
            add_target(a, w->admitted[i]) != 0)
            return -1;
    a->decoy_at = a->n_targets;
    return add_target(a, w->n_real + sim_below(&a->r, w->n_decoys));
}

/* ---- Setting up ------------------------------------------------------------------------ */

static void as_staff(sim_attacker *a, int s, const char *source)
{
    static const char *const roles[] = { "clinician", "nurse", "admin", "security",
                                         "service" };
    a->victim = s;
    snprintf(a->actor, sizeof a->actor, "%s", a->w->staff[s].id);
    a->role = roles[a->w->staff[s].role];
    snprintf(a->source, sizeof a->source, "%s", source);
}

/* Ten ward clinicians, each used from its own address. */
static void setup_crew(sim_attacker *a)
{
    const sim_world *w = a->w;
    for (int s = 0; s < w->n_staff && a->n_crew < CREW_MAX; s++)
        if (w->staff[s].role == SIM_CLINICIAN && w->staff[s].dept != 0)
            a->crew[a->n_crew++] = s;
    a->current = 0;
    as_staff(a, a->crew[0], "10.97.0.10");
}

/* The next stolen account still usable, its address and session. */
static void next_crew(sim_attacker *a)
{
    for (int i = 0; i < a->n_crew; i++) {
        int k = (a->turn + i) % a->n_crew;
        if (a->crew_out[k])
            continue;
        a->turn = k + 1;
        a->current = k;
        char src[24];
        snprintf(src, sizeof src, "10.97.0.%d", 10 + (k & 0xff));
        as_staff(a, a->crew[k], src);
        snprintf(a->session, sizeof a->session, "s-attack-spread-%d", k);
        return;
    }
}

static void setup_data(sim_attacker *a)
{
    const sim_world *w = a->w;
    int64_t day0 = a->start_us;
    a->start_us = day0 + 10 * HOUR_US;
    a->req = REQ_READ;
    a->gap_s = 15;
    switch (a->sc) {
    case SC_BTG_SPREE:
        as_staff(a, pick_staff(w, &a->r, SIM_CLINICIAN, 1), "10.99.0.23");
        break;
    case SC_BULK_SERVICE:
    case SC_BULK_EVERYTHING:
        as_staff(a, w->service_staff[SVC_LAB], "10.200.0.11");
        a->req = a->sc == SC_BULK_SERVICE ? REQ_PAGE : REQ_EVERYTHING;
        a->gap_s = a->sc == SC_BULK_SERVICE ? 0.25 : 0.1;
        break;
    case SC_BULK_NEW_ACCOUNT:
        a->victim = -1;
        snprintf(a->actor, sizeof a->actor, "svc-new-integration");
        a->role = "service";
        snprintf(a->source, sizeof a->source, "10.200.0.50");
        a->req = REQ_PAGE;
        a->gap_s = 0.25;
        break;
    case SC_SLOW_READOUT:
    case SC_SLOW_CAREFUL:
        as_staff(a, w->service_staff[SVC_LAB], "10.200.0.11");
        a->start_us = day0;
        /* 40% of the interface's usual volume (3 opened patients per
         * in-patient a day), spread over the day. */
        a->gap_s = 86400.0 / (0.4 * 3 * (w->n_real / 8));
        a->poisson = 1;
        break;
    case SC_DECOY:
        as_staff(a, pick_staff(w, &a->r, SIM_NURSE, 1), "10.99.0.57");
        a->gap_s = 20;
        break;
    case SC_SNOOP_VIP:
        as_staff(a, pick_staff(w, &a->r, SIM_CLINICIAN, 1), "");
        break;
    case SC_SNOOP_RELATIVE:
        as_staff(a, pick_relative_victim(w, &a->r), "");
        break;
    case SC_SPREAD:
        setup_crew(a);
        a->gap_s = 86400.0 / (4.0 * a->n_crew);     /* 4 a day per account */
        break;
    case SC_WORKLIST:
        as_staff(a, pick_staff(w, &a->r, SIM_CLINICIAN, 1), "10.98.0.40");
        a->gap_s = 300;                               /* 288 reads a day     */
        a->outside_every = 72;                        /* 4 of them outside   */
        break;
    default:
        break;
    }
    if (a->sc == SC_SPREAD || a->sc == SC_WORKLIST) {   /* patient: days */
        a->start_us = day0 - (int64_t)(SLOW_DAYS - 1) * DAY_US;
        if (a->start_us < a->w->start_us)
            a->start_us = a->w->start_us;
        a->end_us = a->start_us + SLOW_DAYS * DAY_US;
    }
    if (a->source[0] == '\0' && a->victim >= 0)   /* the insider's own desk */
        snprintf(a->source, sizeof a->source, "10.%d.0.77", w->staff[a->victim].ip_net);
    if (a->sc == SC_SNOOP_VIP || a->sc == SC_SNOOP_RELATIVE)
        a->start_us = day0 + 11 * HOUR_US;
    if (a->sc != SC_SPREAD)
        snprintf(a->session, sizeof a->session, "s-attack-%d", (int)a->sc);
}

static int build_targets(sim_attacker *a)
{
    switch (a->sc) {
    case SC_BTG_SPREE:       return targets_unrelated(a, 300, any_patient);
    case SC_DECOY:           return targets_decoy(a);
    case SC_SNOOP_VIP:       return targets_unrelated(a, 1, vip_patient);
    case SC_SNOOP_RELATIVE:  return targets_unrelated(a, 1, relative_patient);
    case SC_SLOW_CAREFUL:    return 0;      /* chosen one at a time */
    case SC_SPREAD:          return targets_outpatients(a, 2000);
    case SC_WORKLIST:        return targets_worklist(a, 2000);
    default:                 return targets_everything(a);
    }
}

static int setup_auth(sim_attacker *a, mv_err *err)
{
    const sim_world *w = a->w;
    a->req = REQ_LOGIN;
    a->start_us += 3 * HOUR_US;
    a->victim = -1;
    a->accounts = mv_calloc((size_t)w->n_staff, sizeof(int), err);
    a->right = mv_calloc((size_t)w->n_staff, 1, err);
    if (a->accounts == NULL || a->right == NULL)
        return -1;
    int stuffing = a->sc == SC_STUFFING;
    for (int s = 0; s < w->n_staff; s++) {
        if (w->staff[s].role == SIM_SERVICE || (stuffing && !sim_chance(&a->r, 0.5)))
            continue;
        a->accounts[a->n_accounts++] = s;
        /* passwdqc refuses common passwords, so spraying finds few; reused
         * passwords from other breaches are right more often. */
        a->right[s] = (unsigned char)sim_chance(&a->r, stuffing ? 0.08 : 0.01);
    }
    a->passwords = stuffing ? 1 : 2;
    a->n_sources = stuffing ? 200 : 16;
    a->per_source = stuffing ? 3 : 1000000;
    a->gap_s = stuffing ? 1 : 2;
    a->totp_tries = stuffing ? 3 : 10;
    a->o.auth = 1;
    return 0;
}

sim_attacker *sim_attacker_new(const sim_world *w, sim_scenario s, int day,
                               mv_err *err)
{
    sim_attacker *a = mv_calloc(1, sizeof *a, err);
    if (a == NULL)
        return NULL;
    a->w = w;
    a->sc = s;
    a->decoy_at = -1;
    sim_rng_init(&a->r, w->cfg.seed, 100 + (uint64_t)s, (uint64_t)day);
    a->start_us = w->start_us + (int64_t)day * DAY_US;
    a->end_us = a->start_us + DAY_US;
    a->exposed = mv_calloc((size_t)w->n_patients, 1, err);
    int rc = a->exposed == NULL ? -1
           : s == SC_SPRAYING || s == SC_STUFFING ? setup_auth(a, err) : 0;
    if (rc == 0 && !a->o.auth)
        setup_data(a);
    if (rc != 0) {
        sim_attacker_free(a);
        return NULL;
    }
    a->next_us = a->start_us;
    return a;
}

void sim_attacker_free(sim_attacker *a)
{
    if (a == NULL)
        return;
    free(a->targets);
    free(a->exposed);
    free(a->accounts);
    free(a->right);
    free(a->on_list);
    free(a);
}

int64_t sim_attacker_next(const sim_attacker *a)
{
    return a->finished ? INT64_MAX : a->next_us;
}

/* ---- Acting ------------------------------------------------------------------------------ */

static void finish(sim_attacker *a)
{
    a->finished = 1;
}

static void schedule(sim_attacker *a, int64_t now)
{
    double gap = a->poisson ? sim_exp(&a->r, a->gap_s) : a->gap_s;
    a->next_us = now + (int64_t)(gap * S_US) + 1;
    if (a->next_us >= a->end_us)
        finish(a);
}

static void contained(sim_attacker *a, int64_t now, unsigned detectors)
{
    if (a->n_crew > 0) {          /* one stolen account lost; the others go on */
        a->crew_out[a->current] = 1;
        int left = 0;
        for (int k = 0; k < a->n_crew; k++)
            left += !a->crew_out[k];
        if (left > 0)
            return;
    }
    if (!a->o.contained) {
        a->o.contained = 1;
        a->o.contain_after_us = now - a->start_us;
        a->o.contain_detectors = detectors;
    }
    finish(a);
}

static int stolen(const sim_attacker *a, const char *actor)
{
    for (int k = 0; k < a->n_crew; k++)
        if (!a->crew_out[k] && strcmp(a->w->staff[a->crew[k]].id, actor) == 0)
            return 1;
    return a->n_crew == 0 && strcmp(actor, a->actor) == 0;
}

static void note_alerts(sim_attacker *a, const detect_verdict *v, int64_t now)
{
    for (size_t i = 0; i < v->n_alerts && !a->o.alerted; i++) {
        const detect_alert *al = &v->alerts[i];
        if (!a->o.auth && !stolen(a, al->actor))
            continue;
        a->o.alerted = 1;
        a->o.alert_after_us = now - a->start_us;
        a->o.exposed_at_alert = a->o.exposed;
        a->o.alert_detectors = al->detectors;
    }
}

void sim_attacker_saw(sim_attacker *a, const char *actor, const detect_verdict *v,
                      int64_t now)
{
    if (a->finished || a->o.auth || now < a->start_us || !stolen(a, actor))
        return;
    if (a->n_crew > 0)                /* the owner's own request, this account */
        for (int k = 0; k < a->n_crew; k++)
            if (strcmp(a->w->staff[a->crew[k]].id, actor) == 0)
                a->current = k;
    note_alerts(a, v, now);
    if (v->response == DETECT_CONTAIN)
        contained(a, now, v->detectors);
}

static void observe_step_up(sim_attacker *a, detect_engine *e, int64_t now)
{
    detect_event ev = { .time_us = now, .actor = a->actor, .role = a->role,
                        .session = a->session, .source = a->source,
                        .action = "auth.step-up", .outcome = DETECT_GRANTED };
    detect_verdict v;
    detect_observe(e, &ev, DETECT_LIVE, &v, NULL);
    note_alerts(a, &v, now);
    detect_verdict_clear(&v);
}

static unsigned target_flags(const sim_attacker *a, int i)
{
    const sim_patient *p = &a->w->patients[a->targets[i]];
    unsigned f = (p->vip ? DETECT_PAT_VIP : 0) | (p->decoy ? DETECT_PAT_DECOY : 0);
    if (a->on_list != NULL && a->on_list[i])
        return f | DETECT_PAT_EXPLAINED;    /* its orders explain its worklist */
    if (a->victim >= 0 && a->w->staff[a->victim].role != SIM_SERVICE) {
        if (p->family == a->w->staff[a->victim].family)
            f |= DETECT_PAT_SAME_FAMILY;
        f |= sim_cares_for(a->w, a->victim, a->targets[i]) ? DETECT_PAT_EXPLAINED
                                                           : DETECT_PAT_BTG;
    } else if (p->dept >= 0) {
        f |= DETECT_PAT_EXPLAINED;     /* services: an active encounter or order */
    }
    return f;
}

/* The next request: its patients from the cursor on. */
static void build_request(sim_attacker *a, detect_engine *e, int64_t now,
                          detect_event *ev, detect_patient *pats)
{
    static const char *const actions[] = { "fhir.read", "fhir.search",
                                           "fhir.everything", "auth.login" };
    int n = 1;
    memset(ev, 0, sizeof *ev);
    if (a->req == REQ_PAGE) {
        n = detect_max_page(e, a->actor, now);
        ev->page_size = n;
        ev->page_index = a->cursor / (n > 0 ? n : 1);
        ev->flags = DETECT_EV_BROAD_SEARCH;
    }
    if (n > a->n_targets - a->cursor)
        n = a->n_targets - a->cursor;
    for (int i = 0; i < n; i++) {
        pats[i].id = a->w->patients[a->targets[a->cursor + i]].id;
        pats[i].flags = target_flags(a, a->cursor + i);
    }
    ev->time_us = now;
    ev->actor = a->actor;
    ev->role = a->role;
    ev->session = a->session;
    ev->source = a->source;
    ev->action = actions[a->req];
    ev->outcome = DETECT_GRANTED;
    ev->resource_type = "Patient";
    ev->patients = pats;
    ev->n_patients = n > 0 ? (size_t)n : 0;
}

static void released(sim_attacker *a, const detect_event *ev)
{
    for (size_t i = 0; i < ev->n_patients; i++) {
        int p = a->targets[a->cursor + (int)i];
        if (a->on_list != NULL && a->on_list[a->cursor + (int)i])
            continue;                  /* its own work, not what it stole */
        if (!a->exposed[p]) {
            a->exposed[p] = 1;
            a->o.exposed++;
            a->o.decoys_released += a->w->patients[p].decoy;
        }
    }
    a->cursor += (int)ev->n_patients;
}

/* The careful reader: an in-patient it has not read yet. */
static int next_inpatient(sim_attacker *a)
{
    const sim_world *w = a->w;
    for (int tries = 0; tries < 50 && w->n_admitted > 0; tries++) {
        int p = w->admitted[sim_below(&a->r, w->n_admitted)];
        if (!a->exposed[p])
            return add_target(a, p) == 0 ? 1 : -1;
    }
    return 0;
}

static void data_step(sim_attacker *a, detect_engine *e, int64_t now)
{
    if (a->targets == NULL && a->sc != SC_SLOW_CAREFUL && build_targets(a) != 0) {
        finish(a);
        return;
    }
    if (a->sc == SC_SLOW_CAREFUL && a->cursor >= a->n_targets &&
        next_inpatient(a) != 1) {
        finish(a);
        return;
    }
    if (a->n_crew > 0)
        next_crew(a);
    int64_t retry;
    detect_response gate = detect_gate(e, a->actor, a->source, now, &retry);
    if (gate == DETECT_CONTAIN) {
        contained(a, now, 0);
        if (a->n_crew > 0 && !a->finished)
            schedule(a, now);
        return;
    }
    if (gate == DETECT_THROTTLE) {
        a->next_us = now + retry * S_US;
        return;
    }
    if (gate == DETECT_STEP_UP)
        observe_step_up(a, e, now);
    detect_event ev;
    detect_patient pats[MAX_PAGE];
    build_request(a, e, now, &ev, pats);
    detect_verdict v;
    detect_observe(e, &ev, DETECT_LIVE, &v, NULL);
    note_alerts(a, &v, now);
    trace(a, now, &ev, &v);
    if (v.response <= DETECT_ALERT)
        released(a, &ev);
    else if (v.response == DETECT_CONTAIN)
        contained(a, now, v.detectors);
    if (v.response == DETECT_STEP_UP)
        observe_step_up(a, e, now);     /* and asks again */
    if (v.response == DETECT_THROTTLE)
        a->next_us = now + v.retry_after_s * S_US;
    else
        schedule(a, now);
    detect_verdict_clear(&v);
    if (a->sc != SC_SLOW_CAREFUL && a->cursor >= a->n_targets)
        finish(a);
}

/* ---- Authentication attacks ------------------------------------------------------------------ */

static void source_text(const sim_attacker *a, char out[16])
{
    if (a->sc == SC_STUFFING)
        sim_ip_text(sim_ip(198, 18, a->src / 250, 1 + a->src % 250), out);
    else
        sim_ip_text(sim_ip(198, 51, 100, 1 + a->src), out);
}

static void next_source(sim_attacker *a)
{
    a->src++;
    a->on_source = 0;
    if (a->src >= a->n_sources)
        finish(a);
}

static void next_account(sim_attacker *a)
{
    a->totp_left = 0;
    if (++a->password >= a->passwords) {
        a->password = 0;
        a->account++;
    }
    if (a->account >= a->n_accounts)
        finish(a);
}

/* One login attempt: a password, or (after a right one) a TOTP guess. */
static void auth_step(sim_attacker *a, detect_engine *e, int64_t now)
{
    int s = a->accounts[a->account];
    const char *actor = a->w->staff[s].id;
    source_text(a, a->source);
    int64_t retry;
    detect_response gate = detect_gate(e, actor, a->source, now, &retry);
    detect_response src_gate = detect_gate(e, NULL, a->source, now, &retry);
    schedule(a, now);
    if (src_gate >= DETECT_THROTTLE) {
        next_source(a);                   /* blocked: move to another address */
        return;
    }
    if (gate >= DETECT_THROTTLE) {         /* the account is locked or slowed */
        next_account(a);
        return;
    }
    int right = a->totp_left > 0 || (a->password == 0 && a->right[s]);
    int in = right && sim_chance(&a->r, TOTP_GUESS_P);
    detect_event ev = { .time_us = now, .actor = actor, .role = NULL,
                        .source = a->source,
                        .action = right && !in ? "auth.login.second-factor-wrong"
                                               : "auth.login",
                        .outcome = in ? DETECT_GRANTED : DETECT_FAILED };
    detect_verdict v;
    detect_observe(e, &ev, DETECT_LIVE, &v, NULL);
    note_alerts(a, &v, now);
    trace(a, now, &ev, &v);
    a->o.attempts++;
    if (right && a->totp_left == 0) {
        a->o.passwords_right++;
        a->totp_left = a->totp_tries + 1;
    }
    if (in)
        a->o.yielded++;
    if (a->totp_left > 0 && --a->totp_left > 0 && !in && v.response < DETECT_THROTTLE) {
        /* try another code on the same account */
    } else {
        next_account(a);
    }
    if (v.source_response >= DETECT_THROTTLE || ++a->on_source >= a->per_source)
        next_source(a);
    detect_verdict_clear(&v);
    if (a->finished && a->src >= a->n_sources)
        contained(a, now, DETECT_SIG_AUTH);
}

void sim_attacker_step(sim_attacker *a, detect_engine *e)
{
    if (a->finished)
        return;
    int64_t now = a->next_us;
    if (a->o.auth)
        auth_step(a, e, now);
    else
        data_step(a, e, now);
}

/* ---- Judging ------------------------------------------------------------------------------------ */

void sim_attacker_outcome(const sim_attacker *a, sim_outcome *out)
{
    *out = a->o;
    out->sources_used = a->o.auth ? (a->src < a->n_sources ? a->src + 1 : a->n_sources) : 0;
    switch (a->sc) {
    case SC_BTG_SPREE:
        out->met = out->contained && out->exposed <= 10;
        break;
    case SC_BULK_SERVICE: case SC_BULK_EVERYTHING: case SC_BULK_NEW_ACCOUNT:
        out->met = out->contained && out->exposed <= 20;
        break;
    case SC_SLOW_READOUT: case SC_SLOW_CAREFUL:
        out->met = out->alerted && out->exposed_at_alert < 500;
        break;
    case SC_SPREAD:
        out->met = out->exposed <= 30;
        break;
    case SC_WORKLIST:
        out->met = out->contained && out->exposed < 20;
        break;
    case SC_DECOY:
        out->met = out->contained && out->decoys_released == 0 &&
                   a->cursor == a->decoy_at;
        break;
    case SC_SPRAYING: case SC_STUFFING:
        out->met = out->yielded == 0;
        break;
    default:
        out->met = out->alerted && out->exposed_at_alert == 0;
        break;
    }
}
