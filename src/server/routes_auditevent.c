/*
 * routes_auditevent.c -- GET /fhir/AuditEvent?patient=ID: a patient's access
 * log, read from the audit trail as FHIR AuditEvent resources shaped after
 * IHE BALP (Basic Audit Log Patterns).
 *
 * Why it exists: "every access is provable" is only half the promise until
 * the patient can see who opened their record.  The patient themself (their
 * own id only) and security accounts may read it; the policy decides.  Each
 * agent is shown by username and role (what a patient can recognise), a
 * break-the-glass access carries purpose of use BTG, and reading the log is
 * itself an audited access.
 */
#include "fhir_internal.h"

#include <stdio.h>
#include <string.h>

#define LOG_DEFAULT_COUNT 50
#define LOG_MAX_COUNT 100

typedef struct log_ctx {
    call *c;
    json_t *entries;
    size_t n;
} log_ctx;

/* fhir.read -> (restful-interaction code, DICOM action code). */
static void interaction_of(const char *action, const char **code, const char **act)
{
    static const struct { const char *action, *code, *act; } map[] = {
        { "fhir.read", "read", "R" }, { "fhir.vread", "vread", "R" },
        { "fhir.search", "search-type", "E" }, { "fhir.history", "history-instance", "R" },
        { "fhir.everything", "operation", "E" }, { "fhir.create", "create", "C" },
        { "fhir.update", "update", "U" }, { "fhir.delete", "delete", "D" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(action, map[i].action) == 0) {
            *code = map[i].code;
            *act = map[i].act;
            return;
        }
    *code = NULL;
    *act = "E";
}

/* "user:<id>" -> "alice (clinician)"; other actors as recorded. */
static void agent_display(call *c, const char *actor, char *out, size_t n)
{
    auth_account a;
    if (strncmp(actor, "user:", 5) == 0 &&
        auth_account_get_id(c->srv->auth, actor + 5, &a, NULL) == 0)
        snprintf(out, n, "%s (%s)", a.username, auth_role_name(a.role));
    else
        snprintf(out, n, "%s", actor);
}

static json_t *entities(const store_audit_row *row)
{
    json_t *e = json_array();
    char ref[160];
    snprintf(ref, sizeof ref, "Patient/%s", row->patient);
    json_array_append_new(e, json_pack("{s:{s:s}, s:{s:s, s:s}}", "what", "reference", ref,
                                       "role", "system",
                                       "http://terminology.hl7.org/CodeSystem/object-role",
                                       "code", "1"));
    if (row->resources == NULL)
        return e;
    /* space-separated "Type/id/_history/n" references */
    for (const char *p = row->resources; *p;) {
        size_t len = strcspn(p, " ");
        if (len > 0 && len < sizeof ref) {
            snprintf(ref, sizeof ref, "%.*s", (int)len, p);
            json_array_append_new(e, json_pack("{s:{s:s}, s:{s:s, s:s}}", "what",
                                               "reference", ref, "role", "system",
                                               "http://terminology.hl7.org/CodeSystem/object-role",
                                               "code", "4"));
        }
        p += len;
        while (*p == ' ')
            p++;
    }
    return e;
}

static json_t *fhir_audit_event_of(call *c, const store_audit_row *row)
{
    const char *code, *act;
    interaction_of(row->action, &code, &act);
    char id[24], when[MV_TIME_STR_MAX], who[160];
    snprintf(id, sizeof id, "%lld", (long long)row->seq);
    mv_time_format(row->ts_us, when);
    agent_display(c, row->actor, who, sizeof who);
    const char *outcome = strncmp(row->outcome, "success", 7) == 0 ? "0"
                        : strncmp(row->outcome, "denied", 6) == 0 ? "4" : "8";
    json_t *agent = json_pack("{s:{s:s}, s:b}", "who", "display", who, "requestor", 1);
    if (row->source)
        json_object_set_new(agent, "network", json_pack("{s:s, s:s}", "address",
                                                        row->source, "type", "2"));
    json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:[o], s:{s:{s:s}}, s:o}",
                           "resourceType", "AuditEvent", "id", id,
                           "type", "system", "http://terminology.hl7.org/CodeSystem/audit-event-type",
                           "code", "rest",
                           "action", act, "recorded", when, "outcome", outcome,
                           "outcomeDesc", row->outcome, "agent", agent,
                           "source", "observer", "display", "medvault",
                           "entity", entities(row));
    if (code)
        json_object_set_new(ev, "subtype", json_pack("[{s:s, s:s}]", "system",
                            "http://hl7.org/fhir/restful-interaction", "code", code));
    if (row->purpose && strncmp(row->purpose, FHIR_PURPOSE_BTG, 3) == 0) {
        /* The reason is unsealed for security officers only; a patient
         * reading its own log sees the category. */
        char reason[300];
        int shown = c->who.account.role == AUTH_ROLE_SECURITY &&
                    fhir_grant_reason(c->srv, row->purpose, reason, sizeof reason);
        json_object_set_new(ev, "purposeOfEvent", json_pack(
            "[{s:[{s:s, s:s}], s:s}]", "coding", "system",
            "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code", "BTG",
            "text", shown ? reason : "break-the-glass"));
    }
    return ev;
}

static int add_row(const store_audit_row *row, void *ctx)
{
    log_ctx *l = ctx;
    json_t *ev = fhir_audit_event_of(l->c, row);
    if (ev == NULL)
        return -1;
    char url[40];
    snprintf(url, sizeof url, "AuditEvent/%lld", (long long)row->seq);
    json_array_append_new(l->entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", url,
                                                "resource", ev, "search", "mode", "match"));
    l->n++;
    return 0;
}

void fhir_audit_log(call *c)
{
    const char *patient = http_query(c->req, "patient");
    const char *count_s = http_query(c->req, "_count");
    long count = count_s ? strtol(count_s, NULL, 10) : LOG_DEFAULT_COUNT;
    if (patient == NULL || *patient == '\0' || count < 1 || count > LOG_MAX_COUNT) {
        call_fail(c, 400, "required", "AuditEvent is searched by patient (and "
                  "_count 1..100): GET /fhir/AuditEvent?patient=ID");
        return;
    }
    const char *id = strncmp(patient, "Patient/", 8) == 0 ? patient + 8 : patient;
    policy_subject who = fhir_subject(c);
    policy_target t = { "AuditEvent", id };
    policy_facts facts = fhir_facts(c->srv);
    policy_decision d;
    mv_err e;
    if (policy_decide(NULL, &who, POLICY_SEARCH, &t, NULL, &facts, mv_now_us(), &d, &e) != 0) {
        call_internal(c, &e);
        return;
    }
    char outcome[200];
    snprintf(outcome, sizeof outcome, d.effect == POLICY_PERMIT
             ? "success: AuditEvent?patient" : "denied: %s", d.reason);
    audit_event ev = { .actor = c->res->actor, .action = "fhir.search",
                       .outcome = outcome, .patient = id, .source = c->req->source,
                       .session = c->session_ref, .request_id = c->req->request_id };
    log_ctx l = { c, json_array(), 0 };
    int rc = d.effect == POLICY_PERMIT
                 ? store_audit_scan_patient(c->srv->store, id, (size_t)count, add_row, &l, &e)
                 : 0;
    /* the log is read before this access is added to it */
    if (rc == 0 && audit_record(c->srv->trail, &ev, 1, NULL, NULL, NULL, &e) != 0)
        rc = -1;
    if (rc != 0) {
        json_decref(l.entries);
        call_internal(c, &e);
        return;
    }
    if (d.effect != POLICY_PERMIT) {
        json_decref(l.entries);
        call_fail(c, d.status, d.status == 404 ? "not-found" : "forbidden", d.reason);
        return;
    }
    json_t *b = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                          "searchset", "total", (json_int_t)l.n, "entry", l.entries);
    char *text = json_text(b);
    json_decref(b);
    http_response_text(c->res, 200, "application/fhir+json", text ? text : "{}");
    free(text);
}
