/*
 * blocklist.c -- source addresses an open incident blocked
 * (`medvault incident open --block-sources`), refused by the running server.
 *
 * Why it exists: containing an incident locks the account, but the person
 * behind it may hold other stolen credentials; the addresses they used are
 * recorded in the incident, and while it is open the server refuses every
 * request from them -- including logins -- before any work.  The list is
 * read from the open incidents every tick (the CLI may open one while the
 * server runs) and swapped in whole under a lock; closing the incident lifts
 * the block.
 */
#include "server_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MAX 256

struct blocklist {
    pthread_mutex_t mu;
    size_t n;
    char addr[BLOCK_MAX][64];
    char next[BLOCK_MAX][64];    /* the refresh's scratch (the tick thread) */
};

/* The blocked sources of every open incident (at most BLOCK_MAX). */
static size_t collect(json_t *incidents, char out[BLOCK_MAX][64])
{
    size_t n = 0, i, k;
    json_t *inc, *src;
    json_array_foreach(incidents, i, inc) {
        json_array_foreach(json_object_get(inc, "blocked_sources"), k, src) {
            const char *a = json_string_value(src);
            if (a && n < BLOCK_MAX && strlen(a) < 64)
                snprintf(out[n++], 64, "%s", a);
        }
    }
    return n;
}

int blocklist_refresh(server *srv, mv_err *err)
{
    if (srv->blocked == NULL) {              /* the first refresh, at start */
        struct blocklist *b = mv_calloc(1, sizeof *b, err);
        if (b == NULL)
            return -1;
        pthread_mutex_init(&b->mu, NULL);
        srv->blocked = b;
    }
    struct blocklist *b = srv->blocked;
    char *text = NULL;
    if (server_incident_list(srv->store, "open", &text, err) != 0)
        return -1;
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    size_t n = collect(arr, b->next);
    json_decref(arr);
    pthread_mutex_lock(&b->mu);
    memcpy(b->addr, b->next, n * sizeof b->next[0]);
    b->n = n;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int source_blocked(server *srv, const char *source)
{
    struct blocklist *b = srv->blocked;
    int hit = 0;
    if (source == NULL || b == NULL)
        return 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n && !hit; i++)
        hit = strcmp(b->addr[i], source) == 0;
    pthread_mutex_unlock(&b->mu);
    return hit;
}

void blocklist_free(server *srv)
{
    if (srv->blocked == NULL)
        return;
    pthread_mutex_destroy(&srv->blocked->mu);
    free(srv->blocked);
    srv->blocked = NULL;
}
