/*
 * cmd_serve.c -- `medvault serve`: the HTTPS server on a store.
 *
 * Settings come from the defaults, then --config FILE, then the flags, in
 * that order.  Without --tls-cert/--tls-key the certificate `init` generated
 * in DIR/tls/ is used.  SIGTERM or SIGINT stops accepting, lets in-flight
 * requests finish, writes the final audit checkpoint and exits 0.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/server.h"

static const char usage[] =
    "usage: medvault serve --data DIR [--key-file PATH | --passphrase-stdin]\n"
    "                      [--listen URL] [--config FILE]\n"
    "                      [--tls-cert PEM --tls-key PEM]\n\n"
    "Serve the store over HTTPS (default https://127.0.0.1:8443, TLS 1.2/1.3).\n"
    "Plain http:// is accepted on loopback addresses only (tests, benchmarks).\n"
    "--config FILE holds 'key = value' lines: listen, tls_cert, tls_key,\n"
    "max_body, max_header, threads, request_timeout (idle, seconds),\n"
    "header_timeout (seconds to send a request's headers), max_connections\n"
    "(all clients; default 8192 within the open-file limit), max_conns_per_source,\n"
    "public_url (the base of absolute links such as paging, e.g. behind a\n"
    "reverse proxy; never taken from the request's Host header),\n"
    "idle_timeout, absolute_timeout, step_up_valid, lock_after, lock_time, delay_base,\n"
    "delay_max, source_max_failures, source_window, approval_ttl (how long a\n"
    "two-person request waits, 24h), privilege_burst (account requests by one\n"
    "person in an hour before an alert, 5), detect (on|off), syslog,\n"
    "alert_webhook (durations: 250ms, 30s, 15m, 12h).\n";

static int run_serve(int argc, char **argv);
const cli_command cli_cmd_serve = {
    "serve", run_serve, "serve the store over HTTPS", usage
};

typedef struct serve_args {
    cli_store_opts store;
    const char *listen, *config, *tls_cert, *tls_key;
} serve_args;

/* Paths of the certificate `init` made, used when none is configured. */
typedef struct default_tls {
    char cert[1024];
    char key[1024];
} default_tls;

static int build_config(const serve_args *a, server_config *cfg, default_tls *tls)
{
    *cfg = server_default_config();
    mv_err err;
    if (a->config && server_config_load(a->config, cfg, &err) != 0)
        return cli_error("serve", "%s", err.msg);
    if (a->listen)
        cfg->http.listen = a->listen;
    if (a->tls_cert)
        cfg->http.tls_cert = a->tls_cert;
    if (a->tls_key)
        cfg->http.tls_key = a->tls_key;
    snprintf(tls->cert, sizeof tls->cert, "%s/tls/cert.pem", a->store.data);
    snprintf(tls->key, sizeof tls->key, "%s/tls/key.pem", a->store.data);
    if (cfg->http.tls_cert == NULL)
        cfg->http.tls_cert = tls->cert;
    if (cfg->http.tls_key == NULL)
        cfg->http.tls_key = tls->key;
    return 0;
}

static int serve(cli_session *cs, const void *arg)
{
    const serve_args *a = arg;
    server_config cfg;
    default_tls tls;
    if (build_config(a, &cfg, &tls) != 0) {
        server_config_release(&cfg);
        return CLI_FAIL;
    }
    server *srv;
    int port = 0;
    mv_err err;
    if (server_start(cs->store, cs->trail, &cfg, &srv, &port, &err) != 0) {
        server_config_release(&cfg);
        return cli_error("serve", "%s", err.msg);
    }
    const char *listen = cfg.http.listen ? cfg.http.listen : "https://127.0.0.1:8443";
    printf("medvault: serving store %s on %s (port %d); stop with SIGTERM or Ctrl-C\n",
           a->store.data, listen, port);
    fflush(stdout);
    int sig = http_wait_for_stop(server_tick, srv, 1000);
    printf("medvault: %s received: finishing in-flight requests\n",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    server_stop(srv);
    server_config_release(&cfg);
    return CLI_OK;   /* the final checkpoint is written by cli_close */
}

static int run_serve(int argc, char **argv)
{
    enum { OPT_LISTEN = CLI_OPT_FIRST_FREE, OPT_CONFIG, OPT_CERT, OPT_KEY };
    static const struct option longopts[] = {
        CLI_STORE_LONGOPTS,
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "tls-cert", required_argument, NULL, OPT_CERT },
        { "tls-key", required_argument, NULL, OPT_KEY },
        { 0, 0, 0, 0 }
    };
    serve_args a = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (cli_store_opt(c, optarg, &a.store))
            continue;
        switch (c) {
        case CLI_OPT_HELP: return cli_print_help(&cli_cmd_serve);
        case OPT_LISTEN:   a.listen = optarg; break;
        case OPT_CONFIG:   a.config = optarg; break;
        case OPT_CERT:     a.tls_cert = optarg; break;
        case OPT_KEY:      a.tls_key = optarg; break;
        default:
            return cli_usage_error(&cli_cmd_serve, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(&cli_cmd_serve, "unexpected argument '%s'", argv[optind]);
    if ((a.tls_cert == NULL) != (a.tls_key == NULL))
        return cli_usage_error(&cli_cmd_serve, "--tls-cert and --tls-key go together");
    return cli_run_on_store(&cli_cmd_serve, &a.store, CLI_OPEN_DEFAULT, serve, &a);
}
