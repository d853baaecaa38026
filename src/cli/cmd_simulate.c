/*
 * cmd_simulate.c -- `medvault simulate`: drive the real misuse detector with
 * a synthetic hospital and the attacks of issue 5, and print one table.
 *
 * Why it exists: the detector's promises (a bulk read-out contained at 20
 * patients, a break-the-glass spree at 10, a decoy at the first read,
 * spraying and stuffing yielding nothing, a slow read-out detected before
 * 500, almost no false alerts) must be measured, not asserted, and measured
 * again whenever a threshold moves.  For each scenario the simulator plays
 * D-1 days of legitimate traffic (the detector learns), then the attack on
 * the last day among that day's traffic; for the benign workload it plays D
 * days and counts every alert and lockout as false.  It does so for the
 * rules alone and for rules + model.  In-process: no store, no network,
 * simulated time: the same --seed, the same table.  With --url the attacks
 * are played against a live server through its API instead (sim_live.c).
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static const char usage[] =
    "usage: medvault simulate [--days D] [--staff M] [--patients N]\n"
    "                         [--scenario NAME|all] [--seed S] [--rules-only]\n"
    "                         [--json] [--verbose]\n"
    "       medvault simulate --suite [--days D] [--staff M] [--seed S]\n"
    "                         [--rules-only] [--json] [--verbose]\n"
    "       medvault simulate --url URL --admin-token-file FILE\n"
    "                         --security-token-file FILE [--cacert PEM]\n"
    "                         [--scenario NAME|all] [--patients N]\n"
    "                         [--patients-file FILE] [--decoys-file FILE] [--json]\n\n"
    "Drive the misuse and exfiltration detector with a synthetic hospital (ten\n"
    "departments, shifts, care teams, admissions, clinics, emergencies that break\n"
    "the glass, laboratory, pharmacy and imaging interfaces, a declared nightly\n"
    "export) and inject attacks on the last day.  Prints one Markdown table: per\n"
    "scenario, the distinct patients exposed before containment and the time to\n"
    "containment; for the benign workload, false alerts and false lockouts per\n"
    "1,000 user-days; for the rules alone and for rules + model.\n\n"
    "  --days D         days simulated (default 21, at least 5)\n"
    "  --staff M        people on the staff (default 200, 10 to 5000)\n"
    "  --patients N     patients (default 5000, 200 to 1000000)\n"
    "  --scenario NAME  one of: btg-spree bulk-service bulk-everything\n"
    "                   bulk-new-account slow-readout slow-readout-careful decoy\n"
    "                   spraying stuffing\n"
    "                   snoop-vip snoop-relative spread worklist; benign (the\n"
    "                   legitimate workload alone); or all (default)\n"
    "  --seed S         the same S gives the same table (default 1)\n"
    "  --rules-only     only the rules (the model switched off)\n"
    "  --json           one JSON object per row instead of the table\n"
    "  --verbose        every false alert on stderr, with its explanation\n\n"
    "Suite (--suite): the frozen benign suite instead, clinical work the\n"
    "hospital above does not model and the detector was never tuned on: ward\n"
    "census at login and rounds, nurses' shift handovers, emergency arrivals,\n"
    "radiology and laboratory worklists, pharmacy verification, medical\n"
    "secretaries, night on-call physicians; the hospital's first day and new\n"
    "staff's first days.  One row per workload: alerts and step-ups per 100\n"
    "user-days, refused requests, lockouts (default 30 days, 300 staff).\n\n"
    "Live mode (--url): the attacks against a running server, through its API.\n"
    "The FILEs hold the bearer tokens of an admin and of a security officer,\n"
    "both logged in minutes ago (asking for and approving accounts needs a\n"
    "fresh second factor: two-person control).  The run creates its accounts\n"
    "(sim-TAG-*), each asked for by an admin and approved by the officer: an\n"
    "admin per scenario (what accounts read counts against whoever made them),\n"
    "a service account that lists the patients under a bulk-access declaration\n"
    "(or ids are read from --patients-file, one a line), and one attacker per\n"
    "scenario, which logs in once and then acts as a stolen session (it cannot\n"
    "step up).\n"
    "Scenarios: btg-spree bulk-service bulk-search decoy (needs --decoys-file,\n"
    "the output of `medvault decoy list --json`) spraying (from another\n"
    "loopback address when the server is on 127.x); or all.  http:// on\n"
    "loopback, or https:// (--cacert PEM: the server's certificate).\n"
    "  --patients N     aim at no more than N patients (default: every one)\n";

static int run_simulate(int argc, char **argv);
const cli_command cli_cmd_simulate = {
    "simulate", run_simulate,
    "measure the misuse detector on a synthetic hospital and attacks", usage
};

typedef struct sim_args {
    sim_config cfg;
    sim_live_config live;
    const char *scenario_name;
    long patients;
    int all, benign_only, rules_only, json, verbose;
    int suite, days_set, staff_set;
    sim_scenario scenario;
} sim_args;

/* ---- Arguments --------------------------------------------------------------------- */

static int parse_range(const char *opt, const char *v, long lo, long hi, int *out)
{
    long n;
    if (cli_parse_count(&cli_cmd_simulate, opt, v, &n) != 0)
        return -1;
    if (n < lo || n > hi) {
        cli_usage_error(&cli_cmd_simulate, "%s must be between %ld and %ld", opt, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int parse_seed(const char *v, uint64_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0') {
        cli_usage_error(&cli_cmd_simulate, "--seed needs a number");
        return -1;
    }
    *out = n;
    return 0;
}

enum { OPT_DAYS = CLI_OPT_FIRST_FREE, OPT_STAFF, OPT_PATIENTS, OPT_SCENARIO,
       OPT_SEED, OPT_RULES_ONLY, OPT_JSON, OPT_VERBOSE, OPT_URL, OPT_ADMIN_TOKEN, OPT_SECURITY_TOKEN,
       OPT_CACERT, OPT_PATIENTS_FILE, OPT_DECOYS_FILE, OPT_SUITE };

static int parse_one(int c, const char *arg, sim_args *a)
{
    switch (c) {
    case OPT_DAYS:     a->days_set = 1;
                       return parse_range("--days", arg, 5, 3650, &a->cfg.days);
    case OPT_STAFF:    a->staff_set = 1;
                       return parse_range("--staff", arg, 10, 5000, &a->cfg.staff);
    case OPT_SUITE:    a->suite = 1; return 0;
    case OPT_PATIENTS:
        return cli_parse_count(&cli_cmd_simulate, "--patients", arg, &a->patients);
    case OPT_SEED:     return parse_seed(arg, &a->cfg.seed);
    case OPT_RULES_ONLY: a->rules_only = 1; return 0;
    case OPT_JSON:     a->json = 1; return 0;
    case OPT_VERBOSE:  a->verbose = 1; return 0;
    case OPT_SCENARIO:  a->scenario_name = arg; return 0;
    case OPT_URL:       a->live.url = arg; return 0;
    case OPT_ADMIN_TOKEN: a->live.admin_token_file = arg; return 0;
    case OPT_SECURITY_TOKEN: a->live.security_token_file = arg; return 0;
    case OPT_CACERT:    a->live.cacert = arg; return 0;
    case OPT_PATIENTS_FILE: a->live.patients_file = arg; return 0;
    case OPT_DECOYS_FILE: a->live.decoys_file = arg; return 0;
    }
    return 1;
}

/* The scenario and --patients mean different things in the two modes. */
static int check_mode(sim_args *a)
{
    const char *sc = a->scenario_name ? a->scenario_name : "all";
    if (a->suite) {
        if (a->live.url || a->scenario_name || a->patients)
            return cli_usage_error(&cli_cmd_simulate, "--suite takes no --url, "
                                   "--scenario or --patients");
        a->cfg.days = a->days_set ? a->cfg.days : 30;
        a->cfg.staff = a->staff_set ? a->cfg.staff : 300;
        return 0;
    }
    if (a->live.url) {
        if (a->live.admin_token_file == NULL || a->live.security_token_file == NULL)
            return cli_usage_error(&cli_cmd_simulate, "--url needs --admin-token-file and "
                                   "--security-token-file");
        if (!sim_live_scenario_known(sc))
            return cli_usage_error(&cli_cmd_simulate, "unknown live scenario '%s'", sc);
        a->live.scenario = sc;
        a->live.patients = a->patients > 1000000 ? 1000000 : (int)a->patients;
        a->live.json = a->json;
        return 0;
    }
    if (a->live.admin_token_file || a->live.security_token_file || a->live.cacert ||
        a->live.patients_file ||
        a->live.decoys_file)
        return cli_usage_error(&cli_cmd_simulate, "--admin-token-file, "
                               "--security-token-file, --cacert, "
                               "--patients-file and --decoys-file need --url");
    if (a->patients && (a->patients < 200 || a->patients > 1000000))
        return cli_usage_error(&cli_cmd_simulate, "--patients must be between 200 and 1000000");
    if (a->patients)
        a->cfg.patients = (int)a->patients;
    a->all = strcmp(sc, "all") == 0;
    a->benign_only = strcmp(sc, "benign") == 0;
    if (!a->all && !a->benign_only && sim_scenario_parse(sc, &a->scenario) != 0)
        return cli_usage_error(&cli_cmd_simulate, "unknown scenario '%s'", sc);
    return 0;
}

/* 0 to run, -1 after --help, or a CLI status. */
static int parse(int argc, char **argv, sim_args *a)
{
    static const struct option longopts[] = {
        { "days", required_argument, NULL, OPT_DAYS },
        { "staff", required_argument, NULL, OPT_STAFF },
        { "patients", required_argument, NULL, OPT_PATIENTS },
        { "scenario", required_argument, NULL, OPT_SCENARIO },
        { "seed", required_argument, NULL, OPT_SEED },
        { "rules-only", no_argument, NULL, OPT_RULES_ONLY },
        { "json", no_argument, NULL, OPT_JSON },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "url", required_argument, NULL, OPT_URL },
        { "admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN },
        { "security-token-file", required_argument, NULL, OPT_SECURITY_TOKEN },
        { "cacert", required_argument, NULL, OPT_CACERT },
        { "patients-file", required_argument, NULL, OPT_PATIENTS_FILE },
        { "decoys-file", required_argument, NULL, OPT_DECOYS_FILE },
        { "suite", no_argument, NULL, OPT_SUITE },
        { "help", no_argument, NULL, CLI_OPT_HELP },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == CLI_OPT_HELP) {
            cli_print_help(&cli_cmd_simulate);
            return -1;
        }
        int rc = parse_one(c, optarg, a);
        if (rc < 0)
            return CLI_USAGE;
        if (rc > 0)
            return cli_usage_error(&cli_cmd_simulate, optopt ? "option '%s' needs a value"
                                   : "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_simulate, "unexpected argument '%s'", argv[optind]);
    return check_mode(a);
}

/* ---- Formatting ------------------------------------------------------------------------ */

static void duration(int64_t us, char *out, size_t n)
{
    int64_t s = us / 1000000;
    if (s < 120)
        snprintf(out, n, "%" PRId64 " s", s);
    else if (s < 7200)
        snprintf(out, n, "%" PRId64 " min %02" PRId64 " s", s / 60, s % 60);
    else
        snprintf(out, n, "%" PRId64 " h %02" PRId64 " min", s / 3600, (s / 60) % 60);
}

static void detectors(unsigned bits, char *out, size_t n)
{
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < DETECT_SIG_COUNT; i++)
        if (bits & (1u << i)) {
            int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "",
                             detect_signal_name(1u << i));
            if (w < 0 || (size_t)w >= n - len)
                break;
            len += (size_t)w;
        }
    if (len == 0)
        snprintf(out, n, "-");
}

static const char *mode_name(int model)
{
    return model ? "rules + model" : "rules alone";
}

static void print_header(const sim_args *a)
{
    printf("medvault simulate --days %d --staff %d --patients %d --seed %" PRIu64 "%s\n\n",
           a->cfg.days, a->cfg.staff, a->cfg.patients, a->cfg.seed,
           a->rules_only ? " --rules-only" : "");
    printf("| scenario | detection | patients exposed before containment | "
           "time to containment | first alert | contained by | "
           "false alerts / 1,000 user-days | false lockouts / 1,000 user-days | "
           "target | met |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_attack_row(sim_scenario sc, int model, const sim_outcome *o)
{
    const sim_scenario_info *info = sim_scenario_get(sc);
    char exposed[96], contain[64], alert[96], by[96], t[32];
    if (o->auth)
        snprintf(exposed, sizeof exposed, "%ld accounts (%ld passwords right, %ld attempts)",
                 o->yielded, o->passwords_right, o->attempts);
    else
        snprintf(exposed, sizeof exposed, "%ld", o->exposed);
    if (o->contained) {
        duration(o->contain_after_us, t, sizeof t);
        snprintf(contain, sizeof contain, o->auth ? "%s (all %ld addresses blocked)" : "%s",
                 t, o->sources_used);
    } else {
        snprintf(contain, sizeof contain, o->auth ? "attack ran out of accounts"
                                                  : "not contained");
    }
    if (o->alerted) {
        duration(o->alert_after_us, t, sizeof t);
        if (o->auth)
            snprintf(alert, sizeof alert, "%s", t);
        else
            snprintf(alert, sizeof alert, "%s, after %ld patients", t, o->exposed_at_alert);
    } else {
        snprintf(alert, sizeof alert, "none");
    }
    detectors(o->contained ? o->contain_detectors : o->alert_detectors, by, sizeof by);
    if (!o->contained && o->alerted)
        snprintf(by + strlen(by), sizeof by - strlen(by), " (alert)");
    printf("| %s | %s | %s | %s | %s | %s | - | - | %s | %s |\n", info->name,
           mode_name(model), exposed, contain, alert, by, info->target,
           o->met ? "yes" : "**no**");
}

static double per_1000(long n, long user_days)
{
    return user_days > 0 ? 1000.0 * (double)n / (double)user_days : 0;
}

static int benign_met(const sim_benign *b)
{
    return per_1000(b->alerts, b->user_days) < 10.0 &&
           per_1000(b->lockouts, b->user_days) < 0.1;
}

static void print_benign_row(const sim_args *a, int model, const sim_benign *b)
{
    printf("| benign: %d days x %d staff + 4 services (%ld user-days) | %s | - | - | - | - | "
           "%.2f (%ld alerts; %ld step-ups, %ld throttles) | %.3f (%ld) | "
           "< 10 alerts, < 0.1 lockouts | %s |\n",
           a->cfg.days, a->cfg.staff, b->user_days, mode_name(model),
           per_1000(b->alerts, b->user_days), b->alerts, b->step_ups, b->throttles,
           per_1000(b->lockouts + b->source_blocks, b->user_days),
           b->lockouts + b->source_blocks, benign_met(b) ? "yes" : "**no**");
}

static void json_attack_row(sim_scenario sc, int model, const sim_outcome *o)
{
    json_t *j = json_pack("{s:s, s:b, s:b, s:I, s:b, s:f, s:b, s:f, s:I, s:I, "
                          "s:I, s:I, s:I, s:b}",
        "scenario", sim_scenario_get(sc)->name, "model", model, "auth", o->auth,
        "exposed", (json_int_t)o->exposed, "contained", o->contained,
        "contain_s", (double)(o->contain_after_us / 1000) / 1000, "alerted", o->alerted,
        "alert_s", (double)(o->alert_after_us / 1000) / 1000,
        "exposed_at_alert", (json_int_t)o->exposed_at_alert,
        "decoys_released", (json_int_t)o->decoys_released,
        "yielded", (json_int_t)o->yielded,
        "passwords_right", (json_int_t)o->passwords_right,
        "attempts", (json_int_t)o->attempts, "met", o->met);
    if (j != NULL)
        cli_print_json_line(j);
    json_decref(j);
}

static void json_benign_row(int model, const sim_benign *b)
{
    json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b}",
        "scenario", "benign", "model", model, "user_days", (json_int_t)b->user_days,
        "alerts", (json_int_t)b->alerts, "lockouts",
        (json_int_t)(b->lockouts + b->source_blocks),
        "step_ups", (json_int_t)b->step_ups, "throttles", (json_int_t)b->throttles,
        "false_alerts_per_1000", per_1000(b->alerts, b->user_days),
        "false_lockouts_per_1000", per_1000(b->lockouts + b->source_blocks, b->user_days),
        "met", benign_met(b));
    if (j != NULL)
        cli_print_json_line(j);
    json_decref(j);
}

/* ---- Runs ---------------------------------------------------------------------------------- */

/* Play the days with or without one attack; fills b and, with an attack, o. */
static int play(const sim_args *a, int model, int with_attack, sim_scenario sc,
                sim_benign *b, sim_outcome *o, mv_err *err)
{
    sim_world w;
    if (sim_world_build(&w, &a->cfg, err) != 0)
        return -1;
    detect_engine *e = sim_engine_new(&w, model, err);
    sim_attacker *att = NULL;
    int rc = e == NULL ? -1 : 0;
    if (rc == 0 && with_attack) {
        att = sim_attacker_new(&w, sc, a->cfg.days - 1, err);
        rc = att == NULL ? -1 : 0;
        if (att != NULL)
            sim_attacker_verbose(att, a->verbose);
    }
    memset(b, 0, sizeof *b);
    if (rc == 0)
        rc = sim_run(&w, e, att, a->cfg.days, b, a->verbose && !with_attack, err);
    if (rc == 0 && att != NULL)
        sim_attacker_outcome(att, o);
    sim_attacker_free(att);
    detect_free(e);
    sim_world_free(&w);
    return rc;
}

/* The names of the rows that missed their target, for the last line. */
typedef struct misses {
    char names[256];
} misses;

static void missed(misses *m, const char *name)
{
    size_t len = strlen(m->names);
    snprintf(m->names + len, sizeof m->names - len, "%s%s", len ? ", " : "", name);
}

static int run_mode(const sim_args *a, int model, misses *miss, mv_err *err)
{
    sim_benign b;
    sim_outcome o;
    for (int sc = 0; sc < SC_COUNT; sc++) {
        if (a->benign_only || (!a->all && sc != (int)a->scenario))
            continue;
        if (play(a, model, 1, (sim_scenario)sc, &b, &o, err) != 0)
            return -1;
        if (!o.met)
            missed(miss, sim_scenario_get((sim_scenario)sc)->name);
        if (a->json)
            json_attack_row((sim_scenario)sc, model, &o);
        else
            print_attack_row((sim_scenario)sc, model, &o);
    }
    if (play(a, model, 0, SC_COUNT, &b, &o, err) != 0)
        return -1;
    if (!benign_met(&b))
        missed(miss, "benign");
    if (a->json)
        json_benign_row(model, &b);
    else
        print_benign_row(a, model, &b);
    return 0;
}

/* ---- The frozen benign suite -------------------------------------------------------------- */

static const char *suite_row_name(int row)
{
    static const char *const extra[] = { "staff's first day", "hospital's first day",
                                         "all" };
    return row < SIM_WL_COUNT ? sim_suite_workload_get(row)->name
                              : extra[row - SIM_WL_COUNT];
}

static double per_100(long n, long days)
{
    return days > 0 ? 100.0 * (double)n / (double)days : 0;
}

static void print_suite_row(int row, int model, const sim_suite_row *r)
{
    printf("| %s | %s | %ld | %.0f | %.2f (%ld) | %.2f (%ld of %ld days) | %ld | %ld | %ld | %s |\n",
           suite_row_name(row), mode_name(model), r->user_days,
           r->user_days ? (double)r->requests / (double)r->user_days : 0,
           per_100(r->alerts, r->user_days), r->alerts,
           per_100(r->explained_step_ups, r->explained_days), r->explained_step_ups,
           r->explained_days, r->step_ups, r->refused, r->lockouts,
           sim_suite_row_met(r) ? "yes" : "**no**");
}

static void json_suite_row(int row, int model, const sim_suite_row *r)
{
    json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b}",
        "suite", suite_row_name(row), "model", model,
        "user_days", (json_int_t)r->user_days, "requests", (json_int_t)r->requests,
        "alerts", (json_int_t)r->alerts,
        "step_ups", (json_int_t)r->step_ups, "explained_days", (json_int_t)r->explained_days,
        "explained_step_ups", (json_int_t)r->explained_step_ups,
        "refused", (json_int_t)r->refused, "lockouts", (json_int_t)r->lockouts,
        "alerts_per_100", per_100(r->alerts, r->user_days),
        "explained_step_ups_per_100", per_100(r->explained_step_ups, r->explained_days),
        "met", sim_suite_row_met(r));
    if (j != NULL)
        cli_print_json_line(j);
    json_decref(j);
}

static int run_suite(const sim_args *a)
{
    mv_err err;
    sim_suite *h = sim_suite_new(a->cfg.days, a->cfg.staff, a->cfg.seed, &err);
    if (h == NULL)
        return cli_error("simulate", "%s", err.msg);
    if (!a->json) {
        printf("medvault simulate --suite --days %d --staff %d --seed %" PRIu64 "%s\n\n",
               a->cfg.days, a->cfg.staff, a->cfg.seed, a->rules_only ? " --rules-only" : "");
        printf("| workload | detection | user-days | requests / user-day | "
               "alerts / 100 user-days | "
               "step-ups / 100 user-days reading only explained patients | step-ups, all | "
               "refused requests | lockouts | met |\n|---|---|---|---|---|---|---|---|---|---|\n");
    }
    int missed = 0;
    for (int model = 0; model <= (a->rules_only ? 0 : 1); model++) {
        sim_suite_result res;
        if (sim_suite_run(h, model, a->verbose, &res, &err) != 0) {
            sim_suite_free(h);
            return cli_error("simulate", "%s", err.msg);
        }
        for (int row = 0; row < SIM_SUITE_ROWS; row++) {
            missed += !sim_suite_row_met(&res.rows[row]);
            if (a->json)
                json_suite_row(row, model, &res.rows[row]);
            else
                print_suite_row(row, model, &res.rows[row]);
        }
    }
    sim_suite_free(h);
    if (!a->json) {
        printf("\nTargets: 0 lockouts, < 1 alert per 100 user-days, < 1 step-up per 100 "
               "user-days reading only explained patients.\n");
        for (int wl = 0; wl < SIM_WL_COUNT; wl++)
            printf("- %s (%s): %s\n", sim_suite_workload_get(wl)->name,
                   sim_suite_workload_get(wl)->role, sim_suite_workload_get(wl)->what);
        printf("%s\n", missed ? "target missed" : "every target met");
    }
    return CLI_OK;
}

static int run_simulate(int argc, char **argv)
{
    sim_args a = { .cfg = { .days = 21, .staff = 200, .patients = 5000, .seed = 1 },
                   .all = 1 };
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    mv_err err;
    if (a.suite)
        return run_suite(&a);
    if (a.live.url)
        return sim_live_run(&a.live, &err) == 0 ? CLI_OK
             : cli_error("simulate", "%s", err.msg);
    if (!a.json)
        print_header(&a);
    misses miss[2];
    memset(miss, 0, sizeof miss);
    for (int model = 0; model <= (a.rules_only ? 0 : 1); model++)
        if (run_mode(&a, model, &miss[model], &err) != 0)
            return cli_error("simulate", "%s", err.msg);
    if (a.json)
        return CLI_OK;
    printf("\nAttackers hold the victim's second factor (they pass any step-up); "
           "targets are issue 5's.\n");
    for (int model = 0; model <= (a.rules_only ? 0 : 1); model++)
        printf("%s: %s%s\n", mode_name(model),
               miss[model].names[0] ? "target missed by " : "every target met",
               miss[model].names);
    return CLI_OK;
}
