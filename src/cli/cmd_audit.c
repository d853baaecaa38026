/*
 * cmd_audit.c -- `medvault audit verify` and `medvault audit checkpoint`.
 *
 * verify re-walks the whole trail (links, keyed hashes, checkpoint
 * signatures) and, with --checkpoint FILE, a checkpoint exported earlier and
 * held outside the store, which is what catches a trail truncated together
 * with its stored checkpoints.  checkpoint signs the current head now and,
 * with --export, prints it (or writes it to --out FILE) for a third party.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_MAX (64 * 1024)

static const char usage[] =
    "usage: medvault audit verify --data DIR [--key-file PATH | --passphrase-stdin]\n"
    "                             [--checkpoint FILE]\n"
    "       medvault audit checkpoint --data DIR [...] [--export] [--out FILE]\n\n"
    "verify      check every link and signature of the audit trail and name the\n"
    "            first bad entry; exit 1 on any failure.  --checkpoint FILE also\n"
    "            checks a checkpoint exported earlier (detects truncation).\n"
    "checkpoint  sign a checkpoint at the current end of the trail; with\n"
    "            --export print it as JSON (or write it to --out FILE) so that\n"
    "            someone outside the hospital's IT can hold it.\n";

static int run_audit(int argc, char **argv);
const cli_command cli_cmd_audit = {
    "audit", run_audit, "verify the audit trail, export checkpoints", usage
};

typedef struct audit_args {
    cli_store_opts store;
    const char *checkpoint_file;
    const char *out_file;
    int export_json;
} audit_args;

static int verify(cli_session *cs, const void *arg)
{
    const audit_args *a = arg;
    mv_err err;
    mv_buf ext = {0};
    if (a->checkpoint_file &&
        mv_file_read(a->checkpoint_file, CHECKPOINT_MAX, &ext, &err) != 0)
        return cli_error("audit verify", "%s", err.msg);
    audit_report rep;
    int rc = audit_verify(cs->store, (const char *)ext.data, ext.len, &rep, &err);
    mv_buf_free(&ext);
    char outcome[MV_ERR_MSG_MAX + 16];
    snprintf(outcome, sizeof outcome, "%s%s", rc == 0 ? "success" : "failure: ",
             rc == 0 ? "" : err.msg);
    /* Verification is recorded after it ran, so it never checks its own
     * entry; a trail known to be damaged is not extended (see audit_open). */
    if (cs->trail)
        cli_audit(cs, "audit.verify", outcome, NULL, NULL, NULL, NULL);
    if (rc != 0)
        return cli_error("audit verify", "FAILED: %s", err.msg);
    printf("audit trail verified: %lld entries, %lld signed checkpoints%s, "
           "last entry %lld; %lld stored resource versions each name their entry\n",
           (long long)rep.entries, (long long)rep.checkpoints,
           a->checkpoint_file ? " and the exported checkpoint" : "",
           (long long)rep.last_seq, (long long)rep.linked_versions);
    return CLI_OK;
}

static int checkpoint(cli_session *cs, const void *arg)
{
    const audit_args *a = arg;
    mv_err err;
    if (cli_audit(cs, "audit.checkpoint", "success", NULL, NULL, NULL, NULL) != 0)
        return CLI_FAIL;
    if (audit_checkpoint(cs->trail, &err) != 0)
        return cli_error("audit checkpoint", "%s", err.msg);
    if (!a->export_json) {
        printf("checkpoint signed at entry %lld\n", (long long)audit_head(cs->trail));
        return CLI_OK;
    }
    mv_buf json = {0};
    int rc = audit_export_checkpoint(cs->store, &json, &err);
    if (rc == 0 && a->out_file)
        rc = mv_file_write_atomic(a->out_file, 0644, json.data, json.len, &err);
    else if (rc == 0)
        fwrite(json.data, 1, json.len, stdout);
    mv_buf_free(&json);
    if (rc != 0)
        return cli_error("audit checkpoint", "%s", err.msg);
    return CLI_OK;
}

static int parse(int argc, char **argv, audit_args *a)
{
    enum { OPT_CHECKPOINT = CLI_OPT_FIRST_FREE, OPT_EXPORT, OPT_OUT };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
        { "export", no_argument, NULL, OPT_EXPORT },
        { "out", required_argument, NULL, OPT_OUT },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP:   cli_print_help(&cli_cmd_audit); return -1;
        case OPT_CHECKPOINT: a->checkpoint_file = optarg; break;
        case OPT_EXPORT:     a->export_json = 1; break;
        case OPT_OUT:        a->out_file = optarg; a->export_json = 1; break;
        default:
            return cli_usage_error(&cli_cmd_audit, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

static int run_audit(int argc, char **argv)
{
    audit_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_audit, "missing action (verify or checkpoint)");
    const char *action = argv[optind];
    int is_verify = strcmp(action, "verify") == 0;
    if (!is_verify && strcmp(action, "checkpoint") != 0)
        return cli_usage_error(&cli_cmd_audit, "unknown action '%s'", action);
    if (optind + 1 < argc)
        return cli_usage_error(&cli_cmd_audit, "unexpected argument '%s'", argv[optind + 1]);
    if (is_verify && (a.export_json || a.out_file))
        return cli_usage_error(&cli_cmd_audit, "--export and --out belong to 'audit checkpoint'");
    if (!is_verify && a.checkpoint_file)
        return cli_usage_error(&cli_cmd_audit, "--checkpoint belongs to 'audit verify'");
    if (is_verify)
        return cli_run_on_store(&cli_cmd_audit, &a.store, CLI_OPEN_DAMAGED_TRAIL,
                                verify, &a);
    return cli_run_on_store(&cli_cmd_audit, &a.store, CLI_OPEN_DEFAULT, checkpoint, &a);
}
