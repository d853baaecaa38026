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

#include <jansson.h>

#include "../auth/auth.h"
#include "../crypto/crypto.h"
#include "../http/http.h"

#define MIN_PASSPHRASE 12

static const char usage[] =
    "usage: medvault init --data DIR [--key-file PATH | --passphrase-stdin |\n"
    "                     --passphrase-file PATH] [--admin NAME]\n"
    "                     [--admin-password-stdin] [--json]\n\n"
    "Create a new store in DIR (mode 0700): the SQLite database in WAL mode,\n"
    "master key version 1, the system, index and audit keys, a self-signed\n"
    "TLS certificate in DIR/tls/ and the first admin account.  Refuses to\n"
    "overwrite an existing store.\n\n"
    "  --admin NAME           the first admin's user name (default: admin)\n"
    "  --admin-password-stdin read its password from stdin; otherwise a strong\n"
    "                         one is generated and shown once, with its TOTP\n"
    "                         enrollment and recovery codes\n"
    "  --json                 print what is shown once as one JSON object\n"
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

typedef struct init_args {
    cli_store_opts store;
    const char *admin;
    int admin_password_stdin;
    int json;
} init_args;

/* A generated admin password: 25 characters from an alphabet without
 * look-alikes, in groups of five (about 123 bits). */
static void generate_password(char out[32])
{
    static const char alphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
    unsigned char r[25];
    crypto_random(r, sizeof r);
    size_t k = 0;
    for (size_t i = 0; i < sizeof r; i++) {
        if (i > 0 && i % 5 == 0)
            out[k++] = '-';
        out[k++] = alphabet[r[i] % (sizeof alphabet - 1)];
    }
    out[k] = '\0';
    crypto_wipe(r, sizeof r);
}

static int make_tls(const char *dir, char *cert, char *key, size_t n)
{
    mv_err err;
    snprintf(cert, n, "%s/tls", dir);
    if (mkdir(cert, 0700) != 0)
        return cli_error("init", "cannot create %s", cert);
    snprintf(cert, n, "%s/tls/cert.pem", dir);
    snprintf(key, n, "%s/tls/key.pem", dir);
    if (http_tls_self_signed(cert, key, "localhost,127.0.0.1,::1", &err) != 0)
        return cli_error("init", "%s", err.msg);
    return 0;
}

static void print_admin(const init_args *a, const char *password,
                        const auth_enrollment *e, const char *cert)
{
    if (a->json) {
        json_t *admin = cli_enrollment_json(a->admin, e);
        if (password)
            json_object_set_new(admin, "password", json_string(password));
        json_t *o = json_pack("{s:s, s:s?, s:s, s:o}", "data", a->store.data,
                              "key_file", a->store.key_file, "tls_cert", cert,
                              "admin", admin);
        cli_print_json_line(o);
        json_decref(o);
        return;
    }
    printf("TLS certificate: %s (self-signed; serve --tls-cert/--tls-key to replace)\n", cert);
    printf("first admin account: %s\n", a->admin);
    if (password)
        printf("password (shown once): %s\n", password);
    cli_print_enrollment(a->admin, e);
}

/* The first admin, recorded in the trail like any account creation. */
static int create_admin(cli_session *cs, const init_args *a, const mv_buf *given,
                        const char *cert)
{
    mv_err err;
    char generated[32];
    const char *password = given->len ? (const char *)given->data : NULL;
    if (password == NULL)
        generate_password(generated);
    auth *au;
    auth_config cfg = auth_default_config();
    if (auth_open(cs->store, cs->trail, &cfg, &au, &err) != 0)
        return cli_error("init", "%s", err.msg);
    auth_new_account spec = { .username = a->admin, .role = AUTH_ROLE_ADMIN };
    auth_enrollment e;
    const char *pw = password ? password : generated;
    int rc = auth_account_create(au, &spec, pw, password ? given->len : strlen(generated),
                                 cs->actor, &e, &err);
    auth_close(au);
    if (rc != 0) {
        crypto_wipe(generated, sizeof generated);
        return cli_error("init", "first admin: %s", err.msg);
    }
    print_admin(a, password ? NULL : generated, &e, cert);
    crypto_wipe(generated, sizeof generated);
    crypto_wipe(&e, sizeof e);
    return CLI_OK;
}

static int create_store(const init_args *a, const mv_buf *admin_pw, int *created_key,
                        int *store_made)
{
    const cli_store_opts *o = &a->store;
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
    *store_made = 1;
    cli_session cs = { .store = s };
    snprintf(cs.actor, sizeof cs.actor, "cli:init");
    if (audit_open(s, NULL, &cs.trail, &err) != 0) {
        store_close(s);
        return cli_error("init", "%s", err.msg);
    }
    char cert[1024], key[1024];
    rc = cli_audit(&cs, "store.init", "success", NULL, NULL, NULL, NULL);
    if (rc == 0 && !a->json)
        printf("created store %s\n", o->data);
    if (rc == 0)
        rc = make_tls(o->data, cert, key, sizeof cert);
    if (rc == 0)
        rc = create_admin(&cs, a, admin_pw, cert);
    if (cli_close(&cs) != 0 || rc != 0)
        return CLI_FAIL;
    return CLI_OK;
}

/* A store whose init failed half-way (after the database existed) would
 * block the next `init`: remove exactly the files init makes. */
static void remove_half_made_store(const char *dir)
{
    static const char *const files[] = {
        "tls/cert.pem", "tls/key.pem", "tls", "medvault.db-wal", "medvault.db-shm",
        "medvault.db",
    };
    char path[1024];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

static int run_init(int argc, char **argv)
{
    enum { OPT_ADMIN = CLI_OPT_FIRST_FREE, OPT_ADMIN_PW, OPT_JSON };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "admin", required_argument, NULL, OPT_ADMIN },
        { "admin-password-stdin", no_argument, NULL, OPT_ADMIN_PW },
        { "json", no_argument, NULL, OPT_JSON },
        { 0, 0, 0, 0 }
    };
    init_args a = { .admin = "admin" };
    cli_store_opts o = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &o))
            continue;
        switch (c) {
        case CLI_OPT_HELP: return cli_print_help(&cli_cmd_init);
        case OPT_ADMIN:    a.admin = optarg; break;
        case OPT_ADMIN_PW: a.admin_password_stdin = 1; break;
        case OPT_JSON:     a.json = 1; break;
        default:
            return cli_usage_error(&cli_cmd_init, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a.admin_password_stdin && o.passphrase_stdin)
        return cli_usage_error(&cli_cmd_init, "stdin cannot carry both the store "
                               "passphrase and the admin password: use --passphrase-file");
    if (optind < argc)
        return cli_usage_error(&cli_cmd_init, "unexpected argument '%s'", argv[optind]);
    int rc = cli_store_opts_finish(&o, &cli_cmd_init);
    if (rc != 0)
        return rc;
    if (o.key_file && key_inside_data(o.key_file, o.data))
        return cli_error("init", "key file %s lies inside the data directory %s: a copied "
                         "data directory must be useless on its own; keep the key "
                         "elsewhere", o.key_file, o.data);
    mv_buf admin_pw = {0};
    mv_err err;
    if (a.admin_password_stdin &&
        (cli_read_password(&admin_pw, &err) != 0 ||
         auth_password_acceptable(a.admin, (const char *)admin_pw.data, admin_pw.len,
                                  &err) != 0)) {
        cli_secret_free(&admin_pw);
        return cli_error("init", "admin password: %s", err.msg);
    }
    a.store = o;
    int created_key = 0, store_made = 0;
    rc = create_store(&a, &admin_pw, &created_key, &store_made);
    cli_secret_free(&admin_pw);
    if (rc != CLI_OK) {
        if (created_key)
            unlink(o.key_file);
        if (store_made)
            remove_half_made_store(o.data);
        return rc;
    }
    if (a.json)
        return CLI_OK;
    if (o.key_file)
        printf("key file: %s%s (keep it outside the data directory, backed up "
               "separately: without it the store cannot be read)\n",
               o.key_file, created_key ? " (new)" : "");
    else
        printf("unlocked by passphrase (Argon2id): without it the store cannot be read\n");
    return CLI_OK;
}
