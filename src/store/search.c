/*
 * search.c -- blind-index search: searchable values are stored only as
 * HMAC tokens keyed from the "#index" data key, never in the clear.
 *
 * Why this exists: a stolen database must not reveal who is in it, yet the
 * server must find a patient by NIR or name.  Tokens are computed by crypto/
 * per field ("Patient.identifier"), so equal values in different fields do
 * not share a token.  Tokens exist only for the current, non-deleted version
 * of a resource whose patient was not erased: put replaces them, a delete and
 * an erasure remove them.  Tokens are truncated to the width each term
 * names (store.h), so a search answers candidates: the store never opens a
 * body to check them, its callers do (fhir_query_matches).
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Id lists -------------------------------------------------------------- */

int id_list_push(id_list *l, const char *id, mv_err *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    char *copy = mv_strdup(id, err);
    if (copy == NULL)
        return -1;
    l->v[l->n++] = copy;
    return 0;
}

void id_list_free(id_list *l)
{
    store_ids_free(l->v, l->n);
    memset(l, 0, sizeof *l);
}

void store_ids_free(char **ids, size_t n)
{
    if (ids == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

int collect_ids(store_conn *c, sqlite3_stmt *st, id_list *l, mv_err *err)
{
    int rc;
    while ((rc = stmt_step(c, st, "cannot read ids", err)) == 1) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (id != NULL && id_list_push(l, id, err) != 0) {
            rc = -1;
            break;
        }
    }
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

/* ---- Tokens ---------------------------------------------------------------- */

static int index_key(store_conn *c, dk_row *key, mv_err *err)
{
    int found = dk_load(c, MV_OWNER_INDEX, key, err);
    if (found == 0)
        return mv_fail(err, MV_E_INTEGRITY, "the store has no %s data key",
                       MV_OWNER_INDEX);
    return found < 0 ? -1 : 0;
}

static int is_register(const char *type)
{
    return type[0] == '_';
}

int index_token(crypto_keyring *kr, const dk_row *key, const char *type,
                const store_term *term, unsigned char token[MV_INDEX_BYTES],
                size_t *len, mv_err *err)
{
    int bits = term->bits ? term->bits : 8 * MV_INDEX_BYTES;
    if ((term->bits == 0 && !is_register(type)) || bits < 1 || bits > 8 * MV_INDEX_BYTES)
        return mv_fail(err, MV_E_INTERNAL, "%s.%s: a search term without a valid "
                       "token width", type, term->param);
    char field[160];                       /* "Type.param" */
    int flen = snprintf(field, sizeof field, "%s.%s", type, term->param);
    if (flen < 0 || (size_t)flen >= sizeof field)
        return mv_fail(err, MV_E_INVALID, "%s: search parameter name too long", type);
    crypto_dk_ref ref = dk_ref(key);
    int rc = crypto_blind_index(kr, &ref, field, term->value,
                                strlen(term->value), token, err);
    *len = ((size_t)bits + 7) / 8;
    if (bits % 8)
        token[*len - 1] &= (unsigned char)(0xFF00u >> (bits % 8));
    memset(token + *len, 0, MV_INDEX_BYTES - *len);
    return rc;
}

static int index_delete(store_conn *c, const char *type, const char *id,
                        mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_IDX_DELETE, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, type, err) == 0 &&
        bind_text(c, st, 2, id, err) == 0)
        rc = stmt_step(c, st, "cannot update the search index", err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

static int index_insert(store_conn *c, const char *type, const char *param,
                        const unsigned char *token, size_t len, const char *id,
                        mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_IDX_INSERT, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, type, err) == 0 &&
        bind_text(c, st, 2, param, err) == 0 &&
        bind_blob(c, st, 3, token, len, err) == 0 &&
        bind_text(c, st, 4, id, err) == 0)
        rc = stmt_step(c, st, "cannot update the search index", err);
    stmt_done(st);
    return rc < 0 ? -1 : 0;
}

int index_replace(store_txn *t, const store_write *w, int had_tokens,
                  mv_err *err)
{
    if (had_tokens && index_delete(t->c, w->type, w->id, err) != 0)
        return -1;
    if (w->deleted || w->n_terms == 0)
        return 0;
    dk_row key = {0};
    if (index_key(t->c, &key, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->n_terms; i++) {
        unsigned char token[MV_INDEX_BYTES];
        size_t len;
        rc = index_token(t->s->kr, &key, w->type, &w->terms[i], token, &len, err);
        if (rc == 0)
            rc = index_insert(t->c, w->type, w->terms[i].param, token, len,
                              w->id, err);
    }
    dk_row_free(&key);
    return rc;
}

/* ---- Search ---------------------------------------------------------------- */

static int ids_with_token(store_conn *c, const char *type, const char *param,
                          const unsigned char *token, size_t len, id_list *out,
                          mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_IDX_FIND, err);
    if (st == NULL || bind_text(c, st, 1, type, err) != 0 ||
        bind_text(c, st, 2, param, err) != 0 ||
        bind_blob(c, st, 3, token, len, err) != 0) {
        stmt_done(st);
        return -1;
    }
    return collect_ids(c, st, out, err);
}

/* 1 when id carries token, 0 when not, -1 on error. */
static int id_has_token(store_conn *c, const char *type, const char *param,
                        const unsigned char *token, size_t len, const char *id,
                        mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_IDX_HAS, err);
    int rc = -1;
    if (st != NULL && bind_text(c, st, 1, type, err) == 0 &&
        bind_text(c, st, 2, param, err) == 0 &&
        bind_blob(c, st, 3, token, len, err) == 0 &&
        bind_text(c, st, 4, id, err) == 0)
        rc = stmt_step(c, st, "cannot search", err);
    stmt_done(st);
    return rc;
}

/* Keep the ids of l that carry every token of terms[1..n). */
static int filter_ids(store_conn *c, const char *type, const store_term *terms,
                      const unsigned char *tokens, const size_t *lens, size_t n_terms,
                      id_list *l, mv_err *err)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        int keep = 1;
        for (size_t j = 1; keep == 1 && j < n_terms; j++)
            keep = id_has_token(c, type, terms[j].param,
                                tokens + j * MV_INDEX_BYTES, lens[j], l->v[i], err);
        if (keep < 0)
            return -1;
        if (keep)
            l->v[kept++] = l->v[i];
        else
            free(l->v[i]);
    }
    l->n = kept;
    return 0;
}

static int search_terms(mv_store *s, store_conn *c, const char *type,
                        const store_term *terms, size_t n_terms, id_list *out,
                        mv_err *err)
{
    unsigned char *tokens = mv_calloc(n_terms, MV_INDEX_BYTES, err);
    size_t *lens = mv_calloc(n_terms, sizeof *lens, err);
    dk_row key = {0};
    int rc = tokens && lens ? index_key(c, &key, err) : -1;
    for (size_t i = 0; rc == 0 && i < n_terms; i++)
        rc = index_token(s->kr, &key, type, &terms[i],
                         tokens + i * MV_INDEX_BYTES, &lens[i], err);
    if (rc == 0)
        rc = ids_with_token(c, type, terms[0].param, tokens, lens[0], out, err);
    if (rc == 0)
        rc = filter_ids(c, type, terms, tokens, lens, n_terms, out, err);
    dk_row_free(&key);
    free(tokens);
    free(lens);
    return rc;
}

static int current_ids(store_conn *c, const char *type, id_list *out,
                       mv_err *err)
{
    sqlite3_stmt *st = conn_stmt(c, ST_RES_CURRENT_IDS, err);
    if (st == NULL || bind_text(c, st, 1, type, err) != 0) {
        stmt_done(st);
        return -1;
    }
    return collect_ids(c, st, out, err);
}

int store_search_updated(mv_store *s, const char *type, int64_t from_us,
                         int64_t to_us, int outside, char ***ids, size_t *n,
                         mv_err *err)
{
    *ids = NULL;
    *n = 0;
    if (type == NULL)
        return mv_fail(err, MV_E_INVALID, "a search needs a type");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    id_list l = {0};
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_UPDATED_IDS, err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, type, err) == 0 &&
        bind_i64(r.c, st, 2, from_us, err) == 0 &&
        bind_i64(r.c, st, 3, to_us, err) == 0 &&
        bind_i64(r.c, st, 4, outside ? 1 : 0, err) == 0)
        rc = collect_ids(r.c, st, &l, err);
    else
        stmt_done(st);
    read_end(&r);
    if (rc != 0) {
        id_list_free(&l);
        return -1;
    }
    *ids = l.v;
    *n = l.n;
    return 0;
}

int store_patient_refs(mv_store *s, const char *patient, char ***refs, size_t *n,
                       mv_err *err)
{
    *refs = NULL;
    *n = 0;
    if (patient == NULL)
        return mv_fail(err, MV_E_INVALID, "which patient?");
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    id_list l = {0};
    sqlite3_stmt *st = conn_stmt(r.c, ST_RES_PATIENT_REFS, err);
    int rc = -1;
    if (st != NULL && bind_text(r.c, st, 1, patient, err) == 0)
        rc = collect_ids(r.c, st, &l, err);
    else
        stmt_done(st);
    read_end(&r);
    if (rc != 0) {
        id_list_free(&l);
        return -1;
    }
    *refs = l.v;
    *n = l.n;
    return 0;
}

/* No terms: every current, non-deleted resource of the type. */
int store_search(mv_store *s, const char *type, const store_term *terms,
                 size_t n_terms, char ***ids, size_t *n, mv_err *err)
{
    *ids = NULL;
    *n = 0;
    if (type == NULL || (n_terms > 0 && terms == NULL))
        return mv_fail(err, MV_E_INVALID, "a search needs a type");
    for (size_t i = 0; i < n_terms; i++)
        if (terms[i].param == NULL || terms[i].value == NULL)
            return mv_fail(err, MV_E_INVALID, "%s: incomplete search term",
                           type);
    store_read r;
    if (read_begin(s, &r, n_terms > 0, err) != 0)
        return -1;
    id_list l = {0};
    int rc = n_terms ? search_terms(s, r.c, type, terms, n_terms, &l, err)
                     : current_ids(r.c, type, &l, err);
    read_end(&r);
    if (rc != 0) {
        id_list_free(&l);
        return -1;
    }
    *ids = l.v;
    *n = l.n;
    return 0;
}

/* ---- Re-indexing ------------------------------------------------------------- */

int store_reindex(store_txn *t, const char *type, const char *id,
                  const store_term *terms, size_t n_terms, mv_err *err)
{
    if (type == NULL || id == NULL || (n_terms > 0 && terms == NULL))
        return mv_fail(err, MV_E_INVALID, "a re-index needs a type and an id");
    store_write w = { .type = type, .id = id, .terms = terms, .n_terms = n_terms };
    return index_replace(t, &w, 1, err);
}

int store_types(mv_store *s, char ***types, size_t *n, mv_err *err)
{
    static const char sql[] = "SELECT DISTINCT type FROM resources ORDER BY type";
    *types = NULL;
    *n = 0;
    store_read r;
    if (read_begin(s, &r, 0, err) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    id_list l = {0};
    int rc = sqlite3_prepare_v2(r.c->db, sql, -1, &st, NULL) == SQLITE_OK
           ? collect_ids(r.c, st, &l, err)
           : db_fail(r.c, "cannot list the stored types", err);
    sqlite3_finalize(st);
    read_end(&r);
    if (rc != 0) {
        id_list_free(&l);
        return -1;
    }
    *types = l.v;
    *n = l.n;
    return 0;
}
