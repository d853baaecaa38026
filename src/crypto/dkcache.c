/*
 * dkcache.c -- a bounded cache of unwrapped data keys.
 *
 * Why it exists: every seal or open needs its owner's data key, and
 * unwrapping it each time would cost an AEAD decryption and a master-key
 * lookup per resource.  The cache keeps recently used data keys unwrapped,
 * in one sodium_malloc slab (sodium_malloc costs pages per call, so one slab
 * of CRYPTO_CACHE_SLOTS keys rather than one block per key).
 *
 * Shape: set-associative.  The set is chosen by SipHash (crypto_shorthash,
 * random key) of the owner, so every entry of one owner sits in one set and
 * crypto-shredding an owner touches one set only.  Within a set an entry is
 * recognised by its master version and a keyed BLAKE2b fingerprint of the
 * data-key AD (owner, version) and the wrapped bytes: a row rewritten with a
 * different wrapped key is a different entry, never served stale.  Eviction
 * is a clock per set.  Bookkeeping (fingerprints, owner hashes) is ordinary
 * heap: it reveals nothing about the keys.
 *
 * Locking: the cache has no lock of its own; the owning keyring's mutex is
 * held around every call except init, free and identify (which reads only
 * the hashing keys, fixed after init).
 */
#include "crypto_internal.h"

#include <string.h>

static size_t set_base(uint64_t owner_hash)
{
    return (size_t)(owner_hash % CRYPTO_CACHE_SETS) * CRYPTO_CACHE_WAYS;
}

static uint64_t owner_hash_of(const dk_cache *c, const char *owner)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)owner, strlen(owner),
                     c->secrets->owner_hash_key);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof h; i++)
        v = v << 8 | h[i];
    return v;
}

static void slot_clear(dk_cache *c, size_t i)
{
    sodium_memzero(c->secrets->keys[i], MV_KEY_BYTES);
    memset(&c->slots[i], 0, sizeof c->slots[i]);
}

int dk_cache_init(dk_cache *c, mv_err *err)
{
    c->secrets = sodium_malloc(sizeof *c->secrets);
    if (c->secrets == NULL)
        return mv_fail(err, MV_E_NOMEM, "cannot allocate secure key memory");
    sodium_memzero(c->secrets->keys, sizeof c->secrets->keys);
    randombytes_buf(c->secrets->fingerprint_key,
                    sizeof c->secrets->fingerprint_key);
    randombytes_buf(c->secrets->owner_hash_key,
                    sizeof c->secrets->owner_hash_key);
    memset(c->slots, 0, sizeof c->slots);
    memset(c->hand, 0, sizeof c->hand);
    return 0;
}

void dk_cache_free(dk_cache *c)
{
    if (c == NULL)
        return;
    sodium_free(c->secrets);   /* wipes every cached key */
    c->secrets = NULL;
    memset(c->slots, 0, sizeof c->slots);
}

void dk_cache_identify(const dk_cache *c, const char *owner,
                       const unsigned char *ad, size_t ad_len,
                       const unsigned char *wrapped, size_t wrapped_len,
                       uint32_t mk_version, dk_cache_id *id)
{
    id->owner_hash = owner_hash_of(c, owner);
    id->mk_version = mk_version;
    crypto_generichash_state st;
    crypto_generichash_init(&st, c->secrets->fingerprint_key,
                            sizeof c->secrets->fingerprint_key,
                            sizeof id->fingerprint);
    crypto_generichash_update(&st, ad, ad_len);
    crypto_generichash_update(&st, wrapped, wrapped_len);
    crypto_generichash_final(&st, id->fingerprint, sizeof id->fingerprint);
    sodium_memzero(&st, sizeof st);
}

static int slot_matches(const dk_cache_slot *s, const dk_cache_id *id)
{
    return s->used && s->owner_hash == id->owner_hash &&
           s->mk_version == id->mk_version &&
           sodium_memcmp(s->fingerprint, id->fingerprint,
                         sizeof s->fingerprint) == 0;
}

int dk_cache_get(dk_cache *c, const dk_cache_id *id,
                 unsigned char out[MV_KEY_BYTES])
{
    size_t base = set_base(id->owner_hash);
    for (size_t i = base; i < base + CRYPTO_CACHE_WAYS; i++) {
        if (slot_matches(&c->slots[i], id)) {
            c->slots[i].referenced = 1;
            memcpy(out, c->secrets->keys[i], MV_KEY_BYTES);
            return 1;
        }
    }
    return 0;
}

/* The slot to fill for id in its set: the entry itself if present (two
 * threads may miss at once), else a free slot, else the clock's victim. */
static size_t slot_for_insert(dk_cache *c, const dk_cache_id *id)
{
    size_t base = set_base(id->owner_hash);
    for (size_t i = base; i < base + CRYPTO_CACHE_WAYS; i++)
        if (slot_matches(&c->slots[i], id))
            return i;
    for (size_t i = base; i < base + CRYPTO_CACHE_WAYS; i++)
        if (!c->slots[i].used)
            return i;
    /* Clock: skip (and clear) recently used entries; ends within two turns. */
    unsigned *hand = &c->hand[base / CRYPTO_CACHE_WAYS];
    for (;;) {
        size_t i = base + *hand;
        *hand = (*hand + 1) % CRYPTO_CACHE_WAYS;
        if (!c->slots[i].referenced)
            return i;
        c->slots[i].referenced = 0;
    }
}

void dk_cache_put(dk_cache *c, const dk_cache_id *id,
                  const unsigned char key[MV_KEY_BYTES])
{
    size_t i = slot_for_insert(c, id);
    slot_clear(c, i);
    memcpy(c->secrets->keys[i], key, MV_KEY_BYTES);
    dk_cache_slot *s = &c->slots[i];
    memcpy(s->fingerprint, id->fingerprint, sizeof s->fingerprint);
    s->owner_hash = id->owner_hash;
    s->mk_version = id->mk_version;
    s->used = 1;
    s->referenced = 1;
}

void dk_cache_forget_owner(dk_cache *c, const char *owner)
{
    uint64_t h = owner_hash_of(c, owner);
    size_t base = set_base(h);
    /* A 64-bit hash collision would evict another owner's entry too: that
     * costs one re-unwrap, never a wrong key. */
    for (size_t i = base; i < base + CRYPTO_CACHE_WAYS; i++)
        if (c->slots[i].used && c->slots[i].owner_hash == h)
            slot_clear(c, i);
}

void dk_cache_forget_version(dk_cache *c, uint32_t mk_version)
{
    for (size_t i = 0; i < CRYPTO_CACHE_SLOTS; i++)
        if (c->slots[i].used && c->slots[i].mk_version == mk_version)
            slot_clear(c, i);
}

size_t dk_cache_count_owner(const dk_cache *c, const char *owner)
{
    uint64_t h = owner_hash_of(c, owner);
    size_t base = set_base(h), n = 0;
    for (size_t i = base; i < base + CRYPTO_CACHE_WAYS; i++)
        if (c->slots[i].used && c->slots[i].owner_hash == h)
            n++;
    return n;
}
