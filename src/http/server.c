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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LISTEN          "https://127.0.0.1:8443"
#define DEFAULT_MAX_BODY        ((size_t)8 * 1024 * 1024)
#define DEFAULT_MAX_HEADER      ((size_t)16 * 1024)
#define DEFAULT_CONNS_PER_SOURCE 64u
#define DEFAULT_TIMEOUT_S       30u
#define DEFAULT_HEADER_TIMEOUT_S 10u
#define DEFAULT_MAX_CONNECTIONS 8192u
/* Open files kept back from the connection cap: the store (database, WAL,
 * shared memory, audit), logs, the listening socket, the gate's epoll and
 * wake descriptors, and two per library thread (its epoll and its ITC). */
#define FD_RESERVE_FIXED        64u
#define FD_RESERVE_PER_THREAD   2u
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
        .header_timeout_s = DEFAULT_HEADER_TIMEOUT_S,
        .max_connections = 0,                    /* from the open-file limit */
        /* Handlers block until their audit entry is durable, and group
         * commit batches whoever is waiting: the pool is the number of
         * requests one fsync can carry, not a CPU count. */
        .threads = cores > 0 ? (unsigned)(16 * cores) : 16u,
        .access_log = stderr,
    };
    return c;
}

/* ---- Connections ----------------------------------------------------------- */

/* Connections the library holds count against their source like those in
 * the gate's waiting room, and are watched for the header deadline; their
 * *socket_context is the watch entry (NULL: not counted). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    http_server *s = cls;
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (addr == NULL || addr->client_addr == NULL)
        return;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_watched *e = fd ? http_watch_add(s->watch, fd->connect_fd) : NULL;
        if (e == NULL)
            return;
        http_sources_take(s->sources, addr->client_addr, 1);
        *socket_context = e;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        http_watched *e = *socket_context;
        /* Still open here: the library closes it after this notification. */
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (s->gate != NULL && fd != NULL && http_watch_needs_linger(s->watch, e)) {
            int copy = dup(fd->connect_fd);
            if (copy >= 0)
                http_gate_linger(s->gate, copy);
        }
        http_watch_remove(s->watch, e);
        http_sources_give(s->sources, addr->client_addr);
        *socket_context = NULL;
    }
}

static http_watched *watched(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

static void watch_request(http_server *s, struct MHD_Connection *c, int begun)
{
    http_watch_request(s->watch, watched(c), begun);
}

/* An answer at the first call, before any body: the client may still be
 * sending it, so the connection will close lingering. */
static enum MHD_Result refuse_early(http_exchange *ex, int status, const char *code,
                                    const char *why)
{
    http_watch_answered_early(ex->server->watch, watched(ex->connection));
    return http_send_outcome(ex, status, code, why);
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

static enum MHD_Result add_framing(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    (void)kind;
    http_framing_add(cls, key, strlen(key), value ? value : "",
                     value ? strlen(value) : 0);
    return MHD_YES;
}

/* The gate judged the first request of a plain connection already; this
 * judges every request, those that follow on a kept-alive connection and
 * those that arrive inside TLS, by the same rules. */
static http_gate_verdict judge_framing(struct MHD_Connection *c)
{
    http_framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_framing, &f);
    return http_gate_framing(&f);
}

static int has_too_many_parameters(struct MHD_Connection *c)
{
    return MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) >
           HTTP_MAX_QUERY_PARAMETERS;
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
    watch_request(s, c, 1);
    http_exchange *ex = http_exchange_new(s, c, method, url);
    if (ex == NULL)
        return MHD_NO;                         /* out of memory: hang up */
    atomic_fetch_add(&s->active, 1);
    *con_cls = ex;
    http_gate_verdict framing = judge_framing(c);
    if (framing.action == HTTP_GATE_REFUSE) {
        ex->close_after = 1;
        return refuse_early(ex, framing.status, framing.code, framing.why);
    }
    if (has_too_many_parameters(c))
        return refuse_early(ex, MHD_HTTP_URI_TOO_LONG, "too-costly",
                                 "the query has too many parameters");
    if (http_request_header_bytes(c, method, url, version) > s->max_header)
        return refuse_early(ex, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                 "too-costly", "the request headers are too large");
    if (!is_acceptable_path(url))
        return refuse_early(ex, MHD_HTTP_BAD_REQUEST, "invalid",
                                 "the request path is malformed");
    if (!is_acceptable_query(c))
        return refuse_early(ex, MHD_HTTP_BAD_REQUEST, "invalid",
                                 "the query string holds control characters");
    if (declared_body_too_large(c, s->max_body))
        return refuse_early(ex, MHD_HTTP_CONTENT_TOO_LARGE, "too-costly",
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
    (void)why;
    http_server *s = cls;
    watch_request(s, c, 0);
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

/* The library never accepts: the gate owns the listening socket and hands
 * it each connection that passed (MHD_add_connection). */
static struct MHD_Daemon *start_daemon(http_server *s, const http_config *cfg,
                                       const http_listen *l)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_NO_LISTEN_SOCKET;
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
        MHD_OPTION_THREAD_POOL_SIZE, thread_count(cfg),
        MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory(s->max_header),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        cfg->max_conns_per_source ? cfg->max_conns_per_source
                                  : DEFAULT_CONNS_PER_SOURCE,
        MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->request_timeout_s ? cfg->request_timeout_s : DEFAULT_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,     /* the strictest 0.9.75 has */
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_ARRAY, s->https ? tls : &tls[3],
        MHD_OPTION_END);
}

static void free_server(http_server *s)
{
    http_watch_free(s->watch);
    http_sources_free(s->sources);
    mv_buf_free(&s->tls_cert);
    http_tls_free_key(&s->tls_key);
    free(s);
}

static int bound_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    if (a.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

/* Raise the soft open-file limit to the hard one (a thousand half-open
 * connections must not starve everyone else at Debian's default of 1,024),
 * then size the connection cap below it, leaving room for the store, the
 * listening socket and the library's own descriptors. */
static int size_connections(http_server *s, const http_config *cfg, mv_err *err)
{
    struct rlimit rl;
    rlim_t soft = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rlim_t want = rl.rlim_max;
            rl.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        soft = rl.rlim_cur;
    }
    rlim_t reserve = FD_RESERVE_FIXED + FD_RESERVE_PER_THREAD * (rlim_t)thread_count(cfg);
    rlim_t room = soft > reserve + 16 ? soft - reserve : 16;
    unsigned most = room > 1000000 ? 1000000u : (unsigned)room;
    if (cfg->max_connections > most)
        return mv_fail(err, MV_E_INVALID, "max_connections must be at most %u "
                       "(the open-file limit is %llu)", most, (unsigned long long)soft);
    /* The library splits its cap between its threads: each needs one. */
    if (cfg->max_connections && cfg->max_connections < thread_count(cfg))
        return mv_fail(err, MV_E_INVALID, "max_connections must be at least the "
                       "number of threads (%u)", thread_count(cfg));
    s->max_connections = cfg->max_connections ? cfg->max_connections
                         : (most < DEFAULT_MAX_CONNECTIONS ? most : DEFAULT_MAX_CONNECTIONS);
    return 0;
}

/* The header deadline never outlasts the idle timeout. */
static unsigned header_timeout(const http_config *cfg)
{
    unsigned idle = cfg->request_timeout_s ? cfg->request_timeout_s : DEFAULT_TIMEOUT_S;
    unsigned t = cfg->header_timeout_s ? cfg->header_timeout_s : DEFAULT_HEADER_TIMEOUT_S;
    return t < idle ? t : idle;
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
    if (apply_limits(s, cfg, err) != 0 || size_connections(s, cfg, err) != 0 ||
        (s->https && http_tls_load(cfg->tls_cert, cfg->tls_key, &s->tls_cert,
                                   &s->tls_key, err) != 0)) {
        free_server(s);
        return NULL;
    }
    unsigned per_source = cfg->max_conns_per_source ? cfg->max_conns_per_source
                                                    : DEFAULT_CONNS_PER_SOURCE;
    s->sources = http_sources_new(s->max_connections, per_source);
    s->watch = http_watch_new(header_timeout(cfg));
    if (s->sources == NULL || s->watch == NULL) {
        free_server(s);
        mv_fail(err, MV_E_NOMEM, "out of memory");
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
    int fd = http_listen_open(&l, cfg->listen, err);
    if (fd < 0) {
        free_server(s);
        return -1;
    }
    http_signals_prepare();          /* before MHD creates its threads */
    s->daemon = start_daemon(s, cfg, &l);
    if (s->daemon == NULL) {
        close(fd);
        free_server(s);
        return mv_fail(err, MV_E_IO, "cannot start the HTTP server on %.80s",
                       cfg->listen);
    }
    int bound = bound_port(fd);
    if (http_gate_start(s, fd, s->max_connections, header_timeout(cfg), &s->gate,
                        err) != 0) {
        close(fd);
        s->gate = NULL;
        MHD_stop_daemon(s->daemon);
        free_server(s);
        return -1;
    }
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
    http_gate_stop(s->gate);         /* no new connection from here on */
    wait_until_idle(s);
    MHD_stop_daemon(s->daemon);
    http_gate_free(s->gate);
    free_server(s);
}
