/*
 * seed_load.c -- sending the synthetic hospital's Bundles through the API's
 * own code (server_local_request), and reading back what the server made.
 *
 * Why it exists: `medvault seed` must fill a store exactly as a client of
 * the FHIR API would -- validation, patient compartment, policy, sealing
 * under the patient's key, blind indexes, one audit entry per resource --
 * so the demo proves the real path and nothing is written around it.  One
 * transaction Bundle per patient commits atomically in one group commit.
 */
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"

/* "Type/id/_history/1" (any base before it) -> type and id. */
static int split_location(const char *loc, char type[40], char id[SEED_ID_MAX])
{
    const char *hist = strstr(loc, "/_history");
    size_t end = hist ? (size_t)(hist - loc) : strlen(loc);
    size_t id_start = end;
    while (id_start > 0 && loc[id_start - 1] != '/')
        id_start--;
    if (id_start < 2 || end - id_start == 0 || end - id_start >= SEED_ID_MAX)
        return -1;
    size_t type_start = id_start - 1;
    while (type_start > 0 && loc[type_start - 1] != '/')
        type_start--;
    size_t type_len = id_start - 1 - type_start;
    if (type_len == 0 || type_len >= 40)
        return -1;
    memcpy(type, loc + type_start, type_len);
    type[type_len] = '\0';
    memcpy(id, loc + id_start, end - id_start);
    id[end - id_start] = '\0';
    return 0;
}

static const char *entry_location(const json_t *response, size_t i)
{
    const json_t *e = json_array_get(json_object_get(response, "entry"), i);
    return json_string_value(json_object_get(json_object_get(e, "response"), "location"));
}

int seed_response_id(const json_t *response, size_t i, char out[SEED_ID_MAX],
                     mv_err *err)
{
    const char *loc = entry_location(response, i);
    char type[40];
    if (loc == NULL || split_location(loc, type, out) != 0)
        return mv_fail(err, MV_E_INVALID, "the server's answer has no location for "
                       "entry %zu", i);
    return 0;
}

static void count_type(seed_counts *c, const char *type, size_t n)
{
    c->total += n;
    for (size_t k = 0; k < c->n_types; k++)
        if (strcmp(c->by_type[k].type, type) == 0) {
            c->by_type[k].n += n;
            return;
        }
    if (c->n_types == SEED_TYPES_MAX)
        return;
    snprintf(c->by_type[c->n_types].type, sizeof c->by_type[0].type, "%s", type);
    c->by_type[c->n_types++].n = n;
}

void seed_counts_merge(seed_counts *into, const seed_counts *from)
{
    for (size_t k = 0; k < from->n_types; k++)
        count_type(into, from->by_type[k].type, from->by_type[k].n);
}

/* The first issue's diagnostics of an OperationOutcome, or the text. */
static void describe_failure(const mv_buf *body, char *out, size_t n)
{
    json_t *o = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *diag = json_string_value(json_object_get(
        json_array_get(json_object_get(o, "issue"), 0), "diagnostics"));
    snprintf(out, n, "%s", diag ? diag : "no explanation");
    json_decref(o);
}

/* Every entry answered 201: count them by type.  -1 (naming the entry)
 * otherwise. */
static int check_entries(const json_t *bundle, const json_t *response,
                         seed_counts *counts, mv_err *err)
{
    const json_t *req = json_object_get(bundle, "entry");
    const json_t *res = json_object_get(response, "entry");
    if (json_array_size(res) != json_array_size(req))
        return mv_fail(err, MV_E_INVALID, "the server answered %zu entries for %zu",
                       json_array_size(res), json_array_size(req));
    for (size_t i = 0; i < json_array_size(res); i++) {
        const char *status = json_string_value(json_object_get(
            json_object_get(json_array_get(res, i), "response"), "status"));
        char type[40], id[SEED_ID_MAX];
        const char *loc = entry_location(response, i);
        if (status == NULL || strncmp(status, "201", 3) != 0 || loc == NULL ||
            split_location(loc, type, id) != 0)
            return mv_fail(err, MV_E_INVALID, "entry %zu was not created (%s)", i,
                           status ? status : "no status");
        if (counts)
            count_type(counts, type, 1);
    }
    return 0;
}

int seed_post_bundle(struct server *srv, const char *username, const json_t *bundle,
                     json_t **response, seed_counts *counts, mv_err *err)
{
    *response = NULL;
    char *text = json_dumps(bundle, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(10));
    if (text == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    int status = 0;
    mv_buf body = {0};
    int rc = server_local_request(srv, username, "POST", "/fhir", text, strlen(text),
                                  &status, &body, err);
    free(text);
    if (rc != 0)
        return -1;
    if (status != 200) {
        char why[200];
        describe_failure(&body, why, sizeof why);
        mv_buf_free(&body);
        return mv_fail(err, MV_E_INVALID, "the server refused a Bundle (%d): %s",
                       status, why);
    }
    *response = json_loadb((const char *)body.data, body.len, 0, NULL);
    mv_buf_free(&body);
    if (*response == NULL)
        return mv_fail(err, MV_E_INVALID, "the server's answer is not JSON");
    if (check_entries(bundle, *response, counts, err) != 0) {
        json_decref(*response);
        *response = NULL;
        return -1;
    }
    return 0;
}
