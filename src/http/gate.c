/*
 * gate.c -- the front door before libmicrohttpd: accept, look, then admit.
 *
 * Why this exists: an independent hostile-input run found requests that
 * libmicrohttpd 0.9.75 (Debian 12's) never answers: a request line with
 * thousands of query parameters exhausts its connection pool, a declared
 * chunk size of 2^64 or an unknown Transfer-Encoding waits for bytes that
 * never come, a TLS ClientHello on the plain port waits for a line end.
 * Each held a connection for the whole idle timeout, and a thousand
 * half-open connections from a thousand addresses exhausted the open-file
 * limit so that nobody else was served.  The gate owns the listening socket
 * instead of the library:
 *
 *   accept    counts the connection against its source address and the
 *             global cap (sources below); when the waiting room is full,
 *             the connection that has waited longest is let go, so a
 *             slow sender can never keep a prompt one out;
 *   look      peeks (MSG_PEEK: nothing is consumed) at what arrived and
 *             judges it with http_gate_judge(): TLS must start with a
 *             handshake record, plain HTTP with a method; the request line,
 *             the parameter count and the header block must fit, and the
 *             message framing must be unambiguous (RFC 9112 section 6);
 *   admit     hands the socket, bytes untouched, to libmicrohttpd;
 *   refuse    writes a complete OperationOutcome answer itself, shuts the
 *             write side and drains briefly before closing (a close with
 *             unread input would reset the answer away);
 *   linger    a connection the library closes while its client may still
 *             be sending (answered before its body was read) is handed
 *             back here, duplicated, and drained the same way, so the
 *             answer is not reset away by the unread bytes;
 *   deadline  a header block begun but not complete within header_timeout
 *             is answered 408 and closed; a connection that sent nothing
 *             by then (or, on TLS, no handshake) is closed.
 *
 * One thread does all of this with epoll; it never blocks on a client.
 */
#define _GNU_SOURCE             /* accept4 */
#include "http_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define GATE_EVENTS         64
#define GATE_TICK_MS        200
#define GATE_DRAIN_US       (2 * 1000000LL)
#define GATE_DRAIN_BYTES    (8 * 1024 * 1024)
#define EV_LISTEN           UINT64_MAX
#define EV_WAKE             (UINT64_MAX - 1)
#define EV_LINGER           (UINT64_MAX - 2)
#define LINGER_QUEUE        1024

/* ---- Judging the first bytes (pure; unit-tested) ------------------------- */

static http_gate_verdict verdict(http_gate_action action, int status,
                                 const char *code, const char *why)
{
    http_gate_verdict v = { action, status, code, why };
    return v;
}

static http_gate_verdict refuse(int status, const char *code, const char *why)
{
    return verdict(HTTP_GATE_REFUSE, status, code, why);
}

static const unsigned char *find_byte(const unsigned char *p, size_t n, int c)
{
    return memchr(p, c, n);
}

/* The end of the header block ("\r\n\r\n" or "\n\n"), just past it, or NULL. */
static const unsigned char *block_end(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return p + i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return p + i + 3;
    }
    return NULL;
}

static size_t query_parameters(const unsigned char *line, size_t n)
{
    const unsigned char *q = find_byte(line, n, '?');
    if (q == NULL)
        return 0;
    size_t count = 1;
    for (const unsigned char *p = q + 1; p < line + n && *p != ' '; p++)
        count += *p == '&';
    return count;
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* Trim optional whitespace (and a trailing CR) from [*v, *v + *n). */
static void trim(const unsigned char **v, size_t *n)
{
    while (*n > 0 && is_ows(**v)) {
        (*v)++;
        (*n)--;
    }
    while (*n > 0 && (is_ows((*v)[*n - 1]) || (*v)[*n - 1] == '\r'))
        (*n)--;
}

static int is_digits(const unsigned char *v, size_t n)
{
    if (n == 0 || n > 19)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return 0;
    return 1;
}

static int name_is(const unsigned char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp((const char *)name, want, n) == 0;
}

http_gate_verdict http_gate_framing(const http_framing *f)
{
    if (f->bad_content_length)
        return refuse(400, "invalid", "Content-Length is not a single decimal number");
    if (f->content_lengths > 1)
        return refuse(400, "invalid", "more than one Content-Length header");
    if (f->transfer_encodings > 0 && f->content_lengths > 0)
        return refuse(400, "invalid",
                      "both Content-Length and Transfer-Encoding: the body's length is ambiguous");
    if (f->transfer_encodings > 1 || (f->transfer_encodings == 1 && !f->chunked))
        return refuse(400, "not-supported",
                      "this Transfer-Encoding is not supported; send Content-Length");
    if (f->chunked)
        return refuse(411, "not-supported",
                      "chunked request bodies are not accepted; send Content-Length");
    return verdict(HTTP_GATE_ADMIT, 0, NULL, NULL);
}

void http_framing_add(http_framing *f, const char *name, size_t name_len,
                      const char *value, size_t value_len)
{
    const unsigned char *n = (const unsigned char *)name;
    const unsigned char *v = (const unsigned char *)value;
    if (name_is(n, name_len, "content-length")) {
        trim(&v, &value_len);
        f->content_lengths++;
        if (!is_digits(v, value_len))
            f->bad_content_length = 1;
    } else if (name_is(n, name_len, "transfer-encoding")) {
        trim(&v, &value_len);
        f->transfer_encodings++;
        f->chunked = value_len == 7 && strncasecmp((const char *)v, "chunked", 7) == 0;
    }
}

/* The header fields between the request line and the end of the block. */
static http_gate_verdict judge_fields(const unsigned char *p, const unsigned char *end)
{
    http_framing f = {0};
    while (p < end) {
        const unsigned char *nl = find_byte(p, (size_t)(end - p), '\n');
        const unsigned char *stop = nl ? nl : end;
        size_t len = (size_t)(stop - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len == 0)
            break;                                  /* the empty line */
        if (is_ows(p[0]))
            return refuse(400, "invalid", "a header line is folded (obsolete line folding)");
        const unsigned char *colon = find_byte(p, len, ':');
        if (colon == NULL || colon == p)
            return refuse(400, "invalid", "a header line has no field name");
        for (const unsigned char *c = p; c < colon; c++)
            if (is_ows(*c) || *c < 0x21 || *c > 0x7e)
                return refuse(400, "invalid", "a header field name holds whitespace or control bytes");
        http_framing_add(&f, (const char *)p, (size_t)(colon - p),
                         (const char *)colon + 1, len - (size_t)(colon + 1 - p));
        p = stop + 1;
    }
    return http_gate_framing(&f);
}

http_gate_verdict http_gate_judge(const unsigned char *buf, size_t n, int https,
                                  size_t max_header)
{
    if (n == 0)
        return verdict(HTTP_GATE_WAIT, 0, NULL, NULL);
    if (https)          /* a TLS record of type handshake, or not TLS at all */
        return buf[0] == 0x16 ? verdict(HTTP_GATE_ADMIT, 0, NULL, NULL)
                              : verdict(HTTP_GATE_DROP, 0, NULL, NULL);
    if (buf[0] < 'A' || buf[0] > 'Z')       /* not a method: not HTTP at all */
        return verdict(HTTP_GATE_DROP, 0, NULL, NULL);
    size_t window = n < max_header ? n : max_header;
    const unsigned char *eol = find_byte(buf, window, '\n');
    if (eol == NULL)
        return n > max_header
                   ? refuse(414, "too-costly", "the request line is too long")
                   : verdict(HTTP_GATE_WAIT, 0, NULL, NULL);
    if (query_parameters(buf, (size_t)(eol - buf)) > HTTP_MAX_QUERY_PARAMETERS)
        return refuse(414, "too-costly", "the query has too many parameters");
    const unsigned char *end = block_end(eol, window - (size_t)(eol - buf));
    if (end == NULL)
        return n > max_header
                   ? refuse(431, "too-costly", "the request headers are too large")
                   : verdict(HTTP_GATE_WAIT, 0, NULL, NULL);
    return judge_fields(eol + 1, end);
}

/* ---- Sources: connections per address, and in all ------------------------ */
/*
 * One count per client address (IPv4-mapped IPv6 counts as IPv4) covering
 * both the gate's waiting room and the library's connections, in an
 * open-addressing table sized at twice the global cap, under one mutex: the
 * gate thread takes and gives, the library's threads give on close.
 */

typedef struct source_key {
    unsigned char bytes[17];                 /* family tag, then the address */
} source_key;

typedef struct source_slot {
    source_key key;
    unsigned count;                          /* 0: empty slot */
} source_slot;

struct http_sources {
    pthread_mutex_t lock;
    source_slot *slots;
    size_t cap;                              /* a power of two */
    unsigned total, max_total, max_per_source;
};

static source_key key_of(const struct sockaddr *sa)
{
    source_key k;
    memset(&k, 0, sizeof k);
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            k.bytes[0] = 4;
            memcpy(k.bytes + 1, a->s6_addr + 12, 4);
        } else {
            k.bytes[0] = 6;
            memcpy(k.bytes + 1, a->s6_addr, 16);
        }
    } else if (sa->sa_family == AF_INET) {
        k.bytes[0] = 4;
        memcpy(k.bytes + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
    return k;
}

static size_t slot_hash(const source_key *k, size_t cap)
{
    uint64_t h = 1469598103934665603ULL;             /* FNV-1a */
    for (size_t i = 0; i < sizeof k->bytes; i++)
        h = (h ^ k->bytes[i]) * 1099511628211ULL;
    return (size_t)h & (cap - 1);
}

/* The slot holding k, or the empty slot where it would go. */
static size_t find_slot(const http_sources *t, const source_key *k)
{
    size_t i = slot_hash(k, t->cap);
    while (t->slots[i].count != 0 &&
           memcmp(t->slots[i].key.bytes, k->bytes, sizeof k->bytes) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

/* Remove slot i keeping every probe chain intact (backward shift). */
static void remove_slot(http_sources *t, size_t i)
{
    size_t j = i;
    for (;;) {
        t->slots[i].count = 0;
        for (;;) {
            j = (j + 1) & (t->cap - 1);
            if (t->slots[j].count == 0)
                return;
            size_t home = slot_hash(&t->slots[j].key, t->cap);
            /* j may move to i only if its home is not in (i, j]. */
            int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!between)
                break;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
}

http_sources *http_sources_new(unsigned max_total, unsigned max_per_source)
{
    http_sources *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    size_t cap = 16;
    while (cap < (size_t)max_total * 2)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    t->cap = cap;
    t->max_total = max_total;
    t->max_per_source = max_per_source;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void http_sources_free(http_sources *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

http_source_result http_sources_take(http_sources *t, const struct sockaddr *sa,
                                     int forced)
{
    source_key k = key_of(sa);
    http_source_result r = HTTP_SOURCE_OK;
    pthread_mutex_lock(&t->lock);
    size_t i = find_slot(t, &k);
    if (!forced && t->total >= t->max_total)
        r = HTTP_SOURCE_FULL;
    else if (!forced && t->slots[i].count >= t->max_per_source)
        r = HTTP_SOURCE_TOO_MANY;
    else if (t->slots[i].count == 0 && t->total + 1 >= t->cap)
        r = HTTP_SOURCE_FULL;                  /* never fill the table */
    if (r == HTTP_SOURCE_OK) {
        t->slots[i].key = k;
        t->slots[i].count++;
        t->total++;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

void http_sources_give(http_sources *t, const struct sockaddr *sa)
{
    source_key k = key_of(sa);
    pthread_mutex_lock(&t->lock);
    size_t i = find_slot(t, &k);
    if (t->slots[i].count > 0) {
        t->total--;
        if (--t->slots[i].count == 0)
            remove_slot(t, i);
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned http_sources_total(http_sources *t)
{
    pthread_mutex_lock(&t->lock);
    unsigned n = t->total;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* ---- The waiting room ------------------------------------------------------ */

typedef enum { SLOT_FREE, SLOT_LOOKING, SLOT_DRAINING } slot_state;

typedef struct gate_conn {
    slot_state state;
    int counted;                         /* against its source (not lingering) */
    int fd;
    int64_t deadline_us;
    int64_t opened_us;
    size_t drained;
    size_t seen;                         /* bytes peeked so far               */
    struct sockaddr_storage addr;
    socklen_t addr_len;
} gate_conn;

struct http_gate {
    http_server *server;
    int listen_fd, epoll_fd, wake_fd, linger_fd;
    pthread_mutex_t linger_lock;         /* guards the queue and stopping   */
    int linger_queue[LINGER_QUEUE];
    unsigned n_linger;
    int stopping;
    int listen_paused;                   /* EMFILE: wait a tick before accepting */
    pthread_t thread;
    int started;
    gate_conn *conns;
    unsigned n_conns;                    /* slots */
    unsigned n_used;
    int64_t header_timeout_us;
    unsigned char *peek;                 /* max_header + 1 bytes */
};

static void forget(http_gate *g, gate_conn *c)
{
    epoll_ctl(g->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->counted)
        http_sources_give(g->server->sources, (const struct sockaddr *)&c->addr);
    c->state = SLOT_FREE;
    c->fd = -1;
    g->n_used--;
}

static void drop(http_gate *g, gate_conn *c)
{
    int fd = c->fd;
    forget(g, c);
    close(fd);
}

/* Answer and start the lingering close: the write side is shut at once, the
 * input read and dropped until the client closes or GATE_DRAIN_US pass. */
static void answer(http_gate *g, gate_conn *c, int status, const char *code,
                   const char *why)
{
    if (g->server->https) {           /* nothing to say in plain text there */
        drop(g, c);
        return;
    }
    mv_buf out = {0};
    http_raw_outcome(g->server, status, code, why, c->opened_us, &out);
    if (out.len > 0)
        (void)send(c->fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    mv_buf_free(&out);
    shutdown(c->fd, SHUT_WR);
    c->state = SLOT_DRAINING;
    c->drained = 0;
    c->deadline_us = http_monotonic_us() + GATE_DRAIN_US;
}

static void drain(http_gate *g, gate_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, g->peek, g->server->max_header + 1, MSG_DONTWAIT);
        if (n > 0 && (c->drained += (size_t)n) < GATE_DRAIN_BYTES)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        drop(g, c);                  /* closed, failed, or sent too much */
        return;
    }
}

static void admit(http_gate *g, gate_conn *c)
{
    int fd = c->fd;
    struct sockaddr_storage addr = c->addr;
    socklen_t len = c->addr_len;
    forget(g, c);                        /* the library counts it from now on */
    /* On failure the library closes the socket itself. */
    (void)MHD_add_connection(g->server->daemon, fd, (const struct sockaddr *)&addr, len);
}

static void look(http_gate *g, gate_conn *c)
{
    if (c->state == SLOT_DRAINING) {
        drain(g, c);
        return;
    }
    size_t cap = g->server->max_header + 1;
    ssize_t n = recv(c->fd, g->peek, cap, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(g, c);
        return;
    }
    if (n < 0)
        return;
    c->seen = (size_t)n;
    http_gate_verdict v = http_gate_judge(g->peek, (size_t)n, g->server->https,
                                          g->server->max_header);
    switch (v.action) {
    case HTTP_GATE_WAIT:   return;
    case HTTP_GATE_ADMIT:  admit(g, c); return;
    case HTTP_GATE_DROP:   drop(g, c); return;
    case HTTP_GATE_REFUSE: answer(g, c, v.status, v.code, v.why); return;
    }
}

static gate_conn *oldest_looking(http_gate *g)
{
    gate_conn *old = NULL;
    for (unsigned i = 0; i < g->n_conns; i++) {
        gate_conn *c = &g->conns[i];
        if (c->state != SLOT_FREE && (old == NULL || c->opened_us < old->opened_us))
            old = c;
    }
    return old;
}

static gate_conn *free_slot(http_gate *g)
{
    for (unsigned i = 0; i < g->n_conns; i++)
        if (g->conns[i].state == SLOT_FREE)
            return &g->conns[i];
    return NULL;
}

/* Room for one more: a free slot, or the one that has waited longest. */
static gate_conn *make_room(http_gate *g)
{
    gate_conn *c = free_slot(g);
    if (c != NULL)
        return c;
    c = oldest_looking(g);
    if (c != NULL)
        drop(g, c);
    return c;
}

static void take_connection(http_gate *g, int fd, const struct sockaddr_storage *addr,
                            socklen_t len)
{
    http_source_result r = http_sources_take(g->server->sources,
                                             (const struct sockaddr *)addr, 0);
    if (r == HTTP_SOURCE_FULL && g->n_used > 0) {
        gate_conn *old = oldest_looking(g);     /* the slowest sender gives way */
        if (old != NULL)
            drop(g, old);
        r = http_sources_take(g->server->sources, (const struct sockaddr *)addr, 0);
    }
    gate_conn *c = r == HTTP_SOURCE_OK ? make_room(g) : NULL;
    if (c == NULL) {
        if (r == HTTP_SOURCE_OK)
            http_sources_give(g->server->sources, (const struct sockaddr *)addr);
        close(fd);
        return;
    }
    int64_t now = http_monotonic_us();
    *c = (gate_conn){ .state = SLOT_LOOKING, .counted = 1, .fd = fd, .opened_us = now,
                      .deadline_us = now + g->header_timeout_us,
                      .addr = *addr, .addr_len = len };
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                              .data.u64 = (uint64_t)(c - g->conns) };
    if (epoll_ctl(g->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        http_sources_give(g->server->sources, (const struct sockaddr *)addr);
        c->state = SLOT_FREE;
        close(fd);
        return;
    }
    g->n_used++;
    look(g, c);                    /* the request may already be there */
}

/* Take the connections the library closed early: drain each, then close. */
static void take_lingering(http_gate *g)
{
    uint64_t n;
    (void)!read(g->linger_fd, &n, sizeof n);
    int fds[LINGER_QUEUE];
    pthread_mutex_lock(&g->linger_lock);
    unsigned count = g->n_linger;
    memcpy(fds, g->linger_queue, count * sizeof *fds);
    g->n_linger = 0;
    pthread_mutex_unlock(&g->linger_lock);
    for (unsigned i = 0; i < count; i++) {
        gate_conn *c = free_slot(g);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
        if (c == NULL) {
            close(fds[i]);
            continue;
        }
        int64_t now = http_monotonic_us();
        *c = (gate_conn){ .state = SLOT_DRAINING, .fd = fds[i], .opened_us = now,
                          .deadline_us = now + GATE_DRAIN_US };
        ev.data.u64 = (uint64_t)(c - g->conns);
        shutdown(c->fd, SHUT_WR);
        if (epoll_ctl(g->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            c->state = SLOT_FREE;
            close(fds[i]);
            continue;
        }
        g->n_used++;
        drain(g, c);
    }
}

void http_gate_linger(http_gate *g, int fd)
{
    int queued = 0;
    pthread_mutex_lock(&g->linger_lock);
    if (!g->stopping && g->n_linger < LINGER_QUEUE) {
        g->linger_queue[g->n_linger++] = fd;
        queued = 1;
    }
    pthread_mutex_unlock(&g->linger_lock);
    if (!queued) {
        close(fd);
        return;
    }
    uint64_t one = 1;
    (void)!write(g->linger_fd, &one, sizeof one);
}

static void pause_listening(http_gate *g, int paused)
{
    struct epoll_event ev = { .events = paused ? 0 : EPOLLIN, .data.u64 = EV_LISTEN };
    epoll_ctl(g->epoll_fd, EPOLL_CTL_MOD, g->listen_fd, &ev);
    g->listen_paused = paused;
}

static void accept_all(http_gate *g)
{
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&addr, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take_connection(g, fd, &addr, len);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            gate_conn *old = oldest_looking(g);
            if (old != NULL)
                drop(g, old);
            else
                pause_listening(g, 1);          /* try again at the next tick */
        }
        return;                      /* EAGAIN, or an error of that client */
    }
}

static void expire(http_gate *g)
{
    int64_t now = http_monotonic_us();
    for (unsigned i = 0; i < g->n_conns; i++) {
        gate_conn *c = &g->conns[i];
        if (c->state == SLOT_FREE || c->deadline_us > now)
            continue;
        if (c->state == SLOT_DRAINING || c->seen == 0)
            drop(g, c);          /* nothing asked, nothing to answer */
        else
            answer(g, c, 408, "timeout", "the request headers did not arrive in time");
    }
}

static void *gate_main(void *arg)
{
    http_gate *g = arg;
    struct epoll_event evs[GATE_EVENTS];
    for (;;) {
        int n = epoll_wait(g->epoll_fd, evs, GATE_EVENTS, GATE_TICK_MS);
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            if (id == EV_WAKE)
                return NULL;
            if (id == EV_LISTEN)
                accept_all(g);
            else if (id == EV_LINGER)
                take_lingering(g);
            else if (id < g->n_conns && g->conns[id].state != SLOT_FREE)
                look(g, &g->conns[id]);
        }
        expire(g);
        http_watch_expire(g->server->watch);
        if (g->listen_paused)
            pause_listening(g, 0);
    }
}

/* ---- Start and stop ---------------------------------------------------------- */

static int watch(int epoll_fd, int fd, uint64_t id)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = id };
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

int http_gate_start(http_server *s, int listen_fd, unsigned waiting_room,
                    unsigned header_timeout_s, http_gate **out, mv_err *err)
{
    http_gate *g = mv_calloc(1, sizeof *g, err);
    if (g == NULL)
        return -1;
    g->server = s;
    g->listen_fd = listen_fd;
    g->epoll_fd = g->wake_fd = g->linger_fd = -1;
    pthread_mutex_init(&g->linger_lock, NULL);
    g->n_conns = waiting_room ? waiting_room : 1;
    g->header_timeout_us = (int64_t)header_timeout_s * 1000000;
    g->conns = calloc(g->n_conns, sizeof *g->conns);
    g->peek = malloc(s->max_header + 1);
    g->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->linger_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g->conns == NULL || g->peek == NULL || g->epoll_fd < 0 || g->wake_fd < 0 ||
        g->linger_fd < 0 ||
        watch(g->epoll_fd, listen_fd, EV_LISTEN) != 0 ||
        watch(g->epoll_fd, g->wake_fd, EV_WAKE) != 0 ||
        watch(g->epoll_fd, g->linger_fd, EV_LINGER) != 0 ||
        pthread_create(&g->thread, NULL, gate_main, g) != 0) {
        int e = errno;
        g->listen_fd = -1;                      /* the caller still owns it */
        http_gate_stop(g);
        http_gate_free(g);
        return mv_fail(err, MV_E_IO, "cannot start the connection gate: %s", strerror(e));
    }
    g->started = 1;
    *out = g;
    return 0;
}

void http_gate_stop(http_gate *g)
{
    if (g == NULL)
        return;
    if (g->started) {
        uint64_t one = 1;
        (void)!write(g->wake_fd, &one, sizeof one);
        pthread_join(g->thread, NULL);
        g->started = 0;
    }
    pthread_mutex_lock(&g->linger_lock);
    g->stopping = 1;                     /* from now on lingering is closing */
    for (unsigned i = 0; i < g->n_linger; i++)
        close(g->linger_queue[i]);
    g->n_linger = 0;
    pthread_mutex_unlock(&g->linger_lock);
    for (unsigned i = 0; g->conns != NULL && i < g->n_conns; i++)
        if (g->conns[i].state != SLOT_FREE)
            drop(g, &g->conns[i]);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    g->listen_fd = -1;
}

void http_gate_free(http_gate *g)
{
    if (g == NULL)
        return;
    if (g->epoll_fd >= 0)
        close(g->epoll_fd);
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    if (g->linger_fd >= 0)
        close(g->linger_fd);
    pthread_mutex_destroy(&g->linger_lock);
    free(g->conns);
    free(g->peek);
    free(g);
}
