/*
 * incident_letters.c -- `medvault incident letters`: one plain-language
 * letter per patient whose data was disclosed (GDPR Art. 34).
 *
 * Why it exists: when a breach is likely to put people at high risk, each
 * of them must be told, in clear and plain language, what happened, what
 * was exposed about them and what to watch for.  The list of patients and
 * what each was exposed to comes from the verified scope (nothing
 * decrypted); only then, for each letter, the patient's name and postal
 * address are decrypted -- for this purpose only, and each decryption is
 * recorded first in the audit trail as "incident.letter" naming the
 * patient, with purpose "GDPR Art. 34 notification".  The files are
 * written mode 0600 in a directory of mode 0700: they are personal data.
 */
#include "incident.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PURPOSE "GDPR Art. 34 notification"

enum { FR, EN };

typedef struct letter_words {
    const char *subject, *greeting, *what, *exposed, *records, *done, *done_text,
        *watch, *watch_items, *contact, *cnil, *closing, *cat[SCOPE_CAT_COUNT];
} letter_words;

static const letter_words WORDS[2] = {
    [FR] = {
        "Objet : violation de vos données personnelles (RGPD, article 34)",
        "Madame, Monsieur %s,",
        "Le %s, nous avons constaté qu'un compte informatique de notre établissement a été "
        "utilisé de façon illégitime. Entre le %s et le %s, ce compte a consulté des "
        "informations de votre dossier médical.",
        "Informations vous concernant qui ont été exposées :",
        "document(s)",
        "Ce que nous avons fait :",
        "Le compte a été bloqué et ses connexions coupées le %s. La CNIL a été informée.",
        "Ce à quoi nous vous conseillons d'être attentif :",
        "- Méfiez-vous des courriels, SMS ou appels qui se présentent comme venant de "
        "l'hôpital, de l'Assurance maladie, d'une mutuelle ou de votre banque et vous "
        "demandent des informations, des codes ou un paiement (hameçonnage). Nous ne vous "
        "demanderons jamais vos mots de passe ou vos coordonnées bancaires.\n"
        "- Surveillez vos remboursements de santé (compte ameli) et vos comptes bancaires : "
        "vos nom, adresse et numéro de sécurité sociale peuvent servir à une usurpation "
        "d'identité. En cas de doute, prévenez votre caisse et votre banque.\n"
        "- Si l'on vous contacte en citant des informations de santé, ne répondez pas et "
        "signalez-le-nous.\n",
        "Pour toute question, vous pouvez contacter notre délégué à la protection des "
        "données : %s.",
        "Vous pouvez également adresser une réclamation à la CNIL (www.cnil.fr).",
        "Nous vous prions de nous excuser pour cet incident.",
        { "votre identité et vos coordonnées", "vos diagnostics et séjours",
          "vos médicaments", "vos résultats d'examens", "vos documents médicaux",
          "d'autres informations de votre dossier" },
    },
    [EN] = {
        "Subject: a breach of your personal data (GDPR, Article 34)",
        "Dear %s,",
        "On %s we found that a computer account of our establishment had been misused. "
        "Between %s and %s, that account viewed information from your medical record.",
        "What was exposed about you:",
        "record(s)",
        "What we have done:",
        "The account was blocked and its connections cut on %s. The CNIL has been "
        "notified.",
        "What to watch for:",
        "- Be wary of e-mails, text messages or calls that claim to come from the hospital, "
        "the health insurance, a mutual insurer or your bank and ask for information, codes "
        "or a payment (phishing). We will never ask for your passwords or bank details.\n"
        "- Check your health reimbursements (ameli account) and your bank accounts: your "
        "name, address and social security number could be used for identity fraud. If in "
        "doubt, tell your insurer and your bank.\n"
        "- If someone contacts you quoting health information, do not answer and tell us.\n",
        "For any question, contact our data protection officer: %s.",
        "You may also lodge a complaint with the CNIL (www.cnil.fr).",
        "We apologise for this incident.",
        { "your identity and contact details", "your diagnoses and hospital stays",
          "your medications", "your test results", "your medical documents",
          "other information in your record" },
    },
};

/* ---- the patient's name and address (decrypted here, for this letter only) ---------- */

typedef struct addressee {
    char name[200], family[100], lines[400];
} addressee;

static void append(char *out, size_t cap, const char *sep, const char *s)
{
    size_t used = strlen(out);
    if (s && *s)
        snprintf(out + used, cap - used, "%s%s", used ? sep : "", s);
}

static void read_addressee(json_t *p, addressee *a)
{
    memset(a, 0, sizeof *a);
    json_t *name = json_array_get(json_object_get(p, "name"), 0), *v;
    size_t i;
    json_array_foreach(json_object_get(name, "given"), i, v)
        append(a->name, sizeof a->name, " ", json_string_value(v));
    snprintf(a->family, sizeof a->family, "%s", incident_field(name, "family"));
    append(a->name, sizeof a->name, " ", a->family);
    json_t *addr = json_array_get(json_object_get(p, "address"), 0);
    json_array_foreach(json_object_get(addr, "line"), i, v)
        append(a->lines, sizeof a->lines, "\n", json_string_value(v));
    char city[160] = "";
    append(city, sizeof city, " ", incident_field(addr, "postalCode"));
    append(city, sizeof city, " ", incident_field(addr, "city"));
    append(a->lines, sizeof a->lines, "\n", city);
}

/* Record the decryption, then decrypt the Patient. */
static int load_addressee(cli_session *cs, const char *incident, const char *patient,
                          addressee *a, mv_err *err)
{
    char ref[160], outcome[96];
    snprintf(ref, sizeof ref, "Patient/%s", patient);
    snprintf(outcome, sizeof outcome, "success: letter for incident %.40s", incident);
    audit_event ev = { .actor = cs->actor, .action = "incident.letter", .outcome = outcome,
                       .resources = ref, .patient = patient, .source = "cli",
                       .purpose = PURPOSE };
    if (audit_record(cs->trail, &ev, 1, NULL, NULL, NULL, err) != 0)
        return -1;
    store_resource r;
    if (store_get(cs->store, "Patient", patient, 0, &r, err) != 0)
        return -1;
    json_t *doc = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    store_resource_free(&r);
    if (doc == NULL)
        return mv_fail(err, MV_E_INTEGRITY, "Patient/%s is not readable", patient);
    read_addressee(doc, a);
    json_decref(doc);
    return 0;
}

/* ---- the letter ------------------------------------------------------------------------- */

typedef struct letter_ctx {
    const letter_words *w;
    json_t *doc;
    const char *contact;
    char detected[11], contained[11];
} letter_ctx;

static void date_of(int64_t us, char out[11])
{
    char t[MV_TIME_STR_MAX];
    mv_time_format(us, t);
    snprintf(out, 11, "%.10s", t);
}

/* Print tmpl with each "%s" replaced by the next of args, in order (the
 * sentences are data, per language, so they are not printf formats). */
static void put_filled(FILE *f, const char *tmpl, const char *const *args, size_t n)
{
    size_t k = 0;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '%' && p[1] == 's' && k < n) {
            fputs(args[k++], f);
            p++;
        } else {
            fputc(*p, f);
        }
    }
}

static int write_letter(const letter_ctx *lc, const server_scope_patient *p,
                        const addressee *a, const char *path, mv_err *err)
{
    const letter_words *w = lc->w;
    char first[11], last[11];
    date_of(p->first_us, first);
    date_of(p->last_us, last);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    fprintf(f, "%s\n%s\n\n%s\n\n", a->name, a->lines, w->subject);
    const char *greet[] = { *a->family ? a->family : a->name };
    put_filled(f, w->greeting, greet, 1);
    fprintf(f, "\n\n");
    const char *what[] = { lc->detected, first, last };
    put_filled(f, w->what, what, 3);
    fprintf(f, "\n\n%s\n", w->exposed);
    for (int c = 0; c < SCOPE_CAT_COUNT; c++)
        if (p->records[c] > 0)
            fprintf(f, "- %s (%" PRId64 " %s)\n", w->cat[c], p->records[c], w->records);
    fprintf(f, "\n%s\n", w->done);
    const char *done[] = { lc->contained };
    put_filled(f, w->done_text, done, 1);
    fprintf(f, "\n\n%s\n%s\n", w->watch, w->watch_items);
    const char *contact[] = { lc->contact };
    put_filled(f, w->contact, contact, 1);
    fprintf(f, "\n%s\n\n%s\n", w->cnil, w->closing);
    fclose(f);
    int rc = text ? mv_file_write_atomic(path, 0600, text, len, err)
                  : mv_fail(err, MV_E_NOMEM, "out of memory");
    free(text);
    return rc;
}

static int one_letter(cli_session *cs, const letter_ctx *lc, const char *dir,
                      const server_scope_patient *p)
{
    char name[200];
    mv_err err;
    snprintf(name, sizeof name, "letter-%s.txt", p->id);
    char *path = mv_path_join(dir, name, &err);
    addressee a;
    int rc = path ? load_addressee(cs, incident_field(lc->doc, "id"), p->id, &a, &err) : -1;
    if (rc == 0)
        rc = write_letter(lc, p, &a, path, &err);
    memset(&a, 0, sizeof a);
    free(path);
    if (rc != 0)
        cli_error("incident letters", "patient %s: %s", p->id, err.msg);
    return rc;
}

static char *stored_contact(cli_session *cs, const letter_words *w)
{
    mv_buf b = {0};
    char *out = NULL;
    if (store_meta_get(cs->store, "incident.contact", &b, NULL) == 0 && b.len)
        out = strndup((const char *)b.data, b.len);
    mv_buf_free(&b);
    return out ? out : strdup(w == &WORDS[FR] ? "[à compléter]" : "[to complete]");
}

static int write_all(cli_session *cs, const incident_args *a, letter_ctx *lc,
                     const server_scope *sc)
{
    size_t failed = 0;
    for (size_t i = 0; i < sc->n_patients; i++)
        failed += one_letter(cs, lc, a->out, &sc->patients[i]) != 0;
    printf("%zu letter(s) written in %s", sc->n_patients - failed, a->out);
    if (failed)
        printf(", %zu failed", failed);
    printf("\n");
    return failed ? CLI_FAIL : CLI_OK;
}

int incident_letters_run(cli_session *cs, const incident_args *a)
{
    if (mkdir(a->out, 0700) != 0 && errno != EEXIST)
        return cli_error("incident letters", "cannot create %s: %s", a->out, strerror(errno));
    letter_ctx lc = { .w = &WORDS[a->lang && strcmp(a->lang, "en") == 0 ? EN : FR] };
    lc.doc = incident_load(cs, "incident letters", a->id);
    if (lc.doc == NULL)
        return CLI_FAIL;
    server_scope sc;
    if (incident_scope_of(cs, "incident letters", lc.doc, &sc) != 0) {
        json_decref(lc.doc);
        return CLI_FAIL;
    }
    date_of(json_integer_value(json_object_get(lc.doc, "detected_at_us")), lc.detected);
    date_of(json_integer_value(json_object_get(lc.doc, "contained_at_us")), lc.contained);
    char *contact = stored_contact(cs, lc.w);
    lc.contact = contact ? contact : "";
    int rc = write_all(cs, a, &lc, &sc);
    free(contact);
    server_scope_free(&sc);
    json_decref(lc.doc);
    return rc;
}
