/*
 * auth.h -- who is calling: accounts, Argon2id passwords, TOTP second factor,
 * recovery codes, sessions, lockouts and throttling.
 *
 * Why it exists: the 2024 breach began with one account's stolen password.
 * Here a password alone opens nothing: every login needs a TOTP code (RFC
 * 6238, each time step usable once) or a single-use recovery code; sessions
 * are short-lived, stored only as token hashes, and revocable with effect on
 * the very next request; failures are throttled per account (growing delay,
 * then a lock only a human lifts) and per source address across accounts
 * (password spraying, credential stuffing).
 *
 * What it owns: accounts (sealed "_Account" records under the system key,
 * username blind-indexed, through store.h), sessions (store.h's sessions
 * table), the in-memory throttles, and the audit events of all of it.
 *
 * What it must never do: speak HTTP, decide access to clinical data
 * (policy/), put a password, TOTP code, token, secret or recovery code into
 * a log, an error message or the audit trail.  A login for an unknown user
 * does the same Argon2id work and returns the same result as a wrong
 * password, and the trail records it without the typed username (people
 * type passwords into username fields).
 *
 * Threads: one auth instance serves every server thread.
 */
#ifndef MV_AUTH_H
#define MV_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "../util/util.h"
#include "../store/store.h"
#include "../audit/audit.h"

typedef enum auth_role {
    AUTH_ROLE_CLINICIAN, AUTH_ROLE_NURSE, AUTH_ROLE_ADMIN, AUTH_ROLE_SECURITY,
    AUTH_ROLE_PATIENT, AUTH_ROLE_SERVICE
} auth_role;
const char *auth_role_name(auth_role r);                 /* "clinician", ... */
int auth_role_parse(const char *name, auth_role *out);   /* 0 ok, -1 unknown */

#define AUTH_NAME_MAX   65     /* username, practitioner/patient ids: 64 + NUL */
#define AUTH_SCOPES_MAX 512
#define AUTH_TOKEN_MAX  64     /* base64url of 32 random bytes, + NUL        */
#define AUTH_RECOVERY_CODES 10

/* An account as callers see it: no password hash, no TOTP secret. */
typedef struct auth_account {
    char id[AUTH_NAME_MAX];            /* random, stable                     */
    char username[AUTH_NAME_MAX];
    auth_role role;
    char practitioner[AUTH_NAME_MAX];  /* FHIR Practitioner id or ""          */
    char patient[AUTH_NAME_MAX];       /* FHIR Patient id or ""               */
    char department[AUTH_NAME_MAX];    /* "emergency", "radiology", ... or "":
                                          picks the detector's priors        */
    char scopes[AUTH_SCOPES_MAX];      /* service accounts: SMART v2 scopes   */
    int locked;                        /* by a person or the detector: only
                                          a person unlocks                    */
    char lock_reason[128];
    int failed_logins;                 /* consecutive                         */
    int64_t password_locked_until_us;  /* password failures: the password path
                                          alone is closed until then (0: open) */
    int recovery_left;                 /* unused recovery codes               */
    int64_t created_us;
    /* Two-person control: a change awaiting a second person's approval --
     * "create" (the account opens nothing until approved), "reset-password"
     * or "reset-mfa" (the new credential is held aside until approved) --
     * and the id of the approval request; "" when none; "refused" for an
     * account whose creation was refused or expired (inert for good). */
    char pending[24];
    char pending_request[AUTH_NAME_MAX];
    /* Lineage: [0] who created the account or last reset a credential of
     * it, [1] who approved that ("user:<id>", "cli:<operator>"), and when.
     * For AUTH_LINEAGE_DAYS the detector counts what the account reads
     * against them too, so that minting many small readers is one actor. */
    char lineage[2][AUTH_NAME_MAX + 8];
    int64_t lineage_since_us;
} auth_account;
#define AUTH_LINEAGE_DAYS 30

/* 1 when the account may not act: locked, or its creation not approved. */
int auth_account_inert(const auth_account *a);
/* 1 when actor ("user:<id>", "cli:...") is in a's lineage. */
int auth_account_lineage_has(const auth_account *a, const char *actor);

typedef struct auth_config {
    int64_t idle_timeout_us;       /* default 15 min                       */
    int64_t absolute_timeout_us;   /* default 12 h                         */
    int64_t step_up_valid_us;      /* a second factor counts as fresh for: 5 min */
    int lock_after;                /* consecutive failures; default 5       */
    int64_t lock_time_us;          /* ... then the password path is closed
                                      this long; default 15 min             */
    int64_t delay_base_us;         /* growing delay: base * 2^(failures-1)  */
    int64_t delay_max_us;          /*   capped here; default 250 ms .. 30 s */
    int source_max_failures;       /* failures from one address ...         */
    int64_t source_window_us;      /* ... in this window; default 20 / 10 min */
} auth_config;
auth_config auth_default_config(void);

typedef struct auth auth;

/* trail: where every event goes (borrowed; close auth first). */
int  auth_open(mv_store *s, audit_trail *trail, const auth_config *cfg,
               auth **out, mv_err *err);
void auth_close(auth *a);

/* ---- Accounts ---------------------------------------------------------------- */

typedef struct auth_new_account {
    const char *username;      /* 3-64 of [a-z0-9._-], lower-cased         */
    auth_role role;
    const char *practitioner;  /* only clinician / nurse                   */
    const char *patient;       /* only patient                             */
    const char *scopes;        /* only service; space-separated            */
    const char *department;    /* optional: 1-64 of [A-Za-z0-9._ -]        */
    const char *pending_request; /* when set: the id of the approval request
                                  the account awaits, and until it is
                                  approved it opens nothing               */
} auth_new_account;

/* What a person needs to set up their second factor: shown once. */
typedef struct auth_enrollment {
    char otpauth_uri[320];     /* otpauth://totp/medvault:NAME?secret=...  */
    char secret_b32[64];       /* base32 TOTP secret                       */
    char recovery[AUTH_RECOVERY_CODES][24];
} auth_enrollment;

/* Check a new password against NIST SP 800-63B: at least 12 characters,
 * any characters, no composition rules; refused when passwdqc finds it weak
 * or common, or when it contains the username.  MV_E_INVALID says why
 * without echoing it. */
int auth_password_acceptable(const char *username, const char *password,
                             size_t len, mv_err *err);

/* Create an account (MV_E_EXISTS for a taken username), with a new TOTP
 * secret and recovery codes returned in *enroll (the caller shows them once
 * and wipes them).  actor: who does it, for the trail. */
int auth_account_create(auth *a, const auth_new_account *spec,
                        const char *password, size_t len, const char *actor,
                        auth_enrollment *enroll, mv_err *err);
int auth_account_get(auth *a, const char *username, auth_account *out,
                     mv_err *err);                     /* MV_E_NOTFOUND */
/* The account with this id (for showing who an audit entry's actor is). */
int auth_account_get_id(auth *a, const char *id, auth_account *out, mv_err *err);
/* Every account, sorted by username; free *out with free(). */
int auth_account_list(auth *a, auth_account **out, size_t *n, mv_err *err);
/* How many accounts exist, from the store's rows alone (nothing opened). */
int auth_account_count(auth *a, size_t *n, mv_err *err);
int auth_account_lock(auth *a, const char *username, const char *reason,
                      const char *actor, mv_err *err);
/* Unlocking also clears the failure counter. */
int auth_account_unlock(auth *a, const char *username, const char *actor,
                        mv_err *err);
/* New password (checked as above); revokes the user's sessions. */
int auth_account_reset_password(auth *a, const char *username,
                                const char *password, size_t len,
                                const char *actor, mv_err *err);
/* New TOTP secret and recovery codes; revokes the user's sessions. */
int auth_account_reset_mfa(auth *a, const char *username, const char *actor,
                           auth_enrollment *enroll, mv_err *err);
/* Two-person control: the new password (checked as above) or a new second
 * factor (*enroll, shown once to the requester) is held aside on the
 * account under request_id; nothing changes for the account until
 * auth_account_settle().  MV_E_EXISTS when another change is pending. */
int auth_account_propose_password(auth *a, const char *username,
                                  const char *password, size_t len,
                                  const char *request_id, const char *actor,
                                  mv_err *err);
int auth_account_propose_mfa(auth *a, const char *username,
                             const char *request_id, const char *actor,
                             auth_enrollment *enroll, mv_err *err);
/* The second person's answer to the pending change request_id: approve (1)
 * puts it into effect (an approved reset revokes the user's sessions) and
 * records the approver in the lineage; refuse (0) drops it (a refused
 * creation leaves the account inert for good: pending "refused").  MV_E_NOTFOUND when the account has
 * no such pending change. */
int auth_account_settle(auth *a, const char *username, const char *request_id,
                        int approve, const char *actor, mv_err *err);

/* Revoke every session of the user; *n (may be NULL) gets how many. */
int auth_account_revoke_sessions(auth *a, const char *username,
                                 const char *actor, size_t *n, mv_err *err);

/* ---- Login and sessions ------------------------------------------------------ */

typedef enum auth_result {
    AUTH_OK = 0,
    AUTH_DENIED,       /* 401: one generic answer for every failure, a closed
                          password path included                             */
    AUTH_LOCKED,       /* 423: locked by a person or the detector; said only
                          to whoever proved the password and second factor   */
    AUTH_THROTTLED,    /* 429: too many failures; retry after *retry_after   */
    AUTH_ERROR         /* 500: err says what (storage, ...)                  */
} auth_result;

typedef struct auth_login_request {
    const char *username;
    const char *password;
    size_t password_len;
    const char *totp;            /* 6 digits, or NULL when recovery_code */
    const char *recovery_code;   /* or NULL                               */
    const char *source;          /* client address                        */
    const char *request_id;
} auth_login_request;

typedef struct auth_session_info {
    char token[AUTH_TOKEN_MAX];  /* only from auth_login: the caller sends it
                                    once and wipes it                     */
    int64_t expires_in_s;        /* until the idle timeout                */
    auth_account account;
    store_session session;
    /* A refused login, for the detector: the account id when the username
     * exists ("" otherwise), and 1 when its password was right (the second
     * factor was not: someone else knows the password). */
    char refused_account[AUTH_NAME_MAX];
    int refused_password_ok;
} auth_session_info;

/* Log in.  On AUTH_OK, *out has the new token.  On AUTH_THROTTLED,
 * *retry_after_s says when to try again.  Every outcome is audited; a
 * correct password with a wrong TOTP is its own event ("password known to
 * someone else"). */
auth_result auth_login(auth *a, const auth_login_request *req,
                       auth_session_info *out, int64_t *retry_after_s,
                       mv_err *err);

/* The session behind a bearer token, checked for revocation, idle and
 * absolute expiry, and a locked account: AUTH_OK or AUTH_DENIED.  Records
 * the activity (touch) at most once every few seconds per session. */
auth_result auth_check(auth *a, const char *token, const char *source,
                       auth_session_info *out, mv_err *err);

/* 1 when the session's last second-factor proof is fresher than
 * step_up_valid_us (for sensitive actions). */
int auth_mfa_fresh(const auth *a, const auth_session_info *s);

auth_result auth_logout(auth *a, const char *token, const char *source,
                        const char *request_id, mv_err *err);
/* A fresh TOTP code refreshes the session's second-factor time. */
auth_result auth_step_up(auth *a, const char *token, const char *totp,
                         const char *source, const char *request_id,
                         mv_err *err);

#endif /* MV_AUTH_H */
