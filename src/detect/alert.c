/*
 * alert.c -- turning a decision into an alert a security officer can act on:
 * the evidence (counts, windows, limits, the model's statistic, pseudonymous
 * patient ids) as JSON, and one explanation in plain words.
 *
 * Why it exists: issue 5 asks that every signal be "explainable in plain
 * words in the alert".  An alert that says "score 92" gets closed as noise;
 * one that says "alice touched 27 distinct patients in 5 minutes; the limit
 * for this account is 9 (its usual peak is 6)" gets a phone call.  Nothing
 * here names a person or carries clinical content: actors are account ids,
 * patients their pseudonymous ids.
 */
#include "detect_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IX_VOLUME, IX_RELATIONSHIP, IX_ENUMERATION, IX_DECOY, IX_CONTEXT,
       IX_AUTH, IX_PATIENT, IX_MODEL };

#define EXPLAIN_MAX 1024
#define EVIDENCE_PATIENTS 10

static const char *const window_names[WIN_COUNT] = { "5m", "1h", "24h" };
static const char *const window_words[WIN_COUNT] = {
    "5 minutes", "an hour", "24 hours" };

/* ---- Explanation ---------------------------------------------------------------- */

typedef struct text {
    char buf[EXPLAIN_MAX];
    size_t len;
    int clauses;
} text;

static void say(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(text *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf - 1)
        return;
    if (t->clauses++ > 0) {
        int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "; ");
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n
                                                      : sizeof t->buf - 1 - t->len;
}

static void explain_volume(text *t, const detect_facts *f)
{
    int w = f->volume_window;
    if (f->declared && w == WIN_24H) {
        say(t, "touched %d distinct patients in 24 hours; its declared bulk "
            "volume is %lld per day (approved by %s)", f->sums.patients[WIN_24H],
            (long long)f->declared_per_day,
            f->approved_by && f->approved_by[0] ? f->approved_by : "?");
        return;
    }
    if (f->role == ROLE_CLINICIAN || f->role == ROLE_NURSE)
        say(t, "touched %d distinct patients in %s, %d of them without care "
            "relationship; its limit on those is %d, and its own patients are "
            "reviewed beyond %d", f->sums.seen[w], window_words[w], f->sums.patients[w],
            f->limits[w], EXPLAINED_SHARE * f->limits[w]);
    else
        say(t, "touched %d distinct patients in %s; the limit for this account is %d",
            f->sums.patients[w], window_words[w], f->limits[w]);
    const char *why = f->why[IX_VOLUME];
    if (why && (strstr(why, "in a week") || strstr(why, "in a month")))
        say(t, "about %d distinct patients in 7 days (its limit %d) and %d in a month "
            "(its limit %d)", f->sums.week, f->week_limit, f->sums.month, f->month_limit);
    if (f->has_baseline)
        say(t, "its usual is at most %.0f per 5 minutes and about %.0f per day",
            f->usual_peak_5m, f->usual_day);
    else
        say(t, "it has no baseline of its own yet (its role's limits apply)");
    if (f->sums.relation_1h > 0)
        say(t, "%d of them in the last hour without care relationship",
            f->sums.relation_1h);
}

static void explain_relationship(text *t, const detect_facts *f)
{
    say(t, "%d patients without care relationship (break-the-glass) in the last "
        "hour, %d in 24 hours", f->sums.relation_1h, f->sums.relation_24h);
    if (f->role == ROLE_CLINICIAN || f->role == ROLE_NURSE)
        say(t, "about %d in 7 days and %d in a month", f->sums.week, f->sums.month);
    if (f->hospital.wave)
        say(t, "across the hospital, every account together reached %d such patients "
            "in the last hour and %d in 24 hours, beyond its usual %d and %d: many "
            "accounts may be read out at once", f->hospital.unexplained_1h,
            f->hospital.unexplained_24h, f->hospital.limit_1h, f->hospital.limit_24h);
}

static void explain_enumeration(text *t, const detect_facts *f)
{
    const window_sums *s = &f->sums;
    say(t, "enumeration: %s (%d refused or missing, %d searches of which %d "
        "broad, %d maximal pages in 5 minutes; $everything on %d patients in "
        "an hour; page %d)",
        f->why[IX_ENUMERATION] ? f->why[IX_ENUMERATION] : "many requests", s->denials_5m,
        s->searches_5m, s->broad_5m, s->big_pages_5m, s->everything_1h,
        f->ev->page_index);
}

static void explain_context(text *t, const detect_facts *f)
{
    if (f->ctx.outside_networks)
        say(t, "came from %s, outside its configured source networks",
            f->ev->source ? f->ev->source : "an unknown address");
    if (f->ctx.concurrent_networks >= 2)
        say(t, "sessions live from %d different networks at once",
            f->ctx.concurrent_networks);
    if (f->ctx.new_network)
        say(t, "from a network this account has not used before");
    if (f->ctx.off_hours)
        say(t, "outside this account's usual hours");
}

static void explain_patient(text *t, const detect_facts *f)
{
    const touch_result *p = &f->touch;
    if (p->vips_unexplained)
        say(t, "read a VIP patient (%s) without care relationship",
            p->vip_id ? p->vip_id : "?");
    if (p->same_family)
        say(t, "read a patient with its own family name, without care relationship");
    else if (p->same_family_explained)
        say(t, "read a patient with its own family name");
    if (p->own_record)
        say(t, "read its own patient record through a staff account");
    if (p->vip_actors >= 2)
        say(t, "%d accounts have read the same VIP patient in 24 hours",
            p->vip_actors);
}

static void explain(text *t, const detect_facts *f, const char *actor_id,
                    unsigned detectors, double model_pts, double cusum_h,
                    detect_response r)
{
    memset(t, 0, sizeof *t);
    int n = snprintf(t->buf, sizeof t->buf, "%s: ", actor_id[0] ? actor_id
                     : f->ev->source ? f->ev->source : "?");
    t->len = n > 0 && (size_t)n < sizeof t->buf ? (size_t)n : 0;
    if (f->ignored_step_ups > 0)
        say(t, "asked for a fresh second factor, it went on without one (%d requests "
            "refused): a session whose owner is not there", f->ignored_step_ups);
    if (detectors & DETECT_SIG_DECOY)
        say(t, "touched decoy patient %s, which no legitimate workflow reaches",
            f->touch.decoy_id ? f->touch.decoy_id : "?");
    if (detectors & DETECT_SIG_VOLUME)
        explain_volume(t, f);
    if (detectors & DETECT_SIG_RELATIONSHIP)
        explain_relationship(t, f);
    if (detectors & DETECT_SIG_ENUMERATION)
        explain_enumeration(t, f);
    if (detectors & DETECT_SIG_CONTEXT)
        explain_context(t, f);
    if (detectors & DETECT_SIG_AUTH) {
        if (f->factor_wrong_run > 0)
            say(t, "password right but TOTP wrong %d time(s) in a row%s",
                f->factor_wrong_run, f->unresolved
                ? ", and no successful login within 10 minutes" : "");
        if (f->sums.auth_failures_15m > 0)
            say(t, "%d failed logins on this account in 15 minutes",
                f->sums.auth_failures_15m);
        if (f->source_why)
            say(t, "source %s: %s (%d accounts, %d failures in 15 minutes)",
                f->ev->source ? f->ev->source : "?", f->source_why,
                f->src_accounts, f->src_failures);
    }
    if (detectors & DETECT_SIG_PATIENT)
        explain_patient(t, f);
    if (detectors & DETECT_SIG_MODEL)
        say(t, "the learned model sees a sustained excess over this account's "
            "usual rate (CUSUM %.1f, threshold %.1f; this 10-minute bucket "
            "%.1f sd above usual), adding %.0f points", f->cusum, cusum_h, f->z,
            model_pts);
    say(t, "response: %s", detect_response_name(r));
}

/* ---- Evidence -------------------------------------------------------------------- */

static json_t *windows_json(const detect_facts *f)
{
    json_t *o = json_object();
    for (int w = 0; w < WIN_COUNT; w++)
        json_object_set_new(o, window_names[w],
            json_pack("{s:i, s:i, s:i}", "patients", f->sums.seen[w],
                      "counted", f->sums.patients[w], "limit", f->limits[w]));
    return o;
}

static json_t *baseline_json(const detect_facts *f)
{
    json_t *o = json_pack("{s:b, s:f, s:f}", "own", f->has_baseline,
                          "usual_peak_5m", (double)f->usual_peak_5m,
                          "usual_per_day", (double)f->usual_day);
    if (o != NULL && f->declared) {
        json_object_set_new(o, "declared_per_day",
                            json_integer(f->declared_per_day));
        json_object_set_new(o, "approved_by",
                            json_string(f->approved_by ? f->approved_by : ""));
    }
    return o;
}

static json_t *counts_json(const detect_facts *f)
{
    const window_sums *s = &f->sums;
    return json_pack(
        "{s:{s:i, s:i}, s:{s:i, s:i, s:i, s:i, s:i, s:i}, "
        "s:{s:b, s:i, s:b, s:b}, s:{s:i, s:i, s:i, s:i, s:i}, "
        "s:{s:i, s:i, s:i, s:i, s:i}}",
        "relationship", "unexplained_1h", s->relation_1h,
                        "unexplained_24h", s->relation_24h,
        "enumeration", "refused_5m", s->denials_5m, "searches_5m", s->searches_5m,
                       "broad_searches_5m", s->broad_5m,
                       "maximal_pages_5m", s->big_pages_5m,
                       "everything_patients_1h", s->everything_1h,
                       "page_index", f->ev->page_index,
        "context", "new_network", f->ctx.new_network,
                   "concurrent_networks", f->ctx.concurrent_networks,
                   "off_hours", f->ctx.off_hours,
                   "outside_networks", f->ctx.outside_networks,
        "authentication", "failures_15m", s->auth_failures_15m,
                          "totp_wrong_in_a_row", f->factor_wrong_run,
                          "source_accounts_15m", f->src_accounts,
                          "source_failures_15m", f->src_failures,
                          "all_failures_15m", f->global_failures,
        "patient", "decoys", f->touch.decoys,
                   "vip_unexplained", f->touch.vips_unexplained,
                   "same_family", f->touch.same_family + f->touch.same_family_explained,
                   "own_record", f->touch.own_record,
                   "vip_actors_24h", f->touch.vip_actors);
}

static json_t *patients_json(const detect_event *ev)
{
    json_t *a = json_array();
    for (size_t i = 0; i < ev->n_patients && i < EVIDENCE_PATIENTS; i++)
        if (ev->patients[i].id)
            json_array_append_new(a, json_string(ev->patients[i].id));
    return a;
}

static json_t *signals_json(const detect_facts *f)
{
    json_t *o = json_object();
    for (int i = 0; i < DETECT_SIG_COUNT; i++) {
        if (f->points[i] <= 0)
            continue;
        json_object_set_new(o, detect_signal_name(1u << i),
            json_pack("{s:f, s:s}", "points", f->points[i],
                      "rule", f->why[i] ? f->why[i] : ""));
    }
    return o;
}

static char *evidence(const detect_facts *f, double model_pts, double h)
{
    const detect_event *ev = f->ev;
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i}",
        "action", ev->action, "role", ev->role ? ev->role : "",
        "resource_type", ev->resource_type ? ev->resource_type : "",
        "patients_in_event", (int)ev->n_patients, "page_size", ev->page_size);
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "windows", windows_json(f));
    json_object_set_new(o, "baseline", baseline_json(f));
    json_t *counts = counts_json(f);
    if (counts != NULL) {
        json_object_update(o, counts);
        json_decref(counts);
    }
    json_object_set_new(o, "model", json_pack("{s:f, s:f, s:f, s:f}",
        "cusum", f->cusum, "threshold", h, "z", f->z, "points", model_pts));
    json_object_set_new(o, "signals", signals_json(f));
    json_object_set_new(o, "hospital", json_pack("{s:i, s:i, s:i, s:i, s:b}",
        "unexplained_1h", f->hospital.unexplained_1h,
        "unexplained_24h", f->hospital.unexplained_24h,
        "limit_1h", f->hospital.limit_1h, "limit_24h", f->hospital.limit_24h,
        "wave", f->hospital.wave));
    json_object_set_new(o, "patients", patients_json(ev));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

/* ---- The alert -------------------------------------------------------------------- */

static void default_id(detect_engine *e, int64_t now_us, char out[DETECT_ALERT_ID_MAX])
{
    snprintf(out, DETECT_ALERT_ID_MAX, "%016llx-%08llx",
             (unsigned long long)now_us, (unsigned long long)++e->alert_counter);
}

static void copy_id(char *dst, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n > DETECT_ID_MAX - 1)
        n = DETECT_ID_MAX - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

int alert_build(detect_engine *e, const detect_facts *f, const char *actor_id,
                const char *source_addr, double score, double model_score,
                unsigned detectors, detect_response response, int64_t now_us,
                detect_alert *out)
{
    memset(out, 0, sizeof *out);
    if (e->cfg.alert_id)
        e->cfg.alert_id(e->cfg.alert_id_ctx, out->id);
    else
        default_id(e, now_us, out->id);
    out->id[DETECT_ALERT_ID_MAX - 1] = '\0';
    out->time_us = now_us;
    copy_id(out->actor, actor_id);
    copy_id(out->source, source_addr);
    out->detectors = detectors;
    out->score = score;
    out->model_score = model_score;
    out->response = response;
    text t;
    explain(&t, f, out->actor, detectors, model_score, e->cfg.model_h, response);
    out->explanation = strdup(t.buf);
    out->evidence_json = evidence(f, model_score, e->cfg.model_h);
    if (out->explanation == NULL || out->evidence_json == NULL) {
        free(out->explanation);
        free(out->evidence_json);
        memset(out, 0, sizeof *out);
        return -1;
    }
    e->alerts++;
    return 0;
}
