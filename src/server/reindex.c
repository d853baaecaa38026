/*
 * reindex.c -- bringing a store's blind index to the current format.
 *
 * Why this exists: what the index keeps (which parameters, how many bits of
 * each token: fhir.h) is part of what a stolen database gives away, and it
 * changes as medvault learns.  A store written under an older format would
 * otherwise find nothing -- or keep showing what the new format hides.  So
 * the format is recorded in the store's metadata, and a store under another
 * one is re-indexed from its decrypted bodies before anything searches it:
 * every current clinical resource gets the tokens it would get if it were
 * written today.  medvault's own registers ('_' types) keep whole tokens and
 * are left alone.
 */
#include "server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fhir/fhir.h"

#define INDEX_META "fhir_index_version"
#define BATCH 256                     /* resources per transaction */

/* The format the store's index was written under; 0 when never recorded
 * (a store older than the record). */
static int recorded_version(mv_store *s, long *out, mv_err *err)
{
    mv_buf v = {0};
    *out = 0;
    if (store_meta_get(s, INDEX_META, &v, err) != 0)
        return err->code == MV_E_NOTFOUND ? 0 : -1;
    char text[24];
    size_t n = v.len < sizeof text - 1 ? v.len : sizeof text - 1;
    if (n > 0)
        memcpy(text, v.data, n);
    text[n] = '\0';
    mv_buf_free(&v);
    char *end;
    *out = strtol(text, &end, 10);
    return *end == '\0' && *out > 0 ? 0
         : mv_fail(err, MV_E_INTEGRITY, "metadata '%s' is not a version", INDEX_META);
}

static int record_version(mv_store *s, mv_err *err)
{
    char text[24];
    snprintf(text, sizeof text, "%d", FHIR_INDEX_VERSION);
    store_txn *t;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    if (store_meta_put(t, INDEX_META, text, strlen(text), err) != 0) {
        store_txn_rollback(t);
        return -1;
    }
    return store_txn_commit(t, err);
}

/* The tokens body gets today: its terms, the indexed ones, with widths. */
static int reindex_one(store_txn *t, const char *type, const store_resource *r,
                       mv_err *err)
{
    fhir_term *terms = NULL;
    size_t nt = 0;
    if (fhir_index_terms((const char *)r->body.data, r->body.len, &terms, &nt, err) != 0)
        return -1;
    store_term *st = mv_calloc(nt ? nt : 1, sizeof *st, err);
    size_t n = 0;
    for (size_t i = 0; st && i < nt; i++) {
        int bits = fhir_param_bits(type, terms[i].param);
        if (bits > 0)
            st[n++] = (store_term){ terms[i].param, terms[i].value, bits };
    }
    int rc = st ? store_reindex(t, type, r->id, st, n, err) : -1;
    free(st);
    fhir_terms_free(terms, nt);
    return rc;
}

/* Re-index ids[from, to) of type in one transaction.  A resource that
 * cannot be opened (its patient erased meanwhile) has no tokens to keep. */
static int reindex_batch(mv_store *s, const char *type, char **ids, size_t from, size_t to,
                         size_t *done, mv_err *err)
{
    store_txn *t;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    for (size_t i = from; i < to; i++) {
        store_resource r;
        if (store_get(s, type, ids[i], 0, &r, NULL) != 0)
            continue;
        int rc = r.deleted ? 0 : reindex_one(t, type, &r, err);
        store_resource_free(&r);
        if (rc != 0) {
            store_txn_rollback(t);
            return -1;
        }
        (*done)++;
    }
    return store_txn_commit(t, err);
}

static int reindex_type(mv_store *s, const char *type, size_t *done, mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, type, NULL, 0, &ids, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += BATCH)
        rc = reindex_batch(s, type, ids, i, i + BATCH < n ? i + BATCH : n, done, err);
    store_ids_free(ids, n);
    return rc;
}

int server_reindex(mv_store *s, int force, size_t *done, mv_err *err)
{
    *done = 0;
    long version;
    if (recorded_version(s, &version, err) != 0)
        return -1;
    if (version == FHIR_INDEX_VERSION && !force)
        return 0;
    char **types = NULL;
    size_t n = 0;
    if (store_types(s, &types, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (types[i][0] != '_' && fhir_type_known(types[i]))
            rc = reindex_type(s, types[i], done, err);
    store_ids_free(types, n);
    return rc == 0 ? record_version(s, err) : -1;
}
