/*
 * actor.c -- what the detector remembers about one account: the patients it
 * touched recently, its sliding windows, its learned limits, its networks,
 * sessions and usual hours.
 *
 * Why it exists: the volume, relationship, enumeration and context signals
 * all ask questions about one actor's recent past ("how many distinct
 * patients in the last 5 minutes, hour, day?  is this network new?").  The
 * answers come from fixed-size structures: a small set-associative table of
 * recently touched patients (a patient counts once per day in the windows),
 * 60 one-minute buckets and 24 one-hour buckets of counters, and a handful of
 * networks and sessions.  The baseline (decayed daily peaks) is learned from
 * the actor's own days; a day that looked anomalous teaches at most the
 * limit it crossed.
 */
#include "detect_internal.h"

#include <math.h>
#include <string.h>

#define MINUTES_PER_DAY (24 * 60)

int role_index(const char *name)
{
    static const char *const names[] = {
        "clinician", "nurse", "admin", "security", "patient", "service" };
    for (int i = 0; name != NULL && i < ROLE_OTHER; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return ROLE_OTHER;
}

static uint16_t add16(uint16_t v, int n)
{
    long s = (long)v + n;
    return (uint16_t)(s > UINT16_MAX ? UINT16_MAX : s);
}

static minute_bucket *minute_at(actor *a, int32_t minute)
{
    minute_bucket *b = &a->minutes[minute % MINUTES];
    if (b->minute != minute) {
        memset(b, 0, sizeof *b);
        b->minute = minute;
    }
    return b;
}

static hour_bucket *hour_at(actor *a, int32_t hour)
{
    hour_bucket *b = &a->hours[hour % HOURS];
    if (b->hour != hour) {
        memset(b, 0, sizeof *b);
        b->hour = hour;
    }
    return b;
}

static uint32_t tag_of(uint64_t h)
{
    return ((uint32_t)(h >> 32) & ~(uint32_t)SEEN_MASK) | 4u;   /* never 0 */
}

/* The slot remembering patient hash h, or a slot to reuse for it (the one
 * counted longest ago); *found says which. */
static recent_patient *recent_slot(actor *a, uint64_t h, int *found)
{
    recent_patient *set = a->recent[(h >> 7) % RECENT_SETS];
    recent_patient *oldest = &set[0];
    uint32_t tag = tag_of(h);
    for (int i = 0; i < RECENT_WAYS; i++) {
        if ((set[i].tag & ~(uint32_t)SEEN_MASK) == tag) {
            *found = 1;
            return &set[i];
        }
        if (set[i].tag == 0 || set[i].minute < oldest->minute)
            oldest = &set[i];
        if (set[i].tag == 0)
            break;
    }
    *found = 0;
    return oldest;
}

/* Today's bitmap of the week, cleared when it held another day. */
static uint8_t *week_today(actor *a, int32_t minute)
{
    int32_t day = minute / MINUTES_PER_DAY;
    int slot = (int)(day % WEEK_DAYS);
    if (a->week_day[slot] != day) {
        memset(a->week_bits[slot], 0, WEEK_BYTES);
        a->week_day[slot] = day;
    }
    return a->week_bits[slot];
}

/* This calendar week's bitmap of the month, cleared when it held another. */
static uint8_t *month_this_week(actor *a, int32_t minute)
{
    int32_t week = minute / MINUTES_PER_DAY / 7;
    int slot = (int)(week % MONTH_WEEKS);
    if (a->month_week[slot] != week) {
        memset(a->month_bits[slot], 0, WEEK_BYTES);
        a->month_week[slot] = week;
    }
    return a->month_bits[slot];
}

static void week_mark(actor *a, uint64_t h, int32_t minute)
{
    unsigned bit = (unsigned)((h >> 17) % (WEEK_BYTES * 8));
    week_today(a, minute)[bit / 8] |= (uint8_t)(1u << (bit % 8));
    month_this_week(a, minute)[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* Count one patient of a granted response. */
static void count_patient(detect_engine *e, actor *a, const detect_event *ev,
                          const detect_patient *p, int32_t minute,
                          minute_bucket *mb, hour_bucket *hb, touch_result *t)
{
    uint64_t h = detect_hash(e->cfg.hash_seed, p->id);
    int found;
    recent_patient *r = recent_slot(a, h, &found);
    if (!found || minute - r->minute >= MINUTES_PER_DAY) {
        r->tag = tag_of(h);
        r->minute = minute;
        mb->patients = add16(mb->patients, 1);
        hb->patients++;
        t->new_patients++;
        if (!actor_care_giver(a))
            week_mark(a, h, minute);
    }
    int unexplained = (p->flags & DETECT_PAT_BTG) ||
                      !(p->flags & DETECT_PAT_EXPLAINED);
    if (a->role != ROLE_PATIENT && unexplained &&
        !(r->tag & SEEN_RELATION)) {
        r->tag |= SEEN_RELATION;
        mb->relation = add16(mb->relation, 1);
        hb->relation++;
        t->new_unexplained++;
        if (actor_care_giver(a))
            week_mark(a, h, minute);
    }
    if (ev->action && strcmp(ev->action, "fhir.everything") == 0 &&
        !(r->tag & SEEN_EVERYTHING)) {
        r->tag |= SEEN_EVERYTHING;
        mb->everything = add16(mb->everything, 1);
    }
    if ((p->flags & DETECT_PAT_VIP) && unexplained) {
        t->vips_unexplained++;
        t->vip_id = p->id;
    }
    if (p->flags & DETECT_PAT_SAME_FAMILY) {
        if (unexplained)
            t->same_family++;
        else
            t->same_family_explained++;
    }
    if ((p->flags & DETECT_PAT_OWN_RECORD) && a->role != ROLE_PATIENT)
        t->own_record++;
}

/* Every patient of ev explained by the actor's care (none by
 * break-the-glass); an event about no patient is not a listing of them. */
static int all_explained(const detect_event *ev)
{
    size_t n = 0;
    for (size_t i = 0; i < ev->n_patients; i++) {
        unsigned f = ev->patients[i].flags;
        if (ev->patients[i].id == NULL || ev->patients[i].id[0] == '\0')
            continue;
        if ((f & DETECT_PAT_BTG) || !(f & DETECT_PAT_EXPLAINED))
            return 0;
        n++;
    }
    return n > 0;
}

static int starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

void actor_count_event(detect_engine *e, actor *a, const detect_event *ev,
                       int64_t now_us, touch_result *t)
{
    memset(t, 0, sizeof *t);
    int32_t minute = (int32_t)(now_us / US_PER_MIN);
    minute_bucket *mb = minute_at(a, minute);
    hour_bucket *hb = hour_at(a, minute / 60);
    const char *act = ev->action;
    int fhir = starts_with(act, "fhir.");
    if (fhir && ev->outcome != DETECT_GRANTED && ev->outcome != DETECT_FAILED)
        mb->denials = add16(mb->denials, 1);
    /* A care giver listing its own patients (a census, a ward list, their
     * pages) probes nothing: the policy answered only what its care
     * explains.  Its searches count when a page holds anyone else. */
    int own_listing = actor_care_giver(a) && ev->outcome == DETECT_GRANTED &&
                      all_explained(ev);
    if (fhir && strcmp(act, "fhir.search") == 0 && !own_listing) {
        mb->searches = add16(mb->searches, 1);
        if (ev->flags & DETECT_EV_BROAD_SEARCH)
            mb->broad = add16(mb->broad, 1);
    }
    if (ev->page_size >= e->cfg.max_page && !own_listing)
        mb->big_pages = add16(mb->big_pages, 1);
    /* one failure per attempt: a wrong second factor is a failed login too */
    if ((starts_with(act, "auth.login") && ev->outcome == DETECT_FAILED) ||
        strcmp(act, "auth.login.second-factor-wrong") == 0)
        mb->auth_failures = add16(mb->auth_failures, 1);
    for (size_t i = 0; i < ev->n_patients; i++) {
        const detect_patient *p = &ev->patients[i];
        if (p->id == NULL || p->id[0] == '\0')
            continue;
        if (p->flags & DETECT_PAT_DECOY) {    /* any touch, any outcome */
            t->decoys++;
            t->decoy_id = p->id;
        }
        if (ev->outcome == DETECT_GRANTED && !(ev->flags & DETECT_EV_WRITE))
            count_patient(e, a, ev, p, minute, mb, hb, t);
    }
}

void actor_forget_withheld(detect_engine *e, actor *a, const detect_event *ev,
                           int64_t now_us)
{
    int32_t minute = (int32_t)(now_us / US_PER_MIN);
    for (size_t i = 0; i < ev->n_patients; i++) {
        const detect_patient *p = &ev->patients[i];
        if (p->id == NULL || p->id[0] == '\0')
            continue;
        int found;
        recent_patient *r = recent_slot(a, detect_hash(e->cfg.hash_seed, p->id), &found);
        if (found && r->minute == minute) {
            r->minute = INT32_MIN / 2;    /* counts again when asked again */
            r->tag &= ~(uint32_t)SEEN_MASK;
        }
    }
}

/* A care giver's explained patients are its work: the policy let it reach
 * them only through its care teams and stays.  Its volume is held to the
 * limits on the patients no relationship explains; the others are
 * reviewed (rules.c), never refused: a guard that blocks the ward gets
 * switched off. */
int actor_care_giver(const actor *a)
{
    return a->role == ROLE_CLINICIAN || a->role == ROLE_NURSE;
}

/* Distinct patients marked in the last WEEK_DAYS days: the union of the
 * days' bitmaps, by linear counting (n = -m ln(zero bits / m)). */
/* Linear counting over the union of some bitmaps. */
static int union_count(const uint8_t all[WEEK_BYTES])
{
    int zero = 0;
    for (int i = 0; i < WEEK_BYTES; i++)
        zero += 8 - __builtin_popcount(all[i]);
    double m = WEEK_BYTES * 8.0;
    return (int)lround(-m * log((zero > 0 ? zero : 0.5) / m));
}

int actor_week(const actor *a, int64_t now_us)
{
    int32_t today = (int32_t)(now_us / US_PER_MIN) / MINUTES_PER_DAY;
    uint8_t all[WEEK_BYTES] = {0};
    for (int d = 0; d < WEEK_DAYS; d++)
        if (a->week_day[d] != 0 && today - a->week_day[d] < WEEK_DAYS &&
            today >= a->week_day[d])
            for (int i = 0; i < WEEK_BYTES; i++)
                all[i] |= a->week_bits[d][i];
    return union_count(all);
}

int actor_month(const actor *a, int64_t now_us)
{
    int32_t week = (int32_t)(now_us / US_PER_MIN) / MINUTES_PER_DAY / 7;
    uint8_t all[WEEK_BYTES] = {0};
    for (int w = 0; w < MONTH_WEEKS; w++)
        if (a->month_week[w] != 0 && week - a->month_week[w] < MONTH_WEEKS &&
            week >= a->month_week[w])
            for (int i = 0; i < WEEK_BYTES; i++)
                all[i] |= a->month_bits[w][i];
    return union_count(all);
}

int actor_month_limit(const detect_engine *e, const actor *a)
{
    return 3 * actor_week_limit(e, a);
}

void actor_sums(const actor *a, int64_t now_us, window_sums *s)
{
    memset(s, 0, sizeof *s);
    int relation_5m = 0;
    int32_t now_min = (int32_t)(now_us / US_PER_MIN);
    for (int i = 0; i < MINUTES; i++) {
        const minute_bucket *b = &a->minutes[i];
        int32_t age = now_min - b->minute;
        if (b->minute == 0 || age < 0 || age >= MINUTES)
            continue;
        s->patients[WIN_1H] += b->patients;
        s->relation_1h += b->relation;
        s->everything_1h += b->everything;
        if (age < 15)
            s->auth_failures_15m += b->auth_failures;
        if (age < 5) {
            s->patients[WIN_5M] += b->patients;
            relation_5m += b->relation;
            s->denials_5m += b->denials;
            s->searches_5m += b->searches;
            s->broad_5m += b->broad;
            s->big_pages_5m += b->big_pages;
        }
    }
    int32_t now_hour = now_min / 60;
    for (int i = 0; i < HOURS; i++) {
        const hour_bucket *b = &a->hours[i];
        int32_t age = now_hour - b->hour;
        if (b->hour == 0 || age < 0 || age >= HOURS)
            continue;
        s->patients[WIN_24H] += (int)b->patients;
        s->relation_24h += (int)b->relation;
        s->off_hours_24h += (int)b->off_hours;
    }
    memcpy(s->seen, s->patients, sizeof s->seen);
    if (actor_care_giver(a)) {
        s->patients[WIN_5M] = relation_5m;
        s->patients[WIN_1H] = s->relation_1h;
        s->patients[WIN_24H] = s->relation_24h;
    }
}

/* ---- Declarations ------------------------------------------------------------ */

const account_cfg *actor_cfg(detect_engine *e, actor *a)
{
    if (a->cfg_gen != e->cfg_gen) {
        a->cfg_slot = -1;
        for (size_t i = 0; i < e->cfg.max_declarations; i++)
            if (e->accounts[i].used &&
                strcmp(e->accounts[i].actor, a->h.key) == 0) {
                a->cfg_slot = (int32_t)i;
                break;
            }
        a->cfg_gen = e->cfg_gen;
    }
    return a->cfg_slot < 0 ? NULL : &e->accounts[a->cfg_slot];
}

static int64_t declared_volume(detect_engine *e, actor *a, int64_t now_us)
{
    const account_cfg *c = actor_cfg(e, a);
    if (c == NULL || c->expected_per_day <= 0 || now_us >= c->until_us)
        return 0;
    return c->expected_per_day;
}

/* ---- Limits and baseline ---------------------------------------------------- */

int actor_has_baseline(const detect_engine *e, const actor *a)
{
    return a->active_days >= e->cfg.baseline_days;
}


/* The role's limit for window w: mean + 3 sd of its actors' daily maxima,
 * or 0 while the role has learned too little. */
static int role_limit(const detect_engine *e, int role, int w)
{
    if (e->role_days[role] < 5)
        return 0;
    double m = e->role_peak[role][w], v = e->role_peak_var[role][w];
    return (int)ceil(m + 3.0 * sqrt(v > 0 ? v : 0) + 2.0);
}

/* The most a learned limit may reach without a declaration: the 5-minute
 * hard cap, and learned_ceiling times a new actor's hour and day.  A thief
 * who ratchets a stolen account up a little more each day meets it. */

/* The week's reach without a declaration: 1.5 x a new actor's day until the
 * actor has a baseline (a new account reading a new actor's daily limit
 * every day is stopped on its second day), then seven of its usual days
 * with the margin, never above learned_ceiling x a new actor's day x 7.
 * (The estimate tops out near 3,200 patients: 512 bits a day.) */
int actor_week_limit(const detect_engine *e, const actor *a)
{
    int caps[WIN_COUNT];
    priors_caps(e, a->role, a->dept, caps);
    int floor = (int)ceil(1.5 * caps[WIN_24H]);
    if (!actor_has_baseline(e, a))
        return floor;
    int own = (int)ceil(7.0 * a->usual_day * e->cfg.volume_margin + 2.0);
    int ceiling = (int)(e->cfg.learned_ceiling * 7 * caps[WIN_24H]);
    return own < floor ? floor : own > ceiling ? ceiling : own;
}

static void limits_for(const detect_engine *e, const actor *a,
                       int64_t declared, int limits[WIN_COUNT])
{
    int caps[WIN_COUNT];
    priors_caps(e, a->role, a->dept, caps);
    for (int w = 0; w < WIN_COUNT; w++) {
        int rl = role_limit(e, a->role, w);
        int role_based = rl == 0 ? caps[w] : rl < caps[w] / 2 ? caps[w] / 2
                       : rl > caps[w] ? caps[w] : rl;
        int baseline = actor_has_baseline(e, a);
        if (declared > 0 && (w == WIN_24H || !baseline)) {
            /* The declared daily volume; in the short windows too until the
             * actor's own rhythm is learned (an export comes in one go). */
            limits[w] = declared > INT32_MAX ? INT32_MAX : (int)declared;
        } else if (baseline) {
            int own = (int)ceil(a->peak[w] * e->cfg.volume_margin + 2.0);
            int floor = caps[w] / 3;
            limits[w] = own > floor ? own : floor;
            if (limits[w] < role_based)
                limits[w] = role_based;
            int ceiling = priors_ceiling(e, caps, w);
            if (declared == 0 && limits[w] > ceiling)
                limits[w] = ceiling;      /* a baseline never drifts up unbounded;
                                             a declared export's is its own */
        } else {
            limits[w] = role_based;
        }
    }
}

void actor_limits(detect_engine *e, actor *a, int64_t now_us,
                  int limits[WIN_COUNT], int64_t *declared)
{
    *declared = declared_volume(e, a, now_us);
    limits_for(e, a, *declared, limits);
}

static void learn_role_peak(detect_engine *e, int role, int w, double x)
{
    double alpha = e->role_days[role] < 20 ? 1.0 / (e->role_days[role] + 1) : 0.05;
    double d = x - e->role_peak[role][w];
    e->role_peak[role][w] += (float)(alpha * d);
    e->role_peak_var[role][w] =
        (float)((1.0 - alpha) * (e->role_peak_var[role][w] + alpha * d * d));
}

/* A learned maximum after a day that reached x: the first day sets it;
 * after that it grows by at most GROWTH_PER_DAY (and 2) a day, however
 * high the day went, and decays slowly when days are quieter: growth takes
 * time and steady days, not one push. */
#define GROWTH_PER_DAY 1.25f

static float grown(const actor *a, float was, float x, float decayed)
{
    if (a->active_days == 0)
        return x;
    float most = was * GROWTH_PER_DAY + 2.0f;
    float next = x < most ? x : most;
    return next > decayed ? next : decayed;
}

/* Close the actor's previous day: its maxima (never above the limits they
 * were held to) teach its peaks, its role's and its usual daily volume. */
static void close_day(detect_engine *e, actor *a, int64_t now_us)
{
    int limits[WIN_COUNT];
    limits_for(e, a, declared_volume(e, a, now_us), limits);
    for (int w = 0; w < WIN_COUNT; w++) {
        float x = a->day_max[w];
        if (x > limits[w])
            x = (float)limits[w];
        float decayed = a->peak[w] * 0.97f;
        a->peak[w] = grown(a, a->peak[w], x, decayed);
        learn_role_peak(e, a->role, w, x);
    }
    float day = a->day_max[WIN_24H];
    a->usual_day = a->active_days == 0 ? day : 0.8f * a->usual_day + 0.2f * day;
    float *rs = &e->role_seen[a->role];
    *rs = *rs == 0 ? a->day_seen : 0.95f * *rs + 0.05f * a->day_seen;
    if (a->active_days < UINT16_MAX)
        a->active_days++;
    e->role_days[a->role]++;
}

void actor_roll_day(detect_engine *e, actor *a, int64_t now_us)
{
    int32_t day = (int32_t)((now_us + e->cfg.utc_offset_min * US_PER_MIN) / US_PER_DAY);
    if (day == a->day)
        return;
    if (a->day != 0 && (a->day_max[WIN_24H] > 0 || a->day_active))
        close_day(e, a, now_us);
    memset(a->day_max, 0, sizeof a->day_max);
    a->day_seen = 0;
    a->day_active = 0;
    a->day = day;
}

void actor_learn_day_max(actor *a, const window_sums *s,
                         const int limits[WIN_COUNT])
{
    if (s->seen[WIN_24H] > 0)
        a->day_active = 1;
    if (s->seen[WIN_24H] > a->day_seen)
        a->day_seen = (float)s->seen[WIN_24H];
    for (int w = 0; w < WIN_COUNT; w++) {
        float x = (float)s->patients[w];
        if (x > limits[w])
            x = (float)limits[w];
        if (x > a->day_max[w])
            a->day_max[w] = x;
    }
}

/* ---- Context ----------------------------------------------------------------- */

/* The actor's slot for a network; when absent, a new slot (replacing the
 * least recently used) if record, else NULL. */
static actor_net *net_slot(actor *a, uint64_t net, int64_t now_us, int record)
{
    actor_net *oldest = &a->nets[0];
    for (int i = 0; i < ACTOR_NETS; i++) {
        if (a->nets[i].net == net)
            return &a->nets[i];
        if (a->nets[i].last_seen_us < oldest->last_seen_us)
            oldest = &a->nets[i];
    }
    if (!record)
        return NULL;
    oldest->net = net;
    oldest->first_seen_us = now_us;
    return oldest;
}

static int live_session_networks(actor *a, const detect_event *ev,
                                 uint64_t net, int64_t now_us, int64_t window)
{
    uint64_t s = detect_hash(0x5e55, ev->session);
    actor_session *slot = NULL, *oldest = &a->sessions[0];
    for (int i = 0; i < ACTOR_SESSIONS; i++) {
        if (a->sessions[i].session == s)
            slot = &a->sessions[i];
        if (a->sessions[i].last_seen_us < oldest->last_seen_us)
            oldest = &a->sessions[i];
    }
    int moved = slot != NULL && slot->net != net &&
                now_us - slot->last_seen_us < window;
    if (slot == NULL)
        slot = oldest;
    slot->session = s;
    slot->net = net;
    slot->last_seen_us = now_us;
    uint64_t seen[ACTOR_SESSIONS];
    int n = 0;
    for (int i = 0; i < ACTOR_SESSIONS; i++) {
        const actor_session *x = &a->sessions[i];
        if (x->session == 0 || now_us - x->last_seen_us > window)
            continue;
        int dup = 0;
        for (int j = 0; j < n; j++)
            dup |= seen[j] == x->net;
        if (!dup)
            seen[n++] = x->net;
    }
    return moved && n < 2 ? 2 : n;   /* one session, two places at once */
}

static int local_hour(const detect_engine *e, int64_t now_us)
{
    int64_t t = now_us + e->cfg.utc_offset_min * US_PER_MIN;
    return (int)((t / US_PER_HOUR) % 24);
}

/* Off-hours: an hour of the day (and its neighbours) in which this actor,
 * with enough history, has almost never worked. */
static int off_hours(const detect_engine *e, actor *a, int64_t now_us,
                     int record)
{
    uint32_t total = 0;
    for (int i = 0; i < 24; i++)
        total += a->hour_profile[i];
    int h = local_hour(e, now_us);
    int unusual = actor_has_baseline(e, a) && total >= 60 &&
        a->hour_profile[h] * 100u < total &&
        a->hour_profile[(h + 23) % 24] * 50u < total &&
        a->hour_profile[(h + 1) % 24] * 50u < total;
    int64_t bucket = now_us / MODEL_BUCKET_US;
    if (record && bucket != a->profile_bucket) {
        a->profile_bucket = bucket;
        if (a->hour_profile[h] == UINT16_MAX)
            for (int i = 0; i < 24; i++)
                a->hour_profile[i] /= 2;
        a->hour_profile[h]++;
    }
    return unusual;
}

void actor_note_off_hours(const detect_engine *e, actor *a, int64_t now_us, int n,
                          int unusual)
{
    if (n <= 0)
        return;
    uint32_t profile = 0;
    for (int i = 0; i < 24; i++)
        profile += a->hour_profile[i];
    int known_hours = actor_has_baseline(e, a) && profile >= 60;   /* as off_hours() */
    if (unusual || (!known_hours && local_hour(e, now_us) < 6))
        hour_at(a, (int32_t)(now_us / US_PER_MIN) / 60)->off_hours += (uint32_t)n;
}

void actor_context(detect_engine *e, actor *a, const detect_event *ev,
                   int64_t now_us, context_facts *c)
{
    memset(c, 0, sizeof *c);
    uint64_t net = net_of(e->cfg.hash_seed, ev->source);
    /* Only granted events teach networks: failed logins from an attacker's
     * address must not make it familiar. */
    int record = ev->outcome == DETECT_GRANTED, unfamiliar = 0;
    if (net != 0)
        c->unfamiliar = !net_familiar(e, net, a->h.hash, now_us, record);
    if (net != 0) {
        actor_net *n = net_slot(a, net, now_us, record);
        if (n == NULL) {
            c->new_network = actor_has_baseline(e, a);
            unfamiliar = 1;
        } else {
            n->last_seen_us = now_us;
            c->new_network = actor_has_baseline(e, a) &&
                n->first_seen_us - a->first_seen_us > US_PER_DAY &&
                now_us - n->first_seen_us < US_PER_HOUR;
            unfamiliar = now_us - n->first_seen_us < US_PER_DAY;
        }
    }
    /* Sessions live from several networks matter when one of them is not
     * an established network of the account (a ward PC and another ward's
     * are both familiar; an attacker's address is not). */
    if (record && ev->session != NULL && ev->session[0] != '\0') {
        int n = live_session_networks(a, ev, net, now_us,
                                      (int64_t)e->cfg.concurrent_window_s * US_PER_S);
        if (unfamiliar)
            c->concurrent_networks = n;
    }
    c->off_hours = off_hours(e, a, now_us, record);
    const account_cfg *cfg = actor_cfg(e, a);
    if (cfg != NULL && cfg->n_nets > 0 && ev->source != NULL)
        c->outside_networks = !cidr_match(cfg->nets, cfg->n_nets, ev->source);
}

void actor_forget_windows(actor *a)
{
    memset(a->recent, 0, sizeof a->recent);
    memset(a->minutes, 0, sizeof a->minutes);
    memset(a->hours, 0, sizeof a->hours);
    memset(a->sessions, 0, sizeof a->sessions);
    a->model.count = 0;
    a->model.cusum = 0;
    a->contained = 0;
    a->throttled_until_us = 0;
    a->throttles = 0;
    a->step_up_required_us = 0;
    a->step_up_refusals = 0;
    a->factor_wrong_run = 0;
    a->alert_level = DETECT_NONE;
    a->alert_detectors = 0;
}
