/*
 * request.c -- one request as the handler sees it: headers, query
 * parameters, the client address and a fresh request id.
 *
 * Why this exists: handlers must read requests without ever touching the
 * HTTP library, and every request must get an unguessable id that ties the
 * response, the access log and (above this layer) the audit trail together.
 * The accessors also accept a request built by hand (internal == NULL), so
 * the layers above can unit-test their handlers without a socket.
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
