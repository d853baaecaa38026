/*
 * listen.c -- parsing the "listen" setting: scheme://IPv4:port or
 * scheme://[IPv6]:port, nothing else.
 *
 * Why this exists: the address decides whether plain HTTP may be served at
 * all (only on loopback), so it is parsed strictly into a socket address and
 * checked on that, never on the text.  Host names are refused: what the
 * server binds to must be exactly what the operator wrote.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_SHOWN_MAX 80   /* how much of a bad value an error repeats */

static int listen_invalid(mv_err *err, const char *text, const char *why)
{
    return mv_fail(err, MV_E_INVALID,
                   "bad listen address '%.*s': %s (expected "
                   "https://IPv4:port or https://[IPv6]:port)",
                   LISTEN_SHOWN_MAX, text, why);
}

/* Decimal 0..65535, digits only. */
static int parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    unsigned long n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (unsigned long)(*p - '0');
    }
    if (n > 65535)
        return -1;
    *port = (uint16_t)n;
    return 0;
}

/* Split "host:port" / "[host]:port" into a host copy and the port text. */
static int split_host_port(const char *hp, char *host, size_t cap,
                           const char **port, int *bracketed)
{
    const char *end;
    *bracketed = hp[0] == '[';
    if (*bracketed) {
        end = strchr(hp, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        hp++;
        *port = end + 2;
    } else {
        end = strrchr(hp, ':');
        if (end == NULL)
            return -1;
        *port = end + 1;
    }
    size_t n = (size_t)(end - hp);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(host, hp, n);
    host[n] = '\0';
    return 0;
}

static int set_address(http_listen *out, const char *host, int bracketed,
                       uint16_t port)
{
    memset(&out->addr, 0, sizeof out->addr);
    if (bracketed) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        out->addr_len = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -1;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        out->addr_len = sizeof *a4;
    }
    snprintf(out->host, sizeof out->host, "%s", host);
    return 0;
}

int http_listen_parse(const char *text, http_listen *out, mv_err *err)
{
    if (text == NULL)
        return mv_fail(err, MV_E_INVALID, "no listen address");
    const char *rest;
    if (strncmp(text, "https://", 8) == 0) {
        out->https = 1;
        rest = text + 8;
    } else if (strncmp(text, "http://", 7) == 0) {
        out->https = 0;
        rest = text + 7;
    } else {
        return listen_invalid(err, text, "unknown scheme");
    }
    char host[HTTP_ADDR_TEXT_MAX];
    const char *port_text;
    int bracketed;
    uint16_t port;
    if (split_host_port(rest, host, sizeof host, &port_text, &bracketed) != 0)
        return listen_invalid(err, text, "no host and port");
    if (parse_port(port_text, &port) != 0)
        return listen_invalid(err, text, "bad port");
    if (set_address(out, host, bracketed, port) != 0)
        return listen_invalid(err, text, "host is not a numeric address");
    return 0;
}

int http_listen_is_loopback(const http_listen *l)
{
    if (l->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&l->addr;
        return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    if (l->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&l->addr;
        return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    }
    return 0;
}

/* The backlog the kernel may shorten (somaxconn); bursts of new clients
 * wait there, not in a refused SYN. */
#define LISTEN_BACKLOG 1024

int http_listen_open(const http_listen *l, const char *text, mv_err *err)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return mv_fail(err, MV_E_IO, "cannot listen on %.80s: %s", text, strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->addr.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return mv_fail(err, MV_E_IO, "cannot listen on %.80s: %s", text, strerror(e));
    }
    return fd;
}
