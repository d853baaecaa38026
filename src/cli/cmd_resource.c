/*
 * cmd_resource.c -- `medvault resource put|get|history`: an operator's direct
 * access to stored resources, for loading, inspection and recovery.
 *
 * Whoever holds the store's key can read everything, so this command does not
 * pretend otherwise; what it guarantees is that every read and write is in
 * the audit trail, durably, before anything is printed.  Bodies are read from
 * a file or stdin and must be a JSON object; full FHIR validation belongs to
 * the API.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (8 * 1024 * 1024)

static const char usage[] =
    "usage: medvault resource put TYPE/ID [--patient PID] [--file FILE] --data DIR [...]\n"
    "       medvault resource get TYPE/ID [--version N] --data DIR [...]\n"
    "       medvault resource history TYPE/ID --data DIR [...]\n\n"
    "put      store a new version of a JSON resource read from FILE (or stdin),\n"
    "         sealed under patient PID's data key (or the system key)\n"
    "get      print the current (or --version N) body\n"
    "history  list the versions: version, time, deleted flag\n"
    "Every call is recorded in the audit trail before anything is printed.\n";

static int run_resource(int argc, char **argv);
const cli_command cli_cmd_resource = {
    "resource", run_resource, "put, get or list versions of one stored resource", usage
};

typedef struct resource_args {
    cli_store_opts store;
    const char *action;
    char type[64];
    char id[128];
    const char *patient;
    const char *file;
    long version;
} resource_args;

static int split_ref(const char *ref, resource_args *a)
{
    const char *slash = strchr(ref, '/');
    if (slash == NULL || slash == ref || slash[1] == '\0' || strchr(slash + 1, '/') ||
        (size_t)(slash - ref) >= sizeof a->type || strlen(slash + 1) >= sizeof a->id)
        return -1;
    memcpy(a->type, ref, (size_t)(slash - ref));
    a->type[slash - ref] = '\0';
    strcpy(a->id, slash + 1);
    return 0;
}

static void version_ref(const char *type, const char *id, int64_t v, char *out,
                        size_t n)
{
    snprintf(out, n, "%s/%s/_history/%lld", type, id, (long long)v);
}

/* ---- put ------------------------------------------------------------------ */

typedef struct put_ctx {
    store_write w;
    int64_t version;
} put_ctx;

static int apply_put(store_txn *txn, void *ctx, mv_err *err)
{
    put_ctx *p = ctx;
    return store_put(txn, &p->w, &p->version, err);
}

static int read_body(const char *file, mv_buf *body, mv_err *err)
{
    if (file)
        return mv_file_read(file, BODY_MAX, body, err);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (body->len + n > BODY_MAX ||
            mv_buf_append(body, chunk, n, err) != 0)
            return mv_fail(err, MV_E_INVALID, "body larger than %d bytes", BODY_MAX);
    return 0;
}

static int check_json_object(const mv_buf *body, mv_err *err)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)body->data, body->len, 0, &je);
    int ok = json_is_object(o);
    json_decref(o);
    if (!ok)
        return mv_fail(err, MV_E_INVALID, "body is not a JSON object (%s, line %d)",
                       o ? "not an object" : je.text, je.line);
    return 0;
}

static int put(cli_session *cs, const void *arg)
{
    const resource_args *a = arg;
    mv_err err;
    mv_buf body = {0};
    if (read_body(a->file, &body, &err) != 0 || check_json_object(&body, &err) != 0) {
        mv_buf_free(&body);
        return cli_error("resource put", "%s", err.msg);
    }
    put_ctx p = { .w = { .type = a->type, .id = a->id, .patient = a->patient,
                         .if_version = -1, .body = body.data, .body_len = body.len } };
    char ref[256];
    snprintf(ref, sizeof ref, "%s/%s", a->type, a->id);
    int rc = cli_audit(cs, "resource.write", "success", ref, a->patient, apply_put, &p);
    mv_buf_free(&body);
    if (rc != 0)
        return CLI_FAIL;
    version_ref(a->type, a->id, p.version, ref, sizeof ref);
    printf("%s\n", ref);
    return CLI_OK;
}

/* ---- get / history ---------------------------------------------------------- */

static int get(cli_session *cs, const void *arg)
{
    const resource_args *a = arg;
    mv_err err;
    store_resource r = {0};
    char ref[256];
    snprintf(ref, sizeof ref, "%s/%s", a->type, a->id);
    if (store_get(cs->store, a->type, a->id, a->version, &r, &err) != 0) {
        char outcome[64];
        snprintf(outcome, sizeof outcome, "failure: %s", mv_code_name(err.code));
        cli_audit(cs, "resource.read", outcome, ref, NULL, NULL, NULL);
        return cli_error("resource get", "%s", err.msg);
    }
    version_ref(r.type, r.id, r.version, ref, sizeof ref);
    /* The disclosure is durable in the trail before a byte is printed. */
    int rc = cli_audit(cs, "resource.read", "success", ref, r.patient, NULL, NULL);
    if (rc == 0 && r.deleted)
        rc = cli_error("resource get", "%s was deleted", ref);
    else if (rc == 0)
        fwrite(r.body.data, 1, r.body.len, stdout), putchar('\n');
    store_resource_free(&r);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int history(cli_session *cs, const void *arg)
{
    const resource_args *a = arg;
    mv_err err;
    store_resource *v = NULL;
    size_t n = 0;
    char ref[256];
    snprintf(ref, sizeof ref, "%s/%s", a->type, a->id);
    if (store_history(cs->store, a->type, a->id, 0, &v, &n, &err) != 0)
        return cli_error("resource history", "%s", err.msg);
    int rc = n == 0 ? cli_error("resource history", "%s not found", ref)
                    : cli_audit(cs, "resource.history", "success", ref, v[0].patient,
                                NULL, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char when[MV_TIME_STR_MAX];
        mv_time_format(v[i].updated_us, when);
        printf("%lld\t%s\t%s\n", (long long)v[i].version, when,
               v[i].deleted ? "deleted" : "-");
    }
    store_resources_free(v, n);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- arguments ------------------------------------------------------------ */

static int parse(int argc, char **argv, resource_args *a)
{
    enum { OPT_PATIENT = CLI_OPT_FIRST_FREE, OPT_FILE, OPT_VERSION };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "patient", required_argument, NULL, OPT_PATIENT },
        { "file", required_argument, NULL, OPT_FILE },
        { "version", required_argument, NULL, OPT_VERSION },
        { 0, 0, 0, 0 }
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a->store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: cli_print_help(&cli_cmd_resource); return -1;
        case OPT_PATIENT:  a->patient = optarg; break;
        case OPT_FILE:     a->file = optarg; break;
        case OPT_VERSION:
            if (cli_parse_count(&cli_cmd_resource, "--version", optarg, &a->version) != 0)
                return CLI_USAGE;
            break;
        default:
            return cli_usage_error(&cli_cmd_resource, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 2 != argc)
        return cli_usage_error(&cli_cmd_resource, "expected an action and TYPE/ID");
    a->action = argv[optind];
    if (split_ref(argv[optind + 1], a) != 0)
        return cli_usage_error(&cli_cmd_resource, "'%s' is not TYPE/ID", argv[optind + 1]);
    if (a->patient && (*a->patient == '\0' || *a->patient == '#'))
        return cli_usage_error(&cli_cmd_resource, "'%s' is not a patient id", a->patient);
    return 0;
}

static int run_resource(int argc, char **argv)
{
    resource_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    cli_action action =
        strcmp(a.action, "put") == 0 ? put :
        strcmp(a.action, "get") == 0 ? get :
        strcmp(a.action, "history") == 0 ? history : NULL;
    if (action == NULL)
        return cli_usage_error(&cli_cmd_resource, "unknown action '%s'", a.action);
    if (a.store.passphrase_stdin && action == put && a.file == NULL)
        return cli_usage_error(&cli_cmd_resource,
                               "with --passphrase-stdin, give the body with --file");
    return cli_run_on_store(&cli_cmd_resource, &a.store, CLI_OPEN_DEFAULT, action, &a);
}
