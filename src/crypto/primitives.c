/*
 * primitives.c -- process-wide set-up and the small keyless primitives
 * (randomness, constant-time compare, wipe, plain hash).
 *
 * Why it exists: every other medvault subsystem needs these but may not call
 * libsodium itself; keeping them here makes libsodium's initialisation happen
 * in exactly one place, before any of them runs, and makes "no core dumps"
 * part of that initialisation so a crash can never write keys to disk.
 */
#include "crypto_internal.h"

#include <sys/resource.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -1;   /* written once, inside init_once */

static void init_process(void)
{
    /* sodium_init returns 1 when already initialised: that is success. */
    if (sodium_init() < 0)
        return;
    /* Keys live in this process's memory; a core dump would copy them to
     * disk.  Lowering the hard limit too means nothing later can undo it. */
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0)
        return;
    init_result = 0;
}

int crypto_ensure_init(mv_err *err)
{
    pthread_once(&init_once, init_process);
    if (init_result != 0)
        return mv_fail(err, MV_E_INTERNAL,
                       "cannot initialise the crypto library");
    return 0;
}

int crypto_init(mv_err *err)
{
    return crypto_ensure_init(err);
}

void crypto_random(void *p, size_t n)
{
    /* randombytes_buf works before sodium_init, but initialise anyway so the
     * core-dump limit is in place before the first secret exists. */
    (void)crypto_ensure_init(NULL);
    randombytes_buf(p, n);
}

int crypto_memcmp(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n);
}

void crypto_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

void crypto_digest(const void *p, size_t n, unsigned char out[MV_HASH_BYTES])
{
    crypto_generichash(out, MV_HASH_BYTES, p, n, NULL, 0);
}
