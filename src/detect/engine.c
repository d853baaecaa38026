/*
 * engine.c -- the detector's public face: configuration, the engine's life,
 * and detect_observe(), which turns one audited event into a verdict.
 *
 * Why it exists: the server calls detect_observe() on every audited decision
 * before the response leaves, from many threads.  This file takes the one
 * mutex, finds (or makes room for) the actor and the source, lets actor.c,
 * model.c and rules.c update and score, then walks the escalation ladder:
 * the score of this event gives a level (alert, step-up, throttle, contain),
 * combined with what already stands against the actor (a containment, a
 * running throttle, a step-up not yet done), and raises an alert when the
 * level or the detectors are new.  A replayed event (rebuilding state from
 * the audit trail at start) changes the state and learns, and decides
 * nothing.
 */
#include "detect_internal.h"

#include <stdlib.h>
#include <string.h>

enum { IX_VOLUME, IX_RELATIONSHIP, IX_ENUMERATION, IX_DECOY, IX_CONTEXT,
       IX_AUTH, IX_PATIENT, IX_MODEL };

#define FIRED_POINTS     20     /* a signal at or above this "fired"          */
#define SOURCE_BLOCK_US  US_PER_HOUR
#define MAX_BACKOFF      6      /* throttle doubles at most 2^6 times         */

/* ---- Names ------------------------------------------------------------------ */

const char *detect_response_name(detect_response r)
{
    switch (r) {
    case DETECT_NONE:     return "none";
    case DETECT_ALERT:    return "alert";
    case DETECT_STEP_UP:  return "step-up";
    case DETECT_THROTTLE: return "throttle";
    case DETECT_CONTAIN:  return "contain";
    }
    return "?";
}

const char *detect_signal_name(unsigned one_signal)
{
    static const char *const names[DETECT_SIG_COUNT] = {
        "volume", "relationship", "enumeration", "decoy", "context",
        "authentication", "patient", "model" };
    for (int i = 0; i < DETECT_SIG_COUNT; i++)
        if (one_signal == 1u << i)
            return names[i];
    return NULL;
}

/* ---- Configuration ---------------------------------------------------------- */

void detect_config_default(detect_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_actors = 10000;
    c->max_sources = 20000;
    c->max_vip_patients = 4096;
    c->max_declarations = 256;
    c->score_alert = 40;
    c->score_step_up = 60;
    c->score_throttle = 75;
    c->score_contain = 90;
    c->throttle_s = 60;
    c->step_up_valid_s = 900;
    c->step_up_ignored_max = 10;
    c->realert_s = 3600;
    c->new_actor_limit_5m = 12;
    c->new_actor_limit_1h = 40;
    c->new_actor_limit_24h = 120;
    c->baseline_days = 3;
    c->volume_margin = 1.5;
    c->hard_cap_5m = 20;
    c->learned_ceiling = 2.0;
    c->btg_alert_1h = 3;
    c->btg_step_up_1h = 4;
    c->btg_contain_1h = 8;
    c->btg_alert_24h = 5;
    c->hospital_btg_1h = 8;
    c->hospital_btg_24h = 24;
    c->denials_alert_5m = 6;
    c->denials_contain_5m = 20;
    c->searches_alert_5m = 30;
    c->broad_searches_alert_5m = 5;
    c->everything_alert_1h = 5;
    c->max_page = 100;
    c->new_actor_page = 20;
    c->concurrent_window_s = 600;
    c->auth_account_fail_alert = 5;
    c->auth_source_accounts_alert = 4;
    c->auth_source_accounts_block = 8;
    c->auth_global_fail_alert = 50;
    c->auth_factor_wrong_contain = 5;
    c->vip_actors_alert_24h = 5;
    c->model_enabled = 1;
    c->model_k = 0.5;
    c->model_h = 10;
}

int64_t detect_replay_window_us(const detect_config *c)
{
    int days = c->baseline_days + 1 > 8 ? c->baseline_days + 1 : 8;
    return days * US_PER_DAY;
}

static int check_config(const detect_config *c, mv_err *err)
{
    if (c->max_actors == 0 || c->max_sources == 0 || c->max_vip_patients == 0 ||
        c->max_declarations == 0)
        return mv_fail(err, MV_E_INVALID, "detect: every table needs a capacity");
    if (!(c->score_alert > 0 && c->score_alert <= c->score_step_up &&
          c->score_step_up <= c->score_throttle &&
          c->score_throttle <= c->score_contain && c->score_contain <= 100))
        return mv_fail(err, MV_E_INVALID,
                       "detect: the ladder must rise: 0 < alert <= step-up <= "
                       "throttle <= contain <= 100");
    if (c->new_actor_limit_5m <= 0 || c->new_actor_limit_1h <= 0 ||
        c->new_actor_limit_24h <= 0 || c->volume_margin < 1.0 ||
        c->learned_ceiling < 1.0 ||
        c->max_page <= 0 || c->new_actor_page <= 0 || c->throttle_s <= 0)
        return mv_fail(err, MV_E_INVALID, "detect: limits must be positive");
    if (c->model_enabled && (c->model_h <= 0 || c->model_k < 0))
        return mv_fail(err, MV_E_INVALID, "detect: model needs h > 0 and k >= 0");
    return 0;
}

/* ---- Life -------------------------------------------------------------------- */

size_t detect_memory_bytes(const detect_config *c)
{
    return sizeof(detect_engine) + lru_bytes(c->max_actors, sizeof(actor)) +
           lru_bytes(c->max_sources, sizeof(source)) +
           lru_bytes(c->max_vip_patients, sizeof(vip_patient)) +
           c->max_declarations * sizeof(account_cfg);
}

detect_engine *detect_new(const detect_config *c, mv_err *err)
{
    if (check_config(c, err) != 0)
        return NULL;
    detect_engine *e = mv_calloc(1, sizeof *e, err);
    if (e == NULL)
        return NULL;
    e->cfg = *c;
    e->cfg_gen = 1;
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        free(e);
        mv_fail(err, MV_E_INTERNAL, "detect: cannot create a mutex");
        return NULL;
    }
    e->accounts = mv_calloc(c->max_declarations, sizeof *e->accounts, err);
    if (e->accounts == NULL ||
        lru_init(&e->actors, c->max_actors, sizeof(actor), err) != 0 ||
        lru_init(&e->sources, c->max_sources, sizeof(source), err) != 0 ||
        lru_init(&e->vips, c->max_vip_patients, sizeof(vip_patient), err) != 0) {
        detect_free(e);
        return NULL;
    }
    return e;
}

void detect_free(detect_engine *e)
{
    if (e == NULL)
        return;
    lru_fini(&e->actors);
    lru_fini(&e->sources);
    lru_fini(&e->vips);
    free(e->accounts);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void detect_verdict_clear(detect_verdict *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n_alerts && i < DETECT_MAX_ALERTS; i++) {
        free(v->alerts[i].evidence_json);
        free(v->alerts[i].explanation);
    }
    memset(v, 0, sizeof *v);
}

/* ---- Helpers ---------------------------------------------------------------- */

static int is_action(const detect_event *ev, const char *name)
{
    return ev->action != NULL && strcmp(ev->action, name) == 0;
}

static int is_auth_failure(const detect_event *ev)
{
    return is_action(ev, "auth.login.second-factor-wrong") ||
           (is_action(ev, "auth.login") && ev->outcome == DETECT_FAILED);
}

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static detect_response level_of(const detect_config *c, double score)
{
    return score >= c->score_contain ? DETECT_CONTAIN
         : score >= c->score_throttle ? DETECT_THROTTLE
         : score >= c->score_step_up ? DETECT_STEP_UP
         : score >= c->score_alert ? DETECT_ALERT : DETECT_NONE;
}

static int64_t seconds_until(int64_t until_us, int64_t now_us)
{
    return (until_us - now_us + US_PER_S - 1) / US_PER_S;
}

static actor *find_actor(detect_engine *e, const char *id)
{
    if (!nonempty(id))
        return NULL;
    return lru_find(&e->actors, id, detect_hash(e->cfg.hash_seed, id));
}

static source *find_source(detect_engine *e, const char *addr)
{
    if (!nonempty(addr))
        return NULL;
    return lru_find(&e->sources, addr, detect_hash(e->cfg.hash_seed, addr));
}

/* ---- Failed logins: per source and across accounts ----------------------------- */

static int global_failures(detect_engine *e, int64_t now_us, int add)
{
    int32_t minute = (int32_t)(now_us / US_PER_MIN);
    int slot = minute % AUTH_GLOBAL_SLOTS;
    if (e->global_minute[slot] != minute) {
        e->global_minute[slot] = minute;
        e->global_fail[slot] = 0;
    }
    e->global_fail[slot] += (uint32_t)add;
    int total = 0;
    for (int i = 0; i < AUTH_GLOBAL_SLOTS; i++)
        if (minute - e->global_minute[i] < AUTH_GLOBAL_SLOTS)
            total += (int)e->global_fail[i];
    return total;
}

static void source_record_failure(detect_engine *e, source *s,
                                  const char *account, int64_t now_us)
{
    int32_t minute = (int32_t)(now_us / US_PER_MIN);
    int slot_m = minute % AUTH_WINDOW_MIN;
    if (s->fail_minute[slot_m] != minute) {
        s->fail_minute[slot_m] = minute;
        s->fail_count[slot_m] = 0;
    }
    if (s->fail_count[slot_m] < UINT16_MAX)
        s->fail_count[slot_m]++;
    if (!nonempty(account))
        return;
    uint64_t h = detect_hash(e->cfg.hash_seed, account);
    source_account *slot = &s->accounts[0];
    for (int i = 0; i < SOURCE_ACCOUNTS; i++) {
        if (s->accounts[i].account == h) {
            slot = &s->accounts[i];
            break;
        }
        if (s->accounts[i].last_us < slot->last_us)
            slot = &s->accounts[i];
    }
    slot->account = h;
    slot->last_us = now_us;
}

/* Failures and distinct accounts (at most SOURCE_ACCOUNTS) from s in the
 * auth window. */
static void source_counts(const source *s, int64_t now_us, int *accounts,
                          int *failures)
{
    *accounts = *failures = 0;
    for (int i = 0; i < SOURCE_ACCOUNTS; i++)
        if (s->accounts[i].account != 0 &&
            now_us - s->accounts[i].last_us < AUTH_WINDOW_US)
            (*accounts)++;
    int32_t minute = (int32_t)(now_us / US_PER_MIN);
    for (int i = 0; i < AUTH_WINDOW_MIN; i++)
        if (s->fail_minute[i] != 0 && minute - s->fail_minute[i] < AUTH_WINDOW_MIN)
            *failures += s->fail_count[i];
}

/* ---- VIP patients ------------------------------------------------------------------ */

static int vip_actor_count(detect_engine *e, const char *patient,
                           uint64_t actor_hash, int64_t now_us)
{
    int created;
    vip_patient *v = lru_get(&e->vips, patient,
                             detect_hash(e->cfg.hash_seed, patient), &created);
    vip_actor *slot = &v->actors[0];
    int n = 0, found = 0;
    for (int i = 0; i < VIP_ACTORS; i++) {
        vip_actor *x = &v->actors[i];
        if (x->actor == actor_hash) {
            x->last_us = now_us;
            found = 1;
        }
        if (x->actor != 0 && now_us - x->last_us < US_PER_DAY)
            n++;
        if (x->last_us < slot->last_us)
            slot = x;
    }
    if (!found) {
        slot->actor = actor_hash;
        slot->last_us = now_us;
        n++;
    }
    return n;
}

static void count_vips(detect_engine *e, const actor *a, const detect_event *ev,
                       int64_t now_us, touch_result *t)
{
    if (ev->outcome != DETECT_GRANTED)
        return;
    for (size_t i = 0; i < ev->n_patients; i++) {
        const detect_patient *p = &ev->patients[i];
        int unexplained = (p->flags & DETECT_PAT_BTG) ||
                          !(p->flags & DETECT_PAT_EXPLAINED);
        if (!(p->flags & DETECT_PAT_VIP) || !unexplained || !nonempty(p->id))
            continue;
        int n = vip_actor_count(e, p->id, a->h.hash, now_us);
        if (n > t->vip_actors)
            t->vip_actors = n;
    }
}

/* ---- The actor's side -------------------------------------------------------------- */

static actor *actor_for(detect_engine *e, const detect_event *ev)
{
    if (!nonempty(ev->actor))
        return NULL;
    int created;
    actor *a = lru_get(&e->actors, ev->actor,
                       detect_hash(e->cfg.hash_seed, ev->actor), &created);
    if (created) {
        a->first_seen_us = ev->time_us;
        a->cfg_slot = -1;
        a->role = role_index(ev->role);
    } else if (nonempty(ev->role)) {
        a->role = role_index(ev->role);
    }
    if (nonempty(ev->department))
        a->dept = detect_hash(e->cfg.hash_seed, ev->department);
    return a;
}

static void note_authentication(actor *a, const detect_event *ev, int64_t now_us)
{
    if (is_action(ev, "auth.login.second-factor-wrong")) {
        if (now_us - a->factor_wrong_us > US_PER_HOUR)
            a->factor_wrong_run = 0;
        if (a->factor_wrong_run < UINT8_MAX)
            a->factor_wrong_run++;
        a->factor_wrong_us = now_us;
    } else if (is_action(ev, "auth.login") && ev->outcome == DETECT_GRANTED) {
        a->factor_wrong_run = 0;
    } else if (is_action(ev, "auth.step-up") && ev->outcome == DETECT_GRANTED) {
        /* A fresh second factor in this session: the person is there.  It
         * vouches for this session only (a thief's other session gets no
         * free pass from the owner's step-up, nor from the owner's login). */
        a->factor_wrong_run = 0;
        a->step_up_done_us = now_us;
        uint64_t session = detect_hash(0x5e55, nonempty(ev->session) ? ev->session : "");
        if (session != a->step_up_session)
            a->step_up_vouched = 0;
        a->step_up_session = session;
        a->step_up_vouched |= a->step_up_asked;   /* what it was asked for */
        a->step_up_refusals = 0;
    }
}

static void gather_actor_facts(detect_engine *e, actor *a, const detect_event *ev,
                               int64_t now_us, detect_facts *f)
{
    actor_roll_day(e, a, now_us);
    note_authentication(a, ev, now_us);
    actor_count_event(e, a, ev, now_us, &f->touch);
    count_vips(e, a, ev, now_us, &f->touch);
    if (e->cfg.model_enabled) {
        model_params mp = { e->cfg.model_k, e->cfg.model_h,
                            e->cfg.utc_offset_min * US_PER_MIN };
        model_add(&a->model, now_us, (uint32_t)(actor_care_giver(a) ? f->touch.new_unexplained
                                                                    : f->touch.new_patients),
                  &e->role_model[a->role], &mp);
        f->cusum = model_score(&a->model, &e->role_model[a->role], &mp, &f->z,
                               &f->model_from_role);
    }
    actor_sums(a, now_us, &f->sums);
    actor_limits(e, a, now_us, f->limits, &f->declared_per_day);
    /* a declaration is its own explanation; a patient reads its own record;
     * an account already at its own hour's or day's alert is its own
     * rules' to stop (one runaway account is no hospital-wide wave) */
    int counts = f->declared_per_day == 0 && a->role != ROLE_PATIENT &&
                 f->sums.relation_1h < e->cfg.btg_alert_1h &&
                 f->sums.relation_24h <= e->cfg.btg_alert_24h;
    hospital_count(e, now_us, counts ? f->touch.new_unexplained : 0, &f->hospital);
    f->week_limit = actor_week_limit(e, a);
    f->sums.week = actor_week(a, now_us);
    f->month_limit = actor_month_limit(e, a);
    f->sums.month = actor_month(a, now_us);
    f->declared = f->declared_per_day > 0;
    if (f->declared) {
        const account_cfg *c = actor_cfg(e, a);
        f->approved_by = c ? c->approved_by : NULL;
    }
    actor_context(e, a, ev, now_us, &f->ctx);
    actor_note_off_hours(e, a, now_us, f->touch.new_patients, f->ctx.off_hours);
    f->role = a->role;
    f->has_baseline = actor_has_baseline(e, a);
    f->factor_wrong_run = a->factor_wrong_run;
    f->usual_peak_5m = a->peak[WIN_5M];
    f->usual_day = a->usual_day;
}

/* What already stands against the actor. */
static detect_response actor_standing(const detect_engine *e, const actor *a,
                                      int64_t now_us, int64_t *retry_after_s)
{
    (void)e;
    *retry_after_s = 0;
    if (a->contained)
        return DETECT_CONTAIN;
    if (now_us < a->throttled_until_us) {
        *retry_after_s = seconds_until(a->throttled_until_us, now_us);
        return DETECT_THROTTLE;
    }
    if (a->step_up_required_us > a->step_up_done_us)
        return DETECT_STEP_UP;
    return DETECT_NONE;
}

/* Apply the level of this event to the actor's standing state; returns the
 * response for this request. */
/* A shift: how long a step-up answered in a session vouches for the same
 * pattern (the same detectors) in that session. */
#define SHIFT_US (8 * US_PER_HOUR)

static detect_response escalate_actor(detect_engine *e, actor *a,
                                      const detect_event *ev, detect_response level,
                                      unsigned fired, int64_t now_us,
                                      int64_t *retry_after_s)
{
    const detect_config *c = &e->cfg;
    uint64_t session = detect_hash(0x5e55, nonempty(ev->session) ? ev->session : "");
    int vouched = a->step_up_done_us > 0 && a->step_up_session == session;
    if (level == DETECT_STEP_UP && vouched &&
        now_us - a->step_up_done_us < c->step_up_valid_s * US_PER_S)
        level = DETECT_ALERT;       /* this session's fresh second factor vouches */
    if (level == DETECT_STEP_UP && vouched && now_us - a->step_up_done_us < SHIFT_US &&
        (fired & ~a->step_up_vouched) == 0)
        level = DETECT_ALERT;       /* the pattern it answered for: not asked again
                                       this shift (a new one still is) */
    if (a->throttled_until_us > 0 &&
        now_us - a->throttled_until_us > US_PER_HOUR)
        a->throttles = 0;
    if (level >= DETECT_STEP_UP && a->throttles > 0 &&
        now_us >= a->throttled_until_us &&
        now_us - a->throttled_until_us < US_PER_HOUR)
        level = DETECT_CONTAIN;     /* it was throttled, waited, and went on */
    if (level == DETECT_CONTAIN)
        a->contained = 1;
    else if (level == DETECT_THROTTLE && now_us >= a->throttled_until_us) {
        int shift = a->throttles < MAX_BACKOFF ? a->throttles : MAX_BACKOFF;
        a->throttled_until_us = now_us + (c->throttle_s << shift) * US_PER_S;
        a->throttles++;
    } else if (level == DETECT_STEP_UP) {
        if (a->step_up_required_us <= a->step_up_done_us) {
            a->step_up_refusals = 0;      /* a new request for a step-up */
            a->step_up_asked = 0;
        }
        a->step_up_asked |= fired;
        a->step_up_required_us = now_us;
    }
    detect_response standing = actor_standing(e, a, now_us, retry_after_s);
    return standing > level ? standing : level;
}

static unsigned fired_signals(const detect_facts *f)
{
    unsigned bits = 0;
    for (int i = 0; i < DETECT_SIG_COUNT; i++)
        if (f->points[i] >= FIRED_POINTS || (i == IX_MODEL && f->points[i] > 0))
            bits |= 1u << i;
    return bits;
}

static int actor_needs_alert(const detect_engine *e, actor *a,
                             detect_response level, unsigned fired,
                             int64_t now_us)
{
    if (level < DETECT_ALERT)
        return 0;
    if (now_us - a->last_alert_us >= e->cfg.realert_s * US_PER_S) {
        a->alert_level = DETECT_NONE;
        a->alert_detectors = 0;
    }
    return level > a->alert_level || (fired & ~a->alert_detectors) != 0;
}

static void add_alert(detect_engine *e, const detect_facts *f, const char *actor_id,
                      const char *source_addr, double score, double model_pts,
                      unsigned detectors, detect_response r, int64_t now_us,
                      detect_verdict *out)
{
    if (out->n_alerts >= DETECT_MAX_ALERTS)
        return;
    if (alert_build(e, f, actor_id, source_addr, score, model_pts, detectors, r,
                    now_us, &out->alerts[out->n_alerts]) == 0)
        out->n_alerts++;
}

static void decide_actor(detect_engine *e, actor *a, const detect_facts *f,
                         int64_t now_us, detect_verdict *out)
{
    double score = rules_combine(f->points, DETECT_SIG_COUNT);
    double without_model = rules_combine(f->points, DETECT_SIG_COUNT - 1);
    detect_response level = level_of(&e->cfg, score);
    unsigned fired = fired_signals(f);
    out->score = score;
    out->detectors = fired;
    out->response = escalate_actor(e, a, f->ev, level, fired, now_us, &out->retry_after_s);
    if (!actor_needs_alert(e, a, level, fired, now_us))
        return;
    a->alert_level = level > a->alert_level ? level : a->alert_level;
    a->alert_detectors |= fired;
    a->last_alert_us = now_us;
    add_alert(e, f, a->h.key, f->ev->source, score, score - without_model,
              fired, out->response, now_us, out);
}

/* ---- The source's side --------------------------------------------------------------- */

static detect_response source_standing(const source *s, int64_t now_us,
                                       int64_t *retry_after_s)
{
    *retry_after_s = 0;
    if (now_us < s->blocked_until_us) {
        *retry_after_s = seconds_until(s->blocked_until_us, now_us);
        return DETECT_CONTAIN;
    }
    if (now_us < s->throttled_until_us) {
        *retry_after_s = seconds_until(s->throttled_until_us, now_us);
        return DETECT_THROTTLE;
    }
    return DETECT_NONE;
}

static void decide_source(detect_engine *e, source *s, detect_facts *f,
                          double pts, int64_t now_us, detect_verdict *out)
{
    const detect_config *c = &e->cfg;
    detect_response level = level_of(c, pts);
    if (level == DETECT_STEP_UP)
        level = DETECT_THROTTLE;   /* an address cannot step up */
    if (level == DETECT_CONTAIN)
        s->blocked_until_us = now_us + SOURCE_BLOCK_US;
    else if (level == DETECT_THROTTLE && now_us >= s->throttled_until_us)
        s->throttled_until_us = now_us + c->throttle_s * US_PER_S;
    detect_response standing = source_standing(s, now_us, &out->source_retry_after_s);
    out->source_response = standing > level ? standing : level;
    if (level < DETECT_ALERT)
        return;
    if (now_us - s->last_alert_us >= c->realert_s * US_PER_S)
        s->alert_level = DETECT_NONE;
    if (level <= s->alert_level)
        return;
    s->alert_level = level;
    s->last_alert_us = now_us;
    detect_facts sf = *f;
    memset(sf.points, 0, sizeof sf.points);
    sf.points[IX_AUTH] = pts;
    sf.factor_wrong_run = 0;
    sf.sums.auth_failures_15m = 0;
    add_alert(e, &sf, "", f->ev->source, pts, 0, DETECT_SIG_AUTH,
              out->source_response, now_us, out);
}

/* One alert per realert period for a wave of failed logins across accounts
 * (credential stuffing from many addresses). */
static void decide_wave(detect_engine *e, detect_facts *f, int64_t now_us,
                        detect_verdict *out)
{
    const detect_config *c = &e->cfg;
    if (f->global_failures < c->auth_global_fail_alert ||
        (e->global_alert_us != 0 &&
         now_us - e->global_alert_us < c->realert_s * US_PER_S))
        return;
    e->global_alert_us = now_us;
    detect_facts wf = *f;
    memset(wf.points, 0, sizeof wf.points);
    wf.points[IX_AUTH] = c->score_alert;
    wf.source_why = "a wave of failed logins across accounts (stuffing)";
    add_alert(e, &wf, "", "*", c->score_alert, 0, DETECT_SIG_AUTH,
              DETECT_ALERT, now_us, out);
}

/* ---- Wrong second factors no login followed ---------------------------------------------- */

static void copy_text(char dst[DETECT_ID_MAX], const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n > DETECT_ID_MAX - 1)
        n = DETECT_ID_MAX - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static void pending_push(detect_engine *e, const detect_event *ev, int64_t now_us)
{
    if (e->pending_n == PENDING_FACTORS) {      /* full: forget the oldest */
        e->pending_head = (e->pending_head + 1) % PENDING_FACTORS;
        e->pending_n--;
    }
    pending_factor *p = &e->pending[(e->pending_head + e->pending_n) % PENDING_FACTORS];
    p->t_us = now_us;
    copy_text(p->actor, ev->actor);
    copy_text(p->source, ev->source);
    e->pending_n++;
}

static void pending_alert(detect_engine *e, const pending_factor *p, actor *a,
                          int64_t now_us, detect_verdict *out)
{
    detect_event ev = { .time_us = p->t_us, .actor = p->actor, .source = p->source,
                        .action = "auth.login.second-factor-wrong",
                        .outcome = DETECT_FAILED };
    detect_facts f;
    memset(&f, 0, sizeof f);
    f.ev = &ev;
    f.role = a->role;
    f.factor_wrong_run = a->factor_wrong_run;
    f.unresolved = 1;
    f.points[IX_AUTH] = e->cfg.score_alert;
    f.why[IX_AUTH] = "password right, TOTP wrong, no login followed";
    a->alert_detectors |= DETECT_SIG_AUTH;
    a->last_alert_us = now_us;
    if (a->alert_level < DETECT_ALERT)
        a->alert_level = DETECT_ALERT;
    add_alert(e, &f, a->h.key, p->source, e->cfg.score_alert, 0, DETECT_SIG_AUTH,
              DETECT_ALERT, now_us, out);
}

/* Alert on every wrong second factor older than AUTH_PENDING_US that no
 * successful login (or step-up) of the account followed. */
static void pending_sweep(detect_engine *e, int64_t now_us, detect_verdict *out)
{
    while (e->pending_n > 0 && out->n_alerts < DETECT_MAX_ALERTS) {
        const pending_factor *p = &e->pending[e->pending_head];
        if (now_us - p->t_us < AUTH_PENDING_US)
            break;
        actor *a = find_actor(e, p->actor);
        int recent_auth_alert = a != NULL && (a->alert_detectors & DETECT_SIG_AUTH) &&
            now_us - a->last_alert_us < e->cfg.realert_s * US_PER_S;
        if (a != NULL && a->factor_wrong_run > 0 && a->factor_wrong_us == p->t_us &&
            !a->contained && !recent_auth_alert)
            pending_alert(e, p, a, now_us, out);
        e->pending_head = (e->pending_head + 1) % PENDING_FACTORS;
        e->pending_n--;
    }
}

/* ---- Step-ups asked for and ignored ------------------------------------------------------ */

/* One more request refused for a step-up not done; CONTAIN once there are
 * too many (the alert is queued for the next verdict). */
static detect_response step_up_ignored(detect_engine *e, actor *a,
                                       const char *source_addr, int64_t now_us)
{
    if (a->step_up_refusals < UINT16_MAX)
        a->step_up_refusals++;
    if (e->cfg.step_up_ignored_max <= 0 ||
        a->step_up_refusals < e->cfg.step_up_ignored_max)
        return DETECT_STEP_UP;
    a->contained = 1;
    if (e->n_gated < GATE_CONTAINED) {
        gate_contained *g = &e->gated[e->n_gated++];
        g->t_us = now_us;
        copy_text(g->actor, a->h.key);
        copy_text(g->source, source_addr);
        g->detectors = a->alert_detectors;
        g->refusals = a->step_up_refusals;
    }
    return DETECT_CONTAIN;
}

static void gated_sweep(detect_engine *e, detect_verdict *out)
{
    while (e->n_gated > 0 && out->n_alerts < DETECT_MAX_ALERTS) {
        const gate_contained *g = &e->gated[--e->n_gated];
        detect_event ev = { .time_us = g->t_us, .actor = g->actor, .source = g->source,
                            .action = "detect.step-up-ignored", .outcome = DETECT_DENIED };
        detect_facts f;
        memset(&f, 0, sizeof f);
        f.ev = &ev;
        f.ignored_step_ups = g->refusals;
        add_alert(e, &f, g->actor, g->source, e->cfg.score_contain, 0,
                  g->detectors, DETECT_CONTAIN, g->t_us, out);
    }
}

/* ---- detect_observe --------------------------------------------------------------------- */

static void observe_locked(detect_engine *e, const detect_event *ev, int live,
                           detect_verdict *out)
{
    detect_facts f;
    memset(&f, 0, sizeof f);
    f.ev = ev;
    f.role = role_index(ev->role);
    int64_t now = ev->time_us;
    int failure = is_auth_failure(ev);
    f.global_failures = global_failures(e, now, failure);
    source *s = NULL;
    if (failure && nonempty(ev->source)) {
        int created;
        s = lru_get(&e->sources, ev->source,
                    detect_hash(e->cfg.hash_seed, ev->source), &created);
        source_record_failure(e, s, nonempty(ev->actor) ? ev->actor : ev->claimed, now);
        source_counts(s, now, &f.src_accounts, &f.src_failures);
    } else {
        s = find_source(e, ev->source);
    }
    double src_pts = rules_source_points(&e->cfg, f.src_accounts, f.src_failures,
                                         f.global_failures, &f.source_why);
    actor *a = actor_for(e, ev);
    if (a != NULL) {
        if (now < a->last_seen_us)
            now = a->last_seen_us;     /* out of order: count it as now */
        a->last_seen_us = now;
        gather_actor_facts(e, a, ev, now, &f);
        rules_score(e, &f);
        actor_learn_day_max(a, &f.sums, f.limits);
    }
    if (!live)
        return;
    if (a != NULL && is_action(ev, "auth.login.second-factor-wrong"))
        pending_push(e, ev, now);
    if (a != NULL) {
        decide_actor(e, a, &f, now, out);
        if (out->response >= DETECT_STEP_UP)
            actor_forget_withheld(e, a, ev, now);
    }
    if (s != NULL)
        decide_source(e, s, &f, src_pts, now, out);
    if (failure)
        decide_wave(e, &f, now, out);
}

int detect_observe(detect_engine *e, const detect_event *ev, int mode,
                   detect_verdict *out, mv_err *err)
{
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (e == NULL || ev == NULL || ev->time_us <= 0 || !nonempty(ev->action))
        return mv_fail(err, MV_E_INVALID, "detect: an event needs a time and an action");
    detect_verdict scratch;
    if (out == NULL) {
        memset(&scratch, 0, sizeof scratch);
        out = &scratch;
    }
    pthread_mutex_lock(&e->mu);
    e->events++;
    if (ev->time_us > e->latest_us)
        e->latest_us = ev->time_us;
    observe_locked(e, ev, mode != DETECT_REPLAY, out);
    if (mode != DETECT_REPLAY) {
        pending_sweep(e, e->latest_us, out);
        gated_sweep(e, out);
    }
    pthread_mutex_unlock(&e->mu);
    if (out == &scratch)
        detect_verdict_clear(&scratch);
    return 0;
}

/* ---- Gate, page size, release ------------------------------------------------------------ */

detect_response detect_gate(detect_engine *e, const char *actor_id,
                            const char *source_addr, int64_t now_us,
                            int64_t *retry_after_s)
{
    int64_t ra = 0, rs = 0;
    detect_response r = DETECT_NONE, rsrc = DETECT_NONE;
    pthread_mutex_lock(&e->mu);
    actor *a = find_actor(e, actor_id);
    if (a != NULL)
        r = actor_standing(e, a, now_us, &ra);
    if (r == DETECT_STEP_UP)
        r = step_up_ignored(e, a, source_addr, now_us);
    source *s = find_source(e, source_addr);
    if (s != NULL)
        rsrc = source_standing(s, now_us, &rs);
    pthread_mutex_unlock(&e->mu);
    if (rsrc > r) {
        r = rsrc;
        ra = rs;
    }
    if (retry_after_s)
        *retry_after_s = ra;
    return r;
}

int detect_max_page(detect_engine *e, const char *actor_id, int64_t now_us)
{
    const detect_config *c = &e->cfg;
    int page = c->new_actor_page;
    pthread_mutex_lock(&e->mu);
    actor *a = find_actor(e, actor_id);
    if (a != NULL) {
        window_sums s;
        int limits[WIN_COUNT];
        int64_t declared;
        actor_sums(a, now_us, &s);
        actor_limits(e, a, now_us, limits, &declared);
        int cap = declared > 0 || actor_has_baseline(e, a) ? c->max_page
                                                          : c->new_actor_page;
        int limit = limits[WIN_5M];
        if (declared == 0 && c->hard_cap_5m > 0 && limit > c->hard_cap_5m &&
            !actor_has_baseline(e, a))
            limit = c->hard_cap_5m;
        int left = declared > 0 ? cap : limit - s.patients[WIN_5M];
        page = a->contained ? 0 : left < 1 ? 1 : left > cap ? cap : left;
        if (actor_care_giver(a) && !a->contained)
            page = c->max_page;    /* its listings hold what its care explains
                                      (break-the-glass grants are counted) */
    }
    pthread_mutex_unlock(&e->mu);
    if (a == NULL && page > c->new_actor_limit_5m)
        page = c->new_actor_limit_5m;
    return page;
}

void detect_release(detect_engine *e, const char *actor_id)
{
    pthread_mutex_lock(&e->mu);
    actor *a = find_actor(e, actor_id);
    if (a != NULL)
        actor_forget_windows(a);
    pthread_mutex_unlock(&e->mu);
}

void detect_release_source(detect_engine *e, const char *source_addr)
{
    pthread_mutex_lock(&e->mu);
    source *s = find_source(e, source_addr);
    if (s != NULL)
        lru_remove(&e->sources, s);
    pthread_mutex_unlock(&e->mu);
}

/* ---- Introspection ----------------------------------------------------------------------- */

void detect_actor_state(detect_engine *e, const char *actor_id, int64_t now_us,
                        detect_actor_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&e->mu);
    actor *a = find_actor(e, actor_id);
    if (a != NULL) {
        window_sums s;
        int64_t declared, ra;
        actor_sums(a, now_us, &s);
        int limits[WIN_COUNT];
        actor_limits(e, a, now_us, limits, &declared);
        out->known = 1;
        out->has_baseline = actor_has_baseline(e, a);
        out->declared = declared > 0;
        out->standing = actor_standing(e, a, now_us, &ra);
        out->patients_5m = s.patients[WIN_5M];
        out->patients_1h = s.patients[WIN_1H];
        out->patients_24h = s.patients[WIN_24H];
        out->limit_5m = limits[WIN_5M];
        out->limit_1h = limits[WIN_1H];
        out->limit_24h = limits[WIN_24H];
        out->unexplained_1h = s.relation_1h;
        out->model_cusum = a->model.cusum;
    }
    pthread_mutex_unlock(&e->mu);
}

void detect_get_stats(detect_engine *e, detect_stats *out)
{
    pthread_mutex_lock(&e->mu);
    out->events = e->events;
    out->alerts = e->alerts;
    out->evictions = e->actors.evictions + e->sources.evictions + e->vips.evictions;
    out->actors = e->actors.used;
    out->sources = e->sources.used;
    out->vip_patients = e->vips.used;
    pthread_mutex_unlock(&e->mu);
}
