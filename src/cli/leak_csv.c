/*
 * leak_csv.c -- the rows of a leaked CSV file: RFC 4180 records, the
 * separator the exporter chose, and which column holds which identity.
 *
 * Why this exists: there is no CSV library in Debian's C stack we use, and
 * a file found for sale is rarely clean: semicolons (a French spreadsheet's
 * default), quoted fields with line breaks or doubled quotes, a header in
 * any language or none, lines cut short or garbage in the middle.  A damaged
 * record is counted (leak_sink.broken) and reading goes on from the next
 * line, so one stray quote cannot swallow the rest of the file.
 *
 * Ownership: records are unquoted into the parser's own buffer, which the
 * rows handed to the sink borrow until the next record.
 */
#include "leak.h"

#include <stdlib.h>
#include <string.h>

#define SAMPLE_ROWS 200          /* records read ahead to recognise columns */

typedef struct csv_parser {
    const char *p, *end;
    size_t line;                 /* physical line of p, from 1 */
    const char *record;          /* where the current record began */
    char sep;
    char *buf;                   /* the current record's fields, each NUL-ended */
    size_t len, cap;
    size_t *start;               /* offset of each field in buf */
    size_t n_fields, cap_fields;
} csv_parser;

static void parser_init(csv_parser *cp, const char *data, size_t len, char sep)
{
    memset(cp, 0, sizeof *cp);
    cp->p = data;
    cp->end = data + len;
    cp->line = 1;
    cp->sep = sep;
}

static void parser_free(csv_parser *cp)
{
    free(cp->buf);
    free(cp->start);
}

static int put_char(csv_parser *cp, char c, mv_err *err)
{
    if (cp->len == cp->cap) {
        size_t cap = cp->cap ? cp->cap * 2 : 256;
        char *grown = realloc(cp->buf, cap);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        cp->buf = grown;
        cp->cap = cap;
    }
    cp->buf[cp->len++] = c;
    return 0;
}

static int field_begin(csv_parser *cp, mv_err *err)
{
    if (cp->n_fields == cp->cap_fields) {
        size_t cap = cp->cap_fields ? cp->cap_fields * 2 : 16;
        size_t *grown = realloc(cp->start, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        cp->start = grown;
        cp->cap_fields = cap;
    }
    cp->start[cp->n_fields++] = cp->len;
    return 0;
}

static const char *field(const csv_parser *cp, size_t i)
{
    return cp->buf + cp->start[i];
}

/* A quoted field's content up to its closing quote; 1 when the file ends
 * inside it. */
static int quoted(csv_parser *cp, mv_err *err)
{
    cp->p++;
    while (cp->p < cp->end) {
        char c = *cp->p++;
        if (c == '"' && cp->p < cp->end && *cp->p == '"')
            cp->p++;
        else if (c == '"')
            return 0;
        else if (c == '\n')
            cp->line++;
        if (put_char(cp, c, err) != 0)
            return -1;
    }
    return 1;
}

/* Past the end of the current line (LF or CRLF). */
static void skip_line(csv_parser *cp)
{
    const char *nl = memchr(cp->p, '\n', (size_t)(cp->end - cp->p));
    cp->p = nl ? nl + 1 : cp->end;
    cp->line += nl != NULL;
}

/* The next record into the parser: 1 read, 0 end of file, 2 the file ends
 * inside a quote, -1 error.  *first_line gets the record's first line. */
static int next_record(csv_parser *cp, size_t *first_line, mv_err *err)
{
    cp->len = cp->n_fields = 0;
    while (cp->p < cp->end && (*cp->p == '\n' || *cp->p == '\r')) {   /* blank lines */
        cp->line += *cp->p == '\n';
        cp->p++;
    }
    if (cp->p >= cp->end)
        return 0;
    *first_line = cp->line;
    cp->record = cp->p;
    if (field_begin(cp, err) != 0)
        return -1;
    while (cp->p < cp->end) {
        char c = *cp->p;
        int rc = 0;
        if (c == '"' && cp->len == cp->start[cp->n_fields - 1])
            rc = quoted(cp, err);
        else if (c == cp->sep) {
            cp->p++;
            rc = put_char(cp, '\0', err) == 0 ? field_begin(cp, err) : -1;
        } else if (c == '\n' || (c == '\r' && (cp->p + 1 == cp->end || cp->p[1] == '\n'))) {
            skip_line(cp);
            break;
        } else {
            cp->p++;
            rc = put_char(cp, c, err);
        }
        if (rc != 0)
            return rc;
    }
    return put_char(cp, '\0', err) == 0 ? 1 : -1;
}

/* ---- The separator and the columns ------------------------------------------ */

static char guess_separator(const char *data, size_t len)
{
    static const char seps[] = ",;\t|";
    size_t count[4] = {0}, i = 0;
    int in_quote = 0;
    for (; i < len && (in_quote || data[i] != '\n'); i++) {
        if (data[i] == '"')
            in_quote = !in_quote;
        const char *s = in_quote ? NULL : memchr(seps, data[i], 4);
        if (s != NULL)
            count[s - seps]++;
    }
    size_t best = 0;
    for (size_t k = 1; k < 4; k++)
        if (count[k] > count[best])
            best = k;
    return seps[best];
}

/* Columns from the first record read as a header: 1 when it names one. */
static int columns_from_header(const csv_parser *cp, leak_columns *cols)
{
    int named = 0;
    for (size_t i = 0; i < cp->n_fields; i++) {
        int by_value = leak_field_of_value(field(cp, i));
        if (by_value >= 0 && by_value != LEAK_FAMILY)
            return 0;                       /* a NIR, a date...: data, not a header */
        int f = leak_field_of_header(field(cp, i));
        if (f >= 0 && cols->col[f] < 0) {
            cols->col[f] = (int)i;
            named = 1;
        }
    }
    return named;
}

typedef struct votes {
    size_t *by;                  /* [column][LEAK_FIELDS] */
    size_t *filled;              /* [column] */
    size_t n_cols;
} votes;

static int column_taken(const leak_columns *cols, size_t c)
{
    for (int f = 0; f < LEAK_FIELDS; f++)
        if (cols->col[f] == (int)c)
            return 1;
    return 0;
}

/* Give each column nobody named the field most of its values look like; the
 * first unnamed column of names is the family name, the next the given. */
static void columns_from_votes(const votes *v, leak_columns *cols)
{
    for (size_t c = 0; c < v->n_cols; c++) {
        if (column_taken(cols, c) || v->filled[c] == 0)
            continue;
        for (int f = 0; f < LEAK_FIELDS; f++) {
            if (2 * v->by[c * LEAK_FIELDS + f] <= v->filled[c])
                continue;
            int target = f == LEAK_FAMILY && cols->col[LEAK_FAMILY] >= 0 ? LEAK_GIVEN : f;
            if (cols->col[target] < 0)
                cols->col[target] = (int)c;
            break;
        }
    }
}

static int sample_votes(const char *data, size_t len, const leak_columns *cols,
                        size_t n_cols, votes *v, mv_err *err)
{
    v->n_cols = n_cols;
    v->by = mv_calloc(n_cols * LEAK_FIELDS, sizeof *v->by, err);
    v->filled = mv_calloc(n_cols, sizeof *v->filled, err);
    if (v->by == NULL || v->filled == NULL)
        return -1;
    csv_parser cp;
    parser_init(&cp, data, len, cols->sep);
    size_t line, seen = 0;
    int rc;
    while (seen < SAMPLE_ROWS && (rc = next_record(&cp, &line, err)) > 0) {
        if (rc != 1 || cp.n_fields != n_cols || (seen++ == 0 && cols->has_header))
            continue;
        for (size_t c = 0; c < n_cols; c++) {
            int f = leak_field_of_value(field(&cp, c));
            v->filled[c] += *field(&cp, c) != '\0';
            if (f >= 0)
                v->by[c * LEAK_FIELDS + f]++;
        }
    }
    parser_free(&cp);
    return rc < 0 ? -1 : 0;
}

/* The separator, the header (if any) and the columns; *n_cols the number of
 * fields every record must have. */
static int find_columns(const char *data, size_t len, leak_columns *cols, size_t *n_cols,
                        mv_err *err)
{
    for (int f = 0; f < LEAK_FIELDS; f++)
        cols->col[f] = -1;
    cols->sep = guess_separator(data, len);
    cols->has_header = 0;
    csv_parser cp;
    parser_init(&cp, data, len, cols->sep);
    size_t line;
    int rc = next_record(&cp, &line, err);
    *n_cols = rc == 1 ? cp.n_fields : 0;
    if (rc == 1)
        cols->has_header = columns_from_header(&cp, cols);
    parser_free(&cp);
    if (rc < 0)
        return -1;
    votes v = { NULL, NULL, 0 };
    rc = *n_cols ? sample_votes(data, len, cols, *n_cols, &v, err) : 0;
    if (rc == 0)
        columns_from_votes(&v, cols);
    free(v.by);
    free(v.filled);
    return rc;
}

/* ---- Rows ----------------------------------------------------------------------- */

static int emit_row(const csv_parser *cp, const leak_columns *cols, size_t line,
                    const leak_sink *sink, mv_err *err)
{
    leak_row r = { .line = line };
    for (int f = 0; f < LEAK_FIELDS; f++)
        r.v[f] = cols->col[f] >= 0 ? field(cp, (size_t)cols->col[f]) : NULL;
    return sink->row(sink->ctx, &r, err);
}

int leak_read_csv(const char *data, size_t len, const leak_sink *sink,
                  leak_columns *cols_out, mv_err *err)
{
    leak_columns cols;
    size_t n_cols;
    if (find_columns(data, len, &cols, &n_cols, err) != 0)
        return -1;
    if (cols_out != NULL)
        *cols_out = cols;
    csv_parser cp;
    parser_init(&cp, data, len, cols.sep);
    size_t line, records = 0;
    int rc;
    while ((rc = next_record(&cp, &line, err)) > 0) {
        if (records++ == 0 && cols.has_header)
            continue;
        if (rc == 1 && cp.n_fields == n_cols) {
            if (emit_row(&cp, &cols, line, sink, err) != 0) {
                rc = -1;
                break;
            }
            continue;
        }
        sink->broken(sink->ctx, line);
        if (cp.line > line) {               /* resume on the line after its first */
            cp.p = cp.record;
            cp.line = line;
            skip_line(&cp);
        }
    }
    parser_free(&cp);
    return rc < 0 ? -1 : 0;
}
