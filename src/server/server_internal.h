/*
 * server_internal.h -- what the files of server/ share: the running server,
 * one request's context, and the JSON and error helpers every route uses.
 */
#ifndef MV_SERVER_INTERNAL_H
#define MV_SERVER_INTERNAL_H

#include <jansson.h>
#include "server.h"

struct server {
    mv_store *store;
    audit_trail *trail;
    auth *auth;
    http_server *http;
    server_config cfg;
    int64_t last_purge_us;
};

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
} call;

/* ---- json.c ---- */
/* The body as a JSON object; on failure answers 400/415 and returns NULL. */
json_t *call_json_body(call *c);
/* A string member, or NULL when absent or not a string. */
const char *json_str(json_t *o, const char *key);
/* Send obj (stolen) as the JSON body with status. */
void call_reply_json(call *c, int status, json_t *obj);
/* Answer an error as an OperationOutcome. */
void call_fail(call *c, int status, const char *code, const char *diagnostics);
/* Answer an internal error: logged with the request id, generic to the client. */
void call_internal(call *c, const mv_err *err);
/* Map an mv_err from auth/store to a status and answer it. */
void call_fail_err(call *c, const mv_err *err);

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
