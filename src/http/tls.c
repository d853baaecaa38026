/*
 * tls.c -- the server's certificate: creating a self-signed one, and loading
 * and checking the PEM files before the daemon starts.
 *
 * Why this exists: a hospital deployment needs HTTPS from the first minute,
 * before anyone has obtained a certificate from a real authority, and a
 * self-signed certificate made by hand with the wrong names or a weak key
 * teaches people to click through warnings.  So medvault makes one itself:
 * ECDSA P-256, SHA-256, CN = first host, one subjectAltName per host, valid
 * 397 days, the key written once with mode 0600 and never overwritten.
 * Loading checks the key's permissions and that the pair matches, so a
 * start-up failure says what is wrong instead of "cannot start".
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/crypto.h"

#define CERT_VALID_DAYS   397
#define CERT_BACKDATE_S   3600       /* tolerate clocks a little behind ours */
#define HOST_MAX          253
#define PEM_CERT_MAX      (1024 * 1024)
#define PEM_KEY_MAX       (64 * 1024)

/* ---- Host list ------------------------------------------------------------ */

/* Next comma-separated host, trimmed, brackets removed ("[::1]" -> "::1").
 * Returns 1 with a host, 0 at the end, -1 on a bad entry. */
static int next_host(const char **cursor, char host[HOST_MAX + 1])
{
    const char *p = *cursor;
    if (*p == '\0')
        return 0;
    const char *comma = strchr(p, ',');
    const char *end = comma ? comma : p + strlen(p);
    *cursor = comma ? comma + 1 : end;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p >= 2 && *p == '[' && end[-1] == ']') {
        p++;
        end--;
    }
    size_t n = (size_t)(end - p);
    if (n == 0 || n > HOST_MAX)
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    return 1;
}

static int is_dns_name(const char *h)
{
    if (*h == '.' || *h == '-')
        return 0;
    for (; *h; h++) {
        unsigned char c = (unsigned char)*h;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* One subjectAltName entry: an IP address when it parses as one. */
static int add_alt_name(gnutls_x509_crt_t crt, const char *host)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1)
        return gnutls_x509_crt_set_subject_alt_name(
            crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
    if (inet_pton(AF_INET6, host, ip) == 1)
        return gnutls_x509_crt_set_subject_alt_name(
            crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
    if (!is_dns_name(host))
        return GNUTLS_E_INVALID_REQUEST;
    return gnutls_x509_crt_set_subject_alt_name(
        crt, GNUTLS_SAN_DNSNAME, host, (unsigned)strlen(host),
        GNUTLS_FSAN_APPEND);
}

/* Subject CN = first host; subjectAltName = every host. */
static int set_names(gnutls_x509_crt_t crt, const char *hosts, mv_err *err)
{
    char host[HOST_MAX + 1];
    const char *cursor = hosts;
    int n = 0, r;
    while ((r = next_host(&cursor, host)) == 1) {
        if (n == 0 && gnutls_x509_crt_set_dn_by_oid(
                crt, GNUTLS_OID_X520_COMMON_NAME, 0, host,
                (unsigned)strlen(host)) < 0)
            return mv_fail(err, MV_E_INVALID, "host '%.64s' cannot be a "
                           "certificate name", host);
        if (add_alt_name(crt, host) < 0)
            return mv_fail(err, MV_E_INVALID, "host '%.64s' is neither an IP "
                           "address nor a DNS name", host);
        n++;
    }
    if (r < 0 || n == 0)
        return mv_fail(err, MV_E_INVALID,
                       "hosts must be a comma-separated list of names or "
                       "addresses");
    return 0;
}

/* ---- Certificate ---------------------------------------------------------- */

static int set_validity_and_serial(gnutls_x509_crt_t crt)
{
    unsigned char serial[16];
    crypto_random(serial, sizeof serial);
    serial[0] &= 0x7f;               /* positive */
    serial[0] |= 0x01;               /* and never shortened to fewer bytes */
    time_t start = time(NULL) - CERT_BACKDATE_S;
    if (gnutls_x509_crt_set_serial(crt, serial, sizeof serial) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, start) < 0 ||
        gnutls_x509_crt_set_expiration_time(
            crt, start + (time_t)CERT_VALID_DAYS * 86400) < 0)
        return -1;
    return 0;
}

/* A self-signed end-entity certificate for TLS servers. */
static int set_extensions(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    unsigned char key_id[64];
    size_t key_id_len = sizeof key_id;
    if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
        gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, key_id,
                                   &key_id_len) < 0 ||
        gnutls_x509_crt_set_subject_key_id(crt, key_id, key_id_len) < 0)
        return -1;
    return 0;
}

static int sign_self(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    gnutls_privkey_t signer;
    if (gnutls_privkey_init(&signer) < 0)
        return -1;
    int rc = -1;
    if (gnutls_privkey_import_x509(signer, key, 0) >= 0 &&
        gnutls_x509_crt_privkey_sign(crt, crt, signer, GNUTLS_DIG_SHA256, 0) >= 0)
        rc = 0;
    gnutls_privkey_deinit(signer);
    return rc;
}

/* Build and export both PEMs.  The key PEM is wiped by the caller. */
static int make_pair(const char *hosts, gnutls_datum_t *cert_pem,
                     gnutls_datum_t *key_pem, mv_err *err)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    int rc = -1;
    if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0) {
        mv_fail(err, MV_E_NOMEM, "out of memory");
        goto done;
    }
    if (gnutls_x509_privkey_generate(
            key, GNUTLS_PK_ECDSA,
            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0) {
        mv_fail(err, MV_E_INTERNAL, "cannot generate the TLS key");
        goto done;
    }
    if (set_names(crt, hosts, err) != 0)
        goto done;
    if (set_validity_and_serial(crt) != 0 || set_extensions(crt, key) != 0 ||
        sign_self(crt, key) != 0) {
        mv_fail(err, MV_E_INTERNAL, "cannot build the TLS certificate");
        goto done;
    }
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, cert_pem) < 0 ||
        gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                          GNUTLS_PKCS_PLAIN, key_pem) < 0) {
        mv_fail(err, MV_E_INTERNAL, "cannot encode the TLS certificate");
        goto done;
    }
    rc = 0;
done:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

static void free_datum(gnutls_datum_t *d, int wipe)
{
    if (d->data != NULL && wipe)
        gnutls_memset(d->data, 0, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    d->size = 0;
}

static int refuse_existing(const char *path, mv_err *err)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return mv_fail(err, MV_E_EXISTS, "%s already exists; refusing to "
                       "overwrite it", path);
    return 0;
}

int http_tls_self_signed(const char *cert_path, const char *key_path,
                         const char *hosts, mv_err *err)
{
    if (cert_path == NULL || key_path == NULL || hosts == NULL)
        return mv_fail(err, MV_E_INVALID, "certificate, key and hosts are "
                       "required");
    if (refuse_existing(cert_path, err) != 0 ||
        refuse_existing(key_path, err) != 0)
        return -1;
    gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
    int rc = -1;
    if (make_pair(hosts, &cert, &key, err) != 0)
        goto done;
    /* Both files are created exclusively; if the certificate cannot be
     * written, the key just created is removed again. */
    if (mv_file_write_new(key_path, 0600, key.data, key.size, err) != 0)
        goto done;
    if (mv_file_write_new(cert_path, 0644, cert.data, cert.size, err) != 0) {
        unlink(key_path);
        goto done;
    }
    rc = 0;
done:
    free_datum(&key, 1);
    free_datum(&cert, 0);
    return rc;
}

/* ---- Loading ---------------------------------------------------------------- */

/* The key file must be a regular file closed to group and others. */
static int check_key_mode(const char *path, mv_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return mv_fail(err, errno == ENOENT ? MV_E_NOTFOUND : MV_E_PERM,
                       "cannot open TLS key %s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st);
    close(fd);
    if (rc != 0 || !S_ISREG(st.st_mode))
        return mv_fail(err, MV_E_PERM, "TLS key %s is not a regular file", path);
    if ((st.st_mode & 077) != 0)
        return mv_fail(err, MV_E_PERM, "TLS key %s is accessible by group or "
                       "others (mode %04o); run: chmod 600 %s", path,
                       (unsigned)(st.st_mode & 07777), path);
    return 0;
}

/* Read a PEM file and NUL-terminate it (MHD takes C strings). */
static int read_pem(const char *path, size_t max, mv_buf *out, mv_err *err)
{
    if (mv_file_read(path, max, out, err) != 0)
        return -1;
    if (mv_buf_append(out, "", 1, err) != 0) {
        mv_buf_free(out);
        return -1;
    }
    return 0;
}

static int check_pair(const char *cert_path, const mv_buf *cert,
                      const mv_buf *key, mv_err *err)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    gnutls_datum_t c = { cert->data, (unsigned)(cert->len - 1) };
    gnutls_datum_t k = { key->data, (unsigned)(key->len - 1) };
    int r = gnutls_certificate_set_x509_key_mem(cred, &c, &k,
                                                GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r < 0)
        return mv_fail(err, MV_E_INVALID, "TLS certificate %s and its key "
                       "cannot be used: %s", cert_path, gnutls_strerror(r));
    return 0;
}

int http_tls_load(const char *cert_path, const char *key_path, mv_buf *cert,
                  mv_buf *key, mv_err *err)
{
    if (cert_path == NULL || key_path == NULL)
        return mv_fail(err, MV_E_INVALID,
                       "https needs a TLS certificate and key");
    if (check_key_mode(key_path, err) != 0 ||
        read_pem(cert_path, PEM_CERT_MAX, cert, err) != 0)
        return -1;
    if (read_pem(key_path, PEM_KEY_MAX, key, err) != 0) {
        mv_buf_free(cert);
        return -1;
    }
    if (check_pair(cert_path, cert, key, err) != 0) {
        mv_buf_free(cert);
        http_tls_free_key(key);
        return -1;
    }
    return 0;
}

void http_tls_free_key(mv_buf *key)
{
    if (key->data != NULL)
        gnutls_memset(key->data, 0, key->cap);
    mv_buf_free(key);
}
