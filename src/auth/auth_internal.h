/*
 * auth_internal.h -- what the files of auth/ share and nobody else sees: the
 * full account record (with its password hash and TOTP secret), the
 * read-modify-write loop every account change goes through, the TOTP and
 * recovery-code primitives, and the in-memory throttles.
 *
 * Why it exists: auth.h shows callers an account without its secrets; the
 * record below is the only shape in which the secrets exist in memory, and
 * every function that fills one must end with acct_wipe().
 */
#ifndef MV_AUTH_INTERNAL_H
#define MV_AUTH_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "../crypto/crypto.h"

#define ACCOUNT_TYPE        "_Account"
#define ACCOUNT_TERM        "username"
#define USERNAME_MIN        3
#define USERNAME_MAX        (AUTH_NAME_MAX - 1)   /* room for the NUL     */
#define PASSWORD_MAX_BYTES  1024
#define RECOVERY_HASH_HEX   (2 * MV_HASH_BYTES + 1)
#define TOTP_SECRET_BYTES   20
#define TOTP_B32_MAX        64
#define TOTP_STEP_S         30
#define TOTP_DIGITS         6
#define SESSION_REF_HEX     16     /* audit reference: 16 hex of the hash */
#define TOUCH_EVERY_US      (5 * 1000000LL)
#define UPDATE_ATTEMPTS     8      /* optimistic-concurrency retries      */
#define THROTTLE_MAX_ENTRIES 100000
#define ACTOR_MAX           (sizeof "user:" + AUTH_NAME_MAX)
#define RESOURCE_MAX        (sizeof ACCOUNT_TYPE "/" + AUTH_NAME_MAX)

/* ---- Account records (record.c) --------------------------------------------- */

/* An account as stored, secrets included.  Wipe with acct_wipe(). */
typedef struct acct_rec {
    auth_account pub;                 /* what callers may see              */
    char pw_hash[MV_PWHASH_MAX];      /* Argon2id PHC string               */
    char totp_b32[TOTP_B32_MAX];      /* TOTP secret, base32               */
    int64_t totp_last_step;           /* last accepted time step           */
    char recovery[AUTH_RECOVERY_CODES][RECOVERY_HASH_HEX];  /* unused codes */
    /* A reset awaiting approval (pub.pending): the credential held aside. */
    char pend_pw_hash[MV_PWHASH_MAX];
    char pend_totp_b32[TOTP_B32_MAX];
    char pend_recovery[AUTH_RECOVERY_CODES][RECOVERY_HASH_HEX];
    int64_t version;                  /* store version read; 0 = new       */
} acct_rec;

void acct_wipe(acct_rec *r);
/* Lower-case a typed username into out; MV_E_INVALID unless it is 3..63
 * characters of [a-z0-9._-]. */
int  acct_username_norm(const char *in, char out[AUTH_NAME_MAX], mv_err *err);
/* Load by id (MV_E_NOTFOUND when absent or deleted). */
int  acct_load_id(mv_store *s, const char *id, acct_rec *out, mv_err *err);
/* Find the id of a normalised username: 1 found, 0 not, -1 error. */
int  acct_find(mv_store *s, const char *username, char id[AUTH_NAME_MAX],
               mv_err *err);
/* Load by (typed) username; MV_E_NOTFOUND when there is none. */
int  acct_load_username(mv_store *s, const char *username, acct_rec *out,
                        mv_err *err);
/* Store r as a new version (if_version = r->version) inside t. */
int  acct_put(store_txn *t, const acct_rec *r, mv_err *err);
/* Copy text into a fixed buffer, cutting at a UTF-8 character boundary. */
void acct_copy_text(char *dst, size_t cap, const char *src);

/* ---- The one way an account changes (change.c) ------------------------------- */

/* One change to one account and the events explaining it, rebuilt from a
 * fresh read on every optimistic-concurrency attempt. */
typedef struct acct_change {
    acct_rec rec;                      /* read, then edited by the plan     */
    audit_event ev[2];
    size_t n_ev;
    int revoke_sessions;               /* revoke every session of the account */
    size_t *revoked;                   /* out: how many (may be NULL)       */
    const store_session *new_session;  /* inserted in the same transaction  */
    char actor[ACTOR_MAX];             /* storage for "user:<id>"           */
    char resource[RESOURCE_MAX];       /* storage for "_Account/<id>"       */
    char action[48], note[16];         /* storage for a plan's event        */
} acct_change;

/* Edit c->rec and fill c->ev.  Returns 0 to commit, ACCT_REFUSED to commit
 * nothing (a precondition no longer holds on the fresh record), -1 on error. */
#define ACCT_REFUSED 1
typedef int (*acct_plan_fn)(acct_change *c, void *ctx, mv_err *err);

/* Read the account, plan, and commit the plan's record and events through
 * audit_record; retry on a version conflict.  0, ACCT_REFUSED or -1. */
int acct_commit(auth *a, const char *id, acct_plan_fn plan, void *ctx,
                mv_err *err);
/* Fill "user:<id>" and "_Account/<id>" in c from c->rec. */
void acct_change_names(acct_change *c);

/* ---- Second factors (totp.c) -------------------------------------------------- */

/* New 20-byte TOTP secret and recovery codes into e (shown once), with the
 * base32 secret and code hashes into r. */
int  mfa_enroll(acct_rec *r, auth_enrollment *e, mv_err *err);
/* 1 when code is the TOTP of a step within +-1 of now and after
 * r->totp_last_step (*step receives it), 0 when not, -1 on error. */
int  mfa_totp_check(const acct_rec *r, const char *code, int64_t now_us,
                    int64_t *step, mv_err *err);
/* Index of the stored recovery code matching code, or -1. */
int  mfa_recovery_find(const acct_rec *r, const char *code);
/* Remove recovery code i (single use). */
void mfa_recovery_remove(acct_rec *r, int i);
int  mfa_recovery_count(const acct_rec *r);

/* ---- Throttles (throttle.c) ---------------------------------------------------- */

/* A bounded map keyed by a salted digest, evicting the least recently
 * updated entry when full.  Not locked: the throttle's mutex guards it. */
typedef struct tmap tmap;
tmap *tmap_new(size_t cap, size_t value_size);
void  tmap_free(tmap *m);
/* The value for key or NULL. */
void *tmap_find(tmap *m, const unsigned char key[MV_HASH_BYTES]);
/* The value for key, created zeroed (evicting the oldest when full), and
 * marked most recent.  NULL when out of memory. */
void *tmap_upsert(tmap *m, const unsigned char key[MV_HASH_BYTES]);
void  tmap_remove(tmap *m, const unsigned char key[MV_HASH_BYTES]);
size_t tmap_count(const tmap *m);

typedef struct throttle {
    pthread_mutex_t mu;
    unsigned char salt[16];            /* keys the map digests (no hash DoS) */
    tmap *users;                       /* per lower-cased typed username     */
    tmap *sources;                     /* per source address                 */
    auth_config cfg;
} throttle;

int  throttle_init(throttle *t, const auth_config *cfg, mv_err *err);
void throttle_destroy(throttle *t);
/* Microseconds until source may try again (0 = now). */
int64_t throttle_source_wait(throttle *t, const char *source, int64_t now);
/* Microseconds until this username may be tried again (0 = now). */
int64_t throttle_user_wait(throttle *t, const char *username, int64_t now);
/* A failed attempt: grows the username's delay, fills the source window. */
void throttle_failure(throttle *t, const char *username, const char *source,
                      int64_t now);
/* Forget a username's failures (success, unlock). */
void throttle_user_reset(throttle *t, const char *username);

/* ---- The instance --------------------------------------------------------------- */

/* Public views of recently used accounts (account_cache.c). */
#define ACCT_CACHE_SLOTS 1024
#define ACCT_CACHE_TTL_US (2 * 1000000LL)
typedef struct acct_cache_slot {
    auth_account pub;
    int64_t at;                         /* 0: empty */
} acct_cache_slot;
typedef struct acct_cache {
    pthread_mutex_t mu;
    acct_cache_slot slot[ACCT_CACHE_SLOTS];
} acct_cache;
void acct_cache_init(acct_cache *c);
void acct_cache_destroy(acct_cache *c);
/* 1 and *out filled when id is cached and fresh. */
int  acct_cache_get(acct_cache *c, const char *id, int64_t now, auth_account *out);
void acct_cache_put(acct_cache *c, const auth_account *pub, int64_t now);
void acct_cache_forget(acct_cache *c, const char *id);

struct auth {
    mv_store *s;
    audit_trail *trail;
    auth_config cfg;
    char dummy_hash[MV_PWHASH_MAX];    /* verified against for unknown users */
    throttle thr;
    acct_cache accounts;
};

/* ---- Sessions (sessions.c) ------------------------------------------------------ */

/* A new bearer token (43 chars of base64url) and its stored hash. */
void session_token_new(char token[AUTH_TOKEN_MAX],
                       unsigned char hash[MV_HASH_BYTES]);
void session_token_hash(const char *token, unsigned char hash[MV_HASH_BYTES]);
/* The audit reference of a session: 16 hex characters of its hash. */
void session_ref(const unsigned char hash[MV_HASH_BYTES],
                 char out[SESSION_REF_HEX + 1]);

/* ---- Login failures (login.c) --------------------------------------------------- */

/* Record a failed attempt: throttles, then the account's failure counter
 * (locking it at lock_after) or, for an unknown user, an anonymous event.
 * id NULL = unknown user.  Returns AUTH_DENIED, or AUTH_ERROR when the
 * outcome could not be audited. */
auth_result login_failed(auth *a, const char *id, const char *username,
                         const char *action, const char *outcome,
                         const char *source, const char *request_id,
                         mv_err *err);

#endif /* MV_AUTH_INTERNAL_H */
