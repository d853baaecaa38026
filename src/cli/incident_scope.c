/*
 * incident_scope.c -- `medvault incident scope`: who was exposed, and to
 * what, as a table, CSV or JSON.
 *
 * Why it exists: the notification (Art. 33) needs the categories and the
 * numbers of people and records, the letters (Art. 34) need the list of
 * patients, and an investigator needs the dates and addresses.  All of it
 * comes from server_incident_scope() -- the verified trail, nothing
 * decrypted -- and is printed here in the form asked for.  The JSON names
 * every disclosed patient by id.
 */
#include "incident.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void time_or_dash(int64_t us, char out[MV_TIME_STR_MAX])
{
    if (us > 0 && us < INT64_MAX)
        mv_time_format(us, out);
    else
        snprintf(out, MV_TIME_STR_MAX, "-");
}

int incident_scope_of(cli_session *cs, const char *cmd, json_t *doc, server_scope *out)
{
    json_t *actor = json_array_get(json_object_get(doc, "actors"), 0);
    json_int_t to = json_integer_value(json_object_get(doc, "contained_at_us"));
    mv_err err;
    /* the contained account made no disclosure after its containment; a
     * later unlock (found benign) must not widen the incident */
    if (server_incident_scope(cs->store, actor ? incident_field(actor, "id") : "", 0,
                              to > 0 ? to : INT64_MAX, out, &err) != 0)
        return cli_error(cmd, "%s", err.msg);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------------- */

static json_t *categories_json(const int64_t *records, const int64_t *patients)
{
    json_t *o = json_object();
    for (int c = 0; c < SCOPE_CAT_COUNT; c++) {
        json_t *v = patients ? json_pack("{s:I, s:I}", "patients", (json_int_t)patients[c],
                                         "records", (json_int_t)records[c])
                             : json_integer(records[c]);
        json_object_set_new(o, server_scope_category_name(c), v);
    }
    return o;
}

static json_t *strings_json(char **v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static json_t *patient_json(const server_scope_patient *p)
{
    char first[MV_TIME_STR_MAX], last[MV_TIME_STR_MAX];
    mv_time_format(p->first_us, first);
    mv_time_format(p->last_us, last);
    json_t *types = json_object();
    for (size_t k = 0; k < p->n_types; k++)
        json_object_set_new(types, p->types[k].type,
                            json_pack("{s:I, s:I}", "records", (json_int_t)p->types[k].records,
                                      "accesses", (json_int_t)p->types[k].accesses));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", p->id, "first_access", first,
                     "last_access", last, "categories", categories_json(p->records, NULL),
                     "types", types, "sources", strings_json(p->sources, p->n_sources));
}

json_t *incident_scope_json(const server_scope *sc)
{
    char from[MV_TIME_STR_MAX], to[MV_TIME_STR_MAX], first[MV_TIME_STR_MAX],
        last[MV_TIME_STR_MAX];
    time_or_dash(sc->from_us, from);
    time_or_dash(sc->to_us, to);
    time_or_dash(sc->first_us, first);
    time_or_dash(sc->last_us, last);
    json_t *patients = json_array();
    for (size_t i = 0; i < sc->n_patients; i++)
        json_array_append_new(patients, patient_json(&sc->patients[i]));
    return json_pack("{s:s, s:{s:s, s:s}, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:o, s:o, s:o}",
                     "actor", sc->actor_id, "window", "from", from, "to", to,
                     "verified_entries", (json_int_t)sc->verified,
                     "withheld_not_counted", (json_int_t)sc->withheld,
                     "patients_count", (json_int_t)sc->n_patients,
                     "records", (json_int_t)sc->records, "scanned_entries",
                     (json_int_t)sc->scanned, "first_access", first, "last_access", last,
                     "sources", strings_json(sc->sources, sc->n_sources),
                     "categories", categories_json(sc->category_records, sc->category_patients),
                     "patients", patients);
}

/* ---- table and CSV --------------------------------------------------------------------- */

/* "Observation:3;Patient:1" (or with spaces for the table). */
static void types_text(const server_scope_patient *p, char sep, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < p->n_types && used < cap; k++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s:%" PRId64, k ? (char[]){ sep, 0 } : "",
                                 p->types[k].type, p->types[k].records);
}

static void sources_text(char **v, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ";" : "", v[i]);
}

static void print_csv(const server_scope *sc)
{
    char types[1024], sources[512], first[MV_TIME_STR_MAX], last[MV_TIME_STR_MAX];
    printf("patient,first_access,last_access");
    for (int c = 0; c < SCOPE_CAT_COUNT; c++)
        printf(",%s", server_scope_category_name(c));
    printf(",types,sources\n");
    for (size_t i = 0; i < sc->n_patients; i++) {
        const server_scope_patient *p = &sc->patients[i];
        mv_time_format(p->first_us, first);
        mv_time_format(p->last_us, last);
        types_text(p, ';', types, sizeof types);
        sources_text(p->sources, p->n_sources, sources, sizeof sources);
        printf("%s,%s,%s", p->id, first, last);
        for (int c = 0; c < SCOPE_CAT_COUNT; c++)
            printf(",%" PRId64, p->records[c]);
        printf(",\"%s\",\"%s\"\n", types, sources);
    }
}

static void print_table(const server_scope *sc, const char *username)
{
    char types[1024], sources[512], a[MV_TIME_STR_MAX], b[MV_TIME_STR_MAX];
    time_or_dash(sc->from_us, a);
    time_or_dash(sc->to_us, b);
    printf("actor %s (%s), window %s .. %s\n", username, sc->actor_id, a, b);
    printf("audit trail verified: %" PRId64 " entries\n\n", sc->verified);
    printf("%-34s  %-20s  %-20s  %4s %4s %4s %4s %4s %4s  %s\n", "PATIENT", "FIRST ACCESS",
           "LAST ACCESS", "IDEN", "DIAG", "MEDS", "RES", "DOCS", "OTH", "TYPES / SOURCES");
    for (size_t i = 0; i < sc->n_patients; i++) {
        const server_scope_patient *p = &sc->patients[i];
        mv_time_format(p->first_us, a);
        mv_time_format(p->last_us, b);
        types_text(p, ' ', types, sizeof types);
        sources_text(p->sources, p->n_sources, sources, sizeof sources);
        printf("%-34s  %-20.19s  %-20.19s", p->id, a, b);
        for (int c = 0; c < SCOPE_CAT_COUNT; c++)
            printf(" %4" PRId64, p->records[c]);
        printf("  %s / %s\n", types, sources);
    }
    printf("\n%zu patient(s), %" PRId64 " record(s) disclosed", sc->n_patients, sc->records);
    if (sc->withheld)
        printf("; %" PRId64 " withheld disclosure(s) not counted", sc->withheld);
    printf("\n");
}

/* ---- the command -------------------------------------------------------------------------- */

static int actor_scope(cli_session *cs, const incident_args *a, server_scope *sc)
{
    auth *au;
    auth_account acct;
    mv_err err;
    auth_config cfg = auth_default_config();
    int64_t from = 0, to = INT64_MAX;
    if ((a->from && mv_time_parse(a->from, &from, &err) != 0) ||
        (a->to && mv_time_parse(a->to, &to, &err) != 0))
        return cli_error("incident scope", "%s", err.msg);
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error("incident scope", "%s", err.msg);
    int rc = auth_account_get(au, a->actor, &acct, &err) == 0 ||
             auth_account_get_id(au, a->actor, &acct, &err) == 0;
    auth_close(au);
    if (!rc)
        return cli_error("incident scope", "no account '%s'", a->actor);
    if (server_incident_scope(cs->store, acct.id, from, to, sc, &err) != 0)
        return cli_error("incident scope", "%s", err.msg);
    return 0;
}

static int record_scope(cli_session *cs, const incident_args *a, const server_scope *sc)
{
    char outcome[96], ref[80];
    if (cs->trail == NULL)       /* a damaged trail: the scope was refused anyway */
        return 0;
    snprintf(outcome, sizeof outcome, "success: %zu patient(s), %" PRId64 " record(s)",
             sc->n_patients, sc->records);
    snprintf(ref, sizeof ref, "Incident/%.40s", a->id ? a->id : "-");
    return cli_audit(cs, "incident.scope", outcome, a->id ? ref : NULL, NULL, NULL, NULL);
}

int incident_scope_run(cli_session *cs, const incident_args *a)
{
    server_scope sc;
    if (a->id) {
        json_t *doc = incident_load(cs, "incident scope", a->id);
        int rc = doc ? incident_scope_of(cs, "incident scope", doc, &sc) : CLI_FAIL;
        json_decref(doc);
        if (rc != 0)
            return CLI_FAIL;
    } else if (actor_scope(cs, a, &sc) != 0) {
        return CLI_FAIL;
    }
    int rc = record_scope(cs, a, &sc) == 0 ? CLI_OK : CLI_FAIL;
    if (rc == CLI_OK && a->format && strcmp(a->format, "json") == 0) {
        json_t *o = incident_scope_json(&sc);
        if (a->id)
            json_object_set_new(o, "incident", json_string(a->id));
        cli_print_json_line(o);
        json_decref(o);
    } else if (rc == CLI_OK && a->format && strcmp(a->format, "csv") == 0) {
        print_csv(&sc);
    } else if (rc == CLI_OK) {
        char name[AUTH_NAME_MAX];
        incident_username(cs, sc.actor_id, name, sizeof name);
        print_table(&sc, name);
    }
    server_scope_free(&sc);
    return rc;
}
