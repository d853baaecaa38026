/*
 * cmd_seed.c -- `medvault seed`: fill a store with a synthetic French
 * hospital (departments, physicians and nurses, patients with their whole
 * record) and one demo account per role.
 *
 * Why it exists: `make run`, the benchmarks and the tests need a store that
 * looks like a hospital's without holding anyone's real data, filled through
 * the API's own code so that the demo shows the real thing: every resource
 * is validated, filed under its patient's key, indexed blindly and audited.
 *
 * The order of the work: create the loading account (a service that may only
 * create), load the directory (one transaction Bundle), then one transaction
 * Bundle per patient, lock the loading account (also when anything failed),
 * create the demo accounts, print them.  The same --seed gives the same people and
 * records (not the same ids, passwords or TOTP secrets: those are random).
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../crypto/crypto.h"
#include "../server/server.h"
#include "seed.h"

static const char usage[] =
    "usage: medvault seed [--patients N] [--staff M] [--seed S] [--json]\n"
    "                     --data DIR (--key-file PATH | --passphrase-stdin |\n"
    "                     --passphrase-file PATH)\n\n"
    "Fill a new store with a synthetic hospital, through the FHIR API's own code\n"
    "(validation, policy, encryption, blind indexes, audit): a university\n"
    "hospital in Lyon, ten departments, M physicians and nurses (default 12,\n"
    "4 to 1000), and N patients (default 100, at most 100000), each with a NIR,\n"
    "address, phones, encounters, an active care team, vital signs, conditions,\n"
    "prescriptions and allergies.  One transaction Bundle per patient.\n\n"
    "The data is loaded by the service account seed-loader (scope system/*.c),\n"
    "locked when seeding ends.  Then one demo account per role is created:\n"
    "demo-clinician and demo-nurse (in the care team of some patients),\n"
    "demo-patient (linked to one of those patients), demo-admin, demo-security\n"
    "and demo-service (system/Patient.rs system/Observation.crs).  Their\n"
    "generated passwords and TOTP secrets are shown once.\n\n"
    "  --seed S   the same S gives the same people and records (default: random,\n"
    "             and printed)\n"
    "  --json     print the result as one JSON object, one account per line\n";

static int run_seed(int argc, char **argv);
const cli_command cli_cmd_seed = {
    "seed", run_seed, "fill a store with a synthetic hospital and demo accounts", usage
};

#define DEFAULT_PATIENTS 100
#define DEFAULT_STAFF 12
#define N_DEMO 6
#define MAX_WORKERS 4

typedef struct seed_args {
    cli_store_opts store;
    long patients, staff;
    uint64_t seed;
    int json;
} seed_args;

/* One run's state; everything in it is owned here. */
typedef struct seed_run {
    const seed_args *a;
    cli_session *cs;
    auth *au;
    server *srv;
    seed_hospital h;
    seed_counts counts;
    char in_care[SEED_ID_MAX], outside[SEED_ID_MAX];   /* patients 0 and 1 */
    char family_in_care[48];
    size_t clinician_patients, nurse_patients;
    int64_t started_us;
    double seconds;
    seed_account acc[N_DEMO];
} seed_run;

/* ---- Loading --------------------------------------------------------------------- */

static int load_directory(seed_run *run, mv_err *err)
{
    json_t *bundle = seed_directory_bundle(&run->h, err), *answer = NULL;
    if (bundle == NULL)
        return -1;
    int rc = seed_post_bundle(run->srv, SEED_LOADER, bundle, &answer, &run->counts, err);
    if (rc == 0)
        rc = seed_directory_ids(&run->h, answer, err);
    json_decref(answer);
    json_decref(bundle);
    return rc;
}

static void show_progress(unsigned done, unsigned total)
{
    unsigned step = total / 100 ? total / 100 : 1;
    if (!isatty(STDERR_FILENO) || (done % step != 0 && done != total))
        return;
    fprintf(stderr, "\rmedvault seed: %u/%u patients", done, total);
    if (done == total)
        fputc('\n', stderr);
}

/* The patients are loaded by a few threads sharing one counter: the
 * server's path is thread-safe and concurrent transactions share their
 * fsync (group commit).  Patient i is the same whichever thread makes it. */
typedef struct pool {
    seed_run *run;
    pthread_mutex_t mu;          /* guards everything below and run's totals */
    unsigned next, done;
    int failed;
    mv_err err;
} pool;

/* What one thread loaded, merged into the run when it ends. */
typedef struct tally {
    seed_counts counts;
    size_t clinician_patients, nurse_patients;
} tally;

static int load_patient(seed_run *run, unsigned i, tally *t, mv_err *err)
{
    seed_patient_facts facts;
    json_t *bundle = seed_patient_bundle(&run->h, i, &facts, err), *answer = NULL;
    if (bundle == NULL)
        return -1;
    int rc = seed_post_bundle(run->srv, SEED_LOADER, bundle, &answer, &t->counts, err);
    if (rc == 0 && i <= 1)     /* entry 0 is the Patient; each i has one thread */
        rc = seed_response_id(answer, 0, i == 0 ? run->in_care : run->outside, err);
    if (rc == 0 && i == 0)
        snprintf(run->family_in_care, sizeof run->family_in_care, "%s", facts.family);
    t->clinician_patients += facts.physician == 0;
    t->nurse_patients += facts.nurse == run->h.n_physicians;
    json_decref(answer);
    json_decref(bundle);
    return rc;
}

/* The next patient to load, or -1 when none is left or a thread failed. */
static long take_patient(pool *p)
{
    pthread_mutex_lock(&p->mu);
    long i = p->failed || p->next >= (unsigned)p->run->a->patients ? -1 : (long)p->next++;
    pthread_mutex_unlock(&p->mu);
    return i;
}

static void finish_patient(pool *p, int rc, const mv_err *err)
{
    pthread_mutex_lock(&p->mu);
    if (rc != 0 && !p->failed) {
        p->failed = 1;
        p->err = *err;
    }
    if (rc == 0)
        show_progress(++p->done, (unsigned)p->run->a->patients);
    pthread_mutex_unlock(&p->mu);
}

static void *load_worker(void *arg)
{
    pool *p = arg;
    tally t;
    memset(&t, 0, sizeof t);
    long i;
    while ((i = take_patient(p)) >= 0) {
        mv_err err;
        int rc = load_patient(p->run, (unsigned)i, &t, &err);
        finish_patient(p, rc, &err);
    }
    pthread_mutex_lock(&p->mu);
    seed_counts_merge(&p->run->counts, &t.counts);
    p->run->clinician_patients += t.clinician_patients;
    p->run->nurse_patients += t.nurse_patients;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static unsigned worker_count(long patients)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : cpus;
    return (unsigned)(n < patients ? n : patients);
}

static int load_patients(seed_run *run, mv_err *err)
{
    pool p = { .run = run };
    pthread_t threads[MAX_WORKERS];
    unsigned n = worker_count(run->a->patients), started = 0;
    pthread_mutex_init(&p.mu, NULL);
    while (started < n && pthread_create(&threads[started], NULL, load_worker, &p) == 0)
        started++;
    if (started == 0)
        load_worker(&p);                 /* no thread to be had: do it here */
    for (unsigned k = 0; k < started; k++)
        pthread_join(threads[k], NULL);
    pthread_mutex_destroy(&p.mu);
    if (p.failed)
        *err = p.err;
    return p.failed ? -1 : 0;
}

static int load_hospital(seed_run *run, mv_err *err)
{
    server_config cfg = server_default_config();
    if (server_open_local(run->cs->store, run->cs->trail, &cfg, &run->srv, err) != 0)
        return -1;
    run->started_us = mv_now_us();
    int rc = load_directory(run, err);
    if (rc == 0)
        rc = load_patients(run, err);
    run->seconds = (double)(mv_now_us() - run->started_us) / 1e6;
    server_stop(run->srv);
    run->srv = NULL;
    return rc;
}

/* ---- Demo accounts ------------------------------------------------------------------ */

static void staff_label(const seed_hospital *h, size_t j, size_t patients, char *out,
                        size_t n)
{
    const seed_staff *s = &h->staff[j];
    snprintf(out, n, "%s%s %s, %zu patient%s in care", s->nurse ? "" : "Dr ",
             s->who.given[0], s->who.family, patients, patients == 1 ? "" : "s");
}

/* Who the six accounts are; links point at what was just loaded. */
static void describe_accounts(seed_run *run)
{
    const seed_hospital *h = &run->h;
    seed_account *a = run->acc;
    a[0] = (seed_account){ .username = "demo-clinician", .role = AUTH_ROLE_CLINICIAN };
    snprintf(a[0].practitioner, sizeof a[0].practitioner, "%s", h->staff[0].id);
    staff_label(h, 0, run->clinician_patients, a[0].who, sizeof a[0].who);
    a[1] = (seed_account){ .username = "demo-nurse", .role = AUTH_ROLE_NURSE };
    snprintf(a[1].practitioner, sizeof a[1].practitioner, "%s", h->staff[h->n_physicians].id);
    staff_label(h, h->n_physicians, run->nurse_patients, a[1].who, sizeof a[1].who);
    a[2] = (seed_account){ .username = "demo-patient", .role = AUTH_ROLE_PATIENT };
    snprintf(a[2].patient, sizeof a[2].patient, "%s", run->in_care);
    snprintf(a[2].who, sizeof a[2].who, "the patient Patient/%s (family name %s)",
             run->in_care, run->family_in_care);
    a[3] = (seed_account){ .username = "demo-admin", .role = AUTH_ROLE_ADMIN };
    snprintf(a[3].who, sizeof a[3].who, "manages accounts; reads no clinical data");
    a[4] = (seed_account){ .username = "demo-security", .role = AUTH_ROLE_SECURITY };
    snprintf(a[4].who, sizeof a[4].who, "security officer: access logs, break-the-glass "
             "review; reads no clinical data");
    a[5] = (seed_account){ .username = "demo-service", .role = AUTH_ROLE_SERVICE,
                           .scopes = "system/Patient.rs system/Observation.crs" };
    snprintf(a[5].who, sizeof a[5].who, "a laboratory interface: finds patients, "
             "reads and records observations");
}

static int create_accounts(seed_run *run, mv_err *err)
{
    describe_accounts(run);
    for (size_t i = 0; i < N_DEMO; i++)
        if (seed_account_create(run->au, &run->acc[i], run->cs->actor, err) != 0)
            return -1;
    return 0;
}

/* ---- Output ---------------------------------------------------------------------------- */

static double rate(const seed_run *run)
{
    return run->seconds > 0 ? (double)run->counts.total / run->seconds : 0;
}

static json_t *account_json(const seed_account *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s*, s:s*, s:s*, s:s}",
                     "username", a->username, "role", auth_role_name(a->role),
                     "password", a->password, "secret", a->enroll.secret_b32,
                     "otpauth_uri", a->enroll.otpauth_uri,
                     "practitioner", a->practitioner[0] ? a->practitioner : NULL,
                     "patient", a->patient[0] ? a->patient : NULL,
                     "scopes", a->scopes, "who", a->who);
}

/* One object; its "accounts" array has one account per line, so that a
 * shell script can pick one with grep. */
static void print_json(const seed_run *run)
{
    json_t *created = json_object();
    for (size_t k = 0; k < run->counts.n_types; k++)
        json_object_set_new(created, run->counts.by_type[k].type,
                            json_integer((json_int_t)run->counts.by_type[k].n));
    json_t *head = json_pack(
        "{s:I, s:I, s:I, s:I, s:o, s:f, s:f, s:s, s:s, s:s, s:s}",
        "seed", (json_int_t)run->a->seed, "patients", (json_int_t)run->a->patients,
        "staff", (json_int_t)run->a->staff, "resources", (json_int_t)run->counts.total,
        "created", created, "seconds", run->seconds, "resources_per_second", rate(run),
        "patient_in_care", run->in_care, "patient_not_in_care", run->outside,
        "family_in_care", run->family_in_care, "loader", SEED_LOADER " (locked)");
    char *text = head ? json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                         JSON_REAL_PRECISION(6)) : NULL;
    json_decref(head);
    if (text == NULL)
        return;
    text[strlen(text) - 1] = '\0';                    /* drop the closing brace */
    printf("%s,\"accounts\":[\n", text);
    free(text);
    for (size_t i = 0; i < N_DEMO; i++) {
        json_t *o = account_json(&run->acc[i]);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        printf("%s%s\n", line ? line : "{}", i + 1 < N_DEMO ? "," : "");
        if (line)
            crypto_wipe(line, strlen(line));
        free(line);
        json_decref(o);
    }
    printf("]}\n");
}

static void print_summary(const seed_run *run)
{
    printf("Seeded a synthetic hospital (seed %llu): %ld patients, %ld staff.\n"
           "Created %zu resources in %.1f s (%.0f resources/s):\n ",
           (unsigned long long)run->a->seed, run->a->patients, run->a->staff,
           run->counts.total, run->seconds, rate(run));
    for (size_t k = 0; k < run->counts.n_types; k++)
        printf(" %s %zu%s", run->counts.by_type[k].type, run->counts.by_type[k].n,
               k + 1 < run->counts.n_types ? "," : "\n");
    printf("The loading account %s is locked.\n\n"
           "Demo accounts (passwords and TOTP secrets are shown only now; a TOTP code\n"
           "is `oathtool --totp -b SECRET`):\n", SEED_LOADER);
    for (size_t i = 0; i < N_DEMO; i++) {
        const seed_account *a = &run->acc[i];
        printf("  %-9s %-15s password %s  TOTP secret %s\n            %s\n",
               auth_role_name(a->role), a->username, a->password, a->enroll.secret_b32,
               a->who);
    }
    printf("\nPatient/%s (%s) is in the care of demo-clinician and demo-nurse;\n"
           "Patient/%s is not (404 for them, unless they break the glass).\n",
           run->in_care, run->family_in_care, run->outside);
}

/* ---- The command ------------------------------------------------------------------------ */

/* Load everything as the loading account, then lock it whatever happened:
 * a failure to lock is the error that matters most. */
static int load_as_loader(seed_run *run, mv_err *err)
{
    if (seed_loader_create(run->au, run->cs->actor, err) != 0)
        return -1;
    int rc = seed_hospital_init(&run->h, run->a->seed, (size_t)run->a->staff,
                                mv_now_us() / 1000000, err);
    if (rc == 0)
        rc = load_hospital(run, err);
    mv_err lock_err;
    if (seed_loader_lock(run->au, run->cs->actor, &lock_err) != 0) {
        mv_fail(err, lock_err.code, "%s is not locked (lock it with 'medvault user "
                "lock %s'): %s", SEED_LOADER, SEED_LOADER, lock_err.msg);
        rc = -1;
    }
    return rc;
}

static int seed_store(cli_session *cs, const void *arg)
{
    seed_run *run = calloc(1, sizeof *run);
    if (run == NULL)
        return cli_error("seed", "out of memory");
    run->a = arg;
    run->cs = cs;
    mv_err err;
    auth_config acfg = auth_default_config();
    int rc = auth_open(cs->store, cs->trail, &acfg, &run->au, &err);
    if (rc == 0)
        rc = load_as_loader(run, &err);
    if (rc == 0)
        rc = create_accounts(run, &err);
    if (rc != 0)
        cli_error("seed", "%s", err.msg);
    else if (cli_audit(cs, "store.seed", "success", NULL, NULL, NULL, NULL) != 0)
        rc = -1;                                      /* cli_audit said why */
    else if (run->a->json)
        print_json(run);
    else
        print_summary(run);
    for (size_t i = 0; i < N_DEMO; i++)
        seed_account_wipe(&run->acc[i]);
    seed_hospital_free(&run->h);
    if (run->au)
        auth_close(run->au);
    free(run);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- Arguments ---------------------------------------------------------------------------- */

static int parse_seed(const char *v, uint64_t *out)
{
    if (*v < '0' || *v > '9')
        return cli_usage_error(&cli_cmd_seed, "--seed needs a number");
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || errno != 0 || n > (unsigned long long)INT64_MAX)
        return cli_usage_error(&cli_cmd_seed, "--seed needs a number below 2^63");
    *out = n;
    return 0;
}

static int check_ranges(const seed_args *a)
{
    if (a->patients > SEED_PATIENTS_MAX)
        return cli_usage_error(&cli_cmd_seed, "--patients is at most %d", SEED_PATIENTS_MAX);
    if (a->staff < SEED_STAFF_MIN || a->staff > SEED_STAFF_MAX)
        return cli_usage_error(&cli_cmd_seed, "--staff must be %d to %d (at least two "
                               "physicians and two nurses)", SEED_STAFF_MIN, SEED_STAFF_MAX);
    return 0;
}

static int parse(int argc, char **argv, seed_args *a, int *seed_given)
{
    enum { OPT_PATIENTS = CLI_OPT_FIRST_FREE, OPT_STAFF, OPT_SEED, OPT_JSON };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "patients", required_argument, NULL, OPT_PATIENTS },
        { "staff", required_argument, NULL, OPT_STAFF },
        { "seed", required_argument, NULL, OPT_SEED },
        { "json", no_argument, NULL, OPT_JSON },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_seed); return -1;
        case OPT_PATIENTS:
            if (cli_parse_count(&cli_cmd_seed, "--patients", optarg, &a->patients) != 0)
                return CLI_USAGE;
            break;
        case OPT_STAFF:
            if (cli_parse_count(&cli_cmd_seed, "--staff", optarg, &a->staff) != 0)
                return CLI_USAGE;
            break;
        case OPT_SEED:
            if (parse_seed(optarg, &a->seed) != 0)
                return CLI_USAGE;
            *seed_given = 1;
            break;
        case OPT_JSON: a->json = 1; break;
        default:
            return cli_usage_error(&cli_cmd_seed, optopt ? "option '%s' needs a value"
                                   : "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_seed, "unexpected argument '%s'", argv[optind]);
    return check_ranges(a);
}

static int run_seed(int argc, char **argv)
{
    seed_args a = { .patients = DEFAULT_PATIENTS, .staff = DEFAULT_STAFF };
    int seed_given = 0;
    int rc = parse(argc, argv, &a, &seed_given);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    if (!seed_given) {
        uint32_t r;
        crypto_random(&r, sizeof r);
        a.seed = r;
    }
    return cli_run_on_store(&cli_cmd_seed, &a.store, CLI_OPEN_DEFAULT, seed_store, &a);
}
