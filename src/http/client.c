/*
 * client.c -- the outgoing HTTP requests medvault makes: POSTing a JSON
 * document (an alert) to a webhook the hospital configured, and the
 * general requests of `medvault simulate --url`, which attacks a live
 * server through its own API to measure the detector end to end.
 *
 * Why here: http/ is the only place an HTTP library is used, in either
 * direction.  libcurl (GnuTLS flavour, as the server) does the protocol;
 * this file only fixes its options: POST, application/json, a hard timeout,
 * no redirects (an alert is never sent somewhere it was not configured to
 * go), certificate verification on, and (for a webhook) the answer's body
 * discarded.
 */
#include "http_internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

int http_post_json(const char *url, const char *json, unsigned timeout_ms, int *status,
                   mv_err *err)
{
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return mv_fail(err, MV_E_INVALID, "a webhook URL starts with http:// or https://");
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return mv_fail(err, MV_E_IO, "libcurl could not be initialised");
    CURL *h = curl_easy_init();
    if (h == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        return mv_fail(err, MV_E_IO, "webhook: %s", curl_easy_strerror(rc));
    if (status)
        *status = (int)code;
    return code >= 200 && code < 300 ? 0
         : mv_fail(err, MV_E_IO, "webhook answered HTTP %ld", code);
}

/* ---- General requests (http_call) --------------------------------------------------- */

typedef struct body_sink {
    mv_buf *buf;
    int failed;
} body_sink;

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    body_sink *sink = ctx;
    if (mv_buf_append(sink->buf, p, size * n, NULL) != 0) {
        sink->failed = 1;
        return 0;
    }
    return size * n;
}

/* The request's headers, or NULL when out of memory (*ok 0). */
static struct curl_slist *call_headers(const http_call_req *r, int *ok)
{
    char auth[1200];
    struct curl_slist *h = NULL, *next;
    *ok = 1;
    const char *lines[3] = { r->json ? "Content-Type: application/json" : NULL,
                             r->header, NULL };
    if (r->bearer) {
        if (snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->bearer) >=
            (int)sizeof auth) {
            *ok = 0;
            return h;
        }
        lines[2] = auth;
    }
    for (int i = 0; i < 3; i++) {
        if (lines[i] == NULL)
            continue;
        next = curl_slist_append(h, lines[i]);
        if (next == NULL) {
            *ok = 0;
            break;
        }
        h = next;
    }
    if (r->bearer)
        memset(auth, 0, sizeof auth);     /* curl keeps its own copy */
    return h;
}

static void call_options(CURL *h, const http_call_req *r, struct curl_slist *headers,
                         body_sink *sink, char *iface)
{
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (r->json) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->json);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->json));
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(r->timeout_ms ? r->timeout_ms : 30000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->cacert);
    if (iface)
        curl_easy_setopt(h, CURLOPT_INTERFACE, iface);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
}

int http_call(const http_call_req *r, int *status, mv_buf *body, mv_err *err)
{
    if (r->url == NULL || r->method == NULL ||
        (strncmp(r->url, "http://", 7) != 0 && strncmp(r->url, "https://", 8) != 0))
        return mv_fail(err, MV_E_INVALID, "a URL starts with http:// or https://");
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return mv_fail(err, MV_E_IO, "libcurl could not be initialised");
    char iface[80] = "";
    if (r->source && snprintf(iface, sizeof iface, "host!%s", r->source) >= (int)sizeof iface)
        return mv_fail(err, MV_E_INVALID, "source address too long");
    int ok;
    struct curl_slist *headers = call_headers(r, &ok);
    CURL *h = ok ? curl_easy_init() : NULL;
    if (h == NULL) {
        curl_slist_free_all(headers);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    body_sink sink = { body, 0 };
    call_options(h, r, headers, &sink, iface[0] ? iface : NULL);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    if (sink.failed)
        return mv_fail(err, MV_E_NOMEM, "out of memory for the answer");
    if (rc != CURLE_OK)
        return mv_fail(err, MV_E_IO, "%s %s: %s", r->method, r->url, curl_easy_strerror(rc));
    *status = (int)code;
    return 0;
}
