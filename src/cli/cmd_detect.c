/*
 * cmd_detect.c -- `medvault detect priors`: the detector's cold-start limits
 * per role, or per role and department.
 *
 * Why it exists: on a hospital's first day nobody has a baseline, and a new
 * arrival never has one; until its own rhythm is learned an account is held
 * to its role's limits.  The defaults fit a ward; an administrator tunes
 * them for the hospital ("the laboratory's feeds read 60 patients an hour
 * from their first hour", "a secretary's office reads fewer") and a running
 * server picks a change up within seconds.  The detector bounds every
 * prior (at most learned_ceiling x its default, the 5-minute one at most the
 * hard cap), so priors tune the cold start and never switch detection off.
 * Every change is recorded in the audit trail as "cli:<unix user>".
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../detect/detect.h"
#include "../server/server.h"

static const char usage[] =
    "usage: medvault detect priors [--json]\n"
    "       medvault detect priors set --role ROLE [--department NAME]\n"
    "                               --limit-5m N --limit-1h N --limit-24h N\n"
    "       medvault detect priors unset --role ROLE [--department NAME]\n"
    "(each with --data DIR and --key-file PATH or --passphrase-file PATH)\n\n"
    "priors        list the cold-start limits set for roles and departments\n"
    "priors set    what an account of ROLE (in department NAME, or any) may\n"
    "              touch before it has a baseline of its own: distinct patients\n"
    "              per 5 minutes, hour and day (a care giver: of the patients\n"
    "              its care does not explain).  Defaults 12, 40 and 120; a\n"
    "              prior is at most twice those (the 5-minute one at most 20)\n"
    "              and must not shrink with the window.  A department's prior\n"
    "              wins over its role's.  A running server applies it within\n"
    "              seconds.\n"
    "priors unset  go back to the role's prior, or to the defaults\n"
    "Roles: clinician, nurse, admin, security, service.  An account's\n"
    "department is set by `medvault user add --department NAME`.\n";

static int run_detect(int argc, char **argv);
const cli_command cli_cmd_detect = {
    "detect", run_detect, "set the misuse detector's cold-start priors", usage
};

typedef struct detect_args {
    cli_store_opts store;
    const char *verb;                  /* "list", "set", "unset" */
    detect_prior prior;
    int json;
} detect_args;

/* ---- actions ------------------------------------------------------------------------ */

static int list(cli_session *cs, const detect_args *a)
{
    char *text = NULL;
    mv_err err;
    if (server_priors_list(cs->store, &text, &err) != 0)
        return cli_error("detect", "%s", err.msg);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    size_t i;
    json_t *doc;
    if (!a->json && json_array_size(arr) == 0)
        printf("no priors: every role has the defaults (12 / 40 / 120 patients per "
               "5 minutes / hour / day)\n");
    else if (!a->json)
        printf("%-10s %-20s %6s %6s %6s  %s\n", "role", "department", "5 min", "hour",
               "day", "set");
    json_array_foreach(arr, i, doc) {
        if (a->json) {
            cli_print_json_line(doc);
            continue;
        }
        const char *dept = json_string_value(json_object_get(doc, "department"));
        printf("%-10s %-20s %6lld %6lld %6lld  %s by %s\n",
               json_string_value(json_object_get(doc, "role")),
               dept && dept[0] ? dept : "(any)",
               (long long)json_integer_value(json_object_get(doc, "limit_5m")),
               (long long)json_integer_value(json_object_get(doc, "limit_1h")),
               (long long)json_integer_value(json_object_get(doc, "limit_24h")),
               json_string_value(json_object_get(doc, "set_at")),
               json_string_value(json_object_get(doc, "set_by")));
    }
    json_decref(arr);
    return CLI_OK;
}

static int dispatch(cli_session *cs, const void *arg)
{
    const detect_args *a = arg;
    mv_err err;
    if (strcmp(a->verb, "list") == 0)
        return list(cs, a);
    if (cs->trail == NULL)
        return cli_error("detect", "the audit trail refuses new entries");
    int rc = strcmp(a->verb, "set") == 0
           ? server_prior_save(cs->store, cs->trail, &a->prior, cs->actor, "cli", &err)
           : server_prior_remove(cs->store, cs->trail, a->prior.role, a->prior.department,
                                 cs->actor, "cli", &err);
    if (rc != 0)
        return cli_error("detect", "%s", err.msg);
    printf("%s: %s%s%s\n", a->verb[0] == 's' ? "prior set" : "prior removed", a->prior.role,
           a->prior.department ? " in " : "", a->prior.department ? a->prior.department : "");
    return CLI_OK;
}

/* ---- arguments ----------------------------------------------------------------------- */

static int limit(const char *opt, const char *v, int *out)
{
    long n;
    if (cli_parse_count(&cli_cmd_detect, opt, v, &n) != 0)
        return -1;
    *out = n > 1000000 ? 1000000 : (int)n;
    return 0;
}

/* What each verb needs, once the options are read; 0 or CLI_USAGE. */
static int check_args(detect_args *a)
{
    const detect_prior *p = &a->prior;
    int set = strcmp(a->verb, "set") == 0, unset = strcmp(a->verb, "unset") == 0;
    int limits = p->limit_5m || p->limit_1h || p->limit_24h;
    if (!set && !unset && (p->role || p->department || limits))
        return cli_usage_error(&cli_cmd_detect, "--role, --department and the limits "
                               "are for set and unset");
    if ((set || unset) && p->role == NULL)
        return cli_usage_error(&cli_cmd_detect, "%s needs --role", a->verb);
    if (unset && limits)
        return cli_usage_error(&cli_cmd_detect, "unset takes no limits");
    if (set && (!p->limit_5m || !p->limit_1h || !p->limit_24h))
        return cli_usage_error(&cli_cmd_detect, "set needs --limit-5m, --limit-1h and "
                               "--limit-24h");
    if ((set || unset) && a->json)
        return cli_usage_error(&cli_cmd_detect, "--json is for listing");
    mv_err err;
    detect_config c;
    detect_config_default(&c);
    if (set && detect_prior_check(&c, p, &err) != 0)
        return cli_usage_error(&cli_cmd_detect, "%s", err.msg);
    return 0;
}

static int parse(int argc, char **argv, detect_args *a)
{
    enum { OPT_ROLE = CLI_OPT_FIRST_FREE, OPT_DEPT, OPT_5M, OPT_1H, OPT_24H, OPT_JSON };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "role", required_argument, NULL, OPT_ROLE },
        { "department", required_argument, NULL, OPT_DEPT },
        { "limit-5m", required_argument, NULL, OPT_5M },
        { "limit-1h", required_argument, NULL, OPT_1H },
        { "limit-24h", required_argument, NULL, OPT_24H },
        { "json", no_argument, NULL, OPT_JSON },
        { 0, 0, 0, 0 }
    };
    int c, rc = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_detect); return -1;
        case OPT_ROLE:     a->prior.role = optarg; break;
        case OPT_DEPT:     a->prior.department = optarg; break;
        case OPT_5M:       rc = limit("--limit-5m", optarg, &a->prior.limit_5m); break;
        case OPT_1H:       rc = limit("--limit-1h", optarg, &a->prior.limit_1h); break;
        case OPT_24H:      rc = limit("--limit-24h", optarg, &a->prior.limit_24h); break;
        case OPT_JSON:     a->json = 1; break;
        default:
            return cli_usage_error(&cli_cmd_detect, optopt ? "option '%s' needs a value"
                                   : "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc != 0)
        return CLI_USAGE;
    if (optind >= argc || strcmp(argv[optind], "priors") != 0)
        return cli_usage_error(&cli_cmd_detect, optind >= argc ? "missing 'priors'"
                               : "unknown action '%s'", argv[optind]);
    optind++;
    a->verb = "list";
    if (optind < argc && (strcmp(argv[optind], "set") == 0 ||
                          strcmp(argv[optind], "unset") == 0))
        a->verb = argv[optind++];
    if (optind < argc)
        return cli_usage_error(&cli_cmd_detect, "unexpected argument '%s'", argv[optind]);
    return check_args(a);
}

static int run_detect(int argc, char **argv)
{
    detect_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    return cli_run_on_store(&cli_cmd_detect, &a.store, CLI_OPEN_DEFAULT, dispatch, &a);
}
