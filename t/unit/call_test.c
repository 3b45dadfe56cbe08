/*
 * A call's outcome from what its capture saw, and what the outcome leads
 * to: the breaker, fallback= and fanout_retry on=.
 */

#include <stdlib.h>

#include "fanout_call.h"
#include "tap.h"


static fanout_kind_e
kind(int rc, int header, int status, int complete, int read_timeout,
    int *out)
{
    fanout_capture_t  c;

    memset(&c, 0, sizeof(c));
    c.rc = rc;
    c.header = header;
    c.status = status;
    c.complete = complete;
    c.read_timeout = read_timeout;

    *out = -1;

    return fanout_capture_kind(&c, out);
}


static void
test_capture(void)
{
    int               st;
    fanout_capture_t  c;

    ok(kind(0, 1, 200, 1, 0, &st) == FANOUT_OK && st == 200,
       "a whole 200 is judged by its body");
    ok(kind(0, 1, 404, 1, 0, &st) == FANOUT_OK && st == 404,
       "a whole 404 too (then http_4xx)");
    ok(kind(0, 1, 200, 0, 0, &st) == FANOUT_UPSTREAM_ERROR && st == 502,
       "a cut body is upstream_error");
    ok(kind(0, 1, 200, 0, 1, &st) == FANOUT_TIMEOUT && st == 504,
       "a body the read timeout cut is timeout");
    ok(kind(0, 1, 0, 1, 0, &st) == FANOUT_UPSTREAM_ERROR,
       "status 0 (HTTP/0.9) is upstream_error");
    ok(kind(0, 1, 102, 1, 0, &st) == FANOUT_UPSTREAM_ERROR,
       "a 1xx is upstream_error");
    ok(kind(0, 1, 999, 1, 0, &st) == FANOUT_UPSTREAM_ERROR,
       "a status over 599 is upstream_error");
    ok(kind(504, 0, 0, 0, 0, &st) == FANOUT_TIMEOUT && st == 504,
       "no header, 504: timeout");
    ok(kind(404, 0, 0, 0, 0, &st) == FANOUT_HTTP_4XX && st == 404,
       "the target location refused: its status");
    ok(kind(502, 0, 0, 0, 0, &st) == FANOUT_UPSTREAM_ERROR && st == 502,
       "no answer at all: upstream_error");
    ok(kind(0, 0, 0, 0, 0, &st) == FANOUT_UPSTREAM_ERROR && st == 502,
       "nothing: upstream_error 502");

    memset(&c, 0, sizeof(c));
    c.header = 1;
    c.status = 200;
    c.too_large = 1;
    ok(fanout_capture_kind(&c, &st) == FANOUT_TOO_LARGE, "too_large first");

    c.too_large = 0;
    c.broken = 1;
    ok(fanout_capture_kind(&c, &st) == FANOUT_UPSTREAM_ERROR && st == 502,
       "a broken capture is upstream_error");
}


static void
test_policy(void)
{
    int       k, failures, falls;
    unsigned  all;

    failures = 0;
    falls = 0;

    for (k = 0; k < FANOUT_NKINDS; k++) {
        failures += fanout_kind_failure((fanout_kind_e) k);
        falls += fanout_kind_falls_back((fanout_kind_e) k);
    }

    ok(failures == 5 && fanout_kind_failure(FANOUT_TIMEOUT)
       && fanout_kind_failure(FANOUT_HTTP_5XX)
       && fanout_kind_failure(FANOUT_BAD_JSON)
       && fanout_kind_failure(FANOUT_TOO_LARGE)
       && fanout_kind_failure(FANOUT_UPSTREAM_ERROR),
       "the breaker counts timeout, 5xx, bad_json, too_large, "
       "upstream_error");
    ok(!fanout_kind_failure(FANOUT_HTTP_4XX)
       && !fanout_kind_failure(FANOUT_CIRCUIT_OPEN)
       && !fanout_kind_failure(FANOUT_OVERLOADED)
       && !fanout_kind_failure(FANOUT_BAD_FIELD),
       "not a 4xx, nor calls never made, nor an unusable field");
    ok(falls == 7 && fanout_kind_falls_back(FANOUT_CIRCUIT_OPEN)
       && fanout_kind_falls_back(FANOUT_OVERLOADED)
       && !fanout_kind_falls_back(FANOUT_HTTP_4XX)
       && !fanout_kind_falls_back(FANOUT_OK),
       "fallback= for the failures and the calls not made, never a 4xx");

    all = FANOUT_RETRY_ERROR | FANOUT_RETRY_TIMEOUT | FANOUT_RETRY_5XX
          | FANOUT_RETRY_429 | FANOUT_RETRY_BAD_JSON;

    ok(fanout_kind_retries(FANOUT_UPSTREAM_ERROR, 502, FANOUT_RETRY_ERROR)
       && !fanout_kind_retries(FANOUT_UPSTREAM_ERROR, 502,
                               all & ~FANOUT_RETRY_ERROR),
       "on=error retries upstream_error, only it");
    ok(fanout_kind_retries(FANOUT_HTTP_5XX, 503, FANOUT_RETRY_5XX)
       && fanout_kind_retries(FANOUT_TIMEOUT, 504, FANOUT_RETRY_TIMEOUT)
       && fanout_kind_retries(FANOUT_BAD_JSON, 200, FANOUT_RETRY_BAD_JSON),
       "on=5xx, timeout, bad_json");
    ok(fanout_kind_retries(FANOUT_HTTP_4XX, 429, FANOUT_RETRY_429)
       && !fanout_kind_retries(FANOUT_HTTP_4XX, 404, all)
       && !fanout_kind_retries(FANOUT_HTTP_4XX, 400, all)
       && !fanout_kind_retries(FANOUT_HTTP_4XX, 429, all & ~FANOUT_RETRY_429),
       "a 4xx is never retried but 429 with on=429");
    ok(!fanout_kind_retries(FANOUT_OK, 200, all)
       && !fanout_kind_retries(FANOUT_TOO_LARGE, 200, all)
       && !fanout_kind_retries(FANOUT_BAD_FIELD, 200, all)
       && !fanout_kind_retries(FANOUT_CIRCUIT_OPEN, 503, all)
       && !fanout_kind_retries(FANOUT_OVERLOADED, 503, all),
       "nor ok, too_large, bad_field, open or overloaded");
}


int
main(void)
{
    test_capture();
    test_policy();

    return done_testing();
}
