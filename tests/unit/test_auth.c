/*
 * test_auth.c -- accounts, password policy, TOTP and recovery codes, login
 * (with its throttles and lockout), sessions and their revocation, against
 * a real store and audit trail.  TOTP codes are computed here with liboath's
 * generator from the enrollment secret; the e2e tests use Debian's oathtool
 * as an independent implementation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <liboath/oath.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "auth/auth_internal.h"
#include "crypto/crypto.h"
#include "store/store.h"
#include "testutil.h"

#define PW_ALICE "Tangerine orbit whispers beneath 47 crooked lanterns"
#define PW_NEW   "Quiet harbour ferries 12 violet umbrellas home"
#define SRC      "192.0.2.10"

typedef struct fixture {
    char *tmp, *dir, *key;
    mv_store *s;
    audit_trail *t;
    auth *a;
} fixture;

static auth_config fast_config(void)
{
    auth_config c = auth_default_config();
    c.delay_base_us = 1000;
    c.delay_max_us = 5000;
    return c;
}

static void reopen(fixture *f, const auth_config *cfg)
{
    mv_err err;
    auth_close(f->a);
    f->a = NULL;
    if (auth_open(f->s, f->t, cfg, &f->a, &err) != 0)
        fail_msg("auth_open: %s", err.msg);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mv_err err;
    assert_int_equal(crypto_init(&err), 0);
    assert_int_equal(oath_init(), OATH_OK);
    f->tmp = tu_mkdtemp();
    f->dir = tu_path(f->tmp, "data");
    f->key = tu_path(f->tmp, "store.key");
    assert_int_equal(crypto_keyfile_create(f->key, &err), 0);
    store_unlock u = { .key_file = f->key };
    assert_int_equal(store_create(f->dir, &u, &f->s, &err), 0);
    assert_int_equal(audit_open(f->s, NULL, &f->t, &err), 0);
    auth_config c = fast_config();
    reopen(f, &c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    auth_close(f->a);
    audit_close(f->t, NULL);
    store_close(f->s);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->key);
    free(f);
    return 0;
}

/* ---- Helpers ------------------------------------------------------------------ */

/* Longer than delay_max: the per-username delay has passed. */
static void settle(void)
{
    usleep(20000);
}

/* Keep a test's codes inside one TOTP step: wait when the step ends soon. */
static void step_margin(void)
{
    while (time(NULL) % 30 >= 22)
        sleep(1);
}

static void totp_at(const char *b32, int offset_s, char code[8])
{
    char *secret = NULL;
    size_t len = 0;
    assert_int_equal(oath_base32_decode(b32, strlen(b32), &secret, &len), OATH_OK);
    assert_int_equal(oath_totp_generate(secret, len, time(NULL) + offset_s, 30, 0,
                                        6, code), OATH_OK);
    free(secret);
}

static void create(fixture *f, const char *name, auth_role role,
                   const char *pw, auth_enrollment *e)
{
    auth_new_account spec = { .username = name, .role = role };
    if (role == AUTH_ROLE_SERVICE)
        spec.scopes = "system/Patient.rs";
    mv_err err;
    if (auth_account_create(f->a, &spec, pw, strlen(pw), "cli:test", e, &err) != 0)
        fail_msg("create %s: %s", name, err.msg);
}

static auth_result login_from(fixture *f, const char *name, const char *pw,
                              const char *totp, const char *recovery,
                              const char *source, auth_session_info *out,
                              int64_t *retry)
{
    auth_login_request req = {
        .username = name, .password = pw, .password_len = strlen(pw),
        .totp = totp, .recovery_code = recovery, .source = source,
        .request_id = "req-1",
    };
    auth_session_info tmp;
    int64_t r;
    mv_err err;
    return auth_login(f->a, &req, out ? out : &tmp, retry ? retry : &r, &err);
}

static auth_result login(fixture *f, const char *name, const char *pw,
                         const char *totp, auth_session_info *out)
{
    return login_from(f, name, pw, totp, NULL, SRC, out, NULL);
}

/* Log alice in with the code of now + offset. */
static void login_ok(fixture *f, const auth_enrollment *e, int offset,
                     auth_session_info *out)
{
    char code[8];
    totp_at(e->secret_b32, offset, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, out), AUTH_OK);
}

static auth_result check(fixture *f, const char *token, auth_session_info *out)
{
    auth_session_info tmp;
    mv_err err;
    return auth_check(f->a, token, SRC, out ? out : &tmp, &err);
}

/* Audit trail inspection. */
typedef struct scan {
    const char *needles[4];
    int leaks;
    const char *action, *outcome, *actor_prefix;
    int matches;
} scan;

static int scan_row(const store_audit_row *row, void *ctx)
{
    scan *sc = ctx;
    const char *fields[] = { row->actor, row->action, row->outcome,
                             row->resources, row->patient, row->source,
                             row->session, row->purpose, row->request_id };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (size_t k = 0; k < 4 && sc->needles[k]; k++)
            if (fields[i] && strstr(fields[i], sc->needles[k]))
                sc->leaks++;
    if (sc->action && strcmp(row->action, sc->action) == 0 &&
        (!sc->outcome || strcmp(row->outcome, sc->outcome) == 0) &&
        (!sc->actor_prefix ||
         strncmp(row->actor, sc->actor_prefix, strlen(sc->actor_prefix)) == 0))
        sc->matches++;
    return 0;
}

static int count_events(fixture *f, const char *action, const char *outcome,
                        const char *actor_prefix)
{
    scan sc = { .action = action, .outcome = outcome,
                .actor_prefix = actor_prefix };
    mv_err err;
    assert_int_equal(store_audit_scan(f->s, 1, 0, scan_row, &sc, &err), 0);
    return sc.matches;
}

/* ---- Accounts --------------------------------------------------------------- */

static void test_create_get_list(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    auth_new_account carol = { .username = "Carol.D", .role = AUTH_ROLE_CLINICIAN,
                               .practitioner = "pr-17" };
    assert_int_equal(auth_account_create(f->a, &carol, PW_ALICE, strlen(PW_ALICE),
                                         "cli:test", &e, &err), 0);
    assert_true(strncmp(e.otpauth_uri, "otpauth://totp/medvault:carol.d?secret=",
                        39) == 0);
    assert_non_null(strstr(e.otpauth_uri, e.secret_b32));
    assert_non_null(strstr(e.otpauth_uri, "&issuer=medvault&algorithm=SHA1&digits=6&period=30"));
    assert_int_equal(strlen(e.secret_b32), 32);
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++) {
        assert_int_equal(strlen(e.recovery[i]), 19);
        assert_true(e.recovery[i][4] == '-' && e.recovery[i][9] == '-' &&
                    e.recovery[i][14] == '-');
        assert_int_equal(strspn(e.recovery[i], "0123456789abcdefghjkmnpqrstvwxyz-"), 19);
    }
    create(f, "bob", AUTH_ROLE_NURSE, PW_ALICE, &e);
    auth_new_account svc = { .username = "etl", .role = AUTH_ROLE_SERVICE,
                             .scopes = "system/Patient.rs system/*.r" };
    assert_int_equal(auth_account_create(f->a, &svc, PW_ALICE, strlen(PW_ALICE),
                                         "cli:test", &e, &err), 0);

    auth_account acc;
    assert_int_equal(auth_account_get(f->a, "CAROL.d", &acc, &err), 0);
    assert_string_equal(acc.username, "carol.d");
    assert_int_equal(acc.role, AUTH_ROLE_CLINICIAN);
    assert_string_equal(acc.practitioner, "pr-17");
    assert_int_equal(acc.recovery_left, AUTH_RECOVERY_CODES);
    assert_int_equal(acc.locked, 0);
    assert_int_equal(strlen(acc.id), 32);
    assert_true(acc.created_us > 0);
    assert_int_equal(auth_account_get(f->a, "nobody", &acc, &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);

    auth_account *all;
    size_t n;
    assert_int_equal(auth_account_list(f->a, &all, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(all[0].username, "bob");
    assert_string_equal(all[1].username, "carol.d");
    assert_string_equal(all[2].username, "etl");
    assert_string_equal(all[2].scopes, "system/Patient.rs system/*.r");
    free(all);
    assert_int_equal(count_events(f, "account.create", "success", "cli:test"), 3);
    assert_string_equal(auth_role_name(AUTH_ROLE_SECURITY), "security");
    auth_role r;
    assert_int_equal(auth_role_parse("patient", &r), 0);
    assert_int_equal(r, AUTH_ROLE_PATIENT);
    assert_int_equal(auth_role_parse("root", &r), -1);
}

static void test_duplicate_username(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_ADMIN, PW_ALICE, &e);
    auth_new_account again = { .username = "ALICE", .role = AUTH_ROLE_NURSE };
    assert_int_equal(auth_account_create(f->a, &again, PW_NEW, strlen(PW_NEW),
                                         "cli:test", &e, &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    assert_int_equal(e.secret_b32[0], '\0');   /* wiped on failure */
}

static void expect_invalid(fixture *f, const char *name, auth_role role,
                           const char *practitioner, const char *patient,
                           const char *scopes)
{
    auth_new_account spec = { name, role, practitioner, patient, scopes, NULL, NULL };
    auth_enrollment e;
    mv_err err;
    int rc = auth_account_create(f->a, &spec, PW_ALICE, strlen(PW_ALICE),
                                 "cli:test", &e, &err);
    if (rc != -1 || err.code != MV_E_INVALID)
        fail_msg("accepted %s / %s / %s / %s", name, practitioner ? practitioner : "-",
                 patient ? patient : "-", scopes ? scopes : "-");
}

static void test_invalid_accounts(void **state)
{
    fixture *f = *state;
    char longname[80];
    memset(longname, 'a', 70);
    longname[70] = '\0';
    expect_invalid(f, "ab", AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, "has space", AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, "a@example", AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, "élodie", AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, longname, AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, NULL, AUTH_ROLE_ADMIN, NULL, NULL, NULL);
    expect_invalid(f, "okname", (auth_role)42, NULL, NULL, NULL);
    expect_invalid(f, "okname", AUTH_ROLE_ADMIN, "pr-1", NULL, NULL);
    expect_invalid(f, "okname", AUTH_ROLE_PATIENT, "pr-1", NULL, NULL);
    expect_invalid(f, "okname", AUTH_ROLE_CLINICIAN, NULL, "p1", NULL);
    expect_invalid(f, "okname", AUTH_ROLE_CLINICIAN, "bad id!", NULL, NULL);
    expect_invalid(f, "okname", AUTH_ROLE_CLINICIAN, NULL, NULL, "system/Patient.r");
    expect_invalid(f, "okname", AUTH_ROLE_SERVICE, NULL, NULL, NULL);
    expect_invalid(f, "okname", AUTH_ROLE_SERVICE, NULL, NULL, "");
    expect_invalid(f, "okname", AUTH_ROLE_SERVICE, "pr-1", NULL, "system/Patient.r");
    const char *bad_scopes[] = {
        "system/Patient", "admin/Patient.r", "system/patient.r", "system/Patient.x",
        "system/Patient.rc", "system/Patient.rr", "system/.r", "Patient.r",
        "system/Patient.r bogus", "system/Patient.read", "system/Pat1ent.r",
    };
    for (size_t i = 0; i < sizeof bad_scopes / sizeof bad_scopes[0]; i++)
        expect_invalid(f, "okname", AUTH_ROLE_SERVICE, NULL, NULL, bad_scopes[i]);

    auth_new_account good = { .username = "ok.service_1-x", .role = AUTH_ROLE_SERVICE,
                              .scopes = "patient/Observation.rs user/*.cruds system/Encounter.c" };
    auth_enrollment e;
    mv_err err;
    assert_int_equal(auth_account_create(f->a, &good, PW_ALICE, strlen(PW_ALICE),
                                         "cli:test", &e, &err), 0);
    auth_new_account pat = { .username = "pat", .role = AUTH_ROLE_PATIENT,
                             .patient = "p-123" };
    assert_int_equal(auth_account_create(f->a, &pat, PW_ALICE, strlen(PW_ALICE),
                                         "cli:test", &e, &err), 0);
}

static void expect_weak(const char *user, const char *pw, size_t len)
{
    mv_err err;
    mv_err_clear(&err);
    if (auth_password_acceptable(user, pw, len, &err) != -1)
        fail_msg("accepted weak password %s", pw);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_true(strncmp(err.msg, "password refused", 16) == 0);
    assert_null(strstr(err.msg, pw));
}

static void test_password_policy(void **state)
{
    fixture *f = *state;
    const char *weak[] = {
        "Sh0rt!pass", "password1234", "letmeinplease", "monkeymonkey12",
        "qwertyuiopasdf", "xAlice-Secure-Harbor-93",
    };
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        expect_weak("alice", weak[i], strlen(weak[i]));
    /* 11 characters in 22 bytes: counted as characters */
    expect_weak("alice", "ééééééééééé", strlen("ééééééééééé"));
    static char huge[1100];
    memset(huge, 'x', sizeof huge - 1);
    expect_weak("alice", huge, sizeof huge - 1);
    expect_weak("alice", "with\0nul byte inside it", 23);

    mv_err err;
    assert_int_equal(auth_password_acceptable("alice", PW_ALICE, strlen(PW_ALICE), &err), 0);
    const char *cyr = "широкая электрификация южных губерний";
    assert_int_equal(auth_password_acceptable("alice", cyr, strlen(cyr), &err), 0);
    /* the policy applies to creation too */
    auth_new_account spec = { .username = "alice", .role = AUTH_ROLE_ADMIN };
    auth_enrollment e;
    assert_int_equal(auth_account_create(f->a, &spec, "password1234", 12,
                                         "cli:test", &e, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_null(strstr(err.msg, "password1234"));
}

/* ---- Login ------------------------------------------------------------------- */

static void test_login_success(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(strlen(s.token), 43);
    assert_int_equal(strspn(s.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_"), 43);
    assert_int_equal(s.expires_in_s, 15 * 60);
    assert_string_equal(s.account.username, "alice");
    assert_string_equal(s.session.account, s.account.id);
    assert_string_equal(s.session.source, SRC);
    assert_int_equal(s.session.revoked, 0);
    assert_true(s.session.created_us > 0);

    auth_session_info c;
    assert_int_equal(check(f, s.token, &c), AUTH_OK);
    assert_string_equal(c.account.id, s.account.id);
    assert_string_equal(c.token, "");
    assert_true(c.expires_in_s > 0);
    assert_true(auth_mfa_fresh(f->a, &c));
    assert_int_equal(count_events(f, "auth.login", "success", "user:"), 1);

    /* the session reference in the trail is not the token */
    scan sc = { .needles = { s.token } };
    mv_err err;
    assert_int_equal(store_audit_scan(f->s, 1, 0, scan_row, &sc, &err), 0);
    assert_int_equal(sc.leaks, 0);
}

static void test_login_failures_look_alike(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    char code[8], wrong[8];
    totp_at(e.secret_b32, 0, code);
    snprintf(wrong, sizeof wrong, "%06d", (atoi(code) + 1) % 1000000);

    const char *bad_pw = "Wrong guess for the harbour 99";
    const char *typed = "Hunter2-is-my-Password";   /* a password typed as a name */
    assert_int_equal(login(f, "alice", bad_pw, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, wrong, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, NULL, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, typed, bad_pw, code, NULL), AUTH_DENIED);
    settle();

    assert_int_equal(count_events(f, "auth.login", "failure: bad credentials", "user:"), 1);
    assert_int_equal(count_events(f, "auth.login",
                                  "failure: password correct, second factor wrong",
                                  "user:"), 2);
    assert_int_equal(count_events(f, "auth.login", "failure: bad credentials",
                                  "anonymous"), 1);
    scan sc = { .needles = { bad_pw, PW_ALICE, typed, "hunter2-is-my-password" } };
    mv_err err;
    assert_int_equal(store_audit_scan(f->s, 1, 0, scan_row, &sc, &err), 0);
    assert_int_equal(sc.leaks, 0);

    auth_account acc;
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    assert_int_equal(acc.failed_logins, 3);
    login_ok(f, &e, 0, NULL);   /* success resets the counter */
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    assert_int_equal(acc.failed_logins, 0);
}

static void test_totp_replay_refused(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_OK);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    /* an earlier step than the one used is refused too */
    totp_at(e.secret_b32, -30, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
}

static void test_totp_window(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    char code[8];
    totp_at(e.secret_b32, 60, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    totp_at(e.secret_b32, -60, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, "12345", NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, "abcdef", NULL), AUTH_DENIED);
    settle();
    login_ok(f, &e, -30, NULL);
    login_ok(f, &e, 30, NULL);
}

static void test_recovery_code_single_use(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    /* case and dashes do not matter */
    char typed[24];
    size_t n = 0;
    for (const char *p = e.recovery[3]; *p; p++)
        if (*p != '-')
            typed[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    typed[n] = '\0';
    auth_session_info s;
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, typed, SRC, &s, NULL),
                     AUTH_OK);
    assert_int_equal(s.account.recovery_left, AUTH_RECOVERY_CODES - 1);
    settle();
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, e.recovery[3], SRC,
                                NULL, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, "0000-0000-0000-0000",
                                SRC, NULL, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, e.recovery[4], SRC,
                                &s, NULL), AUTH_OK);
    assert_int_equal(s.account.recovery_left, AUTH_RECOVERY_CODES - 2);
    assert_int_equal(count_events(f, "auth.login", "success: recovery code used",
                                  "user:"), 2);
}

static int64_t closed_until(fixture *f, const char *name)
{
    auth_account acc;
    mv_err err;
    assert_int_equal(auth_account_get(f->a, name, &acc, &err), 0);
    assert_int_equal(acc.locked, 0);                 /* never the human lock */
    return acc.password_locked_until_us;
}

/* Wrong passwords close the password path for lock_time: the right password
 * is then refused like a wrong one, live sessions are kept, a restart
 * changes nothing, failures while it is closed do not extend it, and it
 * opens by itself (or when a person unlocks). */
static void test_failures_close_only_the_password_path(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.lock_time_us = 1500000;
    reopen(f, &c);
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info before;
    login_ok(f, &e, -30, &before);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(login(f, "alice", "Not the right one at all 1", NULL, NULL),
                         AUTH_DENIED);
        settle();
    }
    int64_t until = closed_until(f, "alice");
    assert_true(until > mv_now_us() && until <= mv_now_us() + c.lock_time_us);
    assert_int_equal(count_events(f, "account.password-lock", NULL, "system"), 1);
    assert_int_equal(count_events(f, "account.lock", NULL, NULL), 0);
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    assert_int_equal(count_events(f, "auth.login", "failure: password correct while its "
                                  "path is closed", "user:"), 1);
    /* the session opened before is not revoked */
    assert_int_equal(check(f, before.token, NULL), AUTH_OK);

    /* a restart (the account record is persisted) changes nothing */
    reopen(f, &c);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", "Not the right one at all 2", NULL, NULL), AUTH_DENIED);
    assert_int_equal(closed_until(f, "alice"), until);      /* not extended */
    assert_int_equal(count_events(f, "account.password-lock", NULL, "system"), 1);

    /* it opens by itself after lock_time */
    while (mv_now_us() <= until)
        usleep(50000);
    settle();
    totp_at(e.secret_b32, 0, code);
    auth_session_info after;
    assert_int_equal(login(f, "alice", PW_ALICE, code, &after), AUTH_OK);
    auth_account acc;
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    assert_int_equal(acc.failed_logins, 0);

    /* closed again, and opened at once by a person */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(login(f, "alice", "Not the right one at all 3", NULL, NULL),
                         AUTH_DENIED);
        settle();
    }
    assert_true(closed_until(f, "alice") > mv_now_us());
    assert_int_equal(auth_account_unlock(f->a, "alice", "cli:security", &err), 0);
    assert_int_equal(closed_until(f, "alice"), 0);
    settle();
    login_ok(f, &e, 30, NULL);
    assert_int_equal(count_events(f, "account.unlock", "success", "cli:security"), 1);
}

static void test_admin_lock(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, -30, &s);
    assert_int_equal(auth_account_lock(f->a, "alice", "incident 42", "cli:security",
                                       &err), 0);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
    /* both factors right: the lock is told */
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, e.recovery[0], SRC,
                                NULL, NULL), AUTH_LOCKED);
    auth_account acc;
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    assert_string_equal(acc.lock_reason, "incident 42");
    assert_int_equal(acc.recovery_left, AUTH_RECOVERY_CODES);   /* not spent */
    settle();
    /* without both factors it is not: a wrong password or a wrong code is
     * the generic refusal, as for any other account */
    assert_int_equal(login(f, "alice", "Not the right one at all 1", "123456", NULL),
                     AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, "000000", NULL), AUTH_DENIED);
    assert_int_equal(auth_account_lock(f->a, "nobody", NULL, "cli:security", &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
}

static void test_throttle_immediate_retry(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.delay_base_us = 2000000;
    c.delay_max_us = 10000000;
    reopen(f, &c);
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", "Not the right one at all 1", code, NULL),
                     AUTH_DENIED);
    int64_t retry = 0;
    assert_int_equal(login_from(f, "alice", PW_ALICE, code, NULL, SRC, NULL, &retry),
                     AUTH_THROTTLED);
    assert_true(retry > 0 && retry <= 2);
    /* the same for a username that does not exist */
    assert_int_equal(login(f, "ghost", "Not the right one at all 1", code, NULL),
                     AUTH_DENIED);
    retry = 0;
    assert_int_equal(login_from(f, "ghost", PW_ALICE, code, NULL, SRC, NULL, &retry),
                     AUTH_THROTTLED);
    assert_true(retry > 0);
    assert_int_equal(count_events(f, "auth.login", "denied: throttled", "user:"), 1);
    assert_int_equal(count_events(f, "auth.login", "denied: throttled", "anonymous"), 1);
}

static void test_spraying_throttles_the_source(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.source_max_failures = 6;
    reopen(f, &c);
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "user%d", i);
        assert_int_equal(login_from(f, name, "Spring2024 is here now!", "000000",
                                    NULL, "198.51.100.7", NULL, NULL), AUTH_DENIED);
    }
    char code[8];
    totp_at(e.secret_b32, 0, code);
    int64_t retry = 0;
    assert_int_equal(login_from(f, "alice", PW_ALICE, code, NULL, "198.51.100.7",
                                NULL, &retry), AUTH_THROTTLED);
    assert_true(retry > 0 && retry <= 600);
    assert_int_equal(login_from(f, "alice", PW_ALICE, code, NULL, "203.0.113.5",
                                NULL, NULL), AUTH_OK);
}

/* A known name whose password path is closed and a name that does not
 * exist answer alike, before and after a restart: the answer to five wrong
 * passwords then the right one never tells which accounts exist. */
static void test_known_and_unknown_names_alike(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    const char *names[] = { "alice", "ghost" };
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 5; i++) {
            assert_int_equal(login(f, names[k], "Not the right one at all 1",
                                   "123456", NULL), AUTH_DENIED);
            settle();
        }
        assert_int_equal(login(f, names[k], PW_ALICE, "123456", NULL), AUTH_DENIED);
        settle();
    }
    auth_config c = fast_config();
    reopen(f, &c);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(login(f, names[k], PW_ALICE, "123456", NULL), AUTH_DENIED);
        settle();
    }
    assert_int_equal(count_events(f, "auth.login", "denied: locked", NULL), 0);
}

static int64_t timed_login(fixture *f, const char *name)
{
    int64_t t0 = mv_now_us();
    assert_int_equal(login(f, name, "Not the right one at all 1", "123456", NULL),
                     AUTH_DENIED);
    int64_t dt = mv_now_us() - t0;
    settle();
    return dt;
}

/* An unknown username costs the same Argon2id work as a wrong password. */
static void test_unknown_user_costs_the_same(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    int64_t known = INT64_MAX, unknown = INT64_MAX;
    for (int i = 0; i < 3; i++) {
        char ghost[32];
        snprintf(ghost, sizeof ghost, "ghost%d", i);
        int64_t k = timed_login(f, "alice"), u = timed_login(f, ghost);
        known = k < known ? k : known;
        unknown = u < unknown ? u : unknown;
    }
    print_message("wrong password %lld us, unknown user %lld us\n",
                  (long long)known, (long long)unknown);
    assert_true(unknown * 2 > known);
}

/* ---- Sessions ---------------------------------------------------------------- */

static void test_check_tokens(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(check(f, s.token, NULL), AUTH_OK);
    char other[AUTH_TOKEN_MAX];
    memcpy(other, s.token, sizeof other);
    other[0] = other[0] == 'A' ? 'B' : 'A';
    assert_int_equal(check(f, other, NULL), AUTH_DENIED);
    assert_int_equal(check(f, "", NULL), AUTH_DENIED);
    assert_int_equal(check(f, NULL, NULL), AUTH_DENIED);
    char huge[300];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(check(f, huge, NULL), AUTH_DENIED);
}

static void test_logout(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(auth_logout(f->a, s.token, SRC, "req-9", &err), AUTH_OK);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
    assert_int_equal(auth_logout(f->a, s.token, SRC, "req-9", &err), AUTH_DENIED);
    assert_int_equal(count_events(f, "auth.logout", "success", "user:"), 1);
}

static void test_revoke_sessions(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s1, s2;
    login_ok(f, &e, 0, &s1);
    login_ok(f, &e, 30, &s2);
    assert_int_equal(check(f, s1.token, NULL), AUTH_OK);
    size_t n = 0;
    assert_int_equal(auth_account_revoke_sessions(f->a, "alice", "cli:security", &n,
                                                  &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(check(f, s1.token, NULL), AUTH_DENIED);
    assert_int_equal(check(f, s2.token, NULL), AUTH_DENIED);
    assert_int_equal(count_events(f, "account.revoke-sessions", "success",
                                  "cli:security"), 1);
}

static void test_idle_expiry(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.idle_timeout_us = 1000;
    reopen(f, &c);
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    usleep(20000);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
}

static void test_absolute_expiry(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.absolute_timeout_us = 300000;
    reopen(f, &c);
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(check(f, s.token, NULL), AUTH_OK);
    usleep(150000);
    assert_int_equal(check(f, s.token, NULL), AUTH_OK);   /* activity ... */
    usleep(200000);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);   /* ... does not extend */
}

static void test_locked_account_session_denied(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(auth_account_lock(f->a, "alice", NULL, "cli:security", &err), 0);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
    assert_int_equal(auth_account_unlock(f->a, "alice", "cli:security", &err), 0);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);   /* still revoked */
}

static void test_step_up(void **state)
{
    fixture *f = *state;
    auth_config c = fast_config();
    c.step_up_valid_us = 200000;
    reopen(f, &c);
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s, now;
    login_ok(f, &e, -30, &s);
    assert_int_equal(check(f, s.token, &now), AUTH_OK);
    assert_true(auth_mfa_fresh(f->a, &now));
    usleep(300000);
    assert_int_equal(check(f, s.token, &now), AUTH_OK);
    assert_false(auth_mfa_fresh(f->a, &now));

    char code[8], wrong[8];
    totp_at(e.secret_b32, 0, code);
    snprintf(wrong, sizeof wrong, "%06d", (atoi(code) + 1) % 1000000);
    assert_int_equal(auth_step_up(f->a, s.token, wrong, SRC, "req-2", &err), AUTH_DENIED);
    settle();
    assert_int_equal(auth_step_up(f->a, s.token, code, SRC, "req-3", &err), AUTH_OK);
    assert_int_equal(check(f, s.token, &now), AUTH_OK);
    assert_true(auth_mfa_fresh(f->a, &now));
    settle();
    assert_int_equal(auth_step_up(f->a, s.token, code, SRC, "req-4", &err),
                     AUTH_DENIED);   /* replay */
    assert_int_equal(auth_step_up(f->a, "not-a-token", code, SRC, "req-5", &err),
                     AUTH_DENIED);
    assert_int_equal(count_events(f, "auth.step-up", "success", "user:"), 1);
    assert_int_equal(count_events(f, "auth.step-up", "failure: second factor wrong",
                                  "user:"), 2);
}

static void test_reset_password(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, -30, &s);
    assert_int_equal(auth_account_reset_password(f->a, "alice", "short", 5,
                                                 "cli:security", &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_int_equal(check(f, s.token, NULL), AUTH_OK);   /* refused: no effect */
    assert_int_equal(auth_account_reset_password(f->a, "alice", PW_NEW, strlen(PW_NEW),
                                                 "cli:security", &err), 0);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login(f, "alice", PW_NEW, code, NULL), AUTH_OK);
    assert_int_equal(count_events(f, "account.reset-password", "success",
                                  "cli:security"), 1);
}

static void test_reset_mfa(void **state)
{
    fixture *f = *state;
    auth_enrollment e, fresh;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, -30, &s);
    assert_int_equal(auth_account_reset_mfa(f->a, "alice", "cli:security", &fresh,
                                            &err), 0);
    assert_string_not_equal(fresh.secret_b32, e.secret_b32);
    assert_string_not_equal(fresh.recovery[0], e.recovery[0]);
    assert_non_null(strstr(fresh.otpauth_uri, fresh.secret_b32));
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, e.recovery[1], SRC,
                                NULL, NULL), AUTH_DENIED);
    settle();
    totp_at(fresh.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, &s), AUTH_OK);
    assert_int_equal(s.account.recovery_left, AUTH_RECOVERY_CODES);
    assert_int_equal(count_events(f, "account.reset-mfa", "success", "cli:security"), 1);
}

/* ---- Two-person control: changes held aside ------------------------------------ */

static void test_pending_creation_opens_nothing(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    auth_new_account spec = { .username = "alice", .role = AUTH_ROLE_CLINICIAN,
                              .pending_request = "req-create-1" };
    assert_int_equal(auth_account_create(f->a, &spec, PW_ALICE, strlen(PW_ALICE),
                                         "user:admin1", &e, &err), 0);
    auth_account acct;
    assert_int_equal(auth_account_get(f->a, "alice", &acct, &err), 0);
    assert_string_equal(acct.pending, "create");
    assert_string_equal(acct.lineage[0], "user:admin1");
    assert_true(auth_account_inert(&acct));
    step_margin();
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_LOCKED);
    /* a wrong request id settles nothing */
    assert_int_equal(auth_account_settle(f->a, "alice", "req-other", 1, "user:sec1", &err), -1);
    assert_int_equal(err.code, MV_E_NOTFOUND);
    assert_int_equal(auth_account_settle(f->a, "alice", "req-create-1", 1, "user:sec1",
                                         &err), 0);
    assert_int_equal(auth_account_get(f->a, "alice", &acct, &err), 0);
    assert_string_equal(acct.pending, "");
    assert_string_equal(acct.lineage[1], "user:sec1");
    assert_true(auth_account_lineage_has(&acct, "user:admin1"));
    assert_true(auth_account_lineage_has(&acct, "user:sec1"));
    assert_false(auth_account_lineage_has(&acct, "user:nobody"));
    settle();
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_OK);
    assert_int_equal(count_events(f, "account.create", "pending", "user:admin1"), 1);
    assert_int_equal(count_events(f, "account.create", "approved", "user:sec1"), 1);
}

static void test_refused_creation_stays_locked(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    auth_new_account spec = { .username = "bob", .role = AUTH_ROLE_NURSE,
                              .pending_request = "req-2" };
    assert_int_equal(auth_account_create(f->a, &spec, PW_ALICE, strlen(PW_ALICE),
                                         "user:admin1", &e, &err), 0);
    assert_int_equal(auth_account_settle(f->a, "bob", "req-2", 0, "user:sec1", &err), 0);
    auth_account acct;
    assert_int_equal(auth_account_get(f->a, "bob", &acct, &err), 0);
    assert_string_equal(acct.pending, "refused");
    assert_true(auth_account_inert(&acct));
    /* no unlock, no new request opens it */
    assert_int_equal(auth_account_unlock(f->a, "bob", "user:admin1", &err), 0);
    assert_int_equal(auth_account_get(f->a, "bob", &acct, &err), 0);
    assert_true(auth_account_inert(&acct));
    assert_int_equal(auth_account_propose_password(f->a, "bob", PW_NEW, strlen(PW_NEW),
                                                   "req-3", "user:admin1", &err), -1);
    step_margin();
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "bob", PW_ALICE, code, NULL), AUTH_LOCKED);
    assert_int_equal(count_events(f, "account.create", "refused", "user:sec1"), 1);
}

static void test_relock_keeps_the_detectors_reason(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    assert_int_equal(auth_account_lock(f->a, "alice", "contained by the detector (alert x)",
                                       "system:detect", &err), 0);
    assert_int_equal(auth_account_lock(f->a, "alice", "locked by an administrator",
                                       "user:admin1", &err), 0);
    auth_account acct;
    assert_int_equal(auth_account_get(f->a, "alice", &acct, &err), 0);
    assert_string_equal(acct.lock_reason, "contained by the detector (alert x)");
}

static void test_proposed_password_waits(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, -30, &s);
    assert_int_equal(auth_account_propose_password(f->a, "alice", PW_NEW, strlen(PW_NEW),
                                                   "req-pw", "user:admin1", &err), 0);
    /* one pending change at a time */
    auth_enrollment other;
    assert_int_equal(auth_account_propose_mfa(f->a, "alice", "req-mfa", "user:admin1",
                                              &other, &err), -1);
    assert_int_equal(err.code, MV_E_EXISTS);
    assert_int_equal(check(f, s.token, NULL), AUTH_OK);      /* nothing changed yet */
    char code[8];
    totp_at(e.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_NEW, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(auth_account_settle(f->a, "alice", "req-pw", 1, "user:sec1", &err), 0);
    assert_int_equal(check(f, s.token, NULL), AUTH_DENIED);  /* sessions revoked */
    assert_int_equal(login(f, "alice", PW_NEW, code, NULL), AUTH_OK);
}

static void test_proposed_mfa_survives_a_reload(void **state)
{
    fixture *f = *state;
    auth_enrollment e, fresh;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    assert_int_equal(auth_account_propose_mfa(f->a, "alice", "req-mfa", "user:admin1",
                                              &fresh, &err), 0);
    /* the held-aside secret is stored (sealed) and read back intact */
    auth_close(f->a);
    auth_config cfg = fast_config();
    assert_int_equal(auth_open(f->s, f->t, &cfg, &f->a, &err), 0);
    step_margin();
    char code[8];
    totp_at(fresh.secret_b32, 0, code);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_DENIED);
    settle();
    assert_int_equal(auth_account_settle(f->a, "alice", "req-mfa", 1, "user:sec1", &err), 0);
    assert_int_equal(login(f, "alice", PW_ALICE, code, NULL), AUTH_OK);
}

static void test_no_secret_in_the_store_files(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    step_margin();
    auth_session_info s;
    login_ok(f, &e, 0, &s);
    assert_int_equal(login_from(f, "alice", PW_ALICE, NULL, e.recovery[0], SRC,
                                NULL, NULL), AUTH_OK);
    audit_close(f->t, NULL);   /* final checkpoint: everything on disk */
    mv_err err;
    assert_int_equal(audit_open(f->s, NULL, &f->t, &err), 0);
    reopen(f, NULL);

    /* control: what is stored in clear is found */
    assert_true(tu_tree_contains(f->dir, "auth.login", 10));
    assert_false(tu_tree_contains(f->dir, PW_ALICE, strlen(PW_ALICE)));
    assert_false(tu_tree_contains(f->dir, e.secret_b32, strlen(e.secret_b32)));
    char *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(oath_base32_decode(e.secret_b32, strlen(e.secret_b32), &raw,
                                        &raw_len), OATH_OK);
    assert_false(tu_tree_contains(f->dir, raw, raw_len));
    free(raw);
    assert_false(tu_tree_contains(f->dir, s.token, strlen(s.token)));
    assert_false(tu_tree_contains(f->dir, "alice", 5));   /* username blind-indexed */
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++) {
        char plain[20];
        size_t n = 0;
        for (const char *p = e.recovery[i]; *p; p++)
            if (*p != '-')
                plain[n++] = *p;
        plain[n] = '\0';
        assert_false(tu_tree_contains(f->dir, e.recovery[i], strlen(e.recovery[i])));
        assert_false(tu_tree_contains(f->dir, plain, n));
    }
}

/* ---- Internals: bounded throttle map, concurrency ---------------------------- */

static void test_throttle_map_is_bounded(void **state)
{
    (void)state;
    tmap *m = tmap_new(3, sizeof(int64_t));
    assert_non_null(m);
    unsigned char k[4][MV_HASH_BYTES];
    for (int i = 0; i < 4; i++) {
        memset(k[i], 0, MV_HASH_BYTES);
        k[i][0] = (unsigned char)(i * 16);   /* same bucket for some */
        k[i][31] = (unsigned char)i;
        int64_t *v = tmap_upsert(m, k[i]);
        assert_non_null(v);
        *v = i + 100;
        if (i == 1)
            assert_non_null(tmap_upsert(m, k[0]));   /* k0 becomes the newest */
    }
    assert_int_equal(tmap_count(m), 3);
    assert_null(tmap_find(m, k[1]));   /* the least recently updated went */
    assert_int_equal(*(int64_t *)tmap_find(m, k[0]), 100);
    assert_int_equal(*(int64_t *)tmap_find(m, k[3]), 103);
    tmap_remove(m, k[0]);
    assert_null(tmap_find(m, k[0]));
    assert_int_equal(tmap_count(m), 2);
    tmap_free(m);
}

typedef struct worker {
    fixture *f;
    int n;
    int ok;
} worker;

static void *worker_run(void *p)
{
    worker *w = p;
    char name[32], src[32];
    auth_enrollment e;
    snprintf(name, sizeof name, "worker%d", w->n);
    snprintf(src, sizeof src, "10.0.0.%d", w->n);
    auth_new_account spec = { .username = name, .role = AUTH_ROLE_NURSE };
    mv_err err;
    if (auth_account_create(w->f->a, &spec, PW_ALICE, strlen(PW_ALICE), "cli:test",
                            &e, &err) != 0)
        return NULL;
    int denied = login_from(w->f, name, "Not the right one at all 1", NULL, NULL,
                            src, NULL, NULL) == AUTH_DENIED;
    settle();
    auth_session_info s;
    int ok = login_from(w->f, name, PW_ALICE, NULL, e.recovery[0], src, &s,
                        NULL) == AUTH_OK;
    w->ok = denied && ok && check(w->f, s.token, NULL) == AUTH_OK;
    return NULL;
}

/* Concurrent changes to one account: none lost (optimistic concurrency). */
static int plan_count(acct_change *c, void *ctx, mv_err *err)
{
    (void)ctx;
    (void)err;
    c->rec.pub.failed_logins++;
    c->ev[0] = (audit_event){ .actor = c->actor, .action = "test.count",
                              .outcome = "success" };
    c->n_ev = 1;
    return 0;
}

typedef struct counter {
    fixture *f;
    const char *id;
    int failures;
} counter;

static void *counter_run(void *p)
{
    counter *c = p;
    for (int i = 0; i < 5; i++) {
        mv_err err;
        if (acct_commit(c->f->a, c->id, plan_count, NULL, &err) != 0)
            c->failures++;
    }
    return NULL;
}

static void test_concurrent_account_changes(void **state)
{
    fixture *f = *state;
    auth_enrollment e;
    mv_err err;
    create(f, "alice", AUTH_ROLE_CLINICIAN, PW_ALICE, &e);
    auth_account acc;
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    pthread_t th[3];
    counter c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (counter){ f, acc.id, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, counter_run, &c[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(auth_account_get(f->a, "alice", &acc, &err), 0);
    assert_int_equal(acc.failed_logins, 15);
    assert_int_equal(count_events(f, "test.count", "success", "user:"), 15);
}

static void test_concurrent_logins(void **state)
{
    fixture *f = *state;
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){ f, i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
    mv_err err;
    audit_report rep;
    assert_int_equal(audit_verify(f->s, NULL, 0, &rep, &err), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_get_list),
        T(test_duplicate_username),
        T(test_invalid_accounts),
        T(test_password_policy),
        T(test_login_success),
        T(test_login_failures_look_alike),
        T(test_totp_replay_refused),
        T(test_totp_window),
        T(test_recovery_code_single_use),
        T(test_failures_close_only_the_password_path),
        T(test_admin_lock),
        T(test_throttle_immediate_retry),
        T(test_spraying_throttles_the_source),
        T(test_known_and_unknown_names_alike),
        T(test_unknown_user_costs_the_same),
        T(test_check_tokens),
        T(test_logout),
        T(test_revoke_sessions),
        T(test_idle_expiry),
        T(test_absolute_expiry),
        T(test_locked_account_session_denied),
        T(test_step_up),
        T(test_reset_password),
        T(test_reset_mfa),
        T(test_pending_creation_opens_nothing),
        T(test_refused_creation_stays_locked),
        T(test_relock_keeps_the_detectors_reason),
        T(test_proposed_password_waits),
        T(test_proposed_mfa_survives_a_reload),
        T(test_no_secret_in_the_store_files),
        T(test_throttle_map_is_bounded),
        T(test_concurrent_logins),
        T(test_concurrent_account_changes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
