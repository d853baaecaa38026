/*
 * passphrase.c -- the root key derived from a passphrase with Argon2id.
 *
 * Why it exists: a store without a key file is protected by a passphrase
 * alone, so the derivation must be memory-hard (Argon2id, libsodium's
 * "moderate" cost by default) and the passphrase must never be kept: it is
 * read once, straight into crypto_pwhash, and the result goes directly into
 * the keyring's sodium_malloc slab.
 */
#include "crypto_internal.h"

crypto_kdf_params crypto_kdf_default(void)
{
    crypto_kdf_params p = {
        .opslimit = crypto_pwhash_OPSLIMIT_MODERATE,
        .memlimit = crypto_pwhash_MEMLIMIT_MODERATE,
    };
    return p;
}

static int params_check(crypto_kdf_params p, mv_err *err)
{
    if (p.opslimit < crypto_pwhash_OPSLIMIT_MIN ||
        p.opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        p.memlimit < crypto_pwhash_MEMLIMIT_MIN ||
        p.memlimit > crypto_pwhash_MEMLIMIT_MAX)
        return mv_fail(err, MV_E_INVALID,
                       "Argon2id parameters out of range (opslimit %llu, "
                       "memlimit %zu)", (unsigned long long)p.opslimit,
                       p.memlimit);
    return 0;
}

int crypto_keyring_from_passphrase(const void *pass, size_t pass_len,
                                   const unsigned char salt[MV_SALT_BYTES],
                                   crypto_kdf_params params,
                                   crypto_keyring **out, mv_err *err)
{
    *out = NULL;
    if (pass == NULL || pass_len == 0)
        return mv_fail(err, MV_E_INVALID, "empty passphrase");
    if (pass_len > crypto_pwhash_PASSWD_MAX)
        return mv_fail(err, MV_E_INVALID, "passphrase too long");
    if (salt == NULL)
        return mv_fail(err, MV_E_INVALID, "no passphrase salt");
    if (params_check(params, err) != 0)
        return -1;
    crypto_keyring *kr = NULL;
    if (keyring_alloc(&kr, err) != 0)
        return -1;
    if (crypto_pwhash(kr->secrets->root, MV_KEY_BYTES, pass,
                      (unsigned long long)pass_len, salt, params.opslimit,
                      params.memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        crypto_keyring_free(kr);
        return mv_fail(err, MV_E_NOMEM,
                       "cannot derive the root key: Argon2id needs %zu bytes "
                       "of memory", params.memlimit);
    }
    *out = kr;
    return 0;
}
