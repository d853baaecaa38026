/*
 * watermark.c -- one decoy per bulk output: the watermark that says, when
 * the output turns up in a leaked file, which output it was and who it was
 * handed to.
 *
 * Why this exists: in the 2024 breach the data was for sale before anyone
 * knew which account had read it out.  A plain decoy found in a dump proves
 * the file came from this hospital; a decoy planted in one output only
 * ($everything, an export, a large search page) proves which output, and
 * the registry records the account that received it.  An export tool or a
 * route calls server_watermark_pick before writing its output and adds the
 * returned decoy's Patient to it.
 *
 * A plain decoy is drawn at random among the unused ones, so the next
 * watermark cannot be predicted from the registry's order.  Two outputs
 * racing for the same decoy are kept apart by the registry's version check
 * (server_decoy_watermark writes If-Match): the loser draws again.
 */
#include "server_internal.h"

#include <stdio.h>
#include <string.h>

#include "../crypto/crypto.h"

#define PICK_ATTEMPTS 8
#define WATERMARK_BY  "system"

/* A random index below n (n > 0). */
static size_t random_below(size_t n)
{
    uint64_t r;
    crypto_random(&r, sizeof r);
    return (size_t)(r % n);
}

static int plain_decoys(mv_store *s, char ***ids, size_t *n, mv_err *err)
{
    store_term terms[] = { { "kind", "decoy", 0 }, { "purpose", "decoy", 0 } };
    return store_search(s, "_Decoy", terms, 2, ids, n, err);
}

/* One attempt: 0 picked, 1 lost a race (draw again), -1 error. */
static int pick_once(mv_store *s, audit_trail *trail, const char *reference,
                     const char *handed_to, const char *source, char *out, size_t cap,
                     mv_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (plain_decoys(s, &ids, &n, err) != 0)
        return -1;
    if (n == 0) {
        store_ids_free(ids, n);
        return mv_fail(err, MV_E_NOTFOUND, "no unused decoy left to watermark an output "
                       "(plant more with 'medvault decoy plant')");
    }
    const char *id = ids[random_below(n)];
    int rc = 0;
    if (strlen(id) >= cap)
        rc = mv_fail(err, MV_E_INVALID, "the decoy id does not fit the caller's buffer");
    if (rc == 0)
        rc = server_decoy_watermark(s, trail, id, reference, handed_to, WATERMARK_BY,
                                    source, err);
    if (rc == 0)
        snprintf(out, cap, "%s", id);
    else if (err && err->code == MV_E_CONFLICT)
        rc = 1;
    store_ids_free(ids, n);
    return rc;
}

int server_watermark_pick(mv_store *s, audit_trail *trail, const char *output_reference,
                          const char *handed_to_actor, const char *source,
                          char *decoy_patient_out, size_t cap, mv_err *err)
{
    if (s == NULL || trail == NULL || decoy_patient_out == NULL || cap == 0)
        return mv_fail(err, MV_E_INVALID, "a watermark needs a store, a trail and a buffer");
    decoy_patient_out[0] = '\0';
    if (output_reference == NULL || *output_reference == '\0' ||
        handed_to_actor == NULL || *handed_to_actor == '\0')
        return mv_fail(err, MV_E_INVALID, "a watermark names its output and whom it is "
                       "handed to");
    for (int attempt = 0; attempt < PICK_ATTEMPTS; attempt++) {
        int rc = pick_once(s, trail, output_reference, handed_to_actor,
                           source ? source : "system", decoy_patient_out, cap, err);
        if (rc <= 0)
            return rc;
    }
    return mv_fail(err, MV_E_CONFLICT, "every decoy drawn was taken by another output "
                   "meanwhile (%d attempts)", PICK_ATTEMPTS);
}
