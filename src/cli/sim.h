/*
 * sim.h -- what the files of `medvault simulate` share: a synthetic
 * hospital's day-to-day accesses, the attacks of issues 5 and 13, the
 * driver that feeds both to the real detector (src/detect/) in simulated
 * time, and the frozen benign suite of clinical work it was never tuned on.
 *
 * Why it exists: the detector's targets (a bulk read-out contained at 20
 * patients, a break-the-glass spree at 10, a decoy at the first read,
 * spraying and stuffing yielding no account, a slow read-out detected before
 * 500 patients, under 1 false alert per 100 user-days and 1 false lockout per
 * 10,000) are claims about behaviour over weeks of a hospital's traffic.
 * The simulator makes that traffic (departments, shifts, care teams,
 * admissions and discharges, clinics, emergencies that break the glass,
 * services with steady daily rhythms, a declared nightly export), injects
 * one attack, and measures.  The files:
 *   sim_world.c   the hospital: staff, patients, admissions; random numbers;
 *   sim_day.c     one day of legitimate accesses, as events sorted by time;
 *   sim_attack.c  the attackers, which react to the detector's verdicts;
 *   sim_run.c     the driver: events -> detect_observe(), verdicts, metrics;
 *   sim_live.c    the --url mode: the attacks against a live server,
 *                 through its API (accounts, logins, reads), in real time;
 *   sim_suite.c   --suite: the frozen benign suite (its own hospital and
 *                 nine clinical workloads; never edited to fit the detector);
 * cmd_simulate.c owns the command line and prints the table.
 *
 * What the in-process files must never do: touch a store, the network or a
 * clock: everything is in memory, in simulated time, and the same --seed
 * gives the same table.  Only sim_live.c talks to a server (through http/).
 */
#ifndef MV_CLI_SIM_H
#define MV_CLI_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "../detect/detect.h"

/* ---- Pseudo-random numbers (splitmix64; NOT cryptographic) ----------------- */

typedef struct sim_rng {
    uint64_t s;
} sim_rng;

void     sim_rng_init(sim_rng *r, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t sim_next(sim_rng *r);
double   sim_unit(sim_rng *r);                  /* [0, 1)              */
int      sim_below(sim_rng *r, int n);          /* [0, n), n > 0       */
int      sim_chance(sim_rng *r, double p);
double   sim_exp(sim_rng *r, double mean);      /* exponential         */
int      sim_poisson(sim_rng *r, double mean);

/* ---- The hospital (sim_world.c) ----------------------------------------------- */

#define SIM_DEPTS 10          /* department 0 is the emergency department  */
#define SIM_FAMILIES 200      /* family names, drawn with Zipf weights     */
#define SIM_TEAM 2

enum sim_role { SIM_CLINICIAN, SIM_NURSE, SIM_ADMIN, SIM_SECURITY, SIM_SERVICE };
enum sim_service { SVC_NONE, SVC_LAB, SVC_PHARMACY, SVC_IMAGING, SVC_WAREHOUSE,
                   SVC_COUNT };
enum sim_shift { SHIFT_DAY, SHIFT_EVENING, SHIFT_NIGHT };

typedef struct sim_staff {
    char id[32];
    int role;                 /* enum sim_role                              */
    int service;              /* enum sim_service for SIM_SERVICE           */
    int dept;                 /* 0 = emergency                              */
    int shift;                /* nurses: fixed rotation; ED: day or night   */
    int family;
    int ip_net;               /* home network: 10.<ip_net>.0.0/24           */
} sim_staff;

typedef struct sim_patient {
    char id[24];
    int family;
    uint8_t vip, decoy;
    int8_t dept;              /* admitted to (1..9), -1 when not admitted   */
    int32_t until_day;
    int16_t team[SIM_TEAM];   /* clinicians of the care team                */
} sim_patient;

typedef struct sim_config {
    int days, staff, patients;
    uint64_t seed;
} sim_config;

typedef struct sim_world {
    sim_config cfg;
    int n_staff;
    sim_staff *staff;
    int n_patients;           /* real patients, then decoys                 */
    int n_real, n_decoys;
    sim_patient *patients;
    int *store_order;         /* every patient, in the order a search pages */
    int *admitted;            /* indexes of admitted patients                */
    int n_admitted;
    int service_staff[SVC_COUNT];
    int64_t start_us;         /* day 0, 00:00 UTC: a Monday                 */
} sim_world;

int  sim_world_build(sim_world *w, const sim_config *c, mv_err *err);
void sim_world_free(sim_world *w);
/* Discharge and admit for day d (call once per day, in order). */
void sim_world_admissions(sim_world *w, int day);
/* 1 when staff s is in patient p's care team or, for a nurse, in the ward. */
int  sim_cares_for(const sim_world *w, int s, int p);
int  sim_day_of_week(int day);          /* 0 Monday .. 6 Sunday            */
/* "10.a.b.c" for an address number. */
void sim_ip_text(uint32_t ip, char out[16]);
uint32_t sim_ip(int a, int b, int c, int d);

/* ---- Events (sim_day.c) -------------------------------------------------------- */

enum sim_kind {
    EV_READ, EV_SEARCH, EV_CREATE, EV_EVERYTHING, EV_PAGE, EV_DIRECTORY,
    EV_LOGIN, EV_LOGIN_BAD_PASSWORD, EV_LOGIN_BAD_TOTP, EV_STEP_UP
};

typedef struct sim_event {
    int64_t t;
    int32_t actor;            /* staff index                                 */
    int16_t kind;
    uint16_t flags;           /* DETECT_PAT_* of the one patient              */
    int32_t patient;          /* patient index, -1 none; EV_PAGE: first
                                 position in store_order or real order     */
    int32_t count;            /* EV_PAGE: patients in the page              */
    uint32_t ip;
    uint32_t session;
} sim_event;

typedef struct sim_events {
    sim_event *v;
    size_t n, cap;
} sim_events;

int  sim_events_push(sim_events *e, const sim_event *ev);
void sim_events_free(sim_events *e);
void sim_events_sort(sim_events *e);

/* Append day d's legitimate events (some spill into the next morning). */
int sim_day_generate(const sim_world *w, int day, sim_events *out);

/* ---- Attacks (sim_attack.c) ------------------------------------------------------ */

typedef enum sim_scenario {
    SC_BTG_SPREE, SC_BULK_SERVICE, SC_BULK_EVERYTHING, SC_BULK_NEW_ACCOUNT,
    SC_SLOW_READOUT, SC_SLOW_CAREFUL, SC_DECOY, SC_SPRAYING, SC_STUFFING, SC_SNOOP_VIP,
    SC_SNOOP_RELATIVE, SC_SPREAD, SC_WORKLIST, SC_COUNT
} sim_scenario;

typedef struct sim_scenario_info {
    const char *name;
    const char *what;         /* one line for the table                     */
    const char *target;
} sim_scenario_info;
const sim_scenario_info *sim_scenario_get(sim_scenario s);
int sim_scenario_parse(const char *name, sim_scenario *out);

/* What an attack achieved, for the table. */
typedef struct sim_outcome {
    int auth;                 /* spraying / stuffing: accounts, not patients */
    long exposed;             /* distinct patients in released responses     */
    long exposed_at_alert;    /* ... when the first alert came               */
    int alerted, contained, stuck;   /* stuck: a step-up it cannot pass     */
    int64_t alert_after_us, contain_after_us, stuck_after_us;
    unsigned contain_detectors, alert_detectors;
    long decoys_released;     /* decoy records disclosed                     */
    long attempts, passwords_right, yielded, sources_used;
    int met;
} sim_outcome;

typedef struct sim_attacker sim_attacker;

sim_attacker *sim_attacker_new(const sim_world *w, sim_scenario s, int day,
                               mv_err *err);
void sim_attacker_free(sim_attacker *a);
/* Time of its next request; INT64_MAX when finished. */
int64_t sim_attacker_next(const sim_attacker *a);
/* Make its next request against the engine at its time (asking
 * detect_gate() first, as the server does), react to the verdict. */
void sim_attacker_step(sim_attacker *a, detect_engine *e);
/* A verdict given to a legitimate request of the same account during the
 * attack (the stolen account's owner keeps working): its alerts and a
 * containment count for the attack too. */
void sim_attacker_saw(sim_attacker *a, const char *actor, const detect_verdict *v,
                      int64_t now);
/* With verbose, every request and verdict goes to stderr. */
void sim_attacker_verbose(sim_attacker *a, int verbose);
/* What it achieved so far, judged against the scenario's target. */
void sim_attacker_outcome(const sim_attacker *a, sim_outcome *out);

/* ---- Driver (sim_run.c) ----------------------------------------------------------- */

typedef struct sim_benign {
    long user_days;
    long alerts, step_ups, throttles, lockouts, source_blocks;
    long events;
} sim_benign;

/* Configure an engine as the server would for this hospital: service
 * networks, the warehouse's declaration. */
detect_engine *sim_engine_new(const sim_world *w, int model, mv_err *err);

/* Convert one simulated event and observe it live; fills *v (the caller
 * clears it).  Patients of a page are looked up in the world. */
int sim_observe(const sim_world *w, detect_engine *e, const sim_event *ev,
                detect_verdict *v);

/* Run days [0, days) of legitimate traffic; when attack is not NULL, it acts
 * on its day.  Benign counts (every alert, lockout, ... of the legitimate
 * actors; with an attack, only days before it) go to *b. */
int sim_run(sim_world *w, detect_engine *e, sim_attacker *attack,
            int days, sim_benign *b, int verbose, mv_err *err);

/* ---- The frozen benign suite (sim_suite.c) --------------------------------------------- */

enum sim_workload { SIM_WL_CENSUS, SIM_WL_HANDOVER, SIM_WL_ED_TRIAGE, SIM_WL_ED_PHYSICIAN,
                    SIM_WL_RADIOLOGY, SIM_WL_LAB, SIM_WL_PHARMACY, SIM_WL_SECRETARY,
                    SIM_WL_ON_CALL, SIM_WL_COUNT };

typedef struct sim_suite_workload {
    const char *name, *role;
    int per300;               /* its share of a staff of 300                */
    const char *what;
} sim_suite_workload;
const sim_suite_workload *sim_suite_workload_get(int wl);   /* NULL beyond */

/* Rows: one per workload, then these. */
enum { SIM_SUITE_FIRST_STAFF_DAY = SIM_WL_COUNT, SIM_SUITE_FIRST_HOSPITAL_DAY,
       SIM_SUITE_ALL, SIM_SUITE_ROWS };

typedef struct sim_suite_row {
    long user_days, requests, alerts, step_ups, refused, lockouts;
    long explained_days;      /* user-days without any unexplained patient */
    long explained_step_ups;  /* step-ups on those days                     */
} sim_suite_row;

typedef struct sim_suite_result {
    sim_suite_row rows[SIM_SUITE_ROWS];
} sim_suite_result;

typedef struct sim_suite sim_suite;
sim_suite *sim_suite_new(int days, int staff, uint64_t seed, mv_err *err);
void sim_suite_free(sim_suite *h);            /* NULL is allowed */
/* Play every day against a fresh engine (the model on or off). */
int sim_suite_run(sim_suite *h, int model, int verbose, sim_suite_result *out,
                  mv_err *err);
/* 0 lockouts, under 1 alert per 100 user-days, under 1 step-up per 100
 * user-days that read only explained patients. */
int sim_suite_row_met(const sim_suite_row *row);

/* ---- Live mode (sim_live.c) ------------------------------------------------------- */

typedef struct sim_live_config {
    const char *url;              /* "http://127.0.0.1:8080", "https://..."    */
    const char *admin_token_file; /* an admin session with a fresh 2nd factor  */
    const char *security_token_file; /* a security officer's, the same: the
                                     second person who approves the run's
                                     accounts and reads its alerts          */
    const char *cacert;           /* PEM to trust for https, or NULL           */
    const char *patients_file;    /* patient ids, one a line, or NULL: listed
                                     through the API by a declared account      */
    const char *decoys_file;      /* `medvault decoy list --json`, or NULL     */
    const char *scenario;         /* a live scenario's name, "all" or NULL     */
    int patients;                 /* aim at no more than this many (0: all)    */
    int json;
} sim_live_config;

/* 1 for a scenario the live mode plays (btg-spree bulk-service bulk-search
 * decoy spraying) or "all". */
int sim_live_scenario_known(const char *name);
/* Play the scenarios against the server and print the table (or JSON
 * lines); -1 with err when the run could not be made (not when a target
 * is missed: the table says so). */
int sim_live_run(const sim_live_config *c, mv_err *err);

#endif /* MV_CLI_SIM_H */
