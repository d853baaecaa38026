/*
 * cmd_approvals.c -- `medvault approvals`: two-person requests from the
 * command line, the same register and the same decisions as /api/approvals.
 *
 * Why it exists: a hospital must never be stuck.  With one security officer
 * on leave, or every security officer involved in an alert, the holder of
 * the key file can still approve or refuse a pending request -- and because
 * that is one person deciding alone, every decision made here raises an
 * alert for the security officers (approvals.c).  Listing and showing are
 * recorded in the trail like any read of the store.
 */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../auth/auth.h"
#include "../server/server.h"

static const char usage[] =
    "usage: medvault approvals list [--status pending|approved|refused|expired] [--json]\n"
    "       medvault approvals show ID [--json]\n"
    "       medvault approvals approve ID... [--note TEXT]\n"
    "       medvault approvals refuse ID... [--note TEXT]\n"
    "(each with --data DIR and --key-file PATH or --passphrase-file PATH)\n\n"
    "A change that gives someone clinical reach or power over the controls\n"
    "(an account's creation, a password or second-factor reset, unlocking an\n"
    "account the detector contained, closing an alert one is involved in) is a\n"
    "request until a second person approves it.  approve and refuse here act as\n"
    "the local operator, alone: each one raises an alert.\n";

static int run_approvals(int argc, char **argv);
const cli_command cli_cmd_approvals = {
    "approvals", run_approvals, "list, show, approve or refuse two-person requests", usage
};

typedef struct approvals_args {
    cli_store_opts store;
    const char *action, *id, *status, *note;
    char **ids;                  /* approve, refuse: one or more (argv) */
    int n_ids;
    int json;
} approvals_args;

static const char *field(json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return v ? v : "";
}

static void print_row(json_t *doc)
{
    printf("%-32s  %-20.19s  %-22s  %-16s  %-9s  %s\n", field(doc, "id"),
           field(doc, "requested_at"), field(doc, "kind"),
           *field(doc, "requested_by_username") ? field(doc, "requested_by_username")
                                                : field(doc, "requested_by"),
           field(doc, "status"), field(doc, "summary"));
}

static int list(cli_session *cs, const approvals_args *a)
{
    char *text = NULL;
    mv_err err;
    if (server_approval_list(cs->store, a->status, &text, &err) != 0)
        return cli_error("approvals list", "%s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return cli_error("approvals list", "the requests could not be read");
    }
    char outcome[64];
    snprintf(outcome, sizeof outcome, "success: %zu request(s)", json_array_size(arr));
    if (cli_audit(cs, "approval.read", outcome, "Approval", NULL, NULL, NULL) != 0) {
        json_decref(arr);
        return CLI_FAIL;
    }
    if (a->json) {
        json_t *o = json_pack("{s:I, s:O}", "total", (json_int_t)json_array_size(arr),
                              "approvals", arr);
        cli_print_json_line(o);
        json_decref(o);
    } else {
        size_t i;
        json_t *doc;
        printf("%-32s  %-20s  %-22s  %-16s  %-9s  %s\n", "ID", "ASKED (UTC)", "KIND", "BY",
               "STATUS", "WHAT");
        json_array_foreach(arr, i, doc)
            print_row(doc);
        printf("%zu request(s)\n", json_array_size(arr));
    }
    json_decref(arr);
    return CLI_OK;
}

static int show(cli_session *cs, const approvals_args *a)
{
    char *text = NULL, ref[80];
    mv_err err;
    int rc = server_approval_get(cs->store, a->id, &text, NULL, &err);
    snprintf(ref, sizeof ref, "Approval/%.40s", a->id);
    if (cli_audit(cs, "approval.read", rc == 0 ? "success" : "failure: not found", ref,
                  NULL, NULL, NULL) != 0) {
        free(text);
        return CLI_FAIL;
    }
    if (rc != 0)
        return cli_error("approvals show", "%s", err.msg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    if (doc == NULL)
        return cli_error("approvals show", "request %s could not be read", a->id);
    if (a->json) {
        cli_print_json_line(doc);
    } else {
        static const char *const keys[] = { "id", "kind", "summary", "status", "requested_by",
                                            "requested_by_username", "requested_at",
                                            "expires_at", "decided_by", "decided_at", "note" };
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (*field(doc, keys[i]))
                printf("%-22s %s\n", keys[i], field(doc, keys[i]));
    }
    json_decref(doc);
    return CLI_OK;
}

/* Each request in turn; the first that cannot be decided stops the run
 * (those before it stay decided, and were said so). */
static int decide(cli_session *cs, const approvals_args *a)
{
    int approve = strcmp(a->action, "approve") == 0;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "approvals %s", a->action);
    auth *au;
    mv_err err;
    auth_config cfg = auth_default_config();
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error(cmd, "%s", err.msg);
    server_approval_env env = { .store = cs->store, .trail = cs->trail, .auth = au,
                                .decider = NULL, .by = cs->actor, .source = "cli" };
    int rc = CLI_OK;
    for (int i = 0; rc == CLI_OK && i < a->n_ids; i++) {
        if (server_approval_decide(&env, a->ids[i], approve, a->note, NULL, &err) != 0)
            rc = cli_error(cmd, "%s", err.msg);
        else
            printf("request %s %s; decided by the local operator alone: an alert was "
                   "raised\n", a->ids[i], approve ? "approved" : "refused");
    }
    auth_close(au);
    return rc;
}

static int dispatch(cli_session *cs, const void *arg)
{
    const approvals_args *a = arg;
    if (strcmp(a->action, "list") == 0)
        return list(cs, a);
    if (strcmp(a->action, "show") == 0)
        return show(cs, a);
    return decide(cs, a);
}

/* ---- arguments ------------------------------------------------------------------- */

static int is_one_of(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        if (strcmp(v, set[i]) == 0)
            return 1;
    return 0;
}

static int check_args(const approvals_args *a)
{
    static const char *const statuses[] = { "pending", "approved", "refused", "expired" };
    const cli_command *cmd = &cli_cmd_approvals;
    int is_list = strcmp(a->action, "list") == 0, reads = is_list || strcmp(a->action, "show") == 0;
    if (a->status && !is_list)
        return cli_usage_error(cmd, "--status is for list");
    if (a->status && !is_one_of(a->status, statuses, 4))
        return cli_usage_error(cmd, "--status is pending, approved, refused or expired");
    if (a->json && !reads)
        return cli_usage_error(cmd, "--json is for list and show");
    if (a->note && reads)
        return cli_usage_error(cmd, "--note is for approve and refuse");
    return 0;
}

static int parse(int argc, char **argv, approvals_args *a)
{
    enum { OPT_STATUS = CLI_OPT_FIRST_FREE, OPT_JSON, OPT_NOTE };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "status", required_argument, NULL, OPT_STATUS },
        { "json", no_argument, NULL, OPT_JSON },
        { "note", required_argument, NULL, OPT_NOTE },
        { 0, 0, 0, 0 }
    };
    static const char *const actions[] = { "list", "show", "approve", "refuse" };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_approvals); return -1;
        case OPT_STATUS:   a->status = optarg; break;
        case OPT_JSON:     a->json = 1; break;
        case OPT_NOTE:     a->note = optarg; break;
        default:
            return cli_usage_error(&cli_cmd_approvals, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_approvals, "missing action (list, show, approve or "
                               "refuse)");
    a->action = argv[optind++];
    if (!is_one_of(a->action, actions, 4))
        return cli_usage_error(&cli_cmd_approvals, "unknown action '%s'", a->action);
    if (strcmp(a->action, "list") != 0) {
        if (optind >= argc)
            return cli_usage_error(&cli_cmd_approvals, "%s needs a request id", a->action);
        a->id = argv[optind];
        a->ids = argv + optind;
        a->n_ids = strcmp(a->action, "show") == 0 ? 1 : argc - optind;
        optind += a->n_ids;
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_approvals, "unexpected argument '%s'", argv[optind]);
    return check_args(a);
}

static int run_approvals(int argc, char **argv)
{
    approvals_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    return cli_run_on_store(&cli_cmd_approvals, &a.store, CLI_OPEN_DEFAULT, dispatch, &a);
}
