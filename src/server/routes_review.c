/*
 * routes_review.c -- GET /api/review[?count=N]: the daily review, for
 * security officers.
 *
 * Why it exists: the detector never refuses a care giver its own patients,
 * so the one thing that surfaces a stolen clinician session paging through
 * its whole caseload, a few an hour and at night, is a person reading the
 * day.  This lists the accounts whose last 24 hours stand furthest from
 * their role's usual (detect_review), with the numbers and the reasons in
 * words, highest first (count: 1 to 100, default 20).  Reading it is
 * recorded in the audit trail; it changes nothing.
 */
#include "server_internal.h"

#include <stdlib.h>
#include <string.h>

#define REVIEW_MAX 100

static json_t *row_json(call *c, const detect_review_row *r)
{
    auth_account who;
    const char *username = auth_account_get_id(c->srv->auth, r->actor, &who, NULL) == 0
                         ? who.username : "";
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:b, s:f, s:s}",
                     "actor", r->actor, "username", username, "role", r->role,
                     "patients_24h", r->patients_24h, "unexplained_24h", r->unexplained_24h,
                     "off_hours_24h", r->off_hours_24h, "week", r->week,
                     "declared", r->declared, "score", r->score,
                     "explanation", r->explanation);
}

/* count from the query: 1..REVIEW_MAX, default 20; -1 after answering 400. */
static int count_query(call *c)
{
    const char *v = http_query(c->req, "count");
    if (v == NULL)
        return 20;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > REVIEW_MAX) {
        call_fail(c, 400, "invalid", "count is a number from 1 to 100");
        return -1;
    }
    return (int)n;
}

static void review(call *c)
{
    int count = count_query(c);
    if (count < 0)
        return;
    if (c->srv->detect == NULL) {
        call_fail(c, 409, "not-supported", "misuse detection is off on this server");
        return;
    }
    detect_review_row *rows = calloc((size_t)count, sizeof *rows);
    if (rows == NULL) {
        call_fail(c, 500, "exception", "out of memory");
        return;
    }
    int64_t now = mv_now_us();
    size_t n = detect_review(c->srv->detect, now, rows, (size_t)count);
    char when[MV_TIME_STR_MAX];
    mv_time_format(now, when);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, row_json(c, &rows[i]));
    free(rows);
    audit_event ev = { .actor = c->res->actor, .action = "detect.review",
                       .outcome = "success", .source = c->req->source,
                       .session = c->session_ref, .request_id = c->req->request_id };
    mv_err err;
    if (audit_record(c->srv->trail, &ev, 1, NULL, NULL, NULL, &err) != 0) {
        json_decref(list);
        call_fail_err(c, &err);
        return;
    }
    call_reply_json(c, 200, json_pack("{s:s, s:o}", "generated", when, "accounts", list));
}

void route_review(call *c)
{
    if (call_authenticate(c) != 0)
        return;
    if (c->who.account.role != AUTH_ROLE_SECURITY)
        call_fail(c, 403, "forbidden", "the daily review is for security officers");
    else if (strcmp(c->req->method, "GET") != 0)
        call_fail(c, 405, "not-supported", "GET /api/review[?count=N]");
    else
        review(c);
}
