/*
 * cmd_alerts.c -- `medvault alerts`: the security officer's worklist from
 * the command line, the same alerts and the same transitions as
 * /api/alerts.
 *
 * Why it exists: when the server is down, or its API is the thing under
 * attack, the alerts the detector stored must still be readable and
 * workable by someone at the machine.  The commands act on the store
 * directly through server_alert_* (the server may run at the same time:
 * both append to the same trail), as the actor "cli:<unix user>".  Reading
 * alerts is recorded in the trail like any other read of the store; every
 * acknowledgement and closing is recorded by server_alert_transition.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"

static const char usage[] =
    "usage: medvault alerts list [--status open|acknowledged|closed] [--json]\n"
    "       medvault alerts show ID [--json]\n"
    "       medvault alerts ack ID [--note TEXT]\n"
    "       medvault alerts close ID --as benign|incident [--note TEXT]\n"
    "(each with --data DIR and --key-file PATH or --passphrase-file PATH)\n\n"
    "list   the alerts the detector raised, newest first: id, time, actor,\n"
    "       detectors, score, response taken and status\n"
    "show   one alert with its evidence and explanation\n"
    "ack    acknowledge an open alert (someone is looking at it)\n"
    "close  close an open or acknowledged alert as benign or as incident\n"
    "Every read and every change is recorded in the audit trail.\n";

static int run_alerts(int argc, char **argv);
const cli_command cli_cmd_alerts = {
    "alerts", run_alerts, "list, show, acknowledge or close detector alerts", usage
};

typedef struct alerts_args {
    cli_store_opts store;
    const char *action, *id;
    const char *status, *resolution, *note;
    int json;
} alerts_args;

/* ---- reading the documents ------------------------------------------------- */

static const char *field(json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return v ? v : "";
}

/* "a,b,c" from the detectors array (the caller frees). */
static char *detectors_joined(json_t *doc)
{
    json_t *arr = json_object_get(doc, "detectors"), *v;
    size_t i, len = 1;
    json_array_foreach(arr, i, v)
        len += strlen(json_string_value(v) ? json_string_value(v) : "") + 1;
    char *out = calloc(1, len);
    if (out == NULL)
        return NULL;
    json_array_foreach(arr, i, v) {
        if (i)
            strcat(out, ",");
        strcat(out, json_string_value(v) ? json_string_value(v) : "");
    }
    return out;
}

/* The actor's username: the one recorded in the alert, else the account's
 * (looked up by id), else the actor reference itself. */
static void actor_name(auth *au, json_t *doc, char *out, size_t cap)
{
    const char *actor = field(doc, "actor");
    auth_account a;
    if (*field(doc, "actor_username"))
        snprintf(out, cap, "%s", field(doc, "actor_username"));
    else if (*actor && auth_account_get_id(au, actor, &a, NULL) == 0)
        snprintf(out, cap, "%s", a.username);
    else
        snprintf(out, cap, "%s", *actor ? actor : "-");
}

static void status_text(json_t *doc, char *out, size_t cap)
{
    const char *resolution = field(doc, "resolution");
    snprintf(out, cap, "%s%s%s", field(doc, "status"), *resolution ? ":" : "", resolution);
}

/* ---- list ---------------------------------------------------------------------- */

static void print_row(auth *au, json_t *doc)
{
    char actor[96], status[48];
    actor_name(au, doc, actor, sizeof actor);
    status_text(doc, status, sizeof status);
    char *det = detectors_joined(doc);
    printf("%-32s  %-20.19s  %-20s  %-28s  %5.0f  %-8s  %s\n", field(doc, "id"),
           field(doc, "time"), actor, det ? det : "", json_number_value(json_object_get(doc, "score")),
           field(doc, "response"), status);
    free(det);
}

static void print_table(auth *au, json_t *arr)
{
    size_t i;
    json_t *doc;
    printf("%-32s  %-20s  %-20s  %-28s  %5s  %-8s  %s\n", "ID", "TIME (UTC)", "ACTOR",
           "DETECTORS", "SCORE", "RESPONSE", "STATUS");
    json_array_foreach(arr, i, doc)
        print_row(au, doc);
    printf("%zu alert(s)\n", json_array_size(arr));
}

static int list(cli_session *cs, auth *au, const alerts_args *a)
{
    char *text = NULL;
    mv_err err;
    if (server_alert_list(cs->store, a->status, &text, &err) != 0)
        return cli_error("alerts list", "%s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return cli_error("alerts list", "the alerts could not be read");
    }
    char outcome[64];
    snprintf(outcome, sizeof outcome, "success: %zu alert(s)%s%s", json_array_size(arr),
             a->status ? " " : "", a->status ? a->status : "");
    if (cli_audit(cs, "detect.alert.read", outcome, "Alert", NULL, NULL, NULL) != 0) {
        json_decref(arr);
        return CLI_FAIL;
    }
    if (a->json) {
        json_t *o = json_pack("{s:I, s:O}", "total", (json_int_t)json_array_size(arr),
                              "alerts", arr);
        cli_print_json_line(o);
        json_decref(o);
    } else {
        print_table(au, arr);
    }
    json_decref(arr);
    return CLI_OK;
}

/* ---- show ---------------------------------------------------------------------- */

static void print_line(const char *label, const char *value)
{
    if (value && *value)
        printf("%-14s %s\n", label, value);
}

static void print_handled(json_t *doc)
{
    char line[256];
    if (*field(doc, "acknowledged_by")) {
        snprintf(line, sizeof line, "by %s at %s", field(doc, "acknowledged_by"),
                 field(doc, "acknowledged_at"));
        print_line("acknowledged", line);
    }
    if (*field(doc, "closed_by")) {
        snprintf(line, sizeof line, "as %s by %s at %s", field(doc, "resolution"),
                 field(doc, "closed_by"), field(doc, "closed_at"));
        print_line("closed", line);
    }
    print_line("note", field(doc, "note"));
}

static void print_evidence(json_t *doc)
{
    char *ev = json_dumps(json_object_get(doc, "evidence"), JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("evidence:\n");
    for (char *line = ev ? strtok(ev, "\n") : NULL; line; line = strtok(NULL, "\n"))
        printf("  %s\n", line);
    free(ev);
}

static void print_alert(auth *au, json_t *doc)
{
    char actor[96], line[256], status[48];
    actor_name(au, doc, actor, sizeof actor);
    char *det = detectors_joined(doc);
    print_line("alert", field(doc, "id"));
    print_line("time", field(doc, "time"));
    snprintf(line, sizeof line, "%s (%s)", actor, *field(doc, "actor") ? field(doc, "actor") : "-");
    print_line("actor", line);
    print_line("source", field(doc, "source"));
    print_line("detectors", det);
    snprintf(line, sizeof line, "%.0f (model %.0f)",
             json_number_value(json_object_get(doc, "score")),
             json_number_value(json_object_get(doc, "model_score")));
    print_line("score", line);
    print_line("response", field(doc, "response"));
    status_text(doc, status, sizeof status);
    print_line("status", status);
    print_handled(doc);
    print_line("explanation", field(doc, "explanation"));
    print_evidence(doc);
    free(det);
}

static int show(cli_session *cs, auth *au, const alerts_args *a)
{
    char *text = NULL, ref[80], outcome[64];
    mv_err err;
    int rc = server_alert_get(cs->store, a->id, &text, NULL, &err);
    snprintf(ref, sizeof ref, "Alert/%.40s", a->id);
    snprintf(outcome, sizeof outcome, "%s%s", rc == 0 ? "success" : "failure: ",
             rc == 0 ? "" : mv_code_name(err.code));
    if (cli_audit(cs, "detect.alert.read", outcome, ref, NULL, NULL, NULL) != 0) {
        free(text);
        return CLI_FAIL;
    }
    if (rc != 0)
        return err.code == MV_E_NOTFOUND ? cli_error("alerts show", "no alert %s", a->id)
                                         : cli_error("alerts show", "%s", err.msg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        return cli_error("alerts show", "alert %s could not be read", a->id);
    if (a->json)
        cli_print_json_line(doc);
    else
        print_alert(au, doc);
    json_decref(doc);
    return CLI_OK;
}

/* ---- ack, close ------------------------------------------------------------------ */

static int change(cli_session *cs, const alerts_args *a)
{
    char *text = NULL, cmd[32];
    mv_err err;
    snprintf(cmd, sizeof cmd, "alerts %s", a->action);
    if (server_alert_transition(cs->store, cs->trail, a->id, a->action, a->resolution,
                                a->note, cs->actor, "cli", &text, &err) != 0)
        return err.code == MV_E_NOTFOUND ? cli_error(cmd, "no alert %s", a->id)
                                         : cli_error(cmd, "%s", err.msg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    char status[48];
    status_text(doc, status, sizeof status);
    printf("alert %s is now %s\n", a->id, status);
    json_decref(doc);
    return CLI_OK;
}

static int dispatch(cli_session *cs, const void *arg)
{
    const alerts_args *a = arg;
    if (strcmp(a->action, "ack") == 0 || strcmp(a->action, "close") == 0)
        return change(cs, a);
    auth *au;
    mv_err err;
    auth_config cfg = auth_default_config();
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error("alerts", "%s", err.msg);
    int rc = strcmp(a->action, "list") == 0 ? list(cs, au, a) : show(cs, au, a);
    auth_close(au);
    return rc;
}

/* ---- arguments ------------------------------------------------------------------- */

static int one_of(const char *v, const char *a, const char *b, const char *c)
{
    return v && (strcmp(v, a) == 0 || strcmp(v, b) == 0 || (c && strcmp(v, c) == 0));
}

/* What each action accepts, once the options are read; 0 or CLI_USAGE. */
static int check_args(const alerts_args *a)
{
    const cli_command *cmd = &cli_cmd_alerts;
    int is_list = strcmp(a->action, "list") == 0, is_close = strcmp(a->action, "close") == 0;
    int reads = is_list || strcmp(a->action, "show") == 0;
    if (a->status && !is_list)
        return cli_usage_error(cmd, "--status is for list");
    if (a->status && !one_of(a->status, "open", "acknowledged", "closed"))
        return cli_usage_error(cmd, "--status is open, acknowledged or closed");
    if (a->json && !reads)
        return cli_usage_error(cmd, "--json is for list and show");
    if (a->note && reads)
        return cli_usage_error(cmd, "--note is for ack and close");
    if (a->resolution && !is_close)
        return cli_usage_error(cmd, "--as is for close");
    if (is_close && !one_of(a->resolution, "benign", "incident", NULL))
        return cli_usage_error(cmd, "close needs --as benign or --as incident");
    return 0;
}

static int parse(int argc, char **argv, alerts_args *a)
{
    enum { OPT_STATUS = CLI_OPT_FIRST_FREE, OPT_JSON, OPT_NOTE, OPT_AS };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "status", required_argument, NULL, OPT_STATUS },
        { "json", no_argument, NULL, OPT_JSON },
        { "note", required_argument, NULL, OPT_NOTE },
        { "as", required_argument, NULL, OPT_AS },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_alerts); return -1;
        case OPT_STATUS:   a->status = optarg; break;
        case OPT_JSON:     a->json = 1; break;
        case OPT_NOTE:     a->note = optarg; break;
        case OPT_AS:       a->resolution = optarg; break;
        default:
            return cli_usage_error(&cli_cmd_alerts, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_alerts, "missing action (list, show, ack or close)");
    a->action = argv[optind++];
    if (strcmp(a->action, "list") != 0 && !one_of(a->action, "show", "ack", "close"))
        return cli_usage_error(&cli_cmd_alerts, "unknown action '%s'", a->action);
    if (strcmp(a->action, "list") != 0) {
        if (optind >= argc)
            return cli_usage_error(&cli_cmd_alerts, "%s needs an alert id", a->action);
        a->id = argv[optind++];
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_alerts, "unexpected argument '%s'", argv[optind]);
    return check_args(a);
}

static int run_alerts(int argc, char **argv)
{
    alerts_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    return cli_run_on_store(&cli_cmd_alerts, &a.store, CLI_OPEN_DEFAULT, dispatch, &a);
}
