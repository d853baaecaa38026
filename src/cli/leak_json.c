/*
 * leak_json.c -- the rows of a leaked NDJSON or JSON file: FHIR resources
 * (as a bulk export or a scraped API writes them) or flat objects whose keys
 * are column names.
 *
 * Why this exists: a read-out through the platform's own API leaves FHIR
 * JSON -- one resource per line from a bulk export, Bundles from searches and
 * $everything.  A Patient gives its NIR (identifier), names, birth date,
 * phones, e-mail and its id; any other resource gives the id of the Patient
 * it references, which is this hospital's own pseudonymous id.  Scrapers'
 * flat objects are read with the CSV header rules (leak_columns.c).
 *
 * Ownership: the values of a row are borrowed from the parsed JSON (or from
 * the reader's number buffers) for the duration of the sink call.
 */
#include "leak.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define NIR_SYSTEM "urn:oid:1.2.250.1.213.1.4.8"
#define NUMBER_MAX 32

typedef struct json_row {
    leak_row r;
    char numbers[LEAK_FIELDS][NUMBER_MAX];   /* a value written as a JSON number */
} json_row;

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- FHIR -------------------------------------------------------------------- */

static int is_nir_identifier(json_t *ident)
{
    const char *system = str(ident, "system");
    const char *text = str(json_object_get(ident, "type"), "text");
    const char *value = str(ident, "value");
    if (system != NULL && strcmp(system, NIR_SYSTEM) == 0)
        return 1;
    if (text != NULL && strcmp(text, "NIR") == 0)
        return 1;
    return value != NULL && leak_field_of_value(value) == LEAK_NIR;
}

static void patient_identity(json_t *res, leak_row *r)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(res, "identifier"), i, v)
        if (r->v[LEAK_NIR] == NULL && is_nir_identifier(v))
            r->v[LEAK_NIR] = str(v, "value");
    json_t *name = NULL;
    json_array_foreach(json_object_get(res, "name"), i, v)
        if (name == NULL || (str(v, "use") && strcmp(str(v, "use"), "official") == 0))
            name = v;
    r->v[LEAK_FAMILY] = str(name, "family");
    r->v[LEAK_GIVEN] = json_string_value(json_array_get(json_object_get(name, "given"), 0));
    r->v[LEAK_BIRTH] = str(res, "birthDate");
    json_array_foreach(json_object_get(res, "telecom"), i, v) {
        const char *system = str(v, "system");
        leak_field f = system && strcmp(system, "email") == 0 ? LEAK_EMAIL : LEAK_PHONE;
        if (system && (f == LEAK_EMAIL || strcmp(system, "phone") == 0) && r->v[f] == NULL)
            r->v[f] = str(v, "value");
    }
    r->v[LEAK_ID] = str(res, "id");
}

/* The Patient id a resource of another type is about. */
static const char *referenced_patient(json_t *res)
{
    static const char *const keys[] = { "subject", "patient", "beneficiary", NULL };
    for (size_t k = 0; keys[k] != NULL; k++) {
        const char *ref = str(json_object_get(res, keys[k]), "reference");
        if (ref != NULL && strncmp(ref, "Patient/", 8) == 0 && ref[8] != '\0')
            return ref + 8;
    }
    return NULL;
}

/* ---- Flat objects ----------------------------------------------------------- */

static const char *value_text(json_t *v, char buf[NUMBER_MAX])
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, NUMBER_MAX, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

static void flat_identity(json_t *obj, json_row *jr)
{
    const char *key;
    json_t *v;
    char scratch[NUMBER_MAX];
    json_object_foreach(obj, key, v) {
        const char *text = value_text(v, scratch);
        if (text == NULL)
            continue;
        int f = leak_field_of_header(key);
        if (f < 0 && (f = leak_field_of_value(text)) == LEAK_FAMILY)
            f = -1;                 /* a name under an unknown key: which one? */
        if (f < 0 || jr->r.v[f] != NULL)
            continue;
        if (text == scratch) {
            memcpy(jr->numbers[f], scratch, NUMBER_MAX);
            text = jr->numbers[f];
        }
        jr->r.v[f] = text;
    }
}

/* ---- One object, one row --------------------------------------------------- */

static int object_row(json_t *obj, size_t line, const leak_sink *sink, mv_err *err)
{
    if (!json_is_object(obj)) {
        sink->broken(sink->ctx, line);
        return 0;
    }
    json_row jr;
    memset(&jr, 0, sizeof jr);
    jr.r.line = line;
    const char *type = str(obj, "resourceType");
    if (type == NULL)
        flat_identity(obj, &jr);
    else if (strcmp(type, "Patient") == 0)
        patient_identity(obj, &jr.r);
    else
        jr.r.v[LEAK_ID] = referenced_patient(obj);
    return sink->row(sink->ctx, &jr.r, err);
}

/* A Bundle's entries are rows of their own, numbered from first. */
static int bundle_rows(json_t *bundle, size_t *number, const leak_sink *sink, mv_err *err)
{
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(bundle, "entry"), i, entry) {
        json_t *res = json_object_get(entry, "resource");
        if (object_row(res ? res : entry, (*number)++, sink, err) != 0)
            return -1;
    }
    return 0;
}

static int is_bundle(json_t *v)
{
    const char *type = str(v, "resourceType");
    return type != NULL && strcmp(type, "Bundle") == 0;
}

static int value_rows(json_t *v, size_t *number, const leak_sink *sink, mv_err *err)
{
    if (is_bundle(v))
        return bundle_rows(v, number, sink, err);
    return object_row(v, (*number)++, sink, err);
}

int leak_read_ndjson(const char *data, size_t len, const leak_sink *sink, mv_err *err)
{
    const char *p = data, *end = data + len;
    size_t line = 0;
    int rc = 0;
    while (rc == 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        size_t blank = 0;
        while (blank < n && strchr(" \t\r", p[blank]) != NULL)
            blank++;
        if (blank < n) {
            json_t *v = json_loadb(p, n, 0, NULL);
            size_t number = line;
            if (v == NULL)
                sink->broken(sink->ctx, line);
            else
                rc = value_rows(v, &number, sink, err);
            json_decref(v);
        }
        p += n + (nl != NULL);
    }
    return rc;
}

int leak_read_json(const char *data, size_t len, const leak_sink *sink, mv_err *err)
{
    json_t *root = json_loadb(data, len, 0, NULL);
    if (root == NULL)                    /* not one document: read it line by line */
        return leak_read_ndjson(data, len, sink, err);
    size_t number = 1;
    int rc = 0;
    if (json_is_array(root)) {
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v)
            if (rc == 0)
                rc = value_rows(v, &number, sink, err);
    } else {
        rc = value_rows(root, &number, sink, err);
    }
    json_decref(root);
    return rc;
}

/* ---- Formats ----------------------------------------------------------------- */

const char *leak_format_name(leak_format f)
{
    switch (f) {
    case LEAK_FMT_CSV: return "csv";
    case LEAK_FMT_NDJSON: return "ndjson";
    case LEAK_FMT_JSON: return "json";
    case LEAK_FMT_AUTO: break;
    }
    return "auto";
}

leak_format leak_guess_format(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", data[i]) != NULL)
        i++;
    if (i == len || (data[i] != '[' && data[i] != '{'))
        return LEAK_FMT_CSV;
    if (data[i] == '[')
        return LEAK_FMT_JSON;
    const char *nl = memchr(data + i, '\n', len - i);
    if (nl == NULL)
        return LEAK_FMT_JSON;
    json_t *first = json_loadb(data + i, (size_t)(nl - (data + i)), 0, NULL);
    leak_format f = first != NULL ? LEAK_FMT_NDJSON : LEAK_FMT_JSON;
    json_decref(first);
    return f;
}
