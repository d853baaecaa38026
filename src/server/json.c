/*
 * json.c -- reading request bodies and writing JSON answers, the same way in
 * every route: a malformed body gets one clear 4xx naming the problem (never
 * echoing the body, which may hold a password), and every error leaves as a
 * FHIR OperationOutcome.
 */
#include "server_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Writing --------------------------------------------------------------------
 * jansson writes a real with 17 significant digits, which shows the binary
 * rounding of a double (36.200000000000003) and turns a FHIR decimal into
 * another decimal.  json_dump_callback hands over the document token by
 * token -- a real as one chunk, a string's quotes as chunks of their own --
 * so each real outside a string is rewritten in the shortest %g form that
 * reads back as the same double. */

typedef struct text_out {
    mv_buf buf;
    int in_string;
    int failed;
} text_out;

static int is_real_token(const char *p, size_t n)
{
    if (n == 0 || n >= 48 || !(p[0] == '-' || isdigit((unsigned char)p[0])))
        return 0;
    return memchr(p, '.', n) || memchr(p, 'e', n) || memchr(p, 'E', n);
}

/* The shortest text of v that strtod reads back as v, keeping a '.' or an
 * exponent so that it stays a JSON real. */
static size_t shortest_real(double v, char out[48])
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15) {   /* 80 -> 80.0 */
        snprintf(out, 48, "%.1f", v);
        return strlen(out);
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, 48, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    size_t n = strlen(out);
    if (!strpbrk(out, ".eEn") && n + 2 < 48) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return n;
}

static int text_chunk(const char *p, size_t n, void *ctx)
{
    text_out *t = ctx;
    if (n == 1 && p[0] == '"') {
        t->in_string = !t->in_string;
    } else if (!t->in_string && is_real_token(p, n)) {
        char token[48], best[48];
        memcpy(token, p, n);
        token[n] = '\0';
        size_t m = shortest_real(strtod(token, NULL), best);
        t->failed |= mv_buf_append(&t->buf, best, m, NULL) != 0;
        return t->failed ? -1 : 0;
    }
    t->failed |= mv_buf_append(&t->buf, p, n, NULL) != 0;
    return t->failed ? -1 : 0;
}

char *json_text(const json_t *doc)
{
    text_out t = { .buf = {0} };
    if (doc == NULL ||
        json_dump_callback(doc, text_chunk, &t, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
        t.failed || mv_buf_append(&t.buf, "", 1, NULL) != 0) {
        mv_buf_free(&t.buf);
        return NULL;
    }
    return (char *)mv_buf_steal(&t.buf, NULL);
}

/* ---- Reading --------------------------------------------------------------------- */

static int is_json_type(const char *ct)
{
    if (ct == NULL)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 21 && strncasecmp(ct, "application/fhir+json", 21) == 0);
}

json_t *call_json_body(call *c)
{
    if (!is_json_type(http_header(c->req, "Content-Type"))) {
        call_fail(c, 415, "not-supported", "send a JSON body with Content-Type: "
                  "application/json");
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loadb((const char *)c->req->body, c->req->body_len,
                           JSON_REJECT_DUPLICATES, &je);
    if (o == NULL || !json_is_object(o)) {
        char msg[200];
        if (o == NULL)
            snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d",
                     je.line, je.column);
        else
            snprintf(msg, sizeof msg, "the body must be a JSON object");
        json_decref(o);
        call_fail(c, 400, "invalid", msg);
        return NULL;
    }
    return o;
}

const char *json_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

void call_reply_json(call *c, int status, json_t *obj)
{
    char *text = obj ? json_text(obj) : NULL;
    json_decref(obj);
    if (text == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    http_response_text(c->res, status, "application/json", text);
    free(text);
}

void call_fail(call *c, int status, const char *code, const char *diagnostics)
{
    http_outcome(c->res, status, code, diagnostics);
}

void call_internal(call *c, const mv_err *err)
{
    /* Store and auth messages name objects, never secrets or health data;
     * the client only learns the request id to quote. */
    fprintf(stderr, "medvault serve: request %s failed: %s\n", c->req->request_id,
            err ? err->msg : "unknown error");
    call_fail(c, 500, "exception", "internal error; see the server log for this "
              "request id");
}

void call_fail_err(call *c, const mv_err *err)
{
    switch (err->code) {
    case MV_E_INVALID:  call_fail(c, 400, "invalid", err->msg); return;
    case MV_E_NOTFOUND: call_fail(c, 404, "not-found", err->msg); return;
    case MV_E_EXISTS:   call_fail(c, 409, "duplicate", err->msg); return;
    case MV_E_CONFLICT: call_fail(c, 409, "conflict", err->msg); return;
    case MV_E_PERM:     call_fail(c, 403, "forbidden", err->msg); return;
    default:            call_internal(c, err); return;
    }
}

void call_reply_text(call *c, int status, const char *text)
{
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    if (doc == NULL)
        call_fail(c, 500, "exception", "a stored record could not be read");
    else
        call_reply_json(c, status, doc);
}

void call_reply_list(call *c, const char *member, char *array_text)
{
    json_t *arr = array_text ? json_loads(array_text, 0, NULL) : NULL;
    free(array_text);
    call_reply_json(c, 200, json_pack("{s:I, s:o}", "total",
                                      (json_int_t)json_array_size(arr), member,
                                      arr ? arr : json_array()));
}

int call_status_query(call *c, const char *const *allowed, const char **out)
{
    const char *status = http_query(c->req, "status");
    *out = status;
    if (status == NULL)
        return 0;
    char words[160] = "";
    for (size_t i = 0; allowed[i]; i++) {
        if (strcmp(status, allowed[i]) == 0)
            return 0;
        snprintf(words + strlen(words), sizeof words - strlen(words), "%s%s",
                 i ? (allowed[i + 1] ? ", " : " or ") : "", allowed[i]);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "status is %s", words);
    call_fail(c, 400, "invalid", msg);
    return -1;
}
