/*
 * test_http_edge.c -- the HTTP edge answers hostile input instead of hanging.
 *
 * Why this exists: an independent hostile-input run found requests that got
 * no answer for 30 s or more (a 23 KB request line of 3,000 parameters,
 * Content-Length with Transfer-Encoding, two Content-Lengths, an unknown
 * Transfer-Encoding, a 2^64 chunk size, a TLS ClientHello on the plain port)
 * and a thousand half-open connections from a thousand addresses that took
 * the server away from everyone at the default open-file limit.  Each case
 * here is answered 4xx (or, when it is not HTTP, closed) at once, and the
 * verdicts of the gate's judge and the source accounting are checked
 * directly, case by case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "http/http_internal.h"
#include "testutil.h"

#define MAX_HEADER (16 * 1024)

/* ---- The judge, byte by byte ------------------------------------------------ */

static http_gate_verdict judge(const char *s)
{
    return http_gate_judge((const unsigned char *)s, strlen(s), 0, MAX_HEADER);
}

static void expect(const char *req, http_gate_action action, int status)
{
    http_gate_verdict v = judge(req);
    if (v.action != action || v.status != status)
        print_error("for %.60s: action %d status %d\n", req, v.action, v.status);
    assert_int_equal(v.action, action);
    assert_int_equal(v.status, status);
}

static char *query_of(size_t params)
{
    char *s = malloc(64 + params * 8);
    assert_non_null(s);
    size_t o = (size_t)sprintf(s, "GET /fhir/Patient?");
    for (size_t i = 0; i < params; i++)
        o += (size_t)sprintf(s + o, "%sp%zu=v", i ? "&" : "", i);
    sprintf(s + o, " HTTP/1.1\r\nHost: x\r\n\r\n");
    return s;
}

static void test_judge_verdicts(void **state)
{
    (void)state;
    expect("", HTTP_GATE_WAIT, 0);
    expect("GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_GATE_ADMIT, 0);
    expect("GET /fhir/metadata HTTP/1.1\nHost: x\n\n", HTTP_GATE_ADMIT, 0);
    expect("GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n", HTTP_GATE_WAIT, 0);
    expect("GET /fhir/meta", HTTP_GATE_WAIT, 0);
    /* Not HTTP at all: a TLS ClientHello, a NUL, a lower-case letter. */
    expect("\x16\x03\x01\x00\xa5\x01", HTTP_GATE_DROP, 0);
    expect("get / HTTP/1.1\r\n\r\n", HTTP_GATE_DROP, 0);
    assert_int_equal(http_gate_judge((const unsigned char *)"\0GET", 4, 0, MAX_HEADER).action,
                     HTTP_GATE_DROP);
    /* On a TLS port only a handshake record is let in. */
    assert_int_equal(http_gate_judge((const unsigned char *)"\x16\x03\x01", 3, 1,
                                     MAX_HEADER).action, HTTP_GATE_ADMIT);
    assert_int_equal(http_gate_judge((const unsigned char *)"GET / HTTP/1.1\r\n", 16, 1,
                                     MAX_HEADER).action, HTTP_GATE_DROP);

    /* Framing (RFC 9112 section 6). */
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
           HTTP_GATE_ADMIT, 0);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n"
           "content-length: 10\r\n\r\n", HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           "Content-Length: 6\r\n\r\n", HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           "Content-Length: 5\r\n\r\n", HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "FFFFFFFFFFFFFFFF\r\nhello\r\n", HTTP_GATE_REFUSE, 411);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n",
           HTTP_GATE_REFUSE, 411);
    /* Smuggling shapes: folded lines, whitespace before the colon. */
    expect("POST /x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
           HTTP_GATE_REFUSE, 400);
    expect("POST /x HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", HTTP_GATE_REFUSE, 400);
}

static void test_judge_sizes(void **state)
{
    (void)state;
    /* Parameters: up to the limit in, one more refused, thousands refused. */
    char *q = query_of(HTTP_MAX_QUERY_PARAMETERS);
    expect(q, HTTP_GATE_ADMIT, 0);
    free(q);
    q = query_of(HTTP_MAX_QUERY_PARAMETERS + 1);
    expect(q, HTTP_GATE_REFUSE, 414);
    free(q);
    q = query_of(3000);                         /* about 23 KB */
    expect(q, HTTP_GATE_REFUSE, 414);
    free(q);

    /* A request line longer than max_header, with or without its end. */
    size_t n = 64 * 1024;
    char *line = malloc(n + 64);
    assert_non_null(line);
    memcpy(line, "GET /fhir/Patient?a=", 20);
    memset(line + 20, 'x', n);
    line[20 + n] = '\0';
    expect(line, HTTP_GATE_REFUSE, 414);
    strcpy(line + 20 + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(line, HTTP_GATE_REFUSE, 414);

    /* A header block larger than max_header: 431, complete or not. */
    int o = sprintf(line, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(line + o, 'a', (size_t)MAX_HEADER);
    line[o + MAX_HEADER] = '\0';
    expect(line, HTTP_GATE_REFUSE, 431);
    strcpy(line + o + MAX_HEADER, "\r\n\r\n");
    expect(line, HTTP_GATE_REFUSE, 431);
    free(line);
}

/* ---- Source accounting ------------------------------------------------------- */

static struct sockaddr_storage v4(uint32_t host)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(host);
    return ss;
}

static struct sockaddr_storage v4_mapped(uint32_t host)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xff;
    uint32_t n = htonl(host);
    memcpy(a->sin6_addr.s6_addr + 12, &n, 4);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_sources_limits(void **state)
{
    (void)state;
    http_sources *t = http_sources_new(5, 2);
    assert_non_null(t);
    struct sockaddr_storage a = v4(0x7f000001), b = v4(0x7f000002);
    struct sockaddr_storage a6 = v4_mapped(0x7f000001);
    assert_int_equal(http_sources_take(t, SA(a), 0), HTTP_SOURCE_OK);
    assert_int_equal(http_sources_take(t, SA(a6), 0), HTTP_SOURCE_OK);  /* same source */
    assert_int_equal(http_sources_take(t, SA(a), 0), HTTP_SOURCE_TOO_MANY);
    assert_int_equal(http_sources_take(t, SA(b), 0), HTTP_SOURCE_OK);
    assert_int_equal(http_sources_take(t, SA(b), 0), HTTP_SOURCE_OK);
    struct sockaddr_storage c = v4(0x7f000003), d = v4(0x7f000004);
    assert_int_equal(http_sources_take(t, SA(c), 0), HTTP_SOURCE_OK);
    assert_int_equal(http_sources_take(t, SA(d), 0), HTTP_SOURCE_FULL);
    assert_int_equal(http_sources_take(t, SA(d), 1), HTTP_SOURCE_OK);  /* forced */
    assert_int_equal(http_sources_total(t), 6);
    http_sources_give(t, SA(a6));
    http_sources_give(t, SA(d));
    http_sources_give(t, SA(c));
    assert_int_equal(http_sources_total(t), 3);
    assert_int_equal(http_sources_take(t, SA(a), 0), HTTP_SOURCE_OK);
    struct sockaddr_storage never = v4(0x0a000001);
    http_sources_give(t, SA(never));                 /* never taken: no effect */
    assert_int_equal(http_sources_total(t), 4);
    http_sources_free(t);
}

/* Many addresses taken and given in a shuffled order: the table's counts
 * always match a plain array's (deletion keeps every probe chain). */
static void test_sources_match_a_reference(void **state)
{
    (void)state;
    enum { N = 700, ROUNDS = 20000 };
    http_sources *t = http_sources_new(N * 3, 3);
    assert_non_null(t);
    unsigned ref[N] = {0}, total = 0;
    uint32_t x = 12345;
    for (int r = 0; r < ROUNDS; r++) {
        x = x * 1103515245u + 12345u;
        unsigned i = (x >> 8) % N;
        struct sockaddr_storage a = v4(0x7f000000u + i * 7919u);
        if ((x >> 20) & 1) {
            http_source_result got = http_sources_take(t, SA(a), 0);
            assert_int_equal(got, ref[i] < 3 ? HTTP_SOURCE_OK : HTTP_SOURCE_TOO_MANY);
            if (got == HTTP_SOURCE_OK) {
                ref[i]++;
                total++;
            }
        } else {
            http_sources_give(t, SA(a));
            if (ref[i] > 0) {
                ref[i]--;
                total--;
            }
        }
        assert_int_equal(http_sources_total(t), total);
    }
    http_sources_free(t);
}

/* ---- A live server ------------------------------------------------------------ */

static void ok_handler(const http_request *req, http_response *res, void *ctx)
{
    (void)req;
    (void)ctx;
    http_response_text(res, 200, "application/json", "{\"ok\":true}");
}

typedef struct server {
    http_server *srv;
    int port;
    FILE *log;
} server;

static void serve_on(server *s, const char *listen, const char *cert, const char *key,
                     unsigned header_timeout_s, unsigned max_connections)
{
    s->log = tmpfile();
    http_config c = http_default_config();
    c.listen = listen;
    c.tls_cert = cert;
    c.tls_key = key;
    c.threads = 4;
    c.access_log = s->log;
    if (header_timeout_s)
        c.header_timeout_s = header_timeout_s;
    c.max_connections = max_connections;
    mv_err err = {0};
    int rc = http_server_start(&c, ok_handler, NULL, &s->srv, &s->port, &err);
    if (rc != 0)
        print_error("start: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void serve(server *s, unsigned header_timeout_s, unsigned max_connections)
{
    serve_on(s, "http://127.0.0.1:0", NULL, NULL, header_timeout_s, max_connections);
}

static void stop(server *s)
{
    http_server_stop(s->srv);
    fclose(s->log);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A connection from 127.x.y.z (from: host byte order; 0 for 127.0.0.1). */
static int dial(int port, uint32_t from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (from) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(from);
        assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

typedef struct answer {
    char text[4096];
    int closed;                      /* EOF or reset seen within the wait */
    int64_t us;                      /* until closed, or until the wait ended */
} answer;

/* Read what comes back within wait_ms; note whether the server closed. */
static answer read_answer(int fd, int wait_ms)
{
    answer a = {0};
    size_t got = 0;
    int64_t t0 = now_us(), end = t0 + (int64_t)wait_ms * 1000;
    for (;;) {
        int64_t left = end - now_us();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)(left / 1000) + 1) <= 0)
            break;
        ssize_t r = recv(fd, a.text + got, sizeof a.text - 1 - got, 0);
        if (r <= 0) {
            a.closed = 1;
            break;
        }
        got += (size_t)r;
        if (got == sizeof a.text - 1)
            break;
    }
    a.us = now_us() - t0;
    return a;
}

static answer exchange(int port, const void *bytes, size_t n, int wait_ms)
{
    int fd = dial(port, 0);
    assert_int_equal(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
    answer a = read_answer(fd, wait_ms);
    close(fd);
    return a;
}

static int status_of(const answer *a)
{
    return strncmp(a->text, "HTTP/1.1 ", 9) == 0 ? atoi(a->text + 9) : -1;
}

/* Answered with status and an OperationOutcome, and closed, within 2 s. */
static void expect_answer(int port, const char *what, const void *bytes, size_t n,
                          int status)
{
    answer a = exchange(port, bytes, n, 2000);
    if (status_of(&a) != status || !a.closed)
        print_error("%s: status %d, closed %d after %lld us: %.80s\n", what,
                    status_of(&a), a.closed, (long long)a.us, a.text);
    assert_int_equal(status_of(&a), status);
    assert_true(a.closed);
    assert_non_null(strstr(a.text, "\"resourceType\":\"OperationOutcome\""));
    assert_non_null(strstr(a.text, "Connection: close"));
}

static void expect_served(int port)
{
    static const char get[] = "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    answer a = exchange(port, get, sizeof get - 1, 5000);
    assert_int_equal(status_of(&a), 200);
}

static void test_hostile_requests_are_answered_at_once(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 0, 0);

    char *q = query_of(3000);
    expect_answer(s.port, "3,000 parameters", q, strlen(q), 414);
    free(q);

    size_t n = 64 * 1024;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int o = sprintf(big, "GET /fhir/Patient?a=");
    memset(big + o, 'x', n);
    strcpy(big + o + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_answer(s.port, "64 KB query", big, strlen(big), 414);
    free(big);

    static const char cl_te[] = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    expect_answer(s.port, "Content-Length and chunked", cl_te, sizeof cl_te - 1, 400);
    static const char two_cl[] = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                 "Content-Length: 6\r\n\r\nhello";
    expect_answer(s.port, "two Content-Lengths", two_cl, sizeof two_cl - 1, 400);
    static const char xchunked[] = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                   "xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    expect_answer(s.port, "xchunked", xchunked, sizeof xchunked - 1, 400);
    static const char huge_chunk[] = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                     "chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nhello\r\n";
    expect_answer(s.port, "2^64 chunk", huge_chunk, sizeof huge_chunk - 1, 411);

    /* A TLS ClientHello on the plain port: closed at once, nothing said. */
    static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00,
                                           0x00, 0xa1, 0x03, 0x03, 0x00 };
    answer a = exchange(s.port, hello, sizeof hello, 3000);
    assert_true(a.closed);
    assert_true(a.us < 500 * 1000);
    assert_int_equal(a.text[0], '\0');

    expect_served(s.port);
    stop(&s);
}

/* The gate judges the first request of a connection; the ones after it on
 * a kept-alive connection are judged by the same rules inside the library. */
static void test_kept_alive_requests_are_judged_too(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 0, 0);
    static const char two[] =
        "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    answer a = exchange(s.port, two, sizeof two - 1, 3000);
    assert_int_equal(status_of(&a), 200);
    assert_true(a.closed);
    assert_non_null(strstr(a.text, "HTTP/1.1 400 "));

    char *q = query_of(HTTP_MAX_QUERY_PARAMETERS + 1);
    size_t qn = strlen(q);
    char *both = malloc(qn + 64);
    assert_non_null(both);
    sprintf(both, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n%s", q);
    a = exchange(s.port, both, strlen(both), 3000);
    assert_int_equal(status_of(&a), 200);
    assert_non_null(strstr(a.text, "HTTP/1.1 414 "));
    free(both);
    free(q);
    stop(&s);
}

/* A body refused on its declared length (413 before it is read) while the
 * client goes on sending it, as curl does until it reads the answer: the
 * connection closes lingering, so the client's sends keep succeeding for a
 * while and the answer is not reset away by the bytes the server never
 * read. */
static void test_early_answer_survives_an_unread_body(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 0, 0);
    for (int round = 0; round < 3; round++) {
        int fd = dial(s.port, 0);
        static const char head[] = "POST /x HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 104857600\r\n\r\n";
        assert_int_equal(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
        usleep(200 * 1000);                  /* the 413 is sent meanwhile */
        static char chunk[64 * 1024];
        memset(chunk, 'a', sizeof chunk);
        int send_failed = 0;
        for (int i = 0; i < 16 && !send_failed; i++) {     /* 1 MB more */
            send_failed = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) < 0;
            usleep(10 * 1000);
        }
        answer a = read_answer(fd, 3000);
        close(fd);
        if (status_of(&a) != 413 || send_failed)
            print_error("round %d: send failed %d: %.80s\n", round, send_failed, a.text);
        assert_false(send_failed);
        assert_int_equal(status_of(&a), 413);
        assert_true(a.closed);
    }
    expect_served(s.port);
    stop(&s);
}

/* A client that sends its header block a byte at a time, forever: 408 at the
 * header deadline, however steadily the bytes come. */
static void test_header_deadline(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 1, 0);
    int fd = dial(s.port, 0);
    static const char start[] = "GET /ok HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(send(fd, start, sizeof start - 1, MSG_NOSIGNAL), (ssize_t)(sizeof start - 1));
    int64_t t0 = now_us();
    answer a = {0};
    for (int i = 0; i < 40 && !a.closed; i++) {
        (void)send(fd, "X", 1, MSG_NOSIGNAL);    /* a byte every 100 ms */
        a = read_answer(fd, 100);
        if (a.text[0] || a.closed)
            break;
    }
    if (!a.closed)
        a = read_answer(fd, 1000);
    int64_t took = now_us() - t0;
    close(fd);
    assert_int_equal(status_of(&a), 408);
    assert_true(took < 2500 * 1000);

    /* One that says nothing at all is closed without an answer. */
    fd = dial(s.port, 0);
    a = read_answer(fd, 3000);
    close(fd);
    assert_true(a.closed);
    assert_int_equal(a.text[0], '\0');
    expect_served(s.port);
    stop(&s);
}

/* Past the first request (which the gate reads) and inside TLS (which it
 * cannot read), the library's connections keep the same header deadline:
 * a kept-alive connection that dribbles its next request, and a TLS
 * connection that starts a handshake and goes quiet, are closed after
 * header_timeout although the idle timeout is 30 s. */
static void test_header_deadline_inside_the_library(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 1, 0);
    int fd = dial(s.port, 0);
    static const char first[] = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, first, sizeof first - 1, MSG_NOSIGNAL), (ssize_t)(sizeof first - 1));
    answer a = read_answer(fd, 300);
    assert_int_equal(status_of(&a), 200);
    assert_false(a.closed);
    int64_t t0 = now_us();
    (void)send(fd, "GET /ok HTTP/1.1\r\n", 18, MSG_NOSIGNAL);
    for (int i = 0; i < 40 && !a.closed; i++) {
        if (send(fd, "X", 1, MSG_NOSIGNAL) < 0)
            break;
        a = read_answer(fd, 100);
    }
    int64_t took = now_us() - t0;
    close(fd);
    assert_true(a.closed);
    assert_true(took < 2500 * 1000);
    stop(&s);

    char *dir = tu_mkdtemp();
    char *cert = tu_path(dir, "cert.pem"), *key = tu_path(dir, "key.pem");
    mv_err err = {0};
    assert_int_equal(http_tls_self_signed(cert, key, "127.0.0.1", &err), 0);
    serve_on(&s, "https://127.0.0.1:0", cert, key, 1, 0);
    fd = dial(s.port, 0);
    static const unsigned char hello_start[] = { 0x16, 0x03, 0x01 };
    assert_int_equal(send(fd, hello_start, sizeof hello_start, MSG_NOSIGNAL), 3);
    a = read_answer(fd, 4000);
    close(fd);
    assert_true(a.closed);
    assert_true(a.us < 2500 * 1000);
    /* Plain HTTP on the TLS port is not TLS: closed at once. */
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    a = exchange(s.port, get, sizeof get - 1, 3000);
    assert_true(a.closed);
    assert_true(a.us < 500 * 1000);
    stop(&s);
    tu_rmtree(dir);
    free(cert);
    free(key);
    free(dir);
}

/* Half-open connections from many addresses at Debian's default soft limit
 * of 1,024 open files: the server raises its limit, and everyone else is
 * still served while they are held. */
static void test_many_half_open_sources(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < 2300) {
        print_message("skipped: the hard open-file limit is %llu\n",
                      (unsigned long long)rl.rlim_max);
        skip();
    }
    struct rlimit low = { 1024, rl.rlim_max };
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    server s = {0};
    serve(&s, 0, 0);
    struct rlimit now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_int_equal(now.rlim_cur, rl.rlim_max);         /* raised at start */

    enum { HELD = 1000 };
    int *fds = malloc(HELD * sizeof *fds);
    assert_non_null(fds);
    for (int i = 0; i < HELD; i++) {
        fds[i] = dial(s.port, 0x7f000002u + (uint32_t)i * 3u);   /* 127.0.0.2 ... */
        (void)send(fds[i], "GET / HT", 8, MSG_NOSIGNAL);      /* and never more */
    }
    int64_t t0 = now_us();
    for (int i = 0; i < 5; i++)
        expect_served(s.port);
    assert_true(now_us() - t0 < 5 * 1000000LL);
    for (int i = 0; i < HELD; i++)
        close(fds[i]);
    free(fds);
    stop(&s);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* When the cap is reached by half-open connections, the one that has waited
 * longest gives way to the newcomer. */
static void test_full_waiting_room_lets_newcomers_in(void **state)
{
    (void)state;
    server s = {0};
    serve(&s, 30, 16);
    int held[16];
    for (int i = 0; i < 16; i++) {
        held[i] = dial(s.port, 0x7f000100u + (uint32_t)i);
        (void)send(held[i], "GET / HT", 8, MSG_NOSIGNAL);
    }
    usleep(100 * 1000);
    for (int i = 0; i < 3; i++)
        expect_served(s.port);
    /* The oldest half-open ones were let go (408), the newest are still held. */
    answer first = read_answer(held[0], 1000);
    assert_true(first.closed);
    answer last = read_answer(held[15], 200);
    assert_false(last.closed);
    for (int i = 0; i < 16; i++)
        close(held[i]);
    stop(&s);
}

static void test_connection_cap_below_open_file_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    http_config c = http_default_config();
    c.listen = "http://127.0.0.1:0";
    c.threads = 4;
    c.max_connections = (unsigned)(rl.rlim_max > 100000000 ? 100000000 : rl.rlim_max);
    http_server *srv = NULL;
    mv_err err = {0};
    assert_int_equal(http_server_start(&c, ok_handler, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_non_null(strstr(err.msg, "max_connections"));
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_verdicts),
        cmocka_unit_test(test_judge_sizes),
        cmocka_unit_test(test_sources_limits),
        cmocka_unit_test(test_sources_match_a_reference),
        cmocka_unit_test(test_hostile_requests_are_answered_at_once),
        cmocka_unit_test(test_kept_alive_requests_are_judged_too),
        cmocka_unit_test(test_early_answer_survives_an_unread_body),
        cmocka_unit_test(test_header_deadline),
        cmocka_unit_test(test_header_deadline_inside_the_library),
        cmocka_unit_test(test_many_half_open_sources),
        cmocka_unit_test(test_full_waiting_room_lets_newcomers_in),
        cmocka_unit_test(test_connection_cap_below_open_file_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
