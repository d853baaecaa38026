/*
 * encode.c -- base64 (key files, exported checkpoints) and random ids.
 *
 * Why it exists: these encodings touch key material (a key file is base64 of
 * the root key) and randomness, so they use libsodium's constant-time base64
 * and RNG rather than a hand-rolled or libc version, and they are the only
 * encoders the rest of medvault needs from this subsystem.
 */
#include "crypto_internal.h"

#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

size_t crypto_b64_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, B64_VARIANT);
}

void crypto_b64_encode(const unsigned char *p, size_t n, char *out)
{
    sodium_bin2base64(out, crypto_b64_len(n), p, n, B64_VARIANT);
}

static int is_trailing_space(char c)
{
    return c == '\n' || c == '\r' || c == ' ' || c == '\t';
}

/* Exact decoded length of padded base64 text of length len, or -1 when the
 * length or padding cannot be valid. */
static long long b64_decoded_len(const char *s, size_t len)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len >= 1 && s[len - 1] == '=')
        pad++;
    if (len >= 2 && s[len - 2] == '=')
        pad++;
    return (long long)(len / 4 * 3 - pad);
}

int crypto_b64_decode(const char *s, size_t slen, unsigned char *out,
                      size_t cap, size_t *n, mv_err *err)
{
    if (crypto_ensure_init(err) != 0)
        return -1;
    while (slen > 0 && is_trailing_space(s[slen - 1]))
        slen--;
    long long want = b64_decoded_len(s, slen);
    if (want < 0)
        return mv_fail(err, MV_E_INVALID, "not valid base64");
    if ((unsigned long long)want > cap)
        return mv_fail(err, MV_E_INVALID,
                       "base64 value is longer than %zu bytes", cap);
    size_t got = 0;
    const char *end = NULL;
    if (sodium_base642bin(out, cap, s, slen, NULL, &got, &end,
                          B64_VARIANT) != 0 || end != s + slen) {
        sodium_memzero(out, cap);   /* a partial decode may be a secret */
        return mv_fail(err, MV_E_INVALID, "not valid base64");
    }
    *n = got;
    return 0;
}

void crypto_random_id(char out[33])
{
    unsigned char id[16];
    crypto_random(id, sizeof id);
    sodium_bin2hex(out, 33, id, sizeof id);
}
