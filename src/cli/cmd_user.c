/*
 * cmd_user.c -- `medvault user`: account management from the command line,
 * the same operations admins have under /api/users.
 *
 * Passwords are read from stdin (one line), never from argv.  A new account's
 * TOTP enrollment (otpauth:// URI, a QR code for the terminal, the base32
 * secret) and its recovery codes are printed once; with --json they come as
 * one JSON object for scripts.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../auth/auth.h"
#include "../crypto/crypto.h"
#include "../server/server.h"

static const char usage[] =
    "usage: medvault user add --username NAME --role ROLE [--practitioner ID |\n"
    "                         --patient ID] [--scopes \"SCOPE ...\"]\n"
    "                         [--department NAME] [--json]\n"
    "       medvault user list [--json]\n"
    "       medvault user show NAME [--json]\n"
    "       medvault user lock NAME [--reason TEXT]\n"
    "       medvault user unlock NAME\n"
    "       medvault user reset-password NAME\n"
    "       medvault user reset-mfa NAME [--json]\n"
    "       medvault user revoke-sessions NAME\n"
    "(each with --data DIR and --key-file PATH or --passphrase-file PATH)\n\n"
    "Roles: clinician, nurse, admin, security, patient, service.  Passwords\n"
    "(add, reset-password) are read from stdin: at least 12 characters, no\n"
    "composition rules, refused when weak or common.  The TOTP enrollment and\n"
    "recovery codes are shown once.  The department (\"emergency\",\n"
    "\"radiology\", ...) picks the detector's cold-start priors for it\n"
    "(`medvault detect priors`).\n";

static int run_user(int argc, char **argv);
const cli_command cli_cmd_user = {
    "user", run_user, "add, list, lock, unlock or reset accounts", usage
};

typedef struct user_args {
    cli_store_opts store;
    const char *action, *name;
    auth_new_account spec;
    const char *role, *reason;
    int json;
} user_args;

/* ---- output ----------------------------------------------------------------- */

static void print_enrollment(const char *username, const auth_enrollment *e, int json)
{
    if (!json) {
        cli_print_enrollment(username, e);
        return;
    }
    json_t *o = cli_enrollment_json(username, e);
    cli_print_json_line(o);
    json_decref(o);
}

static json_t *account_json(const auth_account *a)
{
    char closed[MV_TIME_STR_MAX] = "";
    if (a->password_locked_until_us > mv_now_us())
        mv_time_format(a->password_locked_until_us, closed);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:i, s:s, s:i}",
                     "id", a->id, "username", a->username, "role",
                     auth_role_name(a->role), "practitioner", a->practitioner,
                     "patient", a->patient, "department", a->department,
                     "scopes", a->scopes, "locked", a->locked,
                     "lock_reason", a->lock_reason, "failed_logins", a->failed_logins,
                     "password_locked_until", closed,
                     "recovery_codes_left", a->recovery_left);
}

static void print_account(const auth_account *a)
{
    printf("%-20s %-10s %-8s failed=%d%s%s%s%s%s%s\n", a->username, auth_role_name(a->role),
           a->locked ? "LOCKED" : "active", a->failed_logins,
           *a->practitioner ? " practitioner=" : "", a->practitioner,
           *a->patient ? " patient=" : "", a->patient,
           *a->department ? " department=" : "", a->department);
}

/* ---- actions ---------------------------------------------------------------- */

static int add(auth *au, cli_session *cs, const user_args *a)
{
    mv_err err;
    mv_buf pw = {0};
    if (cli_read_password(&pw, &err) != 0)
        return cli_error("user add", "password: %s", err.msg);
    auth_enrollment e;
    int rc = auth_account_create(au, &a->spec, (const char *)pw.data, pw.len,
                                 cs->actor, &e, &err);
    cli_secret_free(&pw);
    if (rc != 0)
        return cli_error("user add", "%s", err.msg);
    if (!a->json)
        printf("created %s account %s\n", a->role, a->spec.username);
    print_enrollment(a->spec.username, &e, a->json);
    crypto_wipe(&e, sizeof e);
    return CLI_OK;
}

static int list(auth *au, const user_args *a)
{
    auth_account *v = NULL;
    size_t n = 0;
    mv_err err;
    if (auth_account_list(au, &v, &n, &err) != 0)
        return cli_error("user list", "%s", err.msg);
    json_t *arr = a->json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        if (arr)
            json_array_append_new(arr, account_json(&v[i]));
        else
            print_account(&v[i]);
    }
    if (arr) {
        cli_print_json_line(arr);
        json_decref(arr);
    }
    free(v);
    return CLI_OK;
}

static int show(auth *au, const user_args *a)
{
    auth_account acct;
    mv_err err;
    if (auth_account_get(au, a->name, &acct, &err) != 0)
        return cli_error("user show", "%s", err.msg);
    if (a->json) {
        json_t *o = account_json(&acct);
        cli_print_json_line(o);
        json_decref(o);
    } else {
        print_account(&acct);
        if (acct.locked)
            printf("locked: %s\n", acct.lock_reason);
        if (*acct.scopes)
            printf("scopes: %s\n", acct.scopes);
        printf("recovery codes left: %d\n", acct.recovery_left);
    }
    return CLI_OK;
}

static int reset_password(auth *au, cli_session *cs, const user_args *a)
{
    mv_err err;
    mv_buf pw = {0};
    if (cli_read_password(&pw, &err) != 0)
        return cli_error("user reset-password", "password: %s", err.msg);
    int rc = auth_account_reset_password(au, a->name, (const char *)pw.data, pw.len,
                                         cs->actor, &err);
    cli_secret_free(&pw);
    if (rc != 0)
        return cli_error("user reset-password", "%s", err.msg);
    printf("password of %s reset; its sessions are revoked\n", a->name);
    return CLI_OK;
}

static int simple_action(auth *au, cli_session *cs, const user_args *a)
{
    mv_err err;
    size_t n = 0;
    int rc;
    const char *act = a->action;
    if (strcmp(act, "lock") == 0)
        rc = auth_account_lock(au, a->name, a->reason ? a->reason : "locked by an operator",
                               cs->actor, &err);
    else if (strcmp(act, "unlock") == 0)
        rc = auth_account_unlock(au, a->name, cs->actor, &err);
    else
        rc = auth_account_revoke_sessions(au, a->name, cs->actor, &n, &err);
    if (rc != 0)
        return cli_error(act, "%s", err.msg);
    if (act[0] == 'r')
        printf("revoked %zu session(s) of %s\n", n, a->name);
    else
        printf("%s %sed\n", a->name, act);
    return CLI_OK;
}

/* The local operator may make a privileged change alone (the key file is
 * the last resort of a hospital), and every such change raises an alert
 * for the security officers. */
static void operator_alert(cli_session *cs, const char *change, const char *name)
{
    if (cs->trail && server_alert_privilege(cs->trail, cs->actor, "local", change, name,
                                            NULL, NULL) == 0)
        fprintf(stderr, "medvault user: %s of %s made without a second person; an alert "
                "was raised for the security officers\n", change, name);
}

/* 1 when name's account is locked by the detector (its unlock is privileged). */
static int detector_contained(auth *au, const char *name)
{
    auth_account acct;
    return auth_account_get(au, name, &acct, NULL) == 0 && acct.locked &&
           strncmp(acct.lock_reason, "contained by the detector", 25) == 0;
}

static int dispatch(cli_session *cs, const void *arg)
{
    const user_args *a = arg;
    auth *au;
    mv_err err;
    auth_config cfg = auth_default_config();
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error("user", "%s", err.msg);
    int rc;
    const char *act = a->action;
    int contained = strcmp(act, "unlock") == 0 && detector_contained(au, a->name);
    if (strcmp(act, "add") == 0)
        rc = add(au, cs, a);
    else if (strcmp(act, "list") == 0)
        rc = list(au, a);
    else if (strcmp(act, "show") == 0)
        rc = show(au, a);
    else if (strcmp(act, "reset-password") == 0)
        rc = reset_password(au, cs, a);
    else if (strcmp(act, "reset-mfa") == 0) {
        auth_enrollment e;
        rc = auth_account_reset_mfa(au, a->name, cs->actor, &e, &err) == 0 ? CLI_OK
             : cli_error("user reset-mfa", "%s", err.msg);
        if (rc == CLI_OK)
            print_enrollment(a->name, &e, a->json);
        crypto_wipe(&e, sizeof e);
    } else
        rc = simple_action(au, cs, a);
    if (rc == CLI_OK && (strcmp(act, "add") == 0 || strcmp(act, "reset-password") == 0 ||
                         strcmp(act, "reset-mfa") == 0 || contained))
        operator_alert(cs, strcmp(act, "add") == 0 ? "creation" : act,
                       strcmp(act, "add") == 0 ? a->spec.username : a->name);
    auth_close(au);
    return rc;
}

/* ---- arguments ------------------------------------------------------------- */

static const char *const actions[] = {
    "add", "list", "show", "lock", "unlock", "reset-password", "reset-mfa",
    "revoke-sessions",
};

static int known_action(const char *s)
{
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(actions[i], s) == 0)
            return 1;
    return 0;
}

static int parse(int argc, char **argv, user_args *a)
{
    enum { OPT_USERNAME = CLI_OPT_FIRST_FREE, OPT_ROLE, OPT_PRACT, OPT_PATIENT,
           OPT_SCOPES, OPT_JSON, OPT_REASON, OPT_DEPARTMENT };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "username", required_argument, NULL, OPT_USERNAME },
        { "role", required_argument, NULL, OPT_ROLE },
        { "practitioner", required_argument, NULL, OPT_PRACT },
        { "patient", required_argument, NULL, OPT_PATIENT },
        { "scopes", required_argument, NULL, OPT_SCOPES },
        { "department", required_argument, NULL, OPT_DEPARTMENT },
        { "json", no_argument, NULL, OPT_JSON },
        { "reason", required_argument, NULL, OPT_REASON },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_user); return -1;
        case OPT_USERNAME: a->spec.username = optarg; break;
        case OPT_ROLE:     a->role = optarg; break;
        case OPT_PRACT:    a->spec.practitioner = optarg; break;
        case OPT_PATIENT:  a->spec.patient = optarg; break;
        case OPT_SCOPES:   a->spec.scopes = optarg; break;
        case OPT_DEPARTMENT: a->spec.department = optarg; break;
        case OPT_JSON:     a->json = 1; break;
        case OPT_REASON:   a->reason = optarg; break;
        default:
            return cli_usage_error(&cli_cmd_user, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc || !known_action(argv[optind]))
        return cli_usage_error(&cli_cmd_user, optind >= argc ? "missing action%s"
                               : "unknown action '%s'", optind >= argc ? "" : argv[optind]);
    a->action = argv[optind++];
    int is_add = strcmp(a->action, "add") == 0, is_list = strcmp(a->action, "list") == 0;
    if (!is_add && !is_list) {
        if (optind >= argc)
            return cli_usage_error(&cli_cmd_user, "%s needs a user name", a->action);
        a->name = argv[optind++];
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_user, "unexpected argument '%s'", argv[optind]);
    if (is_add && (a->spec.username == NULL || a->role == NULL))
        return cli_usage_error(&cli_cmd_user, "add needs --username and --role");
    if (is_add && auth_role_parse(a->role, &a->spec.role) != 0)
        return cli_usage_error(&cli_cmd_user, "unknown role '%s' (clinician, nurse, "
                               "admin, security, patient, service)", a->role);
    int reads_password = is_add || strcmp(a->action, "reset-password") == 0;
    if (reads_password && a->store.passphrase_stdin)
        return cli_usage_error(&cli_cmd_user, "the password comes from stdin: unlock "
                               "the store with --key-file or --passphrase-file");
    return 0;
}

static int run_user(int argc, char **argv)
{
    user_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    return cli_run_on_store(&cli_cmd_user, &a.store, CLI_OPEN_DEFAULT, dispatch, &a);
}
