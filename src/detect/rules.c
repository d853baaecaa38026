/*
 * rules.c -- the seven signals of issue 5 as points, and how points combine
 * into one score.
 *
 * Why it exists: every signal must be explainable in plain words, so each
 * one is a small table of thresholds mapped to points on one scale (the
 * ladder: 40 alert, 60 step-up, 75 throttle, 90 contain by default), and
 * rules_score() records which sub-rule decided (facts->why).  Points
 * combine as p1 + p2/2 + p3/4 + ... (sorted, capped at 100): one strong
 * signal decides alone, several weak ones add up, and a weak signal repeated
 * in many forms cannot climb forever.
 *
 * Points per signal (defaults of detect_config):
 *   volume        over the limit 45, +25% 65, x1.5 80, x2 or over the 5-minute
 *                 hard cap 95; declared: over the declared volume 45,
 *                 x1.25 65, x1.5 95 (and its learned short windows).  A care
 *                 giver (clinician, nurse) is held to the limits on the
 *                 patients its care relationships do not explain; its own
 *                 patients only beyond ten times the limit, and then at most
 *                 an alert for review.  A week's distinct patients (7 days),
 *                 and a month's (29-35 days, against three weeks' limits):
 *                 over 80% of its limit 45, over it 65, x1.25 80, x2 95;
 *                 learned limits never pass their ceilings and grow at most
 *                 25% a day (actor.c)
 *   relationship  one unexplained / break-the-glass patient this hour 20,
 *                 3 45, 4 65, 6 80, 8 95; in 24 hours 5 45, 7 65, 10 95;
 *                 a care giver's week 8 45, 11 65, 14 80, 18 95, its month
 *                 16 45, 22 65, 28 80, 36 95; while
 *                 the hospital's unexplained patients are far above usual
 *                 (hospital.c), an account's next one 65, its second of
 *                 the day 80, its third 95
 *                 (services too: no active encounter or order; not declared
 *                 actors, whose declaration is the explanation)
 *   enumeration   6 refusals in 5 min 45, 13 65, 20 95; 30 searches 45 (90
 *                 for a service); 5 broad searches 45; 3 maximal pages 30;
 *                 deep paging 40; $everything on 5 patients in an hour 45,
 *                 10 75, 15 95 (declared actors: refusals and $everything
 *                 only)
 *   decoy         any touch 100
 *   context       outside a service's networks 80; sessions live from
 *                 several networks, one new to the account, 30 (10 when the
 *                 hospital knows that network); a new network 15 (5);
 *                 off-hours 10 -- combined like the signals
 *   auth          right password + wrong TOTP: 25, twice in a row 35, from
 *                 a network nobody uses 45, 3 times 75, 5 times 95 (and an
 *                 alert when no login follows within 10 minutes, engine.c);
 *                 5 failures on the account in 15 min 45
 *   patient       unexplained VIP 50; same family name 50 (15 explained);
 *                 own record 50; many unexplained actors on one VIP 30 / 45
 *   model         45 x CUSUM / h from h/2 on, at most 80 below 3h, 95 above;
 *                 at most 30 while the actor is measured by its role's rhythm;
 *                 a declared actor once learned, at most an alert
 *
 * The ladder then escalates in engine.c: a step-up done within 15 minutes
 * waives a step-up, and for the rest of an 8-hour shift one for the same
 * detectors, in that session; an actor throttled in the last hour that comes back at
 * step-up level or above is contained.
 */
#include "detect_internal.h"

#include <string.h>

enum { IX_VOLUME, IX_RELATIONSHIP, IX_ENUMERATION, IX_DECOY, IX_CONTEXT,
       IX_AUTH, IX_PATIENT, IX_MODEL };

static void raise_to(detect_facts *f, int ix, double pts, const char *why)
{
    if (pts > f->points[ix]) {
        f->points[ix] = pts;
        f->why[ix] = why;
    }
}

/* ---- 1. volume ------------------------------------------------------------------- */

static int care_giver(const detect_facts *f)
{
    return f->role == ROLE_CLINICIAN || f->role == ROLE_NURSE;
}

static double window_points(int count, int limit, int hard_cap, int w)
{
    if (w == WIN_5M && hard_cap > 0 && count > hard_cap)
        return 95;
    if (count > 2 * limit)
        return 95;
    if (count * 2 > 3 * limit)
        return 80;
    int quarter = limit / 4 > 2 ? limit / 4 : 2;
    if (count > limit + quarter)
        return 65;
    if (count > limit)
        return 45;
    return 0;
}

/* A reach over days against its limit: 80% alerts, beyond it steps up,
 * x1.25 throttles, x2 contains. */
static double reach_points(int n, int limit)
{
    return n > 2 * limit ? 95 : 4 * n > 5 * limit ? 80 : n > limit ? 65
         : 5 * n > 4 * limit ? 45 : 0;
}

static void score_volume(const detect_config *c, detect_facts *f)
{
    int windows = WIN_COUNT;
    if (f->declared) {
        int64_t n = f->sums.patients[WIN_24H], d = f->declared_per_day;
        double pts = 2 * n > 3 * d ? 95 : 4 * n > 5 * d ? 65 : n > d ? 45 : 0;
        f->volume_window = WIN_24H;
        raise_to(f, IX_VOLUME, pts, "beyond the declared volume");
        if (!f->has_baseline)
            return;
        windows = WIN_24H;    /* its learned short windows still hold */
    }
    for (int w = 0; w < windows; w++) {
        double pts = window_points(f->sums.patients[w], f->limits[w],
                                   f->declared ? 0 : c->hard_cap_5m, w);
        if (pts > f->points[IX_VOLUME])
            f->volume_window = w;
        raise_to(f, IX_VOLUME, pts, care_giver(f) ? "patients without care relationship "
                 "over the limit" : "distinct patients over the limit");
    }
    /* The week's reach: a read-out paced over days, or ratcheted up a
     * little more each day, still adds up to patients. */
    int wk = f->sums.week, wl = f->week_limit;
    if (wl > 0 && !f->declared)
        raise_to(f, IX_VOLUME, reach_points(wk, wl), "distinct patients in a week "
                 "beyond what the account needs");
    int mo = f->sums.month, ml = f->month_limit;
    if (ml > 0 && !f->declared)
        raise_to(f, IX_VOLUME, reach_points(mo, ml), "distinct patients in a month "
                 "beyond what the account needs");
    if (!care_giver(f))
        return;
    /* Its own patients: many more than its limit in an hour or a day are
     * reviewed, never refused (the alert is released with the answer); a
     * census listing a whole department at once is one act, not a rate. */
    for (int w = WIN_1H; w < WIN_COUNT; w++) {
        double pts = window_points(f->sums.seen[w], EXPLAINED_SHARE * f->limits[w], 0, w);
        pts = pts > c->score_alert ? c->score_alert : pts;
        if (pts > f->points[IX_VOLUME])
            f->volume_window = w;
        raise_to(f, IX_VOLUME, pts, "many of its own patients (for review)");
    }
}

/* ---- 2. relationship ------------------------------------------------------------- */

static void score_relationship(const detect_config *c, detect_facts *f)
{
    if (f->role == ROLE_PATIENT || f->declared)
        return;     /* a declaration is the explanation of bulk access */
    int r1 = f->sums.relation_1h, r24 = f->sums.relation_24h;
    int mid = (c->btg_step_up_1h + c->btg_contain_1h) / 2;
    double pts = r1 >= c->btg_contain_1h ? 95 : r1 >= mid ? 80
               : r1 >= c->btg_step_up_1h ? 65 : r1 >= c->btg_alert_1h ? 45
               : r1 >= 1 ? 20 : 0;
    raise_to(f, IX_RELATIONSHIP, pts, "patients without care relationship in an hour");
    int contain_24h = 2 * c->btg_alert_24h, mid_24h = (c->btg_alert_24h + contain_24h) / 2;
    pts = r24 >= contain_24h ? 95 : r24 >= mid_24h ? 65
        : r24 >= c->btg_alert_24h ? 45 : 0;
    raise_to(f, IX_RELATIONSHIP, pts, "patients without care relationship in a day");
    /* A care giver's week counts only the patients its care does not
     * explain (actor.c): a few a day, every day, is a read-out too. */
    if (care_giver(f)) {
        int wk = f->sums.week, mo = f->sums.month, a = c->btg_alert_24h;
        pts = wk >= 3 * a + 3 ? 95 : wk >= 3 * a - 1 ? 80 : wk >= 2 * a + 1 ? 65
            : wk >= a + 3 ? 45 : 0;
        raise_to(f, IX_RELATIONSHIP, pts, "patients without care relationship in a week");
        pts = mo >= 7 * a + 1 ? 95 : mo >= 5 * a + 3 ? 80 : mo >= 4 * a + 2 ? 65
            : mo >= 3 * a + 1 ? 45 : 0;
        raise_to(f, IX_RELATIONSHIP, pts, "patients without care relationship in a month");
    }
    /* Many accounts, each under its own limits: the hospital's wave
     * (hospital.c) costs each account one more patient at most. */
    if (f->hospital.wave && f->touch.new_unexplained > 0) {
        pts = r24 >= 3 ? 95 : r24 >= 2 ? 80 : 65;
        raise_to(f, IX_RELATIONSHIP, pts, "patients without care relationship across the "
                 "hospital far above its usual");
    }
}

/* ---- 3. enumeration -------------------------------------------------------------- */

static void score_enumeration(const detect_config *c, detect_facts *f)
{
    const window_sums *s = &f->sums;
    int mid = (c->denials_alert_5m + c->denials_contain_5m + 1) / 2;
    double pts = s->denials_5m >= c->denials_contain_5m ? 95
               : s->denials_5m >= mid ? 65
               : s->denials_5m >= c->denials_alert_5m ? 45 : 0;
    raise_to(f, IX_ENUMERATION, pts, "refused or missing resources");
    /* $everything patient by patient is nobody's bulk reading: a declared
     * reader pages through searches (and exports) */
    pts = s->everything_1h >= 3 * c->everything_alert_1h ? 95
        : s->everything_1h >= 2 * c->everything_alert_1h ? 75
        : s->everything_1h >= c->everything_alert_1h ? 45 : 0;
    raise_to(f, IX_ENUMERATION, pts, "$everything on many patients");
    if (f->declared)
        return;    /* a declared bulk reader pages through broad searches */
    int search_limit = f->role == ROLE_SERVICE ? 3 * c->searches_alert_5m
                                               : c->searches_alert_5m;
    if (s->searches_5m >= search_limit)
        raise_to(f, IX_ENUMERATION, 45, "many searches");
    if (f->role != ROLE_SERVICE && s->broad_5m >= c->broad_searches_alert_5m)
        raise_to(f, IX_ENUMERATION, 45, "broad searches");
    if (s->big_pages_5m >= 3)
        raise_to(f, IX_ENUMERATION, 30, "pages at the maximum size");
    if (f->ev->page_index >= 10)
        raise_to(f, IX_ENUMERATION, 40, "deep paging through a result set");
}

/* ---- 4. decoys, 5. context, 7. patient --------------------------------------------- */

static void score_decoy(detect_facts *f)
{
    if (f->touch.decoys > 0)
        raise_to(f, IX_DECOY, 100, "decoy patient touched");
}

static void score_context(detect_facts *f)
{
    double p[4] = { f->ctx.outside_networks ? 80 : 0,
                    f->ctx.concurrent_networks < 2 ? 0 : f->ctx.unfamiliar ? 30 : 10,
                    !f->ctx.new_network ? 0 : f->ctx.unfamiliar ? 15 : 5,
                    f->ctx.off_hours ? 10 : 0 };
    static const char *const why[4] = {
        "outside its configured networks", "sessions from several networks",
        "new network", "outside usual hours" };
    double total = rules_combine(p, 4);
    int top = -1;
    for (int i = 0; i < 4; i++)
        if (p[i] > 0 && (top < 0 || p[i] > p[top]))
            top = i;
    if (top >= 0)
        raise_to(f, IX_CONTEXT, total, why[top]);
}

static void score_patient(const detect_config *c, detect_facts *f)
{
    const touch_result *t = &f->touch;
    if (t->vips_unexplained > 0 && !f->declared)
        raise_to(f, IX_PATIENT, 50, "VIP patient without care relationship");
    if (t->same_family > 0)
        raise_to(f, IX_PATIENT, 50, "patient with the same family name");
    if (t->same_family_explained > 0)
        raise_to(f, IX_PATIENT, 15, "patient with the same family name");
    if (t->own_record > 0)
        raise_to(f, IX_PATIENT, 50, "its own patient record");
    if (f->declared)
        return;             /* a declared export reads every patient */
    if (t->vip_actors >= 2 * c->vip_actors_alert_24h)
        raise_to(f, IX_PATIENT, 45, "many accounts on one VIP patient");
    else if (t->vip_actors >= c->vip_actors_alert_24h)
        raise_to(f, IX_PATIENT, 30, "many accounts on one VIP patient");
}

/* ---- 6. authentication (the account's side) ------------------------------------------ */

static void score_auth(const detect_config *c, detect_facts *f)
{
    int run = f->factor_wrong_run;
    if (run > 0) {
        /* A typo corrected by a login within minutes is common; the same
         * from a network new for the account is not (and an unresolved one
         * is alerted on after AUTH_PENDING, engine.c). */
        double pts = run >= c->auth_factor_wrong_contain ? 95 : run >= 3 ? 75
                   : f->ctx.new_network && f->ctx.unfamiliar ? 45
                   : run == 2 ? 35 : 25;
        raise_to(f, IX_AUTH, pts, "password right, TOTP wrong");
    }
    int fails = f->sums.auth_failures_15m;
    if (fails >= c->auth_account_fail_alert)
        raise_to(f, IX_AUTH, 45, "failed logins on the account");
}

/* ---- model -------------------------------------------------------------------------- */

static void score_model(const detect_config *c, detect_facts *f)
{
    /* a declared feed is measured by its own learned rhythm once it has
     * one: a stolen interface reading 40% more of the patients it touches
     * anyway changes no daily count, only the rhythm (for review only: a
     * declared export comes in bursts the rhythm does not know) */
    if (!c->model_enabled || (f->declared && !f->has_baseline))
        return;
    double s = f->cusum, h = c->model_h;
    if (s < h / 2)
        return;
    double pts = 45.0 * s / h;
    if (s >= 3 * h)
        pts = 95;
    else if (pts > 80)
        pts = 80;
    if (f->model_from_role && pts > 30)
        pts = 30;             /* a new actor measured by its role's rhythm */
    if (f->declared && pts > c->score_alert)
        pts = c->score_alert; /* a declared export comes in bursts: review */
    raise_to(f, IX_MODEL, pts, "sustained excess over the learned baseline");
}

/* ---- Combining ------------------------------------------------------------------------ */

double rules_combine(const double *points, int n)
{
    double p[DETECT_SIG_COUNT];
    if (n > DETECT_SIG_COUNT)
        n = DETECT_SIG_COUNT;
    memcpy(p, points, (size_t)n * sizeof *p);
    for (int i = 1; i < n; i++)          /* insertion sort, descending */
        for (int j = i; j > 0 && p[j] > p[j - 1]; j--) {
            double t = p[j];
            p[j] = p[j - 1];
            p[j - 1] = t;
        }
    double score = 0, weight = 1;
    for (int i = 0; i < n; i++, weight /= 2)
        score += p[i] * weight;
    return score > 100 ? 100 : score;
}

void rules_score(const detect_engine *e, detect_facts *f)
{
    const detect_config *c = &e->cfg;
    memset(f->points, 0, sizeof f->points);
    memset(f->why, 0, sizeof f->why);
    score_volume(c, f);
    score_relationship(c, f);
    score_enumeration(c, f);
    score_decoy(f);
    score_context(f);
    score_auth(c, f);
    score_patient(c, f);
    score_model(c, f);
}

/* ---- The source's side: spraying and stuffing ----------------------------------------- */

double rules_source_points(const detect_config *c, int accounts, int failures,
                           int global_failures, const char **why)
{
    *why = NULL;
    if (accounts >= c->auth_source_accounts_block) {
        *why = "failed logins on many accounts from one address (spraying)";
        return 95;
    }
    if (accounts >= c->auth_source_accounts_alert) {
        *why = "failed logins on several accounts from one address";
        return 75;
    }
    if (failures >= 20) {
        *why = "many failed logins from one address";
        return 75;
    }
    if (global_failures >= c->auth_global_fail_alert && failures >= 2) {
        *why = "repeated failures during a wave of failed logins (stuffing)";
        return 75;
    }
    return 0;
}
