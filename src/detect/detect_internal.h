/*
 * detect_internal.h -- the detector's state, shared by the files of
 * src/detect/ and by no one else.
 *
 * Why it exists: the engine is split by concern (tables, windows, model,
 * rules, alerts) and these are the structures they share.  Every structure
 * here has a fixed size: the engine allocates all of them once, in
 * detect_new(), so observing an event allocates nothing and memory never
 * grows.  Everything is guarded by the engine's one mutex.
 */
#ifndef MV_DETECT_INTERNAL_H
#define MV_DETECT_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "detect.h"

/* ---- Time units ---------------------------------------------------------- */

#define US_PER_S      1000000LL
#define US_PER_MIN    (60LL * US_PER_S)
#define US_PER_HOUR   (60LL * US_PER_MIN)
#define US_PER_DAY    (24LL * US_PER_HOUR)
#define MODEL_BUCKET_US (10LL * US_PER_MIN)

/* ---- Bounded LRU hash tables (table.c) ------------------------------------ */

#define NO_SLOT UINT32_MAX

/* The head of every table entry.  key is the actor id, the source address or
 * the patient id (truncated to DETECT_ID_MAX-1: ids are shorter). */
typedef struct lru_hdr {
    uint64_t hash;
    uint32_t chain;            /* next entry in the same hash bucket        */
    uint32_t prev, next;       /* LRU list: prev is more recent             */
    uint8_t used;
    char key[DETECT_ID_MAX];
} lru_hdr;

typedef struct lru_table {
    unsigned char *entries;    /* cap entries of stride bytes, lru_hdr first */
    size_t stride, cap, used;
    uint32_t *buckets;         /* nbuckets heads                             */
    size_t nbuckets;           /* a power of two                             */
    uint32_t mru, lru;         /* most / least recently used                 */
    uint64_t evictions;
} lru_table;

int  lru_init(lru_table *t, size_t cap, size_t stride, mv_err *err);
void lru_fini(lru_table *t);
size_t lru_bytes(size_t cap, size_t stride);
/* The entry for key, moved to the front; NULL when absent. */
void *lru_find(lru_table *t, const char *key, uint64_t hash);
/* The entry for key, created zeroed (evicting the least recently used
 * entry when full) when absent; *created says which. */
void *lru_get(lru_table *t, const char *key, uint64_t hash, int *created);
/* Forget an entry. */
void lru_remove(lru_table *t, void *entry);

uint64_t detect_hash(uint64_t seed, const char *s);

/* ---- Addresses (net.c) ------------------------------------------------------ */

/* Networks the whole hospital uses (wards, sites, the VPN): a network from
 * which several accounts work is familiar, one nobody uses is not.  A small
 * open-addressing table; the least recently seen entry of a probe run makes
 * room. */
#define KNOWN_NETS   4096
#define KNOWN_PROBE  8
#define KNOWN_ACTORS 3             /* distinct accounts that make it familiar */
typedef struct known_net {
    uint64_t net;
    uint64_t actors[KNOWN_ACTORS];
    int64_t last_seen_us;
} known_net;

typedef struct cidr {
    uint8_t family;            /* 4 or 6                                     */
    uint8_t prefix;
    uint8_t addr[16];
} cidr;

/* The network an address belongs to (IPv4 /24, IPv6 /48) as a hash; 0 when
 * the address does not parse (it then still counts by its text). */
uint64_t net_of(uint64_t seed, const char *addr);
int  cidr_parse(const char *text, cidr *out);
/* 1 when addr lies in one of the n networks. */
int  cidr_match(const cidr *nets, int n, const char *addr);
/* 1 when KNOWN_ACTORS accounts have worked from net; with record, actor is
 * counted as working from it now. */
struct detect_engine;
int  net_familiar(struct detect_engine *e, uint64_t net, uint64_t who,
                  int64_t now_us, int record);

/* ---- Per-actor state (actor.c) --------------------------------------------- */

#define RECENT_SETS   8
#define RECENT_WAYS   16           /* 128 recently touched patients          */
#define MINUTES       60
#define HOURS         24
#define ACTOR_NETS    8
#define ACTOR_SESSIONS 4
#define MAX_NETS      8            /* CIDRs per service account              */

enum { ROLE_CLINICIAN, ROLE_NURSE, ROLE_ADMIN, ROLE_SECURITY, ROLE_PATIENT,
       ROLE_SERVICE, ROLE_OTHER, ROLE_COUNT };
int role_index(const char *name);

/* Windows of distinct patients. */
enum { WIN_5M, WIN_1H, WIN_24H, WIN_COUNT };

#define WEEK_DAYS  7
#define WEEK_BYTES 64          /* 512 bits a day: exact enough to ~1,500   */
#define MONTH_WEEKS 5          /* weekly bitmaps: the last 29 to 35 days   */

/* A patient this actor touched, and what has been counted for it: 32 bits
 * of its hash with the two low bits holding SEEN_* (8 bytes a patient). */
enum { SEEN_RELATION = 1, SEEN_EVERYTHING = 2, SEEN_MASK = 3 };
typedef struct recent_patient {
    uint32_t tag;              /* hash bits | SEEN_*; 0: empty               */
    int32_t minute;            /* when it was last counted                   */
} recent_patient;

typedef struct minute_bucket {
    int32_t minute;            /* minutes since the epoch held here          */
    uint16_t patients;         /* new distinct patients                      */
    uint16_t relation;         /* of which break-the-glass / unexplained     */
    uint16_t denials;          /* 403 / hidden 404 / not found               */
    uint16_t searches;         /* searches and their pages                   */
    uint16_t broad;            /* searches not narrowed to one patient       */
    uint16_t everything;       /* distinct patients through $everything      */
    uint16_t big_pages;        /* pages asked at the maximum size            */
    uint16_t auth_failures;    /* failed logins on this account              */
} minute_bucket;

typedef struct hour_bucket {
    int32_t hour;
    uint32_t patients;
    uint32_t relation;
    uint32_t off_hours;        /* new patients touched outside usual hours   */
} hour_bucket;

typedef struct actor_net {
    uint64_t net;
    int64_t first_seen_us;
    int64_t last_seen_us;
} actor_net;

typedef struct actor_session {
    uint64_t session;
    uint64_t net;
    int64_t last_seen_us;
} actor_session;

/* The online model of one actor (or one role): per-bucket counts learned
 * overall and per hour of the week type (weekday / weekend x 24 hours), so
 * that a morning peak or a quiet Sunday is compared with its like. */
#define MODEL_SLOTS 48
typedef struct model_slot {
    float mean, var;
    uint16_t n;
} model_slot;

typedef struct model_state {
    int64_t bucket;            /* current 10-minute bucket index              */
    uint32_t count;            /* new distinct patients in it                 */
    uint32_t n;                /* buckets learned                             */
    float mean, var;           /* EWMA of per-bucket counts, all hours        */
    float cusum;
    model_slot slot[MODEL_SLOTS];
} model_state;

typedef struct actor {
    lru_hdr h;
    int role;
    uint64_t dept;             /* hash of its department, 0 when none known  */
    int64_t first_seen_us, last_seen_us;
    /* windows */
    recent_patient recent[RECENT_SETS][RECENT_WAYS];
    minute_bucket minutes[MINUTES];
    hour_bucket hours[HOURS];
    /* baseline (rules) */
    int32_t day;               /* day index of day_max                       */
    uint16_t active_days;
    uint8_t day_active;        /* some patient was touched today (a care
                                  giver's day_max counts only the ones no
                                  relationship explains)                   */
    float day_max[WIN_COUNT];  /* today's largest window counts              */
    float day_seen;            /* today's largest 24-hour reach, explained
                                  patients included (the daily review)     */
    float peak[WIN_COUNT];     /* decayed maximum over past days             */
    /* The distinct patients of each of the last WEEK_DAYS days, as bitmaps
     * (linear counting): their union tells how many patients the actor
     * reached in a week however it paced itself. */
    uint8_t week_bits[WEEK_DAYS][WEEK_BYTES];
    /* The same patients by calendar week, for the month's reach. */
    uint8_t month_bits[MONTH_WEEKS][WEEK_BYTES];
    int32_t month_week[MONTH_WEEKS];  /* the week each bitmap holds (day / 7) */
    int32_t week_day[WEEK_DAYS];   /* the day each bitmap holds              */
    float usual_day;           /* EWMA of distinct patients per active day   */
    uint16_t hour_profile[24]; /* active 10-minute buckets per local hour    */
    int64_t profile_bucket;    /* last bucket counted in hour_profile        */
    /* context */
    actor_net nets[ACTOR_NETS];
    actor_session sessions[ACTOR_SESSIONS];
    /* authentication */
    uint8_t factor_wrong_run;  /* right password, wrong TOTP, in a row       */
    int64_t factor_wrong_us;
    /* model */
    model_state model;
    /* standing response */
    uint8_t contained;
    int64_t throttled_until_us;
    uint8_t throttles;         /* consecutive throttles (backoff)            */
    int64_t step_up_required_us;
    int64_t step_up_done_us;
    uint64_t step_up_session;  /* the session that did it                   */
    uint16_t step_up_refusals; /* requests refused while it was not done    */
    unsigned step_up_asked;    /* the detectors of the last step-up asked   */
    unsigned step_up_vouched;  /* those a step-up done in step_up_session
                                  answered: not asked again that shift      */
    /* alert de-duplication */
    detect_response alert_level;
    unsigned alert_detectors;
    int64_t last_alert_us;
    /* declarations / networks cache */
    uint32_t cfg_gen;
    int32_t cfg_slot;          /* index in the declarations table, -1 none  */
} actor;

/* ---- Per-source state ----------------------------------------------------------- */

#define SOURCE_ACCOUNTS 12
#define AUTH_WINDOW_MIN 15
#define AUTH_WINDOW_US  (AUTH_WINDOW_MIN * US_PER_MIN)

typedef struct source_account {
    uint64_t account;
    int64_t last_us;
} source_account;

typedef struct source {
    lru_hdr h;
    int32_t fail_minute[AUTH_WINDOW_MIN];   /* failures per minute (ring) */
    uint16_t fail_count[AUTH_WINDOW_MIN];
    source_account accounts[SOURCE_ACCOUNTS];
    int64_t blocked_until_us;
    int64_t throttled_until_us;
    detect_response alert_level;
    int64_t last_alert_us;
} source;

/* ---- VIP patients ---------------------------------------------------------------- */

#define VIP_ACTORS 16
typedef struct vip_actor {
    uint64_t actor;
    int64_t last_us;
} vip_actor;

typedef struct vip_patient {
    lru_hdr h;
    vip_actor actors[VIP_ACTORS];
} vip_patient;

/* ---- Declarations and service networks ---------------------------------------- */

typedef struct account_cfg {
    uint8_t used;
    char actor[DETECT_ID_MAX];
    int64_t expected_per_day;   /* 0: no declaration                         */
    int64_t until_us;
    char approved_by[DETECT_ID_MAX];
    int n_nets;
    cidr nets[MAX_NETS];
} account_cfg;

/* ---- Second factors left wrong -------------------------------------------------- */

/* A right password followed by a wrong TOTP code is a typo when a login
 * succeeds within minutes, and an alert when none does. */
#define PENDING_FACTORS 64
#define AUTH_PENDING_US (10 * US_PER_MIN)
typedef struct pending_factor {
    int64_t t_us;
    char actor[DETECT_ID_MAX];
    char source[DETECT_ID_MAX];
} pending_factor;

/* Actors contained by detect_gate() (a step-up asked for and ignored): their
 * alert leaves with the next verdict. */
#define GATE_CONTAINED 16
typedef struct gate_contained {
    int64_t t_us;
    char actor[DETECT_ID_MAX];
    char source[DETECT_ID_MAX];
    unsigned detectors;
    int refusals;
} gate_contained;

/* ---- The engine ----------------------------------------------------------------- */

#define AUTH_GLOBAL_SLOTS AUTH_WINDOW_MIN   /* minutes of failures across accounts */

/* A cold-start limit set by an administrator (priors.c). */
typedef struct prior {
    int used, role;
    uint64_t dept;              /* 0: the whole role                          */
    int limits[WIN_COUNT];
} prior;

/* Unexplained patients across every account, by hour (hospital.c). */
#define HOSPITAL_HOURS 24
typedef struct hospital_state {
    int32_t hour[HOSPITAL_HOURS];
    uint32_t count[HOSPITAL_HOURS];
    int32_t day;                /* the day being counted                      */
    int32_t latest_hour;        /* the latest hour counted                    */
    uint32_t days;              /* days learned                               */
    float peak_1h, peak_24h;    /* the usual largest hour and day             */
} hospital_state;

struct detect_engine {
    detect_config cfg;
    pthread_mutex_t mu;
    lru_table actors, sources, vips;
    account_cfg *accounts;      /* cfg.max_declarations                      */
    uint32_t cfg_gen;
    model_state role_model[ROLE_COUNT];
    float role_peak[ROLE_COUNT][WIN_COUNT];   /* EWMA of actors' daily maxima */
    float role_peak_var[ROLE_COUNT][WIN_COUNT];
    float role_seen[ROLE_COUNT];  /* EWMA of actors' daily reach, explained
                                     patients included (the daily review)  */
    uint32_t role_days[ROLE_COUNT];
    /* failed logins across all accounts (credential stuffing) */
    int32_t global_minute[AUTH_GLOBAL_SLOTS];
    uint32_t global_fail[AUTH_GLOBAL_SLOTS];
    int64_t global_alert_us;
    hospital_state hospital;
    prior priors[DETECT_PRIORS_MAX];
    int n_priors;
    uint64_t alert_counter;
    uint64_t events, alerts;
    int64_t latest_us;          /* the latest event time seen (expiry)       */
    pending_factor pending[PENDING_FACTORS];   /* a ring, oldest at head     */
    gate_contained gated[GATE_CONTAINED];
    int n_gated;
    known_net known_nets[KNOWN_NETS];
    int pending_head, pending_n;
};

/* ---- actor.c ---------------------------------------------------------------------- */

/* What one event added to the actor's windows. */
typedef struct touch_result {
    int new_patients;
    int new_unexplained;       /* of which no care relationship explains    */
    int decoys, vips_unexplained, same_family, same_family_explained;
    int own_record;
    int vip_actors;            /* most distinct actors on one VIP patient (24 h) */
    const char *decoy_id;      /* borrowed from the event                    */
    const char *vip_id;
} touch_result;

void actor_roll_day(detect_engine *e, actor *a, int64_t now_us);
void actor_count_event(detect_engine *e, actor *a, const detect_event *ev,
                       int64_t now_us, touch_result *t);
/* Sums over a window ending now. */
/* A care giver's own patients (explained by its care relationships) are
 * reviewed, never refused: reading more than EXPLAINED_SHARE times its
 * limit of them raises an alert for the daily review, nothing more. */
#define EXPLAINED_SHARE 10

typedef struct window_sums {
    int patients[WIN_COUNT];   /* the volume held to the limits: distinct
                                  patients; for a care giver (clinician,
                                  nurse), those its care relationships do
                                  not explain (break-the-glass)            */
    int seen[WIN_COUNT];       /* distinct patients, explained or not      */
    int week;                  /* distinct patients held to the limits in
                                  the last 7 days (estimated; actor_week,
                                  filled where a decision needs it)        */
    int month;                 /* the same over the last 29-35 days
                                  (actor_month)                            */
    int relation_1h, relation_24h;
    int off_hours_24h;         /* patients first touched outside usual hours */
    int denials_5m, searches_5m, broad_5m, big_pages_5m, everything_1h;
    int auth_failures_15m;
} window_sums;
void actor_sums(const actor *a, int64_t now_us, window_sums *s);
/* The response to ev was withheld: its patients were counted as asked for,
 * and count again when asked for again (retrying is no free pass). */
void actor_forget_withheld(detect_engine *e, actor *a, const detect_event *ev,
                           int64_t now_us);
/* The actor's volume limits now (declaration, own baseline or role). */
void actor_limits(detect_engine *e, actor *a, int64_t now_us,
                  int limits[WIN_COUNT], int64_t *declared);
/* The distinct patients (window_sums.week) the actor may reach in 7 days
 * without a declaration. */
int  actor_week_limit(const detect_engine *e, const actor *a);
/* The distinct patients marked in the last 7 days (estimated). */
int  actor_week(const actor *a, int64_t now_us);
/* ... in the last 29 to 35 days (five calendar weeks), and what the actor
 * may reach in them without a declaration: three weeks' limits (a month at
 * more than 70% of its week, week after week, is a read-out too). */
int  actor_month(const actor *a, int64_t now_us);
int  actor_month_limit(const detect_engine *e, const actor *a);
/* Raise today's maxima with the windows now (each at most its limit). */
void actor_learn_day_max(actor *a, const window_sums *s,
                         const int limits[WIN_COUNT]);
int  actor_has_baseline(const detect_engine *e, const actor *a);
/* A clinician or a nurse: the policy lets it reach patients only through
 * its own care relationships or break-the-glass. */
int  actor_care_giver(const actor *a);
const account_cfg *actor_cfg(detect_engine *e, actor *a);
/* Context facts: 1 when the event's network is new for a baselined actor,
 * the number of distinct networks with live sessions, off-hours. */
typedef struct context_facts {
    int new_network, concurrent_networks, off_hours, outside_networks;
    int unfamiliar;           /* nobody (or too few accounts) works from it */
} context_facts;
void actor_context(detect_engine *e, actor *a, const detect_event *ev,
                   int64_t now_us, context_facts *c);
void actor_forget_windows(actor *a);
/* Count n new patients of this event as touched off hours (outside the
 * actor's usual hours once it has learned them, else between midnight and
 * 6). */
void actor_note_off_hours(const detect_engine *e, actor *a, int64_t now_us, int n,
                          int unusual);

/* ---- priors.c -------------------------------------------------------------------- */

/* The cold-start limits of an actor of role in department dept (hash, 0
 * none): the new-actor defaults unless a prior says otherwise. */
void priors_caps(const detect_engine *e, int role, uint64_t dept, int caps[WIN_COUNT]);
/* The most a learned limit may reach in window w for an actor whose
 * cold-start limits are caps: learned_ceiling x caps (5 minutes: the hard
 * cap). */
int priors_ceiling(const detect_engine *e, const int caps[WIN_COUNT], int w);

/* ---- hospital.c ------------------------------------------------------------------ */

typedef struct hospital_facts {
    int unexplained_1h, unexplained_24h;   /* across every account           */
    int limit_1h, limit_24h;
    int wave;                   /* over either limit                          */
} hospital_facts;
/* Count an event's new unexplained patients (0 to just look) and fill out. */
void hospital_count(detect_engine *e, int64_t now_us, int unexplained,
                    hospital_facts *out);

/* ---- model.c -------------------------------------------------------------------- */

/* Advance a model to the bucket of now (closing finished buckets, which
 * updates the CUSUM and teaches the actor's and the role's estimates) and
 * add n new patients to the current one. */
typedef struct model_params {
    double k, h;               /* CUSUM slack and decision interval          */
    int64_t utc_offset_us;     /* local time, for the hour slots             */
} model_params;
void model_add(model_state *m, int64_t now_us, uint32_t n, model_state *role,
               const model_params *p);
/* The CUSUM statistic if the current bucket closed now (>= 0), and z of the
 * current bucket; uses the role's estimate while the actor's is young. */
double model_score(const model_state *m, const model_state *role,
                   const model_params *p, double *z, int *from_role);

/* ---- rules.c -------------------------------------------------------------------- */

typedef struct detect_facts {
    const detect_event *ev;
    int role;
    int declared;
    int64_t declared_per_day;
    const char *approved_by;
    int has_baseline;
    window_sums sums;
    int limits[WIN_COUNT];
    int week_limit;                   /* distinct patients in 7 days        */
    int month_limit;                  /* ... in about 30 days               */
    touch_result touch;
    context_facts ctx;
    hospital_facts hospital;
    int factor_wrong_run;
    int src_accounts, src_failures, global_failures;
    const char *source_why;           /* the source's rule, when it scored */
    int unresolved;                   /* a wrong TOTP no login followed     */
    int ignored_step_ups;             /* refused while a step-up was asked  */
    double cusum, z;
    int model_from_role;              /* the estimate is the role's        */
    float usual_peak_5m, usual_day;
    double points[DETECT_SIG_COUNT];  /* per signal, index = bit position   */
    const char *why[DETECT_SIG_COUNT];   /* the sub-rule that decided       */
    int volume_window;                /* the window that decided volume     */
} detect_facts;

/* Score every signal into f->points; returns the combined score with and
 * without the model. */
void rules_score(const detect_engine *e, detect_facts *f);
double rules_combine(const double *points, int n);
/* Points for a source address from its failed logins. */
double rules_source_points(const detect_config *c, int accounts, int failures,
                           int global_failures, const char **why);

/* ---- alert.c -------------------------------------------------------------------- */

/* Fill out (its strings owned by the caller's verdict); -1 on no memory. */
int alert_build(detect_engine *e, const detect_facts *f, const char *actor_id,
                const char *source_addr, double score, double model_score,
                unsigned detectors, detect_response response, int64_t now_us,
                detect_alert *out);

#endif /* MV_DETECT_INTERNAL_H */
