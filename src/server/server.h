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
 *   GET  /api/approvals[?status=], GET /api/approvals/ID   admin, security
 *   POST /api/approvals/ID/approve | refuse {"note"}  security, a second person
 *                                                      (fresh second factor)
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
    const char *public_url;      /* "https://ehr.example.org": the base of every
                                    absolute link the API writes (paging);
                                    default: the listen URL with its bound
                                    port.  Never the request's Host header. */
    int64_t approval_ttl_us;     /* a two-person request expires after: 24 h  */
    int privilege_burst;         /* account creations and resets one person
                                    asks for in an hour before it alerts: 5   */
    size_t detect_max_actors;    /* the detector's actor table: 0 = its default
                                    (10,000); never fewer than three per
                                    existing account and some room to grow  */
    char *owned[6];      /* listen, tls_cert, tls_key, syslog, alert_webhook,
                            public_url read from a file                    */
} server_config;
server_config server_default_config(void);
/* Free the strings server_config_load() copied into cfg (after the server
 * using it has stopped). */
void server_config_release(server_config *cfg);

/* Read "key = value" lines (# comments) into cfg; unknown keys and bad
 * values are errors naming the line.  Keys: listen, tls_cert, tls_key,
 * max_body, max_header, threads, request_timeout, max_conns_per_source,
 * idle_timeout, absolute_timeout, step_up_valid, lock_after, lock_time, delay_base,
 * delay_max, source_max_failures, source_window, detect (on|off),
 * detect_alert_score, detect_step_up_score, detect_throttle_score,
 * detect_contain_score (0..100, increasing), syslog, alert_webhook,
 * public_url, header_timeout, max_connections, approval_ttl,
 * privilege_burst, detect_max_actors (durations: 250ms, 30s, 15m, 12h, or plain seconds). */
int server_config_load(const char *path, server_config *cfg, mv_err *err);
/* 1 when url is fit for public_url (http(s)://host[:port][/path], no query,
 * fragment, credentials or trailing slash). */
int server_public_url_ok(const char *url);

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

/* Date what the local server srv writes from now on at at_us (0: now
 * again) as meta.lastUpdated and the stored version's time -- for decoys,
 * which must not stand out in a _lastUpdated search as a burst planted
 * today.  The audit trail keeps the true time.  MV_E_INVALID for a
 * listening server or a time in the future. */
int server_local_backdate(server *srv, int64_t at_us, mv_err *err);

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

/* ---- Two-person control: approvals (approvals.c) ------------------------------
 * A change that gives someone clinical reach or power over the controls is
 * a sealed "_Approval" request until a security officer who is not the
 * requester, and not involved with the account or alert, approves it.
 * Documents are JSON text: id, kind ("account.create", "account.reset-
 * password", "account.reset-mfa", "account.unlock", "alert.close"), target,
 * target_name, summary, params, requested_by, requested_by_username,
 * requested_at(_us), expires_at(_us), approver_role, status ("pending",
 * "approved", "refused", "expired"), decided_by, decided_by_username,
 * decided_at, note.  Shared by /api/approvals and `medvault approvals`. */

/* Lineage actors: what accounts read is also observed as
 * "lineage:user:<id>" of whoever created, reset or approved them. */
#define SERVER_LINEAGE_PREFIX "lineage:"

typedef struct server_approval_new {
    const char *kind, *target, *target_name, *summary;
    const char *params_json;     /* an object, or NULL                     */
    const char *by;              /* the requester's actor ("user:<id>")    */
    const char *by_username;
    const char *source;
    int64_t ttl_us;              /* the request expires after this         */
} server_approval_new;

/* Store a new pending request; id: "" to draw one (it is written back), or
 * an id drawn by the caller ahead (an account created pending it). */
int server_approval_open(audit_trail *t, const server_approval_new *n, char id[33],
                         mv_err *err);
int server_approval_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                        mv_err *err);
/* A JSON array, newest first; status NULL for all.  Free it. */
int server_approval_list(mv_store *s, const char *status, char **json_array_out,
                         mv_err *err);
/* How many account creations and resets `by` asked for since since_us. */
int server_approval_recent(mv_store *s, const char *by, int64_t since_us);

typedef struct server_approval_env {
    mv_store *store;
    audit_trail *trail;
    auth *auth;
    const auth_account *decider;   /* NULL: the local operator (allowed; alerts) */
    const char *by;                /* the decider's actor                        */
    const char *source;
} server_approval_env;

/* Approve (1) or refuse (0) request id: the change takes effect (or is
 * dropped) and the decision is recorded.  MV_E_PERM when the decider may
 * not decide it (and why), MV_E_CONFLICT when it is not pending (an expired
 * request is marked so here), MV_E_NOTFOUND when there is none. */
int server_approval_decide(const server_approval_env *env, const char *id, int approve,
                           const char *note, char **json_out, mv_err *err);

/* 1 when who is the account subject_id, is in its lineage (created, reset
 * or approved it), or has it in its own lineage. */
int server_account_involved(auth *au, const char *subject_id, const auth_account *who);
/* The same for an alert's actor (an account or a lineage). */
int server_alert_involves(auth *au, const char *alert_json, const auth_account *who);

/* Store an alert about a privileged change ("privilege" detector): by the
 * local operator (explanation NULL: the standard words), or a burst of
 * them.  *json_out (may be NULL) gets the alert's text, for the caller to
 * send out; without it (the CLI) the running server sends it on its next
 * tick. */
int server_alert_privilege(audit_trail *t, const char *actor, const char *source,
                           const char *change, const char *target,
                           const char *explanation, char **json_out);

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

/* ---- Detection priors (`medvault detect priors`) ---------------------------
 * A role's (or a role in a department's) limits for accounts without a
 * baseline of their own, as sealed "_DetectPrior" records committed with
 * their audit entries; the server reads them at start and at each tick.
 * Checked against the detector's bounds (detect_prior_check) first; at
 * most DETECT_PRIORS_MAX (64) are kept. */
struct detect_prior;
int server_prior_save(mv_store *s, audit_trail *trail, const struct detect_prior *p,
                      const char *actor, const char *source, mv_err *err);
/* MV_E_NOTFOUND when there is none for that role and department. */
int server_prior_remove(mv_store *s, audit_trail *trail, const char *role,
                        const char *department, const char *actor, const char *source,
                        mv_err *err);
/* A JSON array of the priors ({role, department, limit_5m, limit_1h,
 * limit_24h, set_by, set_at}); free it. */
int server_priors_list(mv_store *s, char **json_array_out, mv_err *err);

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

/* Re-index every current clinical resource when the store's index was
 * written under another format than FHIR_INDEX_VERSION (or always, with
 * force), then record the format.  *done: resources re-indexed (reindex.c). */
int server_reindex(mv_store *s, int force, size_t *done, mv_err *err);

/* ---- Finding clinical resources (find.c) ---------------------------------------
 * One FHIR search parameter, as in a query string: "identifier" "" "NIR|185...". */
typedef struct server_param {
    const char *name, *modifier, *value;
} server_param;
/* Ids (sorted) of the current resources of type that match every
 * parameter, with FHIR search semantics: the truncated blind index proposes
 * and each decrypted body is verified, so the answer is exact; tokens
 * compare in canonical form (the same NIR or phone however written).  No
 * access policy: for the server's own decisions and the key holder's CLI.  *ids is
 * NULL when none; free with store_ids_free.  MV_E_INVALID names a bad
 * parameter. */
int server_find(mv_store *s, const char *type, const server_param *p, size_t n,
                char ***ids, size_t *n_ids, mv_err *err);
/* Make a plain decoy the watermark of one output: reference names the export
 * or request, handed_to the actor who received it.  Audited as
 * "decoy.watermark" by `by` from source.  MV_E_CONFLICT when the decoy is a
 * watermark already. */
int server_decoy_watermark(mv_store *s, audit_trail *trail, const char *patient,
                           const char *reference, const char *handed_to,
                           const char *by, const char *source, mv_err *err);

/* The watermark of one bulk output (watermark.c): draw an unused plain decoy
 * at random, record it as output_reference's watermark handed to
 * handed_to_actor (a username or account id, what `medvault leak check`
 * reports and `incident open --actor` takes), audited as "decoy.watermark"
 * by "system" from source, and put its Patient id in decoy_patient_out (cap
 * bytes).  The caller adds that Patient to the output without auditing it
 * as the actor's read.  MV_E_NOTFOUND when no plain decoy is left. */
int server_watermark_pick(mv_store *s, audit_trail *trail, const char *output_reference,
                          const char *handed_to_actor, const char *source,
                          char *decoy_patient_out, size_t cap, mv_err *err);

/* ---- Incidents: the register of personal-data breaches (incidents.c) ---------
 * GDPR Art. 33(5) requires a register of every breach.  Each incident is a
 * sealed "_Incident" record (system key), indexed by kind=incident, status
 * and actor; every change is a new version committed with its audit entry
 * ("incident.open", "incident.close").  Shared by /api/incidents and
 * `medvault incident` (and by `medvault leak check`, which opens one from
 * its result).  Documents are JSON text:
 *   id, kind ("account-misuse" | "stolen-database"), summary,
 *   opened_at/_us, opened_by, status ("open" | "closed"),
 *   actors [{"id","username"}] (the accounts involved; empty for a stolen
 *   database), alert (the alert it was opened from, or absent),
 *   sources [..] (addresses the actor used), blocked_sources [..] (recorded
 *   as blocked with --block-sources), detected_at/_us (the alert's time, or
 *   the opening), contained_at/_us (when the account was locked; absent
 *   when nothing was contained), closed_at/_us, closed_by, note,
 *   measures [{"at","what"}] (every measure taken, in order). */
typedef struct server_incident_spec {
    const char *actor;      /* username or account id of the account involved  */
    const char *alert;      /* open from this alert: its actor, source, time    */
    const char *summary;    /* free text (may be NULL)                          */
    const char *kind;       /* NULL / "account-misuse", or "stolen-database"    */
    int block_sources;      /* record the actor's source addresses as blocked  */
} server_incident_spec;

/* Record an incident AND contain it: the actor's sessions are revoked and
 * the account locked (through au, audited as account.lock by `by`), then
 * the record is committed with its "incident.open" entry.  An account-misuse
 * incident needs actor or alert; MV_E_NOTFOUND when either is unknown.
 * *json_out (may be NULL) receives the new document (free it). */
int server_incident_open(mv_store *s, audit_trail *trail, auth *au,
                         const server_incident_spec *spec, const char *by,
                         const char *source, char **json_out, mv_err *err);
/* The simplest door, for callers that found an account misusing data (leak
 * tracing): open an account-misuse incident about actor (username or
 * account id) with summary, contained as above. */
int server_incident_open_for(mv_store *s, audit_trail *trail, auth *au,
                             const char *actor, const char *summary, const char *by,
                             char **json_out, mv_err *err);
/* One incident (free *json_out); *version (may be NULL) its current version.
 * MV_E_NOTFOUND when there is none with that id. */
int server_incident_get(mv_store *s, const char *id, char **json_out, int64_t *version,
                        mv_err *err);
/* A JSON array of incidents, newest first; status NULL for all.  Free it. */
int server_incident_list(mv_store *s, const char *status, char **json_array_out,
                         mv_err *err);
/* Close an open incident (MV_E_CONFLICT when closed already). */
int server_incident_close(mv_store *s, audit_trail *trail, const char *id,
                          const char *note, const char *by, const char *source,
                          char **json_out, mv_err *err);

/* ---- Incident scope: what the verified trail says was disclosed ----------------
 * (incident_scope.c) One sequential scan of the audit trail, after
 * audit_verify() holds, for the GRANTED disclosures (fhir.read, vread,
 * search, history, everything; outcome "success") by one actor in a time
 * window; a request whose answer the detector withheld (a detect.withheld
 * row with the same request id) does not count.  Nothing is decrypted: the
 * resource types come from the trail's resources column. */
enum { SCOPE_CAT_IDENTITY, SCOPE_CAT_DIAGNOSES, SCOPE_CAT_MEDICATIONS,
       SCOPE_CAT_RESULTS, SCOPE_CAT_DOCUMENTS, SCOPE_CAT_OTHER, SCOPE_CAT_COUNT };
/* "identity", "diagnoses", "medications", "results", "documents", "other". */
const char *server_scope_category_name(int cat);
/* The GDPR data category a FHIR resource type falls in. */
int server_scope_category_of(const char *type);

typedef struct server_scope_type {
    char *type;            /* "Observation"                                */
    int64_t records;       /* distinct resources of that type disclosed    */
    int64_t accesses;      /* times they were disclosed                    */
} server_scope_type;

typedef struct server_scope_patient {
    char *id;
    int64_t first_us, last_us;
    server_scope_type *types;      /* sorted by type name */
    size_t n_types;
    int64_t records[SCOPE_CAT_COUNT];   /* distinct resources per category */
    char **sources;                /* sorted, distinct */
    size_t n_sources;
} server_scope_patient;

typedef struct server_scope {
    char actor_id[AUTH_NAME_MAX];
    int64_t from_us, to_us;        /* the window searched [from, to]          */
    int64_t scanned;               /* trail entries scanned                   */
    int64_t verified;              /* trail entries verified                  */
    int64_t withheld;              /* disclosure rows not counted (withheld)  */
    int64_t decoy_rows;            /* disclosures of decoys (nobody to notify) */
    int64_t first_us, last_us;     /* first and last disclosure (0: none)     */
    int64_t records;               /* distinct resources disclosed            */
    int64_t category_patients[SCOPE_CAT_COUNT];  /* patients per category     */
    int64_t category_records[SCOPE_CAT_COUNT];
    server_scope_patient *patients;    /* sorted by id */
    size_t n_patients;
    char **sources;                /* every source address used, sorted */
    size_t n_sources;
} server_scope;

/* Verify the chain (audit_verify; MV_E_TAMPER with its reason when it does
 * not hold: nothing is computed from a damaged trail), then compute the
 * scope of actor_id's disclosures with from_us <= time <= to_us.  Free with
 * server_scope_free. */
int server_incident_scope(mv_store *s, const char *actor_id, int64_t from_us,
                          int64_t to_us, server_scope *out, mv_err *err);
void server_scope_free(server_scope *sc);

#endif /* MV_SERVER_H */
