/*
 * auth.c -- the auth instance: its configuration, roles, and the one-time
 * work done when it opens.
 *
 * Why it exists: the instance is shared by every server thread, so what is
 * computed once belongs here -- above all the dummy Argon2id hash that a
 * login for an unknown username is verified against, so that such a login
 * costs exactly what a wrong password costs.
 */
#include "auth_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {
    [AUTH_ROLE_CLINICIAN] = "clinician", [AUTH_ROLE_NURSE] = "nurse",
    [AUTH_ROLE_ADMIN] = "admin",         [AUTH_ROLE_SECURITY] = "security",
    [AUTH_ROLE_PATIENT] = "patient",     [AUTH_ROLE_SERVICE] = "service",
};
#define ROLE_COUNT ((int)(sizeof role_names / sizeof role_names[0]))

const char *auth_role_name(auth_role r)
{
    return (int)r >= 0 && (int)r < ROLE_COUNT ? role_names[r] : "unknown";
}

int auth_role_parse(const char *name, auth_role *out)
{
    for (int i = 0; name && i < ROLE_COUNT; i++)
        if (strcmp(name, role_names[i]) == 0) {
            *out = (auth_role)i;
            return 0;
        }
    return -1;
}

auth_config auth_default_config(void)
{
    const int64_t s = 1000000;
    return (auth_config){
        .idle_timeout_us = 15 * 60 * s,
        .absolute_timeout_us = 12 * 3600 * s,
        .step_up_valid_us = 5 * 60 * s,
        .lock_after = 5,
        .lock_time_us = 15 * 60 * s,
        .delay_base_us = 250000,
        .delay_max_us = 30 * s,
        .source_max_failures = 20,
        .source_window_us = 10 * 60 * s,
    };
}

static int config_check(const auth_config *c, mv_err *err)
{
    const char *bad =
        c->idle_timeout_us <= 0 ? "idle_timeout must be positive" :
        c->absolute_timeout_us <= 0 ? "absolute_timeout must be positive" :
        c->step_up_valid_us <= 0 ? "step_up_valid must be positive" :
        c->lock_after < 1 ? "lock_after must be at least 1" :
        c->lock_time_us <= 0 || c->lock_time_us > 24 * 3600 * 1000000LL
            ? "lock_time must be between 1 s and 24 h" :
        c->delay_base_us < 0 ? "delay_base must not be negative" :
        c->delay_max_us < c->delay_base_us ? "delay_max must be at least delay_base" :
        c->source_max_failures < 1 || c->source_max_failures > 100000
            ? "source_max_failures must be between 1 and 100000" :
        c->source_window_us <= 0 ? "source_window must be positive" : NULL;
    if (bad)
        return mv_fail(err, MV_E_INVALID, "invalid authentication setting: %s", bad);
    return 0;
}

/* An Argon2id hash of a random password nobody knows. */
static int dummy_hash(char out[MV_PWHASH_MAX], mv_err *err)
{
    unsigned char pw[32];
    crypto_random(pw, sizeof pw);
    int rc = crypto_password_hash(pw, sizeof pw, out, err);
    crypto_wipe(pw, sizeof pw);
    return rc;
}

int auth_open(mv_store *s, audit_trail *trail, const auth_config *cfg,
              auth **out, mv_err *err)
{
    *out = NULL;
    if (s == NULL || trail == NULL)
        return mv_fail(err, MV_E_INVALID, "auth needs a store and a trail");
    auth_config c = cfg ? *cfg : auth_default_config();
    if (config_check(&c, err) != 0 || crypto_init(err) != 0)
        return -1;
    auth *a = mv_calloc(1, sizeof *a, err);
    if (a == NULL)
        return -1;
    a->s = s;
    a->trail = trail;
    a->cfg = c;
    if (dummy_hash(a->dummy_hash, err) != 0 ||
        throttle_init(&a->thr, &c, err) != 0) {
        free(a);
        return -1;
    }
    acct_cache_init(&a->accounts);
    *out = a;
    return 0;
}

void auth_close(auth *a)
{
    if (a == NULL)
        return;
    throttle_destroy(&a->thr);
    acct_cache_destroy(&a->accounts);
    crypto_wipe(a, sizeof *a);
    free(a);
}
