/*
 * seed.h -- what the files of `medvault seed` share: a synthetic hospital,
 * generated from one number and loaded through the FHIR API's own code.
 *
 * Why it exists: a demo, a benchmark or a test needs thousands of patients
 * that look like a French hospital's (names, NIR with a valid key, addresses,
 * phones, vital signs, diagnoses, prescriptions) without a single real
 * person's data.  The generator is split in three:
 *   seed_data.c   people: names, birth dates, NIR, addresses, phones, e-mails;
 *                 and the pseudo-random numbers behind everything;
 *   seed_build.c  the hospital as FHIR R4: departments, practitioners, and one
 *                 transaction Bundle per patient (encounters, care team,
 *                 observations, conditions, prescriptions, allergies);
 *   seed_load.c   sending those Bundles through server_local_request() and
 *                 reading back the ids the server assigned;
 *   seed_accounts.c  the loading account and the demo accounts.
 * cmd_seed.c owns the command line, the order of the work and the output.
 *
 * What it must never do: write to the store other than through the API's
 * code path, or use the pseudo-random numbers below for anything secret
 * (passwords come from crypto_random).
 */
#ifndef MV_CLI_SEED_H
#define MV_CLI_SEED_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../util/util.h"
#include "../auth/auth.h"

/* ---- Pseudo-random numbers (seed_data.c) ----------------------------------
 * xoshiro256**: fast and reproducible, NOT cryptographic.  One generator per
 * record, derived from (seed, stream, index), so patient i is the same person
 * for a given seed whatever the number of patients or staff. */
typedef struct seed_rng {
    uint64_t s[4];
} seed_rng;

enum { SEED_STREAM_STAFF = 1, SEED_STREAM_PATIENT = 2, SEED_STREAM_DECOY = 3 };

void     seed_rng_init(seed_rng *r, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t seed_rng_next(seed_rng *r);
/* Uniform in [0, n) (n > 0). */
unsigned seed_rng_below(seed_rng *r, unsigned n);
/* Uniform in [lo, hi]. */
int      seed_rng_between(seed_rng *r, int lo, int hi);
/* 1 with probability percent/100. */
int      seed_rng_percent(seed_rng *r, unsigned percent);
/* "urn:uuid:" + a version-4-shaped UUID (unique within a Bundle). */
#define SEED_URN_MAX 46
void     seed_rng_urn(seed_rng *r, char out[SEED_URN_MAX]);

/* ---- Calendar (seed_data.c) ----------------------------------------------- */

typedef struct seed_date {
    int y, m, d;
} seed_date;

/* Days since 1970-01-01 and back (proleptic Gregorian). */
int64_t   seed_days_from_date(seed_date d);
seed_date seed_date_from_days(int64_t days);
/* "YYYY-MM-DD" */
void      seed_date_format(seed_date d, char out[11]);
/* A FHIR dateTime in UTC, "YYYY-MM-DDThh:mm:ssZ", from Unix seconds. */
#define SEED_DATETIME_MAX 21
void      seed_datetime_format(int64_t unix_s, char out[SEED_DATETIME_MAX]);

/* ---- People (seed_data.c) -------------------------------------------------- */

typedef struct seed_person {
    int female;
    char family[48];
    char given[2][48];
    int n_given;
    seed_date birth;
    char nir[16];          /* 13 characters and the 2-digit key            */
    char line[2][80];      /* street address; line[1] may be ""            */
    char city[48];
    char postcode[6];
    char mobile[24];       /* patient: "06 12 34 56 78"; staff: the work
                              number, "+33 4 72 11 12 34"                  */
    char landline[16];     /* "04 78 12 34 56" or ""                        */
    char email[160];
} seed_person;

/* A patient: born 1925-2024, living mostly around the (fictional) hospital,
 * with a NIR whose order number makes it unique among the first 999
 * patients of a birth month and commune. */
int seed_person_patient(seed_rng *r, unsigned index, seed_person *p, mv_err *err);
/* A member of staff: 25 to 64 years old; e-mail at the hospital's domain. */
int seed_person_staff(seed_rng *r, seed_person *p, mv_err *err);

/* ---- The hospital (seed_build.c) ------------------------------------------- */

#define SEED_ID_MAX 65
#define SEED_DEPARTMENTS 10
#define SEED_STAFF_MIN 4
#define SEED_STAFF_MAX 1000
#define SEED_PATIENTS_MAX 100000

typedef struct seed_staff {
    seed_person who;
    int nurse;                   /* 0: physician (a clinician account's role) */
    unsigned dept;               /* index into the departments               */
    char rpps[12];               /* 11-digit RPPS professional number        */
    char id[SEED_ID_MAX];        /* the Practitioner id the server assigned  */
} seed_staff;

typedef struct seed_hospital {
    uint64_t seed;
    int64_t now_s;               /* Unix seconds: clinical dates end here     */
    char org_id[SEED_ID_MAX];    /* the hospital's Organization               */
    char dept_id[SEED_DEPARTMENTS][SEED_ID_MAX];
    seed_staff *staff;           /* owned; physicians first, then nurses      */
    size_t n_staff, n_physicians;
} seed_hospital;

/* Generate m members of staff (at least 2 physicians and 2 nurses).  Free
 * with seed_hospital_free. */
int  seed_hospital_init(seed_hospital *h, uint64_t seed, size_t m, int64_t now_s,
                        mv_err *err);
void seed_hospital_free(seed_hospital *h);

/* The directory as one transaction Bundle: the hospital, its departments,
 * every practitioner and their PractitionerRole (new reference). */
json_t *seed_directory_bundle(const seed_hospital *h, mv_err *err);
/* Take the assigned ids from the directory Bundle's answer. */
int seed_directory_ids(seed_hospital *h, const json_t *response, mv_err *err);

/* What one patient's Bundle put where, for the demo accounts. */
typedef struct seed_patient_facts {
    size_t physician, nurse;     /* staff indices of the active care team    */
    char family[48];
} seed_patient_facts;

/* Patient `index` with their whole record as one transaction Bundle (new
 * reference).  Patient 0 is in the care of the first physician and nurse
 * (the demo accounts), patient 1 never is; the others are spread. */
json_t *seed_patient_bundle(const seed_hospital *h, unsigned index,
                            seed_patient_facts *facts, mv_err *err);

/* ---- Decoys (seed_build.c) ------------------------------------------------
 * A decoy (`medvault decoy plant`) is made by the same generator as any
 * patient, with the same kind of record (encounters, vital signs,
 * conditions, prescriptions, sometimes an allergy) naming the hospital h
 * describes, but no CareTeam and never a stay in progress: no care
 * relationship ever reaches it.  Person `index` of stream SEED_STREAM_DECOY
 * under h->seed; index also makes the hospital number (IPP) and the NIR's
 * order number, as for seeded patients. */
typedef struct seed_decoy_facts {
    seed_person who;
    char birth[11];              /* "YYYY-MM-DD"                               */
    char ipp[16];                /* the hospital number                        */
} seed_decoy_facts;

json_t *seed_decoy_bundle(const seed_hospital *h, unsigned index,
                          seed_decoy_facts *facts, mv_err *err);
/* The department (index into the seeded departments) an Organization of
 * that name is, or -1: a store seeded earlier maps back onto its wards. */
int seed_department_index(const char *name);

/* ---- Loading (seed_load.c) ------------------------------------------------- */

struct server;

/* Resources created so far, by type. */
#define SEED_TYPES_MAX 16
typedef struct seed_counts {
    struct { char type[40]; size_t n; } by_type[SEED_TYPES_MAX];
    size_t n_types, total;
} seed_counts;

/* Add from's counts to into's. */
void seed_counts_merge(seed_counts *into, const seed_counts *from);

/* POST bundle to /fhir as account `username`; every entry must answer 201.
 * *response (new reference, the transaction-response) gives the ids;
 * counts (may be NULL) adds what was created. */
int seed_post_bundle(struct server *srv, const char *username, const json_t *bundle,
                     json_t **response, seed_counts *counts, mv_err *err);
/* The id in entry i's response.location ("Type/id/_history/1"), copied to
 * out; -1 when missing. */
int seed_response_id(const json_t *response, size_t i, char out[SEED_ID_MAX],
                     mv_err *err);

/* ---- Accounts (seed_accounts.c) --------------------------------------------
 * The data goes in as SEED_LOADER, a service account whose only scope is
 * create on every type (system/ + "*.c": create anything, read nothing),
 * created first and locked when seeding ends, succeeded or not: no broad
 * account stays usable. */
#define SEED_LOADER "seed-loader"
#define SEED_PASSWORD_MAX 32

int seed_loader_create(auth *au, const char *actor, mv_err *err);
int seed_loader_lock(auth *au, const char *actor, mv_err *err);
/* A service account with these scopes and a random password nobody is
 * shown (it is only ever used through server_local_request): how a loader
 * is made.  MV_E_EXISTS for a taken username. */
int seed_service_create(auth *au, const char *username, const char *scopes,
                        const char *actor, mv_err *err);

/* One demo account: filled in by the caller (username, role, links, who),
 * then by seed_account_create (password, enrollment).  Wipe with
 * seed_account_wipe once shown. */
typedef struct seed_account {
    const char *username;
    auth_role role;
    char practitioner[SEED_ID_MAX];
    char patient[SEED_ID_MAX];
    const char *scopes;
    char who[160];                      /* whom or what it stands for */
    char password[SEED_PASSWORD_MAX];
    auth_enrollment enroll;
} seed_account;

int  seed_account_create(auth *au, seed_account *a, const char *actor, mv_err *err);
void seed_account_wipe(seed_account *a);

#endif /* MV_CLI_SEED_H */
