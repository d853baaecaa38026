/*
 * bench_scope.c -- how fast an incident's scope is computed over a large
 * audit trail (issue 6 target: 10 million entries in under 10 seconds).
 *
 * Builds a synthetic trail of N entries through the real audit API
 * (audit_record, in batches of 10,000 events per transaction: a real,
 * keyed, checkpointed chain that audit_verify accepts): 500 accounts
 * reading, searching and logging in over 200,000 patients, and among them
 * a thief that was sent 1 patient every 20,000 entries -- plus one answer
 * the detector withheld, which must not count.  Then times
 * server_incident_scope() (verification of the whole chain + the scan) and
 * checks its answer: exactly the thief's patients, the withheld one absent.
 *
 * usage: bench_scope [ENTRIES]   (default 10,000,000; about 3 GB of /tmp)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "crypto/crypto.h"
#include "server/server.h"
#include "store/store.h"

#define BATCH 10000
#define THIEF_EVERY 20000
#define STR 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what, const mv_err *err)
{
    fprintf(stderr, "bench_scope: %s: %s\n", what, err->msg);
    return 1;
}

/* The strings of one batch, owned by the batch. */
typedef struct batch {
    audit_event ev[BATCH];
    char actor[BATCH][STR], patient[BATCH][STR], res[BATCH][3 * STR], source[BATCH][STR],
        req[BATCH][STR];
} batch;

static const char *const actions[] = { "fhir.read", "fhir.search", "fhir.read", "auth.login",
                                       "fhir.everything", "fhir.create", "fhir.vread" };
static const char *const types[] = { "Patient", "Observation", "Condition",
                                     "MedicationRequest", "Encounter", "DocumentReference" };

static void ordinary(batch *b, size_t k, uint64_t i)
{
    uint64_t h = i * 0x9e3779b97f4a7c15ull;
    snprintf(b->actor[k], STR, "user:acct-%03" PRIu64, (h >> 7) % 500);
    snprintf(b->patient[k], STR, "patient-%06" PRIu64, (h >> 17) % 200000);
    snprintf(b->res[k], 3 * STR, "%s/%016" PRIx64 "/_history/1", types[(h >> 40) % 6], h);
    snprintf(b->source[k], STR, "10.0.%u.%u", (unsigned)((h >> 50) % 250), (unsigned)(h % 250));
    snprintf(b->req[k], STR, "req-%016" PRIx64, h);
    const char *action = actions[(h >> 33) % 7];
    int login = strcmp(action, "auth.login") == 0;
    b->ev[k] = (audit_event){ .actor = b->actor[k], .action = action,
                              .outcome = (h >> 60) == 0 ? "denied: policy" : "success",
                              .resources = login ? NULL : b->res[k],
                              .patient = login ? NULL : b->patient[k],
                              .source = b->source[k], .session = "sess-0123456789abcdef",
                              .request_id = b->req[k] };
}

/* The thief's n-th disclosure: patient thief-n, an Observation search page. */
static void thief(batch *b, size_t k, uint64_t n, const char *action, const char *req_prefix)
{
    snprintf(b->actor[k], STR, "user:thief");
    snprintf(b->patient[k], STR, "thief-%06" PRIu64, n);
    snprintf(b->res[k], 3 * STR, "Observation/obs-%" PRIu64 "/_history/1 Patient/thief-%06"
             PRIu64 "/_history/1", n, n);
    snprintf(b->source[k], STR, "203.0.113.7");
    snprintf(b->req[k], STR, "%s%" PRIu64, req_prefix, n);
    b->ev[k] = (audit_event){ .actor = b->actor[k], .action = action, .outcome = "success",
                              .resources = b->res[k], .patient = b->patient[k],
                              .source = b->source[k], .request_id = b->req[k] };
}

/* A disclosure the detector withheld: a read of "thief-withheld", then the
 * detect.withheld entry with the same request id. */
static void withheld(batch *b, size_t k)
{
    thief(b, k, 999999, "fhir.read", "withheld-");
    snprintf(b->patient[k], STR, "thief-withheld");
    b->ev[k + 1] = (audit_event){ .actor = b->actor[k], .action = "detect.withheld",
                                  .outcome = "withheld: contain (alert -)",
                                  .source = b->source[k], .request_id = b->req[k] };
}

static int build(audit_trail *t, uint64_t total, uint64_t *thief_n, mv_err *err)
{
    batch *b = malloc(sizeof *b);
    if (b == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < total; i += BATCH) {
        size_t n = total - i < BATCH ? (size_t)(total - i) : BATCH;
        for (size_t k = 0; k < n; k++) {
            uint64_t at = i + k;
            if (at == total / 2 && k + 1 < n) {
                withheld(b, k++);
            } else if (at % THIEF_EVERY == THIEF_EVERY / 2) {
                thief(b, k, (*thief_n)++, "fhir.search", "t-");
            } else {
                ordinary(b, k, at);
            }
        }
        rc = audit_record(t, b->ev, n, NULL, NULL, NULL, err);
    }
    free(b);
    return rc;
}

static int check(const server_scope *sc, uint64_t thief_n)
{
    int ok = sc->n_patients == thief_n && sc->withheld == 1 &&
             sc->records == (int64_t)(2 * thief_n);
    for (size_t i = 0; ok && i < sc->n_patients; i++)
        ok = strncmp(sc->patients[i].id, "thief-0", 7) == 0;
    if (!ok)
        fprintf(stderr, "bench_scope: WRONG SCOPE: %zu patients (expected %" PRIu64 "), "
                "%" PRId64 " withheld, %" PRId64 " records\n", sc->n_patients, thief_n,
                sc->withheld, sc->records);
    return ok;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    mv_err err;
    char tmpl[] = "/tmp/medvault-bench-scope-XXXXXX";
    char *tmp = mkdtemp(tmpl), dir[128], key[128];
    snprintf(dir, sizeof dir, "%s/data", tmp);
    snprintf(key, sizeof key, "%s/bench.key", tmp);
    mv_store *s;
    audit_trail *t;
    store_unlock u = { .key_file = key };
    audit_options opt = audit_default_options();
    opt.checkpoint_every = 100000;
    if (crypto_init(&err) != 0 || crypto_keyfile_create(key, &err) != 0 ||
        store_create(dir, &u, &s, &err) != 0 || audit_open(s, &opt, &t, &err) != 0)
        return die("setup", &err);
    uint64_t thief_n = 0;
    double t0 = now_s();
    if (build(t, total, &thief_n, &err) != 0 || audit_close(t, &err) != 0)
        return die("build", &err);
    double build_s = now_s() - t0;
    audit_report rep;                     /* the verification's share, alone */
    t0 = now_s();
    if (audit_verify(s, NULL, 0, &rep, &err) != 0)
        return die("verify", &err);
    double verify_s = now_s() - t0;
    server_scope sc;
    t0 = now_s();
    if (server_incident_scope(s, "thief", 0, INT64_MAX, &sc, &err) != 0)
        return die("scope", &err);
    double scope_s = now_s() - t0;
    int ok = check(&sc, thief_n);
    fprintf(stderr, "bench_scope: trail of %" PRIu64 " entries built in %.1f s\n", total, build_s);
    printf("| incident scope (verify the chain + scan, one actor) | %" PRId64 " entries, "
           "%zu patients | %.2f s (%.2f M entries/s; verify alone %.2f s)%s |\n", sc.verified,
           sc.n_patients, scope_s, sc.verified / scope_s / 1e6, verify_s, ok ? "" : " WRONG");
    server_scope_free(&sc);
    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 && ok ? 0 : 1;
}
