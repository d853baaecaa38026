/*
 * watch.c -- the header deadline for connections the library holds.
 *
 * Why this exists: the gate (gate.c) can read the first request of a plain
 * connection before admitting it, but not what arrives inside TLS nor the
 * requests that follow on a kept-alive connection.  Without a deadline of
 * its own, such a connection that sends a header byte now and then is held
 * for as long as it likes (the library's timeout is an idle timeout).  Every
 * connection the library holds is listed here with the time it started
 * waiting for a request; a request whose headers are complete stops the
 * clock, its answer restarts it.  The gate's tick shuts down the socket of
 * any connection that waited longer than header_timeout, and the library,
 * seeing its peer gone, closes it.
 *
 * Safety against descriptor reuse: the library removes a connection here
 * (MHD_CONNECTION_NOTIFY_CLOSED) before it closes the socket, and shutdown()
 * is only called under the same mutex, so it can never reach a descriptor
 * that has since been given to someone else.
 */
#include "http_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

struct http_watched {
    http_watched *prev, *next;
    int fd;
    int in_request;                  /* headers complete, not yet answered */
    int shut;                        /* shutdown() already called          */
    int early;                       /* answered before its body was read  */
    int64_t waiting_since_us;
};

struct http_watch {
    pthread_mutex_t lock;
    http_watched *head;
    int64_t header_timeout_us;
};

http_watch *http_watch_new(unsigned header_timeout_s)
{
    http_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->header_timeout_us = (int64_t)header_timeout_s * 1000000;
    return w;
}

void http_watch_free(http_watch *w)
{
    if (w == NULL)
        return;
    while (w->head != NULL)              /* none left once the library stopped */
        http_watch_remove(w, w->head);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

http_watched *http_watch_add(http_watch *w, int fd)
{
    http_watched *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->fd = fd;
    e->waiting_since_us = http_monotonic_us();
    pthread_mutex_lock(&w->lock);
    e->next = w->head;
    if (w->head != NULL)
        w->head->prev = e;
    w->head = e;
    pthread_mutex_unlock(&w->lock);
    return e;
}

void http_watch_remove(http_watch *w, http_watched *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        w->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&w->lock);
    free(e);
}

void http_watch_request(http_watch *w, http_watched *e, int begun)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    e->in_request = begun;
    if (!begun)
        e->waiting_since_us = http_monotonic_us();
    pthread_mutex_unlock(&w->lock);
}

void http_watch_answered_early(http_watch *w, http_watched *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    e->early = 1;
    pthread_mutex_unlock(&w->lock);
}

int http_watch_needs_linger(http_watch *w, http_watched *e)
{
    int unread = 0;
    pthread_mutex_lock(&w->lock);
    int early = e->early;
    pthread_mutex_unlock(&w->lock);
    if (!early && ioctl(e->fd, FIONREAD, &unread) != 0)
        unread = 0;
    return early || unread > 0;
}

void http_watch_expire(http_watch *w)
{
    int64_t now = http_monotonic_us();
    pthread_mutex_lock(&w->lock);
    for (http_watched *e = w->head; e != NULL; e = e->next)
        if (!e->in_request && !e->shut &&
            now - e->waiting_since_us > w->header_timeout_us) {
            shutdown(e->fd, SHUT_RDWR);
            e->shut = 1;
        }
    pthread_mutex_unlock(&w->lock);
}
