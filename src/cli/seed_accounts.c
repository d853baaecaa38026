/*
 * seed_accounts.c -- the accounts `medvault seed` makes: the service account
 * that loads the data, locked as soon as it is done, and one demo account
 * per role linked to the generated people.  `medvault decoy plant` makes
 * its loading accounts the same way (seed_service_create).
 *
 * Why it exists: the demo must show the policy working on real logins (a
 * clinician sees the patients in its care and no others), and the loading
 * must not leave behind the very thing the 2024 breach exploited: a broad
 * account that still works.  Passwords are random (crypto_random), checked
 * by the same rules as any new password, shown once and wiped.
 */
#include "seed.h"

#include <stdio.h>
#include <string.h>

#include "../crypto/crypto.h"

/* No look-alike characters (0/O, 1/l/I): people type these from a screen. */
static const char ALPHABET[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
#define GROUPS 4
#define GROUP_LEN 5
#define PASSWORD_TRIES 16

/* A uniformly random index into ALPHABET. */
static size_t random_symbol(void)
{
    const unsigned n = sizeof ALPHABET - 1;
    const unsigned limit = 256 - 256 % n;
    unsigned char b;
    do
        crypto_random(&b, 1);
    while (b >= limit);
    return b % n;
}

/* "xxxxx-xxxxx-xxxxx-xxxxx": about 117 bits, accepted by the password rules
 * (checked: a draw containing the username is drawn again). */
static int make_password(const char *username, char out[SEED_PASSWORD_MAX], mv_err *err)
{
    for (int attempt = 0; attempt < PASSWORD_TRIES; attempt++) {
        size_t k = 0;
        for (int g = 0; g < GROUPS; g++) {
            if (g > 0)
                out[k++] = '-';
            for (int i = 0; i < GROUP_LEN; i++)
                out[k++] = ALPHABET[random_symbol()];
        }
        out[k] = '\0';
        if (auth_password_acceptable(username, out, k, NULL) == 0)
            return 0;
    }
    crypto_wipe(out, SEED_PASSWORD_MAX);
    return mv_fail(err, MV_E_INTERNAL, "could not generate an acceptable password");
}

int seed_service_create(auth *au, const char *username, const char *scopes,
                        const char *actor, mv_err *err)
{
    char password[SEED_PASSWORD_MAX];
    if (make_password(username, password, err) != 0)
        return -1;
    auth_new_account spec = { .username = username, .role = AUTH_ROLE_SERVICE,
                              .scopes = scopes };
    auth_enrollment e;
    int rc = auth_account_create(au, &spec, password, strlen(password), actor, &e, err);
    crypto_wipe(password, sizeof password);
    crypto_wipe(&e, sizeof e);
    return rc;
}

int seed_loader_create(auth *au, const char *actor, mv_err *err)
{
    int rc = seed_service_create(au, SEED_LOADER, "system/*.c", actor, err);
    if (rc != 0 && err->code == MV_E_EXISTS)
        return mv_fail(err, MV_E_EXISTS, "this store was seeded already (account %s "
                       "exists): seed a new store", SEED_LOADER);
    return rc;
}

int seed_loader_lock(auth *au, const char *actor, mv_err *err)
{
    return auth_account_lock(au, SEED_LOADER, "seeding finished: locked so that no "
                             "broad-scope account stays usable", actor, err);
}

int seed_account_create(auth *au, seed_account *a, const char *actor, mv_err *err)
{
    if (make_password(a->username, a->password, err) != 0)
        return -1;
    auth_new_account spec = {
        .username = a->username, .role = a->role,
        .practitioner = a->practitioner[0] ? a->practitioner : NULL,
        .patient = a->patient[0] ? a->patient : NULL, .scopes = a->scopes,
    };
    return auth_account_create(au, &spec, a->password, strlen(a->password), actor,
                               &a->enroll, err);
}

void seed_account_wipe(seed_account *a)
{
    crypto_wipe(a->password, sizeof a->password);
    crypto_wipe(&a->enroll, sizeof a->enroll);
}
