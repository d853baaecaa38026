/*
 * priors.c -- what an account of a role (and of a department) may do before
 * it has a baseline of its own: the cold-start limits an administrator sets
 * with `medvault detect priors`.
 *
 * Why it exists: on a hospital's first day nobody has a baseline, and a new
 * arrival never has one, so every account is held to the new-actor limits
 * (12 patients in 5 minutes, 40 an hour, 120 a day: for a care giver, of
 * the patients its care does not explain).  Those suit a ward; an emergency
 * department breaks the glass more often, a medical secretary's office
 * should be held tighter.  A prior replaces them for its role, or for its
 * role in one department (the more precise one wins), until the account's
 * own rhythm is learned -- and the learned rhythm is then capped at
 * learned_ceiling times them: the ceiling is the role's and department's
 * too (the 5-minute one stays the hard cap).
 *
 * What it must never do: loosen the detector beyond its bounds.  A prior is
 * at least 1 and at most learned_ceiling x the new-actor default in each
 * window (the 5-minute one also at most hard_cap_5m), so a stolen
 * administrator's key file cannot switch the detector off through priors;
 * declarations (two-person approved) remain the only way to bulk volume.
 */
#include "detect_internal.h"

#include <string.h>

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static const char *const window_names[WIN_COUNT] = { "5-minute", "hourly", "daily" };

static void defaults(const detect_config *c, int out[WIN_COUNT])
{
    out[WIN_5M] = c->new_actor_limit_5m;
    out[WIN_1H] = c->new_actor_limit_1h;
    out[WIN_24H] = c->new_actor_limit_24h;
}

/* The largest a prior may set in window w. */
static int bound(const detect_config *c, int w)
{
    int d[WIN_COUNT];
    defaults(c, d);
    int most = (int)(c->learned_ceiling * d[w]);
    if (w == WIN_5M && c->hard_cap_5m > 0 && most > c->hard_cap_5m)
        most = c->hard_cap_5m;
    return most;
}

int detect_prior_check(const detect_config *c, const detect_prior *p, mv_err *err)
{
    if (p == NULL || !nonempty(p->role))
        return mv_fail(err, MV_E_INVALID, "a prior needs a role");
    int role = role_index(p->role);
    if (role == ROLE_OTHER || role == ROLE_PATIENT)
        return mv_fail(err, MV_E_INVALID, "no prior for role '%s' (clinician, nurse, "
                       "admin, security or service)", p->role);
    if (p->department && strlen(p->department) >= DETECT_ID_MAX)
        return mv_fail(err, MV_E_INVALID, "department name too long");
    const int v[WIN_COUNT] = { p->limit_5m, p->limit_1h, p->limit_24h };
    for (int w = 0; w < WIN_COUNT; w++)
        if (v[w] < 1 || v[w] > bound(c, w))
            return mv_fail(err, MV_E_INVALID, "the %s limit must be between 1 and %d "
                           "(%g x the default %s)", window_names[w], bound(c, w),
                           c->learned_ceiling, w == WIN_5M ? "or the 5-minute hard cap"
                                                           : "");
    if (!(p->limit_5m <= p->limit_1h && p->limit_1h <= p->limit_24h))
        return mv_fail(err, MV_E_INVALID, "limits must not shrink with the window "
                       "(5 minutes <= hour <= day)");
    return 0;
}

int detect_set_priors(detect_engine *e, const detect_prior *list, size_t n,
                      mv_err *err)
{
    if (n > DETECT_PRIORS_MAX)
        return mv_fail(err, MV_E_INVALID, "at most %d priors", DETECT_PRIORS_MAX);
    for (size_t i = 0; i < n; i++)
        if (detect_prior_check(&e->cfg, &list[i], err) != 0)
            return -1;
    pthread_mutex_lock(&e->mu);
    memset(e->priors, 0, sizeof e->priors);
    for (size_t i = 0; i < n; i++) {
        prior *p = &e->priors[i];
        p->used = 1;
        p->role = role_index(list[i].role);
        p->dept = nonempty(list[i].department)
                ? detect_hash(e->cfg.hash_seed, list[i].department) : 0;
        p->limits[WIN_5M] = list[i].limit_5m;
        p->limits[WIN_1H] = list[i].limit_1h;
        p->limits[WIN_24H] = list[i].limit_24h;
    }
    e->n_priors = (int)n;
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void priors_caps(const detect_engine *e, int role, uint64_t dept, int caps[WIN_COUNT])
{
    defaults(&e->cfg, caps);
    const prior *role_wide = NULL, *exact = NULL;
    for (int i = 0; i < e->n_priors; i++) {
        const prior *p = &e->priors[i];
        if (!p->used || p->role != role)
            continue;
        if (p->dept == 0)
            role_wide = p;
        else if (dept != 0 && p->dept == dept)
            exact = p;
    }
    const prior *use = exact ? exact : role_wide;
    if (use != NULL)
        memcpy(caps, use->limits, sizeof use->limits);
}

int priors_ceiling(const detect_engine *e, const int caps[WIN_COUNT], int w)
{
    if (w == WIN_5M && e->cfg.hard_cap_5m > 0)
        return e->cfg.hard_cap_5m;
    return (int)(e->cfg.learned_ceiling * caps[w]);
}
