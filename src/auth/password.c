/*
 * password.c -- which new passwords are acceptable.
 *
 * Why it exists: NIST SP 800-63B replaced composition rules ("one digit,
 * one symbol") with length plus a check against weak and common choices.
 * Here: at least 12 characters (Unicode code points, so a passphrase in any
 * script counts what a person typed), at most 1024 bytes, anything allowed,
 * then passwdqc (Openwall) for dictionary words, common sequences, repeated
 * patterns and the username, plus a plain "contains the username" test of
 * our own.  Refusals say why in passwdqc's words and never echo the
 * password; every copy made for the check is wiped.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <passwdqc.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_MIN_CHARS 12

static const char *const qc_config[] = {
    "min=12,12,12,12,12", "max=1024", "passphrase=3", "match=4",
    "similar=deny", "random=0", "enforce=everyone",
};

/* Length of the UTF-8 sequence starting with b, 0 when b cannot start one. */
static size_t utf8_seq_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Code points in p[0..len), or -1 when p is not UTF-8 (or holds a NUL). */
static long utf8_chars(const unsigned char *p, size_t len)
{
    long chars = 0;
    for (size_t i = 0; i < len; chars++) {
        size_t n = utf8_seq_len(p[i]);
        if (n == 0 || n > len - i || p[i] == 0)
            return -1;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return -1;
        i += n;
    }
    return chars;
}

/* 1 when needle occurs in hay, ignoring ASCII case. */
static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle), h = strlen(hay);
    for (size_t i = 0; n > 0 && i + n <= h; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)hay[i + k]) ==
                        tolower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

/* passwdqc's verdict on a NUL-terminated copy: NULL when acceptable, else
 * its (static) reason. */
static const char *qc_verdict(const char *pw, const char *username,
                              mv_err *err, int *failed)
{
    passwdqc_params_t params;
    char *reason = NULL;
    *failed = 0;
    passwdqc_params_reset(&params);
    if (passwdqc_params_parse(&params, &reason,
                              (int)(sizeof qc_config / sizeof qc_config[0]),
                              qc_config) != 0) {
        mv_fail(err, MV_E_INTERNAL, "password policy misconfigured: %s",
                reason ? reason : "?");
        free(reason);
        passwdqc_params_free(&params);
        *failed = 1;
        return NULL;
    }
    char name[AUTH_NAME_MAX], empty[1] = "";
    acct_copy_text(name, sizeof name, username ? username : "");
    struct passwd who = { .pw_name = name, .pw_passwd = empty,
                          .pw_gecos = name, .pw_dir = empty,
                          .pw_shell = empty };
    const char *why = passwdqc_check(&params.qc, pw, NULL, &who);
    passwdqc_params_free(&params);
    return why;
}

static int qc_check(const char *username, const char *password, size_t len,
                    mv_err *err)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    memcpy(copy, password, len);
    copy[len] = '\0';
    int failed;
    const char *why = qc_verdict(copy, username, err, &failed);
    int refused_name = username && username[0] &&
                       contains_nocase(copy, username);
    crypto_wipe(copy, len + 1);
    free(copy);
    if (failed)
        return -1;
    if (why)
        return mv_fail(err, MV_E_INVALID, "password refused: %s", why);
    if (refused_name)
        return mv_fail(err, MV_E_INVALID,
                       "password refused: it contains the username");
    return 0;
}

int auth_password_acceptable(const char *username, const char *password,
                             size_t len, mv_err *err)
{
    if (password == NULL)
        return mv_fail(err, MV_E_INVALID, "password refused: none given");
    if (len > PASSWORD_MAX_BYTES)
        return mv_fail(err, MV_E_INVALID,
                       "password refused: longer than %d bytes",
                       PASSWORD_MAX_BYTES);
    long chars = utf8_chars((const unsigned char *)password, len);
    if (chars < 0)
        return mv_fail(err, MV_E_INVALID,
                       "password refused: not valid UTF-8 text");
    if (chars < PASSWORD_MIN_CHARS)
        return mv_fail(err, MV_E_INVALID,
                       "password refused: shorter than %d characters",
                       PASSWORD_MIN_CHARS);
    return qc_check(username, password, len, err);
}
