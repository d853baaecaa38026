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
/* The same facts for many decisions in a row (a listing): the caller's
 * care relationships read once, so that deciding on a hidden patient costs
 * no more than on none.  Free with fhir_fact_batch_free (NULL allowed). */
typedef struct fhir_fact_batch fhir_fact_batch;
fhir_fact_batch *fhir_fact_batch_new(server *srv);
void fhir_fact_batch_free(fhir_fact_batch *b);
policy_facts fhir_facts_batch(fhir_fact_batch *b);
/* A resource that can make a care relationship (CareTeam, Encounter,
 * ServiceRequest, Task) is being written: cached caseloads and care facts
 * are stale.  The generation counts those writes: a cached fact is good
 * only while it has not moved. */
void fhir_care_changed(void);
int64_t fhir_care_generation(void);
/* 1 when type can make a care relationship. */
int  fhir_type_relates(const char *type);
/* 1 when the patient is in active care at all (an in-progress Encounter,
 * an active CareTeam or an active order): what explains a service account's access for the
 * detector.  0, or -1 on a storage error. */
int fhir_patient_in_active_care(server *srv, const char *patient);

/* A relationship (CareTeam, Encounter, EpisodeOfCare, PractitionerRole)
 * written by a care giver under break-the-glass is labelled in
 * meta.security with this system and the author's Practitioner id: it
 * explains none of that author's access (their reads still need, and carry,
 * break-the-glass) until someone else writes a version of it, which drops
 * the label: confirmation.  Returns the text to store instead (owned), or
 * NULL when text stays as it is (not a relationship type, nothing to
 * change).  btg_practitioner: the author under break-the-glass, or NULL. */
#define FHIR_BTG_LABEL_SYSTEM "urn:medvault:btg-unconfirmed"
char *fhir_relationship_labelled(const char *type, const char *text,
                                 const char *btg_practitioner);

/* Record break-the-glass grant id (32 hex; inside the audit transaction).
 * Its reason -- free text, often clinical -- is kept only here, sealed like
 * every register; the audit entry names the grant ("BTG grant:<id>"). */
int fhir_grant_put(store_txn *t, const char *id, const char *account,
                   const char *patient, int64_t expires_us, const char *reason,
                   mv_err *err);
/* The reason of the grant an audit purpose names ("BTG grant:<id>") into
 * out: 1 found, 0 when the purpose names none (or it is gone). */
int fhir_grant_reason(server *srv, const char *purpose, char *out, size_t cap);
/* The audit purpose of a break-the-glass access: "BTG", or "BTG grant:ID"
 * for the access that made grant id. */
#define FHIR_PURPOSE_BTG "BTG"
#define FHIR_PURPOSE_BTG_GRANT "BTG grant:"

/* Sets of ids, sorted and without duplicates once normalised (find.c). */
typedef struct id_set {
    char **v;
    size_t n;
} id_set;
void id_set_free(id_set *s);
void id_set_normalise(id_set *s);
/* Keep in a only what b also holds (both normalised). */
void id_set_intersect(id_set *a, const id_set *b);

/* The candidates of a query from the truncated blind index: the AND of the
 * indexed parameters' buckets, normalised; every current resource of type
 * (*every = 1) when no parameter is indexed.  A superset: verify each on
 * its body with fhir_query_matches before use (find.c). */
int fhir_candidates(mv_store *s, const char *type, const fhir_query *q, id_set *out,
                    int *every, mv_err *err);

/* Formats (fhir_format.c).  1 when a Content-Type names FHIR JSON. */
int fhir_is_json_type(const char *content_type);
/* 1 when the request's Accept and _format admit JSON; otherwise answers
 * 406 and returns 0. */
int fhir_acceptable(call *c);

/* GET /fhir/Type?...: search over the blind indexes (routes_search.c). */
void fhir_search(call *c, const char *type);
/* GET /fhir/Patient/ID/Type?...: the same within the patient's compartment. */
void fhir_search_in(call *c, const char *type, const char *patient);
/* POST /fhir/Type/_search with form-encoded parameters. */
void fhir_search_posted(call *c, const char *type);

/* The resources of type the caller may see that match one parameter
 * "name[:modifier]" = value (itself chained or not), opened, as a search
 * decides them; depth counts the chain hops so far.  MV_E_INVALID names a
 * bad parameter (routes_search.c). */
int fhir_search_opened(call *c, const char *type, const char *name, const char *value,
                       int depth, store_resource **out, size_t *n, mv_err *err);

/* ---- search_links.c: chains, _has, _include, _revinclude ---- */
/* A chained parameter ("subject:Patient.name") or _has
 * ("_has:Observation:patient:code") resolved through the caller's own
 * searches into a plain one: *out_name "subject" and *out_value
 * "Patient/a,Patient/b", or "_id" and "a,b" (owned; NULL when nothing
 * matched).  1 when it was one, 0 for a plain parameter, -1 on error. */
int fhir_search_link(call *c, const char *type, const char *name, const char *modifier,
                     const char *value, int depth, char *out_name, size_t cap,
                     char **out_value, mv_err *err);
typedef struct fhir_include {
    const char *spec;           /* "Source:param[:Target]" (borrowed)   */
    int reverse;                /* _revinclude                          */
    int iterate;                /* :iterate (or R4's older :recurse)    */
} fhir_include;
/* The resources the page's matches reference (_include) or that reference
 * them (_revinclude), those the caller may see, opened; *truncated when
 * more than the bound were found. */
int fhir_search_includes(call *c, const store_resource *page, size_t n,
                         const fhir_include *inc, size_t n_inc, store_resource **out,
                         size_t *n_out, int *truncated, mv_err *err);

/* Conditional interactions: how many resources of type that the caller may
 * see match the search condition ("identifier=sys|123", the query string of
 * If-None-Exist), and the id of the one when there is exactly one.
 * MV_E_INVALID naming the problem when the condition is no valid search
 * (routes_search.c). */
int fhir_conditional_match(call *c, const char *type, const char *condition,
                           char *id, size_t cap, size_t *count, mv_err *err);

/* The base of absolute links in Bundles, "http[s]://HOST/fhir": the scheme
 * the server listens with and the request's Host header; "/fhir" when the
 * request carries no usable Host (in-process requests) (routes_search.c). */
void fhir_base_url(const call *c, char *out, size_t n);

/* A listing's policy filter: allowed[i] = 1 when the caller may do act on
 * type for patients[i] (NULL: a resource of no patient), with one decision
 * per distinct patient.  No break-the-glass here: only active grants count.
 * -1 when out of memory (routes_search.c). */
int fhir_permitted_each(call *c, policy_action act, const char *type,
                        const char *const *patients, size_t n, unsigned char *allowed);

/* One version a listing discloses (borrowed strings). */
typedef struct fhir_disclosed {
    const char *type, *id;
    const char *patient;        /* NULL: a resource of no patient */
    int64_t version;
} fhir_disclosed;

/* Record what one page of a listing (search, type history) discloses, as
 * one durable unit before the answer leaves: one audit event per patient
 * whose data is returned (one more for resources of no patient), each
 * naming its "Type/id/_history/n" versions, so every patient's access log
 * shows it; one event without a patient when nothing is.  The outcome
 * names the query's parameters, never their values (routes_search.c). */
int fhir_audit_disclosure(call *c, const char *action, const char *outcome,
                          const fhir_disclosed *v, size_t n, mv_err *err);

/* GET /fhir/Type/_history: the type's versions the caller may see, newest
 * first, policy-filtered like a search (routes_history.c). */
void fhir_type_history(call *c, const char *type);

/* ---- Accesses collected for one commit (fhir_pending.c) ----------------------
 * A Bundle's entries run one by one through the ordinary routes, but their
 * audit entries -- and, for a transaction, their data changes -- are kept
 * here and committed together by one audit_record(): all or nothing, one
 * fsync, and still durable before a byte of the answer leaves. */
typedef struct fhir_pending fhir_pending;

/* atomic_writes 1 (transaction): data changes are collected too; 0 (batch):
 * only audit entries are, each change commits on its own. */
fhir_pending *fhir_pending_new(int atomic_writes, mv_err *err);
void fhir_pending_free(fhir_pending *p);
int  fhir_pending_atomic(const fhir_pending *p);
/* Keep copies of one access: its event, its change (w may be NULL) and a
 * break-the-glass grant to record (grant_reason NULL: none). */
int  fhir_pending_add(fhir_pending *p, const audit_event *ev, const store_write *w,
                      const char *grant_id, const char *grant_account,
                      const char *grant_patient, int64_t grant_expires_us,
                      const char *grant_reason, mv_err *err);
/* Commit what was collected as one unit and empty the list; with
 * events_only, the changes are dropped and only the audit entries are
 * committed (a transaction that failed still records its denials).  On a
 * failed change *failed_entry (may be NULL) gets its index. */
int  fhir_pending_commit(fhir_pending *p, audit_trail *trail, int events_only,
                         size_t *failed_entry, mv_err *err);
/* The Bundle entry the next collected access belongs to. */
void fhir_pending_set_entry(fhir_pending *p, size_t entry);

/* POST /fhir: a transaction or batch Bundle (routes_bundle.c). */
void fhir_bundle(call *c);

/* GET /fhir/AuditEvent?patient=ID: the access log (routes_auditevent.c). */
void fhir_audit_log(call *c);

/* /fhir/...: rest is what follows "/fhir". */
void route_fhir(call *c, const char *rest);

#endif
