/*
 * decoys.c -- honeytoken patients: the registry that says which patients
 * are decoys (and, for a watermark, which output carried one), and the
 * running server's in-memory set of their ids.
 *
 * Why it exists: a decoy is a realistic synthetic patient that no
 * legitimate workflow reaches -- no care team names it -- so any touch of
 * it is a misuse the detector contains at once, and a decoy found in a
 * leaked file names the output, and the account, it came from.  Which
 * patients are decoys must stay unknown to whoever copies the store's
 * files, so each decoy is a sealed "_Decoy" record under the system key,
 * found through the blind index (kind=decoy), and committed together with
 * its audit entry (as the alerts are, alerts.c).
 *
 * The running server asks "is this patient a decoy?" for every patient of
 * every audited access, from many request threads, while a tick reloads
 * the set (`medvault decoy plant` may run beside it).  So the ids live in
 * an open-addressing hash table that is never changed once built: a
 * refresh builds a new one from the store, swaps it in under the write
 * side of a read-write lock, and frees the old one; a lookup holds the
 * read side for a hash and a few comparisons.
 */
#include "server_internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECOY_TYPE "_Decoy"
#define DECOY_ID_MAX 64

/* ---- The registry ----------------------------------------------------------------- */

static int put_decoy(store_txn *t, json_t *doc, int64_t if_version, mv_err *err)
{
    const char *id = json_string_value(json_object_get(doc, "patient"));
    const char *purpose = json_string_value(json_object_get(doc, "purpose"));
    char *body = json_text(doc);
    if (body == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    store_term terms[] = { { "kind", "decoy", 0 }, { "purpose", purpose, 0 } };
    store_write w = { .type = DECOY_TYPE, .id = id, .if_version = if_version,
                      .body = body, .body_len = strlen(body), .terms = terms,
                      .n_terms = 2 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    if (rc != 0 && if_version == 0 && err && err->code == MV_E_CONFLICT)
        return mv_fail(err, MV_E_CONFLICT, "Patient/%s is registered as a decoy already",
                       id);
    return rc;
}

typedef struct save_ctx {
    json_t *doc;
    int64_t if_version;
} save_ctx;

static int apply_save(store_txn *t, void *ctx, mv_err *err)
{
    save_ctx *sc = ctx;
    return put_decoy(t, sc->doc, sc->if_version, err);
}

static int is_nonempty_string(json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max;
}

/* A watermark's output names what was handed out and to whom; a plain
 * decoy's output is empty. */
static int check_output(json_t *output, int watermark, mv_err *err)
{
    if (!json_is_object(output))
        return mv_fail(err, MV_E_INVALID, "a decoy's output is a JSON object");
    if (!watermark)
        return json_object_size(output) == 0 ? 0
             : mv_fail(err, MV_E_INVALID, "a plain decoy has no output");
    if (!is_nonempty_string(json_object_get(output, "reference"), 256) ||
        !is_nonempty_string(json_object_get(output, "actor"), 128))
        return mv_fail(err, MV_E_INVALID, "a watermark names its output (reference) "
                       "and whom it was handed to (actor)");
    return 0;
}

/* Check doc and complete what defaults: purpose "decoy", output {}. */
static int check_document(json_t *doc, mv_err *err)
{
    if (!json_is_object(doc))
        return mv_fail(err, MV_E_INVALID, "a decoy is a JSON object");
    json_t *patient = json_object_get(doc, "patient");
    if (!is_nonempty_string(patient, DECOY_ID_MAX) ||
        strchr(json_string_value(patient), '/') != NULL)
        return mv_fail(err, MV_E_INVALID, "a decoy names its Patient id (patient)");
    if (json_object_get(doc, "purpose") == NULL)
        json_object_set_new(doc, "purpose", json_string("decoy"));
    const char *purpose = json_string_value(json_object_get(doc, "purpose"));
    if (purpose == NULL || (strcmp(purpose, "decoy") != 0 &&
                            strcmp(purpose, "watermark") != 0))
        return mv_fail(err, MV_E_INVALID, "a decoy's purpose is decoy or watermark");
    if (json_object_get(doc, "output") == NULL)
        json_object_set_new(doc, "output", json_object());
    return check_output(json_object_get(doc, "output"), purpose[0] == 'w', err);
}

/* "Patient/<id>" for the trail's resources. */
static void patient_ref(const char *patient, char out[80])
{
    snprintf(out, 80, "Patient/%.64s", patient);
}

int server_decoy_save(audit_trail *trail, const char *decoy_json, const char *actor,
                      const char *source, mv_err *err)
{
    json_t *doc = json_loads(decoy_json, 0, NULL);
    if (check_document(doc, err) != 0) {
        json_decref(doc);
        return -1;
    }
    int64_t now = mv_now_us();
    char when[MV_TIME_STR_MAX], ref[80];
    mv_time_format(now, when);
    json_object_set_new(doc, "planted_at", json_string(when));
    json_object_set_new(doc, "planted_at_us", json_integer((json_int_t)now));
    json_object_set_new(doc, "planted_by", json_string(actor));
    patient_ref(json_string_value(json_object_get(doc, "patient")), ref);
    audit_event ev = { .actor = actor, .action = "decoy.plant", .outcome = "success",
                       .resources = ref, .source = source };
    save_ctx sc = { doc, 0 };
    int rc = audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
    json_decref(doc);
    return rc;
}

static int read_decoy(mv_store *s, const char *patient, json_t **doc, int64_t *version,
                      mv_err *err)
{
    store_resource r;
    if (store_get(s, DECOY_TYPE, patient, 0, &r, err) != 0)
        return -1;
    *doc = r.deleted ? NULL : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    if (version)
        *version = r.version;
    store_resource_free(&r);
    if (*doc == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "the decoy record of Patient/%s is not "
                       "readable", patient);
    return 0;
}

int server_decoy_get(mv_store *s, const char *patient, char **json_out, mv_err *err)
{
    json_t *doc;
    if (read_decoy(s, patient, &doc, NULL, err) != 0)
        return -1;
    *json_out = json_text(doc);
    json_decref(doc);
    return *json_out ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
}

int server_decoy_ids(mv_store *s, char ***ids, size_t *n, mv_err *err)
{
    store_term kind = { "kind", "decoy", 0 };
    return store_search(s, DECOY_TYPE, &kind, 1, ids, n, err);
}

/* Oldest first; the patient id breaks ties. */
static int by_planting(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "planted_at_us"));
    json_int_t ty = json_integer_value(json_object_get(y, "planted_at_us"));
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "patient")),
                  json_string_value(json_object_get(y, "patient")));
}

int server_decoy_list(mv_store *s, const char *purpose, char **json_array_out,
                      mv_err *err)
{
    store_term terms[] = { { "kind", "decoy", 0 }, { "purpose", purpose, 0 } };
    return records_list(s, DECOY_TYPE, terms, purpose ? 2 : 1, by_planting, json_array_out,
                        err);
}

int server_decoy_watermark(mv_store *s, audit_trail *trail, const char *patient,
                           const char *reference, const char *handed_to,
                           const char *by, const char *source, mv_err *err)
{
    json_t *doc;
    int64_t version;
    if (read_decoy(s, patient, &doc, &version, err) != 0)
        return -1;
    const char *purpose = json_string_value(json_object_get(doc, "purpose"));
    if (purpose == NULL || strcmp(purpose, "decoy") != 0) {
        json_decref(doc);
        return mv_fail(err, MV_E_CONFLICT, "Patient/%s is the watermark of an output "
                       "already", patient);
    }
    int64_t now = mv_now_us();
    char when[MV_TIME_STR_MAX], ref[80];
    mv_time_format(now, when);
    json_object_set_new(doc, "purpose", json_string("watermark"));
    json_object_set_new(doc, "output", json_pack("{s:s, s:s, s:s, s:I}", "reference",
                                                 reference ? reference : "", "actor",
                                                 handed_to ? handed_to : "", "at", when,
                                                 "at_us", (json_int_t)now));
    int rc = check_document(doc, err);
    patient_ref(patient, ref);
    audit_event ev = { .actor = by, .action = "decoy.watermark", .outcome = "success",
                       .resources = ref, .source = source };
    save_ctx sc = { doc, version };
    if (rc == 0)
        rc = audit_record(trail, &ev, 1, apply_save, &sc, NULL, err);
    json_decref(doc);
    return rc;
}

/* ---- The running server's set ---------------------------------------------------------- */

/* Open addressing, linear probing, at most half full; never changed once
 * built.  Every slot is NULL or an owned copy of an id. */
typedef struct id_table {
    size_t cap;              /* a power of two */
    char **slot;
} id_table;

struct decoy_set {
    pthread_rwlock_t lock;   /* read: a lookup; write: swapping the table */
    pthread_mutex_t refresh; /* one refresh at a time, reading and swapping:
                                a slower refresh that read the registry
                                before a decoy was planted must not put
                                back the set without it                     */
    id_table *table;         /* owned; NULL until the first refresh       */
};

/* FNV-1a, 64 bits. */
static uint64_t hash_id(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void table_free(id_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->slot && i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
    free(t);
}

/* The slot holding id, or the empty slot where it would go. */
static char **table_find(const id_table *t, const char *id)
{
    size_t i = (size_t)hash_id(id) & (t->cap - 1);
    while (t->slot[i] != NULL && strcmp(t->slot[i], id) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slot[i];
}

/* A table holding copies of ids[0..n). */
static id_table *table_build(char *const *ids, size_t n, mv_err *err)
{
    id_table *t = mv_calloc(1, sizeof *t, err);
    if (t == NULL)
        return NULL;
    t->cap = 16;
    while (t->cap < 2 * n)
        t->cap *= 2;
    t->slot = mv_calloc(t->cap, sizeof *t->slot, err);
    int ok = t->slot != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char **at = table_find(t, ids[i]);
        if (*at == NULL)
            ok = (*at = mv_strdup(ids[i], err)) != NULL;
    }
    if (!ok) {
        table_free(t);
        return NULL;
    }
    return t;
}

/* srv->decoys, made on first use: published once with an atomic
 * compare-and-swap, so a refresh racing a lookup never sees half a set. */
static struct decoy_set *set_of(server *srv, mv_err *err)
{
    struct decoy_set *set = __atomic_load_n(&srv->decoys, __ATOMIC_ACQUIRE);
    if (set != NULL)
        return set;
    set = mv_calloc(1, sizeof *set, err);
    if (set == NULL)
        return NULL;
    if (pthread_rwlock_init(&set->lock, NULL) != 0) {
        free(set);
        mv_fail(err, MV_E_NOMEM, "cannot create the decoy set's lock");
        return NULL;
    }
    if (pthread_mutex_init(&set->refresh, NULL) != 0) {
        pthread_rwlock_destroy(&set->lock);
        free(set);
        mv_fail(err, MV_E_NOMEM, "cannot create the decoy set's lock");
        return NULL;
    }
    struct decoy_set *expected = NULL;
    if (__atomic_compare_exchange_n(&srv->decoys, &expected, set, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return set;
    pthread_mutex_destroy(&set->refresh);    /* another thread published first */
    pthread_rwlock_destroy(&set->lock);
    free(set);
    return expected;
}

int decoys_refresh(server *srv, mv_err *err)
{
    struct decoy_set *set = set_of(srv, err);
    if (set == NULL)
        return -1;
    pthread_mutex_lock(&set->refresh);
    char **ids = NULL;
    size_t n = 0;
    id_table *fresh = NULL;
    if (server_decoy_ids(srv->store, &ids, &n, err) == 0) {
        fresh = table_build(ids, n, err);
        store_ids_free(ids, n);
    }
    if (fresh == NULL) {
        pthread_mutex_unlock(&set->refresh);
        return -1;                  /* the set in use stays: known decoys stay known */
    }
    pthread_rwlock_wrlock(&set->lock);
    id_table *old = set->table;
    set->table = fresh;
    pthread_rwlock_unlock(&set->lock);
    pthread_mutex_unlock(&set->refresh);
    table_free(old);
    return 0;
}

int decoy_is(server *srv, const char *patient)
{
    if (srv == NULL || patient == NULL)
        return 0;
    struct decoy_set *set = __atomic_load_n(&srv->decoys, __ATOMIC_ACQUIRE);
    if (set == NULL)
        return 0;
    pthread_rwlock_rdlock(&set->lock);
    int found = set->table != NULL && *table_find(set->table, patient) != NULL;
    pthread_rwlock_unlock(&set->lock);
    return found;
}

void decoys_free(server *srv)
{
    if (srv == NULL || srv->decoys == NULL)
        return;
    table_free(srv->decoys->table);
    pthread_mutex_destroy(&srv->decoys->refresh);
    pthread_rwlock_destroy(&srv->decoys->lock);
    free(srv->decoys);
    srv->decoys = NULL;
}
