/*
 * verify.c -- proving the audit trail is whole, and exporting checkpoints so
 * a third party can hold proof of it.
 *
 * What each check catches:
 *   - sequence numbers must run 1, 2, 3 ... : a deleted entry leaves a gap;
 *   - each entry's prev must equal the previous entry's hash: a reordered or
 *     inserted entry breaks the link;
 *   - each entry's hash is recomputed with the keyed chain: an edited field
 *     changes it, and without the keys nobody can recompute a matching one;
 *   - every stored checkpoint must carry a valid signature over the hash found
 *     at its seq, and no checkpoint may lie beyond the end: truncation;
 *   - an exported checkpoint held outside the store catches truncation even
 *     when the stored checkpoints were deleted too;
 *   - every resource version names the audit entry that wrote it: a version
 *     naming an entry past the trail's end means entries were deleted, so a
 *     trail emptied (with its checkpoints) under a store full of data, or
 *     cut short, is tampering, not "verified: 0 entries".
 * The public key is derived from the store's keys and must equal both the
 * stored one and the exported one.
 *
 * A large trail is split into one segment per core: each entry's hash
 * depends only on its own row, so segments are re-hashed in parallel and
 * only the seams (first prev of a segment = last hash of the one before) are
 * checked in order afterwards.  The first problem in trail order is named.
 */
#include "audit.h"
#include "chain.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One contiguous range of the trail, walked by one thread.  The first row's
 * prev cannot be checked inside the segment (its predecessor belongs to the
 * segment before): it is kept and checked when the segments are joined. */
typedef struct segment {
    const struct verify_ctx *v;
    int64_t from, to;
    int64_t expect_seq;
    unsigned char prev[MV_HASH_BYTES];
    unsigned char first_prev[MV_HASH_BYTES];
    int64_t entries;
    size_t next_cp;                 /* next stored checkpoint to meet      */
    int ext_seen;
    mv_buf encode;                  /* reused for every entry              */
    int rc;                         /* 0 ok, 1 tamper, -1 error            */
    int64_t bad_seq;
    mv_err err;
} segment;

typedef struct verify_ctx {
    mv_store *s;
    crypto_chain *chain;
    const store_checkpoint *cps;    /* stored checkpoints, by seq     */
    size_t n_cps;
    const store_checkpoint *ext;    /* exported checkpoint or NULL    */
    unsigned char store_id[MV_STORE_ID_BYTES];
    unsigned char pub[MV_PUBKEY_BYTES];
} verify_ctx;

static int tamper(segment *g, int64_t seq, const char *what)
{
    g->bad_seq = seq;
    mv_fail(&g->err, MV_E_TAMPER, "audit trail broken at entry %lld: %s",
            (long long)seq, what);
    return 1;
}

static int checkpoint_signature_ok(const verify_ctx *v, const store_checkpoint *c)
{
    mv_buf msg = {0};
    int ok = chain_checkpoint_msg(v->store_id, c, &msg, NULL) == 0 &&
             crypto_sign_verify(v->pub, msg.data, msg.len, c->sig) == 0;
    mv_buf_free(&msg);
    return ok;
}

static int check_checkpoint_at(segment *g, const store_checkpoint *c,
                               const unsigned char *hash, const char *which)
{
    char what[128];
    if (!checkpoint_signature_ok(g->v, c)) {
        snprintf(what, sizeof what, "%s checkpoint has a bad signature", which);
        return tamper(g, c->seq, what);
    }
    if (memcmp(c->hash, hash, MV_HASH_BYTES) != 0) {
        snprintf(what, sizeof what,
                 "does not match the %s checkpoint signed for it", which);
        return tamper(g, c->seq, what);
    }
    return 0;
}

static int visit_row(const store_audit_row *row, void *ctx)
{
    segment *g = ctx;
    const verify_ctx *v = g->v;
    if (row->seq != g->expect_seq)
        return tamper(g, g->expect_seq, row->seq > g->expect_seq
                                            ? "entry missing (deleted)"
                                            : "entry out of order");
    if (row->seq == g->from)
        memcpy(g->first_prev, row->prev, MV_HASH_BYTES);
    else if (memcmp(row->prev, g->prev, MV_HASH_BYTES) != 0)
        return tamper(g, row->seq, "does not link to the previous entry "
                                   "(inserted, deleted or reordered)");
    unsigned char hash[MV_HASH_BYTES];
    if (chain_link_row(v->chain, row, &g->encode, hash, &g->err) != 0)
        return -1;
    if (memcmp(hash, row->hash, MV_HASH_BYTES) != 0)
        return tamper(g, row->seq, "entry was altered");
    for (; g->next_cp < v->n_cps && v->cps[g->next_cp].seq == row->seq;
         g->next_cp++)
        if (check_checkpoint_at(g, &v->cps[g->next_cp], hash, "stored"))
            return 1;
    if (v->ext && v->ext->seq == row->seq) {
        if (check_checkpoint_at(g, v->ext, hash, "exported"))
            return 1;
        g->ext_seen = 1;
    }
    memcpy(g->prev, hash, MV_HASH_BYTES);
    g->expect_seq++;
    g->entries++;
    return 0;
}

static void *walk_segment(void *arg)
{
    segment *g = arg;
    const verify_ctx *v = g->v;
    g->expect_seq = g->from;
    while (g->next_cp < v->n_cps && v->cps[g->next_cp].seq < g->from)
        g->next_cp++;
    int rc = store_audit_scan(v->s, g->from, g->to, visit_row, g, &g->err);
    if (rc == 0 && g->expect_seq != g->to + 1)   /* rows missing at the end */
        rc = tamper(g, g->expect_seq, "entry missing (deleted)");
    g->rc = rc;
    return NULL;
}

/* Segments sized for the machine: one per core, up to 4, and none smaller
 * than MIN_SEGMENT entries (a thread costs more than it saves below that). */
#define MAX_SEGMENTS 4
#define MIN_SEGMENT 20000

static size_t segment_count(int64_t entries)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cores > 0 ? (size_t)cores : 1;
    if (n > MAX_SEGMENTS)
        n = MAX_SEGMENTS;
    while (n > 1 && entries / (int64_t)n < MIN_SEGMENT)
        n--;
    return n;
}

static void run_segments(segment *segs, size_t n)
{
    pthread_t th[MAX_SEGMENTS];
    int started[MAX_SEGMENTS] = {0};
    for (size_t i = 1; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, walk_segment, &segs[i]) == 0;
    walk_segment(&segs[0]);
    for (size_t i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            walk_segment(&segs[i]);     /* no thread: walk it here */
    }
}

/* Join the segments in order; the first problem in trail order wins. */
static int join_segments(segment *segs, size_t n, audit_report *rep, mv_err *err)
{
    for (size_t i = 0; i < n; i++) {
        segment *g = &segs[i];
        static const unsigned char zero[MV_HASH_BYTES];
        const unsigned char *want = i == 0 ? zero : segs[i - 1].prev;
        if (g->entries > 0 && memcmp(g->first_prev, want, MV_HASH_BYTES) != 0 &&
            (g->rc == 0 || g->bad_seq > g->from))
            g->rc = tamper(g, g->from, "does not link to the previous entry "
                                       "(inserted, deleted or reordered)");
        if (g->rc != 0) {
            if (err)
                *err = g->err;
            rep->bad_seq = g->rc > 0 ? g->bad_seq : 0;
            return g->rc > 0 ? 1 : -1;
        }
        rep->entries += g->entries;
        rep->last_seq = g->to;
    }
    return 0;
}

/* Checkpoints that no segment met lie past the end of the trail. */
static int check_leftovers(const verify_ctx *v, segment *segs, size_t n,
                           audit_report *rep, mv_err *err)
{
    int ext_seen = 0;
    for (size_t i = 0; i < n; i++)
        ext_seen |= segs[i].ext_seen;
    const segment *last = &segs[n - 1];
    char what[160];
    if (last->next_cp < v->n_cps) {
        snprintf(what, sizeof what,
                 "trail truncated: a checkpoint was signed at entry %lld but "
                 "the trail ends at %lld",
                 (long long)v->cps[last->next_cp].seq, (long long)rep->last_seq);
    } else if (v->ext && !ext_seen) {
        snprintf(what, sizeof what,
                 "trail truncated: the exported checkpoint covers entry %lld "
                 "but the trail ends at %lld",
                 (long long)v->ext->seq, (long long)rep->last_seq);
    } else {
        return 0;
    }
    rep->bad_seq = rep->last_seq + 1;
    mv_fail(err, MV_E_TAMPER, "audit trail broken at entry %lld: %s",
            (long long)rep->bad_seq, what);
    return 1;
}

static int check_stored_pubkey(mv_store *s, const unsigned char pub[MV_PUBKEY_BYTES],
                               mv_err *err)
{
    mv_buf stored = {0};
    if (store_meta_get(s, AUDIT_META_PUBKEY, &stored, err) != 0)
        return -1;
    int same = stored.len == MV_PUBKEY_BYTES &&
               memcmp(stored.data, pub, MV_PUBKEY_BYTES) == 0;
    mv_buf_free(&stored);
    return same ? 0 : mv_fail(err, MV_E_TAMPER,
                              "audit public key in the store was replaced");
}

/* ---- Exported checkpoints (JSON) ---------------------------------------- */

#define EXPORT_FORMAT "medvault-audit-checkpoint/1"

static int hex_field(json_t *o, const char *name, unsigned char *out, size_t n,
                     mv_err *err)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (v == NULL || mv_hex_decode(v, out, n, NULL) != 0)
        return mv_fail(err, MV_E_INVALID,
                       "exported checkpoint: field '%s' missing or malformed", name);
    return 0;
}

static int parse_export(const char *text, size_t len, store_checkpoint *c,
                        unsigned char id[MV_STORE_ID_BYTES],
                        unsigned char pub[MV_PUBKEY_BYTES], mv_err *err)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (o == NULL)
        return mv_fail(err, MV_E_INVALID, "exported checkpoint is not JSON: %s (line %d)",
                       je.text, je.line);
    int rc = -1;
    const char *fmt = json_string_value(json_object_get(o, "format"));
    json_t *seq = json_object_get(o, "seq"), *ts = json_object_get(o, "time_us");
    if (fmt == NULL || strcmp(fmt, EXPORT_FORMAT) != 0)
        mv_fail(err, MV_E_INVALID, "exported checkpoint: unknown format");
    else if (!json_is_integer(seq) || !json_is_integer(ts) ||
             json_integer_value(seq) < 1)
        mv_fail(err, MV_E_INVALID, "exported checkpoint: bad 'seq' or 'time_us'");
    else if (hex_field(o, "store_id", id, MV_STORE_ID_BYTES, err) == 0 &&
             hex_field(o, "hash", c->hash, MV_HASH_BYTES, err) == 0 &&
             hex_field(o, "public_key", pub, MV_PUBKEY_BYTES, err) == 0 &&
             hex_field(o, "signature", c->sig, MV_SIG_BYTES, err) == 0) {
        c->seq = json_integer_value(seq);
        c->ts_us = json_integer_value(ts);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

static int load_external(verify_ctx *w, const char *text, size_t len,
                         store_checkpoint *ext, mv_err *err)
{
    unsigned char id[MV_STORE_ID_BYTES], pub[MV_PUBKEY_BYTES];
    if (parse_export(text, len, ext, id, pub, err) != 0)
        return -1;
    if (memcmp(id, w->store_id, MV_STORE_ID_BYTES) != 0)
        return mv_fail(err, MV_E_TAMPER, "exported checkpoint belongs to another store");
    if (memcmp(pub, w->pub, MV_PUBKEY_BYTES) != 0)
        return mv_fail(err, MV_E_TAMPER,
                       "exported checkpoint was signed by another key than this store's");
    w->ext = ext;
    return 0;
}

static int walk_trail(verify_ctx *v, int64_t last, size_t n,
                      audit_report *rep, mv_err *err)
{
    if (n < 1 || n > MAX_SEGMENTS)
        return mv_fail(err, MV_E_INVALID, "verify needs 1 to %d segments", MAX_SEGMENTS);
    while (n > 1 && last / (int64_t)n < 1)
        n--;
    segment segs[MAX_SEGMENTS];
    memset(segs, 0, sizeof segs);
    int64_t per = last / (int64_t)n, from = 1;
    for (size_t i = 0; i < n; i++) {
        segs[i].v = v;
        segs[i].from = from;
        segs[i].to = i + 1 == n ? last : from + per - 1;
        from = segs[i].to + 1;
    }
    if (last > 0)
        run_segments(segs, n);
    int rc = last > 0 ? join_segments(segs, n, rep, err) : 0;
    if (rc == 0)
        rc = check_leftovers(v, segs, n, rep, err);
    for (size_t i = 0; i < n; i++)
        mv_buf_free(&segs[i].encode);
    return rc;
}

int audit_verify(mv_store *s, const char *external, size_t external_len,
                 audit_report *rep, mv_err *err)
{
    int64_t last;
    unsigned char last_hash[MV_HASH_BYTES];
    if (store_audit_last(s, &last, last_hash, err) != 0)
        return -1;
    return audit_verify_segmented(s, external, external_len,
                                  segment_count(last), rep, err);
}

/* The store's versions against the trail, in one snapshot of both. */
static int check_links(mv_store *s, audit_report *rep, mv_err *err)
{
    store_audit_link_count n;
    if (store_audit_links(s, &n, err) != 0)
        return -1;
    rep->linked_versions = n.linked;
    if (n.beyond == 0)
        return 0;
    rep->bad_seq = n.trail_end + 1;
    return mv_fail(err, MV_E_TAMPER,
                   "%lld stored resource version(s) were written by audit entries past "
                   "the trail's end (its last entry is %lld; they name entries up to "
                   "%lld): entries were deleted",
                   (long long)n.beyond, (long long)n.trail_end, (long long)n.highest);
}

int audit_verify_segmented(mv_store *s, const char *external,
                           size_t external_len, size_t segments,
                           audit_report *rep, mv_err *err)
{
    memset(rep, 0, sizeof *rep);
    verify_ctx v = { .s = s };
    store_id(s, v.store_id);
    store_checkpoint ext;
    store_checkpoint *cps = NULL;
    int64_t last;
    unsigned char last_hash[MV_HASH_BYTES];
    if (chain_pubkey(s, v.pub, err) != 0 ||
        check_stored_pubkey(s, v.pub, err) != 0 ||
        (external && load_external(&v, external, external_len, &ext, err) != 0) ||
        store_audit_last(s, &last, last_hash, err) != 0 ||
        chain_open(s, &v.chain, err) != 0)
        return -1;
    if (store_checkpoints(s, &cps, &v.n_cps, err) != 0) {
        crypto_chain_close(v.chain);
        return -1;
    }
    v.cps = cps;
    rep->checkpoints = (int64_t)v.n_cps;
    int rc = walk_trail(&v, last, segments, rep, err);
    free(cps);
    crypto_chain_close(v.chain);
    if (rc == 0)
        rc = check_links(s, rep, err);
    return rc == 0 ? 0 : -1;
}

int audit_export_checkpoint(mv_store *s, mv_buf *out, mv_err *err)
{
    store_checkpoint *cps = NULL;
    size_t n = 0;
    if (store_checkpoints(s, &cps, &n, err) != 0)
        return -1;
    if (n == 0) {
        free(cps);
        return mv_fail(err, MV_E_NOTFOUND, "the audit trail has no checkpoint yet");
    }
    const store_checkpoint *c = &cps[n - 1];
    unsigned char id[MV_STORE_ID_BYTES], pub[MV_PUBKEY_BYTES];
    store_id(s, id);
    if (chain_pubkey(s, pub, err) != 0) {
        free(cps);
        return -1;
    }
    char id_hex[2 * MV_STORE_ID_BYTES + 1], hash_hex[2 * MV_HASH_BYTES + 1],
         pub_hex[2 * MV_PUBKEY_BYTES + 1], sig_hex[2 * MV_SIG_BYTES + 1],
         when[MV_TIME_STR_MAX];
    mv_hex_encode(id, sizeof id, id_hex);
    mv_hex_encode(c->hash, MV_HASH_BYTES, hash_hex);
    mv_hex_encode(pub, sizeof pub, pub_hex);
    mv_hex_encode(c->sig, MV_SIG_BYTES, sig_hex);
    mv_time_format(c->ts_us, when);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:s}",
                          "format", EXPORT_FORMAT, "store_id", id_hex,
                          "seq", (json_int_t)c->seq, "time", when,
                          "time_us", (json_int_t)c->ts_us, "hash", hash_hex,
                          "public_key", pub_hex, "signature", sig_hex);
    free(cps);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int rc = mv_buf_append(out, text, strlen(text), err);
    if (rc == 0)
        rc = mv_buf_append(out, "\n", 1, err);
    free(text);
    return rc;
}
