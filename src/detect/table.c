/*
 * table.c -- the bounded tables of the detector: a hash index over a fixed
 * array of entries, with a least-recently-used list.
 *
 * Why it exists: per-actor, per-source and per-patient state must be bounded
 * in memory (issue 5) even when an attacker invents addresses or accounts.
 * Every table is allocated once; a new key beyond the capacity takes the
 * place of the least recently seen one.  Lookups, insertions and evictions
 * are O(1) (expected), and nothing allocates after lru_init().
 */
#include "detect_internal.h"

#include <stdlib.h>
#include <string.h>

static lru_hdr *entry_at(const lru_table *t, uint32_t i)
{
    return (lru_hdr *)(t->entries + (size_t)i * t->stride);
}

static uint32_t index_of(const lru_table *t, const void *e)
{
    return (uint32_t)(((const unsigned char *)e - t->entries) / t->stride);
}

static size_t buckets_for(size_t cap)
{
    size_t n = 16;
    while (n < cap * 2)
        n <<= 1;
    return n;
}

size_t lru_bytes(size_t cap, size_t stride)
{
    return cap * stride + buckets_for(cap) * sizeof(uint32_t);
}

int lru_init(lru_table *t, size_t cap, size_t stride, mv_err *err)
{
    memset(t, 0, sizeof *t);
    if (cap == 0 || cap >= NO_SLOT)
        return mv_fail(err, MV_E_INVALID, "detect: table capacity %zu out of range", cap);
    t->stride = stride;
    t->cap = cap;
    t->nbuckets = buckets_for(cap);
    t->entries = mv_calloc(cap, stride, err);
    t->buckets = malloc(t->nbuckets * sizeof *t->buckets);
    if (t->entries == NULL || t->buckets == NULL) {
        lru_fini(t);
        return mv_fail(err, MV_E_NOMEM, "detect: out of memory for %zu entries", cap);
    }
    memset(t->buckets, 0xff, t->nbuckets * sizeof *t->buckets);
    t->mru = t->lru = NO_SLOT;
    return 0;
}

void lru_fini(lru_table *t)
{
    free(t->entries);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

/* 64-bit FNV-1a, seeded, with a final avalanche (murmur3's fmix64): table
 * placement only, never security. */
uint64_t detect_hash(uint64_t seed, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;   /* 0 means "empty" in the detector's small sets */
}

static void list_unlink(lru_table *t, lru_hdr *h)
{
    if (h->prev != NO_SLOT)
        entry_at(t, h->prev)->next = h->next;
    else
        t->mru = h->next;
    if (h->next != NO_SLOT)
        entry_at(t, h->next)->prev = h->prev;
    else
        t->lru = h->prev;
    h->prev = h->next = NO_SLOT;
}

static void list_push_front(lru_table *t, lru_hdr *h, uint32_t i)
{
    h->prev = NO_SLOT;
    h->next = t->mru;
    if (t->mru != NO_SLOT)
        entry_at(t, t->mru)->prev = i;
    t->mru = i;
    if (t->lru == NO_SLOT)
        t->lru = i;
}

static void *find_entry(lru_table *t, const char *key, uint64_t hash)
{
    uint32_t i = t->buckets[hash & (t->nbuckets - 1)];
    while (i != NO_SLOT) {
        lru_hdr *h = entry_at(t, i);
        if (h->hash == hash && strncmp(h->key, key, DETECT_ID_MAX - 1) == 0)
            return h;
        i = h->chain;
    }
    return NULL;
}

void *lru_find(lru_table *t, const char *key, uint64_t hash)
{
    lru_hdr *h = find_entry(t, key, hash);
    if (h != NULL && t->mru != index_of(t, h)) {
        list_unlink(t, h);
        list_push_front(t, h, index_of(t, h));
    }
    return h;
}

static void chain_unlink(lru_table *t, lru_hdr *h, uint32_t i)
{
    uint32_t *link = &t->buckets[h->hash & (t->nbuckets - 1)];
    while (*link != NO_SLOT && *link != i)
        link = &entry_at(t, *link)->chain;
    if (*link == i)
        *link = h->chain;
}

void lru_remove(lru_table *t, void *entry)
{
    lru_hdr *h = entry;
    if (!h->used)
        return;
    uint32_t i = index_of(t, h);
    chain_unlink(t, h, i);
    list_unlink(t, h);
    memset(h, 0, t->stride);
    t->used--;
}

/* A free slot: the next never-used one, else the least recently used one. */
static uint32_t take_slot(lru_table *t)
{
    if (t->used < t->cap) {
        for (uint32_t i = 0; i < t->cap; i++) {
            /* Slots fill in order and freed ones are rare (release), so
             * the scan from used is almost always one step. */
            uint32_t j = (uint32_t)((t->used + i) % t->cap);
            if (!entry_at(t, j)->used)
                return j;
        }
    }
    uint32_t victim = t->lru;
    lru_remove(t, entry_at(t, victim));
    t->evictions++;
    return victim;
}

void *lru_get(lru_table *t, const char *key, uint64_t hash, int *created)
{
    lru_hdr *h = lru_find(t, key, hash);
    *created = 0;
    if (h != NULL)
        return h;
    uint32_t i = take_slot(t);
    h = entry_at(t, i);
    memset(h, 0, t->stride);
    h->used = 1;
    h->hash = hash;
    size_t n = strlen(key);
    if (n > DETECT_ID_MAX - 1)
        n = DETECT_ID_MAX - 1;
    memcpy(h->key, key, n);
    h->key[n] = '\0';
    uint32_t *head = &t->buckets[hash & (t->nbuckets - 1)];
    h->chain = *head;
    *head = i;
    list_push_front(t, h, i);
    t->used++;
    *created = 1;
    return h;
}
