/*
 * validate.c -- structural validation of an R4 resource in the JSON format,
 * driven by the generated tables.
 *
 * Why this exists: every resource the API stores must first be a resource --
 * known type, known elements, right cardinalities and primitive formats --
 * and that must hold for all 146 R4 resource types without per-type code.
 * The walk is bounded (depth and element count), and its errors name the
 * element path (Patient.name[0].given[1]) but never a value: values are
 * health data.  Codes with a required binding are checked against the
 * ValueSets the package expands.  Not checked here: other bindings,
 * invariants, profiles, reference targets.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/primitive.h"
#include "fhir/r4_model.h"

#define PATH_MAX_LEN   512
#define PATH_SHOWN_MAX 120  /* longer paths are shown as head...tail      */
#define PATH_SHOWN_HEAD 40
#define KEY_ECHO_MAX   64   /* bytes of an unknown key shown in a message */
#define MAX_CHOICES    16   /* choice elements present in one object       */

/* The state of one walk: where we are (for messages) and how far we went. */
typedef struct vctx {
    mv_err *err;
    size_t count;
    size_t path_len;
    char path[PATH_MAX_LEN];
} vctx;

/* The type chosen for each choice element present in one object. */
typedef struct choices {
    int32_t elem[MAX_CHOICES];
    int type[MAX_CHOICES];
    size_t n;
} choices;

static int validate_resource(vctx *c, json_t *v, int depth);
static int validate_object(vctx *c, json_t *obj, int32_t structure, int depth,
                           int is_resource);

/* ---- Paths and messages --------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int fail_at(vctx *c, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->path_len == 0)
        return mv_fail(c->err, MV_E_INVALID, "resource: %s", msg);
    if (c->path_len <= PATH_SHOWN_MAX)
        return mv_fail(c->err, MV_E_INVALID, "%s: %s", c->path, msg);
    /* A very deep path: its start and its end say where. */
    return mv_fail(c->err, MV_E_INVALID, "%.*s...%s: %s", PATH_SHOWN_HEAD, c->path,
                   c->path + c->path_len - (PATH_SHOWN_MAX - PATH_SHOWN_HEAD - 3), msg);
}

__attribute__((format(printf, 2, 3)))
static size_t path_push(vctx *c, const char *fmt, ...)
{
    size_t mark = c->path_len;
    size_t room = sizeof c->path - c->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->path_len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return mark;
}

static void path_pop(vctx *c, size_t mark)
{
    c->path_len = mark;
    c->path[mark] = '\0';
}

/* A JSON key made safe to quote: printable ASCII only, bounded. */
static void safe_key(const char *key, char out[KEY_ECHO_MAX + 4])
{
    size_t i = 0;
    for (; key[i] && i < KEY_ECHO_MAX; i++) {
        char ch = key[i];
        out[i] = (ch > ' ' && ch < 0x7f && ch != '"' && ch != '\\') ? ch : '?';
    }
    strcpy(out + i, key[i] ? "..." : "");
}

static int fail_unknown(vctx *c, const char *key)
{
    char shown[KEY_ECHO_MAX + 4];
    safe_key(key, shown);
    return fail_at(c, "unknown element \"%s\"", shown);
}

/* ---- Model helpers ---------------------------------------------------------- */

static const fhir_type_def *type_def(int type)
{
    return type >= 0 ? &fhir_r4_types[type] : NULL;
}

static int is_primitive(int type)
{
    return type >= 0 && fhir_r4_types[type].kind == FHIR_K_PRIMITIVE;
}

static int is_resource_type(int type)
{
    return type >= 0 && (fhir_r4_types[type].kind == FHIR_K_RESOURCE ||
                         fhir_r4_types[type].kind == FHIR_K_ABSTRACT_RESOURCE);
}

/* The elements of a primitive's "_name" companion: Element (id, extension). */
static int32_t element_structure(void)
{
    static int32_t root = -2;
    if (root == -2) {
        int t = fhir_model_type("Element", 7);
        root = t >= 0 ? fhir_r4_types[t].root : -1;
    }
    return root;
}

/* The member of obj paired with key: "_given" for "given" and back. */
static json_t *companion(json_t *obj, const char *key)
{
    if (key[0] == '_')
        return json_object_get(obj, key + 1);
    char name[128];
    if ((size_t)snprintf(name, sizeof name, "_%s", key) >= sizeof name)
        return NULL;
    return json_object_get(obj, name);
}

/* ---- Choice elements --------------------------------------------------------- */

static int note_choice(vctx *c, choices *seen, int32_t elem, int type)
{
    for (size_t i = 0; i < seen->n; i++) {
        if (seen->elem[i] != elem)
            continue;
        if (seen->type[i] == type)
            return 0;
        return fail_at(c, "more than one type given for choice element %s",
                       fhir_model_elem_name(&fhir_r4_elems[elem]));
    }
    if (seen->n == MAX_CHOICES)
        return fail_at(c, "too many choice elements");
    seen->elem[seen->n] = elem;
    seen->type[seen->n] = type;
    seen->n++;
    return 0;
}

static int choice_present(const choices *seen, int32_t elem)
{
    for (size_t i = 0; i < seen->n; i++) {
        if (seen->elem[i] == elem)
            return 1;
    }
    return 0;
}

/* ---- Values ------------------------------------------------------------------ */

/* ---- Required bindings --------------------------------------------------------
 * A code bound with strength required SHALL come from its ValueSet (R4
 * terminologies.html#required).  A code element is checked as it is; a
 * Coding, or each coding of a CodeableConcept, is checked when its system
 * is one the ValueSet draws on -- a translation into another system (a
 * SNOMED CT code beside the FHIR one) is left as it is.  The message names
 * the element and the ValueSet, never the value. */

static int coding_bound(const fhir_valueset *vs, json_t *coding)
{
    const char *system = json_string_value(json_object_get(coding, "system"));
    const char *code = json_string_value(json_object_get(coding, "code"));
    return system == NULL || code == NULL || !fhir_valueset_draws_on(vs, system) ||
           fhir_valueset_has(vs, system, code);
}

static int check_binding(vctx *c, int32_t elem, int type, json_t *v)
{
    const fhir_valueset *vs = fhir_model_binding(elem);
    const char *name = type >= 0 ? fhir_r4_types[type].name : "";
    int ok = 1;
    if (vs == NULL)
        return 0;
    if (strcmp(name, "code") == 0) {
        ok = fhir_valueset_has(vs, NULL, json_string_value(v));
    } else if (strcmp(name, "Coding") == 0) {
        ok = coding_bound(vs, v);
    } else if (strcmp(name, "CodeableConcept") == 0) {
        size_t i;
        json_t *coding;
        json_array_foreach(json_object_get(v, "coding"), i, coding)
            ok = ok && coding_bound(vs, coding);
    }
    return ok ? 0 : fail_at(c, "code not in the required ValueSet %s", vs->url);
}

/* One value (not an array) of element elem with type type. */
static int validate_one(vctx *c, int32_t elem, int type, json_t *v, int shadow, int depth)
{
    if (++c->count > FHIR_MAX_ELEMENTS)
        return fail_at(c, "more than %d elements in one resource", FHIR_MAX_ELEMENTS);
    if (shadow) {
        if (!json_is_object(v))
            return fail_at(c, "expected an object (id, extension)");
        return validate_object(c, v, element_structure(), depth + 1, 0);
    }
    if (is_primitive(type)) {
        const char *problem = fhir_prim_check((fhir_prim)type_def(type)->prim, v);
        return problem ? fail_at(c, "%s", problem) : check_binding(c, elem, type, v);
    }
    if (is_resource_type(type))
        return validate_resource(c, v, depth + 1);
    int32_t structure = fhir_model_structure(elem, type);
    if (structure < 0)
        return mv_fail(c->err, MV_E_INTERNAL, "%s: element has no structure", c->path);
    if (!json_is_object(v))
        return fail_at(c, "expected an object");
    if (validate_object(c, v, structure, depth + 1, 0) != 0)
        return -1;
    return check_binding(c, elem, type, v);
}

/* A null in a primitive array is allowed where the "_" array has a value. */
static int null_allowed(json_t *pair, size_t i)
{
    json_t *other = json_is_array(pair) ? json_array_get(pair, i) : NULL;
    return other != NULL && !json_is_null(other);
}

static int validate_array(vctx *c, json_t *obj, const char *key, int32_t elem,
                          int type, json_t *arr, int depth)
{
    int shadow = key[0] == '_';
    if (!json_is_array(arr))
        return fail_at(c, "expected an array (the element repeats)");
    if (json_array_size(arr) == 0)
        return fail_at(c, "empty array");
    json_t *pair = is_primitive(type) ? companion(obj, key) : NULL;
    if (json_is_array(pair) && json_array_size(pair) != json_array_size(arr))
        return fail_at(c, "array and its \"_\" companion differ in length");
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        size_t mark = path_push(c, "[%zu]", i);
        int rc = 0;
        if (json_is_null(item)) {
            if (!null_allowed(pair, i))
                rc = fail_at(c, "null value");
        } else {
            rc = validate_one(c, elem, type, item, shadow, depth);
        }
        path_pop(c, mark);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int validate_values(vctx *c, json_t *obj, const char *key, int32_t elem,
                           int type, json_t *v, int depth)
{
    const fhir_elem_def *e = &fhir_r4_elems[elem];
    if (e->max == 0)
        return fail_at(c, "element not allowed");
    if (e->max != 1)
        return validate_array(c, obj, key, elem, type, v, depth);
    if (json_is_array(v))
        return fail_at(c, "expected a single value, not an array");
    return validate_one(c, elem, type, v, key[0] == '_', depth);
}

/* ---- Objects ------------------------------------------------------------------ */

static int validate_member(vctx *c, json_t *obj, const char *key, json_t *v,
                           int32_t structure, int depth, choices *seen)
{
    int shadow = key[0] == '_';
    int type;
    int32_t elem = fhir_model_child(structure, key + shadow, &type);
    if (elem < 0 || (shadow && !is_primitive(type)))
        return fail_unknown(c, key);
    if ((fhir_r4_elems[elem].flags & FHIR_EF_CHOICE) && note_choice(c, seen, elem, type) != 0)
        return -1;
    size_t mark = path_push(c, "%s%s", c->path_len ? "." : "", key);
    int rc = validate_values(c, obj, key, elem, type, v, depth);
    path_pop(c, mark);
    return rc;
}

static int member_present(json_t *obj, const char *name)
{
    return json_object_get(obj, name) != NULL || companion(obj, name) != NULL;
}

static int check_required(vctx *c, json_t *obj, int32_t structure, const choices *seen)
{
    const fhir_elem_def *s = &fhir_r4_elems[structure];
    for (uint16_t i = 0; i < s->n_children; i++) {
        int32_t child = s->first_child + i;
        const fhir_elem_def *e = &fhir_r4_elems[child];
        if (e->min == 0)
            continue;
        int present = (e->flags & FHIR_EF_CHOICE) ? choice_present(seen, child)
                                                   : member_present(obj, fhir_model_elem_name(e));
        if (!present)
            return fail_at(c, "missing required element \"%s\"", fhir_model_elem_name(e));
    }
    return 0;
}

static int validate_object(vctx *c, json_t *obj, int32_t structure, int depth,
                           int is_resource)
{
    if (depth > FHIR_MAX_DEPTH)
        return fail_at(c, "nested deeper than %d levels", FHIR_MAX_DEPTH);
    if (structure < 0)
        return mv_fail(c->err, MV_E_INTERNAL, "%s: no structure", c->path);
    if (!is_resource && json_object_size(obj) == 0)
        return fail_at(c, "empty object");
    choices seen = {.n = 0};
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (is_resource && strcmp(key, "resourceType") == 0)
            continue;
        if (validate_member(c, obj, key, v, structure, depth, &seen) != 0)
            return -1;
    }
    return check_required(c, obj, structure, &seen);
}

/* A resource: a JSON object whose resourceType names a concrete resource. */
static int validate_resource(vctx *c, json_t *v, int depth)
{
    if (!json_is_object(v))
        return fail_at(c, "expected a resource (a JSON object)");
    json_t *rt = json_object_get(v, "resourceType");
    if (!json_is_string(rt))
        return fail_at(c, "missing resourceType");
    int type = fhir_model_type(json_string_value(rt), json_string_length(rt));
    if (type < 0 || fhir_r4_types[type].kind != FHIR_K_RESOURCE)
        return fail_at(c, "unknown resourceType");
    size_t mark = c->path_len;
    if (mark == 0)
        path_push(c, "%s", fhir_r4_types[type].name);
    int rc = validate_object(c, v, fhir_r4_types[type].root, depth, 1);
    path_pop(c, mark);
    return rc;
}

/* ---- Entry point ------------------------------------------------------------ */

int fhir_validate(const char *json, size_t len, char **resource_type_out, mv_err *err)
{
    if (resource_type_out)
        *resource_type_out = NULL;
    if (json == NULL)
        return mv_fail(err, MV_E_INVALID, "no resource body");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return mv_fail(err, MV_E_INVALID, "body is not valid JSON (line %d, column %d)",
                       jerr.line, jerr.column);
    vctx c = {.err = err, .count = 0, .path_len = 0, .path = ""};
    int rc = validate_resource(&c, root, 0);
    if (rc == 0 && resource_type_out) {
        const char *rt = json_string_value(json_object_get(root, "resourceType"));
        *resource_type_out = mv_strdup(rt, err);
        if (*resource_type_out == NULL)
            rc = -1;
    }
    json_decref(root);
    return rc;
}
