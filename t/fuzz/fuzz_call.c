/*
 * libFuzzer: the pure rules of a call (src/core/fanout_call.c).  The input
 * drives a latency window and a retry budget through a timeline of
 * 3-byte steps (what, how far the clock moves, a value), then is read as
 * a Retry-After value and as a number to write and read back.  The
 * window's quantiles stay within its samples' buckets and never fall as
 * the quantile rises; the budget never grants more than it may; backoffs
 * stay under their cap; a number reads back as written.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_call.h"
#include "fanout_json.h"
#include "fanout_number.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             buf[64];
    double           v, w;
    size_t           i;
    int64_t          ra;
    uint32_t         n, m, calls, extra;
    uint64_t         now, q, prev, ms, d;
    fanout_out_t     o;
    fanout_span_t    s;
    fanout_budget_t  b;
    fanout_window_t  win;

    memset(&b, 0, sizeof(b));
    memset(&win, 0, sizeof(win));

    now = 1000000;
    calls = 0;
    extra = 0;

    for (i = 0; i + 3 <= size && i < 3000; i += 3) {
        now += data[i + 1] * 37;
        ms = (uint64_t) data[i + 2] << (data[i] & 15);

        switch (data[i] >> 6) {
        case 0:
            fanout_window_add(&win, now, 5000, ms);
            break;
        case 1:
            fanout_budget_call(&b, now);
            calls++;
            break;
        case 2:
            extra += fanout_budget_take(&b, now, data[i + 2] * 40,
                                        data[i] & 7);
            break;
        default:
            d = fanout_backoff(data[i + 2], 250, data[i] & 63,
                               (uint32_t) ms * 2654435761u);
            if (d > 250 || d > ((uint64_t) data[i + 2] << 32)) {
                abort();
            }
        }
    }

    /* at most every call at 100% plus 7/s over the window, ever */
    if (extra > calls + 7 * FANOUT_BUDGET_SLOTS * (1 + size / 3)) {
        abort();
    }

    prev = 0;

    for (m = 1; m <= 1000; m += 111) {
        q = fanout_window_quantile(&win, now, 5000, m, &n);

        if ((n == 0 && q != 0) || (n && q < prev)) {
            abort();
        }

        prev = q;
    }

    ra = fanout_retry_after((const char *) data, size);
    if (ra < -1 || (ra >= 0 && ra % 1000 != 0)) {
        abort();
    }

    if (size >= sizeof(double)) {
        memcpy(&v, data, sizeof(double));

        if (v == v && v - v == 0) {
            o.buf = buf;
            o.len = 0;
            fanout_out_double(&o, v);
            s.p = buf;
            s.len = o.len;

            if (fanout_json_number(&s, &w) != 0 || w != v) {
                abort();
            }
        }
    }

    return 0;
}
