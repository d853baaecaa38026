/*
 * summary.c -- _summary and _elements: a resource cut down to what the
 * client asked for (R4 search.html#summary, #elements).
 *
 * Why this exists: a worklist needs a patient's name and birth date, not
 * the whole record; returning less is both cheaper and less disclosure.
 * The cut is made on top-level elements, from the generated model: for
 * _summary=true those the official definitions mark isSummary, for
 * _summary=text the narrative and the mandatory elements, for
 * _summary=data everything but the narrative, for _elements the names
 * listed.  resourceType, id and meta always stay; a resource that lost
 * anything is tagged SUBSETTED in meta.tag, as R4 requires, so nobody
 * mistakes it for the whole.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "fhir/r4_model.h"

#define SUBSETTED_SYSTEM "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

/* The element a top-level JSON key names ("valueQuantity" -> value[x]). */
static const fhir_elem_def *top_element(int type, const char *key)
{
    int ignored;
    int32_t e = fhir_model_child(fhir_r4_types[type].root, key[0] == '_' ? key + 1 : key,
                                 &ignored);
    return e >= 0 ? &fhir_r4_elems[e] : NULL;
}

/* 1 when key is one of the comma-separated names (choice keys by their
 * element's name: "value" keeps valueQuantity). */
static int listed(const char *names, const char *key, const fhir_elem_def *e)
{
    const char *want = key[0] == '_' ? key + 1 : key;
    const char *base = e ? fhir_model_elem_name(e) : want;
    size_t blen = strlen(base);
    if (blen > 3 && strcmp(base + blen - 3, "[x]") == 0)
        blen -= 3;
    for (const char *p = names; *p;) {
        size_t n = strcspn(p, ",");
        if ((n == strlen(want) && strncmp(p, want, n) == 0) ||
            (n == blen && strncmp(p, base, n) == 0))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

static int keep_member(int type, const char *key, const char *summary, const char *elements)
{
    if (strcmp(key, "resourceType") == 0 || strcmp(key, "id") == 0 || strcmp(key, "meta") == 0)
        return 1;
    const fhir_elem_def *e = top_element(type, key);
    if (elements)
        return listed(elements, key, e);
    if (strcmp(summary, "data") == 0)
        return strcmp(key, "text") != 0;
    if (strcmp(summary, "text") == 0)
        return strcmp(key, "text") == 0 || (e && e->min > 0);
    return e && (e->flags & FHIR_EF_SUMMARY);          /* "true" */
}

static void tag_subsetted(json_t *res)
{
    json_t *meta = json_object_get(res, "meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(res, "meta", meta);
    }
    json_t *tags = json_object_get(meta, "tag");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(meta, "tag", tags);
    }
    json_array_append_new(tags, json_pack("{s:s, s:s}", "system", SUBSETTED_SYSTEM,
                                          "code", "SUBSETTED"));
}

int fhir_summary_valid(const char *summary)
{
    return summary == NULL || strcmp(summary, "true") == 0 || strcmp(summary, "false") == 0 ||
           strcmp(summary, "text") == 0 || strcmp(summary, "data") == 0;
}

int fhir_subset(json_t *res, const char *summary, const char *elements)
{
    if ((summary == NULL || strcmp(summary, "false") == 0) && elements == NULL)
        return 0;
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    int type = rt ? fhir_model_type(rt, strlen(rt)) : -1;
    if (type < 0 || fhir_r4_types[type].root < 0)
        return -1;
    const char *key;
    json_t *v, *tmp;
    int removed = 0;
    json_object_foreach_safe(res, tmp, key, v) {
        if (!keep_member(type, key, summary ? summary : "false", elements)) {
            json_object_del(res, key);
            removed = 1;
        }
    }
    if (removed)
        tag_subsetted(res);
    return 0;
}
