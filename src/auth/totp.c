/*
 * totp.c -- the second factor: RFC 6238 TOTP through liboath, and
 * single-use recovery codes.
 *
 * Why it exists: a stolen password must open nothing.  A TOTP code is
 * accepted within one 30-second step of now (clock drift), and each time
 * step only once (the account remembers the last step accepted), so a code
 * seen over a shoulder or in a proxy log is already spent.  Recovery codes
 * (for a lost phone) are 80 random bits each, stored only as BLAKE2b
 * digests and removed when used.  Every buffer holding a secret or a code
 * is wiped before it is freed.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <liboath/oath.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Crockford's base32: no i, l, o or u, so nothing reads as something else. */
static const char recovery_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
#define RECOVERY_CHARS 16
#define RECOVERY_GROUP 4

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_status = OATH_OK;

static void oath_start(void)
{
    oath_status = oath_init();
}

static int oath_ready(mv_err *err)
{
    pthread_once(&oath_once, oath_start);
    return oath_status == OATH_OK ? 0
        : mv_fail(err, MV_E_INTERNAL, "liboath: %s", oath_strerror(oath_status));
}

/* ---- TOTP ------------------------------------------------------------------ */

static int secret_new(char b32[TOTP_B32_MAX], mv_err *err)
{
    char raw[TOTP_SECRET_BYTES], *enc = NULL;
    size_t enc_len = 0;
    crypto_random(raw, sizeof raw);
    int rc = oath_base32_encode(raw, sizeof raw, &enc, &enc_len);
    crypto_wipe(raw, sizeof raw);
    if (rc != OATH_OK || enc_len >= TOTP_B32_MAX) {
        if (enc)
            crypto_wipe(enc, enc_len);
        free(enc);
        return mv_fail(err, MV_E_INTERNAL, "cannot encode a TOTP secret");
    }
    memcpy(b32, enc, enc_len);
    b32[enc_len] = '\0';
    crypto_wipe(enc, enc_len);
    free(enc);
    return 0;
}

static int is_totp_code(const char *code)
{
    if (code == NULL || strlen(code) != TOTP_DIGITS)
        return 0;
    for (const char *p = code; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

int mfa_totp_check(const acct_rec *r, const char *code, int64_t now_us,
                   int64_t *step, mv_err *err)
{
    if (!is_totp_code(code) || r->totp_b32[0] == '\0')
        return 0;
    if (oath_ready(err) != 0)
        return -1;
    char *secret = NULL;
    size_t secret_len = 0;
    if (oath_base32_decode(r->totp_b32, strlen(r->totp_b32), &secret,
                           &secret_len) != OATH_OK)
        return mv_fail(err, MV_E_INTEGRITY, "account %s: bad TOTP secret",
                       r->pub.id);
    int pos = 0;
    uint64_t counter = 0;
    int rc = oath_totp_validate3(secret, secret_len, (time_t)(now_us / 1000000),
                                 TOTP_STEP_S, OATH_TOTP_DEFAULT_START_TIME, 1,
                                 &pos, &counter, code);
    crypto_wipe(secret, secret_len);
    free(secret);
    if (rc < 0 || counter > INT64_MAX || (int64_t)counter <= r->totp_last_step)
        return 0;   /* wrong, outside the window, or already used */
    *step = (int64_t)counter;
    return 1;
}

/* ---- Recovery codes -------------------------------------------------------- */

/* "xxxx-xxxx-xxxx-xxxx" from 16 random symbols (5 bits each). */
static void recovery_new(char out[24])
{
    unsigned char raw[RECOVERY_CHARS];
    crypto_random(raw, sizeof raw);
    size_t o = 0;
    for (size_t i = 0; i < RECOVERY_CHARS; i++) {
        if (i > 0 && i % RECOVERY_GROUP == 0)
            out[o++] = '-';
        out[o++] = recovery_alphabet[raw[i] & 31];
    }
    out[o] = '\0';
    crypto_wipe(raw, sizeof raw);
}

/* Lower-case, without dashes or spaces, with look-alikes mapped as Crockford
 * does (o -> 0, i and l -> 1).  0 when the result is a well-formed code. */
static int recovery_normalise(const char *in, char out[RECOVERY_CHARS + 1])
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (c == '-' || c == ' ')
            continue;
        c = c == 'o' ? '0' : (c == 'i' || c == 'l') ? '1' : c;
        if (n == RECOVERY_CHARS || c == '\0' || !strchr(recovery_alphabet, c))
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == RECOVERY_CHARS ? 0 : -1;
}

static void recovery_digest(const char norm[RECOVERY_CHARS + 1],
                            char hex[RECOVERY_HASH_HEX])
{
    unsigned char h[MV_HASH_BYTES];
    crypto_digest(norm, RECOVERY_CHARS, h);
    mv_hex_encode(h, sizeof h, hex);
}

int mfa_recovery_find(const acct_rec *r, const char *code)
{
    char norm[RECOVERY_CHARS + 1], hex[RECOVERY_HASH_HEX];
    int ok = code != NULL && strlen(code) <= 64 &&
             recovery_normalise(code, norm) == 0;
    if (ok)
        recovery_digest(norm, hex);
    crypto_wipe(norm, sizeof norm);
    if (!ok)
        return -1;
    int found = -1;
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++)   /* no early exit */
        if (r->recovery[i][0] != '\0' &&
            crypto_memcmp(r->recovery[i], hex, RECOVERY_HASH_HEX) == 0)
            found = i;
    return found;
}

void mfa_recovery_remove(acct_rec *r, int i)
{
    for (int k = i; k + 1 < AUTH_RECOVERY_CODES; k++)
        memcpy(r->recovery[k], r->recovery[k + 1], RECOVERY_HASH_HEX);
    memset(r->recovery[AUTH_RECOVERY_CODES - 1], 0, RECOVERY_HASH_HEX);
    r->pub.recovery_left = mfa_recovery_count(r);
}

int mfa_recovery_count(const acct_rec *r)
{
    int n = 0;
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++)
        n += r->recovery[i][0] != '\0';
    return n;
}

/* ---- Enrollment ------------------------------------------------------------ */

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void uri_label(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
                    *p == '~';
        if (o + (plain ? 1 : 3) >= cap)
            break;
        if (plain)
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
}

static int enrollment_uri(const char *username, const char *b32,
                          char out[320], mv_err *err)
{
    char label[3 * AUTH_NAME_MAX];
    uri_label(username, label, sizeof label);
    int n = snprintf(out, 320, "otpauth://totp/medvault:%s?secret=%s"
                     "&issuer=medvault&algorithm=SHA1&digits=%d&period=%d",
                     label, b32, TOTP_DIGITS, TOTP_STEP_S);
    if (n < 0 || n >= 320)
        return mv_fail(err, MV_E_INTERNAL, "enrollment URI too long");
    return 0;
}

static void recovery_enroll(acct_rec *r, auth_enrollment *e)
{
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++) {
        char norm[RECOVERY_CHARS + 1];
        recovery_new(e->recovery[i]);
        recovery_normalise(e->recovery[i], norm);
        recovery_digest(norm, r->recovery[i]);
        crypto_wipe(norm, sizeof norm);
    }
    r->pub.recovery_left = AUTH_RECOVERY_CODES;
}

int mfa_enroll(acct_rec *r, auth_enrollment *e, mv_err *err)
{
    memset(e, 0, sizeof *e);
    if (secret_new(r->totp_b32, err) != 0)
        return -1;
    r->totp_last_step = 0;
    acct_copy_text(e->secret_b32, sizeof e->secret_b32, r->totp_b32);
    if (enrollment_uri(r->pub.username, r->totp_b32, e->otpauth_uri, err) != 0) {
        crypto_wipe(e, sizeof *e);
        return -1;
    }
    recovery_enroll(r, e);
    return 0;
}
