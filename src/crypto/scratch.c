/*
 * scratch.c -- each thread's secure scratch area for per-call secrets.
 *
 * Why it exists: a seal, a blind index or a signature needs a key in memory
 * for a few microseconds (a data key copied out of the cache, a derived
 * subkey, an Ed25519 secret key, a keyed hash state).  The stack would do but
 * is ordinary memory; one sodium_malloc per call costs several pages and
 * syscalls.  So each thread gets one sodium_malloc block (guard pages, locked
 * in RAM, wiped on free), reused by every call and wiped by each caller before
 * it returns.  It is freed by the thread-specific-data destructor when the
 * thread exits (the main thread's lives until the process ends, empty).
 */
#include "crypto_internal.h"

_Static_assert(sizeof(crypto_scratch) % 64 == 0,
               "scratch must keep the hash state 64-byte aligned");

static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
static int scratch_key_ok;

static void scratch_release(void *p)
{
    sodium_free(p);   /* wipes before unmapping */
}

static void scratch_make_key(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_release) == 0;
}

crypto_scratch *crypto_scratch_get(mv_err *err)
{
    if (crypto_ensure_init(err) != 0)
        return NULL;
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_key_ok) {
        mv_fail(err, MV_E_INTERNAL, "cannot create thread-specific key");
        return NULL;
    }
    crypto_scratch *s = pthread_getspecific(scratch_key);
    if (s != NULL)
        return s;
    /* sizeof is a multiple of 64 (the hash state's alignment) and
     * sodium_malloc places the block flush against a page end, so every
     * member is correctly aligned. */
    s = sodium_malloc(sizeof *s);
    if (s == NULL) {
        mv_fail(err, MV_E_NOMEM, "cannot allocate secure memory");
        return NULL;
    }
    sodium_memzero(s, sizeof *s);
    if (pthread_setspecific(scratch_key, s) != 0) {
        sodium_free(s);
        mv_fail(err, MV_E_INTERNAL, "cannot register thread scratch memory");
        return NULL;
    }
    return s;
}

void crypto_scratch_wipe(crypto_scratch *s)
{
    if (s != NULL)
        sodium_memzero(s, sizeof *s);
}
