/*
 * priors.c -- the detector's cold-start priors, kept as sealed records
 * ("_DetectPrior", id "<role>" or "<role>@<department>") and pushed into the
 * detector at start and at every tick.
 *
 * Why it exists: a hospital's first day, and every new arrival, meet the
 * detector without a baseline of their own; an administrator says what a
 * role (or a role in one department) may do until its own rhythm is
 * learned (`medvault detect priors`).  Each change is committed with its
 * audit entry; the detector bounds every prior (detect_prior_check), so a
 * prior can tune the cold start but never switch detection off.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

#define PRIOR_TYPE "_DetectPrior"

static void prior_id(const char *role, const char *department, char *out, size_t n)
{
    if (department && department[0])
        snprintf(out, n, "%s@%s", role, department);
    else
        snprintf(out, n, "%s", role);
}

typedef struct prior_write {
    const char *id;
    json_t *doc;              /* NULL: remove                                */
} prior_write;

static int apply_prior(store_txn *t, void *ctx, mv_err *err)
{
    prior_write *pw = ctx;
    char *body = pw->doc ? json_text(pw->doc) : NULL;
    if (pw->doc && body == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    store_term term = { "kind", PRIOR_TYPE, 0 };
    store_write w = { .type = PRIOR_TYPE, .id = pw->id, .if_version = -1,
                      .body = body, .body_len = body ? strlen(body) : 0,
                      .deleted = pw->doc == NULL,
                      .terms = pw->doc ? &term : NULL, .n_terms = pw->doc ? 1 : 0 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

static int record(audit_trail *trail, const char *id, json_t *doc, const char *action,
                  const char *actor, const char *source, mv_err *err)
{
    char ref[160];
    snprintf(ref, sizeof ref, "DetectPrior/%s", id);
    audit_event ev = { .actor = actor, .action = action, .outcome = "success",
                       .resources = ref, .source = source };
    prior_write pw = { id, doc };
    return audit_record(trail, &ev, 1, apply_prior, &pw, NULL, err);
}

/* 1 when a prior with this id is stored, 0 when not, -1 on an error. */
static int stored(mv_store *s, const char *id)
{
    store_resource r;
    mv_err err;
    if (store_get(s, PRIOR_TYPE, id, 0, &r, &err) != 0)
        return err.code == MV_E_NOTFOUND ? 0 : -1;
    int here = !r.deleted;
    store_resource_free(&r);
    return here;
}

/* How many priors are stored (the detector holds DETECT_PRIORS_MAX). */
static int count(mv_store *s, size_t *n, mv_err *err)
{
    store_term term = { "kind", PRIOR_TYPE, 0 };
    char **ids = NULL;
    *n = 0;
    if (store_search(s, PRIOR_TYPE, &term, 1, &ids, n, err) != 0)
        return -1;
    store_ids_free(ids, *n);
    return 0;
}

int server_prior_save(mv_store *s, audit_trail *trail, const detect_prior *p,
                      const char *actor, const char *source, mv_err *err)
{
    detect_config c;
    detect_config_default(&c);
    if (detect_prior_check(&c, p, err) != 0)
        return -1;
    char id[160], when[MV_TIME_STR_MAX];
    prior_id(p->role, p->department, id, sizeof id);
    size_t n;
    int here = stored(s, id);
    if (here < 0 || count(s, &n, err) != 0)
        return here < 0 ? mv_fail(err, MV_E_IO, "reading the priors failed") : -1;
    if (!here && n >= DETECT_PRIORS_MAX)
        return mv_fail(err, MV_E_INVALID, "at most %d priors: unset one first",
                       DETECT_PRIORS_MAX);
    mv_time_format(mv_now_us(), when);
    json_t *doc = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s}", "role", p->role,
                            "department", p->department ? p->department : "",
                            "limit_5m", p->limit_5m, "limit_1h", p->limit_1h,
                            "limit_24h", p->limit_24h, "set_by", actor, "set_at", when);
    if (doc == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = record(trail, id, doc, "detect.prior.set", actor, source, err);
    json_decref(doc);
    return rc;
}

int server_prior_remove(mv_store *s, audit_trail *trail, const char *role,
                        const char *department, const char *actor, const char *source,
                        mv_err *err)
{
    char id[160];
    prior_id(role, department, id, sizeof id);
    int here = stored(s, id);
    if (here < 0)
        return mv_fail(err, MV_E_IO, "reading the priors failed");
    if (!here)
        return mv_fail(err, MV_E_NOTFOUND, "no prior for %s", id);
    return record(trail, id, NULL, "detect.prior.remove", actor, source, err);
}

int server_priors_list(mv_store *s, char **json_array_out, mv_err *err)
{
    store_term term = { "kind", PRIOR_TYPE, 0 };
    char **ids = NULL;
    size_t n = 0;
    *json_array_out = NULL;
    if (store_search(s, PRIOR_TYPE, &term, 1, &ids, &n, err) != 0)
        return -1;
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        store_resource r;
        if (store_get(s, PRIOR_TYPE, ids[i], 0, &r, NULL) != 0)
            continue;
        json_t *doc = r.deleted ? NULL
                    : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        if (doc)
            json_array_append_new(list, doc);
        store_resource_free(&r);
    }
    store_ids_free(ids, n);
    *json_array_out = list ? json_dumps(list, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(list);
    return *json_array_out ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
}

int priors_load(server *srv, mv_err *err)
{
    if (srv->detect == NULL)
        return 0;
    char *text = NULL;
    if (server_priors_list(srv->store, &text, err) != 0)
        return -1;
    json_t *list = json_loads(text, 0, NULL);
    free(text);
    detect_prior priors[DETECT_PRIORS_MAX];
    size_t n = 0, i;
    json_t *doc;
    json_array_foreach(list, i, doc) {
        if (n == DETECT_PRIORS_MAX)
            break;
        priors[n++] = (detect_prior){
            json_string_value(json_object_get(doc, "role")),
            json_string_value(json_object_get(doc, "department")),
            (int)json_integer_value(json_object_get(doc, "limit_5m")),
            (int)json_integer_value(json_object_get(doc, "limit_1h")),
            (int)json_integer_value(json_object_get(doc, "limit_24h")) };
    }
    int rc = detect_set_priors(srv->detect, priors, n, err);
    json_decref(list);
    return rc;
}
