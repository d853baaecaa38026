/*
 * hospital.c -- break-the-glass across the hospital: how many patients
 * every account together reached without a care relationship, in the last
 * hour and day, against what this hospital usually sees.
 *
 * Why it exists: each account is held to its own limits (a few unexplained
 * patients an hour, five a day alerts), so a thief holding eight stolen
 * accounts, each one used from its own address and kept under its limits,
 * reads eight times as much and no single account looks wrong.  The
 * hospital as a whole sees it: its unexplained reads rise far above their
 * usual hourly and daily peaks.  While they are above (a "wave"), every
 * account that adds one more unexplained patient is asked to step up, held
 * back at its second of the day and contained at its third
 * (rules.c), so the wave costs each stolen account one patient at most.
 * Explained work (a ward, a census, an emergency on its Encounter) never
 * counts: a busy hospital is not a wave; nor does an account once at its
 * own hour's or day's alert (btg_alert_1h, btg_alert_24h): its own rules
 * stop it, and one runaway account must not put every clinician's
 * emergencies under a wave.
 *
 * Learning: at each day's end the day's largest hour and its total update
 * the usual peaks (a slow decay down, growth capped at 25% + 2 a day, so a
 * thief cannot ratchet the hospital's peak up quickly either).  Limits are
 * the peaks x volume_margin + 2, never below the configured floors, which
 * grow with the accounts the engine knows (a 3,000-staff hospital's first
 * day is not a 60-staff clinic's).  Like
 * the rest of detect/, it learns from the replayed trail too.
 */
#include "detect_internal.h"

#include <math.h>
#include <string.h>

#define PEAK_DECAY 0.97f
#define PEAK_GROWTH 1.25f

/* Learn from the day that just ended (the buckets still hold it). */
static void learn_day(detect_engine *e, int32_t ended_day)
{
    hospital_state *h = &e->hospital;
    uint32_t max_hour = 0, total = 0;
    for (int i = 0; i < HOSPITAL_HOURS; i++)
        if (h->hour[i] / 24 == ended_day) {
            total += h->count[i];
            if (h->count[i] > max_hour)
                max_hour = h->count[i];
        }
    float *peak[2] = { &h->peak_1h, &h->peak_24h };
    float seen[2] = { (float)max_hour, (float)total };
    for (int k = 0; k < 2; k++) {
        float grown = *peak[k] * PEAK_GROWTH + 2.0f;
        float next = seen[k] < grown ? seen[k] : grown;
        float kept = *peak[k] * PEAK_DECAY;
        *peak[k] = next > kept ? next : kept;
    }
    h->days++;
}

static void roll(detect_engine *e, int32_t hour)
{
    hospital_state *h = &e->hospital;
    int32_t day = hour / 24;
    if (h->day != 0 && day > h->day)
        learn_day(e, h->day);
    if (day > h->day)
        h->day = day;
    int slot = hour % HOSPITAL_HOURS;
    if (h->hour[slot] != hour) {
        h->hour[slot] = hour;
        h->count[slot] = 0;
    }
}

static int limit_of(const detect_config *c, float peak, int floor)
{
    int own = (int)ceil(peak * c->volume_margin + 2.0);
    return own > floor ? own : floor;
}

void hospital_count(detect_engine *e, int64_t now_us, int unexplained,
                    hospital_facts *out)
{
    hospital_state *h = &e->hospital;
    int32_t hour = (int32_t)(now_us / US_PER_HOUR);
    if (hour < h->latest_hour)
        hour = h->latest_hour;      /* a late event counts in the current hour */
    h->latest_hour = hour;
    roll(e, hour);
    h->count[hour % HOSPITAL_HOURS] += (uint32_t)(unexplained > 0 ? unexplained : 0);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < HOSPITAL_HOURS; i++) {
        int32_t age = hour - h->hour[i];
        if (h->hour[i] == 0 || age < 0 || age >= HOSPITAL_HOURS)
            continue;
        out->unexplained_24h += (int)h->count[i];
        if (age == 0)
            out->unexplained_1h += (int)h->count[i];
    }
    /* A bigger hospital breaks the glass more often: the floors grow with
     * the accounts seen (one a day per ten, one an hour per forty) until
     * its own peaks are learned. */
    int people = (int)(e->actors.used > INT32_MAX ? INT32_MAX : e->actors.used);
    int floor_1h = e->cfg.hospital_btg_1h, floor_24h = e->cfg.hospital_btg_24h;
    if (floor_1h < people / 40)
        floor_1h = people / 40;
    if (floor_24h < people / 10)
        floor_24h = people / 10;
    out->limit_1h = limit_of(&e->cfg, h->peak_1h, floor_1h);
    out->limit_24h = limit_of(&e->cfg, h->peak_24h, floor_24h);
    out->wave = (e->cfg.hospital_btg_1h > 0 && out->unexplained_1h > out->limit_1h) ||
                (e->cfg.hospital_btg_24h > 0 && out->unexplained_24h > out->limit_24h);
}
