/*
 * chain.h -- internal to audit/: the byte encodings that are hashed and
 * signed.  Writer (trail.c) and verifier (verify.c) must agree on them to the
 * bit, so they are defined once, here.
 */
#ifndef MV_AUDIT_CHAIN_H
#define MV_AUDIT_CHAIN_H

#include "audit.h"

/* Open the store's chain (the key derived once; close with
 * crypto_chain_close). */
int chain_open(mv_store *s, crypto_chain **out, mv_err *err);

/* The link of row: keyed BLAKE2b(prev || encoding of every field but hash).
 * scratch is a caller-owned buffer reused across calls (its contents are
 * replaced; free it with mv_buf_free when done). */
int chain_link_row(const crypto_chain *c, const store_audit_row *row,
                   mv_buf *scratch, unsigned char out[MV_HASH_BYTES],
                   mv_err *err);

/* The message a checkpoint signs: domain, store id, seq, time, head hash. */
int chain_checkpoint_msg(const unsigned char store_id[MV_STORE_ID_BYTES],
                         const store_checkpoint *c, mv_buf *msg, mv_err *err);

/* Sign checkpoint c (seq, ts_us, hash set) in place. */
int chain_sign_checkpoint(mv_store *s, store_checkpoint *c, mv_err *err);

/* The store's audit public key, derived from its keys (not read from meta). */
int chain_pubkey(mv_store *s, unsigned char pub[MV_PUBKEY_BYTES], mv_err *err);

#define AUDIT_META_PUBKEY "audit_pubkey"

/* audit_verify() with an explicit number of parallel segments (1..4) instead
 * of one per core; the tests use it to put seams where tampering is. */
int audit_verify_segmented(mv_store *s, const char *external,
                           size_t external_len, size_t segments,
                           audit_report *rep, mv_err *err);

#endif
