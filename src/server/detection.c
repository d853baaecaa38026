/*
 * detection.c -- the detector (detect/) in the request path.
 *
 * Why it exists: detect/ decides but never touches a request, the store or
 * an account.  This file is the other half: it turns each audited access
 * into a detect_event, keeps the strongest verdict of the request, applies
 * it before the answer leaves (a withheld answer is wiped and replaced by
 * 401 step-up, 429 or 403, and the withholding is itself audited), contains
 * an actor (locks the account, which revokes its sessions at once), stores
 * and sends out the alerts, caps page sizes, and -- at start -- rebuilds
 * the detector's state by replaying the last days of the audit trail, so a
 * restart forgets nothing an attacker could exploit.
 *
 * Lineage: an account whose credentials a person gave over the API or
 * approved (created it, reset its password or second factor, approved
 * that: "user:<id>" in its lineage) within the last AUTH_LINEAGE_DAYS is
 * also observed as the actor "lineage:user:<id>" of each of them, with the
 * patients its reads disclose -- a care giver's explained patients and a
 * patient's own record aside, nothing for a declared bulk reader -- so
 * that an administrator who mints many small readers, or the officer who
 * approves them, is one actor reading a lot.  A verdict on the maker's
 * lineage withholds the answer like the account's own; containment locks
 * the account and its maker, and every account of that lineage is refused
 * until a security officer has the maker unlocked.  The approver's lineage
 * only alerts (watch_only).
 */
#include "server_internal.h"
#include "fhir_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/crypto.h"
#include "../search/search.h"


static void new_alert_id(void *ctx, char out[DETECT_ALERT_ID_MAX])
{
    (void)ctx;
    crypto_random_id(out);
}

/* ---- Lineage ------------------------------------------------------------------------------ */

/* "lineage:user:<id>" of a's lineage member i into out, when a person gave
 * or approved its credentials less than AUTH_LINEAGE_DAYS before `at`. */
static int lineage_of(const auth_account *a, int i, int64_t at, char *out, size_t cap)
{
    const int64_t window = (int64_t)AUTH_LINEAGE_DAYS * 86400 * 1000000LL;
    const char *who = a->lineage[i];
    if (strncmp(who, "user:", 5) != 0 || who[5] == '\0' || strcmp(who + 5, a->id) == 0 ||
        at - a->lineage_since_us >= window || a->role == AUTH_ROLE_PATIENT)
        return 0;
    snprintf(out, cap, "%s%s", SERVER_LINEAGE_PREFIX, who);
    return 1;
}

/* Which of an access's patients count against the lineage. */
static size_t lineage_patients(const auth_account *a, const detect_patient *in, size_t n,
                               detect_patient *out)
{
    int care_giver = a->role == AUTH_ROLE_CLINICIAN || a->role == AUTH_ROLE_NURSE;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(care_giver && (in[i].flags & DETECT_PAT_EXPLAINED)) &&
            !(in[i].flags & DETECT_PAT_OWN_RECORD))
            out[k++] = in[i];
    return k;
}

/* ---- Replay: the last day of the trail ----------------------------------------------- */

typedef struct replay_ctx {
    server *srv;
    json_t *accounts;           /* account id -> [role, lineage0, lineage1, since] */
    size_t events;
} replay_ctx;

/* What replay needs of an account, looked up once. */
static void account_facts(replay_ctx *rc, const char *account_id, auth_account *out)
{
    memset(out, 0, sizeof *out);
    json_t *f = json_object_get(rc->accounts, account_id);
    if (f == NULL) {
        auth_account a;
        int found = auth_account_get_id(rc->srv->auth, account_id, &a, NULL) == 0;
        f = json_pack("[s, s, s, I]", found ? auth_role_name(a.role) : "",
                      found ? a.lineage[0] : "", found ? a.lineage[1] : "",
                      (json_int_t)(found ? a.lineage_since_us : 0));
        json_object_set_new(rc->accounts, account_id, f);
    }
    snprintf(out->id, sizeof out->id, "%s", account_id);
    if (auth_role_parse(json_string_value(json_array_get(f, 0)), &out->role) != 0)
        out->role = AUTH_ROLE_PATIENT;     /* unknown: no lineage */
    snprintf(out->lineage[0], sizeof out->lineage[0], "%s",
             json_string_value(json_array_get(f, 1)));
    snprintf(out->lineage[1], sizeof out->lineage[1], "%s",
             json_string_value(json_array_get(f, 2)));
    out->lineage_since_us = json_integer_value(json_array_get(f, 3));
}

static const char *role_of(replay_ctx *rc, const char *account_id)
{
    auth_account a;
    account_facts(rc, account_id, &a);
    const char *role = json_string_value(json_array_get(json_object_get(rc->accounts,
                                                                        account_id), 0));
    return role ? role : "";
}

/* The lineages saw the replayed access too. */
static void replay_lineage(replay_ctx *rc, const char *account_id, detect_event ev)
{
    auth_account a;
    account_facts(rc, account_id, &a);
    detect_patient kept[1];
    if (ev.n_patients != 1 || lineage_patients(&a, ev.patients, 1, kept) == 0)
        return;
    ev.patients = kept;
    ev.session = NULL;
    for (int i = 0; i < 2; i++) {
        char lineage[DETECT_ID_MAX];
        detect_verdict v;
        if (lineage_of(&a, i, ev.time_us, lineage, sizeof lineage)) {
            ev.actor = lineage;
            if (detect_observe(rc->srv->detect, &ev, DETECT_REPLAY, &v, NULL) == 0)
                rc->events++;
        }
    }
}

static detect_outcome outcome_of(const char *o)
{
    if (strncmp(o, "success", 7) == 0)
        return DETECT_GRANTED;
    if (strncmp(o, "denied", 6) == 0)
        return DETECT_DENIED;
    return DETECT_FAILED;
}

static int replay_row(const store_audit_row *r, void *ctx)
{
    replay_ctx *rc = ctx;
    const char *actor = r->actor && strncmp(r->actor, "user:", 5) == 0 ? r->actor + 5 : NULL;
    const char *action = r->action;
    if (strcmp(action, "auth.login") == 0 && strstr(r->outcome, "second factor wrong"))
        action = "auth.login.second-factor-wrong";
    int btg = r->purpose && strncmp(r->purpose, "BTG", 3) == 0;
    detect_patient p = { r->patient, btg ? DETECT_PAT_BTG : DETECT_PAT_EXPLAINED };
    const char *slash = r->resources ? strchr(r->resources, '/') : NULL;
    char type[64] = "";
    if (slash && (size_t)(slash - r->resources) < sizeof type)
        snprintf(type, sizeof type, "%.*s", (int)(slash - r->resources), r->resources);
    int write = strcmp(action, "fhir.create") == 0 || strcmp(action, "fhir.update") == 0 ||
                strcmp(action, "fhir.delete") == 0;
    detect_event ev = { .time_us = r->ts_us, .actor = actor,
                        .role = actor ? role_of(rc, actor) : NULL, .session = r->session,
                        .source = r->source, .action = action,
                        .outcome = outcome_of(r->outcome), .resource_type = type,
                        .patients = r->patient ? &p : NULL, .n_patients = r->patient != NULL,
                        .flags = write ? DETECT_EV_WRITE : 0 };
    detect_verdict v;
    if (detect_observe(rc->srv->detect, &ev, DETECT_REPLAY, &v, NULL) == 0)
        rc->events++;
    if (actor && r->patient)
        replay_lineage(rc, actor, ev);
    return 0;
}

typedef struct ts_probe { int64_t ts; } ts_probe;

static int probe_row(const store_audit_row *r, void *ctx)
{
    ((ts_probe *)ctx)->ts = r->ts_us;
    return 0;
}

/* The first entry at or after since_us (binary search: seq grows with time). */
static int64_t first_since(mv_store *s, int64_t last, int64_t since_us)
{
    int64_t lo = 1, hi = last + 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        ts_probe p = { 0 };
        if (store_audit_scan(s, mid, mid, probe_row, &p, NULL) != 0)
            return 1;
        if (p.ts < since_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int replay(server *srv, const detect_config *dc, mv_err *err)
{
    int64_t last = 0;
    unsigned char head[MV_HASH_BYTES];
    if (store_audit_last(srv->store, &last, head, err) != 0)
        return -1;
    if (last == 0)
        return 0;
    /* long enough for the baselines (learned over several active days) */
    int64_t window = detect_replay_window_us(dc);
    int64_t from = first_since(srv->store, last, mv_now_us() - window);
    replay_ctx rc = { srv, json_object(), 0 };
    int r = from <= last ? store_audit_scan(srv->store, from, last, replay_row, &rc, err) : 0;
    json_decref(rc.accounts);
    if (r == 0)
        fprintf(srv->cfg.http.access_log ? srv->cfg.http.access_log : stderr,
                "medvault serve: detector state rebuilt from %zu audit entries of the "
                "last %lld days\n", rc.events, (long long)(window / 86400000000LL));
    return r;
}

/* The detector's actors are accounts and their lineage (the accounts that
 * made or reset them): its table is sized by the accounts that exist, with
 * room to grow, so that no account's open windows are ever evicted to make
 * room (typed names that are no account take no room at all). */
#define ACTORS_PER_ACCOUNT 3
#define ACTORS_SPARE       64

int detection_open(server *srv, mv_err *err)
{
    if (srv->cfg.detect_off) {
        fprintf(srv->cfg.http.access_log ? srv->cfg.http.access_log : stderr,
                "medvault serve: WARNING: misuse detection is off (detect = off)\n");
        return 0;
    }
    detect_config dc;
    detect_config_default(&dc);
    /* the escalation ladder, as the hospital configured it */
    double *rungs[4] = { &dc.score_alert, &dc.score_step_up, &dc.score_throttle,
                         &dc.score_contain };
    for (int i = 0; i < 4; i++)
        if (srv->cfg.detect_ladder[i] > 0)
            *rungs[i] = srv->cfg.detect_ladder[i];
    crypto_random(&dc.hash_seed, sizeof dc.hash_seed);
    dc.alert_id = new_alert_id;
    size_t accounts = 0;
    if (auth_account_count(srv->auth, &accounts, err) != 0)
        return -1;
    if (srv->cfg.detect_max_actors > 0)
        dc.max_actors = srv->cfg.detect_max_actors;
    if (dc.max_actors < ACTORS_PER_ACCOUNT * accounts + ACTORS_SPARE)
        dc.max_actors = ACTORS_PER_ACCOUNT * accounts + ACTORS_SPARE;
    srv->detect = detect_new(&dc, err);
    if (srv->detect == NULL || facts_cache_open(srv, err) != 0) {
        detection_close(srv);
        return -1;
    }
    if (priors_load(srv, err) != 0 || replay(srv, &dc, err) != 0 ||
        declarations_load(srv, err) != 0 ||
        notifier_start(srv->cfg.syslog, srv->cfg.alert_webhook, srv->cfg.http.access_log,
                       &srv->notify, err) != 0) {
        detection_close(srv);
        return -1;
    }
    return 0;
}

void detection_close(server *srv)
{
    facts_cache_close(srv);
    notifier_stop(srv->notify);
    srv->notify = NULL;
    detect_free(srv->detect);
    srv->detect = NULL;
}

/* ---- Alerts ---------------------------------------------------------------------------- */

static json_t *detectors_json(unsigned set)
{
    json_t *a = json_array();
    for (unsigned bit = 0; bit < DETECT_SIG_COUNT; bit++)
        if (set & (1u << bit))
            json_array_append_new(a, json_string(detect_signal_name(1u << bit)));
    return a;
}

/* Who an alert is about, in words: the account's username, or for a
 * lineage "accounts of NAME's making" and the account whose read raised
 * it (via_account: the security officer who approved that account is
 * involved in the alert too). */
static void name_actor(call *c, const char *actor, json_t *doc)
{
    static const char lineage[] = SERVER_LINEAGE_PREFIX "user:";
    auth_account other;
    if (c->authenticated && strcmp(actor, c->who.account.id) == 0) {
        json_object_set_new(doc, "actor_username", json_string(c->who.account.username));
    } else if (strncmp(actor, lineage, strlen(lineage)) == 0) {
        char who[AUTH_NAME_MAX + 40];
        if (auth_account_get_id(c->srv->auth, actor + strlen(lineage), &other, NULL) == 0) {
            snprintf(who, sizeof who, "accounts of %s's making", other.username);
            json_object_set_new(doc, "actor_username", json_string(who));
        }
        if (c->authenticated) {
            json_object_set_new(doc, "via_account", json_string(c->who.account.id));
            json_object_set_new(doc, "via_username", json_string(c->who.account.username));
        }
    } else if (actor[0] && auth_account_get_id(c->srv->auth, actor, &other, NULL) == 0) {
        json_object_set_new(doc, "actor_username", json_string(other.username));
    }
}

/* Store the alert, then hand it to the notifier. */
static void raise_alert(call *c, const detect_alert *al)
{
    char when[MV_TIME_STR_MAX];
    mv_time_format(al->time_us, when);
    json_t *evidence = al->evidence_json ? json_loads(al->evidence_json, 0, NULL) : NULL;
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:f, s:f, s:o, s:s, s:s}",
                            "id", al->id, "time", when, "time_us", (json_int_t)al->time_us,
                            "actor", al->actor, "source", al->source,
                            "detectors", detectors_json(al->detectors),
                            "score", al->score, "model_score", al->model_score,
                            "evidence", evidence ? evidence : json_object(),
                            "explanation", al->explanation ? al->explanation : "",
                            "response", detect_response_name(al->response));
    name_actor(c, al->actor, doc);
    char *text = doc ? json_text(doc) : NULL;
    json_decref(doc);
    mv_err err;
    if (text && server_alert_save(c->srv->trail, text, &err) != 0)
        fprintf(stderr, "medvault serve: could not store alert %s: %s\n", al->id, err.msg);
    if (text)
        notifier_send(c->srv->notify, text);
    free(text);
}

/* Lock the actor's account (its sessions stop working at once). */
static void contain(call *c, const char *alert_id)
{
    char reason[128];
    snprintf(reason, sizeof reason, "contained by the detector (alert %s)", alert_id);
    mv_err err;
    if (auth_account_lock(c->srv->auth, c->who.account.username, reason, "system:detect",
                          &err) != 0)
        fprintf(stderr, "medvault serve: could not contain %s: %s\n",
                c->who.account.id, err.msg);
}

static void keep_verdict(call *c, const detect_verdict *v)
{
    call_verdict *cv = c->verdict;
    if (cv == NULL || v->response <= cv->response)
        return;
    cv->response = v->response;
    cv->retry_after_s = v->retry_after_s;
    if (v->n_alerts)
        snprintf(cv->alert_id, sizeof cv->alert_id, "%s", v->alerts[0].id);
}

static void handle_verdict(call *c, detect_verdict *v)
{
    for (size_t i = 0; i < v->n_alerts; i++)
        raise_alert(c, &v->alerts[i]);
    if (v->response == DETECT_CONTAIN && c->authenticated)
        contain(c, v->n_alerts ? v->alerts[0].id : "-");
    keep_verdict(c, v);
    detect_verdict_clear(v);
}

/* Lock whoever created or reset the account: its lineage read too much. */
static void contain_giver(call *c, const char *alert_id)
{
    const char *giver = c->who.account.lineage[0];
    auth_account g;
    if (strncmp(giver, "user:", 5) != 0 ||
        auth_account_get_id(c->srv->auth, giver + 5, &g, NULL) != 0 || g.locked)
        return;
    char reason[128];
    snprintf(reason, sizeof reason, "contained by the detector: accounts of its making "
             "read too much (alert %s)", alert_id);
    mv_err err;
    if (auth_account_lock(c->srv->auth, g.username, reason, "system:detect", &err) != 0)
        fprintf(stderr, "medvault serve: could not contain %s: %s\n", g.id, err.msg);
}

/* The approver's lineage is watched, never acted on: the officer who
 * approved accounts of many makers is not the one acting, and containing
 * that lineage would refuse the accounts of every maker.  Its verdict
 * becomes an alert for review, and its alerts say so. */
static void watch_only(detect_verdict *v)
{
    static const char tail[] = "response: ";
    for (size_t k = 0; k < v->n_alerts; k++) {
        detect_alert *al = &v->alerts[k];
        char *at = al->explanation ? strstr(al->explanation, tail) : NULL;
        if (al->response > DETECT_ALERT && at) {
            static const char now[] = "alert (the lineage of whoever approved accounts "
                                      "is watched, not contained)";
            size_t keep = (size_t)(at - al->explanation) + strlen(tail);
            char *words = malloc(keep + sizeof now);
            if (words) {
                memcpy(words, al->explanation, keep);
                memcpy(words + keep, now, sizeof now);
                free(al->explanation);
                al->explanation = words;
            }
        }
        if (al->response > DETECT_ALERT)
            al->response = DETECT_ALERT;
    }
    if (v->response > DETECT_ALERT)
        v->response = DETECT_ALERT;
}

/* What the account's access disclosed, counted against its lineages. */
static void observe_lineage(call *c, const detect_event *base)
{
    const auth_account *a = &c->who.account;
    char lineage[DETECT_ID_MAX];
    if (base->n_patients == 0 || !lineage_of(a, 0, base->time_us, lineage, sizeof lineage))
        return;     /* lineage[1] joins lineage[0]: none without a giver */
    detect_actor_info info;
    detect_actor_state(c->srv->detect, a->id, base->time_us, &info);
    if (info.declared)
        return;
    detect_patient *kept = calloc(base->n_patients, sizeof *kept);
    size_t n = kept ? lineage_patients(a, base->patients, base->n_patients, kept) : 0;
    for (int i = 0; n > 0 && i < 2; i++) {
        if (!lineage_of(a, i, base->time_us, lineage, sizeof lineage))
            continue;
        detect_event ev = *base;
        ev.actor = lineage;
        ev.session = NULL;
        ev.patients = kept;
        ev.n_patients = n;
        detect_verdict v;
        if (detect_observe(c->srv->detect, &ev, DETECT_LIVE, &v, NULL) != 0)
            continue;
        if (i == 1)
            watch_only(&v);
        else if (v.response == DETECT_CONTAIN)
            contain_giver(c, v.n_alerts ? v.alerts[0].id : "-");
        handle_verdict(c, &v);
    }
    free(kept);
}

/* A lineage of the account contained: refused until a security officer
 * has the account's giver unlocked (then the lineage is released). */
static int lineage_contained(call *c, int64_t now)
{
    const auth_account *a = &c->who.account;
    char lineage[DETECT_ID_MAX];
    int refused = 0;
    for (int i = 0; i < 1; i++) {            /* the approver's is watched only */
        if (!lineage_of(a, i, now, lineage, sizeof lineage))
            continue;
        detect_actor_info info;
        detect_actor_state(c->srv->detect, lineage, now, &info);
        if (info.standing != DETECT_CONTAIN)
            continue;
        auth_account giver;
        const char *g = a->lineage[0];
        int giver_locked = strncmp(g, "user:", 5) == 0 &&
                           auth_account_get_id(c->srv->auth, g + 5, &giver, NULL) == 0 &&
                           giver.locked;
        if (giver_locked)
            refused = 1;
        else
            detect_release(c->srv->detect, lineage);   /* reviewed and unlocked */
    }
    return refused;
}

/* ---- The request path -------------------------------------------------------------------- */

void call_observe(call *c, const char *action, detect_outcome outcome,
                  const char *type, const detect_patient *patients, size_t n,
                  int page_size, unsigned flags)
{
    if (c->srv->detect == NULL || !c->authenticated)
        return;
    detect_event ev = { .time_us = mv_now_us(), .actor = c->who.account.id,
                        .role = auth_role_name(c->who.account.role),
                        .department = c->who.account.department,
                        .session = c->session_ref, .source = c->req->source,
                        .action = action, .outcome = outcome, .resource_type = type,
                        .patients = patients, .n_patients = n, .page_size = page_size,
                        .page_index = c->list_page, .flags = flags };
    detect_verdict v;
    if (detect_observe(c->srv->detect, &ev, DETECT_LIVE, &v, NULL) == 0)
        handle_verdict(c, &v);
    observe_lineage(c, &ev);
}

void call_observe_login(call *c, const char *username, int ok, const auth_session_info *s)
{
    if (c->srv->detect == NULL)
        return;
    char pseudonym[40] = "";
    const char *actor = ok ? s->account.id : s->refused_account;
    if (actor[0] == '\0' && username) {        /* unknown name: a stable pseudonym */
        unsigned long h = 5381;
        for (const char *p = username; *p; p++)
            h = h * 33 + (unsigned char)*p;
        snprintf(pseudonym, sizeof pseudonym, "unknown:%08lx", h & 0xffffffffUL);
    }
    /* A typed name that is no account takes no actor state: a flood of
     * them must not push a real account's windows out of the table. */
    detect_event ev = { .time_us = mv_now_us(), .actor = actor[0] ? actor : NULL,
                        .claimed = pseudonym[0] ? pseudonym : NULL,
                        .role = ok ? auth_role_name(s->account.role) : NULL,
                        .department = ok ? s->account.department : NULL,
                        .source = c->req->source,
                        .action = !ok && s->refused_password_ok
                                  ? "auth.login.second-factor-wrong" : "auth.login",
                        .outcome = ok ? DETECT_GRANTED : DETECT_FAILED };
    detect_verdict v;
    if (detect_observe(c->srv->detect, &ev, DETECT_LIVE, &v, NULL) != 0)
        return;
    for (size_t i = 0; i < v.n_alerts; i++)
        raise_alert(c, &v.alerts[i]);
    detect_verdict_clear(&v);
}

static void answer_standing(call *c, detect_response r, int64_t retry_after)
{
    char msg[200], secs[24];
    switch (r) {
    case DETECT_STEP_UP:
        http_response_header(c->res, "WWW-Authenticate", "Bearer realm=\"medvault\", "
                             "error=\"insufficient_user_authentication\"");
        call_fail(c, 401, "login", "step-up required: unusual activity; confirm with a "
                  "fresh TOTP code at POST /auth/step-up");
        break;
    case DETECT_THROTTLE:
        snprintf(secs, sizeof secs, "%lld", (long long)(retry_after > 0 ? retry_after : 1));
        http_response_header(c->res, "Retry-After", secs);
        call_fail(c, 429, "throttled", "slowed down: unusual activity");
        break;
    default:
        snprintf(msg, sizeof msg, "access suspended by the detector; a security officer "
                 "must review it");
        call_fail(c, 403, "security", msg);
        break;
    }
}

int call_gate(call *c, int allow_step_up)
{
    if (source_blocked(c->srv, c->req->source)) {
        call_fail(c, 403, "security", "requests from this address are blocked while an "
                  "incident is open");
        return 1;
    }
    if (c->srv->detect == NULL)
        return 0;
    int64_t retry = 0, now = mv_now_us();
    const char *actor = c->authenticated ? c->who.account.id : NULL;
    if (actor) {
        /* A contained account that authenticates again was unlocked by a
         * security officer: the account's lock is what decides. */
        detect_actor_info info;
        detect_actor_state(c->srv->detect, actor, now, &info);
        if (info.standing == DETECT_CONTAIN)
            detect_release(c->srv->detect, actor);
        if (lineage_contained(c, now)) {
            contain(c, "-");
            answer_standing(c, DETECT_CONTAIN, 0);
            return 1;
        }
    }
    detect_response r = detect_gate(c->srv->detect, actor, c->req->source, now, &retry);
    if (r == DETECT_NONE || r == DETECT_ALERT || (r == DETECT_STEP_UP && allow_step_up))
        return 0;
    if (r == DETECT_CONTAIN && actor)    /* a step-up ignored again and again */
        contain(c, "-");
    answer_standing(c, r, retry);
    return 1;
}

void call_apply_verdict(call *c)
{
    call_verdict *cv = c->verdict;
    if (cv == NULL || cv->response < DETECT_STEP_UP)
        return;
    /* The prepared answer never leaves: wipe it, and record that it was
     * withheld, so that an incident's scope does not count it. */
    if (c->res->body.data)
        crypto_wipe(c->res->body.data, c->res->body.cap);
    mv_buf_free(&c->res->body);
    c->res->n_headers = 0;
    char outcome[96];
    snprintf(outcome, sizeof outcome, "withheld: %s (alert %s)",
             detect_response_name(cv->response), cv->alert_id[0] ? cv->alert_id : "-");
    audit_event ev = { .actor = c->res->actor, .action = "detect.withheld",
                       .outcome = outcome, .source = c->req->source,
                       .session = c->session_ref, .request_id = c->req->request_id };
    mv_err err;
    if (audit_record(c->srv->trail, &ev, 1, NULL, NULL, NULL, &err) != 0)
        fprintf(stderr, "medvault serve: could not record a withheld answer: %s\n", err.msg);
    answer_standing(c, cv->response, cv->retry_after_s);
}

/* Whether a patient is in active care changes slowly and costs a few index
 * lookups: a small direct-mapped cache (one minute) keeps it off the hot
 * path of a service account's reads.  An answer is good only while no
 * care relationship was written since (fhir_care_generation): an
 * admission's Encounter or a new order explains the very next read. */
#define CARE_CACHE_SLOTS 4096
#define CARE_CACHE_TTL_US (60LL * 1000000)

typedef struct care_slot {
    char patient[65];
    int in_care;
    int64_t until_us;
    int64_t generation;
} care_slot;

static size_t care_hash(const char *s)
{
    size_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h % CARE_CACHE_SLOTS;
}

/* What the detector's patient-centred signals need about a person (a
 * patient, or the practitioner behind an account): flagged VIP, and the
 * folded family name -- read from the sealed record once a minute, kept
 * here only as flags and a folded name, never sent anywhere. */
typedef struct person_slot {
    char key[80];
    int vip;
    char family[64];
    int64_t until_us;
} person_slot;

/* The server's own caches of both (facts_cache_open). */
struct facts_cache {
    pthread_mutex_t care_mu, person_mu;
    care_slot care[CARE_CACHE_SLOTS];
    person_slot person[CARE_CACHE_SLOTS];
};

int facts_cache_open(server *srv, mv_err *err)
{
    struct facts_cache *fc = mv_calloc(1, sizeof *fc, err);
    if (fc == NULL)
        return -1;
    pthread_mutex_init(&fc->care_mu, NULL);
    pthread_mutex_init(&fc->person_mu, NULL);
    srv->facts = fc;
    return 0;
}

void facts_cache_close(server *srv)
{
    struct facts_cache *fc = srv->facts;
    if (fc == NULL)
        return;
    pthread_mutex_destroy(&fc->care_mu);
    pthread_mutex_destroy(&fc->person_mu);
    free(fc);
    srv->facts = NULL;
}

int detection_in_active_care(server *srv, const char *patient)
{
    struct facts_cache *fc = srv->facts;
    if (fc == NULL || strlen(patient) >= sizeof fc->care[0].patient)
        return fhir_patient_in_active_care(srv, patient) == 1;
    int64_t now = mv_now_us(), gen = fhir_care_generation();
    care_slot *slot = &fc->care[care_hash(patient)];
    pthread_mutex_lock(&fc->care_mu);
    int hit = slot->until_us > now && slot->generation == gen &&
              strcmp(slot->patient, patient) == 0;
    int answer = slot->in_care;
    pthread_mutex_unlock(&fc->care_mu);
    if (hit)
        return answer;
    answer = fhir_patient_in_active_care(srv, patient) == 1;
    pthread_mutex_lock(&fc->care_mu);
    snprintf(slot->patient, sizeof slot->patient, "%s", patient);
    slot->in_care = answer;
    slot->until_us = now + CARE_CACHE_TTL_US;
    slot->generation = gen;
    pthread_mutex_unlock(&fc->care_mu);
    return answer;
}

/* meta.security or meta.tag naming a VIP / celebrity (v3-ActCode CEL). */
static int flagged_vip(json_t *meta)
{
    static const char *const lists[] = { "security", "tag" };
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *coding;
        json_array_foreach(json_object_get(meta, lists[l]), i, coding) {
            const char *code = json_string_value(json_object_get(coding, "code"));
            if (code && (strcmp(code, "VIP") == 0 || strcmp(code, "CEL") == 0))
                return 1;
        }
    }
    return 0;
}

static void read_person(server *srv, const char *type, const char *id, person_slot *out)
{
    store_resource r;
    out->vip = 0;
    out->family[0] = '\0';
    if (store_get(srv->store, type, id, 0, &r, NULL) != 0)
        return;
    json_t *o = r.deleted ? NULL : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    out->vip = flagged_vip(json_object_get(o, "meta"));
    const char *family = json_string_value(
        json_object_get(json_array_get(json_object_get(o, "name"), 0), "family"));
    char *folded = NULL;
    if (family && search_fold_name(family, &folded, NULL) == 0)
        snprintf(out->family, sizeof out->family, "%s", folded);
    free(folded);
    json_decref(o);
    store_resource_free(&r);
}

static void person_facts(server *srv, const char *type, const char *id, person_slot *out)
{
    char key[80];
    snprintf(key, sizeof key, "%s/%s", type, id);
    int64_t now = mv_now_us();
    struct facts_cache *fc = srv->facts;
    if (fc == NULL) {
        read_person(srv, type, id, out);
        return;
    }
    person_slot *slot = &fc->person[care_hash(key)];
    pthread_mutex_lock(&fc->person_mu);
    int hit = slot->until_us > now && strcmp(slot->key, key) == 0;
    if (hit)
        *out = *slot;
    pthread_mutex_unlock(&fc->person_mu);
    if (hit)
        return;
    read_person(srv, type, id, out);
    snprintf(out->key, sizeof out->key, "%s", key);
    out->until_us = now + CARE_CACHE_TTL_US;
    pthread_mutex_lock(&fc->person_mu);
    *slot = *out;
    pthread_mutex_unlock(&fc->person_mu);
}

static unsigned patient_centred(call *c, const char *patient)
{
    person_slot p, me;
    person_facts(c->srv, "Patient", patient, &p);
    unsigned flags = p.vip ? DETECT_PAT_VIP : 0;
    const auth_account *a = &c->who.account;
    if (a->patient[0] && strcmp(a->patient, patient) == 0 && a->role != AUTH_ROLE_PATIENT)
        flags |= DETECT_PAT_OWN_RECORD;
    if (a->practitioner[0] && p.family[0]) {
        person_facts(c->srv, "Practitioner", a->practitioner, &me);
        if (me.family[0] && strcmp(me.family, p.family) == 0)
            flags |= DETECT_PAT_SAME_FAMILY;
    }
    return flags;
}

unsigned call_patient_flags(call *c, const char *patient, int break_glass, int reading)
{
    if (patient == NULL)
        return 0;
    unsigned flags = 0;
    /* a decoy is touched by reading it; writing one (planting) is not */
    if (reading && decoy_is(c->srv, patient))
        flags |= DETECT_PAT_DECOY;
    if (reading)
        flags |= patient_centred(c, patient);
    auth_role role = c->who.account.role;
    if (break_glass)
        flags |= DETECT_PAT_BTG;
    else if (role != AUTH_ROLE_SERVICE || detection_in_active_care(c->srv, patient))
        flags |= DETECT_PAT_EXPLAINED;     /* policy permitted care givers and
                                              patients only through care or own record */
    return flags;
}

int call_page_cap(call *c, int requested)
{
    if (c->srv->detect == NULL || !c->authenticated)
        return requested;
    int max = detect_max_page(c->srv->detect, c->who.account.id, mv_now_us());
    if (max < 1)
        max = 1;
    return requested > max ? max : requested;
}
