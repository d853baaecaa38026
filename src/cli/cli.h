/*
 * cli.h -- the operator's command line: one `medvault` binary, one file per
 * subcommand (as git's builtin/), all driving the same subsystems the server
 * uses.
 *
 * What this subsystem owns: argument parsing, reading secrets from stdin or a
 * file (never argv), exit statuses (0 success, 1 failure, 2 usage) and the
 * one-line error each failure prints.
 *
 * What it must never do: hold SQL, call libsodium, or print a secret.  Every
 * command that reads or changes the store records what it did in the audit
 * trail, as the actor "cli:<unix user>".
 */
#ifndef MV_CLI_H
#define MV_CLI_H

#include <getopt.h>
#include <stdio.h>
#include "../util/util.h"
#include "../store/store.h"
#include "../audit/audit.h"
#include "../auth/auth.h"
#include <jansson.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;        /* "init", "keys", "audit", ...            */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    const char *summary;     /* one line for `medvault help`            */
    const char *usage;       /* full help text for `medvault CMD --help`*/
} cli_command;

extern const cli_command cli_cmd_init, cli_cmd_keys, cli_cmd_patient,
                         cli_cmd_audit, cli_cmd_resource, cli_cmd_serve,
                         cli_cmd_user, cli_cmd_seed, cli_cmd_simulate;
extern const cli_command cli_cmd_decoy;
extern const cli_command cli_cmd_alerts;
extern const cli_command cli_cmd_approvals;
extern const cli_command cli_cmd_leak;
extern const cli_command cli_cmd_incident;
extern const cli_command cli_cmd_detect;

/* ---- Store options (every command that opens a store) -------------------- */

typedef struct cli_store_opts {
    const char *data;             /* --data DIR, default $MEDVAULT_DATA        */
    const char *key_file;         /* --key-file PATH, default $MEDVAULT_KEY_FILE */
    const char *passphrase_file;  /* --passphrase-file PATH                    */
    int passphrase_stdin;         /* --passphrase-stdin                        */
} cli_store_opts;

/* getopt_long entries for the store options; commands add their own. */
enum { CLI_OPT_DATA = 1000, CLI_OPT_KEY_FILE, CLI_OPT_PASS_STDIN,
       CLI_OPT_PASS_FILE, CLI_OPT_HELP, CLI_OPT_FIRST_FREE };
#define CLI_STORE_LONGOPTS                                             \
    { "data", required_argument, NULL, CLI_OPT_DATA },                 \
    { "key-file", required_argument, NULL, CLI_OPT_KEY_FILE },         \
    { "passphrase-stdin", no_argument, NULL, CLI_OPT_PASS_STDIN },     \
    { "passphrase-file", required_argument, NULL, CLI_OPT_PASS_FILE }, \
    { "help", no_argument, NULL, CLI_OPT_HELP }

/* Handle one getopt result that is a store option: returns 1 when consumed,
 * 0 when it is not a store option. */
int cli_store_opt(int opt, const char *arg, cli_store_opts *o);
/* Apply environment defaults and check the combination; prints the usage
 * error and returns CLI_USAGE, or 0. */
int cli_store_opts_finish(cli_store_opts *o, const cli_command *cmd);

/* An open store with its audit trail and the actor recorded for this run. */
typedef struct cli_session {
    mv_store *store;
    audit_trail *trail;
    char actor[96];
} cli_session;

/* Open the store named by o; on failure prints one line and returns -1.
 * With CLI_OPEN_DAMAGED_TRAIL, a trail that refuses new entries leaves
 * cs->trail NULL (nothing is recorded) instead of failing. */
int  cli_open(const cli_store_opts *o, int flags, cli_session *cs);
/* Close the trail (final checkpoint) and the store; returns -1 (after
 * printing) if the final checkpoint could not be written. */
int  cli_close(cli_session *cs);

/* The shape of every command that works on a store: check the store
 * options, open the store and its trail, run action, close (the final
 * checkpoint).  Returns action's status, or CLI_USAGE / CLI_FAIL when the
 * options are wrong or the store cannot be opened or closed.  With
 * CLI_OPEN_DAMAGED_TRAIL the store opens even when its trail refuses new
 * entries (for `audit verify`). */
typedef int (*cli_action)(cli_session *cs, const void *arg);
enum { CLI_OPEN_DEFAULT = 0, CLI_OPEN_DAMAGED_TRAIL = 1 };
int cli_run_on_store(const cli_command *cmd, cli_store_opts *o, int flags,
                     cli_action action, const void *arg);

/* Record one event for this run (actor, source "cli"); prints on failure. */
int cli_audit(cli_session *cs, const char *action, const char *outcome,
              const char *resources, const char *patient,
              audit_apply_fn apply, void *ctx);

/* Read a secret (passphrase) from stdin or a file: first line, without its
 * line ending.  The caller wipes it with cli_secret_free. */
int  cli_read_secret(const char *path_or_null, mv_buf *out, mv_err *err);
void cli_secret_free(mv_buf *b);

/* Draw text (an otpauth:// URI) as a QR code for a terminal; -1 if it
 * cannot be encoded. */
int cli_print_qr(FILE *out, const char *text);

/* A second-factor enrollment, shown once (enroll.c): as a JSON object
 * {username, otpauth_uri, secret, recovery_codes} (new reference), or for a
 * person (QR code, secret, recovery codes) on stdout. */
json_t *cli_enrollment_json(const char *username, const auth_enrollment *e);
void cli_print_enrollment(const char *username, const auth_enrollment *e);
/* Print a JSON value as one compact line on stdout. */
void cli_print_json_line(json_t *o);

/* Read one line (a new account password) from stdin into out (wiped by the
 * caller with cli_secret_free); same rules as cli_read_secret. */
#define cli_read_password(out, err) cli_read_secret(NULL, (out), (err))

/* Print "medvault CMD: message" to stderr; returns CLI_FAIL. */
int cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print "medvault CMD: message" + the usage hint; returns CLI_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print cmd's full usage to stdout; returns CLI_OK. */
int cli_print_help(const cli_command *cmd);
/* Parse a positive integer option value; prints and returns -1 if invalid. */
int cli_parse_count(const cli_command *cmd, const char *opt, const char *v,
                    long *out);

#endif /* MV_CLI_H */
