/*
 * main.c -- `medvault`: find the subcommand and run it.
 *
 * The table below is the whole command surface; each entry lives in its own
 * cmd_*.c file.  Exit statuses are the same everywhere: 0 success, 1 failure,
 * 2 usage error.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "../crypto/crypto.h"

#define MEDVAULT_VERSION "0.1.0"

static const cli_command *const commands[] = {
    &cli_cmd_init, &cli_cmd_serve, &cli_cmd_user, &cli_cmd_keys,
    &cli_cmd_patient, &cli_cmd_audit, &cli_cmd_resource, &cli_cmd_seed,
    &cli_cmd_alerts,
    &cli_cmd_approvals,
    &cli_cmd_simulate,
    &cli_cmd_decoy,
    &cli_cmd_leak,
    &cli_cmd_incident,
    &cli_cmd_detect,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static int print_overview(FILE *out)
{
    fputs("usage: medvault COMMAND [ARGS]\n\n"
          "medvault keeps medical records encrypted per patient, behind an\n"
          "audit trail that proves every access.\n\n"
          "Commands:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs("  help       show this list, or 'medvault help COMMAND'\n\n"
          "Every command that opens a store takes --data DIR and one of\n"
          "--key-file PATH, --passphrase-stdin or --passphrase-file PATH\n"
          "(defaults: $MEDVAULT_DATA, $MEDVAULT_KEY_FILE).  Secrets are never\n"
          "read from the command line.\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n", out);
    return CLI_OK;
}

static int run_help(int argc, char **argv)
{
    if (argc < 3)
        return print_overview(stdout);
    const cli_command *cmd = find_command(argv[2]);
    if (cmd == NULL) {
        fprintf(stderr, "medvault help: unknown command '%s'\n", argv[2]);
        return CLI_USAGE;
    }
    return cli_print_help(cmd);
}

int main(int argc, char **argv)
{
    mv_err err;
    if (crypto_init(&err) != 0) {
        fprintf(stderr, "medvault: %s\n", err.msg);
        return CLI_FAIL;
    }
    if (argc < 2) {
        print_overview(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 ||
        strcmp(name, "-h") == 0)
        return run_help(argc, argv);
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("medvault %s\n", MEDVAULT_VERSION);
        return CLI_OK;
    }
    const cli_command *cmd = find_command(name);
    if (cmd == NULL) {
        fprintf(stderr, "medvault: unknown command '%s' (see 'medvault help')\n", name);
        return CLI_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
