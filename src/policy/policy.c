/*
 * policy.c -- policy_decide(): the one access decision for clinical data.
 *
 * Why it exists: see policy.h.  Each role has one short function that walks
 * its rules in order; the first rule that applies fills the decision and
 * returns.  Every path starts from a deny, so a missing rule denies.
 */
#include <stdio.h>
#include <string.h>

#include <unictype.h>
#include <unistr.h>

#include "policy.h"

#define MINUTE_US (60LL * 1000000LL)

/* One request, bundled so the rule functions stay short. */
typedef struct request {
    const policy_config *cfg;
    const policy_subject *who;
    policy_action action;
    const policy_target *what;
    const char *btg_reason;
    const policy_facts *facts;
    int64_t now_us;
    policy_decision *out;
    mv_err *err;
} request;

policy_config policy_default_config(void)
{
    policy_config c = { 60 * MINUTE_US, 10 };
    return c;
}

/* ---- Decisions ----------------------------------------------------------- */

static void set_reason(policy_decision *out, const char *reason)
{
    snprintf(out->reason, sizeof out->reason, "%s", reason);
}

static int deny(const request *r, int status, const char *reason)
{
    r->out->effect = POLICY_DENY;
    r->out->status = status;
    r->out->break_glass = 0;
    r->out->grant_btg = 0;
    set_reason(r->out, reason);
    return 0;
}

static int permit(const request *r, const char *reason)
{
    r->out->effect = POLICY_PERMIT;
    r->out->status = 0;
    set_reason(r->out, reason);
    return 0;
}

static int permit_btg(const request *r, int new_grant, const char *reason)
{
    permit(r, reason);
    r->out->break_glass = 1;
    r->out->grant_btg = new_grant;
    if (new_grant)
        r->out->btg_expires_us = r->now_us + r->cfg->btg_duration_us;
    return 0;
}

/* A deny that is also an error: the caller answers 500. */
static int fail(const request *r, mv_code code, const char *msg)
{
    deny(r, 500, msg);
    return mv_fail(r->err, code, "%s", msg);
}

/* ---- Small facts about the request --------------------------------------- */

static int is_set(const char *s) { return s != NULL && s[0] != '\0'; }

static int is_read_action(policy_action a)
{
    return a == POLICY_READ || a == POLICY_VREAD || a == POLICY_SEARCH ||
           a == POLICY_HISTORY || a == POLICY_EVERYTHING;
}

/* Reads, and deletes: the URL names an existing resource, so a refusal
 * must look like "not found" or it would tell that the resource exists.
 * A create or update names its patient in the body: 403 reveals nothing. */
static int hides_existence(policy_action a)
{
    return is_read_action(a) || a == POLICY_DELETE;
}

static int type_is(const request *r, const char *type)
{
    return strcmp(r->what->resource_type, type) == 0;
}

/* Directory and definition types count only outside a patient compartment;
 * anything else -- unknown types included -- is patient data. */
static int is_directory(const request *r)
{
    return r->what->patient == NULL &&
           policy_is_directory_type(r->what->resource_type);
}

static int is_definition(const request *r)
{
    return r->what->patient == NULL &&
           policy_is_definition_type(r->what->resource_type);
}

static int directory_read(const request *r, const char *deny_reason)
{
    if (is_read_action(r->action))
        return permit(r, "directory read");
    return deny(r, 403, deny_reason);
}

/* Asks one fact: 1, 0, or -1 (failed, missing, or an answer that is not 0/1). */
static int ask(const request *r, policy_fact_fn fn, const char *who)
{
    if (r->facts == NULL || fn == NULL)
        return -1;
    int answer = fn(r->facts->ctx, who, r->what->patient, r->now_us);
    return answer == 0 || answer == 1 ? answer : -1;
}

/* Bytes in the valid UTF-8 sequence at p (ending before end), 0 if invalid:
 * overlong forms, surrogates and values past U+10FFFF are invalid. */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    static const struct { unsigned char mask, lead; size_t n; uint32_t min; }
    forms[] = { {0x80, 0x00, 1, 0}, {0xE0, 0xC0, 2, 0x80},
                {0xF0, 0xE0, 3, 0x800}, {0xF8, 0xF0, 4, 0x10000} };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if ((p[0] & forms[f].mask) != forms[f].lead)
            continue;
        if ((size_t)(end - p) < forms[f].n)
            return 0;
        uint32_t cp = p[0] & (unsigned char)~forms[f].mask;
        for (size_t i = 1; i < forms[f].n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < forms[f].min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        return forms[f].n;
    }
    return 0;
}

/* Letters in the reason (Unicode alphabetic code points: accents and every
 * script count, punctuation, digits, spaces and invisible characters such
 * as zero-width spaces do not); -1 if not valid UTF-8.  "..........", ten
 * zero-width spaces or "1234567890" explain nothing a reviewer could check. */
static long reason_length(const char *reason)
{
    const uint8_t *p = (const uint8_t *)reason;
    const uint8_t *end = p + strlen(reason);
    long letters = 0;
    while (p < end) {
        size_t n = utf8_sequence(p, end);
        ucs4_t cp;
        if (n == 0 || u8_mbtouc(&cp, p, (size_t)(end - p)) != (int)n)
            return -1;
        letters += uc_is_alpha(cp) ? 1 : 0;
        p += n;
    }
    return letters;
}

/* ---- Rules per role ------------------------------------------------------ */

static int decide_admin(const request *r)
{
    if (is_directory(r))
        return directory_read(r, "directory is written by services");
    return deny(r, 403, "admin: no clinical data (separation of duties)");
}

static int decide_security(const request *r)
{
    if (is_directory(r))
        return directory_read(r, "directory is written by services");
    if (type_is(r, "AuditEvent") &&
        (r->action == POLICY_READ || r->action == POLICY_VREAD ||
         r->action == POLICY_SEARCH))
        return permit(r, "security: audit trail read");
    return deny(r, 403, "security: no clinical data (separation of duties)");
}

static int decide_patient(const request *r)
{
    if (is_directory(r))
        return directory_read(r, "directory is written by services");
    if (!is_set(r->who->patient))
        return deny(r, 403, "patient account without a Patient link");
    if (r->what->patient == NULL || strcmp(r->what->patient, r->who->patient) != 0)
        return deny(r, 404, "patient: outside own compartment");
    if (!is_read_action(r->action))
        return deny(r, 403, "patient: own record is read-only");
    /* Patients can see who opened their record: their own access log. */
    if (type_is(r, "AuditEvent"))
        return r->action == POLICY_READ || r->action == POLICY_VREAD ||
               r->action == POLICY_SEARCH
                   ? permit(r, "patient: own access log")
                   : deny(r, 403, "patient: the access log is read or searched");
    return permit(r, "patient: own compartment");
}

/* Permitted by a care relationship or by BTG, except what the role never may. */
static int permit_care(const request *r, int by_btg, int new_grant)
{
    if (r->who->role == AUTH_ROLE_NURSE && type_is(r, "MedicationRequest") &&
        !is_read_action(r->action))
        return deny(r, 403, "nurse: no MedicationRequest writes");
    if (!by_btg)
        return permit(r, "care relationship");
    if (r->action == POLICY_DELETE)
        return deny(r, 403, "break-the-glass never permits deletion");
    return permit_btg(r, new_grant, new_grant ? "break-the-glass: new grant"
                                              : "break-the-glass: active grant");
}

static int decide_without_care(const request *r)
{
    int granted = ask(r, r->facts ? r->facts->btg_grant_active : NULL,
                      r->who->account_id);
    if (granted < 0)
        return fail(r, MV_E_IO, "could not establish the care relationship");
    if (granted)
        return permit_care(r, 1, 0);
    if (r->btg_reason == NULL)
        return deny(r, hides_existence(r->action) ? 404 : 403,
                    "no care relationship");
    long len = reason_length(r->btg_reason);
    if (len < 0 || (size_t)len < r->cfg->btg_min_reason)
        return deny(r, 403, "break-the-glass reason too short");
    if (!is_read_action(r->action))
        return deny(r, 403, "break-the-glass opens read access only");
    return permit_care(r, 1, 1);
}

static int decide_care_giver(const request *r)
{
    if (is_directory(r))
        return directory_read(r, "directory is written by services");
    if (!is_set(r->who->practitioner))
        return deny(r, 403, "clinical account without a Practitioner link");
    if (is_definition(r))
        return directory_read(r, "definitions are written by services");
    if (type_is(r, "AuditEvent"))
        return deny(r, 403, "AuditEvent is read by security only");
    if (r->what->patient == NULL)
        return deny(r, 403, "patient data is read one patient at a time");
    if (!is_set(r->who->account_id))
        return fail(r, MV_E_INVALID, "policy: subject without an account id");
    int related = ask(r, r->facts ? r->facts->care_relationship : NULL,
                      r->who->practitioner);
    if (related < 0)
        return fail(r, MV_E_IO, "could not establish the care relationship");
    return related ? permit_care(r, 0, 0) : decide_without_care(r);
}

static int decide_service(const request *r)
{
    if (type_is(r, "AuditEvent"))
        return deny(r, 403, "AuditEvent is not accessible to services");
    if (policy_scope_allows(r->who->scopes, r->what->resource_type, r->action))
        return permit(r, "service: within scope");
    return deny(r, 403, "service: outside its scopes");
}

/* ---- Entry point ---------------------------------------------------------- */

int policy_patient_independent(const policy_subject *who)
{
    return who != NULL && (who->role == AUTH_ROLE_ADMIN || who->role == AUTH_ROLE_SECURITY ||
                           who->role == AUTH_ROLE_SERVICE);
}

int policy_btg_reason_valid(const policy_config *cfg, const char *reason)
{
    policy_config defaults = policy_default_config();
    if (cfg == NULL)
        cfg = &defaults;
    long len = reason ? reason_length(reason) : -1;
    return len >= 0 && (size_t)len >= cfg->btg_min_reason;
}


static int valid_request(const request *r)
{
    const policy_target *t = r->what;
    return r->who != NULL && t != NULL && is_set(t->resource_type) &&
           (t->patient == NULL || t->patient[0] != '\0') &&
           (unsigned)r->action < POLICY_ACTION_COUNT &&
           r->cfg->btg_duration_us > 0 && r->cfg->btg_min_reason > 0;
}

int policy_decide(const policy_config *cfg, const policy_subject *who,
                  policy_action action, const policy_target *what,
                  const char *btg_reason, const policy_facts *facts,
                  int64_t now_us, policy_decision *out, mv_err *err)
{
    if (out == NULL)
        return mv_fail(err, MV_E_INVALID, "policy: no decision to fill");
    policy_config defaults = policy_default_config();
    request r = { cfg ? cfg : &defaults, who, action, what, btg_reason, facts,
                  now_us, out, err };
    memset(out, 0, sizeof *out);
    deny(&r, 403, "default deny");
    if (!valid_request(&r))
        return fail(&r, MV_E_INVALID, "policy: malformed request");
    if (action == POLICY_EVERYTHING && what->patient == NULL)
        return deny(&r, 403, "$everything needs a patient compartment");
    switch (who->role) {
    case AUTH_ROLE_ADMIN:     return decide_admin(&r);
    case AUTH_ROLE_SECURITY:  return decide_security(&r);
    case AUTH_ROLE_PATIENT:   return decide_patient(&r);
    case AUTH_ROLE_CLINICIAN:
    case AUTH_ROLE_NURSE:     return decide_care_giver(&r);
    case AUTH_ROLE_SERVICE:   return decide_service(&r);
    }
    return deny(&r, 403, "unknown role");
}
