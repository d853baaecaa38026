/*
 * crypto.h -- keys and authenticated encryption; the only place libsodium
 * is called.
 *
 * What this subsystem owns: every key medvault has, in sodium_malloc memory,
 * wiped on release, never returned to a caller.  Its interface is narrow and
 * message-shaped: callers hand over a *wrapped* key blob together with the
 * data to seal, open, index or sign, and get back only ciphertext, plaintext,
 * an index token or a signature.  That is what lets the keyring later move
 * into a separate privileged process (as OpenSSH's monitor) by changing the
 * transport, not the callers.
 *
 * What it must never do: include any other medvault header except util.h,
 * log, print, or put key material in an error message.
 *
 * The hierarchy:
 *
 *   root key   32 bytes from a key file (outside the data directory) or from
 *              Argon2id(passphrase, salt).  Never stored in the store.
 *     -> master key, versioned: random, stored only wrapped under the root
 *        key (XChaCha20-Poly1305, AD binds store id and version).
 *       -> data key per owner: random, stored only wrapped under the current
 *          master key (AD binds owner and master version).  Owners are patient
 *          ids, plus the reserved "#system" (resources outside any patient),
 *          "#index" (root of the blind-index keys) and "#audit" (root of the
 *          audit chain key and the checkpoint signing key).
 *         -> resource bodies: XChaCha20-Poly1305 under the owner's data key,
 *            with caller-supplied AD (type, id, version, patient).
 *
 * Thread safety: a keyring may be used from several threads at once.
 */
#ifndef MV_CRYPTO_H
#define MV_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "../util/util.h"

#define MV_KEY_BYTES        32  /* every symmetric key                      */
#define MV_STORE_ID_BYTES   16  /* random id of one store                   */
#define MV_SALT_BYTES       16  /* Argon2id salt (crypto_pwhash_SALTBYTES)   */
#define MV_INDEX_BYTES      32  /* one blind-index token (HMAC-SHA-256)      */
#define MV_HASH_BYTES       32  /* audit chain link (keyed BLAKE2b-256)      */
#define MV_SIG_BYTES        64  /* Ed25519 signature                         */
#define MV_PUBKEY_BYTES     32  /* Ed25519 public key                        */

/* Reserved owners (patient ids never start with '#'). */
#define MV_OWNER_SYSTEM "#system"
#define MV_OWNER_INDEX  "#index"
#define MV_OWNER_AUDIT  "#audit"

/* Call once before anything else (idempotent, thread-safe). */
int crypto_init(mv_err *err);

/* Fill p with n cryptographically random bytes. */
void crypto_random(void *p, size_t n);
/* A random identifier: 16 random bytes as 32 lowercase hex characters.
 * out must hold 33 bytes. */
void crypto_random_id(char out[33]);
/* Constant-time comparison; 0 when equal. */
int crypto_memcmp(const void *a, const void *b, size_t n);
/* Overwrite memory that held a secret (cannot be optimised away). */
void crypto_wipe(void *p, size_t n);
/* Unkeyed BLAKE2b-256 of a byte string (fingerprints, not secrets).
 * (Not crypto_hash: libsodium owns that name.) */
void crypto_digest(const void *p, size_t n, unsigned char out[MV_HASH_BYTES]);

/* ---- Root key sources ---------------------------------------------------- */

/* Create a new key file holding a fresh random root key, mode 0600, refusing
 * to overwrite.  The parent directory must exist. */
int crypto_keyfile_create(const char *path, mv_err *err);

/* Argon2id cost of a passphrase-derived root key (stored beside the salt). */
typedef struct crypto_kdf_params {
    uint64_t opslimit;
    size_t   memlimit;
} crypto_kdf_params;
/* Defaults for a new store: libsodium's "moderate" Argon2id limits. */
crypto_kdf_params crypto_kdf_default(void);

/* ---- The keyring --------------------------------------------------------- */

typedef struct crypto_keyring crypto_keyring;

/* Open the root key from a key file.  Refuses (MV_E_PERM) a file that is not
 * a regular file or is readable/writable by group or others. */
int crypto_keyring_from_keyfile(const char *path, crypto_keyring **out,
                                mv_err *err);

/* Derive the root key from a passphrase (bytes, not NUL-terminated; may
 * contain anything).  The passphrase is not kept. */
int crypto_keyring_from_passphrase(const void *pass, size_t pass_len,
                                   const unsigned char salt[MV_SALT_BYTES],
                                   crypto_kdf_params params,
                                   crypto_keyring **out, mv_err *err);

/* Wipe and free every key (NULL is allowed). */
void crypto_keyring_free(crypto_keyring *kr);

/* Bind the keyring to one store: master-key wrapping AD includes this id. */
void crypto_keyring_set_store_id(crypto_keyring *kr,
                                 const unsigned char id[MV_STORE_ID_BYTES]);

/* A check value of the root key for the bound store: keyed BLAKE2b-256,
 * under the root key, of a fixed label and the store id.  Kept beside the
 * wrapped master keys, it lets an opener tell "wrong key" (the check differs)
 * from "damaged master key" (the check matches, the unwrap fails).  It gives
 * an offline guesser nothing a wrapped master key does not already give. */
void crypto_root_check(crypto_keyring *kr, unsigned char out[MV_HASH_BYTES]);

/* A wrapped key as stored: nonce || ciphertext || tag.  Heap, owned by the
 * holder, contains no secret in the clear. */
typedef struct crypto_wrapped {
    unsigned char *data;
    size_t len;
} crypto_wrapped;
void crypto_wrapped_free(crypto_wrapped *w);

/* Master keys.  master_new creates a random master key of the given version,
 * keeps it unlocked and returns it wrapped under the root key.  master_load
 * unwraps a stored one (MV_E_KEY when the root key is wrong).  master_use
 * selects the version that wraps new data keys.  master_forget wipes one. */
int  crypto_master_new(crypto_keyring *kr, uint32_t version,
                       crypto_wrapped *out, mv_err *err);
int  crypto_master_load(crypto_keyring *kr, uint32_t version,
                        const unsigned char *wrapped, size_t len, mv_err *err);
int  crypto_master_use(crypto_keyring *kr, uint32_t version, mv_err *err);
void crypto_master_forget(crypto_keyring *kr, uint32_t version);
uint32_t crypto_master_current(const crypto_keyring *kr);

/* A stored data key: the owner it belongs to, the master version that wraps
 * it, and the wrapped bytes.  The keyring unwraps (and caches) on use. */
typedef struct crypto_dk_ref {
    const char *owner;
    uint32_t mk_version;
    const unsigned char *wrapped;
    size_t wrapped_len;
} crypto_dk_ref;

/* Create a random data key for owner, wrapped under the current master. */
int crypto_dk_new(crypto_keyring *kr, const char *owner, uint32_t *mk_version,
                  crypto_wrapped *out, mv_err *err);
/* Re-wrap an existing data key under the current master (key rotation).
 * The data key itself does not change, so bodies stay readable. */
int crypto_dk_rewrap(crypto_keyring *kr, const crypto_dk_ref *ref,
                     uint32_t *mk_version, crypto_wrapped *out, mv_err *err);
/* Drop any cached unwrapped copy of owner's data key (crypto-shredding). */
void crypto_dk_forget(crypto_keyring *kr, const char *owner);

/* Encrypt pt under ref's data key with associated data ad.  out receives
 * nonce || ciphertext || tag (caller frees with mv_buf_free). */
int crypto_seal(crypto_keyring *kr, const crypto_dk_ref *ref,
                const void *ad, size_t ad_len, const void *pt, size_t pt_len,
                mv_buf *out, mv_err *err);
/* Decrypt; MV_E_INTEGRITY when the ciphertext, its AD or its key do not
 * match (a flipped byte, a row copied elsewhere). */
int crypto_open(crypto_keyring *kr, const crypto_dk_ref *ref,
                const void *ad, size_t ad_len, const void *ct, size_t ct_len,
                mv_buf *out, mv_err *err);

/* Blind index: HMAC-SHA-256 of an already-canonical value under a per-field
 * subkey derived (BLAKE2b KDF) from the "#index" data key referenced by
 * index_ref.  field names the search parameter ("Patient.identifier"). */
int crypto_blind_index(crypto_keyring *kr, const crypto_dk_ref *index_ref,
                       const char *field, const void *value, size_t len,
                       unsigned char out[MV_INDEX_BYTES], mv_err *err);

/* Audit chain link: keyed BLAKE2b-256(prev || entry) under a chain key
 * derived from the "#audit" data key.  Keyed, so that someone able to write
 * the database but without the keys cannot recompute the chain.
 *
 * An open chain is an opaque handle: the derived chain key stays inside it,
 * in sodium_malloc memory, and is wiped by crypto_chain_close.  Linking is
 * thread-safe (the handle is read-only after open).  A key rotation does not
 * change the "#audit" data key, so a handle stays valid across it. */
typedef struct crypto_chain crypto_chain;
int  crypto_chain_open(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                       crypto_chain **out, mv_err *err);
void crypto_chain_link(const crypto_chain *c,
                       const unsigned char prev[MV_HASH_BYTES],
                       const void *entry, size_t entry_len,
                       unsigned char out[MV_HASH_BYTES]);
void crypto_chain_close(crypto_chain *c);

/* Ed25519 signature of msg with the signing key derived from "#audit". */
int crypto_sign_msg(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                    const void *msg, size_t len,
                    unsigned char sig[MV_SIG_BYTES], mv_err *err);
/* The public half of that signing key. */
int crypto_sign_pubkey(crypto_keyring *kr, const crypto_dk_ref *audit_ref,
                       unsigned char pub[MV_PUBKEY_BYTES], mv_err *err);
/* Verify with a public key only (no keyring needed: third parties). */
int crypto_sign_verify(const unsigned char pub[MV_PUBKEY_BYTES],
                       const void *msg, size_t len,
                       const unsigned char sig[MV_SIG_BYTES]);

/* ---- Passwords ----------------------------------------------------------- */

/* Argon2id at OWASP's current recommendation (19 MiB, 2 passes, 1 lane), as
 * a self-describing PHC string ("$argon2id$v=19$m=19456,t=2,p=1$...").  out
 * must hold MV_PWHASH_MAX bytes. */
#define MV_PWHASH_MAX 128
int crypto_password_hash(const void *pw, size_t len, char out[MV_PWHASH_MAX],
                         mv_err *err);
/* 0 when pw matches hash, -1 otherwise (including a malformed hash). */
int crypto_password_verify(const char *hash, const void *pw, size_t len);
/* 1 when hash was made with other parameters than today's (rehash on the
 * next successful login), 0 when current. */
int crypto_password_needs_rehash(const char *hash);

/* ---- Base64 (for key files, exported checkpoints) ------------------------ */
/* Standard alphabet with padding.  out must hold crypto_b64_len(n) bytes. */
size_t crypto_b64_len(size_t n);
void   crypto_b64_encode(const unsigned char *p, size_t n, char *out);
/* Decode into out (capacity cap); *n receives the decoded length. */
int    crypto_b64_decode(const char *s, size_t slen, unsigned char *out,
                         size_t cap, size_t *n, mv_err *err);

#endif /* MV_CRYPTO_H */
