/*
 * fhir_facts.c -- the facts the policy decision point asks for, answered
 * from the store: is this practitioner caring for this patient right now,
 * and does this account hold an unexpired break-the-glass grant for them.
 *
 * Why here and not in policy/: policy/ decides and must stay pure (no
 * storage); the server knows how the facts are stored.  A care relationship
 * is an active CareTeam, an in-progress Encounter, an active
 * ServiceRequest the practitioner performs or an open Task it owns (a
 * worklist), naming both the practitioner and the patient, found through
 * the blind indexes (no plaintext index exists), then read: its period,
 * and the practitioner's own participation period, must have begun and
 * not ended.  A date that
 * cannot be read never makes a relationship (deny by default).
 * Break-the-glass grants are sealed "_BtgGrant" records, indexed by
 * (account, patient) and by account, valid until their expiry.
 */
#include "server_internal.h"
#include "fhir_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../crypto/crypto.h"

#define GRANT_TYPE "_BtgGrant"

/* ---- When a period is current ------------------------------------------- */

#define US_PER_S 1000000LL

/* 1 when s[0..n) are all ASCII digits. */
static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* The instants [from, to) a FHIR date or dateTime covers: "2020" the whole
 * year, "2020-06" the month, "2020-06-01" the day, a full dateTime one
 * instant.  -1 when it is none of these: the caller fails closed. */
static int time_span(const char *s, int64_t *from, int64_t *to)
{
    size_t n = strlen(s);
    if (n > 10) {
        if (mv_time_parse(s, from, NULL) != 0)
            return -1;
        *to = *from + 1;
        return 0;
    }
    int valid = (n == 4 || n == 7 || n == 10) && all_digits(s, 4) &&
                (n < 7 || (s[4] == '-' && all_digits(s + 5, 2))) &&
                (n < 10 || (s[7] == '-' && all_digits(s + 8, 2)));
    if (!valid)
        return -1;
    struct tm tm = { .tm_year = atoi(s) - 1900, .tm_mon = n >= 7 ? atoi(s + 5) - 1 : 0,
                     .tm_mday = n == 10 ? atoi(s + 8) : 1 };
    int month = tm.tm_mon, day = tm.tm_mday;
    if (month < 0 || month > 11 || day < 1 || day > 31)
        return -1;
    time_t start = timegm(&tm);
    if (tm.tm_mon != month || tm.tm_mday != day)   /* normalised: no such day */
        return -1;
    struct tm next = { .tm_year = tm.tm_year, .tm_mon = month, .tm_mday = day };
    if (n == 4)
        next.tm_year++;
    else if (n == 7)
        next.tm_mon++;
    else
        next.tm_mday++;
    *from = (int64_t)start * US_PER_S;
    *to = (int64_t)timegm(&next) * US_PER_S;
    return 0;
}

/* 1 when a FHIR Period (absent: always) has begun and not ended at now.
 * A start or end that cannot be read counts as not current: a care
 * relationship is never assumed. */
static int period_current(json_t *period, int64_t now)
{
    if (period == NULL)
        return 1;
    if (!json_is_object(period))
        return 0;
    int64_t from, to;
    json_t *start = json_object_get(period, "start");
    json_t *end = json_object_get(period, "end");
    if (start && (!json_is_string(start) ||
                  time_span(json_string_value(start), &from, &to) != 0 || now < from))
        return 0;
    if (end && (!json_is_string(end) ||
                time_span(json_string_value(end), &from, &to) != 0 || now >= to))
        return 0;
    return 1;
}

/* 1 when ref names Practitioner/<practitioner> (any version of it). */
static int names_practitioner(const char *ref, const char *practitioner)
{
    if (ref == NULL || strncmp(ref, "Practitioner/", 13) != 0)
        return 0;
    ref += 13;
    size_t n = strlen(practitioner);
    return strncmp(ref, practitioner, n) == 0 &&
           (ref[n] == '\0' || strncmp(ref + n, "/_history/", 10) == 0);
}

/* 1 when o carries medvault's label saying practitioner wrote it under
 * break-the-glass and nobody else has confirmed it since. */
static int self_asserted_by(json_t *o, const char *practitioner)
{
    size_t i;
    json_t *label;
    json_array_foreach(json_object_get(json_object_get(o, "meta"), "security"), i, label) {
        const char *system = json_string_value(json_object_get(label, "system"));
        const char *code = json_string_value(json_object_get(label, "code"));
        if (system && code && strcmp(system, FHIR_BTG_LABEL_SYSTEM) == 0 &&
            strcmp(code, practitioner) == 0)
            return 1;
    }
    return 0;
}

/* ---- The resources that make a care relationship ----------------------------
 * Each names the practitioner in its own way and is current in its own
 * statuses.  Tasks and orders are how a worklist is assigned: the
 * radiologist performing a ServiceRequest, the pharmacist owning the Task
 * that verifies a MedicationRequest, the secretary owning the Task of a
 * letter.  They count only while open (a completed order explains
 * nothing) and only for the practitioner they name themselves. */

typedef struct relation_kind {
    const char *type;
    const char *who_param;        /* the search parameter naming the practitioner */
    const char *patient_field;    /* the element naming the patient            */
    const char *statuses[6];      /* the statuses in which it is current       */
    int participants;             /* participant[].<who_key> with a period     */
    const char *who_key;          /* CareTeam member, Encounter individual;
                                     or the element itself (performer, owner)  */
} relation_kind;

static const relation_kind relation_kinds[] = {
    { "CareTeam", "participant", "subject", { "active" }, 1, "member" },
    { "Encounter", "participant", "subject", { "in-progress" }, 1, "individual" },
    { "ServiceRequest", "performer", "subject", { "active" }, 0, "performer" },
    { "Task", "owner", "for", { "requested", "received", "accepted", "ready",
                                "in-progress" }, 0, "owner" },
};
#define RELATION_KINDS (sizeof relation_kinds / sizeof *relation_kinds)

static int has_status(const relation_kind *k, const char *status)
{
    for (size_t i = 0; i < sizeof k->statuses / sizeof *k->statuses && k->statuses[i]; i++)
        if (strcmp(status, k->statuses[i]) == 0)
            return 1;
    return 0;
}

/* 1 when ref (a Reference object) names the practitioner. */
static int reference_names(json_t *ref, const char *practitioner)
{
    return names_practitioner(json_string_value(json_object_get(ref, "reference")),
                              practitioner);
}

/* 1 when the resource names the practitioner, currently: a participant
 * with a current participation period (CareTeam, Encounter), or the
 * performer or owner itself (one reference or a list of them). */
static int names_who(const relation_kind *k, json_t *o, const char *practitioner,
                     int64_t now)
{
    size_t i;
    json_t *p;
    json_t *who = json_object_get(o, k->participants ? "participant" : k->who_key);
    if (!k->participants) {
        if (json_is_object(who))
            return reference_names(who, practitioner);
        json_array_foreach(who, i, p)
            if (reference_names(p, practitioner))
                return 1;
        return 0;
    }
    json_array_foreach(who, i, p)
        if (reference_names(json_object_get(p, k->who_key), practitioner) &&
            period_current(json_object_get(p, "period"), now))
            return 1;
    return 0;
}

static int relationship_current(const relation_kind *k, json_t *o,
                                const char *practitioner, int64_t now)
{
    if (!period_current(json_object_get(o, "period"), now) ||
        self_asserted_by(o, practitioner))
        return 0;
    return names_who(k, o, practitioner, now);
}

/* ---- Facts ---------------------------------------------------------------- */

/* The body itself says it is about patient_ref and is in a current status:
 * the truncated index only proposed it (fhir.h). */
static int names_relation(const relation_kind *k, json_t *o, const char *patient_ref)
{
    const char *st = json_string_value(json_object_get(o, "status"));
    const char *subject = json_string_value(
        json_object_get(json_object_get(o, k->patient_field), "reference"));
    return st && subject && has_status(k, st) && strcmp(subject, patient_ref) == 0;
}

/* Any resource of the kind naming practitioner and patient, current for
 * that practitioner: 1, 0, or -1 on a storage error.  The blind indexes
 * propose candidates (patient and practitioner; the status is not
 * indexed); the current body decides. */
static int related_through(mv_store *s, const relation_kind *k,
                           const char *practitioner, const char *patient, int64_t now)
{
    char pat[128], prac[128];
    snprintf(pat, sizeof pat, "Patient/%s", patient);
    snprintf(prac, sizeof prac, "Practitioner/%s", practitioner);
    store_term terms[] = { { "patient", pat, fhir_param_bits(k->type, "patient") },
                           { k->who_param, prac, fhir_param_bits(k->type, k->who_param) } };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, k->type, terms, 2, &ids, &n, NULL) != 0)
        return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        store_resource r;
        if (store_get(s, k->type, ids[i], 0, &r, NULL) != 0)
            continue;
        json_t *o = r.deleted ? NULL
                  : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        found = o != NULL && names_relation(k, o, pat) &&
                relationship_current(k, o, practitioner, now);
        json_decref(o);
        store_resource_free(&r);
    }
    store_ids_free(ids, n);
    return found;
}

static int care_relationship(void *ctx, const char *practitioner,
                             const char *patient, int64_t now)
{
    mv_store *s = ctx;
    int r = 0;
    for (size_t i = 0; i < RELATION_KINDS && r == 0; i++)
        r = related_through(s, &relation_kinds[i], practitioner, patient, now);
    return r;
}

static void grant_key(const char *account, const char *patient, char *out, size_t n)
{
    snprintf(out, n, "%s|%s", account, patient);
}

static int btg_grant_active(void *ctx, const char *account, const char *patient,
                            int64_t now)
{
    mv_store *s = ctx;
    char key[200];
    grant_key(account, patient, key, sizeof key);
    store_term term = { "who", key, 0 };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, GRANT_TYPE, &term, 1, &ids, &n, NULL) != 0)
        return -1;
    int active = 0;
    for (size_t i = 0; i < n && !active; i++) {
        store_resource r;
        if (store_get(s, GRANT_TYPE, ids[i], 0, &r, NULL) != 0)
            continue;
        json_t *o = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        active = json_integer_value(json_object_get(o, "expires_us")) > now;
        json_decref(o);
        store_resource_free(&r);
    }
    store_ids_free(ids, n);
    return active;
}

int fhir_patient_in_active_care(server *srv, const char *patient)
{
    char pat[128];
    snprintf(pat, sizeof pat, "Patient/%s", patient);
    static const char *const where[][2] = { { "Encounter", "in-progress" },
                                            { "CareTeam", "active" },
                                            { "ServiceRequest", "active" } };
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        server_param p[] = { { "patient", NULL, pat }, { "status", NULL, where[i][1] } };
        char **ids = NULL;
        size_t n = 0;
        if (server_find(srv->store, where[i][0], p, 2, &ids, &n, NULL) != 0)
            return -1;
        store_ids_free(ids, n);
        if (n > 0)
            return 1;
    }
    return 0;
}

/* ---- Facts for a listing ------------------------------------------------------
 * A listing decides once per matching patient.  Asking the store for each
 * one made a search that matched six hidden patients measurably slower than
 * one that matched none: time told that they exist.  A batch reads, once,
 * which patients the practitioner's care teams and stays name (index rows
 * and heads, nothing decrypted: its cost is the caller's caseload, the same
 * whatever the query) and the account's grants; a patient outside that set
 * is answered from memory, one inside it is checked exactly as a read is
 * (its periods), which is work the answer discloses anyway. */

struct fhir_fact_batch {
    mv_store *s;
    char practitioner[128];
    json_t *related;            /* patient id -> true; NULL until loaded */
    int failed;                 /* a storage error: every answer is -1   */
    char account[128];
    json_t *granted;            /* patient id -> expiry (us); NULL until loaded */
    int grants_failed;
};

fhir_fact_batch *fhir_fact_batch_new(server *srv)
{
    fhir_fact_batch *b = calloc(1, sizeof *b);
    if (b)
        b->s = srv->store;
    return b;
}

void fhir_fact_batch_free(fhir_fact_batch *b)
{
    if (b) {
        json_decref(b->related);
        json_decref(b->granted);
    }
    free(b);
}

/* Add the patients of every resource of type naming the practitioner, from
 * the rows alone (store_owners): nothing is read or decrypted but index and
 * row keys, so this costs the caseload's rows.  A superset (any status, any period): the exact check comes
 * later, for the patients a listing actually matches. */
static int load_related(fhir_fact_batch *b, const relation_kind *k)
{
    char prac[sizeof b->practitioner + 16];
    snprintf(prac, sizeof prac, "Practitioner/%s", b->practitioner);
    store_term term = { k->who_param, prac,     /* whatever the status: one */
                        fhir_param_bits(k->type, k->who_param) };   /* index query */
    char **ids = NULL;
    size_t n = 0;
    if (store_search(b->s, k->type, &term, 1, &ids, &n, NULL) != 0)
        return -1;
    char **owners = calloc(n ? n : 1, sizeof *owners);
    int rc = owners && store_owners(b->s, k->type, ids, n, owners, NULL) == 0 ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (owners[i])
            json_object_set_new(b->related, owners[i], json_true());
    for (size_t i = 0; owners && rc == 0 && i < n; i++)
        free(owners[i]);
    free(owners);
    store_ids_free(ids, n);
    return rc;
}

/* Caseloads, kept a moment across requests: a clinician's searches come
 * in runs.  A slot is good for CASELOAD_TTL_US and until a relationship
 * resource is written through this process (fhir_care_changed); a write by
 * another process (the CLI) shows within the TTL.  A stale set can only
 * refuse (a member is still checked exactly), never grant. */
#define CASELOAD_SLOTS 256
#define CASELOAD_TTL_US (2 * 1000000LL)

typedef struct caseload_slot {
    const mv_store *s;
    char practitioner[128];
    int64_t generation, until_us;
    json_t *set;
} caseload_slot;

static caseload_slot caseloads[CASELOAD_SLOTS];
static pthread_mutex_t caseload_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t care_generation;

int fhir_type_relates(const char *type)
{
    for (size_t i = 0; type != NULL && i < RELATION_KINDS; i++)
        if (strcmp(type, relation_kinds[i].type) == 0)
            return 1;
    return 0;
}

void fhir_care_changed(void)
{
    __atomic_add_fetch(&care_generation, 1, __ATOMIC_SEQ_CST);
}

int64_t fhir_care_generation(void)
{
    return __atomic_load_n(&care_generation, __ATOMIC_SEQ_CST);
}

static caseload_slot *caseload_slot_of(const mv_store *s, const char *practitioner)
{
    size_t h = (size_t)(uintptr_t)s;
    for (const char *p = practitioner; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return &caseloads[h % CASELOAD_SLOTS];
}

/* A new reference to the cached caseload, or NULL. */
static json_t *caseload_get(const mv_store *s, const char *practitioner, int64_t now)
{
    int64_t gen = __atomic_load_n(&care_generation, __ATOMIC_SEQ_CST);
    json_t *set = NULL;
    pthread_mutex_lock(&caseload_mu);
    caseload_slot *slot = caseload_slot_of(s, practitioner);
    if (slot->set && slot->s == s && slot->generation == gen && slot->until_us > now &&
        strcmp(slot->practitioner, practitioner) == 0)
        set = json_incref(slot->set);
    pthread_mutex_unlock(&caseload_mu);
    return set;
}

static void caseload_put(const mv_store *s, const char *practitioner, int64_t gen,
                         int64_t now, json_t *set)
{
    pthread_mutex_lock(&caseload_mu);
    caseload_slot *slot = caseload_slot_of(s, practitioner);
    json_decref(slot->set);
    slot->s = s;
    snprintf(slot->practitioner, sizeof slot->practitioner, "%s", practitioner);
    slot->generation = gen;
    slot->until_us = now + CASELOAD_TTL_US;
    slot->set = json_incref(set);
    pthread_mutex_unlock(&caseload_mu);
}

static int load_caseload(fhir_fact_batch *b, int64_t now)
{
    int64_t gen = __atomic_load_n(&care_generation, __ATOMIC_SEQ_CST);
    if ((b->related = caseload_get(b->s, b->practitioner, now)) != NULL)
        return 0;
    b->related = json_object();
    if (b->related == NULL)
        return -1;
    for (size_t i = 0; i < RELATION_KINDS; i++)
        if (load_related(b, &relation_kinds[i]) != 0)
            return -1;
    caseload_put(b->s, b->practitioner, gen, now, b->related);
    return 0;
}

static int batch_care_relationship(void *ctx, const char *practitioner,
                                   const char *patient, int64_t now)
{
    fhir_fact_batch *b = ctx;
    if (strlen(practitioner) >= sizeof b->practitioner)
        return care_relationship(b->s, practitioner, patient, now);
    if (b->related == NULL || strcmp(b->practitioner, practitioner) != 0) {
        json_decref(b->related);
        b->related = NULL;
        snprintf(b->practitioner, sizeof b->practitioner, "%s", practitioner);
        b->failed = load_caseload(b, now) != 0;
    }
    if (b->failed)
        return -1;
    /* Outside the caseload: no, at the cost of a lookup in memory (a hidden
     * match costs what no match costs); inside it, the exact answer. */
    if (json_object_get(b->related, patient) == NULL)
        return 0;
    return care_relationship(b->s, practitioner, patient, now);
}

/* Every break-the-glass grant of the account, read once.  (Grants made
 * before they were indexed by account last a few hours: until they expire
 * a listing does not see them; a read of that patient still does.) */
static int load_grants(fhir_fact_batch *b)
{
    store_term term = { "account", b->account, 0 };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(b->s, GRANT_TYPE, &term, 1, &ids, &n, NULL) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        store_resource r;
        if (store_get(b->s, GRANT_TYPE, ids[i], 0, &r, NULL) != 0)
            continue;
        json_t *o = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        const char *patient = json_string_value(json_object_get(o, "patient"));
        json_int_t until = json_integer_value(json_object_get(o, "expires_us"));
        json_int_t known = json_integer_value(json_object_get(b->granted, patient ? patient : ""));
        if (patient && until > known)
            json_object_set_new(b->granted, patient, json_integer(until));
        json_decref(o);
        store_resource_free(&r);
    }
    store_ids_free(ids, n);
    return 0;
}

static int batch_btg_grant_active(void *ctx, const char *account, const char *patient,
                                  int64_t now)
{
    fhir_fact_batch *b = ctx;
    if (strlen(account) >= sizeof b->account)
        return btg_grant_active(b->s, account, patient, now);
    if (b->granted == NULL || strcmp(b->account, account) != 0) {
        json_decref(b->granted);
        snprintf(b->account, sizeof b->account, "%s", account);
        b->granted = json_object();
        b->grants_failed = b->granted == NULL || load_grants(b) != 0;
    }
    if (b->grants_failed)
        return -1;
    return json_integer_value(json_object_get(b->granted, patient)) > now;
}

policy_facts fhir_facts_batch(fhir_fact_batch *b)
{
    policy_facts f = { batch_care_relationship, batch_btg_grant_active, b };
    return f;
}

policy_facts fhir_facts(server *srv)
{
    policy_facts f = { care_relationship, btg_grant_active, srv->store };
    return f;
}

int fhir_grant_put(store_txn *t, const char *id, const char *account,
                   const char *patient, int64_t expires_us, const char *reason,
                   mv_err *err)
{
    char key[200];
    grant_key(account, patient, key, sizeof key);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "account", account, "patient",
                          patient, "expires_us", (json_int_t)expires_us, "reason", reason);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    store_term terms[] = { { "who", key, 0 }, { "account", account, 0 } };
    store_write w = { .type = GRANT_TYPE, .id = id, .if_version = 0, .body = body,
                      .body_len = strlen(body), .terms = terms, .n_terms = 2 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

int fhir_grant_reason(server *srv, const char *purpose, char *out, size_t cap)
{
    size_t n = strlen(FHIR_PURPOSE_BTG_GRANT);
    if (purpose == NULL || strncmp(purpose, FHIR_PURPOSE_BTG_GRANT, n) != 0)
        return 0;
    store_resource r;
    if (store_get(srv->store, GRANT_TYPE, purpose + n, 0, &r, NULL) != 0)
        return 0;
    json_t *o = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    const char *reason = json_string_value(json_object_get(o, "reason"));
    int found = reason != NULL;
    if (found)
        snprintf(out, cap, "%s", reason);
    json_decref(o);
    store_resource_free(&r);
    return found;
}

/* ---- Relationships written under break-the-glass ------------------------------ */

static int is_relationship_type(const char *type)
{
    static const char *const types[] = { "CareTeam", "Encounter", "EpisodeOfCare",
                                         "PractitionerRole", "ServiceRequest", "Task" };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(type, types[i]) == 0)
            return 1;
    return 0;
}

/* Drop every label of ours from meta.security (the client's copy of an
 * earlier version's included); 1 when one was there. */
static int drop_labels(json_t *meta)
{
    json_t *labels = json_object_get(meta, "security");
    int dropped = 0;
    for (size_t i = json_array_size(labels); i-- > 0;) {
        const char *system = json_string_value(
            json_object_get(json_array_get(labels, i), "system"));
        if (system && strcmp(system, FHIR_BTG_LABEL_SYSTEM) == 0) {
            json_array_remove(labels, i);
            dropped = 1;
        }
    }
    if (labels && json_array_size(labels) == 0)
        json_object_del(meta, "security");
    return dropped;
}

char *fhir_relationship_labelled(const char *type, const char *text,
                                 const char *btg_practitioner)
{
    if (!is_relationship_type(type))
        return NULL;
    json_t *o = json_loads(text, 0, NULL);
    json_t *meta = json_object_get(o, "meta");
    if (!json_is_object(meta)) {
        json_decref(o);
        return NULL;
    }
    int changed = drop_labels(meta);
    if (btg_practitioner != NULL && btg_practitioner[0] != '\0') {
        json_t *labels = json_object_get(meta, "security");
        if (labels == NULL) {
            labels = json_array();
            json_object_set_new(meta, "security", labels);
        }
        json_array_append_new(labels, json_pack(
            "{s:s, s:s, s:s}", "system", FHIR_BTG_LABEL_SYSTEM, "code", btg_practitioner,
            "display", "written under break-the-glass; explains no access of its "
                       "author until someone else confirms it"));
        changed = 1;
    }
    char *out = changed ? json_text(o) : NULL;
    json_decref(o);
    return out;
}
