/*
 * util.h -- the small things every subsystem shares: the error pattern,
 * owned byte buffers, time, hex, and careful file helpers.
 *
 * Why this exists: medvault has exactly one way to report failure, used by
 * every subsystem so that the CLI and the HTTP layer can turn any error into
 * one clear line (or one FHIR OperationOutcome) without knowing where it came
 * from.  The pattern, everywhere:
 *
 *     int f(..., mv_err *err);   returns 0 on success, -1 on failure, and on
 *                                failure fills *err with a code and one line.
 *
 * Error messages name the problem and the object (a path, a resource id),
 * never a secret, a key, a password or a piece of health data.
 *
 * This module must never call into any other medvault subsystem.
 */
#ifndef MV_UTIL_H
#define MV_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* ---- Errors ------------------------------------------------------------- */

typedef enum mv_code {
    MV_OK = 0,
    MV_E_INVALID,   /* bad argument or input (usage, malformed value)        */
    MV_E_IO,        /* file system or database failure                       */
    MV_E_NOMEM,     /* allocation failed                                     */
    MV_E_KEY,       /* wrong passphrase or key file, or key not unlockable   */
    MV_E_PERM,      /* unsafe permissions (key file readable by others), or
                       an action this caller may not take                    */
    MV_E_INTEGRITY, /* ciphertext failed authentication: tampered or moved   */
    MV_E_NOTFOUND,  /* no such object                                        */
    MV_E_GONE,      /* deleted, or erased by crypto-shredding                */
    MV_E_EXISTS,    /* refusing to overwrite something that exists           */
    MV_E_CONFLICT,  /* version conflict                                      */
    MV_E_TAMPER,    /* audit trail verification failed                       */
    MV_E_INTERNAL   /* a bug: an invariant did not hold                      */
} mv_code;

#define MV_ERR_MSG_MAX 256

typedef struct mv_err {
    mv_code code;
    char msg[MV_ERR_MSG_MAX];
} mv_err;

/* Record an error; always returns -1 so callers can `return mv_fail(...)`.
 * err may be NULL (the error is then dropped). */
int mv_fail(mv_err *err, mv_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset an error to MV_OK / empty message. */
void mv_err_clear(mv_err *err);

/* A short stable name for a code ("integrity", "not-found", ...). */
const char *mv_code_name(mv_code code);

/* ---- Owned buffers ------------------------------------------------------ */

/* A heap byte buffer that owns its memory.  Free with mv_buf_free(). */
typedef struct mv_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} mv_buf;

int  mv_buf_reserve(mv_buf *b, size_t extra, mv_err *err);
int  mv_buf_append(mv_buf *b, const void *p, size_t n, mv_err *err);
/* Append a 32-bit big-endian length followed by the bytes: an unambiguous
 * encoding for values that are hashed or bound as associated data. */
int  mv_buf_append_field(mv_buf *b, const void *p, size_t n, mv_err *err);
int  mv_buf_append_str_field(mv_buf *b, const char *s, mv_err *err);
int  mv_buf_append_u64(mv_buf *b, uint64_t v, mv_err *err);
void mv_buf_free(mv_buf *b);
/* Take ownership of b's bytes (caller frees with free()); b becomes empty. */
unsigned char *mv_buf_steal(mv_buf *b, size_t *len);

/* ---- Memory ------------------------------------------------------------- */

char *mv_strdup(const char *s, mv_err *err);
void *mv_calloc(size_t n, size_t size, mv_err *err);

/* ---- Time --------------------------------------------------------------- */

/* Microseconds since the Unix epoch, UTC (CLOCK_REALTIME). */
int64_t mv_now_us(void);
/* Format as RFC 3339 with microseconds, "2026-11-28T10:03:44.123456Z".
 * out must hold at least MV_TIME_STR_MAX bytes. */
#define MV_TIME_STR_MAX 32
void mv_time_format(int64_t us, char out[MV_TIME_STR_MAX]);
/* Parse RFC 3339 ("...Z" or "+hh:mm", seconds fraction optional). */
int mv_time_parse(const char *s, int64_t *us, mv_err *err);

/* ---- Hex ---------------------------------------------------------------- */

/* out must hold 2*n+1 bytes. */
void mv_hex_encode(const unsigned char *p, size_t n, char *out);
/* Decode exactly n bytes from a 2n-character hex string. */
int mv_hex_decode(const char *hex, unsigned char *out, size_t n, mv_err *err);

/* ---- Files -------------------------------------------------------------- */

/* Read a whole file (at most max bytes) into a new buffer. */
int mv_file_read(const char *path, size_t max, mv_buf *out, mv_err *err);
/* Create path exclusively (O_EXCL) with the given mode, write, fsync. */
int mv_file_write_new(const char *path, int mode, const void *p, size_t n,
                      mv_err *err);
/* Write via a temporary file and rename(2), then fsync the directory. */
int mv_file_write_atomic(const char *path, int mode, const void *p, size_t n,
                         mv_err *err);
/* Join dir and name into a new string. */
char *mv_path_join(const char *dir, const char *name, mv_err *err);
/* Canonical absolute path of an existing path (realpath). */
char *mv_path_real(const char *path, mv_err *err);
/* 1 when child (an absolute canonical path) is dir or lies under dir. */
int mv_path_is_under(const char *child, const char *dir);

/* ---- Civil calendar ------------------------------------------------------ */
/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * algorithms; m may be 13, the January after), and back. */
int64_t mv_days_from_civil(int y, int m, int d);
void    mv_civil_from_days(int64_t days, int *y, int *m, int *d);

/* ---- Random ids --------------------------------------------------------- */
/* Resource and store ids come from crypto_random (crypto.h): util holds no
 * randomness of its own so that the only RNG is libsodium's. */

#endif /* MV_UTIL_H */
