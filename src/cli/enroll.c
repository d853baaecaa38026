/*
 * enroll.c -- showing a second-factor enrollment once: as one JSON object for
 * scripts, or for a person as a QR code to scan, the base32 secret and the
 * ten recovery codes.  `init` (the first admin) and `user add|reset-mfa`
 * show the same thing the same way.
 */
#include "cli.h"

#include <stdio.h>

json_t *cli_enrollment_json(const char *username, const auth_enrollment *e)
{
    json_t *codes = json_array();
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++)
        json_array_append_new(codes, json_string(e->recovery[i]));
    return json_pack("{s:s, s:s, s:s, s:o}", "username", username,
                     "otpauth_uri", e->otpauth_uri, "secret", e->secret_b32,
                     "recovery_codes", codes);
}

void cli_print_json_line(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
}

void cli_print_enrollment(const char *username, const auth_enrollment *e)
{
    printf("Second factor for %s: scan this with an authenticator app\n", username);
    cli_print_qr(stdout, e->otpauth_uri);
    printf("or enter the secret %s\n(%s)\n\nRecovery codes, each usable once; "
           "keep them offline:\n", e->secret_b32, e->otpauth_uri);
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++)
        printf("  %s\n", e->recovery[i]);
}
