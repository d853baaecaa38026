/*
 * record.c -- an account as a sealed "_Account" resource: its JSON body,
 * its username blind index, and reading and writing it through store.h.
 *
 * Why it exists: accounts hold a password hash and a TOTP secret, so they
 * live where health data lives, sealed under the "#system" data key, and
 * are found only through a keyed index of the username.  This file is the
 * only one that knows the body's layout; every serialized or parsed copy of
 * it is wiped before it is freed, because it carries the TOTP secret.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void acct_wipe(acct_rec *r)
{
    crypto_wipe(r, sizeof *r);
}

void acct_copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;   /* never cut a multi-byte character in half */
    }
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

int acct_username_norm(const char *in, char out[AUTH_NAME_MAX], mv_err *err)
{
    size_t n = in ? strlen(in) : 0;
    if (n < USERNAME_MIN || n > USERNAME_MAX)
        return mv_fail(err, MV_E_INVALID, "a username has %d to %d characters",
                       USERNAME_MIN, USERNAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return mv_fail(err, MV_E_INVALID,
                           "a username may hold only a-z, 0-9, '.', '_' and '-'");
        out[i] = c;
    }
    out[n] = '\0';
    return 0;
}

/* ---- JSON body ------------------------------------------------------------- */

/* Overwrite a JSON string's text before the object is freed (jansson frees
 * without wiping).  The storage is jansson's heap copy, never a literal. */
static void json_wipe_string(json_t *v)
{
    if (json_is_string(v))
        crypto_wipe((char *)json_string_value(v), json_string_length(v));
}

static int set_new(json_t *o, const char *key, json_t *v)
{
    return v == NULL || json_object_set_new(o, key, v) != 0 ? -1 : 0;
}

static json_t *recovery_array(const char codes[AUTH_RECOVERY_CODES][RECOVERY_HASH_HEX])
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < AUTH_RECOVERY_CODES; i++)
        if (codes[i][0] != '\0' &&
            json_array_append_new(arr, json_string(codes[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

/* A change awaiting approval, with the credential it holds aside. */
static json_t *pending_object(const acct_rec *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o*}", "kind", r->pub.pending,
                     "request", r->pub.pending_request,
                     "password_hash", r->pend_pw_hash,
                     "totp_secret", r->pend_totp_b32,
                     "recovery", r->pend_totp_b32[0] ? recovery_array(r->pend_recovery)
                                                     : NULL);
}

/* The body as a new JSON object; *secret gets the (borrowed) TOTP node. */
static json_t *body_object(const acct_rec *r, json_t **secret)
{
    const auth_account *p = &r->pub;
    json_t *o = json_object();
    *secret = json_string(r->totp_b32);
    int bad = o == NULL || *secret == NULL ||
        json_object_set(o, "totp_secret", *secret) != 0 ||
        set_new(o, "username", json_string(p->username)) != 0 ||
        set_new(o, "role", json_string(auth_role_name(p->role))) != 0 ||
        set_new(o, "practitioner", json_string(p->practitioner)) != 0 ||
        set_new(o, "patient", json_string(p->patient)) != 0 ||
        set_new(o, "scopes", json_string(p->scopes)) != 0 ||
        set_new(o, "department", json_string(p->department)) != 0 ||
        set_new(o, "password_hash", json_string(r->pw_hash)) != 0 ||
        set_new(o, "totp_last_step", json_integer(r->totp_last_step)) != 0 ||
        set_new(o, "recovery", recovery_array(r->recovery)) != 0 ||
        set_new(o, "locked", json_boolean(p->locked)) != 0 ||
        set_new(o, "lock_reason", json_string(p->lock_reason)) != 0 ||
        set_new(o, "failed_logins", json_integer(p->failed_logins)) != 0 ||
        set_new(o, "password_locked_until_us",
                json_integer(p->password_locked_until_us)) != 0 ||
        set_new(o, "created_us", json_integer(p->created_us)) != 0 ||
        set_new(o, "lineage", json_pack("[s, s]", p->lineage[0], p->lineage[1])) != 0 ||
        set_new(o, "lineage_since_us", json_integer(p->lineage_since_us)) != 0 ||
        (p->pending[0] != '\0' && set_new(o, "pending", pending_object(r)) != 0);
    if (bad) {
        json_wipe_string(*secret);
        json_wipe_string(json_object_get(json_object_get(o, "pending"), "totp_secret"));
        json_decref(*secret);
        json_decref(o);
        *secret = NULL;
        return NULL;
    }
    return o;
}

/* Serialize r; the caller wipes and frees *out. */
static int body_encode(const acct_rec *r, char **out, mv_err *err)
{
    json_t *secret;
    json_t *o = body_object(r, &secret);
    if (o == NULL)
        return mv_fail(err, MV_E_NOMEM, "cannot encode account %s", r->pub.id);
    *out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_wipe_string(secret);
    json_wipe_string(json_object_get(json_object_get(o, "pending"), "totp_secret"));
    json_decref(secret);
    json_decref(o);
    return *out ? 0 : mv_fail(err, MV_E_NOMEM, "cannot encode account %s",
                              r->pub.id);
}

static int get_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* Copy a JSON string (no embedded NUL) into a fixed buffer. */
static int copy_string(json_t *v, char *dst, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_text(json_t *o, const char *key, char *dst, size_t cap)
{
    return copy_string(json_object_get(o, key), dst, cap);
}

static int get_codes(json_t *arr, char codes[AUTH_RECOVERY_CODES][RECOVERY_HASH_HEX])
{
    if (!json_is_array(arr) || json_array_size(arr) > AUTH_RECOVERY_CODES)
        return -1;
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (copy_string(json_array_get(arr, i), codes[i], RECOVERY_HASH_HEX) != 0)
            return -1;
    return 0;
}

static int get_recovery(json_t *o, acct_rec *r)
{
    json_t *arr = json_object_get(o, "recovery");
    if (get_codes(arr, r->recovery) != 0)
        return -1;
    r->pub.recovery_left = (int)json_array_size(arr);
    return 0;
}

/* Lineage and a pending change; records written before two-person
 * control have neither. */
static int get_two_person(json_t *o, acct_rec *r)
{
    auth_account *p = &r->pub;
    json_t *lineage = json_object_get(o, "lineage"), *pend = json_object_get(o, "pending");
    json_t *since = json_object_get(o, "lineage_since_us");
    p->lineage_since_us = json_is_integer(since) ? json_integer_value(since) : 0;
    for (size_t i = 0; i < 2 && json_is_array(lineage); i++)
        if (copy_string(json_array_get(lineage, i), p->lineage[i], sizeof p->lineage[i]) != 0)
            return -1;
    if (pend == NULL)
        return 0;
    json_t *codes = json_object_get(pend, "recovery");
    return get_text(pend, "kind", p->pending, sizeof p->pending) ||
           get_text(pend, "request", p->pending_request, sizeof p->pending_request) ||
           get_text(pend, "password_hash", r->pend_pw_hash, sizeof r->pend_pw_hash) ||
           get_text(pend, "totp_secret", r->pend_totp_b32, sizeof r->pend_totp_b32) ||
           (codes != NULL && get_codes(codes, r->pend_recovery) != 0) ? -1 : 0;
}

static int get_role(json_t *o, auth_role *role)
{
    json_t *v = json_object_get(o, "role");
    return json_is_string(v) ? auth_role_parse(json_string_value(v), role) : -1;
}

static int body_fields(json_t *o, acct_rec *r)
{
    auth_account *p = &r->pub;
    int64_t failed = 0;
    json_t *locked = json_object_get(o, "locked");
    int bad = get_text(o, "username", p->username, sizeof p->username) ||
        get_role(o, &p->role) ||
        get_text(o, "practitioner", p->practitioner, sizeof p->practitioner) ||
        get_text(o, "patient", p->patient, sizeof p->patient) ||
        get_text(o, "scopes", p->scopes, sizeof p->scopes) ||
        get_text(o, "password_hash", r->pw_hash, sizeof r->pw_hash) ||
        get_text(o, "totp_secret", r->totp_b32, sizeof r->totp_b32) ||
        get_int(o, "totp_last_step", &r->totp_last_step) ||
        get_recovery(o, r) || !json_is_boolean(locked) ||
        get_text(o, "lock_reason", p->lock_reason, sizeof p->lock_reason) ||
        get_int(o, "failed_logins", &failed) || failed < 0 ||
        failed > 1000000 || get_int(o, "created_us", &p->created_us);
    p->locked = json_is_true(locked);
    p->failed_logins = (int)failed;
    /* Records written before the password lock was timed have none. */
    json_t *until = json_object_get(o, "password_locked_until_us");
    p->password_locked_until_us = json_is_integer(until) ? json_integer_value(until) : 0;
    /* Records written before departments have none. */
    json_t *dept = json_object_get(o, "department");
    if (dept != NULL && get_text(o, "department", p->department, sizeof p->department))
        bad = 1;
    return bad || (until != NULL && !json_is_integer(until)) ||
           get_two_person(o, r) != 0 ? -1 : 0;
}

static int body_decode(const void *body, size_t len, acct_rec *r, mv_err *err)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    int rc = o && json_is_object(o) && body_fields(o, r) == 0 ? 0 : -1;
    if (o) {
        json_wipe_string(json_object_get(o, "totp_secret"));
        json_wipe_string(json_object_get(json_object_get(o, "pending"), "totp_secret"));
    }
    json_decref(o);
    return rc == 0 ? 0 : mv_fail(err, MV_E_INTEGRITY,
                                 "account %s has a malformed record", r->pub.id);
}

/* ---- Store ------------------------------------------------------------------ */

static void resource_wipe_free(store_resource *res)
{
    if (res->body.data)
        crypto_wipe(res->body.data, res->body.len);
    store_resource_free(res);
}

int acct_load_id(mv_store *s, const char *id, acct_rec *out, mv_err *err)
{
    memset(out, 0, sizeof *out);
    store_resource res = {0};
    if (store_get(s, ACCOUNT_TYPE, id, 0, &res, err) != 0)
        return -1;
    int rc = 0;
    if (res.deleted)
        rc = mv_fail(err, MV_E_NOTFOUND, "no such account");
    acct_copy_text(out->pub.id, sizeof out->pub.id, id);
    if (rc == 0)
        rc = body_decode(res.body.data, res.body.len, out, err);
    out->version = res.version;
    resource_wipe_free(&res);
    if (rc != 0)
        acct_wipe(out);
    return rc;
}

int acct_find(mv_store *s, const char *username, char id[AUTH_NAME_MAX],
              mv_err *err)
{
    store_term term = { ACCOUNT_TERM, username, 0 };
    char **ids = NULL;
    size_t n = 0;
    if (store_search(s, ACCOUNT_TYPE, &term, 1, &ids, &n, err) != 0)
        return -1;
    if (n > 0)
        acct_copy_text(id, AUTH_NAME_MAX, ids[0]);
    store_ids_free(ids, n);
    if (n > 1)
        return mv_fail(err, MV_E_INTEGRITY, "two accounts share a username");
    return n == 1;
}

int acct_load_username(mv_store *s, const char *username, acct_rec *out,
                       mv_err *err)
{
    char name[AUTH_NAME_MAX], id[AUTH_NAME_MAX];
    memset(out, 0, sizeof *out);
    if (acct_username_norm(username, name, NULL) != 0)
        return mv_fail(err, MV_E_NOTFOUND, "no such account");
    int found = acct_find(s, name, id, err);
    if (found == 0)
        return mv_fail(err, MV_E_NOTFOUND, "no such account");
    return found < 0 ? -1 : acct_load_id(s, id, out, err);
}

int acct_put(store_txn *t, const acct_rec *r, mv_err *err)
{
    char *body = NULL;
    if (body_encode(r, &body, err) != 0)
        return -1;
    store_term term = { ACCOUNT_TERM, r->pub.username, 0 };
    store_write w = {
        .type = ACCOUNT_TYPE, .id = r->pub.id, .patient = NULL,
        .if_version = r->version, .body = body, .body_len = strlen(body),
        .terms = &term, .n_terms = 1,
    };
    int64_t version;
    int rc = store_put(t, &w, &version, err);
    crypto_wipe(body, strlen(body));
    free(body);
    return rc;
}
