/*
 * sim_world.c -- the simulated hospital behind `medvault simulate`: its
 * staff, its patients (a few of them VIPs, a few decoys), its wards and who
 * is admitted to them, and the random numbers everything is drawn from.
 *
 * Why it exists: the detector is only as good as the traffic it was tried
 * on.  Care relationships here are what the server's policy would compute:
 * a clinician cares for the in-patients whose care team names them, a nurse
 * for the in-patients of her ward, and emergency staff for the arrivals they
 * see (decided in sim_day.c).  Decoys are patients no workflow reaches.
 * Everything derives from the seed: the same seed, the same hospital.
 */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Random numbers ------------------------------------------------------------ */

uint64_t sim_next(sim_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_init(sim_rng *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    r->s = seed ^ (stream * 0xd1342543de82ef95ULL) ^ (index * 0x2545f4914f6cdd1dULL);
    sim_next(r);
}

double sim_unit(sim_rng *r)
{
    return (double)(sim_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int sim_below(sim_rng *r, int n)
{
    return (int)(sim_unit(r) * n);
}

int sim_chance(sim_rng *r, double p)
{
    return sim_unit(r) < p;
}

double sim_exp(sim_rng *r, double mean)
{
    return -mean * log(1.0 - sim_unit(r));
}

int sim_poisson(sim_rng *r, double mean)
{
    if (mean > 50)   /* normal approximation, enough for traffic volumes */
        return (int)fmax(0, floor(mean + sqrt(mean) *
                   sqrt(-2 * log(1 - sim_unit(r))) * cos(6.283185307 * sim_unit(r)) + 0.5));
    double l = exp(-mean), p = 1;
    int k = 0;
    do {
        k++;
        p *= sim_unit(r);
    } while (p > l);
    return k - 1;
}

/* ---- Addresses and calendar ----------------------------------------------------- */

uint32_t sim_ip(int a, int b, int c, int d)
{
    return (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
}

void sim_ip_text(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
             (ip >> 8) & 255, ip & 255);
}

int sim_day_of_week(int day)
{
    return day % 7;      /* day 0 is a Monday */
}

/* ---- Building --------------------------------------------------------------------- */

enum { STREAM_STAFF = 1, STREAM_PATIENT = 2, STREAM_ORDER = 3, STREAM_ADMIT = 4 };

static int zipf_family(sim_rng *r)
{
    /* P(k) proportional to 1/(k+1): a few very common names (Martin,
     * Bernard...), a long tail. */
    static double cumulative[SIM_FAMILIES];
    static double total;
    if (total == 0) {
        for (int k = 0; k < SIM_FAMILIES; k++) {
            total += 1.0 / (k + 1);
            cumulative[k] = total;
        }
    }
    double x = sim_unit(r) * total;
    int lo = 0, hi = SIM_FAMILIES - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cumulative[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void add_service(sim_world *w, int i, int svc)
{
    static const char *const names[SVC_COUNT] = {
        "", "svc-lab-interface", "svc-pharmacy", "svc-imaging", "svc-warehouse" };
    sim_staff *s = &w->staff[i];
    snprintf(s->id, sizeof s->id, "%s", names[svc]);
    s->role = SIM_SERVICE;
    s->service = svc;
    s->ip_net = 200;
    w->service_staff[svc] = i;
}

/* Staff i of the people: about 2% admin, 2% security, then 40% clinicians
 * and 60% nurses; one in six of each works in the emergency department. */
static void add_person(sim_world *w, int i, int k, int people)
{
    sim_staff *s = &w->staff[i];
    sim_rng r;
    sim_rng_init(&r, w->cfg.seed, STREAM_STAFF, (uint64_t)k);
    int n_office = people / 50 > 1 ? people / 50 : 1;
    if (k < n_office) {
        s->role = SIM_ADMIN;
    } else if (k < 2 * n_office) {
        s->role = SIM_SECURITY;
    } else {
        s->role = (k - 2 * n_office) % 5 < 2 ? SIM_CLINICIAN : SIM_NURSE;
    }
    static const char *const prefix[] = { "dr", "nurse", "admin", "sec", "svc" };
    snprintf(s->id, sizeof s->id, "%s-%04d", prefix[s->role], k);
    s->dept = (s->role == SIM_CLINICIAN || s->role == SIM_NURSE)
        ? (sim_chance(&r, 1.0 / 6) ? 0 : 1 + sim_below(&r, SIM_DEPTS - 1)) : 0;
    s->shift = s->role == SIM_NURSE ? sim_below(&r, 3)
             : s->dept == 0 && s->role == SIM_CLINICIAN ? 2 * sim_below(&r, 2)
             : SHIFT_DAY;
    s->family = zipf_family(&r);
    s->ip_net = s->role == SIM_ADMIN || s->role == SIM_SECURITY ? 100 : 1 + s->dept;
}

static int build_staff(sim_world *w, mv_err *err)
{
    int people = w->cfg.staff;
    w->n_staff = people + SVC_COUNT - 1;
    w->staff = mv_calloc((size_t)w->n_staff, sizeof *w->staff, err);
    if (w->staff == NULL)
        return -1;
    for (int k = 0; k < people; k++)
        add_person(w, k, k, people);
    for (int svc = 1; svc < SVC_COUNT; svc++)
        add_service(w, people + svc - 1, svc);
    return 0;
}

static int build_patients(sim_world *w, mv_err *err)
{
    w->n_real = w->cfg.patients;
    w->n_decoys = w->n_real / 250 > 3 ? w->n_real / 250 : 3;
    w->n_patients = w->n_real + w->n_decoys;
    w->patients = mv_calloc((size_t)w->n_patients, sizeof *w->patients, err);
    w->store_order = mv_calloc((size_t)w->n_patients, sizeof(int), err);
    w->admitted = mv_calloc((size_t)w->n_patients, sizeof(int), err);
    if (w->patients == NULL || w->store_order == NULL || w->admitted == NULL)
        return -1;
    for (int i = 0; i < w->n_patients; i++) {
        sim_patient *p = &w->patients[i];
        sim_rng r;
        sim_rng_init(&r, w->cfg.seed, STREAM_PATIENT, (uint64_t)i);
        snprintf(p->id, sizeof p->id, "pat-%08llx",
                 (unsigned long long)(sim_next(&r) & 0xffffffffULL));
        p->family = zipf_family(&r);
        p->decoy = i >= w->n_real;
        p->vip = !p->decoy && sim_chance(&r, 0.005);
        p->dept = -1;
        p->team[0] = p->team[1] = -1;
    }
    for (int i = 1; i <= 2; i++)          /* at least two VIPs to snoop on */
        w->patients[i * (w->n_real / 3)].vip = 1;
    /* A search pages through the store in its own order: decoys anywhere. */
    sim_rng r;
    sim_rng_init(&r, w->cfg.seed, STREAM_ORDER, 0);
    for (int i = 0; i < w->n_patients; i++)
        w->store_order[i] = i;
    for (int i = w->n_patients - 1; i > 0; i--) {
        int j = sim_below(&r, i + 1), t = w->store_order[i];
        w->store_order[i] = w->store_order[j];
        w->store_order[j] = t;
    }
    return 0;
}

int sim_world_build(sim_world *w, const sim_config *c, mv_err *err)
{
    memset(w, 0, sizeof *w);
    w->cfg = *c;
    if (mv_time_parse("2026-01-05T00:00:00Z", &w->start_us, err) != 0 ||
        build_staff(w, err) != 0 || build_patients(w, err) != 0) {
        sim_world_free(w);
        return -1;
    }
    return 0;
}

void sim_world_free(sim_world *w)
{
    free(w->staff);
    free(w->patients);
    free(w->store_order);
    free(w->admitted);
    memset(w, 0, sizeof *w);
}

/* ---- Admissions ---------------------------------------------------------------------- */

static int clinician_of(const sim_world *w, int dept, sim_rng *r)
{
    for (int tries = 0; tries < 4 * w->n_staff; tries++) {
        int s = sim_below(r, w->n_staff);
        if (w->staff[s].role == SIM_CLINICIAN && w->staff[s].dept == dept)
            return s;
    }
    return -1;
}

static void admit(sim_world *w, int p, int day, sim_rng *r)
{
    sim_patient *x = &w->patients[p];
    x->dept = (int8_t)(1 + sim_below(r, SIM_DEPTS - 1));
    x->until_day = day + 1 + sim_below(r, 10);
    for (int k = 0; k < SIM_TEAM; k++)
        x->team[k] = (int16_t)clinician_of(w, x->dept, r);
    w->admitted[w->n_admitted++] = p;
}

void sim_world_admissions(sim_world *w, int day)
{
    int kept = 0;
    for (int i = 0; i < w->n_admitted; i++) {
        sim_patient *x = &w->patients[w->admitted[i]];
        if (x->until_day <= day) {
            x->dept = -1;
            x->team[0] = x->team[1] = -1;
        } else {
            w->admitted[kept++] = w->admitted[i];
        }
    }
    w->n_admitted = kept;
    sim_rng r;
    sim_rng_init(&r, w->cfg.seed, STREAM_ADMIT, (uint64_t)day);
    int census = w->n_real / 8;
    int missing = census - w->n_admitted;
    if (day > 0 && sim_day_of_week(day) >= 5)
        missing = missing * 6 / 10;       /* fewer admissions at weekends */
    for (int tries = 0; missing > 0 && tries < 20 * census; tries++) {
        int p = sim_below(&r, w->n_real);
        if (w->patients[p].dept >= 0)
            continue;
        admit(w, p, day, &r);
        missing--;
    }
}

int sim_cares_for(const sim_world *w, int s, int p)
{
    const sim_patient *x = &w->patients[p];
    const sim_staff *st = &w->staff[s];
    if (x->dept < 0)
        return 0;
    if (st->role == SIM_NURSE)
        return st->dept == x->dept;
    for (int k = 0; k < SIM_TEAM; k++)
        if (x->team[k] == s)
            return 1;
    return 0;
}
