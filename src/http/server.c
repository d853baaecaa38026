/*
 * server.c -- the daemon: start, limits, the life of each request, stop.
 *
 * Why this exists: this is the front door, so it is strict before it is
 * helpful.  It binds exactly the address configured (plain HTTP only on
 * loopback), enforces the header, body, connection and time limits before a
 * handler sees anything, never lets the HTTP library print request data,
 * and on stop lets the requests in flight finish instead of cutting a
 * clinician's write in half.
 *
 * The life of a request with libmicrohttpd's access-handler protocol:
 *   first call    headers complete: create the exchange (request id, start
 *                 time), count it active, reject oversized headers, a bad
 *                 path or query, or a declared body over the limit at once;
 *   upload calls  append the body, up to max_body; past it, drop the bytes
 *                 (and, after max_body more, at least 1 MiB, the connection);
 *   final call    hand the complete request to the handler, queue the
 *                 response with every mandatory header, log one line;
 *   completed     (MHD callback) free the exchange, count it inactive.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LISTEN          "https://127.0.0.1:8443"
#define DEFAULT_MAX_BODY        ((size_t)8 * 1024 * 1024)
#define DEFAULT_MAX_HEADER      ((size_t)16 * 1024)
#define DEFAULT_CONNS_PER_SOURCE 64u
#define DEFAULT_TIMEOUT_S       30u
#define MAX_MAX_HEADER          ((size_t)1024 * 1024)
#define MAX_MAX_BODY            (SIZE_MAX / 4)
#define MIN_DISCARD             ((size_t)1024 * 1024)
#define STOP_GRACE_US           (10 * 1000000LL)
#define STOP_POLL_NS            (5 * 1000000L)

/* TLS 1.2 and 1.3 only; forward-secret AEAD suites only; our order. */
#define TLS_PRIORITIES                                                      \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"                           \
    "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"                                      \
    "-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"             \
    "-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

http_config http_default_config(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    http_config c = {
        .listen = DEFAULT_LISTEN,
        .tls_cert = NULL,
        .tls_key = NULL,
        .max_body = DEFAULT_MAX_BODY,
        .max_header = DEFAULT_MAX_HEADER,
        .max_conns_per_source = DEFAULT_CONNS_PER_SOURCE,
        .request_timeout_s = DEFAULT_TIMEOUT_S,
        /* Handlers block until their audit entry is durable, and group
         * commit batches whoever is waiting: the pool is the number of
         * requests one fsync can carry, not a CPU count. */
        .threads = cores > 0 ? (unsigned)(16 * cores) : 16u,
        .access_log = stderr,
    };
    return c;
}

/* ---- The access handler ---------------------------------------------------- */

static int has_no_control_bytes(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* An origin-form path ("/..."), without control bytes once decoded. */
static int is_acceptable_path(const char *path)
{
    return path[0] == '/' && has_no_control_bytes(path);
}

/* Query names and values without control bytes once decoded. */
static enum MHD_Result check_query_value(void *cls, enum MHD_ValueKind kind,
                                         const char *key, const char *value)
{
    (void)kind;
    int *clean = cls;
    *clean = has_no_control_bytes(key) && (value == NULL || has_no_control_bytes(value));
    return *clean ? MHD_YES : MHD_NO;
}

static int is_acceptable_query(struct MHD_Connection *c)
{
    int clean = 1;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_query_value, &clean);
    return clean;
}

/* Decode %HH as MHD does, except that a decoded NUL becomes DEL: a "%00"
 * can then never cut a path or a query value short behind the handler's
 * back, and the control-byte checks above refuse the request instead. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            s[i] = 0x7f;
    return n;
}

static int declared_body_too_large(struct MHD_Connection *c, size_t max_body)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v == NULL)
        return 0;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    return errno == ERANGE || (end != v && n > max_body);
}

static enum MHD_Result begin_request(http_server *s, struct MHD_Connection *c,
                                     const char *url, const char *method,
                                     const char *version, void **con_cls)
{
    http_exchange *ex = http_exchange_new(s, c, method, url);
    if (ex == NULL)
        return MHD_NO;                         /* out of memory: hang up */
    atomic_fetch_add(&s->active, 1);
    *con_cls = ex;
    if (http_request_header_bytes(c, method, url, version) > s->max_header)
        return http_send_outcome(ex, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                 "too-costly", "the request headers are too large");
    if (!is_acceptable_path(url))
        return http_send_outcome(ex, MHD_HTTP_BAD_REQUEST, "invalid",
                                 "the request path is malformed");
    if (!is_acceptable_query(c))
        return http_send_outcome(ex, MHD_HTTP_BAD_REQUEST, "invalid",
                                 "the query string holds control characters");
    if (declared_body_too_large(c, s->max_body))
        return http_send_outcome(ex, MHD_HTTP_CONTENT_TOO_LARGE, "too-costly",
                                 "the request body is too large");
    return MHD_YES;
}

/* Bytes past the limit are counted and dropped, never stored.  A client that
 * keeps sending long after being over the limit loses the connection. */
static enum MHD_Result discard_body(http_exchange *ex, size_t n)
{
    size_t allowance = ex->server->max_body > MIN_DISCARD ? ex->server->max_body
                                                          : MIN_DISCARD;
    ex->discarded += n;
    return ex->discarded > allowance ? MHD_NO : MHD_YES;
}

/* Append n bytes (len + n <= limit) keeping room for a NUL; the buffer
 * doubles as it grows but never beyond limit + 1 bytes. */
static int append_body(mv_buf *b, const char *data, size_t n, size_t limit)
{
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        cap = cap < need ? need : cap;
        cap = cap > limit + 1 ? limit + 1 : cap;
        /* Not realloc: it would leave the old bytes behind unwiped. */
        unsigned char *p = malloc(cap);
        if (p == NULL)
            return -1;
        if (b->len)
            memcpy(p, b->data, b->len);
        http_wipe_free(b->data);
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static enum MHD_Result receive_body(http_exchange *ex, const char *data,
                                    size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (ex->body_too_large || ex->body_failed)
        return discard_body(ex, n);
    if (n > ex->server->max_body - ex->body.len) {
        ex->body_too_large = 1;
        http_body_free(&ex->body);
        return discard_body(ex, n);
    }
    if (append_body(&ex->body, data, n, ex->server->max_body) != 0) {
        ex->body_failed = 1;
        http_body_free(&ex->body);
    }
    return MHD_YES;
}

/* NUL-terminate the body without counting the NUL (append_body left room). */
static const unsigned char *terminated_body(mv_buf *b)
{
    if (b->len == 0)
        return (const unsigned char *)"";
    b->data[b->len] = '\0';
    return b->data;
}

static enum MHD_Result finish_request(http_exchange *ex, const char *url,
                                      const char *method)
{
    if (ex->body_too_large)
        return http_send_outcome(ex, MHD_HTTP_CONTENT_TOO_LARGE, "too-costly",
                                 "the request body is too large");
    const unsigned char *body = ex->body_failed ? NULL : terminated_body(&ex->body);
    if (body == NULL)
        return http_send_outcome(ex, MHD_HTTP_SERVICE_UNAVAILABLE, "transient",
                                 "the server is short of memory");
    http_request req = {
        .method = method, .path = url, .body = body,
        .body_len = ex->body.len, .source = ex->source,
        .request_id = ex->request_id, .internal = ex,
    };
    http_response res;
    http_response_init(&res);
    ex->server->handler(&req, &res, ex->server->handler_ctx);
    return http_send(ex, &res);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_exchange *ex = *con_cls;
    if (ex == NULL)
        return begin_request(cls, c, url, method, version, con_cls);
    if (*upload_data_size > 0)
        return receive_body(ex, upload_data, upload_data_size);
    return finish_request(ex, url, method);
}

/* Runs once per request the handler saw begin, answered or not. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)c;
    (void)why;
    http_server *s = cls;
    http_exchange *ex = *con_cls;
    if (ex == NULL)
        return;
    *con_cls = NULL;
    http_access_log(ex, 0, "-");      /* only if never answered (aborted) */
    http_exchange_free(ex);
    atomic_fetch_sub(&s->active, 1);
}

/* ---- Start ------------------------------------------------------------------ */

/* Zero means "the default"; absurd values are configuration mistakes. */
static int apply_limits(http_server *s, const http_config *cfg, mv_err *err)
{
    s->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    s->max_header = cfg->max_header ? cfg->max_header : DEFAULT_MAX_HEADER;
    s->access_log = cfg->access_log ? cfg->access_log : stderr;
    if (s->max_header > MAX_MAX_HEADER)
        return mv_fail(err, MV_E_INVALID, "max_header must be at most %zu bytes",
                       MAX_MAX_HEADER);
    if (s->max_body > MAX_MAX_BODY)
        return mv_fail(err, MV_E_INVALID, "max_body must be at most %zu bytes",
                       MAX_MAX_BODY);
    return 0;
}

/* MHD keeps the whole header block in the per-connection pool; leave room
 * above max_header so that our own 431 (with its headers) answers first. */
static size_t connection_memory(size_t max_header)
{
    return max_header * 4 + 16 * 1024;
}

static unsigned thread_count(const http_config *cfg)
{
    return cfg->threads ? cfg->threads : http_default_config().threads;
}

static struct MHD_Daemon *start_daemon(http_server *s, const http_config *cfg,
                                       http_listen *l)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
#ifdef __linux__
    flags |= MHD_USE_EPOLL;
#else
    flags |= MHD_USE_POLL;
#endif
    if (l->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert.data },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key.data },
        { MHD_OPTION_HTTPS_PRIORITIES, 0, TLS_PRIORITIES },
        { MHD_OPTION_END, 0, NULL },
    };
    if (s->https)
        flags |= MHD_USE_TLS;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&l->addr,
        MHD_OPTION_THREAD_POOL_SIZE, thread_count(cfg),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory(s->max_header),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->max_conns_per_source ? cfg->max_conns_per_source
                                  : DEFAULT_CONNS_PER_SOURCE,
        MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->request_timeout_s ? cfg->request_timeout_s : DEFAULT_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_ARRAY, s->https ? tls : &tls[3],
        MHD_OPTION_END);
}

/* MHD says nothing (its error log is off), so find out by trying a bind. */
static int start_failed(const http_listen *l, const char *listen, mv_err *err)
{
    int e = http_listen_probe(l);
    if (e != 0)
        return mv_fail(err, MV_E_IO, "cannot listen on %.80s: %s", listen,
                       strerror(e));
    return mv_fail(err, MV_E_IO, "cannot start the HTTP server on %.80s",
                   listen);
}

static void free_server(http_server *s)
{
    mv_buf_free(&s->tls_cert);
    http_tls_free_key(&s->tls_key);
    free(s);
}

static int bound_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : -1;
}

/* Everything but the daemon: handler, limits, TLS material. */
static http_server *new_server(const http_config *cfg, const http_listen *l,
                               http_handler handler, void *ctx, mv_err *err)
{
    http_server *s = mv_calloc(1, sizeof *s, err);
    if (s == NULL)
        return NULL;
    s->handler = handler;
    s->handler_ctx = ctx;
    s->https = l->https;
    atomic_init(&s->active, 0);
    if (apply_limits(s, cfg, err) != 0 ||
        (s->https && http_tls_load(cfg->tls_cert, cfg->tls_key, &s->tls_cert,
                                   &s->tls_key, err) != 0)) {
        free_server(s);
        return NULL;
    }
    return s;
}

int http_server_start(const http_config *cfg, http_handler handler, void *ctx,
                      http_server **out, int *port, mv_err *err)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || handler == NULL || out == NULL)
        return mv_fail(err, MV_E_INVALID, "http_server_start: missing argument");
    http_listen l;
    if (http_listen_parse(cfg->listen, &l, err) != 0)
        return -1;
    if (!l.https && !http_listen_is_loopback(&l))
        return mv_fail(err, MV_E_INVALID, "plain HTTP is only allowed on "
                       "loopback addresses; use https://");
    http_server *s = new_server(cfg, &l, handler, ctx, err);
    if (s == NULL)
        return -1;
    http_signals_prepare();          /* before MHD creates its threads */
    s->daemon = start_daemon(s, cfg, &l);
    if (s->daemon == NULL) {
        free_server(s);
        return start_failed(&l, cfg->listen, err);
    }
    int bound = bound_port(s->daemon);
    if (port != NULL)
        *port = bound;
    if (!s->https)
        fprintf(stderr, "medvault: serving plain HTTP on %s port %d "
                "(loopback only; never for real patients)\n", l.host, bound);
    *out = s;
    return 0;
}

/* ---- Stop ---------------------------------------------------------------------- */

static void wait_until_idle(http_server *s)
{
    int64_t deadline = http_monotonic_us() + STOP_GRACE_US;
    struct timespec pause = { 0, STOP_POLL_NS };
    while (atomic_load(&s->active) > 0 && http_monotonic_us() < deadline)
        nanosleep(&pause, NULL);
}

void http_server_stop(http_server *s)
{
    if (s == NULL)
        return;
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    wait_until_idle(s);
    MHD_stop_daemon(s->daemon);
    /* After quiescing, the listening socket is ours to close, and only once
     * the daemon's threads are gone. */
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    free_server(s);
}
