/*
 * leak_match.c -- which of the store's patients (and decoys) the rows of a
 * leaked file are, through the blind indexes alone.
 *
 * Why this exists: to know within minutes whether a dump for sale is this
 * hospital's, without opening a single record.  Each row's values are
 * canonicalised exactly as the blind index is written (search/ and
 * fhir/index.c: an Identifier "*|<VALUE>", a name "x:<folded>", a birth
 * date its day token (fhir_index_day_term), a ContactPoint "*|<value as
 * stored>") and looked up in the Patient tokens loaded once (store_lookup).  A row is recognised, strongest
 * first, by its NIR, by a Patient id (FHIR dumps), by family name AND birth
 * date together, and -- only when it has no valid NIR, since a valid NIR
 * that is not ours names someone else -- by e-mail or phone.
 *
 * Phones and e-mails are indexed in canonical form (fhir/index.c: digits
 * with the country code, lower-cased e-mail), so each is one HMAC per row
 * whatever way the record or the file wrote it.
 *
 * Family names and birth dates repeat across a file of hundreds of thousands
 * of rows: their lookups are remembered by raw value (a bounded memo), so
 * each distinct one is folded and hashed once.
 */
#include "leak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fhir/fhir.h"
#include "../search/search.h"
#include "../server/server.h"

#define MEMO_MAX   (1u << 18)    /* distinct names or dates remembered */
#define TERM_MAX   320
#define VARIANTS   6

/* ---- A memo of lookups by raw value --------------------------------------- */

typedef struct memo_entry {
    char *raw;                   /* owned; NULL = empty slot */
    int valid;                   /* 0: the value was malformed */
    char *const *ids;            /* borrowed from the lookup */
    size_t n;
} memo_entry;

typedef struct memo {
    memo_entry *slot;
    size_t cap, used;            /* cap a power of two, at most half used */
} memo;

static uint64_t fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static memo_entry *memo_find(memo *m, const char *raw)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)fnv(raw) & mask;; i = (i + 1) & mask)
        if (m->slot[i].raw == NULL || strcmp(m->slot[i].raw, raw) == 0)
            return &m->slot[i];
}

static void memo_free(memo *m)
{
    for (size_t i = 0; m->slot && i < m->cap; i++)
        free(m->slot[i].raw);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static int memo_grow(memo *m, mv_err *err)
{
    memo old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->used = 0;
    if ((m->slot = mv_calloc(m->cap, sizeof *m->slot, err)) == NULL) {
        *m = old;
        return -1;
    }
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i].raw != NULL) {
            *memo_find(m, old.slot[i].raw) = old.slot[i];
            m->used++;
        }
    free(old.slot);
    return 0;
}

/* Remember raw's answer (silently not, once the memo is full). */
static void memo_put(memo *m, const char *raw, int valid, char *const *ids, size_t n)
{
    if (m->used >= MEMO_MAX || (2 * (m->used + 1) > m->cap && memo_grow(m, NULL) != 0))
        return;
    memo_entry *e = memo_find(m, raw);
    if (e->raw != NULL || (e->raw = strdup(raw)) == NULL)
        return;
    e->valid = valid;
    e->ids = ids;
    e->n = n;
    m->used++;
}

/* ---- The matcher ------------------------------------------------------------ */

#define N_PARAMS 5

struct leak_matcher {
    mv_store *s;
    store_lookup *lk;
    const char *const *params;   /* the lookup's parameters ...            */
    int bits[N_PARAMS];          /* ... and their token widths (fhir.h)    */
    char **decoys;               /* sorted ids of the registry's decoys */
    size_t n_decoys;
    leak_counts counts;
    leak_patient *patients;      /* owned ids */
    size_t n_patients, cap_patients;
    size_t *slots;               /* hash of patients: index + 1, 0 empty */
    size_t n_slots;
    int sorted;                  /* patients sorted: no more rows */
    size_t bad_lines[LEAK_LINES_KEPT];
    size_t n_bad;
    memo family, birth;
    const char **scratch;        /* one row's ids: as many as the lookup holds */
};

const char *leak_by_name(leak_by b)
{
    static const char *const names[] = { "none", "nir", "id", "name+birth_date",
                                         "email", "phone" };
    return (unsigned)b <= LEAK_BY_PHONE ? names[b] : "?";
}

static int present(const char *v)
{
    if (v == NULL)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v != '\0';
}

static int find(leak_matcher *m, const char *param, const char *value, char *const **ids,
                size_t *n, mv_err *err)
{
    size_t k = 0;
    while (k < N_PARAMS && strcmp(m->params[k], param) != 0)
        k++;
    if (k == N_PARAMS)
        return mv_fail(err, MV_E_INTERNAL, "no lookup of Patient.%s", param);
    store_term t = { param, value, m->bits[k] };
    return store_lookup_find(m->lk, &t, ids, n, err);
}

/* ---- Recording patients --------------------------------------------------- */

static leak_patient *patient_slot(leak_matcher *m, const char *id, size_t **slot_out)
{
    size_t mask = m->n_slots - 1;
    for (size_t i = (size_t)fnv(id) & mask;; i = (i + 1) & mask) {
        if (m->slots[i] == 0 || strcmp(m->patients[m->slots[i] - 1].id, id) == 0) {
            *slot_out = &m->slots[i];
            return m->slots[i] ? &m->patients[m->slots[i] - 1] : NULL;
        }
    }
}

static int grow_patients(leak_matcher *m, mv_err *err)
{
    size_t cap = m->cap_patients ? m->cap_patients * 2 : 64;
    leak_patient *p = realloc(m->patients, cap * sizeof *p);
    if (p == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    m->patients = p;
    m->cap_patients = cap;
    free(m->slots);
    m->n_slots = 2 * cap;
    if ((m->slots = mv_calloc(m->n_slots, sizeof *m->slots, err)) == NULL)
        return -1;
    for (size_t i = 0; i < m->n_patients; i++) {
        size_t *slot;
        patient_slot(m, m->patients[i].id, &slot);
        *slot = i + 1;
    }
    return 0;
}

static int is_decoy(const leak_matcher *m, const char *id)
{
    size_t lo = 0, hi = m->n_decoys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->decoys[mid], id);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int record_patient(leak_matcher *m, const char *id, leak_by by, mv_err *err)
{
    if (m->n_patients == m->cap_patients && grow_patients(m, err) != 0)
        return -1;
    size_t *slot;
    leak_patient *p = patient_slot(m, id, &slot);
    if (p == NULL) {
        p = &m->patients[m->n_patients];
        memset(p, 0, sizeof *p);
        if ((p->id = mv_strdup(id, err)) == NULL)
            return -1;
        p->by = by;
        p->decoy = is_decoy(m, id);
        *slot = ++m->n_patients;
    }
    p->rows++;
    if (by < p->by)
        p->by = by;
    return 0;
}

/* ---- Keys of one row --------------------------------------------------------- */

/* The lookup of a value whose canonical form is "<prefix><canon>": the memo's
 * answer when it has one.  *valid 0 when the value is malformed. */
typedef int (*canon_fn)(const char *raw, char *term, size_t cap);

static int memo_lookup(leak_matcher *m, memo *mm, const char *param, canon_fn canon,
                       const char *raw, int *valid, char *const **ids, size_t *n,
                       mv_err *err)
{
    memo_entry *e = mm->cap ? memo_find(mm, raw) : NULL;
    if (e != NULL && e->raw != NULL) {
        *valid = e->valid;
        *ids = e->ids;
        *n = e->n;
        return 0;
    }
    char term[TERM_MAX];
    *ids = NULL;
    *n = 0;
    *valid = canon(raw, term, sizeof term) == 0;
    if (*valid && find(m, param, term, ids, n, err) != 0)
        return -1;
    memo_put(mm, raw, *valid, *ids, *n);
    return 0;
}

static int canon_family(const char *raw, char *term, size_t cap)
{
    char *folded = NULL;
    if (search_fold_name(raw, &folded, NULL) != 0)
        return -1;
    int n = snprintf(term, cap, "x:%s", folded);
    free(folded);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int canon_birth(const char *raw, char *term, size_t cap)
{
    char day[11];
    if (leak_date(raw, day) != 0)
        return -1;
    return fhir_index_day_term(day, term, cap);
}

/* Ids in both sorted lists, into out (capacity na). */
static size_t intersect(char *const *a, size_t na, char *const *b, size_t nb,
                        const char **out)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        if (c == 0)
            out[k++] = a[i];
        i += c <= 0;
        j += c >= 0;
    }
    return k;
}

/* The Patient holding raw as a phone or e-mail: the blind index keeps
 * ContactPoint values in their canonical form (fhir/index.c), so one
 * canonical lookup finds it however either side wrote it. */
static int match_telecom(leak_matcher *m, leak_field f, const char *raw, int *valid,
                         char form[TERM_MAX], char *const **ids, size_t *n, mv_err *err)
{
    char *canon = NULL;
    *n = 0;
    *valid = (f == LEAK_PHONE ? search_phone(raw, &canon, NULL)
                              : search_email(raw, &canon, NULL)) == 0 &&
             strlen(raw) < TERM_MAX - 8;
    int rc = 0;
    if (*valid) {
        snprintf(form, TERM_MAX, "*|%s", canon);
        rc = find(m, "telecom", form, ids, n, err);
    }
    free(canon);
    return rc;
}

typedef struct row_result {
    int usable;                  /* some identifying value was well formed */
    leak_by by;
    const char **ids;            /* borrowed from the lookup */
    size_t n;
} row_result;

/* 1 when Patient id holds every term of want (canonical values, as the
 * index wrote them): the blind index is truncated (fhir.h), so what it
 * found is a candidate until its body says so. */
static int holds(leak_matcher *m, const char *id, const fhir_term *want, size_t nw)
{
    store_resource r;
    if (store_get(m->s, "Patient", id, 0, &r, NULL) != 0)
        return 0;
    fhir_term *have = NULL;
    size_t nh = 0;
    int ok = !r.deleted && fhir_index_terms((const char *)r.body.data, r.body.len,
                                            &have, &nh, NULL) == 0;
    store_resource_free(&r);
    for (size_t k = 0; ok && k < nw; k++) {
        size_t i = 0;
        while (i < nh && (strcmp(have[i].param, want[k].param) != 0 ||
                          strcmp(have[i].value, want[k].value) != 0))
            i++;
        ok = i < nh;
    }
    fhir_terms_free(have, nh);
    return ok;
}

/* Keep in res the candidates ids[0..n) that hold want. */
static void take(leak_matcher *m, row_result *res, leak_by by, char *const *ids, size_t n,
                 const fhir_term *want, size_t nw)
{
    res->by = by;
    res->n = 0;
    for (size_t i = 0; i < n; i++)
        if (holds(m, ids[i], want, nw))
            res->ids[res->n++] = ids[i];
}

static int by_nir_or_id(leak_matcher *m, const leak_row *r, row_result *res, int *nir_ok,
                        mv_err *err)
{
    char *const *ids = NULL;
    size_t n = 0;
    *nir_ok = 0;
    if (present(r->v[LEAK_NIR])) {
        char *canon = NULL, term[TERM_MAX];
        *nir_ok = search_nir(r->v[LEAK_NIR], &canon, NULL) == 0;
        m->counts.rejected[LEAK_NIR] += !*nir_ok;
        if (*nir_ok)
            snprintf(term, sizeof term, "*|%s", canon);
        free(canon);
        if (*nir_ok && find(m, "identifier", term, &ids, &n, err) != 0)
            return -1;
        fhir_term want = { "identifier", term };
        if (n > 0)
            take(m, res, LEAK_BY_NIR, ids, n, &want, 1);
    }
    if (res->n == 0 && present(r->v[LEAK_ID]) && strlen(r->v[LEAK_ID]) < TERM_MAX - 2) {
        char term[TERM_MAX];
        snprintf(term, sizeof term, "|%s", r->v[LEAK_ID]);
        if (find(m, "_id", term, &ids, &n, err) != 0)
            return -1;
        fhir_term want = { "_id", term };
        if (n > 0)
            take(m, res, LEAK_BY_ID, ids, n, &want, 1);
    }
    res->usable = *nir_ok || present(r->v[LEAK_ID]);
    return 0;
}

static int by_name_birth(leak_matcher *m, const leak_row *r, row_result *res, mv_err *err)
{
    if (!present(r->v[LEAK_FAMILY]) || !present(r->v[LEAK_BIRTH]))
        return 0;
    char *const *fam, *const *born;
    size_t nf, nb;
    int fam_ok, born_ok;
    if (memo_lookup(m, &m->family, "family", canon_family, r->v[LEAK_FAMILY], &fam_ok,
                    &fam, &nf, err) != 0 ||
        memo_lookup(m, &m->birth, "birthdate", canon_birth, r->v[LEAK_BIRTH], &born_ok,
                    &born, &nb, err) != 0)
        return -1;
    m->counts.rejected[LEAK_FAMILY] += !fam_ok;
    m->counts.rejected[LEAK_BIRTH] += !born_ok;
    res->usable |= fam_ok && born_ok;
    if (res->n == 0 && fam_ok && born_ok && nf > 0 && nb > 0) {
        char family[TERM_MAX], birth[TERM_MAX];
        canon_family(r->v[LEAK_FAMILY], family, sizeof family);
        canon_birth(r->v[LEAK_BIRTH], birth, sizeof birth);
        const fhir_term want[] = { { "family", family }, { "birthdate", birth } };
        size_t k = intersect(fam, nf, born, nb, res->ids);
        take(m, res, LEAK_BY_NAME_BIRTH, (char *const *)res->ids, k, want, 2);
    }
    return 0;
}

static int by_contact(leak_matcher *m, const leak_row *r, row_result *res, mv_err *err)
{
    static const leak_field fields[] = { LEAK_EMAIL, LEAK_PHONE };
    for (size_t k = 0; k < 2 && res->n == 0; k++) {
        leak_field f = fields[k];
        if (!present(r->v[f]))
            continue;
        char *const *ids;
        size_t n;
        int valid;
        char form[TERM_MAX];
        if (match_telecom(m, f, r->v[f], &valid, form, &ids, &n, err) != 0)
            return -1;
        m->counts.rejected[f] += !valid;
        res->usable |= valid;
        fhir_term want = { "telecom", form };
        if (res->n == 0 && n > 0)
            take(m, res, f == LEAK_EMAIL ? LEAK_BY_EMAIL : LEAK_BY_PHONE, ids, n, &want, 1);
    }
    return 0;
}

static void note_bad(leak_matcher *m, size_t line)
{
    m->counts.unparseable++;
    if (m->n_bad < LEAK_LINES_KEPT)
        m->bad_lines[m->n_bad++] = line;
}

static int match_row(void *ctx, const leak_row *r, mv_err *err)
{
    leak_matcher *m = ctx;
    if (m->sorted)
        return mv_fail(err, MV_E_INTERNAL, "a row after the patients were listed");
    m->counts.rows++;
    row_result res = { 0, LEAK_BY_NONE, m->scratch, 0 };
    int nir_ok, rc = by_nir_or_id(m, r, &res, &nir_ok, err);
    if (rc == 0)
        rc = by_name_birth(m, r, &res, err);
    if (rc == 0 && !nir_ok)
        rc = by_contact(m, r, &res, err);
    for (size_t i = 0; rc == 0 && i < res.n; i++)
        rc = record_patient(m, res.ids[i], res.by, err);
    m->counts.matched += rc == 0 && res.n > 0;
    if (rc == 0 && !res.usable && res.n == 0)
        note_bad(m, r->line);
    return rc;
}

static void row_broken(void *ctx, size_t line)
{
    leak_matcher *m = ctx;
    m->counts.rows++;
    note_bad(m, line);
}

/* ---- Interface --------------------------------------------------------------- */

int leak_matcher_open(mv_store *s, leak_matcher **out, mv_err *err)
{
    static const char *const params[N_PARAMS] = { "identifier", "_id", "family",
                                                  "birthdate", "telecom" };
    *out = NULL;
    leak_matcher *m = mv_calloc(1, sizeof *m, err);
    if (m == NULL)
        return -1;
    m->s = s;
    m->params = params;
    for (size_t k = 0; k < N_PARAMS; k++)
        m->bits[k] = fhir_param_bits("Patient", params[k]);
    if (store_lookup_open(s, "Patient", params, sizeof params / sizeof params[0], &m->lk,
                          err) != 0 ||
        server_decoy_ids(s, &m->decoys, &m->n_decoys, err) != 0 ||
        grow_patients(m, err) != 0 ||
        (m->scratch = mv_calloc(store_lookup_size(m->lk) + 1, sizeof *m->scratch,
                                err)) == NULL) {
        leak_matcher_close(m);
        return -1;
    }
    *out = m;
    return 0;
}

void leak_matcher_close(leak_matcher *m)
{
    if (m == NULL)
        return;
    store_lookup_close(m->lk);
    store_ids_free(m->decoys, m->n_decoys);
    for (size_t i = 0; i < m->n_patients; i++)
        free(m->patients[i].id);
    free(m->patients);
    free(m->slots);
    memo_free(&m->family);
    memo_free(&m->birth);
    free(m->scratch);
    free(m);
}

leak_sink leak_matcher_sink(leak_matcher *m)
{
    leak_sink sink = { match_row, row_broken, m };
    return sink;
}

const leak_counts *leak_matcher_counts(const leak_matcher *m)
{
    return &m->counts;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const leak_patient *)a)->id, ((const leak_patient *)b)->id);
}

const leak_patient *leak_matcher_patients(leak_matcher *m, size_t *n)
{
    if (!m->sorted && m->n_patients > 1)
        qsort(m->patients, m->n_patients, sizeof *m->patients, by_id);
    m->sorted = 1;
    *n = m->n_patients;
    return m->patients;
}

const size_t *leak_matcher_bad_lines(const leak_matcher *m, size_t *n)
{
    *n = m->n_bad;
    return m->bad_lines;
}
