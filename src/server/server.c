/*
 * server.c -- a running medvault server: configuration, start and stop, the
 * periodic work, and the dispatch of each request to its route.
 */
#include "server_internal.h"
#include "fhir_internal.h"
#include "../crypto/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PURGE_EVERY_US (60 * 1000000LL)

server_config server_default_config(void)
{
    server_config c = { .http = http_default_config(), .auth = auth_default_config(),
                        .approval_ttl_us = 24 * 3600 * 1000000LL,
                        .privilege_burst = 5 };
    return c;
}

/* ---- Configuration file ------------------------------------------------ */

/* "250ms", "30s", "15m", "12h", "2d" or plain seconds, to microseconds. */
static int parse_duration(const char *v, int64_t *us)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (end == v || errno || n < 0)
        return -1;
    double unit = 1e6;
    if (strcmp(end, "ms") == 0) unit = 1e3;
    else if (strcmp(end, "s") == 0 || *end == '\0') unit = 1e6;
    else if (strcmp(end, "m") == 0) unit = 60e6;
    else if (strcmp(end, "h") == 0) unit = 3600e6;
    else if (strcmp(end, "d") == 0) unit = 86400e6;
    else return -1;
    *us = (int64_t)(n * unit);
    return 0;
}

static int parse_count(const char *v, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end || errno || n <= 0)
        return -1;
    *out = n;
    return 0;
}

/* A string setting: cfg owns the copy (slot i) until server_config_release. */
static int keep(server_config *c, int slot, const char **field, const char *v)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return -1;
    free(c->owned[slot]);
    c->owned[slot] = copy;
    *field = copy;
    return 0;
}

void server_config_release(server_config *cfg)
{
    for (size_t i = 0; i < sizeof cfg->owned / sizeof cfg->owned[0]; i++) {
        free(cfg->owned[i]);
        cfg->owned[i] = NULL;
    }
}

static int apply_setting(server_config *c, const char *k, const char *v)
{
    int64_t us;
    long long n;
    if (!strcmp(k, "listen"))   return keep(c, 0, &c->http.listen, v);
    if (!strcmp(k, "tls_cert")) return keep(c, 1, &c->http.tls_cert, v);
    if (!strcmp(k, "tls_key"))  return keep(c, 2, &c->http.tls_key, v);
    if (!strcmp(k, "syslog"))   return keep(c, 3, &c->syslog, v);
    static const char *const ladder[] = { "detect_alert_score", "detect_step_up_score",
                                          "detect_throttle_score", "detect_contain_score" };
    for (int i = 0; i < 4; i++)
        if (!strcmp(k, ladder[i])) {
            char *end;
            double score = strtod(v, &end);
            if (end == v || *end || score <= 0 || score > 100)
                return -1;
            c->detect_ladder[i] = score;
            return 0;
        }
    if (!strcmp(k, "detect")) {
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return -1;
        c->detect_off = strcmp(v, "off") == 0;
        return 0;
    }
    if (!strcmp(k, "alert_webhook")) return keep(c, 4, &c->alert_webhook, v);
    if (!strcmp(k, "public_url"))
        return server_public_url_ok(v) ? keep(c, 5, &c->public_url, v) : -1;
    struct { const char *name; int64_t *field; } durations[] = {
        { "idle_timeout", &c->auth.idle_timeout_us },
        { "absolute_timeout", &c->auth.absolute_timeout_us },
        { "step_up_valid", &c->auth.step_up_valid_us },
        { "delay_base", &c->auth.delay_base_us },
        { "delay_max", &c->auth.delay_max_us },
        { "lock_time", &c->auth.lock_time_us },
        { "source_window", &c->auth.source_window_us },
    };
    if (!strcmp(k, "approval_ttl"))      /* a request that expires at once is none */
        return parse_duration(v, &us) == 0 && us >= 1000000 ? (c->approval_ttl_us = us, 0) : -1;
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++)
        if (!strcmp(k, durations[i].name))
            return parse_duration(v, &us) == 0 ? (*durations[i].field = us, 0) : -1;
    if (parse_count(v, &n) != 0)
        return -1;
    if (!strcmp(k, "max_body"))             { c->http.max_body = (size_t)n; return 0; }
    if (!strcmp(k, "max_header"))           { c->http.max_header = (size_t)n; return 0; }
    if (!strcmp(k, "threads"))              { c->http.threads = (unsigned)n; return 0; }
    if (!strcmp(k, "request_timeout"))      { c->http.request_timeout_s = (unsigned)n; return 0; }
    if (!strcmp(k, "max_conns_per_source")) { c->http.max_conns_per_source = (unsigned)n; return 0; }
    if (!strcmp(k, "header_timeout"))       { c->http.header_timeout_s = (unsigned)n; return 0; }
    if (!strcmp(k, "max_connections"))      { c->http.max_connections = (unsigned)n; return 0; }
    if (!strcmp(k, "lock_after"))           { c->auth.lock_after = (int)n; return 0; }
    if (!strcmp(k, "source_max_failures"))  { c->auth.source_max_failures = (int)n; return 0; }
    if (!strcmp(k, "privilege_burst"))      { c->privilege_burst = (int)n; return 0; }
    if (!strcmp(k, "detect_max_actors"))    { c->detect_max_actors = (size_t)n; return 0; }
    return -2;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int server_config_load(const char *path, server_config *cfg, mv_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return mv_fail(err, MV_E_IO, "cannot open config %s: %s", path, strerror(errno));
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (*l == '\0' || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (eq == NULL) {
            rc = mv_fail(err, MV_E_INVALID, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        int r = apply_setting(cfg, k, v);
        if (r == -2)
            rc = mv_fail(err, MV_E_INVALID, "%s:%d: unknown setting '%s'", path, lineno, k);
        else if (r != 0)
            rc = mv_fail(err, MV_E_INVALID, "%s:%d: bad value for '%s'", path, lineno, k);
    }
    fclose(f);
    return rc;
}

/* ---- Dispatch ------------------------------------------------------------ */

static void route(call *c)
{
    const char *m = c->req->method, *p = c->req->path;
    int post = strcmp(m, "POST") == 0, get = strcmp(m, "GET") == 0;
    if (strcmp(p, "/auth/login") == 0 && post)
        route_login(c);
    else if (strcmp(p, "/auth/logout") == 0 && post)
        route_logout(c);
    else if (strcmp(p, "/auth/step-up") == 0 && post)
        route_step_up(c);
    else if (strcmp(p, "/api/whoami") == 0 && get)
        route_whoami(c);
    else if (strncmp(p, "/api/users", 10) == 0 && (p[10] == '\0' || p[10] == '/'))
        route_users(c, p + 10);
    else if (strncmp(p, "/api/approvals", 14) == 0 && (p[14] == '\0' || p[14] == '/'))
        route_approvals(c, p + 14);
    else if (strncmp(p, "/api/alerts", 11) == 0 && (p[11] == '\0' || p[11] == '/'))
        route_alerts(c, p + 11);
    else if (strcmp(p, "/api/review") == 0)
        route_review(c);
    else if (strncmp(p, "/api/incidents", 14) == 0 && (p[14] == '\0' || p[14] == '/'))
        route_incidents(c, p + 14);
    else if (strncmp(p, "/fhir", 5) == 0 && (p[5] == '\0' || p[5] == '/'))
        route_fhir(c, p + 5);
    else if (strncmp(p, "/auth/", 6) == 0)
        call_fail(c, 405, "not-supported", "the /auth endpoints take POST");
    else
        call_fail(c, 404, "not-found", "no such endpoint");
}

static void handle(const http_request *req, http_response *res, void *ctx)
{
    call_verdict verdict = { DETECT_NONE, 0, "" };
    call c = { .srv = ctx, .req = req, .res = res, .verdict = &verdict };
    snprintf(res->actor, sizeof res->actor, "-");
    route(&c);
    call_apply_verdict(&c);
    json_decref(c.btg_seen);
}

/* ---- Lifecycle ----------------------------------------------------------- */

/* http(s)://host[:port] with an optional path, printable, no query, no
 * fragment, no credentials, no trailing slash. */
int server_public_url_ok(const char *url)
{
    size_t n = strlen(url);
    const char *rest = strncmp(url, "https://", 8) == 0 ? url + 8
                     : strncmp(url, "http://", 7) == 0  ? url + 7 : NULL;
    if (rest == NULL || *rest == '\0' || *rest == '/' || n > 200 || url[n - 1] == '/')
        return 0;
    for (const char *p = url; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr("?#@\\\"'<>", *p))
            return 0;
    return 1;
}

/* The base of absolute links: public_url, else scheme://host:PORT of the
 * listen URL with the port actually bound (":0" in tests). */
static void set_base_url(server *srv, int port)
{
    const char *pub = srv->cfg.public_url;
    if (pub != NULL) {
        snprintf(srv->base_url, sizeof srv->base_url, "%s/fhir", pub);
        return;
    }
    const char *listen = srv->cfg.http.listen ? srv->cfg.http.listen
                                              : "https://127.0.0.1:8443";
    const char *colon = strrchr(listen, ':');
    const char *scheme_end = strstr(listen, "://");
    if (colon == NULL || scheme_end == NULL || colon < scheme_end + 3 || port <= 0) {
        snprintf(srv->base_url, sizeof srv->base_url, "/fhir");
        return;
    }
    snprintf(srv->base_url, sizeof srv->base_url, "%.*s:%d/fhir",
             (int)(colon - listen), listen, port);
}

int server_start(mv_store *s, audit_trail *t, const server_config *cfg,
                 server **out, int *port, mv_err *err)
{
    server *srv = mv_calloc(1, sizeof *srv, err);
    if (srv == NULL)
        return -1;
    srv->store = s;
    srv->trail = t;
    srv->cfg = *cfg;
    srv->last_purge_us = mv_now_us();
    int bound = -1;
    if (auth_open(s, t, &cfg->auth, &srv->auth, err) != 0) {
        free(srv);
        return -1;
    }
    if (detection_open(srv, err) != 0 || decoys_refresh(srv, err) != 0 ||
        blocklist_refresh(srv, err) != 0 ||
        http_server_start(&cfg->http, handle, srv, &srv->http, &bound, err) != 0) {
        detection_close(srv);
        decoys_free(srv);
        blocklist_free(srv);
        auth_close(srv->auth);
        free(srv);
        return -1;
    }
    set_base_url(srv, bound);
    if (port != NULL)
        *port = bound;
    *out = srv;
    return 0;
}

/* ---- Requests made inside the process ------------------------------------- */

int server_open_local(mv_store *s, audit_trail *t, const server_config *cfg,
                      server **out, mv_err *err)
{
    server *srv = mv_calloc(1, sizeof *srv, err);
    if (srv == NULL)
        return -1;
    srv->store = s;
    srv->trail = t;
    srv->cfg = *cfg;
    srv->last_purge_us = mv_now_us();
    srv->local = 1;
    if (auth_open(s, t, &cfg->auth, &srv->auth, err) != 0) {
        free(srv);
        return -1;
    }
    *out = srv;
    return 0;
}

int server_local_backdate(server *srv, int64_t at_us, mv_err *err)
{
    if (!srv->local)
        return mv_fail(err, MV_E_INVALID, "only a local server writes backdated records");
    if (at_us > mv_now_us())
        return mv_fail(err, MV_E_INVALID, "a record cannot be dated in the future");
    srv->local_time_us = at_us;
    return 0;
}

int64_t call_write_time(const call *c)
{
    return c->srv->local && c->srv->local_time_us > 0 ? c->srv->local_time_us : mv_now_us();
}

int server_local_request(server *srv, const char *username, const char *method,
                         const char *path, const char *body, size_t body_len,
                         int *status, mv_buf *response, mv_err *err)
{
    call_verdict verdict = { DETECT_NONE, 0, "" };
    call c = { .srv = srv, .authenticated = 1, .verdict = &verdict };
    if (auth_account_get(srv->auth, username, &c.who.account, err) != 0)
        return -1;
    if (auth_account_inert(&c.who.account))
        return mv_fail(err, MV_E_INVALID, "account '%s' is locked", username);
    http_target target;
    if (http_target_parse(path, &target, err) != 0)
        return -1;
    http_pair headers[] = { { "Content-Type", "application/fhir+json" } };
    http_local local = { headers, 1, target.query, target.n_query };
    char request_id[33];
    crypto_random_id(request_id);
    http_request req = { .method = method, .path = target.path,
                         .body = (const unsigned char *)(body ? body : ""),
                         .body_len = body ? body_len : 0, .source = "local",
                         .request_id = request_id, .local = &local };
    http_response res = { .status = 200 };
    c.req = &req;
    c.res = &res;
    snprintf(res.actor, sizeof res.actor, "user:%s", c.who.account.id);
    snprintf(c.session_ref, sizeof c.session_ref, "local");
    route(&c);
    call_apply_verdict(&c);
    json_decref(c.btg_seen);
    http_target_free(&target);
    *status = res.status;
    *response = res.body;
    return 0;
}

/* Sessions past their absolute lifetime are useless; delete them hourly-ish
 * so the table holds only what may still be used. */
static void purge_sessions(server *srv)
{
    int64_t now = mv_now_us();
    if (now - srv->last_purge_us < PURGE_EVERY_US)
        return;
    srv->last_purge_us = now;
    store_txn *t;
    mv_err err;
    size_t n = 0;
    if (store_txn_begin(srv->store, &t, &err) != 0)
        return;
    if (store_session_purge(t, now - srv->cfg.auth.absolute_timeout_us, &n, &err) != 0) {
        store_txn_rollback(t);
        return;
    }
    store_txn_commit(t, &err);
}

#define PRIORS_EVERY_US (5 * 1000000LL)

void server_tick(void *p)
{
    server *srv = p;
    mv_err err;
    if (audit_tick(srv->trail, &err) != 0)
        fprintf(stderr, "medvault serve: audit checkpoint failed: %s\n", err.msg);
    if (decoys_refresh(srv, &err) != 0)        /* decoy plant may run meanwhile */
        fprintf(stderr, "medvault serve: reading the decoys failed: %s\n", err.msg);
    if (blocklist_refresh(srv, &err) != 0)     /* so may incident open */
        fprintf(stderr, "medvault serve: reading the blocked addresses failed: %s\n",
                err.msg);
    if (mv_now_us() - srv->last_priors_us >= PRIORS_EVERY_US) {   /* the CLI sets them */
        srv->last_priors_us = mv_now_us();
        if (priors_load(srv, &err) != 0)
            fprintf(stderr, "medvault serve: reading the detection priors failed: %s\n",
                    err.msg);
    }
    if (alerts_notify_pending(srv, &err) != 0)   /* alerts the CLI stored */
        fprintf(stderr, "medvault serve: sending stored alerts failed: %s\n", err.msg);
    purge_sessions(srv);
}

void server_stop(server *srv)
{
    if (srv == NULL)
        return;
    http_server_stop(srv->http);
    detection_close(srv);
    decoys_free(srv);
    blocklist_free(srv);
    auth_close(srv->auth);
    free(srv);
}
