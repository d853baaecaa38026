/*
 * fhir_facts.c -- the facts the policy decision point asks for, answered
 * from the store: is this practitioner caring for this patient right now,
 * and does this account hold an unexpired break-the-glass grant for them.
 *
 * Why here and not in policy/: policy/ decides and must stay pure (no
 * storage); the server knows how the facts are stored.  A care relationship
 * is an active CareTeam, or an in-progress Encounter, naming both the
 * practitioner and the patient, found through the blind indexes (no
 * plaintext index exists) and then checked for an end date in the past.
 * Break-the-glass grants are sealed "_BtgGrant" records, indexed by
 * (account, patient), valid until their expiry.
 */
#include "server_internal.h"
#include "fhir_internal.h"

#include <stdio.h>
#include <string.h>

#include "../crypto/crypto.h"

#define GRANT_TYPE "_BtgGrant"

/* 1 when the JSON body's period.end (if any) is not before now. */
static int period_current(const store_resource *r, int64_t now)
{
    json_t *o = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    const char *end = json_string_value(json_object_get(json_object_get(o, "period"), "end"));
    int current = 1;
    if (end) {
        char full[40];
        int64_t us;
        /* a date without time ends at the end of that day */
        if (strlen(end) == 10)
            snprintf(full, sizeof full, "%sT23:59:59Z", end);
        else
            snprintf(full, sizeof full, "%s", end);
        if (mv_time_parse(full, &us, NULL) == 0 && us < now)
            current = 0;
    }
    json_decref(o);
    return current;
}

/* Any resource of type naming practitioner and patient with that status,
 * not ended: 1, 0, or -1 on a storage error. */
static int related_through(mv_store *s, const char *type, const char *practitioner,
                           const char *patient, const char *status, int64_t now)
{
    char pat[128], prac[128], st[64];
    snprintf(pat, sizeof pat, "Patient/%s", patient);
    snprintf(prac, sizeof prac, "Practitioner/%s", practitioner);
    snprintf(st, sizeof st, "*|%s", status);
    store_term terms[] = { { "patient", pat }, { "participant", prac }, { "status", st } };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, type, terms, 3, &ids, &n, NULL) != 0)
        return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        store_resource r;
        mv_err e;
        if (store_get(s, type, ids[i], 0, &r, &e) != 0)
            continue;
        found = !r.deleted && period_current(&r, now);
        store_resource_free(&r);
    }
    store_ids_free(ids, n);
    return found;
}

static int care_relationship(void *ctx, const char *practitioner,
                             const char *patient, int64_t now)
{
    mv_store *s = ctx;
    int r = related_through(s, "CareTeam", practitioner, patient, "active", now);
    if (r == 0)
        r = related_through(s, "Encounter", practitioner, patient, "in-progress", now);
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
    store_term term = { "who", key };
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

policy_facts fhir_facts(server *srv)
{
    policy_facts f = { care_relationship, btg_grant_active, srv->store };
    return f;
}

int fhir_grant_put(store_txn *t, const char *account, const char *patient,
                   int64_t expires_us, const char *reason, mv_err *err)
{
    char key[200], id[33];
    grant_key(account, patient, key, sizeof key);
    crypto_random_id(id);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "account", account, "patient",
                          patient, "expires_us", (json_int_t)expires_us, "reason", reason);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    store_term term = { "who", key };
    store_write w = { .type = GRANT_TYPE, .id = id, .if_version = 0, .body = body,
                      .body_len = strlen(body), .terms = &term, .n_terms = 1 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}
