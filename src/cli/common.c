/*
 * common.c -- what every subcommand shares: store options, opening the store
 * with its trail, reading secrets without argv, and the one-line errors.
 */
#include "cli.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../crypto/crypto.h"
#include "../fhir/fhir.h"
#include "../server/server.h"

#define SECRET_MAX 4096

int cli_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "medvault %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    fprintf(stderr, "medvault %s: ", cmd->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'medvault %s --help')\n", cmd->name);
    return CLI_USAGE;
}

int cli_print_help(const cli_command *cmd)
{
    fputs(cmd->usage, stdout);
    return CLI_OK;
}

int cli_parse_count(const cli_command *cmd, const char *opt, const char *v,
                    long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n <= 0) {
        cli_usage_error(cmd, "%s needs a positive number", opt);
        return -1;
    }
    *out = n;
    return 0;
}

/* ---- Store options ------------------------------------------------------ */

int cli_store_opt(int opt, const char *arg, cli_store_opts *o)
{
    switch (opt) {
    case CLI_OPT_DATA:        o->data = arg; return 1;
    case CLI_OPT_KEY_FILE:    o->key_file = arg; return 1;
    case CLI_OPT_PASS_STDIN:  o->passphrase_stdin = 1; return 1;
    case CLI_OPT_PASS_FILE:   o->passphrase_file = arg; return 1;
    default:                  return 0;
    }
}

int cli_store_opts_finish(cli_store_opts *o, const cli_command *cmd)
{
    if (o->data == NULL)
        o->data = getenv("MEDVAULT_DATA");
    int explicit_pass = o->passphrase_stdin || o->passphrase_file;
    if (o->key_file == NULL && !explicit_pass)
        o->key_file = getenv("MEDVAULT_KEY_FILE");
    if (o->data == NULL || *o->data == '\0')
        return cli_usage_error(cmd, "no data directory: give --data DIR or set MEDVAULT_DATA");
    int sources = (o->key_file != NULL) + o->passphrase_stdin +
                  (o->passphrase_file != NULL);
    if (sources == 0)
        return cli_usage_error(cmd, "no key: give --key-file PATH or --passphrase-stdin "
                                    "(or set MEDVAULT_KEY_FILE)");
    if (sources > 1)
        return cli_usage_error(cmd, "give only one of --key-file, --passphrase-stdin "
                                    "and --passphrase-file");
    return 0;
}

/* ---- Secrets ------------------------------------------------------------ */

int cli_read_secret(const char *path, mv_buf *out, mv_err *err)
{
    FILE *f = path ? fopen(path, "r") : stdin;
    if (f == NULL)
        return mv_fail(err, MV_E_IO, "cannot open passphrase file %s", path);
    int rc = mv_buf_reserve(out, SECRET_MAX + 1, err);
    if (rc == 0) {
        /* stdio buffers the secret too: make the stream unbuffered so the
         * only copy is the one we wipe. */
        setvbuf(f, NULL, _IONBF, 0);
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n' && out->len < SECRET_MAX)
            out->data[out->len++] = (unsigned char)c;
        if (out->len > 0 && out->data[out->len - 1] == '\r')
            out->len--;
        if (out->len == 0)
            rc = mv_fail(err, MV_E_INVALID, "empty passphrase");
        else if (out->len == SECRET_MAX)
            rc = mv_fail(err, MV_E_INVALID, "passphrase longer than %d bytes", SECRET_MAX - 1);
    }
    if (path)
        fclose(f);
    if (rc != 0)
        cli_secret_free(out);
    return rc;
}

void cli_secret_free(mv_buf *b)
{
    if (b->data)
        crypto_wipe(b->data, b->cap);
    mv_buf_free(b);
}

/* ---- Opening a store ----------------------------------------------------- */

static void set_actor(cli_session *cs)
{
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        snprintf(cs->actor, sizeof cs->actor, "cli:%s", pw->pw_name);
    else
        snprintf(cs->actor, sizeof cs->actor, "cli:uid%ld", (long)getuid());
}

/* A store whose blind index was written under another format is
 * re-indexed before any command searches it (server/reindex.c). */
static int reindex_if_stale(cli_session *cs)
{
    mv_err err;
    size_t done;
    if (server_reindex(cs->store, 0, &done, &err) != 0) {
        cli_error("store", "the search index cannot be brought up to date: %s", err.msg);
        cli_close(cs);
        return -1;
    }
    if (done > 0)
        fprintf(stderr, "medvault: search index rebuilt (format %d, %zu resources)\n",
                FHIR_INDEX_VERSION, done);
    return 0;
}

int cli_open(const cli_store_opts *o, int flags, cli_session *cs)
{
    memset(cs, 0, sizeof *cs);
    set_actor(cs);
    mv_err err;
    mv_buf pass = {0};
    store_unlock u = { .key_file = o->key_file };
    if (o->key_file == NULL) {
        if (cli_read_secret(o->passphrase_file, &pass, &err) != 0)
            return cli_error("store", "%s", err.msg), -1;
        u.passphrase = pass.data;
        u.passphrase_len = pass.len;
    }
    int rc = store_open(o->data, &u, &cs->store, &err);
    cli_secret_free(&pass);
    if (rc != 0)
        return cli_error("store", "%s", err.msg), -1;
    if (audit_open(cs->store, NULL, &cs->trail, &err) != 0) {
        if ((flags & CLI_OPEN_DAMAGED_TRAIL) && err.code == MV_E_TAMPER) {
            cs->trail = NULL;
            return 0;
        }
        cli_error("audit", "%s", err.msg);
        store_close(cs->store);
        cs->store = NULL;
        return -1;
    }
    return reindex_if_stale(cs);
}

int cli_close(cli_session *cs)
{
    mv_err err;
    int rc = cs->trail ? audit_close(cs->trail, &err) : 0;
    if (rc != 0)
        cli_error("audit", "final checkpoint not written: %s", err.msg);
    store_close(cs->store);
    cs->trail = NULL;
    cs->store = NULL;
    return rc;
}

int cli_run_on_store(const cli_command *cmd, cli_store_opts *o, int flags,
                     cli_action action, const void *arg)
{
    int rc = cli_store_opts_finish(o, cmd);
    if (rc != 0)
        return rc;
    cli_session cs;
    if (cli_open(o, flags, &cs) != 0)
        return CLI_FAIL;
    rc = action(&cs, arg);
    if (cli_close(&cs) != 0)
        rc = CLI_FAIL;
    return rc;
}

int cli_audit(cli_session *cs, const char *action, const char *outcome,
              const char *resources, const char *patient,
              audit_apply_fn apply, void *ctx)
{
    audit_event ev = {
        .actor = cs->actor, .action = action, .outcome = outcome,
        .resources = resources, .patient = patient, .source = "cli",
    };
    mv_err err;
    if (audit_record(cs->trail, &ev, 1, apply, ctx, NULL, &err) == 0)
        return 0;
    cli_error(action, "%s", err.msg);
    if (apply != NULL) {
        /* The change was refused and rolled back: the attempt itself is
         * still evidence, so it goes to the trail with the reason's code. */
        char failed[64];
        snprintf(failed, sizeof failed, "failure: %s", mv_code_name(err.code));
        ev.outcome = failed;
        audit_record(cs->trail, &ev, 1, NULL, NULL, NULL, NULL);
    }
    return -1;
}
