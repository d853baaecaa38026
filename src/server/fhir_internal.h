/*
 * fhir_internal.h -- what the FHIR routes of server/ share: the policy
 * facts read from the store and break-the-glass grants.
 */
#ifndef MV_SERVER_FHIR_INTERNAL_H
#define MV_SERVER_FHIR_INTERNAL_H

#include "server_internal.h"
#include "../fhir/fhir.h"
#include "../policy/policy.h"

/* Who is asking, for the policy: the authenticated call's account. */
policy_subject fhir_subject(const call *c);

/* The facts policy_decide asks for, answered from srv's store. */
policy_facts fhir_facts(server *srv);
/* Record a break-the-glass grant (inside the audit transaction). */
int fhir_grant_put(store_txn *t, const char *account, const char *patient,
                   int64_t expires_us, const char *reason, mv_err *err);

/* GET /fhir/Type?...: search over the blind indexes (routes_search.c). */
void fhir_search(call *c, const char *type);

/* GET /fhir/AuditEvent?patient=ID: the access log (routes_auditevent.c). */
void fhir_audit_log(call *c);

/* /fhir/...: rest is what follows "/fhir". */
void route_fhir(call *c, const char *rest);

#endif
