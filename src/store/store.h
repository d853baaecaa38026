/*
 * store.h -- the data: resources and their versions, blind-index search,
 * wrapped keys, and the rows of the audit trail.  SQLite today; a PostgreSQL
 * backend implements this same interface later.
 *
 * What this subsystem owns: the database and every line of SQL in medvault.
 * Every clinical byte it writes is first sealed by crypto/ under its owner's
 * data key, with associated data binding (type, id, version, patient), so a
 * ciphertext copied onto another row or patient fails to open.  Searchable
 * values are stored only as keyed blind-index tokens, never in plaintext.
 *
 * What it must never do: decide who may read what (policy/), parse FHIR
 * (fhir/), speak HTTP (http/), or compute the audit chain (audit/).  It stores
 * what it is given, sealed, and gives back what it stored, opened.
 *
 * Ownership: every out-parameter struct is filled by the callee and released
 * by the caller with its matching _free function.  Strings passed in are
 * borrowed for the duration of the call.
 *
 * Threads: a store may be shared by threads.  Reads run concurrently (WAL);
 * store_txn_begin() serialises writers.  A store_txn belongs to one thread.
 */
#ifndef MV_STORE_H
#define MV_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "../util/util.h"
#include "../crypto/crypto.h"

typedef struct mv_store mv_store;
typedef struct store_txn store_txn;

/* How to obtain the root key: exactly one of key_file / passphrase. */
typedef struct store_unlock {
    const char *key_file;
    const void *passphrase;
    size_t passphrase_len;
} store_unlock;

/* ---- Lifecycle ------------------------------------------------------------ */

/* Create a new store in dir (created with mode 0700; refused with MV_E_EXISTS
 * when it already holds a store or any file).  For a key-file store, the key
 * file must already exist (crypto_keyfile_create).  Creates the database in
 * WAL mode, master key version 1 and the "#system", "#index" and "#audit"
 * data keys.  Returns the open store. */
int store_create(const char *dir, const store_unlock *u, mv_store **out,
                 mv_err *err);

/* Open an existing store.  MV_E_NOTFOUND when dir holds none; MV_E_KEY when
 * the passphrase or key file is wrong; MV_E_PERM for an unsafe key file. */
int store_open(const char *dir, const store_unlock *u, mv_store **out,
               mv_err *err);

/* Close and wipe every key (NULL allowed). */
void store_close(mv_store *s);

/* The keyring and the reserved data-key references, for audit/ (chain and
 * signing keys).  Borrowed: valid until store_close or the next rotation. */
crypto_keyring *store_keyring(mv_store *s);
int store_owner_ref(mv_store *s, const char *reserved_owner,
                    crypto_dk_ref *out, mv_err *err);

/* The store's random id (binds exported checkpoints to this store). */
void store_id(const mv_store *s, unsigned char out[MV_STORE_ID_BYTES]);
const char *store_dir(const mv_store *s);

/* ---- Write transactions --------------------------------------------------- */

/* Begin a write transaction (BEGIN IMMEDIATE on the one writer connection).
 * Blocks while another thread holds one. */
int  store_txn_begin(mv_store *s, store_txn **out, mv_err *err);
/* Commit durably (synchronous=FULL: the WAL is fsynced) and free the txn. */
int  store_txn_commit(store_txn *t, mv_err *err);
/* Roll back and free the txn (NULL allowed). */
void store_txn_rollback(store_txn *t);
/* Nested units inside one transaction (group commit undoes one unit). */
int  store_txn_savepoint(store_txn *t, mv_err *err);
int  store_txn_release(store_txn *t, mv_err *err);
int  store_txn_rollback_to(store_txn *t, mv_err *err);
mv_store *store_txn_store(store_txn *t);

/* A searchable value, already canonical (fhir.h): stored as the blind-index
 * token HMAC(index key of "Type.param", value), truncated to bits.
 *
 * A truncated token is shared by other values: a search answers candidates
 * that the caller must verify on their bodies (fhir_query_matches).  The
 * resources of medvault's own registers (types whose name begins with '_')
 * are looked up by exact keys and keep the whole token (bits 0); every
 * other type is clinical and must say its width (1..256), or the put or the
 * search fails: a term whose width was forgotten would find nothing. */
typedef struct store_term {
    const char *param;   /* "identifier", "family", "birthdate", ...       */
    const char *value;   /* canonical form                                */
    int bits;            /* token width; 0 = whole (registers only)      */
} store_term;

typedef struct store_write {
    const char *type;          /* resource type, "Patient"                   */
    const char *id;            /* resource id                                */
    const char *patient;       /* owning patient id, NULL = system resource  */
    int64_t if_version;        /* >0: must be the current version (If-Match);
                                  0: must not exist yet; -1: no check        */
    const void *body;          /* plaintext JSON (NULL with deleted)         */
    size_t body_len;
    int deleted;               /* 1: a logical delete (new version, no body) */
    const store_term *terms;   /* replace this resource's index tokens       */
    size_t n_terms;
    int64_t updated_us;        /* the version's time, UTC microseconds: the
                                  body's meta.lastUpdated, so that a
                                  _lastUpdated search finds what the body
                                  says; 0 = the time of the put            */
} store_write;

/* Store a new version of a resource, sealed under its patient's data key (or
 * "#system").  The first resource of a patient creates its data key.  Fails
 * with MV_E_GONE when the patient was erased, MV_E_CONFLICT when if_version
 * does not hold.  *version_out receives the new version number (1, 2, ...). */
int store_put(store_txn *t, const store_write *w, int64_t *version_out,
              mv_err *err);

/* Crypto-shredding: destroy the patient's data key so that every version of
 * every resource it owns becomes unreadable (MV_E_GONE), and drop its index
 * tokens.  Resource rows, ids and audit rows remain (pseudonymous). */
int store_erase_patient(store_txn *t, const char *patient, mv_err *err);

/* After an erase commits: checkpoint and truncate the WAL so that no copy of
 * the destroyed wrapped key survives in the database files. */
int store_scrub(mv_store *s, mv_err *err);

/* ---- Reads ---------------------------------------------------------------- */

typedef struct store_resource {
    char *type;
    char *id;
    char *patient;          /* NULL for a system resource */
    int64_t version;
    int64_t updated_us;     /* UTC microseconds */
    int deleted;
    mv_buf body;            /* opened plaintext; empty when deleted */
} store_resource;
void store_resource_free(store_resource *r);

/* Read one version (version 0 = current).  MV_E_NOTFOUND when absent,
 * MV_E_GONE when the patient was erased, MV_E_INTEGRITY when the stored
 * ciphertext fails authentication.  A deleted current version is returned
 * with deleted = 1 (the caller decides: FHIR answers 410). */
/* store_get without decrypting: everything but the body, which stays empty
 * (the same errors, the erased patient's MV_E_GONE included).  What an
 * access decision needs, so that nothing is decrypted before it. */
int store_head(mv_store *s, const char *type, const char *id, int64_t version,
               store_resource *out, mv_err *err);
int store_get(mv_store *s, const char *type, const char *id, int64_t version,
              store_resource *out, mv_err *err);
/* The current heads (store_head) of ids[0..n) in one read snapshot: out[i]
 * is zeroed (id NULL) when ids[i] has no row, or one that cannot be read
 * (an erased patient's).  The caller frees each with store_resource_free.
 * -1 only when the store cannot be read at all. */
int store_heads(mv_store *s, const char *type, char *const *ids, size_t n,
                store_resource *out, mv_err *err);
/* The owning patient of each of ids[0..n) (NULL: none, or a system
 * resource), from the rows alone: no body is read.  Free each with free(). */
int store_owners(mv_store *s, const char *type, char *const *ids, size_t n,
                 char **owners, mv_err *err);

/* Every version of one resource (id != NULL) or of a type (id == NULL),
 * newest first, at most limit (0 = no limit). Caller frees with
 * store_resources_free. */
int store_history(mv_store *s, const char *type, const char *id,
                  size_t limit, store_resource **out, size_t *n, mv_err *err);
void store_resources_free(store_resource *v, size_t n);

/* One stored version without its body: what a listing needs to decide (by
 * patient) and to page before a single body is opened. */
typedef struct store_version {
    char *id;
    char *patient;          /* NULL for a system resource */
    int64_t version;
    int64_t updated_us;     /* UTC microseconds, stored in clear */
    int deleted;
} store_version;
void store_versions_free(store_version *v, size_t n);

/* The versions of every resource of type stored at or after since_us (0 =
 * all), newest first (commit order), at most limit (0 = no limit): a type's
 * history by time.  Versions of erased patients are left out.  Answered from
 * the clear columns alone, no body is opened: open the ones to disclose with
 * store_get(type, id, version), the one unseal path.  Caller frees with
 * store_versions_free. */
int store_type_versions(mv_store *s, const char *type, int64_t since_us,
                        size_t limit, store_version **out, size_t *n,
                        mv_err *err);

/* Ids of current, non-deleted resources of type matching every term (AND),
 * answered from blind-index tokens only.  Caller frees with store_ids_free. */
int store_search(mv_store *s, const char *type, const store_term *terms,
                 size_t n_terms, char ***ids, size_t *n, mv_err *err);
void store_ids_free(char **ids, size_t n);

/* Ids of current, non-deleted resources of type (patient not erased) whose
 * current version's time t satisfies (from_us <= t < to_us) != outside,
 * sorted: the _lastUpdated search.  Answered from the clear timestamp
 * column, not a blind index: the time a version was stored is not clinical
 * data.  INT64_MIN / INT64_MAX leave an end open.  Free with store_ids_free. */
int store_search_updated(mv_store *s, const char *type, int64_t from_us,
                         int64_t to_us, int outside, char ***ids, size_t *n,
                         mv_err *err);

/* "Type/id" of every current, non-deleted resource whose owner is patient
 * (its compartment, as stored), sorted.  Free with store_ids_free. */
int store_patient_refs(mv_store *s, const char *patient, char ***refs, size_t *n,
                       mv_err *err);

/* The patient ids the store holds a data key for (not erased). */
int store_patients(mv_store *s, char ***ids, size_t *n, mv_err *err);
/* 1 when the patient was erased, 0 when not, -1 on error. */
int store_patient_erased(mv_store *s, const char *patient, mv_err *err);

/* Replace the index tokens of the current version of (type, id) without a
 * new version: a re-index, when what is indexed or how wide changed.  The
 * caller names a current, readable resource (store_search, store_get). */
int store_reindex(store_txn *t, const char *type, const char *id,
                  const store_term *terms, size_t n_terms, mv_err *err);
/* The distinct types of every stored resource, sorted.  Free with
 * store_ids_free. */
int store_types(mv_store *s, char ***types, size_t *n, mv_err *err);

/* ---- Batch blind-index lookup (lookup.c) ---------------------------------- */

/* Many lookups against one type, answered from memory: the blind-index
 * tokens of params (for resources of type) are read once, in one snapshot,
 * and each find is one HMAC and one hash probe, no SQL and no decryption
 * (a leaked file checked against the store).  Like store_search, a find
 * answers the candidates of a truncated token: the caller verifies them.
 * Snapshot semantics: later writes are not seen.  Close with
 * store_lookup_close. */
typedef struct store_lookup store_lookup;
int store_lookup_open(mv_store *s, const char *type, const char *const *params,
                      size_t n_params, store_lookup **out, mv_err *err);
/* The ids (sorted) of the resources carrying term, whose param must be one
 * of those opened; *n = 0 when none.  *ids is borrowed from l. */
int store_lookup_find(store_lookup *l, const store_term *term, char *const **ids,
                      size_t *n, mv_err *err);
/* How many (param, token, id) rows were loaded. */
size_t store_lookup_size(const store_lookup *l);
void store_lookup_close(store_lookup *l);

/* ---- Key rotation --------------------------------------------------------- */

/* Start a rotation: create master version current+1 and make it current, in
 * one transaction.  When a previous rotation was interrupted (data keys still
 * wrapped under an older version), resume it instead: *resumed = 1 and no new
 * version is created.  *version receives the version being rotated to. */
int store_rotate_begin(mv_store *s, uint32_t *version, int *resumed,
                       mv_err *err);
/* Re-wrap up to batch data keys still under an older master version, in one
 * transaction; *remaining receives how many are left after it. */
int store_rotate_step(mv_store *s, size_t batch, size_t *done,
                      size_t *remaining, mv_err *err);
/* When nothing is left under older versions, delete the old master keys. */
int store_rotate_finish(mv_store *s, mv_err *err);

/* ---- Audit rows (the chain itself is computed by audit/) ----------------- */

typedef struct store_audit_row {
    int64_t seq;            /* 1, 2, 3, ... without gaps */
    int64_t ts_us;
    const char *actor;
    const char *action;
    const char *outcome;
    const char *resources;  /* space-separated "Type/id/_history/n" refs     */
    const char *patient;    /* pseudonymous patient id or NULL               */
    const char *source;     /* source address or "cli"                      */
    const char *session;    /* session reference (never a token)             */
    const char *purpose;    /* purpose of use, e.g. "BTG: reason"            */
    const char *request_id;
    unsigned char prev[MV_HASH_BYTES];
    unsigned char hash[MV_HASH_BYTES];
} store_audit_row;

int store_audit_append(store_txn *t, const store_audit_row *row, mv_err *err);
/* Every resource version t writes from now on names audit entry seq (the
 * trail sets it for each unit it commits; 0: none). */
void store_txn_set_audit_seq(store_txn *t, int64_t seq);
/* In one snapshot: the resource versions that name an audit entry, how
 * many name one past the trail's last entry (the trail lost its end, or
 * all of it), the highest named, and the trail's last seq.  Versions
 * written outside the trail name none. */
typedef struct store_audit_link_count {
    int64_t linked, beyond, highest, trail_end;
} store_audit_link_count;
int store_audit_links(mv_store *s, store_audit_link_count *out, mv_err *err);
/* The last row's seq and hash (seq 0 and zero hash on an empty trail). */
int store_audit_last(mv_store *s, int64_t *seq,
                     unsigned char hash[MV_HASH_BYTES], mv_err *err);
/* Call fn for each row with from <= seq <= to (to = 0: to the end), in seq
 * order; fn returns non-zero to stop (that value is returned).  Row strings
 * are valid during the call.  Several scans may run at once from different
 * threads (each on its own reader connection). */
typedef int (*store_audit_fn)(const store_audit_row *row, void *ctx);
int store_audit_scan(mv_store *s, int64_t from, int64_t to, store_audit_fn fn,
                     void *ctx, mv_err *err);

/* The rows naming patient, newest first, at most limit (0 = all): a
 * patient's access log, answered from an index on the patient column. */
int store_audit_scan_patient(mv_store *s, const char *patient, size_t limit,
                             store_audit_fn fn, void *ctx, mv_err *err);

typedef struct store_checkpoint {
    int64_t seq;
    int64_t ts_us;
    unsigned char hash[MV_HASH_BYTES];
    unsigned char sig[MV_SIG_BYTES];
} store_checkpoint;

int store_checkpoint_put(store_txn *t, const store_checkpoint *c, mv_err *err);
/* Every stored checkpoint in seq order; caller frees *out with free(). */
int store_checkpoints(mv_store *s, store_checkpoint **out, size_t *n,
                      mv_err *err);

/* ---- Sessions ------------------------------------------------------------- */

/* A signed-in session as stored: never the token, only its hash.  Holds no
 * health data, so it is kept in clear: a revocation is one UPDATE and every
 * request's check one indexed read, which is what makes a revocation issued
 * from another process effective on the very next request. */
#define STORE_ID_MAX 64
typedef struct store_session {
    unsigned char token_hash[MV_HASH_BYTES];
    char account[STORE_ID_MAX];   /* account id                             */
    int64_t created_us;
    int64_t last_seen_us;
    int64_t mfa_us;               /* last second-factor proof (login, step-up) */
    int revoked;
    char source[STORE_ID_MAX];    /* address the session was opened from     */
} store_session;

int store_session_insert(store_txn *t, const store_session *ss, mv_err *err);
/* MV_E_NOTFOUND when no session has that hash. */
int store_session_get(mv_store *s, const unsigned char hash[MV_HASH_BYTES],
                      store_session *out, mv_err *err);
/* Activity bookkeeping, in its own small transaction and outside the audit
 * trail (it changes no data): sets last_seen, and mfa when mfa_us > 0. */
int store_session_touch(mv_store *s, const unsigned char hash[MV_HASH_BYTES],
                        int64_t last_seen_us, int64_t mfa_us, mv_err *err);
int store_session_revoke(store_txn *t, const unsigned char hash[MV_HASH_BYTES],
                         mv_err *err);
/* Revoke every live session of an account; *n (may be NULL) gets how many. */
int store_session_revoke_account(store_txn *t, const char *account, size_t *n,
                                 mv_err *err);
/* Live (not revoked) sessions of an account active since since_us. */
int store_session_count(mv_store *s, const char *account, int64_t since_us,
                        size_t *n, mv_err *err);
/* Delete sessions last active before cutoff_us or revoked before it. */
int store_session_purge(store_txn *t, int64_t cutoff_us, size_t *n, mv_err *err);

/* ---- Metadata ------------------------------------------------------------- */

/* Small named values that are not secret (format version, public key). */
int store_meta_get(mv_store *s, const char *key, mv_buf *out, mv_err *err);
int store_meta_put(store_txn *t, const char *key, const void *v, size_t n,
                   mv_err *err);

#endif /* MV_STORE_H */
