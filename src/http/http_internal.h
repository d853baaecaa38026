/*
 * http_internal.h -- what the files of src/http share and nobody else sees.
 *
 * Why this exists: the public header (http.h) must not expose the HTTP
 * library, yet the server loop, the request accessors, the response builder,
 * the access log and the TLS code all need the same two structures: the
 * running server and the state of one request in flight ("exchange").
 */
#ifndef MV_HTTP_INTERNAL_H
#define MV_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "http.h"

#define HTTP_LOG_PATH_MAX   512   /* escaped path kept for the access log  */
#define HTTP_LOG_METHOD_MAX 24
#define HTTP_LOG_ACTOR_MAX  (3 * sizeof(((http_response *)0)->actor))
#define HTTP_ADDR_TEXT_MAX  INET6_ADDRSTRLEN

/* ---- The listening address ("scheme://host:port") ----------------------- */

typedef struct http_listen {
    int https;                          /* 1 for https://, 0 for http://     */
    struct sockaddr_storage addr;       /* port in network order inside       */
    socklen_t addr_len;
    char host[HTTP_ADDR_TEXT_MAX];      /* "127.0.0.1", "::1"                 */
} http_listen;

int http_listen_parse(const char *text, http_listen *out, mv_err *err);
int http_listen_is_loopback(const http_listen *l);
/* Why binding failed, for the one-line error (errno of a trial bind). */
int http_listen_probe(const http_listen *l);

/* ---- The running server -------------------------------------------------- */

struct http_server {
    struct MHD_Daemon *daemon;
    http_handler handler;
    void *handler_ctx;
    int https;
    size_t max_body;
    size_t max_header;
    FILE *access_log;
    atomic_uint active;                 /* requests begun and not completed  */
    mv_buf tls_cert;                    /* PEM, NUL-terminated               */
    mv_buf tls_key;                     /* PEM, NUL-terminated; wiped on free */
};

/* ---- One request in flight ----------------------------------------------- */

typedef struct http_exchange {
    http_server *server;
    struct MHD_Connection *connection;
    char request_id[33];
    char source[HTTP_ADDR_TEXT_MAX];
    char log_method[HTTP_LOG_METHOD_MAX];
    char log_path[HTTP_LOG_PATH_MAX];
    int64_t started_us;                 /* CLOCK_MONOTONIC                   */
    mv_buf body;                        /* owned; at most max_body bytes     */
    size_t discarded;                   /* bytes dropped after the limit     */
    int body_too_large;
    int body_failed;                    /* out of memory while buffering     */
    int logged;                         /* the access-log line is written    */
} http_exchange;

/* request.c */
http_exchange *http_exchange_new(http_server *s, struct MHD_Connection *c,
                                 const char *method, const char *url);
void http_exchange_free(http_exchange *ex);
size_t http_request_header_bytes(struct MHD_Connection *c, const char *method,
                                 const char *url, const char *version);
int64_t http_monotonic_us(void);

/* response.c */
void http_response_init(http_response *res);
void http_response_clear(http_response *res);
/* Queue res on the exchange's connection with every mandatory header, log
 * the request, and free res's body.  Returns MHD_YES or MHD_NO. */
enum MHD_Result http_send(http_exchange *ex, http_response *res);
/* Shortcut for the errors http/ raises itself. */
enum MHD_Result http_send_outcome(http_exchange *ex, int status,
                                  const char *code, const char *diagnostics);

/* accesslog.c */
/* Copy s into out (cap bytes), percent-escaping everything that is not
 * printable ASCII so that a log line stays one line of plain tokens. */
void http_log_escape(const char *s, char *out, size_t cap);
void http_access_log(http_exchange *ex, int status, const char *actor);

/* signals.c */
/* Ignore SIGPIPE; block SIGTERM and SIGINT in the calling thread. */
void http_signals_prepare(void);

/* tls.c */
/* Read and check the PEM certificate and key (the key must be closed to
 * group and others, and the two must belong together). */
int http_tls_load(const char *cert_path, const char *key_path, mv_buf *cert,
                  mv_buf *key, mv_err *err);
void http_tls_free_key(mv_buf *key);

/* Bodies carry passwords (login) and health data (FHIR): every body buffer
 * http/ frees is wiped first, and growth never leaves an unwiped copy. */
void http_wipe_free(void *p);               /* any malloc'ed block       */
void http_body_free(mv_buf *b);             /* an mv_buf's bytes         */

#endif /* MV_HTTP_INTERNAL_H */
