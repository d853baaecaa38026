/*
 * server_internal.h -- what the files of server/ share: the running server,
 * one request's context, and the JSON and error helpers every route uses.
 */
#ifndef MV_SERVER_INTERNAL_H
#define MV_SERVER_INTERNAL_H

#include <jansson.h>
#include <stdio.h>
#include "server.h"
#include "../detect/detect.h"

typedef struct notifier notifier;


struct server {
    mv_store *store;
    audit_trail *trail;
    auth *auth;
    http_server *http;
    server_config cfg;
    int64_t last_purge_us;
    int64_t last_priors_us;    /* detection priors last read (server_tick)  */
    detect_engine *detect;      /* sees every audited access (detection.c) */
    notifier *notify;           /* sends alerts out (notify.c)             */
    struct decoy_set *decoys;   /* honeytoken patient ids (decoys.c)        */
    struct facts_cache *facts;  /* patients in care, VIPs, family names, kept
                                   a minute for the detector (detection.c)  */
    struct blocklist *blocked;  /* sources open incidents block (blocklist.c) */
    char base_url[256];         /* ".../fhir" for absolute links; "" local  */
    int local;                  /* server_open_local: no socket, the CLI's  */
    int64_t local_time_us;      /* local only: the time writes carry (0: now) */
};


/* The strongest verdict the detector gave while one request (and, for a
 * Bundle, all its entries) ran; applied before the answer leaves. */
typedef struct call_verdict {
    detect_response response;
    int64_t retry_after_s;
    char alert_id[DETECT_ALERT_ID_MAX];
} call_verdict;

/* One request on its way through: who is calling once authenticated. */
typedef struct call {
    server *srv;
    const http_request *req;
    http_response *res;
    auth_session_info who;
    int authenticated;
    char session_ref[17];   /* audit reference: 16 hex of the token's hash */
    struct fhir_pending *pending;  /* a Bundle entry: accesses are collected  */
    const char *preset_id;  /* a transaction's POST: the id assigned ahead */
    call_verdict *verdict;  /* shared by a Bundle's entries                */
    json_t *btg_seen;       /* patients a listing showed only by break-the-
                               glass (set of ids; freed after the request) */
    const char **existence; /* a service's listing: patients whose existence
                               its total or _summary=count reveals beyond the
                               page (detector; distinct, borrowed)          */
    size_t n_existence;
    int list_count;         /* a listing: the _count asked (detector)      */
    int list_page;          /*   and which page (0 = first)                */
} call;

/* The time a write stores as meta.lastUpdated: now, or the backdated time
 * a local server was given (server_local_backdate). */
int64_t call_write_time(const call *c);

/* ---- json.c ---- */
/* Answer a register's stored document (JSON text); 500 when unreadable. */
void call_reply_text(call *c, int status, const char *text);
/* Answer {"total": n, MEMBER: [...]} from a JSON array's text (freed here). */
void call_reply_list(call *c, const char *member, char *array_text);
/* The ?status= of a listing in *out (NULL when absent); -1 after answering
 * 400 when it is not one of allowed (NULL-terminated). */
int  call_status_query(call *c, const char *const *allowed, const char **out);
/* The body as a JSON object; on failure answers 400/415 and returns NULL. */
json_t *call_json_body(call *c);
/* A string member, or NULL when absent or not a string. */
const char *json_str(json_t *o, const char *key);
/* How every JSON document leaves (json.c): compact, in its own key order,
 * and each decimal in the shortest form that reads back as the same double
 * -- 36.2 stays 36.2, not jansson's 36.200000000000003, and a coordinate of
 * 17 significant digits keeps all of them.  NULL when out of memory. */
char *json_text(const json_t *doc);
/* Send obj (stolen) as the JSON body with status. */
void call_reply_json(call *c, int status, json_t *obj);
/* Answer an error as an OperationOutcome. */
void call_fail(call *c, int status, const char *code, const char *diagnostics);
/* Answer an internal error: logged with the request id, generic to the client. */
void call_internal(call *c, const mv_err *err);
/* Map an mv_err from auth/store to a status and answer it. */
void call_fail_err(call *c, const mv_err *err);

/* ---- detection.c: the detector in the request path ---- */
/* Create the engine and rebuild its state from the last day of the trail. */
int  detection_open(server *srv, mv_err *err);
void detection_close(server *srv);
/* The standing verdict before any work: answers 401 step-up / 429 / 403
 * and returns 1 when the caller may not proceed.  allow_step_up: the
 * request is the step-up itself. */
int  call_gate(call *c, int allow_step_up);
/* One audited access of the authenticated caller: the detector sees it and
 * the strongest verdict is kept (applied by call_apply_verdict). */
void call_observe(call *c, const char *action, detect_outcome outcome,
                  const char *type, const detect_patient *patients, size_t n,
                  int page_size, unsigned flags);
/* A login attempt (any result). */
void call_observe_login(call *c, const char *username, int ok,
                        const auth_session_info *s);
/* After the route: a withholding verdict replaces the answer. */
void call_apply_verdict(call *c);
/* The detector's per-patient facts for an access of the caller: reached by
 * break-the-glass, or explained (a care relationship for care givers, the
 * own record for a patient, active care for a service), a decoy. */
unsigned call_patient_flags(call *c, const char *patient, int break_glass, int reading);
/* The page size to serve: requested, capped by what the detector allows. */
int  call_page_cap(call *c, int requested);

/* ---- declarations.c: bulk access and service networks ---- */
/* Push every approved, unexpired bulk declaration and every service
 * network list into the detector (at start). */
int  declarations_load(server *srv, mv_err *err);
/* Push the stored detection priors into the detector (at start, each tick). */
int  priors_load(server *srv, mv_err *err);
/* POST /api/users/NAME/bulk-access, .../bulk-access/approve, .../networks:
 * 1 when action was one of them (and answered), else 0. */
int  route_declarations(call *c, const char *name, const char *action);

/* ---- records.c: the server's sealed registers ---- */
/* The current document of (type, id) as JSON text (free it); *version (may
 * be NULL) its version.  MV_E_NOTFOUND when there is none. */
int  records_get(mv_store *s, const char *type, const char *id, char **json_out,
                 int64_t *version, mv_err *err);
/* The current documents of type matching terms, sorted by order (qsort on
 * json_t *), as a JSON array text (free it).  Deleted or unreadable records
 * are left out. */
int  records_list(mv_store *s, const char *type, const store_term *terms, size_t n_terms,
                  int (*order)(const void *, const void *), char **json_array_out,
                  mv_err *err);

/* ---- blocklist.c: addresses blocked by an open incident ---- */
int  blocklist_refresh(server *srv, mv_err *err);
int  source_blocked(server *srv, const char *source);
void blocklist_free(server *srv);
/* The detector's facts about patients, this server's own (a second server
 * in the process, or the next one after a restart, shares nothing):
 * created by detection_open, freed by detection_close (detection.c). */
int  facts_cache_open(server *srv, mv_err *err);
void facts_cache_close(server *srv);
/* 1 when the patient is in active care (an in-progress Encounter or an
 * active CareTeam), through that cache. */
int  detection_in_active_care(server *srv, const char *patient);

/* ---- decoys.c: honeytoken patients ---- */
/* Reload the set of decoy patient ids from the store (at start and from
 * server_tick: `medvault decoy plant` may run while the server does). */
int  decoys_refresh(server *srv, mv_err *err);
/* 1 when patient is a decoy. Thread-safe. */
int  decoy_is(server *srv, const char *patient);
void decoys_free(server *srv);

/* ---- notify.c: alerts out (syslog line, webhook) ---- */
int  notifier_start(const char *syslog_target, const char *webhook, FILE *log,
                    notifier **out, mv_err *err);
void notifier_send(notifier *nt, const char *alert_json);
void notifier_stop(notifier *nt);
/* The RFC 5424 line of an alert (JSON text). */
int  notify_syslog_line(const char *alert_json, char *out, size_t cap);

/* ---- alerts.c ---- */
/* Send the alerts another process stored ("notify": "pending") and mark
 * them sent (server_tick). */
int  alerts_notify_pending(server *srv, mv_err *err);

/* ---- routes_alerts.c ---- */
void route_review(call *c);
void route_alerts(call *c, const char *path_rest);

/* ---- routes_approvals.c ---- */
void route_approvals(call *c, const char *path_rest);
/* RFC 9470 step-up: 1 when the session's second factor is fresh, else
 * answers 401 naming the missing proof and returns 0. */
int  call_fresh_second_factor(call *c);
/* Open a two-person request as the caller (kind, target account or alert,
 * its name, plain words, params JSON or NULL); id: "" or drawn ahead.
 * Raises a "privilege" alert when the caller asks for more than
 * privilege_burst account changes in an hour.  0, or -1 after answering. */
int  call_request_approval(call *c, const char *kind, const char *target,
                           const char *target_name, const char *summary,
                           const char *params_json, char id[33]);
/* 202 Accepted: the request, and what the caller must show (extra, may be
 * NULL, is merged in: a new account's enrollment). */
void call_reply_pending(call *c, const char *id, json_t *extra);
/* routes_incidents.c: /api/incidents (security only). */
void route_incidents(call *c, const char *path_rest);

/* ---- routes_auth.c ---- */
/* Require a valid bearer session; on failure answers 401 and returns -1. */
int  call_authenticate(call *c);
void route_login(call *c);
void route_logout(call *c);
void route_step_up(call *c);
void route_whoami(call *c);

/* ---- routes_users.c ---- */
/* path_rest: what follows "/api/users" ("" or "/NAME[/ACTION]"). */
void route_users(call *c, const char *path_rest);

#endif
