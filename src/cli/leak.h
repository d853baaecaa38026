/*
 * leak.h -- what the files of `medvault leak check` share: a leaked file's
 * rows as raw identity values, the readers that find them in CSV, NDJSON or
 * JSON, and the matcher that says which of the store's patients (and which
 * decoys) they are.
 *
 * Why this exists: a dump found for sale has no fixed shape.  The readers
 * (leak_csv.c, leak_json.c) only find, per row, the values that identify a
 * person -- NIR, family and given names, birth date, phone, e-mail, a FHIR
 * Patient id -- and leave them raw; the matcher (leak_match.c) canonicalises
 * them exactly as the blind index does at write time and looks them up,
 * decrypting nothing.  Values from the file are never printed into the
 * audit trail, and never kept after the check.
 */
#ifndef MV_CLI_LEAK_H
#define MV_CLI_LEAK_H

#include <stddef.h>
#include "../util/util.h"
#include "../store/store.h"

typedef enum leak_field {
    LEAK_NIR, LEAK_FAMILY, LEAK_GIVEN, LEAK_BIRTH, LEAK_PHONE, LEAK_EMAIL,
    LEAK_ID,                 /* a FHIR Patient id (resource id or reference) */
    LEAK_FIELDS
} leak_field;

/* "nir", "family", "given", "birth_date", "phone", "email", "id". */
const char *leak_field_name(leak_field f);

/* One row: raw values (NULL or "" when absent), borrowed for the call. */
typedef struct leak_row {
    const char *v[LEAK_FIELDS];
    size_t line;             /* line (CSV, NDJSON) or element number (JSON) */
} leak_row;

/* Where the readers hand their rows: row() for each row that has a shape,
 * broken() for each that has none (a CSV record with the wrong number of
 * fields, an NDJSON line that is not JSON).  row() returns -1 to stop. */
typedef struct leak_sink {
    int  (*row)(void *ctx, const leak_row *r, mv_err *err);
    void (*broken)(void *ctx, size_t line);
    void *ctx;
} leak_sink;

/* ---- Columns (leak_columns.c) --------------------------------------------- */

/* The field a column or JSON key names, by its header in French or English
 * ("N° SS", "Nom de famille", "Date naiss.", "Courriel", "phone", ...);
 * -1 when it names none. */
int leak_field_of_header(const char *header);

/* What a value looks like: a valid NIR (key checked), a date, a phone
 * number, an e-mail address, a name; -1 when none.  Used to find columns
 * whose header says nothing. */
int leak_field_of_value(const char *value);

/* A date as such files write it -- 12/05/1985, 12-05-85, 12.05.1985,
 * 1985-05-12, 19850512, with or without a time -- as "YYYY-MM-DD" (a real
 * calendar date); -1 when it is none.  Day first, as in France, unless only
 * the other order is possible. */
int leak_date(const char *in, char out[11]);

/* ---- Readers (leak_csv.c, leak_json.c) ------------------------------------ */

typedef enum leak_format { LEAK_FMT_AUTO, LEAK_FMT_CSV, LEAK_FMT_NDJSON,
                           LEAK_FMT_JSON } leak_format;
const char *leak_format_name(leak_format f);
/* The format of data: by its first non-blank byte ('[' or a '{' that spans
 * the whole file: JSON; '{' per line: NDJSON; else CSV). */
leak_format leak_guess_format(const char *data, size_t len);

/* Which CSV column holds which field (-1: none), and the header texts. */
typedef struct leak_columns {
    int col[LEAK_FIELDS];
    int has_header;
    char sep;
} leak_columns;

/* RFC 4180 records (quotes, doubled quotes, line breaks inside quotes; CRLF
 * or LF), separator , ; tab or | (the most frequent in the first line).
 * Columns come from the header when it names them, else from the values of
 * the first rows.  cols_out (may be NULL) receives what was found. */
int leak_read_csv(const char *data, size_t len, const leak_sink *sink,
                  leak_columns *cols_out, mv_err *err);
/* One JSON value per line: a FHIR resource (a Patient, or any resource whose
 * subject/patient references a Patient) or a flat object whose keys are
 * column names. */
int leak_read_ndjson(const char *data, size_t len, const leak_sink *sink, mv_err *err);
/* A JSON array of such objects, or a FHIR Bundle (entry[].resource). */
int leak_read_json(const char *data, size_t len, const leak_sink *sink, mv_err *err);

/* ---- Matching (leak_match.c) ----------------------------------------------- */

typedef struct leak_matcher leak_matcher;

/* How a row was recognised, strongest first. */
typedef enum leak_by { LEAK_BY_NONE, LEAK_BY_NIR, LEAK_BY_ID, LEAK_BY_NAME_BIRTH,
                       LEAK_BY_EMAIL, LEAK_BY_PHONE } leak_by;
const char *leak_by_name(leak_by b);

/* The counts of one check (no identifier among them). */
typedef struct leak_counts {
    size_t rows;             /* every record after a header                    */
    size_t unparseable;      /* no shape, or no usable identifying value       */
    size_t matched;          /* rows that are one of the store's Patients      */
    size_t rejected[LEAK_FIELDS];  /* values present but malformed (a NIR with a
                                      wrong key, an impossible date, ...)     */
} leak_counts;

/* A Patient of the store found in the file. */
typedef struct leak_patient {
    char *id;
    size_t rows;
    leak_by by;              /* the strongest way it was recognised */
    int decoy;               /* 1 when the registry lists it as a decoy */
} leak_patient;

/* Load the Patient tokens and the decoy registry's ids: nothing decrypted. */
int  leak_matcher_open(mv_store *s, leak_matcher **out, mv_err *err);
void leak_matcher_close(leak_matcher *m);
/* The sink that feeds m (broken rows are counted, with their line numbers). */
leak_sink leak_matcher_sink(leak_matcher *m);
const leak_counts *leak_matcher_counts(const leak_matcher *m);
/* Patients found, sorted by id (borrowed from m); once called, m takes no
 * more rows. */
const leak_patient *leak_matcher_patients(leak_matcher *m, size_t *n);
/* Lines of the first unparseable rows (at most LEAK_LINES_KEPT). */
#define LEAK_LINES_KEPT 50
const size_t *leak_matcher_bad_lines(const leak_matcher *m, size_t *n);

#endif /* MV_CLI_LEAK_H */
