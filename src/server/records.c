/*
 * records.c -- listing the server's own sealed records (alerts, incidents,
 * decoys): found through their blind-index terms, opened, sorted.
 *
 * Why it exists: every register the server keeps is a type of sealed system
 * record listed the same way; one listing keeps their behaviour -- what is
 * skipped (a deleted or unreadable record), how the answer is written --
 * the same, and each register only says how its documents sort.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

/* The current document of (type, id), or NULL when deleted or unreadable. */
static json_t *open_record(mv_store *s, const char *type, const char *id)
{
    store_resource r;
    if (store_get(s, type, id, 0, &r, NULL) != 0)
        return NULL;
    json_t *doc = r.deleted ? NULL : json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    store_resource_free(&r);
    return doc;
}

int records_get(mv_store *s, const char *type, const char *id, char **json_out,
                int64_t *version, mv_err *err)
{
    store_resource r;
    if (store_get(s, type, id, 0, &r, err) != 0)
        return -1;
    *json_out = malloc(r.body.len + 1);
    if (*json_out == NULL) {
        store_resource_free(&r);
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    }
    memcpy(*json_out, r.body.data, r.body.len);
    (*json_out)[r.body.len] = '\0';
    if (version)
        *version = r.version;
    store_resource_free(&r);
    return 0;
}

int records_list(mv_store *s, const char *type, const store_term *terms, size_t n_terms,
                 int (*order)(const void *, const void *), char **json_array_out,
                 mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, type, terms, n_terms, &ids, &n, err) != 0)
        return -1;
    json_t **docs = calloc(n ? n : 1, sizeof *docs);
    size_t k = 0;
    for (size_t i = 0; docs && i < n; i++)
        if ((docs[k] = open_record(s, type, ids[i])) != NULL)
            k++;
    store_ids_free(ids, n);
    if (docs == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    qsort(docs, k, sizeof *docs, order);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, docs[i]);
    free(docs);
    *json_array_out = arr ? json_text(arr) : NULL;
    json_decref(arr);
    return *json_array_out ? 0 : mv_fail(err, MV_E_NOMEM, "out of memory");
}
