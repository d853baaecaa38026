/*
 * patch.c -- JSON Patch (RFC 6902) applied to a resource, for FHIR's PATCH
 * interaction.
 *
 * Why this exists: a client that changes one element of a resource --
 * Observation.status from preliminary to final -- should not have to send
 * the whole resource back (and risk overwriting what changed meanwhile).
 * The operations are applied to the parsed document (jansson) in order;
 * the first that cannot be applied stops everything, and the caller
 * validates the result as any written body.  Paths are JSON Pointers
 * (RFC 6901, "~1" for "/", "~0" for "~").  Error messages name the
 * operation and the path, never a value.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define POINTER_MAX 512

/* The reference tokens of a JSON Pointer, unescaped, into tok[] (pointing
 * into buf); -1 when malformed. */
static int pointer_split(const char *ptr, char *buf, char **tok, size_t max, size_t *n)
{
    *n = 0;
    if (ptr[0] == '\0')
        return 0;                            /* the whole document */
    if (ptr[0] != '/' || strlen(ptr) >= POINTER_MAX)
        return -1;
    size_t k = 0;
    for (const char *p = ptr; *p;) {
        if (*n == max)
            return -1;
        p++;                                 /* the '/' */
        tok[(*n)++] = &buf[k];
        for (; *p && *p != '/'; p++) {
            if (*p == '~') {
                if (p[1] != '0' && p[1] != '1')
                    return -1;
                buf[k++] = p[1] == '0' ? '~' : '/';
                p++;
            } else {
                buf[k++] = *p;
            }
        }
        buf[k++] = '\0';
    }
    return 0;
}

/* An array index token: digits without a leading zero, below size (or
 * equal to it when append is allowed); "-" is size when append is. */
static int array_index(const char *t, size_t size, int append, size_t *out)
{
    if (append && strcmp(t, "-") == 0) {
        *out = size;
        return 0;
    }
    if (t[0] == '\0' || (t[0] == '0' && t[1] != '\0'))
        return -1;
    size_t v = 0;
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000)
            return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    if (v > size || (v == size && !append))
        return -1;
    *out = v;
    return 0;
}

/* The value tok[0..n) names in doc (borrowed), or NULL. */
static json_t *resolve(json_t *doc, char **tok, size_t n)
{
    json_t *v = doc;
    for (size_t i = 0; v != NULL && i < n; i++) {
        size_t idx;
        if (json_is_object(v))
            v = json_object_get(v, tok[i]);
        else if (json_is_array(v) && array_index(tok[i], json_array_size(v), 0, &idx) == 0)
            v = json_array_get(v, idx);
        else
            v = NULL;
    }
    return v;
}

typedef struct target {
    json_t *parent;             /* object or array holding the location */
    char *key;                  /* its last reference token             */
} target;

static int locate(json_t *doc, const char *ptr, char *buf, target *t)
{
    char *tok[64];
    size_t n;
    if (pointer_split(ptr, buf, tok, 64, &n) != 0 || n == 0)
        return -1;                           /* the root itself: not patchable */
    t->parent = resolve(doc, tok, n - 1);
    t->key = tok[n - 1];
    return json_is_object(t->parent) || json_is_array(t->parent) ? 0 : -1;
}

/* add: value (stolen) at ptr. */
static int op_add(json_t *doc, const char *ptr, json_t *value)
{
    char buf[POINTER_MAX];
    target t;
    size_t idx;
    int rc = -1;
    if (locate(doc, ptr, buf, &t) != 0)
        rc = -1;
    else if (json_is_object(t.parent))
        return json_object_set_new(t.parent, t.key, value) == 0 ? 0 : -1;
    else if (array_index(t.key, json_array_size(t.parent), 1, &idx) == 0)
        return json_array_insert_new(t.parent, idx, value) == 0 ? 0 : -1;
    json_decref(value);
    return rc;
}

/* remove: the value at ptr, handed to *out when out is not NULL. */
static int op_remove(json_t *doc, const char *ptr, json_t **out)
{
    char buf[POINTER_MAX];
    target t;
    size_t idx;
    if (locate(doc, ptr, buf, &t) != 0)
        return -1;
    if (json_is_object(t.parent)) {
        json_t *v = json_object_get(t.parent, t.key);
        if (v == NULL)
            return -1;
        if (out)
            *out = json_incref(v);
        return json_object_del(t.parent, t.key);
    }
    if (array_index(t.key, json_array_size(t.parent), 0, &idx) != 0)
        return -1;
    if (out)
        *out = json_incref(json_array_get(t.parent, idx));
    return json_array_remove(t.parent, idx);
}

static json_t *value_at(json_t *doc, const char *ptr)
{
    char buf[POINTER_MAX], *tok[64];
    size_t n;
    return pointer_split(ptr, buf, tok, 64, &n) == 0 ? resolve(doc, tok, n) : NULL;
}

/* One operation; MV_E_CONFLICT for a failed test, MV_E_INVALID otherwise. */
static int apply_one(json_t *doc, json_t *op, size_t i, mv_err *err)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const char *from = json_string_value(json_object_get(op, "from"));
    json_t *value = json_object_get(op, "value");
    if (name == NULL || path == NULL)
        return mv_fail(err, MV_E_INVALID, "patch operation %zu: op and path are required", i);
    int rc;
    if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
        if (value == NULL)
            return mv_fail(err, MV_E_INVALID, "patch operation %zu (%s): no value", i, name);
        rc = strcmp(name, "replace") == 0 ? op_remove(doc, path, NULL) : 0;
        if (rc == 0)
            rc = op_add(doc, path, json_deep_copy(value));
    } else if (strcmp(name, "remove") == 0) {
        rc = op_remove(doc, path, NULL);
    } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
        json_t *v = NULL;
        if (from == NULL)
            return mv_fail(err, MV_E_INVALID, "patch operation %zu (%s): no from", i, name);
        if (strcmp(name, "move") == 0) {
            size_t fl = strlen(from);
            rc = strncmp(path, from, fl) == 0 && path[fl] == '/' ? -1   /* into itself */
                 : op_remove(doc, from, &v);
        } else {
            json_t *src = value_at(doc, from);
            v = src ? json_deep_copy(src) : NULL;
            rc = v ? 0 : -1;
        }
        if (rc == 0)
            rc = op_add(doc, path, v);
    } else if (strcmp(name, "test") == 0) {
        json_t *have = value_at(doc, path);
        if (value == NULL || have == NULL || !json_equal(have, value))
            return mv_fail(err, MV_E_CONFLICT, "patch operation %zu: test failed at %.200s",
                           i, path);
        rc = 0;
    } else {
        return mv_fail(err, MV_E_INVALID, "patch operation %zu: unknown op", i);
    }
    return rc == 0 ? 0 : mv_fail(err, MV_E_INVALID, "patch operation %zu (%s): cannot be "
                                 "applied at %.200s", i, name, path);
}

static int json_patch(json_t *doc, json_t *ops, mv_err *err)
{
    if (!json_is_object(doc) || !json_is_array(ops))
        return mv_fail(err, MV_E_INVALID, "a JSON Patch is an array of operations");
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        if (!json_is_object(op))
            return mv_fail(err, MV_E_INVALID, "patch operation %zu: not an object", i);
        if (apply_one(doc, op, i, err) != 0)
            return -1;
    }
    return 0;
}

int fhir_json_patch(const char *doc, size_t len, const char *patch, size_t plen, char **out,
                    mv_err *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *ops = json_loadb(patch, plen, 0, &jerr);
    if (ops == NULL)
        return mv_fail(err, MV_E_INVALID, "the patch is not JSON (line %d)", jerr.line);
    json_t *d = json_loadb(doc, len, 0, NULL);
    int rc = d ? json_patch(d, ops, err) : mv_fail(err, MV_E_INTERNAL, "stored body unreadable");
    if (rc == 0 && (*out = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        rc = mv_fail(err, MV_E_NOMEM, "out of memory");
    json_decref(d);
    json_decref(ops);
    return rc;
}
