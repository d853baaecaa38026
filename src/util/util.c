/*
 * util.c -- the error pattern, owned buffers, time, hex and file helpers that
 * every subsystem shares (see util.h for why they live together).
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- Errors ------------------------------------------------------------- */

int mv_fail(mv_err *err, mv_code code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* One line, always: a message must never break a log or a CLI line. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

void mv_err_clear(mv_err *err)
{
    if (err == NULL)
        return;
    err->code = MV_OK;
    err->msg[0] = '\0';
}

const char *mv_code_name(mv_code code)
{
    switch (code) {
    case MV_OK:          return "ok";
    case MV_E_INVALID:   return "invalid";
    case MV_E_IO:        return "io";
    case MV_E_NOMEM:     return "no-memory";
    case MV_E_KEY:       return "key";
    case MV_E_PERM:      return "permission";
    case MV_E_INTEGRITY: return "integrity";
    case MV_E_NOTFOUND:  return "not-found";
    case MV_E_GONE:      return "gone";
    case MV_E_EXISTS:    return "exists";
    case MV_E_CONFLICT:  return "conflict";
    case MV_E_TAMPER:    return "tamper";
    case MV_E_INTERNAL:  return "internal";
    }
    return "unknown";
}

/* ---- Owned buffers ------------------------------------------------------ */

int mv_buf_reserve(mv_buf *b, size_t extra, mv_err *err)
{
    if (extra > SIZE_MAX - b->len)
        return mv_fail(err, MV_E_NOMEM, "buffer size overflow");
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

int mv_buf_append(mv_buf *b, const void *p, size_t n, mv_err *err)
{
    if (n == 0)
        return 0;
    if (mv_buf_reserve(b, n, err) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int mv_buf_append_field(mv_buf *b, const void *p, size_t n, mv_err *err)
{
    if (n > UINT32_MAX)
        return mv_fail(err, MV_E_INVALID, "field too long");
    unsigned char len[4] = {
        (unsigned char)(n >> 24), (unsigned char)(n >> 16),
        (unsigned char)(n >> 8), (unsigned char)n
    };
    if (mv_buf_append(b, len, sizeof len, err) != 0)
        return -1;
    return mv_buf_append(b, p, n, err);
}

int mv_buf_append_str_field(mv_buf *b, const char *s, mv_err *err)
{
    /* NULL and "" are distinct values: NULL is encoded as length 0xffffffff. */
    if (s == NULL) {
        static const unsigned char null_marker[4] = {0xff, 0xff, 0xff, 0xff};
        return mv_buf_append(b, null_marker, sizeof null_marker, err);
    }
    return mv_buf_append_field(b, s, strlen(s), err);
}

int mv_buf_append_u64(mv_buf *b, uint64_t v, mv_err *err)
{
    unsigned char be[8];
    for (int i = 7; i >= 0; i--) {
        be[i] = (unsigned char)v;
        v >>= 8;
    }
    return mv_buf_append(b, be, sizeof be, err);
}

void mv_buf_free(mv_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

unsigned char *mv_buf_steal(mv_buf *b, size_t *len)
{
    unsigned char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- Memory ------------------------------------------------------------- */

char *mv_strdup(const char *s, mv_err *err)
{
    char *p = strdup(s);
    if (p == NULL)
        mv_fail(err, MV_E_NOMEM, "out of memory");
    return p;
}

void *mv_calloc(size_t n, size_t size, mv_err *err)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        mv_fail(err, MV_E_NOMEM, "out of memory");
    return p;
}

/* ---- Time --------------------------------------------------------------- */

int64_t mv_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mv_time_format(int64_t us, char out[MV_TIME_STR_MAX])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, MV_TIME_STR_MAX, "%s.%06ldZ", date, frac);
}

int mv_time_parse(const char *s, int64_t *us, mv_err *err)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return mv_fail(err, MV_E_INVALID, "not an RFC 3339 time: '%.40s'", s);
    long frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return mv_fail(err, MV_E_INVALID, "empty fraction in time '%.40s'", s);
        for (; digits < 6; digits++)
            frac *= 10;
    }
    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = atoi(p + 1), mm = atoi(p + 4);
        offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return mv_fail(err, MV_E_INVALID, "time without zone: '%.40s'", s);
    }
    if (*p != '\0')
        return mv_fail(err, MV_E_INVALID, "trailing text in time '%.40s'", s);
    time_t secs = timegm(&tm);
    *us = ((int64_t)secs - offset) * 1000000 + frac;
    return 0;
}

/* ---- Hex ---------------------------------------------------------------- */

void mv_hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int mv_hex_decode(const char *hex, unsigned char *out, size_t n, mv_err *err)
{
    if (strlen(hex) != 2 * n)
        return mv_fail(err, MV_E_INVALID, "expected %zu hex digits", 2 * n);
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return mv_fail(err, MV_E_INVALID, "not a hex digit");
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* ---- Files -------------------------------------------------------------- */

int mv_file_read(const char *path, size_t max, mv_buf *out, mv_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mv_fail(err, errno == ENOENT ? MV_E_NOTFOUND : MV_E_IO,
                       "cannot open %s: %s", path, strerror(errno));
    mv_buf b = {0};
    for (;;) {
        if (mv_buf_reserve(&b, 4096, err) != 0)
            goto fail;
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            mv_fail(err, MV_E_IO, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
        if (b.len > max) {
            mv_fail(err, MV_E_INVALID, "%s is larger than %zu bytes", path, max);
            goto fail;
        }
    }
    close(fd);
    *out = b;
    return 0;
fail:
    close(fd);
    mv_buf_free(&b);
    return -1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int mv_file_write_new(const char *path, int mode, const void *p, size_t n,
                      mv_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return mv_fail(err, errno == EEXIST ? MV_E_EXISTS : MV_E_IO,
                       "cannot create %s: %s", path, strerror(errno));
    /* The umask may have dropped bits; it can never have added any, but set
     * the exact mode so a 0600 file is 0600 whatever the umask. */
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, p, n) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return mv_fail(err, MV_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    close(fd);
    fsync_parent_dir(path);
    return 0;
}

int mv_file_write_atomic(const char *path, int mode, const void *p, size_t n,
                         mv_err *err)
{
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (tmp == NULL)
        return mv_fail(err, MV_E_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
    unlink(tmp);
    if (mv_file_write_new(tmp, mode, p, n, err) != 0) {
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return mv_fail(err, MV_E_IO, "cannot replace %s: %s", path, strerror(e));
    }
    free(tmp);
    fsync_parent_dir(path);
    return 0;
}

char *mv_path_join(const char *dir, const char *name, mv_err *err)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p == NULL) {
        mv_fail(err, MV_E_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

char *mv_path_real(const char *path, mv_err *err)
{
    char *p = realpath(path, NULL);
    if (p == NULL)
        mv_fail(err, errno == ENOENT ? MV_E_NOTFOUND : MV_E_IO,
                "cannot resolve %s: %s", path, strerror(errno));
    return p;
}

int mv_path_is_under(const char *child, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(child, dir, n) != 0)
        return 0;
    return child[n] == '\0' || child[n] == '/' || (n == 1 && dir[0] == '/');
}

/* ---- Civil calendar ------------------------------------------------------ */

int64_t mv_days_from_civil(int y, int m, int d)
{
    if (m > 12) {
        y += (m - 1) / 12;
        m = (m - 1) % 12 + 1;
    }
    int64_t yy = y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void mv_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}
