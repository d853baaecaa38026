/*
 * declare.c -- per-account settings the detector is told about: declared
 * bulk access and the source networks of service accounts.
 *
 * Why it exists: legitimate bulk access exists (a new integration's first
 * synchronisation, the nightly data-warehouse export).  Issue 5: it is
 * declared up front and approved by a second person with the security role,
 * never silently allowed, and still watched.  The approval itself is checked
 * by the caller; detect/ records who approved (it appears in the evidence)
 * and replaces the actor's volume limits by the declared volume until the
 * declaration expires.  These settings live in their own small table, never
 * evicted with the actor state; actors cache their slot and re-resolve it
 * when the table changes (cfg_gen).
 */
#include "detect_internal.h"

#include <string.h>

static account_cfg *find_cfg(detect_engine *e, const char *actor_id)
{
    for (size_t i = 0; i < e->cfg.max_declarations; i++)
        if (e->accounts[i].used && strcmp(e->accounts[i].actor, actor_id) == 0)
            return &e->accounts[i];
    return NULL;
}

/* A slot that holds nothing useful any more: unused, or an expired
 * declaration without networks. */
static account_cfg *free_cfg(detect_engine *e, int64_t now_us)
{
    for (size_t i = 0; i < e->cfg.max_declarations; i++) {
        account_cfg *c = &e->accounts[i];
        if (!c->used || (c->n_nets == 0 &&
                         (c->expected_per_day == 0 || c->until_us <= now_us)))
            return c;
    }
    return NULL;
}

static void copy_text(char dst[DETECT_ID_MAX], const char *src)
{
    size_t n = strlen(src);
    if (n > DETECT_ID_MAX - 1)
        n = DETECT_ID_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The actor's settings, made when absent; NULL when the table is full. */
static account_cfg *cfg_for(detect_engine *e, const char *actor_id, int64_t now_us)
{
    account_cfg *c = find_cfg(e, actor_id);
    if (c != NULL)
        return c;
    c = free_cfg(e, now_us);
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof *c);
    c->used = 1;
    copy_text(c->actor, actor_id);
    return c;
}

static void changed(detect_engine *e)
{
    e->cfg_gen++;
    if (e->cfg_gen == 0)
        e->cfg_gen = 1;
}

int detect_declare_bulk(detect_engine *e, const char *actor_id,
                        int64_t expected_patients_per_day, int64_t until_us,
                        const char *approved_by, mv_err *err)
{
    if (actor_id == NULL || actor_id[0] == '\0' || approved_by == NULL ||
        approved_by[0] == '\0' || expected_patients_per_day <= 0 || until_us <= 0)
        return mv_fail(err, MV_E_INVALID,
                       "detect: a declaration needs an actor, a volume, an end "
                       "and who approved it");
    if (strcmp(actor_id, approved_by) == 0)
        return mv_fail(err, MV_E_INVALID,
                       "detect: a declaration is approved by a second person");
    pthread_mutex_lock(&e->mu);
    account_cfg *c = cfg_for(e, actor_id, e->latest_us);
    if (c != NULL) {
        c->expected_per_day = expected_patients_per_day;
        c->until_us = until_us;
        copy_text(c->approved_by, approved_by);
        changed(e);
    }
    pthread_mutex_unlock(&e->mu);
    if (c == NULL)
        return mv_fail(err, MV_E_INVALID, "detect: too many declarations (%zu)",
                       e->cfg.max_declarations);
    return 0;
}

void detect_withdraw_bulk(detect_engine *e, const char *actor_id)
{
    if (actor_id == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    account_cfg *c = find_cfg(e, actor_id);
    if (c != NULL) {
        c->expected_per_day = 0;
        c->until_us = 0;
        c->approved_by[0] = '\0';
        if (c->n_nets == 0)
            c->used = 0;
        changed(e);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Parse a list of CIDRs separated by spaces or commas. */
static int parse_networks(const char *text, cidr out[MAX_NETS], int *n,
                          mv_err *err)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " ,\t");
        char one[64];
        if (len >= sizeof one || *n >= MAX_NETS)
            return mv_fail(err, MV_E_INVALID,
                           "detect: at most %d networks of at most 63 characters",
                           MAX_NETS);
        memcpy(one, p, len);
        one[len] = '\0';
        if (cidr_parse(one, &out[*n]) != 0)
            return mv_fail(err, MV_E_INVALID, "detect: '%s' is not a network", one);
        (*n)++;
        p += len;
    }
    return 0;
}

int detect_set_networks(detect_engine *e, const char *actor_id,
                        const char *cidrs, mv_err *err)
{
    if (actor_id == NULL || actor_id[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "detect: networks need an actor");
    cidr nets[MAX_NETS];
    int n = 0;
    if (cidrs != NULL && parse_networks(cidrs, nets, &n, err) != 0)
        return -1;
    pthread_mutex_lock(&e->mu);
    account_cfg *c = n > 0 ? cfg_for(e, actor_id, e->latest_us)
                           : find_cfg(e, actor_id);
    if (c != NULL) {
        memcpy(c->nets, nets, sizeof nets);
        c->n_nets = n;
        if (n == 0 && c->expected_per_day == 0)
            c->used = 0;
        changed(e);
    }
    pthread_mutex_unlock(&e->mu);
    if (c == NULL && n > 0)
        return mv_fail(err, MV_E_INVALID, "detect: too many account settings (%zu)",
                       e->cfg.max_declarations);
    return 0;
}
