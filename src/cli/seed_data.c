/*
 * seed_data.c -- the people of the synthetic hospital: French given and
 * family names, birth dates, NIR numbers with their control key, addresses,
 * phone numbers and e-mail addresses; and the reproducible pseudo-random
 * numbers everything in `medvault seed` is drawn from.
 *
 * Why it exists: a demo store must look like a real French hospital's to
 * exercise what matters (accent-folded name search, NIR canonicalisation,
 * Corsican departments, phone forms) while holding no real person.  Every
 * list below is ordinary data typed for this file; the NIR key comes from
 * search_nir_key(), the same code that checks NIRs on the way in.
 *
 * The generator is xoshiro256** seeded through splitmix64: reproducible from
 * one number and fast, and never used for a secret.
 */
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../search/search.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Pseudo-random numbers -------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void seed_rng_init(seed_rng *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = a ^ (stream * 0xD1B54A32D192ED03ULL);
    uint64_t b = splitmix64(&x);
    x = b ^ (index * 0xAEF17502108EF2D9ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t v, int k)
{
    return (v << k) | (v >> (64 - k));
}

uint64_t seed_rng_next(seed_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

unsigned seed_rng_below(seed_rng *r, unsigned n)
{
    return (unsigned)((seed_rng_next(r) >> 11) % n);
}

int seed_rng_between(seed_rng *r, int lo, int hi)
{
    return lo + (int)seed_rng_below(r, (unsigned)(hi - lo + 1));
}

int seed_rng_percent(seed_rng *r, unsigned percent)
{
    return seed_rng_below(r, 100) < percent;
}

void seed_rng_urn(seed_rng *r, char out[SEED_URN_MAX])
{
    uint64_t hi = seed_rng_next(r), lo = seed_rng_next(r);
    hi = (hi & ~0xF000ULL) | 0x4000ULL;                 /* version 4 */
    lo = (lo & ~(3ULL << 62)) | (2ULL << 62);           /* variant 10 */
    snprintf(out, SEED_URN_MAX, "urn:uuid:%08llx-%04llx-%04llx-%04llx-%012llx",
             (unsigned long long)(hi >> 32), (unsigned long long)((hi >> 16) & 0xFFFF),
             (unsigned long long)(hi & 0xFFFF), (unsigned long long)(lo >> 48),
             (unsigned long long)(lo & 0xFFFFFFFFFFFFULL));
}

static const char *pick(seed_rng *r, const char *const *list, size_t n)
{
    return list[seed_rng_below(r, (unsigned)n)];
}
#define PICK(r, list) pick((r), (list), COUNT(list))

/* ---- Calendar (util's civil-day conversions) -------------------------------- */

int64_t seed_days_from_date(seed_date d)
{
    return mv_days_from_civil(d.y, d.m, d.d);
}

seed_date seed_date_from_days(int64_t z)
{
    seed_date d;
    mv_civil_from_days(z, &d.y, &d.m, &d.d);
    return d;
}

void seed_date_format(seed_date d, char out[11])
{
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)d.y % 10000u, (unsigned)d.m % 100u,
             (unsigned)d.d % 100u);
}

void seed_datetime_format(int64_t unix_s, char out[SEED_DATETIME_MAX])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SEED_DATETIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- Names ------------------------------------------------------------------------ */

static const char *const FAMILY[] = {
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
    "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
    "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert",
    "Fontaine", "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André",
    "Mercier", "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François",
    "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément", "Morin",
    "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand",
    "Duval", "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour",
    "Meunier", "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet",
    "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard", "Roche", "Renard",
    "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron", "Picard", "Roger",
    "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier",
    "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
    "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy",
    "Guillot", "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin",
    "Louis", "Deschamps", "Huet", "Vasseur", "Perez", "Boucher", "Fleury",
    "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier", "Marty", "Aubry",
    "Guyot", "Carré", "Charles", "Renault", "Charpentier", "Ménard", "Maillard",
    "Baron", "Bertin", "Bailly", "Hervé", "Schneider", "Fernandez", "Le Gall",
    "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet", "Perrot",
    "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré",
    "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob",
    "Monnier", "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne",
    "Grondin", "Poulain", "Tessier", "Chevallier", "Collin", "Chauvin",
    "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard", "Maréchal", "Humbert",
    "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy", "Cordier", "Pichon",
    "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte",
    "Nguyen", "Diallo", "N'Diaye", "Traoré", "Benali", "Haddad", "Ben Salah",
    "Mansouri", "Kowalski", "Ferreira", "Santos", "Rossi", "D'Angelo",
    "Kaya", "Cissé", "Tran", "Pereira", "Dos Santos", "Bouvet", "Vallée",
};

static const char *const GIVEN_FEMALE[] = {
    "Marie", "Jeanne", "Françoise", "Monique", "Catherine", "Nathalie", "Isabelle",
    "Sylvie", "Martine", "Christine", "Anne", "Sophie", "Valérie", "Sandrine",
    "Véronique", "Nicole", "Brigitte", "Céline", "Stéphanie", "Julie", "Aurélie",
    "Émilie", "Camille", "Laura", "Léa", "Manon", "Chloé", "Emma", "Inès",
    "Jade", "Louise", "Alice", "Lina", "Zoé", "Anaïs", "Mathilde", "Hélène",
    "Élodie", "Agnès", "Béatrice", "Geneviève", "Josiane", "Odette", "Mireille",
    "Noémie", "Clémence", "Océane", "Pauline", "Margaux", "Yasmine", "Fatima",
    "Aïcha", "Marie-Claire", "Anne-Sophie", "Marie-Thérèse", "Maëlle", "Rose",
    "Ambre", "Lucie", "Juliette", "Gaëlle", "Soline", "Capucine", "Éléonore",
};

static const char *const GIVEN_MALE[] = {
    "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Jacques", "Bernard",
    "Daniel", "Patrick", "Christophe", "Nicolas", "Stéphane", "Laurent", "Frédéric",
    "Julien", "Sébastien", "David", "Thomas", "Antoine", "Maxime", "Alexandre",
    "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Raphaël", "Jules", "Léo",
    "Adam", "Nathan", "Théo", "Noah", "Ethan", "Mathis", "Benoît", "François",
    "Gérard", "René", "Marcel", "Roger", "Claude", "Yves", "Hervé", "Thierry",
    "Didier", "Éric", "Olivier", "Mohamed", "Karim", "Youssef", "Mehdi",
    "Jean-Pierre", "Jean-Luc", "Jean-Marc", "Pierre-Yves", "Jérôme", "Grégoire",
    "Loïc", "Maël", "Timothée", "Baptiste", "Aurélien", "Joël", "Noël",
};

static void pick_names(seed_rng *r, seed_person *p)
{
    const char *const *given = p->female ? GIVEN_FEMALE : GIVEN_MALE;
    size_t n = p->female ? COUNT(GIVEN_FEMALE) : COUNT(GIVEN_MALE);
    snprintf(p->family, sizeof p->family, "%s", PICK(r, FAMILY));
    snprintf(p->given[0], sizeof p->given[0], "%s", pick(r, given, n));
    p->n_given = 1;
    if (seed_rng_percent(r, 35)) {      /* a second given name, as on the état civil */
        const char *second = pick(r, given, n);
        if (strcmp(second, p->given[0]) != 0) {
            snprintf(p->given[1], sizeof p->given[1], "%s", second);
            p->n_given = 2;
        }
    }
}

/* ---- Places ------------------------------------------------------------------------- */

typedef struct city {
    const char *name, *postcode, *dept;   /* dept: the NIR's birth department */
    const char *phone_zone;               /* landline prefix */
} city;

/* The hospital is in Lyon: most patients live nearby. */
static const city NEAR[] = {
    { "Lyon", "69003", "69", "04 78" }, { "Lyon", "69007", "69", "04 72" },
    { "Lyon", "69008", "69", "04 78" }, { "Lyon", "69006", "69", "04 72" },
    { "Villeurbanne", "69100", "69", "04 78" }, { "Vénissieux", "69200", "69", "04 72" },
    { "Bron", "69500", "69", "04 78" }, { "Caluire-et-Cuire", "69300", "69", "04 72" },
    { "Vaulx-en-Velin", "69120", "69", "04 78" }, { "Oullins", "69600", "69", "04 78" },
    { "Décines-Charpieu", "69150", "69", "04 72" }, { "Meyzieu", "69330", "69", "04 78" },
    { "Villefranche-sur-Saône", "69400", "69", "04 74" },
    { "Saint-Étienne", "42000", "42", "04 77" }, { "Grenoble", "38000", "38", "04 76" },
    { "Vienne", "38200", "38", "04 74" }, { "Bourg-en-Bresse", "01000", "01", "04 74" },
    { "Annecy", "74000", "74", "04 50" }, { "Chambéry", "73000", "73", "04 79" },
};

static const city FAR[] = {
    { "Paris", "75011", "75", "01 43" }, { "Paris", "75015", "75", "01 45" },
    { "Paris", "75018", "75", "01 42" }, { "Marseille", "13005", "13", "04 91" },
    { "Toulouse", "31000", "31", "05 61" }, { "Nice", "06000", "06", "04 93" },
    { "Nantes", "44000", "44", "02 40" }, { "Strasbourg", "67000", "67", "03 88" },
    { "Montpellier", "34000", "34", "04 67" }, { "Bordeaux", "33000", "33", "05 56" },
    { "Lille", "59000", "59", "03 20" }, { "Rennes", "35000", "35", "02 99" },
    { "Reims", "51100", "51", "03 26" }, { "Dijon", "21000", "21", "03 80" },
    { "Clermont-Ferrand", "63000", "63", "04 73" }, { "Brest", "29200", "29", "02 98" },
    { "Tours", "37000", "37", "02 47" }, { "Limoges", "87000", "87", "05 55" },
    { "Metz", "57000", "57", "03 87" }, { "Besançon", "25000", "25", "03 81" },
    { "Rouen", "76000", "76", "02 35" }, { "Caen", "14000", "14", "02 31" },
    { "Ajaccio", "20000", "2A", "04 95" }, { "Bastia", "20200", "2B", "04 95" },
    { "Saint-Denis", "97400", "974", "02 62" }, { "Pointe-à-Pitre", "97110", "971", "05 90" },
};

static const char *const STREETS[] = {
    "rue de la République", "avenue Jean Jaurès", "rue Victor Hugo",
    "boulevard Gambetta", "rue Pasteur", "rue du Général de Gaulle",
    "avenue de la Libération", "rue des Écoles", "chemin des Vignes",
    "impasse des Lilas", "allée des Tilleuls", "rue de la Gare", "rue du Moulin",
    "route de Lyon", "rue Émile Zola", "rue Jules Ferry", "rue Anatole France",
    "avenue Foch", "quai Claude Bernard", "rue Lamartine", "cours Lafayette",
    "rue Paul Bert", "rue Voltaire", "rue Molière", "rue de la Paix",
    "rue Antoine de Saint-Exupéry", "avenue des Frères Lumière", "rue de l'Église",
    "rue du Stade", "place de la Mairie", "rue des Acacias", "montée de la Grande Côte",
    "rue Marcel Pagnol", "boulevard des Belges", "rue Garibaldi", "rue Mercière",
};

/* Any metropolitan department as a birth place, two digits (never 20:
 * Corsica is 2A/2B). */
static void random_metro_dept(seed_rng *r, char out[4])
{
    int d;
    do
        d = seed_rng_between(r, 1, 95);
    while (d == 20);
    snprintf(out, 4, "%02u", (unsigned)d % 100u);
}

/* Countries of birth abroad, as INSEE codes (the NIR's department is 99). */
static const char *const COUNTRIES[] = {
    "139" /* Portugal */, "127" /* Italy */, "134" /* Spain */, "352" /* Algeria */,
    "350" /* Morocco */, "351" /* Tunisia */, "131" /* Belgium */, "109" /* Germany */,
    "341" /* Senegal */, "243" /* Vietnam */,
};

static void make_address(seed_rng *r, const city *c, seed_person *p)
{
    int number = seed_rng_between(r, 1, 148);
    const char *bis = seed_rng_percent(r, 5) ? " bis" : "";
    snprintf(p->line[0], sizeof p->line[0], "%d%s %s", number, bis, PICK(r, STREETS));
    p->line[1][0] = '\0';
    if (seed_rng_percent(r, 25))
        snprintf(p->line[1], sizeof p->line[1], "Bâtiment %c, appartement %d",
                 'A' + seed_rng_below(r, 4), seed_rng_between(r, 1, 60));
    snprintf(p->city, sizeof p->city, "%s", c->name);
    snprintf(p->postcode, sizeof p->postcode, "%s", c->postcode);
}

static void make_phones(seed_rng *r, const city *c, seed_person *p)
{
    snprintf(p->mobile, sizeof p->mobile, "0%d %02d %02d %02d %02d",
             seed_rng_percent(r, 70) ? 6 : 7, seed_rng_between(r, 0, 99),
             seed_rng_between(r, 0, 99), seed_rng_between(r, 0, 99),
             seed_rng_between(r, 0, 99));
    p->landline[0] = '\0';
    if (seed_rng_percent(r, 40))
        snprintf(p->landline, sizeof p->landline, "%s %02d %02d %02d", c->phone_zone,
                 seed_rng_between(r, 0, 99), seed_rng_between(r, 0, 99),
                 seed_rng_between(r, 0, 99));
}

/* "prenom.nom" without accents, spaces or apostrophes. */
static int email_local_part(const seed_person *p, char *out, size_t n, mv_err *err)
{
    char *given = NULL, *family = NULL;
    if (search_fold_name(p->given[0], &given, err) != 0 ||
        search_fold_name(p->family, &family, err) != 0) {
        free(given);
        return -1;
    }
    for (char *s = given; *s; s++)
        if (*s == ' ')
            *s = '-';
    for (char *s = family; *s; s++)
        if (*s == ' ')
            *s = '-';
    snprintf(out, n, "%s.%s", given, family);
    free(given);
    free(family);
    return 0;
}

/* ---- NIR ----------------------------------------------------------------------------- */

/* Birth place as (department, commune) of the NIR: department 2 or 3
 * characters, commune 3 or 2 digits, 5 characters in all. */
static void birth_place(seed_rng *r, const city *home, int year, char place[12])
{
    char dept[4];
    unsigned roll = seed_rng_below(r, 100);
    if (roll < 8) {                                         /* born abroad */
        snprintf(place, 12, "99%.3s", PICK(r, COUNTRIES));
        return;
    }
    if (roll < 12)
        snprintf(dept, sizeof dept, "%s", seed_rng_percent(r, 50) ? "2A" : "2B");
    else if (roll < 15)
        snprintf(dept, sizeof dept, "%s", seed_rng_percent(r, 50) ? "974" : "971");
    else if (roll < 60)
        snprintf(dept, sizeof dept, "%s", home->dept);
    else
        random_metro_dept(r, dept);
    /* Corsica became 2A and 2B in 1976: people born there before keep 20. */
    if (dept[0] == '2' && (dept[1] == 'A' || dept[1] == 'B') && year < 1976)
        snprintf(dept, sizeof dept, "20");
    if (strlen(dept) == 3)                                  /* overseas: 2-digit commune */
        snprintf(place, 12, "%.3s%02u", dept, seed_rng_below(r, 24) + 1);
    else
        snprintf(place, 12, "%.2s%03u", dept, seed_rng_below(r, 350) + 1);
}

static int make_nir(seed_rng *r, const city *home, unsigned index, seed_person *p,
                    mv_err *err)
{
    char place[12], body[32];
    birth_place(r, home, p->birth.y, place);
    snprintf(body, sizeof body, "%c%02u%02u%.5s%03u", p->female ? '2' : '1',
             (unsigned)p->birth.y % 100u, (unsigned)p->birth.m % 100u, place,
             1 + index % 999);
    int key = search_nir_key(body);
    if (key < 0)
        return mv_fail(err, MV_E_INTERNAL, "generated a malformed NIR body");
    snprintf(p->nir, sizeof p->nir, "%.13s%02u", body, (unsigned)key % 100u);
    return 0;
}

/* ---- People ---------------------------------------------------------------------------- */

/* Hospital patients are older than the population: 10% children, 20%
 * 18-39, 30% 40-64, 40% 65 and over.  Ages are counted from 2024 so a
 * given seed makes the same people whatever the day. */
static void birth_date(seed_rng *r, int min_age, int max_age, seed_person *p)
{
    int age;
    if (min_age == 0) {
        unsigned roll = seed_rng_below(r, 100);
        age = roll < 10 ? seed_rng_between(r, 0, 17)
            : roll < 30 ? seed_rng_between(r, 18, 39)
            : roll < 60 ? seed_rng_between(r, 40, 64) : seed_rng_between(r, 65, 99);
    } else {
        age = seed_rng_between(r, min_age, max_age);
    }
    seed_date jan1 = { 2024 - age, 1, 1 };
    int64_t day = seed_days_from_date(jan1) + seed_rng_below(r, 365);
    p->birth = seed_date_from_days(day);
}

static const char *const MAIL_DOMAINS[] = { "example.org", "example.net", "example.com" };

int seed_person_patient(seed_rng *r, unsigned index, seed_person *p, mv_err *err)
{
    memset(p, 0, sizeof *p);
    p->female = seed_rng_percent(r, 52);
    pick_names(r, p);
    birth_date(r, 0, 0, p);
    const city *home = seed_rng_percent(r, 70) ? &NEAR[seed_rng_below(r, COUNT(NEAR))]
                                               : &FAR[seed_rng_below(r, COUNT(FAR))];
    make_address(r, home, p);
    make_phones(r, home, p);
    char local[100];
    if (email_local_part(p, local, sizeof local, err) != 0)
        return -1;
    snprintf(p->email, sizeof p->email, "%.100s%u@%s", local, seed_rng_below(r, 99) + 1,
             PICK(r, MAIL_DOMAINS));
    return make_nir(r, home, index, p, err);
}

int seed_person_staff(seed_rng *r, seed_person *p, mv_err *err)
{
    memset(p, 0, sizeof *p);
    p->female = seed_rng_percent(r, 60);
    pick_names(r, p);
    p->n_given = 1;
    birth_date(r, 25, 64, p);
    const city *home = &NEAR[seed_rng_below(r, COUNT(NEAR))];
    make_address(r, home, p);
    snprintf(p->mobile, sizeof p->mobile, "+33 4 72 11 %02d %02d",
             seed_rng_between(r, 0, 99), seed_rng_between(r, 0, 99));
    char local[100];
    if (email_local_part(p, local, sizeof local, err) != 0)
        return -1;
    snprintf(p->email, sizeof p->email, "%.100s@chu-demo.example.org", local);
    return make_nir(r, home, seed_rng_below(r, 999), p, err);
}
