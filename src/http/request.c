/*
 * request.c -- one request as the handler sees it: headers, query
 * parameters, the client address and a fresh request id.
 *
 * Why this exists: handlers must read requests without ever touching the
 * HTTP library, and every request must get an unguessable id that ties the
 * response, the access log and (above this layer) the audit trail together.
 * The accessors also accept a request built by hand (internal == NULL), so
 * the layers above can unit-test their handlers without a socket, and a
 * request made inside the process (req->local: a Bundle entry, the seeder)
 * answers from its own header and query lists.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "crypto/crypto.h"

int64_t http_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct MHD_Connection *connection_of(const http_request *r)
{
    if (r == NULL || r->internal == NULL)
        return NULL;
    return ((const http_exchange *)r->internal)->connection;
}

/* ---- Headers ------------------------------------------------------------- */

const char *http_header(const http_request *r, const char *name)
{
    if (r != NULL && r->internal == NULL && r->local != NULL && name != NULL) {
        for (size_t i = 0; i < r->local->n_headers; i++)
            if (strcasecmp(r->local->headers[i].name, name) == 0)
                return r->local->headers[i].value;
        return NULL;
    }
    struct MHD_Connection *c = connection_of(r);
    if (c == NULL || name == NULL)
        return NULL;
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind,
                                        const char *key, const char *value)
{
    (void)kind;
    size_t *total = cls;
    *total += strlen(key) + 4 + (value ? strlen(value) : 0);  /* ": " CRLF */
    return MHD_YES;
}

size_t http_request_header_bytes(struct MHD_Connection *c, const char *method,
                                 const char *url, const char *version)
{
    size_t total = strlen(method) + strlen(url) + strlen(version) + 4;
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_bytes, &total);
    /* The query string is part of the request line: count it too. */
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_header_bytes,
                              &total);
    return total;
}

/* ---- Query parameters ---------------------------------------------------- */

typedef struct query_walk {
    http_query_fn fn;
    void *ctx;
    int result;
} query_walk;

/* A parameter without '=' ("?summary") has the empty string as its value. */
static enum MHD_Result visit_query(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    (void)kind;
    query_walk *w = cls;
    w->result = w->fn(key, value ? value : "", w->ctx);
    return w->result == 0 ? MHD_YES : MHD_NO;
}

int http_query_each(const http_request *r, http_query_fn fn, void *ctx)
{
    if (r != NULL && r->internal == NULL && r->local != NULL && fn != NULL) {
        for (size_t i = 0; i < r->local->n_query; i++) {
            int stop = fn(r->local->query[i].name, r->local->query[i].value, ctx);
            if (stop != 0)
                return stop;
        }
        return 0;
    }
    struct MHD_Connection *c = connection_of(r);
    if (c == NULL || fn == NULL)
        return 0;
    query_walk w = { fn, ctx, 0 };
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, visit_query, &w);
    return w.result;
}

typedef struct query_find {
    const char *name;
    const char *value;
} query_find;

static int match_query(const char *name, const char *value, void *ctx)
{
    query_find *f = ctx;
    if (strcmp(name, f->name) != 0)
        return 0;
    f->value = value;
    return 1;
}

const char *http_query(const http_request *r, const char *name)
{
    if (name == NULL)
        return NULL;
    query_find f = { name, NULL };
    http_query_each(r, match_query, &f);
    return f.value;
}

/* ---- Targets of requests made in-process ------------------------------------ */

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *decode(const char *s, size_t n, int plus_is_space)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

void http_target_free(http_target *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_query; i++) {
        free((char *)t->query[i].name);
        free((char *)t->query[i].value);
    }
    free(t->query);
    free(t->path);
    memset(t, 0, sizeof *t);
}

int http_target_parse(const char *target, http_target *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    size_t plen = strcspn(target, "?");
    out->path = decode(target, plen, 0);
    if (out->path == NULL)
        return mv_fail(err, MV_E_INVALID, "malformed percent-escape in the path");
    const char *q = target[plen] == '?' ? target + plen + 1 : "";
    size_t cap = 1;
    for (const char *s = q; *s; s++)
        cap += *s == '&';
    out->query = calloc(cap, sizeof *out->query);
    if (out->query == NULL) {
        http_target_free(out);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len > 0) {
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            char *name = decode(q, nlen, 1);
            char *value = eq ? decode(eq + 1, len - nlen - 1, 1) : strdup("");
            if (name == NULL || value == NULL) {
                free(name);
                free(value);
                http_target_free(out);
                return mv_fail(err, MV_E_INVALID, "malformed percent-escape in the query");
            }
            out->query[out->n_query++] = (http_pair){ name, value };
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* ---- The exchange (state of one request in flight) ------------------------ */

static void client_address(struct MHD_Connection *c, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL)
        return;
    const struct sockaddr *sa = info->client_addr;
    const void *bytes = NULL;
    if (sa->sa_family == AF_INET)
        bytes = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        bytes = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (bytes == NULL || inet_ntop(sa->sa_family, bytes, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "-");
}

http_exchange *http_exchange_new(http_server *s, struct MHD_Connection *c,
                                 const char *method, const char *url)
{
    http_exchange *ex = calloc(1, sizeof *ex);
    if (ex == NULL)
        return NULL;
    ex->server = s;
    ex->connection = c;
    ex->started_us = http_monotonic_us();
    crypto_random_id(ex->request_id);
    client_address(c, ex->source, sizeof ex->source);
    http_log_escape(method, ex->log_method, sizeof ex->log_method);
    http_log_escape(url, ex->log_path, sizeof ex->log_path);
    return ex;
}

void http_wipe_free(void *p)
{
    if (p == NULL)
        return;
    crypto_wipe(p, malloc_usable_size(p));
    free(p);
}

void http_body_free(mv_buf *b)
{
    http_wipe_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void http_exchange_free(http_exchange *ex)
{
    if (ex == NULL)
        return;
    http_body_free(&ex->body);
    free(ex);
}
