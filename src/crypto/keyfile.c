/*
 * keyfile.c -- the root key as a file: creating one, and opening a keyring
 * from one.
 *
 * Why it exists: a key file is the whole security of a store that does not
 * use a passphrase, so reading it is deliberately fussy.  It must be a
 * regular file reached without following a symbolic link (O_NOFOLLOW: a link
 * planted in the key's place cannot redirect us) and unreadable by group and
 * others; its format is parsed strictly; and its contents are only ever held
 * in sodium_malloc memory (the thread's scratch) and wiped after use.
 *
 * Format: "medvault-key-v1\n" || base64 (original alphabet, padded) of the
 * 32-byte root key || "\n".
 */
#include "crypto_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL
#define KEY_B64_CHARS (sodium_base64_ENCODED_LEN(MV_KEY_BYTES, B64_VARIANT) - 1)

static int path_check(const char *path, mv_err *err)
{
    if (path == NULL || path[0] == '\0')
        return mv_fail(err, MV_E_INVALID, "no key file path given");
    return 0;
}

/* ---- Creating ----------------------------------------------------------- */

/* The key file text for root into s->key_text; returns its length. */
static size_t keyfile_format(crypto_scratch *s, const unsigned char *root)
{
    size_t magic = sizeof CRYPTO_KEYFILE_MAGIC - 1;
    memcpy(s->key_text, CRYPTO_KEYFILE_MAGIC, magic);
    sodium_bin2base64((char *)s->key_text + magic, sizeof s->key_text - magic,
                      root, MV_KEY_BYTES, B64_VARIANT);
    size_t len = magic + KEY_B64_CHARS;
    s->key_text[len++] = '\n';
    return len;
}

int crypto_keyfile_create(const char *path, mv_err *err)
{
    if (path_check(path, err) != 0)
        return -1;
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    randombytes_buf(s->subkey, MV_KEY_BYTES);
    size_t len = keyfile_format(s, s->subkey);
    int rc = mv_file_write_new(path, 0600, s->key_text, len, err);
    crypto_scratch_wipe(s);
    if (rc != 0 && err != NULL && err->code == MV_E_EXISTS)
        mv_fail(err, MV_E_EXISTS,
                "key file %s already exists; refusing to overwrite it", path);
    return rc;
}

/* ---- Opening ------------------------------------------------------------ */

static int open_failure(const char *path, int e, mv_err *err)
{
    struct stat st;
    if (e == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return mv_fail(err, MV_E_PERM,
                       "key file %s is a symbolic link; refusing to follow it",
                       path);
    if (e == ENOENT)
        return mv_fail(err, MV_E_NOTFOUND, "key file %s does not exist", path);
    if (e == EACCES)
        return mv_fail(err, MV_E_PERM, "cannot read key file %s: %s", path,
                       strerror(e));
    return mv_fail(err, MV_E_IO, "cannot open key file %s: %s", path,
                   strerror(e));
}

/* The file behind fd must be a regular file closed to group and others. */
static int mode_check(int fd, const char *path, mv_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return mv_fail(err, MV_E_IO, "cannot stat key file %s: %s", path,
                       strerror(errno));
    if (!S_ISREG(st.st_mode))
        return mv_fail(err, MV_E_PERM, "key file %s is not a regular file",
                       path);
    unsigned mode = (unsigned)(st.st_mode & 07777);
    if ((mode & 077) != 0)
        return mv_fail(err, MV_E_PERM,
                       "key file %s is %s by group or others (mode %04o); "
                       "run: chmod 600 %s", path,
                       (mode & 044) ? "readable" : "writable", mode, path);
    return 0;
}

/* Read the whole file into buf (cap bytes, secure memory).  A file that does
 * not fit is not a key file. */
static int read_small(int fd, const char *path, unsigned char *buf,
                      size_t cap, size_t *n, mv_err *err)
{
    size_t len = 0;
    for (;;) {
        if (len == cap)
            return mv_fail(err, MV_E_KEY,
                           "key file %s is not a medvault key file", path);
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mv_fail(err, MV_E_IO, "cannot read key file %s: %s", path,
                           strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *n = len;
    return 0;
}

/* Open, check and read the key file into s->key_text. */
static int keyfile_read(const char *path, crypto_scratch *s, size_t *n,
                        mv_err *err)
{
    /* O_NONBLOCK: a FIFO in the key's place must not hang us before the
     * regular-file check; it changes nothing for a regular file. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                        O_NONBLOCK);
    if (fd < 0)
        return open_failure(path, errno, err);
    int rc = mode_check(fd, path, err);
    if (rc == 0)
        rc = read_small(fd, path, s->key_text, sizeof s->key_text, n, err);
    close(fd);
    return rc;
}

/* Strictly parse the key file text into root. */
static int keyfile_parse(const char *path, const unsigned char *text,
                         size_t n, unsigned char root[MV_KEY_BYTES],
                         mv_err *err)
{
    size_t magic = sizeof CRYPTO_KEYFILE_MAGIC - 1;
    if (n < magic || memcmp(text, CRYPTO_KEYFILE_MAGIC, magic) != 0)
        goto malformed;
    const char *body = (const char *)text + magic;
    size_t body_len = n - magic;
    if (body_len > 0 && body[body_len - 1] == '\n')
        body_len--;
    size_t got = 0;
    const char *end = NULL;
    if (body_len != KEY_B64_CHARS ||
        sodium_base642bin(root, MV_KEY_BYTES, body, body_len, NULL, &got,
                          &end, B64_VARIANT) != 0 ||
        got != MV_KEY_BYTES || end != body + body_len)
        goto malformed;
    return 0;
malformed:
    sodium_memzero(root, MV_KEY_BYTES);
    return mv_fail(err, MV_E_KEY, "key file %s is not a medvault key file",
                   path);
}

int crypto_keyring_from_keyfile(const char *path, crypto_keyring **out,
                                mv_err *err)
{
    *out = NULL;
    if (path_check(path, err) != 0)
        return -1;
    crypto_scratch *s = crypto_scratch_get(err);
    if (s == NULL)
        return -1;
    crypto_keyring *kr = NULL;
    size_t n = 0;
    int rc = keyfile_read(path, s, &n, err);
    if (rc == 0)
        rc = keyring_alloc(&kr, err);
    if (rc == 0)
        rc = keyfile_parse(path, s->key_text, n, kr->secrets->root, err);
    crypto_scratch_wipe(s);
    if (rc != 0) {
        crypto_keyring_free(kr);
        return -1;
    }
    *out = kr;
    return 0;
}
