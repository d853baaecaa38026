/*
 * test_crypto.c -- unit tests for src/crypto/.
 *
 * Why it exists: every property medvault's confidentiality rests on is
 * checked here by a test that fails if the property is lost: tampering and
 * moving ciphertext or wrapped keys is detected, the wrong root key is
 * refused, key files are guarded, rotation keeps data readable, the data-key
 * cache never serves a wrong or forgotten key, derived keys are independent,
 * and the keyring works from several threads.
 *
 * It includes crypto_internal.h only for the cache size and the cache
 * inspection hook; everything else goes through crypto.h.
 */
#define _GNU_SOURCE   /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "crypto/crypto_internal.h"
#include "testutil.h"

#define OPEN_FAILED_MSG \
    "ciphertext failed authentication (tampered, or moved from another record)"

/* Fast Argon2id for tests: the cost does not change what is tested. */
static const crypto_kdf_params fast_kdf = {
    .opslimit = crypto_pwhash_OPSLIMIT_MIN,
    .memlimit = crypto_pwhash_MEMLIMIT_MIN,
};

static const unsigned char store_a[MV_STORE_ID_BYTES] = "store-aaaaaaaaaa";
static const unsigned char store_b[MV_STORE_ID_BYTES] = "store-bbbbbbbbbb";

/* ---- Helpers ------------------------------------------------------------ */

#define ASSERT_FAILS_WITH(call, err, expected)      \
    do {                                            \
        mv_err_clear(&(err));                       \
        assert_int_equal((call), -1);               \
        assert_int_equal((err).code, (expected));   \
    } while (0)

#define ASSERT_OK(call, err)                                        \
    do {                                                            \
        mv_err_clear(&(err));                                       \
        int rc_ = (call);                                           \
        if (rc_ != 0)                                               \
            fail_msg("%s: %s", #call, (err).msg);                   \
    } while (0)

/* A data key as the store would keep it: owner, master version, wrapped. */
typedef struct stored_dk {
    char owner[64];
    uint32_t version;
    crypto_wrapped w;
} stored_dk;

static void dk_make(crypto_keyring *kr, const char *owner, stored_dk *d)
{
    mv_err err;
    snprintf(d->owner, sizeof d->owner, "%s", owner);
    ASSERT_OK(crypto_dk_new(kr, owner, &d->version, &d->w, &err), err);
}

static crypto_dk_ref dk_ref(const stored_dk *d)
{
    crypto_dk_ref r = {d->owner, d->version, d->w.data, d->w.len};
    return r;
}

static void seal_str(crypto_keyring *kr, const crypto_dk_ref *ref,
                     const char *ad, const char *pt, mv_buf *out)
{
    mv_err err;
    ASSERT_OK(crypto_seal(kr, ref, ad, strlen(ad), pt, strlen(pt), out, &err),
              err);
}

/* crypto_open's outcome as a code (MV_OK on success); on success the
 * plaintext must equal expect when expect is not NULL. */
static mv_code open_code(crypto_keyring *kr, const crypto_dk_ref *ref,
                         const char *ad, const void *ct, size_t ct_len,
                         const char *expect)
{
    mv_err err;
    mv_err_clear(&err);
    mv_buf pt = {0};
    if (crypto_open(kr, ref, ad, ad ? strlen(ad) : 0, ct, ct_len, &pt,
                    &err) != 0) {
        assert_int_not_equal(err.code, MV_OK);
        return err.code;
    }
    if (expect != NULL) {
        assert_int_equal(pt.len, strlen(expect));
        assert_memory_equal(pt.data, expect, pt.len);
    }
    mv_buf_free(&pt);
    return MV_OK;
}

static void write_file(const char *path, const void *p, size_t n, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, (mode_t)mode), 0);
    close(fd);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, cap);
    close(fd);
    assert_true(n >= 0);
    return (size_t)n;
}

/* ---- Fixture: a key-file keyring with master 1 current ------------------ */

typedef struct fixture {
    char *dir;
    char *key_path;
    crypto_keyring *kr;
    crypto_wrapped master1;
} fixture;

static int setup(void **state)
{
    mv_err err;
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(crypto_init(&err), 0);
    f->dir = tu_mkdtemp();
    f->key_path = tu_path(f->dir, "root.key");
    ASSERT_OK(crypto_keyfile_create(f->key_path, &err), err);
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &f->kr, &err), err);
    crypto_keyring_set_store_id(f->kr, store_a);
    ASSERT_OK(crypto_master_new(f->kr, 1, &f->master1, &err), err);
    ASSERT_OK(crypto_master_use(f->kr, 1, &err), err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    crypto_keyring_free(f->kr);
    crypto_wrapped_free(&f->master1);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->key_path);
    free(f);
    return 0;
}

/* ---- Primitives --------------------------------------------------------- */

static void test_init_disables_core_dumps(void **state)
{
    (void)state;
    mv_err err;
    assert_int_equal(crypto_init(&err), 0);
    assert_int_equal(crypto_init(&err), 0);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_true(rl.rlim_cur == 0);
    assert_true(rl.rlim_max == 0);
}

static void test_digest_random_id_memcmp(void **state)
{
    (void)state;
    /* BLAKE2b-256 of the empty string. */
    static const char empty_hex[] =
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
    unsigned char h[MV_HASH_BYTES];
    char hex[2 * MV_HASH_BYTES + 1];
    crypto_digest("", 0, h);
    mv_hex_encode(h, sizeof h, hex);
    assert_string_equal(hex, empty_hex);

    char a[33], b[33];
    crypto_random_id(a);
    crypto_random_id(b);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);

    assert_int_equal(crypto_memcmp("abcd", "abcd", 4), 0);
    assert_int_not_equal(crypto_memcmp("abcd", "abce", 4), 0);
    unsigned char secret[8] = {1, 2, 3, 4, 5, 6, 7, 8}, zero[8] = {0};
    crypto_wipe(secret, sizeof secret);
    assert_memory_equal(secret, zero, sizeof zero);
}

static void test_password_hash_verify(void **state)
{
    (void)state;
    mv_err err;
    char h1[MV_PWHASH_MAX], h2[MV_PWHASH_MAX];
    static const char pw[] = "a long passphrase nobody guesses";
    assert_int_equal(crypto_password_hash(pw, strlen(pw), h1, &err), 0);
    assert_int_equal(crypto_password_hash(pw, strlen(pw), h2, &err), 0);
    assert_non_null(strstr(h1, "$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_string_not_equal(h1, h2);                 /* salted */
    assert_int_equal(crypto_password_verify(h1, pw, strlen(pw)), 0);
    assert_int_equal(crypto_password_verify(h1, pw, strlen(pw) - 1), -1);
    assert_int_equal(crypto_password_verify(h1, "A long passphrase nobody guesses",
                                            strlen(pw)), -1);
    assert_int_equal(crypto_password_verify("$argon2i$bogus", pw, strlen(pw)), -1);
    assert_int_equal(crypto_password_verify(NULL, pw, strlen(pw)), -1);
    assert_int_equal(crypto_password_needs_rehash(h1), 0);
    assert_int_equal(crypto_password_needs_rehash(
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A"), 1);
}

static void test_base64_round_trip(void **state)
{
    (void)state;
    mv_err err;
    char enc[128];
    unsigned char raw[70], dec[70];
    size_t n = 0;

    crypto_b64_encode((const unsigned char *)"hello", 5, enc);
    assert_string_equal(enc, "aGVsbG8=");
    assert_int_equal(crypto_b64_len(5), sizeof "aGVsbG8=");

    for (size_t len = 0; len <= sizeof raw; len++) {
        crypto_random(raw, len);
        crypto_b64_encode(raw, len, enc);
        assert_int_equal(strlen(enc) + 1, crypto_b64_len(len));
        strcat(enc, "\n ");   /* trailing newline and space are ignored */
        ASSERT_OK(crypto_b64_decode(enc, strlen(enc), dec, sizeof dec, &n,
                                    &err), err);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
    }

    ASSERT_FAILS_WITH(crypto_b64_decode("abc", 3, dec, sizeof dec, &n, &err),
                      err, MV_E_INVALID);
    ASSERT_FAILS_WITH(crypto_b64_decode("ab!=", 4, dec, sizeof dec, &n, &err),
                      err, MV_E_INVALID);
    ASSERT_FAILS_WITH(crypto_b64_decode("aGVs bG8=", 9, dec, sizeof dec, &n,
                                        &err), err, MV_E_INVALID);
    /* Fits in 5 bytes, not in 4. */
    ASSERT_FAILS_WITH(crypto_b64_decode("aGVsbG8=", 8, dec, 4, &n, &err),
                      err, MV_E_INVALID);
    ASSERT_OK(crypto_b64_decode("aGVsbG8=", 8, dec, 5, &n, &err), err);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, "hello", 5);
}

/* ---- Seal / open -------------------------------------------------------- */

static void test_seal_open_round_trip(void **state)
{
    fixture *f = *state;
    stored_dk d;
    dk_make(f->kr, "patient-1", &d);
    crypto_dk_ref ref = dk_ref(&d);
    const char *pt = "Diagnosis: something private";

    mv_buf ct1 = {0}, ct2 = {0}, empty = {0};
    seal_str(f->kr, &ref, "Observation/1/v1", pt, &ct1);
    seal_str(f->kr, &ref, "Observation/1/v1", pt, &ct2);
    assert_int_equal(ct1.len, strlen(pt) + 24 + 16);
    assert_null(memmem(ct1.data, ct1.len, pt, strlen(pt)));
    /* Random nonces: the same plaintext never seals the same way twice. */
    assert_memory_not_equal(ct1.data, ct2.data, ct1.len);

    assert_int_equal(open_code(f->kr, &ref, "Observation/1/v1", ct1.data,
                               ct1.len, pt), MV_OK);
    assert_int_equal(open_code(f->kr, &ref, "Observation/1/v1", ct2.data,
                               ct2.len, pt), MV_OK);

    seal_str(f->kr, &ref, "", "", &empty);
    assert_int_equal(empty.len, 40);
    assert_int_equal(open_code(f->kr, &ref, "", empty.data, empty.len, ""),
                     MV_OK);

    mv_buf_free(&ct1);
    mv_buf_free(&ct2);
    mv_buf_free(&empty);
    crypto_wrapped_free(&d.w);
}

/* Seal, flip one bit at offset (counted from the end when negative), open:
 * must be an integrity failure with the documented message. */
static void assert_flip_detected(fixture *f, long offset)
{
    stored_dk d;
    dk_make(f->kr, "patient-flip", &d);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "ad", "a record body of some length", &ct);
    size_t at = offset >= 0 ? (size_t)offset : ct.len - (size_t)(-offset);
    ct.data[at] ^= 0x01;

    mv_err err;
    mv_buf pt = {0};
    ASSERT_FAILS_WITH(crypto_open(f->kr, &ref, "ad", 2, ct.data, ct.len, &pt,
                                  &err), err, MV_E_INTEGRITY);
    assert_string_equal(err.msg, OPEN_FAILED_MSG);
    assert_null(pt.data);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
}

static void test_flipped_byte_in_nonce(void **state)
{
    assert_flip_detected(*state, 0);
    assert_flip_detected(*state, 23);
}

static void test_flipped_byte_in_ciphertext(void **state)
{
    assert_flip_detected(*state, 24);
    assert_flip_detected(*state, 30);
}

static void test_flipped_byte_in_tag(void **state)
{
    assert_flip_detected(*state, -1);
    assert_flip_detected(*state, -16);
}

static void test_truncated_ciphertext(void **state)
{
    fixture *f = *state;
    stored_dk d;
    dk_make(f->kr, "patient-short", &d);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "ad", "body", &ct);
    assert_int_equal(open_code(f->kr, &ref, "ad", ct.data, ct.len - 1, NULL),
                     MV_E_INTEGRITY);
    assert_int_equal(open_code(f->kr, &ref, "ad", ct.data, 39, NULL),
                     MV_E_INTEGRITY);
    assert_int_equal(open_code(f->kr, &ref, "ad", ct.data, 0, NULL),
                     MV_E_INTEGRITY);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
}

static void test_wrong_ad(void **state)
{
    fixture *f = *state;
    stored_dk d;
    dk_make(f->kr, "patient-ad", &d);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "Patient/7/v1", "body", &ct);
    assert_int_equal(open_code(f->kr, &ref, "Patient/7/v1", ct.data, ct.len,
                               "body"), MV_OK);
    assert_int_equal(open_code(f->kr, &ref, "Patient/7/v2", ct.data, ct.len,
                               NULL), MV_E_INTEGRITY);
    assert_int_equal(open_code(f->kr, &ref, "Patient/8/v1", ct.data, ct.len,
                               NULL), MV_E_INTEGRITY);
    assert_int_equal(open_code(f->kr, &ref, NULL, ct.data, ct.len, NULL),
                     MV_E_INTEGRITY);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
}

/* ---- Data keys bound to their owner and version ------------------------- */

static void test_wrapped_key_copied_to_other_owner(void **state)
{
    fixture *f = *state;
    stored_dk a, b;
    dk_make(f->kr, "patient-a", &a);
    dk_make(f->kr, "patient-b", &b);
    crypto_dk_ref ra = dk_ref(&a);
    mv_buf ct = {0}, out = {0};
    seal_str(f->kr, &ra, "ad", "a's record", &ct);

    /* a's wrapped key pasted onto b's row. */
    crypto_dk_ref pasted = {b.owner, a.version, a.w.data, a.w.len};
    assert_int_equal(open_code(f->kr, &pasted, "ad", ct.data, ct.len, NULL),
                     MV_E_INTEGRITY);
    mv_err err;
    ASSERT_FAILS_WITH(crypto_seal(f->kr, &pasted, "ad", 2, "x", 1, &out, &err),
                      err, MV_E_INTEGRITY);
    assert_non_null(strstr(err.msg, "patient-b"));

    /* a's wrapped key relabelled as wrapped under another master version. */
    crypto_wrapped m2 = {0};
    ASSERT_OK(crypto_master_new(f->kr, 2, &m2, &err), err);
    crypto_dk_ref relabelled = {a.owner, 2, a.w.data, a.w.len};
    assert_int_equal(open_code(f->kr, &relabelled, "ad", ct.data, ct.len,
                               NULL), MV_E_INTEGRITY);

    /* A wrapped key of the wrong length. */
    crypto_dk_ref cut = {a.owner, a.version, a.w.data, a.w.len - 1};
    assert_int_equal(open_code(f->kr, &cut, "ad", ct.data, ct.len, NULL),
                     MV_E_INTEGRITY);

    /* The genuine reference still works. */
    assert_int_equal(open_code(f->kr, &ra, "ad", ct.data, ct.len,
                               "a's record"), MV_OK);
    crypto_wrapped_free(&m2);
    mv_buf_free(&ct);
    crypto_wrapped_free(&a.w);
    crypto_wrapped_free(&b.w);
}

static void test_ciphertext_moved_to_other_owner(void **state)
{
    fixture *f = *state;
    stored_dk a, b;
    dk_make(f->kr, "patient-a", &a);
    dk_make(f->kr, "patient-b", &b);
    crypto_dk_ref ra = dk_ref(&a), rb = dk_ref(&b);
    mv_buf ct = {0};
    seal_str(f->kr, &ra, "ad", "a's record", &ct);
    assert_int_equal(open_code(f->kr, &rb, "ad", ct.data, ct.len, NULL),
                     MV_E_INTEGRITY);
    mv_buf_free(&ct);
    crypto_wrapped_free(&a.w);
    crypto_wrapped_free(&b.w);
}

/* ---- Master keys and root keys ------------------------------------------ */

static void test_master_new_and_use(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_keyring *kr = NULL;
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);
    assert_int_equal(crypto_master_current(kr), 0);

    stored_dk d;
    ASSERT_FAILS_WITH(crypto_dk_new(kr, "p", &d.version, &d.w, &err), err,
                      MV_E_KEY);
    assert_null(d.w.data);

    crypto_wrapped w1 = {0}, again = {0}, w0 = {0};
    ASSERT_OK(crypto_master_new(kr, 1, &w1, &err), err);
    assert_int_equal(w1.len, 72);
    assert_int_equal(crypto_master_current(kr), 0);   /* new != use */
    ASSERT_FAILS_WITH(crypto_master_use(kr, 2, &err), err, MV_E_KEY);
    ASSERT_FAILS_WITH(crypto_master_use(kr, 0, &err), err, MV_E_KEY);
    ASSERT_OK(crypto_master_use(kr, 1, &err), err);
    assert_int_equal(crypto_master_current(kr), 1);
    ASSERT_FAILS_WITH(crypto_master_new(kr, 1, &again, &err), err,
                      MV_E_EXISTS);
    ASSERT_FAILS_WITH(crypto_master_new(kr, 0, &w0, &err), err, MV_E_INVALID);

    /* At most 16 unlocked versions. */
    for (uint32_t v = 2; v <= 16; v++) {
        crypto_wrapped w = {0};
        ASSERT_OK(crypto_master_new(kr, v, &w, &err), err);
        crypto_wrapped_free(&w);
    }
    crypto_wrapped w17 = {0};
    ASSERT_FAILS_WITH(crypto_master_new(kr, 17, &w17, &err), err,
                      MV_E_INVALID);
    crypto_master_forget(kr, 16);
    ASSERT_OK(crypto_master_new(kr, 17, &w17, &err), err);

    /* Forgetting the current version leaves none current. */
    crypto_master_forget(kr, 1);
    assert_int_equal(crypto_master_current(kr), 0);

    crypto_wrapped_free(&w17);
    crypto_wrapped_free(&w1);
    crypto_keyring_free(kr);
}

static void test_reopen_with_same_key_file(void **state)
{
    fixture *f = *state;
    mv_err err;
    stored_dk d;
    dk_make(f->kr, "patient-r", &d);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "ad", "kept across restarts", &ct);

    crypto_keyring *kr = NULL;
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);
    crypto_keyring_set_store_id(kr, store_a);
    ASSERT_OK(crypto_master_load(kr, 1, f->master1.data, f->master1.len,
                                 &err), err);
    assert_int_equal(open_code(kr, &ref, "ad", ct.data, ct.len,
                               "kept across restarts"), MV_OK);
    crypto_keyring_free(kr);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
}

static void test_master_load_wrong_key_file(void **state)
{
    fixture *f = *state;
    mv_err err;
    char *other = tu_path(f->dir, "other.key");
    crypto_keyring *kr = NULL;
    ASSERT_OK(crypto_keyfile_create(other, &err), err);
    ASSERT_OK(crypto_keyring_from_keyfile(other, &kr, &err), err);
    crypto_keyring_set_store_id(kr, store_a);
    ASSERT_FAILS_WITH(crypto_master_load(kr, 1, f->master1.data,
                                         f->master1.len, &err), err, MV_E_KEY);
    assert_string_equal(err.msg, "wrong passphrase or key file");
    assert_int_equal(crypto_master_current(kr), 0);
    ASSERT_FAILS_WITH(crypto_master_use(kr, 1, &err), err, MV_E_KEY);
    crypto_keyring_free(kr);
    free(other);
}

static void test_master_bound_to_store_and_version(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_keyring *kr = NULL;
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);

    crypto_keyring_set_store_id(kr, store_b);   /* another store */
    ASSERT_FAILS_WITH(crypto_master_load(kr, 1, f->master1.data,
                                         f->master1.len, &err), err, MV_E_KEY);
    crypto_keyring_set_store_id(kr, store_a);
    ASSERT_FAILS_WITH(crypto_master_load(kr, 2, f->master1.data,
                                         f->master1.len, &err), err, MV_E_KEY);
    unsigned char tampered[72];
    memcpy(tampered, f->master1.data, sizeof tampered);
    tampered[40] ^= 0x01;
    ASSERT_FAILS_WITH(crypto_master_load(kr, 1, tampered, sizeof tampered,
                                         &err), err, MV_E_KEY);
    ASSERT_FAILS_WITH(crypto_master_load(kr, 1, f->master1.data, 71, &err),
                      err, MV_E_INTEGRITY);
    ASSERT_OK(crypto_master_load(kr, 1, f->master1.data, f->master1.len,
                                 &err), err);
    /* A failed reload leaves the unlocked version intact. */
    ASSERT_FAILS_WITH(crypto_master_load(kr, 1, tampered, sizeof tampered,
                                         &err), err, MV_E_KEY);
    ASSERT_OK(crypto_master_use(kr, 1, &err), err);
    stored_dk d;
    dk_make(f->kr, "patient-s", &d);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "ad", "x", &ct);
    assert_int_equal(open_code(kr, &ref, "ad", ct.data, ct.len, "x"), MV_OK);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
    crypto_keyring_free(kr);
}

static void test_master_load_wrong_passphrase(void **state)
{
    (void)state;
    mv_err err;
    unsigned char salt[MV_SALT_BYTES], salt2[MV_SALT_BYTES];
    crypto_random(salt, sizeof salt);
    crypto_random(salt2, sizeof salt2);
    const char *pass = "correct horse battery staple";
    crypto_keyring *kr = NULL, *wrong = NULL, *right = NULL, *salted = NULL;

    ASSERT_OK(crypto_keyring_from_passphrase(pass, strlen(pass), salt,
                                             fast_kdf, &kr, &err), err);
    crypto_wrapped m1 = {0};
    ASSERT_OK(crypto_master_new(kr, 1, &m1, &err), err);

    ASSERT_OK(crypto_keyring_from_passphrase("correct horse battery stapl", 27,
                                             salt, fast_kdf, &wrong, &err),
              err);
    ASSERT_FAILS_WITH(crypto_master_load(wrong, 1, m1.data, m1.len, &err),
                      err, MV_E_KEY);
    assert_string_equal(err.msg, "wrong passphrase or key file");

    ASSERT_OK(crypto_keyring_from_passphrase(pass, strlen(pass), salt2,
                                             fast_kdf, &salted, &err), err);
    ASSERT_FAILS_WITH(crypto_master_load(salted, 1, m1.data, m1.len, &err),
                      err, MV_E_KEY);

    ASSERT_OK(crypto_keyring_from_passphrase(pass, strlen(pass), salt,
                                             fast_kdf, &right, &err), err);
    ASSERT_OK(crypto_master_load(right, 1, m1.data, m1.len, &err), err);

    crypto_wrapped_free(&m1);
    crypto_keyring_free(kr);
    crypto_keyring_free(wrong);
    crypto_keyring_free(salted);
    crypto_keyring_free(right);
}

static void test_passphrase_rejects_bad_input(void **state)
{
    (void)state;
    mv_err err;
    unsigned char salt[MV_SALT_BYTES] = {0};
    crypto_keyring *kr = NULL;
    ASSERT_FAILS_WITH(crypto_keyring_from_passphrase("", 0, salt, fast_kdf,
                                                     &kr, &err),
                      err, MV_E_INVALID);
    assert_null(kr);
    crypto_kdf_params weak = {0, crypto_pwhash_MEMLIMIT_MIN};
    ASSERT_FAILS_WITH(crypto_keyring_from_passphrase("pw", 2, salt, weak, &kr,
                                                     &err),
                      err, MV_E_INVALID);
    crypto_kdf_params def = crypto_kdf_default();
    assert_int_equal(def.opslimit, crypto_pwhash_OPSLIMIT_MODERATE);
    assert_int_equal(def.memlimit, crypto_pwhash_MEMLIMIT_MODERATE);
}

/* ---- Key files ---------------------------------------------------------- */

static void test_key_file_format(void **state)
{
    fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->key_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char text[128];
    size_t n = read_file(f->key_path, text, sizeof text);
    assert_int_equal(n, 16 + 44 + 1);
    assert_memory_equal(text, "medvault-key-v1\n", 16);
    assert_int_equal(text[n - 1], '\n');
    unsigned char key[32];
    size_t klen = 0;
    mv_err err;
    ASSERT_OK(crypto_b64_decode(text + 16, 45, key, sizeof key, &klen, &err),
              err);
    assert_int_equal(klen, 32);
}

/* Chmod the fixture's key file to mode and try to open a keyring from it. */
static void assert_key_file_mode_refused(fixture *f, mode_t mode)
{
    mv_err err;
    crypto_keyring *kr = NULL;
    assert_int_equal(chmod(f->key_path, mode), 0);
    ASSERT_FAILS_WITH(crypto_keyring_from_keyfile(f->key_path, &kr, &err),
                      err, MV_E_PERM);
    assert_null(kr);
    assert_non_null(strstr(err.msg, f->key_path));
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_null(strchr(err.msg, '\n'));
}

static void test_key_file_mode_0644_refused(void **state)
{
    fixture *f = *state;
    assert_key_file_mode_refused(f, 0644);
    mv_err err;
    crypto_keyring *kr = NULL;
    (void)crypto_keyring_from_keyfile(f->key_path, &kr, &err);
    assert_non_null(strstr(err.msg, "readable by group or others (mode 0644)"));
}

static void test_key_file_mode_0640_refused(void **state)
{
    assert_key_file_mode_refused(*state, 0640);
    assert_key_file_mode_refused(*state, 0604);
    assert_key_file_mode_refused(*state, 0620);   /* writable is unsafe too */
}

static void test_key_file_mode_0600_accepted(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_keyring *kr = NULL;
    assert_int_equal(chmod(f->key_path, 0600), 0);
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);
    crypto_keyring_free(kr);
    assert_int_equal(chmod(f->key_path, 0400), 0);
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);
    crypto_keyring_free(kr);
}

static void test_key_file_symlink_refused(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_keyring *kr = NULL;
    char *link = tu_path(f->dir, "link.key");
    assert_int_equal(symlink(f->key_path, link), 0);
    ASSERT_FAILS_WITH(crypto_keyring_from_keyfile(link, &kr, &err), err,
                      MV_E_PERM);
    assert_null(kr);
    assert_non_null(strstr(err.msg, "symbolic link"));
    free(link);
}

static void test_key_file_not_regular_or_missing(void **state)
{
    fixture *f = *state;
    mv_err err;
    crypto_keyring *kr = NULL;
    char *sub = tu_path(f->dir, "subdir");
    char *missing = tu_path(f->dir, "missing.key");
    assert_int_equal(mkdir(sub, 0700), 0);
    ASSERT_FAILS_WITH(crypto_keyring_from_keyfile(sub, &kr, &err), err,
                      MV_E_PERM);
    ASSERT_FAILS_WITH(crypto_keyring_from_keyfile(missing, &kr, &err), err,
                      MV_E_NOTFOUND);
    free(sub);
    free(missing);
}

static void test_key_file_refuses_overwrite(void **state)
{
    fixture *f = *state;
    mv_err err;
    char before[128], after[128];
    size_t n1 = read_file(f->key_path, before, sizeof before);
    ASSERT_FAILS_WITH(crypto_keyfile_create(f->key_path, &err), err,
                      MV_E_EXISTS);
    size_t n2 = read_file(f->key_path, after, sizeof after);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    /* Nor through a symbolic link (O_EXCL does not follow it). */
    char *link = tu_path(f->dir, "dangling.key");
    char *target = tu_path(f->dir, "target.key");
    assert_int_equal(symlink(target, link), 0);
    ASSERT_FAILS_WITH(crypto_keyfile_create(link, &err), err, MV_E_EXISTS);
    assert_int_equal(access(target, F_OK), -1);
    free(link);
    free(target);
}

static void test_key_file_malformed(void **state)
{
    fixture *f = *state;
    char valid[128];
    size_t vn = read_file(f->key_path, valid, sizeof valid);
    char body[45];
    memcpy(body, valid + 16, 44);
    body[44] = '\0';

    char big[300];
    memset(big, 'A', sizeof big);
    memcpy(big, "medvault-key-v1\n", 16);
    char texts[10][160];
    snprintf(texts[0], sizeof texts[0], "medvault-key-v2\n%s\n", body);
    snprintf(texts[1], sizeof texts[1], "%s", "");
    snprintf(texts[2], sizeof texts[2], "%s", "medvault-key-v1\n");
    snprintf(texts[3], sizeof texts[3], "medvault-key-v1\n%.40s\n", body);
    snprintf(texts[4], sizeof texts[4], "medvault-key-v1\n%s\n\n", body);
    snprintf(texts[5], sizeof texts[5], "medvault-key-v1\n%s\nextra\n", body);
    snprintf(texts[6], sizeof texts[6], "medvault-key-v1\n %s\n", body);
    /* base64 of 33 bytes: right alphabet, wrong key length */
    unsigned char b33[33];
    char b33_text[64];
    crypto_random(b33, sizeof b33);
    crypto_b64_encode(b33, sizeof b33, b33_text);
    snprintf(texts[7], sizeof texts[7], "medvault-key-v1\n%s\n", b33_text);
    snprintf(texts[8], sizeof texts[8], "medvault-key-v1\n%.43s!\n", body);
    snprintf(texts[9], sizeof texts[9], "medvault-key-v1\r\n%s\n", body);

    char *path = tu_path(f->dir, "bad.key");
    for (size_t i = 0; i <= 10; i++) {
        mv_err err;
        crypto_keyring *kr = NULL;
        if (i < 10)
            write_file(path, texts[i], strlen(texts[i]), 0600);
        else
            write_file(path, big, sizeof big, 0600);
        ASSERT_FAILS_WITH(crypto_keyring_from_keyfile(path, &kr, &err), err,
                          MV_E_KEY);
        assert_null(kr);
        char expect[512];
        snprintf(expect, sizeof expect,
                 "key file %s is not a medvault key file", path);
        assert_string_equal(err.msg, expect);
        assert_null(strstr(err.msg, body));   /* never the key text */
    }
    /* Without the final newline it is still the key. */
    mv_err err;
    crypto_keyring *kr = NULL;
    write_file(path, valid, vn - 1, 0600);
    ASSERT_OK(crypto_keyring_from_keyfile(path, &kr, &err), err);
    crypto_keyring_free(kr);
    free(path);
}

/* ---- Rotation ----------------------------------------------------------- */

static void test_rewrap_keeps_data_readable(void **state)
{
    fixture *f = *state;
    mv_err err;
    stored_dk d;
    dk_make(f->kr, "patient-rot", &d);
    assert_int_equal(d.version, 1);
    crypto_dk_ref old_ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &old_ref, "ad", "before rotation", &ct);

    crypto_wrapped m2 = {0};
    ASSERT_OK(crypto_master_new(f->kr, 2, &m2, &err), err);
    ASSERT_OK(crypto_master_use(f->kr, 2, &err), err);

    uint32_t new_version = 0;
    crypto_wrapped rewrapped = {0};
    ASSERT_OK(crypto_dk_rewrap(f->kr, &old_ref, &new_version, &rewrapped,
                               &err), err);
    assert_int_equal(new_version, 2);
    assert_memory_not_equal(rewrapped.data, d.w.data, d.w.len);
    crypto_dk_ref new_ref = {d.owner, new_version, rewrapped.data,
                             rewrapped.len};

    /* Same data key: the old body opens under the new reference. */
    assert_int_equal(open_code(f->kr, &new_ref, "ad", ct.data, ct.len,
                               "before rotation"), MV_OK);
    /* The old reference still opens while version 1 is unlocked... */
    assert_int_equal(open_code(f->kr, &old_ref, "ad", ct.data, ct.len,
                               "before rotation"), MV_OK);
    /* ...and not after master_forget, even though it was just cached. */
    crypto_master_forget(f->kr, 1);
    assert_int_equal(open_code(f->kr, &old_ref, "ad", ct.data, ct.len, NULL),
                     MV_E_KEY);
    assert_int_equal(open_code(f->kr, &new_ref, "ad", ct.data, ct.len,
                               "before rotation"), MV_OK);

    /* New data keys are wrapped under the current version. */
    stored_dk fresh;
    dk_make(f->kr, "patient-new", &fresh);
    assert_int_equal(fresh.version, 2);

    /* A keyring that never saw the cache: the rewrapped row opens there too. */
    crypto_keyring *kr = NULL;
    ASSERT_OK(crypto_keyring_from_keyfile(f->key_path, &kr, &err), err);
    crypto_keyring_set_store_id(kr, store_a);
    ASSERT_OK(crypto_master_load(kr, 2, m2.data, m2.len, &err), err);
    assert_int_equal(open_code(kr, &new_ref, "ad", ct.data, ct.len,
                               "before rotation"), MV_OK);
    crypto_keyring_free(kr);

    crypto_wrapped_free(&fresh.w);
    crypto_wrapped_free(&rewrapped);
    crypto_wrapped_free(&m2);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
}

/* ---- The data-key cache ------------------------------------------------- */

#define MANY_OWNERS 10000
_Static_assert(MANY_OWNERS > CRYPTO_CACHE_SLOTS,
               "the test must overflow the cache");

static void test_cache_more_owners_than_slots(void **state)
{
    fixture *f = *state;
    stored_dk *dks = calloc(MANY_OWNERS, sizeof *dks);
    mv_buf *cts = calloc(MANY_OWNERS, sizeof *cts);
    assert_non_null(dks);
    assert_non_null(cts);
    char owner[64];
    for (int i = 0; i < MANY_OWNERS; i++) {
        snprintf(owner, sizeof owner, "patient-%d", i);
        dk_make(f->kr, owner, &dks[i]);
        crypto_dk_ref r = dk_ref(&dks[i]);
        seal_str(f->kr, &r, "ad", owner, &cts[i]);
    }
    /* Twice, forwards then backwards: hits, misses and evictions all serve
     * the right key. */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < MANY_OWNERS; k++) {
            int i = pass == 0 ? k : MANY_OWNERS - 1 - k;
            crypto_dk_ref r = dk_ref(&dks[i]);
            assert_int_equal(open_code(f->kr, &r, "ad", cts[i].data,
                                       cts[i].len, dks[i].owner), MV_OK);
        }
    }
    /* And never another owner's key. */
    for (int i = 0; i + 1 < MANY_OWNERS; i += 97) {
        crypto_dk_ref r = dk_ref(&dks[i + 1]);
        assert_int_equal(open_code(f->kr, &r, "ad", cts[i].data, cts[i].len,
                                   NULL), MV_E_INTEGRITY);
    }
    for (int i = 0; i < MANY_OWNERS; i++) {
        mv_buf_free(&cts[i]);
        crypto_wrapped_free(&dks[i].w);
    }
    free(cts);
    free(dks);
}

static void test_cache_never_serves_stale_key(void **state)
{
    fixture *f = *state;
    /* Two data keys for the same owner and master version (a row that was
     * replaced): each reference gets its own key. */
    stored_dk d1, d2;
    dk_make(f->kr, "patient-same", &d1);
    dk_make(f->kr, "patient-same", &d2);
    crypto_dk_ref r1 = dk_ref(&d1), r2 = dk_ref(&d2);
    mv_buf c1 = {0}, c2 = {0};
    seal_str(f->kr, &r1, "ad", "one", &c1);
    seal_str(f->kr, &r2, "ad", "two", &c2);
    assert_int_equal(open_code(f->kr, &r1, "ad", c1.data, c1.len, "one"),
                     MV_OK);
    assert_int_equal(open_code(f->kr, &r2, "ad", c2.data, c2.len, "two"),
                     MV_OK);
    assert_int_equal(open_code(f->kr, &r1, "ad", c2.data, c2.len, NULL),
                     MV_E_INTEGRITY);
    assert_int_equal(open_code(f->kr, &r2, "ad", c1.data, c1.len, NULL),
                     MV_E_INTEGRITY);

    /* A tampered copy of a cached row is not a cache hit. */
    unsigned char bad[72];
    memcpy(bad, d1.w.data, sizeof bad);
    bad[30] ^= 0x01;
    crypto_dk_ref rb = {d1.owner, d1.version, bad, sizeof bad};
    assert_int_equal(open_code(f->kr, &rb, "ad", c1.data, c1.len, NULL),
                     MV_E_INTEGRITY);
    mv_buf_free(&c1);
    mv_buf_free(&c2);
    crypto_wrapped_free(&d1.w);
    crypto_wrapped_free(&d2.w);
}

static void test_dk_forget_then_reuse(void **state)
{
    fixture *f = *state;
    stored_dk d, other;
    dk_make(f->kr, "patient-shred", &d);
    dk_make(f->kr, "patient-keep", &other);
    crypto_dk_ref ref = dk_ref(&d);
    mv_buf ct = {0};
    seal_str(f->kr, &ref, "ad", "soon forgotten", &ct);
    assert_int_equal(crypto_dk_cache_count(f->kr, "patient-shred"), 1);
    assert_int_equal(crypto_dk_cache_count(f->kr, "patient-keep"), 1);

    crypto_dk_forget(f->kr, "patient-shred");
    assert_int_equal(crypto_dk_cache_count(f->kr, "patient-shred"), 0);
    assert_int_equal(crypto_dk_cache_count(f->kr, "patient-keep"), 1);

    /* Forgetting is about the cache only: the wrapped row re-unwraps. */
    assert_int_equal(open_code(f->kr, &ref, "ad", ct.data, ct.len,
                               "soon forgotten"), MV_OK);
    assert_int_equal(crypto_dk_cache_count(f->kr, "patient-shred"), 1);

    crypto_dk_forget(f->kr, "nobody");   /* harmless */
    crypto_dk_forget(f->kr, NULL);
    mv_buf_free(&ct);
    crypto_wrapped_free(&d.w);
    crypto_wrapped_free(&other.w);
}

/* ---- Derived keys ------------------------------------------------------- */

static void blind(fixture *f, const stored_dk *idx, const char *field,
                  const char *value, unsigned char out[MV_INDEX_BYTES])
{
    mv_err err;
    crypto_dk_ref r = dk_ref(idx);
    ASSERT_OK(crypto_blind_index(f->kr, &r, field, value, strlen(value), out,
                                 &err), err);
}

static void test_blind_index(void **state)
{
    fixture *f = *state;
    stored_dk idx, idx2, patient;
    dk_make(f->kr, MV_OWNER_INDEX, &idx);
    dk_make(f->kr, MV_OWNER_INDEX, &idx2);
    dk_make(f->kr, "patient-9", &patient);
    unsigned char a[32], b[32], other_field[32], other_value[32],
        other_key[32], empty[32];
    blind(f, &idx, "Patient.identifier", "123-45", a);
    blind(f, &idx, "Patient.identifier", "123-45", b);
    assert_memory_equal(a, b, 32);                       /* deterministic */
    blind(f, &idx, "Patient.name", "123-45", other_field);
    assert_memory_not_equal(a, other_field, 32);
    blind(f, &idx, "Patient.identifier", "123-46", other_value);
    assert_memory_not_equal(a, other_value, 32);
    blind(f, &idx2, "Patient.identifier", "123-45", other_key);
    assert_memory_not_equal(a, other_key, 32);
    blind(f, &idx, "Patient.identifier", "", empty);
    assert_memory_not_equal(a, empty, 32);

    /* Only the "#index" data key makes index keys. */
    mv_err err;
    crypto_dk_ref pr = dk_ref(&patient);
    ASSERT_FAILS_WITH(crypto_blind_index(f->kr, &pr, "Patient.identifier",
                                         "123-45", 6, a, &err),
                      err, MV_E_INVALID);
    crypto_wrapped_free(&idx.w);
    crypto_wrapped_free(&idx2.w);
    crypto_wrapped_free(&patient.w);
}

static void link_of(fixture *f, const stored_dk *audit,
                    const unsigned char prev[32], const unsigned char *entry,
                    size_t n, unsigned char out[32])
{
    mv_err err;
    crypto_dk_ref r = dk_ref(audit);
    crypto_chain *c = NULL;
    ASSERT_OK(crypto_chain_open(f->kr, &r, &c, &err), err);
    crypto_chain_link(c, prev, entry, n, out);
    crypto_chain_close(c);
}

static void test_chain_link(void **state)
{
    fixture *f = *state;
    stored_dk audit, audit2;
    dk_make(f->kr, MV_OWNER_AUDIT, &audit);
    dk_make(f->kr, MV_OWNER_AUDIT, &audit2);
    unsigned char prev[32], entry[40], base[32], again[32], changed[32];
    crypto_random(prev, sizeof prev);
    crypto_random(entry, sizeof entry);
    link_of(f, &audit, prev, entry, sizeof entry, base);
    link_of(f, &audit, prev, entry, sizeof entry, again);
    assert_memory_equal(base, again, 32);

    for (size_t i = 0; i < sizeof prev; i++) {
        prev[i] ^= 0x80;
        link_of(f, &audit, prev, entry, sizeof entry, changed);
        assert_memory_not_equal(base, changed, 32);
        prev[i] ^= 0x80;
    }
    for (size_t i = 0; i < sizeof entry; i++) {
        entry[i] ^= 0x01;
        link_of(f, &audit, prev, entry, sizeof entry, changed);
        assert_memory_not_equal(base, changed, 32);
        entry[i] ^= 0x01;
    }
    link_of(f, &audit, prev, entry, sizeof entry - 1, changed);
    assert_memory_not_equal(base, changed, 32);

    /* Keyed: another audit key, or no key at all, gives another link. */
    link_of(f, &audit2, prev, entry, sizeof entry, changed);
    assert_memory_not_equal(base, changed, 32);
    unsigned char plain[72], unkeyed[32];
    memcpy(plain, prev, 32);
    memcpy(plain + 32, entry, sizeof entry);
    crypto_digest(plain, sizeof plain, unkeyed);
    assert_memory_not_equal(base, unkeyed, 32);

    mv_err err;
    stored_dk idx;
    dk_make(f->kr, MV_OWNER_INDEX, &idx);
    crypto_dk_ref ir = dk_ref(&idx);
    crypto_chain *c = NULL;
    ASSERT_FAILS_WITH(crypto_chain_open(f->kr, &ir, &c, &err), err, MV_E_INVALID);
    assert_null(c);
    crypto_wrapped_free(&idx.w);
    crypto_wrapped_free(&audit.w);
    crypto_wrapped_free(&audit2.w);
}

static void test_sign_verify(void **state)
{
    fixture *f = *state;
    mv_err err;
    stored_dk audit, audit2;
    dk_make(f->kr, MV_OWNER_AUDIT, &audit);
    dk_make(f->kr, MV_OWNER_AUDIT, &audit2);
    crypto_dk_ref r = dk_ref(&audit), r2 = dk_ref(&audit2);
    unsigned char pub[32], pub2[32], sig[64];
    char msg[] = "checkpoint 42 head=abcdef";
    ASSERT_OK(crypto_sign_pubkey(f->kr, &r, pub, &err), err);
    ASSERT_OK(crypto_sign_pubkey(f->kr, &r2, pub2, &err), err);
    assert_memory_not_equal(pub, pub2, 32);
    ASSERT_OK(crypto_sign_msg(f->kr, &r, msg, strlen(msg), sig, &err), err);

    assert_int_equal(crypto_sign_verify(pub, msg, strlen(msg), sig), 0);
    assert_int_equal(crypto_sign_verify(pub2, msg, strlen(msg), sig), -1);
    msg[11] ^= 0x01;
    assert_int_equal(crypto_sign_verify(pub, msg, strlen(msg), sig), -1);
    msg[11] ^= 0x01;
    assert_int_equal(crypto_sign_verify(pub, msg, strlen(msg) - 1, sig), -1);
    sig[5] ^= 0x01;
    assert_int_equal(crypto_sign_verify(pub, msg, strlen(msg), sig), -1);

    /* The signing key survives rotation: it derives from the data key. */
    crypto_wrapped m2 = {0}, rewrapped = {0};
    uint32_t v = 0;
    ASSERT_OK(crypto_master_new(f->kr, 2, &m2, &err), err);
    ASSERT_OK(crypto_master_use(f->kr, 2, &err), err);
    ASSERT_OK(crypto_dk_rewrap(f->kr, &r, &v, &rewrapped, &err), err);
    crypto_dk_ref rr = {audit.owner, v, rewrapped.data, rewrapped.len};
    unsigned char pub_after[32];
    ASSERT_OK(crypto_sign_pubkey(f->kr, &rr, pub_after, &err), err);
    assert_memory_equal(pub, pub_after, 32);

    stored_dk patient;
    dk_make(f->kr, "patient-sig", &patient);
    crypto_dk_ref pr = dk_ref(&patient);
    ASSERT_FAILS_WITH(crypto_sign_msg(f->kr, &pr, msg, strlen(msg), sig, &err),
                      err, MV_E_INVALID);
    crypto_wrapped_free(&patient.w);
    crypto_wrapped_free(&m2);
    crypto_wrapped_free(&rewrapped);
    crypto_wrapped_free(&audit.w);
    crypto_wrapped_free(&audit2.w);
}

/* ---- Threads ------------------------------------------------------------ */

#define THREADS 4
#define SHARED_OWNERS 8
#define ROUNDS 1500

typedef struct worker {
    crypto_keyring *kr;
    const stored_dk *dks;
    int id;
    int failures;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        const stored_dk *d = &w->dks[(w->id + i) % SHARED_OWNERS];
        crypto_dk_ref r = dk_ref(d);
        char pt[128];
        snprintf(pt, sizeof pt, "thread %d round %d %s", w->id, i, d->owner);
        mv_buf ct = {0}, out = {0};
        mv_err err;
        if (crypto_seal(w->kr, &r, d->owner, strlen(d->owner), pt, strlen(pt),
                        &ct, &err) != 0 ||
            crypto_open(w->kr, &r, d->owner, strlen(d->owner), ct.data, ct.len,
                        &out, &err) != 0 ||
            out.len != strlen(pt) || memcmp(out.data, pt, out.len) != 0)
            w->failures++;
        if (i % 50 == 0)
            crypto_dk_forget(w->kr, d->owner);   /* race the cache */
        mv_buf_free(&ct);
        mv_buf_free(&out);
    }
    return NULL;
}

static void test_concurrent_seal_open(void **state)
{
    fixture *f = *state;
    stored_dk dks[SHARED_OWNERS];
    for (int i = 0; i < SHARED_OWNERS; i++) {
        char owner[32];
        snprintf(owner, sizeof owner, "patient-t%d", i);
        dk_make(f->kr, owner, &dks[i]);
    }
    pthread_t tid[THREADS];
    worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){f->kr, dks, t, 0};
        assert_int_equal(pthread_create(&tid[t], NULL, worker_run, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        assert_int_equal(w[t].failures, 0);
    }
    for (int i = 0; i < SHARED_OWNERS; i++)
        crypto_wrapped_free(&dks[i].w);
}

/* ---- Runner ------------------------------------------------------------- */

#define FX(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_init_disables_core_dumps),
        cmocka_unit_test(test_digest_random_id_memcmp),
        cmocka_unit_test(test_base64_round_trip),
        FX(test_seal_open_round_trip),
        FX(test_flipped_byte_in_nonce),
        FX(test_flipped_byte_in_ciphertext),
        FX(test_flipped_byte_in_tag),
        FX(test_truncated_ciphertext),
        FX(test_wrong_ad),
        FX(test_wrapped_key_copied_to_other_owner),
        FX(test_ciphertext_moved_to_other_owner),
        FX(test_master_new_and_use),
        FX(test_reopen_with_same_key_file),
        FX(test_master_load_wrong_key_file),
        FX(test_master_bound_to_store_and_version),
        cmocka_unit_test(test_master_load_wrong_passphrase),
        cmocka_unit_test(test_passphrase_rejects_bad_input),
        FX(test_key_file_format),
        FX(test_key_file_mode_0644_refused),
        FX(test_key_file_mode_0640_refused),
        FX(test_key_file_mode_0600_accepted),
        FX(test_key_file_symlink_refused),
        FX(test_key_file_not_regular_or_missing),
        FX(test_key_file_refuses_overwrite),
        FX(test_key_file_malformed),
        FX(test_rewrap_keeps_data_readable),
        FX(test_cache_more_owners_than_slots),
        FX(test_cache_never_serves_stale_key),
        FX(test_dk_forget_then_reuse),
        FX(test_blind_index),
        FX(test_chain_link),
        FX(test_sign_verify),
        FX(test_concurrent_seal_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
