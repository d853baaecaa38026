/*
 * keyring.c -- the keyring object and the master keys it holds.
 *
 * Why it exists: this is the one place that decides where the root key and
 * the master keys live (a single sodium_malloc slab owned by the keyring),
 * how a master key is wrapped under the root key (XChaCha20-Poly1305, AD
 * binding the store id and the version, so a wrapped master cannot be moved
 * to another store or relabelled as another version), and when a master key
 * stops being usable (master_forget also drops every data key it unwrapped
 * from the cache).  Data keys are in datakey.c, root-key sources in
 * keyfile.c and passphrase.c.
 */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#define MASTER_AD_LABEL "medvault/master/v1"
#define MASTER_AD_BYTES (sizeof MASTER_AD_LABEL - 1 + MV_STORE_ID_BYTES + 4)

/* ---- AEAD helpers ------------------------------------------------------- */

void keyring_aead_seal(const unsigned char key[MV_KEY_BYTES],
                       const unsigned char *ad, size_t ad_len,
                       const unsigned char *p, size_t n, unsigned char *out)
{
    randombytes_buf(out, CRYPTO_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + CRYPTO_NONCE_BYTES, NULL, p, n, ad, ad_len, NULL, out, key);
}

int keyring_aead_open(const unsigned char key[MV_KEY_BYTES],
                      const unsigned char *ad, size_t ad_len,
                      const unsigned char *in, size_t in_len,
                      unsigned char *out)
{
    if (in_len < CRYPTO_SEAL_OVERHEAD)
        return -1;
    /* libsodium verifies the tag before decrypting anything. */
    return crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, NULL, NULL, in + CRYPTO_NONCE_BYTES,
        in_len - CRYPTO_NONCE_BYTES, ad, ad_len, in, key) == 0 ? 0 : -1;
}

/* ---- Keyring lifetime --------------------------------------------------- */

int keyring_alloc(crypto_keyring **out, mv_err *err)
{
    *out = NULL;
    if (crypto_ensure_init(err) != 0)
        return -1;
    crypto_keyring *kr = mv_calloc(1, sizeof *kr, err);
    if (kr == NULL)
        return -1;
    if (pthread_mutex_init(&kr->lock, NULL) != 0) {
        free(kr);
        return mv_fail(err, MV_E_INTERNAL, "cannot create keyring lock");
    }
    atomic_init(&kr->current, 0);
    /* From here on crypto_keyring_free copes with whatever is still NULL. */
    kr->secrets = sodium_malloc(sizeof *kr->secrets);
    kr->cache = calloc(1, sizeof *kr->cache);
    if (kr->secrets == NULL || kr->cache == NULL) {
        crypto_keyring_free(kr);
        return mv_fail(err, MV_E_NOMEM, "cannot allocate key memory");
    }
    sodium_memzero(kr->secrets, sizeof *kr->secrets);
    if (dk_cache_init(kr->cache, err) != 0) {
        crypto_keyring_free(kr);
        return -1;
    }
    *out = kr;
    return 0;
}

void crypto_keyring_free(crypto_keyring *kr)
{
    if (kr == NULL)
        return;
    pthread_mutex_destroy(&kr->lock);
    dk_cache_free(kr->cache);   /* wipes the cached data keys */
    free(kr->cache);
    sodium_free(kr->secrets);   /* wipes root and master keys */
    free(kr);
}

void crypto_keyring_set_store_id(crypto_keyring *kr,
                                 const unsigned char id[MV_STORE_ID_BYTES])
{
    pthread_mutex_lock(&kr->lock);
    memcpy(kr->store_id, id, MV_STORE_ID_BYTES);
    pthread_mutex_unlock(&kr->lock);
}

#define ROOT_CHECK_LABEL "medvault/root-check/v1"

void crypto_root_check(crypto_keyring *kr, unsigned char out[MV_HASH_BYTES])
{
    crypto_generichash_state st;
    pthread_mutex_lock(&kr->lock);
    crypto_generichash_init(&st, kr->secrets->root, MV_KEY_BYTES, MV_HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)ROOT_CHECK_LABEL,
                              sizeof ROOT_CHECK_LABEL - 1);
    crypto_generichash_update(&st, kr->store_id, MV_STORE_ID_BYTES);
    pthread_mutex_unlock(&kr->lock);
    crypto_generichash_final(&st, out, MV_HASH_BYTES);
    sodium_memzero(&st, sizeof st);
}

void crypto_wrapped_free(crypto_wrapped *w)
{
    if (w == NULL)
        return;
    free(w->data);
    w->data = NULL;
    w->len = 0;
}

/* ---- Master-key slots (all with kr->lock held) -------------------------- */

static int master_slot_locked(const crypto_keyring *kr, uint32_t version)
{
    for (int i = 0; i < CRYPTO_MAX_MASTERS; i++)
        if (kr->master_version[i] == version)
            return i;
    return -1;
}

const unsigned char *keyring_master_locked(const crypto_keyring *kr,
                                           uint32_t version)
{
    int i = version == 0 ? -1 : master_slot_locked(kr, version);
    return i < 0 ? NULL : kr->secrets->master[i];
}

/* The AD of a wrapped master key: label || store id || version (BE). */
static void master_ad_locked(const crypto_keyring *kr, uint32_t version,
                             unsigned char ad[MASTER_AD_BYTES])
{
    size_t label = sizeof MASTER_AD_LABEL - 1;
    memcpy(ad, MASTER_AD_LABEL, label);
    memcpy(ad + label, kr->store_id, MV_STORE_ID_BYTES);
    unsigned char *v = ad + label + MV_STORE_ID_BYTES;
    v[0] = (unsigned char)(version >> 24);
    v[1] = (unsigned char)(version >> 16);
    v[2] = (unsigned char)(version >> 8);
    v[3] = (unsigned char)version;
}

/* Slot for version: its existing slot, else a free one, else -1. */
static int master_claim_slot_locked(crypto_keyring *kr, uint32_t version)
{
    int i = master_slot_locked(kr, version);
    return i >= 0 ? i : master_slot_locked(kr, 0);
}

static void master_release_slot_locked(crypto_keyring *kr, int i)
{
    sodium_memzero(kr->secrets->master[i], MV_KEY_BYTES);
    kr->master_version[i] = 0;
}

/* ---- Master keys -------------------------------------------------------- */

int crypto_master_new(crypto_keyring *kr, uint32_t version,
                      crypto_wrapped *out, mv_err *err)
{
    out->data = NULL;
    out->len = 0;
    if (version == 0)
        return mv_fail(err, MV_E_INVALID, "master key version 0 is reserved");
    unsigned char *wrapped = malloc(CRYPTO_WRAPPED_KEY_BYTES);
    if (wrapped == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");

    pthread_mutex_lock(&kr->lock);
    int rc = -1;
    int i = master_slot_locked(kr, version);
    if (i >= 0) {
        mv_fail(err, MV_E_EXISTS, "master key version %u already exists",
                (unsigned)version);
    } else if ((i = master_slot_locked(kr, 0)) < 0) {
        mv_fail(err, MV_E_INVALID, "too many master keys unlocked (%d)",
                CRYPTO_MAX_MASTERS);
    } else {
        unsigned char ad[MASTER_AD_BYTES];
        master_ad_locked(kr, version, ad);
        randombytes_buf(kr->secrets->master[i], MV_KEY_BYTES);
        keyring_aead_seal(kr->secrets->root, ad, sizeof ad,
                         kr->secrets->master[i], MV_KEY_BYTES, wrapped);
        kr->master_version[i] = version;
        rc = 0;
    }
    pthread_mutex_unlock(&kr->lock);

    if (rc != 0) {
        free(wrapped);
        return -1;
    }
    out->data = wrapped;
    out->len = CRYPTO_WRAPPED_KEY_BYTES;
    return 0;
}

int crypto_master_load(crypto_keyring *kr, uint32_t version,
                       const unsigned char *wrapped, size_t len, mv_err *err)
{
    if (version == 0)
        return mv_fail(err, MV_E_INVALID, "master key version 0 is reserved");
    if (wrapped == NULL || len != CRYPTO_WRAPPED_KEY_BYTES)
        return mv_fail(err, MV_E_INTEGRITY,
                       "stored master key version %u has the wrong length",
                       (unsigned)version);
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;

    pthread_mutex_lock(&kr->lock);
    int rc = -1;
    int i = master_claim_slot_locked(kr, version);
    unsigned char ad[MASTER_AD_BYTES];
    master_ad_locked(kr, version, ad);
    if (i < 0) {
        mv_fail(err, MV_E_INVALID, "too many master keys unlocked (%d)",
                CRYPTO_MAX_MASTERS);
    } else if (keyring_aead_open(kr->secrets->root, ad, sizeof ad, wrapped,
                                len, s->subkey) != 0) {
        /* Unwrapped into scratch first, so a failed reload of a version that
         * is already unlocked leaves that key intact. */
        mv_fail(err, MV_E_KEY, "wrong passphrase or key file");
    } else {
        memcpy(kr->secrets->master[i], s->subkey, MV_KEY_BYTES);
        kr->master_version[i] = version;
        /* Reloading a version may bring different bytes: nothing unwrapped
         * under the old ones may be served any more. */
        dk_cache_forget_version(kr->cache, version);
        rc = 0;
    }
    pthread_mutex_unlock(&kr->lock);
    crypto_scratch_wipe(s);
    return rc;
}

int crypto_master_use(crypto_keyring *kr, uint32_t version, mv_err *err)
{
    pthread_mutex_lock(&kr->lock);
    int loaded = keyring_master_locked(kr, version) != NULL;
    if (loaded)
        atomic_store(&kr->current, version);
    pthread_mutex_unlock(&kr->lock);
    if (!loaded)
        return mv_fail(err, MV_E_KEY, "master key version %u is not unlocked",
                       (unsigned)version);
    return 0;
}

void crypto_master_forget(crypto_keyring *kr, uint32_t version)
{
    if (version == 0)
        return;
    pthread_mutex_lock(&kr->lock);
    int i = master_slot_locked(kr, version);
    if (i >= 0) {
        master_release_slot_locked(kr, i);
        dk_cache_forget_version(kr->cache, version);
        if (atomic_load(&kr->current) == version)
            atomic_store(&kr->current, 0);
    }
    pthread_mutex_unlock(&kr->lock);
}

uint32_t crypto_master_current(const crypto_keyring *kr)
{
    return atomic_load(&kr->current);
}
