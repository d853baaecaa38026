/*
 * cmd_leak.c -- `medvault leak check FILE`: is this leaked file ours, whose
 * patients are in it, and which account or export did it come from?
 *
 * Why it exists: after the 2024 breach the hospital learnt from the outside,
 * a week late, that 758,912 patients' data was for sale.  Given the dump, an
 * operator must know in seconds how many rows are this hospital's patients
 * (and which, by id, for the incident's scope and letters), and -- through
 * the decoys and watermarks in it -- which output and which account it came
 * from.  Nothing is decrypted to answer: rows are matched against the blind
 * indexes (leak_match.c); only the registry records of the decoys found are
 * opened, to read whom their output was handed to.
 *
 * The check is audited as one "leak.check" event carrying counts only: the
 * file's identifiers never enter the trail.  Exit 0 when no row matches, 1
 * when some do (or on a failure), 2 on a usage error or an unreadable file.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"
#include "leak.h"

static const char usage[] =
    "usage: medvault leak check FILE [--format csv|ndjson|json] [--json]\n"
    "                               [--open-incident]\n"
    "(with --data DIR and --key-file PATH, --passphrase-stdin or\n"
    "--passphrase-file PATH)\n\n"
    "Check a leaked file (as found for sale) against the store's patients\n"
    "without decrypting them.  FILE is CSV (any separator, column names in\n"
    "French or English, in any order, or none), FHIR NDJSON (one resource\n"
    "per line) or JSON (an array or a Bundle); the format is guessed unless\n"
    "--format says it.  NIRs (with or without spaces or key), family name\n"
    "with birth date (12/05/1985, 1985-05-12, ...), phones (06.. or +33..),\n"
    "e-mails and FHIR Patient ids are matched through the blind indexes.\n\n"
    "Reports the rows read, the rows that could not be parsed (counted, never\n"
    "fatal), the rows that are this hospital's patients and which patients,\n"
    "and the decoys and watermarks present: a watermark names the output it\n"
    "was planted in and the account it was handed to.  --open-incident opens\n"
    "(and contains) an incident about each account a watermark names.\n"
    "--json prints the report as one JSON object.\n\n"
    "Exit status: 0 no row matches, 1 some rows match (or a failure),\n"
    "2 usage error or unreadable file.\n";

static int run_leak(int argc, char **argv);
const cli_command cli_cmd_leak = {
    "leak", run_leak, "check a leaked file against the store (leak tracing)", usage
};

#define FILE_MAX ((size_t)4 << 30)
#define UTF8_BOM "\xEF\xBB\xBF"

typedef struct leak_args {
    cli_store_opts store;
    const char *path;
    leak_format format;
    int json;
    int open_incident;
    mv_buf data;                 /* the file, read before the store is opened */
} leak_args;

/* What a check found, beyond the matcher's counts. */
typedef struct leak_result {
    leak_matcher *m;
    leak_columns cols;
    int is_csv;
    const leak_patient *patients;
    size_t n_patients, n_real, n_watermarks;
    json_t *decoys;              /* registry documents of the decoys found */
    json_t *incidents;           /* incidents opened (--open-incident) */
} leak_result;

/* ---- Reading and matching ------------------------------------------------------------ */

static int read_rows(const leak_args *a, leak_result *res, mv_err *err)
{
    const char *data = (const char *)a->data.data;
    size_t len = a->data.len;
    if (len >= 3 && memcmp(data, UTF8_BOM, 3) == 0) {
        data += 3;
        len -= 3;
    }
    leak_format f = a->format == LEAK_FMT_AUTO ? leak_guess_format(data, len) : a->format;
    leak_sink sink = leak_matcher_sink(res->m);
    res->is_csv = f == LEAK_FMT_CSV;
    if (f == LEAK_FMT_CSV)
        return leak_read_csv(data, len, &sink, &res->cols, err);
    if (f == LEAK_FMT_NDJSON)
        return leak_read_ndjson(data, len, &sink, err);
    return leak_read_json(data, len, &sink, err);
}

/* The registry's record of every decoy found (a decrypted _Decoy record,
 * not a patient's). */
static int load_decoys(mv_store *s, leak_result *res, mv_err *err)
{
    res->decoys = json_array();
    for (size_t i = 0; res->decoys && i < res->n_patients; i++) {
        const leak_patient *p = &res->patients[i];
        if (!p->decoy)
            continue;
        char *text = NULL;
        if (server_decoy_get(s, p->id, &text, err) != 0)
            return -1;
        json_t *doc = json_loads(text, 0, NULL);
        free(text);
        if (doc == NULL)
            return mv_fail(err, MV_E_INTEGRITY, "the decoy record of Patient/%s is not "
                           "readable", p->id);
        json_object_set_new(doc, "rows", json_integer((json_int_t)p->rows));
        json_object_set_new(doc, "by", json_string(leak_by_name(p->by)));
        const char *purpose = json_string_value(json_object_get(doc, "purpose"));
        res->n_watermarks += purpose && strcmp(purpose, "watermark") == 0;
        json_array_append_new(res->decoys, doc);
    }
    if (res->decoys == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    res->n_real = res->n_patients - json_array_size(res->decoys);
    return 0;
}

/* One leak.check event: counts only, never a value from the file. */
static int audit_check(cli_session *cs, const leak_result *res)
{
    const leak_counts *c = leak_matcher_counts(res->m);
    char outcome[256];
    snprintf(outcome, sizeof outcome, "success: rows=%zu unparseable=%zu matched=%zu "
             "patients=%zu decoys=%zu watermarks=%zu", c->rows, c->unparseable,
             c->matched, res->n_real, json_array_size(res->decoys), res->n_watermarks);
    return cli_audit(cs, "leak.check", outcome, NULL, NULL, NULL, NULL);
}

/* ---- Incidents --------------------------------------------------------------------------- */

static const char *watermark_actor(json_t *decoy)
{
    const char *purpose = json_string_value(json_object_get(decoy, "purpose"));
    if (purpose == NULL || strcmp(purpose, "watermark") != 0)
        return NULL;
    const char *actor = json_string_value(json_object_get(json_object_get(decoy, "output"),
                                                          "actor"));
    if (actor != NULL && strncmp(actor, "user:", 5) == 0)
        actor += 5;
    return actor;
}

static int actor_seen(json_t *decoys, size_t before, const char *actor)
{
    for (size_t j = 0; j < before; j++) {
        const char *other = watermark_actor(json_array_get(decoys, j));
        if (other && strcmp(other, actor) == 0)
            return 1;
    }
    return 0;
}

static int open_one(cli_session *cs, auth *au, json_t *decoy, leak_result *res, mv_err *err)
{
    char summary[512];
    snprintf(summary, sizeof summary, "leak check: a leaked file holds the watermark of "
             "output %s handed to this account (%zu rows are patients of the hospital)",
             json_string_value(json_object_get(json_object_get(decoy, "output"),
                                               "reference")),
             leak_matcher_counts(res->m)->matched);
    char *text = NULL;
    if (server_incident_open_for(cs->store, cs->trail, au, watermark_actor(decoy), summary,
                                 cs->actor, &text, err) != 0)
        return -1;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_array_append_new(res->incidents, doc ? doc : json_null());
    return 0;
}

static int open_incidents(cli_session *cs, leak_result *res, mv_err *err)
{
    res->incidents = json_array();
    auth *au = NULL;
    auth_config acfg = auth_default_config();
    if (res->n_watermarks == 0)
        return 0;
    if (auth_open(cs->store, cs->trail, &acfg, &au, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(res->decoys); i++) {
        json_t *d = json_array_get(res->decoys, i);
        const char *actor = watermark_actor(d);
        if (actor != NULL && !actor_seen(res->decoys, i, actor))
            rc = open_one(cs, au, d, res, err);
    }
    auth_close(au);
    return rc;
}

/* ---- Report ------------------------------------------------------------------------------- */

static json_t *rejected_json(const leak_counts *c)
{
    json_t *o = json_object();
    for (int f = 0; f < LEAK_FIELDS; f++)
        if (c->rejected[f] > 0)
            json_object_set_new(o, leak_field_name(f), json_integer((json_int_t)c->rejected[f]));
    return o;
}

static json_t *columns_json(const leak_result *res)
{
    if (!res->is_csv)
        return json_null();
    json_t *o = json_object();
    for (int f = 0; f < LEAK_FIELDS; f++)
        if (res->cols.col[f] >= 0)
            json_object_set_new(o, leak_field_name(f), json_integer(res->cols.col[f] + 1));
    return o;
}

static json_t *report_json(const leak_args *a, leak_result *res)
{
    const leak_counts *c = leak_matcher_counts(res->m);
    size_t n_bad;
    const size_t *bad = leak_matcher_bad_lines(res->m, &n_bad);
    json_t *lines = json_array(), *patients = json_array();
    for (size_t i = 0; i < n_bad; i++)
        json_array_append_new(lines, json_integer((json_int_t)bad[i]));
    for (size_t i = 0; i < res->n_patients; i++)
        if (!res->patients[i].decoy)
            json_array_append_new(patients, json_pack("{s:s, s:I, s:s}", "id",
                                  res->patients[i].id, "rows",
                                  (json_int_t)res->patients[i].rows, "by",
                                  leak_by_name(res->patients[i].by)));
    return json_pack("{s:s, s:o, s:I, s:I, s:o, s:I, s:o, s:I, s:o, s:O, s:I, s:O*}",
                     "file", a->path, "columns", columns_json(res),
                     "rows", (json_int_t)c->rows, "unparseable", (json_int_t)c->unparseable,
                     "unparseable_lines", lines, "matched_rows", (json_int_t)c->matched,
                     "rejected", rejected_json(c), "patients_matched",
                     (json_int_t)res->n_real, "patients", patients, "decoys", res->decoys,
                     "watermarks", (json_int_t)res->n_watermarks, "incidents",
                     res->incidents);
}

static const char *member(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "?";
}

static void print_decoys(json_t *decoys)
{
    size_t i;
    json_t *d;
    json_array_foreach(decoys, i, d) {
        json_t *out = json_object_get(d, "output");
        if (strcmp(member(d, "purpose"), "watermark") == 0)
            printf("  Patient/%s  WATERMARK of output %s, handed to %s on %s\n",
                   member(d, "patient"), member(out, "reference"), member(out, "actor"),
                   member(out, "at"));
        else
            printf("  Patient/%s  decoy planted %s: the file was read out of this "
                   "store (no single output named)\n", member(d, "patient"),
                   member(d, "planted_at"));
    }
    if (json_array_size(decoys) == 0)
        printf("decoys present: none\n");
}

static void print_report(const leak_args *a, const leak_result *res)
{
    const leak_counts *c = leak_matcher_counts(res->m);
    size_t n_bad;
    const size_t *bad = leak_matcher_bad_lines(res->m, &n_bad);
    printf("leak check of %s\n", a->path);
    printf("rows read: %zu\n", c->rows);
    printf("rows unparseable: %zu", c->unparseable);
    for (size_t i = 0; i < n_bad; i++)
        printf("%s%zu", i ? ", " : " (lines ", bad[i]);
    printf("%s\n", n_bad ? (n_bad < c->unparseable ? ", ...)" : ")") : "");
    for (int f = 0, first = 1; f < LEAK_FIELDS; f++)
        if (c->rejected[f] > 0) {
            printf("%s%s %zu", first ? "values rejected as malformed: " : ", ",
                   leak_field_name(f), c->rejected[f]);
            first = 0;
        }
    printf("%s", c->rejected[LEAK_NIR] + c->rejected[LEAK_BIRTH] + c->rejected[LEAK_FAMILY] +
                  c->rejected[LEAK_PHONE] + c->rejected[LEAK_EMAIL] ? "\n" : "");
    printf("rows matching this hospital's patients: %zu (%zu patients)\n", c->matched,
           res->n_real);
    for (size_t i = 0; i < res->n_patients; i++)
        if (!res->patients[i].decoy)
            printf("  Patient/%s  by %s (%zu row%s)\n", res->patients[i].id,
                   leak_by_name(res->patients[i].by), res->patients[i].rows,
                   res->patients[i].rows == 1 ? "" : "s");
    if (json_array_size(res->decoys) > 0)
        printf("decoys present: %zu (%zu watermark%s)\n", json_array_size(res->decoys),
               res->n_watermarks, res->n_watermarks == 1 ? "" : "s");
    print_decoys(res->decoys);
    size_t i;
    json_t *inc;
    json_array_foreach(res->incidents, i, inc)
        printf("incident %s opened about %s: account locked, sessions revoked\n",
               member(inc, "id"), member(json_array_get(json_object_get(inc, "actors"), 0),
                                         "username"));
}

/* ---- The check ---------------------------------------------------------------------------- */

static void result_free(leak_result *res)
{
    json_decref(res->decoys);
    json_decref(res->incidents);
    leak_matcher_close(res->m);
}

/* Read every row, match it, and read the registry records of the decoys. */
static int find_matches(cli_session *cs, const leak_args *a, leak_result *res, mv_err *err)
{
    if (leak_matcher_open(cs->store, &res->m, err) != 0 || read_rows(a, res, err) != 0)
        return -1;
    res->patients = leak_matcher_patients(res->m, &res->n_patients);
    return load_decoys(cs->store, res, err);
}

static int check_store(cli_session *cs, const void *arg)
{
    const leak_args *a = arg;
    leak_result res = { .m = NULL };
    mv_err err;
    if (find_matches(cs, a, &res, &err) != 0) {
        cli_error("leak check", "%s", err.msg);
        cli_audit(cs, "leak.check", "failure", NULL, NULL, NULL, NULL);
        result_free(&res);
        return CLI_FAIL;
    }
    if (audit_check(cs, &res) != 0) {
        result_free(&res);
        return CLI_FAIL;
    }
    if (a->open_incident && open_incidents(cs, &res, &err) != 0) {
        cli_error("leak check", "opening the incident: %s", err.msg);
        result_free(&res);
        return CLI_FAIL;
    }
    if (a->json) {
        json_t *report = report_json(a, &res);
        cli_print_json_line(report);
        json_decref(report);
    } else {
        print_report(a, &res);
    }
    int matched = leak_matcher_counts(res.m)->matched > 0;
    result_free(&res);
    return matched ? CLI_FAIL : CLI_OK;
}

/* ---- Arguments ------------------------------------------------------------------------------ */

static int parse_format(const char *v, leak_format *out)
{
    static const leak_format all[] = { LEAK_FMT_CSV, LEAK_FMT_NDJSON, LEAK_FMT_JSON };
    for (size_t i = 0; i < 3; i++)
        if (strcmp(v, leak_format_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return cli_usage_error(&cli_cmd_leak, "--format is csv, ndjson or json");
}

static int parse(int argc, char **argv, leak_args *a)
{
    enum { OPT_FORMAT = CLI_OPT_FIRST_FREE, OPT_JSON, OPT_INCIDENT };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "format", required_argument, NULL, OPT_FORMAT },
        { "json", no_argument, NULL, OPT_JSON },
        { "open-incident", no_argument, NULL, OPT_INCIDENT },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_leak); return -1;
        case OPT_FORMAT:
            if (parse_format(optarg, &a->format) != 0)
                return CLI_USAGE;
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_INCIDENT: a->open_incident = 1; break;
        default:
            return cli_usage_error(&cli_cmd_leak, optopt ? "option '%s' needs a value"
                                   : "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_leak, "missing action (check)");
    if (strcmp(argv[optind], "check") != 0)
        return cli_usage_error(&cli_cmd_leak, "unknown action '%s' (check)", argv[optind]);
    if (++optind >= argc)
        return cli_usage_error(&cli_cmd_leak, "check needs the FILE to check");
    a->path = argv[optind++];
    if (optind < argc)
        return cli_usage_error(&cli_cmd_leak, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static int run_leak(int argc, char **argv)
{
    leak_args a = { .format = LEAK_FMT_AUTO };
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    mv_err err;
    if (mv_file_read(a.path, FILE_MAX, &a.data, &err) != 0) {
        cli_error("leak check", "cannot read %s: %s", a.path, err.msg);
        return CLI_USAGE;
    }
    rc = cli_run_on_store(&cli_cmd_leak, &a.store, CLI_OPEN_DEFAULT, check_store, &a);
    mv_buf_free(&a.data);
    return rc;
}
