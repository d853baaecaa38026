/*
 * model.c -- the learned model beside the rules: an online, unsupervised
 * baseline of how many new distinct patients an actor touches per 10-minute
 * bucket, with a CUSUM on the standardised excess.
 *
 * Why it exists: rules compare windows with limits, and an attacker who
 * reads just above an account's usual rate stays under every limit.  A CUSUM
 * accumulates small, persistent excesses (Page 1954): each closed bucket adds
 * z - k (z = (count - mean) / sd, the sum floored at 0), and a sum beyond h
 * is very unlikely under the learned behaviour.  Means and variances are
 * exponentially weighted (they follow slow, legitimate drift), kept per hour
 * of the day for weekdays and weekends (a laboratory feed's morning peak is
 * not an excess), learn from counts capped at mean + 3 sd (an attack teaches
 * the model little), and come from the actor's role while the actor is new
 * (the role's estimate then adds at most a few points: actors of one role
 * differ).
 *
 * Buckets are "active" buckets: up to MAX_ZERO_GAP empty buckets between two
 * events count as zeros; a longer gap is time off duty and is skipped.
 */
#include "detect_internal.h"

#include <math.h>

#define MODEL_MIN_N   36      /* buckets (six active hours) before an estimate */
#define SLOT_MIN_N    12      /* buckets of one hour slot (two days)           */
#define MODEL_ALPHA   0.02    /* EWMA weight once warmed up, all hours         */
#define SLOT_ALPHA    0.05    /* ... per hour slot                             */
#define MAX_ZERO_GAP  6       /* empty buckets that still count as activity    */

static int slot_of(int64_t bucket, const model_params *p)
{
    int64_t t = bucket * MODEL_BUCKET_US + p->utc_offset_us;
    int64_t day = t / US_PER_DAY;
    int hour = (int)((t / US_PER_HOUR) % 24);
    int dow = (int)((day + 4) % 7);            /* 1970-01-01 was a Thursday */
    int weekend = dow == 0 || dow == 6;
    return weekend * 24 + hour;
}

static void finish(double mean, double var, double *out_mean, double *sd)
{
    if (var < mean)
        var = mean;           /* at least Poisson dispersion */
    if (var < 1.0)
        var = 1.0;
    *out_mean = mean;
    *sd = sqrt(var);
}

/* The mean and sd to compare a bucket of this hour slot with: the actor's
 * own (1), else its role's (2: a new actor), else none (0). */
static int estimate(const model_state *m, const model_state *role, int slot,
                    double *mean, double *sd)
{
    if (m->slot[slot].n >= SLOT_MIN_N) {
        finish(m->slot[slot].mean, m->slot[slot].var, mean, sd);
        return 1;
    }
    if (m->n < MODEL_MIN_N && role != NULL && role->slot[slot].n >= SLOT_MIN_N) {
        finish(role->slot[slot].mean, role->slot[slot].var, mean, sd);
        return 2;
    }
    return 0;
}

static void ewma(float *mean, float *var, uint32_t n, double min_alpha, double x)
{
    double alpha = 1.0 / (n + 1);
    if (alpha < min_alpha)
        alpha = min_alpha;
    if (n >= 10) {
        double v = *var > *mean ? *var : *mean;
        v = v > 1.0 ? v : 1.0;
        double cap = *mean + 3.0 * sqrt(v);
        if (x > cap)
            x = cap;          /* winsorised: one burst does not move it far */
    }
    double d = x - *mean;
    *mean += (float)(alpha * d);
    *var = (float)((1.0 - alpha) * (*var + alpha * d * d));
}

static void learn(model_state *m, int slot, double x)
{
    ewma(&m->mean, &m->var, m->n, MODEL_ALPHA, x);
    if (m->n < UINT32_MAX)
        m->n++;
    model_slot *s = &m->slot[slot];
    ewma(&s->mean, &s->var, s->n, SLOT_ALPHA, x);
    if (s->n < UINT16_MAX)
        s->n++;
}

/* Close bucket b of m with count x. */
static void close_bucket(model_state *m, int64_t b, double x, model_state *role,
                         const model_params *p)
{
    int slot = slot_of(b, p);
    double mean, sd;
    if (estimate(m, role, slot, &mean, &sd)) {
        double s = m->cusum + (x - mean) / sd - p->k;
        m->cusum = s > 0 ? (float)s : 0;
    }
    learn(m, slot, x);
    if (role != NULL)
        learn(role, slot, x);
}

void model_add(model_state *m, int64_t now_us, uint32_t n, model_state *role,
               const model_params *p)
{
    int64_t b = now_us / MODEL_BUCKET_US;
    if (m->bucket == 0) {
        m->bucket = b;
        m->count = 0;
    } else if (b > m->bucket) {
        close_bucket(m, m->bucket, m->count, role, p);
        int64_t gap = b - m->bucket - 1;
        if (gap <= MAX_ZERO_GAP)
            for (int64_t i = 1; i <= gap; i++)
                close_bucket(m, m->bucket + i, 0, role, p);
        m->bucket = b;
        m->count = 0;
    }
    m->count += n;
}

double model_score(const model_state *m, const model_state *role,
                   const model_params *p, double *z, int *from_role)
{
    double mean, sd;
    *z = 0;
    int src = m->bucket == 0 ? 0 : estimate(m, role, slot_of(m->bucket, p), &mean, &sd);
    *from_role = src == 2;
    if (src == 0)
        return m->cusum;
    *z = (m->count - mean) / sd;
    double s = m->cusum + *z - p->k;
    return s > m->cusum ? s : m->cusum;
}
