/*
 * bench_detect.c -- what the misuse detector costs on the request path.
 *
 * The server calls, for every authorized read: detect_gate() before the
 * work, detect_max_page() for the page size, detect_observe() before the
 * response leaves.  This measures those three calls per second on one
 * thread and on T threads sharing one engine (one mutex), with actors that
 * already have a learned baseline (four days replayed first) reading the
 * patients of their care teams, time moving 1 ms per request.  Target
 * (issue 5): detection adds under 5% to the authorized-read benchmark's
 * requests per second (15,144 req/s on this 2-core VM, BENCHMARKS.md), so
 * the row also gives the CPU share the detector would take at that rate.
 *
 * usage: bench_detect [THREADS [EVENTS_PER_THREAD]]   (default 4 x 400000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "detect/detect.h"

#define ACTORS_PER_THREAD 500
#define PATIENTS_PER_ACTOR 25
#define T0 (1767571200LL * 1000000)      /* 2026-01-05 00:00 UTC */
#define HOUR_US (3600LL * 1000000)
#define READ_RATE 15144.0                 /* req/s, FHIR read, BENCHMARKS.md */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct job {
    detect_engine *e;
    int id, events, mode;        /* mode: 0 observe only, 1 the three calls */
    int64_t start_us;
    char (*actors)[48];
    char (*patients)[48];
} job;

static void one_read(const job *j, int i, int64_t t, int replay)
{
    int a = i % ACTORS_PER_THREAD;
    int p = a * PATIENTS_PER_ACTOR + (i / ACTORS_PER_THREAD) % PATIENTS_PER_ACTOR;
    detect_patient pat = { j->patients[p], DETECT_PAT_EXPLAINED };
    detect_event ev = { .time_us = t, .actor = j->actors[a], .role = "clinician",
                        .session = "sess-0123456789abcdef", .source = "10.1.0.17",
                        .action = "fhir.read", .outcome = DETECT_GRANTED,
                        .resource_type = "Patient", .patients = &pat, .n_patients = 1 };
    if (!replay && j->mode == 1) {
        int64_t retry;
        detect_gate(j->e, ev.actor, ev.source, t, &retry);
        detect_max_page(j->e, ev.actor, t);
    }
    detect_verdict v;
    detect_observe(j->e, &ev, replay ? DETECT_REPLAY : DETECT_LIVE, &v, NULL);
    detect_verdict_clear(&v);
}

static void *reader(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->events; i++)
        one_read(j, i, j->start_us + (int64_t)i * 1000, 0);
    return NULL;
}

/* Four ordinary days replayed at the same pace: every actor gets its
 * baseline (its care team of 25 patients, read in a burst each morning). */
#define WARM_DAYS 4
static void warm_up(job *j)
{
    for (int d = 0; d < WARM_DAYS; d++)
        for (int i = 0; i < ACTORS_PER_THREAD * PATIENTS_PER_ACTOR; i++)
            one_read(j, i, T0 + d * 24 * HOUR_US + 8 * HOUR_US + (int64_t)i * 1000, 1);
}

static int make_job(job *j, detect_engine *e, int id, int events, int mode)
{
    j->e = e;
    j->id = id;
    j->events = events;
    j->mode = mode;
    j->start_us = T0 + WARM_DAYS * 24 * HOUR_US + 8 * HOUR_US;
    j->actors = calloc(ACTORS_PER_THREAD, sizeof *j->actors);
    j->patients = calloc(ACTORS_PER_THREAD * PATIENTS_PER_ACTOR, sizeof *j->patients);
    if (j->actors == NULL || j->patients == NULL)
        return -1;
    for (int a = 0; a < ACTORS_PER_THREAD; a++)
        snprintf(j->actors[a], sizeof j->actors[a], "t%d-clinician-%d", id, a);
    for (int p = 0; p < ACTORS_PER_THREAD * PATIENTS_PER_ACTOR; p++)
        snprintf(j->patients[p], sizeof j->patients[p], "t%d-patient-%d", id, p);
    return 0;
}

static double run(int threads, int events, int mode)
{
    detect_config c;
    detect_config_default(&c);
    c.hash_seed = 1;
    detect_engine *e = detect_new(&c, NULL);
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (e == NULL || jobs == NULL || th == NULL) {
        fprintf(stderr, "bench_detect: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < threads; i++) {
        if (make_job(&jobs[i], e, i, events, mode) != 0) {
            fprintf(stderr, "bench_detect: out of memory\n");
            exit(1);
        }
        warm_up(&jobs[i]);
    }
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, reader, &jobs[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double rate = (double)threads * events / (now_s() - t0);
    detect_stats st;
    detect_get_stats(e, &st);
    if (st.alerts != 0)
        fprintf(stderr, "bench_detect: %llu alerts on ordinary reads\n",
                (unsigned long long)st.alerts);
    for (int i = 0; i < threads; i++) {
        free(jobs[i].actors);
        free(jobs[i].patients);
    }
    free(jobs);
    free(th);
    detect_free(e);
    return rate;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    int events = argc > 2 ? atoi(argv[2]) : 400000;
    if (threads < 1 || events < 1) {
        fprintf(stderr, "usage: bench_detect [THREADS [EVENTS_PER_THREAD]]\n");
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    detect_config c;
    detect_config_default(&c);
    double one = run(1, events, 0);
    printf("| detect_observe(), authorized read, 1 thread | %d events | %.0f /s (%.2f µs) |\n",
           events, one, 1e6 / one);
    double full1 = run(1, events, 1);
    printf("| gate + max_page + observe per read, 1 thread | %d events | %.0f /s (%.2f µs) |\n",
           events, full1, 1e6 / full1);
    double fullT = run(threads, events, 1);
    printf("| gate + max_page + observe per read, %d threads, one engine | %d events | "
           "%.0f /s |\n", threads, threads * events, fullT);
    printf("| CPU share at %.0f reads/s on %ld cores (target: < 5%% of the read) | - | "
           "%.2f%% |\n", READ_RATE, cores, 100.0 * READ_RATE / full1 / (double)cores);
    printf("| engine memory, worst case, default caps (%zu actors, %zu sources) | - | "
           "%.1f MB |\n", c.max_actors, c.max_sources,
           detect_memory_bytes(&c) / 1e6);
    return 0;
}
