/*
 * instant.c -- date search values compared with an instant the server keeps
 * itself: _lastUpdated (and a history's _since).
 *
 * Why this exists: _lastUpdated is not indexed through blind-index tokens
 * like the clinical dates (index.c); it is the time a version was stored,
 * kept in clear by the store and compared there.  What FHIR's date search
 * means still belongs to fhir/: a value names a range as wide as its
 * precision ("2026-11-28" is the whole day, "2026-11-28T10:03" a minute),
 * and a prefix says which instants match.  For an instant t (a range of one
 * microsecond) the R4 rules come down to:
 *     eq  lo <= t < hi      ne  outside [lo, hi)
 *     gt  t >= hi           lt  t < lo
 *     ge  t >= lo           le  t < hi
 *     sa  t >= hi (as gt)   eb  t < lo (as lt)
 *     ap  within 10% of the gap between now and the value (at least a day)
 * Error messages name the parameter, never the value.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fhir/fhir.h"

#define US_PER_S 1000000LL

/* The fields read so far and how precise the value is. */
typedef enum precision { P_YEAR, P_MONTH, P_DAY, P_MINUTE, P_SECOND, P_FRACTION } precision;

typedef struct when {
    int year, month, day, hour, minute, second;
    int64_t frac_us;       /* the fraction, in microseconds            */
    int64_t frac_step_us;  /* one unit of the fraction's last digit    */
    int64_t zone_s;        /* offset east of UTC, seconds              */
    precision prec;
} when;

/* n digits at *p as a number; -1 when they are not all digits. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* "-NN" or ":NN" within lo..hi, or -1. */
static int field(const char **p, char sep, int lo, int hi)
{
    if (**p != sep)
        return -1;
    (*p)++;
    int v = digits(p, 2);
    return v < lo || v > hi ? -1 : v;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* ".ddd" (any number of digits; beyond microseconds they only narrow). */
static int parse_fraction(const char **p, when *w)
{
    if (**p != '.')
        return 0;
    (*p)++;
    int n = 0;
    w->frac_step_us = US_PER_S;
    for (; isdigit((unsigned char)**p); (*p)++, n++)
        if (n < 6) {
            w->frac_step_us /= 10;
            w->frac_us += (**p - '0') * w->frac_step_us;
        }
    if (n == 0)
        return -1;
    w->prec = P_FRACTION;
    return 0;
}

/* "Z", "+hh:mm" or "-hh:mm" ("+" may arrive as a space when a client did not
 * percent-encode it in the query string); nothing means UTC. */
static int parse_zone(const char **p, when *w)
{
    char sign = **p;
    if (sign == 'Z') {
        (*p)++;
        return 0;
    }
    if (sign != '+' && sign != '-' && sign != ' ')
        return 0;
    (*p)++;
    int hh = digits(p, 2);
    int mm = field(p, ':', 0, 59);
    if (hh < 0 || hh > 14 || mm < 0)
        return -1;
    w->zone_s = (hh * 3600LL + mm * 60LL) * (sign == '-' ? -1 : 1);
    return 0;
}

/* "Thh:mm[:ss[.fff]][zone]" */
static int parse_time(const char **p, when *w)
{
    if (**p != 'T')
        return 0;
    (*p)++;
    if ((w->hour = digits(p, 2)) < 0 || w->hour > 23 ||
        (w->minute = field(p, ':', 0, 59)) < 0)
        return -1;
    w->prec = P_MINUTE;
    if (**p == ':') {
        if ((w->second = field(p, ':', 0, 59)) < 0)
            return -1;
        w->prec = P_SECOND;
        if (parse_fraction(p, w) != 0)
            return -1;
    }
    return parse_zone(p, w);
}

/* "YYYY[-MM[-DD[time]]]" */
static int parse_when(const char *s, when *w)
{
    memset(w, 0, sizeof *w);
    w->month = w->day = 1;
    const char *p = s;
    if ((w->year = digits(&p, 4)) < 1)
        return -1;
    w->prec = P_YEAR;
    if (*p == '-') {
        if ((w->month = field(&p, '-', 1, 12)) < 0)
            return -1;
        w->prec = P_MONTH;
    }
    if (w->prec == P_MONTH && *p == '-') {
        if ((w->day = field(&p, '-', 1, days_in(w->year, w->month))) < 0)
            return -1;
        w->prec = P_DAY;
        if (parse_time(&p, w) != 0)
            return -1;
    }
    return *p == '\0' ? 0 : -1;
}

/* Seconds since the epoch of a UTC calendar time (month may be 13). */
static int64_t epoch_s(int year, int month, int day, int hour, int minute, int second)
{
    struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                     .tm_hour = hour, .tm_min = minute, .tm_sec = second };
    return (int64_t)timegm(&tm);
}

/* The first instant the value names and the first one after it. */
static void when_range(const when *w, int64_t *lo, int64_t *hi)
{
    int64_t start = epoch_s(w->year, w->month, w->day, w->hour, w->minute, w->second);
    int64_t end;
    switch (w->prec) {
    case P_YEAR:   end = epoch_s(w->year + 1, 1, 1, 0, 0, 0); break;
    case P_MONTH:  end = epoch_s(w->year, w->month + 1, 1, 0, 0, 0); break;
    case P_DAY:    end = start + 86400; break;
    case P_MINUTE: end = start + 60; break;
    default:       end = start + 1; break;
    }
    *lo = (start - w->zone_s) * US_PER_S + w->frac_us;
    *hi = w->prec == P_FRACTION ? *lo + w->frac_step_us : (end - w->zone_s) * US_PER_S;
}

int fhir_instant_parse(const char *name, const char *value, int64_t *from_us,
                       int64_t *to_us, mv_err *err)
{
    when w;
    if (value == NULL || parse_when(value, &w) != 0)
        return mv_fail(err, MV_E_INVALID, "search parameter %s: malformed date or "
                       "time (YYYY[-MM[-DD[Thh:mm[:ss[.f]][Z|+hh:mm]]]])", name);
    when_range(&w, from_us, to_us);
    return 0;
}

int fhir_query_instants(const char *name, const char *modifier, const char *value,
                        fhir_instant_range *out, mv_err *err)
{
    static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb",
                                           "ap"};
    const size_t n_prefixes = sizeof prefixes / sizeof prefixes[0];
    if (modifier != NULL && *modifier != '\0')
        return mv_fail(err, MV_E_INVALID, "search parameter %s: modifier :%s not "
                       "supported", name, modifier);
    if (value == NULL || *value == '\0')
        return mv_fail(err, MV_E_INVALID, "search parameter %s: empty value", name);
    size_t k = 0;                                 /* no prefix: eq */
    if (isalpha((unsigned char)value[0])) {
        while (k < n_prefixes && strncmp(value, prefixes[k], 2) != 0)
            k++;
        if (k == n_prefixes)
            return mv_fail(err, MV_E_INVALID, "search parameter %s: unknown date "
                           "prefix (eq ne gt lt ge le sa eb ap)", name);
        value += 2;
    }
    int64_t lo, hi;
    if (fhir_instant_parse(name, value, &lo, &hi, err) != 0)
        return -1;
    /* ap: within 10% of the gap between now and the value, at least a day */
    int64_t now = (int64_t)time(NULL) * US_PER_S;
    int64_t gap = now > lo ? now - lo : lo - now;
    int64_t tol = gap / 10 > 86400 * US_PER_S ? gap / 10 : 86400 * US_PER_S;
    fhir_instant_range r[] = {
        {lo, hi, 0},                    /* eq */
        {lo, hi, 1},                    /* ne */
        {hi, INT64_MAX, 0},             /* gt */
        {INT64_MIN, lo, 0},             /* lt */
        {lo, INT64_MAX, 0},             /* ge */
        {INT64_MIN, hi, 0},             /* le */
        {hi, INT64_MAX, 0},             /* sa: an instant starts after */
        {INT64_MIN, lo, 0},             /* eb: an instant ends before */
        {lo - tol, hi + tol, 0},        /* ap */
    };
    *out = r[k];
    return 0;
}
