/*
 * accesslog.c -- one line per request: time, method, path, status,
 * duration, request id, actor.
 *
 * Why this exists: operators need to see who asked for what and when, but
 * the access log is read by many more people than the audit trail, so it
 * carries nothing that could be health data or a credential: never the
 * query string (FHIR searches put names in it), a header, a token or a body.
 * Everything that comes from the client is escaped so one request is always
 * exactly one line of space-separated fields, whatever bytes it contained.
 */
#include "http_internal.h"

#include <string.h>

void http_log_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char ellipsis[] = "...";
    size_t o = 0;
    if (cap < sizeof ellipsis + 3) {
        if (cap > 0)
            out[0] = '\0';
        return;
    }
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = c > 0x20 && c < 0x7f && c != '%';
        size_t need = plain ? 1 : 3;
        if (o + need + sizeof ellipsis > cap) {
            memcpy(out + o, ellipsis, sizeof ellipsis);   /* with its NUL */
            return;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

void http_access_log(http_exchange *ex, int status, const char *actor)
{
    if (ex->logged)
        return;
    ex->logged = 1;
    FILE *log = ex->server->access_log;
    if (log == NULL)
        return;
    char when[MV_TIME_STR_MAX];
    mv_time_format(mv_now_us(), when);
    double ms = (double)(http_monotonic_us() - ex->started_us) / 1000.0;
    char who[HTTP_LOG_ACTOR_MAX];
    http_log_escape(actor && actor[0] ? actor : "-", who, sizeof who);
    flockfile(log);
    fprintf(log, "%s %s %s %03d %.1fms req=%s actor=%s\n", when,
            ex->log_method, ex->log_path, status, ms, ex->request_id, who);
    fflush(log);
    funlockfile(log);
}
