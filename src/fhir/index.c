/*
 * index.c -- the (search parameter, canonical value) pairs of a resource and
 * of a query, for the keyed blind index.
 *
 * Why this exists: the store never sees a searchable value in the clear; it
 * keeps HMAC(key, canonical value).  An exact-match index only answers FHIR
 * searches when the write side (every value a resource holds, per the
 * official R4 SearchParameters in the generated tables) and the query side
 * (what "family=dupont" or "birthdate=ge1985" must look up) agree byte for
 * byte, so both sides live here.  The canonical forms are described in
 * fhir.h.  Error messages name parameters and paths, never values.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fhir/fhir.h"
#include "fhir/index_internal.h"
#include "fhir/primitive.h"
#include "fhir/r4_model.h"
#include "search/search.h"

#define KEY_MAX          128 /* a JSON key or path segment */

/* ==== Term lists ========================================================== */

typedef struct term_list {
    fhir_term *t;
    size_t n;
    size_t cap;
    int exact_values;          /* also "e:<raw>" for strings: verification
                                  of :exact only, never stored            */
} term_list;

void fhir_terms_free(fhir_term *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].param);
        free(t[i].value);
    }
    free(t);
}

static int terms_add(term_list *l, const char *param, const char *value, mv_err *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        fhir_term *grown = realloc(l->t, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        l->t = grown;
        l->cap = cap;
    }
    char *p = strdup(param);
    char *v = strdup(value);
    if (p == NULL || v == NULL) {
        free(p);
        free(v);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    l->t[l->n].param = p;
    l->t[l->n].value = v;
    l->n++;
    return 0;
}

__attribute__((format(printf, 4, 5)))
static int terms_addf(term_list *l, const char *param, mv_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *value = NULL;
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0 || (value = malloc((size_t)len + 1)) == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(value, (size_t)len + 1, fmt, ap);
    va_end(ap);
    int rc = terms_add(l, param, value, err);
    free(value);
    return rc;
}

static int term_cmp(const void *a, const void *b)
{
    const fhir_term *x = a, *y = b;
    int c = strcmp(x->param, y->param);
    return c ? c : strcmp(x->value, y->value);
}

/* Sort, drop duplicates and hand the list over. */
static void terms_finish(term_list *l, fhir_term **out, size_t *n)
{
    if (l->n > 1)
        qsort(l->t, l->n, sizeof *l->t, term_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (kept > 0 && term_cmp(&l->t[kept - 1], &l->t[i]) == 0) {
            free(l->t[i].param);
            free(l->t[i].value);
            continue;
        }
        l->t[kept++] = l->t[i];
    }
    if (kept == 0) {
        free(l->t);
        l->t = NULL;
    }
    *out = l->t;
    *n = kept;
}

/* ==== Parameter lookup ==================================================== */

static const fhir_sp_resource *sp_resource_of(int type)
{
    return fhir_model_sp_row(type);
}

static const fhir_sp_param *sp_in_row(const fhir_sp_resource *r, const char *name)
{
    if (r == NULL)
        return NULL;
    size_t lo = 0, hi = r->n_params;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const fhir_sp_param *p = &fhir_r4_sp_params[r->first_param + mid];
        int c = strcmp(p->code, name);
        if (c == 0)
            return p;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const fhir_sp_resource *common_row(void)
{
    static const char resource[] = "Resource";
    return sp_resource_of(fhir_model_type(resource, sizeof resource - 1));
}

static const fhir_sp_param *sp_lookup(const char *type, const char *name)
{
    if (type == NULL || name == NULL || !fhir_type_known(type))
        return NULL;
    const fhir_sp_param *p = sp_in_row(sp_resource_of(fhir_model_type(type, strlen(type))), name);
    return p ? p : sp_in_row(common_row(), name);
}

int fhir_search_param(const char *type, const char *name, fhir_param_type *out)
{
    const fhir_sp_param *p = sp_lookup(type, name);
    if (p == NULL)
        return -1;
    if (out != NULL)
        *out = (fhir_param_type)p->type;
    return 0;
}

const char *fhir_reference_target(const char *type, const char *name)
{
    const fhir_sp_param *p = sp_lookup(type, name);
    return p && p->type == FHIR_PARAM_REFERENCE ? p->target : NULL;
}

/* ==== What the index keeps of each parameter ============================ */

/* Token widths, in bits (fhir.h): enough buckets that a lookup's false
 * candidates stay few, few enough that values share buckets. */
#define BITS_UNIQUE 32  /* identifiers, contacts, ids, references         */
#define BITS_CODE   10  /* codes: hundreds to thousands of values in use  */
#define BITS_TEXT   12  /* names, words and their prefixes; dates         */

/* Coded parameters whose values are a handful of statuses or classes even
 * though their element is a CodeableConcept or a Coding. */
static const char *const small_value_sets[] = {
    "category", "class", "clinical-status", "verification-status", NULL
};

static int small_value_set(const char *code)
{
    for (size_t i = 0; small_value_sets[i] != NULL; i++)
        if (strcmp(small_value_sets[i], code) == 0)
            return 1;
    return 0;
}

/* 1 when every value the path can reach, from structure, is a code or a
 * boolean (a required binding to a short list: gender, status, active);
 * 0 when some value is anything else or the path does not resolve. */
static int path_all_coded(int32_t structure, const char *path, int depth)
{
    size_t n = strcspn(path, ".");
    const char *rest = path[n] ? path + n + 1 : "";
    char seg[KEY_MAX];
    if (structure < 0 || depth > 16 || n >= sizeof seg)
        return 0;
    memcpy(seg, path, n);
    seg[n] = '\0';
    int32_t elem;
    int single = -1;
    if (n > 3 && strcmp(seg + n - 3, "[x]") == 0) {
        const fhir_elem_def *p = &fhir_r4_elems[structure];
        elem = -1;
        for (uint16_t i = 0; i < p->n_children && elem < 0; i++)
            if (strcmp(fhir_model_elem_name(&fhir_r4_elems[p->first_child + i]), seg) == 0)
                elem = p->first_child + i;
    } else {
        elem = fhir_model_child(structure, seg, &single);
    }
    if (elem < 0)
        return 0;
    const fhir_elem_def *e = &fhir_r4_elems[elem];
    uint16_t n_types = single >= 0 ? 1 : e->n_types;
    if (n_types == 0)
        return *rest ? path_all_coded(fhir_model_structure(elem, -1), rest, depth + 1) : 0;
    for (uint16_t i = 0; i < n_types; i++) {
        int t = single >= 0 ? single : fhir_r4_elem_types[e->first_type + i];
        const char *name = fhir_r4_types[t].name;
        int ok = *rest ? path_all_coded(fhir_model_structure(elem, t), rest, depth + 1)
                       : strcmp(name, "code") == 0 || strcmp(name, "boolean") == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

static int low_cardinality(int type, const fhir_sp_param *p)
{
    if (p->type != FHIR_PARAM_TOKEN)
        return 0;
    if (small_value_set(p->code))
        return 1;
    if (p->n_alts == 0)
        return 0;
    for (uint16_t a = 0; a < p->n_alts; a++)
        if (!path_all_coded(fhir_r4_types[type].root,
                            fhir_r4_sp_alts[p->first_alt + a].path, 0))
            return 0;
    return 1;
}

static int is_contact_param(const char *code);

int fhir_param_bits(const char *type, const char *name)
{
    const fhir_sp_param *p = sp_lookup(type, name);
    if (p == NULL || low_cardinality(fhir_model_type(type, strlen(type)), p))
        return 0;
    switch ((fhir_param_type)p->type) {
    case FHIR_PARAM_REFERENCE:
        return BITS_UNIQUE;
    case FHIR_PARAM_TOKEN:
        return strcmp(p->code, "_id") == 0 || (p->flags & FHIR_SPF_IDENTIFIER) ||
               is_contact_param(p->code) ? BITS_UNIQUE : BITS_CODE;
    case FHIR_PARAM_STRING:
    case FHIR_PARAM_DATE:
        return BITS_TEXT;
    }
    return 0;
}

/* ==== Canonical pieces shared by both sides =============================== */

/* An Identifier value: white space removed, ASCII upper-cased. */
static char *identifier_code(const char *in)
{
    char *out = malloc(strlen(in) + 1);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (const char *p = in; *p; p++) {
        if (!isspace((unsigned char)*p))
            out[k++] = (char)toupper((unsigned char)*p);
    }
    out[k] = '\0';
    return out;
}

/* A ContactPoint value in one form whatever way it was written: an e-mail
 * lower-cased, a phone number as its digits with the country code
 * ("06 12 34 56 78" and "+33 6 12 34 56 78" -> "33612345678"), anything else
 * as given.  The same on both sides, so a search -- and `medvault leak
 * check` -- finds a number however either side wrote it. */
static char *contact_code(const char *in)
{
    char *out = NULL;
    if (strchr(in, '@') ? search_email(in, &out, NULL) == 0
                        : search_phone(in, &out, NULL) == 0)
        return out;
    return strdup(in);
}

static int is_contact_param(const char *code)
{
    return strcmp(code, "telecom") == 0 || strcmp(code, "phone") == 0 ||
           strcmp(code, "email") == 0;
}

/* Fold like a name.  A value without letters ("75001") is folded behind a
 * letter that is then removed, so digits get the same treatment.  *out is
 * NULL when nothing is left to index. */
int fhir_index_fold(const char *in, char **out, mv_err *err)
{
    *out = NULL;
    if (search_fold_name(in, out, NULL) == 0)
        return 0;
    size_t len = strlen(in);
    char *prefixed = malloc(len + 3);
    if (prefixed == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    memcpy(prefixed, "a ", 2);
    memcpy(prefixed + 2, in, len + 1);
    char *folded = NULL;
    int rc = search_fold_name(prefixed, &folded, NULL);
    free(prefixed);
    if (rc != 0 || strncmp(folded, "a ", 2) != 0) {
        free(folded);
        return 0;
    }
    memmove(folded, folded + 2, strlen(folded + 2) + 1);
    *out = folded;
    return 0;
}

/* Bytes of the first max_chars UTF-8 characters of s (at most n bytes). */
static size_t utf8_prefix_bytes(const char *s, size_t n, size_t max_chars)
{
    size_t chars = 0, i = 0;
    while (i < n && chars < max_chars) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars++;
    }
    return i;
}

/* ==== Dates ===============================================================
 *
 * A date value names a range of instants [lo, hi) in UTC microseconds
 * (fhir_instant_parse: as wide as its precision, its offset applied, no
 * offset read as UTC), a Period from its start's lo to its end's hi (an
 * absent end is open: the Period goes on), a Timing each of its events.
 *
 * The index keeps no order: a range's UTC days are covered by the fewest
 * calendar nodes -- decades, years, months, days of 1900..2099, "<" and ">"
 * for before and after -- and each becomes a token: "c<node>" for a
 * covering node, "a<node>" for each of their ancestors ("cD:2020-07-01",
 * "aM:2020-07", "aY:2020", "aZ:202").  Two ranges share a day exactly when
 * a covering node of one is the other's covering node or an ancestor or a
 * descendant of one, so a query range looks up "c" of its covering nodes
 * and their ancestors and "a" of its covering nodes: every stored range
 * that shares a day with it is a candidate.  The prefix then decides on the
 * exact ranges, kept for verification only ("r:<lo>:<hi>", never stored).
 * ========================================================================= */

#define US_PER_DAY   86400000000LL
#define DOMAIN_FIRST_YEAR 1900
#define DOMAIN_END_YEAR   2100          /* exclusive */

typedef struct civil {
    int y, m, d;
} civil;

static int64_t days_from_civil(int y, int m, int d)
{
    return mv_days_from_civil(y, m, d);
}

static civil civil_from_days(int64_t z)
{
    civil c;
    mv_civil_from_days(z, &c.y, &c.m, &c.d);
    return c;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

enum { NODE_DECADE, NODE_YEAR, NODE_MONTH, NODE_DAY };

static int emit_node(term_list *l, const char *param, char role, int level, civil c,
                     mv_err *err)
{
    switch (level) {
    case NODE_DECADE: return terms_addf(l, param, err, "%cZ:%03d", role, c.y / 10);
    case NODE_YEAR:   return terms_addf(l, param, err, "%cY:%04d", role, c.y);
    case NODE_MONTH:  return terms_addf(l, param, err, "%cM:%04d-%02d", role, c.y, c.m);
    default:          return terms_addf(l, param, err, "%cD:%04d-%02d-%02d", role, c.y,
                                        c.m, c.d);
    }
}

/* The node that starts on day d and ends by day last, as large as fits:
 * its level, and its last day in *end. */
static int node_at(int64_t d, int64_t last, int64_t *end)
{
    civil c = civil_from_days(d);
    if (c.m == 1 && c.d == 1) {
        if (c.y % 10 == 0 && (*end = days_from_civil(c.y + 10, 1, 1) - 1) <= last)
            return NODE_DECADE;
        if ((*end = days_from_civil(c.y + 1, 1, 1) - 1) <= last)
            return NODE_YEAR;
    }
    if (c.d == 1 && (*end = days_from_civil(c.y, c.m + 1, 1) - 1) <= last)
        return NODE_MONTH;
    *end = d;
    return NODE_DAY;
}

/* The tokens of the range [lo, hi): a stored value's (query 0) or what a
 * query looks up to find every stored range sharing a day with it. */
static int emit_cover(term_list *l, const char *param, int64_t lo, int64_t hi, int query,
                      mv_err *err)
{
    int64_t first = floor_div(lo, US_PER_DAY);
    int64_t last = floor_div(hi > lo ? hi - 1 : lo, US_PER_DAY);
    int64_t domain_first = days_from_civil(DOMAIN_FIRST_YEAR, 1, 1);
    int64_t domain_end = days_from_civil(DOMAIN_END_YEAR, 1, 1);
    if (first < domain_first && terms_add(l, param, "c<", err) != 0)
        return -1;
    if (last >= domain_end && terms_add(l, param, "c>", err) != 0)
        return -1;
    if (first < domain_first)
        first = domain_first;
    if (last >= domain_end)
        last = domain_end - 1;
    for (int64_t d = first, end; d <= last; d = end + 1) {
        int level = node_at(d, last, &end);
        civil c = civil_from_days(d);
        if (emit_node(l, param, 'c', level, c, err) != 0 ||
            (query && emit_node(l, param, 'a', level, c, err) != 0))
            return -1;
        for (int up = NODE_DECADE; up < level; up++)
            if (emit_node(l, param, query ? 'c' : 'a', up, c, err) != 0)
                return -1;
    }
    return 0;
}

/* A stored range: its tokens, and in verification its exact bounds. */
static int emit_range(term_list *l, const char *param, int64_t lo, int64_t hi, mv_err *err)
{
    if (emit_cover(l, param, lo, hi, 0, err) != 0)
        return -1;
    return l->exact_values ? terms_addf(l, param, err, "r:%lld:%lld", (long long)lo,
                                        (long long)hi) : 0;
}

/* ==== The write side: walking a resource along a parameter's paths ======= */

typedef struct index_ctx {
    term_list *terms;
    const fhir_sp_param *param;
    const fhir_sp_alt *alt;
    size_t visited;
} index_ctx;

/* Verification only: the token as written, "t:<system>\x1f<code>" (system
 * "" when none), for R4's exact token matching (fhir_query). */
static int emit_raw_token(index_ctx *c, const char *system, const char *raw, mv_err *err)
{
    if (!c->terms->exact_values || raw == NULL || *raw == '\0')
        return 0;
    return terms_addf(c->terms, c->param->code, err, "t:%s\x1f%s", system ? system : "", raw);
}

/* The tokens of code (canonical: an identifier's normalised, a contact's
 * canonical form) and, for verification, of raw as written. */
static int emit_token_as(index_ctx *c, const char *system, const char *code,
                         const char *raw, int identifier, mv_err *err)
{
    if (code == NULL || *code == '\0')
        return 0;
    if (emit_raw_token(c, system, raw, err) != 0)
        return -1;
    char *norm = identifier ? identifier_code(code) : strdup(code);
    if (norm == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    const char *p = c->param->code;
    int rc;
    if (strcmp(p, "_id") == 0)
        rc = terms_addf(c->terms, p, err, "|%s", norm);
    else if (system != NULL && *system != '\0')
        rc = (terms_addf(c->terms, p, err, "%s|%s", system, norm) != 0 ||
              terms_addf(c->terms, p, err, "*|%s", norm) != 0 ||
              terms_addf(c->terms, p, err, "%s|*", system) != 0) ? -1 : 0;
    else
        rc = (terms_addf(c->terms, p, err, "|%s", norm) != 0 ||
              terms_addf(c->terms, p, err, "*|%s", norm) != 0) ? -1 : 0;
    free(norm);
    return rc;
}

static int emit_token(index_ctx *c, const char *system, const char *code, int identifier,
                      mv_err *err)
{
    return emit_token_as(c, system, code, code, identifier, err);
}

static const char *member_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Verification only: a display or text, folded as R4 compares strings,
 * "d:<text>" (what :text is checked against). */
static int emit_display(index_ctx *c, const char *text, mv_err *err)
{
    if (!c->terms->exact_values || text == NULL || *text == '\0')
        return 0;
    char *folded = NULL;
    int rc = search_fold_text(text, &folded, NULL) == 0
             ? terms_addf(c->terms, c->param->code, err, "d:%s", folded) : 0;
    free(folded);
    return rc;
}

/* Verification only: an Identifier under each of its types,
 * "o:<type system>\x1f<type code>\x1f<value>" (what :of-type is checked
 * against). */
static int emit_of_type(index_ctx *c, json_t *identifier, mv_err *err)
{
    const char *value = member_str(identifier, "value");
    if (!c->terms->exact_values || value == NULL)
        return 0;
    size_t i;
    json_t *coding;
    json_array_foreach(json_object_get(json_object_get(identifier, "type"), "coding"), i,
                       coding) {
        const char *system = member_str(coding, "system"), *code = member_str(coding, "code");
        if (code && terms_addf(c->terms, c->param->code, err, "o:%s\x1f%s\x1f%s",
                               system ? system : "", code, value) != 0)
            return -1;
    }
    return 0;
}

static int index_coding(index_ctx *c, json_t *coding, mv_err *err)
{
    if (emit_display(c, member_str(coding, "display"), err) != 0)
        return -1;
    return emit_token(c, member_str(coding, "system"), member_str(coding, "code"), 0, err);
}

static int index_token(index_ctx *c, json_t *v, const char *type, mv_err *err)
{
    if (strcmp(type, "Coding") == 0)
        return index_coding(c, v, err);
    if (strcmp(type, "CodeableConcept") == 0) {
        size_t i;
        json_t *coding;
        if (emit_display(c, member_str(v, "text"), err) != 0)
            return -1;
        json_array_foreach(json_object_get(v, "coding"), i, coding) {
            if (index_coding(c, coding, err) != 0)
                return -1;
        }
        return 0;
    }
    if (strcmp(type, "Identifier") == 0)
        return emit_of_type(c, v, err) != 0 ? -1
               : emit_token(c, member_str(v, "system"), member_str(v, "value"), 1, err);
    if (strcmp(type, "ContactPoint") == 0) {
        const char *raw = member_str(v, "value");
        char *canon = raw ? contact_code(raw) : NULL;
        if (raw && canon == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        int rc = emit_token_as(c, NULL, canon, raw, 0, err);
        free(canon);
        return rc;
    }
    if (json_is_boolean(v))
        return emit_token(c, NULL, json_is_true(v) ? "true" : "false", 0, err);
    return emit_token(c, NULL, json_string_value(v), 0, err);
}

/* p:<prefix> of every word and x:<whole>, from one raw string. */
static int index_text(index_ctx *c, const char *raw, mv_err *err)
{
    if (raw == NULL)
        return 0;
    char *folded = NULL;
    if (fhir_index_fold(raw, &folded, err) != 0)
        return -1;
    if (folded == NULL || *folded == '\0') {
        free(folded);
        return 0;
    }
    const char *p = c->param->code;
    int rc = terms_addf(c->terms, p, err, "x:%s", folded);
    if (rc == 0 && c->terms->exact_values)
        rc = terms_addf(c->terms, p, err, "e:%s", raw);
    if (rc == 0 && c->terms->exact_values) {
        char *text = NULL;                    /* R4's case and accent fold */
        rc = search_fold_text(raw, &text, NULL) == 0
             ? terms_addf(c->terms, p, err, "v:%s", text) : 0;
        free(text);
    }
    for (const char *w = folded; rc == 0 && *w; ) {
        size_t wlen = strcspn(w, " ");
        for (size_t k = 1; rc == 0 && k <= PREFIX_MAX_CHARS; k++) {
            size_t bytes = utf8_prefix_bytes(w, wlen, k);
            rc = terms_addf(c->terms, p, err, "p:%.*s", (int)bytes, w);
            if (bytes == wlen)
                break;
        }
        w += wlen;
        w += (*w == ' ');
    }
    free(folded);
    return rc;
}

/* Each string of a member that is a string or an array of strings. */
static int index_member_text(index_ctx *c, json_t *obj, const char *key, mv_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_array(v))
        return index_text(c, json_string_value(v), err);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        if (index_text(c, json_string_value(item), err) != 0)
            return -1;
    }
    return 0;
}

static int index_string(index_ctx *c, json_t *v, const char *type, mv_err *err)
{
    static const char *const human_name[] = {"family", "given", "prefix", "suffix", "text", NULL};
    static const char *const address[] = {"line", "city", "district", "state", "postalCode",
                                          "country", "text", NULL};
    const char *const *keys = strcmp(type, "HumanName") == 0 ? human_name
                            : strcmp(type, "Address") == 0 ? address : NULL;
    if (keys == NULL)
        return index_text(c, json_string_value(v), err);
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (index_member_text(c, v, keys[i], err) != 0)
            return -1;
    }
    return 0;
}

/* The range a stored date names; -1 when it is no date (skipped). */
static int stored_range(const char *s, int64_t *lo, int64_t *hi)
{
    return s != NULL && fhir_instant_parse("date", s, lo, hi, NULL) == 0 ? 0 : -1;
}

static int index_date_string(index_ctx *c, const char *s, mv_err *err)
{
    int64_t lo, hi;
    if (stored_range(s, &lo, &hi) != 0)
        return 0;
    return emit_range(c->terms, c->param->code, lo, hi, err);
}

/* A Period: from its start to the end of its end; an absent end is open
 * (the period is ongoing), an absent start unbounded before. */
static int index_period(index_ctx *c, json_t *v, mv_err *err)
{
    int64_t slo, shi, elo, ehi;
    int has_start = stored_range(member_str(v, "start"), &slo, &shi) == 0;
    int has_end = stored_range(member_str(v, "end"), &elo, &ehi) == 0;
    if (!has_start && !has_end)
        return 0;
    int64_t lo = has_start ? slo : INT64_MIN, hi = has_end ? ehi : INT64_MAX;
    if (has_start && has_end && hi <= lo) {       /* an end before its start */
        lo = slo < elo ? slo : elo;
        hi = shi > ehi ? shi : ehi;
    }
    return emit_range(c->terms, c->param->code, lo, hi, err);
}

static int index_date(index_ctx *c, json_t *v, const char *type, mv_err *err)
{
    if (strcmp(type, "Period") == 0)
        return index_period(c, v, err);
    if (strcmp(type, "Timing") == 0) {
        size_t i;
        json_t *event;
        json_array_foreach(json_object_get(v, "event"), i, event) {
            if (index_date_string(c, json_string_value(event), err) != 0)
                return -1;
        }
        return 0;
    }
    return index_date_string(c, json_string_value(v), err);
}

/* "Type/id" or "Type/id/_history/v" with a known type and a valid id:
 * 0 and the lengths of the type and id parts; -1 for anything else. */
static int split_relative_ref(const char *ref, size_t *type_len, size_t *id_len)
{
    const char *slash = strchr(ref, '/');
    if (slash == NULL || strchr(ref, ':') != NULL || slash - ref >= KEY_MAX)
        return -1;
    char buf[KEY_MAX];
    *type_len = (size_t)(slash - ref);
    memcpy(buf, ref, *type_len);
    buf[*type_len] = '\0';
    if (!fhir_type_known(buf))
        return -1;
    const char *id = slash + 1;
    const char *end = strchr(id, '/');
    *id_len = end ? (size_t)(end - id) : strlen(id);
    if (end && strncmp(end, "/_history/", 10) != 0)
        return -1;
    if (*id_len == 0 || *id_len > 64)
        return -1;
    memcpy(buf, id, *id_len);
    buf[*id_len] = '\0';
    return fhir_prim_valid_id(buf) ? 0 : -1;
}

static int index_reference(index_ctx *c, json_t *v, mv_err *err)
{
    const char *ref = member_str(v, "reference");
    size_t type_len, id_len;
    json_t *ident = json_object_get(v, "identifier");     /* for :identifier */
    const char *ivalue = member_str(ident, "value"), *isystem = member_str(ident, "system");
    if (c->terms->exact_values && ivalue &&
        terms_addf(c->terms, c->param->code, err, "i:%s\x1f%s", isystem ? isystem : "",
                   ivalue) != 0)
        return -1;
    if (ref == NULL || split_relative_ref(ref, &type_len, &id_len) != 0)
        return 0;
    const char *target = c->alt->target;
    if (target && (strlen(target) != type_len || strncmp(ref, target, type_len) != 0))
        return 0;
    return terms_addf(c->terms, c->param->code, err, "%.*s", (int)(type_len + 1 + id_len), ref);
}

static int index_leaf(index_ctx *c, json_t *v, int type, mv_err *err)
{
    if (type < 0)
        return 0;
    const char *tname = fhir_r4_types[type].name;
    switch ((fhir_param_type)c->param->type) {
    case FHIR_PARAM_TOKEN:
        return index_token(c, v, tname, err);
    case FHIR_PARAM_STRING:
        return index_string(c, v, tname, err);
    case FHIR_PARAM_DATE:
        return index_date(c, v, tname, err);
    case FHIR_PARAM_REFERENCE:
        return strcmp(tname, "Reference") == 0 ? index_reference(c, v, err) : 0;
    }
    return 0;
}

static int walk_step(index_ctx *c, json_t *obj, int32_t structure, const char *path,
                     mv_err *err);

/* v is the value of element elem (type type); follow the rest of the path. */
static int walk_value(index_ctx *c, json_t *v, int32_t elem, int type, const char *rest,
                      mv_err *err)
{
    if (v == NULL)
        return 0;
    if (++c->visited > FHIR_MAX_ELEMENTS)
        return mv_fail(err, MV_E_INVALID, "search parameter %s: too many values",
                       c->param->code);
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (walk_value(c, item, elem, type, rest, err) != 0)
                return -1;
        }
        return 0;
    }
    if (*rest == '\0')
        return index_leaf(c, v, type, err);
    int32_t structure = json_is_object(v) ? fhir_model_structure(elem, type) : -1;
    return structure < 0 ? 0 : walk_step(c, v, structure, rest, err);
}

/* The child of structure named exactly name ("effective[x]"), or -1. */
static int32_t child_named(int32_t structure, const char *name)
{
    const fhir_elem_def *p = &fhir_r4_elems[structure];
    for (uint16_t i = 0; i < p->n_children; i++) {
        if (strcmp(fhir_model_elem_name(&fhir_r4_elems[p->first_child + i]), name) == 0)
            return p->first_child + i;
    }
    return -1;
}

/* Every "<base><Type>" key of an unfiltered choice element. */
static int walk_choice(index_ctx *c, json_t *obj, int32_t elem, const char *rest, mv_err *err)
{
    const fhir_elem_def *e = &fhir_r4_elems[elem];
    const char *name = fhir_model_elem_name(e);
    size_t base_len = strlen(name) - 3;
    for (uint16_t i = 0; i < e->n_types; i++) {
        int t = fhir_r4_elem_types[e->first_type + i];
        char key[KEY_MAX];
        int n = snprintf(key, sizeof key, "%.*s%c%s", (int)base_len, name,
                         toupper((unsigned char)fhir_r4_types[t].name[0]),
                         fhir_r4_types[t].name + 1);
        if (n < 0 || (size_t)n >= sizeof key)
            return mv_fail(err, MV_E_INTERNAL, "search parameter %s: key too long",
                           c->param->code);
        if (walk_value(c, json_object_get(obj, key), elem, t, rest, err) != 0)
            return -1;
    }
    return 0;
}

static int walk_step(index_ctx *c, json_t *obj, int32_t structure, const char *path,
                     mv_err *err)
{
    size_t n = strcspn(path, ".");
    const char *rest = path[n] ? path + n + 1 : "";
    char seg[KEY_MAX];
    if (n >= sizeof seg)
        return mv_fail(err, MV_E_INTERNAL, "search parameter %s: path too long", c->param->code);
    memcpy(seg, path, n);
    seg[n] = '\0';
    if (n > 3 && strcmp(seg + n - 3, "[x]") == 0) {
        int32_t elem = child_named(structure, seg);
        return elem < 0 ? 0 : walk_choice(c, obj, elem, rest, err);
    }
    int type;
    int32_t elem = fhir_model_child(structure, seg, &type);
    return elem < 0 ? 0 : walk_value(c, json_object_get(obj, seg), elem, type, rest, err);
}

static int index_row(term_list *l, json_t *root, int type, const fhir_sp_resource *r,
                     mv_err *err)
{
    for (uint16_t p = 0; r != NULL && p < r->n_params; p++) {
        index_ctx c = {l, &fhir_r4_sp_params[r->first_param + p], NULL, 0};
        for (uint16_t a = 0; a < c.param->n_alts; a++) {
            c.alt = &fhir_r4_sp_alts[c.param->first_alt + a];
            if (walk_step(&c, root, fhir_r4_types[type].root, c.alt->path, err) != 0)
                return -1;
        }
    }
    return 0;
}

static int index_resource(term_list *l, json_t *root, mv_err *err)
{
    const char *rt = member_str(root, "resourceType");
    if (rt == NULL || !fhir_type_known(rt))
        return mv_fail(err, MV_E_INVALID, "not a resource with a known resourceType");
    int type = fhir_model_type(rt, strlen(rt));
    if (index_row(l, root, type, sp_resource_of(type), err) != 0)
        return -1;
    return index_row(l, root, type, common_row(), err);
}

static int index_terms(const char *json, size_t len, int exact_values, fhir_term **out,
                       size_t *n, mv_err *err);

int fhir_index_terms(const char *json, size_t len, fhir_term **out, size_t *n, mv_err *err)
{
    return index_terms(json, len, 0, out, n, err);
}

int fhir_index_terms_verify(const char *json, size_t len, fhir_term **out, size_t *n,
                            mv_err *err)
{
    return index_terms(json, len, 1, out, n, err);
}

static int index_terms(const char *json, size_t len, int exact_values, fhir_term **out,
                       size_t *n, mv_err *err)
{
    *out = NULL;
    *n = 0;
    if (json == NULL)
        return mv_fail(err, MV_E_INVALID, "no resource body");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL)
        return mv_fail(err, MV_E_INVALID, "body is not valid JSON (line %d, column %d)",
                       jerr.line, jerr.column);
    term_list l = {NULL, 0, 0, exact_values};
    int rc = index_resource(&l, root, err);
    json_decref(root);
    if (rc != 0) {
        fhir_terms_free(l.t, l.n);
        return -1;
    }
    terms_finish(&l, out, n);
    return 0;
}

/* ==== The query side ====================================================== */

static int no_modifier(const fhir_sp_param *p, const char *modifier, mv_err *err)
{
    if (modifier != NULL && *modifier != '\0')
        return mv_fail(err, MV_E_INVALID, "search parameter %s: modifier :%s not supported",
                       p->code, modifier);
    return 0;
}

/* One token query form with the code already in its canonical form. */
static int query_token_code(term_list *l, const char *p, const char *system, int has_bar,
                            const char *code, mv_err *err)
{
    if (!has_bar)
        return terms_addf(l, p, err, "*|%s", code);
    if (*code == '\0')
        return terms_addf(l, p, err, "%s|*", system);
    return terms_addf(l, p, err, "%s|%s", system, code);
}

static int query_token(term_list *l, const fhir_sp_param *p, const char *value, mv_err *err)
{
    const char *bar = strchr(value, '|');
    const char *code = bar ? bar + 1 : value;
    if (*code == '\0' && (bar == NULL || bar == value))
        return mv_fail(err, MV_E_INVALID, "search parameter %s: empty token", p->code);
    if (strcmp(p->code, "_id") == 0)
        return terms_addf(l, p->code, err, "|%s", code);
    if (is_contact_param(p->code)) {
        char *canon = contact_code(code);
        int rc = canon ? terms_addf(l, p->code, err, "*|%s", canon)
                       : mv_fail(err, MV_E_NOMEM, "out of memory");
        free(canon);
        return rc;
    }
    char *system = strndup(value, bar ? (size_t)(bar - value) : 0);
    char *ident = identifier_code(code);
    int rc = (system == NULL || ident == NULL) ? mv_fail(err, MV_E_NOMEM, "out of memory") : 0;
    if (rc == 0 && (p->flags & FHIR_SPF_IDENTIFIER))
        rc = query_token_code(l, p->code, system, bar != NULL, ident, err);
    if (rc == 0 && (p->flags & FHIR_SPF_OTHER))
        rc = query_token_code(l, p->code, system, bar != NULL, code, err);
    free(system);
    free(ident);
    return rc;
}

static int query_string(term_list *l, const fhir_sp_param *p, const char *modifier,
                        const char *value, mv_err *err)
{
    int exact = modifier != NULL && strcmp(modifier, "exact") == 0;
    if (!exact && no_modifier(p, modifier, err) != 0)
        return -1;
    char *folded = NULL;
    if (fhir_index_fold(value, &folded, err) != 0)
        return -1;
    if (folded == NULL || *folded == '\0') {
        free(folded);
        return mv_fail(err, MV_E_INVALID, "search parameter %s: nothing to search for", p->code);
    }
    int rc;
    if (exact) {
        rc = terms_addf(l, p->code, err, "x:%s", folded);
    } else {
        size_t word = strcspn(folded, " ");
        size_t bytes = utf8_prefix_bytes(folded, word, PREFIX_MAX_CHARS);
        rc = terms_addf(l, p->code, err, "p:%.*s", (int)bytes, folded);
    }
    free(folded);
    return rc;
}

/* ---- Date queries ---------------------------------------------------------- */

static const char *const date_prefixes[] = {
    [FHIR_DATE_EQ] = "eq", [FHIR_DATE_NE] = "ne", [FHIR_DATE_GT] = "gt",
    [FHIR_DATE_LT] = "lt", [FHIR_DATE_GE] = "ge", [FHIR_DATE_LE] = "le",
    [FHIR_DATE_SA] = "sa", [FHIR_DATE_EB] = "eb", [FHIR_DATE_AP] = "ap",
};

/* ap: approximately, 10% of the gap between now and the value (R4's
 * recommendation), at least a day. */
static void widen_approximately(fhir_date_query *q)
{
    int64_t now = (int64_t)time(NULL) * 1000000;
    int64_t gap = now > q->lo ? now - q->lo : q->lo - now;
    int64_t tolerance = gap / 10 > US_PER_DAY ? gap / 10 : US_PER_DAY;
    q->lo = q->lo > INT64_MIN + tolerance ? q->lo - tolerance : INT64_MIN;
    q->hi = q->hi < INT64_MAX - tolerance ? q->hi + tolerance : INT64_MAX;
}

int fhir_date_query_parse(const char *name, const char *value, fhir_date_query *q,
                          mv_err *err)
{
    q->prefix = FHIR_DATE_EQ;
    if (isalpha((unsigned char)value[0])) {
        size_t k = 0, n = sizeof date_prefixes / sizeof date_prefixes[0];
        while (k < n && strncmp(value, date_prefixes[k], 2) != 0)
            k++;
        if (k == n)
            return mv_fail(err, MV_E_INVALID, "search parameter %s: unknown date prefix "
                           "(eq ne gt lt ge le sa eb ap)", name);
        q->prefix = (fhir_date_prefix)k;
        value += 2;
    }
    if (fhir_instant_parse(name, value, &q->lo, &q->hi, err) != 0)
        return -1;
    if (q->prefix == FHIR_DATE_AP)
        widen_approximately(q);
    return 0;
}

int fhir_date_query_holds(const fhir_date_query *q, int64_t lo, int64_t hi)
{
    int within = q->lo <= lo && hi <= q->hi;
    switch (q->prefix) {
    case FHIR_DATE_EQ: return within;
    case FHIR_DATE_NE: return !within;
    case FHIR_DATE_GT: return hi > q->hi;
    case FHIR_DATE_LT: return lo < q->lo;
    case FHIR_DATE_GE: return hi > q->hi || within;
    case FHIR_DATE_LE: return lo < q->lo || within;
    case FHIR_DATE_SA: return lo >= q->hi;
    case FHIR_DATE_EB: return hi <= q->lo;
    case FHIR_DATE_AP: return lo < q->hi && hi > q->lo;
    }
    return 0;
}

/* The stored ranges a query's candidates must share a day with: every
 * range the prefix can accept overlaps it.  ne accepts ranges anywhere: it
 * looks nothing up (the caller scans, fhir_query_terms_of). */
static int query_date(term_list *l, const fhir_sp_param *p, const char *value, mv_err *err)
{
    fhir_date_query q;
    if (fhir_date_query_parse(p->code, value, &q, err) != 0)
        return -1;
    int64_t lo = q.lo, hi = q.hi;
    switch (q.prefix) {
    case FHIR_DATE_NE: return 0;
    case FHIR_DATE_GT: case FHIR_DATE_SA: lo = q.hi; hi = INT64_MAX; break;
    case FHIR_DATE_LT: case FHIR_DATE_EB: lo = INT64_MIN; hi = q.lo; break;
    case FHIR_DATE_GE: hi = INT64_MAX; break;
    case FHIR_DATE_LE: lo = INT64_MIN; break;
    default: break;
    }
    return emit_cover(l, p->code, lo, hi, 1, err);
}

int fhir_index_day_term(const char *yyyy_mm_dd, char *out, size_t cap)
{
    int64_t lo, hi;
    if (fhir_instant_parse("date", yyyy_mm_dd, &lo, &hi, NULL) != 0 ||
        hi - lo != US_PER_DAY)
        return -1;
    civil c = civil_from_days(floor_div(lo, US_PER_DAY));
    int n = snprintf(out, cap, "cD:%04d-%02d-%02d", c.y, c.m, c.d);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int query_reference(term_list *l, const fhir_sp_param *p, const char *modifier,
                           const char *value, mv_err *err)
{
    size_t type_len, id_len;
    if (strchr(value, '/') != NULL) {
        if (no_modifier(p, modifier, err) != 0)
            return -1;
        if (split_relative_ref(value, &type_len, &id_len) != 0)
            return mv_fail(err, MV_E_INVALID, "search parameter %s: not a Type/id reference",
                           p->code);
        return terms_addf(l, p->code, err, "%.*s", (int)(type_len + 1 + id_len), value);
    }
    const char *type = modifier && *modifier ? modifier : p->target;
    if (type == NULL || !fhir_type_known(type))
        return mv_fail(err, MV_E_INVALID, "search parameter %s: give Type/id or :Type", p->code);
    if (!fhir_prim_valid_id(value))
        return mv_fail(err, MV_E_INVALID, "search parameter %s: malformed id", p->code);
    return terms_addf(l, p->code, err, "%s/%s", type, value);
}

static int query_dispatch(term_list *l, const fhir_sp_param *p, const char *modifier,
                          const char *value, mv_err *err)
{
    switch ((fhir_param_type)p->type) {
    case FHIR_PARAM_TOKEN:
        return no_modifier(p, modifier, err) == 0 ? query_token(l, p, value, err) : -1;
    case FHIR_PARAM_STRING:
        return query_string(l, p, modifier, value, err);
    case FHIR_PARAM_DATE:
        return no_modifier(p, modifier, err) == 0 ? query_date(l, p, value, err) : -1;
    case FHIR_PARAM_REFERENCE:
        return query_reference(l, p, modifier, value, err);
    }
    return mv_fail(err, MV_E_INTERNAL, "search parameter %s: unknown kind", p->code);
}

int fhir_query_terms(const char *type, const char *name, const char *modifier,
                     const char *value, fhir_term **out, size_t *n, mv_err *err)
{
    *out = NULL;
    *n = 0;
    const fhir_sp_param *p = sp_lookup(type, name);
    if (p == NULL)
        return mv_fail(err, MV_E_INVALID, "unknown search parameter %s for %s",
                       name ? name : "(none)", type ? type : "(none)");
    if (value == NULL || *value == '\0')
        return mv_fail(err, MV_E_INVALID, "search parameter %s: empty value", p->code);
    term_list l = {NULL, 0, 0, 0};
    if (query_dispatch(&l, p, modifier, value, err) != 0) {
        fhir_terms_free(l.t, l.n);
        return -1;
    }
    terms_finish(&l, out, n);
    return 0;
}
