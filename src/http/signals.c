/*
 * signals.c -- how a running server learns that it must stop, and how the
 * process survives a client that hangs up mid-response.
 *
 * Why this exists: a signal handler that runs in a random worker thread in
 * the middle of a request cannot safely do anything useful.  Instead SIGTERM
 * and SIGINT are blocked in every thread (http_server_start blocks them in
 * the calling thread before the HTTP library creates its threads, which
 * inherit the mask; a caller that creates other threads must do so after
 * starting the server, or block the two signals itself first) and one thread
 * collects them synchronously with sigtimedwait, running periodic work in
 * between.  SIGPIPE is ignored so that a closed socket is an error return,
 * never the death of the process.
 */
#include "http_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void http_signals_prepare(void)
{
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigemptyset(&ignore.sa_mask);
    (void)sigaction(SIGPIPE, &ignore, NULL);
    sigset_t stop;
    stop_signals(&stop);
    (void)pthread_sigmask(SIG_BLOCK, &stop, NULL);
}

static struct timespec timespec_of_us(int64_t us)
{
    struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
                           .tv_nsec = (long)(us % 1000000) * 1000 };
    return ts;
}

/* Wait for one of the set, at most wait_us (negative: forever).  Returns the
 * signal number, or 0 when the time ran out. */
static int wait_signal(const sigset_t *set, int64_t wait_us)
{
    for (;;) {
        int sig;
        if (wait_us < 0) {
            sig = sigwaitinfo(set, NULL);
        } else {
            struct timespec ts = timespec_of_us(wait_us);
            sig = sigtimedwait(set, NULL, &ts);
        }
        if (sig > 0)
            return sig;
        if (errno == EAGAIN)
            return 0;
        /* EINTR (another signal's handler ran): wait again */
    }
}

int http_wait_for_stop(void (*tick)(void *), void *tick_ctx, unsigned tick_ms)
{
    sigset_t stop, old;
    stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    int ticking = tick != NULL && tick_ms > 0;
    int64_t period_us = (int64_t)tick_ms * 1000;
    int64_t next_tick_us = http_monotonic_us() + period_us;
    int sig;
    for (;;) {
        int64_t wait_us = ticking ? next_tick_us - http_monotonic_us() : -1;
        if (ticking && wait_us <= 0) {
            tick(tick_ctx);
            next_tick_us = http_monotonic_us() + period_us;
            continue;
        }
        sig = wait_signal(&stop, wait_us);
        if (sig > 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return sig;
}
