/*
 * chain.c -- how an audit entry and a checkpoint are turned into bytes for
 * hashing and signing.  Every field is length-prefixed (NULL distinct from
 * ""), behind a versioned domain string, so no two different entries can
 * encode alike and an encoding can never be mistaken for another kind.
 */
#include "chain.h"

#include <string.h>

static int encode_row(const store_audit_row *r, mv_buf *b, mv_err *err)
{
    static const char domain[] = "medvault/audit-entry/v1";
    if (mv_buf_append_field(b, domain, sizeof domain - 1, err) != 0 ||
        mv_buf_append_u64(b, (uint64_t)r->seq, err) != 0 ||
        mv_buf_append_u64(b, (uint64_t)r->ts_us, err) != 0)
        return -1;
    const char *fields[] = {
        r->actor, r->action, r->outcome, r->resources, r->patient,
        r->source, r->session, r->purpose, r->request_id
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (mv_buf_append_str_field(b, fields[i], err) != 0)
            return -1;
    return 0;
}

int chain_open(mv_store *s, crypto_chain **out, mv_err *err)
{
    crypto_dk_ref ref;
    if (store_owner_ref(s, MV_OWNER_AUDIT, &ref, err) != 0)
        return -1;
    return crypto_chain_open(store_keyring(s), &ref, out, err);
}

int chain_link_row(const crypto_chain *c, const store_audit_row *row,
                   mv_buf *scratch, unsigned char out[MV_HASH_BYTES],
                   mv_err *err)
{
    scratch->len = 0;
    if (encode_row(row, scratch, err) != 0)
        return -1;
    crypto_chain_link(c, row->prev, scratch->data, scratch->len, out);
    return 0;
}

int chain_checkpoint_msg(const unsigned char store_id[MV_STORE_ID_BYTES],
                         const store_checkpoint *c, mv_buf *msg, mv_err *err)
{
    static const char domain[] = "medvault/audit-checkpoint/v1";
    if (mv_buf_append_field(msg, domain, sizeof domain - 1, err) != 0 ||
        mv_buf_append_field(msg, store_id, MV_STORE_ID_BYTES, err) != 0 ||
        mv_buf_append_u64(msg, (uint64_t)c->seq, err) != 0 ||
        mv_buf_append_u64(msg, (uint64_t)c->ts_us, err) != 0 ||
        mv_buf_append_field(msg, c->hash, MV_HASH_BYTES, err) != 0)
        return -1;
    return 0;
}

int chain_sign_checkpoint(mv_store *s, store_checkpoint *c, mv_err *err)
{
    crypto_dk_ref ref;
    unsigned char id[MV_STORE_ID_BYTES];
    store_id(s, id);
    mv_buf msg = {0};
    int rc = -1;
    if (store_owner_ref(s, MV_OWNER_AUDIT, &ref, err) == 0 &&
        chain_checkpoint_msg(id, c, &msg, err) == 0)
        rc = crypto_sign_msg(store_keyring(s), &ref, msg.data, msg.len,
                             c->sig, err);
    mv_buf_free(&msg);
    return rc;
}

int chain_pubkey(mv_store *s, unsigned char pub[MV_PUBKEY_BYTES], mv_err *err)
{
    crypto_dk_ref ref;
    if (store_owner_ref(s, MV_OWNER_AUDIT, &ref, err) != 0)
        return -1;
    return crypto_sign_pubkey(store_keyring(s), &ref, pub, err);
}
