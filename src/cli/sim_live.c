/*
 * sim_live.c -- `medvault simulate --url`: the attacks of issue 5 played
 * against a LIVE server, through its API, over the network.
 *
 * Why it exists: the in-process simulator measures the detector alone; a
 * live run measures what a thief actually gets out of a running server:
 * the policy, the detector in the request path, the withheld answers, the
 * account locks, all as deployed.  Everything goes through the public API:
 *   - accounts are asked for by an administrator (POST /api/users, which
 *     needs a fresh second factor) and approved by the operator's security
 *     officer (two-person control; --security-token-file), then log in
 *     with their TOTP (computed here with liboath, as an authenticator app
 *     would).  Each scenario's accounts come from an administrator of their
 *     own, made that way by the operator's admin: what accounts read counts
 *     against whoever created them (lineage), so one creator for every
 *     attack would make the attacks one actor;
 *   - the patients to aim at are listed by a service account of the run
 *     that holds an approved bulk-access declaration (declared by an
 *     admin, approved by the security officer: the two-person rule), or
 *     read from --patients-file;
 *   - each attacker then uses its session only: it holds no TOTP secret
 *     (a stolen session), so a step-up is a refusal it cannot answer.
 * What counts as exposed: the distinct patients whose data came back in a
 * 2xx answer.  A refusal (401, 403, 423, 429) "sticks" when STICK requests
 * in a row are refused; the time to containment runs from the attack's
 * first request to the first refusal of that run.  Every body is wiped
 * before it is freed (it holds health data).  The attacker does not wait
 * out a throttle's Retry-After: a 429 counts as a refusal.
 */
#include "sim.h"
#include "cli.h"

#include <inttypes.h>
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../crypto/crypto.h"
#include "../http/http.h"

#define STICK 12                  /* refusals in a row that end an attack    */
#define TOKEN_MAX 256
#define SECRET_MAX 64
#define MAX_BODY (64u << 20)
#define BTG_REASON "X-Break-Glass-Reason: urgent review of an emergency admission"

/* ---- Scenarios -------------------------------------------------------------------- */

enum live_sc { LV_BTG, LV_BULK_SERVICE, LV_BULK_SEARCH, LV_DECOY, LV_SPRAYING, LV_COUNT };

static const struct {
    const char *name, *target;
    int limit;                    /* most patients exposed that meets it     */
} live_scenarios[LV_COUNT] = {
    [LV_BTG] = { "btg-spree", "contained at <= 10 patients", 10 },
    [LV_BULK_SERVICE] = { "bulk-service", "contained at <= 20 patients", 20 },
    [LV_BULK_SEARCH] = { "bulk-search", "contained at <= 20 patients", 20 },
    [LV_DECOY] = { "decoy", "contained at the first decoy read", 0 },
    [LV_SPRAYING] = { "spraying", "no account obtained", 0 },
};

int sim_live_scenario_known(const char *name)
{
    for (int i = 0; i < LV_COUNT; i++)
        if (strcmp(name, live_scenarios[i].name) == 0)
            return 1;
    return strcmp(name, "all") == 0;
}

/* ---- A set of strings (patient ids exposed) --------------------------------------- */

typedef struct idset {
    char **v;
    size_t n, cap;
} idset;

static int idset_has(const idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], id) == 0)
            return 1;
    return 0;
}

static int idset_add(idset *s, const char *id, mv_err *err)
{
    if (idset_has(s, id))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = mv_strdup(id, err);
    return s->v[s->n] ? (s->n++, 0) : -1;
}

static void idset_free(idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- The run's state ------------------------------------------------------------------ */

typedef struct live_row {
    int ran;
    const char *skipped;          /* why it did not run                      */
    char account[72], account_id[72];
    int auth;                     /* spraying: accounts, not patients        */
    long exposed, requests, attempts, yielded;
    int contained, locked, alerted, decoy_released;
    int refusal;                  /* the status that stuck (spraying: 403/429) */
    int64_t t0_us, contain_after_us, alert_after_us;
    char by[96];
    int met;
} live_row;

typedef struct live {
    const sim_live_config *cfg;
    char base[512];
    char *operator;               /* the operator's admin token (wiped)      */
    char admin[TOKEN_MAX];        /* the admin making the current accounts   */
    char password[48];            /* of every account the run creates       */
    char tag[9];                  /* in their names                          */
    char spray_source[16];        /* local address of the sprayer, or ""     */
    char *security;               /* the operator's security officer (wiped) */
    idset patients, decoys;
    live_row rows[LV_COUNT];
} live;

static void wipe_buf(mv_buf *b)
{
    if (b->data)
        crypto_wipe(b->data, b->cap);
    mv_buf_free(b);
}

/* One request; *out (may be NULL) gets the JSON answer or NULL. */
static int api(live *l, const char *method, const char *where, const char *token,
               const char *header, const char *json, const char *source, int *status,
               json_t **out, mv_err *err)
{
    char url[2048];
    if (snprintf(url, sizeof url, "%s%s", where[0] == '/' ? l->base : "", where) >=
        (int)sizeof url)
        return mv_fail(err, MV_E_INVALID, "URL too long");
    http_call_req r = { .method = method, .url = url, .bearer = token, .header = header,
                        .json = json, .cacert = l->cfg->cacert, .source = source };
    mv_buf body = {0};
    if (out)
        *out = NULL;
    int rc = http_call(&r, status, &body, err);
    if (rc == 0 && out && body.len)
        *out = json_loadb((const char *)body.data, body.len, 0, NULL);
    wipe_buf(&body);
    return rc;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* POST a JSON document built by json_pack; the text is wiped (passwords). */
static int post_json(live *l, const char *path, const char *token, json_t *doc,
                     int *status, json_t **out, mv_err *err)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = api(l, "POST", path, token, NULL, text, NULL, status, out, err);
    crypto_wipe(text, strlen(text));
    free(text);
    return rc;
}

static int expect(int status, int want, const char *what, json_t *answer, mv_err *err)
{
    if (status == want)
        return 0;
    json_t *issue = json_array_get(json_object_get(answer, "issue"), 0);
    return mv_fail(err, MV_E_INVALID, "%s: the server answered %d%s%s", what, status,
                   issue ? ": " : "", jstr(issue, "diagnostics"));
}

/* ---- Accounts -------------------------------------------------------------------------- */

static int totp_now(const char *secret_b32, char code[7], mv_err *err)
{
    char *raw = NULL;
    size_t raw_len = 0;
    if (oath_init() != OATH_OK ||
        oath_base32_decode(secret_b32, strlen(secret_b32), &raw, &raw_len) != OATH_OK)
        return mv_fail(err, MV_E_INVALID, "the enrollment's TOTP secret is not base32");
    int rc = oath_totp_generate(raw, raw_len, time(NULL), 30, OATH_TOTP_DEFAULT_START_TIME,
                                6, code);
    crypto_wipe(raw, raw_len);
    free(raw);
    return rc == OATH_OK ? 0 : mv_fail(err, MV_E_INTERNAL, "liboath: %s", oath_strerror(rc));
}

/* The operator's security officer approves a two-person request. */
static int approve(live *l, const char *id, mv_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "/api/approvals/%s/approve", id);
    int status = 0;
    json_t *answer = NULL;
    int rc = api(l, "POST", path, l->security, NULL, NULL, NULL, &status, &answer, err);
    if (rc == 0)
        rc = expect(status, 200, "approving an account (does the security token file hold "
                    "a session logged in minutes ago?)", answer, err);
    json_decref(answer);
    return rc;
}

/* Create "sim-TAG-WHAT" (asked by creator, or the current admin when NULL,
 * approved by the security officer); its TOTP secret to secret. */
static int account_create_by(live *l, const char *creator, const char *what,
                             const char *role, const char *practitioner,
                             const char *scopes, char name[72], char secret[SECRET_MAX],
                             mv_err *err)
{
    snprintf(name, 72, "sim-%s-%s", l->tag, what);
    json_t *doc = json_pack("{s:s, s:s, s:s}", "username", name, "role", role,
                            "password", l->password);
    if (doc && practitioner)
        json_object_set_new(doc, "practitioner", json_string(practitioner));
    if (doc && scopes)
        json_object_set_new(doc, "scopes", json_string(scopes));
    int status = 0;
    json_t *answer = NULL;
    int rc = post_json(l, "/api/users", creator ? creator : l->admin, doc, &status,
                       &answer, err);
    if (rc == 0)
        rc = expect(status, 202, "asking for an account (does the admin token file hold "
                    "a session logged in minutes ago?)", answer, err);
    if (rc == 0)
        rc = approve(l, jstr(json_object_get(answer, "approval"), "id"), err);
    if (rc == 0 && snprintf(secret, SECRET_MAX, "%s", jstr(answer, "secret")) >= SECRET_MAX)
        rc = mv_fail(err, MV_E_INVALID, "TOTP secret too long");
    json_t *s = json_object_get(answer, "secret");
    if (s)
        crypto_wipe((void *)json_string_value(s), json_string_length(s));
    json_decref(answer);
    return rc;
}

static int account_create(live *l, const char *what, const char *role,
                          const char *practitioner, const char *scopes, char name[72],
                          char secret[SECRET_MAX], mv_err *err)
{
    return account_create_by(l, NULL, what, role, practitioner, scopes, name, secret, err);
}

static int login(live *l, const char *name, const char *secret, char token[TOKEN_MAX],
                 mv_err *err)
{
    char code[7];
    if (totp_now(secret, code, err) != 0)
        return -1;
    json_t *doc = json_pack("{s:s, s:s, s:s}", "username", name, "password", l->password,
                            "totp", code);
    int status = 0;
    json_t *answer = NULL;
    int rc = post_json(l, "/auth/login", NULL, doc, &status, &answer, err);
    if (rc == 0)
        rc = expect(status, 200, "logging in an account of the run", answer, err);
    if (rc == 0 && snprintf(token, TOKEN_MAX, "%s", jstr(answer, "token")) >= TOKEN_MAX)
        rc = mv_fail(err, MV_E_INVALID, "session token too long");
    json_t *t = json_object_get(answer, "token");
    if (t)
        crypto_wipe((void *)json_string_value(t), json_string_length(t));
    json_decref(answer);
    return rc;
}

/* Create an account and log it in once (its owner at work); the secret is
 * then forgotten: whoever uses the session cannot step up. */
static int account_session(live *l, const char *what, const char *role,
                           const char *practitioner, const char *scopes, char name[72],
                           char token[TOKEN_MAX], mv_err *err)
{
    char secret[SECRET_MAX];
    int rc = account_create(l, what, role, practitioner, scopes, name, secret, err);
    if (rc == 0)
        rc = login(l, name, secret, token, err);
    crypto_wipe(secret, sizeof secret);
    return rc;
}

/* A new administrator for what follows ("sim-TAG-admin-WHAT"), asked for by
 * the operator's admin and approved: the accounts it makes are its lineage. */
static int fresh_admin(live *l, const char *what, mv_err *err)
{
    char name[72], secret[SECRET_MAX], label[40];
    snprintf(label, sizeof label, "admin-%s", what);
    int rc = account_create_by(l, l->operator, label, "admin", NULL, NULL, name, secret, err);
    if (rc == 0)
        rc = login(l, name, secret, l->admin, err);
    crypto_wipe(secret, sizeof secret);
    return rc;
}

/* Whether security sees the account locked; its id for the alerts. */
static void account_state(live *l, live_row *row)
{
    char path[128];
    snprintf(path, sizeof path, "/api/users/%s", row->account);
    int status = 0;
    json_t *a = NULL;
    mv_err err;
    if (api(l, "GET", path, l->security, NULL, NULL, NULL, &status, &a, &err) == 0 &&
        status == 200) {
        row->locked = json_is_true(json_object_get(a, "locked"));
        snprintf(row->account_id, sizeof row->account_id, "%s", jstr(a, "id"));
    }
    json_decref(a);
}

/* ---- Which patients ------------------------------------------------------------------- */

/* Add the Patients an answer carries (a Patient, or a Bundle of them). */
static int collect_patients(json_t *doc, idset *into, long *added, mv_err *err)
{
    const char *type = jstr(doc, "resourceType");
    if (strcmp(type, "Patient") == 0 && jstr(doc, "id")[0]) {
        size_t before = into->n;
        if (idset_add(into, jstr(doc, "id"), err) != 0)
            return -1;
        *added += (long)(into->n - before);
        return 0;
    }
    if (strcmp(type, "Bundle") != 0)
        return 0;
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(doc, "entry"), i, entry)
        if (collect_patients(json_object_get(entry, "resource"), into, added, err) != 0)
            return -1;
    return 0;
}

static const char *next_link(json_t *bundle)
{
    size_t i;
    json_t *link;
    json_array_foreach(json_object_get(bundle, "link"), i, link)
        if (strcmp(jstr(link, "relation"), "next") == 0)
            return jstr(link, "url");
    return NULL;
}

/* One id a line; blank lines and '#' comments skipped. */
static int read_ids(const char *path, idset *into, mv_err *err)
{
    mv_buf b = {0};
    if (mv_file_read(path, MAX_BODY, &b, err) != 0)
        return -1;
    if (mv_buf_append(&b, "", 1, err) != 0) {
        mv_buf_free(&b);
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)b.data, "\r\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\r\n", &save)) {
        line += strspn(line, " \t");
        if (*line != '\0' && *line != '#')
            rc = idset_add(into, line, err);
    }
    mv_buf_free(&b);
    return rc;
}

/* The decoys' patient ids from `medvault decoy list --json` (an array of
 * {"patient": ID, ...}) or `decoy plant --json` ({"decoys": [{"id": ID}]}). */
static int read_decoys(const char *path, idset *into, mv_err *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    json_t *list = json_is_array(doc) ? doc : json_object_get(doc, "decoys");
    int rc = json_is_array(list) ? 0
           : mv_fail(err, MV_E_INVALID, "%s: not the output of 'medvault decoy list "
                     "--json'", path);
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        const char *id = jstr(d, "patient")[0] ? jstr(d, "patient") : jstr(d, "id");
        if (rc == 0)
            rc = id[0] ? idset_add(into, id, err)
                       : mv_fail(err, MV_E_INVALID, "%s: a decoy without an id", path);
    }
    json_decref(doc);
    return rc;
}

/* The admin declares bulk access for the lister; a second person (the
 * run's security officer) approves it. */
static int declare_lister(live *l, const char *name, mv_err *err)
{
    char path[160];
    snprintf(path, sizeof path, "/api/users/%s/bulk-access", name);
    json_t *doc = json_pack("{s:i, s:i, s:s}", "patients_per_day", 1000000, "days", 1,
                            "reason", "medvault simulate: listing the patients the "
                            "simulated attacks aim at");
    int status = 0;
    json_t *answer = NULL;
    int rc = post_json(l, path, l->admin, doc, &status, &answer, err);
    if (rc == 0)
        rc = expect(status, 201, "declaring bulk access for the lister", answer, err);
    json_decref(answer);
    answer = NULL;
    snprintf(path, sizeof path, "/api/users/%s/bulk-access/approve", name);
    if (rc == 0)
        rc = api(l, "POST", path, l->security, NULL, NULL, NULL, &status, &answer, err);
    if (rc == 0)
        rc = expect(status, 200, "approving the lister's bulk access", answer, err);
    json_decref(answer);
    return rc;
}

/* Page through GET /fhir/Patient as the declared lister. */
static int list_patients(live *l, mv_err *err)
{
    char name[72], token[TOKEN_MAX];
    if (account_session(l, "lister", "service", NULL, "system/Patient.rs", name, token,
                        err) != 0 || declare_lister(l, name, err) != 0)
        return -1;
    char url[2048] = "/fhir/Patient?_count=100";
    int rc = 0;
    while (rc == 0 && url[0]) {
        int status = 0;
        json_t *page = NULL;
        long added = 0;
        rc = api(l, "GET", url, token, NULL, NULL, NULL, &status, &page, err);
        if (rc == 0 && status == 403 && l->decoys.n)
            rc = mv_fail(err, MV_E_INVALID, "listing patients: the declared lister was "
                         "refused (a search page holds a decoy): pass --patients-file");
        if (rc == 0)
            rc = expect(status, 200, "listing patients as the declared lister", page, err);
        if (rc == 0)
            rc = collect_patients(page, &l->patients, &added, err);
        const char *next = page && added > 0 ? next_link(page) : NULL;
        url[0] = '\0';
        if (next && snprintf(url, sizeof url, "%s", next) >= (int)sizeof url)
            rc = mv_fail(err, MV_E_INVALID, "a next link too long");
        json_decref(page);
    }
    crypto_wipe(token, sizeof token);
    return rc;
}

/* The targets: real patients only (decoys are the decoy scenario's). */
static int choose_targets(live *l, mv_err *err)
{
    int rc = l->cfg->patients_file ? read_ids(l->cfg->patients_file, &l->patients, err)
                                   : list_patients(l, err);
    if (rc != 0)
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i < l->patients.n; i++) {
        if (idset_has(&l->decoys, l->patients.v[i]) ||
            (l->cfg->patients > 0 && kept >= (size_t)l->cfg->patients))
            free(l->patients.v[i]);
        else
            l->patients.v[kept++] = l->patients.v[i];
    }
    l->patients.n = kept;
    return kept ? 0 : mv_fail(err, MV_E_NOTFOUND, "no patient to aim at (is the store seeded?)");
}

/* ---- An attack ------------------------------------------------------------------------ */

typedef struct attack {
    live *l;
    live_row *row;
    const char *token, *header;
    idset exposed;
    int refused_run;
    int64_t run_started_us;
} attack;

static int is_refusal(int status)
{
    return status == 401 || status == 403 || status == 423 || status == 429;
}

/* One request of the attacker: 1 to go on, 0 when its refusals stuck. */
static int attack_get(attack *a, const char *url, json_t **out, mv_err *err)
{
    int status = 0;
    json_t *doc = NULL;
    if (api(a->l, "GET", url, a->token, a->header, NULL, NULL, &status, &doc, err) != 0)
        return -1;
    a->row->requests++;
    long added = 0;
    if (status >= 200 && status < 300) {
        a->refused_run = 0;
        if (collect_patients(doc, &a->exposed, &added, err) != 0) {
            json_decref(doc);
            return -1;
        }
    } else if (is_refusal(status) && a->refused_run++ == 0) {
        a->run_started_us = mv_now_us();
    }
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return a->refused_run < STICK;
}

static void attack_end(attack *a)
{
    live_row *row = a->row;
    row->ran = 1;
    row->exposed = (long)a->exposed.n;
    account_state(a->l, row);
    row->contained = a->refused_run >= STICK || (a->refused_run > 0 && row->locked);
    if (row->contained)
        row->contain_after_us = a->run_started_us - row->t0_us;
    idset_free(&a->exposed);
}

/* Read patients by id, cycling through the targets, until refused for good
 * (or twice round the list). */
static int read_by_id(attack *a, const char *const *ids, size_t n, mv_err *err)
{
    a->row->t0_us = mv_now_us();
    int go = 1;
    for (size_t i = 0; go == 1 && i < 2 * n + STICK; i++) {
        char path[200];
        snprintf(path, sizeof path, "/fhir/Patient/%s", ids[i % n]);
        go = attack_get(a, path, NULL, err);
    }
    return go < 0 ? -1 : 0;
}

static int run_btg(live *l, mv_err *err)
{
    live_row *row = &l->rows[LV_BTG];
    char token[TOKEN_MAX], practitioner[64];
    snprintf(practitioner, sizeof practitioner, "prac-sim-%s-nowhere", l->tag);
    if (account_session(l, "btg", "clinician", practitioner, NULL, row->account, token,
                        err) != 0)
        return -1;
    attack a = { .l = l, .row = row, .token = token, .header = BTG_REASON };
    int rc = read_by_id(&a, (const char *const *)l->patients.v, l->patients.n, err);
    attack_end(&a);
    crypto_wipe(token, sizeof token);
    return rc;
}

static int run_bulk_service(live *l, mv_err *err)
{
    live_row *row = &l->rows[LV_BULK_SERVICE];
    char token[TOKEN_MAX];
    if (account_session(l, "svc", "service", NULL, "system/Patient.rs", row->account,
                        token, err) != 0)
        return -1;
    attack a = { .l = l, .row = row, .token = token };
    int rc = read_by_id(&a, (const char *const *)l->patients.v, l->patients.n, err);
    attack_end(&a);
    crypto_wipe(token, sizeof token);
    return rc;
}

/* Page GET /fhir/Patient?_count=100 by its next links; a refused page is
 * asked again. */
static int run_bulk_search(live *l, mv_err *err)
{
    live_row *row = &l->rows[LV_BULK_SEARCH];
    char token[TOKEN_MAX], url[2048] = "/fhir/Patient?_count=100";
    if (account_session(l, "search", "service", NULL, "system/Patient.rs", row->account,
                        token, err) != 0)
        return -1;
    attack a = { .l = l, .row = row, .token = token };
    row->t0_us = mv_now_us();
    int go = 1;
    for (long pages = 0; go == 1 && url[0] && pages < 10000; pages++) {
        json_t *page = NULL;
        go = attack_get(&a, url, &page, err);
        const char *next = a.refused_run ? url : next_link(page);
        if (next != url && (next == NULL || snprintf(url, sizeof url, "%s", next) >=
                                                (int)sizeof url))
            url[0] = '\0';
        json_decref(page);
    }
    attack_end(&a);
    crypto_wipe(token, sizeof token);
    return go < 0 ? -1 : 0;
}

/* Two ordinary patients, then a decoy; a refusal after it sticks or not. */
static int run_decoy(live *l, mv_err *err)
{
    live_row *row = &l->rows[LV_DECOY];
    if (l->decoys.n == 0) {
        row->skipped = "no --decoys-file";
        return 0;
    }
    char token[TOKEN_MAX];
    if (account_session(l, "decoy", "service", NULL, "system/Patient.rs", row->account,
                        token, err) != 0)
        return -1;
    const char *ids[STICK + 3];
    size_t n = 0;
    for (size_t i = 0; i < 2 && i < l->patients.n; i++)
        ids[n++] = l->patients.v[i];
    ids[n++] = l->decoys.v[0];
    for (; n < sizeof ids / sizeof ids[0]; n++)
        ids[n] = l->patients.v[n % l->patients.n];
    attack a = { .l = l, .row = row, .token = token };
    row->t0_us = mv_now_us();
    int go = 1;
    for (size_t i = 0; go == 1 && i < n; i++) {
        char path[200];
        snprintf(path, sizeof path, "/fhir/Patient/%s", ids[i]);
        go = attack_get(&a, path, NULL, err);
    }
    row->decoy_released = idset_has(&a.exposed, l->decoys.v[0]);
    attack_end(&a);
    crypto_wipe(token, sizeof token);
    return go < 0 ? -1 : 0;
}

/* ---- Spraying: failed logins on every account from one address -------------------------- */

static int list_usernames(live *l, idset *names, mv_err *err)
{
    int status = 0;
    json_t *doc = NULL;
    int rc = api(l, "GET", "/api/users", l->security, NULL, NULL, NULL, &status, &doc, err);
    if (rc == 0)
        rc = expect(status, 200, "listing the accounts", doc, err);
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(doc, "users"), i, u)
        if (rc == 0)
            rc = idset_add(names, jstr(u, "username"), err);
    json_decref(doc);
    return rc;
}

/* One try: 1 when a session came back, 0 refused, -1 failure. */
static int spray_once(live *l, const char *user, const char *password, int *status,
                      mv_err *err)
{
    json_t *doc = json_pack("{s:s, s:s, s:s}", "username", user, "password", password,
                            "totp", "123456");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    json_t *answer = NULL;
    int rc = api(l, "POST", "/auth/login", NULL, NULL, text,
                 l->spray_source[0] ? l->spray_source : NULL, status, &answer, err);
    free(text);
    int got = rc == 0 && *status == 200 && jstr(answer, "token")[0];
    json_decref(answer);
    return rc < 0 ? -1 : got;
}

static int run_spraying(live *l, mv_err *err)
{
    static const char *const common[] = { "Printemps2025!", "Hopital123!" };
    live_row *row = &l->rows[LV_SPRAYING];
    idset names = {0};
    if (list_usernames(l, &names, err) != 0) {
        idset_free(&names);
        return -1;
    }
    row->auth = 1;
    row->t0_us = mv_now_us();
    int refused_run = 0, rc = 0;
    int64_t run_started = 0;
    for (size_t k = 0; k < 2 * names.n && rc == 0 && refused_run < STICK; k++) {
        int status = 0;
        int got = spray_once(l, names.v[k % names.n], common[k / names.n], &status, err);
        if (got < 0) {
            rc = -1;
            break;
        }
        row->attempts++;
        row->yielded += got;
        if (status != 403 && status != 429)
            refused_run = 0;
        else if (refused_run++ == 0)
            run_started = mv_now_us();
        row->refusal = status;
    }
    idset_free(&names);
    row->ran = 1;
    row->contained = refused_run >= STICK;
    row->contain_after_us = run_started - row->t0_us;
    return rc;
}

/* ---- Alerts, as the run's security officer sees them ----------------------------------- */

static void detectors_text(json_t *alert, char *out, size_t n)
{
    size_t i, len = 0;
    json_t *d;
    out[0] = '\0';
    json_array_foreach(json_object_get(alert, "detectors"), i, d) {
        int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", json_string_value(d));
        if (w < 0 || (size_t)w >= n - len)
            break;
        len += (size_t)w;
    }
}

static int alert_is_rows(const live *l, const live_row *row, json_t *alert)
{
    if (row->auth)
        return jstr(alert, "actor")[0] == '\0' && l->spray_source[0] &&
               strcmp(jstr(alert, "source"), l->spray_source) == 0;
    return row->account_id[0] && strcmp(jstr(alert, "actor"), row->account_id) == 0;
}

static void match_alerts(live *l, json_t *alerts)
{
    for (int r = 0; r < LV_COUNT; r++) {
        live_row *row = &l->rows[r];
        size_t i;
        json_t *al;
        int have_contain = 0;
        json_array_foreach(alerts, i, al) {
            if (!row->ran || !alert_is_rows(l, row, al))
                continue;
            int64_t t = json_integer_value(json_object_get(al, "time_us")) - row->t0_us;
            if (t < 0)                        /* an earlier run's */
                continue;
            if (!row->alerted || t < row->alert_after_us)
                row->alert_after_us = t;
            row->alerted = 1;
            int contain = strcmp(jstr(al, "response"), "contain") == 0;
            if (contain || (!have_contain && row->by[0] == '\0'))
                detectors_text(al, row->by, sizeof row->by);
            have_contain |= contain;
        }
    }
}

static void fetch_alerts(live *l)
{
    int status = 0;
    json_t *doc = NULL;
    mv_err err;
    if (api(l, "GET", "/api/alerts", l->security, NULL, NULL, NULL, &status, &doc, &err) != 0 ||
        status != 200)
        fprintf(stderr, "medvault simulate: the alerts could not be read (%s)\n",
                status ? "refused" : err.msg);
    else
        match_alerts(l, json_object_get(doc, "alerts"));
    json_decref(doc);
}

/* ---- Output ------------------------------------------------------------------------ */

static void judge(live_row *row, int sc)
{
    if (sc == LV_SPRAYING)
        row->met = row->yielded == 0;
    else if (sc == LV_DECOY)
        row->met = !row->decoy_released && row->contained;
    else
        row->met = row->contained && row->exposed <= live_scenarios[sc].limit;
}

static void seconds_text(int64_t us, char *out, size_t n)
{
    if (us < 1000000)
        snprintf(out, n, "%.0f ms", (double)us / 1e3);
    else
        snprintf(out, n, "%.1f s", (double)us / 1e6);
}

static void print_row(int sc, const live_row *row)
{
    char exposed[96], contain[96], alert[64], t[32];
    if (row->auth)
        snprintf(exposed, sizeof exposed, "%ld accounts (%ld attempts)", row->yielded,
                 row->attempts);
    else
        snprintf(exposed, sizeof exposed, "%ld%s", row->exposed,
                 row->decoy_released ? " (decoy released)" : "");
    if (row->contained) {
        seconds_text(row->contain_after_us, t, sizeof t);
        snprintf(contain, sizeof contain, "%s%s", t,
                 !row->auth ? (row->locked ? " (account locked)" : "")
                 : row->refusal == 429 ? " (address throttled)" : " (address blocked)");
    } else {
        snprintf(contain, sizeof contain, "%s", row->auth ? "attack ran out of accounts"
                                                          : "not contained");
    }
    seconds_text(row->alert_after_us, t, sizeof t);
    snprintf(alert, sizeof alert, "%s", row->alerted ? t : "none");
    printf("| %s | live server | %s | %s | %s | %s | - | - | %s | %s |\n",
           live_scenarios[sc].name, exposed, contain, alert, row->by[0] ? row->by : "-",
           live_scenarios[sc].target, row->met ? "yes" : "**no**");
}

static void json_row(int sc, const live_row *row)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:I, s:b, s:f, s:b, s:f, s:s, s:b, s:b, "
                          "s:I, s:I, s:I, s:b}",
        "scenario", live_scenarios[sc].name, "mode", "live", "account", row->account,
        "auth", row->auth, "exposed", (json_int_t)row->exposed,
        "contained", row->contained, "contain_s", (double)row->contain_after_us / 1e6,
        "alerted", row->alerted, "alert_s", (double)row->alert_after_us / 1e6,
        "contained_by", row->by, "locked", row->locked,
        "decoy_released", row->decoy_released, "requests", (json_int_t)row->requests,
        "attempts", (json_int_t)row->attempts, "yielded", (json_int_t)row->yielded,
        "met", row->met);
    if (j != NULL)
        cli_print_json_line(j);
    json_decref(j);
}

static int report(const live *l, int json)
{
    char missed[256] = "";
    if (!json)
        printf("medvault simulate --url %s (%zu patients aimed at)\n\n"
               "| scenario | detection | patients exposed before containment | "
               "time to containment | first alert | contained by | "
               "false alerts / 1,000 user-days | false lockouts / 1,000 user-days | "
               "target | met |\n|---|---|---|---|---|---|---|---|---|---|\n",
               l->base, l->patients.n);
    for (int sc = 0; sc < LV_COUNT; sc++) {
        const live_row *row = &l->rows[sc];
        if (row->skipped && !json)
            printf("| %s | live server | skipped: %s | - | - | - | - | - | %s | - |\n",
                   live_scenarios[sc].name, row->skipped, live_scenarios[sc].target);
        if (!row->ran)
            continue;
        if (json)
            json_row(sc, row);
        else
            print_row(sc, row);
        if (!row->met) {
            size_t len = strlen(missed);
            snprintf(missed + len, sizeof missed - len, "%s%s", len ? ", " : "",
                     live_scenarios[sc].name);
        }
    }
    if (!json)
        printf("\nAttackers hold a stolen session, not the second factor (a step-up is a "
               "refusal); a refusal sticks after %d in a row.\n%s%s\n", STICK,
               missed[0] ? "target missed by " : "every target met", missed);
    return CLI_OK;
}

/* ---- The run ------------------------------------------------------------------------ */

/* A session token from a file (first line); *out is wiped and freed by
 * sim_live_run. */
static int read_token(const char *path, char **out, mv_err *err)
{
    mv_buf b = {0};
    if (mv_file_read(path, 4096, &b, err) != 0)
        return -1;
    size_t n = b.len;
    while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' '))
        n--;
    *out = n && n < TOKEN_MAX ? calloc(1, n + 1) : NULL;
    if (*out)
        memcpy(*out, b.data, n);
    wipe_buf(&b);
    return *out ? 0 : mv_fail(err, MV_E_INVALID, "%s holds no token", path);
}

/* Loopback server: the sprayer sends from another loopback address, so the
 * block it earns does not hit the operator's own address. */
static void choose_spray_source(live *l)
{
    const char *host = strstr(l->base, "://");
    host = host ? host + 3 : l->base;
    if (strncmp(host, "127.", 4) == 0)
        snprintf(l->spray_source, sizeof l->spray_source, "%s",
                 strncmp(host, "127.0.0.2", 9) == 0 ? "127.0.0.3" : "127.0.0.2");
}

static int live_setup(live *l, mv_err *err)
{
    size_t n = strlen(l->cfg->url);
    while (n > 0 && l->cfg->url[n - 1] == '/')
        n--;
    if (n >= sizeof l->base)
        return mv_fail(err, MV_E_INVALID, "--url too long");
    memcpy(l->base, l->cfg->url, n);
    l->base[n] = '\0';
    choose_spray_source(l);
    char id[33], pw[33];
    crypto_random_id(id);
    crypto_random_id(pw);
    snprintf(l->tag, sizeof l->tag, "%.8s", id);
    snprintf(l->password, sizeof l->password, "sim %s pass", pw);
    crypto_wipe(pw, sizeof pw);
    if (read_token(l->cfg->admin_token_file, &l->operator, err) != 0 ||
        read_token(l->cfg->security_token_file, &l->security, err) != 0)
        return -1;
    if (l->cfg->decoys_file && read_decoys(l->cfg->decoys_file, &l->decoys, err) != 0)
        return -1;
    return fresh_admin(l, "targets", err);
}

static int wanted(const sim_live_config *c, int sc)
{
    return c->scenario == NULL || strcmp(c->scenario, "all") == 0 ||
           strcmp(c->scenario, live_scenarios[sc].name) == 0;
}

static int play_all(live *l, mv_err *err)
{
    static int (*const run[LV_COUNT])(live *, mv_err *) = {
        run_btg, run_bulk_service, run_bulk_search, run_decoy, run_spraying };
    if (live_setup(l, err) != 0 || choose_targets(l, err) != 0)
        return -1;
    for (int sc = 0; sc < LV_COUNT; sc++)     /* spraying last: it earns a block */
        if (wanted(l->cfg, sc) &&
            (fresh_admin(l, live_scenarios[sc].name, err) != 0 || run[sc](l, err) != 0))
            return -1;
    fetch_alerts(l);
    for (int sc = 0; sc < LV_COUNT; sc++)
        judge(&l->rows[sc], sc);
    return 0;
}

int sim_live_run(const sim_live_config *c, mv_err *err)
{
    live *l = calloc(1, sizeof *l);
    if (l == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    l->cfg = c;
    int rc = play_all(l, err);
    if (rc == 0)
        report(l, c->json);
    for (char **t = (char *[]){ l->operator, l->security }, **end = t + 2; t < end; t++)
        if (*t) {
            crypto_wipe(*t, strlen(*t));
            free(*t);
        }
    idset_free(&l->patients);
    idset_free(&l->decoys);
    crypto_wipe(l, sizeof *l);
    free(l);
    return rc;
}
