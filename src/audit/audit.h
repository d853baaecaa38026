/*
 * audit.h -- the tamper-evident audit trail, and the one door through which
 * anything is committed to the store.
 *
 * What this subsystem owns: the order, chaining and durability of audit
 * entries.  Each entry carries the hash of the previous one (keyed BLAKE2b,
 * so the chain cannot be recomputed without the store's keys); every N
 * entries, every T seconds and at clean shutdown a checkpoint signs the head
 * with Ed25519.  audit_verify() re-walks the chain and the checkpoints and
 * names the first bad entry: an edited, deleted, inserted or reordered entry
 * breaks a link, and truncation back past a checkpoint held outside (an
 * exported file) is caught by that checkpoint.
 *
 * Why every write goes through here: "a change to stored data and its audit
 * entry commit atomically", and "a response that discloses data is never sent
 * before its entry is durable".  audit_record() takes the events *and* the
 * data change (an apply callback run inside the same transaction) and returns
 * only once both are durable.  Concurrent callers are batched into one
 * transaction and one fsync (leader/follower group commit), which is what
 * keeps durable auditing fast.
 *
 * What it must never do: decide access, call http/, fhir/ or policy/, or put
 * a secret, a token, a name or clinical content into an entry: entries carry
 * pseudonymous ids and references only.
 */
#ifndef MV_AUDIT_H
#define MV_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include "../util/util.h"
#include "../store/store.h"

/* One event.  Every field may be NULL except actor, action and outcome.
 * Strings are borrowed for the duration of audit_record(). */
typedef struct audit_event {
    const char *actor;       /* "user:alice", "cli:root", "system"           */
    const char *action;      /* "store.init", "resource.read", ...          */
    const char *outcome;     /* "success", "denied", "failure: <reason>"     */
    const char *resources;   /* space-separated "Type/id/_history/n"         */
    const char *patient;     /* pseudonymous patient id                      */
    const char *source;      /* source address                               */
    const char *session;     /* session reference (never the token)          */
    const char *purpose;     /* purpose of use, e.g. "BTG: <reason>"         */
    const char *request_id;
} audit_event;

typedef struct audit_options {
    int64_t checkpoint_every;        /* entries between checkpoints (>0)    */
    int64_t checkpoint_interval_us;  /* max time between checkpoints (>0)   */
} audit_options;
audit_options audit_default_options(void);   /* 1000 entries, 60 s */

typedef struct audit_trail audit_trail;

/* Attach a trail to an open store (borrowed; close the trail first).  On a new
 * store, records the signing public key in the store's metadata.  Refuses
 * (MV_E_TAMPER) a trail that visibly lost entries (a stored checkpoint lies
 * past its end) or whose public key was replaced: new entries must never be
 * chained onto a trail known to be damaged.  audit_verify() still works. */
int audit_open(mv_store *s, const audit_options *opt, audit_trail **out,
               mv_err *err);

/* Write the final checkpoint (when entries were added since the last one) and
 * free the trail.  Returns -1 if that checkpoint could not be written; the
 * trail is freed either way.  NULL is allowed. */
int audit_close(audit_trail *t, mv_err *err);

/* A data change to commit together with the events: called inside the write
 * transaction, on whichever thread leads the group commit.  It must not call
 * audit_record() (that would wait on itself). */
typedef int (*audit_apply_fn)(store_txn *txn, void *ctx, mv_err *err);

/* Commit apply(txn, ctx) (may be NULL) and the n events (n >= 1) as one unit,
 * durably.  On return 0 both are on disk; *first_seq (may be NULL) receives
 * the sequence number of the first event.  If apply fails, nothing of the unit
 * is kept and its error is returned. */
int audit_record(audit_trail *t, const audit_event *ev, size_t n,
                 audit_apply_fn apply, void *ctx, int64_t *first_seq,
                 mv_err *err);

/* Sign a checkpoint at the current head now (no-op on an empty trail). */
int audit_checkpoint(audit_trail *t, mv_err *err);

/* Call periodically: writes a checkpoint when entries are waiting and the
 * interval has passed since the last one. */
int audit_tick(audit_trail *t, mv_err *err);

/* Sequence number of the last durable entry. */
int64_t audit_head(audit_trail *t);

/* The latest stored checkpoint as a self-contained JSON document a third
 * party can keep: store id, seq, time, head hash, public key, signature. */
int audit_export_checkpoint(mv_store *s, mv_buf *json, mv_err *err);

typedef struct audit_report {
    int64_t entries;        /* entries checked                              */
    int64_t checkpoints;    /* stored checkpoints checked                   */
    int64_t last_seq;
    int64_t bad_seq;        /* first bad entry, 0 when none can be named    */
    int64_t linked_versions; /* resource versions naming their audit entry  */
} audit_report;

/* Verify every link and every checkpoint signature, and, when external is
 * not NULL, an exported checkpoint held outside (its JSON text).  Returns 0
 * when everything holds; -1 with MV_E_TAMPER and a message naming the first
 * bad entry (and rep->bad_seq) otherwise; other codes for I/O problems. */
int audit_verify(mv_store *s, const char *external, size_t external_len,
                 audit_report *rep, mv_err *err);

#endif /* MV_AUDIT_H */
