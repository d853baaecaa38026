/*
 * test_http.c -- unit tests for the network transport (src/http).
 *
 * Why this exists: the HTTP layer is the front door, and its promises are
 * about what goes over the wire: every response carries the security
 * headers and a request id, limits answer 413/431 without taking the server
 * down, plain HTTP is refused off loopback, only TLS 1.2/1.3 handshake, a
 * stop lets a request in flight finish, and the access log never holds a
 * query, a header value or a body.  So these tests start real servers on
 * port 0 and drive them with the curl command line and raw sockets, the way
 * a client would, and read the answers byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "http/http.h"
#include "testutil.h"

#define OUT_MAX (256 * 1024)

/* ---- Test handler ------------------------------------------------------------ */

static atomic_int sleep_entered;

static int collect_param(const char *name, const char *value, void *ctx)
{
    json_t *list = ctx;
    json_array_append_new(list, json_pack("[ss]", name, value));
    return 0;
}

static void echo(const http_request *req, http_response *res)
{
    json_t *params = json_array();
    http_query_each(req, collect_param, params);
    const char *x = http_query(req, "x"), *y = http_query(req, "y");
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:s, s:s, s:b}",
                          "method", req->method, "path", req->path,
                          "x", x ? json_string(x) : json_null(),
                          "y", y ? json_string(y) : json_null(),
                          "params", params,
                          "body_len", (json_int_t)req->body_len,
                          "source", req->source,
                          "request_id", req->request_id,
                          "authorized", http_header(req, "authorization") != NULL);
    char *text = json_dumps(o, JSON_COMPACT);
    http_response_text(res, 200, "application/json", text);
    free(text);
    json_decref(o);
}

static void test_handler(const http_request *req, http_response *res, void *ctx)
{
    (void)ctx;
    snprintf(res->actor, sizeof res->actor, "user:test");
    if (strcmp(req->path, "/custom") == 0) {
        http_response_text(res, 201, "text/plain; charset=utf-8", "created");
        http_response_header(res, "Location", "/Patient/p1/_history/1");
        http_response_header(res, "ETag", "W/\"1\"");
    } else if (strcmp(req->path, "/sleep") == 0) {
        atomic_store(&sleep_entered, 1);
        struct timespec ts = { 0, 300 * 1000000L };
        nanosleep(&ts, NULL);
        http_response_text(res, 200, "text/plain", "slept");
    } else if (strcmp(req->path, "/forged") == 0) {
        /* Bypassing http_response_header must not get a header through. */
        snprintf(res->header_name[0], sizeof res->header_name[0], "Cache-Control");
        snprintf(res->header_value[0], sizeof res->header_value[0], "public");
        res->n_headers = 1;
        http_response_text(res, 200, "text/plain", "cache me");
    } else if (strcmp(req->path, "/bad-status") == 0) {
        res->status = 42;
    } else if (strcmp(req->path, "/missing") == 0) {
        http_outcome(res, 404, "not-found", "no such resource");
    } else {
        echo(req, res);
    }
}

/* ---- Servers ------------------------------------------------------------------ */

typedef struct fixture {
    http_server *srv;
    int port;
    FILE *log;
} fixture;

static http_config test_config(const char *listen, FILE *log)
{
    http_config c = http_default_config();
    c.listen = listen;
    c.threads = 4;
    c.access_log = log;
    return c;
}

static void start(fixture *f, http_config *c)
{
    mv_err err = {0};
    int rc = http_server_start(c, test_handler, NULL, &f->srv, &f->port, &err);
    if (rc != 0)
        print_error("start failed: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(f->srv);
    assert_true(f->port > 0 && f->port < 65536);
}

static void start_plain(fixture *f, size_t max_body, size_t max_header)
{
    f->log = tmpfile();
    assert_non_null(f->log);
    http_config c = test_config("http://127.0.0.1:0", f->log);
    if (max_body)
        c.max_body = max_body;
    if (max_header)
        c.max_header = max_header;
    start(f, &c);
}

static void finish(fixture *f)
{
    http_server_stop(f->srv);
    f->srv = NULL;
    if (f->log)
        fclose(f->log);
    f->log = NULL;
}

/* ---- curl and response parsing -------------------------------------------------- */

static char *read_all(FILE *p)
{
    char *out = calloc(1, OUT_MAX + 1);
    assert_non_null(out);
    size_t n = 0, r;
    while (n < OUT_MAX && (r = fread(out + n, 1, OUT_MAX - n, p)) > 0)
        n += r;
    return out;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run curl (-s -i, stderr discarded); *out gets stdout; returns curl's exit. */
__attribute__((format(printf, 2, 3)))
static int curl(char **out, const char *fmt, ...)
{
    char args[4096], cmd[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "curl -s -i --max-time 20 %s 2>/dev/null", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *text = read_all(p);
    int rc = exit_code(pclose(p));
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

/* The final (non-1xx) response head, or NULL. */
static const char *final_head(const char *resp)
{
    const char *p = resp;
    while (p && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = strchr(p, ' ');
        const char *end = strstr(p, "\r\n\r\n");
        if (sp == NULL || end == NULL)
            return NULL;
        if (atoi(sp + 1) >= 200)
            return p;
        p = end + 4;
    }
    return NULL;
}

static int status_of(const char *resp)
{
    const char *h = final_head(resp);
    return h ? atoi(strchr(h, ' ') + 1) : -1;
}

static const char *body_of(const char *resp)
{
    const char *h = final_head(resp);
    return h ? strstr(h, "\r\n\r\n") + 4 : "";
}

/* The value of a header in the final head (case-insensitive name), copied. */
static int header_of(const char *resp, const char *name, char *out, size_t cap)
{
    const char *h = final_head(resp);
    if (h == NULL)
        return 0;
    const char *end = strstr(h, "\r\n\r\n");
    size_t n = strlen(name);
    for (const char *line = strstr(h, "\r\n") + 2; line < end;
         line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = (size_t)(strstr(v, "\r\n") - v);
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 1;
        }
    }
    return 0;
}

static void assert_header(const char *resp, const char *name, const char *value)
{
    char v[512];
    if (!header_of(resp, name, v, sizeof v))
        print_error("missing header %s\n", name);
    assert_true(header_of(resp, name, v, sizeof v));
    assert_string_equal(v, value);
}

static int count_headers(const char *resp, const char *name)
{
    const char *h = final_head(resp);
    const char *end = strstr(h, "\r\n\r\n");
    size_t n = strlen(name);
    int count = 0;
    for (const char *line = strstr(h, "\r\n") + 2; line < end;
         line = strstr(line, "\r\n") + 2)
        if (strncasecmp(line, name, n) == 0 && line[n] == ':')
            count++;
    return count;
}

static int is_request_id(const char *s)
{
    if (strlen(s) != 32)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

static void assert_security_headers(const char *resp, int https)
{
    char id[128];
    assert_true(header_of(resp, "X-Request-Id", id, sizeof id));
    assert_true(is_request_id(id));
    assert_header(resp, "Cache-Control", "no-store");
    assert_header(resp, "Pragma", "no-cache");
    assert_header(resp, "X-Content-Type-Options", "nosniff");
    assert_header(resp, "X-Frame-Options", "DENY");
    assert_header(resp, "Referrer-Policy", "no-referrer");
    assert_header(resp, "Content-Security-Policy",
                  "default-src 'none'; frame-ancestors 'none'");
    assert_int_equal(count_headers(resp, "Cache-Control"), 1);
    if (https)
        assert_header(resp, "Strict-Transport-Security",
                      "max-age=63072000; includeSubDomains");
    else
        assert_int_equal(count_headers(resp, "Strict-Transport-Security"), 0);
}

static json_t *json_body(const char *resp)
{
    json_error_t e;
    json_t *j = json_loads(body_of(resp), 0, &e);
    if (j == NULL)
        print_error("bad JSON body: %s\n", body_of(resp));
    assert_non_null(j);
    return j;
}

static void assert_outcome(const char *resp, int status, const char *code)
{
    assert_int_equal(status_of(resp), status);
    assert_header(resp, "Content-Type", "application/fhir+json");
    assert_security_headers(resp, 0);
    json_t *j = json_body(resp);
    assert_string_equal(json_string_value(json_object_get(j, "resourceType")),
                        "OperationOutcome");
    json_t *issue = json_array_get(json_object_get(j, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "severity")),
                        "error");
    assert_string_equal(json_string_value(json_object_get(issue, "code")), code);
    json_decref(j);
}

static void assert_still_serving(const fixture *f)
{
    char *out;
    assert_int_equal(curl(&out, "http://127.0.0.1:%d/still", f->port), 0);
    assert_int_equal(status_of(out), 200);
    free(out);
}

/* A file of n bytes of 'a' (for bodies and headers too big for argv). */
static char *filler_file(const char *dir, const char *name, const char *prefix,
                         size_t n, const char *suffix)
{
    char *path = tu_path(dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(prefix, fp);
    for (size_t i = 0; i < n; i++)
        fputc('a', fp);
    fputs(suffix, fp);
    fclose(fp);
    return path;
}

/* ---- Raw sockets ------------------------------------------------------------------ */

/* Send raw bytes, optionally close at once; returns what came back. */
static char *raw_exchange(int port, const char *bytes, size_t n, int hang_up)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 3, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
    char *out = calloc(1, 65537);
    assert_non_null(out);
    size_t got = 0;
    ssize_t r;
    while (!hang_up && got < 65536 && (r = recv(fd, out + got, 65536 - got, 0)) > 0)
        got += (size_t)r;
    close(fd);
    return out;
}

static int connect_raw(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Microseconds until the server closes fd (recv gives EOF or a reset). */
static int64_t us_until_closed(int fd)
{
    int64_t t0 = mv_now_us();
    char c;
    ssize_t r = recv(fd, &c, 1, 0);
    if (r > 0 || (r < 0 && errno != ECONNRESET))
        return INT64_MAX;                 /* data, or still open at 5 s */
    return mv_now_us() - t0;
}

/* ---- Configuration and builders (no server) ------------------------------------ */

static void test_default_config(void **state)
{
    (void)state;
    http_config c = http_default_config();
    assert_string_equal(c.listen, "https://127.0.0.1:8443");
    assert_int_equal(c.max_body, 8 * 1024 * 1024);
    assert_int_equal(c.max_header, 16 * 1024);
    assert_int_equal(c.max_conns_per_source, 64);
    assert_int_equal(c.request_timeout_s, 30);
    assert_int_equal(c.threads, 16 * sysconf(_SC_NPROCESSORS_ONLN));
    assert_ptr_equal(c.access_log, stderr);
}

static void test_outcome_is_built_as_json(void **state)
{
    (void)state;
    http_response res = { .status = 200 };
    http_outcome(&res, 422, "invalid", "bad \"field\"\nline2 \\ </script>");
    assert_int_equal(res.status, 422);
    assert_string_equal(res.content_type, "application/fhir+json");
    json_error_t e;
    json_t *j = json_loadb((const char *)res.body.data, res.body.len, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "resourceType")),
                        "OperationOutcome");
    json_t *issues = json_object_get(j, "issue");
    assert_int_equal(json_array_size(issues), 1);
    json_t *issue = json_array_get(issues, 0);
    assert_string_equal(json_string_value(json_object_get(issue, "severity")), "error");
    assert_string_equal(json_string_value(json_object_get(issue, "code")), "invalid");
    assert_string_equal(json_string_value(json_object_get(issue, "diagnostics")),
                        "bad \"field\"\nline2 \\ </script>");
    json_decref(j);

    /* Replacing the body frees the old one; bad UTF-8 is not echoed. */
    http_outcome(&res, 400, "invalid", "\xff\xfe name");
    j = json_loadb((const char *)res.body.data, res.body.len, 0, &e);
    assert_non_null(j);
    const char *diag = json_string_value(json_object_get(
        json_array_get(json_object_get(j, "issue"), 0), "diagnostics"));
    assert_non_null(diag);
    assert_null(strstr(diag, "name"));
    json_decref(j);
    mv_buf_free(&res.body);
}

static void test_response_header_rules(void **state)
{
    (void)state;
    http_response res;
    memset(&res, 0, sizeof res);
    assert_int_equal(http_response_header(&res, "Location", "/Patient/1"), 0);
    assert_int_equal(http_response_header(&res, "X-Evil", "a\r\nSet-Cookie: x=1"), -1);
    assert_int_equal(http_response_header(&res, "X-Evil", "a\nb"), -1);
    assert_int_equal(http_response_header(&res, "Bad Name", "v"), -1);
    assert_int_equal(http_response_header(&res, "Bad:Name", "v"), -1);
    assert_int_equal(http_response_header(&res, "cache-control", "public"), -1);
    assert_int_equal(http_response_header(&res, "X-Request-Id", "forged"), -1);
    assert_int_equal(http_response_header(&res, "Content-Type", "text/html"), -1);
    char long_value[200];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    assert_int_equal(http_response_header(&res, "X-Long", long_value), -1);
    assert_int_equal(res.n_headers, 1);
    for (int i = 1; i < HTTP_MAX_EXTRA_HEADERS; i++)
        assert_int_equal(http_response_header(&res, "X-N", "v"), 0);
    assert_int_equal(http_response_header(&res, "X-One-Too-Many", "v"), -1);
    assert_int_equal(res.n_headers, HTTP_MAX_EXTRA_HEADERS);
    assert_string_equal(res.header_name[0], "Location");
    assert_string_equal(res.header_value[0], "/Patient/1");
}

static void test_accessors_on_hand_made_request(void **state)
{
    (void)state;
    http_request req = { .method = "GET", .path = "/x" };
    assert_null(http_header(&req, "Authorization"));
    assert_null(http_query(&req, "x"));
    assert_int_equal(http_query_each(&req, collect_param, NULL), 0);
}

/* ---- Plain HTTP on loopback ---------------------------------------------------- */

static void test_request_id_and_security_headers(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    char *a, *b;
    assert_int_equal(curl(&a, "http://127.0.0.1:%d/hello", f.port), 0);
    assert_int_equal(curl(&b, "http://127.0.0.1:%d/hello", f.port), 0);
    assert_int_equal(status_of(a), 200);
    assert_security_headers(a, 0);
    assert_security_headers(b, 0);
    assert_header(a, "Content-Type", "application/json");
    char id_a[64], id_b[64];
    header_of(a, "X-Request-Id", id_a, sizeof id_a);
    header_of(b, "X-Request-Id", id_b, sizeof id_b);
    assert_string_not_equal(id_a, id_b);
    json_t *j = json_body(a);   /* the handler saw the same id */
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), id_a);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "127.0.0.1");
    json_decref(j);
    free(a);
    free(b);
    finish(&f);
}

static void test_path_and_query_decoding(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    char *out;
    assert_int_equal(curl(&out, "'http://127.0.0.1:%d/a%%20b?x=1%%202&y=%%C3%%A9&x=2&flag'",
                          f.port), 0);
    assert_int_equal(status_of(out), 200);
    json_t *j = json_body(out);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/a b");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "1 2");
    assert_string_equal(json_string_value(json_object_get(j, "y")), "\xc3\xa9");
    json_t *params = json_object_get(j, "params");
    assert_int_equal(json_array_size(params), 4);
    const char *expect[4][2] = { {"x", "1 2"}, {"y", "\xc3\xa9"}, {"x", "2"},
                                 {"flag", ""} };
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_array_get(params, i);
        assert_string_equal(json_string_value(json_array_get(p, 0)), expect[i][0]);
        assert_string_equal(json_string_value(json_array_get(p, 1)), expect[i][1]);
    }
    json_decref(j);
    free(out);

    /* A header is found whatever the case of its name. */
    assert_int_equal(curl(&out, "-H 'AUTHORIZATION: Bearer x' http://127.0.0.1:%d/h",
                          f.port), 0);
    j = json_body(out);
    assert_true(json_is_true(json_object_get(j, "authorized")));
    json_decref(j);
    free(out);
    finish(&f);
}

static void test_handler_status_headers_and_outcome(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    char *out;
    assert_int_equal(curl(&out, "-X POST http://127.0.0.1:%d/custom", f.port), 0);
    assert_int_equal(status_of(out), 201);
    assert_header(out, "Location", "/Patient/p1/_history/1");
    assert_header(out, "ETag", "W/\"1\"");
    assert_header(out, "Content-Type", "text/plain; charset=utf-8");
    assert_security_headers(out, 0);
    assert_string_equal(body_of(out), "created");
    free(out);
    assert_int_equal(curl(&out, "http://127.0.0.1:%d/missing", f.port), 0);
    assert_outcome(out, 404, "not-found");
    free(out);
    assert_int_equal(curl(&out, "http://127.0.0.1:%d/forged", f.port), 0);
    assert_outcome(out, 500, "exception");
    assert_null(strstr(out, "cache me"));
    free(out);
    assert_int_equal(curl(&out, "http://127.0.0.1:%d/bad-status", f.port), 0);
    assert_outcome(out, 500, "exception");
    free(out);
    finish(&f);
}

static void test_body_over_limit_is_413(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *exact = filler_file(dir, "exact", "", 1024, "");
    char *over = filler_file(dir, "over", "", 1025, "");
    char *huge = filler_file(dir, "huge", "", 4 * 1024 * 1024, "");
    fixture f = {0};
    start_plain(&f, 1024, 0);
    char *out;

    assert_int_equal(curl(&out, "--data-binary @%s http://127.0.0.1:%d/up", exact,
                          f.port), 0);
    assert_int_equal(status_of(out), 200);
    json_t *j = json_body(out);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 1024);
    json_decref(j);
    free(out);

    /* Declared length over the limit: refused before the body is read. */
    assert_int_equal(curl(&out, "--data-binary @%s http://127.0.0.1:%d/up", over,
                          f.port), 0);
    assert_outcome(out, 413, "too-costly");
    free(out);
    assert_still_serving(&f);

    /* Chunked, so no declared length: refused before any of it is read
     * (411: a chunk size can promise 2^64 bytes that never come). */
    assert_int_equal(curl(&out, "-H 'Transfer-Encoding: chunked' --data-binary @%s "
                          "http://127.0.0.1:%d/up", over, f.port), 0);
    assert_outcome(out, 411, "not-supported");
    free(out);
    assert_still_serving(&f);

    /* A large body sent without waiting for 100-continue. */
    assert_int_equal(curl(&out, "-H 'Expect:' --data-binary @%s "
                          "http://127.0.0.1:%d/up", huge, f.port), 0);
    assert_outcome(out, 413, "too-costly");
    free(out);
    assert_still_serving(&f);

    finish(&f);
    tu_rmtree(dir);
    free(exact);
    free(over);
    free(huge);
    free(dir);
}

static void test_headers_over_limit_are_431(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *big = filler_file(dir, "big", "X-Big: ", 3000, "\n");
    char *huge = filler_file(dir, "huge", "X-Huge: ", 300000, "\n");
    fixture f = {0};
    start_plain(&f, 0, 2048);
    char *out;

    char small[1200];
    memset(small, 'a', sizeof small - 1);
    small[sizeof small - 1] = '\0';
    assert_int_equal(curl(&out, "-H 'X-Small: %s' http://127.0.0.1:%d/h", small,
                          f.port), 0);
    assert_int_equal(status_of(out), 200);
    free(out);

    assert_int_equal(curl(&out, "-H @%s http://127.0.0.1:%d/h", big, f.port), 0);
    assert_outcome(out, 431, "too-costly");
    free(out);
    assert_still_serving(&f);

    /* Far beyond what the library buffers: it refuses on its own. */
    curl(&out, "-H @%s http://127.0.0.1:%d/h", huge, f.port);
    assert_true(status_of(out) != 200);
    free(out);
    assert_still_serving(&f);

    finish(&f);
    tu_rmtree(dir);
    free(big);
    free(huge);
    free(dir);
}

static void test_malformed_requests_keep_serving(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    static const char *const garbage[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                      /* no Host */
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
        free(raw_exchange(f.port, garbage[i], strlen(garbage[i]), 0));
        free(raw_exchange(f.port, garbage[i], strlen(garbage[i]), 1));
    }
    free(raw_exchange(f.port, "GET /half HT", 12, 1));
    assert_still_serving(&f);

    /* Paths that are not origin-form or decode to control bytes: 400. */
    static const char *const bad_paths[] = {
        "GET http://example.org/x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a%0Ab HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a?x=1%00admin HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a?x=1%0D%0A2 HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        char *out = raw_exchange(f.port, bad_paths[i], strlen(bad_paths[i]), 0);
        assert_int_equal(status_of(out), 400);
        free(out);
    }
    assert_still_serving(&f);
    finish(&f);
}

static void test_connection_limits(void **state)
{
    (void)state;
    fixture f = {0};
    f.log = tmpfile();
    http_config c = test_config("http://127.0.0.1:0", f.log);
    c.max_conns_per_source = 2;
    c.request_timeout_s = 1;
    c.threads = 1;
    start(&f, &c);

    int a = connect_raw(f.port), b = connect_raw(f.port);
    usleep(100 * 1000);
    int third = connect_raw(f.port);         /* one too many: closed at once */
    assert_true(us_until_closed(third) < 500 * 1000);
    close(third);
    close(a);
    close(b);
    usleep(100 * 1000);
    assert_still_serving(&f);

    /* An idle connection is closed after request_timeout_s. */
    int idle = connect_raw(f.port);
    int64_t waited = us_until_closed(idle);
    close(idle);
    assert_true(waited >= 500 * 1000 && waited < 4 * 1000000LL);
    assert_still_serving(&f);
    finish(&f);
}

static void expect_refused(const char *listen, const char *message_part)
{
    http_config c = test_config(listen, NULL);
    http_server *srv = (http_server *)(uintptr_t)1;   /* must become NULL */
    mv_err err = {0};
    int port = -1;
    assert_int_equal(http_server_start(&c, test_handler, NULL, &srv, &port, &err), -1);
    assert_null(srv);
    assert_int_equal(err.code, MV_E_INVALID);
    if (strstr(err.msg, message_part) == NULL)
        print_error("unexpected message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, message_part));
    assert_null(strchr(err.msg, '\n'));
}

static void test_plain_http_only_on_loopback(void **state)
{
    (void)state;
    const char *loopback_only = "plain HTTP is only allowed on loopback "
                                "addresses; use https://";
    expect_refused("http://0.0.0.0:0", loopback_only);
    expect_refused("http://192.0.2.1:0", loopback_only);
    expect_refused("http://[::]:0", loopback_only);
    expect_refused("http://[::ffff:127.0.0.1]:0", loopback_only);
    expect_refused("http://localhost:0", "bad listen address");
    expect_refused("ftp://127.0.0.1:0", "bad listen address");
    expect_refused("http://127.0.0.1", "bad listen address");
    expect_refused("http://127.0.0.1:65536", "bad listen address");
    expect_refused("http://127.0.0.1:-1", "bad listen address");
    expect_refused("http://[::1:0", "bad listen address");
    expect_refused("https://127.0.0.1:0", "needs a TLS certificate");

    /* Another loopback address than 127.0.0.1 is loopback too. */
    fixture f = {0};
    f.log = tmpfile();
    http_config c = test_config("http://127.0.0.2:0", f.log);
    start(&f, &c);
    finish(&f);
}

static void test_start_errors_are_one_clear_line(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    char listen[64];
    snprintf(listen, sizeof listen, "http://127.0.0.1:%d", f.port);
    http_config c = test_config(listen, NULL);
    http_server *srv = NULL;
    mv_err err = {0};
    assert_int_equal(http_server_start(&c, test_handler, NULL, &srv, NULL, &err), -1);
    assert_null(srv);
    assert_int_equal(err.code, MV_E_IO);
    assert_non_null(strstr(err.msg, strerror(EADDRINUSE)));
    finish(&f);

    c = test_config("http://127.0.0.1:0", NULL);
    c.max_header = 2 * 1024 * 1024;
    assert_int_equal(http_server_start(&c, test_handler, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(http_server_start(NULL, test_handler, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    c = test_config("http://127.0.0.1:0", NULL);
    assert_int_equal(http_server_start(&c, NULL, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_null(srv);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    fixture f = {0};
    f.log = tmpfile();
    http_config c = test_config("http://[::1]:0", f.log);
    mv_err err = {0};
    if (http_server_start(&c, test_handler, NULL, &f.srv, &f.port, &err) != 0) {
        fclose(f.log);
        if (strstr(err.msg, strerror(EADDRNOTAVAIL)) ||
            strstr(err.msg, strerror(EAFNOSUPPORT)))
            skip();
        print_error("start failed: %s\n", err.msg);
        fail();
    }
    char *out;
    assert_int_equal(curl(&out, "-g 'http://[::1]:%d/v6'", f.port), 0);
    assert_int_equal(status_of(out), 200);
    json_t *j = json_body(out);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "::1");
    json_decref(j);
    free(out);
    finish(&f);
}

/* ---- TLS ---------------------------------------------------------------------- */

static char *openssl_text(const char *cert)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "openssl x509 -in '%s' -noout -text 2>&1", cert);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *text = read_all(p);
    assert_int_equal(exit_code(pclose(p)), 0);
    return text;
}

static void test_self_signed_certificate(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *cert = tu_path(dir, "cert.pem"), *key = tu_path(dir, "key.pem");
    mv_err err = {0};
    assert_int_equal(http_tls_self_signed(cert, key, "localhost,127.0.0.1,::1",
                                          &err), 0);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    char *text = openssl_text(cert);
    assert_non_null(strstr(text, "Subject: CN = localhost"));
    assert_non_null(strstr(text, "DNS:localhost"));
    assert_non_null(strstr(text, "IP Address:127.0.0.1"));
    assert_non_null(strstr(text, "IP Address:0:0:0:0:0:0:0:1"));
    assert_non_null(strstr(text, "ecdsa-with-SHA256"));
    assert_non_null(strstr(text, "prime256v1"));
    assert_non_null(strstr(text, "CA:FALSE"));
    free(text);

    /* Never overwrite: neither file changes, whichever one exists. */
    mv_buf before = {0}, after = {0};
    assert_int_equal(mv_file_read(key, 65536, &before, &err), 0);
    assert_int_equal(http_tls_self_signed(cert, key, "localhost", &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    char *key2 = tu_path(dir, "key2.pem");
    assert_int_equal(http_tls_self_signed(cert, key2, "localhost", &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    assert_int_equal(access(key2, F_OK), -1);
    assert_int_equal(mv_file_read(key, 65536, &after, &err), 0);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    mv_buf_free(&before);
    mv_buf_free(&after);

    char *cert3 = tu_path(dir, "cert3.pem");
    assert_int_equal(http_tls_self_signed(cert3, key2, "bad host!", &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(access(key2, F_OK), -1);
    assert_int_equal(access(cert3, F_OK), -1);

    tu_rmtree(dir);
    free(cert);
    free(key);
    free(key2);
    free(cert3);
    free(dir);
}

typedef struct tls_fixture {
    fixture f;
    char *dir, *cert, *key;
} tls_fixture;

static void start_https(tls_fixture *t)
{
    memset(t, 0, sizeof *t);
    t->dir = tu_mkdtemp();
    t->cert = tu_path(t->dir, "cert.pem");
    t->key = tu_path(t->dir, "key.pem");
    mv_err err = {0};
    assert_int_equal(http_tls_self_signed(t->cert, t->key,
                                          "localhost,127.0.0.1,::1", &err), 0);
    t->f.log = tmpfile();
    http_config c = test_config("https://127.0.0.1:0", t->f.log);
    c.tls_cert = t->cert;
    c.tls_key = t->key;
    start(&t->f, &c);
}

static void finish_https(tls_fixture *t)
{
    finish(&t->f);
    tu_rmtree(t->dir);
    free(t->cert);
    free(t->key);
    free(t->dir);
}

static void test_https_serves_tls12_and_13_only(void **state)
{
    (void)state;
    tls_fixture t;
    start_https(&t);
    char *out;
    assert_int_equal(curl(&out, "--cacert %s https://127.0.0.1:%d/tls", t.cert,
                          t.f.port), 0);
    assert_int_equal(status_of(out), 200);
    assert_security_headers(out, 1);
    free(out);

    /* The certificate is checked: without it curl refuses (60). */
    assert_int_equal(curl(NULL, "https://127.0.0.1:%d/tls", t.f.port), 60);
    assert_int_equal(curl(NULL, "--cacert %s --tlsv1.2 --tls-max 1.2 "
                          "https://127.0.0.1:%d/tls", t.cert, t.f.port), 0);
    assert_int_equal(curl(NULL, "--cacert %s --tlsv1.3 "
                          "https://127.0.0.1:%d/tls", t.cert, t.f.port), 0);
    /* SECLEVEL=0 so that the client really offers TLS 1.1: the refusal
     * must come from the server. */
    assert_int_equal(curl(NULL, "--cacert %s --tlsv1.1 --tls-max 1.1 "
                          "--ciphers 'DEFAULT@SECLEVEL=0' "
                          "https://127.0.0.1:%d/tls", t.cert, t.f.port), 35);
    assert_int_equal(curl(NULL, "--cacert %s --tlsv1 --tls-max 1.0 "
                          "--ciphers 'DEFAULT@SECLEVEL=0' "
                          "https://127.0.0.1:%d/tls", t.cert, t.f.port), 35);
    /* Plain HTTP to the TLS port gets nothing useful. */
    char *plain;
    curl(&plain, "http://127.0.0.1:%d/tls", t.f.port);
    assert_int_not_equal(status_of(plain), 200);
    free(plain);
    assert_int_equal(curl(NULL, "--cacert %s https://127.0.0.1:%d/tls", t.cert,
                          t.f.port), 0);
    finish_https(&t);
}

static void test_https_key_checks(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *cert = tu_path(dir, "c.pem"), *key = tu_path(dir, "k.pem");
    char *cert2 = tu_path(dir, "c2.pem"), *key2 = tu_path(dir, "k2.pem");
    mv_err err = {0};
    assert_int_equal(http_tls_self_signed(cert, key, "localhost", &err), 0);
    assert_int_equal(http_tls_self_signed(cert2, key2, "localhost", &err), 0);
    http_config c = test_config("https://127.0.0.1:0", NULL);
    http_server *srv = NULL;

    c.tls_cert = cert;
    c.tls_key = key2;                  /* not this certificate's key */
    assert_int_equal(http_server_start(&c, test_handler, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_null(srv);

    c.tls_key = key;
    assert_int_equal(chmod(key, 0640), 0);
    assert_int_equal(http_server_start(&c, test_handler, NULL, &srv, NULL, &err), -1);
    assert_int_equal(err.code, MV_E_PERM);
    assert_null(srv);
    assert_null(strstr(err.msg, "PRIVATE KEY"));

    tu_rmtree(dir);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
    free(dir);
}

/* ---- Stop, log, signals ------------------------------------------------------------ */

static void test_graceful_stop_finishes_in_flight(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 0, 0);
    atomic_store(&sleep_entered, 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -s -i --max-time 20 "
             "http://127.0.0.1:%d/sleep 2>/dev/null", f.port);
    FILE *bg = popen(cmd, "r");
    assert_non_null(bg);
    for (int i = 0; i < 1000 && !atomic_load(&sleep_entered); i++)
        usleep(5000);
    assert_true(atomic_load(&sleep_entered));
    int port = f.port;
    int64_t t0 = mv_now_us();
    finish(&f);                          /* while the handler sleeps */
    /* It waited for the request, not for the 10 s deadline. */
    assert_true(mv_now_us() - t0 < 5 * 1000000LL);
    char *out = read_all(bg);
    assert_int_equal(exit_code(pclose(bg)), 0);
    assert_int_equal(status_of(out), 200);
    assert_string_equal(body_of(out), "slept");
    free(out);
    /* Stopped means stopped. */
    assert_int_equal(curl(NULL, "http://127.0.0.1:%d/after", port), 7);
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

static void test_stop_releases_sockets(void **state)
{
    (void)state;
    fixture f = {0};
    f.log = tmpfile();
    int before = open_fds();
    for (int i = 0; i < 5; i++) {
        http_config c = test_config("http://127.0.0.1:0", f.log);
        start(&f, &c);
        assert_still_serving(&f);
        http_server_stop(f.srv);
        assert_int_equal(open_fds(), before);
    }
    http_server_stop(NULL);
    fclose(f.log);
}

static size_t read_lines(FILE *fp, char lines[][1024], size_t max)
{
    rewind(fp);
    size_t n = 0;
    while (n < max && fgets(lines[n], 1024, fp) != NULL)
        n++;
    return n;
}

static void test_access_log_one_line_no_secrets(void **state)
{
    (void)state;
    fixture f = {0};
    start_plain(&f, 64, 0);
    FILE *log = f.log;
    f.log = NULL;                        /* kept open after the stop */
    char *out, id[64];
    assert_int_equal(curl(&out, "-H 'Authorization: Bearer SECRETTOKEN' "
                          "-H 'X-Other: SECRETHEADER' "
                          "'http://127.0.0.1:%d/log/a?name=SECRETNAME'", f.port), 0);
    header_of(out, "X-Request-Id", id, sizeof id);
    free(out);
    assert_int_equal(curl(NULL, "--data-binary SECRETBODY "
                          "http://127.0.0.1:%d/log/b", f.port), 0);
    assert_int_equal(curl(NULL, "--data-binary %0100d http://127.0.0.1:%d/log/c",
                          0, f.port), 0);
    assert_int_equal(curl(NULL, "'http://127.0.0.1:%d/log/%%0D%%0Afake%%20line'",
                          f.port), 0);
    assert_int_equal(curl(NULL, "http://127.0.0.1:%d/missing", f.port), 0);
    finish(&f);

    char lines[16][1024];
    size_t n = read_lines(log, lines, 16);
    fclose(log);
    assert_int_equal(n, 5);
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                             "[0-9]{2}\\.[0-9]{6}Z [A-Z]+ /[^ ]* [0-9]{3} "
                             "[0-9]+\\.[0-9]ms req=[0-9a-f]{32} actor=[^ ]+\n$",
                             REG_EXTENDED | REG_NOSUB), 0);
    for (size_t i = 0; i < n; i++) {
        if (regexec(&re, lines[i], 0, NULL, 0) != 0)
            print_error("bad log line: %s", lines[i]);
        assert_int_equal(regexec(&re, lines[i], 0, NULL, 0), 0);
        assert_null(strstr(lines[i], "SECRET"));
        assert_null(strstr(lines[i], "name="));
    }
    regfree(&re);
    assert_non_null(strstr(lines[0], " GET /log/a 200 "));
    assert_non_null(strstr(lines[0], id));
    assert_non_null(strstr(lines[0], "actor=user:test"));
    assert_non_null(strstr(lines[1], " POST /log/b 200 "));
    assert_non_null(strstr(lines[2], " POST /log/c 413 "));
    assert_non_null(strstr(lines[2], "actor=-"));
    assert_non_null(strstr(lines[3], " 400 "));
    assert_non_null(strstr(lines[3], "%0D%0Afake%20line"));
    assert_non_null(strstr(lines[4], " GET /missing 404 "));
}

static atomic_int ticks;

static void count_tick(void *ctx)
{
    assert_ptr_equal(ctx, &ticks);
    atomic_fetch_add(&ticks, 1);
}

static void *signal_later(void *arg)
{
    usleep(100 * 1000);
    kill(getpid(), *(int *)arg);       /* process-directed, as from outside */
    return NULL;
}

/* As http.h's users must: block the stop signals before any other thread
 * exists (http_server_start does it for the server's own threads). */
static void block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

static void test_wait_for_stop(void **state)
{
    (void)state;
    block_stop_signals();
    int sig = SIGTERM;
    pthread_t th;
    atomic_store(&ticks, 0);
    assert_int_equal(pthread_create(&th, NULL, signal_later, &sig), 0);
    assert_int_equal(http_wait_for_stop(count_tick, &ticks, 20), SIGTERM);
    pthread_join(th, NULL);
    assert_true(atomic_load(&ticks) >= 2);

    sig = SIGINT;
    assert_int_equal(pthread_create(&th, NULL, signal_later, &sig), 0);
    assert_int_equal(http_wait_for_stop(NULL, NULL, 0), SIGINT);
    pthread_join(th, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_outcome_is_built_as_json),
        cmocka_unit_test(test_response_header_rules),
        cmocka_unit_test(test_accessors_on_hand_made_request),
        cmocka_unit_test(test_request_id_and_security_headers),
        cmocka_unit_test(test_path_and_query_decoding),
        cmocka_unit_test(test_handler_status_headers_and_outcome),
        cmocka_unit_test(test_body_over_limit_is_413),
        cmocka_unit_test(test_headers_over_limit_are_431),
        cmocka_unit_test(test_malformed_requests_keep_serving),
        cmocka_unit_test(test_connection_limits),
        cmocka_unit_test(test_plain_http_only_on_loopback),
        cmocka_unit_test(test_start_errors_are_one_clear_line),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_self_signed_certificate),
        cmocka_unit_test(test_https_serves_tls12_and_13_only),
        cmocka_unit_test(test_https_key_checks),
        cmocka_unit_test(test_graceful_stop_finishes_in_flight),
        cmocka_unit_test(test_stop_releases_sockets),
        cmocka_unit_test(test_access_log_one_line_no_secrets),
        cmocka_unit_test(test_wait_for_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
