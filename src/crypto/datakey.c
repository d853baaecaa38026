/*
 * datakey.c -- per-owner data keys and the resource bodies sealed under them.
 *
 * Why it exists: a data key is the unit of crypto-shredding (one per patient,
 * plus the reserved owners), so it is wrapped under a master key with AD that
 * binds the owner and the master version: a wrapped key copied onto another
 * owner's row, or relabelled with another version, fails to unwrap.  This
 * file turns a crypto_dk_ref (what the store keeps) into the unwrapped key,
 * via the cache, and seals and opens bodies with it.  The unwrapped key only
 * ever sits in the cache slab and, for the length of one call, in the
 * thread's secure scratch.
 */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#define DK_AD_LABEL "medvault/dk/v1"
#define OPEN_FAILED_MSG \
    "ciphertext failed authentication (tampered, or moved from another record)"

/* ---- References and their AD -------------------------------------------- */

static int owner_check(const char *owner, mv_err *err)
{
    if (owner == NULL || owner[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "data key without an owner");
    return 0;
}

static int ref_check(const crypto_dk_ref *ref, mv_err *err)
{
    if (ref == NULL)
        return mv_fail(err, MV_E_INVALID, "no data key reference");
    if (owner_check(ref->owner, err) != 0)
        return -1;
    if (ref->wrapped == NULL)
        return mv_fail(err, MV_E_INVALID, "data key of owner '%.64s' is empty",
                       ref->owner);
    return 0;
}

/* AD of a wrapped data key, into ad (heap, caller frees with mv_buf_free):
 * label || owner length (BE u32) || owner || master version (BE u32). */
static int dk_ad_build(const char *owner, uint32_t mk_version, mv_buf *ad,
                       mv_err *err)
{
    unsigned char be[4] = {
        (unsigned char)(mk_version >> 24), (unsigned char)(mk_version >> 16),
        (unsigned char)(mk_version >> 8), (unsigned char)mk_version
    };
    if (mv_buf_append(ad, DK_AD_LABEL, sizeof DK_AD_LABEL - 1, err) != 0 ||
        mv_buf_append_field(ad, owner, strlen(owner), err) != 0 ||
        mv_buf_append(ad, be, sizeof be, err) != 0) {
        mv_buf_free(ad);
        return -1;
    }
    return 0;
}

/* ---- Unwrapping (cache first) ------------------------------------------- */

/* With kr->lock held: unwrap ref under its master version into out and cache
 * it. */
static int dk_unwrap_locked(crypto_keyring *kr, const crypto_dk_ref *ref,
                            const mv_buf *ad, const dk_cache_id *id,
                            unsigned char out[MV_KEY_BYTES], mv_err *err)
{
    const unsigned char *mk = keyring_master_locked(kr, ref->mk_version);
    if (mk == NULL)
        return mv_fail(err, MV_E_KEY,
                       "master key version %u (data key of owner '%.64s') "
                       "is not unlocked", (unsigned)ref->mk_version,
                       ref->owner);
    if (ref->wrapped_len != CRYPTO_WRAPPED_KEY_BYTES ||
        keyring_aead_open(mk, ad->data, ad->len, ref->wrapped,
                         ref->wrapped_len, out) != 0) {
        sodium_memzero(out, MV_KEY_BYTES);
        return mv_fail(err, MV_E_INTEGRITY,
                       "data key of owner '%.64s' failed authentication "
                       "(tampered, or moved from another owner)", ref->owner);
    }
    dk_cache_put(kr->cache, id, out);
    return 0;
}

int keyring_data_key(crypto_keyring *kr, const crypto_dk_ref *ref,
                     unsigned char out[MV_KEY_BYTES], mv_err *err)
{
    if (ref_check(ref, err) != 0)
        return -1;
    mv_buf ad = {0};
    if (dk_ad_build(ref->owner, ref->mk_version, &ad, err) != 0)
        return -1;
    dk_cache_id id;
    dk_cache_identify(kr->cache, ref->owner, ad.data, ad.len, ref->wrapped,
                      ref->wrapped_len, ref->mk_version, &id);
    int rc = 0;
    pthread_mutex_lock(&kr->lock);
    if (!dk_cache_get(kr->cache, &id, out))
        rc = dk_unwrap_locked(kr, ref, &ad, &id, out, err);
    pthread_mutex_unlock(&kr->lock);
    mv_buf_free(&ad);
    return rc;
}

/* ---- Wrapping under the current master ---------------------------------- */

/* Wrap key for owner under the current master key.  out->data is new heap
 * (caller frees with crypto_wrapped_free).  Also caches the key. */
static int dk_wrap_current(crypto_keyring *kr, const char *owner,
                           const unsigned char key[MV_KEY_BYTES],
                           uint32_t *mk_version, crypto_wrapped *out,
                           mv_err *err)
{
    unsigned char *wrapped = malloc(CRYPTO_WRAPPED_KEY_BYTES);
    if (wrapped == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    mv_buf ad = {0};
    int rc = -1;

    pthread_mutex_lock(&kr->lock);
    uint32_t version = atomic_load(&kr->current);
    const unsigned char *mk = keyring_master_locked(kr, version);
    if (mk == NULL) {
        mv_fail(err, MV_E_KEY, "no current master key to wrap data keys");
    } else if (dk_ad_build(owner, version, &ad, err) == 0) {
        keyring_aead_seal(mk, ad.data, ad.len, key, MV_KEY_BYTES, wrapped);
        dk_cache_id id;
        dk_cache_identify(kr->cache, owner, ad.data, ad.len, wrapped,
                          CRYPTO_WRAPPED_KEY_BYTES, version, &id);
        dk_cache_put(kr->cache, &id, key);
        rc = 0;
    }
    pthread_mutex_unlock(&kr->lock);

    mv_buf_free(&ad);
    if (rc != 0) {
        free(wrapped);
        return -1;
    }
    out->data = wrapped;
    out->len = CRYPTO_WRAPPED_KEY_BYTES;
    *mk_version = version;
    return 0;
}

int crypto_dk_new(crypto_keyring *kr, const char *owner, uint32_t *mk_version,
                  crypto_wrapped *out, mv_err *err)
{
    out->data = NULL;
    out->len = 0;
    if (owner_check(owner, err) != 0)
        return -1;
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    randombytes_buf(s->data_key, MV_KEY_BYTES);
    int rc = dk_wrap_current(kr, owner, s->data_key, mk_version, out, err);
    crypto_scratch_wipe(s);
    return rc;
}

int crypto_dk_rewrap(crypto_keyring *kr, const crypto_dk_ref *ref,
                     uint32_t *mk_version, crypto_wrapped *out, mv_err *err)
{
    out->data = NULL;
    out->len = 0;
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    int rc = keyring_data_key(kr, ref, s->data_key, err);
    if (rc == 0)
        rc = dk_wrap_current(kr, ref->owner, s->data_key, mk_version, out,
                             err);
    crypto_scratch_wipe(s);
    return rc;
}

void crypto_dk_forget(crypto_keyring *kr, const char *owner)
{
    if (kr == NULL || owner == NULL)
        return;
    pthread_mutex_lock(&kr->lock);
    dk_cache_forget_owner(kr->cache, owner);
    pthread_mutex_unlock(&kr->lock);
}

size_t crypto_dk_cache_count(crypto_keyring *kr, const char *owner)
{
    pthread_mutex_lock(&kr->lock);
    size_t n = dk_cache_count_owner(kr->cache, owner);
    pthread_mutex_unlock(&kr->lock);
    return n;
}

/* ---- Sealed bodies ------------------------------------------------------ */
/* out is an output parameter: it is overwritten, not appended to or freed, so
 * pass an empty mv_buf; on success the caller owns out->data (mv_buf_free).
 * On failure out is left untouched. */

static int bytes_check(const void *p, size_t n, const char *what, mv_err *err)
{
    if (p == NULL && n > 0)
        return mv_fail(err, MV_E_INVALID, "%s is NULL", what);
    return 0;
}

int crypto_seal(crypto_keyring *kr, const crypto_dk_ref *ref,
                const void *ad, size_t ad_len, const void *pt, size_t pt_len,
                mv_buf *out, mv_err *err)
{
    if (bytes_check(ad, ad_len, "associated data", err) != 0 ||
        bytes_check(pt, pt_len, "plaintext", err) != 0)
        return -1;
    if (pt_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return mv_fail(err, MV_E_INVALID, "plaintext too long to seal");
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    mv_buf sealed = {0};
    int rc = keyring_data_key(kr, ref, s->data_key, err);
    if (rc == 0)
        rc = mv_buf_reserve(&sealed, pt_len + CRYPTO_SEAL_OVERHEAD, err);
    if (rc == 0) {
        keyring_aead_seal(s->data_key, ad, ad_len, pt, pt_len, sealed.data);
        sealed.len = pt_len + CRYPTO_SEAL_OVERHEAD;
        *out = sealed;
    }
    crypto_scratch_wipe(s);
    return rc;
}

int crypto_open(crypto_keyring *kr, const crypto_dk_ref *ref,
                const void *ad, size_t ad_len, const void *ct, size_t ct_len,
                mv_buf *out, mv_err *err)
{
    if (bytes_check(ad, ad_len, "associated data", err) != 0 ||
        bytes_check(ct, ct_len, "ciphertext", err) != 0)
        return -1;
    if (ct_len < CRYPTO_SEAL_OVERHEAD)
        return mv_fail(err, MV_E_INTEGRITY, OPEN_FAILED_MSG);
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    size_t pt_len = ct_len - CRYPTO_SEAL_OVERHEAD;
    mv_buf plain = {0};
    int rc = keyring_data_key(kr, ref, s->data_key, err);
    /* At least one byte, so an empty plaintext still has a buffer. */
    if (rc == 0)
        rc = mv_buf_reserve(&plain, pt_len > 0 ? pt_len : 1, err);
    if (rc == 0 && keyring_aead_open(s->data_key, ad, ad_len, ct, ct_len,
                                    plain.data) != 0)
        rc = mv_fail(err, MV_E_INTEGRITY, OPEN_FAILED_MSG);
    if (rc == 0) {
        plain.len = pt_len;
        *out = plain;
    } else {
        mv_buf_free(&plain);
    }
    crypto_scratch_wipe(s);
    return rc;
}
