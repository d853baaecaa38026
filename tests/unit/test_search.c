/*
 * test_search.c -- unit tests for the canonical forms behind the blind
 * indexes (src/search).
 *
 * Why this exists: a blind index silently stops matching when two spellings
 * of the same value canonicalise differently, and silently leaks when an
 * error message echoes the value.  These tests pin down both: many messy
 * spellings must give one exact output, bad input must be refused with
 * MV_E_INVALID, *out NULL, and a message that does not contain the input.
 * NIR keys are computed here by plain integer arithmetic, independently of
 * the parser under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "search/search.h"

/* ---- Helpers ------------------------------------------------------------ */

typedef int (*canon_fn)(const char *in, char **out, mv_err *err);

static void expect_canon(canon_fn fn, const char *in, const char *expected)
{
    char *out = NULL;
    mv_err err = {0};
    int rc = fn(in, &out, &err);
    if (rc != 0)
        print_error("unexpected failure: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_string_equal(out, expected);
    free(out);
}

/* Refused with MV_E_INVALID, *out reset to NULL, and the message neither
 * empty nor quoting the (personal) input. */
static void expect_invalid(canon_fn fn, const char *in)
{
    char sentinel = 0;
    char *out = &sentinel;
    mv_err err = {0};
    assert_int_equal(fn(in, &out, &err), -1);
    assert_null(out);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_true(strlen(err.msg) > 0);
    assert_null(strchr(err.msg, '\n'));
    if (in != NULL && strlen(in) >= 3)
        assert_null(strstr(err.msg, in));
}

static void expect_invalid_msg(canon_fn fn, const char *in, const char *part)
{
    char *out = NULL;
    mv_err err = {0};
    assert_int_equal(fn(in, &out, &err), -1);
    assert_null(out);
    if (strstr(err.msg, part) == NULL)
        print_error("message '%s' lacks '%s'\n", err.msg, part);
    assert_non_null(strstr(err.msg, part));
}

/* The NIR key by the definition: 97 - (N mod 97). */
static int key_of(uint64_t n)
{
    return (int)(97 - n % 97);
}

/* body followed by its two-digit key. */
static void with_key(const char *body, int key, char out[16])
{
    snprintf(out, 16, "%.13s%02d", body, key);
}

/* ---- Names -------------------------------------------------------------- */

static void test_name_accents_and_case(void **state)
{
    (void)state;
    expect_canon(search_fold_name, "Élodie", "elodie");
    expect_canon(search_fold_name, "ELODIE", "elodie");
    expect_canon(search_fold_name, "élodie", "elodie");
    expect_canon(search_fold_name, "E\xCC\x81lodie", "elodie"); /* NFD input */
    expect_canon(search_fold_name, "ÉLODIE", "elodie");
    expect_canon(search_fold_name, "François", "francois");
    expect_canon(search_fold_name, "Müller", "muller");
    expect_canon(search_fold_name, "Ñúñez", "nunez");
    expect_canon(search_fold_name, "  Élodie-Marie D’Arc ", "elodie marie d arc");
}

static void test_name_hyphens_and_apostrophes(void **state)
{
    (void)state;
    static const char *const jean_pierre[] = {
        "Jean-Pierre", "Jean\xE2\x80\x90Pierre" /* U+2010 */,
        "Jean\xE2\x80\x91Pierre" /* U+2011 */, "Jean–Pierre" /* U+2013 */,
        "Jean—Pierre" /* U+2014 */, "Jean\xE2\x80\x95Pierre" /* U+2015 */,
        "Jean - Pierre", "JEAN--PIERRE", "jean pierre",
    };
    for (size_t i = 0; i < sizeof jean_pierre / sizeof *jean_pierre; i++)
        expect_canon(search_fold_name, jean_pierre[i], "jean pierre");

    static const char *const obrien[] = {
        "O'Brien", "O’Brien", "O\xCA\xBC" "Brien" /* U+02BC */, "O‘Brien",
        "O Brien", "o ' brien",
    };
    for (size_t i = 0; i < sizeof obrien / sizeof *obrien; i++)
        expect_canon(search_fold_name, obrien[i], "o brien");

    expect_canon(search_fold_name, "St. John, Jr.", "st john jr");
}

static void test_name_white_space(void **state)
{
    (void)state;
    expect_canon(search_fold_name, "Marie\xC2\xA0" "Claire", "marie claire");
    expect_canon(search_fold_name, "Marie    Claire", "marie claire");
    expect_canon(search_fold_name, "\tMarie \xE2\x80\xAF Claire\r\n", "marie claire");
    expect_canon(search_fold_name, "\xE2\x80\x83Marie Claire\xE3\x80\x80",
                 "marie claire");
    /* invisible characters from copy-paste: BOM, soft hyphen, zero width */
    expect_canon(search_fold_name, "\xEF\xBB\xBFMarie", "marie");
    expect_canon(search_fold_name, "Ma\xC2\xADrie", "marie");
    expect_canon(search_fold_name, "Ma\xE2\x80\x8Brie", "marie");
}

static void test_name_ligatures(void **state)
{
    (void)state;
    expect_canon(search_fold_name, "Lætitia", "laetitia");
    expect_canon(search_fold_name, "LÆTITIA", "laetitia");
    expect_canon(search_fold_name, "Laetitia", "laetitia");
    expect_canon(search_fold_name, "Œuvray", "oeuvray");
    expect_canon(search_fold_name, "ŒUVRAY", "oeuvray");
    expect_canon(search_fold_name, "cœur", "coeur");
    expect_canon(search_fold_name, "Strauß", "strauss");
    expect_canon(search_fold_name, "STRAUSS", "strauss");
    expect_canon(search_fold_name, "STRAU\xE1\xBA\x9E", "strauss"); /* capital ẞ */
    expect_canon(search_fold_name, "\xEF\xAC\x81liol", "filiol");  /* ﬁ */
}

static void test_name_greek_and_cyrillic_kept(void **state)
{
    (void)state;
    expect_canon(search_fold_name, "Σωκράτης", "σωκρατησ");
    expect_canon(search_fold_name, "ΣΩΚΡΆΤΗΣ", "σωκρατησ");
    expect_canon(search_fold_name, "Дмитрий", "дмитрии");
    expect_canon(search_fold_name, "ДМИТРИЙ", "дмитрии");
    expect_canon(search_fold_name, "Ёлкин", "елкин");
}

static void test_name_compatibility_forms(void **state)
{
    (void)state;
    /* mathematical bold "𝐄𝐥𝐨𝐝𝐢𝐞" and full-width "ＥＬＯＤＩＥ" */
    expect_canon(search_fold_name,
                 "\xF0\x9D\x90\x84\xF0\x9D\x90\xA5\xF0\x9D\x90\xA8"
                 "\xF0\x9D\x90\x9D\xF0\x9D\x90\xA2\xF0\x9D\x90\x9E", "elodie");
    expect_canon(search_fold_name, "ＥＬＯＤＩＥ", "elodie");
}

static void test_name_fold_is_idempotent(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "  Élodie-Marie D’Arc ", "Strauß", "ΣΩΚΡΆΤΗΣ", "\xF0\x9D\x90\x84va",
        "Œuvray",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char *once = NULL;
        mv_err err = {0};
        assert_int_equal(search_fold_name(inputs[i], &once, &err), 0);
        expect_canon(search_fold_name, once, once);
        free(once);
    }
}

static void test_name_rejects_invalid_utf8(void **state)
{
    (void)state;
    expect_invalid(search_fold_name, "Jos\xC3");            /* truncated */
    expect_invalid(search_fold_name, "\xC3\x28lodie");      /* bad continuation */
    expect_invalid(search_fold_name, "Marie\xFF");
    expect_invalid(search_fold_name, "\xC0\xAF" "abc");     /* overlong */
    expect_invalid(search_fold_name, "\xED\xA0\x80" "abc"); /* surrogate */
    expect_invalid_msg(search_fold_name, "Marie\xFF", "UTF-8");
}

static void test_name_rejects_no_letter(void **state)
{
    (void)state;
    expect_invalid(search_fold_name, NULL);
    expect_invalid(search_fold_name, "");
    expect_invalid(search_fold_name, "   ");
    expect_invalid(search_fold_name, "\xC2\xA0\xC2\xA0");
    expect_invalid(search_fold_name, "1234");
    expect_invalid(search_fold_name, "-- ' . ,");
    expect_invalid_msg(search_fold_name, "1234", "no letter");
}

/* ---- NIR ---------------------------------------------------------------- */

static void test_nir_key_by_arithmetic(void **state)
{
    (void)state;
    assert_int_equal(search_nir_key("1850578006084"), key_of(1850578006084ULL));
    assert_int_equal(search_nir_key("2550814168025"), key_of(2550814168025ULL));
    assert_int_equal(search_nir_key("2690392016037"), key_of(2690392016037ULL));
    assert_int_equal(search_nir_key("1852078006084"), key_of(1852078006084ULL));
    /* Corsica: 2A counts as 19, 2B as 18 */
    assert_int_equal(search_nir_key("185052A006084"), key_of(1850519006084ULL));
    assert_int_equal(search_nir_key("185052B006084"), key_of(1850518006084ULL));
    assert_int_equal(search_nir_key("185052a006084"), key_of(1850519006084ULL));
}

static void test_nir_key_malformed(void **state)
{
    (void)state;
    assert_int_equal(search_nir_key(NULL), -1);
    assert_int_equal(search_nir_key(""), -1);
    assert_int_equal(search_nir_key("185057800608"), -1);   /* 12 */
    assert_int_equal(search_nir_key("18505780060841"), -1); /* 14 */
    assert_int_equal(search_nir_key("5850578006084"), -1);  /* sex */
    assert_int_equal(search_nir_key("1851578006084"), -1);  /* month 15 */
    assert_int_equal(search_nir_key("185052C006084"), -1);  /* dept 2C */
    assert_int_equal(search_nir_key("18505780060X4"), -1);
}

static void test_nir_spellings_equal(void **state)
{
    (void)state;
    char canonical[16], keyed_spaced[40];
    int key = key_of(1850578006084ULL);
    with_key("1850578006084", key, canonical);
    snprintf(keyed_spaced, sizeof keyed_spaced, "1 85 05 78 006 084 %02d", key);

    expect_canon(search_nir, "1850578006084", canonical);
    expect_canon(search_nir, "1 85 05 78 006 084", canonical);
    expect_canon(search_nir, " 1.85.05.78.006.084 ", canonical);
    expect_canon(search_nir, "1-85-05-78-006-084", canonical);
    expect_canon(search_nir, "1\xC2\xA0" "85\xC2\xA0" "05\xC2\xA0" "78\xC2\xA0"
                             "006\xC2\xA0" "084", canonical);
    expect_canon(search_nir, keyed_spaced, canonical);
    expect_canon(search_nir, canonical, canonical);
    assert_int_equal(strlen(canonical), 15);
}

static void test_nir_small_key_zero_padded(void **state)
{
    (void)state;
    /* find a body whose key is below 10, by arithmetic */
    uint64_t n = 1850578006000ULL;
    while (key_of(n) >= 10)
        n++;
    char body[16], canonical[16];
    snprintf(body, sizeof body, "%llu", (unsigned long long)n);
    with_key(body, key_of(n), canonical);
    assert_int_equal(canonical[13], '0');
    expect_canon(search_nir, body, canonical);
    expect_canon(search_nir, canonical, canonical);
}

static void test_nir_corsica(void **state)
{
    (void)state;
    char a[16], b[16], a_spaced[40];
    with_key("185052A006084", key_of(1850519006084ULL), a);
    with_key("185052B006084", key_of(1850518006084ULL), b);
    snprintf(a_spaced, sizeof a_spaced, "1 85 05 2a 006 084 %.2s", a + 13);

    expect_canon(search_nir, "1 85 05 2A 006 084", a);
    expect_canon(search_nir, a_spaced, a);
    expect_canon(search_nir, "185052b006084", b);
    expect_canon(search_nir, b, b);
    assert_string_not_equal(a + 13, b + 13);
}

static void test_nir_wrong_key_rejected(void **state)
{
    (void)state;
    char wrong[16];
    with_key("1850578006084", key_of(1850578006084ULL) % 97 + 1, wrong);
    expect_invalid(search_nir, wrong);
    expect_invalid_msg(search_nir, wrong, "NIR control key does not match");

    char corsica_as_digits[16];  /* 2A must not be keyed as if it were 20 */
    with_key("185052A006084", key_of(1850520006084ULL), corsica_as_digits);
    expect_invalid_msg(search_nir, corsica_as_digits, "does not match");
    expect_invalid_msg(search_nir, "1850578006084AB", "two digits");
}

static void test_nir_wrong_length_rejected(void **state)
{
    (void)state;
    expect_invalid(search_nir, NULL);
    expect_invalid(search_nir, "");
    expect_invalid_msg(search_nir, "18505780060", "got 11");
    expect_invalid_msg(search_nir, "1 85 05 78 006 08", "got 12");
    expect_invalid_msg(search_nir, "18505780060849", "got 14");
    expect_invalid_msg(search_nir, "1850578006084911", "got 16");
    expect_invalid(search_nir, "185057800608491185057800608491");
}

static void test_nir_bad_fields_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0850578006084", "5850578006084", "9850578006084", /* sex */
        "1850078006084", "1851378006084", "1851978006084", /* month */
        "185052C006084", "1850578A06084", "18505780060X4", /* letters */
        "1X50578006084", "1850578006084\xFF",              /* junk */
        "1850578006084+91",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_invalid(search_nir, bad[i]);
    expect_invalid_msg(search_nir, "5850578006084", "start with");
    expect_invalid_msg(search_nir, "1851378006084", "month");
    expect_invalid_msg(search_nir, "185052C006084", "department");
    expect_invalid_msg(search_nir, "18505/78006084", "position 6");
}

static void test_nir_every_sex_digit_accepted(void **state)
{
    (void)state;
    static const struct { const char *body; uint64_t n; } ok[] = {
        {"1850578006084", 1850578006084ULL}, {"2850578006084", 2850578006084ULL},
        {"3850578006084", 3850578006084ULL}, {"4850578006084", 4850578006084ULL},
        {"7850578006084", 7850578006084ULL}, {"8850578006084", 8850578006084ULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char canonical[16];
        with_key(ok[i].body, key_of(ok[i].n), canonical);
        expect_canon(search_nir, ok[i].body, canonical);
    }
}

static void test_nir_unknown_month_accepted(void **state)
{
    (void)state;
    char canonical[16];
    with_key("1852078006084", key_of(1852078006084ULL), canonical);
    expect_canon(search_nir, "1 85 20 78 006 084", canonical);
    with_key("1859978006084", key_of(1859978006084ULL), canonical);
    expect_canon(search_nir, "1859978006084", canonical);
}

/* ---- Phone -------------------------------------------------------------- */

static void test_phone_french_forms_equal(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "0612345678",
        "06\xC2\xA0" "12\xC2\xA0" "34\xC2\xA0" "56\xC2\xA0" "78",
        "+33 6 12 34 56 78", "+33612345678", "+33 (0)6 12 34 56 78",
        "+33(0)612345678", "+33 ( 0 ) 6 12 34 56 78", "0033 6 12 34 56 78",
        "0033 (0)6 12 34 56 78", "+33 06 12 34 56 78", " (06) 12/34/56/78 ",
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        expect_canon(search_phone, forms[i], "33612345678");
}

static void test_phone_international_preserved(void **state)
{
    (void)state;
    expect_canon(search_phone, "+44 20 7946 0958", "442079460958");
    expect_canon(search_phone, "0044 20 7946 0958", "442079460958");
    expect_canon(search_phone, "+1 (555) 123-4567", "15551234567");
    expect_canon(search_phone, "+39 06 1234 5678", "390612345678");
    expect_canon(search_phone, "+49 (0)30 1234567", "49301234567");
}

static void test_phone_other_numbers_kept(void **state)
{
    (void)state;
    expect_canon(search_phone, "01 23 45 67 89", "33123456789");
    expect_canon(search_phone, "+33 1 23 45 67 89", "33123456789");
    /* no national prefix and no country code: kept as typed, not guessed */
    expect_canon(search_phone, "123456", "123456");
    expect_canon(search_phone, "612345678", "612345678");
}

static void test_phone_rejected(void **state)
{
    (void)state;
    expect_invalid(search_phone, NULL);
    expect_invalid(search_phone, "");
    expect_invalid(search_phone, "   ");
    expect_invalid(search_phone, "+");
    expect_invalid(search_phone, "12345");
    expect_invalid(search_phone, "+1 23 45");
    expect_invalid(search_phone, "06 12 AB 56 78");
    expect_invalid(search_phone, "06 12 34 +56 78");
    expect_invalid(search_phone, "06 12 34 56 78\xFF");
    expect_invalid_msg(search_phone, "12345", "fewer than 6 digits");
}

/* ---- E-mail ------------------------------------------------------------- */

static void test_email_canonical(void **state)
{
    (void)state;
    expect_canon(search_email, "jean.dupont@example.fr", "jean.dupont@example.fr");
    expect_canon(search_email, "  Jean.Dupont@Example.FR \n", "jean.dupont@example.fr");
    expect_canon(search_email, "\xC2\xA0JEAN.DUPONT@EXAMPLE.FR\xE2\x80\xAF",
                 "jean.dupont@example.fr");
    expect_canon(search_email, "\xEF\xBB\xBFjean@example.fr", "jean@example.fr");
    /* non-ASCII bytes are left exactly as they are */
    expect_canon(search_email, "Élodie@Exemple.FR", "Élodie@exemple.fr");
}

static void test_email_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "   ", "jean.dupont", "jean@@example.fr", "a@b@example.fr",
        "@example.fr", "jean@", " @ ", "jean dupont@example.fr",
        "jean@exam\xC2\xA0ple.fr", "jean@exam\tple.fr", "jean@ex\x01.fr",
        "jean@example.fr\xFF",
    };
    expect_invalid(search_email, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_invalid(search_email, bad[i]);
    expect_invalid_msg(search_email, "jean@@example.fr", "exactly one '@'");
    expect_invalid_msg(search_email, "@example.fr", "before");
    expect_invalid_msg(search_email, "jean@", "after");
}

/* ---- Dates -------------------------------------------------------------- */

static void test_date_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "1985-05-12", "12/05/1985", "19850512", " 1985-05-12 ",
        "1985-05-12T10:30:00+02:00", "1985-05-12T23:59:59.123Z",
        "1985-05-12 08:00:00", "12/05/1985 08:00",
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        expect_canon(search_date, forms[i], "1985-05-12");
    expect_canon(search_date, "1985", "1985");
    expect_canon(search_date, "1985-05", "1985-05");
}

static void test_date_leap_years(void **state)
{
    (void)state;
    expect_canon(search_date, "2024-02-29", "2024-02-29");
    expect_canon(search_date, "29/02/2000", "2000-02-29");
    expect_canon(search_date, "20240229", "2024-02-29");
    expect_invalid(search_date, "2023-02-29");
    expect_invalid(search_date, "29/02/1900");
    expect_invalid(search_date, "2100-02-29");
    expect_invalid(search_date, "2024-02-30");
    expect_canon(search_date, "2023-02-28", "2023-02-28");
}

static void test_date_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "31/04/2020", "2020-04-31", "2020-13-01", "2020-00-10", "2020-01-00",
        "2020-00", "0000", "1985-5-12", "12/5/1985", "85-05-12", "abcd",
        "1985/05/12", "", "  ", "1985-05-12X", "19850532",
    };
    expect_invalid(search_date, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_invalid(search_date, bad[i]);
    expect_invalid_msg(search_date, "31/04/2020", "day");
}

/* ---- Identifiers -------------------------------------------------------- */

static void expect_identifier(const char *system, const char *value,
                              const char *expected)
{
    char *out = NULL;
    mv_err err = {0};
    assert_int_equal(search_identifier(system, value, &out, &err), 0);
    assert_string_equal(out, expected);
    free(out);
}

static void expect_identifier_invalid(const char *system, const char *value)
{
    char sentinel = 0;
    char *out = &sentinel;
    mv_err err = {0};
    assert_int_equal(search_identifier(system, value, &out, &err), -1);
    assert_null(out);
    assert_int_equal(err.code, MV_E_INVALID);
}

static void test_identifier(void **state)
{
    (void)state;
    const char *sys = "urn:oid:1.2.250.1.213.1.4.8";
    expect_identifier(sys, " ab 12-c ", "urn:oid:1.2.250.1.213.1.4.8|AB12-C");
    expect_identifier(sys, "AB12-C", "urn:oid:1.2.250.1.213.1.4.8|AB12-C");
    expect_identifier(sys, "ab\xC2\xA0" "12-c\t", "urn:oid:1.2.250.1.213.1.4.8|AB12-C");
    expect_identifier(NULL, "ab12", "|AB12");
    expect_identifier("", " ab12", "|AB12");
    expect_identifier("Sys", "é1x", "Sys|é1X"); /* ASCII only upper-cased */
}

static void test_identifier_rejected(void **state)
{
    (void)state;
    expect_identifier_invalid("sys", NULL);
    expect_identifier_invalid("sys", "");
    expect_identifier_invalid("sys", " \xC2\xA0\t");
    expect_identifier_invalid("sys", "AB\xFF");
    expect_identifier_invalid("a|b", "c");
    expect_identifier_invalid("sys\xFF", "c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_accents_and_case),
        cmocka_unit_test(test_name_hyphens_and_apostrophes),
        cmocka_unit_test(test_name_white_space),
        cmocka_unit_test(test_name_ligatures),
        cmocka_unit_test(test_name_greek_and_cyrillic_kept),
        cmocka_unit_test(test_name_compatibility_forms),
        cmocka_unit_test(test_name_fold_is_idempotent),
        cmocka_unit_test(test_name_rejects_invalid_utf8),
        cmocka_unit_test(test_name_rejects_no_letter),
        cmocka_unit_test(test_nir_key_by_arithmetic),
        cmocka_unit_test(test_nir_key_malformed),
        cmocka_unit_test(test_nir_spellings_equal),
        cmocka_unit_test(test_nir_small_key_zero_padded),
        cmocka_unit_test(test_nir_corsica),
        cmocka_unit_test(test_nir_wrong_key_rejected),
        cmocka_unit_test(test_nir_wrong_length_rejected),
        cmocka_unit_test(test_nir_bad_fields_rejected),
        cmocka_unit_test(test_nir_every_sex_digit_accepted),
        cmocka_unit_test(test_nir_unknown_month_accepted),
        cmocka_unit_test(test_phone_french_forms_equal),
        cmocka_unit_test(test_phone_international_preserved),
        cmocka_unit_test(test_phone_other_numbers_kept),
        cmocka_unit_test(test_phone_rejected),
        cmocka_unit_test(test_email_canonical),
        cmocka_unit_test(test_email_rejected),
        cmocka_unit_test(test_date_forms),
        cmocka_unit_test(test_date_leap_years),
        cmocka_unit_test(test_date_rejected),
        cmocka_unit_test(test_identifier),
        cmocka_unit_test(test_identifier_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
