/*
 * detect.h -- the misuse and exfiltration detector: sees every audited
 * decision in-line and decides, before the response is released, whether
 * the actor (or the source address) must be alerted on, asked for a fresh
 * second factor, throttled or contained.
 *
 * Why it exists: in the 2024 breach one stolen account read out 758,912
 * patients and nothing inside the platform noticed.  The policy decides
 * whether ONE access is allowed; the detector looks at the sequence: how many
 * distinct patients an actor touched in the last minutes, hours and day
 * against its own learned baseline and its role's, how many of them it had
 * no care relationship with, whether it enumerates, touches a decoy, comes
 * from a new network, sprays passwords, or snoops on a VIP or a relative.
 * Because the server calls detect_observe() before the answer leaves, the
 * response that would cross a threshold is itself withheld and the very next
 * request of a contained actor is refused.
 *
 * What detect/ owns: the in-memory behaviour state (per actor, per source
 * address, per VIP patient, per role), the rules (signals 1-7 of issue 5),
 * the online learned model beside them (per actor and per role: EWMA mean
 * and variance of distinct patients per 10-minute bucket, CUSUM on the
 * standardised excess), the escalation ladder, bulk-access declarations, and
 * the alerts it raises (id, time, actor, source, detectors, score, model
 * contribution, evidence as JSON, an explanation in plain words, response).
 *
 * What it must never do: hold SQL or touch storage (state survives a restart
 * because the server REPLAYS the last day of the audit trail through
 * detect_observe(..., DETECT_REPLAY, ...)); speak HTTP or write a response
 * (the server applies the verdict: 401 step-up, 429 + Retry-After, session
 * revocation and account lock); call libsodium (alert ids come from the
 * config's callback, or a counter); put a name, a secret or clinical content
 * into an alert (evidence carries counts, windows and pseudonymous patient
 * ids only); keep the status of an alert (open/ack/closed belongs to the
 * server's alert store).  It depends on util/ and jansson only.  It decides
 * and records.
 *
 * Time: every decision uses the event's own time (time_us), never the wall
 * clock, so a replay and the simulator (`medvault simulate`) run in their own
 * time.  Events slightly out of order (threads) count in the current bucket.
 *
 * Threads: every function may be called from any thread; one short mutex
 * guards the engine.  detect_observe() allocates nothing unless it raises an
 * alert (the alert's strings); its cost is O(patients in the event).
 *
 * Memory, bounded: all tables are allocated by detect_new() and never grow.
 * Actors are accounts (and their lineage), never typed names (see
 * detect_event.claimed), and the server sizes max_actors by the accounts
 * that exist; beyond it the least recently seen actor is evicted (its
 * baseline is lost: it is treated as new again, i.e. watched more tightly);
 * the same for max_sources and max_vip_patients.  detect_memory_bytes()
 * gives the exact worst case for a config: 4.6 KB an actor (its week and
 * month of distinct patients included), 440 B a source address, 376 B a
 * VIP patient, 368 B a declaration, 184 KB fixed (the hospital's hours and
 * 64 priors included); with the defaults (10,000 actors, 20,000 sources,
 * 4,096 VIP patients, 256 declarations) 57.8 MB, all allocated at
 * detect_new().
 *
 * Restarts: the learned baselines need baseline_days of history (and the
 * model two days of each hour slot, weekend hours included), so the server
 * replays detect_replay_window_us() of the trail at start, not just the
 * last day.
 */
#ifndef MV_DETECT_H
#define MV_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

/* ---- Responses: the escalation ladder ----------------------------------- */

typedef enum detect_response {
    DETECT_NONE = 0,      /* release the response                                */
    DETECT_ALERT,         /* release it; an alert was (or had been) recorded     */
    DETECT_STEP_UP,       /* withhold; 401 asking for a fresh TOTP (/auth/step-up) */
    DETECT_THROTTLE,      /* withhold; 429 with Retry-After = retry_after_s      */
    DETECT_CONTAIN        /* withhold; revoke the actor's sessions, lock it (only
                             a security officer unlocks; then detect_release)     */
} detect_response;
const char *detect_response_name(detect_response r);   /* "none", "alert", "step-up", "throttle", "contain" */

/* ---- Detectors (signals): a bit set in alerts --------------------------- */

typedef enum detect_signal {
    DETECT_SIG_VOLUME       = 1u << 0,   /* 1. distinct patients per window      */
    DETECT_SIG_RELATIONSHIP = 1u << 1,   /* 2. break-the-glass, unexplained      */
    DETECT_SIG_ENUMERATION  = 1u << 2,   /* 3. searches, pages, 403/404, $everything */
    DETECT_SIG_DECOY        = 1u << 3,   /* 4. honeytoken patient touched        */
    DETECT_SIG_CONTEXT      = 1u << 4,   /* 5. network, sessions, hours, service networks */
    DETECT_SIG_AUTH         = 1u << 5,   /* 6. failures, spraying, stuffing, TOTP wrong */
    DETECT_SIG_PATIENT      = 1u << 6,   /* 7. VIP, same family name, own record */
    DETECT_SIG_MODEL        = 1u << 7    /* the learned model (CUSUM)            */
} detect_signal;
#define DETECT_SIG_COUNT 8
/* "volume", "relationship", "enumeration", "decoy", "context",
 * "authentication", "patient", "model"; NULL for anything else. */
const char *detect_signal_name(unsigned one_signal);

/* ---- Configuration ------------------------------------------------------- */

/* A callback that writes a fresh alert id (at most DETECT_ALERT_ID_MAX-1
 * characters, e.g. 32 hex digits of crypto_random) into out.  Called with
 * the engine's mutex held: it must not call back into detect/. */
#define DETECT_ALERT_ID_MAX 40
typedef void (*detect_alert_id_fn)(void *ctx, char out[DETECT_ALERT_ID_MAX]);

typedef struct detect_config {
    /* Memory caps (tables sized once by detect_new). */
    size_t max_actors;            /* 10000                                     */
    size_t max_sources;           /* 20000: source addresses (auth, blocks)    */
    size_t max_vip_patients;      /* 4096: VIP patients whose actors are tracked */
    size_t max_declarations;      /* 256: bulk declarations and service network lists */

    /* Escalation ladder: the score (0..100) of an event maps to a response. */
    double score_alert;           /* 40 */
    double score_step_up;         /* 60 */
    double score_throttle;        /* 75 */
    double score_contain;         /* 90 */
    int64_t throttle_s;           /* 60: first Retry-After; doubles when repeated */
    int64_t step_up_valid_s;      /* 900: a step-up done in a session waives step-up
                                     for that session this long                    */
    int step_up_ignored_max;      /* 10: requests refused while a step-up is asked
                                     and not done, before detect_gate() contains   */
    int64_t realert_s;            /* 3600: same detectors, same level: one alert per this */

    /* 1. volume: distinct patients per actor.  Until an actor has a learned
     * baseline (baseline_days active days) and no declaration, its limits
     * are its role's, never above these caps. */
    int new_actor_limit_5m;       /* 12  */
    int new_actor_limit_1h;       /* 40  */
    int new_actor_limit_24h;      /* 120 */
    int baseline_days;            /* 3 active days before an actor's own baseline counts */
    double volume_margin;         /* 1.5: limit = max(floor, usual peak x margin + 2) */
    double learned_ceiling;       /* 2: a learned limit never passes this many times
                                     a new actor's hour, day and week (x7 its
                                     day), nor the 5-minute hard cap: a
                                     ratcheted baseline meets it; declare more */
    int hard_cap_5m;              /* 20: more than this many new distinct patients in 5
                                     minutes is contained (the target), unless
                                     the actor is declared or its own learned 5-minute
                                     limit is higher -- 0 disables */

    /* 2. relationship: break-the-glass / unexplained patients (no care team,
     * encounter or order; for a service, no active encounter or order) per
     * hour; in 24 hours, alert at btg_alert_24h, contain at twice that. */
    int btg_alert_1h;             /* 3  (every BTG is reviewed anyway) */
    int btg_step_up_1h;           /* 4  */
    int btg_contain_1h;           /* 8  */
    int btg_alert_24h;            /* 5  */
    /* ... and across the hospital: unexplained patients of every account
     * together in an hour and a day beyond max(this floor, the usual peak x
     * volume_margin + 2) make a wave, in which each account's next
     * unexplained patient asks a step-up, its second of the day throttles
     * and its third contains (many stolen accounts, each under its own
     * limits); 0 disables. */
    int hospital_btg_1h;          /* 8  */
    int hospital_btg_24h;         /* 24 */

    /* 3. enumeration */
    int denials_alert_5m;         /* 6:  403 / hidden 404 / not found          */
    int denials_contain_5m;       /* 20 */
    int searches_alert_5m;        /* 30: searches and pages                     */
    int broad_searches_alert_5m;  /* 5:  searches not narrowed to one patient   */
    int everything_alert_1h;      /* 5:  $everything on distinct patients       */
    int max_page;                 /* 100: the largest page the server serves    */
    int new_actor_page;           /* 20: page for an actor without baseline     */

    /* 5. context */
    int concurrent_window_s;      /* 600: two sessions from different networks  */
    int utc_offset_min;           /* local time for "usual hours" (0 = UTC)     */

    /* 6. authentication */
    int auth_account_fail_alert;  /* 5:  failures on one account in 15 min      */
    int auth_source_accounts_alert;  /* 4: distinct accounts failing from one source in 15 min */
    int auth_source_accounts_block;  /* 8: ... blocks the source                */
    int auth_global_fail_alert;   /* 50: failures across all accounts in 15 min (stuffing wave) */
    int auth_factor_wrong_contain;/* 5:  right password + wrong TOTP within 1 h */

    /* 7. patient-centred */
    int vip_actors_alert_24h;     /* 5: distinct actors on one VIP patient      */

    /* The learned model (per actor, per role); 0 = rules alone. */
    int model_enabled;            /* 1 */
    double model_k;               /* 0.5: CUSUM slack, in standard deviations   */
    double model_h;               /* 8:   CUSUM decision interval               */

    uint64_t hash_seed;           /* seeds the table hashes (server: random)    */
    detect_alert_id_fn alert_id;  /* NULL: "<time hex>-<counter hex>"           */
    void *alert_id_ctx;
} detect_config;

/* Fill c with the defaults above. */
void detect_config_default(detect_config *c);

/* How much of the audit trail to replay at start so that the baselines
 * survive a restart: baseline_days + 1 days, at least 8 (a week, weekend
 * hours included). */
int64_t detect_replay_window_us(const detect_config *c);

/* ---- The engine ---------------------------------------------------------- */

typedef struct detect_engine detect_engine;

/* A new engine (config copied); NULL with err on a bad config or no memory. */
detect_engine *detect_new(const detect_config *c, mv_err *err);
void detect_free(detect_engine *e);          /* NULL is allowed */
/* Worst-case bytes an engine with this config ever holds. */
size_t detect_memory_bytes(const detect_config *c);

/* ---- Events: one per audited decision ------------------------------------ */

typedef enum detect_outcome {
    DETECT_GRANTED = 0,   /* the action succeeded / the data was (to be) disclosed */
    DETECT_DENIED,        /* 403 by policy                                    */
    DETECT_HIDDEN,        /* 404 because policy hides the patient             */
    DETECT_NOT_FOUND,     /* a genuine 404 / 410                              */
    DETECT_FAILED         /* authentication failure, error                    */
} detect_outcome;

/* Per-patient facts, computed by the server (never names). */
enum {
    DETECT_PAT_EXPLAINED   = 1u << 0,  /* care relationship (CareTeam, Encounter, order) */
    DETECT_PAT_BTG         = 1u << 1,  /* reached through break-the-glass      */
    DETECT_PAT_DECOY       = 1u << 2,  /* a honeytoken patient                 */
    DETECT_PAT_VIP         = 1u << 3,  /* flagged VIP                          */
    DETECT_PAT_SAME_FAMILY = 1u << 4,  /* family name equals the actor's       */
    DETECT_PAT_OWN_RECORD  = 1u << 5   /* the actor's own patient record       */
};

typedef struct detect_patient {
    const char *id;       /* pseudonymous patient id                           */
    unsigned flags;       /* DETECT_PAT_*                                       */
} detect_patient;

/* Event-level facts. */
enum {
    DETECT_EV_BROAD_SEARCH = 1u << 0,  /* a search not narrowed to one patient */
    DETECT_EV_WRITE        = 1u << 1   /* a create, update or delete: it tells
                                          the writer nothing it did not send,
                                          so its patients are no disclosure
                                          (an admission desk or an ADT feed
                                          writes for many patients)          */
};

/* Everything the server knows at one audited decision; every field is also
 * derivable from the audit trail (for replay).  Strings are borrowed for the
 * call.  NULL or "" means unknown. */
typedef struct detect_event {
    int64_t time_us;
    const char *actor;         /* account id, or NULL.  Only accounts that
                                  exist are actors: their state is never
                                  evicted by names nobody has             */
    const char *claimed;       /* a failed login on an unknown username: a
                                  stable pseudonym of the typed name, which
                                  counts as one more account tried from the
                                  source and takes no actor state (NULL
                                  otherwise)                               */
    const char *role;          /* "clinician", "nurse", "admin", "security",
                                  "patient", "service"                      */
    const char *department;    /* the account's department, or NULL: picks
                                  its role-and-department prior            */
    const char *session;       /* session reference (never the token)       */
    const char *source;        /* source address, IPv4 or IPv6 text         */
    const char *action;        /* "fhir.read", "fhir.vread", "fhir.search",
                                  "fhir.history", "fhir.everything",
                                  "fhir.create", "fhir.update", "fhir.delete",
                                  "auth.login" (granted or failed),
                                  "auth.login.second-factor-wrong" (password
                                  right, TOTP wrong), "auth.step-up", ...   */
    detect_outcome outcome;
    const char *resource_type; /* "Patient", "Observation", ...             */
    const detect_patient *patients;   /* whose data the response discloses  */
    size_t n_patients;
    int page_size;             /* _count asked (0: none)                    */
    int page_index;            /* 0 for a first page, n for the n-th next page */
    unsigned flags;            /* DETECT_EV_*                               */
} detect_event;

/* ---- Verdicts and alerts ------------------------------------------------- */

#define DETECT_ID_MAX   97     /* actor ids, addresses: 96 + NUL           */

typedef struct detect_alert {
    char id[DETECT_ALERT_ID_MAX];
    int64_t time_us;
    char actor[DETECT_ID_MAX];     /* "" for a source-only alert            */
    char source[DETECT_ID_MAX];
    unsigned detectors;            /* DETECT_SIG_* fired                    */
    double score;                  /* 0..100, the model's part included     */
    double model_score;            /* the model's contribution to score     */
    detect_response response;      /* the response taken                    */
    char *evidence_json;           /* owned: counts, windows, limits,
                                      pseudonymous patient ids              */
    char *explanation;             /* owned: plain words                    */
} detect_alert;

#define DETECT_MAX_ALERTS 4        /* per verdict: the actor's, the source's,
                                      a wave of failed logins across accounts,
                                      and another account's wrong TOTP that no
                                      login followed within 10 minutes      */

typedef struct detect_verdict {
    detect_response response;      /* for THIS request and the actor from now on */
    int64_t retry_after_s;         /* with DETECT_THROTTLE                  */
    detect_response source_response;  /* for the source address: NONE, ALERT,
                                         THROTTLE or CONTAIN (refuse it)    */
    int64_t source_retry_after_s;
    double score;                  /* this event's score                    */
    unsigned detectors;            /* signals that contributed              */
    size_t n_alerts;
    detect_alert alerts[DETECT_MAX_ALERTS];   /* new alerts; the caller stores them */
} detect_verdict;

/* Free the alerts' strings and zero v.  NULL is allowed. */
void detect_verdict_clear(detect_verdict *v);

enum { DETECT_LIVE = 0, DETECT_REPLAY = 1 };

/* See one audited event.  mode DETECT_LIVE: update the state and fill *out
 * (cleared first) with the response for this request and any new alerts.
 * DETECT_REPLAY (rebuilding state from the audit trail at start): update the
 * state and learn, but raise no alert and no response (out is zeroed).
 * Returns -1 (MV_E_INVALID) only for an event without time or action. */
int detect_observe(detect_engine *e, const detect_event *ev, int mode,
                   detect_verdict *out, mv_err *err);

/* The standing response for a request before any work is done: CONTAIN for a
 * contained actor or a blocked source, THROTTLE (with *retry_after_s) while
 * a throttle runs, STEP_UP while a required step-up is not done, else NONE.
 * Each STEP_UP answer counts: an actor that goes on requesting without
 * stepping up (step_up_ignored_max times: a stolen session cannot answer) is
 * contained there and then -- detect_gate() answers CONTAIN, the server
 * locks the account as for a CONTAIN verdict, and the alert leaves with the
 * next verdict of detect_observe() (any actor's).  actor and source may be
 * NULL. */
detect_response detect_gate(detect_engine *e, const char *actor,
                            const char *source, int64_t now_us,
                            int64_t *retry_after_s);

/* The largest page (_count, $everything page, history page) the server may
 * serve this actor now: 0 when contained; new_actor_page for an actor
 * without baseline or declaration; up to max_page otherwise, never more than
 * the actor's remaining 5-minute allowance (at least 1). */
int detect_max_page(detect_engine *e, const char *actor, int64_t now_us);

/* A security officer unlocked the actor (or unblocked the source): forget
 * its containment, throttle and short windows; its baseline is kept.  The
 * server calls it on every unlock, or detect_gate() keeps refusing. */
void detect_release(detect_engine *e, const char *actor);
void detect_release_source(detect_engine *e, const char *source);

/* ---- Declarations and per-account settings ------------------------------- */

/* Legitimate bulk access, approved by a second person with the security role
 * (checked by the caller; detect records approved_by for the evidence): the
 * actor's 24-hour limit becomes the declared volume until until_us, and so
 * do its 5-minute and hourly limits until its own rhythm is learned (an
 * export comes in one go).  The declaration explains its accesses (no
 * relationship, VIP or enumeration signals).  It is still watched: beyond
 * the declared patients per day it alerts, beyond 1.25x it asks a step-up,
 * beyond 1.5x it is contained; once learned, its short windows hold;
 * decoys, context and authentication still apply.
 * Replaces an earlier declaration of the same actor.  -1 when the table is
 * full of unexpired declarations or the arguments are wrong. */
int detect_declare_bulk(detect_engine *e, const char *actor,
                        int64_t expected_patients_per_day, int64_t until_us,
                        const char *approved_by, mv_err *err);
/* Withdraw a declaration (no-op when none). */
void detect_withdraw_bulk(detect_engine *e, const char *actor);

/* The source networks a service account may come from, as space- or
 * comma-separated CIDRs ("10.1.0.0/16 fd00::/8"); NULL or "" removes the
 * list.  Outside them every request of the actor scores as context. */
int detect_set_networks(detect_engine *e, const char *actor,
                        const char *cidrs, mv_err *err);

/* ---- Priors: cold-start limits per role and department -------------------- */

/* What an account of a role (in a department, or any) may touch before it
 * has a baseline of its own, in place of new_actor_limit_*: distinct
 * patients per 5 minutes, hour and day (for a care giver, of the patients
 * its care does not explain).  Set by an administrator (`medvault detect
 * priors`); a role-and-department prior wins over the role's. */
#define DETECT_PRIORS_MAX 64
typedef struct detect_prior {
    const char *role;          /* clinician, nurse, admin, security, service */
    const char *department;    /* NULL or "": the whole role                */
    int limit_5m, limit_1h, limit_24h;
} detect_prior;

/* 0 when p is within bounds: each limit 1 .. learned_ceiling x the
 * new-actor default (5 minutes: at most hard_cap_5m too), not shrinking
 * with the window; -1 with err naming what is wrong. */
int detect_prior_check(const detect_config *c, const detect_prior *p, mv_err *err);
/* Replace every prior at once (n <= DETECT_PRIORS_MAX, each checked). */
int detect_set_priors(detect_engine *e, const detect_prior *list, size_t n,
                      mv_err *err);

/* ---- Introspection (alerts API, tests, simulator) ------------------------ */

typedef struct detect_actor_info {
    int known;                 /* 0: never seen or evicted                   */
    int has_baseline;          /* its own learned baseline counts            */
    int declared;              /* an unexpired bulk declaration              */
    detect_response standing; /* what detect_gate would answer              */
    int patients_5m, patients_1h, patients_24h;   /* distinct patients touched */
    int limit_5m, limit_1h, limit_24h;            /* its current limits      */
    int unexplained_1h;        /* break-the-glass / unexplained patients     */
    double model_cusum;        /* the model's CUSUM statistic (0 when off)   */
} detect_actor_info;

void detect_actor_state(detect_engine *e, const char *actor, int64_t now_us,
                        detect_actor_info *out);

/* The daily review: accounts (lineages left out) ranked by how far their
 * last 24 hours stand from their role's usual daily reach, explained
 * patients included, more so for patients touched off their hours (or,
 * without a baseline, between midnight and 6) and for every unexplained
 * one; a declared bulk reader counts a tenth.  What no alert said: a care
 * giver reading its own patients is never refused, but reading far more
 * of them than its role, at night, ranks first here.  Fills up to max
 * rows, highest score first; returns how many.  Decides nothing. */
typedef struct detect_review_row {
    char actor[DETECT_ID_MAX];
    char role[16];
    int patients_24h;          /* distinct patients, explained included     */
    int unexplained_24h;
    int off_hours_24h;
    int week;                  /* 7-day reach (care givers: unexplained)    */
    int declared;
    double score;
    char explanation[320];
} detect_review_row;
size_t detect_review(detect_engine *e, int64_t now_us, detect_review_row *rows,
                     size_t max);

/* Counters for the benchmark and the simulator. */
typedef struct detect_stats {
    uint64_t events, alerts, evictions;
    size_t actors, sources, vip_patients;
} detect_stats;
void detect_get_stats(detect_engine *e, detect_stats *out);

#endif /* MV_DETECT_H */
