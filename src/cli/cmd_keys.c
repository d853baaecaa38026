/*
 * cmd_keys.c -- `medvault keys rotate`: move every data key under a new
 * master-key version.
 *
 * Data keys are re-wrapped, bodies are not re-encrypted, so rotation costs one
 * small write per patient.  It runs in batches, each its own transaction: a
 * rotation killed at any point leaves every key wrapped under a master
 * version that is still stored, and running the command again resumes it.
 *
 * Test hook: MEDVAULT_TEST_ROTATE_CRASH_AFTER=N makes the process _exit(137)
 * after N batches without any cleanup, as a kill -9 would (SQLite has hooks of
 * this kind too); the crash tests use it to stop at an exact point.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: medvault keys rotate --data DIR [--key-file PATH | --passphrase-stdin]\n"
    "                            [--batch N]\n\n"
    "Create a new master-key version and re-wrap every data key under it; the\n"
    "old master key is then deleted.  Interrupted, it resumes when run again.\n\n"
    "  --batch N   data keys re-wrapped per transaction (default 1000)\n";

static int run_keys(int argc, char **argv);
const cli_command cli_cmd_keys = {
    "keys", run_keys, "rotate the master key (keys rotate)", usage
};

static long crash_after_batches(void)
{
    const char *v = getenv("MEDVAULT_TEST_ROTATE_CRASH_AFTER");
    return v ? atol(v) : 0;
}

static int rotate(cli_session *cs, const void *arg)
{
    long batch = *(const long *)arg;
    mv_err err;
    uint32_t version;
    int resumed;
    if (store_rotate_begin(cs->store, &version, &resumed, &err) != 0)
        return cli_error("keys rotate", "%s", err.msg);
    char outcome[96];
    snprintf(outcome, sizeof outcome, "%s master key version %u",
             resumed ? "resumed rotation to" : "started rotation to", version);
    if (cli_audit(cs, "keys.rotate.begin", outcome, NULL, NULL, NULL, NULL) != 0)
        return CLI_FAIL;
    long crash_after = crash_after_batches(), batches = 0;
    size_t total = 0, done, remaining;
    do {
        if (store_rotate_step(cs->store, (size_t)batch, &done, &remaining, &err) != 0)
            return cli_error("keys rotate", "%s", err.msg);
        total += done;
        if (crash_after > 0 && ++batches >= crash_after)
            _exit(137);
    } while (remaining > 0);
    if (store_rotate_finish(cs->store, &err) != 0)
        return cli_error("keys rotate", "%s", err.msg);
    snprintf(outcome, sizeof outcome, "success: master key version %u, %zu data keys re-wrapped",
             version, total);
    if (cli_audit(cs, "keys.rotate", outcome, NULL, NULL, NULL, NULL) != 0)
        return CLI_FAIL;
    printf("%s master key version %u: %zu data keys re-wrapped\n",
           resumed ? "resumed and completed rotation to" : "rotated to", version, total);
    return CLI_OK;
}

static int run_keys(int argc, char **argv)
{
    enum { OPT_BATCH = CLI_OPT_FIRST_FREE };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "batch", required_argument, NULL, OPT_BATCH },
        { 0, 0, 0, 0 }
    };
    cli_store_opts o = {0};
    long batch = 1000;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &o))
            continue;
        if (c == CLI_OPT_HELP)
            return cli_print_help(&cli_cmd_keys);
        if (c == OPT_BATCH) {
            if (cli_parse_count(&cli_cmd_keys, "--batch", optarg, &batch) != 0)
                return CLI_USAGE;
            continue;
        }
        return cli_usage_error(&cli_cmd_keys, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind >= argc)
        return cli_usage_error(&cli_cmd_keys, "missing action (rotate)");
    if (strcmp(argv[optind], "rotate") != 0)
        return cli_usage_error(&cli_cmd_keys, "unknown action '%s'", argv[optind]);
    if (optind + 1 < argc)
        return cli_usage_error(&cli_cmd_keys, "unexpected argument '%s'", argv[optind + 1]);
    return cli_run_on_store(&cli_cmd_keys, &o, CLI_OPEN_DEFAULT, rotate, &batch);
}
