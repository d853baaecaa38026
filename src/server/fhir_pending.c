/*
 * fhir_pending.c -- the accesses of one Bundle, kept for a single commit.
 *
 * Why it exists: a transaction Bundle is all or nothing, and even a batch
 * should not cost one fsync per entry.  Each entry still runs through the
 * ordinary route (validation, compartment, policy, index terms), but where
 * a lone request would call audit_record() at once, a Bundle entry hands a
 * copy of its audit event -- and, in a transaction, of its data change --
 * to this list.  fhir_pending_commit() then writes them as one unit: every
 * change with its audit entry, or none of them.
 *
 * Ownership: every string and body is copied in (the entry's own buffers
 * are gone by the time of the commit) and freed here; bodies are wiped
 * first, as they hold clinical data.
 */
#include "fhir_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../crypto/crypto.h"

typedef struct pending_item {
    size_t entry;                  /* index of the Bundle entry           */
    char *ev_str[9];               /* the audit_event's strings, copied   */
    int has_write;
    char *type, *id, *patient;     /* the store_write, copied             */
    int64_t if_version;
    int64_t updated_us;
    char *body;
    size_t body_len;
    int deleted;
    store_term *terms;
    size_t n_terms;
    char *grant_id, *grant_account, *grant_patient, *grant_reason;
    int64_t grant_expires_us;
} pending_item;

struct fhir_pending {
    int atomic_writes;
    size_t entry;
    pending_item *items;
    size_t n, cap;
    size_t failed;                 /* the item whose change failed        */
};

fhir_pending *fhir_pending_new(int atomic_writes, mv_err *err)
{
    fhir_pending *p = mv_calloc(1, sizeof *p, err);
    if (p)
        p->atomic_writes = atomic_writes;
    return p;
}

int fhir_pending_atomic(const fhir_pending *p)
{
    return p->atomic_writes;
}

void fhir_pending_set_entry(fhir_pending *p, size_t entry)
{
    p->entry = entry;
}

static void item_free(pending_item *it)
{
    for (size_t i = 0; i < 9; i++)
        free(it->ev_str[i]);
    free(it->type);
    free(it->id);
    free(it->patient);
    if (it->body) {
        crypto_wipe(it->body, it->body_len);
        free(it->body);
    }
    for (size_t i = 0; i < it->n_terms; i++) {
        free((char *)it->terms[i].param);
        free((char *)it->terms[i].value);
    }
    free(it->terms);
    free(it->grant_id);
    free(it->grant_account);
    free(it->grant_patient);
    free(it->grant_reason);
    memset(it, 0, sizeof *it);
}

static void clear(fhir_pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        item_free(&p->items[i]);
    p->n = 0;
}

void fhir_pending_free(fhir_pending *p)
{
    if (p == NULL)
        return;
    clear(p);
    free(p->items);
    free(p);
}

/* strdup that keeps NULL as NULL; *ok drops to 0 on exhaustion. */
static char *copy(const char *s, int *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = 0;
    return d;
}

static int copy_write(pending_item *it, const store_write *w)
{
    int ok = 1;
    it->has_write = 1;
    it->type = copy(w->type, &ok);
    it->id = copy(w->id, &ok);
    it->patient = copy(w->patient, &ok);
    it->if_version = w->if_version;
    it->updated_us = w->updated_us;
    it->deleted = w->deleted;
    if (w->body) {
        it->body = malloc(w->body_len + 1);
        if (it->body == NULL)
            return -1;
        memcpy(it->body, w->body, w->body_len);
        it->body[w->body_len] = '\0';
        it->body_len = w->body_len;
    }
    if (w->n_terms) {
        it->terms = calloc(w->n_terms, sizeof *it->terms);
        if (it->terms == NULL)
            return -1;
        it->n_terms = w->n_terms;
        for (size_t i = 0; i < w->n_terms; i++) {
            it->terms[i].param = copy(w->terms[i].param, &ok);
            it->terms[i].value = copy(w->terms[i].value, &ok);
            it->terms[i].bits = w->terms[i].bits;
        }
    }
    return ok ? 0 : -1;
}

int fhir_pending_add(fhir_pending *p, const audit_event *ev, const store_write *w,
                     const char *grant_id, const char *grant_account,
                     const char *grant_patient, int64_t grant_expires_us,
                     const char *grant_reason, mv_err *err)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        pending_item *items = realloc(p->items, cap * sizeof *items);
        if (items == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        p->items = items;
        p->cap = cap;
    }
    pending_item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    it->entry = p->entry;
    const char *strs[9] = { ev->actor, ev->action, ev->outcome, ev->resources,
                            ev->patient, ev->source, ev->session, ev->purpose,
                            ev->request_id };
    int ok = 1;
    for (size_t i = 0; i < 9; i++)
        it->ev_str[i] = copy(strs[i], &ok);
    if (grant_reason) {
        it->grant_id = copy(grant_id, &ok);
        it->grant_account = copy(grant_account, &ok);
        it->grant_patient = copy(grant_patient, &ok);
        it->grant_reason = copy(grant_reason, &ok);
        it->grant_expires_us = grant_expires_us;
    }
    if (!ok || (w && copy_write(it, w) != 0)) {
        item_free(it);
        p->n--;
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    return 0;
}

typedef struct commit_ctx {
    fhir_pending *p;
    int events_only;
} commit_ctx;

/* Inside the audit transaction: every grant and change, in order. */
static int apply_all(store_txn *t, void *ctx, mv_err *err)
{
    commit_ctx *cc = ctx;
    for (size_t i = 0; i < cc->p->n; i++) {
        pending_item *it = &cc->p->items[i];
        cc->p->failed = i;
        if (cc->events_only && it->has_write)
            continue;
        if (it->grant_reason &&
            fhir_grant_put(t, it->grant_id, it->grant_account, it->grant_patient,
                           it->grant_expires_us, it->grant_reason, err) != 0)
            return -1;
        if (!it->has_write)
            continue;
        store_write w = { .type = it->type, .id = it->id, .patient = it->patient,
                          .if_version = it->if_version, .updated_us = it->updated_us,
                          .body = it->body,
                          .body_len = it->body_len, .deleted = it->deleted,
                          .terms = it->terms, .n_terms = it->n_terms };
        int64_t version;
        if (fhir_type_relates(it->type))
            fhir_care_changed();
        if (store_put(t, &w, &version, err) != 0)
            return -1;
    }
    return 0;
}

int fhir_pending_commit(fhir_pending *p, audit_trail *trail, int events_only,
                        size_t *failed_entry, mv_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += !(events_only && p->items[i].has_write);
    if (n == 0) {
        clear(p);
        return 0;
    }
    audit_event *ev = calloc(n, sizeof *ev);
    if (ev == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        char **s = p->items[i].ev_str;
        if (events_only && p->items[i].has_write)
            continue;
        ev[k++] = (audit_event){ s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8] };
    }
    commit_ctx cc = { p, events_only };
    int rc = audit_record(trail, ev, n, apply_all, &cc, NULL, err);
    for (size_t i = 0; rc == 0 && !events_only && i < p->n; i++)
        if (p->items[i].has_write && fhir_type_relates(p->items[i].type)) {
            fhir_care_changed();       /* after the commit too (routes_fhir.c) */
            break;
        }
    if (rc != 0 && failed_entry)
        *failed_entry = p->items[p->failed].entry;
    free(ev);
    clear(p);
    return rc;
}
