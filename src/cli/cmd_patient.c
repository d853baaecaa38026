/*
 * cmd_patient.c -- `medvault patient erase ID`: the GDPR right to erasure by
 * crypto-shredding.
 *
 * The patient's data key is destroyed in the same transaction as the audit
 * entry that records it; every version of every resource of that patient is
 * then ciphertext without a key.  The trail keeps its pseudonymous
 * references, as the law on medical records requires.  Afterwards the WAL is
 * checkpointed and truncated so no copy of the destroyed key stays on disk.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: medvault patient erase ID --data DIR [--key-file PATH | --passphrase-stdin]\n\n"
    "Destroy patient ID's data key: every version of every resource of that\n"
    "patient becomes unreadable, for good.  The audit trail keeps its\n"
    "pseudonymous references.  Backups taken before the erasure still hold\n"
    "the wrapped key: rotate or expire them according to your backup policy.\n";

static int run_patient(int argc, char **argv);
const cli_command cli_cmd_patient = {
    "patient", run_patient, "erase a patient by destroying its key (patient erase)", usage
};

static int apply_erase(store_txn *txn, void *ctx, mv_err *err)
{
    return store_erase_patient(txn, ctx, err);
}

static int erase(cli_session *cs, const void *arg)
{
    const char *patient = arg;
    char ref[160];
    snprintf(ref, sizeof ref, "Patient/%s", patient);
    if (cli_audit(cs, "patient.erase", "success", ref, patient, apply_erase,
                  (void *)patient) != 0)
        return CLI_FAIL;
    mv_err err;
    if (store_scrub(cs->store, &err) != 0)
        return cli_error("patient erase", "erased, but %s", err.msg);
    printf("erased patient %s: its data key is destroyed\n", patient);
    return CLI_OK;
}

static int run_patient(int argc, char **argv)
{
    static const struct option longopts[] = { CLI_STORE_LONGOPTS, { 0, 0, 0, 0 } };
    cli_store_opts o = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &o))
            continue;
        if (c == CLI_OPT_HELP)
            return cli_print_help(&cli_cmd_patient);
        return cli_usage_error(&cli_cmd_patient, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_patient, "missing action (erase)");
    if (strcmp(argv[optind], "erase") != 0)
        return cli_usage_error(&cli_cmd_patient, "unknown action '%s'", argv[optind]);
    if (optind + 2 != argc)
        return cli_usage_error(&cli_cmd_patient, "erase takes exactly one patient id");
    const char *patient = argv[optind + 1];
    if (*patient == '\0' || *patient == '#')
        return cli_usage_error(&cli_cmd_patient, "'%s' is not a patient id", patient);
    return cli_run_on_store(&cli_cmd_patient, &o, CLI_OPEN_DEFAULT, erase, patient);
}
