/*
 * routes_search.c -- FHIR type-level search (GET /fhir/Type?param=value...)
 * over the truncated blind indexes -- and _lastUpdated from the clear time
 * the store keeps for each version (not clinical data).
 *
 * The query is compiled once (fhir_query): the index proposes candidates
 * (find.c: each indexed parameter's values ORed, parameters ANDed; the
 * low-cardinality ones are not indexed); _lastUpdated becomes a time range
 * (fhir_query_instants) the store compares.  Every candidate is put through
 * the policy decision on its head first, and only a permitted one is
 * decrypted and verified on its body: what the caller may not see is
 * dropped before counting and never opened, so neither a total nor a page
 * reveals that a hidden patient exists.  One audit entry per disclosed patient names the
 * resources returned; the query's values (names, identifiers) never reach
 * the trail, only its parameter names.  Paging links are absolute and carry
 * every parameter, so a client follows them as they are.
 */
#include "fhir_internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define FHIR_JSON "application/fhir+json"
#define DEFAULT_COUNT 20
#define MAX_COUNT 100           /* what one page may disclose        */
#define MAX_MATCHES 10000       /* matches examined before refusing  */
#define MAX_PARAMS 16

/* ---- The query ------------------------------------------------------------- */

typedef struct param {
    char name[64];
    char modifier[192];
    const char *value;             /* as asked: the paging links carry it  */
    int linked;                    /* a chain or _has, resolved into:       */
    char resolved_name[64];
    char *resolved;                /*   its plain value (owned); NULL when
                                        nothing matched: nothing does      */
} param;

#define MAX_INCLUDES 8

/* One key of _sort: a parameter, _id or _lastUpdated, "-" descending. */
#define MAX_SORT 4
typedef struct sort_key {
    char name[64];
    int descending;
} sort_key;

typedef struct query {
    const char *type;
    param p[MAX_PARAMS];
    size_t n;
    fhir_query *match;             /* every parameter but _lastUpdated */
    long count, offset;
    sort_key sort[MAX_SORT];       /* _sort, in order                   */
    size_t n_sort;
    const char *sort_text;         /* as asked, for the paging links     */
    fhir_include inc[MAX_INCLUDES]; /* _include, _revinclude              */
    size_t n_inc;
    int none;                      /* a chain matched nothing            */
    const char *compartment;       /* Patient/ID/Type: the patient ID    */
    char *compartment_ids;         /* its resources of type, "a,b" (owned) */
    int summary_count;
    const char *summary;           /* _summary=true|text|data|false       */
    const char *elements;          /* _elements=a,b                       */
    char error[200];
} query;

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

/* "_sort=a,-b": each key a search parameter of the type (checked when the
 * hits are sorted), _id or _lastUpdated. */
static int parse_sort(query *q, const char *value)
{
    q->sort_text = value;
    q->n_sort = 0;
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ",");
        sort_key *k = &q->sort[q->n_sort];
        if (q->n_sort == MAX_SORT || n == 0)
            return -1;
        k->descending = p[0] == '-';
        size_t skip = (size_t)k->descending;
        if (n - skip == 0 || n - skip >= sizeof k->name)
            return -1;
        memcpy(k->name, p + skip, n - skip);
        k->name[n - skip] = '\0';
        q->n_sort++;
        p += n + (p[n] == ',');
    }
    return q->n_sort > 0 ? 0 : -1;
}

/* "_include", "_revinclude", with ":iterate" (or R4's ":recurse"). */
static int include_param(query *q, const char *name, const char *value)
{
    int reverse = strncmp(name, "_revinclude", 11) == 0;
    const char *rest = name + (reverse ? 11 : 8);
    if (!reverse && strncmp(name, "_include", 8) != 0)
        return 0;
    if (*rest && strcmp(rest, ":iterate") != 0 && strcmp(rest, ":recurse") != 0)
        return -1;
    if (q->n_inc == MAX_INCLUDES || *value == '\0')
        return -1;
    q->inc[q->n_inc++] = (fhir_include){ value, reverse, *rest != '\0' };
    return 1;
}

static int control_param(query *q, const char *name, const char *value)
{
    int inc = include_param(q, name, value);
    if (inc != 0)
        return inc;
    if (strcmp(name, "_total") == 0)     /* totals are always exact */
        return strcmp(value, "none") == 0 || strcmp(value, "estimate") == 0 ||
               strcmp(value, "accurate") == 0 ? 1 : -1;
    if (strcmp(name, "_count") == 0) {      /* more than the maximum: the maximum,
                                              with a next link (R4 3.1.1.5.6) */
        if (parse_long(value, 0, LONG_MAX, &q->count) != 0)
            return -1;
        if (q->count > MAX_COUNT)
            q->count = MAX_COUNT;
        return 1;
    }
    if (strcmp(name, "_offset") == 0)
        return parse_long(value, 0, MAX_MATCHES, &q->offset) == 0 ? 1 : -1;
    if (strcmp(name, "_summary") == 0) {
        if (strcmp(value, "count") == 0)
            return q->summary_count = 1;
        q->summary = value;
        return fhir_summary_valid(value) ? 1 : -1;
    }
    if (strcmp(name, "_elements") == 0)
        return (q->elements = value)[0] ? 1 : -1;
    if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0)
        return 1;                           /* the format: fhir_acceptable */
    if (strcmp(name, "_sort") == 0)
        return parse_sort(q, value) == 0 ? 1 : -1;
    return 0;
}

static int collect_param(const char *name, const char *value, void *ctx)
{
    query *q = ctx;
    int c = control_param(q, name, value);
    if (c < 0) {
        snprintf(q->error, sizeof q->error, "bad value for %.40s", name);
        return 1;
    }
    if (c > 0)
        return 0;
    if (q->n == MAX_PARAMS) {
        snprintf(q->error, sizeof q->error, "at most %d search parameters", MAX_PARAMS);
        return 1;
    }
    param *p = &q->p[q->n++];
    const char *colon = strchr(name, ':');
    size_t len = colon ? (size_t)(colon - name) : strlen(name);
    if (len >= sizeof p->name || (colon && strlen(colon + 1) >= sizeof p->modifier)) {
        snprintf(q->error, sizeof q->error, "search parameter name too long");
        return 1;
    }
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    snprintf(p->modifier, sizeof p->modifier, "%s", colon ? colon + 1 : "");
    p->value = value;
    return 0;
}

/* ---- Matching ---------------------------------------------------------------- */

/* _lastUpdated: the store compares the clear times of current versions. */
static int last_updated_ids(mv_store *s, const char *type, const param *p,
                            id_set *out, mv_err *err)
{
    fhir_instant_range r;
    if (fhir_query_instants(p->name, p->modifier, p->value, &r, err) != 0 ||
        store_search_updated(s, type, r.from_us, r.to_us, r.outside, &out->v,
                             &out->n, err) != 0)
        return -1;
    id_set_normalise(out);
    return 0;
}

/* Compile the parameters the body decides (all but _lastUpdated), and
 * check the _sort keys name parameters of the type. */
static int compile_query(query *q, mv_err *err)
{
    q->match = fhir_query_new(q->type);
    if (q->match == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    for (size_t k = 0; k < q->n_sort; k++)
        if (strcmp(q->sort[k].name, FHIR_PARAM_LAST_UPDATED) != 0 &&
            strcmp(q->sort[k].name, "_id") != 0 &&
            fhir_search_param(q->type, q->sort[k].name, NULL) != 0)
            return mv_fail(err, MV_E_INVALID, "_sort: unknown search parameter %s for %s",
                           q->sort[k].name, q->type);
    for (size_t i = 0; i < q->n; i++) {
        const param *p = &q->p[i];
        if (p->linked && p->resolved == NULL)
            q->none = 1;                        /* a chain that matched nothing */
        else if (p->linked ? fhir_query_add(q->match, p->resolved_name, NULL, p->resolved,
                                            err) != 0
                 : strcmp(p->name, FHIR_PARAM_LAST_UPDATED) != 0 &&
                   fhir_query_add(q->match, p->name, p->modifier, p->value, err) != 0)
            return -1;
    }
    return 0;
}

/* Chained parameters and _has become plain ones (search_links.c). */
static int resolve_links(call *c, query *q, int depth, mv_err *err)
{
    for (size_t i = 0; i < q->n; i++) {
        param *p = &q->p[i];
        int r = fhir_search_link(c, q->type, p->name, p->modifier, p->value, depth,
                                 p->resolved_name, sizeof p->resolved_name, &p->resolved,
                                 err);
        if (r < 0)
            return -1;
        p->linked = r;
    }
    return 0;
}

static void query_release(query *q)
{
    free(q->compartment_ids);
    q->compartment_ids = NULL;
    for (size_t i = 0; i < q->n; i++)
        free(q->p[i].resolved);
    fhir_query_free(q->match);
    q->match = NULL;
}

/* The candidates: the index's buckets (find.c) and the _lastUpdated ranges,
 * ANDed.  A superset until each body is verified (visible_hits). */
static int matching_ids(mv_store *s, const query *q, id_set *out, mv_err *err)
{
    int every;
    if (q->none) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    if (fhir_candidates(s, q->type, q->match, out, &every, err) != 0)
        return -1;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->p[i].name, FHIR_PARAM_LAST_UPDATED) != 0)
            continue;
        id_set one = {0};
        if (last_updated_ids(s, q->type, &q->p[i], &one, err) != 0) {
            id_set_free(&one);
            id_set_free(out);
            return -1;
        }
        id_set_intersect(out, &one);
        id_set_free(&one);
    }
    return 0;
}

/* ---- Disclosure ------------------------------------------------------------------ */

typedef struct hit {
    store_resource r;
    char *key[MAX_SORT];        /* _sort keys; NULL: no value (last)  */
} hit;

static void hits_free(hit *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_resource_free(&v[i].r);
        for (size_t k = 0; k < MAX_SORT; k++)
            free(v[i].key[k]);
    }
    free(v);
}

/* ---- One decision per patient ------------------------------------------------ */

typedef struct patient_slot {
    const char *patient;        /* NULL sorts first */
    size_t i;
} patient_slot;

static int cmp_slot(const void *a, const void *b)
{
    const patient_slot *x = a, *y = b;
    if (x->patient == NULL || y->patient == NULL)
        return (x->patient != NULL) - (y->patient != NULL);
    return strcmp(x->patient, y->patient);
}

static int permitted(call *c, const policy_facts *facts, policy_action act,
                     const char *type, const char *patient, int64_t now)
{
    policy_subject who = fhir_subject(c);
    policy_target t = { type, patient };
    policy_decision d;
    if (policy_decide(NULL, &who, act, &t, NULL, facts, now, &d, NULL) != 0 ||
        d.effect != POLICY_PERMIT)
        return 0;
    if (d.break_glass && patient) {      /* remembered for the audit's purpose */
        if (c->btg_seen == NULL)
            c->btg_seen = json_object();
        json_object_set_new(c->btg_seen, patient, json_true());
    }
    return 1;
}

int fhir_permitted_each(call *c, policy_action act, const char *type,
                        const char *const *patients, size_t n, unsigned char *allowed)
{
    patient_slot *slot = mv_calloc(n ? n : 1, sizeof *slot, NULL);
    fhir_fact_batch *batch = fhir_fact_batch_new(c->srv);
    if (slot == NULL || batch == NULL) {
        free(slot);
        fhir_fact_batch_free(batch);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        slot[i] = (patient_slot){ patients[i], i };
    qsort(slot, n, sizeof *slot, cmp_slot);
    policy_facts facts = fhir_facts_batch(batch);
    int64_t now = mv_now_us();
    unsigned char ok = 0;
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || cmp_slot(&slot[k], &slot[k - 1]) != 0)
            ok = (unsigned char)permitted(c, &facts, act, type, slot[k].patient, now);
        allowed[slot[k].i] = ok;
    }
    fhir_fact_batch_free(batch);
    free(slot);
    return 0;
}

/* Keep in v[0..*n) the hits the caller may see (one decision per patient). */
static int keep_permitted(call *c, const char *type, hit *v, size_t *n)
{
    const char **pats = mv_calloc(*n ? *n : 1, sizeof *pats, NULL);
    unsigned char *allowed = mv_calloc(*n ? *n : 1, 1, NULL);
    int rc = pats && allowed ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < *n; i++)
        pats[i] = v[i].r.patient;
    if (rc == 0)
        rc = fhir_permitted_each(c, POLICY_SEARCH, type, pats, *n, allowed);
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        if (allowed[i])
            v[kept++] = v[i];
        else
            store_resource_free(&v[i].r);
    }
    if (rc == 0)
        *n = kept;
    free(pats);
    free(allowed);
    return rc;
}

/* ---- _sort ---------------------------------------------------------------------- */

static __thread const query *sort_query;   /* qsort has no context argument */

static int cmp_key(const char *a, const char *b, int descending)
{
    if (a == NULL || b == NULL)
        return (a == NULL) - (b == NULL);      /* no value: last either way */
    int c = strcmp(a, b);
    return descending ? -c : c;
}

static int cmp_hits(const void *pa, const void *pb)
{
    const hit *x = pa, *y = pb;
    const query *q = sort_query;
    for (size_t k = 0; k < q->n_sort; k++) {
        int c = cmp_key(x->key[k], y->key[k], q->sort[k].descending);
        if (c)
            return c;
    }
    return strcmp(x->r.id, y->r.id);             /* a stable order for paging */
}

/* The key of hit h for sort key k: the clear update time, the id, or the
 * parameter's value on the opened body. */
static int hit_key(const query *q, const sort_key *k, hit *h, char **out, mv_err *err)
{
    char buf[32];
    if (strcmp(k->name, FHIR_PARAM_LAST_UPDATED) == 0) {
        snprintf(buf, sizeof buf, "%020llu",
                 (unsigned long long)h->r.updated_us ^ 0x8000000000000000ull);
        return (*out = strdup(buf)) ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    if (strcmp(k->name, "_id") == 0)
        return (*out = strdup(h->r.id)) ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
    return fhir_sort_key(q->type, k->name, k->descending, (const char *)h->r.body.data,
                         h->r.body.len, out, err);
}

static int sort_hits(const query *q, hit *v, size_t n, mv_err *err)
{
    if (q->n_sort == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < q->n_sort; k++)
            if (hit_key(q, &q->sort[k], &v[i], &v[i].key[k], err) != 0)
                return -1;
    sort_query = q;
    qsort(v, n, sizeof *v, cmp_hits);
    sort_query = NULL;
    return 0;
}

/* Open each match and keep what the caller may see. */
/* The hits the caller may see, decided on the rows' heads first: only the
 * permitted ones are decrypted (for the string post-filter and the answer),
 * so a hidden match is never opened. */
static int visible_hits(call *c, const query *q, const id_set *ids, hit **out,
                        size_t *n_out)
{
    hit *v = mv_calloc(ids->n ? ids->n : 1, sizeof *v, NULL);
    store_resource *heads = mv_calloc(ids->n ? ids->n : 1, sizeof *heads, NULL);
    if (v == NULL || heads == NULL ||
        store_heads(c->srv->store, q->type, ids->v, ids->n, heads, NULL) != 0) {
        free(v);
        free(heads);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < ids->n; i++) {
        if (heads[i].id != NULL && !heads[i].deleted)
            v[n++].r = heads[i];        /* gone meanwhile: not disclosed */
        else
            store_resource_free(&heads[i]);
    }
    free(heads);
    if (keep_permitted(c, q->type, v, &n) != 0) {
        hits_free(v, n);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        store_resource r;
        int opened = store_get(c->srv->store, q->type, v[i].r.id, v[i].r.version,
                               &r, NULL) == 0;
        store_resource_free(&v[i].r);
        if (opened && fhir_query_matches(q->match, (const char *)r.body.data, r.body.len) == 1)
            v[kept++].r = r;
        else if (opened)
            store_resource_free(&r);
    }
    n = kept;
    if (sort_hits(q, v, n, NULL) != 0) {
        hits_free(v, n);
        return -1;
    }
    *out = v;
    *n_out = n;
    return 0;
}


/* Which event of ev[0..n) is for patient (NULL: resources of no patient). */
static size_t event_of(const audit_event *ev, size_t n, const char *patient)
{
    size_t k = 0;
    while (k < n && !(ev[k].patient == NULL ? patient == NULL
                      : patient != NULL && strcmp(ev[k].patient, patient) == 0))
        k++;
    return k;
}

static void append_ref(mv_buf *refs, const fhir_disclosed *d)
{
    char ref[200];
    snprintf(ref, sizeof ref, "%s%s/%s/_history/%lld", refs->len ? " " : "",
             d->type, d->id, (long long)d->version);
    mv_buf_append(refs, ref, strlen(ref), NULL);
}

/* The detector sees the page: every patient whose data it carries. */
static void observe_disclosure(call *c, const char *action, const fhir_disclosed *v,
                               size_t n, const audit_event *ev, size_t ne)
{
    if (c->srv->detect == NULL)
        return;
    detect_patient *p = calloc(ne ? ne : 1, sizeof *p);
    size_t np = 0;
    /* An approved bulk export lists every patient, decoys included: for it a
     * decoy in a listing is no touch (its output is watermarked instead). */
    detect_actor_info info;
    detect_actor_state(c->srv->detect, c->who.account.id, mv_now_us(), &info);
    unsigned mask = info.declared ? ~(unsigned)DETECT_PAT_DECOY : ~0u;
    for (size_t k = 0; p && k < ne; k++)
        if (ev[k].patient)
            p[np++] = (detect_patient){ ev[k].patient,
                                        call_patient_flags(c, ev[k].patient,
                                                           ev[k].purpose != NULL, 1) & mask };
    /* What a count reveals is a disclosure of existence: it counts in the
     * volume, but it is no touch of a decoy (nothing of it was read). */
    size_t cap = np + c->n_existence;
    detect_patient *all = c->n_existence && p ? realloc(p, (cap ? cap : 1) * sizeof *p) : p;
    if (all != NULL) {
        p = all;
        for (size_t k = 0; k < c->n_existence; k++)
            if (event_of(ev, ne, c->existence[k]) == ne)
                p[np++] = (detect_patient){ c->existence[k],
                                            call_patient_flags(c, c->existence[k], 0, 1) &
                                            ~(unsigned)DETECT_PAT_DECOY };
    }
    call_observe(c, action, DETECT_GRANTED, n ? v[0].type : NULL, p, np, c->list_count,
                 np > 1 ? DETECT_EV_BROAD_SEARCH : 0);
    free(p);
}

int fhir_audit_disclosure(call *c, const char *action, const char *outcome,
                          const fhir_disclosed *v, size_t n, mv_err *err)
{
    audit_event *ev = mv_calloc(n + 1, sizeof *ev, err);
    mv_buf *refs = mv_calloc(n + 1, sizeof *refs, err);
    if (ev == NULL || refs == NULL) {
        free(ev);
        free(refs);
        return -1;
    }
    const audit_event blank = { .actor = c->res->actor, .action = action,
                                .outcome = outcome, .source = c->req->source,
                                .session = c->session_ref,
                                .request_id = c->req->request_id };
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = event_of(ev, ne, v[i].patient);
        if (k == ne) {
            ev[ne] = blank;
            ev[ne].patient = v[i].patient;
            if (v[i].patient && json_object_get(c->btg_seen, v[i].patient))
                ev[ne].purpose = FHIR_PURPOSE_BTG;      /* flagged for security */
            ne++;
        }
        append_ref(&refs[k], &v[i]);
    }
    if (ne == 0)
        ev[ne++] = blank;
    for (size_t k = 0; k < ne; k++) {
        mv_buf_append(&refs[k], "", 1, NULL);          /* NUL-terminate */
        ev[k].resources = refs[k].len > 1 ? (const char *)refs[k].data : NULL;
    }
    int rc = audit_record(c->srv->trail, ev, ne, NULL, NULL, NULL, err);
    if (rc == 0)
        observe_disclosure(c, action, v, n, ev, ne);
    for (size_t k = 0; k <= n; k++)
        mv_buf_free(&refs[k]);
    free(refs);
    free(ev);
    return rc;
}

/* The search's disclosure: its parameter names, never their values. */
static int audit_search(call *c, const query *q, const hit *page, size_t n,
                        const store_resource *inc, size_t n_inc, mv_err *err)
{
    char params[256] = "";
    for (size_t i = 0; i < q->n; i++) {
        size_t used = strlen(params);
        snprintf(params + used, sizeof params - used, "%s%s", used ? "," : "", q->p[i].name);
    }
    char outcome[300];
    snprintf(outcome, sizeof outcome, "success: %s?%s", q->type, params);
    fhir_disclosed *v = mv_calloc(n + n_inc + 1, sizeof *v, err);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        v[i] = (fhir_disclosed){ q->type, page[i].r.id, page[i].r.patient,
                                 page[i].r.version };
    for (size_t i = 0; i < n_inc; i++)      /* included: disclosed as well */
        v[n + i] = (fhir_disclosed){ inc[i].type, inc[i].id, inc[i].patient,
                                     inc[i].version };
    int rc = fhir_audit_disclosure(c, "fhir.search", outcome, v, n + n_inc, err);
    free(v);
    return rc;
}

/* Append s percent-encoded (all but RFC 3986 unreserved characters). */
static void append_encoded(mv_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
        if (isalnum(ch) || strchr("-._~", ch))
            mv_buf_append(b, s, 1, NULL);
        else
            mv_buf_append(b, e, 3, NULL);
    }
}

/* Never from the request's Host header: a client following a link would
 * send its bearer token wherever the Host named. */
void fhir_base_url(const call *c, char *out, size_t n)
{
    snprintf(out, n, "%s", c->srv->base_url[0] ? c->srv->base_url : "/fhir");
}

/* The same search at another offset: every parameter is carried over. */
static json_t *page_link(call *c, const query *q, const char *relation, long offset)
{
    char base[300], head[600];
    fhir_base_url(c, base, sizeof base);
    if (q->compartment)
        snprintf(head, sizeof head, "%s/Patient/%s/%s?_count=%ld&_offset=%ld", base,
                 q->compartment, q->type, q->count, offset);
    else
        snprintf(head, sizeof head, "%s/%s?_count=%ld&_offset=%ld", base, q->type, q->count,
                 offset);
    mv_buf url = {0};
    mv_buf_append(&url, head, strlen(head), NULL);
    if (q->sort_text) {
        mv_buf_append(&url, "&_sort=", 7, NULL);
        append_encoded(&url, q->sort_text);
    }
    if (q->summary) {
        mv_buf_append(&url, "&_summary=", 10, NULL);
        append_encoded(&url, q->summary);
    }
    if (q->elements) {
        mv_buf_append(&url, "&_elements=", 11, NULL);
        append_encoded(&url, q->elements);
    }
    for (size_t i = 0; i < q->n_inc; i++) {
        const char *name = q->inc[i].reverse ? "&_revinclude" : "&_include";
        mv_buf_append(&url, name, strlen(name), NULL);
        if (q->inc[i].iterate)
            mv_buf_append(&url, "%3Aiterate", 10, NULL);
        mv_buf_append(&url, "=", 1, NULL);
        append_encoded(&url, q->inc[i].spec);
    }
    for (size_t i = 0; i < q->n; i++) {
        mv_buf_append(&url, "&", 1, NULL);
        append_encoded(&url, q->p[i].name);
        if (q->p[i].modifier[0]) {
            mv_buf_append(&url, ":", 1, NULL);
            append_encoded(&url, q->p[i].modifier);
        }
        mv_buf_append(&url, "=", 1, NULL);
        append_encoded(&url, q->p[i].value);
    }
    json_t *link = json_pack("{s:s, s:s%}", "relation", relation, "url",
                             url.data ? (const char *)url.data : "", url.len);
    mv_buf_free(&url);
    return link;
}

/* ---- Watermarks ---------------------------------------------------------------------
 * A bulk output -- the first page of a Patient search of at least
 * WATERMARK_MIN_ROWS patients, asked by a service account (an export, a
 * warehouse sync) -- carries one decoy patient unique to it, recorded with
 * the account and the request (server_watermark_pick).  If the rows turn up
 * in a dump for sale, `medvault leak check` names the account and the
 * request.  Clinicians never get one: a stranger's record in a clinical
 * answer could be mistaken for a real patient. */
#define WATERMARK_MIN_ROWS 10

static json_t *watermark_for(call *c, const query *q, size_t rows)
{
    if (strcmp(q->type, "Patient") != 0 || q->offset != 0 || rows < WATERMARK_MIN_ROWS ||
        c->who.account.role != AUTH_ROLE_SERVICE)
        return NULL;
    char ref[80], decoy[STORE_ID_MAX + 1];
    snprintf(ref, sizeof ref, "search:%s", c->req->request_id);
    mv_err err;
    if (server_watermark_pick(c->srv->store, c->srv->trail, ref, c->who.account.username,
                              c->req->source, decoy, sizeof decoy, &err) != 0) {
        if (err.code != MV_E_NOTFOUND)
            fprintf(stderr, "medvault serve: no watermark for request %s: %s\n",
                    c->req->request_id, err.msg);
        return NULL;                  /* no decoy left: the answer goes unmarked */
    }
    store_resource r;
    if (store_get(c->srv->store, "Patient", decoy, 0, &r, NULL) != 0)
        return NULL;
    json_t *res = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    store_resource_free(&r);
    return res;
}

/* An included resource as a Bundle entry, search.mode "include". */
static json_t *include_entry(const store_resource *r)
{
    char url[200];
    snprintf(url, sizeof url, "%s/%s", r->type, r->id);
    json_t *res = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    return json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url, "resource",
                     res ? res : json_null(), "search", "mode", "include");
}

static json_t *truncation_entry(void)
{
    return json_pack("{s:{s:s, s:[{s:s, s:s, s:s}]}, s:{s:s}}", "resource", "resourceType",
                     "OperationOutcome", "issue", "severity", "warning", "code",
                     "too-costly", "diagnostics", "_include/_revinclude: more resources "
                     "than one page may carry; the rest were left out", "search", "mode",
                     "outcome");
}

static void reply_bundle(call *c, const query *q, const hit *page, size_t n, size_t total,
                         json_t *mark, const store_resource *inc, size_t n_inc,
                         int truncated)
{
    json_t *links = json_array();
    json_array_append_new(links, page_link(c, q, "self", q->offset));
    if (!q->summary_count && q->count > 0) {
        long last = total > 0 ? (long)((total - 1) / (size_t)q->count) * q->count : 0;
        json_array_append_new(links, page_link(c, q, "first", 0));
        if (q->offset > 0)
            json_array_append_new(links, page_link(c, q, "previous",
                                                   q->offset > q->count
                                                   ? q->offset - q->count : 0));
        if ((size_t)(q->offset + q->count) < total)
            json_array_append_new(links, page_link(c, q, "next", q->offset + q->count));
        json_array_append_new(links, page_link(c, q, "last", last));
    }
    json_t *b = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                          "searchset", "total", (json_int_t)(total + (mark != NULL)),
                          "link", links);
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++) {
        if (mark && i == n / 2) {      /* the watermark sits among the rows */
            char url[200];
            snprintf(url, sizeof url, "Patient/%s",
                     json_string_value(json_object_get(mark, "id")));
            json_array_append_new(entries, json_pack("{s:s, s:O, s:{s:s}}", "fullUrl", url,
                                                     "resource", mark, "search", "mode",
                                                     "match"));
        }
        char url[200];
        snprintf(url, sizeof url, "%s/%s", q->type, page[i].r.id);
        json_t *res = json_loadb((const char *)page[i].r.body.data, page[i].r.body.len, 0, NULL);
        if (res)
            fhir_subset(res, q->summary, q->elements);
        json_array_append_new(entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url,
                                                 "resource", res ? res : json_null(),
                                                 "search", "mode", "match"));
    }
    for (size_t i = 0; i < n_inc; i++)
        json_array_append_new(entries, include_entry(&inc[i]));
    if (truncated)
        json_array_append_new(entries, truncation_entry());
    if (json_array_size(entries))
        json_object_set_new(b, "entry", entries);
    else
        json_decref(entries);
    char *text = json_text(b);
    json_decref(b);
    http_response_text(c->res, 200, FHIR_JSON, text ? text : "{}");
    free(text);
}

/* A service account's count -- _summary=count, _count=0, or the total of a
 * page smaller than it (a one-row page tells the same) -- says how many
 * patients match, over _lastUpdated windows where decoys were planted:
 * their existence is disclosed all the same.  The distinct patients of the
 * matches outside [from, from + len), borrowed from v; NULL for every other
 * role (a person only ever counts patients it may see) and for the pages of
 * a declared bulk reader, whose listing of everyone is what it declared
 * (its count-only searches still count). */
static int declared_reader(call *c)
{
    if (c->srv->detect == NULL)
        return 0;
    detect_actor_info info;
    detect_actor_state(c->srv->detect, c->who.account.id, mv_now_us(), &info);
    return info.declared;
}

static int cmp_patient(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char **existence_beyond(call *c, const hit *v, size_t n, size_t from,
                                     size_t len, size_t *count)
{
    *count = 0;
    if (c->who.account.role != AUTH_ROLE_SERVICE || n == 0 || (len > 0 && declared_reader(c)))
        return NULL;
    const char **out = calloc(n, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; out && i < n; i++)
        if ((i < from || i >= from + len) && v[i].r.patient && v[i].r.patient[0])
            out[k++] = v[i].r.patient;
    if (out == NULL || k == 0) {
        free(out);
        return NULL;
    }
    qsort(out, k, sizeof *out, cmp_patient);
    size_t u = 1;
    for (size_t i = 1; i < k; i++)
        if (strcmp(out[i], out[u - 1]) != 0)
            out[u++] = out[i];
    *count = u;
    return out;
}

/* ---- Conditional interactions ------------------------------------------------------
 * If-None-Exist and its Bundle twin ifNoneExist name a search; the write
 * depends on how many resources it finds.  Only what the caller may see is
 * counted, through the same decision a search takes: counting hidden
 * resources would answer "does a patient with this social security number
 * exist here?" to anyone allowed to create one. */

static int collect_pair(query *q, const http_target *t, mv_err *err)
{
    for (size_t i = 0; i < t->n_query; i++)
        if (collect_param(t->query[i].name, t->query[i].value, q) != 0)
            return mv_fail(err, MV_E_INVALID, "the condition: %s", q->error);
    if (q->n == 0)
        return mv_fail(err, MV_E_INVALID, "the condition names no search parameter");
    return 0;
}

/* Patient/ID/Type: only the resources of type the patient owns -- the
 * store's compartment, the one every access decision uses -- as an _id
 * list the index serves like any other. */
static int restrict_to_compartment(call *c, query *q, mv_err *err)
{
    char **refs = NULL;
    size_t n = 0;
    if (store_patient_refs(c->srv->store, q->compartment, &refs, &n, err) != 0)
        return err->code == MV_E_NOTFOUND || err->code == MV_E_GONE ? (q->none = 1, 0) : -1;
    mv_buf ids = {0};
    size_t tlen = strlen(q->type);
    for (size_t i = 0; i < n; i++)
        if (strncmp(refs[i], q->type, tlen) == 0 && refs[i][tlen] == '/') {
            if (ids.len)
                mv_buf_append(&ids, ",", 1, NULL);
            mv_buf_append(&ids, refs[i] + tlen + 1, strlen(refs[i] + tlen + 1), NULL);
        }
    store_ids_free(refs, n);
    if (ids.len == 0) {
        q->none = 1;
        return 0;
    }
    if (mv_buf_append(&ids, "", 1, err) != 0)
        return -1;
    q->compartment_ids = (char *)mv_buf_steal(&ids, NULL);
    return fhir_query_add(q->match, "_id", NULL, q->compartment_ids, err);
}

/* The visible, verified hits of a collected query: chains resolved, the
 * index's candidates, the policy decision, the bodies; too many
 * candidates is a 400.  depth: chain hops so far. */
static int run_query(call *c, query *q, int depth, hit **v, size_t *n, mv_err *err)
{
    id_set ids = {0};
    *v = NULL;
    *n = 0;
    if (resolve_links(c, q, depth, err) != 0 || compile_query(q, err) != 0 ||
        (q->compartment && restrict_to_compartment(c, q, err) != 0) ||
        matching_ids(c->srv->store, q, &ids, err) != 0)
        return -1;
    int rc = 0;
    if (ids.n > MAX_MATCHES)
        rc = mv_fail(err, MV_E_INVALID, "too many matches: narrow the search");
    else if (visible_hits(c, q, &ids, v, n) != 0)
        rc = mv_fail(err, MV_E_NOMEM, "out of memory");
    id_set_free(&ids);
    return rc;
}

int fhir_search_opened(call *c, const char *type, const char *name, const char *value,
                       int depth, store_resource **out, size_t *n_out, mv_err *err)
{
    *out = NULL;
    *n_out = 0;
    query q = { .type = type, .count = DEFAULT_COUNT };
    if (collect_param(name, value, &q) != 0 || q.n != 1)
        return mv_fail(err, MV_E_INVALID, "%s", q.error[0] ? q.error
                       : "a chained or included search names one parameter");
    hit *v = NULL;
    size_t n = 0;
    int rc = run_query(c, &q, depth, &v, &n, err);
    query_release(&q);
    if (rc != 0)
        return -1;
    store_resource *res = calloc(n ? n : 1, sizeof *res);
    if (res == NULL) {
        hits_free(v, n);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        res[i] = v[i].r;                     /* moved out of the hit */
        memset(&v[i].r, 0, sizeof v[i].r);
    }
    hits_free(v, n);
    *out = res;
    *n_out = n;
    return 0;
}

int fhir_conditional_match(call *c, const char *type, const char *condition,
                           char *id, size_t cap, size_t *count, mv_err *err)
{
    *count = 0;
    id[0] = '\0';
    size_t len = strlen(condition);
    char *target = malloc(len + 3);
    if (target == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    snprintf(target, len + 3, "/?%s", condition[0] == '?' ? condition + 1 : condition);
    http_target t;
    int rc = http_target_parse(target, &t, err);
    free(target);
    if (rc != 0)
        return mv_fail(err, MV_E_INVALID, "the condition is not a query string");
    query q = { .type = type, .count = DEFAULT_COUNT };
    hit *v = NULL;
    size_t n = 0;
    rc = collect_pair(&q, &t, err);
    if (rc == 0)
        rc = run_query(c, &q, 0, &v, &n, err);
    if (rc == 0 && n == 1)
        snprintf(id, cap, "%s", v[0].r.id);
    if (rc == 0)
        *count = n;
    hits_free(v, n);
    query_release(&q);
    http_target_free(&t);
    return rc;
}

/* The page's _include and _revinclude resources (search_links.c). */
static int page_includes(call *c, const query *q, const hit *page, size_t len,
                         store_resource **inc, size_t *n_inc, int *truncated, mv_err *err)
{
    *inc = NULL;
    *n_inc = 0;
    *truncated = 0;
    if (q->n_inc == 0 || len == 0)
        return 0;
    store_resource *flat = calloc(len, sizeof *flat);
    if (flat == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    for (size_t i = 0; i < len; i++)
        flat[i] = page[i].r;                 /* borrowed */
    int rc = fhir_search_includes(c, flat, len, q->inc, q->n_inc, inc, n_inc, truncated, err);
    free(flat);
    return rc;
}

static void free_included(store_resource *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_resource_free(&v[i]);
    free(v);
}

static void search_collected(call *c, query *qp);

void fhir_search(call *c, const char *type)
{
    query q = { .type = type, .count = DEFAULT_COUNT };
    http_query_each(c->req, collect_param, &q);
    search_collected(c, &q);
}

void fhir_search_in(call *c, const char *type, const char *patient)
{
    query q = { .type = type, .count = DEFAULT_COUNT, .compartment = patient };
    http_query_each(c->req, collect_param, &q);
    search_collected(c, &q);
}

/* POST Type/_search: the parameters in an application/x-www-form-urlencoded
 * body (R4 3.1.0.9), with any in the URL. */
void fhir_search_posted(call *c, const char *type)
{
    const char *ct = http_header(c->req, "Content-Type");
    if (ct == NULL || strncmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        call_fail(c, 415, "not-supported", "POST _search takes "
                  "application/x-www-form-urlencoded parameters");
        return;
    }
    char *target = malloc(c->req->body_len + 3);
    if (target == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    memcpy(target, "/?", 2);
    memcpy(target + 2, c->req->body, c->req->body_len);
    target[c->req->body_len + 2] = '\0';
    http_target t;
    mv_err e;
    int rc = http_target_parse(target, &t, &e);
    free(target);
    if (rc != 0) {
        call_fail(c, 400, "invalid", "the form body is not a query string");
        return;
    }
    query q = { .type = type, .count = DEFAULT_COUNT };
    http_query_each(c->req, collect_param, &q);
    for (size_t i = 0; i < t.n_query && q.error[0] == '\0'; i++)
        collect_param(t.query[i].name, t.query[i].value, &q);
    search_collected(c, &q);            /* values borrowed from t until here */
    http_target_free(&t);
}

static void search_collected(call *c, query *qp)
{
    query q = *qp;
    if (q.error[0]) {
        call_fail(c, 400, "invalid", q.error);
        return;
    }
    c->list_count = (int)q.count;               /* what was asked, for the detector */
    c->list_page = q.count > 0 ? (int)(q.offset / q.count) : 0;
    q.count = call_page_cap(c, (int)q.count);   /* the detector's allowance */
    mv_err e;
    hit *v = NULL;
    size_t n = 0;
    if (run_query(c, &q, 0, &v, &n, &e) != 0) {
        query_release(&q);
        if (e.code == MV_E_INVALID && strstr(e.msg, "too many matches"))
            call_fail(c, 400, "too-costly", e.msg);
        else
            call_fail_err(c, &e);
        return;
    }
    size_t from = (size_t)q.offset < n ? (size_t)q.offset : n;
    size_t len = q.summary_count ? 0 : n - from < (size_t)q.count ? n - from : (size_t)q.count;
    store_resource *inc = NULL;
    size_t n_inc = 0;
    int truncated = 0;
    if (page_includes(c, &q, v + from, len, &inc, &n_inc, &truncated, &e) != 0) {
        call_fail_err(c, &e);
    } else {
        const char **existence = existence_beyond(c, v, n, from, len, &c->n_existence);
        c->existence = existence;
        if (audit_search(c, &q, v + from, len, inc, n_inc, &e) != 0) {
            call_internal(c, &e);
        } else {
            json_t *mark = watermark_for(c, &q, len);
            reply_bundle(c, &q, v + from, len, n, mark, inc, n_inc, truncated);
            json_decref(mark);
        }
        c->existence = NULL;
        c->n_existence = 0;
        free(existence);
    }
    free_included(inc, n_inc);
    query_release(&q);
    hits_free(v, n);
}
