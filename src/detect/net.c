/*
 * net.c -- source addresses for the context signals: which network an
 * address belongs to, and whether it lies in a service account's CIDRs.
 *
 * Why it exists: "a new source network for the actor" and "a service account
 * used outside its configured source networks" (issue 5, signal 5) need
 * addresses as numbers, not text.  IPv4 networks are /24, IPv6 /48: the
 * granularity of a ward's or a site's subnet.
 */
#include "detect_internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* Parse an address into 16 bytes; returns 4, 6 or 0. */
static int parse_addr(const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    if (text == NULL || text[0] == '\0')
        return 0;
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) == 1)
        return 6;
    return 0;
}

uint64_t net_of(uint64_t seed, const char *addr)
{
    uint8_t a[16];
    int fam = parse_addr(addr, a);
    if (fam == 0)
        return addr && addr[0] ? detect_hash(seed, addr) : 0;
    size_t keep = fam == 4 ? 3 : 6;
    char key[2 + 2 * 6 + 1];
    key[0] = (char)('0' + fam);
    key[1] = ':';
    mv_hex_encode(a, keep, key + 2);
    return detect_hash(seed, key);
}

int cidr_parse(const char *text, cidr *out)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    int fam = parse_addr(buf, out->addr);
    if (fam == 0)
        return -1;
    int max = fam == 4 ? 32 : 128;
    long prefix = max;
    if (slash) {
        char *end;
        prefix = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || prefix < 0 || prefix > max)
            return -1;
    }
    out->family = (uint8_t)fam;
    out->prefix = (uint8_t)prefix;
    return 0;
}

static int in_network(const cidr *c, const uint8_t a[16])
{
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

static int has_actor(const known_net *k, uint64_t who)
{
    for (int i = 0; i < KNOWN_ACTORS; i++)
        if (k->actors[i] == who)
            return 1;
    return 0;
}

static int actor_count(const known_net *k)
{
    int n = 0;
    for (int i = 0; i < KNOWN_ACTORS; i++)
        n += k->actors[i] != 0;
    return n;
}

int net_familiar(detect_engine *e, uint64_t net, uint64_t who, int64_t now_us,
                 int record)
{
    size_t start = net % KNOWN_NETS;
    known_net *victim = NULL;
    for (size_t i = 0; i < KNOWN_PROBE; i++) {
        known_net *k = &e->known_nets[(start + i) % KNOWN_NETS];
        if (k->net == net) {
            if (record) {
                k->last_seen_us = now_us;
                if (!has_actor(k, who) && actor_count(k) < KNOWN_ACTORS)
                    k->actors[actor_count(k)] = who;
            }
            return actor_count(k) >= KNOWN_ACTORS;
        }
        if (k->net == 0) {
            if (victim == NULL || victim->net != 0)
                victim = k;                       /* the first empty slot */
        } else if (victim == NULL ||
                   (victim->net != 0 && k->last_seen_us < victim->last_seen_us)) {
            victim = k;                           /* else the oldest      */
        }
    }
    if (record && victim != NULL) {
        memset(victim, 0, sizeof *victim);
        victim->net = net;
        victim->actors[0] = who;
        victim->last_seen_us = now_us;
    }
    return 0;
}

int cidr_match(const cidr *nets, int n, const char *addr)
{
    uint8_t a[16];
    int fam = parse_addr(addr, a);
    for (int i = 0; i < n && fam != 0; i++)
        if (nets[i].family == fam && in_network(&nets[i], a))
            return 1;
    return 0;
}
