/*
 * libFuzzer: ramps and runtime weights (src/core/fanout_split.c), from text a
 * configuration, fanout_api or the fleet's Redis hash may hold.  Parsed
 * steps rise and end at 100%; parsed bounds stay in range; a ramp's split
 * always covers the whole range with the candidate's slice first and its
 * share as asked; a split's weights, when accepted, add up to 100%.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fanout_split.h"


static const uintptr_t  bounds[] = { 5, 10, 25, 50, 100, 250, 500, 1000 };


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                    v;
    size_t                 i, cut;
    uint32_t               share[FANOUT_SPLIT_MAX_VARIANTS], sum;
    fanout_split_t         conf, out;
    fanout_ramp_t          ramp;
    fanout_ramp_counts_t   c;

    if (size < 4) {
        return 0;
    }

    /* the first byte splits the rest: steps, then rollback_if */
    cut = 1 + data[0] % (size - 1);

    memset(&ramp, 0, sizeof(ramp));

    if (fanout_ramp_parse_steps(&ramp, (const char *) data + 1, cut - 1)
        == 0)
    {
        if (ramp.nsteps == 0 || ramp.nsteps > FANOUT_RAMP_MAX_STEPS
            || ramp.step[ramp.nsteps - 1] != FANOUT_SPLIT_WHOLE)
        {
            abort();
        }

        for (i = 1; i < ramp.nsteps; i++) {
            if (ramp.step[i] <= ramp.step[i - 1]) {
                abort();
            }
        }
    }

    if (fanout_ramp_parse_rollback(&ramp, (const char *) data + cut,
                                   size - cut, bounds, 8)
        == 0)
    {
        if ((ramp.has_error && ramp.max_error > FANOUT_SPLIT_WHOLE)
            || (ramp.max_p99 && ramp.max_p99 > 1000)
            || (ramp.max_ttft && ramp.max_ttft > 1000))
        {
            abort();
        }
    }

    /* a split of up to 16 variants from the bytes, and a ramp over it */
    fanout_split_init(&conf);

    for (i = 0; i < size % FANOUT_SPLIT_MAX_VARIANTS + 1; i++) {
        (void) fanout_split_add(&conf, (uint32_t) data[i % size] * 13, 0);
    }

    if (fanout_split_done(&conf) != 0) {
        return 0;
    }

    sum = (uint32_t) (data[1] * 40) % (FANOUT_SPLIT_WHOLE + 1);

    if (fanout_split_ramp(&conf, data[2] % conf.n, sum, &out) == 0) {
        if (out.order[0] != data[2] % conf.n
            || out.share[data[2] % conf.n] != sum)
        {
            abort();
        }

        if (conf.n > 1 || sum == FANOUT_SPLIT_WHOLE) {
            /* the whole range has a variant */
            if (fanout_split_pick(&out, 0xffffffff) < 0
                || fanout_split_pick(&out, 0) < 0)
            {
                abort();
            }
        }

        v = fanout_split_pick(&out, (uint32_t) data[3] << 24);

        if (v >= (int) conf.n) {
            abort();
        }
    }

    for (i = 0; i < conf.n; i++) {
        share[i] = (uint32_t) data[i % size] * 41;
    }

    if (fanout_split_set(&conf, share, &out) == 0) {
        for (sum = 0, i = 0; i < conf.n; i++) {
            sum += out.share[i];
        }

        if (sum != FANOUT_SPLIT_WHOLE) {
            abort();
        }
    }

    c.requests = data[1];
    c.errors = data[2] % (c.requests + 1);
    c.slow = data[3] % (c.requests + 1);
    c.slow_first = data[size - 1] % (c.requests + 1);

    if (fanout_ramp_decide(&ramp, data[0] * 100, &c)
        == FANOUT_RAMP_ROLLBACK_TTFT && !ramp.max_ttft)
    {
        abort();
    }

    return 0;
}
