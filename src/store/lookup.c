/*
 * lookup.c -- many blind-index lookups against one resource type, answered
 * from memory: the tokens of a few search parameters loaded once.
 *
 * Why this exists: `medvault leak check` must tell, for every row of a
 * leaked file (750,000 of them in the 2024 breach), whether it is one of the
 * hospital's patients, decrypting only the few candidates the index
 * proposes (tokens are truncated: the caller verifies).  store_search answers one
 * query with a key load, an SQL statement per term and an id list; a whole
 * file that way costs minutes.  Here the tokens of the parameters asked for
 * (a few thousand patients: some hundred thousand rows of the index) are read
 * in one statement per parameter, sorted and hashed, and each lookup is one
 * HMAC (crypto/) and one probe.  Only tokens and ids are held: nothing is
 * opened, and the index's data key never leaves crypto/.
 *
 * Ownership: the lookup owns its copy of every token and id, and the copy of
 * the wrapped index key; store_lookup_close frees them.  The ids a find
 * returns are borrowed from it.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct lookup_entry {
    size_t param;                /* index into params */
    unsigned char token[MV_INDEX_BYTES];   /* truncated tokens zero-padded */
    char *id;                    /* owned */
} lookup_entry;

/* A distinct (param, token): the run of entries [first, first + count). */
typedef struct lookup_slot {
    size_t first;                /* 0 = empty slot; else first entry + 1 */
    size_t count;
} lookup_slot;

struct store_lookup {
    mv_store *s;
    char *type;
    char **params;               /* owned copies */
    size_t n_params;
    lookup_entry *entries;       /* sorted by (param, token, id) */
    size_t n_entries, cap_entries;
    char **ids;                  /* ids of entries, same order (borrowed from them) */
    lookup_slot *slots;          /* open addressing, a power of two, at most half full */
    size_t n_slots;
    dk_row key;                  /* the "#index" data key row (wrapped) */
};

/* ---- Loading -------------------------------------------------------------- */

static int entry_push(store_lookup *l, size_t param, const void *token, size_t token_len,
                      const char *id, mv_err *err)
{
    if (token_len == 0 || token_len > MV_INDEX_BYTES || id == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "a %s search-index row is malformed",
                       l->type);
    if (l->n_entries == l->cap_entries) {
        size_t cap = l->cap_entries ? l->cap_entries * 2 : 1024;
        lookup_entry *grown = realloc(l->entries, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        l->entries = grown;
        l->cap_entries = cap;
    }
    lookup_entry *e = &l->entries[l->n_entries];
    e->param = param;
    memset(e->token, 0, MV_INDEX_BYTES);
    memcpy(e->token, token, token_len);
    if ((e->id = mv_strdup(id, err)) == NULL)
        return -1;
    l->n_entries++;
    return 0;
}

static int load_param(store_lookup *l, store_conn *c, size_t param, mv_err *err)
{
    static const char sql[] = "SELECT token, id FROM search_index "
                              "WHERE type = ?1 AND param = ?2";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(c, "cannot read the search index", err);
    int rc = -1;
    if (bind_text(c, st, 1, l->type, err) == 0 &&
        bind_text(c, st, 2, l->params[param], err) == 0) {
        while ((rc = stmt_step(c, st, "cannot read the search index", err)) == 1) {
            if (entry_push(l, param, sqlite3_column_blob(st, 0),
                           (size_t)sqlite3_column_bytes(st, 0),
                           (const char *)sqlite3_column_text(st, 1), err) != 0) {
                rc = -1;
                break;
            }
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* Every parameter's rows and the index key, in one snapshot. */
static int load_all(store_lookup *l, mv_err *err)
{
    store_read r;
    if (read_begin(l->s, &r, 1, err) != 0)
        return -1;
    int found = dk_load(r.c, MV_OWNER_INDEX, &l->key, err);
    int rc = found < 0 ? -1 : found == 0
           ? mv_fail(err, MV_E_INTEGRITY, "the store has no %s data key", MV_OWNER_INDEX)
           : 0;
    for (size_t p = 0; rc == 0 && p < l->n_params; p++)
        rc = load_param(l, r.c, p, err);
    read_end(&r);
    return rc;
}

/* ---- The hash of distinct (param, token) ----------------------------------- */

static int entry_key_cmp(const lookup_entry *a, const lookup_entry *b)
{
    if (a->param != b->param)
        return a->param < b->param ? -1 : 1;
    return memcmp(a->token, b->token, MV_INDEX_BYTES);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const lookup_entry *a = pa, *b = pb;
    int c = entry_key_cmp(a, b);
    return c ? c : strcmp(a->id, b->id);
}

/* Tokens are HMAC outputs: their first bytes are already uniform. */
static size_t slot_hash(size_t param, const unsigned char *token)
{
    uint64_t h;
    memcpy(&h, token, sizeof h);
    return (size_t)(h ^ (param * 0x9e3779b97f4a7c15ULL));
}

static lookup_slot *slot_find(const store_lookup *l, size_t param,
                              const unsigned char *token)
{
    size_t mask = l->n_slots - 1;
    for (size_t i = slot_hash(param, token) & mask;; i = (i + 1) & mask) {
        lookup_slot *sl = &l->slots[i];
        if (sl->first == 0)
            return sl;
        const lookup_entry *e = &l->entries[sl->first - 1];
        if (e->param == param && memcmp(e->token, token, MV_INDEX_BYTES) == 0)
            return sl;
    }
}

static int build_table(store_lookup *l, mv_err *err)
{
    if (l->n_entries > 1)
        qsort(l->entries, l->n_entries, sizeof *l->entries, entry_cmp);
    l->n_slots = 16;
    while (l->n_slots < 2 * l->n_entries)
        l->n_slots *= 2;
    l->slots = mv_calloc(l->n_slots, sizeof *l->slots, err);
    l->ids = mv_calloc(l->n_entries ? l->n_entries : 1, sizeof *l->ids, err);
    if (l->slots == NULL || l->ids == NULL)
        return -1;
    for (size_t i = 0; i < l->n_entries; i++) {
        l->ids[i] = l->entries[i].id;
        lookup_slot *sl = slot_find(l, l->entries[i].param, l->entries[i].token);
        if (sl->first == 0)
            sl->first = i + 1;
        sl->count++;
    }
    return 0;
}

/* ---- Interface ------------------------------------------------------------- */

void store_lookup_close(store_lookup *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_entries; i++)
        free(l->entries[i].id);
    free(l->entries);
    free(l->ids);
    free(l->slots);
    for (size_t p = 0; p < l->n_params; p++)
        free(l->params[p]);
    free(l->params);
    free(l->type);
    dk_row_free(&l->key);
    free(l);
}

static int copy_names(store_lookup *l, const char *type, const char *const *params,
                      size_t n_params, mv_err *err)
{
    if ((l->type = mv_strdup(type, err)) == NULL ||
        (l->params = mv_calloc(n_params, sizeof *l->params, err)) == NULL)
        return -1;
    for (; l->n_params < n_params; l->n_params++) {
        if (params[l->n_params] == NULL)
            return mv_fail(err, MV_E_INVALID, "a lookup parameter is missing");
        if ((l->params[l->n_params] = mv_strdup(params[l->n_params], err)) == NULL)
            return -1;
    }
    return 0;
}

int store_lookup_open(mv_store *s, const char *type, const char *const *params,
                      size_t n_params, store_lookup **out, mv_err *err)
{
    *out = NULL;
    if (s == NULL || type == NULL || params == NULL || n_params == 0)
        return mv_fail(err, MV_E_INVALID, "a lookup needs a type and parameters");
    store_lookup *l = mv_calloc(1, sizeof *l, err);
    if (l == NULL)
        return -1;
    l->s = s;
    if (copy_names(l, type, params, n_params, err) != 0 || load_all(l, err) != 0 ||
        build_table(l, err) != 0) {
        store_lookup_close(l);
        return -1;
    }
    *out = l;
    return 0;
}

size_t store_lookup_size(const store_lookup *l)
{
    return l ? l->n_entries : 0;
}

static int param_index(const store_lookup *l, const char *param, size_t *out)
{
    for (size_t p = 0; param && p < l->n_params; p++)
        if (strcmp(l->params[p], param) == 0) {
            *out = p;
            return 0;
        }
    return -1;
}

int store_lookup_find(store_lookup *l, const store_term *term, char *const **ids,
                      size_t *n, mv_err *err)
{
    *ids = NULL;
    *n = 0;
    size_t param;
    if (l == NULL || term == NULL || term->value == NULL ||
        param_index(l, term->param, &param) != 0)
        return mv_fail(err, MV_E_INVALID, "the lookup was not opened for %s.%s",
                       l ? l->type : "?", term && term->param ? term->param : "?");
    unsigned char token[MV_INDEX_BYTES];
    size_t len;
    if (index_token(l->s->kr, &l->key, l->type, term, token, &len, err) != 0)
        return -1;
    const lookup_slot *sl = slot_find(l, param, token);
    if (sl->first != 0) {
        *ids = &l->ids[sl->first - 1];
        *n = sl->count;
    }
    return 0;
}
