/*
 * leak_columns.c -- which identity a leaked file's column (or JSON key)
 * holds, from its header or from its values, and the date forms such files
 * use.
 *
 * Why this exists: a dump sold on a forum keeps whatever column names its
 * exporter chose ("N° SS", "Nom de famille", "Date naiss.", "Tel",
 * "Courriel", "DOB", "lastName") in any order, sometimes none at all.  The
 * header is read word by word after folding case and accents; a column whose
 * header says nothing is recognised by what its values look like (a 15-digit
 * NIR whose key holds, a date, a phone number, an address with an '@').
 * Dates come as 12/05/1985, 1985-05-12, 12.05.1985, 19850512 or with a time;
 * leak_date turns them into the YYYY-MM-DD the blind index holds.
 */
#include "leak.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../search/search.h"

#define HEADER_MAX 128
#define WORDS_MAX  12

const char *leak_field_name(leak_field f)
{
    static const char *const names[LEAK_FIELDS] = {
        "nir", "family", "given", "birth_date", "phone", "email", "id" };
    return (unsigned)f < LEAK_FIELDS ? names[f] : "?";
}

/* ---- Headers --------------------------------------------------------------- */

/* The header folded (case, accents) with every run of non-alphanumerics one
 * space: "N° SS" -> "n ss", "Date naiss." -> "date naiss". */
static int header_words(const char *header, char words[WORDS_MAX][HEADER_MAX], size_t *n)
{
    char *folded = NULL;
    *n = 0;
    if (search_fold_name(header, &folded, NULL) != 0)
        return -1;
    size_t len = 0;
    for (const char *p = folded; *p && *n < WORDS_MAX; p++) {
        int alnum = isalnum((unsigned char)*p) && !((unsigned char)*p & 0x80);
        if (alnum && len + 1 < HEADER_MAX)
            words[*n][len++] = (char)tolower((unsigned char)*p);
        if ((!alnum || p[1] == '\0') && len > 0) {
            words[*n][len] = '\0';
            (*n)++;
            len = 0;
        }
    }
    free(folded);
    return 0;
}

static int has_word(char words[WORDS_MAX][HEADER_MAX], size_t n, const char *const *set)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; set[k] != NULL; k++)
            if (strcmp(words[i], set[k]) == 0)
                return 1;
    return 0;
}

int leak_field_of_header(const char *header)
{
    static const char *const email[] = { "email", "mail", "courriel", "mel", "emails",
                                         "emailaddress", "adressemail", NULL };
    static const char *const phone[] = { "tel", "telephone", "phone", "mobile", "portable",
                                         "gsm", "fixe", "cell", "cellphone", "phonenumber",
                                         "telecom", "numtel", NULL };
    static const char *const nir[] = { "nir", "ss", "secu", "securite", "ssn", "nss",
                                       "insee", "security", "numsecu", "nirpp", NULL };
    static const char *const date[] = { "date", "ddn", "dob", "birthdate", "birthday",
                                        "datenaissance", "datenaiss", "born", "dateofbirth",
                                        NULL };
    static const char *const birth[] = { "naissance", "naiss", "birth", "ne", "nee", NULL };
    static const char *const given[] = { "prenom", "prenoms", "given", "firstname",
                                         "forename", "first", "givenname", NULL };
    static const char *const family[] = { "nom", "name", "family", "surname", "lastname",
                                          "familyname", "patronyme", "last", "birthname",
                                          "nomusage", "nomdefamille", NULL };
    char words[WORDS_MAX][HEADER_MAX];
    size_t n;
    if (header == NULL || header_words(header, words, &n) != 0 || n == 0)
        return -1;
    if (has_word(words, n, email))
        return LEAK_EMAIL;
    if (has_word(words, n, phone))
        return LEAK_PHONE;
    if (has_word(words, n, nir))
        return LEAK_NIR;
    int named = has_word(words, n, family) || has_word(words, n, given);
    if (has_word(words, n, date) || (has_word(words, n, birth) && !named))
        return LEAK_BIRTH;
    if (has_word(words, n, given))
        return LEAK_GIVEN;
    if (has_word(words, n, family))
        return LEAK_FAMILY;
    return -1;
}

/* ---- Dates ------------------------------------------------------------------ */

typedef struct digit_groups {
    int v[3];
    size_t len[3];
    size_t n;
} digit_groups;

/* Up to three runs of digits separated by one of "/-. ", up to a 'T' or a
 * time after a blank; 0 when that is all there is. */
static int split_date(const char *in, digit_groups *g)
{
    memset(g, 0, sizeof *g);
    const char *p = in;
    while (*p == ' ' || *p == '\t')
        p++;
    for (;;) {
        if (!isdigit((unsigned char)*p) || g->n == 3)
            return -1;
        while (isdigit((unsigned char)*p) && g->len[g->n] < 9) {
            g->v[g->n] = g->v[g->n] * 10 + (*p++ - '0');
            g->len[g->n]++;
        }
        g->n++;
        if (*p == '\0' || *p == 'T' || (*p == ' ' && (g->n == 3 || g->len[0] == 8)))
            return 0;
        if (strchr("/-.", *p) == NULL)
            return -1;
        p++;
    }
}

/* A two-digit year: this century up to this year, the last one after. */
static int full_year(int yy)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int this_year = tm.tm_year + 1900;
    int y = this_year / 100 * 100 + yy;
    return y > this_year ? y - 100 : y;
}

static int ymd_of(const digit_groups *g, int *y, int *m, int *d)
{
    if (g->n == 1 && g->len[0] == 8) {
        int v = g->v[0];
        if (v / 10000 >= 1800) {
            *y = v / 10000; *m = v / 100 % 100; *d = v % 100;        /* 19850512 */
        } else {
            *d = v / 1000000; *m = v / 10000 % 100; *y = v % 10000;  /* 12051985 */
        }
        return 0;
    }
    if (g->n != 3)
        return -1;
    if (g->len[0] == 4) {
        *y = g->v[0]; *m = g->v[1]; *d = g->v[2];
        return 0;
    }
    if (g->len[0] > 2 || g->len[1] > 2 || (g->len[2] != 4 && g->len[2] != 2))
        return -1;
    *d = g->v[0]; *m = g->v[1];
    *y = g->len[2] == 4 ? g->v[2] : full_year(g->v[2]);
    if (*m > 12 && *d <= 12) {                  /* 05/28/1985: month first */
        int t = *m; *m = *d; *d = t;
    }
    return 0;
}

int leak_date(const char *in, char out[11])
{
    digit_groups g;
    int y, m, d;
    if (in == NULL || split_date(in, &g) != 0 || ymd_of(&g, &y, &m, &d) != 0 ||
        y < 1800 || y > 2200 || m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    char iso[16], *canon = NULL;
    snprintf(iso, sizeof iso, "%04d-%02d-%02d", y, m, d);
    if (search_date(iso, &canon, NULL) != 0)    /* the calendar check */
        return -1;
    int ok = strlen(canon) == 10;
    if (ok)
        memcpy(out, canon, 11);
    free(canon);
    return ok ? 0 : -1;
}

/* ---- Values ------------------------------------------------------------------ */

static size_t count_digits(const char *s, size_t *others)
{
    size_t n = 0;
    *others = 0;
    for (; *s; s++) {
        if (isdigit((unsigned char)*s))
            n++;
        else if (strchr(" .-+()/", *s) == NULL)
            (*others)++;
    }
    return n;
}

static int looks_like_nir(const char *v)
{
    size_t others, digits = count_digits(v, &others);
    char *canon = NULL;
    int ok = (digits == 15 || (digits == 14 && others == 1)) &&
             search_nir(v, &canon, NULL) == 0;
    free(canon);
    return ok;
}

static int looks_like_phone(const char *v)
{
    size_t others, digits = count_digits(v, &others);
    const char *p = v;
    while (*p == ' ')
        p++;
    return others == 0 && digits >= 9 && digits <= 15 && (*p == '+' || *p == '0');
}

static int looks_like_name(const char *v)
{
    size_t letters = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalpha(*p) || *p >= 0x80)
            letters++;
        else if (strchr(" -'.", *p) == NULL)
            return 0;
    }
    return letters >= 2;
}

int leak_field_of_value(const char *value)
{
    char date[11];
    if (value == NULL || *value == '\0')
        return -1;
    if (strchr(value, '@') != NULL) {
        char *canon = NULL;
        int ok = search_email(value, &canon, NULL) == 0;
        free(canon);
        return ok ? LEAK_EMAIL : -1;
    }
    if (looks_like_nir(value))
        return LEAK_NIR;
    if (leak_date(value, date) == 0)
        return LEAK_BIRTH;
    if (looks_like_phone(value))
        return LEAK_PHONE;
    return looks_like_name(value) ? LEAK_FAMILY : -1;
}
