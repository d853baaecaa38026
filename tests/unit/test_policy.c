/*
 * test_policy.c -- unit tests for the access decision point (src/policy).
 *
 * Why this exists: the 2024 breach was one account reading 758,912 patients
 * through ordinary functions.  These tests pin down, as a literal table
 * written from the rules (not computed from the code under test), the exact
 * effect and status for every role x resource type x action x situation
 * (care relationship, none, active BTG grant, BTG reason, short reason),
 * then check the properties that matter most one by one: no clinical data
 * for admin/security, nothing without a relationship or BTG, 404 rather than
 * 403 where existence must stay hidden, the strict scope grammar, and that a
 * failing fact denies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

#define NOW_US 1800000000000000LL
#define ACCOUNT "acct-1"
#define PRACTITIONER "prac-1"
#define PATIENT "p1"
#define OTHER_PATIENT "p2"
#define GOOD_REASON "Unconscious patient in the ER"
#define SHORT_REASON "urgent"

/* ---- A table-driven fake for the facts ----------------------------------- */

typedef struct fact_pair { const char *who, *patient; } fact_pair;

typedef struct fake_facts {
    fact_pair relationships[4];   /* (practitioner, patient), NULL-terminated */
    fact_pair grants[4];          /* (account, patient)                        */
    int fail_relationship;        /* answer this instead when nonzero          */
    int fail_grant;
    int calls;
    int64_t seen_now;
} fake_facts;

static int has_pair(const fact_pair *pairs, const char *who, const char *patient)
{
    for (; pairs->who != NULL; pairs++)
        if (strcmp(pairs->who, who) == 0 && strcmp(pairs->patient, patient) == 0)
            return 1;
    return 0;
}

static int fake_relationship(void *ctx, const char *who, const char *patient,
                             int64_t now_us)
{
    fake_facts *f = ctx;
    f->calls++;
    f->seen_now = now_us;
    return f->fail_relationship ? f->fail_relationship
                                : has_pair(f->relationships, who, patient);
}

static int fake_grant(void *ctx, const char *who, const char *patient,
                      int64_t now_us)
{
    fake_facts *f = ctx;
    f->calls++;
    f->seen_now = now_us;
    return f->fail_grant ? f->fail_grant : has_pair(f->grants, who, patient);
}

static policy_facts facts_of(fake_facts *f)
{
    policy_facts pf = { fake_relationship, fake_grant, f };
    return pf;
}

/* ---- Situations ---------------------------------------------------------- */

enum { SIT_CARE, SIT_NONE, SIT_GRANT, SIT_REASON, SIT_SHORT, SIT_COUNT };
static const char *const SIT_NAMES[] = { "care", "none", "grant", "reason",
                                         "short" };

static void situation(int sit, fake_facts *f, const char **reason)
{
    memset(f, 0, sizeof *f);
    *reason = NULL;
    if (sit == SIT_CARE)
        f->relationships[0] = (fact_pair){ PRACTITIONER, PATIENT };
    if (sit == SIT_GRANT)
        f->grants[0] = (fact_pair){ ACCOUNT, PATIENT };
    if (sit == SIT_REASON)
        *reason = GOOD_REASON;
    if (sit == SIT_SHORT)
        *reason = SHORT_REASON;
}

static policy_subject subject(auth_role role)
{
    policy_subject s = { role, ACCOUNT, NULL, NULL, NULL };
    if (role == AUTH_ROLE_CLINICIAN || role == AUTH_ROLE_NURSE)
        s.practitioner = PRACTITIONER;
    if (role == AUTH_ROLE_PATIENT)
        s.patient = PATIENT;
    if (role == AUTH_ROLE_SERVICE)
        s.scopes = "system/Observation.cr system/Patient.rs system/Condition.d "
                   "system/Practitioner.s system/Medication.cruds "
                   "system/AuditEvent.rs";
    return s;
}

/* ---- The matrix ------------------------------------------------------------
 * One character per action, in the order R V S H C U D E (read, vread,
 * search, history, create, update, delete, $everything):
 *   P permit   B permit by an active BTG grant   G permit + new BTG grant
 *   3 deny 403   4 deny 404
 * Targets of the first seven types are in patient p1's compartment; the
 * last three (directory, directory, definition) are in none. */

static const char *const TYPES[] = {
    "Patient", "Observation", "Condition", "MedicationRequest", "Encounter",
    "CareTeam", "AuditEvent", "Practitioner", "Organization", "Medication"
};
#define TYPE_COUNT (sizeof TYPES / sizeof TYPES[0])
#define COMPARTMENT_TYPES 7

typedef struct row { const char *by_sit[SIT_COUNT]; } row;

/*                   care        none        grant       reason      short */
static const row CLINICIAN[TYPE_COUNT] = {
    /* Patient     */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* Observation */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* Condition   */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* MedRequest  */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* Encounter   */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* CareTeam    */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* AuditEvent  */ {{"33333333", "33333333", "33333333", "33333333", "33333333"}},
    /* Practitioner*/ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
    /* Organization*/ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
    /* Medication  */ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
};

static const row NURSE[TYPE_COUNT] = {
    /* Patient     */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* Observation */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* Condition   */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* MedRequest  */ {{"PPPP333P", "44443344", "BBBB333B", "GGGG333G", "33333333"}},
    /* Encounter   */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* CareTeam    */ {{"PPPPPPPP", "44443344", "BBBBBB3B", "GGGG333G", "33333333"}},
    /* AuditEvent  */ {{"33333333", "33333333", "33333333", "33333333", "33333333"}},
    /* Practitioner*/ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
    /* Organization*/ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
    /* Medication  */ {{"PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333", "PPPP3333"}},
};

/* Roles the facts do not concern: one string for every situation. */
#define SAME(s) {{ s, s, s, s, s }}

static const row ADMIN[TYPE_COUNT] = {
    SAME("33333333"), SAME("33333333"), SAME("33333333"), SAME("33333333"),
    SAME("33333333"), SAME("33333333"), SAME("33333333"),
    /* Practitioner, Organization, Medication */
    SAME("PPPP3333"), SAME("PPPP3333"), SAME("33333333"),
};

static const row SECURITY[TYPE_COUNT] = {
    SAME("33333333"), SAME("33333333"), SAME("33333333"), SAME("33333333"),
    SAME("33333333"), SAME("33333333"),
    /* AuditEvent: read, vread, search */ SAME("PPP33333"),
    SAME("PPPP3333"), SAME("PPPP3333"), SAME("33333333"),
};

static const row PATIENT_ROLE[TYPE_COUNT] = {
    SAME("PPPP333P"), SAME("PPPP333P"), SAME("PPPP333P"), SAME("PPPP333P"),
    SAME("PPPP333P"), SAME("PPPP333P"),
    /* AuditEvent: its own access log, read, vread, search */ SAME("PPP33333"),
    SAME("PPPP3333"), SAME("PPPP3333"),
    /* Medication: outside the compartment; $everything needs one */
    SAME("44444443"),
};

/* Scopes: Observation.cr Patient.rs Condition.d Practitioner.s
 * Medication.cruds AuditEvent.rs (AuditEvent never for services). */
static const row SERVICE[TYPE_COUNT] = {
    /* Patient: $everything needs * */ SAME("PPPP3333"),
    /* Observation */ SAME("PP3PP333"),
    /* Condition   */ SAME("333333P3"),
    SAME("33333333"), SAME("33333333"), SAME("33333333"),
    /* AuditEvent  */ SAME("33333333"),
    /* Practitioner*/ SAME("33P33333"),
    SAME("33333333"),
    /* Medication  */ SAME("PPPPPPP3"),
};

/* The matrix code of a decision. */
static char code_of(const policy_decision *d)
{
    if (d->effect == POLICY_PERMIT)
        return d->grant_btg ? 'G' : d->break_glass ? 'B' : 'P';
    return d->status == 403 ? '3' : d->status == 404 ? '4' : '?';
}

static void check_cell(char want, const policy_decision *d, int rc)
{
    assert_int_equal(rc, 0);
    assert_true(strlen(d->reason) > 0);
    assert_null(strstr(d->reason, PATIENT));          /* no patient ids */
    assert_null(strstr(d->reason, "Unconscious"));    /* no reason text */
    assert_int_equal(code_of(d), want);
    if (want == '3' || want == '4')
        assert_int_equal(d->effect, POLICY_DENY);
    else
        assert_int_equal(d->effect, POLICY_PERMIT);
    if (want == 'G')
        assert_true(d->btg_expires_us == NOW_US + 60LL * 60 * 1000000);
    if (want == 'P' || want == '3' || want == '4')
        assert_true(d->break_glass == 0 && d->grant_btg == 0);
}

static void run_matrix(auth_role role, const row *table, int facts_matter)
{
    policy_subject who = subject(role);
    for (size_t t = 0; t < TYPE_COUNT; t++) {
        policy_target what = { TYPES[t], t < COMPARTMENT_TYPES ? PATIENT : NULL };
        for (int sit = 0; sit < SIT_COUNT; sit++) {
            const char *want = table[t].by_sit[sit];
            assert_int_equal(strlen(want), POLICY_ACTION_COUNT);
            for (int a = 0; a < POLICY_ACTION_COUNT; a++) {
                fake_facts f;
                const char *reason;
                situation(sit, &f, &reason);
                policy_facts pf = facts_of(&f);
                policy_decision d;
                mv_err err = {0};
                int rc = policy_decide(NULL, &who, (policy_action)a, &what,
                                       reason, &pf, NOW_US, &d, &err);
                if (rc != 0 || code_of(&d) != want[a])
                    print_message("%s %s %s action %d: want %c, got %c (%s)\n",
                                  auth_role_name(role), TYPES[t], SIT_NAMES[sit],
                                  a, want[a], code_of(&d), d.reason);
                check_cell(want[a], &d, rc);
                if (!facts_matter)
                    assert_int_equal(f.calls, 0);
            }
        }
    }
}

static void test_matrix_clinician(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_CLINICIAN, CLINICIAN, 1);
}

static void test_matrix_nurse(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_NURSE, NURSE, 1);
}

static void test_matrix_admin(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_ADMIN, ADMIN, 0);
}

static void test_matrix_security(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_SECURITY, SECURITY, 0);
}

static void test_matrix_patient(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_PATIENT, PATIENT_ROLE, 0);
}

static void test_matrix_service(void **state)
{
    (void)state;
    run_matrix(AUTH_ROLE_SERVICE, SERVICE, 0);
}

/* ---- Properties, one by one ---------------------------------------------- */

/* Patient-compartment types, plus ones the tables do not list: an unknown
 * type must count as clinical. */
static const char *const CLINICAL_TYPES[] = {
    "Patient", "Observation", "Condition", "MedicationRequest", "Encounter",
    "CareTeam", "AuditEvent", "DiagnosticReport", "Immunization", "Goal",
    "Group", "Consent", "Composition", "NotARealType", "observation"
};
#define CLINICAL_COUNT (sizeof CLINICAL_TYPES / sizeof CLINICAL_TYPES[0])

/* Counts permits for role over clinical types x actions x situations, in
 * the compartment of `patient` (NULL: a search across patients). */
static int count_permits(auth_role role, const char *patient, int sit_from,
                         int sit_to, int skip_audit_event)
{
    policy_subject who = subject(role);
    int permits = 0;
    for (size_t t = 0; t < CLINICAL_COUNT; t++) {
        if (skip_audit_event && strcmp(CLINICAL_TYPES[t], "AuditEvent") == 0)
            continue;
        policy_target what = { CLINICAL_TYPES[t], patient };
        for (int sit = sit_from; sit <= sit_to; sit++)
            for (int a = 0; a < POLICY_ACTION_COUNT; a++) {
                fake_facts f;
                const char *reason;
                situation(sit, &f, &reason);
                policy_facts pf = facts_of(&f);
                policy_decision d;
                assert_int_equal(policy_decide(NULL, &who, (policy_action)a,
                                               &what, reason, &pf, NOW_US, &d,
                                               NULL), 0);
                permits += d.effect == POLICY_PERMIT;
            }
    }
    return permits;
}

static void test_admin_security_no_clinical_data(void **state)
{
    (void)state;
    assert_int_equal(count_permits(AUTH_ROLE_ADMIN, PATIENT, 0, SIT_COUNT - 1, 0), 0);
    assert_int_equal(count_permits(AUTH_ROLE_ADMIN, NULL, 0, SIT_COUNT - 1, 0), 0);
    assert_int_equal(count_permits(AUTH_ROLE_SECURITY, PATIENT, 0, SIT_COUNT - 1, 1), 0);
    assert_int_equal(count_permits(AUTH_ROLE_SECURITY, NULL, 0, SIT_COUNT - 1, 1), 0);
}

static void test_no_relationship_no_btg_no_access(void **state)
{
    (void)state;
    /* SIT_NONE only: no relationship, no grant, no reason. */
    assert_int_equal(count_permits(AUTH_ROLE_CLINICIAN, PATIENT, SIT_NONE, SIT_NONE, 0), 0);
    assert_int_equal(count_permits(AUTH_ROLE_NURSE, PATIENT, SIT_NONE, SIT_NONE, 0), 0);
    /* A relationship with p1 opens nothing of p2, nor a search across all. */
    assert_int_equal(count_permits(AUTH_ROLE_CLINICIAN, OTHER_PATIENT, SIT_CARE, SIT_CARE, 0), 0);
    assert_int_equal(count_permits(AUTH_ROLE_CLINICIAN, NULL, 0, SIT_COUNT - 1, 0), 0);
    assert_int_equal(count_permits(AUTH_ROLE_NURSE, NULL, 0, SIT_COUNT - 1, 0), 0);
}

static void test_patient_gets_404_outside_own_compartment(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_PATIENT);
    for (size_t t = 0; t < CLINICAL_COUNT; t++)
        for (int a = 0; a < POLICY_ACTION_COUNT; a++) {
            policy_target what = { CLINICAL_TYPES[t], OTHER_PATIENT };
            policy_decision d;
            assert_int_equal(policy_decide(NULL, &who, (policy_action)a, &what,
                                           NULL, NULL, NOW_US, &d, NULL), 0);
            assert_int_equal(d.effect, POLICY_DENY);
            assert_int_equal(d.status, 404);
        }
    /* A patient account without a Patient link sees nothing of anyone. */
    who.patient = "";
    policy_target own = { "Observation", PATIENT };
    policy_decision d;
    assert_int_equal(policy_decide(NULL, &who, POLICY_READ, &own, NULL, NULL,
                                   NOW_US, &d, NULL), 0);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 403);
}

static policy_decision decide_simple(const policy_subject *who,
                                     policy_action action, const char *type,
                                     const char *patient, const char *reason,
                                     fake_facts *f, int expect_rc, mv_err *err)
{
    policy_facts pf = facts_of(f);
    policy_target what = { type, patient };
    policy_decision d;
    assert_int_equal(policy_decide(NULL, who, action, &what, reason, &pf,
                                   NOW_US, &d, err), expect_rc);
    return d;
}

/* Without a relationship, a DELETE is refused like a read (404): its URL
 * names an existing resource, and a 403 would confirm that it exists when a
 * missing one answers 404.  Creates and updates name their patient in the
 * body, existing or not, and stay 403 (the caller learns nothing). */
static void test_delete_hides_existence(void **state)
{
    (void)state;
    const auth_role roles[] = { AUTH_ROLE_CLINICIAN, AUTH_ROLE_NURSE };
    for (size_t i = 0; i < 2; i++) {
        policy_subject who = subject(roles[i]);
        fake_facts f = {0};
        policy_decision d = decide_simple(&who, POLICY_DELETE, "Observation",
                                          OTHER_PATIENT, NULL, &f, 0, NULL);
        policy_decision read = decide_simple(&who, POLICY_READ, "Observation",
                                             OTHER_PATIENT, NULL, &f, 0, NULL);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_int_equal(d.status, 404);
        assert_int_equal(d.status, read.status);
        assert_string_equal(d.reason, read.reason);
        d = decide_simple(&who, POLICY_CREATE, "Observation", OTHER_PATIENT, NULL,
                          &f, 0, NULL);
        assert_int_equal(d.status, 403);
        d = decide_simple(&who, POLICY_UPDATE, "Observation", OTHER_PATIENT, NULL,
                          &f, 0, NULL);
        assert_int_equal(d.status, 403);
        /* a reason is an explicit break-the-glass attempt: it says why */
        d = decide_simple(&who, POLICY_DELETE, "Observation", OTHER_PATIENT,
                          SHORT_REASON, &f, 0, NULL);
        assert_int_equal(d.status, 403);
        d = decide_simple(&who, POLICY_DELETE, "Observation", OTHER_PATIENT,
                          GOOD_REASON, &f, 0, NULL);
        assert_int_equal(d.status, 403);
        assert_int_equal(d.grant_btg, 0);
    }
}

static void test_nurse_no_medication_request_writes(void **state)
{
    (void)state;
    policy_subject nurse = subject(AUTH_ROLE_NURSE);
    policy_subject clinician = subject(AUTH_ROLE_CLINICIAN);
    const policy_action writes[] = { POLICY_CREATE, POLICY_UPDATE, POLICY_DELETE };
    for (size_t i = 0; i < 3; i++) {
        fake_facts f = { .relationships = { { PRACTITIONER, PATIENT } } };
        policy_decision d = decide_simple(&nurse, writes[i], "MedicationRequest",
                                          PATIENT, NULL, &f, 0, NULL);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_int_equal(d.status, 403);
        assert_non_null(strstr(d.reason, "nurse"));
        d = decide_simple(&clinician, writes[i], "MedicationRequest", PATIENT,
                          NULL, &f, 0, NULL);
        assert_int_equal(d.effect, POLICY_PERMIT);
    }
}

/* An active grant lets a clinician document emergency care (create,
 * update) but never delete; the helpers routes use agree with the rules. */
static void test_btg_grant_never_deletes(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_CLINICIAN);
    fake_facts f = { .grants = { { ACCOUNT, OTHER_PATIENT } } };
    policy_decision d = decide_simple(&who, POLICY_UPDATE, "Observation", OTHER_PATIENT,
                                      NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_PERMIT);
    assert_int_equal(d.break_glass, 1);
    d = decide_simple(&who, POLICY_DELETE, "Observation", OTHER_PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 403);
    assert_non_null(strstr(d.reason, "deletion"));

    assert_true(policy_btg_reason_valid(NULL, GOOD_REASON));
    assert_false(policy_btg_reason_valid(NULL, "  short  "));
    assert_false(policy_btg_reason_valid(NULL, NULL));
    policy_subject admin = subject(AUTH_ROLE_ADMIN), svc = subject(AUTH_ROLE_SERVICE);
    policy_subject sec = subject(AUTH_ROLE_SECURITY), pat = subject(AUTH_ROLE_PATIENT);
    assert_true(policy_patient_independent(&admin));
    assert_true(policy_patient_independent(&sec));
    assert_true(policy_patient_independent(&svc));
    assert_false(policy_patient_independent(&who));
    assert_false(policy_patient_independent(&pat));
}

static void test_fact_errors_deny(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_CLINICIAN);
    int bad_answers[] = { -1, 2 };
    for (size_t i = 0; i < 2; i++) {
        fake_facts f = { .fail_relationship = bad_answers[i],
                         .grants = { { ACCOUNT, PATIENT } } };
        mv_err err = {0};
        policy_decision d = decide_simple(&who, POLICY_READ, "Observation",
                                          PATIENT, NULL, &f, -1, &err);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_int_equal(err.code, MV_E_IO);
        assert_string_equal(err.msg, "could not establish the care relationship");

        fake_facts g = { .fail_grant = bad_answers[i] };
        mv_err err2 = {0};
        d = decide_simple(&who, POLICY_READ, "Observation", PATIENT,
                          GOOD_REASON, &g, -1, &err2);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_int_equal(d.break_glass, 0);
        assert_int_equal(d.grant_btg, 0);
        assert_int_equal(err2.code, MV_E_IO);
    }
    /* No facts at all: fails closed too. */
    policy_target what = { "Observation", PATIENT };
    policy_decision d;
    mv_err err = {0};
    assert_int_equal(policy_decide(NULL, &who, POLICY_READ, &what, NULL, NULL,
                                   NOW_US, &d, &err), -1);
    assert_int_equal(d.effect, POLICY_DENY);
}

static void test_btg_flags(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_CLINICIAN);
    policy_config cfg = { 5 * 1000000LL, 10 };
    policy_target what = { "Condition", PATIENT };
    policy_decision d;

    /* A new reason: break_glass, grant_btg, expiry from the config. */
    fake_facts none = {0};
    policy_facts pf = facts_of(&none);
    assert_int_equal(policy_decide(&cfg, &who, POLICY_SEARCH, &what,
                                   "  patient collapsed  ", &pf, NOW_US, &d,
                                   NULL), 0);
    assert_int_equal(d.effect, POLICY_PERMIT);
    assert_int_equal(d.break_glass, 1);
    assert_int_equal(d.grant_btg, 1);
    assert_true(d.btg_expires_us == NOW_US + 5 * 1000000LL);
    assert_true(none.seen_now == NOW_US);

    /* An active grant with a reason again: no second grant. */
    fake_facts granted = { .grants = { { ACCOUNT, PATIENT } } };
    pf = facts_of(&granted);
    assert_int_equal(policy_decide(&cfg, &who, POLICY_READ, &what, GOOD_REASON,
                                   &pf, NOW_US, &d, NULL), 0);
    assert_int_equal(d.effect, POLICY_PERMIT);
    assert_int_equal(d.break_glass, 1);
    assert_int_equal(d.grant_btg, 0);

    /* A grant for another patient or another account does not count. */
    fake_facts elsewhere = { .grants = { { ACCOUNT, OTHER_PATIENT },
                                         { "acct-2", PATIENT } } };
    pf = facts_of(&elsewhere);
    assert_int_equal(policy_decide(&cfg, &who, POLICY_READ, &what, NULL, &pf,
                                   NOW_US, &d, NULL), 0);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 404);

    /* A care relationship is never break-the-glass, reason or not. */
    fake_facts care = { .relationships = { { PRACTITIONER, PATIENT } } };
    pf = facts_of(&care);
    assert_int_equal(policy_decide(&cfg, &who, POLICY_READ, &what, GOOD_REASON,
                                   &pf, NOW_US, &d, NULL), 0);
    assert_int_equal(d.effect, POLICY_PERMIT);
    assert_int_equal(d.break_glass, 0);
    assert_int_equal(d.grant_btg, 0);
}

/* A reason counts its letters: not digits, dots, spaces or invisible
 * characters (an attack run was let in by ten zero-width spaces). */
static void expect_reason(const char *reason, int permitted)
{
    policy_subject who = subject(AUTH_ROLE_NURSE);
    fake_facts f = {0};
    policy_decision d = decide_simple(&who, POLICY_READ, "Observation", PATIENT,
                                      reason, &f, 0, NULL);
    if ((d.effect == POLICY_PERMIT) != permitted)
        print_message("reason \"%s\": %s\n", reason, d.reason);
    assert_int_equal(d.effect, permitted ? POLICY_PERMIT : POLICY_DENY);
    if (!permitted) {
        assert_int_equal(d.status, 403);
        assert_string_equal(d.reason, "break-the-glass reason too short");
    }
}

static void test_btg_reason_length(void **state)
{
    (void)state;
    expect_reason("Unconscious", 1);
    expect_reason("Arrêt cardiaque", 1);
    expect_reason("abcdefghi", 0);
    expect_reason("   abcdefghi \t\r\n ", 0);                 /* 9 letters */
    expect_reason("a b c d e f g h i 1 2 3", 0);              /* 9 letters, digits */
    expect_reason("0123456789", 0);                           /* digits only */
    expect_reason("..........", 0);
    expect_reason("----------!!!!!!!!!!", 0);
    expect_reason("", 0);
    expect_reason("          ", 0);
    /* Ten zero-width spaces, and ten zero-width joiners around nine letters. */
    expect_reason("\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b"
                  "\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b\xe2\x80\x8b", 0);
#define ZWJ "\xe2\x80\x8d"
    expect_reason("a" ZWJ "b" ZWJ "c" ZWJ "d" ZWJ "e" ZWJ "f" ZWJ "g" ZWJ "h" ZWJ "i" ZWJ, 0);
#undef ZWJ
    expect_reason("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 1); /* 10 x e-acute */
    expect_reason("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 0);         /* 9: 18 bytes */
    expect_reason("\xe6\x82\xa3\xe8\x80\x85\xe6\x84\x8f\xe8\xad\x98\xe4\xb8\x8d"
                  "\xe6\x98\x8e\xe6\x95\x91\xe6\x80\xa5\xe6\x90\xac\xe9\x80\x81", 1);
    expect_reason("\xf0\x9f\x9a\x91\xf0\x9f\x9a\x91\xf0\x9f\x9a\x91", 0);
    expect_reason("Unconscious\xff", 0);                       /* not UTF-8 */
    expect_reason("Unconscious\xc0\xaf", 0);                   /* overlong */
    expect_reason("Unconscious\xed\xa0\x80", 0);               /* surrogate */
    expect_reason("Unconscious\xc3", 0);                       /* truncated */
}

static void test_no_practitioner_link(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_CLINICIAN);
    who.practitioner = NULL;
    fake_facts f = { .grants = { { ACCOUNT, PATIENT } } };
    policy_decision d = decide_simple(&who, POLICY_READ, "Observation", PATIENT,
                                      GOOD_REASON, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 403);
    assert_int_equal(f.calls, 0);
    d = decide_simple(&who, POLICY_SEARCH, "Practitioner", NULL, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_PERMIT);
    /* An empty link is no link: a "" Practitioner must match no CareTeam. */
    who.role = AUTH_ROLE_NURSE;
    who.practitioner = "";
    fake_facts any = { .relationships = { { "", PATIENT } } };
    d = decide_simple(&who, POLICY_READ, "Observation", PATIENT, NULL, &any, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 403);
    assert_int_equal(any.calls, 0);
}

static void test_malformed_requests(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_SERVICE);
    who.scopes = "system/*.cruds";
    policy_target ok = { "Observation", PATIENT };
    policy_target no_type = { NULL, PATIENT };
    policy_target empty_type = { "", PATIENT };
    policy_target empty_patient = { "Observation", "" };
    const policy_target *bad[] = { &no_type, &empty_type, &empty_patient };
    policy_decision d;
    mv_err err = {0};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(policy_decide(NULL, &who, POLICY_READ, bad[i], NULL,
                                       NULL, NOW_US, &d, &err), -1);
        assert_int_equal(d.effect, POLICY_DENY);
        assert_int_equal(err.code, MV_E_INVALID);
    }
    assert_int_equal(policy_decide(NULL, NULL, POLICY_READ, &ok, NULL, NULL,
                                   NOW_US, &d, &err), -1);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(policy_decide(NULL, &who, (policy_action)99, &ok, NULL,
                                   NULL, NOW_US, &d, &err), -1);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(policy_decide(NULL, &who, POLICY_READ, &ok, NULL, NULL,
                                   NOW_US, NULL, &err), -1);
    policy_config zero = { 0, 10 };
    assert_int_equal(policy_decide(&zero, &who, POLICY_READ, &ok, NULL, NULL,
                                   NOW_US, &d, &err), -1);
    who.role = (auth_role)42;
    assert_int_equal(policy_decide(NULL, &who, POLICY_READ, &ok, NULL, NULL,
                                   NOW_US, &d, &err), 0);
    assert_int_equal(d.effect, POLICY_DENY);
    /* The well-formed control: permitted. */
    who.role = AUTH_ROLE_SERVICE;
    assert_int_equal(policy_decide(NULL, &who, POLICY_READ, &ok, NULL, NULL,
                                   NOW_US, &d, &err), 0);
    assert_int_equal(d.effect, POLICY_PERMIT);
}

/* ---- Scopes ----------------------------------------------------------------- */

static void test_scope_grammar(void **state)
{
    (void)state;
    const char *valid[] = {
        "system/Observation.c", "system/*.rs", "system/Patient.cruds",
        "user/Observation.r", "patient/*.rs", "  system/Patient.r   system/Observation.s ",
        "system/Observation.d", "system/Patient.cd", "system/Observation2.r",
    };
    const char *invalid[] = {
        NULL, "", "   ", "system/Observation.rc", "system/Observation.",
        "system/Observation.x", "system/Observation.read", "system/.r",
        "sys/Observation.r", "system/Observation", "system/Observation.rr",
        "system/Observation.r?category=vital-signs", "system/observation.r",
        "System/Observation.r", "system/Obs-ervation.r", "system/**.r",
        "system/*.*", "system/Patient.r openid", "system/Patient.r\tsystem/Observation.r",
        "system/Patient.r system/Observation.rx", "launch/patient",
        "system/Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.r",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        if (!policy_scopes_valid(valid[i]))
            print_message("should be valid: %s\n", valid[i]);
        assert_true(policy_scopes_valid(valid[i]));
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        if (policy_scopes_valid(invalid[i]))
            print_message("should be invalid: %s\n", invalid[i]);
        assert_false(policy_scopes_valid(invalid[i]));
        assert_false(policy_scope_allows(invalid[i], "Observation", POLICY_READ));
    }
}

static void test_scope_allows(void **state)
{
    (void)state;
    /* Each letter grants exactly its actions. */
    const struct { const char *scope; const char *granted; } letters[] = {
        /*                          R V S H C U D E */
        { "system/Observation.c",  "00001000" },
        { "system/Observation.r",  "11010000" },
        { "system/Observation.u",  "00000100" },
        { "system/Observation.d",  "00000010" },
        { "system/Observation.s",  "00100000" },
        { "system/Observation.rs", "11110000" },
        { "system/*.r",            "11010001" },
        { "user/Observation.cruds", "00000000" },
        { "patient/*.cruds",        "00000000" },
        { "system/Observations.cruds", "00000000" },
        { "system/Observatio.cruds",   "00000000" },
    };
    for (size_t i = 0; i < sizeof letters / sizeof letters[0]; i++)
        for (int a = 0; a < POLICY_ACTION_COUNT; a++) {
            int got = policy_scope_allows(letters[i].scope, "Observation",
                                          (policy_action)a);
            if (got != (letters[i].granted[a] == '1'))
                print_message("%s action %d: got %d\n", letters[i].scope, a, got);
            assert_int_equal(got, letters[i].granted[a] == '1');
        }
    /* Wildcard covers every type; the type is case-sensitive. */
    assert_true(policy_scope_allows("system/*.c", "Condition", POLICY_CREATE));
    assert_false(policy_scope_allows("system/Observation.r", "observation", POLICY_READ));
    assert_false(policy_scope_allows("system/Observation.r", NULL, POLICY_READ));
    assert_false(policy_scope_allows("system/Observation.r", "", POLICY_READ));
    /* One bad token poisons the whole string. */
    assert_false(policy_scope_allows("system/Observation.r system/Patient.read",
                                     "Observation", POLICY_READ));
}

static void test_service_scopes_in_decisions(void **state)
{
    (void)state;
    policy_subject who = subject(AUTH_ROLE_SERVICE);
    fake_facts f = {0};
    who.scopes = "system/*.rs";
    policy_decision d = decide_simple(&who, POLICY_SEARCH, "Observation", NULL,
                                      NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_PERMIT);           /* whole system */
    d = decide_simple(&who, POLICY_EVERYTHING, "Patient", PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_PERMIT);
    d = decide_simple(&who, POLICY_CREATE, "Observation", PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(d.status, 403);
    d = decide_simple(&who, POLICY_READ, "AuditEvent", NULL, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    who.scopes = "user/*.cruds patient/*.cruds";
    d = decide_simple(&who, POLICY_READ, "Observation", PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    who.scopes = NULL;
    d = decide_simple(&who, POLICY_READ, "Observation", PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
    assert_int_equal(f.calls, 0);
}

static void test_type_tables(void **state)
{
    (void)state;
    assert_true(policy_is_directory_type("Practitioner"));
    assert_true(policy_is_directory_type("PractitionerRole"));
    assert_true(policy_is_directory_type("Organization"));
    assert_true(policy_is_directory_type("Location"));
    assert_false(policy_is_directory_type("Patient"));
    assert_false(policy_is_directory_type("practitioner"));
    assert_false(policy_is_directory_type(""));
    assert_false(policy_is_directory_type(NULL));
    assert_true(policy_is_definition_type("Medication"));
    assert_true(policy_is_definition_type("ValueSet"));
    assert_false(policy_is_definition_type("MedicationRequest"));
    assert_false(policy_is_definition_type(NULL));
    /* A directory type placed in a patient compartment is patient data. */
    policy_subject admin = subject(AUTH_ROLE_ADMIN);
    fake_facts f = {0};
    policy_decision d = decide_simple(&admin, POLICY_READ, "Practitioner",
                                      PATIENT, NULL, &f, 0, NULL);
    assert_int_equal(d.effect, POLICY_DENY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_clinician),
        cmocka_unit_test(test_matrix_nurse),
        cmocka_unit_test(test_matrix_admin),
        cmocka_unit_test(test_matrix_security),
        cmocka_unit_test(test_matrix_patient),
        cmocka_unit_test(test_matrix_service),
        cmocka_unit_test(test_admin_security_no_clinical_data),
        cmocka_unit_test(test_no_relationship_no_btg_no_access),
        cmocka_unit_test(test_patient_gets_404_outside_own_compartment),
        cmocka_unit_test(test_delete_hides_existence),
        cmocka_unit_test(test_nurse_no_medication_request_writes),
        cmocka_unit_test(test_fact_errors_deny),
        cmocka_unit_test(test_btg_flags),
        cmocka_unit_test(test_btg_grant_never_deletes),
        cmocka_unit_test(test_btg_reason_length),
        cmocka_unit_test(test_no_practitioner_link),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_scope_grammar),
        cmocka_unit_test(test_scope_allows),
        cmocka_unit_test(test_service_scopes_in_decisions),
        cmocka_unit_test(test_type_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
