/*
 * test_notify.c -- the syslog line every alert leaves the server as
 * (src/server/notify.c), and the notifier that sends it.
 *
 * Why this exists: a hospital's SIEM parses these lines with an RFC 5424
 * parser; one unescaped quote or bracket in a structured-data value, or a
 * newline in the message, and the alert is misread or split in two --
 * possibly by an attacker who chose the text that ends up in the line.  Each
 * case builds an alert document as the server stores it and checks the line
 * field by field: PRI (facility authpriv, severity from the response taken),
 * VERSION 1, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, the structured
 * data with its escaping of '"', '\' and ']', and a message without line
 * breaks.  The last cases run the notifier itself against a UDP socket and
 * a log file: every queued alert is delivered, also when it stops at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server_internal.h"

#define LINE_MAX_BYTES 2048

/* An alert document with the fields notify.c reads; NULL leaves one out. */
static char *alert_doc(const char *id, const char *time, const char *actor,
                       const char *username, const char *source, const char *response,
                       const char *explanation, json_t *detectors, double score)
{
    json_t *o = json_object();
    if (id)
        json_object_set_new(o, "id", json_string(id));
    if (time)
        json_object_set_new(o, "time", json_string(time));
    if (actor)
        json_object_set_new(o, "actor", json_string(actor));
    if (username)
        json_object_set_new(o, "actor_username", json_string(username));
    if (source)
        json_object_set_new(o, "source", json_string(source));
    if (response)
        json_object_set_new(o, "response", json_string(response));
    if (explanation)
        json_object_set_new(o, "explanation", json_string(explanation));
    json_object_set_new(o, "detectors", detectors ? detectors : json_array());
    json_object_set_new(o, "score", json_real(score));
    json_object_set_new(o, "status", json_string("open"));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(text);
    return text;
}

static json_t *names(const char *a, const char *b)
{
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(a));
    if (b)
        json_array_append_new(arr, json_string(b));
    return arr;
}

/* notify_syslog_line into a fresh buffer; the test fails if it refuses. */
static void line_of(const char *doc, char out[LINE_MAX_BYTES])
{
    assert_int_equal(notify_syslog_line(doc, out, LINE_MAX_BYTES), 0);
}

static void my_host(char host[256])
{
    memset(host, 0, 256);
    if (gethostname(host, 63) != 0 || host[0] == '\0')
        strcpy(host, "-");
}

/* ---- the format --------------------------------------------------------------- */

static void test_whole_line(void **state)
{
    (void)state;
    char *doc = alert_doc("3f2a9c", "2026-11-28T10:00:00.123456Z", "acct-77", "drwho",
                          "10.1.2.3", "contain", "drwho: 9 patients without care "
                          "relationship in the last hour; response: contain",
                          names("relationship", "model"), 95.4);
    char line[LINE_MAX_BYTES], host[256], want[LINE_MAX_BYTES];
    line_of(doc, line);
    my_host(host);
    snprintf(want, sizeof want,
             "<81>1 2026-11-28T10:00:00.123456Z %s medvault %ld alert "
             "[medvault@32473 id=\"3f2a9c\" actor=\"drwho\" source=\"10.1.2.3\" "
             "detectors=\"relationship,model\" score=\"95\" response=\"contain\"] "
             "drwho: 9 patients without care relationship in the last hour; "
             "response: contain", host, (long)getpid());
    assert_string_equal(line, want);
    free(doc);
}

/* PRI = facility (authpriv, 10) x 8 + severity: contain is "alert" (1), a
 * withheld answer (step-up, throttle) "critical" (2), an alert alone
 * "warning" (4). */
static void test_priority_follows_the_response(void **state)
{
    (void)state;
    static const struct { const char *response; const char *pri; } cases[] = {
        { "contain", "<81>1 " }, { "throttle", "<82>1 " }, { "step-up", "<82>1 " },
        { "alert", "<84>1 " },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *doc = alert_doc("a1", "2026-01-01T00:00:00Z", "acct", NULL, "::1",
                              cases[i].response, "x", names("volume", NULL), 50);
        char line[LINE_MAX_BYTES];
        line_of(doc, line);
        if (strncmp(line, cases[i].pri, strlen(cases[i].pri)) != 0)
            fail_msg("%s: %s", cases[i].response, line);
        free(doc);
    }
}

/* Without a username (a failed login: nobody authenticated), the account
 * reference names the actor; without a time, the NILVALUE "-" keeps the
 * header's shape. */
static void test_actor_fallback_and_nil_time(void **state)
{
    (void)state;
    char *doc = alert_doc("a2", NULL, "acct-9", NULL, "127.0.0.1", "alert", "x",
                          names("authentication", NULL), 45);
    char line[LINE_MAX_BYTES], host[256], want[LINE_MAX_BYTES];
    line_of(doc, line);
    my_host(host);
    snprintf(want, sizeof want, "<84>1 - %s medvault %ld alert [medvault@32473 id=\"a2\" "
             "actor=\"acct-9\" ", host, (long)getpid());
    assert_memory_equal(line, want, strlen(want));
    free(doc);
}

/* RFC 5424 6.3.3: inside PARAM-VALUE, '"', '\' and ']' are escaped with a
 * backslash; nothing else is.  A line break inside a value or the message
 * would split the record: it becomes a space. */
static void test_structured_data_escaping(void **state)
{
    (void)state;
    char *doc = alert_doc("id\"]x", "2026-01-01T00:00:00Z", "acct", "ev\"il\\na]me",
                          "10.0.0.1\n<13>1 forged", "alert",
                          "first line\nsecond \"quoted\" [line]\r\nthird",
                          names("vol\"ume]", "a\\b"), 45);
    char line[LINE_MAX_BYTES];
    line_of(doc, line);
    assert_non_null(strstr(line, " id=\"id\\\"\\]x\" "));
    assert_non_null(strstr(line, " actor=\"ev\\\"il\\\\na\\]me\" "));
    assert_non_null(strstr(line, " source=\"10.0.0.1 <13>1 forged\" "));
    assert_non_null(strstr(line, " detectors=\"vol\\\"ume\\],a\\\\b\" "));
    /* the message is free text: kept as it is, but on one line */
    const char *msg = strstr(line, "response=\"alert\"] ");
    assert_non_null(msg);
    assert_string_equal(msg + strlen("response=\"alert\"] "),
                        "first line second \"quoted\" [line]  third");
    assert_null(strchr(line, '\n'));
    assert_null(strchr(line, '\r'));
    free(doc);
}

/* The structured data ends at the first unescaped ']': walk it as a parser
 * would and check that it ends exactly before the message. */
static void test_structured_data_parses_back(void **state)
{
    (void)state;
    char *doc = alert_doc("z9", "2026-01-01T00:00:00Z", "acct", "]]\\\"", "x]y", "alert",
                          "the end", names("]", NULL), 10);
    char line[LINE_MAX_BYTES];
    line_of(doc, line);
    const char *p = strchr(line, '[');
    assert_non_null(p);
    int in_value = 0;
    for (p++; *p; p++) {
        if (*p == '\\' && in_value) {
            p++;
            assert_true(*p == '"' || *p == '\\' || *p == ']');
        } else if (*p == '"') {
            in_value = !in_value;
        } else if (*p == ']' && !in_value) {
            break;
        }
    }
    assert_string_equal(p, "] the end");
    free(doc);
}

static void test_refusals(void **state)
{
    (void)state;
    char line[LINE_MAX_BYTES];
    assert_int_equal(notify_syslog_line("not json", line, sizeof line), -1);
    char *doc = alert_doc("a3", "2026-01-01T00:00:00Z", "acct", NULL, "::1", "alert",
                          "an explanation", names("volume", NULL), 45);
    assert_int_equal(notify_syslog_line(doc, line, 40), -1);    /* does not fit */
    free(doc);
}

/* ---- the notifier -------------------------------------------------------------- */

/* A UDP socket on 127.0.0.1, its port in *port. */
static int udp_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void receive(int fd, char *buf, size_t cap)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
}

/* Every queued alert goes out, in order, even when the notifier is stopped
 * right after: to the log (one line each) and as one datagram each. */
static void test_notifier_delivers_and_drains(void **state)
{
    (void)state;
    int port, fd = udp_listener(&port);
    char target[64];
    snprintf(target, sizeof target, "udp://127.0.0.1:%d", port);
    FILE *log = tmpfile();
    assert_non_null(log);
    notifier *nt = NULL;
    mv_err err;
    assert_int_equal(notifier_start(target, NULL, log, &nt, &err), 0);
    char *docs[3], want[3][LINE_MAX_BYTES];
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "alert-%d", i);
        docs[i] = alert_doc(id, "2026-01-01T00:00:00Z", "acct", "who", "::1", "alert",
                            "x", names("volume", NULL), 45);
        line_of(docs[i], want[i]);
        notifier_send(nt, docs[i]);
    }
    notifier_stop(nt);
    char got[LINE_MAX_BYTES];
    for (int i = 0; i < 3; i++) {
        receive(fd, got, sizeof got);
        assert_string_equal(got, want[i]);
    }
    rewind(log);
    for (int i = 0; i < 3; i++) {
        assert_non_null(fgets(got, sizeof got, log));
        got[strcspn(got, "\n")] = '\0';
        assert_string_equal(got, want[i]);
        free(docs[i]);
    }
    fclose(log);
    close(fd);
}

static void test_notifier_refuses_bad_targets(void **state)
{
    (void)state;
    static const char *const bad[] = { "tcp://127.0.0.1:514", "udp://127.0.0.1",
                                       "udp://:514", "udp://host:", "127.0.0.1:514" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        notifier *nt = NULL;
        mv_err err;
        if (notifier_start(bad[i], NULL, stderr, &nt, &err) == 0) {
            notifier_stop(nt);
            fail_msg("accepted %s", bad[i]);
        }
        assert_int_equal(err.code, MV_E_INVALID);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_line),
        cmocka_unit_test(test_priority_follows_the_response),
        cmocka_unit_test(test_actor_fallback_and_nil_time),
        cmocka_unit_test(test_structured_data_escaping),
        cmocka_unit_test(test_structured_data_parses_back),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_notifier_delivers_and_drains),
        cmocka_unit_test(test_notifier_refuses_bad_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
