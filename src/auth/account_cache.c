/*
 * account_cache.c -- the public view of recently used accounts, so that
 * checking a bearer token does not read and decrypt the account record on
 * every request.
 *
 * Why caching here is safe: the session row is still read on every request,
 * and every change that must bite at once (lock, password or second-factor
 * reset, revocation) revokes the account's sessions in the same transaction.
 * The cache only saves re-reading what a live session's account looks like,
 * holds no secret (no password hash, no TOTP secret), forgets an account as
 * soon as this process changes it, and expires entries after a short TTL in
 * case another process did.
 */
#include "auth_internal.h"

#include <string.h>

static size_t slot_of(const char *id)
{
    uint32_t h = 2166136261u;                 /* FNV-1a: ids are random hex */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % ACCT_CACHE_SLOTS;
}

void acct_cache_init(acct_cache *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}

void acct_cache_destroy(acct_cache *c)
{
    pthread_mutex_destroy(&c->mu);
    memset(c->slot, 0, sizeof c->slot);
}

int acct_cache_get(acct_cache *c, const char *id, int64_t now, auth_account *out)
{
    acct_cache_slot *s = &c->slot[slot_of(id)];
    pthread_mutex_lock(&c->mu);
    int hit = s->at != 0 && now - s->at <= ACCT_CACHE_TTL_US &&
              strcmp(s->pub.id, id) == 0;
    if (hit)
        *out = s->pub;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void acct_cache_put(acct_cache *c, const auth_account *pub, int64_t now)
{
    acct_cache_slot *s = &c->slot[slot_of(pub->id)];
    pthread_mutex_lock(&c->mu);
    s->pub = *pub;
    s->at = now;
    pthread_mutex_unlock(&c->mu);
}

void acct_cache_forget(acct_cache *c, const char *id)
{
    acct_cache_slot *s = &c->slot[slot_of(id)];
    pthread_mutex_lock(&c->mu);
    if (strcmp(s->pub.id, id) == 0)
        s->at = 0;
    pthread_mutex_unlock(&c->mu);
}
