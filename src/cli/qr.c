/*
 * qr.c -- a QR code in the terminal, for TOTP enrollment: an authenticator
 * app scans the otpauth:// URI straight off the screen, so the secret never
 * has to be typed or sent anywhere.  libqrencode makes the code; this file
 * only draws it, two modules per character cell with Unicode half blocks,
 * inside the quiet zone scanners need.
 */
#include "cli.h"

#include <qrencode.h>
#include <stdio.h>

#define QUIET_ZONE 2

static int dark(const QRcode *q, int x, int y)
{
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return 0;
    return q->data[y * q->width + x] & 1;
}

int cli_print_qr(FILE *out, const char *text)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (q == NULL)
        return -1;
    /* Light modules are drawn as full blocks so the code reads on dark
     * terminals too: the code is inverted relative to the ink. */
    for (int y = -QUIET_ZONE; y < q->width + QUIET_ZONE; y += 2) {
        for (int x = -QUIET_ZONE; x < q->width + QUIET_ZONE; x++) {
            int top = !dark(q, x, y), bottom = !dark(q, x, y + 1);
            fputs(top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ", out);
        }
        fputc('\n', out);
    }
    QRcode_free(q);
    return 0;
}
