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
 *     when the stored checkpoints were deleted too.
 * The public key is derived from the store's keys and must equal both the
 * stored one and the exported one.
 */
#include "audit.h"
#include "chain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct walk {
    mv_store *s;
    const store_checkpoint *cps;   /* stored checkpoints, by seq     */
    size_t n_cps, next_cp;
    const store_checkpoint *ext;   /* exported checkpoint or NULL    */
    int ext_seen;
    unsigned char store_id[MV_STORE_ID_BYTES];
    unsigned char pub[MV_PUBKEY_BYTES];
    int64_t expect_seq;
    unsigned char prev[MV_HASH_BYTES];
    audit_report *rep;
    mv_err *err;
} walk;

static int tamper(walk *w, int64_t seq, const char *what)
{
    w->rep->bad_seq = seq;
    mv_fail(w->err, MV_E_TAMPER, "audit trail broken at entry %lld: %s",
            (long long)seq, what);
    return 1;
}

static int checkpoint_signature_ok(const walk *w, const store_checkpoint *c)
{
    mv_buf msg = {0};
    int ok = chain_checkpoint_msg(w->store_id, c, &msg, NULL) == 0 &&
             crypto_sign_verify(w->pub, msg.data, msg.len, c->sig) == 0;
    mv_buf_free(&msg);
    return ok;
}

static int check_checkpoint_at(walk *w, const store_checkpoint *c,
                               const unsigned char *hash, const char *which)
{
    char what[128];
    if (!checkpoint_signature_ok(w, c)) {
        snprintf(what, sizeof what, "%s checkpoint has a bad signature", which);
        return tamper(w, c->seq, what);
    }
    if (memcmp(c->hash, hash, MV_HASH_BYTES) != 0) {
        snprintf(what, sizeof what,
                 "does not match the %s checkpoint signed for it", which);
        return tamper(w, c->seq, what);
    }
    return 0;
}

static int visit_row(const store_audit_row *row, void *ctx)
{
    walk *w = ctx;
    if (row->seq != w->expect_seq)
        return tamper(w, w->expect_seq, row->seq > w->expect_seq
                                            ? "entry missing (deleted)"
                                            : "entry out of order");
    if (memcmp(row->prev, w->prev, MV_HASH_BYTES) != 0)
        return tamper(w, row->seq, "does not link to the previous entry "
                                   "(inserted, deleted or reordered)");
    unsigned char hash[MV_HASH_BYTES];
    if (chain_link_row(w->s, row, hash, w->err) != 0)
        return 2;
    if (memcmp(hash, row->hash, MV_HASH_BYTES) != 0)
        return tamper(w, row->seq, "entry was altered");
    for (; w->next_cp < w->n_cps && w->cps[w->next_cp].seq == row->seq;
         w->next_cp++)
        if (check_checkpoint_at(w, &w->cps[w->next_cp], hash, "stored"))
            return 1;
    if (w->ext && w->ext->seq == row->seq) {
        if (check_checkpoint_at(w, w->ext, hash, "exported"))
            return 1;
        w->ext_seen = 1;
    }
    memcpy(w->prev, hash, MV_HASH_BYTES);
    w->expect_seq++;
    w->rep->entries++;
    w->rep->last_seq = row->seq;
    return 0;
}

/* A stored checkpoint may not point into a gap the walk skipped: their seqs
 * must each be met during the walk, so any left over lie past the end. */
static int check_leftovers(walk *w)
{
    if (w->next_cp < w->n_cps) {
        char what[160];
        snprintf(what, sizeof what,
                 "trail truncated: a checkpoint was signed at entry %lld but "
                 "the trail ends at %lld",
                 (long long)w->cps[w->next_cp].seq, (long long)w->rep->last_seq);
        return tamper(w, w->rep->last_seq + 1, what);
    }
    if (w->ext && !w->ext_seen) {
        char what[160];
        snprintf(what, sizeof what,
                 "trail truncated: the exported checkpoint covers entry %lld "
                 "but the trail ends at %lld",
                 (long long)w->ext->seq, (long long)w->rep->last_seq);
        return tamper(w, w->rep->last_seq + 1, what);
    }
    return 0;
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

static int load_external(walk *w, const char *text, size_t len,
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

int audit_verify(mv_store *s, const char *external, size_t external_len,
                 audit_report *rep, mv_err *err)
{
    memset(rep, 0, sizeof *rep);
    walk w = { .s = s, .expect_seq = 1, .rep = rep, .err = err };
    store_id(s, w.store_id);
    store_checkpoint ext;
    store_checkpoint *cps = NULL;
    if (chain_pubkey(s, w.pub, err) != 0 ||
        check_stored_pubkey(s, w.pub, err) != 0 ||
        (external && load_external(&w, external, external_len, &ext, err) != 0) ||
        store_checkpoints(s, &cps, &w.n_cps, err) != 0)
        return -1;
    w.cps = cps;
    rep->checkpoints = (int64_t)w.n_cps;
    int rc = store_audit_scan(s, 1, visit_row, &w, err);
    if (rc == 0)
        rc = check_leftovers(&w);
    free(cps);
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
