/*
 * response.c -- turning what a handler filled in into an HTTP response that
 * always carries the security headers, and the OperationOutcome error body.
 *
 * Why this exists: a response without no-store or nosniff is one cached or
 * sniffed medical record away from a leak, so the mandatory headers are
 * added here, in one place, to every response; handlers can add headers but
 * cannot remove, replace or duplicate those, nor smuggle a line break into
 * one.  Error bodies are built with jansson, never by pasting strings, so a
 * diagnostic can never break the JSON.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "crypto/crypto.h"

#define DEFAULT_CONTENT_TYPE "application/json"
#define FHIR_CONTENT_TYPE    "application/fhir+json"

/* Used only when even building the JSON fails (out of memory). */
static const char OUTCOME_FALLBACK[] =
    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
    "\"error\",\"code\":\"exception\"}]}";

static const struct { const char *name, *value; } SECURITY_HEADERS[] = {
    { "Cache-Control", "no-store" },
    { "Pragma", "no-cache" },
    { "X-Content-Type-Options", "nosniff" },
    { "X-Frame-Options", "DENY" },
    { "Referrer-Policy", "no-referrer" },
    { "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'" },
};
#define HSTS_VALUE "max-age=63072000; includeSubDomains"

/* Names only http/ (or the HTTP library) may set. */
static const char *const RESERVED_HEADERS[] = {
    "Cache-Control", "Pragma", "X-Content-Type-Options", "X-Frame-Options",
    "Referrer-Policy", "Content-Security-Policy", "Strict-Transport-Security",
    "X-Request-Id", "Content-Type", "Content-Length", "Transfer-Encoding",
    "Connection", "Date", "Keep-Alive", "Upgrade",
};

/* ---- Handler-side helpers ------------------------------------------------ */

void http_response_init(http_response *res)
{
    memset(res, 0, sizeof *res);
    res->status = 200;
    snprintf(res->content_type, sizeof res->content_type, "%s",
             DEFAULT_CONTENT_TYPE);
    snprintf(res->actor, sizeof res->actor, "-");
}

void http_response_clear(http_response *res)
{
    http_body_free(&res->body);
}

/* RFC 9110 token characters. */
static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
            return 0;
    }
    return 1;
}

/* Visible ASCII, space and tab: no CR, LF or other control byte. */
static int is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c > 0x7e)
            return 0;
    }
    return 1;
}

static int is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof RESERVED_HEADERS / sizeof *RESERVED_HEADERS; i++)
        if (strcasecmp(name, RESERVED_HEADERS[i]) == 0)
            return 1;
    return 0;
}

/* A name/value pair a handler may send (length limits checked apart). */
static int is_allowed_header(const char *name, const char *value)
{
    return is_token(name) && is_field_value(value) && !is_reserved(name);
}

int http_response_header(http_response *res, const char *name,
                         const char *value)
{
    if (res == NULL || name == NULL || value == NULL ||
        res->n_headers < 0 || res->n_headers >= HTTP_MAX_EXTRA_HEADERS)
        return -1;
    if (strlen(name) >= sizeof res->header_name[0] ||
        strlen(value) >= sizeof res->header_value[0] ||
        !is_allowed_header(name, value))
        return -1;
    int i = res->n_headers++;
    snprintf(res->header_name[i], sizeof res->header_name[i], "%s", name);
    snprintf(res->header_value[i], sizeof res->header_value[i], "%s", value);
    return 0;
}

static int set_content_type(http_response *res, const char *content_type)
{
    if (content_type == NULL || content_type[0] == '\0' ||
        strlen(content_type) >= sizeof res->content_type ||
        !is_field_value(content_type))
        return -1;
    snprintf(res->content_type, sizeof res->content_type, "%s", content_type);
    return 0;
}

int http_response_text(http_response *res, int status, const char *content_type,
                       const char *text)
{
    if (res == NULL || set_content_type(res, content_type) != 0)
        return -1;
    res->status = status;
    http_body_free(&res->body);
    if (text == NULL)
        return 0;
    if (mv_buf_append(&res->body, text, strlen(text), NULL) != 0) {
        res->status = 500;
        return -1;
    }
    return 0;
}

/* {"severity":"error","code":CODE,"diagnostics":...} or NULL. */
static json_t *outcome_issue(const char *code, const char *diagnostics)
{
    json_t *issue = json_object();
    if (issue == NULL)
        return NULL;
    int bad = json_object_set_new(issue, "severity", json_string("error"));
    bad |= json_object_set_new(issue, "code", json_string(code));
    if (diagnostics != NULL) {
        json_t *diag = json_string(diagnostics);
        if (diag == NULL)      /* not UTF-8: say so rather than guess */
            diag = json_string("(diagnostics withheld: not valid UTF-8)");
        bad |= json_object_set_new(issue, "diagnostics", diag);
    }
    if (bad) {
        json_decref(issue);
        return NULL;
    }
    return issue;
}

/* {"resourceType":"OperationOutcome","issue":[ISSUE]} as a new string. */
static char *outcome_json(const char *code, const char *diagnostics)
{
    json_t *root = json_object();
    json_t *issues = json_array();
    char *text = NULL;
    if (root != NULL && issues != NULL &&
        json_array_append_new(issues, outcome_issue(code, diagnostics)) == 0 &&
        json_object_set_new(root, "resourceType",
                            json_string("OperationOutcome")) == 0 &&
        json_object_set(root, "issue", issues) == 0)
        text = json_dumps(root, JSON_COMPACT);
    json_decref(issues);
    json_decref(root);
    return text;
}

void http_outcome(http_response *res, int status, const char *code,
                  const char *diagnostics)
{
    if (res == NULL)
        return;
    if (code == NULL || !is_token(code))
        code = "exception";
    char *json = outcome_json(code, diagnostics);
    if (http_response_text(res, status, FHIR_CONTENT_TYPE,
                           json ? json : OUTCOME_FALLBACK) != 0)
        res->status = status;  /* keep the status even without a body */
    free(json);
}

/* ---- Building and queueing the MHD response ------------------------------ */

static int add_mandatory_headers(struct MHD_Response *mr, const http_exchange *ex,
                                 const char *content_type)
{
    for (size_t i = 0; i < sizeof SECURITY_HEADERS / sizeof *SECURITY_HEADERS; i++)
        if (MHD_add_response_header(mr, SECURITY_HEADERS[i].name,
                                    SECURITY_HEADERS[i].value) != MHD_YES)
            return -1;
    if (ex->server->https &&
        MHD_add_response_header(mr, "Strict-Transport-Security",
                                HSTS_VALUE) != MHD_YES)
        return -1;
    if (MHD_add_response_header(mr, "X-Request-Id", ex->request_id) != MHD_YES ||
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type) != MHD_YES)
        return -1;
    /* A request whose framing was refused: what follows it on the
     * connection cannot be trusted to start a request, so close. */
    if (ex->close_after &&
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
        return -1;
    return 0;
}

static int add_extra_headers(struct MHD_Response *mr, const http_response *res)
{
    for (int i = 0; i < res->n_headers; i++)
        if (MHD_add_response_header(mr, res->header_name[i],
                                    res->header_value[i]) != MHD_YES)
            return -1;
    return 0;
}

/* The body moves into the MHD response, which frees it once sent. */
static struct MHD_Response *take_body(mv_buf *body)
{
    size_t len;
    unsigned char *data = mv_buf_steal(body, &len);
    if (len == 0) {
        http_wipe_free(data);
        return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    struct MHD_Response *mr =
        MHD_create_response_from_buffer_with_free_callback(len, data, http_wipe_free);
    if (mr == NULL)
        http_wipe_free(data);
    return mr;
}

static struct MHD_Response *build_response(const http_exchange *ex,
                                           http_response *res)
{
    struct MHD_Response *mr = take_body(&res->body);
    if (mr == NULL)
        return NULL;
    if (add_mandatory_headers(mr, ex, res->content_type) != 0 ||
        add_extra_headers(mr, res) != 0) {
        MHD_destroy_response(mr);
        return NULL;
    }
    return mr;
}

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

/* Handlers may also fill the fields directly: check them as the helpers do. */
static int is_well_formed(const http_response *res)
{
    if (res->status < 200 || res->status > 599 ||
        !TERMINATED(res->content_type) || res->content_type[0] == '\0' ||
        !is_field_value(res->content_type) ||
        res->n_headers < 0 || res->n_headers > HTTP_MAX_EXTRA_HEADERS)
        return 0;
    for (int i = 0; i < res->n_headers; i++)
        if (!TERMINATED(res->header_name[i]) ||
            !TERMINATED(res->header_value[i]) ||
            !is_allowed_header(res->header_name[i], res->header_value[i]))
            return 0;
    return 1;
}

/* A handler bug becomes a plain 500 rather than a malformed response. */
static void sanitise(http_response *res)
{
    if (!is_well_formed(res)) {
        res->n_headers = 0;
        http_outcome(res, 500, "exception", "the request could not be answered");
    }
    if (!TERMINATED(res->actor))
        res->actor[sizeof res->actor - 1] = '\0';
}

enum MHD_Result http_send(http_exchange *ex, http_response *res)
{
    sanitise(res);
    struct MHD_Response *mr = build_response(ex, res);
    if (mr == NULL) {                  /* out of memory: an empty 500 */
        char actor[sizeof res->actor];
        memcpy(actor, res->actor, sizeof actor);
        http_response_clear(res);
        http_response_init(res);
        memcpy(res->actor, actor, sizeof actor);
        res->status = 500;
        mr = build_response(ex, res);
    }
    enum MHD_Result ok = MHD_NO;
    if (mr != NULL) {
        ok = MHD_queue_response(ex->connection, (unsigned)res->status, mr);
        MHD_destroy_response(mr);
    }
    http_access_log(ex, ok == MHD_YES ? res->status : 0, res->actor);
    http_response_clear(res);
    return ok;
}

enum MHD_Result http_send_outcome(http_exchange *ex, int status,
                                  const char *code, const char *diagnostics)
{
    http_response res;
    http_response_init(&res);
    http_outcome(&res, status, code, diagnostics);
    return http_send(ex, &res);
}

/* ---- An answer written before the library has the connection (gate.c) ---- */

static void append_text(mv_buf *b, const char *s, int *bad)
{
    if (!*bad && mv_buf_append(b, s, strlen(s), NULL) != 0)
        *bad = 1;
}

static void append_header(mv_buf *b, const char *name, const char *value, int *bad)
{
    append_text(b, name, bad);
    append_text(b, ": ", bad);
    append_text(b, value, bad);
    append_text(b, "\r\n", bad);
}

void http_raw_outcome(http_server *s, int status, const char *code,
                      const char *diagnostics, int64_t started_us,
                      mv_buf *out)
{
    http_exchange ex = { .server = s, .started_us = started_us };
    crypto_random_id(ex.request_id);
    snprintf(ex.log_method, sizeof ex.log_method, "-");
    snprintf(ex.log_path, sizeof ex.log_path, "-");
    char *json = outcome_json(code, diagnostics);
    const char *body = json ? json : OUTCOME_FALLBACK;
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    char line[96], length[32];
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status,
             reason && reason[0] ? reason : "Error");
    snprintf(length, sizeof length, "%zu", strlen(body));
    int bad = 0;
    append_text(out, line, &bad);
    for (size_t i = 0; i < sizeof SECURITY_HEADERS / sizeof *SECURITY_HEADERS; i++)
        append_header(out, SECURITY_HEADERS[i].name, SECURITY_HEADERS[i].value, &bad);
    if (s->https)
        append_header(out, "Strict-Transport-Security", HSTS_VALUE, &bad);
    append_header(out, "X-Request-Id", ex.request_id, &bad);
    append_header(out, "Content-Type", FHIR_CONTENT_TYPE, &bad);
    append_header(out, "Content-Length", length, &bad);
    append_header(out, "Connection", "close", &bad);
    append_text(out, "\r\n", &bad);
    append_text(out, body, &bad);
    free(json);
    if (bad)
        mv_buf_free(out);
    http_access_log(&ex, bad ? 0 : status, "-");
}
