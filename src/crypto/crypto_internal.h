/*
 * crypto_internal.h -- what the files of src/crypto/ share with each other and
 * with nobody else: where every secret lives, the keyring's layout, the
 * data-key cache and the wrap/unwrap primitive.
 *
 * Why it exists: crypto.h is message-shaped and never exposes a key, but the
 * implementation is split over several files (keyring, data keys, derivation,
 * key files) that all need one agreed answer to "which memory holds this key
 * and who wipes it".  The answer, everywhere:
 *
 *   - long-lived secrets (root key, master keys, cached data keys, the cache's
 *     own hashing keys) live in slabs allocated once with sodium_malloc and
 *     released with sodium_free, which wipes;
 *   - per-call secrets (a data key copied out of the cache, derived subkeys,
 *     a signing key, a keyed hash state, a key file's text) live in the
 *     calling thread's crypto_scratch, itself sodium_malloc memory, and are
 *     wiped by the function that used them before it returns.
 *
 * Only the files of src/crypto/ and the crypto unit test (for the cache
 * inspection hook at the end) include this header.
 */
#ifndef MV_CRYPTO_INTERNAL_H
#define MV_CRYPTO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#include "crypto.h"

/* ---- Sizes -------------------------------------------------------------- */

#define CRYPTO_NONCE_BYTES  24  /* XChaCha20-Poly1305-IETF nonce */
#define CRYPTO_TAG_BYTES    16  /* Poly1305 tag                  */
/* Every sealed message and wrapped key: nonce || ciphertext || tag. */
#define CRYPTO_SEAL_OVERHEAD (CRYPTO_NONCE_BYTES + CRYPTO_TAG_BYTES)
/* A wrapped 32-byte key (master or data key) is exactly this long. */
#define CRYPTO_WRAPPED_KEY_BYTES (MV_KEY_BYTES + CRYPTO_SEAL_OVERHEAD)

/* The contract's sizes are libsodium's. */
_Static_assert(MV_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "AEAD key size");
_Static_assert(CRYPTO_NONCE_BYTES ==
               crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "AEAD nonce size");
_Static_assert(CRYPTO_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "AEAD tag size");
_Static_assert(MV_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(MV_INDEX_BYTES == crypto_auth_hmacsha256_BYTES &&
               MV_KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES, "HMAC sizes");
_Static_assert(MV_SIG_BYTES == crypto_sign_BYTES &&
               MV_PUBKEY_BYTES == crypto_sign_PUBLICKEYBYTES &&
               crypto_sign_SEEDBYTES == MV_KEY_BYTES, "Ed25519 sizes");
_Static_assert(MV_HASH_BYTES == crypto_generichash_BYTES &&
               MV_KEY_BYTES == crypto_generichash_KEYBYTES, "BLAKE2b sizes");

#define CRYPTO_MAX_MASTERS  16  /* unlocked master versions per keyring */

/* The data-key cache: set-associative, CRYPTO_CACHE_WAYS entries per set. */
#define CRYPTO_CACHE_SETS   1024
#define CRYPTO_CACHE_WAYS   4
#define CRYPTO_CACHE_SLOTS  (CRYPTO_CACHE_SETS * CRYPTO_CACHE_WAYS)

/* A key file: this header line, base64 of the root key, a newline. */
#define CRYPTO_KEYFILE_MAGIC "medvault-key-v1\n"

/* ---- Initialisation and the per-thread secure scratch area -------------- */

/* Run libsodium's initialisation once (crypto_init without the error). */
int crypto_ensure_init(mv_err *err);

/* Per-call secrets of one thread.  Lives in sodium_malloc memory (guard pages,
 * locked, wiped on free); allocated on first use by each thread and freed at
 * thread exit.  A public function that uses it calls crypto_scratch_wipe
 * before returning, so between calls it holds nothing.  Public functions never
 * call each other while holding scratch contents, so there is no nesting. */
typedef struct crypto_scratch {
    crypto_generichash_state hash_state;       /* a keyed hash in progress */
    unsigned char data_key[MV_KEY_BYTES];      /* one unwrapped data key   */
    unsigned char subkey[MV_KEY_BYTES];        /* derived subkey, seed, or
                                                  an unwrapped master key */
    unsigned char sign_sk[crypto_sign_SECRETKEYBYTES]; /* Ed25519 secret  */
    unsigned char key_text[128];               /* a key file's contents    */
} crypto_scratch;

/* The calling thread's scratch area (never NULL on success; do not free). */
crypto_scratch *crypto_scratch_get(mv_err *err);
/* Wipe all of it (cheap: a few hundred bytes). */
void crypto_scratch_wipe(crypto_scratch *s);

/* ---- AEAD wrap/unwrap of one key or message ----------------------------- */

/* Encrypt n bytes of p under key with a fresh random nonce; out must hold
 * n + CRYPTO_SEAL_OVERHEAD bytes and receives nonce || ciphertext || tag. */
void keyring_aead_seal(const unsigned char key[MV_KEY_BYTES],
                       const unsigned char *ad, size_t ad_len,
                       const unsigned char *p, size_t n, unsigned char *out);
/* Inverse; out must hold in_len - CRYPTO_SEAL_OVERHEAD bytes.  Returns -1
 * when in is too short or does not authenticate (out may then have been
 * zeroed, never filled with unauthenticated plaintext). */
int keyring_aead_open(const unsigned char key[MV_KEY_BYTES],
                      const unsigned char *ad, size_t ad_len,
                      const unsigned char *in, size_t in_len,
                      unsigned char *out);

/* ---- The data-key cache ------------------------------------------------- */

/* Long-lived cache secrets: one sodium_malloc slab. */
typedef struct dk_cache_secrets {
    unsigned char keys[CRYPTO_CACHE_SLOTS][MV_KEY_BYTES]; /* unwrapped */
    unsigned char fingerprint_key[crypto_generichash_KEYBYTES];
    unsigned char owner_hash_key[crypto_shorthash_KEYBYTES];
} dk_cache_secrets;

/* Non-secret bookkeeping of one slot (ordinary heap). */
typedef struct dk_cache_slot {
    unsigned char fingerprint[crypto_generichash_BYTES]; /* see dk_cache_id */
    uint64_t owner_hash;
    uint32_t mk_version;
    unsigned char used;
    unsigned char referenced;  /* clock bit: set on hit, cleared by the hand */
} dk_cache_slot;

typedef struct dk_cache {
    dk_cache_secrets *secrets;               /* sodium_malloc, owned        */
    dk_cache_slot slots[CRYPTO_CACHE_SLOTS]; /* slot i <-> secrets->keys[i]  */
    unsigned hand[CRYPTO_CACHE_SETS];        /* clock hand of each set      */
} dk_cache;

/* What identifies one cached data key: the owner (selects the set, so all
 * entries of one owner sit together), the master version, and a keyed
 * fingerprint of (data-key AD || wrapped bytes) -- a changed stored row is a
 * different entry, never a stale hit. */
typedef struct dk_cache_id {
    unsigned char fingerprint[crypto_generichash_BYTES];
    uint64_t owner_hash;
    uint32_t mk_version;
} dk_cache_id;

/* The cache is not locked by itself: every call below must be made with the
 * owning keyring's lock held, except init, free and identify (which reads
 * only the hashing keys, fixed after init). */
int  dk_cache_init(dk_cache *c, mv_err *err);
void dk_cache_free(dk_cache *c);
void dk_cache_identify(const dk_cache *c, const char *owner,
                       const unsigned char *ad, size_t ad_len,
                       const unsigned char *wrapped, size_t wrapped_len,
                       uint32_t mk_version, dk_cache_id *id);
/* 1 and the key copied to out on a hit, 0 on a miss. */
int  dk_cache_get(dk_cache *c, const dk_cache_id *id,
                  unsigned char out[MV_KEY_BYTES]);
void dk_cache_put(dk_cache *c, const dk_cache_id *id,
                  const unsigned char key[MV_KEY_BYTES]);
/* Wipe every entry of owner / of one master version. */
void dk_cache_forget_owner(dk_cache *c, const char *owner);
void dk_cache_forget_version(dk_cache *c, uint32_t mk_version);
/* Number of live entries of owner (the unit test's view into the cache). */
size_t dk_cache_count_owner(const dk_cache *c, const char *owner);

/* ---- The keyring -------------------------------------------------------- */

/* Long-lived keyring secrets: one sodium_malloc slab. */
typedef struct keyring_secrets {
    unsigned char root[MV_KEY_BYTES];
    unsigned char master[CRYPTO_MAX_MASTERS][MV_KEY_BYTES];
} keyring_secrets;

struct crypto_keyring {
    pthread_mutex_t lock;        /* guards everything below except `current`
                                    reads (atomic)                           */
    keyring_secrets *secrets;    /* sodium_malloc, owned                     */
    uint32_t master_version[CRYPTO_MAX_MASTERS]; /* 0 = slot empty           */
    _Atomic uint32_t current;    /* version wrapping new data keys, 0 = none */
    unsigned char store_id[MV_STORE_ID_BYTES];   /* zeros until set           */
    dk_cache *cache;             /* heap, owned                               */
};

/* A keyring with an uninitialised root key (the caller fills
 * (*out)->secrets->root) and no master keys.  Free with crypto_keyring_free. */
int keyring_alloc(crypto_keyring **out, mv_err *err);

/* With kr->lock held: the unlocked master key of version, or NULL. */
const unsigned char *keyring_master_locked(const crypto_keyring *kr,
                                           uint32_t version);

/* Copy the unwrapped data key of ref into out (the caller wipes out):
 * from the cache, or unwrapped under ref's master version and then cached. */
int keyring_data_key(crypto_keyring *kr, const crypto_dk_ref *ref,
                     unsigned char out[MV_KEY_BYTES], mv_err *err);

/* Test hook: live cache entries of owner. */
size_t crypto_dk_cache_count(crypto_keyring *kr, const char *owner);

#endif /* MV_CRYPTO_INTERNAL_H */
