/*
 * client.c -- the one outgoing HTTP request medvault makes: POSTing a JSON
 * document (an alert) to a webhook the hospital configured.
 *
 * Why here: http/ is the only place an HTTP library is used, in either
 * direction.  libcurl (GnuTLS flavour, as the server) does the protocol;
 * this file only fixes its options: POST, application/json, a hard timeout,
 * no redirects (an alert is never sent somewhere it was not configured to
 * go), certificate verification on, and the answer's body discarded.
 */
#include "http_internal.h"

#include <curl/curl.h>
#include <pthread.h>
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
