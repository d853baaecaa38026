/*
 * cmd_incident.c -- `medvault incident`: the breach register from the
 * command line, and the way into scope, notification and letters.
 *
 * Why it exists: when a breach is found the first minutes matter (stop the
 * account, write down what is known) and so does the 72-hour deadline of
 * GDPR Art. 33.  `incident open` contains the account and records the
 * incident in one step; `scope`, `report` and `letters` turn the verified
 * trail into the notification and the patients' letters.  The commands act
 * on the store directly (the server may run at the same time: both append
 * to the same trail), as the actor "cli:<unix user>"; every read and change
 * is recorded in the trail.
 */
#include "incident.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: medvault incident open --actor USER | --alert ID | --kind stolen-database\n"
    "                              [--summary TEXT] [--block-sources] [--json]\n"
    "       medvault incident list [--status open|closed] [--json]\n"
    "       medvault incident show ID [--json]\n"
    "       medvault incident close ID [--note TEXT]\n"
    "       medvault incident scope ID | --actor USER [--from T1] [--to T2]\n"
    "                              [--format table|csv|json]\n"
    "       medvault incident report ID [--lang fr|en] [--format md|json] [--contact TEXT]\n"
    "       medvault incident letters ID --out DIR [--lang fr|en]\n"
    "(each with --data DIR and --key-file PATH, --passphrase-stdin or\n"
    "--passphrase-file PATH)\n\n"
    "open     record a breach (GDPR Art. 33(5) register) and contain it: the\n"
    "         account's sessions are revoked and the account locked; with\n"
    "         --alert the alert's actor, source and time are taken (and the\n"
    "         alert is closed as an incident); --block-sources also blocks the\n"
    "         addresses the account used: the running server refuses every\n"
    "         request from them (logins too) until the incident is closed.\n"
    "         --kind stolen-database: a copied store without its key.\n"
    "list     the incidents, newest first; show: one with its measures.\n"
    "close    close an open incident.\n"
    "scope    after verifying the audit trail (refused, exit 1, when it does\n"
    "         not verify): the patients whose data the actor was sent, per\n"
    "         patient the resource types and counts by GDPR data category,\n"
    "         first and last access, source addresses.  Times are RFC 3339.\n"
    "report   the CNIL notification draft (Art. 33) with the scope's figures\n"
    "         and the timeline.  --contact sets the DPO contact it names (kept\n"
    "         in the store for the next reports).\n"
    "letters  one plain-language Art. 34 letter per affected patient in DIR\n"
    "         (French by default); each patient's name and address are\n"
    "         decrypted only for that letter, and that is audited.\n";

static int run_incident(int argc, char **argv);
const cli_command cli_cmd_incident = {
    "incident", run_incident, "record, contain, scope and notify a data breach", usage
};

const char *incident_field(json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return v ? v : "";
}

json_t *incident_load(cli_session *cs, const char *cmd, const char *id)
{
    char *text = NULL;
    mv_err err;
    if (server_incident_get(cs->store, id, &text, NULL, &err) != 0) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        cli_error(cmd, "incident %s could not be read", id);
    return doc;
}

void incident_username(cli_session *cs, const char *account_id, char *out, size_t cap)
{
    auth *au;
    auth_account a;
    auth_config cfg = auth_default_config();
    snprintf(out, cap, "%s", account_id);
    if (auth_open(cs->store, cs->trail, &cfg, &au, NULL) != 0)
        return;
    if (auth_account_get_id(au, account_id, &a, NULL) == 0)
        snprintf(out, cap, "%s", a.username);
    auth_close(au);
}

/* ---- printing an incident --------------------------------------------------------- */

static void print_line(const char *label, const char *value)
{
    if (value && *value)
        printf("%-14s %s\n", label, value);
}

static void print_list_field(const char *label, json_t *arr, const char *member)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = member ? json_string_value(json_object_get(v, member))
                               : json_string_value(v);
        print_line(i == 0 ? label : "", s);
    }
}

static void print_incident(json_t *doc)
{
    print_line("incident", incident_field(doc, "id"));
    print_line("kind", incident_field(doc, "kind"));
    print_line("status", incident_field(doc, "status"));
    print_line("summary", incident_field(doc, "summary"));
    print_line("opened", incident_field(doc, "opened_at"));
    print_line("opened by", incident_field(doc, "opened_by"));
    print_list_field("actor", json_object_get(doc, "actors"), "username");
    print_line("alert", incident_field(doc, "alert"));
    print_list_field("sources", json_object_get(doc, "sources"), NULL);
    print_list_field("blocked", json_object_get(doc, "blocked_sources"), NULL);
    print_line("detected", incident_field(doc, "detected_at"));
    print_line("contained", incident_field(doc, "contained_at"));
    print_line("closed", incident_field(doc, "closed_at"));
    print_line("closed by", incident_field(doc, "closed_by"));
    print_line("note", incident_field(doc, "note"));
    json_t *m;
    size_t i;
    json_array_foreach(json_object_get(doc, "measures"), i, m) {
        char line[300];
        snprintf(line, sizeof line, "%s  %s", incident_field(m, "at"), incident_field(m, "what"));
        print_line(i == 0 ? "measures" : "", line);
    }
}

static int print_doc_text(const char *text, int json)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (doc == NULL)
        return cli_error("incident", "the incident could not be read");
    if (json)
        cli_print_json_line(doc);
    else
        print_incident(doc);
    json_decref(doc);
    return CLI_OK;
}

/* ---- open, close ---------------------------------------------------------------------- */

static int open_incident(cli_session *cs, const incident_args *a)
{
    auth *au;
    mv_err err;
    auth_config cfg = auth_default_config();
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error("incident open", "%s", err.msg);
    server_incident_spec spec = { .actor = a->actor, .alert = a->alert, .summary = a->summary,
                                  .kind = a->kind, .block_sources = a->block_sources };
    char *text = NULL;
    int rc = server_incident_open(cs->store, cs->trail, au, &spec, cs->actor, "cli", &text,
                                  &err);
    auth_close(au);
    if (rc != 0)
        return cli_error("incident open", "%s", err.msg);
    rc = print_doc_text(text, a->json);
    free(text);
    return rc;
}

static int close_incident(cli_session *cs, const incident_args *a)
{
    char *text = NULL;
    mv_err err;
    if (server_incident_close(cs->store, cs->trail, a->id, a->note, cs->actor, "cli", &text,
                              &err) != 0)
        return cli_error("incident close", "%s", err.msg);
    free(text);
    printf("incident %s is now closed\n", a->id);
    return CLI_OK;
}

/* ---- list, show ----------------------------------------------------------------------- */

static void print_row(json_t *doc)
{
    json_t *actor = json_array_get(json_object_get(doc, "actors"), 0);
    printf("%-32s  %-20.19s  %-16s  %-20s  %-7s  %s\n", incident_field(doc, "id"),
           incident_field(doc, "opened_at"), incident_field(doc, "kind"),
           actor ? incident_field(actor, "username") : "-", incident_field(doc, "status"),
           incident_field(doc, "summary"));
}

static int list_incidents(cli_session *cs, const incident_args *a)
{
    char *text = NULL, outcome[64];
    mv_err err;
    if (server_incident_list(cs->store, a->status, &text, &err) != 0)
        return cli_error("incident list", "%s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    snprintf(outcome, sizeof outcome, "success: %zu incident(s)", json_array_size(arr));
    if (arr == NULL || cli_audit(cs, "incident.read", outcome, "Incident", NULL, NULL, NULL) != 0)
        return json_decref(arr), CLI_FAIL;
    if (a->json) {
        json_t *o = json_pack("{s:I, s:O}", "total", (json_int_t)json_array_size(arr),
                              "incidents", arr);
        cli_print_json_line(o);
        json_decref(o);
    } else {
        size_t i;
        json_t *doc;
        printf("%-32s  %-20s  %-16s  %-20s  %-7s  %s\n", "ID", "OPENED (UTC)", "KIND",
               "ACTOR", "STATUS", "SUMMARY");
        json_array_foreach(arr, i, doc)
            print_row(doc);
        printf("%zu incident(s)\n", json_array_size(arr));
    }
    json_decref(arr);
    return CLI_OK;
}

static int show_incident(cli_session *cs, const incident_args *a)
{
    char ref[80];
    snprintf(ref, sizeof ref, "Incident/%.40s", a->id);
    json_t *doc = incident_load(cs, "incident show", a->id);
    if (cli_audit(cs, "incident.read", doc ? "success" : "failure: not-found", ref, NULL,
                  NULL, NULL) != 0 || doc == NULL)
        return json_decref(doc), CLI_FAIL;
    if (a->json)
        cli_print_json_line(doc);
    else
        print_incident(doc);
    json_decref(doc);
    return CLI_OK;
}

static int dispatch(cli_session *cs, const void *arg)
{
    const incident_args *a = arg;
    const char *act = a->action;
    if (cs->trail == NULL && strcmp(act, "scope") != 0 && strcmp(act, "report") != 0)
        return cli_error("incident", "the audit trail refuses new entries (run "
                         "'medvault audit verify')");
    if (strcmp(act, "open") == 0)    return open_incident(cs, a);
    if (strcmp(act, "close") == 0)   return close_incident(cs, a);
    if (strcmp(act, "list") == 0)    return list_incidents(cs, a);
    if (strcmp(act, "show") == 0)    return show_incident(cs, a);
    if (strcmp(act, "scope") == 0)   return incident_scope_run(cs, a);
    if (strcmp(act, "report") == 0)  return incident_report_run(cs, a);
    return incident_letters_run(cs, a);
}

/* ---- arguments ---------------------------------------------------------------------------- */

static int is(const char *v, const char *choices)
{
    if (v == NULL)
        return 0;
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        size_t len = strcspn(c, "|");
        if (len == n && strncmp(c, v, n) == 0)
            return 1;
        c += len + (c[len] == '|');
    }
    return 0;
}

/* An option given to an action that does not take it. */
static int only_for(const char *opt, const void *given, const char *action,
                    const char *actions)
{
    if (given && !is(action, actions))
        return cli_usage_error(&cli_cmd_incident, "%s is for %s", opt, actions);
    return 0;
}

static int check_options(const incident_args *a)
{
    const char *act = a->action;
    int rc;
    if ((rc = only_for("--actor", a->actor, act, "open|scope")) ||
        (rc = only_for("--alert", a->alert, act, "open")) ||
        (rc = only_for("--summary", a->summary, act, "open")) ||
        (rc = only_for("--kind", a->kind, act, "open")) ||
        (rc = only_for("--block-sources", a->block_sources ? "" : NULL, act, "open")) ||
        (rc = only_for("--status", a->status, act, "list")) ||
        (rc = only_for("--note", a->note, act, "close")) ||
        (rc = only_for("--from", a->from, act, "scope")) ||
        (rc = only_for("--to", a->to, act, "scope")) ||
        (rc = only_for("--format", a->format, act, "scope|report")) ||
        (rc = only_for("--lang", a->lang, act, "report|letters")) ||
        (rc = only_for("--contact", a->contact, act, "report")) ||
        (rc = only_for("--out", a->out, act, "letters")) ||
        (rc = only_for("--json", a->json ? "" : NULL, act, "open|list|show")))
        return rc;
    return 0;
}

static int check_values(const incident_args *a)
{
    const cli_command *cmd = &cli_cmd_incident;
    const char *act = a->action;
    if (a->status && !is(a->status, "open|closed"))
        return cli_usage_error(cmd, "--status is open or closed");
    if (a->kind && !is(a->kind, "account-misuse|stolen-database"))
        return cli_usage_error(cmd, "--kind is account-misuse or stolen-database");
    if (a->lang && !is(a->lang, "fr|en"))
        return cli_usage_error(cmd, "--lang is fr or en");
    if (a->format && strcmp(act, "scope") == 0 && !is(a->format, "table|csv|json"))
        return cli_usage_error(cmd, "--format is table, csv or json");
    if (a->format && strcmp(act, "report") == 0 && !is(a->format, "md|json"))
        return cli_usage_error(cmd, "--format is md or json");
    if (strcmp(act, "open") == 0 && !a->actor && !a->alert && !is(a->kind, "stolen-database"))
        return cli_usage_error(cmd, "open needs --actor USER, --alert ID or "
                               "--kind stolen-database");
    if (strcmp(act, "open") == 0 && a->actor && a->alert)
        return cli_usage_error(cmd, "give --actor or --alert, not both");
    if (strcmp(act, "scope") == 0 && (a->id != NULL) == (a->actor != NULL))
        return cli_usage_error(cmd, "scope takes an incident ID or --actor USER");
    if (strcmp(act, "scope") == 0 && a->id && (a->from || a->to))
        return cli_usage_error(cmd, "--from and --to are for scope --actor");
    if (strcmp(act, "letters") == 0 && a->out == NULL)
        return cli_usage_error(cmd, "letters needs --out DIR");
    return 0;
}

static int parse_options(int argc, char **argv, incident_args *a)
{
    enum { O_ACTOR = CLI_OPT_FIRST_FREE, O_ALERT, O_SUMMARY, O_KIND, O_BLOCK, O_STATUS,
           O_NOTE, O_FROM, O_TO, O_FORMAT, O_LANG, O_CONTACT, O_OUT, O_JSON };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "actor", required_argument, NULL, O_ACTOR }, { "alert", required_argument, NULL, O_ALERT },
        { "summary", required_argument, NULL, O_SUMMARY }, { "kind", required_argument, NULL, O_KIND },
        { "block-sources", no_argument, NULL, O_BLOCK }, { "status", required_argument, NULL, O_STATUS },
        { "note", required_argument, NULL, O_NOTE }, { "from", required_argument, NULL, O_FROM },
        { "to", required_argument, NULL, O_TO }, { "format", required_argument, NULL, O_FORMAT },
        { "lang", required_argument, NULL, O_LANG }, { "contact", required_argument, NULL, O_CONTACT },
        { "out", required_argument, NULL, O_OUT }, { "json", no_argument, NULL, O_JSON },
        { 0, 0, 0, 0 }
    };
    const char **slot[] = { [O_ACTOR - O_ACTOR] = &a->actor, [O_ALERT - O_ACTOR] = &a->alert,
        [O_SUMMARY - O_ACTOR] = &a->summary, [O_KIND - O_ACTOR] = &a->kind,
        [O_STATUS - O_ACTOR] = &a->status, [O_NOTE - O_ACTOR] = &a->note,
        [O_FROM - O_ACTOR] = &a->from, [O_TO - O_ACTOR] = &a->to,
        [O_FORMAT - O_ACTOR] = &a->format, [O_LANG - O_ACTOR] = &a->lang,
        [O_CONTACT - O_ACTOR] = &a->contact, [O_OUT - O_ACTOR] = &a->out };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        if (c == CLI_OPT_HELP)
            return cli_print_help(&cli_cmd_incident), -1;
        if (c == O_BLOCK)
            a->block_sources = 1;
        else if (c == O_JSON)
            a->json = 1;
        else if (c >= O_ACTOR && c < O_JSON && slot[c - O_ACTOR])
            *slot[c - O_ACTOR] = optarg;
        else
            return cli_usage_error(&cli_cmd_incident, "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
    }
    return 0;
}

static int parse(int argc, char **argv, incident_args *a)
{
    int rc = parse_options(argc, argv, a);
    if (rc != 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_incident, "missing action (open, list, show, close, "
                               "scope, report or letters)");
    a->action = argv[optind++];
    if (!is(a->action, "open|list|show|close|scope|report|letters"))
        return cli_usage_error(&cli_cmd_incident, "unknown action '%s'", a->action);
    int needs_id = is(a->action, "show|close|report|letters");
    if (optind < argc && (needs_id || (strcmp(a->action, "scope") == 0 && a->actor == NULL)))
        a->id = argv[optind++];
    if (needs_id && a->id == NULL)
        return cli_usage_error(&cli_cmd_incident, "%s needs an incident id", a->action);
    if (optind < argc)
        return cli_usage_error(&cli_cmd_incident, "unexpected argument '%s'", argv[optind]);
    if ((rc = check_options(a)) != 0)
        return rc;
    return check_values(a);
}

static int run_incident(int argc, char **argv)
{
    incident_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    int flags = is(a.action, "scope|report") ? CLI_OPEN_DAMAGED_TRAIL : CLI_OPEN_DEFAULT;
    return cli_run_on_store(&cli_cmd_incident, &a.store, flags, dispatch, &a);
}
