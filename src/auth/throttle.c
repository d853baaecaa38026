/*
 * throttle.c -- slowing down guessing, in memory: a growing delay per
 * username and a sliding window of failures per source address.
 *
 * Why it exists: the persisted lock stops a guesser after lock_after tries
 * on one account, but not one who tries one password on every account
 * (spraying) or who hammers an account between two failures.  The username
 * map is keyed by whatever was typed, existing account or not, so its
 * answers cannot tell which accounts exist.  Both maps are bounded (the
 * least recently updated entry is evicted) so a flood of random usernames
 * cannot exhaust memory, and keyed by a salted digest so neither the typed
 * text (sometimes a password) is kept nor can bucket collisions be forced.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- A bounded map ----------------------------------------------------------- */

typedef struct tnode {
    struct tnode *chain;             /* next in the bucket                 */
    struct tnode *older, *newer;     /* recency list                       */
    unsigned char key[MV_HASH_BYTES];
    int64_t value[];                 /* value_size bytes, 8-aligned        */
} tnode;

struct tmap {
    tnode **buckets;
    size_t mask;                     /* bucket count - 1 (a power of two) */
    tnode *newest, *oldest;
    size_t count, cap, value_size;
};

tmap *tmap_new(size_t cap, size_t value_size)
{
    tmap *m = calloc(1, sizeof *m);
    size_t n = 16;
    while (n < cap / 2 && n < 65536)
        n *= 2;
    if (m == NULL || (m->buckets = calloc(n, sizeof *m->buckets)) == NULL) {
        free(m);
        return NULL;
    }
    m->mask = n - 1;
    m->cap = cap ? cap : 1;
    m->value_size = value_size;
    return m;
}

void tmap_free(tmap *m)
{
    if (m == NULL)
        return;
    for (tnode *n = m->newest, *next; n; n = next) {
        next = n->older;
        free(n);
    }
    free(m->buckets);
    free(m);
}

size_t tmap_count(const tmap *m)
{
    return m->count;
}

static tnode **bucket_of(tmap *m, const unsigned char key[MV_HASH_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return &m->buckets[h & m->mask];
}

/* The link that points at key's node (or at the chain's NULL end). */
static tnode **link_of(tmap *m, const unsigned char key[MV_HASH_BYTES])
{
    tnode **l = bucket_of(m, key);
    while (*l && memcmp((*l)->key, key, MV_HASH_BYTES) != 0)
        l = &(*l)->chain;
    return l;
}

static void list_unlink(tmap *m, tnode *n)
{
    if (n->newer)
        n->newer->older = n->older;
    else
        m->newest = n->older;
    if (n->older)
        n->older->newer = n->newer;
    else
        m->oldest = n->newer;
    n->older = n->newer = NULL;
}

static void list_push_newest(tmap *m, tnode *n)
{
    n->older = m->newest;
    n->newer = NULL;
    if (m->newest)
        m->newest->newer = n;
    m->newest = n;
    if (m->oldest == NULL)
        m->oldest = n;
}

void *tmap_find(tmap *m, const unsigned char key[MV_HASH_BYTES])
{
    tnode *n = *link_of(m, key);
    return n ? n->value : NULL;
}

void tmap_remove(tmap *m, const unsigned char key[MV_HASH_BYTES])
{
    tnode **l = link_of(m, key);
    tnode *n = *l;
    if (n == NULL)
        return;
    *l = n->chain;
    list_unlink(m, n);
    m->count--;
    free(n);
}

void *tmap_upsert(tmap *m, const unsigned char key[MV_HASH_BYTES])
{
    tnode *n = *link_of(m, key);
    if (n) {
        list_unlink(m, n);
        list_push_newest(m, n);
        return n->value;
    }
    if (m->count >= m->cap)
        tmap_remove(m, m->oldest->key);
    if ((n = calloc(1, sizeof *n + m->value_size)) == NULL)
        return NULL;
    memcpy(n->key, key, MV_HASH_BYTES);
    tnode **bucket = bucket_of(m, key);
    n->chain = *bucket;
    *bucket = n;
    list_push_newest(m, n);
    m->count++;
    return n->value;
}

/* ---- The throttles --------------------------------------------------------- */

typedef struct user_entry {
    int64_t failures;       /* consecutive                                */
    int64_t next_us;        /* no attempt before this time                */
} user_entry;

typedef struct source_entry {
    int64_t n;              /* failures held in ts (at most the maximum)  */
    int64_t head;           /* next slot to write: the oldest when full   */
    int64_t ts[];           /* times of the last failures, a ring         */
} source_entry;

#define KEY_TEXT_MAX 256

/* Salted digest of kind and text (lower-cased for usernames). */
static void throttle_key(const throttle *t, char kind, const char *text,
                         unsigned char key[MV_HASH_BYTES])
{
    unsigned char buf[sizeof t->salt + 1 + KEY_TEXT_MAX];
    size_t n = 0;
    memcpy(buf, t->salt, sizeof t->salt);
    buf[sizeof t->salt] = (unsigned char)kind;
    for (const char *p = text ? text : ""; *p && n < KEY_TEXT_MAX; p++, n++)
        buf[sizeof t->salt + 1 + n] =
            (unsigned char)(kind == 'u' ? tolower((unsigned char)*p) : *p);
    crypto_digest(buf, sizeof t->salt + 1 + n, key);
    crypto_wipe(buf, sizeof buf);   /* a typed "username" may be a password */
}

int throttle_init(throttle *t, const auth_config *cfg, mv_err *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    crypto_random(t->salt, sizeof t->salt);
    t->users = tmap_new(THROTTLE_MAX_ENTRIES, sizeof(user_entry));
    t->sources = tmap_new(THROTTLE_MAX_ENTRIES,
                          sizeof(source_entry) +
                          (size_t)cfg->source_max_failures * sizeof(int64_t));
    if (t->users == NULL || t->sources == NULL ||
        pthread_mutex_init(&t->mu, NULL) != 0) {
        tmap_free(t->users);
        tmap_free(t->sources);
        return mv_fail(err, MV_E_NOMEM, "cannot allocate the login throttles");
    }
    return 0;
}

void throttle_destroy(throttle *t)
{
    tmap_free(t->users);
    tmap_free(t->sources);
    pthread_mutex_destroy(&t->mu);
    crypto_wipe(t->salt, sizeof t->salt);
}

/* base * 2^(failures-1), capped at max, without overflow. */
static int64_t user_delay(const auth_config *c, int64_t failures)
{
    int64_t d = c->delay_base_us;
    for (int64_t i = 1; i < failures && d < c->delay_max_us; i++)
        d = d > c->delay_max_us / 2 ? c->delay_max_us : d * 2;
    return d < c->delay_max_us ? d : c->delay_max_us;
}

int64_t throttle_source_wait(throttle *t, const char *source, int64_t now)
{
    unsigned char key[MV_HASH_BYTES];
    throttle_key(t, 's', source, key);
    int64_t wait = 0;
    pthread_mutex_lock(&t->mu);
    const source_entry *e = tmap_find(t->sources, key);
    if (e && e->n >= t->cfg.source_max_failures)
        wait = e->ts[e->head] + t->cfg.source_window_us - now;
    pthread_mutex_unlock(&t->mu);
    return wait > 0 ? wait : 0;
}

int64_t throttle_user_wait(throttle *t, const char *username, int64_t now)
{
    unsigned char key[MV_HASH_BYTES];
    throttle_key(t, 'u', username, key);
    int64_t wait = 0;
    pthread_mutex_lock(&t->mu);
    const user_entry *e = tmap_find(t->users, key);
    if (e)
        wait = e->next_us - now;
    pthread_mutex_unlock(&t->mu);
    return wait > 0 ? wait : 0;
}

void throttle_failure(throttle *t, const char *username, const char *source,
                      int64_t now)
{
    unsigned char ukey[MV_HASH_BYTES], skey[MV_HASH_BYTES];
    throttle_key(t, 'u', username, ukey);
    throttle_key(t, 's', source, skey);
    pthread_mutex_lock(&t->mu);
    user_entry *u = tmap_upsert(t->users, ukey);
    if (u) {
        u->failures++;
        u->next_us = now + user_delay(&t->cfg, u->failures);
    }
    source_entry *s = tmap_upsert(t->sources, skey);
    if (s) {
        s->ts[s->head] = now;
        s->head = (s->head + 1) % t->cfg.source_max_failures;
        if (s->n < t->cfg.source_max_failures)
            s->n++;
    }
    pthread_mutex_unlock(&t->mu);
}

void throttle_user_reset(throttle *t, const char *username)
{
    unsigned char key[MV_HASH_BYTES];
    throttle_key(t, 'u', username, key);
    pthread_mutex_lock(&t->mu);
    tmap_remove(t->users, key);
    pthread_mutex_unlock(&t->mu);
}
