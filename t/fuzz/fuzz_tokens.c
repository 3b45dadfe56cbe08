/*
 * libFuzzer: a call's token estimate and an answer's usage, on any bytes.
 * Both are bounded (no count beyond 10^12, estimates within the cap and
 * the body's size), an answer with a usage says a total of at least its
 * parts' or their sum, and a stream never counts more events than lines,
 * and counts them as a byte at a time would (the reference below).
 */

#define _GNU_SOURCE                 /* memmem() */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_tokens.h"


#define MAX  1000000000000ULL


/* what fanout_tokens_events() counts, a byte at a time */
static size_t
events_ref(const char *p, size_t len, int *newline)
{
    size_t  n;

    for (n = 0; len--; p++) {
        if (*p == '\n') {
            n += (size_t) *newline;
            *newline = 1;

        } else if (*p != '\r') {
            *newline = 0;
        }
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              capped;
    size_t           i, lines;
    uint64_t         e;
    fanout_usage_t   u;
    const char      *s;

    s = (const char *) data;

    e = fanout_tokens_estimate(s, size, &capped);

    if (e > MAX + (size + 3) / 4 || e < (size + 3) / 4) {
        abort();
    }

    fanout_tokens_usage(s, size, &u);

    if (u.input > MAX || u.output > MAX || u.total > 2 * MAX) {
        abort();
    }

    if (!u.found && (u.input || u.output || u.total)) {
        abort();
    }

    /* the quick look never misses what memmem() finds */
    if (fanout_tokens_maybe_usage(s, size)
        != (memmem(s, size, "\"usage\"", 7) != NULL))
    {
        abort();
    }

    lines = 1;

    for (i = 0; i < size; i++) {
        lines += (data[i] == '\n');
    }

    if (u.events > lines) {
        abort();
    }

    /* events in one piece or split anywhere: the same count */
    {
        int     nl1, nl2;
        size_t  whole, cut;

        nl1 = 0;
        whole = fanout_tokens_events(s, size, &nl1);
        nl2 = 0;
        cut = size ? data[0] % (size + 1) : 0;
        cut = fanout_tokens_events(s, cut, &nl2)
              + fanout_tokens_events(s + cut, size - cut, &nl2);

        if (whole != cut || nl1 != nl2 || whole > lines) {
            abort();
        }

        nl2 = data[0] & 1;
        nl1 = nl2;

        if (fanout_tokens_events(s, size, &nl1) != events_ref(s, size, &nl2)
            || nl1 != nl2)
        {
            abort();
        }
    }

    return 0;
}
