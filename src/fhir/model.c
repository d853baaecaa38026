/*
 * model.c -- lookups over the generated R4 tables (r4_tables.c).
 *
 * Why this exists: the validator and the compartment code ask the same few
 * questions of the model -- which type is this name, which element does this
 * JSON key name, which element list describes this object -- and the answers
 * depend on the table layout (index ranges, choice keys), which should be
 * known in one place only.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/r4_model.h"

int fhir_model_type(const char *name, size_t len)
{
    size_t lo = 0, hi = fhir_r4_n_types;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *cand = fhir_r4_types[mid].name;
        int cmp = strncmp(cand, name, len);
        if (cmp == 0 && cand[len] != '\0')
            cmp = 1;
        if (cmp == 0)
            return (int)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int fhir_type_known(const char *resource_type)
{
    if (resource_type == NULL)
        return 0;
    int t = fhir_model_type(resource_type, strlen(resource_type));
    return t >= 0 && fhir_r4_types[t].kind == FHIR_K_RESOURCE;
}

void fhir_each_resource_type(void (*fn)(const char *type, void *ctx), void *ctx)
{
    for (size_t i = 0; i < fhir_r4_n_types; i++)
        if (fhir_r4_types[i].kind == FHIR_K_RESOURCE)
            fn(fhir_r4_types[i].name, ctx);
}

/* The compartment and search-parameter tables are sorted by type and their
 * rows start with the same uint16_t type field: one binary search serves
 * both. */
_Static_assert(offsetof(fhir_cpt_resource, type) == 0, "type first");
_Static_assert(offsetof(fhir_sp_resource, type) == 0, "type first");

static const void *row_of_type(const void *rows, size_t n, size_t size, int type)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const void *row = (const char *)rows + mid * size;
        uint16_t t;
        memcpy(&t, row, sizeof t);
        if (t == type)
            return row;
        if (t < type)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const fhir_cpt_resource *fhir_model_cpt_row(int type)
{
    return type < 0 ? NULL : row_of_type(fhir_r4_cpt_resources, fhir_r4_n_cpt_resources,
                                         sizeof fhir_r4_cpt_resources[0], type);
}

const fhir_sp_resource *fhir_model_sp_row(int type)
{
    return type < 0 ? NULL : row_of_type(fhir_r4_sp_resources, fhir_r4_n_sp_resources,
                                         sizeof fhir_r4_sp_resources[0], type);
}

static void each_param_of(int type, void (*fn)(const char *, fhir_param_type, void *),
                          void *ctx)
{
    const fhir_sp_resource *r = fhir_model_sp_row(type);
    for (uint16_t k = 0; r && k < r->n_params; k++) {
        const fhir_sp_param *p = &fhir_r4_sp_params[r->first_param + k];
        fn(p->code, (fhir_param_type)p->type, ctx);
    }
}

void fhir_each_search_param(const char *type,
                            void (*fn)(const char *name, fhir_param_type t, void *ctx),
                            void *ctx)
{
    int t = fhir_model_type(type, strlen(type));
    if (t < 0)
        return;
    each_param_of(t, fn, ctx);
    int base = fhir_model_type("Resource", 8);
    if (base >= 0 && base != t)
        each_param_of(base, fn, ctx);
    fn(FHIR_PARAM_LAST_UPDATED, FHIR_PARAM_DATE, ctx);   /* the store's (instant.c) */
}

const char *fhir_model_elem_name(const fhir_elem_def *e)
{
    return e->path + e->name_off;
}

int32_t fhir_model_structure(int32_t elem, int type)
{
    const fhir_elem_def *e = &fhir_r4_elems[elem];
    if (e->content_ref >= 0)
        return e->content_ref;
    if (e->flags & FHIR_EF_BACKBONE)
        return elem;
    if (type < 0)
        return -1;
    return fhir_r4_types[type].root;
}

/* 1 when key is base + the type name with its first letter capitalised. */
static int choice_key_matches(const char *key, size_t base_len, const char *type)
{
    const char *suffix = key + base_len;
    char first = type[0];
    if (first >= 'a' && first <= 'z')
        first = (char)(first - 'a' + 'A');
    return suffix[0] == first && strcmp(suffix + 1, type + 1) == 0;
}

static int choice_type(const fhir_elem_def *e, const char *key)
{
    const char *name = fhir_model_elem_name(e);
    size_t base_len = strlen(name) - 3; /* without "[x]" */
    if (strncmp(key, name, base_len) != 0)
        return -1;
    for (uint16_t i = 0; i < e->n_types; i++) {
        int t = fhir_r4_elem_types[e->first_type + i];
        if (choice_key_matches(key, base_len, fhir_r4_types[t].name))
            return t;
    }
    return -1;
}

static int plain_type(const fhir_elem_def *e)
{
    if (e->content_ref >= 0 || (e->flags & FHIR_EF_BACKBONE) || e->n_types != 1)
        return -1;
    return fhir_r4_elem_types[e->first_type];
}

int32_t fhir_model_child(int32_t parent, const char *key, int *type_out)
{
    const fhir_elem_def *p = &fhir_r4_elems[parent];
    for (uint16_t i = 0; i < p->n_children; i++) {
        int32_t c = p->first_child + i;
        const fhir_elem_def *e = &fhir_r4_elems[c];
        if (e->flags & FHIR_EF_CHOICE) {
            int t = choice_type(e, key);
            if (t >= 0) {
                *type_out = t;
                return c;
            }
        } else if (strcmp(fhir_model_elem_name(e), key) == 0) {
            *type_out = plain_type(e);
            return c;
        }
    }
    *type_out = -1;
    return -1;
}

/* ---- Required bindings ----------------------------------------------------- */

const fhir_valueset *fhir_model_binding(int32_t elem)
{
    size_t lo = 0, hi = fhir_r4_n_bindings;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fhir_r4_bindings[mid].elem == elem)
            return &fhir_r4_valuesets[fhir_r4_bindings[mid].valueset];
        if (fhir_r4_bindings[mid].elem < elem)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_code(const void *key, const void *member)
{
    return strcmp(key, *(const char *const *)member);
}

static int system_has(const fhir_vs_system *s, const char *code)
{
    return bsearch(code, &fhir_r4_vs_codes[s->first_code], s->n_codes,
                   sizeof fhir_r4_vs_codes[0], cmp_code) != NULL;
}

int fhir_valueset_has(const fhir_valueset *vs, const char *system, const char *code)
{
    for (uint32_t i = 0; i < vs->n_systems; i++) {
        const fhir_vs_system *s = &fhir_r4_vs_systems[vs->first_system + i];
        if ((system == NULL || strcmp(system, s->system) == 0) && system_has(s, code))
            return 1;
    }
    return 0;
}

int fhir_valueset_draws_on(const fhir_valueset *vs, const char *system)
{
    for (uint32_t i = 0; i < vs->n_systems; i++)
        if (strcmp(system, fhir_r4_vs_systems[vs->first_system + i].system) == 0)
            return 1;
    return 0;
}
