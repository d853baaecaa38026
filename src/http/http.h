/*
 * http.h -- the network transport: HTTPS on libmicrohttpd with GnuTLS (and
 * plain HTTP on loopback addresses only, for tests and benchmarks).
 *
 * What this subsystem owns: the listening socket, TLS (1.2 and 1.3 only),
 * request parsing and its limits (header size, body size, connections per
 * source address, request time), the security headers every response
 * carries, a request id per request, JSON error bodies for what it rejects
 * itself, the access log, and a graceful stop.  It is the only place the
 * HTTP library (and GnuTLS) is included.
 *
 * What it must never do: know FHIR resources, SQL, accounts or access rules.
 * It hands each complete request to one handler and sends back what the
 * handler filled in.  The access log carries method, path (never the query
 * string: FHIR searches put names in it), status, duration, request id and
 * actor id: never a header value, a token, a body or a query.
 */
#ifndef MV_HTTP_H
#define MV_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "../util/util.h"

typedef struct http_server http_server;

/* A name/value pair of a request made inside the process. */
typedef struct http_pair {
    const char *name;
    const char *value;
} http_pair;

/* Headers and query of a request made inside the process rather than read
 * from a socket: a Bundle entry, or `medvault seed` driving the API's own
 * code paths.  Borrowed for the duration of the handler call. */
typedef struct http_local {
    const http_pair *headers;      /* names matched case-insensitively         */
    size_t n_headers;
    const http_pair *query;        /* already percent-decoded                  */
    size_t n_query;
} http_local;

/* A request target "path?a=1&b=2" split for a request made in-process:
 * the path and every name and value percent-decoded ('+' is a space in the
 * query).  Owns its strings; free with http_target_free(). */
typedef struct http_target {
    char *path;
    http_pair *query;
    size_t n_query;
} http_target;
/* MV_E_INVALID for a malformed escape or an embedded NUL. */
int  http_target_parse(const char *target, http_target *out, mv_err *err);
void http_target_free(http_target *t);

/* One complete request, valid for the duration of the handler call. */
typedef struct http_request {
    const char *method;            /* "GET", "POST", ...                       */
    const char *path;              /* percent-decoded, without query string    */
    const unsigned char *body;     /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
    const char *source;            /* client address, "127.0.0.1" / "::1"      */
    const char *request_id;        /* 32 hex characters, also sent back        */
    void *internal;                /* http/ only                               */
    const http_local *local;       /* a request made in-process (internal NULL) */
} http_request;

/* A request header (case-insensitive name) or NULL. */
const char *http_header(const http_request *r, const char *name);
/* The first value of a query parameter (percent-decoded) or NULL. */
const char *http_query(const http_request *r, const char *name);
/* Call fn for every query parameter in order; stops when fn returns != 0. */
typedef int (*http_query_fn)(const char *name, const char *value, void *ctx);
int http_query_each(const http_request *r, http_query_fn fn, void *ctx);

#define HTTP_MAX_EXTRA_HEADERS 8

/* What the handler fills in.  Defaults: status 200, content type
 * "application/json", empty body.  http/ adds the security headers,
 * X-Request-Id and Cache-Control: no-store to every response. */
typedef struct http_response {
    int status;
    char content_type[64];
    mv_buf body;                   /* owned; http/ frees it after sending      */
    char actor[96];                /* for the access log ("user:<id>", "-")    */
    int n_headers;
    char header_name[HTTP_MAX_EXTRA_HEADERS][40];
    char header_value[HTTP_MAX_EXTRA_HEADERS][160];
} http_response;

/* Add a response header (Location, ETag, Retry-After, WWW-Authenticate...). */
int http_response_header(http_response *res, const char *name,
                         const char *value);
/* Replace the body with text (copied). */
int http_response_text(http_response *res, int status, const char *content_type,
                       const char *text);
/* A FHIR OperationOutcome error body with one issue:
 *   {"resourceType":"OperationOutcome","issue":[{"severity":"error",
 *    "code":CODE,"diagnostics":DIAGNOSTICS}]}
 * CODE is a FHIR issue-type code ("invalid", "security", "not-found",
 * "too-costly", "throttled", "login", "exception", ...).  http/ uses it for
 * the errors it raises itself; so does everyone above it. */
void http_outcome(http_response *res, int status, const char *code,
                  const char *diagnostics);

typedef void (*http_handler)(const http_request *req, http_response *res,
                             void *ctx);

typedef struct http_config {
    const char *listen;            /* "https://127.0.0.1:8443" (default),
                                      "https://[::1]:8443", "http://127.0.0.1:0" */
    const char *tls_cert;          /* PEM paths; required for https        */
    const char *tls_key;
    size_t max_body;               /* default 8 MiB -> 413 above it         */
    size_t max_header;             /* default 16 KiB -> 431 above it        */
    unsigned max_conns_per_source; /* default 64                           */
    unsigned request_timeout_s;    /* default 30: idle connections closed  */
    unsigned header_timeout_s;     /* default 10: a request's header block
                                      must be complete by then (408)       */
    unsigned max_connections;      /* all open client connections; default
                                      8192, at most the open-file limit less
                                      what the store and threads need      */
    unsigned threads;              /* thread pool; default 16 x cores: handlers
                                      wait for durable audit entries        */
    FILE *access_log;              /* default stderr                        */
} http_config;
http_config http_default_config(void);

/* Start serving.  Refuses plain http:// on a non-loopback address
 * (MV_E_INVALID) and says on stderr when it serves plain HTTP.  *port
 * (may be NULL) receives the bound port (useful with port 0). */
int http_server_start(const http_config *cfg, http_handler handler, void *ctx,
                      http_server **out, int *port, mv_err *err);
/* Stop accepting, let in-flight requests finish, free (NULL allowed). */
void http_server_stop(http_server *s);

/* Block until SIGTERM or SIGINT (installed here, restored on return); then
 * returns the signal number.  tick, when not NULL, runs every tick_ms
 * milliseconds while waiting (periodic audit checkpoints, cleanups). */
int http_wait_for_stop(void (*tick)(void *), void *tick_ctx, unsigned tick_ms);

/* POST json to url (http:// or https://, certificates verified, no
 * redirects) within timeout_ms: a webhook.  0 when answered 2xx; else -1
 * (MV_E_IO naming the failure; *status, may be NULL, gets the HTTP status).
 * Blocks: call it off the request path. */
int http_post_json(const char *url, const char *json, unsigned timeout_ms, int *status,
                   mv_err *err);

/* One request made by a client inside medvault (`medvault simulate --url`
 * driving a live server through its API).  Borrowed for the call. */
typedef struct http_call_req {
    const char *method;            /* "GET", "POST"                              */
    const char *url;               /* http:// or https://                        */
    const char *bearer;            /* "Authorization: Bearer ..." or NULL        */
    const char *header;            /* one more "Name: value" header, or NULL     */
    const char *json;              /* request body (application/json), or NULL   */
    const char *cacert;            /* PEM to trust for https; NULL: the system's */
    const char *source;            /* local address to send from, or NULL        */
    unsigned timeout_ms;           /* 0: 30 s                                    */
} http_call_req;
/* Make the request (certificates verified, no redirects) and wait for the
 * answer: 0 with *status and the body appended to *body (owned by the
 * caller) whatever the status; -1 (MV_E_IO naming the failure) when no HTTP
 * answer came, MV_E_INVALID for a URL that is not http(s).  Blocks. */
int http_call(const http_call_req *r, int *status, mv_buf *body, mv_err *err);

/* Create a self-signed certificate and its private key (ECDSA P-256,
 * SHA-256, valid 397 days, CN and subjectAltName = each of the
 * comma-separated host names/addresses), refusing to overwrite; the key file
 * gets mode 0600. */
int http_tls_self_signed(const char *cert_path, const char *key_path,
                         const char *hosts, mv_err *err);

#endif /* MV_HTTP_H */
