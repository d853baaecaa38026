/*
 * trail.c -- appending to the audit trail with group commit.
 *
 * Why it is shaped this way: every disclosure must be durable in the trail
 * before its response leaves, so each request waits for an fsync.  One fsync
 * per request would cap the server at the disk's sync rate; instead callers
 * queue their unit (events + optional data change) and whoever finds no flush
 * in progress becomes the leader: it takes the whole queue, writes every unit
 * in one transaction (a savepoint per unit, so one failing unit is undone
 * alone), commits with one fsync and wakes the followers.  Units that arrive
 * meanwhile form the next batch.  This is the leader/follower group commit
 * of database write-ahead logs; it needs no background thread.
 *
 * The leader reads the chain head from the database inside its write
 * transaction (SQLite's write lock serialises processes, so the CLI may
 * append while the server runs) and publishes it to memory (last_seq,
 * last_hash, for audit_head) only after the batch's commit succeeded.
 */
#include "audit.h"
#include "chain.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct unit {
    const audit_event *events;
    size_t n_events;
    audit_apply_fn apply;
    void *ctx;
    int force_checkpoint;   /* a checkpoint request, no events           */
    /* results, written by the leader */
    int done;
    int rc;
    mv_err err;
    int64_t first_seq;
    struct unit *next;
} unit;

struct audit_trail {
    mv_store *store;
    audit_options opt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unit *queue_head, *queue_tail;
    int flushing;
    crypto_chain *chain;    /* the chain key, derived once at open       */
    mv_buf encode;          /* entry encoding, reused by the leader       */
    /* chain head: written only by the current leader, under mu */
    int64_t last_seq;
    unsigned char last_hash[MV_HASH_BYTES];
    int64_t checkpoint_seq;
    int64_t checkpoint_us;
};

audit_options audit_default_options(void)
{
    audit_options o = { 1000, 60 * 1000000LL };
    return o;
}

/* ---- Opening ------------------------------------------------------------ */

static int latest_checkpoint(mv_store *s, int64_t *seq, int64_t *ts,
                             mv_err *err)
{
    store_checkpoint *cps = NULL;
    size_t n = 0;
    if (store_checkpoints(s, &cps, &n, err) != 0)
        return -1;
    *seq = n ? cps[n - 1].seq : 0;
    *ts = n ? cps[n - 1].ts_us : mv_now_us();
    free(cps);
    return 0;
}

/* Record the signing public key on first use; afterwards it must match what
 * the keys derive (a replaced key would let forged checkpoints verify). */
static int ensure_pubkey(mv_store *s, mv_err *err)
{
    unsigned char pub[MV_PUBKEY_BYTES];
    if (chain_pubkey(s, pub, err) != 0)
        return -1;
    mv_buf stored = {0};
    mv_err e2;
    if (store_meta_get(s, AUDIT_META_PUBKEY, &stored, &e2) == 0) {
        int same = stored.len == MV_PUBKEY_BYTES &&
                   memcmp(stored.data, pub, MV_PUBKEY_BYTES) == 0;
        mv_buf_free(&stored);
        return same ? 0 : mv_fail(err, MV_E_TAMPER,
                                  "audit public key in the store was replaced");
    }
    if (e2.code != MV_E_NOTFOUND)
        return mv_fail(err, e2.code, "%s", e2.msg);
    store_txn *t;
    if (store_txn_begin(s, &t, err) != 0)
        return -1;
    if (store_meta_put(t, AUDIT_META_PUBKEY, pub, sizeof pub, err) != 0) {
        store_txn_rollback(t);
        return -1;
    }
    return store_txn_commit(t, err);
}

/* A checkpoint beyond the last entry means entries were removed.  Appending
 * would reuse their sequence numbers and bury the evidence under new entries,
 * so the trail refuses to be extended until someone has looked. */
static int refuse_truncated(const audit_trail *t, mv_err *err)
{
    if (t->checkpoint_seq <= t->last_seq)
        return 0;
    return mv_fail(err, MV_E_TAMPER,
                   "audit trail truncated: a checkpoint was signed at entry %lld but "
                   "the trail ends at %lld; run 'medvault audit verify'",
                   (long long)t->checkpoint_seq, (long long)t->last_seq);
}

int audit_open(mv_store *s, const audit_options *opt, audit_trail **out,
               mv_err *err)
{
    audit_trail *t = mv_calloc(1, sizeof *t, err);
    if (t == NULL)
        return -1;
    t->store = s;
    t->opt = opt ? *opt : audit_default_options();
    if (t->opt.checkpoint_every <= 0 || t->opt.checkpoint_interval_us <= 0) {
        free(t);
        return mv_fail(err, MV_E_INVALID, "audit checkpoint intervals must be positive");
    }
    if (ensure_pubkey(s, err) != 0 ||
        store_audit_last(s, &t->last_seq, t->last_hash, err) != 0 ||
        latest_checkpoint(s, &t->checkpoint_seq, &t->checkpoint_us, err) != 0 ||
        refuse_truncated(t, err) != 0 ||
        chain_open(s, &t->chain, err) != 0) {
        free(t);
        return -1;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    *out = t;
    return 0;
}

int64_t audit_head(audit_trail *t)
{
    pthread_mutex_lock(&t->mu);
    int64_t seq = t->last_seq;
    pthread_mutex_unlock(&t->mu);
    return seq;
}

/* ---- The leader's work --------------------------------------------------- */

typedef struct head {
    int64_t seq;
    unsigned char hash[MV_HASH_BYTES];
} head;

static int append_event(audit_trail *t, store_txn *txn, head *h,
                        const audit_event *ev, int64_t now, mv_err *err)
{
    store_audit_row row = {
        .seq = h->seq + 1, .ts_us = now,
        .actor = ev->actor, .action = ev->action, .outcome = ev->outcome,
        .resources = ev->resources, .patient = ev->patient,
        .source = ev->source, .session = ev->session,
        .purpose = ev->purpose, .request_id = ev->request_id,
    };
    if (ev->actor == NULL || ev->action == NULL || ev->outcome == NULL)
        return mv_fail(err, MV_E_INVALID, "audit event without actor, action or outcome");
    memcpy(row.prev, h->hash, MV_HASH_BYTES);
    if (chain_link_row(t->chain, &row, &t->encode, row.hash, err) != 0 ||
        store_audit_append(txn, &row, err) != 0)
        return -1;
    h->seq = row.seq;
    memcpy(h->hash, row.hash, MV_HASH_BYTES);
    return 0;
}

/* Apply one unit inside its own savepoint; on failure undo it and leave the
 * head where it was.  The unit's result is recorded in u. */
static void write_unit(audit_trail *t, store_txn *txn, unit *u, head *h,
                       int64_t now)
{
    head before = *h;
    u->rc = -1;
    if (store_txn_savepoint(txn, &u->err) != 0)
        return;
    store_txn_set_audit_seq(txn, h->seq + 1);        /* the unit's first event */
    int ok = u->apply == NULL || u->apply(txn, u->ctx, &u->err) == 0;
    store_txn_set_audit_seq(txn, 0);
    for (size_t i = 0; ok && i < u->n_events; i++)
        ok = append_event(t, txn, h, &u->events[i], now, &u->err) == 0;
    if (!ok) {
        store_txn_rollback_to(txn, NULL);
        *h = before;
        return;
    }
    if (store_txn_release(txn, &u->err) != 0) {
        *h = before;
        return;
    }
    u->rc = 0;
    u->first_seq = before.seq + 1;
}

static int write_checkpoint(audit_trail *t, store_txn *txn, const head *h,
                            int64_t now, mv_err *err)
{
    store_checkpoint c = { .seq = h->seq, .ts_us = now };
    memcpy(c.hash, h->hash, MV_HASH_BYTES);
    if (chain_sign_checkpoint(t->store, &c, err) != 0)
        return -1;
    mv_err e;
    if (store_checkpoint_put(txn, &c, &e) == 0)
        return 0;
    /* Another process signed this very head already: nothing to add. */
    if (e.code == MV_E_EXISTS)
        return 0;
    if (err)
        *err = e;
    return -1;
}

static int checkpoint_due(const audit_trail *t, const head *h, int forced,
                          int64_t now)
{
    if (h->seq == t->checkpoint_seq)
        return 0;   /* nothing new to sign */
    return forced || h->seq - t->checkpoint_seq >= t->opt.checkpoint_every ||
           now - t->checkpoint_us >= t->opt.checkpoint_interval_us;
}

static void fail_batch_all(unit *batch, const mv_err *e)
{
    for (unit *u = batch; u; u = u->next) {
        u->rc = -1;
        u->err = *e;
    }
}

static void fail_batch(unit *batch, const mv_err *e)
{
    for (unit *u = batch; u; u = u->next)
        if (u->rc == 0) {
            u->rc = -1;
            u->err = *e;
        }
}

/* Write a batch in one transaction; called without t->mu held. */
static void flush_batch(audit_trail *t, unit *batch)
{
    mv_err e;
    store_txn *txn;
    if (store_txn_begin(t->store, &txn, &e) != 0) {
        fail_batch_all(batch, &e);
        return;
    }
    int64_t now = mv_now_us();
    /* The head is read under the write lock, not taken from memory: another
     * process (the CLI while the server runs) may have appended since. */
    head h;
    if (store_audit_last(t->store, &h.seq, h.hash, &e) != 0) {
        store_txn_rollback(txn);
        fail_batch_all(batch, &e);
        return;
    }
    int forced = 0;
    for (unit *u = batch; u; u = u->next) {
        forced |= u->force_checkpoint;
        write_unit(t, txn, u, &h, now);
    }
    int cp = checkpoint_due(t, &h, forced, now);
    if (cp && write_checkpoint(t, txn, &h, now, &e) != 0) {
        store_txn_rollback(txn);
        fail_batch(batch, &e);
        return;
    }
    if (store_txn_commit(txn, &e) != 0) {
        fail_batch(batch, &e);
        return;
    }
    /* Readers (audit_head, audit_tick) take the mutex; so does this write. */
    pthread_mutex_lock(&t->mu);
    t->last_seq = h.seq;
    memcpy(t->last_hash, h.hash, MV_HASH_BYTES);
    if (cp) {
        t->checkpoint_seq = h.seq;
        t->checkpoint_us = now;
    }
    pthread_mutex_unlock(&t->mu);
}

/* ---- Submitting ----------------------------------------------------------- */

/* Queue u and wait until it is durable, leading a flush when none runs. */
static int submit(audit_trail *t, unit *u, mv_err *err)
{
    pthread_mutex_lock(&t->mu);
    if (t->queue_tail)
        t->queue_tail->next = u;
    else
        t->queue_head = u;
    t->queue_tail = u;
    while (!u->done) {
        if (t->flushing) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        unit *batch = t->queue_head;
        t->queue_head = t->queue_tail = NULL;
        t->flushing = 1;
        pthread_mutex_unlock(&t->mu);
        flush_batch(t, batch);
        pthread_mutex_lock(&t->mu);
        for (unit *b = batch; b; b = b->next)
            b->done = 1;
        t->flushing = 0;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    if (u->rc != 0) {
        if (err)
            *err = u->err;
        return -1;
    }
    return 0;
}

int audit_record(audit_trail *t, const audit_event *ev, size_t n,
                 audit_apply_fn apply, void *ctx, int64_t *first_seq,
                 mv_err *err)
{
    if (n == 0)
        return mv_fail(err, MV_E_INVALID, "audit_record needs at least one event");
    unit u = { .events = ev, .n_events = n, .apply = apply, .ctx = ctx };
    if (submit(t, &u, err) != 0)
        return -1;
    if (first_seq)
        *first_seq = u.first_seq;
    return 0;
}

int audit_checkpoint(audit_trail *t, mv_err *err)
{
    unit u = { .force_checkpoint = 1 };
    return submit(t, &u, err);
}

int audit_tick(audit_trail *t, mv_err *err)
{
    pthread_mutex_lock(&t->mu);
    int due = t->last_seq != t->checkpoint_seq &&
              mv_now_us() - t->checkpoint_us >= t->opt.checkpoint_interval_us;
    pthread_mutex_unlock(&t->mu);
    return due ? audit_checkpoint(t, err) : 0;
}

int audit_close(audit_trail *t, mv_err *err)
{
    if (t == NULL)
        return 0;
    int rc = audit_checkpoint(t, err);
    crypto_chain_close(t->chain);
    mv_buf_free(&t->encode);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    return rc;
}
