/*
 * derive.c -- keys derived from the reserved data keys: blind-index subkeys
 * ("#index"), the audit chain key and the checkpoint signing key ("#audit").
 *
 * Why it exists: search tokens, the audit hash chain and checkpoint
 * signatures each need their own key, yet storing more wrapped keys would
 * mean more rows to rotate and protect.  Instead each is derived on demand
 * with keyed BLAKE2b-256 from its owner's data key and a distinct label, so
 * the keys are independent of each other (and, for the blind index, of every
 * other field) and rotate with the data key's wrapping for free.  Derived
 * keys exist only in the calling thread's secure scratch, for one call.
 */
#include "crypto_internal.h"

#include <string.h>

#define BLIND_INDEX_LABEL "medvault/blind-index/v1"  /* followed by a NUL */
#define CHAIN_KEY_LABEL   "medvault/audit-chain/v1"
#define SIGN_SEED_LABEL   "medvault/audit-sign/v1"

/* Derived keys come only from the reserved owner meant for them: a patient's
 * data key must never become an index or signing key by mistake. */
static int require_owner(const crypto_dk_ref *ref, const char *owner,
                         const char *purpose, mv_err *err)
{
    if (ref == NULL || ref->owner == NULL || strcmp(ref->owner, owner) != 0)
        return mv_fail(err, MV_E_INVALID, "%s needs the %s data key",
                       purpose, owner);
    return 0;
}

/* Into the scratch: ref's data key, then out = BLAKE2b-256 keyed with it of
 * (label || extra).  The caller wipes the scratch. */
static int derive_key(crypto_keyring *kr, const crypto_dk_ref *ref,
                      crypto_scratch *s, const char *label, size_t label_len,
                      const char *extra, unsigned char out[MV_KEY_BYTES],
                      mv_err *err)
{
    if (keyring_data_key(kr, ref, s->data_key, err) != 0)
        return -1;
    crypto_generichash_state *st = &s->hash_state;
    crypto_generichash_init(st, s->data_key, MV_KEY_BYTES, MV_KEY_BYTES);
    crypto_generichash_update(st, (const unsigned char *)label, label_len);
    if (extra != NULL)
        crypto_generichash_update(st, (const unsigned char *)extra,
                                  strlen(extra));
    crypto_generichash_final(st, out, MV_KEY_BYTES);
    return 0;
}

/* ---- Blind index -------------------------------------------------------- */

int crypto_blind_index(crypto_keyring *kr, const crypto_dk_ref *index_ref,
                       const char *field, const void *value, size_t len,
                       unsigned char out[MV_INDEX_BYTES], mv_err *err)
{
    if (require_owner(index_ref, MV_OWNER_INDEX, "a blind index", err) != 0)
        return -1;
    if (field == NULL || field[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "blind index without a field name");
    if (value == NULL && len > 0)
        return mv_fail(err, MV_E_INVALID, "blind index value is NULL");
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    /* The label's NUL separates it from the field name. */
    int rc = derive_key(kr, index_ref, s, BLIND_INDEX_LABEL,
                        sizeof BLIND_INDEX_LABEL, field, s->subkey, err);
    if (rc == 0)
        crypto_auth_hmacsha256(out, value, len, s->subkey);
    crypto_scratch_wipe(s);
    return rc;
}

/* ---- Audit chain -------------------------------------------------------- */

/* The chain key is derived once per open chain and kept in its own
 * sodium_malloc block: a trail links every entry with it, and re-deriving it
 * per entry would triple the hashing on the audit hot path. */
struct crypto_chain {
    unsigned char key[MV_KEY_BYTES];
};

int crypto_chain_open(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                      crypto_chain **out, mv_err *err)
{
    if (require_owner(audit_ref, MV_OWNER_AUDIT, "the audit chain", err) != 0)
        return -1;
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    crypto_chain *c = sodium_malloc(sizeof *c);
    if (c == NULL) {
        crypto_scratch_wipe(s);
        return mv_fail(err, MV_E_NOMEM, "out of secure memory for the audit chain key");
    }
    int rc = derive_key(kr, audit_ref, s, CHAIN_KEY_LABEL,
                        sizeof CHAIN_KEY_LABEL - 1, NULL, c->key, err);
    crypto_scratch_wipe(s);
    if (rc != 0) {
        sodium_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void crypto_chain_link(const crypto_chain *c,
                       const unsigned char prev[MV_HASH_BYTES],
                       const void *entry, size_t entry_len,
                       unsigned char out[MV_HASH_BYTES])
{
    /* The state holds key-derived words: it lives on this stack only for
     * the call and is wiped before returning. */
    crypto_generichash_state st;
    crypto_generichash_init(&st, c->key, MV_KEY_BYTES, MV_HASH_BYTES);
    crypto_generichash_update(&st, prev, MV_HASH_BYTES);
    crypto_generichash_update(&st, entry, entry_len);
    crypto_generichash_final(&st, out, MV_HASH_BYTES);
    sodium_memzero(&st, sizeof st);
}

void crypto_chain_close(crypto_chain *c)
{
    if (c != NULL)
        sodium_free(c);   /* wipes */
}

/* ---- Checkpoint signatures ---------------------------------------------- */

/* Into the scratch: the Ed25519 key pair derived from "#audit"; pub may be
 * NULL.  The secret half is left in s->sign_sk; the caller wipes. */
static int sign_keypair(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                        crypto_scratch *s, unsigned char *pub, mv_err *err)
{
    if (require_owner(audit_ref, MV_OWNER_AUDIT, "a checkpoint signature",
                      err) != 0)
        return -1;
    if (derive_key(kr, audit_ref, s, SIGN_SEED_LABEL,
                   sizeof SIGN_SEED_LABEL - 1, NULL, s->subkey, err) != 0)
        return -1;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, s->sign_sk, s->subkey);
    if (pub != NULL)
        memcpy(pub, pk, sizeof pk);
    return 0;
}

int crypto_sign_msg(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                    const void *msg, size_t len,
                    unsigned char sig[MV_SIG_BYTES], mv_err *err)
{
    if (msg == NULL && len > 0)
        return mv_fail(err, MV_E_INVALID, "message to sign is NULL");
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    int rc = sign_keypair(kr, audit_ref, s, NULL, err);
    if (rc == 0)
        crypto_sign_detached(sig, NULL, msg, len, s->sign_sk);
    crypto_scratch_wipe(s);
    return rc;
}

int crypto_sign_pubkey(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                       unsigned char pub[MV_PUBKEY_BYTES], mv_err *err)
{
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    int rc = sign_keypair(kr, audit_ref, s, pub, err);
    crypto_scratch_wipe(s);
    return rc;
}

int crypto_sign_verify(const unsigned char pub[MV_PUBKEY_BYTES],
                       const void *msg, size_t len,
                       const unsigned char sig[MV_SIG_BYTES])
{
    if (pub == NULL || sig == NULL || (msg == NULL && len > 0) ||
        crypto_ensure_init(NULL) != 0)
        return -1;
    return crypto_sign_verify_detached(sig, msg, len, pub) == 0 ? 0 : -1;
}
