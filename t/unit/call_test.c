/*
 * A call's outcome from what its capture saw, and what the outcome leads
 * to: the breaker, fallback= and fanout_retry on=.
 */

#include <stdlib.h>
#include <string.h>

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

    ok(failures == 6 && fanout_kind_failure(FANOUT_TIMEOUT)
       && fanout_kind_failure(FANOUT_HTTP_5XX)
       && fanout_kind_failure(FANOUT_BAD_JSON)
       && fanout_kind_failure(FANOUT_TOO_LARGE)
       && fanout_kind_failure(FANOUT_UPSTREAM_ERROR)
       && fanout_kind_failure(FANOUT_BAD_BATCH),
       "the breaker counts timeout, 5xx, bad_json, too_large, "
       "upstream_error, bad_batch");
    ok(!fanout_kind_failure(FANOUT_HTTP_4XX)
       && !fanout_kind_failure(FANOUT_CIRCUIT_OPEN)
       && !fanout_kind_failure(FANOUT_OVERLOADED)
       && !fanout_kind_failure(FANOUT_BAD_FIELD),
       "not a 4xx, nor calls never made, nor an unusable field");
    ok(falls == 8 && fanout_kind_falls_back(FANOUT_CIRCUIT_OPEN)
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
    ok(fanout_kind_retries(FANOUT_BAD_BATCH, 502, FANOUT_RETRY_ERROR)
       && !fanout_kind_retries(FANOUT_BAD_BATCH, 502,
                               all & ~FANOUT_RETRY_ERROR),
       "on=error retries bad_batch (into another batch), only it");
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


static void
test_backoff(void)
{
    int       over, under;
    uint64_t  d, max0, max3, maxcap;
    uint32_t  r;
    unsigned  i;

    ok(fanout_backoff(25, 250, 0, 0) == 0, "backoff: from 0");
    ok(fanout_backoff(25, 250, 0, 0xffffffff) == 25, "backoff: to base");
    ok(fanout_backoff(25, 250, 2, 0xffffffff) == 100, "backoff: base * 2^k");
    ok(fanout_backoff(25, 250, 5, 0xffffffff) == 250
       && fanout_backoff(25, 250, 60, 0xffffffff) == 250,
       "backoff: capped at max, even for a huge k");

    over = 0;
    under = 0;
    max0 = 0;
    max3 = 0;
    maxcap = 0;
    r = 12345;

    for (i = 0; i < 100000; i++) {
        r = r * 1103515245 + 12345;
        d = fanout_backoff(25, 250, 0, r);
        max0 = d > max0 ? d : max0;
        over += (d > 25);
        under += (d < 13);
        d = fanout_backoff(25, 250, 3, r);
        max3 = d > max3 ? d : max3;
        d = fanout_backoff(25, 250, 10, r);
        maxcap = d > maxcap ? d : maxcap;
    }

    ok(over == 0 && max0 == 25 && max3 == 200 && maxcap == 250,
       "full jitter stays in [0, min(max, base * 2^k)]");
    ok(under > 45000 && under < 55000, "and is spread over it");

    ok(fanout_retry_after("2", 1) == 2000, "Retry-After: 2");
    ok(fanout_retry_after(" 120 ", 5) == 120000, "Retry-After: spaces");
    ok(fanout_retry_after("0", 1) == 0, "Retry-After: 0");
    ok(fanout_retry_after("1.5", 3) == -1 && fanout_retry_after("-1", 2) == -1
       && fanout_retry_after("", 0) == -1
       && fanout_retry_after("9999999999", 10) == -1
       && fanout_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 29) == -1,
       "Retry-After: not seconds");
}


static void
test_budget(void)
{
    int              n;
    unsigned         i;
    uint64_t         t;
    fanout_budget_t  b;

    memset(&b, 0, sizeof(b));
    t = 1000000;

    /* no calls yet: only the floor of 3/s over 10 s */
    for (n = 0, i = 0; i < 100; i++) {
        n += fanout_budget_take(&b, t, 2000, 3);
    }

    ok(n == 30, "budget: min_retries 3/s gives 30 over the window");

    memset(&b, 0, sizeof(b));

    for (i = 0; i < 1000; i++) {
        fanout_budget_call(&b, t);
    }

    for (n = 0, i = 0; i < 1000; i++) {
        n += fanout_budget_take(&b, t, 2000, 3);
    }

    ok(n == 230, "budget: 20% of 1000 calls plus 30");

    /* 11 s later the window has forgotten them */
    for (n = 0, i = 0; i < 1000; i++) {
        n += fanout_budget_take(&b, t + 11000, 2000, 0);
    }

    ok(n == 0, "budget: a window later, no calls, no floor: nothing");

    /* a steady stream: 100 calls a second, each retried if it may */
    memset(&b, 0, sizeof(b));

    for (n = 0, t = 0; t < 60000; t += 10) {
        fanout_budget_call(&b, t);
        n += fanout_budget_take(&b, t, 2000, 3);
    }

    ok(n <= 6000 * 20 / 100 + 3 * 60 + 30 && n >= 6000 * 20 / 100,
       "budget: 60 s of an outage at 100 calls/s: retries <= 20% + 3/s");

    /* a clock that goes back does not wipe the window */
    n = fanout_budget_take(&b, 1000, 2000, 0);
    ok(n == 0, "budget: a clock going back keeps the count");
}


static void
test_window(void)
{
    int              mono, tight;
    size_t           i;
    uint32_t         n;
    uint64_t         q, t;
    fanout_window_t  w;

    mono = 1;
    tight = 1;

    for (i = 1; i < 60; i++) {
        mono &= fanout_window_bound(i) > fanout_window_bound(i - 1);

        if (fanout_window_bound(i - 1) >= 8) {
            tight &= fanout_window_bound(i) * 100
                     <= fanout_window_bound(i - 1) * 126;
        }
    }

    ok(mono && tight, "window: bounds grow, at most 26% a bucket");
    ok(fanout_window_bucket(0) == 0 && fanout_window_bucket(1) == 0
       && fanout_window_bound(fanout_window_bucket(10)) >= 10
       && fanout_window_bound(fanout_window_bucket(10)) <= 13
       && fanout_window_bound(fanout_window_bucket(1000000)) >= 1000000,
       "window: a latency's bucket bounds it from above, closely");

    memset(&w, 0, sizeof(w));
    t = 100000;

    for (i = 0; i < 95; i++) {
        fanout_window_add(&w, t, 5000, 10);
    }

    for (i = 0; i < 5; i++) {
        fanout_window_add(&w, t, 5000, 1000);
    }

    q = fanout_window_quantile(&w, t, 5000, 950, &n);
    ok(n == 100 && q >= 10 && q <= 13, "window: p95 of 95 x 10 ms, 5 x 1 s");
    q = fanout_window_quantile(&w, t, 5000, 960, &n);
    ok(q >= 1000 && q <= 1260, "window: p96 is the slow ones");
    q = fanout_window_quantile(&w, t, 5000, 500, &n);
    ok(q >= 10 && q <= 13, "window: p50");

    /* the next slot keeps the one before; two slots later all is gone */
    fanout_window_add(&w, t + 5000, 5000, 50);
    q = fanout_window_quantile(&w, t + 5000, 5000, 950, &n);
    ok(n == 101, "window: the previous slot still counts");
    q = fanout_window_quantile(&w, t + 10000, 5000, 950, &n);
    ok(n == 1 && q >= 50 && q <= 63, "window: a slot later only the newest");
    q = fanout_window_quantile(&w, t + 30000, 5000, 950, &n);
    ok(n == 0 && q == 0, "window: empty once both slots passed");
}


static void
test_qring(void)
{
    size_t    i;
    uint64_t  stamps[FANOUT_QRING_SLOTS], q[4], n;
    uint64_t  counts[FANOUT_QRING_SLOTS * FANOUT_QRING_BUCKETS];

    static const unsigned  pm[4] = { 500, 900, 990, 999 };

    memset(stamps, 0, sizeof(stamps));
    memset(counts, 0, sizeof(counts));

    /* slot 100: 900 answers of 20 ms, 90 of 200 ms, 10 of 2 s */
    stamps[100 % FANOUT_QRING_SLOTS] = 100;
    counts[(100 % FANOUT_QRING_SLOTS) * FANOUT_QRING_BUCKETS
           + fanout_qring_bucket(20)] = 900;
    counts[(100 % FANOUT_QRING_SLOTS) * FANOUT_QRING_BUCKETS
           + fanout_qring_bucket(200)] = 90;
    counts[(100 % FANOUT_QRING_SLOTS) * FANOUT_QRING_BUCKETS
           + fanout_qring_bucket(2000)] = 10;

    fanout_qring_quantiles(stamps, counts, 100, pm, 4, q, &n);
    ok(n == 1000, "qring: every sample of the window");
    ok(q[0] >= 20 && q[0] <= 25, "qring: p50 within 25% over 20 ms");
    ok(q[1] >= 20 && q[1] <= 25, "qring: p90 too");
    ok(q[2] >= 200 && q[2] <= 250, "qring: p99 within 25% over 200 ms");
    ok(q[3] >= 2000 && q[3] <= 2500, "qring: p99.9 within 25% over 2 s");

    fanout_qring_quantiles(stamps, counts, 105, pm, 4, q, &n);
    ok(n == 1000, "qring: five slots later, still in the window");
    fanout_qring_quantiles(stamps, counts, 106, pm, 4, q, &n);
    ok(n == 0 && q[0] == 0, "qring: six slots later, out of it");
    fanout_qring_quantiles(stamps, counts, 99, pm, 4, q, &n);
    ok(n == 0, "qring: a slot stamped ahead of now is not read");

    ok(fanout_qring_bucket(10000000) == FANOUT_QRING_BUCKETS - 1,
       "qring: hours go to the last bucket");

    /* the bound of every bucket reads back into it */
    for (i = 0; i < FANOUT_QRING_BUCKETS - 1; i++) {
        if (fanout_qring_bucket(fanout_window_bound(i)) != i) {
            break;
        }
    }

    ok(i == FANOUT_QRING_BUCKETS - 1, "qring: each bound is its bucket's");
}


int
main(void)
{
    test_capture();
    test_policy();
    test_backoff();
    test_budget();
    test_window();
    test_qring();

    return done_testing();
}
