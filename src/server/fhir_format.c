/*
 * fhir_format.c -- which formats the FHIR API speaks: JSON, and nothing
 * that pretends otherwise.
 *
 * Why this exists: a client that asks for XML (Accept, or _format) and is
 * handed JSON with a 200 fails later, in a parser, far from the cause; one
 * that sends XML must hear at once that it was not read.  R4 (http.html,
 * "Content Types and encodings") gives the answers: 406 when no acceptable
 * format can be served, 415 when the body's format is not supported.  Both
 * requests and bodies are judged here, so every route agrees.
 */
#include "fhir_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The media types of FHIR JSON medvault reads and writes (R4, and the
 * DSTU2 name some clients still send). */
static const char *const json_types[] = {
    "application/fhir+json", "application/json", "application/json+fhir", NULL
};

/* [s, s+n) trimmed of blanks at both ends. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static int is_json_media(const char *s, size_t n)
{
    for (size_t i = 0; json_types[i] != NULL; i++)
        if (strlen(json_types[i]) == n && strncasecmp(s, json_types[i], n) == 0)
            return 1;
    return 0;
}

int fhir_is_json_type(const char *content_type)
{
    if (content_type == NULL)
        return 0;
    const char *s = content_type;
    size_t n = strcspn(s, ";");
    trim(&s, &n);
    return is_json_media(s, n);
}

/* 1 when the media range [s, s+n) ("type/sub;q=0.5") admits JSON with a
 * quality above zero. */
static int range_admits_json(const char *s, size_t n)
{
    const char *params = memchr(s, ';', n);
    size_t len = params ? (size_t)(params - s) : n;
    const char *type = s;
    trim(&type, &len);
    int json = is_json_media(type, len) ||
               (len == 3 && strncmp(type, "*/*", 3) == 0) ||
               (len == 13 && strncasecmp(type, "application/*", 13) == 0);
    if (!json)
        return 0;
    for (const char *p = params; p != NULL && p < s + n;) {
        p++;
        while (p < s + n && isspace((unsigned char)*p))
            p++;
        if (s + n - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char q[16];
            size_t k = 0;
            for (p += 2; p < s + n && *p != ';' && k + 1 < sizeof q; p++)
                q[k++] = *p;
            q[k] = '\0';
            return strtod(q, NULL) > 0.0;
        }
        p = memchr(p, ';', (size_t)(s + n - p));
    }
    return 1;
}

static int accept_admits_json(const char *accept)
{
    if (accept == NULL || accept[strspn(accept, " \t")] == '\0')
        return 1;                           /* no preference: JSON it is */
    for (const char *p = accept; *p;) {
        size_t n = strcspn(p, ",");
        if (range_admits_json(p, n))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* _format: "json" or a JSON media type; anything else (xml, ttl, html) is
 * a format medvault does not serve. */
static int format_admits_json(const char *format)
{
    if (format == NULL)
        return 1;
    size_t n = strcspn(format, ";");
    const char *s = format;
    trim(&s, &n);
    return (n == 4 && strncasecmp(s, "json", 4) == 0) || is_json_media(s, n);
}

int fhir_acceptable(call *c)
{
    if (format_admits_json(http_query(c->req, "_format")) &&
        accept_admits_json(http_header(c->req, "Accept")))
        return 1;
    call_fail(c, 406, "not-supported", "medvault serves FHIR as JSON only "
              "(application/fhir+json); XML and other formats are not supported");
    return 0;
}
