/*
 * cmd_init.c -- `medvault init`: create a store and, when needed, its key.
 *
 * The key file is kept outside the data directory by default: a copied data
 * directory (a stolen disk image, a backup) must be useless on its own.
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../crypto/crypto.h"

#define MIN_PASSPHRASE 12

static const char usage[] =
    "usage: medvault init --data DIR [--key-file PATH | --passphrase-stdin |\n"
    "                     --passphrase-file PATH]\n\n"
    "Create a new store in DIR (mode 0700): the SQLite database in WAL mode,\n"
    "master key version 1, the system, index and audit keys.  Refuses to\n"
    "overwrite an existing store.\n\n"
    "  --key-file PATH        unlock with a key file; created (mode 0600) when\n"
    "                         it does not exist.  Must lie outside DIR: a\n"
    "                         copied data directory must be useless alone.\n"
    "  --passphrase-stdin     unlock with a passphrase read from stdin\n"
    "                         (first line; at least 12 characters; Argon2id)\n"
    "  --passphrase-file PATH the same, read from a file\n";

static int run_init(int argc, char **argv);
const cli_command cli_cmd_init = {
    "init", run_init, "create a new encrypted store and its key", usage
};

/* Absolute form of a path whose last component may not exist yet. */
static char *absolute_path(const char *path)
{
    char *copy1 = strdup(path), *copy2 = strdup(path);
    char *parent = copy1 ? realpath(dirname(copy1), NULL) : NULL;
    char *out = NULL;
    if (parent && copy2) {
        const char *base = basename(copy2);
        size_t n = strlen(parent) + strlen(base) + 2;
        out = malloc(n);
        if (out)
            snprintf(out, n, "%s/%s", parent, base);
    }
    free(parent);
    free(copy1);
    free(copy2);
    return out;
}

static int key_inside_data(const char *key_file, const char *data)
{
    char *k = absolute_path(key_file), *d = absolute_path(data);
    int inside = k && d && mv_path_is_under(k, d);
    free(k);
    free(d);
    return inside;
}

static int check_new_passphrase(const mv_buf *pass, mv_err *err)
{
    if (pass->len < MIN_PASSPHRASE)
        return mv_fail(err, MV_E_INVALID,
                       "passphrase too short: at least %d characters", MIN_PASSPHRASE);
    return 0;
}

static int create_store(const cli_store_opts *o, int *created_key)
{
    mv_err err;
    mv_buf pass = {0};
    store_unlock u = { .key_file = o->key_file };
    if (o->key_file && access(o->key_file, F_OK) != 0) {
        if (crypto_keyfile_create(o->key_file, &err) != 0)
            return cli_error("init", "%s", err.msg);
        *created_key = 1;
    }
    if (o->key_file == NULL) {
        if (cli_read_secret(o->passphrase_file, &pass, &err) != 0 ||
            check_new_passphrase(&pass, &err) != 0) {
            cli_secret_free(&pass);
            return cli_error("init", "%s", err.msg);
        }
        u.passphrase = pass.data;
        u.passphrase_len = pass.len;
    }
    mv_store *s;
    int rc = store_create(o->data, &u, &s, &err);
    cli_secret_free(&pass);
    if (rc != 0)
        return cli_error("init", "%s", err.msg);
    cli_session cs = { .store = s };
    snprintf(cs.actor, sizeof cs.actor, "cli:init");
    if (audit_open(s, NULL, &cs.trail, &err) != 0) {
        store_close(s);
        return cli_error("init", "%s", err.msg);
    }
    rc = cli_audit(&cs, "store.init", "success", NULL, NULL, NULL, NULL);
    if (cli_close(&cs) != 0 || rc != 0)
        return CLI_FAIL;
    return CLI_OK;
}

static int run_init(int argc, char **argv)
{
    static const struct option longopts[] = { CLI_STORE_LONGOPTS, { 0, 0, 0, 0 } };
    cli_store_opts o = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &o))
            continue;
        if (c == CLI_OPT_HELP)
            return cli_print_help(&cli_cmd_init);
        return cli_usage_error(&cli_cmd_init, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_init, "unexpected argument '%s'", argv[optind]);
    int rc = cli_store_opts_finish(&o, &cli_cmd_init);
    if (rc != 0)
        return rc;
    if (o.key_file && key_inside_data(o.key_file, o.data))
        return cli_error("init", "key file %s lies inside the data directory %s: a copied "
                         "data directory must be useless on its own; keep the key "
                         "elsewhere", o.key_file, o.data);
    int created_key = 0;
    rc = create_store(&o, &created_key);
    if (rc != CLI_OK) {
        if (created_key)
            unlink(o.key_file);
        return rc;
    }
    printf("created store %s\n", o.data);
    if (o.key_file)
        printf("key file: %s%s (keep it outside the data directory, backed up "
               "separately: without it the store cannot be read)\n",
               o.key_file, created_key ? " (new)" : "");
    else
        printf("unlocked by passphrase (Argon2id): without it the store cannot be read\n");
    return CLI_OK;
}
