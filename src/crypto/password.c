/*
 * password.c -- account passwords: Argon2id, as a PHC string.
 *
 * Why a separate file from passphrase.c: a store passphrase derives a key
 * (raw Argon2id output, a secret kept in sodium memory), whereas an account
 * password is only ever *verified* against a stored, salted hash string.
 * The cost follows OWASP's Password Storage Cheat Sheet (Argon2id, 19 MiB,
 * 2 iterations, 1 lane): every login pays it, so it is the login rate's
 * ceiling by design (see BENCHMARKS.md).
 */
#include "crypto_internal.h"

#include <string.h>

#define OWASP_OPSLIMIT 2
#define OWASP_MEMLIMIT (19u * 1024u * 1024u)

_Static_assert(MV_PWHASH_MAX >= crypto_pwhash_STRBYTES,
               "MV_PWHASH_MAX too small for crypto_pwhash_STRBYTES");

int crypto_password_hash(const void *pw, size_t len, char out[MV_PWHASH_MAX],
                         mv_err *err)
{
    if (pw == NULL && len > 0)
        return mv_fail(err, MV_E_INVALID, "password is NULL");
    if (crypto_pwhash_str_alg(out, pw, len, OWASP_OPSLIMIT, OWASP_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return mv_fail(err, MV_E_NOMEM, "not enough memory to hash a password");
    return 0;
}

int crypto_password_verify(const char *hash, const void *pw, size_t len)
{
    if (hash == NULL || strncmp(hash, "$argon2id$", 10) != 0)
        return -1;
    return crypto_pwhash_str_verify(hash, pw, len) == 0 ? 0 : -1;
}

int crypto_password_needs_rehash(const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, OWASP_OPSLIMIT,
                                          OWASP_MEMLIMIT) != 0;
}
