/*
 * cmd_decoy.c -- `medvault decoy plant|list|watermark`: honeytoken patients.
 *
 * Why it exists: in the 2024 breach nothing inside the platform noticed one
 * account reading out every patient.  A decoy is a patient nobody cares
 * for: no active care team names it, no stay is in progress, so no legitimate
 * workflow ever reaches it, and the detector treats any touch of one as a
 * misuse to contain at once.  And since each decoy is a unique person, a
 * leaked file that holds one came from this hospital (issue 6's leak
 * tracing starts here).
 *
 * A decoy must not be told apart from the hospital's patients, so it is made
 * by seed's generator (French names, a NIR with its key, address, phones,
 * e-mail, encounters, vital signs, conditions, prescriptions, a care team
 * that ended after its last stay), names the store's own hospital and
 * practitioners (read from the directory already in the store), has a
 * hospital number that follows the store's patients, and is dated like
 * one of them (plausible_time): planted today, it does not look new.  Its identity (NIR, hospital number, e-mail, phone, family name
 * with birth date) is checked against every patient in the store through
 * the blind indexes and drawn again on any match.  It goes in through the
 * API's own code (validation, sealing, blind index, audit) as a temporary
 * create-only service account, locked when planting ends whatever happened,
 * and is then registered as a sealed _Decoy record committed with its audit
 * entry (server_decoy_save).
 *
 * `decoy watermark` turns one unused decoy into the watermark of an output
 * (server_watermark_pick): what an export tool calls before writing a bulk
 * output, adding the printed Patient to it, so that `medvault leak check`
 * names that output and its recipient when the file leaks.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/crypto.h"
#include "../fhir/fhir.h"
#include "../server/server.h"
#include "seed.h"

static const char usage[] =
    "usage: medvault decoy plant --count N [--json]\n"
    "       medvault decoy list [--json]\n"
    "       medvault decoy watermark --output REF --actor USER [--json]\n"
    "(each with --data DIR and --key-file PATH, --passphrase-stdin or\n"
    "--passphrase-file PATH)\n\n"
    "plant  add N decoy patients (1 to 1000): realistic synthetic patients,\n"
    "       unlike any patient in the store, with a few encounters, vital\n"
    "       signs, conditions, prescriptions and a care team that ended,\n"
    "       naming the store's own hospital and practitioners, dated like\n"
    "       the store's own patients, but in no active care: no legitimate\n"
    "       workflow reaches them, so the server treats any access to one as\n"
    "       a misuse.  The store must hold its directory (an Organization and\n"
    "       practitioners) already.  They are loaded through the API by a\n"
    "       temporary service account that may only create, locked at the end.\n"
    "list   show every decoy: patient id, purpose, when and by whom planted.\n"
    "watermark  make one unused decoy the watermark of output REF (an export's\n"
    "       name) handed to account USER, and print it: the export tool adds\n"
    "       that Patient to the output, and `medvault leak check` names REF and\n"
    "       USER when the output turns up in a leaked file.\n\n"
    "Both print each decoy's id, family and given names, birth date and NIR\n"
    "(--json: one JSON object, one decoy per line).  Keep them: they are how\n"
    "you recognise a decoy in a leaked file, and which output it came from.\n";

static int run_decoy(int argc, char **argv);
const cli_command cli_cmd_decoy = {
    "decoy", run_decoy, "plant, list or watermark decoy (honeytoken) patients", usage
};

#define COUNT_MAX 1000
#define DRAWS_MAX 64               /* identities drawn for one decoy at most */
#define LOADER_PREFIX "decoy-loader-"
#define LOADER_SCOPES "system/*.c"

typedef struct decoy_args {
    cli_store_opts store;
    const char *action;
    long count;
    int json;
    const char *output;          /* watermark: the output's reference */
    const char *actor;           /* watermark: whom it is handed to */
} decoy_args;

/* One decoy planted by this run. */
typedef struct planted {
    char id[SEED_ID_MAX];
    seed_decoy_facts f;
} planted;

/* One `decoy plant`; everything in it is owned here. */
typedef struct plant_run {
    const decoy_args *a;
    cli_session *cs;
    auth *au;
    server *srv;
    seed_hospital h;
    char loader[AUTH_NAME_MAX];      /* the loading account's username */
    char loader_id[AUTH_NAME_MAX];   /* and its id, as the trail names it */
    unsigned next_index;             /* the next hospital number to try */
    planted *done;
    size_t n_done;
    char **patients;                 /* the store's patients before planting */
    size_t n_patients;
} plant_run;

/* Put what led to err in front of its message (err's own text is copied
 * first: it is also the destination). */
static void explain(mv_err *err, const char *what)
{
    mv_err cause = *err;
    mv_fail(err, cause.code, "%s: %s", what, cause.msg);
}

/* ---- The hospital, from the directory in the store ------------------------------------ */

/* The current body of type/id, or NULL (deleted, unreadable, not JSON). */
static json_t *read_body(mv_store *s, const char *type, const char *id)
{
    store_resource r;
    if (store_get(s, type, id, 0, &r, NULL) != 0)
        return NULL;
    json_t *o = r.deleted ? NULL
              : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    store_resource_free(&r);
    return o;
}

static int fits(const char *id)
{
    return strlen(id) < SEED_ID_MAX;
}

/* Departments the seeded names did not identify, to stand in for the rest. */
typedef struct other_depts {
    char id[SEED_DEPARTMENTS][SEED_ID_MAX];
    size_t n;
} other_depts;

/* An Organization that is part of another is a department: the seeded
 * ones by their names, others kept aside; the first one that is part of
 * nothing is the hospital. */
static void place_organization(seed_hospital *h, const char *id, json_t *o,
                               other_depts *others)
{
    if (json_object_get(o, "partOf") == NULL) {
        if (h->org_id[0] == '\0')
            snprintf(h->org_id, sizeof h->org_id, "%s", id);
        return;
    }
    int d = seed_department_index(json_string_value(json_object_get(o, "name")));
    if (d >= 0 && h->dept_id[d][0] == '\0')
        snprintf(h->dept_id[d], sizeof h->dept_id[d], "%s", id);
    else if (others->n < SEED_DEPARTMENTS)
        snprintf(others->id[others->n++], SEED_ID_MAX, "%s", id);
}

static int load_organizations(mv_store *s, seed_hospital *h, mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, "Organization", NULL, 0, &ids, &n, err) != 0)
        return -1;
    other_depts others = { .n = 0 };
    for (size_t i = 0; i < n; i++) {
        json_t *o = fits(ids[i]) ? read_body(s, "Organization", ids[i]) : NULL;
        if (o && !json_is_false(json_object_get(o, "active")))
            place_organization(h, ids[i], o, &others);
        json_decref(o);
    }
    if (h->org_id[0] == '\0' && others.n > 0)       /* only departments: the first */
        snprintf(h->org_id, sizeof h->org_id, "%s", others.id[0]);
    store_ids_free(ids, n);
    if (h->org_id[0] == '\0')
        return mv_fail(err, MV_E_NOTFOUND, "the store holds no Organization: a decoy "
                       "must name the hospital, load its directory first");
    for (size_t d = 0, k = 0; d < SEED_DEPARTMENTS; d++)
        if (h->dept_id[d][0] == '\0')
            snprintf(h->dept_id[d], sizeof h->dept_id[d], "%s",
                     others.n ? others.id[k++ % others.n] : h->org_id);
    return 0;
}

static int has_qualification(json_t *prac, const char *code)
{
    size_t i, j;
    json_t *q, *c;
    json_array_foreach(json_object_get(prac, "qualification"), i, q)
        json_array_foreach(json_object_get(json_object_get(q, "code"), "coding"), j, c) {
            const char *v = json_string_value(json_object_get(c, "code"));
            if (v && strcmp(v, code) == 0)
                return 1;
        }
    return 0;
}

/* The department of practitioner id: its PractitionerRole's organization
 * when that is one of the hospital's departments, else fallback. */
static unsigned staff_department(mv_store *s, const seed_hospital *h, const char *id,
                                 unsigned fallback)
{
    char ref[SEED_ID_MAX + 16];
    snprintf(ref, sizeof ref, "Practitioner/%s", id);
    server_param practitioner = { "practitioner", NULL, ref };
    char **roles = NULL;
    size_t n = 0;
    if (server_find(s, "PractitionerRole", &practitioner, 1, &roles, &n, NULL) != 0)
        return fallback;
    json_t *role = n ? read_body(s, "PractitionerRole", roles[0]) : NULL;
    store_ids_free(roles, n);
    const char *org = json_string_value(json_object_get(json_object_get(role,
                                                        "organization"), "reference"));
    unsigned d = fallback;
    for (unsigned k = 0; org && strncmp(org, "Organization/", 13) == 0 &&
                         k < SEED_DEPARTMENTS; k++)
        if (strcmp(h->dept_id[k], org + 13) == 0) {
            d = k;
            break;
        }
    json_decref(role);
    return d;
}

/* A practitioner as seed's staff: name, kind, department.  0 when it
 * cannot stand for one (no family name, inactive). */
static int as_staff(mv_store *s, const seed_hospital *h, const char *id, json_t *prac,
                    unsigned fallback_dept, seed_staff *out)
{
    json_t *name = json_array_get(json_object_get(prac, "name"), 0);
    const char *family = json_string_value(json_object_get(name, "family"));
    const char *given = json_string_value(json_array_get(json_object_get(name, "given"), 0));
    if (family == NULL || json_is_false(json_object_get(prac, "active")))
        return 0;
    memset(out, 0, sizeof *out);
    snprintf(out->who.family, sizeof out->who.family, "%s", family);
    snprintf(out->who.given[0], sizeof out->who.given[0], "%s", given ? given : "");
    out->who.n_given = 1;
    out->nurse = has_qualification(prac, "RN");
    out->dept = staff_department(s, h, id, fallback_dept);
    snprintf(out->id, sizeof out->id, "%s", id);
    return 1;
}

/* seed's staff: physicians first, then nurses.  A directory without one of
 * the kinds lends the other (its physicians take the nurses' place). */
static void order_staff(seed_hospital *h, const seed_staff *all, size_t n)
{
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < n; j++)
            if (all[j].nurse == pass)
                h->staff[k++] = all[j];
    h->n_physicians = 0;
    while (h->n_physicians < k && !h->staff[h->n_physicians].nurse)
        h->n_physicians++;
    if (h->n_physicians == 0 || h->n_physicians == k) {
        for (size_t j = 0; j < k; j++)
            h->staff[k + j] = h->staff[j];
        h->n_physicians = k;
        k *= 2;
    }
    h->n_staff = k;
}

static int load_staff(mv_store *s, seed_hospital *h, mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, "Practitioner", NULL, 0, &ids, &n, err) != 0)
        return -1;
    size_t m = n < SEED_STAFF_MAX ? n : SEED_STAFF_MAX, k = 0;
    seed_staff *all = mv_calloc(m ? m : 1, sizeof *all, err);
    h->staff = mv_calloc(2 * (m ? m : 1), sizeof *h->staff, err);
    for (size_t j = 0; all && h->staff && j < n && k < m; j++) {
        json_t *prac = fits(ids[j]) ? read_body(s, "Practitioner", ids[j]) : NULL;
        k += prac && as_staff(s, h, ids[j], prac, (unsigned)(j % SEED_DEPARTMENTS),
                              &all[k]);
        json_decref(prac);
    }
    store_ids_free(ids, n);
    int rc = all && h->staff ? 0 : -1;
    if (rc == 0 && k == 0)
        rc = mv_fail(err, MV_E_NOTFOUND, "the store holds no Practitioner: a decoy's "
                     "encounters must name the hospital's staff, load its directory "
                     "first");
    if (rc == 0)
        order_staff(h, all, k);
    free(all);
    return rc;
}

/* The hospital decoys belong to: the store's own directory, and a random
 * seed for the generator (decoys must not be predictable). */
static int load_hospital(mv_store *s, seed_hospital *h, mv_err *err)
{
    memset(h, 0, sizeof *h);
    crypto_random(&h->seed, sizeof h->seed);
    h->now_s = mv_now_us() / 1000000;
    if (load_organizations(s, h, err) != 0)
        return -1;
    return load_staff(s, h, err);
}

/* ---- A decoy unlike every patient in the store ------------------------------------------- */

typedef struct probe {
    const char *name, *modifier, *value;
} probe;

/* 1 when a Patient matches a (and b, when given), with the search API's
 * semantics (server_find); 0 when none; -1 on error. */
static int patient_matches(mv_store *s, const probe *a, const probe *b, mv_err *err)
{
    server_param p[2] = { { a->name, a->modifier, a->value },
                          { b ? b->name : NULL, b ? b->modifier : NULL, b ? b->value : NULL } };
    char **ids = NULL;
    size_t n = 0;
    if (server_find(s, "Patient", p, b ? 2 : 1, &ids, &n, err) != 0)
        return -1;
    store_ids_free(ids, n);
    return n > 0;
}

/* 1 when a patient in the store shares the decoy's NIR, hospital number,
 * e-mail, mobile phone, or family name and birth date. */
static int identity_taken(mv_store *s, const seed_decoy_facts *f, mv_err *err)
{
    const probe single[] = {
        { "identifier", "", f->who.nir }, { "identifier", "", f->ipp },
        { "telecom", "", f->who.email }, { "telecom", "", f->who.mobile },
    };
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
        int r = patient_matches(s, &single[i], NULL, err);
        if (r != 0)
            return r;
    }
    probe family = { "family", "exact", f->who.family };
    probe birth = { "birthdate", "", f->birth };
    return patient_matches(s, &family, &birth, err);
}

/* The next decoy's Bundle, its identity checked unique. */
static json_t *draw_unique(plant_run *run, seed_decoy_facts *f, mv_err *err)
{
    for (int attempt = 0; attempt < DRAWS_MAX; attempt++) {
        json_t *bundle = seed_decoy_bundle(&run->h, run->next_index++, f, err);
        if (bundle == NULL)
            return NULL;
        int taken = identity_taken(run->cs->store, f, err);
        if (taken == 0)
            return bundle;
        json_decref(bundle);
        if (taken < 0)
            return NULL;
    }
    mv_fail(err, MV_E_CONFLICT, "no identity unlike the store's patients in %d draws",
            DRAWS_MAX);
    return NULL;
}

/* ---- Planting ------------------------------------------------------------------------------ */

static json_t *given_names(const seed_person *p)
{
    char given[100];
    snprintf(given, sizeof given, "%s%s%s", p->given[0], p->n_given > 1 ? " " : "",
             p->n_given > 1 ? p->given[1] : "");
    return json_string(given);
}

/* The registry's record of one decoy (the identity is there for `decoy
 * list`: the operator recognises decoys in a leak by it). */
static int register_decoy(plant_run *run, const planted *d, mv_err *err)
{
    json_t *doc = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:o, s:s, s:s}", "patient", d->id,
                            "purpose", "decoy", "output", "loader", run->loader_id,
                            "family", d->f.who.family, "given", given_names(&d->f.who),
                            "birth_date", d->f.birth, "nir", d->f.who.nir);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = server_decoy_save(run->cs->trail, text, run->cs->actor, "cli", err);
    free(text);
    if (rc != 0) {
        char what[SEED_ID_MAX + 64];
        snprintf(what, sizeof what, "Patient/%s was created but not registered as a decoy",
                 d->id);
        explain(err, what);
    }
    return rc;
}

/* When a decoy's record is dated: the time of a patient of the store drawn
 * at random, a few hours either way (never in the future), so that decoys
 * arrive as the hospital's patients did -- no burst on the day of planting
 * for a _lastUpdated count to show, nothing a "_lastUpdated=lt" skips.
 * 0 (now) in a store without patients. */
static int64_t plausible_time(const plant_run *run)
{
    if (run->n_patients == 0)
        return 0;
    uint32_t r[2];
    crypto_random(r, sizeof r);
    store_resource head;
    if (store_head(run->cs->store, "Patient", run->patients[r[0] % run->n_patients], 0,
                   &head, NULL) != 0)
        return 0;
    int64_t at = head.updated_us;
    store_resource_free(&head);
    const int64_t six_hours = 6 * 3600 * 1000000LL;
    at += (int64_t)(r[1] % (uint32_t)(2 * 3600 * 6)) * 1000000LL - six_hours;
    int64_t latest = mv_now_us() - 60 * 1000000LL;
    return at > latest ? latest : at;
}

static int plant_one(plant_run *run, planted *d, mv_err *err)
{
    json_t *bundle = draw_unique(run, &d->f, err), *answer = NULL;
    if (bundle == NULL)
        return -1;
    if (server_local_backdate(run->srv, plausible_time(run), err) != 0) {
        json_decref(bundle);
        return -1;
    }
    int rc = seed_post_bundle(run->srv, run->loader, bundle, &answer, NULL, err);
    if (rc == 0)
        rc = seed_response_id(answer, 0, d->id, err);    /* entry 0: the Patient */
    json_decref(answer);
    json_decref(bundle);
    return rc == 0 ? register_decoy(run, d, err) : -1;
}

/* Hospital numbers follow the store's patients, as a new admission's would. */
static int first_index(mv_store *s, unsigned *out, mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_patients(s, &ids, &n, err) != 0)
        return -1;
    store_ids_free(ids, n);
    *out = (unsigned)n;
    return 0;
}

static int plant_all(plant_run *run, mv_err *err)
{
    server_config cfg = server_default_config();
    if (first_index(run->cs->store, &run->next_index, err) != 0 ||
        store_patients(run->cs->store, &run->patients, &run->n_patients, err) != 0 ||
        server_open_local(run->cs->store, run->cs->trail, &cfg, &run->srv, err) != 0)
        return -1;
    int rc = 0;
    while (rc == 0 && run->n_done < (size_t)run->a->count) {
        rc = plant_one(run, &run->done[run->n_done], err);
        run->n_done += rc == 0;
    }
    server_stop(run->srv);
    run->srv = NULL;
    store_ids_free(run->patients, run->n_patients);
    run->patients = NULL;
    run->n_patients = 0;
    if (rc != 0 && run->n_done > 0) {
        char what[96];
        snprintf(what, sizeof what, "planted %zu of %ld decoys (see 'medvault decoy list')",
                 run->n_done, run->a->count);
        explain(err, what);
    }
    return rc;
}

/* A loading account of its own for this run (create only), locked when
 * planting ends whatever happened: a failure to lock it matters most. */
static int plant_as_loader(plant_run *run, mv_err *err)
{
    unsigned char r[4];
    crypto_random(r, sizeof r);
    snprintf(run->loader, sizeof run->loader, LOADER_PREFIX "%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3]);
    auth_account acc;
    if (seed_service_create(run->au, run->loader, LOADER_SCOPES, run->cs->actor, err) != 0 ||
        auth_account_get(run->au, run->loader, &acc, err) != 0)
        return -1;
    snprintf(run->loader_id, sizeof run->loader_id, "%s", acc.id);
    int rc = plant_all(run, err);
    mv_err lock_err;
    if (auth_account_lock(run->au, run->loader, "decoys planted: locked so that no "
                          "broad-scope account stays usable", run->cs->actor,
                          &lock_err) != 0) {
        mv_fail(err, lock_err.code, "%s is not locked (lock it with 'medvault user lock "
                "%s'): %s", run->loader, run->loader, lock_err.msg);
        rc = -1;
    }
    return rc;
}

/* ---- Output ---------------------------------------------------------------------------------- */

static json_t *planted_json(const planted *d)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "id", d->id, "family",
                     d->f.who.family, "given", given_names(&d->f.who), "birth_date",
                     d->f.birth, "nir", d->f.who.nir, "ipp", d->f.ipp);
}

static void print_planted_json(const plant_run *run)
{
    printf("{\"planted\":%zu,\"loader\":\"%s (locked)\",\"decoys\":[\n", run->n_done,
           run->loader);
    for (size_t i = 0; i < run->n_done; i++) {
        json_t *o = planted_json(&run->done[i]);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        printf("%s%s\n", line ? line : "{}", i + 1 < run->n_done ? "," : "");
        free(line);
        json_decref(o);
    }
    printf("]}\n");
}

static void print_planted(const plant_run *run)
{
    printf("Planted %zu decoy patient%s (loaded by %s, now locked).\n"
           "Keep this list: it is how you recognise them in a leaked file.\n",
           run->n_done, run->n_done == 1 ? "" : "s", run->loader);
    for (size_t i = 0; i < run->n_done; i++) {
        const planted *d = &run->done[i];
        printf("  Patient/%s  %s %s%s%s, born %s, NIR %s\n", d->id, d->f.who.family,
               d->f.who.given[0], d->f.who.n_given > 1 ? " " : "",
               d->f.who.n_given > 1 ? d->f.who.given[1] : "", d->f.birth, d->f.who.nir);
    }
}

static int plant_store(cli_session *cs, const void *arg)
{
    plant_run run = { .a = arg, .cs = cs };
    mv_err err;
    auth_config acfg = auth_default_config();
    run.done = mv_calloc((size_t)run.a->count, sizeof *run.done, &err);
    int rc = run.done ? load_hospital(cs->store, &run.h, &err) : -1;
    if (rc == 0)
        rc = auth_open(cs->store, cs->trail, &acfg, &run.au, &err);
    if (rc == 0)
        rc = plant_as_loader(&run, &err);
    if (rc != 0)
        cli_error("decoy plant", "%s", err.msg);
    else if (run.a->json)
        print_planted_json(&run);
    else
        print_planted(&run);
    if (run.au)
        auth_close(run.au);
    seed_hospital_free(&run.h);
    free(run.done);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- Listing ------------------------------------------------------------------------------------ */

static const char *member(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static void print_list(json_t *arr, int json)
{
    size_t i;
    json_t *d;
    if (json)
        printf("[");
    json_array_foreach(arr, i, d) {
        if (json) {
            char *line = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n%s", i ? "," : "", line ? line : "{}");
            free(line);
            continue;
        }
        printf("Patient/%s  %-9s planted %s by %s  %s %s, born %s, NIR %s\n",
               member(d, "patient"), member(d, "purpose"), member(d, "planted_at"),
               member(d, "planted_by"), member(d, "family"), member(d, "given"),
               member(d, "birth_date"), member(d, "nir"));
    }
    if (json)
        printf("%s]\n", json_array_size(arr) ? "\n" : "");
    else if (json_array_size(arr) == 0)
        printf("no decoys planted\n");
}

static int list_store(cli_session *cs, const void *arg)
{
    const decoy_args *a = arg;
    mv_err err;
    char *text = NULL;
    if (server_decoy_list(cs->store, NULL, &text, &err) != 0)
        return cli_error("decoy list", "%s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    if (arr == NULL)
        return cli_error("decoy list", "the decoy registry is not readable");
    int rc = cli_audit(cs, "decoy.list", "success", NULL, NULL, NULL, NULL);
    if (rc == 0)
        print_list(arr, a->json);
    json_decref(arr);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- Watermarking ------------------------------------------------------------------------------ */

static int watermark_store(cli_session *cs, const void *arg)
{
    const decoy_args *a = arg;
    mv_err err;
    char patient[SEED_ID_MAX], *text = NULL;
    if (server_watermark_pick(cs->store, cs->trail, a->output, a->actor, "cli", patient,
                              sizeof patient, &err) != 0 ||
        server_decoy_get(cs->store, patient, &text, &err) != 0)
        return cli_error("decoy watermark", "%s", err.msg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        return cli_error("decoy watermark", "the decoy registry is not readable");
    if (a->json)
        cli_print_json_line(doc);
    else
        printf("Patient/%s is the watermark of output %s, handed to %s: add this Patient "
               "to the output (%s %s, born %s, NIR %s)\n", patient, a->output, a->actor,
               member(doc, "family"), member(doc, "given"), member(doc, "birth_date"),
               member(doc, "nir"));
    json_decref(doc);
    return CLI_OK;
}

/* ---- Arguments ------------------------------------------------------------------------------------ */

static int check_args(decoy_args *a, int count_given)
{
    int plant = strcmp(a->action, "plant") == 0;
    int watermark = strcmp(a->action, "watermark") == 0;
    if (!plant && !watermark && strcmp(a->action, "list") != 0)
        return cli_usage_error(&cli_cmd_decoy, "unknown action '%s' (plant, list, "
                               "watermark)", a->action);
    if (watermark != (a->output != NULL) || watermark != (a->actor != NULL))
        return cli_usage_error(&cli_cmd_decoy, watermark ? "watermark needs --output REF "
                               "and --actor USER" : "--output and --actor are for "
                               "watermark");
    if (watermark && (*a->output == '\0' || *a->actor == '\0'))
        return cli_usage_error(&cli_cmd_decoy, "--output and --actor cannot be empty");
    if (plant && !count_given)
        return cli_usage_error(&cli_cmd_decoy, "plant needs --count N");
    if (!plant && count_given)
        return cli_usage_error(&cli_cmd_decoy, "--count is for plant");
    if (plant && a->count > COUNT_MAX)
        return cli_usage_error(&cli_cmd_decoy, "--count is at most %d", COUNT_MAX);
    return 0;
}

static int parse(int argc, char **argv, decoy_args *a)
{
    enum { OPT_COUNT = CLI_OPT_FIRST_FREE, OPT_JSON, OPT_OUTPUT, OPT_ACTOR };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "count", required_argument, NULL, OPT_COUNT },
        { "json", no_argument, NULL, OPT_JSON },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "actor", required_argument, NULL, OPT_ACTOR },
        { 0, 0, 0, 0 }
    };
    int c, count_given = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_decoy); return -1;
        case OPT_COUNT:
            if (cli_parse_count(&cli_cmd_decoy, "--count", optarg, &a->count) != 0)
                return CLI_USAGE;
            count_given = 1;
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_OUTPUT: a->output = optarg; break;
        case OPT_ACTOR: a->actor = optarg; break;
        default:
            return cli_usage_error(&cli_cmd_decoy, optopt ? "option '%s' needs a value"
                                   : "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_decoy, "missing action (plant, list, watermark)");
    a->action = argv[optind++];
    if (optind < argc)
        return cli_usage_error(&cli_cmd_decoy, "unexpected argument '%s'", argv[optind]);
    return check_args(a, count_given);
}

static int run_decoy(int argc, char **argv)
{
    decoy_args a = { .count = 0 };
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    cli_action action = strcmp(a.action, "plant") == 0 ? plant_store
                      : strcmp(a.action, "watermark") == 0 ? watermark_store : list_store;
    return cli_run_on_store(&cli_cmd_decoy, &a.store, CLI_OPEN_DEFAULT, action, &a);
}
