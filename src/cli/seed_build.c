/*
 * seed_build.c -- the synthetic hospital as FHIR R4 resources: a university
 * hospital in Lyon with ten departments, its physicians and nurses, and for
 * each patient one transaction Bundle holding the whole record.
 *
 * Why it exists: the demo and the benchmarks need records shaped like a real
 * hospital's, so that the policy (care teams, in-progress encounters), the
 * blind indexes (names, NIR, codes, dates) and the validator see what they
 * will see in production.  Codes are real: LOINC with UCUM units for vital
 * signs and labs, SNOMED CT and ICD-10 for diagnoses, ATC for medicines,
 * SNOMED CT for allergens and reactions; texts are in French, as a French
 * hospital writes them.
 *
 * A patient's record: the Patient (NIR, hospital number, address, phones,
 * e-mail), one to three Encounters (the last one in progress for about one
 * patient in eight: they are in a ward now), an active CareTeam (their
 * physician and nurse), vital signs at every encounter, chronic and acute
 * Conditions drawn by age, a MedicationRequest for each treated condition,
 * and sometimes an AllergyIntolerance.  Every reference inside the Bundle is
 * a urn:uuid the server rewrites; references to the directory use the ids it
 * assigned earlier.  A decoy (`medvault decoy plant`) gets the same record
 * from the same code, with its CareTeam ended (inactive, a week after its
 * last stay) and without a stay in progress, so that it looks like any
 * patient discharged some time ago but no care relationship reaches it.
 *
 * Every json_t built here is owned by the Bundle it is put into; a failed
 * allocation anywhere marks the builder failed and the Bundle is dropped.
 */
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_VISITS 3
#define MAX_CONDITIONS 4
#define DAY_S 86400
#define NIR_SYSTEM "urn:oid:1.2.250.1.213.1.4.8"
#define RPPS_SYSTEM "urn:oid:1.2.250.1.71.4.2.1"
#define FINESS_SYSTEM "urn:oid:1.2.250.1.71.4.2.2"
#define IPP_SYSTEM "https://chu-demo.example.org/fhir/sid/ipp"
#define SNOMED "http://snomed.info/sct"
#define LOINC "http://loinc.org"
#define ICD10 "http://hl7.org/fhir/sid/icd-10"
#define ATC "http://www.whocc.no/atc"
#define UCUM "http://unitsofmeasure.org"
#define TERMINOLOGY "http://terminology.hl7.org/CodeSystem/"

/* ---- Catalogues ------------------------------------------------------------------ */

enum dept_index { CARDIO, URGENCES, INTERNE, PNEUMO, ENDOCRINO, NEURO, GERIATRIE,
                  PEDIATRIE, NEPHRO, PSY };

typedef struct department {
    const char *name;            /* the Organization's name                    */
    const char *short_name;      /* for a care team's name                     */
    const char *specialty, *specialty_display;   /* SNOMED CT                 */
} department;

static const department DEPTS[SEED_DEPARTMENTS] = {
    { "Service de cardiologie", "cardiologie", "394579002", "Cardiology" },
    { "Service des urgences", "urgences", "773568002", "Emergency medicine" },
    { "Service de médecine interne", "médecine interne", "419192003", "Internal medicine" },
    { "Service de pneumologie", "pneumologie", "418112009", "Pulmonary medicine" },
    { "Service d'endocrinologie-diabétologie", "endocrinologie", "394583002", "Endocrinology" },
    { "Service de neurologie", "neurologie", "394591006", "Neurology" },
    { "Service de gériatrie", "gériatrie", "394811001", "Geriatric medicine" },
    { "Service de pédiatrie", "pédiatrie", "394537008", "Pediatric specialty" },
    { "Service de néphrologie", "néphrologie", "394589003", "Nephrology" },
    { "Service de psychiatrie", "psychiatrie", "394587001", "Psychiatry" },
};

typedef struct condition_kind {
    const char *snomed, *snomed_display, *icd10, *text;
    unsigned dept;
    int min_age, max_age, percent;  /* share of the patients of that age       */
    int acute;                      /* resolves within weeks                    */
    const char *atc, *drug, *dosage;/* the usual treatment, or NULL             */
    int per_day;                    /* doses a day; 0: as needed or once        */
} condition_kind;

static const condition_kind CONDITIONS[] = {
    { "59621000", "Essential hypertension", "I10", "Hypertension artérielle essentielle",
      CARDIO, 40, 120, 30, 0, "C09AA05", "ramipril 5 mg, comprimé",
      "1 comprimé le matin", 1 },
    { "44054006", "Diabetes mellitus type 2", "E11", "Diabète de type 2", ENDOCRINO,
      35, 120, 12, 0, "A10BA02", "metformine 1000 mg, comprimé",
      "1 comprimé matin et soir, au cours des repas", 2 },
    { "13644009", "Hypercholesterolemia", "E78.0", "Hypercholestérolémie", CARDIO, 40,
      120, 15, 0, "C10AA05", "atorvastatine 20 mg, comprimé", "1 comprimé le soir", 1 },
    { "195967001", "Asthma", "J45", "Asthme", PNEUMO, 3, 120, 7, 0, "R03AC02",
      "salbutamol 100 µg/dose, suspension pour inhalation",
      "2 bouffées en cas de gêne respiratoire", 0 },
    { "13645005", "Chronic obstructive lung disease", "J44",
      "Bronchopneumopathie chronique obstructive", PNEUMO, 45, 120, 8, 0, "R03BB04",
      "tiotropium 18 µg, gélule pour inhalation", "1 inhalation par jour", 1 },
    { "49436004", "Atrial fibrillation", "I48", "Fibrillation atriale", CARDIO, 60, 120,
      10, 0, "B01AF02", "apixaban 5 mg, comprimé", "1 comprimé matin et soir", 2 },
    { "84114007", "Heart failure", "I50", "Insuffisance cardiaque", CARDIO, 65, 120, 8,
      0, "C03CA01", "furosémide 40 mg, comprimé", "1 comprimé le matin", 1 },
    { "35489007", "Depressive disorder", "F32", "Épisode dépressif", PSY, 16, 120, 8, 0,
      "N06AB06", "sertraline 50 mg, gélule", "1 gélule le matin", 1 },
    { "40930008", "Hypothyroidism", "E03", "Hypothyroïdie", ENDOCRINO, 20, 120, 6, 0,
      "H03AA01", "lévothyroxine 75 µg, comprimé", "1 comprimé le matin à jeun", 1 },
    { "239873007", "Osteoarthritis of knee", "M17", "Gonarthrose", INTERNE, 55, 120, 12,
      0, "N02BE01", "paracétamol 1 g, comprimé",
      "1 comprimé jusqu'à 3 fois par jour si douleur", 0 },
    { "37796009", "Migraine", "G43", "Migraine", NEURO, 12, 70, 6, 0, "N02CC01",
      "sumatriptan 50 mg, comprimé", "1 comprimé au début de la crise", 0 },
    { "433144002", "Chronic kidney disease stage 3", "N18.3",
      "Maladie rénale chronique stade 3", NEPHRO, 50, 120, 6, 0, NULL, NULL, NULL, 0 },
    { "84757009", "Epilepsy", "G40", "Épilepsie", NEURO, 0, 120, 2, 0, "N03AX14",
      "lévétiracétam 500 mg, comprimé", "1 comprimé matin et soir", 2 },
    { "87522002", "Iron deficiency anemia", "D50", "Anémie par carence martiale",
      INTERNE, 15, 120, 5, 0, "B03AA07", "sulfate ferreux 80 mg, comprimé",
      "1 comprimé par jour, à distance des repas", 1 },
    { "26929004", "Alzheimer's disease", "G30", "Maladie d'Alzheimer", GERIATRIE, 70,
      120, 8, 0, "N06DA02", "donépézil 5 mg, comprimé", "1 comprimé le soir", 1 },
    { "233604007", "Pneumonia", "J18.9", "Pneumopathie aiguë communautaire", PNEUMO, 18,
      120, 6, 1, "J01CA04", "amoxicilline 1 g, comprimé",
      "1 comprimé 3 fois par jour pendant 7 jours", 3 },
    { "68566005", "Urinary tract infectious disease", "N39.0", "Infection urinaire",
      URGENCES, 16, 120, 5, 1, "J01XX01", "fosfomycine trométamol 3 g, granulés",
      "1 sachet en prise unique", 0 },
    { "5913000", "Fracture of neck of femur", "S72.0", "Fracture du col du fémur",
      GERIATRIE, 70, 120, 4, 1, "N02BE01", "paracétamol 1 g, comprimé",
      "1 comprimé toutes les 6 heures si douleur", 0 },
    { "4120002", "Bronchiolitis", "J21", "Bronchiolite aiguë", PEDIATRIE, 0, 1, 40, 1,
      NULL, NULL, NULL, 0 },
    { "195662009", "Acute viral pharyngitis", "J02.9", "Pharyngite aiguë", PEDIATRIE, 2,
      17, 20, 1, "N02BE01", "paracétamol 500 mg, comprimé",
      "1 comprimé toutes les 6 heures si fièvre", 0 },
};

typedef struct allergy_kind {
    const char *code, *display, *text, *category, *criticality;
    const char *reaction, *reaction_display, *severity;
} allergy_kind;

static const allergy_kind ALLERGIES[] = {
    { "373270004", "Penicillin -class of antibiotic- (substance)", "Pénicillines",
      "medication", "high", "271807003", "Eruption of skin (disorder)", "moderate" },
    { "387458008", "Aspirin (substance)", "Aspirine", "medication", "low",
      "247472004", "Wheal (finding)", "mild" },
    { "111088007", "Latex (substance)", "Latex", "environment", "high",
      "247472004", "Wheal (finding)", "moderate" },
    { "782576004", "Tree pollen (substance)", "Pollens d'arbres", "environment", "low",
      "267101005", "Nose running", "mild" },
    { "260147004", "House dust mite (organism)", "Acariens", "environment", "low",
      "267036007", "Dyspnea (finding)", "mild" },
    { "288328004", "Bee venom (substance)", "Venin d'abeille", "environment", "high",
      "39579001", "Anaphylaxis (disorder)", "severe" },
    { "102263004", "Eggs (edible) (substance)", "Œuf", "food", "low",
      "418290006", "Itching (finding)", "mild" },
    { "442571000124108", "Tree nut (substance)", "Fruits à coque", "food", "high",
      "39579001", "Anaphylaxis (disorder)", "severe" },
};

typedef struct measure {
    const char *loinc, *display, *text, *unit, *ucum;
} measure;

static const measure HEART_RATE = { "8867-4", "Heart rate", "Fréquence cardiaque",
                                    "/min", "/min" };
static const measure BP_PANEL = { "85354-9", "Blood pressure panel with all children "
                                  "optional", "Pression artérielle", NULL, NULL };
static const measure SYSTOLIC = { "8480-6", "Systolic blood pressure",
                                  "Pression artérielle systolique", "mm[Hg]", "mm[Hg]" };
static const measure DIASTOLIC = { "8462-4", "Diastolic blood pressure",
                                   "Pression artérielle diastolique", "mm[Hg]", "mm[Hg]" };
static const measure TEMPERATURE = { "8310-5", "Body temperature",
                                     "Température corporelle", "°C", "Cel" };
static const measure SPO2 = { "59408-5", "Oxygen saturation in Arterial blood by Pulse "
                              "oximetry", "Saturation en oxygène", "%", "%" };
static const measure RESPIRATION = { "9279-1", "Respiratory rate",
                                     "Fréquence respiratoire", "/min", "/min" };
static const measure WEIGHT = { "29463-7", "Body weight", "Poids", "kg", "kg" };
static const measure HEIGHT = { "8302-2", "Body height", "Taille", "cm", "cm" };
static const measure BMI = { "39156-5", "Body mass index (BMI) [Ratio]",
                             "Indice de masse corporelle", "kg/m2", "kg/m2" };
static const measure HBA1C = { "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood",
                               "Hémoglobine glyquée (HbA1c)", "%", "%" };
static const measure CREATININE = { "14682-9", "Creatinine [Moles/volume] in Serum or "
                                    "Plasma", "Créatinine sérique", "µmol/L", "umol/L" };

/* ---- JSON building ------------------------------------------------------------------- */

/* A Bundle under construction; `failed` once any allocation failed. */
typedef struct builder {
    json_t *entries;
    seed_rng *r;
    int failed;
} builder;

static json_t *ok(builder *b, json_t *v)
{
    if (v == NULL)
        b->failed = 1;
    return v;
}

/* Append resource (stolen) as a POST entry named urn. */
static void add_entry(builder *b, const char *urn, json_t *resource)
{
    if (resource == NULL) {
        b->failed = 1;
        return;
    }
    const char *type = json_string_value(json_object_get(resource, "resourceType"));
    json_t *e = json_pack("{s:s, s:o, s:{s:s, s:s}}", "fullUrl", urn, "resource",
                          resource, "request", "method", "POST", "url", type);
    if (ok(b, e))
        json_array_append_new(b->entries, e);
}

static json_t *bundle_of(builder *b, mv_err *err)
{
    if (b->failed) {
        json_decref(b->entries);
        mv_fail(err, MV_E_NOMEM, "out of memory building a Bundle");
        return NULL;
    }
    json_t *bundle = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type",
                               "transaction", "entry", b->entries);
    if (bundle == NULL)
        mv_fail(err, MV_E_NOMEM, "out of memory building a Bundle");
    return bundle;
}

static json_t *reference(const char *type, const char *id, const char *display)
{
    char ref[128];
    snprintf(ref, sizeof ref, "%s/%s", type, id);
    return json_pack("{s:s, s:s*}", "reference", ref, "display", display);
}

static json_t *urn_ref(const char *urn)
{
    return json_pack("{s:s}", "reference", urn);
}

static json_t *concept(const char *system, const char *code, const char *display,
                       const char *text)
{
    return json_pack("{s:[{s:s, s:s, s:s*}], s:s*}", "coding", "system", system,
                     "code", code, "display", display, "text", text);
}

static json_t *status_concept(const char *codesystem, const char *code)
{
    char system[128];
    snprintf(system, sizeof system, TERMINOLOGY "%s", codesystem);
    return json_pack("{s:[{s:s, s:s}]}", "coding", "system", system, "code", code);
}

/* value rounded to `decimals` places (half away from zero). */
static double rounded(double value, int decimals)
{
    double scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    double shifted = value * scale + (value >= 0 ? 0.5 : -0.5);
    return (double)(long long)shifted / scale;
}

/* A UCUM quantity, rounded to `decimals` places (0: an integer). */
static json_t *quantity(double value, int decimals, const measure *m)
{
    double v = rounded(value, decimals);
    json_t *num = decimals ? json_real(v) : json_integer((json_int_t)v);
    return json_pack("{s:o, s:s, s:s, s:s}", "value", num, "unit", m->unit, "system",
                     UCUM, "code", m->ucum);
}

static json_t *human_name(const seed_person *p, const char *prefix)
{
    json_t *given = json_array();
    for (int i = 0; i < p->n_given; i++)
        json_array_append_new(given, json_string(p->given[i]));
    json_t *name = json_pack("{s:s, s:s, s:o}", "use", "official", "family", p->family,
                             "given", given);
    if (name && prefix)
        json_object_set_new(name, "prefix", json_pack("[s]", prefix));
    return name ? json_pack("[o]", name) : NULL;
}

static json_t *address(const seed_person *p, const char *use)
{
    json_t *lines = json_pack("[s]", p->line[0]);
    if (lines && p->line[1][0])
        json_array_append_new(lines, json_string(p->line[1]));
    return json_pack("[{s:s, s:s, s:o, s:s, s:s, s:s}]", "use", use, "type", "physical",
                     "line", lines, "city", p->city, "postalCode", p->postcode,
                     "country", "FR");
}

/* "Dr Claire Martin" / "Claire Martin". */
static void display_name(const seed_staff *s, char *out, size_t n)
{
    snprintf(out, n, "%s%s %s", s->nurse ? "" : "Dr ", s->who.given[0], s->who.family);
}

/* ---- The directory ------------------------------------------------------------------- */

int seed_hospital_init(seed_hospital *h, uint64_t seed, size_t m, int64_t now_s,
                       mv_err *err)
{
    memset(h, 0, sizeof *h);
    h->seed = seed;
    h->now_s = now_s;
    h->staff = mv_calloc(m, sizeof *h->staff, err);
    if (h->staff == NULL)
        return -1;
    h->n_staff = m;
    h->n_physicians = m * 2 / 5 < 2 ? 2 : m * 2 / 5;
    for (size_t j = 0; j < m; j++) {
        seed_staff *s = &h->staff[j];
        seed_rng r;
        seed_rng_init(&r, seed, SEED_STREAM_STAFF, j);
        if (seed_person_staff(&r, &s->who, err) != 0) {
            seed_hospital_free(h);
            return -1;
        }
        s->nurse = j >= h->n_physicians;
        s->dept = (unsigned)((s->nurse ? j - h->n_physicians : j) % SEED_DEPARTMENTS);
        snprintf(s->rpps, sizeof s->rpps, "10%05u%04u", seed_rng_below(&r, 100000),
                 (unsigned)(j % 10000));
    }
    return 0;
}

void seed_hospital_free(seed_hospital *h)
{
    free(h->staff);
    h->staff = NULL;
    h->n_staff = 0;
}

static json_t *hospital_org(void)
{
    return json_pack(
        "{s:s, s:[{s:s, s:s}], s:b, s:[{s:[{s:s, s:s, s:s}]}], s:s, s:[s],"
        " s:[{s:s, s:s, s:s}], s:[{s:s, s:[s], s:s, s:s, s:s}]}",
        "resourceType", "Organization", "identifier", "system", FINESS_SYSTEM, "value",
        "690099990", "active", 1, "type", "coding", "system",
        TERMINOLOGY "organization-type", "code", "prov", "display", "Healthcare Provider",
        "name", "Centre hospitalier universitaire de démonstration (fictif)", "alias",
        "CHU démo", "telecom", "system", "phone", "value", "+33 4 72 11 00 00", "use",
        "work", "address", "use", "work", "line", "5 place d'Arsonval", "city", "Lyon",
        "postalCode", "69003", "country", "FR");
}

static json_t *department_org(unsigned d, const char *hospital_urn)
{
    return json_pack("{s:s, s:b, s:[{s:[{s:s, s:s, s:s}]}], s:s, s:{s:s}}",
                     "resourceType", "Organization", "active", 1, "type", "coding",
                     "system", TERMINOLOGY "organization-type", "code", "dept",
                     "display", "Hospital Department", "name", DEPTS[d].name,
                     "partOf", "reference", hospital_urn);
}

static json_t *practitioner(const seed_staff *s)
{
    const char *qual = s->nurse ? "RN" : "MD";
    const char *qual_display = s->nurse ? "Registered Nurse" : "Doctor of Medicine";
    return json_pack(
        "{s:s, s:[{s:s, s:s}], s:b, s:o, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:s,"
        " s:[{s:{s:[{s:s, s:s, s:s}]}}]}",
        "resourceType", "Practitioner", "identifier", "system", RPPS_SYSTEM, "value",
        s->rpps, "active", 1, "name", human_name(&s->who, s->nurse ? NULL : "Dr"),
        "telecom", "system", "phone", "value", s->who.mobile, "use", "work", "system",
        "email", "value", s->who.email, "use", "work", "gender",
        s->who.female ? "female" : "male", "qualification", "code", "coding", "system",
        TERMINOLOGY "v2-0360", "code", qual, "display", qual_display);
}

static json_t *practitioner_role(const seed_staff *s, const char *prac_urn,
                                 const char *dept_urn)
{
    return json_pack("{s:s, s:b, s:{s:s}, s:{s:s}, s:[o], s:[o]}", "resourceType",
                     "PractitionerRole", "active", 1, "practitioner", "reference",
                     prac_urn, "organization", "reference", dept_urn, "code",
                     status_concept("practitioner-role", s->nurse ? "nurse" : "doctor"),
                     "specialty", concept(SNOMED, DEPTS[s->dept].specialty,
                                          DEPTS[s->dept].specialty_display, NULL));
}

/* Entry order: hospital, departments, then (Practitioner, PractitionerRole)
 * per member of staff; seed_directory_ids relies on it. */
json_t *seed_directory_bundle(const seed_hospital *h, mv_err *err)
{
    seed_rng r;
    seed_rng_init(&r, h->seed, SEED_STREAM_STAFF, UINT64_MAX);
    builder b = { json_array(), &r, 0 };
    if (b.entries == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory"), NULL;
    char hosp[SEED_URN_MAX], dept[SEED_DEPARTMENTS][SEED_URN_MAX];
    seed_rng_urn(&r, hosp);
    add_entry(&b, hosp, hospital_org());
    for (unsigned d = 0; d < SEED_DEPARTMENTS; d++) {
        seed_rng_urn(&r, dept[d]);
        add_entry(&b, dept[d], department_org(d, hosp));
    }
    for (size_t j = 0; j < h->n_staff; j++) {
        char prac[SEED_URN_MAX], role[SEED_URN_MAX];
        seed_rng_urn(&r, prac);
        seed_rng_urn(&r, role);
        add_entry(&b, prac, practitioner(&h->staff[j]));
        add_entry(&b, role, practitioner_role(&h->staff[j], prac, dept[h->staff[j].dept]));
    }
    return bundle_of(&b, err);
}

int seed_directory_ids(seed_hospital *h, const json_t *response, mv_err *err)
{
    if (seed_response_id(response, 0, h->org_id, err) != 0)
        return -1;
    for (size_t d = 0; d < SEED_DEPARTMENTS; d++)
        if (seed_response_id(response, 1 + d, h->dept_id[d], err) != 0)
            return -1;
    for (size_t j = 0; j < h->n_staff; j++)
        if (seed_response_id(response, 1 + SEED_DEPARTMENTS + 2 * j, h->staff[j].id,
                             err) != 0)
            return -1;
    return 0;
}

/* ---- A patient's plan ------------------------------------------------------------------ */

typedef struct visit {
    char urn[SEED_URN_MAX];
    int64_t start_s, end_s;      /* end 0: in progress                 */
    const char *cls;             /* "AMB", "EMER" or "IMP"             */
    unsigned dept;
    size_t physician;            /* staff index                        */
} visit;

typedef struct plan {
    const seed_hospital *h;
    seed_rng *r;
    seed_person who;
    int age;
    char urn[SEED_URN_MAX];
    unsigned dept;
    size_t physician, nurse;
    const condition_kind *cond[MAX_CONDITIONS];
    char cond_urn[MAX_CONDITIONS][SEED_URN_MAX];
    int n_cond;
    visit visits[MAX_VISITS];
    int n_visits;
    int hospitalized;            /* the last visit is in progress      */
    int decoy;                   /* no care team, never in a ward now  */
} plan;

static void draw_conditions(plan *p)
{
    int acute = 0;
    for (size_t k = 0; k < COUNT(CONDITIONS) && p->n_cond < MAX_CONDITIONS; k++) {
        const condition_kind *c = &CONDITIONS[k];
        if (p->age < c->min_age || p->age > c->max_age ||
            !seed_rng_percent(p->r, (unsigned)c->percent) || (c->acute && acute))
            continue;
        acute |= c->acute;
        p->cond[p->n_cond] = c;
        seed_rng_urn(p->r, p->cond_urn[p->n_cond++]);
    }
}

/* A random member of staff of that kind, from dept when it has some. */
static size_t pick_staff(const plan *p, int nurse, unsigned dept)
{
    const seed_hospital *h = p->h;
    size_t first = nurse ? h->n_physicians : 0;
    size_t end = nurse ? h->n_staff : h->n_physicians;
    size_t in_dept = 0;
    for (size_t j = first; j < end; j++)
        in_dept += h->staff[j].dept == dept;
    if (in_dept == 0)
        return first + seed_rng_below(p->r, (unsigned)(end - first));
    size_t k = seed_rng_below(p->r, (unsigned)in_dept);
    for (size_t j = first; j < end; j++)
        if (h->staff[j].dept == dept && k-- == 0)
            return j;
    return first;
}

/* Patient 0 is in the care of the first physician and first nurse (the demo
 * accounts); patient 1 in the care of the second ones, so the demo always
 * has a patient outside its care. */
static void choose_care_team(plan *p, unsigned index)
{
    const seed_hospital *h = p->h;
    if (index <= 1 && !p->decoy) {
        p->physician = index;
        p->nurse = h->n_physicians + index;
        p->dept = h->staff[index].dept;
        return;
    }
    if (p->n_cond > 0)
        p->dept = p->cond[0]->dept;
    else if (p->age < 16)
        p->dept = PEDIATRIE;
    else
        p->dept = seed_rng_below(p->r, SEED_DEPARTMENTS);
    p->physician = pick_staff(p, 0, p->dept);
    p->nurse = pick_staff(p, 1, p->dept);
}

static int cmp_visit(const void *a, const void *b)
{
    const visit *x = a, *y = b;
    return (x->start_s > y->start_s) - (x->start_s < y->start_s);
}

/* Visit x, `back` days ago during the day: a consultation in the patient's
 * department, or a passage through the emergency room. */
static void place_visit(plan *p, visit *x, int64_t midnight, int64_t back)
{
    x->start_s = midnight - back * DAY_S + seed_rng_between(p->r, 8 * 3600, 18 * 3600);
    x->cls = seed_rng_percent(p->r, 15) ? "EMER" : "AMB";
    x->dept = x->cls[0] == 'E' ? URGENCES : p->dept;
    x->physician = seed_rng_percent(p->r, 70) ? p->physician : pick_staff(p, 0, x->dept);
    seed_rng_urn(p->r, x->urn);
}

/* The last visit: an admission now (in progress), or the emergency room
 * where an acute condition was diagnosed. */
static void shape_last_visit(plan *p, visit *last)
{
    if (p->hospitalized) {
        last->start_s = p->h->now_s - seed_rng_between(p->r, 3600, 5 * DAY_S);
        last->cls = "IMP";
        last->dept = p->dept;
        last->physician = p->physician;
    } else if (p->n_cond > 0 && p->cond[p->n_cond - 1]->acute) {
        last->cls = "EMER";
        last->dept = URGENCES;
    }
}

/* Consultations last minutes, emergencies hours, stays days; all end in
 * the past except a stay in progress. */
static void set_visit_ends(plan *p)
{
    int64_t now = p->h->now_s;
    for (int v = 0; v < p->n_visits; v++) {
        visit *x = &p->visits[v];
        int64_t length = x->cls[0] == 'A' ? seed_rng_between(p->r, 20, 60) * 60
                       : x->cls[0] == 'E' ? seed_rng_between(p->r, 2, 9) * 3600
                       : seed_rng_between(p->r, 2, 10) * DAY_S;
        x->end_s = x->start_s + length < now - 600 ? x->start_s + length : now - 600;
        if (p->hospitalized && v == p->n_visits - 1)
            x->end_s = 0;
    }
}

/* Up to three visits in the last three years (never before birth); about
 * one patient in eight is in a ward now, admitted less than five days ago
 * and after every earlier visit. */
static void schedule_visits(plan *p)
{
    int64_t now = p->h->now_s, midnight = now - now % DAY_S;
    int64_t born = seed_days_from_date(p->who.birth) * DAY_S;
    int64_t span_days = (midnight - born) / DAY_S - 1;
    if (span_days > 3 * 365)
        span_days = 3 * 365;
    p->n_visits = seed_rng_between(p->r, 1, MAX_VISITS);
    p->hospitalized = seed_rng_percent(p->r, 12) && !p->decoy;
    int min_back = p->hospitalized ? 7 : 1;
    if (span_days <= min_back) {          /* born days ago: one visit */
        span_days = min_back + 1;
        p->n_visits = 1;
    }
    for (int v = 0; v < p->n_visits; v++)
        place_visit(p, &p->visits[v], midnight,
                    seed_rng_between(p->r, min_back, (int)span_days));
    qsort(p->visits, (size_t)p->n_visits, sizeof p->visits[0], cmp_visit);
    shape_last_visit(p, &p->visits[p->n_visits - 1]);
    set_visit_ends(p);
}

/* ---- A patient's resources ------------------------------------------------------------- */

/* Patient `index`'s hospital number (IPP), eight digits. */
static void hospital_number(unsigned index, char out[16])
{
    snprintf(out, 16, "%08u", 10000000u + index);
}

static json_t *patient_resource(const plan *p, unsigned index)
{
    char birth[11], ipp[16];
    seed_date_format(p->who.birth, birth);
    hospital_number(index, ipp);
    json_t *telecom = json_pack("[{s:s, s:s, s:s}]", "system", "phone", "value",
                                p->who.mobile, "use", "mobile");
    if (telecom && p->who.landline[0])
        json_array_append_new(telecom, json_pack("{s:s, s:s, s:s}", "system", "phone",
                                                 "value", p->who.landline, "use", "home"));
    if (telecom)
        json_array_append_new(telecom, json_pack("{s:s, s:s, s:s}", "system", "email",
                                                 "value", p->who.email, "use", "home"));
    return json_pack(
        "{s:s, s:[{s:s, s:{s:s}, s:s, s:s}, {s:s, s:{s:s}, s:s, s:s}], s:b, s:o, s:o,"
        " s:s, s:s, s:o, s:[{s:o, s:b}], s:o}",
        "resourceType", "Patient",
        "identifier", "use", "official", "type", "text", "NIR", "system", NIR_SYSTEM,
        "value", p->who.nir, "use", "usual", "type", "text", "IPP", "system", IPP_SYSTEM,
        "value", ipp,
        "active", 1, "name", human_name(&p->who, NULL), "telecom", telecom,
        "gender", p->who.female ? "female" : "male", "birthDate", birth,
        "address", address(&p->who, "home"),
        "communication", "language", concept("urn:ietf:bcp:47", "fr-FR", "French (France)",
                                             NULL), "preferred", 1,
        "managingOrganization", reference("Organization", p->h->org_id, NULL));
}

static const char *class_display(const char *cls)
{
    return cls[0] == 'A' ? "ambulatory" : cls[0] == 'E' ? "emergency"
                                                        : "inpatient encounter";
}

static const char *class_text(const char *cls)
{
    return cls[0] == 'A' ? "Consultation" : cls[0] == 'E' ? "Passage aux urgences"
                                                          : "Hospitalisation complète";
}

static json_t *participant(const seed_staff *s, const char *code, const char *display)
{
    char name[128];
    display_name(s, name, sizeof name);
    return json_pack("{s:[{s:[{s:s, s:s, s:s}]}], s:o}", "type", "coding", "system",
                     TERMINOLOGY "v3-ParticipationType", "code", code, "display", display,
                     "individual", reference("Practitioner", s->id, name));
}

static json_t *encounter_resource(const plan *p, const visit *v)
{
    const seed_hospital *h = p->h;
    char start[SEED_DATETIME_MAX], end[SEED_DATETIME_MAX];
    seed_datetime_format(v->start_s, start);
    seed_datetime_format(v->end_s, end);
    json_t *who = json_pack("[o]", participant(&h->staff[v->physician], "ATND", "attender"));
    if (who && v->end_s == 0)       /* in a ward now: the nurse is there too */
        json_array_append_new(who, participant(&h->staff[p->nurse], "PART", "participant"));
    json_t *e = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:o, s:{s:s, s:s*}, s:o}",
        "resourceType", "Encounter", "status", v->end_s ? "finished" : "in-progress",
        "class", "system", TERMINOLOGY "v3-ActCode", "code", v->cls, "display",
        class_display(v->cls), "type", "text", class_text(v->cls), "subject",
        urn_ref(p->urn), "participant", who, "period", "start", start, "end",
        v->end_s ? end : NULL, "serviceProvider",
        reference("Organization", h->dept_id[v->dept], DEPTS[v->dept].name));
    return e;
}

static json_t *care_team_role(const char *code, const char *display)
{
    return json_pack("[o]", concept(SNOMED, code, display, NULL));
}

/* A patient's care team: active, or -- a decoy's -- ended with its last
 * stay (an inactive team explains no access, but the record has the
 * history every patient has). */
static json_t *care_team_resource(const plan *p)
{
    const seed_hospital *h = p->h;
    char start[11], end[11], name[96], doc[128], nurse[128];
    seed_date_format(seed_date_from_days(p->visits[0].start_s / DAY_S), start);
    const visit *last = &p->visits[p->n_visits - 1];
    int64_t end_s = (last->end_s ? last->end_s : last->start_s) + 7 * DAY_S;
    seed_date_format(seed_date_from_days(end_s / DAY_S), end);
    snprintf(name, sizeof name, "Équipe de soins, %s", DEPTS[p->dept].short_name);
    display_name(&h->staff[p->physician], doc, sizeof doc);
    display_name(&h->staff[p->nurse], nurse, sizeof nurse);
    json_t *team = json_pack(
        "{s:s, s:s, s:[o], s:s, s:o, s:{s:s}, s:[{s:o, s:o}, {s:o, s:o}], s:[o]}",
        "resourceType", "CareTeam", "status", p->decoy ? "inactive" : "active", "category",
        concept(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team",
                NULL),
        "name", name, "subject", urn_ref(p->urn), "period", "start", start,
        "participant", "role", care_team_role("309343006", "Physician"), "member",
        reference("Practitioner", h->staff[p->physician].id, doc), "role",
        care_team_role("224535009", "Registered nurse"), "member",
        reference("Practitioner", h->staff[p->nurse].id, nurse),
        "managingOrganization", reference("Organization", h->dept_id[p->dept], NULL));
    if (team && p->decoy)
        json_object_set_new(json_object_get(team, "period"), "end", json_string(end));
    return team;
}

static json_t *condition_code(const condition_kind *c)
{
    return json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s}], s:s}", "coding", "system", SNOMED,
                     "code", c->snomed, "display", c->snomed_display, "system", ICD10,
                     "code", c->icd10, "text", c->text);
}

/* Chronic conditions are on the problem list from the first visit; an
 * acute one is diagnosed at the last visit and resolved two weeks later
 * (unless that visit is still going on). */
static json_t *condition_resource(const plan *p, int k)
{
    const condition_kind *c = p->cond[k];
    const visit *v = c->acute ? &p->visits[p->n_visits - 1] : &p->visits[0];
    int64_t onset_s = v->start_s - seed_rng_between(p->r, 1, 3) * DAY_S;
    if (!c->acute) {
        int64_t earliest = (seed_days_from_date(p->who.birth) + 365 * c->min_age) * DAY_S;
        onset_s = v->start_s - (int64_t)seed_rng_between(p->r, 30, 8 * 365) * DAY_S;
        if (onset_s < earliest)
            onset_s = earliest < v->start_s ? earliest : v->start_s;
    }
    int64_t abated_s = v->start_s + 14 * DAY_S;
    int resolved = c->acute && abated_s < p->h->now_s;
    char onset[11], abated[11], recorded[SEED_DATETIME_MAX], doc[128];
    seed_date_format(seed_date_from_days(onset_s / DAY_S), onset);
    seed_date_format(seed_date_from_days(abated_s / DAY_S), abated);
    seed_datetime_format(v->start_s + 1800, recorded);
    display_name(&p->h->staff[v->physician], doc, sizeof doc);
    return json_pack(
        "{s:s, s:o, s:o, s:[o], s:o, s:o, s:o, s:s, s:s*, s:s, s:o}",
        "resourceType", "Condition", "clinicalStatus",
        status_concept("condition-clinical", resolved ? "resolved" : "active"),
        "verificationStatus", status_concept("condition-ver-status", "confirmed"),
        "category", status_concept("condition-category",
                                   c->acute ? "encounter-diagnosis" : "problem-list-item"),
        "code", condition_code(c), "subject", urn_ref(p->urn), "encounter", urn_ref(v->urn),
        "onsetDateTime", onset, "abatementDateTime", resolved ? abated : NULL,
        "recordedDate", recorded, "recorder",
        reference("Practitioner", p->h->staff[v->physician].id, doc));
}

static json_t *dosage(const condition_kind *c)
{
    json_t *d = json_pack("{s:s}", "text", c->dosage);
    if (d && c->per_day > 0)
        json_object_set_new(d, "timing", json_pack("{s:{s:i, s:i, s:s}}", "repeat",
                                                   "frequency", c->per_day, "period", 1,
                                                   "periodUnit", "d"));
    if (d && c->per_day == 0)
        json_object_set_new(d, "asNeededBoolean", json_true());
    return d;
}

/* The prescription of the condition's usual treatment, renewed at the last
 * visit for a chronic condition. */
static json_t *medication_request(const plan *p, int k)
{
    const condition_kind *c = p->cond[k];
    const visit *v = &p->visits[p->n_visits - 1];
    int done = c->acute && v->end_s != 0;
    char authored[SEED_DATETIME_MAX], doc[128];
    seed_datetime_format(v->start_s + 2700, authored);
    display_name(&p->h->staff[p->physician], doc, sizeof doc);
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:[o], s:[o]}",
        "resourceType", "MedicationRequest", "status", done ? "completed" : "active",
        "intent", "order", "medicationCodeableConcept", concept(ATC, c->atc, NULL, c->drug),
        "subject", urn_ref(p->urn), "encounter", urn_ref(v->urn), "authoredOn", authored,
        "requester", reference("Practitioner", p->h->staff[p->physician].id, doc),
        "reasonReference", urn_ref(p->cond_urn[k]), "dosageInstruction", dosage(c));
}

static json_t *allergy_resource(const plan *p, const allergy_kind *a)
{
    char recorded[SEED_DATETIME_MAX];
    seed_datetime_format(p->visits[0].start_s + 900, recorded);
    return json_pack(
        "{s:s, s:o, s:o, s:s, s:[s], s:s, s:o, s:o, s:s, s:[{s:[o], s:s}]}",
        "resourceType", "AllergyIntolerance", "clinicalStatus",
        status_concept("allergyintolerance-clinical", "active"), "verificationStatus",
        status_concept("allergyintolerance-verification", "confirmed"), "type", "allergy",
        "category", a->category, "criticality", a->criticality, "code",
        concept(SNOMED, a->code, a->display, a->text), "patient", urn_ref(p->urn),
        "recordedDate", recorded, "reaction", "manifestation",
        concept(SNOMED, a->reaction, a->reaction_display, NULL), "severity", a->severity);
}

/* ---- Observations -------------------------------------------------------------------- */

typedef struct obs_ctx {
    builder *b;
    const plan *p;
    const visit *v;
    int64_t when_s;
    const char *category;       /* "vital-signs" or "laboratory" */
} obs_ctx;

static json_t *observation_base(const obs_ctx *o, const measure *m)
{
    char when[SEED_DATETIME_MAX], who[128];
    seed_datetime_format(o->when_s, when);
    int lab = strcmp(o->category, "laboratory") == 0;
    const seed_staff *nurse = &o->p->h->staff[o->p->nurse];
    display_name(nurse, who, sizeof who);
    json_t *performer = lab ? reference("Organization", o->p->h->org_id, NULL)
                            : reference("Practitioner", nurse->id, who);
    return json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}]}], s:o, s:o, s:o, s:s, s:[o]}",
                     "resourceType", "Observation", "status", "final", "category",
                     "coding", "system", TERMINOLOGY "observation-category", "code",
                     o->category, "code", concept(LOINC, m->loinc, m->display, m->text),
                     "subject", urn_ref(o->p->urn), "encounter", urn_ref(o->v->urn),
                     "effectiveDateTime", when, "performer", performer);
}

static void add_observation(obs_ctx *o, const measure *m, double value, int decimals)
{
    json_t *obs = observation_base(o, m);
    if (obs)
        json_object_set_new(obs, "valueQuantity", quantity(value, decimals, m));
    char urn[SEED_URN_MAX];
    seed_rng_urn(o->b->r, urn);
    add_entry(o->b, urn, obs);
}

static void add_blood_pressure(obs_ctx *o, int systolic, int diastolic)
{
    json_t *obs = observation_base(o, &BP_PANEL);
    json_t *components = json_pack(
        "[{s:o, s:o}, {s:o, s:o}]",
        "code", concept(LOINC, SYSTOLIC.loinc, SYSTOLIC.display, NULL), "valueQuantity",
        quantity(systolic, 0, &SYSTOLIC),
        "code", concept(LOINC, DIASTOLIC.loinc, DIASTOLIC.display, NULL), "valueQuantity",
        quantity(diastolic, 0, &DIASTOLIC));
    if (obs && ok(o->b, components))
        json_object_set_new(obs, "component", components);
    char urn[SEED_URN_MAX];
    seed_rng_urn(o->b->r, urn);
    add_entry(o->b, urn, obs);
}

static int has_condition(const plan *p, const char *snomed)
{
    for (int k = 0; k < p->n_cond; k++)
        if (strcmp(p->cond[k]->snomed, snomed) == 0)
            return 1;
    return 0;
}

/* An acute infection shows at the visit it was diagnosed at. */
static int febrile(const plan *p, const visit *v)
{
    return v == &p->visits[p->n_visits - 1] && p->n_cond > 0 &&
           p->cond[p->n_cond - 1]->acute &&
           (has_condition(p, "233604007") || has_condition(p, "68566005") ||
            has_condition(p, "4120002") || has_condition(p, "195662009"));
}

static void add_vital_signs(obs_ctx *o)
{
    const plan *p = o->p;
    seed_rng *r = o->b->r;
    int child = p->age < 12, hypertensive = has_condition(p, "59621000");
    int arrhythmic = has_condition(p, "49436004"), copd = has_condition(p, "13645005");
    int fever = febrile(p, o->v);
    add_observation(o, &HEART_RATE, arrhythmic ? seed_rng_between(r, 70, 130)
                    : child ? seed_rng_between(r, 80, 120) : seed_rng_between(r, 55, 95), 0);
    int sys = hypertensive ? seed_rng_between(r, 135, 175)
            : child ? seed_rng_between(r, 90, 112) : seed_rng_between(r, 100, 134);
    add_blood_pressure(o, sys, sys - seed_rng_between(r, 35, 60));
    add_observation(o, &TEMPERATURE, fever ? seed_rng_between(r, 380, 396) / 10.0
                                           : seed_rng_between(r, 362, 375) / 10.0, 1);
    add_observation(o, &SPO2, copd ? seed_rng_between(r, 88, 94)
                    : fever ? seed_rng_between(r, 91, 97) : seed_rng_between(r, 95, 100), 0);
    if (o->v->cls[0] != 'A')
        add_observation(o, &RESPIRATION, fever ? seed_rng_between(r, 20, 28)
                                               : seed_rng_between(r, 12, 20), 0);
}

/* Weight, height and BMI at the first visit, by age and sex. */
static void add_body_measures(obs_ctx *o)
{
    const plan *p = o->p;
    seed_rng *r = o->b->r;
    double height, weight;
    if (p->age >= 18) {
        height = p->who.female ? seed_rng_between(r, 152, 178) : seed_rng_between(r, 163, 193);
        double bmi = seed_rng_between(r, 185, 340) / 10.0;
        weight = bmi * (height / 100) * (height / 100);
    } else {
        height = 50 + 6.5 * p->age + seed_rng_between(r, -5, 5);
        weight = 3.5 + 2.6 * p->age + seed_rng_between(r, -10, 10) / 10.0;
    }
    add_observation(o, &WEIGHT, weight, 1);
    add_observation(o, &HEIGHT, height, 0);
    double h_m = rounded(height, 0) / 100;
    add_observation(o, &BMI, rounded(weight, 1) / (h_m * h_m), 1);
}

static void add_labs(obs_ctx *o)
{
    seed_rng *r = o->b->r;
    o->category = "laboratory";
    o->when_s += 2 * 3600;
    if (has_condition(o->p, "44054006"))
        add_observation(o, &HBA1C, seed_rng_between(r, 62, 95) / 10.0, 1);
    if (has_condition(o->p, "433144002"))
        add_observation(o, &CREATININE, seed_rng_between(r, 120, 220), 0);
}

static void add_observations(builder *b, const plan *p)
{
    for (int v = 0; v < p->n_visits; v++) {
        obs_ctx o = { b, p, &p->visits[v], p->visits[v].start_s + 900, "vital-signs" };
        add_vital_signs(&o);
        if (v == 0)
            add_body_measures(&o);
        if (v == p->n_visits - 1)
            add_labs(&o);
    }
}

/* ---- The patient's Bundle ------------------------------------------------------------ */

/* The conditions, the prescriptions that treat them, and sometimes an
 * allergy. */
static void add_problems(builder *b, const plan *p)
{
    for (int k = 0; k < p->n_cond; k++)
        add_entry(b, p->cond_urn[k], condition_resource(p, k));
    for (int k = 0; k < p->n_cond; k++) {
        if (p->cond[k]->atc == NULL)
            continue;
        char urn[SEED_URN_MAX];
        seed_rng_urn(b->r, urn);
        add_entry(b, urn, medication_request(p, k));
    }
}

static void add_allergy(builder *b, const plan *p)
{
    if (!seed_rng_percent(b->r, 18))
        return;
    char urn[SEED_URN_MAX];
    seed_rng_urn(b->r, urn);
    add_entry(b, urn, allergy_resource(p, &ALLERGIES[seed_rng_below(b->r,
                                                     COUNT(ALLERGIES))]));
}

/* The person, their plan and their whole record as one Bundle; a decoy's
 * CareTeam has ended (and its plan has no stay in progress). */
static json_t *record_bundle(plan *p, unsigned index, mv_err *err)
{
    if (seed_person_patient(p->r, index, &p->who, err) != 0)
        return NULL;
    p->age = 2024 - p->who.birth.y;
    seed_rng_urn(p->r, p->urn);
    draw_conditions(p);
    choose_care_team(p, index);
    schedule_visits(p);
    builder b = { json_array(), p->r, 0 };
    if (b.entries == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory"), NULL;
    add_entry(&b, p->urn, patient_resource(p, index));
    for (int v = 0; v < p->n_visits; v++)
        add_entry(&b, p->visits[v].urn, encounter_resource(p, &p->visits[v]));
    char team[SEED_URN_MAX];
    seed_rng_urn(p->r, team);
    add_entry(&b, team, care_team_resource(p));
    add_problems(&b, p);
    add_observations(&b, p);
    add_allergy(&b, p);
    return bundle_of(&b, err);
}

json_t *seed_patient_bundle(const seed_hospital *h, unsigned index,
                            seed_patient_facts *facts, mv_err *err)
{
    seed_rng r;
    seed_rng_init(&r, h->seed, SEED_STREAM_PATIENT, index);
    plan p = { .h = h, .r = &r };
    json_t *bundle = record_bundle(&p, index, err);
    facts->physician = p.physician;
    facts->nurse = p.nurse;
    snprintf(facts->family, sizeof facts->family, "%s", p.who.family);
    return bundle;
}

json_t *seed_decoy_bundle(const seed_hospital *h, unsigned index,
                          seed_decoy_facts *facts, mv_err *err)
{
    seed_rng r;
    seed_rng_init(&r, h->seed, SEED_STREAM_DECOY, index);
    plan p = { .h = h, .r = &r, .decoy = 1 };
    json_t *bundle = record_bundle(&p, index, err);
    facts->who = p.who;
    seed_date_format(p.who.birth, facts->birth);
    hospital_number(index, facts->ipp);
    return bundle;
}

int seed_department_index(const char *name)
{
    for (int d = 0; name && d < SEED_DEPARTMENTS; d++)
        if (strcmp(DEPTS[d].name, name) == 0)
            return d;
    return -1;
}
