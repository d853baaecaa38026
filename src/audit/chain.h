/*
 * chain.h -- internal to audit/: the byte encodings that are hashed and
 * signed.  Writer (trail.c) and verifier (verify.c) must agree on them to the
 * bit, so they are defined once, here.
 */
#ifndef MV_AUDIT_CHAIN_H
#define MV_AUDIT_CHAIN_H

#include "audit.h"

/* The link of row: keyed BLAKE2b(prev || encoding of every field but hash). */
int chain_link_row(mv_store *s, const store_audit_row *row,
                   unsigned char out[MV_HASH_BYTES], mv_err *err);

/* The message a checkpoint signs: domain, store id, seq, time, head hash. */
int chain_checkpoint_msg(const unsigned char store_id[MV_STORE_ID_BYTES],
                         const store_checkpoint *c, mv_buf *msg, mv_err *err);

/* Sign checkpoint c (seq, ts_us, hash set) in place. */
int chain_sign_checkpoint(mv_store *s, store_checkpoint *c, mv_err *err);

/* The store's audit public key, derived from its keys (not read from meta). */
int chain_pubkey(mv_store *s, unsigned char pub[MV_PUBKEY_BYTES], mv_err *err);

#define AUDIT_META_PUBKEY "audit_pubkey"

#endif
