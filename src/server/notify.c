/*
 * notify.c -- alerts leave the process: one RFC 5424 syslog line each (to
 * the server's log and, when configured, to a syslog collector over UDP),
 * and a JSON POST to the hospital's webhook when one is configured.
 *
 * Why a thread of its own: a webhook may be slow or down, and a request
 * must never wait on it (the alert itself is already durable in the store
 * before anything is sent).  Alerts are queued here and sent in order by
 * one worker; the queue is bounded (an alert storm drops the oldest
 * notifications, never the stored alerts) and drained at stop.
 */
#include "server_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUEUE_MAX 1024
#define WEBHOOK_TIMEOUT_MS 5000
#define SYSLOG_FACILITY 10          /* authpriv: security messages */

struct notifier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t worker;
    int started;
    char *queue[QUEUE_MAX];
    size_t head, n;
    int stopping;
    char *syslog_host, *syslog_port;   /* "udp://HOST:PORT", split */
    char *webhook;
    FILE *log;
};

/* ---- The RFC 5424 line ---------------------------------------------------------------- */

/* SD-PARAM values escape '"', '\' and ']' (RFC 5424 6.3.3). */
static void sd_escape(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; in && *in && k + 2 < cap; in++) {
        if (*in == '"' || *in == '\\' || *in == ']')
            out[k++] = '\\';
        out[k++] = (*in == '\n' || *in == '\r') ? ' ' : *in;
    }
    out[k] = '\0';
}

/* "a,b,c", escaped as an SD-PARAM value; names that do not fit are left out
 * (never half a name, never a write past out). */
static void detectors_text(json_t *arr, char *out, size_t cap)
{
    size_t i, k = 0;
    json_t *v;
    char name[96];
    out[0] = '\0';
    json_array_foreach(arr, i, v) {
        sd_escape(json_string_value(v), name, sizeof name);
        size_t need = strlen(name) + (k ? 1 : 0);
        if (k + need >= cap)
            break;
        k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? "," : "", name);
    }
}

int notify_syslog_line(const char *alert_json, char *out, size_t cap)
{
    json_t *a = json_loads(alert_json, 0, NULL);
    if (a == NULL)
        return -1;
    const char *response = json_string_value(json_object_get(a, "response"));
    int severity = response && strcmp(response, "contain") == 0 ? 1   /* alert   */
                 : response && strcmp(response, "alert") != 0 ? 2     /* crit    */
                 : 4;                                                  /* warning */
    char host[64] = "-", id[96], actor[200], source[96], det[200], resp[32], expl[600];
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "-");          /* NILVALUE, never an empty field */
    sd_escape(json_string_value(json_object_get(a, "id")), id, sizeof id);
    sd_escape(json_string_value(json_object_get(a, "actor_username")) ?
              json_string_value(json_object_get(a, "actor_username")) :
              json_string_value(json_object_get(a, "actor")), actor, sizeof actor);
    sd_escape(json_string_value(json_object_get(a, "source")), source, sizeof source);
    detectors_text(json_object_get(a, "detectors"), det, sizeof det);
    sd_escape(response, resp, sizeof resp);
    snprintf(expl, sizeof expl, "%s", json_string_value(json_object_get(a, "explanation")) ?
             json_string_value(json_object_get(a, "explanation")) : "");
    for (char *p = expl; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    int n = snprintf(out, cap,
                     "<%d>1 %s %s medvault %ld alert [medvault@32473 id=\"%s\" actor=\"%s\" "
                     "source=\"%s\" detectors=\"%s\" score=\"%.0f\" response=\"%s\"] %s",
                     SYSLOG_FACILITY * 8 + severity,
                     json_string_value(json_object_get(a, "time")) ?
                     json_string_value(json_object_get(a, "time")) : "-",
                     host, (long)getpid(), id, actor, source, det,
                     json_number_value(json_object_get(a, "score")), resp, expl);
    json_decref(a);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- Sending ------------------------------------------------------------------------------ */

static void send_udp(const notifier *nt, const char *line)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai = NULL;
    if (getaddrinfo(nt->syslog_host, nt->syslog_port, &hints, &ai) != 0 || ai == NULL)
        return;
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (fd >= 0) {
        sendto(fd, line, strlen(line), 0, ai->ai_addr, ai->ai_addrlen);
        close(fd);
    }
    freeaddrinfo(ai);
}

static void deliver(notifier *nt, const char *alert_json)
{
    char line[2048];
    if (notify_syslog_line(alert_json, line, sizeof line) == 0) {
        fprintf(nt->log, "%s\n", line);
        fflush(nt->log);
        if (nt->syslog_host)
            send_udp(nt, line);
    }
    if (nt->webhook) {
        mv_err err;
        if (http_post_json(nt->webhook, alert_json, WEBHOOK_TIMEOUT_MS, NULL, &err) != 0)
            fprintf(nt->log, "medvault serve: alert webhook failed: %s\n", err.msg);
    }
}

static void *worker(void *p)
{
    notifier *nt = p;
    pthread_mutex_lock(&nt->mu);
    for (;;) {
        while (nt->n == 0 && !nt->stopping)
            pthread_cond_wait(&nt->cv, &nt->mu);
        if (nt->n == 0 && nt->stopping)
            break;
        char *next = nt->queue[nt->head];
        nt->head = (nt->head + 1) % QUEUE_MAX;
        nt->n--;
        pthread_mutex_unlock(&nt->mu);
        deliver(nt, next);
        free(next);
        pthread_mutex_lock(&nt->mu);
    }
    pthread_mutex_unlock(&nt->mu);
    return NULL;
}

/* "udp://HOST:PORT" (HOST may be [v6]); -1 when malformed. */
static int split_target(const char *t, char **host, char **port)
{
    if (strncmp(t, "udp://", 6) != 0)
        return -1;
    const char *h = t + 6, *colon = strrchr(h, ':');
    if (colon == NULL || colon == h || colon[1] == '\0')
        return -1;
    size_t hl = (size_t)(colon - h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host = strndup(h, hl);
    *port = strdup(colon + 1);
    return *host && *port ? 0 : -1;
}

int notifier_start(const char *syslog_target, const char *webhook, FILE *log,
                   notifier **out, mv_err *err)
{
    notifier *nt = mv_calloc(1, sizeof *nt, err);
    if (nt == NULL)
        return -1;
    nt->log = log ? log : stderr;
    if (syslog_target && *syslog_target &&
        split_target(syslog_target, &nt->syslog_host, &nt->syslog_port) != 0) {
        free(nt->syslog_host);
        free(nt->syslog_port);
        free(nt);
        return mv_fail(err, MV_E_INVALID, "syslog must be udp://HOST:PORT");
    }
    if (webhook && *webhook && (nt->webhook = strdup(webhook)) == NULL) {
        notifier_stop(nt);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&nt->mu, NULL);
    pthread_cond_init(&nt->cv, NULL);
    nt->started = pthread_create(&nt->worker, NULL, worker, nt) == 0;
    if (!nt->started) {
        free(nt->syslog_host);
        free(nt->syslog_port);
        free(nt->webhook);
        free(nt);
        return mv_fail(err, MV_E_IO, "could not start the alert notifier");
    }
    *out = nt;
    return 0;
}

void notifier_send(notifier *nt, const char *alert_json)
{
    char *copy = nt ? strdup(alert_json) : NULL;
    if (copy == NULL)
        return;
    pthread_mutex_lock(&nt->mu);
    if (nt->n == QUEUE_MAX) {                       /* drop the oldest */
        free(nt->queue[nt->head]);
        nt->head = (nt->head + 1) % QUEUE_MAX;
        nt->n--;
    }
    nt->queue[(nt->head + nt->n) % QUEUE_MAX] = copy;
    nt->n++;
    pthread_cond_signal(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
}

void notifier_stop(notifier *nt)
{
    if (nt == NULL)
        return;
    if (nt->started) {
        pthread_mutex_lock(&nt->mu);
        nt->stopping = 1;
        pthread_cond_signal(&nt->cv);
        pthread_mutex_unlock(&nt->mu);
        pthread_join(nt->worker, NULL);
        pthread_mutex_destroy(&nt->mu);
        pthread_cond_destroy(&nt->cv);
    }
    free(nt->syslog_host);
    free(nt->syslog_port);
    free(nt->webhook);
    free(nt);
}
