/*
 * declarations.c -- what an account is expected to do, declared up front:
 * legitimate bulk access (a new integration's first synchronisation, a
 * data-warehouse export) and the source networks a service account uses.
 *
 * Why it exists: a bulk read-out looks exactly like the 2024 breach.  The
 * difference must never be silently assumed; it is declared on the account
 * (expected patients per day, until when, why) by an administrator or a
 * security officer, and takes effect only once a SECOND person with the
 * security role approves it -- then the detector raises that account's
 * volume limits to the declared volume, and still watches it (beyond the
 * declaration it alerts, well beyond it contains).  A service account's
 * networks ("10.1.0.0/16 fd00::/8") make every request from elsewhere
 * suspect.
 *
 * Both are sealed system records ("_BulkAccess", "_Networks", id = the
 * account id), each change committed with its audit entry, and pushed into
 * the detector at start and whenever they change.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

#define BULK_TYPE "_BulkAccess"
#define NETS_TYPE "_Networks"

typedef struct put_ctx {
    const char *type, *id;
    json_t *doc;
    int64_t if_version;
} put_ctx;

static int apply_put(store_txn *t, void *ctx, mv_err *err)
{
    put_ctx *pc = ctx;
    char *body = json_text(pc->doc);
    if (body == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    store_term term = { "kind", pc->type, 0 };
    store_write w = { .type = pc->type, .id = pc->id, .if_version = pc->if_version,
                      .body = body, .body_len = strlen(body), .terms = &term, .n_terms = 1 };
    int64_t v;
    int rc = store_put(t, &w, &v, err);
    free(body);
    return rc;
}

/* The current record (NULL when none; *version 0). */
static json_t *load(server *srv, const char *type, const char *id, int64_t *version)
{
    store_resource r;
    *version = 0;
    if (store_get(srv->store, type, id, 0, &r, NULL) != 0)
        return NULL;
    json_t *doc = r.deleted ? NULL : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    *version = r.version;
    store_resource_free(&r);
    return doc;
}

static int save(call *c, const char *type, const char *id, json_t *doc, int64_t version,
                const char *action, const char *outcome, mv_err *err)
{
    char ref[120];
    snprintf(ref, sizeof ref, "%s/%s", type + 1, id);
    audit_event ev = { .actor = c->res->actor, .action = action, .outcome = outcome,
                       .resources = ref, .source = c->req->source,
                       .session = c->session_ref, .request_id = c->req->request_id };
    put_ctx pc = { type, id, doc, version };
    return audit_record(c->srv->trail, &ev, 1, apply_put, &pc, NULL, err);
}

/* ---- Into the detector ------------------------------------------------------------------ */

static void apply_bulk(server *srv, const char *account, json_t *doc)
{
    const char *approved = json_string_value(json_object_get(doc, "approved_by"));
    if (srv->detect == NULL || approved == NULL)
        return;
    json_int_t per_day = json_integer_value(json_object_get(doc, "patients_per_day"));
    json_int_t until = json_integer_value(json_object_get(doc, "until_us"));
    if (until > mv_now_us())
        detect_declare_bulk(srv->detect, account, per_day, until, approved, NULL);
}

static void apply_networks(server *srv, const char *account, json_t *doc)
{
    if (srv->detect)
        detect_set_networks(srv->detect, account,
                            json_string_value(json_object_get(doc, "cidrs")), NULL);
}

static int load_all(server *srv, const char *type,
                    void (*apply)(server *, const char *, json_t *), mv_err *err)
{
    store_term term = { "kind", type, 0 };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(srv->store, type, &term, 1, &ids, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        json_t *doc = load(srv, type, ids[i], &v);
        if (doc)
            apply(srv, ids[i], doc);
        json_decref(doc);
    }
    store_ids_free(ids, n);
    return 0;
}

int declarations_load(server *srv, mv_err *err)
{
    if (srv->detect == NULL)
        return 0;
    return load_all(srv, BULK_TYPE, apply_bulk, err) != 0 ||
           load_all(srv, NETS_TYPE, apply_networks, err) != 0 ? -1 : 0;
}

/* ---- The API ------------------------------------------------------------------------------ */

static void reply_doc(call *c, int status, json_t *doc)
{
    call_reply_json(c, status, json_incref(doc));
}

/* POST /api/users/NAME/bulk-access {"patients_per_day","days","reason"}:
 * admin or security; pending until a second security officer approves. */
static void declare_bulk(call *c, const auth_account *who)
{
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    json_int_t per_day = json_integer_value(json_object_get(body, "patients_per_day"));
    json_int_t days = json_integer_value(json_object_get(body, "days"));
    const char *reason = json_str(body, "reason");
    if (per_day < 1 || per_day > 10000000 || days < 1 || days > 90 || reason == NULL ||
        strlen(reason) < 10) {
        json_decref(body);
        call_fail(c, 400, "invalid", "give patients_per_day (1..10000000), days (1..90) "
                  "and a reason of at least 10 characters");
        return;
    }
    char when[MV_TIME_STR_MAX];
    mv_time_format(mv_now_us(), when);
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:n}", "account", who->id,
                            "username", who->username, "patients_per_day", per_day,
                            "until_us", (json_int_t)(mv_now_us() + days * 86400000000LL),
                            "reason", reason, "declared_by", c->who.account.id,
                            "declared_at", when, "approved_by");
    json_decref(body);
    int64_t version;
    json_decref(load(c->srv, BULK_TYPE, who->id, &version));
    mv_err err;
    if (save(c, BULK_TYPE, who->id, doc, version, "account.bulk-access.declare", "pending",
             &err) != 0)
        call_fail_err(c, &err);
    else
        reply_doc(c, 201, doc);
    json_decref(doc);
}

/* POST /api/users/NAME/bulk-access/approve: security, not the declarer. */
static void approve_bulk(call *c, const auth_account *who)
{
    int64_t version;
    json_t *doc = load(c->srv, BULK_TYPE, who->id, &version);
    const char *declarer = json_string_value(json_object_get(doc, "declared_by"));
    if (doc == NULL) {
        call_fail(c, 404, "not-found", "no bulk-access declaration for this account");
    } else if (c->who.account.role != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "a security officer approves bulk access");
    } else if (declarer && strcmp(declarer, c->who.account.id) == 0) {
        call_fail(c, 403, "forbidden", "a second person approves: not the one who declared");
    } else if (!json_is_null(json_object_get(doc, "approved_by"))) {
        call_fail(c, 409, "conflict", "this declaration is approved already");
    } else {
        char when[MV_TIME_STR_MAX];
        mv_time_format(mv_now_us(), when);
        json_object_set_new(doc, "approved_by", json_string(c->who.account.id));
        json_object_set_new(doc, "approved_at", json_string(when));
        mv_err err;
        if (save(c, BULK_TYPE, who->id, doc, version, "account.bulk-access.approve",
                 "success", &err) != 0) {
            call_fail_err(c, &err);
        } else {
            apply_bulk(c->srv, who->id, doc);
            reply_doc(c, 200, doc);
        }
    }
    json_decref(doc);
}

/* POST /api/users/NAME/networks {"cidrs":"10.1.0.0/16 fd00::/8"}: admin or
 * security, service accounts only; "" removes the list. */
static void set_networks(call *c, const auth_account *who)
{
    json_t *body = call_json_body(c);
    if (body == NULL)
        return;
    const char *cidrs = json_str(body, "cidrs");
    mv_err err;
    if (who->role != AUTH_ROLE_SERVICE || cidrs == NULL) {
        call_fail(c, 400, "invalid", "networks are set on service accounts: {\"cidrs\": "
                  "\"10.1.0.0/16 fd00::/8\"}");
    } else if (c->srv->detect && detect_set_networks(c->srv->detect, who->id, cidrs, &err) != 0) {
        call_fail(c, 400, "invalid", err.msg);
    } else {
        json_t *doc = json_pack("{s:s, s:s}", "account", who->id, "cidrs", cidrs);
        int64_t version;
        json_decref(load(c->srv, NETS_TYPE, who->id, &version));
        if (save(c, NETS_TYPE, who->id, doc, version, "account.networks", "success", &err) != 0)
            call_fail_err(c, &err);
        else
            reply_doc(c, 200, doc);
        json_decref(doc);
    }
    json_decref(body);
}

int route_declarations(call *c, const char *name, const char *action)
{
    int bulk = strcmp(action, "bulk-access") == 0;
    int approve = strcmp(action, "bulk-access/approve") == 0;
    int nets = strcmp(action, "networks") == 0;
    if (!bulk && !approve && !nets)
        return 0;
    auth_role r = c->who.account.role;
    if (r != AUTH_ROLE_ADMIN && r != AUTH_ROLE_SECURITY) {
        call_fail(c, 403, "forbidden", "for administrators and security officers");
        return 1;
    }
    auth_account who;
    mv_err err;
    if (auth_account_get(c->srv->auth, name, &who, &err) != 0) {
        call_fail_err(c, &err);
        return 1;
    }
    if (bulk)
        declare_bulk(c, &who);
    else if (approve)
        approve_bulk(c, &who);
    else
        set_networks(c, &who);
    return 1;
}
