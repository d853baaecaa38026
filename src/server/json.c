/*
 * json.c -- reading request bodies and writing JSON answers, the same way in
 * every route: a malformed body gets one clear 4xx naming the problem (never
 * echoing the body, which may hold a password), and every error leaves as a
 * FHIR OperationOutcome.
 */
#include "server_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
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
    default:            call_internal(c, err); return;
    }
}
