/*
 * incident_report.c -- `medvault incident report`: the draft of the
 * notification to the CNIL (GDPR Art. 33), in French or English, as
 * Markdown or JSON.
 *
 * Why it exists: Art. 33 gives 72 hours from detection to tell the
 * supervisory authority the nature of the breach, the categories and
 * approximate numbers of people and records concerned, who to contact (the
 * DPO), the likely consequences and the measures taken or proposed.  Every
 * figure here comes from the verified trail (server_incident_scope) and the
 * incident's register entry, so the draft is ready minutes after detection;
 * a person still reviews and sends it.  An incident where nothing left in
 * clear (a copied store without its key: every record is sealed under a
 * per-patient key) is recognised, and the report says that Art. 34(3)(a)
 * exempts it from telling each patient.
 *
 * The DPO contact comes from --contact, which also keeps it in the store's
 * metadata ("incident.contact") for the next reports.
 */
#include "incident.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTACT_META "incident.contact"
#define DEADLINE_US (72LL * 3600 * 1000000)

enum { FR, EN };

/* The words of the report, by language. */
typedef struct words {
    const char *title, *incident, *controller, *nature, *nature_text, *stolen_text,
        *timeline, *first, *last, *detected, *contained, *deadline, *opened, *none,
        *categories, *persons_cat, *persons_cat_text, *persons, *records, *data_cat,
        *consequences, *consequences_text, *stolen_consequences, *taken, *proposed,
        *proposed_text, *notify, *notify_yes, *notify_exempt, *sources, *summary,
        *cat[SCOPE_CAT_COUNT], *missing_contact, *encrypted;
} words;

static const words WORDS[2] = {
    [FR] = {
        "Notification de violation de données personnelles à la CNIL (RGPD art. 33) -- projet",
        "Incident", "Responsable de traitement / contact (DPO)",
        "Nature de la violation",
        "Violation de la confidentialité : un compte authentifié a obtenu, par l'API du "
        "dossier patient, des données de santé de patients hors de toute prise en charge.",
        "Copie de la base de données chiffrée sans la clé : chaque dossier est chiffré par "
        "une clé propre au patient, la clé maîtresse est hors du répertoire de données.",
        "Chronologie", "Premier accès", "Dernier accès", "Détection", "Confinement",
        "Échéance de notification (72 h après la détection)", "Ouverture de l'incident",
        "non établi",
        "Catégories et nombre approximatif", "Catégories de personnes concernées",
        "patients de l'établissement", "Nombre approximatif de personnes concernées",
        "Nombre approximatif d'enregistrements concernés", "Catégories de données",
        "Conséquences probables",
        "Atteinte à la vie privée (données de santé), hameçonnage ciblé et usurpation "
        "d'identité à partir des coordonnées et du NIR, revente des données.",
        "Aucune donnée lisible sans la clé : le risque pour les personnes est faible tant "
        "que la clé n'est pas compromise.",
        "Mesures prises", "Mesures proposées",
        "Réinitialiser les identifiants du compte, revoir ses habilitations, surveiller "
        "les accès, informer les patients concernés, porter plainte.",
        "Information des personnes concernées (art. 34)",
        "Requise : une lettre est préparée pour chaque patient concerné.",
        "Non requise : art. 34(3)(a), les données étaient chiffrées et la clé n'a pas été "
        "compromise (seul le chiffré a pu être copié).",
        "Adresses sources", "Résumé",
        { "identité et coordonnées", "diagnostics et séjours", "médicaments",
          "résultats d'examens", "documents", "autres" },
        "[à compléter : nom et coordonnées du DPO]",
        "dossiers chiffrés (non lisibles sans la clé)",
    },
    [EN] = {
        "Personal data breach notification to the CNIL (GDPR Art. 33) -- draft",
        "Incident", "Controller / contact (DPO)",
        "Nature of the breach",
        "Breach of confidentiality: an authenticated account obtained patients' health "
        "data through the records API outside any care relationship.",
        "Copy of the encrypted database without its key: every record is sealed under a "
        "per-patient key, and the master key lies outside the data directory.",
        "Timeline", "First access", "Last access", "Detection", "Containment",
        "Notification deadline (72 h after detection)", "Incident opened", "not established",
        "Categories and approximate numbers", "Categories of data subjects",
        "patients of the establishment", "Approximate number of data subjects",
        "Approximate number of records", "Categories of data",
        "Likely consequences",
        "Loss of privacy (health data), targeted phishing and identity fraud from the "
        "contact details and social security number, resale of the data.",
        "No data is readable without the key: the risk to the people is low as long as the "
        "key is not compromised.",
        "Measures taken", "Measures proposed",
        "Reset the account's credentials, review its permissions, monitor access, inform "
        "the patients concerned, file a complaint.",
        "Communication to the data subjects (Art. 34)",
        "Required: a letter is prepared for each patient concerned.",
        "Not required: Art. 34(3)(a), the data was encrypted and the key was not "
        "compromised (only ciphertext could be copied).",
        "Source addresses", "Summary",
        { "identity and contact details", "diagnoses and stays", "medications",
          "test results", "documents", "other" },
        "[to complete: DPO name and contact]",
        "encrypted records (unreadable without the key)",
    },
};

/* ---- the contact ------------------------------------------------------------------ */

static int apply_contact(store_txn *t, void *ctx, mv_err *err)
{
    const char *contact = ctx;
    return store_meta_put(t, CONTACT_META, contact, strlen(contact), err);
}

/* The contact to print (caller frees); --contact is kept for next time. */
static char *contact_of(cli_session *cs, const incident_args *a)
{
    if (a->contact) {
        if (cli_audit(cs, "incident.contact", "success", NULL, NULL, apply_contact,
                      (void *)a->contact) != 0)
            return NULL;
        return strdup(a->contact);
    }
    mv_buf b = {0};
    if (store_meta_get(cs->store, CONTACT_META, &b, NULL) != 0 || b.len == 0) {
        mv_buf_free(&b);
        return strdup("");
    }
    char *out = strndup((const char *)b.data, b.len);
    mv_buf_free(&b);
    return out;
}

/* ---- the facts ---------------------------------------------------------------------- */

typedef struct facts {
    json_t *doc;
    server_scope sc;
    const words *w;
    char *contact;
    int ciphertext_only;     /* nothing disclosed in clear */
    int64_t persons, records;
    char first[MV_TIME_STR_MAX], last[MV_TIME_STR_MAX], detected[MV_TIME_STR_MAX],
        contained[MV_TIME_STR_MAX], deadline[MV_TIME_STR_MAX], opened[MV_TIME_STR_MAX];
} facts;

static void when(int64_t us, const words *w, char out[MV_TIME_STR_MAX])
{
    if (us > 0)
        mv_time_format(us, out);
    else
        snprintf(out, MV_TIME_STR_MAX, "%s", w->none);
}

static int64_t member_us(json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(doc, key));
}

/* A stolen store: the number of patients whose sealed records it held. */
static int64_t patients_in_store(cli_session *cs)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_patients(cs->store, &ids, &n, NULL) != 0)
        return 0;
    store_ids_free(ids, n);
    return (int64_t)n;
}

static void settle(cli_session *cs, facts *f)
{
    const words *w = f->w;
    int stolen = strcmp(incident_field(f->doc, "kind"), "stolen-database") == 0;
    f->ciphertext_only = stolen || f->sc.n_patients == 0;
    f->persons = stolen ? patients_in_store(cs) : (int64_t)f->sc.n_patients;
    f->records = f->sc.records;
    when(f->sc.first_us, w, f->first);
    when(f->sc.last_us, w, f->last);
    when(member_us(f->doc, "detected_at_us"), w, f->detected);
    when(member_us(f->doc, "contained_at_us"), w, f->contained);
    when(member_us(f->doc, "opened_at_us"), w, f->opened);
    int64_t detected = member_us(f->doc, "detected_at_us");
    when(detected > 0 ? detected + DEADLINE_US : 0, w, f->deadline);
}

/* ---- Markdown ------------------------------------------------------------------------- */

static void md_measures(const facts *f)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(f->doc, "measures"), i, m)
        printf("- %s: %s\n", incident_field(m, "at"), incident_field(m, "what"));
    if (json_array_size(json_object_get(f->doc, "measures")) == 0)
        printf("- %s\n", f->w->none);
}

static void md_categories(const facts *f)
{
    const words *w = f->w;
    if (f->ciphertext_only && f->persons > 0) {
        printf("- %s: %" PRId64 "\n", w->encrypted, f->persons);
        return;
    }
    for (int c = 0; c < SCOPE_CAT_COUNT; c++)
        if (f->sc.category_patients[c] > 0)
            printf("- %s: %" PRId64 " patient(s), %" PRId64 " record(s)\n", w->cat[c],
                   f->sc.category_patients[c], f->sc.category_records[c]);
}

static void md_report(const facts *f)
{
    const words *w = f->w;
    printf("# %s\n\n", w->title);
    printf("- %s: %s\n", w->incident, incident_field(f->doc, "id"));
    printf("- %s: %s\n", w->summary, incident_field(f->doc, "summary"));
    printf("- %s: %s\n\n", w->controller, *f->contact ? f->contact : w->missing_contact);
    printf("## %s\n\n%s\n\n", w->nature, f->ciphertext_only &&
           strcmp(incident_field(f->doc, "kind"), "stolen-database") == 0
           ? w->stolen_text : w->nature_text);
    printf("## %s\n\n", w->timeline);
    printf("- %s: %s\n- %s: %s\n- %s: %s\n- %s: %s\n- %s: %s\n- %s: %s\n\n", w->first,
           f->first, w->last, f->last, w->detected, f->detected, w->contained, f->contained,
           w->opened, f->opened, w->deadline, f->deadline);
    printf("## %s\n\n", w->categories);
    printf("- %s: %s\n", w->persons_cat, w->persons_cat_text);
    printf("- %s: %" PRId64 "\n", w->persons, f->persons);
    printf("- %s: %" PRId64 "\n", w->records, f->records);
    printf("- %s:\n", w->data_cat);
    md_categories(f);
    printf("- %s:", w->sources);
    for (size_t i = 0; i < f->sc.n_sources; i++)
        printf(" %s", f->sc.sources[i]);
    printf("\n\n## %s\n\n%s\n\n", w->consequences,
           f->ciphertext_only ? w->stolen_consequences : w->consequences_text);
    printf("## %s\n\n", w->taken);
    md_measures(f);
    printf("\n## %s\n\n%s\n\n", w->proposed, w->proposed_text);
    printf("## %s\n\n%s\n", w->notify, f->ciphertext_only ? w->notify_exempt : w->notify_yes);
}

/* ---- JSON --------------------------------------------------------------------------------- */

static json_t *json_report(const facts *f, const char *lang)
{
    const words *w = f->w;
    json_t *cats = json_array();
    for (int c = 0; c < SCOPE_CAT_COUNT; c++)
        if (f->sc.category_patients[c] > 0)
            json_array_append_new(cats, json_pack("{s:s, s:s, s:I, s:I}", "category",
                                                  server_scope_category_name(c), "label",
                                                  w->cat[c], "patients",
                                                  (json_int_t)f->sc.category_patients[c],
                                                  "records", (json_int_t)f->sc.category_records[c]));
    json_t *scope = incident_scope_json(&f->sc);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s},"
        " s:s, s:I, s:I, s:o, s:s, s:O, s:s, s:{s:b, s:s}, s:o}",
        "lang", lang, "incident", incident_field(f->doc, "id"),
        "summary", incident_field(f->doc, "summary"),
        "contact", *f->contact ? f->contact : w->missing_contact,
        "nature", f->ciphertext_only && strcmp(incident_field(f->doc, "kind"), "stolen-database") == 0
                  ? w->stolen_text : w->nature_text,
        "timeline", "first_access", f->first, "last_access", f->last, "detected", f->detected,
        "contained", f->contained, "opened", f->opened, "notification_deadline", f->deadline,
        "categories_of_persons", w->persons_cat_text,
        "approximate_persons", (json_int_t)f->persons,
        "approximate_records", (json_int_t)f->records,
        "categories_of_data", cats,
        "likely_consequences", f->ciphertext_only ? w->stolen_consequences : w->consequences_text,
        "measures_taken", json_object_get(f->doc, "measures"),
        "measures_proposed", w->proposed_text,
        "patient_notification", "required", !f->ciphertext_only, "reason",
        f->ciphertext_only ? w->notify_exempt : w->notify_yes,
        "scope", scope);
    if (o)
        json_object_set_new(o, "ciphertext_only", json_boolean(f->ciphertext_only));
    return o;
}

/* ---- the command ---------------------------------------------------------------------------- */

static int render(cli_session *cs, const incident_args *a, facts *f)
{
    char ref[80], outcome[64];
    snprintf(ref, sizeof ref, "Incident/%.40s", a->id);
    snprintf(outcome, sizeof outcome, "success: %" PRId64 " person(s)", f->persons);
    if (cs->trail && cli_audit(cs, "incident.report", outcome, ref, NULL, NULL, NULL) != 0)
        return CLI_FAIL;
    if (a->format && strcmp(a->format, "json") == 0) {
        json_t *o = json_report(f, a->lang ? a->lang : "fr");
        if (o == NULL)
            return cli_error("incident report", "the report could not be built");
        cli_print_json_line(o);
        json_decref(o);
    } else {
        md_report(f);
    }
    return CLI_OK;
}

int incident_report_run(cli_session *cs, const incident_args *a)
{
    facts f = { .w = &WORDS[a->lang && strcmp(a->lang, "en") == 0 ? EN : FR] };
    if (a->contact && cs->trail == NULL)
        return cli_error("incident report", "the audit trail refuses new entries");
    f.doc = incident_load(cs, "incident report", a->id);
    if (f.doc == NULL)
        return CLI_FAIL;
    if (incident_scope_of(cs, "incident report", f.doc, &f.sc) != 0) {
        json_decref(f.doc);
        return CLI_FAIL;
    }
    int rc = CLI_FAIL;
    f.contact = contact_of(cs, a);
    if (f.contact) {
        settle(cs, &f);
        rc = render(cs, a, &f);
    }
    free(f.contact);
    server_scope_free(&f.sc);
    json_decref(f.doc);
    return rc;
}
