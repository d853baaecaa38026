/*
 * bench_audit.c -- how fast the audit trail is where it matters:
 *   1. durable appends per second with group commit: T threads each record
 *      events through audit_record(), every one fsynced before it returns;
 *   2. verification: entries per second re-walked by audit_verify()
 *      (median of 5 rounds).
 * Targets (issue "Foundation"): >= 50,000 durable appends/s on 2 cores,
 * >= 1,000,000 entries/s verified.
 *
 * usage: bench_audit [THREADS [EVENTS_PER_THREAD]]   (default 32 x 5000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "audit/audit.h"
#include "crypto/crypto.h"
#include "store/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define VERIFY_ROUNDS 5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct job {
    audit_trail *t;
    int events;
    int failed;
} job;

static void *appender(void *arg)
{
    job *j = arg;
    char patient[40];
    for (int i = 0; i < j->events; i++) {
        snprintf(patient, sizeof patient, "patient-%d", i % 5000);
        audit_event ev = {
            .actor = "user:bench", .action = "resource.read", .outcome = "success",
            .resources = "Patient/0123456789abcdef0123456789abcdef/_history/3",
            .patient = patient, .source = "127.0.0.1",
            .session = "sess-0123456789abcdef", .request_id = "req-0123456789abcdef",
        };
        if (audit_record(j->t, &ev, 1, NULL, NULL, NULL, NULL) != 0)
            j->failed++;
    }
    return NULL;
}

static int die(const char *what, const mv_err *err)
{
    fprintf(stderr, "bench_audit: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 32;
    int per = argc > 2 ? atoi(argv[2]) : 5000;
    mv_err err;
    char tmpl[] = "/tmp/medvault-bench-XXXXXX";
    char *tmp = mkdtemp(tmpl), dir[128], key[128];
    snprintf(dir, sizeof dir, "%s/data", tmp);
    snprintf(key, sizeof key, "%s/bench.key", tmp);
    mv_store *s;
    audit_trail *t;
    store_unlock u = { .key_file = key };
    if (crypto_init(&err) != 0 || crypto_keyfile_create(key, &err) != 0 ||
        store_create(dir, &u, &s, &err) != 0 || audit_open(s, NULL, &t, &err) != 0)
        return die("setup", &err);

    pthread_t *th = calloc((size_t)threads, sizeof *th);
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){ t, per, 0 };
        pthread_create(&th[i], NULL, appender, &jobs[i]);
    }
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        failed += jobs[i].failed;
    }
    double append_s = now_s() - t0;
    long total = (long)threads * per;
    if (failed || audit_close(t, &err) != 0)
        return die("append", &err);

    /* Verification is CPU-bound and steady: take the median of 5 rounds. */
    audit_report rep;
    double rounds[VERIFY_ROUNDS];
    for (int r = 0; r < VERIFY_ROUNDS; r++) {
        t0 = now_s();
        if (audit_verify(s, NULL, 0, &rep, &err) != 0)
            return die("verify", &err);
        rounds[r] = now_s() - t0;
    }
    qsort(rounds, VERIFY_ROUNDS, sizeof rounds[0], cmp_double);
    double verify_s = rounds[VERIFY_ROUNDS / 2];

    printf("| durable audit appends (group commit, %d threads, synchronous=FULL) "
           "| %ld entries | %.0f entries/s |\n", threads, total, total / append_s);
    printf("| audit verify (keyed chain + %lld checkpoint signatures) "
           "| %lld entries | %.0f entries/s |\n", (long long)rep.checkpoints,
           (long long)rep.entries, rep.entries / verify_s);
    store_close(s);
    free(th);
    free(jobs);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : 1;
}
