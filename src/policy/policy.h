/*
 * policy.h -- the one access decision for clinical data.
 *
 * Why it exists: in the 2024 breach one account used the platform's ordinary
 * functions to read out 758,912 patients.  medvault answers with ONE policy
 * decision point, deny by default: an account sees only the patients it
 * cares for.  Every FHIR interaction asks policy_decide() before it touches
 * a resource, and records the decision's reason in the audit trail.
 *
 * What policy/ owns: the rules (who may do what to which resource), the
 * classification of resource types (directory, definition, clinical -- an
 * unknown type counts as clinical), break-the-glass (BTG) and the SMART v2
 * scope grammar for service accounts.
 *
 * What it must never do: speak HTTP, hold SQL, read or write storage itself,
 * or call fhir/.  The facts a decision needs (is there a care relationship,
 * is a BTG grant active) come through the policy_facts callbacks, answered by
 * the caller from the store; recording a new BTG grant is also the caller's
 * job (decision.grant_btg).  So the logic stays pure: testable with a fake
 * and small enough to audit.  Reasons never hold health data, patient ids or
 * the BTG reason text.
 *
 * The rules, in order; the first that applies decides:
 *   0. $everything needs a patient compartment (else 403).
 *   1. admin, security: no clinical data (separation of duties), 403;
 *      directory types readable; security also reads AuditEvent
 *      (read/vread/search; the FHIR layer restricts its content further).
 *   2. patient: its own compartment, read-type actions only (writes 403),
 *      including its own access log (AuditEvent read, vread, search);
 *      anything outside it 404 (existence is not revealed); directory types
 *      readable.
 *   3. clinician, nurse: directory types and definitions readable; patient
 *      data only of one patient at a time, and only with a care relationship
 *      (caller's fact: CareTeam participant or in-progress Encounter); nurses
 *      never write MedicationRequest.  Without a relationship: an active BTG
 *      grant permits (break_glass); else an X-Break-Glass-Reason of at least
 *      btg_min_reason letters (Unicode alphabetic) permits read-type actions and
 *      asks for a new grant -- nurses may break the glass too (the night-shift
 *      emergency nurse is often first at the bedside; detect/ and security
 *      review every BTG); a shorter reason 403; no reason: 404 for reads
 *      and deletes (their URL names an existing resource: a 403 would tell
 *      it exists), 403 for creates and updates (their body names the
 *      patient, existing or not).  No Practitioner link: 403.
 *   4. service: only within its system/ SMART v2 scopes, on the whole system
 *      (no care-team rule: detect/ watches service volume); user/ and
 *      patient/ scopes grant a service nothing.
 *   5. AuditEvent is never written through the FHIR API (audit/ owns the
 *      trail) and is read only by security.
 *   6. A fact callback failing (-1, or anything but 0/1): deny, MV_E_IO.
 *
 * A resource in several patients' compartments: the caller asks once per
 * patient and proceeds only when every answer permits.
 *
 * Threads: pure functions; safe from any thread as long as the callbacks are.
 */
#ifndef MV_POLICY_H
#define MV_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"
#include "../auth/auth.h"

typedef enum policy_action {
    POLICY_READ, POLICY_VREAD, POLICY_SEARCH, POLICY_HISTORY,
    POLICY_CREATE, POLICY_UPDATE, POLICY_DELETE, POLICY_EVERYTHING
} policy_action;
#define POLICY_ACTION_COUNT 8

/* Who asks: borrowed from the session's account.  NULL and "" both mean
 * "not linked". */
typedef struct policy_subject {
    auth_role role;
    const char *account_id;
    const char *practitioner;   /* clinician / nurse: FHIR Practitioner id */
    const char *patient;        /* patient: FHIR Patient id                */
    const char *scopes;         /* service: SMART v2 scopes                */
} policy_subject;

typedef struct policy_target {
    const char *resource_type;  /* "Observation"                               */
    const char *patient;        /* the compartment's patient; NULL = not in a
                                   patient compartment (a search across
                                   patients, a directory entry, a definition) */
} policy_target;

/* A fact about (who, patient) at now_us: 1 yes, 0 no, -1 error.  Any other
 * value counts as an error. */
typedef int (*policy_fact_fn)(void *ctx, const char *who, const char *patient,
                              int64_t now_us);

/* Facts answered by the caller (the FHIR layer reads CareTeams, Encounters
 * and grants from the store).  Borrowed; ctx is passed through. */
typedef struct policy_facts {
    policy_fact_fn care_relationship;  /* who = the Practitioner id */
    policy_fact_fn btg_grant_active;   /* who = the account id      */
    void *ctx;
} policy_facts;

typedef enum policy_effect { POLICY_PERMIT, POLICY_DENY } policy_effect;

typedef struct policy_decision {
    policy_effect effect;
    int status;          /* denied: 403, or 404 when even existence must not
                            be revealed; 500 when policy_decide returned -1 */
    int break_glass;     /* 1: permitted only by break-the-glass (audit
                            purpose BTG, flag for security)                  */
    int grant_btg;       /* 1: the caller must record a new BTG grant for
                            (account, patient) until btg_expires_us          */
    int64_t btg_expires_us;
    char reason[160];    /* which rule decided, for the audit trail          */
} policy_decision;

typedef struct policy_config {
    int64_t btg_duration_us;   /* a new BTG grant lasts; default 60 min  */
    size_t btg_min_reason;     /* visible letters; default 10            */
} policy_config;
policy_config policy_default_config(void);

/* Decide.  cfg NULL means the defaults; facts may be NULL only when the
 * rules never ask (a clinical role reaching for patient data fails closed).
 * Returns 0 with *out the decision (permit or deny), or -1 with *out a deny
 * (status 500) and err set: MV_E_INVALID for a malformed request,
 * MV_E_IO when a fact could not be established. */
int policy_decide(const policy_config *cfg, const policy_subject *who,
                  policy_action action, const policy_target *what,
                  const char *btg_reason, const policy_facts *facts,
                  int64_t now_us, policy_decision *out, mv_err *err);

/* 1 for resource types that hold no patient data and that every role may
 * read (Practitioner, PractitionerRole, Organization, Location, ...). */
int policy_is_directory_type(const char *resource_type);
/* 1 for definitional types outside any patient compartment (Medication,
 * ValueSet, CodeSystem, ...): clinical roles read them, services write them. */
int policy_is_definition_type(const char *resource_type);

/* 1 when who's decisions never depend on which patient a resource belongs
 * to (admin, security, service: their rules look at the type and the
 * action only).  Routes take such a decision before looking anything up,
 * with target.patient NULL, so that an existing and a missing resource get
 * the same answer. */
int policy_patient_independent(const policy_subject *who);
/* 1 when reason would be accepted as an X-Break-Glass-Reason (cfg NULL:
 * the defaults): UTF-8 with at least btg_min_reason letters (Unicode
 * alphabetic: not dots, digits, spaces or zero-width characters). */
int policy_btg_reason_valid(const policy_config *cfg, const char *reason);

/* SMART v2 scopes, space-separated: (system|user|patient)/(Type|*).(c?r?u?d?s?)
 * with at least one letter, in that order.  1 when every token is valid and
 * there is at least one, else 0 (no query suffixes, no SMART v1 ".read"). */
int policy_scopes_valid(const char *scopes);
/* 1 when a system/ scope in a valid scope string allows action on
 * resource_type: c create; r read, vread, history; s search; u update;
 * d delete; $everything needs r on the wildcard type "*" (it returns every
 * type).  A string with any invalid token allows nothing. */
int policy_scope_allows(const char *scopes, const char *resource_type,
                        policy_action action);

#endif /* MV_POLICY_H */
