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
/* A non-blocking listening socket bound to l (text: as configured, for the
 * error), or -1 (MV_E_IO naming why). */
int http_listen_open(const http_listen *l, const char *text, mv_err *err);

/* ---- Sources: open connections per client address and in all (gate.c) --- */

typedef struct http_sources http_sources;
typedef enum http_source_result {
    HTTP_SOURCE_OK,
    HTTP_SOURCE_TOO_MANY,               /* that address is at its limit      */
    HTTP_SOURCE_FULL,                   /* the server is at its global cap   */
} http_source_result;
http_sources *http_sources_new(unsigned max_total, unsigned max_per_source);
void http_sources_free(http_sources *t);
/* Count one more connection from sa; forced counts it whatever the limits
 * (one the library has already taken). */
http_source_result http_sources_take(http_sources *t, const struct sockaddr *sa,
                                     int forced);
void http_sources_give(http_sources *t, const struct sockaddr *sa);
unsigned http_sources_total(http_sources *t);

/* ---- The gate: what arrives is judged before the library sees it -------- */

/* More query parameters than a FHIR search needs by far; the library's
 * connection pool is spent at about 1,200 (64 bytes each). */
#define HTTP_MAX_QUERY_PARAMETERS 256

typedef enum http_gate_action {
    HTTP_GATE_WAIT,                     /* not enough bytes yet              */
    HTTP_GATE_ADMIT,                    /* hand it to the library            */
    HTTP_GATE_DROP,                     /* not HTTP (or not TLS): close      */
    HTTP_GATE_REFUSE,                   /* answer status, then close         */
} http_gate_action;

typedef struct http_gate_verdict {
    http_gate_action action;
    int status;                         /* HTTP_GATE_REFUSE only             */
    const char *code;                   /* OperationOutcome issue code       */
    const char *why;                    /* its diagnostics                   */
} http_gate_verdict;

/* What a request's header fields say about the length of its body. */
typedef struct http_framing {
    unsigned content_lengths, transfer_encodings;
    int bad_content_length;             /* not one decimal number            */
    int chunked;                        /* the (last) coding is exactly it   */
} http_framing;
void http_framing_add(http_framing *f, const char *name, size_t name_len,
                      const char *value, size_t value_len);
/* ADMIT, or REFUSE for framing that is ambiguous or not supported:
 * Content-Length with Transfer-Encoding, repeated or malformed
 * Content-Length (400), a coding other than chunked (400), chunked (411). */
http_gate_verdict http_gate_framing(const http_framing *f);

/* Judge the first n bytes a client sent (peeked, not consumed). */
http_gate_verdict http_gate_judge(const unsigned char *buf, size_t n, int https,
                                  size_t max_header);

/* ---- The header deadline inside the library (watch.c) -------------------- */

typedef struct http_watch http_watch;
typedef struct http_watched http_watched;
http_watch *http_watch_new(unsigned header_timeout_s);
void http_watch_free(http_watch *w);
/* A connection the library took (its socket), until http_watch_remove,
 * which must come before the socket is closed.  NULL when out of memory. */
http_watched *http_watch_add(http_watch *w, int fd);
void http_watch_remove(http_watch *w, http_watched *e);
/* begun: its headers are complete (the clock stops); else: answered (the
 * clock restarts for the next request). */
void http_watch_request(http_watch *w, http_watched *e, int begun);
/* The answer left before the request's body was read. */
void http_watch_answered_early(http_watch *w, http_watched *e);
/* 1 when the connection should close lingering: answered early, or bytes
 * are still unread in its socket. */
int http_watch_needs_linger(http_watch *w, http_watched *e);
/* Shut down every socket that has waited for headers past the deadline. */
void http_watch_expire(http_watch *w);

typedef struct http_gate http_gate;
/* Serve listen_fd (owned from now on) with a waiting room of that many
 * connections and the header deadline; s->daemon and s->sources are set. */
int http_gate_start(http_server *s, int listen_fd, unsigned waiting_room,
                    unsigned header_timeout_s, http_gate **out, mv_err *err);
/* Stop accepting, close the waiting room and the listening socket; from
 * then on http_gate_linger only closes.  Free once the library stopped. */
void http_gate_stop(http_gate *g);
void http_gate_free(http_gate *g);
/* The library is closing fd's connection while its client may still be
 * sending: fd (a dup, owned from now on) is drained, then closed.  Any
 * thread. */
void http_gate_linger(http_gate *g, int fd);

/* ---- The running server -------------------------------------------------- */

struct http_server {
    struct MHD_Daemon *daemon;
    http_handler handler;
    void *handler_ctx;
    int https;
    size_t max_body;
    size_t max_header;
    unsigned max_connections;           /* gate and library together         */
    FILE *access_log;
    atomic_uint active;                 /* requests begun and not completed  */
    http_sources *sources;              /* open connections, gate's and MHD's */
    http_gate *gate;                    /* owns the listening socket         */
    http_watch *watch;                  /* the library's connections         */
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
    int close_after;                    /* answer with Connection: close     */
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
/* The complete bytes of an OperationOutcome answer with Connection: close,
 * for the gate, which answers before the library has the connection; logs
 * the access line.  out is left empty when memory runs out. */
void http_raw_outcome(http_server *s, int status, const char *code,
                      const char *diagnostics, int64_t started_us, mv_buf *out);

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
