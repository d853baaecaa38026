/*
 * review.c -- the daily review: every account ranked by how far its last 24
 * hours stand from its role's usual, explained work included.
 *
 * Why it exists: a care giver's own patients never raise more than an alert
 * for review (a guard that blocks the ward gets switched off), so a stolen
 * clinician session that pages through all 261 patients in its care over
 * two days, a few an hour and at night, is never refused.  It should still
 * stand out when a security officer reads the day: far more patients than
 * its role usually reaches, many of them in the small hours or outside the
 * account's own hours, some without any relationship.  detect_review()
 * orders the accounts by that, with the reasons in words; the server serves
 * it at GET /api/review.  It decides nothing.
 */
#include "detect_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[ROLE_COUNT] = {
    "clinician", "nurse", "admin", "security", "patient", "service", "other" };

/* The role's usual daily reach, never below 10 (a new hospital's). */
static double usual_reach(const detect_engine *e, int role)
{
    double r = e->role_seen[role];
    return r < 10 ? 10 : r;
}

static void explain(detect_review_row *row, double usual)
{
    snprintf(row->explanation, sizeof row->explanation,
             "reached %d distinct patients in 24 hours, %.1f times its role's usual %.0f; "
             "%d of them off its hours (or between midnight and 6); %d without care "
             "relationship; about %d in 7 days%s",
             row->patients_24h, row->patients_24h / usual, usual, row->off_hours_24h,
             row->unexplained_24h, row->week,
             row->declared ? " (under an approved bulk declaration)" : "");
}

static void score_row(const detect_engine *e, const actor *a, int64_t now_us,
                      detect_review_row *row)
{
    window_sums s;
    actor_sums(a, now_us, &s);
    memset(row, 0, sizeof *row);
    snprintf(row->actor, sizeof row->actor, "%s", a->h.key);
    snprintf(row->role, sizeof row->role, "%s", role_names[a->role]);
    row->patients_24h = s.seen[WIN_24H];
    row->unexplained_24h = s.relation_24h;
    row->off_hours_24h = s.off_hours_24h;
    row->week = actor_week(a, now_us);
    row->declared = a->cfg_slot >= 0 && e->accounts[a->cfg_slot].expected_per_day > 0 &&
                    e->accounts[a->cfg_slot].until_us > now_us;
    double usual = usual_reach(e, a->role);
    double times = row->patients_24h / usual;
    double night = row->patients_24h > 0 ? (double)row->off_hours_24h / row->patients_24h : 0;
    /* how far beyond its role, more so at night; every unexplained
     * patient adds; a declared reader is what it declared */
    row->score = times * (1 + 2 * night) + 0.5 * row->unexplained_24h;
    if (row->declared)
        row->score /= 10;
    explain(row, usual);
}

static int by_score(const void *x, const void *y)
{
    const detect_review_row *a = x, *b = y;
    if (a->score != b->score)
        return a->score < b->score ? 1 : -1;
    return strcmp(a->actor, b->actor);
}

size_t detect_review(detect_engine *e, int64_t now_us, detect_review_row *rows,
                     size_t max)
{
    /* Every account's row under the lock (a few microseconds each), the
     * sorting outside it. */
    size_t cap = e->actors.cap, n = 0;
    detect_review_row *all = malloc(cap * sizeof *all);
    if (all == NULL)
        return 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < cap; i++) {
        const actor *a = (const actor *)(e->actors.entries + i * e->actors.stride);
        if (!a->h.used || strncmp(a->h.key, "lineage:", 8) == 0)
            continue;
        score_row(e, a, now_us, &all[n]);
        if (all[n].patients_24h > 0)
            n++;
    }
    pthread_mutex_unlock(&e->mu);
    qsort(all, n, sizeof *all, by_score);
    if (n > max)
        n = max;
    memcpy(rows, all, n * sizeof *rows);
    free(all);
    return n;
}
