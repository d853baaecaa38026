/*
 * primitive.c -- the formats of the FHIR R4 primitive types, checked by hand.
 *
 * Why this exists: a primitive value is the smallest thing a client can get
 * wrong, and the R4 spec defines each format by a regular expression.  These
 * checks follow those expressions without a regex engine (no backtracking,
 * linear in the input), so that a hostile body costs no more than its size.
 * They answer with a short description of what was expected, never with the
 * value, which may be health data.
 */
#include <jansson.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/primitive.h"

/* ---- A cursor over one string value -------------------------------------- */

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Regex \s: space, \t, \n, \v, \f, \r. */
static int is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int take_char(cursor *c, char want)
{
    if (c->p < c->end && *c->p == want) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Exactly n digits, their value in *val. */
static int take_digits(cursor *c, int n, int *val)
{
    if (c->end - c->p < n)
        return 0;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(c->p[i]))
            return 0;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *val = v;
    return 1;
}

static int take_ranged(cursor *c, int n, int lo, int hi)
{
    int v;
    return take_digits(c, n, &v) && v >= lo && v <= hi;
}

static int at_end(const cursor *c) { return c->p == c->end; }

/* ---- Dates and times ------------------------------------------------------ */

/* YYYY, year 0001..9999 (the R4 regex excludes 0000). */
static int scan_year(cursor *c) { return take_ranged(c, 4, 1, 9999); }

static int scan_month(cursor *c) { return take_char(c, '-') && take_ranged(c, 2, 1, 12); }

static int scan_day(cursor *c) { return take_char(c, '-') && take_ranged(c, 2, 1, 31); }

/* hh:mm:ss(.f+)? */
static int scan_time(cursor *c)
{
    if (!take_ranged(c, 2, 0, 23) || !take_char(c, ':') ||
        !take_ranged(c, 2, 0, 59) || !take_char(c, ':') ||
        !take_ranged(c, 2, 0, 60))
        return 0;
    if (!take_char(c, '.'))
        return 1;
    const char *start = c->p;
    while (c->p < c->end && is_digit(*c->p))
        c->p++;
    return c->p > start;
}

/* Z | (+|-)hh:mm with hh 00..13, or exactly 14:00. */
static int scan_zone(cursor *c)
{
    if (take_char(c, 'Z'))
        return 1;
    if (!take_char(c, '+') && !take_char(c, '-'))
        return 0;
    int hh, mm;
    if (!take_digits(c, 2, &hh) || !take_char(c, ':') || !take_digits(c, 2, &mm))
        return 0;
    return (hh <= 13 && mm <= 59) || (hh == 14 && mm == 0);
}

static int scan_time_and_zone(cursor *c)
{
    return take_char(c, 'T') && scan_time(c) && scan_zone(c);
}

static int check_date(cursor *c)
{
    if (!scan_year(c))
        return 0;
    if (at_end(c))
        return 1;
    if (!scan_month(c))
        return 0;
    return at_end(c) || (scan_day(c) && at_end(c));
}

static int check_datetime(cursor *c)
{
    if (!scan_year(c))
        return 0;
    if (at_end(c))
        return 1;
    if (!scan_month(c))
        return 0;
    if (at_end(c))
        return 1;
    if (!scan_day(c))
        return 0;
    return at_end(c) || (scan_time_and_zone(c) && at_end(c));
}

static int check_instant(cursor *c)
{
    return scan_year(c) && scan_month(c) && scan_day(c) &&
           scan_time_and_zone(c) && at_end(c);
}

static int check_time(cursor *c) { return scan_time(c) && at_end(c); }

/* ---- Identifiers and text -------------------------------------------------- */

/* [A-Za-z0-9\-\.]{1,64} */
static int check_id(cursor *c)
{
    size_t n = (size_t)(c->end - c->p);
    if (n < 1 || n > 64)
        return 0;
    for (; c->p < c->end; c->p++) {
        char ch = *c->p;
        if (!(is_digit(ch) || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

/* [^\s]+(\s[^\s]+)*: no leading, trailing or doubled whitespace. */
static int check_code(cursor *c)
{
    int prev_space = 1; /* forbids a leading space */
    for (; c->p < c->end; c->p++) {
        int space = is_space(*c->p);
        if (space && prev_space)
            return 0;
        prev_space = space;
    }
    return !prev_space;
}

/* \S* (and, as every JSON string, not empty). */
static int check_uri(cursor *c)
{
    for (; c->p < c->end; c->p++) {
        if (is_space(*c->p))
            return 0;
    }
    return 1;
}

/* [ \r\n\t\S]+: any text except the vertical tab and form feed. */
static int check_text(cursor *c)
{
    for (; c->p < c->end; c->p++) {
        if (*c->p == '\v' || *c->p == '\f')
            return 0;
    }
    return 1;
}

static int is_base64_char(char ch)
{
    return is_digit(ch) || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           ch == '+' || ch == '/' || ch == '=';
}

/* The base64 alphabet, padding and whitespace. */
static int check_base64(cursor *c)
{
    for (; c->p < c->end; c->p++) {
        if (!is_base64_char(*c->p) && !is_space(*c->p))
            return 0;
    }
    return 1;
}

static int take_prefix(cursor *c, const char *prefix)
{
    size_t n = strlen(prefix);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, prefix, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* urn:oid:[0-2](\.(0|[1-9][0-9]*))+ */
static int check_oid(cursor *c)
{
    if (!take_prefix(c, "urn:oid:") || !take_ranged(c, 1, 0, 2))
        return 0;
    int arcs = 0;
    while (take_char(c, '.')) {
        const char *start = c->p;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
        if (c->p == start || (*start == '0' && c->p - start > 1))
            return 0;
        arcs++;
    }
    return arcs > 0 && at_end(c);
}

static int take_lower_hex(cursor *c, int n)
{
    for (int i = 0; i < n; i++, c->p++) {
        if (c->p >= c->end || !(is_digit(*c->p) || (*c->p >= 'a' && *c->p <= 'f')))
            return 0;
    }
    return 1;
}

/* urn:uuid:8-4-4-4-12 lower-case hex digits. */
static int check_uuid(cursor *c)
{
    return take_prefix(c, "urn:uuid:") && take_lower_hex(c, 8) && take_char(c, '-') &&
           take_lower_hex(c, 4) && take_char(c, '-') && take_lower_hex(c, 4) &&
           take_char(c, '-') && take_lower_hex(c, 4) && take_char(c, '-') &&
           take_lower_hex(c, 12) && at_end(c);
}

/* ---- Dispatch --------------------------------------------------------------- */

typedef int (*string_check)(cursor *c);

typedef struct string_format {
    string_check check;
    const char *expected;
} string_format;

static string_format format_of(fhir_prim prim)
{
    switch (prim) {
    case FHIR_P_DATE:         return (string_format){check_date, "a date (YYYY, YYYY-MM or YYYY-MM-DD)"};
    case FHIR_P_DATETIME:     return (string_format){check_datetime, "a dateTime"};
    case FHIR_P_INSTANT:      return (string_format){check_instant, "an instant (date, time and zone)"};
    case FHIR_P_TIME:         return (string_format){check_time, "a time (hh:mm:ss)"};
    case FHIR_P_ID:           return (string_format){check_id, "an id ([A-Za-z0-9-.]{1,64})"};
    case FHIR_P_CODE:         return (string_format){check_code, "a code (no leading, trailing or repeated whitespace)"};
    case FHIR_P_URI:
    case FHIR_P_URL:
    case FHIR_P_CANONICAL:    return (string_format){check_uri, "a uri without whitespace"};
    case FHIR_P_OID:          return (string_format){check_oid, "an oid (urn:oid:...)"};
    case FHIR_P_UUID:         return (string_format){check_uuid, "a uuid (urn:uuid:...)"};
    case FHIR_P_BASE64BINARY: return (string_format){check_base64, "base64 data"};
    default:                  return (string_format){check_text, "a string"};
    }
}

static const char *check_string(fhir_prim prim, const json_t *v)
{
    string_format f = format_of(prim);
    if (!json_is_string(v))
        return prim == FHIR_P_STRING ? "expected a string" : "expected a JSON string";
    size_t len = json_string_length(v);
    if (len == 0)
        return "empty string";
    if (len > FHIR_MAX_STRING)
        return "string too long";
    const char *s = json_string_value(v);
    cursor c = {s, s + len};
    return f.check(&c) ? NULL : f.expected;
}

static const char *check_integer(fhir_prim prim, const json_t *v)
{
    if (!json_is_integer(v))
        return "expected an integer";
    json_int_t n = json_integer_value(v);
    json_int_t lo = prim == FHIR_P_POSITIVEINT ? 1 : prim == FHIR_P_UNSIGNEDINT ? 0 : -2147483648LL;
    if (n < lo || n > 2147483647LL)
        return prim == FHIR_P_INTEGER ? "integer out of range" :
               prim == FHIR_P_POSITIVEINT ? "expected a positive integer" :
                                            "expected a non-negative integer";
    return NULL;
}

const char *fhir_prim_check(fhir_prim prim, const json_t *v)
{
    switch (prim) {
    case FHIR_P_BOOLEAN:
        return json_is_boolean(v) ? NULL : "expected a boolean (true or false)";
    case FHIR_P_INTEGER:
    case FHIR_P_UNSIGNEDINT:
    case FHIR_P_POSITIVEINT:
        return check_integer(prim, v);
    case FHIR_P_DECIMAL:
        return json_is_number(v) ? NULL : "expected a decimal number";
    default:
        return check_string(prim, v);
    }
}

int fhir_prim_valid_id(const char *s)
{
    cursor c = {s, s + strlen(s)};
    return check_id(&c);
}
