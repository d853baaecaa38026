/*
 * compartment.c -- which patients' compartments a resource belongs to.
 *
 * Why this exists: "everything about patient p1" is defined by the R4 Patient
 * CompartmentDefinition: a resource is in p1's compartment when one of the
 * listed search parameters (Observation.subject, Observation.performer, ...)
 * references Patient/p1.  The generated tables hold those parameters as plain
 * element paths; this file follows them through a parsed body and collects
 * the patient ids.  It decides nothing about access: callers do.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/primitive.h"
#include "fhir/r4_model.h"

#define SEGMENT_MAX 64

/* A growing list of distinct ids; owns its strings.  slots is an
 * open-addressing hash set of 1-based indices into ids (0: empty), at most
 * half full, so that a body naming many patients costs linear time, not
 * quadratic (an 8 MB CareTeam took minutes with a linear scan per id). */
typedef struct id_list {
    char **ids;
    size_t n;
    size_t cap;
    size_t *slots;
    size_t n_slots; /* 0 or a power of two */
} id_list;

void fhir_ids_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* FNV-1a. */
static size_t id_hash(const char *id, size_t len)
{
    size_t h = (size_t)14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * (size_t)1099511628211ULL;
    return h;
}

/* The slot holding id, or the empty slot where it belongs. */
static size_t *id_slot(const id_list *l, const char *id, size_t len)
{
    size_t mask = l->n_slots - 1;
    for (size_t h = id_hash(id, len) & mask;; h = (h + 1) & mask) {
        size_t k = l->slots[h];
        if (k == 0 || (strlen(l->ids[k - 1]) == len && memcmp(l->ids[k - 1], id, len) == 0))
            return &l->slots[h];
    }
}

static int id_set_grow(id_list *l, mv_err *err)
{
    size_t n_slots = l->n_slots ? l->n_slots * 2 : 16;
    size_t *slots = calloc(n_slots, sizeof *slots);
    if (slots == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    free(l->slots);
    l->slots = slots;
    l->n_slots = n_slots;
    for (size_t i = 0; i < l->n; i++)
        *id_slot(l, l->ids[i], strlen(l->ids[i])) = i + 1;
    return 0;
}

static int id_list_add(id_list *l, const char *id, size_t len, mv_err *err)
{
    if (2 * (l->n + 1) > l->n_slots && id_set_grow(l, err) != 0)
        return -1;
    size_t *slot = id_slot(l, id, len);
    if (*slot != 0)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **grown = realloc(l->ids, cap * sizeof *grown);
        if (grown == NULL)
            return mv_fail(err, MV_E_NOMEM, "out of memory");
        l->ids = grown;
        l->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    memcpy(copy, id, len);
    copy[len] = '\0';
    l->ids[l->n++] = copy;
    *slot = l->n;
    return 0;
}

/* "Patient/<id>" or "Patient/<id>/_history/<vid>": the id, else NULL.
 * Absolute URLs and contained ("#x") references are not local patients. */
static const char *patient_ref_id(const char *ref, size_t *len)
{
    static const char prefix[] = "Patient/";
    if (strncmp(ref, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *id = ref + sizeof prefix - 1;
    const char *slash = strchr(id, '/');
    *len = slash ? (size_t)(slash - id) : strlen(id);
    if (slash && strncmp(slash, "/_history/", 10) != 0)
        return NULL;
    char buf[65];
    if (*len == 0 || *len > 64)
        return NULL;
    memcpy(buf, id, *len);
    buf[*len] = '\0';
    return fhir_prim_valid_id(buf) ? id : NULL;
}

static int add_reference(id_list *l, json_t *v, mv_err *err)
{
    const char *ref = json_string_value(json_object_get(v, "reference"));
    size_t len;
    const char *id = ref ? patient_ref_id(ref, &len) : NULL;
    return id ? id_list_add(l, id, len, err) : 0;
}

/* Follow rest ("performer" or "member.entity") from v, through arrays. */
static int collect(id_list *l, json_t *v, const char *rest, mv_err *err)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (collect(l, item, rest, err) != 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    if (*rest == '\0')
        return add_reference(l, v, err);
    const char *dot = strchr(rest, '.');
    size_t n = dot ? (size_t)(dot - rest) : strlen(rest);
    char segment[SEGMENT_MAX];
    if (n >= sizeof segment)
        return mv_fail(err, MV_E_INTERNAL, "compartment path segment too long");
    memcpy(segment, rest, n);
    segment[n] = '\0';
    return collect(l, json_object_get(v, segment), dot ? dot + 1 : "", err);
}

static const fhir_cpt_resource *compartment_of(int type)
{
    return fhir_model_cpt_row(type);
}

static int collect_params(id_list *l, json_t *root, const fhir_cpt_resource *r, mv_err *err)
{
    for (uint16_t p = 0; p < r->n_params; p++) {
        const fhir_cpt_param *param = &fhir_r4_cpt_params[r->first_param + p];
        for (uint16_t i = 0; i < param->n_paths; i++) {
            const char *path = fhir_r4_cpt_paths[param->first_path + i];
            const char *rest = strchr(path, '.'); /* skip the resource type */
            if (rest && collect(l, root, rest + 1, err) != 0)
                return -1;
        }
    }
    return 0;
}

static int own_patient_id(id_list *l, json_t *root, mv_err *err)
{
    const char *id = json_string_value(json_object_get(root, "id"));
    if (id == NULL || !fhir_prim_valid_id(id))
        return 0;
    return id_list_add(l, id, strlen(id), err);
}

static int collect_all(id_list *l, json_t *root, mv_err *err)
{
    const char *rt = json_string_value(json_object_get(root, "resourceType"));
    if (rt == NULL || !fhir_type_known(rt))
        return mv_fail(err, MV_E_INVALID, "not a resource with a known resourceType");
    if (strcmp(rt, "Patient") == 0 && own_patient_id(l, root, err) != 0)
        return -1;
    const fhir_cpt_resource *r = compartment_of(fhir_model_type(rt, strlen(rt)));
    return r ? collect_params(l, root, r, err) : 0;
}

int fhir_type_in_patient_compartment(const char *resource_type)
{
    if (resource_type == NULL)
        return 0;
    int t = fhir_model_type(resource_type, strlen(resource_type));
    return t >= 0 && (strcmp(resource_type, "Patient") == 0 || compartment_of(t) != NULL);
}

int fhir_compartment_patients(const char *json, size_t len, char ***ids, size_t *n,
                              mv_err *err)
{
    *ids = NULL;
    *n = 0;
    if (json == NULL)
        return mv_fail(err, MV_E_INVALID, "no resource body");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL)
        return mv_fail(err, MV_E_INVALID, "body is not valid JSON (line %d, column %d)",
                       jerr.line, jerr.column);
    id_list l = {NULL, 0, 0, NULL, 0};
    int rc = collect_all(&l, root, err);
    json_decref(root);
    free(l.slots);
    if (rc != 0) {
        fhir_ids_free(l.ids, l.n);
        return -1;
    }
    *ids = l.ids;
    *n = l.n;
    return 0;
}
