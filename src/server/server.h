/*
 * server.h -- the application behind `medvault serve`: every request's path
 * from the transport (http/) through who is calling (auth/) to what it may
 * do, and the answer.
 *
 * What this subsystem owns: the routes and their JSON shapes, the mapping of
 * auth results to HTTP statuses, role checks on the account-management API,
 * and the periodic work of a running server (time-based audit checkpoints,
 * purging expired sessions).
 *
 * What it must never do: include the HTTP library (only http.h), hold SQL,
 * call libsodium, or echo a password, token, TOTP code or recovery code.
 *
 * Routes (JSON in, JSON out; errors are FHIR OperationOutcome):
 *   POST /auth/login          {"username","password","totp"|"recovery_code"}
 *   POST /auth/logout         bearer
 *   POST /auth/step-up        bearer, {"totp"}
 *   GET  /api/whoami          bearer: the caller's account
 *   GET  /api/users           admin, security
 *   POST /api/users           admin (fresh second factor)
 *   GET  /api/users/NAME      admin, security
 *   POST /api/users/NAME/lock | unlock | revoke-sessions     admin, security
 *   POST /api/users/NAME/reset-password | reset-mfa          admin (fresh 2FA)
 *   POST /api/users/NAME/bulk-access  {"patients_per_day","days","reason"}
 *                                                            admin, security
 *   POST /api/users/NAME/bulk-access/approve   a second person, security
 *   POST /api/users/NAME/networks     {"cidrs"}  service accounts; admin, security
 *   GET  /api/alerts[?status=], GET /api/alerts/ID           security
 *   POST /api/alerts/ID/ack | close {"resolution","note"}    security
 *   /fhir/...                 FHIR R4 (routes_fhir.c and its neighbours)
 */
#ifndef MV_SERVER_H
#define MV_SERVER_H

#include "../util/util.h"
#include "../store/store.h"
#include "../audit/audit.h"
#include "../auth/auth.h"
#include "../http/http.h"

typedef struct server_config {
    http_config http;
    auth_config auth;
    int detect_off;              /* "detect = off": no misuse detection (tests of
                                    other features; never in production)      */
    double detect_ladder[4];     /* scores (0..100) for alert, step-up, throttle,
                                    contain; 0 = the detector's default       */
    const char *syslog;          /* "udp://HOST:PORT": alerts as RFC 5424 lines */
    const char *alert_webhook;   /* http(s) URL: alerts POSTed as JSON         */
    char *owned[5];      /* listen, tls_cert, tls_key, syslog, alert_webhook
                            read from a file                               */
} server_config;
server_config server_default_config(void);
/* Free the strings server_config_load() copied into cfg (after the server
 * using it has stopped). */
void server_config_release(server_config *cfg);

/* Read "key = value" lines (# comments) into cfg; unknown keys and bad
 * values are errors naming the line.  Keys: listen, tls_cert, tls_key,
 * max_body, max_header, threads, request_timeout, max_conns_per_source,
 * idle_timeout, absolute_timeout, step_up_valid, lock_after, delay_base,
 * delay_max, source_max_failures, source_window, detect (on|off),
 * detect_alert_score, detect_step_up_score, detect_throttle_score,
 * detect_contain_score (0..100, increasing), syslog, alert_webhook
 * (durations: 250ms, 30s, 15m, 12h, or plain seconds). */
int server_config_load(const char *path, server_config *cfg, mv_err *err);

typedef struct server server;

/* Serve store s (its trail: t) until server_stop.  *port (may be NULL)
 * receives the bound port. */
int  server_start(mv_store *s, audit_trail *t, const server_config *cfg,
                  server **out, int *port, mv_err *err);
/* Periodic work; pass as http_wait_for_stop's tick with the server. */
void server_tick(void *srv);
/* Stop accepting, finish in-flight requests, free (NULL allowed). */
void server_stop(server *srv);

/* ---- Requests made inside the process -----------------------------------------
 * `medvault seed` fills a store through exactly the code the API runs
 * (validation, compartment, policy, sealing, blind index, audit) by handing
 * requests to a server that has no socket.  Free it with server_stop(). */
int server_open_local(mv_store *s, audit_trail *t, const server_config *cfg,
                      server **out, mv_err *err);
/* Perform METHOD PATH (PATH may carry "?name=value&..." , percent-encoded)
 * with body (may be NULL; sent as application/fhir+json) as the account
 * `username`, as if it had just logged in: its role, links and scopes
 * apply, and the trail records it as that user from source "local".  A
 * locked account: -1 (MV_E_INVALID); unknown: -1 (MV_E_NOTFOUND).  Otherwise 0,
 * *status the HTTP status and *response the body (free with mv_buf_free). */
int server_local_request(server *srv, const char *username, const char *method,
                         const char *path, const char *body, size_t body_len,
                         int *status, mv_buf *response, mv_err *err);

/* ---- Alerts: what the detector raised, and what security made of it -----------
 * Sealed "_Alert" records (system key), indexed by status and actor; every
 * change is a new version committed with its audit entry.  Shared by the
 * API (/api/alerts) and the CLI (medvault alerts).  Documents are JSON text:
 * id, time, time_us, actor, actor_username, source, detectors [..], score,
 * model_score, evidence {..}, explanation, response, status ("open",
 * "acknowledged", "closed"), resolution ("benign"|"incident"),
 * acknowledged_by/at, closed_by/at, note. */

/* Store a new alert (its status becomes "open"). */
int server_alert_save(audit_trail *trail, const char *alert_json, mv_err *err);
/* One alert (free *json_out); *version (may be NULL) its current version. */
int server_alert_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                     mv_err *err);
/* A JSON array of alerts, newest first; status NULL for all.  Free it. */
int server_alert_list(mv_store *s, const char *status, char **json_array_out,
                      mv_err *err);
/* action "ack" (open -> acknowledged) or "close" (resolution "benign" or
 * "incident"), by whom (an actor reference), from where; MV_E_CONFLICT when
 * the status does not allow it.  *json_out (may be NULL) the new document. */
int server_alert_transition(mv_store *s, audit_trail *trail, const char *id,
                            const char *action, const char *resolution,
                            const char *note, const char *by, const char *source,
                            char **json_out, mv_err *err);

/* ---- Decoys: honeytoken patients (decoys.c) ---------------------------------
 * A decoy is a realistic synthetic Patient that no legitimate workflow
 * reaches (no care team names it, `medvault decoy plant`): any touch of it
 * is a misuse, and one found in a leaked file names where the file came
 * from.  The registry is one sealed "_Decoy" record per decoy (system key),
 * id = the Patient's id, indexed by kind=decoy and purpose; every change is
 * a new version committed with its audit entry.  Documents are JSON text:
 *   patient       the Patient id
 *   planted_at, planted_at_us, planted_by   when and by whom (an actor)
 *   purpose       "decoy", or "watermark": planted in one output
 *   output        {} for a plain decoy; for a watermark {"reference": the
 *                 export or request, "actor": whom it was handed to,
 *                 "at", "at_us": when}
 *   loader        the account id that created the Patient through the API
 *                 (its creates are audited as "user:<loader>": planting,
 *                 not a touch)
 *   family, given, birth_date, nir          optional: how the operator
 *                 recognises the decoy in a leaked file */

/* Register a decoy: doc holds patient, purpose (default "decoy"), output
 * (required for a watermark) and the optional fields; planted_at/_us and
 * planted_by (= actor) are set here.  Audited as "decoy.plant" by actor
 * from source.  MV_E_CONFLICT when the patient is registered already;
 * MV_E_INVALID for a malformed document. */
int server_decoy_save(audit_trail *trail, const char *decoy_json, const char *actor,
                      const char *source, mv_err *err);
/* One decoy's document (free *json_out); MV_E_NOTFOUND when the patient is
 * not a decoy. */
int server_decoy_get(mv_store *s, const char *patient, char **json_out, mv_err *err);
/* A JSON array of the decoys, oldest first; purpose NULL for all.  Free it. */
int server_decoy_list(mv_store *s, const char *purpose, char **json_array_out,
                      mv_err *err);
/* The ids of every decoy (watermarks included), sorted; free with
 * store_ids_free. */
int server_decoy_ids(mv_store *s, char ***ids, size_t *n, mv_err *err);
/* Make a plain decoy the watermark of one output: reference names the export
 * or request, handed_to the actor who received it.  Audited as
 * "decoy.watermark" by `by` from source.  MV_E_CONFLICT when the decoy is a
 * watermark already. */
int server_decoy_watermark(mv_store *s, audit_trail *trail, const char *patient,
                           const char *reference, const char *handed_to,
                           const char *by, const char *source, mv_err *err);

#endif /* MV_SERVER_H */
