/*
 * search.c -- canonical forms of names, NIRs, phone numbers, e-mail
 * addresses, dates and identifiers (the contracts are in search.h).
 *
 * Why this exists: a blind index stores HMAC(key, canonical(value)), so it
 * only matches when the writer, the searcher and a later check of a leaked
 * dump all turn differently typed input into the same bytes.  This file is
 * that single definition.  Unicode knowledge (case folding, normalisation,
 * character properties) comes from libunistring, never from tables of our
 * own.  The functions are pure: no state, no keys, no other subsystem.
 *
 * Error messages say what is wrong (a length, a position, a rule), never the
 * value itself: names, NIRs, phones, e-mails and birth dates are personal
 * data.
 */
#include "search.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

/* ==== Shared helpers ===================================================== */

/* Reset *out so that every error path leaves it NULL. */
static int start_output(char **out, mv_err *err)
{
    if (out == NULL)
        return mv_fail(err, MV_E_INVALID, "no output pointer given");
    *out = NULL;
    return 0;
}

/* Fail unless in is present and valid UTF-8; what names the kind of value. */
static int require_utf8(const char *in, const char *what, mv_err *err)
{
    if (in == NULL)
        return mv_fail(err, MV_E_INVALID, "%s is missing", what);
    if (u8_check((const uint8_t *)in, strlen(in)) != NULL)
        return mv_fail(err, MV_E_INVALID, "%s is not valid UTF-8", what);
    return 0;
}

static bool is_ascii_digit(ucs4_t uc)
{
    return uc >= '0' && uc <= '9';
}

static bool is_ascii_upper(ucs4_t uc)
{
    return uc >= 'A' && uc <= 'Z';
}

static bool is_ascii_lower(ucs4_t uc)
{
    return uc >= 'a' && uc <= 'z';
}

/* Any Unicode white space: ASCII blanks, NBSP U+00A0, U+202F, U+3000, ... */
static bool is_white(ucs4_t uc)
{
    return uc_is_property_white_space(uc);
}

/* Invisible format characters that copy-paste and spreadsheets leave behind
 * (BOM, zero-width space and joiners, soft hyphen, bidi marks): they carry
 * nothing a person typed on purpose, so every canonical form ignores them. */
static bool is_invisible(ucs4_t uc)
{
    return uc_is_general_category(uc, UC_CATEGORY_Cf);
}

/* Hyphen-like characters: U+002D, U+2010..U+2015, U+2212 minus and the
 * other characters Unicode gives the Dash property. */
static bool is_dash(ucs4_t uc)
{
    return uc_is_property_dash(uc);
}

/* Append one code point, UTF-8 encoded. */
static int put_uc(mv_buf *b, ucs4_t uc, mv_err *err)
{
    uint8_t enc[6];
    int n = u8_uctomb(enc, uc, (ptrdiff_t)sizeof enc);
    if (n < 0)
        return mv_fail(err, MV_E_INTERNAL, "cannot encode a code point");
    return mv_buf_append(b, enc, (size_t)n, err);
}

static int put_byte(mv_buf *b, char c, mv_err *err)
{
    return mv_buf_append(b, &c, 1, err);
}

/* NUL-terminate b and hand its bytes to *out (caller frees); b ends empty
 * in every case. */
static int finish_string(mv_buf *b, char **out, mv_err *err)
{
    if (put_byte(b, '\0', err) != 0) {
        mv_buf_free(b);
        return -1;
    }
    *out = (char *)mv_buf_steal(b, NULL);
    return 0;
}

/* A new NUL-terminated copy of the n bytes at p. */
static int copy_out(const char *p, size_t n, char **out, mv_err *err)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

/* Byte range [*start, *end) of in without leading and trailing white space
 * or invisible characters.  in must be valid UTF-8. */
static void trim_range(const char *in, size_t *start, size_t *end)
{
    const uint8_t *base = (const uint8_t *)in;
    const uint8_t *p = base;
    bool seen_content = false;
    ucs4_t uc;
    *start = *end = 0;
    for (const uint8_t *next; (next = u8_next(&uc, p)) != NULL; p = next) {
        if (is_white(uc) || is_invisible(uc))
            continue;
        if (!seen_content)
            *start = (size_t)(p - base);
        seen_content = true;
        *end = (size_t)(next - base);
    }
}

/* ==== Names ============================================================== */

/* Compatibility caseless form (Unicode D146): case folded and NFKD, so that
 * "𝐄" (MATHEMATICAL BOLD CAPITAL E, pasted from "fancy text") and "Ｅ" give
 * "e" like "E" does.  libunistring applies the fold/normalise iteration of
 * D146 itself (its result is a fixed point, checked over every code point).
 * The language is NULL, not the locale's, so the result never depends on
 * the process environment (a Turkish locale would fold "I" to dotless "ı").
 * Returns a malloc'd, not NUL-terminated string; in is valid, non-empty. */
static uint8_t *fold_compat(const char *in, size_t *len, mv_err *err)
{
    uint8_t *folded = u8_casefold((const uint8_t *)in, strlen(in), NULL,
                                  UNINORM_NFKD, NULL, len);
    if (folded == NULL)
        mv_fail(err, errno == ENOMEM ? MV_E_NOMEM : MV_E_INVALID,
                "name cannot be case folded");
    return folded;
}

/* Apostrophes, including the typographic ones a word processor substitutes
 * for U+0027 and the accents people type instead of one. */
static bool is_apostrophe(ucs4_t uc)
{
    switch (uc) {
    case 0x0027: /* ' APOSTROPHE */
    case 0x0060: /* ` GRAVE ACCENT, used as an apostrophe */
    case 0x00B4: /* ´ ACUTE ACCENT, used as an apostrophe */
    case 0x02BC: /* ʼ MODIFIER LETTER APOSTROPHE */
    case 0x2018: /* ‘ LEFT SINGLE QUOTATION MARK */
    case 0x2019: /* ’ RIGHT SINGLE QUOTATION MARK */
    case 0x201B: /* ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK */
    case 0x2032: /* ′ PRIME */
        return true;
    default:
        return false;
    }
}

/* Characters that separate the parts of a name and become one space. */
static bool is_name_separator(ucs4_t uc)
{
    return is_white(uc) || is_dash(uc) || is_apostrophe(uc)
           || uc == '.' || uc == ',' || uc_is_general_category(uc, UC_CATEGORY_Cc);
}

/* Characters a name loses entirely: non-spacing marks (the accents NFKD
 * split off: "é" -> "e" + U+0301) and invisible format characters.  Spacing
 * marks (Mc) stay: in Indic scripts they are vowels, not decoration. */
static bool is_name_ignorable(ucs4_t uc)
{
    return uc_is_general_category(uc, UC_CATEGORY_Mn) || is_invisible(uc);
}

/* Ligatures that have no Unicode decomposition, so NFKD leaves them alone
 * while people type them as two letters: "Lætitia" / "Laetitia",
 * "Œuvray" / "Oeuvray".  (ß needs no entry: case folding gives "ss"; "ﬁ"
 * and "ĳ" decompose under NFKD.)  Upper-case forms are listed too although
 * folding has already lowered them.  NULL for any other code point. */
static const char *ligature_spelling(ucs4_t uc)
{
    switch (uc) {
    case 0x00C6: /* Æ */
    case 0x00E6: /* æ */
        return "ae";
    case 0x0152: /* Œ */
    case 0x0153: /* œ */
        return "oe";
    default:
        return NULL;
    }
}

/* Output of the name fold under construction. */
typedef struct name_builder {
    mv_buf out;
    bool space_pending; /* a separator was seen since the last kept char */
    bool has_letter;
} name_builder;

/* Append a kept code point, first flushing a pending separator as a single
 * space unless nothing has been written yet (that trims the start; a
 * trailing separator is never flushed, which trims the end). */
static int name_keep(name_builder *nb, ucs4_t uc, mv_err *err)
{
    if (nb->space_pending && nb->out.len > 0 && put_byte(&nb->out, ' ', err) != 0)
        return -1;
    nb->space_pending = false;
    if (uc_is_general_category(uc, UC_CATEGORY_L))
        nb->has_letter = true;
    const char *spelled = ligature_spelling(uc);
    if (spelled != NULL)
        return mv_buf_append(&nb->out, spelled, strlen(spelled), err);
    return put_uc(&nb->out, uc, err);
}

/* Rewrite the folded string: separators to single spaces, marks dropped. */
static int name_rewrite(const uint8_t *folded, size_t len, name_builder *nb,
                        mv_err *err)
{
    size_t i = 0;
    while (i < len) {
        ucs4_t uc;
        i += (size_t)u8_mbtouc(&uc, folded + i, len - i);
        if (is_name_separator(uc))
            nb->space_pending = true;
        else if (!is_name_ignorable(uc) && name_keep(nb, uc, err) != 0)
            return -1;
    }
    return 0;
}

int search_fold_name(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "name", err) != 0)
        return -1;
    if (in[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "name is empty");

    size_t folded_len = 0;
    uint8_t *folded = fold_compat(in, &folded_len, err);
    if (folded == NULL)
        return -1;
    name_builder nb = {0};
    int rc = name_rewrite(folded, folded_len, &nb, err);
    free(folded);
    if (rc == 0 && !nb.has_letter)
        rc = mv_fail(err, MV_E_INVALID, "name contains no letter");
    if (rc != 0) {
        mv_buf_free(&nb.out);
        return -1;
    }
    return finish_string(&nb.out, out, err);
}

int search_fold_text(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "text", err) != 0)
        return -1;
    size_t folded_len = 0;
    uint8_t *folded = in[0] ? fold_compat(in, &folded_len, err) : (uint8_t *)strdup("");
    if (folded == NULL)
        return in[0] ? -1 : mv_fail(err, MV_E_NOMEM, "out of memory");
    mv_buf b = {0};
    int rc = 0;
    const uint8_t *p = folded, *end = folded + folded_len;
    while (rc == 0 && p < end) {
        ucs4_t uc;
        int n = u8_mbtouc(&uc, p, (size_t)(end - p));
        if (!uc_is_general_category(uc, UC_CATEGORY_Mn))
            rc = mv_buf_append(&b, p, (size_t)n, err);
        p += n;
    }
    free(folded);
    if (rc != 0) {
        mv_buf_free(&b);
        return -1;
    }
    return finish_string(&b, out, err);
}

/* ==== NIR ================================================================ */

#define NIR_BODY_LEN 13
#define NIR_FULL_LEN 15

/* Characters people put between NIR groups: white space (NBSP included),
 * dots, dashes and invisible characters. */
static bool is_nir_separator(ucs4_t uc)
{
    return is_white(uc) || is_dash(uc) || is_invisible(uc) || uc == '.';
}

/* Collect the upper-cased ASCII letters and digits of in into buf (at most
 * NIR_FULL_LEN of them kept; *count says how many there were in all). */
static int nir_collect(const char *in, char buf[NIR_FULL_LEN + 1],
                       size_t *count, mv_err *err)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t position = 0;
    ucs4_t uc;
    *count = 0;
    for (const uint8_t *next; (next = u8_next(&uc, p)) != NULL; p = next) {
        position++;
        if (is_nir_separator(uc))
            continue;
        if (!is_ascii_digit(uc) && !is_ascii_upper(uc) && !is_ascii_lower(uc))
            return mv_fail(err, MV_E_INVALID,
                           "NIR has an unexpected character at position %zu",
                           position);
        if (*count < NIR_FULL_LEN)
            buf[*count] = (char)(is_ascii_lower(uc) ? uc - 'a' + 'A' : uc);
        (*count)++;
    }
    buf[*count < NIR_FULL_LEN ? *count : NIR_FULL_LEN] = '\0';
    return 0;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_ascii_digit((unsigned char)s[i]))
            return false;
    return true;
}

/* The value of two decimal digits (the caller has checked they are). */
static int two_digits(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool is_nir_sex(char c)
{
    return c == '1' || c == '2' || c == '3' || c == '4' || c == '7' || c == '8';
}

/* INSEE month: 01-12, or 20-99 when the month of birth is unknown. */
static bool is_nir_month(int month)
{
    return (month >= 1 && month <= 12) || (month >= 20 && month <= 99);
}

static bool is_corsica(const char *dept)
{
    return dept[0] == '2' && (dept[1] == 'A' || dept[1] == 'B');
}

/* NULL when body (13 upper-case characters) is a well-formed NIR body,
 * else one line saying what is wrong.  Layout: sex(1) year(2) month(2)
 * department(2) commune(3) order number(3). */
static const char *nir_body_problem(const char *body)
{
    if (!is_nir_sex(body[0]))
        return "NIR must start with 1, 2, 3, 4, 7 or 8";
    if (!all_digits(body + 1, 4))
        return "NIR year and month of birth must be digits";
    if (!is_nir_month(two_digits(body + 3)))
        return "NIR month of birth must be 01-12 or 20-99";
    if (!all_digits(body + 5, 2) && !is_corsica(body + 5))
        return "NIR department must be two digits, 2A or 2B";
    if (!all_digits(body + 7, 6))
        return "NIR commune and order number must be digits";
    return NULL;
}

/* Key of a well-formed body: 97 - (N mod 97), with Corsica's 2A read as 19
 * and 2B as 18.  N has 13 digits, below 10^13, so it fits in 64 bits. */
static int nir_key_of_valid_body(const char *body)
{
    uint64_t n = 0;
    for (size_t i = 0; i < NIR_BODY_LEN; i++) {
        unsigned digit;
        if (i == 5 && is_corsica(body + 5))
            digit = 1;
        else if (i == 6 && is_corsica(body + 5))
            digit = body[6] == 'A' ? 9 : 8;
        else
            digit = (unsigned)(body[i] - '0');
        n = n * 10 + digit;
    }
    return (int)(97 - n % 97);
}

int search_nir_key(const char *nir13)
{
    if (nir13 == NULL || strlen(nir13) != NIR_BODY_LEN)
        return -1;
    char body[NIR_BODY_LEN + 1];
    for (size_t i = 0; i <= NIR_BODY_LEN; i++) {
        unsigned char c = (unsigned char)nir13[i];
        body[i] = (char)(is_ascii_lower(c) ? c - 'a' + 'A' : c);
    }
    if (nir_body_problem(body) != NULL)
        return -1;
    return nir_key_of_valid_body(body);
}

/* Check the key typed after the body, when there is one. */
static int nir_check_given_key(const char *given, int key, mv_err *err)
{
    if (!all_digits(given, 2))
        return mv_fail(err, MV_E_INVALID, "NIR control key must be two digits");
    if (two_digits(given) != key)
        return mv_fail(err, MV_E_INVALID, "NIR control key does not match");
    return 0;
}

int search_nir(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "NIR", err) != 0)
        return -1;
    char nir[NIR_FULL_LEN + 1];
    size_t count = 0;
    if (nir_collect(in, nir, &count, err) != 0)
        return -1;
    if (count != NIR_BODY_LEN && count != NIR_FULL_LEN)
        return mv_fail(err, MV_E_INVALID,
                       "NIR must have 13 or 15 characters, got %zu", count);

    char body[NIR_BODY_LEN + 1];
    memcpy(body, nir, NIR_BODY_LEN);
    body[NIR_BODY_LEN] = '\0';
    const char *problem = nir_body_problem(body);
    if (problem != NULL)
        return mv_fail(err, MV_E_INVALID, "%s", problem);
    int key = nir_key_of_valid_body(body);
    if (count == NIR_FULL_LEN && nir_check_given_key(nir + NIR_BODY_LEN, key, err) != 0)
        return -1;

    char canonical[NIR_FULL_LEN + 1];
    snprintf(canonical, sizeof canonical, "%.13s%02d", body, key);
    return copy_out(canonical, NIR_FULL_LEN, out, err);
}

/* ==== Phone numbers ====================================================== */

#define PHONE_MIN_DIGITS 6

/* Characters people put between digit groups. */
static bool is_phone_separator(ucs4_t uc)
{
    return is_white(uc) || is_dash(uc) || is_invisible(uc)
           || uc == '.' || uc == '/' || uc == '(' || uc == ')';
}

/* When p (just after a '(') reads "0)", optionally with blanks, the end of
 * that ")"; else NULL.  That is the "(0)" of "+33 (0)6 ...": the trunk
 * prefix dialled only from inside the country. */
static const uint8_t *trunk_zero_end(const uint8_t *p)
{
    while (*p == ' ')
        p++;
    if (*p++ != '0')
        return NULL;
    while (*p == ' ')
        p++;
    return *p == ')' ? p + 1 : NULL;
}

/* Digits gathered so far, and whether a leading '+' was seen. */
typedef struct phone_scan {
    mv_buf digits;
    bool plus;
} phone_scan;

/* International so far: a leading '+', or digits starting with "00". */
static bool phone_is_international(const phone_scan *ps)
{
    return ps->plus
           || (ps->digits.len >= 2 && ps->digits.data[0] == '0'
               && ps->digits.data[1] == '0');
}

/* Handle one code point of the input; *next may be moved past a "(0)". */
static int phone_step(phone_scan *ps, ucs4_t uc, const uint8_t **next,
                      size_t position, mv_err *err)
{
    const uint8_t *after_trunk = NULL;
    if (is_ascii_digit(uc))
        return put_byte(&ps->digits, (char)uc, err);
    if (uc == '+') {
        if (ps->plus || ps->digits.len > 0)
            return mv_fail(err, MV_E_INVALID, "'+' may only start a phone number");
        ps->plus = true;
        return 0;
    }
    if (uc == '(' && ps->digits.len > 0 && phone_is_international(ps)
        && (after_trunk = trunk_zero_end(*next)) != NULL) {
        *next = after_trunk;
        return 0;
    }
    if (!is_phone_separator(uc))
        return mv_fail(err, MV_E_INVALID,
                       "phone number has an unexpected character at position %zu",
                       position);
    return 0;
}

/* Scan in (valid UTF-8) into ps; digits end NUL-terminated. */
static int phone_scan_input(const char *in, phone_scan *ps, mv_err *err)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t position = 0;
    ucs4_t uc;
    for (const uint8_t *next; (next = u8_next(&uc, p)) != NULL; p = next)
        if (phone_step(ps, uc, &next, ++position, err) != 0)
            return -1;
    return put_byte(&ps->digits, '\0', err);
}

/* The number with its country code, digits only.  French national numbers
 * ("0" + 9 digits) become "33" + 9 digits.  "+33 06 ..." (the trunk zero
 * typed after the country code, 12 digits "330...") loses that zero: no
 * French number starts with 0 after +33.  Other countries are kept as
 * typed: some (Italy) keep their leading zero internationally.  Known
 * limit: overseas departments' national numbers (0262..., 0692...) become
 * +33, not +262/+590/...; the contract in search.h asks for +33. */
static int phone_canonical(const phone_scan *ps, mv_buf *out, mv_err *err)
{
    const char *d = (const char *)ps->digits.data;
    size_t n = strlen(d);
    if (!ps->plus && n >= 2 && d[0] == '0' && d[1] == '0') {
        d += 2;
        n -= 2;
    } else if (!ps->plus && n == 10 && d[0] == '0') {
        if (mv_buf_append(out, "33", 2, err) != 0)
            return -1;
        d += 1;
        n -= 1;
    }
    if (n == 12 && strncmp(d, "330", 3) == 0) {
        if (mv_buf_append(out, "33", 2, err) != 0)
            return -1;
        d += 3;
        n -= 3;
    }
    return mv_buf_append(out, d, n, err);
}

int search_phone(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "phone number", err) != 0)
        return -1;
    phone_scan ps = {0};
    mv_buf canonical = {0};
    int rc = phone_scan_input(in, &ps, err);
    if (rc == 0)
        rc = phone_canonical(&ps, &canonical, err);
    mv_buf_free(&ps.digits);
    if (rc == 0 && canonical.len < PHONE_MIN_DIGITS)
        rc = mv_fail(err, MV_E_INVALID, "phone number has fewer than %d digits",
                     PHONE_MIN_DIGITS);
    if (rc != 0) {
        mv_buf_free(&canonical);
        return -1;
    }
    return finish_string(&canonical, out, err);
}

/* ==== E-mail addresses =================================================== */

/* Where the '@' went in the lower-cased copy. */
typedef struct email_shape {
    size_t at_count;
    size_t at_offset;
} email_shape;

/* Copy one code point of the trimmed address, lower-casing ASCII letters
 * and leaving other characters' bytes exactly as they are. */
static int email_copy(mv_buf *b, ucs4_t uc, const uint8_t *bytes, size_t n,
                      email_shape *shape, mv_err *err)
{
    if (is_white(uc))
        return mv_fail(err, MV_E_INVALID, "e-mail address contains white space");
    if (uc_is_general_category(uc, UC_CATEGORY_Cc))
        return mv_fail(err, MV_E_INVALID,
                       "e-mail address contains a control character");
    if (is_invisible(uc))
        return 0;
    if (uc == '@') {
        shape->at_count++;
        shape->at_offset = b->len;
    }
    if (is_ascii_upper(uc))
        return put_byte(b, (char)(uc - 'A' + 'a'), err);
    return mv_buf_append(b, bytes, n, err);
}

static int email_check_shape(const mv_buf *b, const email_shape *shape,
                             mv_err *err)
{
    if (shape->at_count != 1)
        return mv_fail(err, MV_E_INVALID,
                       "e-mail address must contain exactly one '@'");
    if (shape->at_offset == 0)
        return mv_fail(err, MV_E_INVALID, "e-mail address has nothing before '@'");
    if (shape->at_offset + 1 == b->len)
        return mv_fail(err, MV_E_INVALID, "e-mail address has nothing after '@'");
    return 0;
}

int search_email(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "e-mail address", err) != 0)
        return -1;
    size_t start, end;
    trim_range(in, &start, &end);

    mv_buf b = {0};
    email_shape shape = {0};
    const uint8_t *s = (const uint8_t *)in;
    int rc = 0;
    for (size_t i = start; i < end && rc == 0;) {
        ucs4_t uc;
        size_t n = (size_t)u8_mbtouc(&uc, s + i, end - i);
        rc = email_copy(&b, uc, s + i, n, &shape, err);
        i += n;
    }
    if (rc == 0)
        rc = email_check_shape(&b, &shape, err);
    if (rc != 0) {
        mv_buf_free(&b);
        return -1;
    }
    return finish_string(&b, out, err);
}

/* ==== Dates ============================================================== */

/* A parsed date; month and day are 0 when the input did not give them. */
typedef struct date_parts {
    int year, month, day;
} date_parts;

/* Parse exactly n ASCII digits at s. */
static bool parse_digits(const char *s, size_t n, int *value)
{
    if (!all_digits(s, n))
        return false;
    *value = 0;
    for (size_t i = 0; i < n; i++)
        *value = *value * 10 + (s[i] - '0');
    return true;
}

/* "YYYY", "YYYY-MM", "YYYY-MM-DD", "YYYYMMDD" or "DD/MM/YYYY" (n bytes). */
static bool date_parse(const char *s, size_t n, date_parts *d)
{
    *d = (date_parts){0};
    switch (n) {
    case 4:
        return parse_digits(s, 4, &d->year);
    case 7:
        return s[4] == '-' && parse_digits(s, 4, &d->year)
               && parse_digits(s + 5, 2, &d->month);
    case 8:
        return parse_digits(s, 4, &d->year) && parse_digits(s + 4, 2, &d->month)
               && parse_digits(s + 6, 2, &d->day);
    case 10:
        if (s[4] == '-' && s[7] == '-')
            return parse_digits(s, 4, &d->year) && parse_digits(s + 5, 2, &d->month)
                   && parse_digits(s + 8, 2, &d->day);
        if (s[2] == '/' && s[5] == '/')
            return parse_digits(s, 2, &d->day) && parse_digits(s + 3, 2, &d->month)
                   && parse_digits(s + 6, 4, &d->year);
        return false;
    default:
        return false;
    }
}

static bool is_leap_year(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

/* Check the parts given are a real calendar date (or month, or year). */
static int date_check(const date_parts *d, bool has_month, bool has_day,
                      mv_err *err)
{
    if (d->year < 1)
        return mv_fail(err, MV_E_INVALID, "date year must be 0001-9999");
    if (has_month && (d->month < 1 || d->month > 12))
        return mv_fail(err, MV_E_INVALID, "date month must be 01-12");
    if (has_day && (d->day < 1 || d->day > days_in_month(d->year, d->month)))
        return mv_fail(err, MV_E_INVALID, "date day does not exist in that month");
    return 0;
}

int search_date(const char *in, char **out, mv_err *err)
{
    if (start_output(out, err) != 0 || require_utf8(in, "date", err) != 0)
        return -1;
    size_t start, end;
    trim_range(in, &start, &end);
    const char *s = in + start;
    size_t n = end - start;
    /* A FHIR dateTime ("...T10:30:00Z") or a spreadsheet/SQL timestamp
     * ("... 10:30"): keep the date part only. */
    if (n > 10 && (s[10] == 'T' || s[10] == ' '))
        n = 10;

    date_parts d;
    if (!date_parse(s, n, &d))
        return mv_fail(err, MV_E_INVALID,
                       "date must be YYYY-MM-DD, DD/MM/YYYY, YYYYMMDD, YYYY-MM or YYYY");
    bool has_month = n >= 7, has_day = n >= 8;
    if (date_check(&d, has_month, has_day, err) != 0)
        return -1;

    char canonical[16];
    if (has_day)
        snprintf(canonical, sizeof canonical, "%04d-%02d-%02d", d.year, d.month, d.day);
    else if (has_month)
        snprintf(canonical, sizeof canonical, "%04d-%02d", d.year, d.month);
    else
        snprintf(canonical, sizeof canonical, "%04d", d.year);
    return copy_out(canonical, strlen(canonical), out, err);
}

/* ==== Identifiers ======================================================== */

/* The system is kept as is, but may not contain '|': the first '|' of the
 * canonical form must be where the system ends, or "a|b" + "c" and
 * "a" + "b|c" could collide. */
static int identifier_system_check(const char *system, mv_err *err)
{
    if (u8_check((const uint8_t *)system, strlen(system)) != NULL)
        return mv_fail(err, MV_E_INVALID, "identifier system is not valid UTF-8");
    if (strchr(system, '|') != NULL)
        return mv_fail(err, MV_E_INVALID, "identifier system must not contain '|'");
    return 0;
}

/* Append value without white space or invisible characters, ASCII letters
 * upper-cased, other bytes unchanged. */
static int identifier_append_value(mv_buf *b, const char *value, mv_err *err)
{
    const uint8_t *p = (const uint8_t *)value;
    ucs4_t uc;
    for (const uint8_t *next; (next = u8_next(&uc, p)) != NULL; p = next) {
        int rc = 0;
        if (is_white(uc) || is_invisible(uc))
            continue;
        if (is_ascii_lower(uc))
            rc = put_byte(b, (char)(uc - 'a' + 'A'), err);
        else
            rc = mv_buf_append(b, p, (size_t)(next - p), err);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int search_identifier(const char *system, const char *value, char **out,
                      mv_err *err)
{
    if (system == NULL)
        system = "";
    if (start_output(out, err) != 0 || identifier_system_check(system, err) != 0
        || require_utf8(value, "identifier value", err) != 0)
        return -1;

    mv_buf b = {0};
    size_t system_len = strlen(system);
    int rc = mv_buf_append(&b, system, system_len, err);
    if (rc == 0)
        rc = put_byte(&b, '|', err);
    if (rc == 0)
        rc = identifier_append_value(&b, value, err);
    if (rc == 0 && b.len == system_len + 1)
        rc = mv_fail(err, MV_E_INVALID, "identifier value is empty");
    if (rc != 0) {
        mv_buf_free(&b);
        return -1;
    }
    return finish_string(&b, out, err);
}
