/*
 * Splits: a key's hash falls in one variant's slice of [0, 2^32).  The
 * slices follow the order of the variants with "*" taking what is left,
 * exactly as split_clients lays them out, so that the same key gets the
 * same variant in both, on every worker and every instance; growing a
 * variant's share keeps the keys it had (those of variants listed after it
 * move along).
 */

#include <string.h>

#include "fanout_split.h"


uint32_t
fanout_murmur2(const unsigned char *data, size_t len)
{
    uint32_t  h, k;

    h = 0 ^ (uint32_t) len;

    while (len >= 4) {
        k = data[0];
        k |= (uint32_t) data[1] << 8;
        k |= (uint32_t) data[2] << 16;
        k |= (uint32_t) data[3] << 24;

        k *= 0x5bd1e995;
        k ^= k >> 24;
        k *= 0x5bd1e995;

        h *= 0x5bd1e995;
        h ^= k;

        data += 4;
        len -= 4;
    }

    switch (len) {
    case 3:
        h ^= (uint32_t) data[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t) data[1] << 8;
        /* fall through */
    case 1:
        h ^= data[0];
        h *= 0x5bd1e995;
    }

    h ^= h >> 13;
    h *= 0x5bd1e995;
    h ^= h >> 15;

    return h;
}


void
fanout_split_init(fanout_split_t *s)
{
    size_t  i;

    memset(s, 0, sizeof(fanout_split_t));
    s->rest = -1;

    for (i = 0; i < FANOUT_SPLIT_MAX_VARIANTS; i++) {
        s->order[i] = (uint8_t) i;
    }
}


int
fanout_split_add(fanout_split_t *s, uint32_t share, int rest)
{
    /* "*" comes last, as it takes what the others leave */
    if (s->n == FANOUT_SPLIT_MAX_VARIANTS || s->rest >= 0
        || share > FANOUT_SPLIT_WHOLE)
    {
        return -1;
    }

    if (rest) {
        s->rest = (int) s->n;
        share = 0;
    }

    s->share[s->n++] = share;

    return 0;
}


int
fanout_split_done(fanout_split_t *s)
{
    size_t    i;
    uint32_t  sum;

    sum = 0;

    for (i = 0; i < s->n; i++) {
        sum += s->share[i];
    }

    if (sum > FANOUT_SPLIT_WHOLE) {
        return -1;
    }

    if (s->rest >= 0) {
        s->share[s->rest] = FANOUT_SPLIT_WHOLE - sum;
    }

    /* as split_clients: the cumulative share, scaled to 2^32 - 1 */
    sum = 0;

    for (i = 0; i < s->n; i++) {
        sum += s->share[s->order[i]];
        s->bound[i] = (uint32_t) ((uint64_t) sum * 0xffffffff
                                  / FANOUT_SPLIT_WHOLE);
    }

    return 0;
}


int
fanout_split_pick(const fanout_split_t *s, uint32_t hash)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        if (hash < s->bound[i]) {
            return s->order[i];
        }
    }

    /* 100% in all: the very top hash belongs to the last slice not empty */
    if (s->n && s->bound[s->n - 1] == 0xffffffff) {
        for (i = s->n; i > 1 && s->share[s->order[i - 1]] == 0; i--) {
            /* void */
        }

        return s->order[i - 1];
    }

    return -1;
}


int
fanout_split_set(const fanout_split_t *conf, const uint32_t *share,
    fanout_split_t *out)
{
    size_t    i;
    uint32_t  sum;

    sum = 0;

    for (i = 0; i < conf->n; i++) {
        if (share[i] > FANOUT_SPLIT_WHOLE) {
            return -1;
        }

        sum += share[i];
    }

    if (sum != FANOUT_SPLIT_WHOLE) {
        return -1;
    }

    fanout_split_init(out);
    out->n = conf->n;
    memcpy(out->share, share, conf->n * sizeof(uint32_t));

    return fanout_split_done(out);
}


int
fanout_split_ramp(const fanout_split_t *conf, size_t candidate,
    uint32_t share, fanout_split_t *out)
{
    size_t    i, k, last;
    uint32_t  others, left, given;

    if (candidate >= conf->n || share > FANOUT_SPLIT_WHOLE) {
        return -1;
    }

    fanout_split_init(out);
    out->n = conf->n;

    others = 0;
    last = conf->n;

    for (i = 0; i < conf->n; i++) {
        if (i != candidate) {
            others += conf->share[i];
            last = i;
        }
    }

    /* the candidate's slice first; the others after it in their order */
    out->order[0] = (uint8_t) candidate;

    for (k = 1, i = 0; i < conf->n; i++) {
        if (i != candidate) {
            out->order[k++] = (uint8_t) i;
        }
    }

    out->share[candidate] = share;
    left = FANOUT_SPLIT_WHOLE - share;
    given = 0;

    for (i = 0; i < conf->n; i++) {
        if (i == candidate) {
            continue;
        }

        if (i == last) {
            /* what rounding left over, so that the whole is 100% */
            out->share[i] = left - given;

        } else if (others) {
            out->share[i] = (uint32_t) ((uint64_t) left * conf->share[i]
                                        / others);
        } else {
            out->share[i] = 0;
        }

        given += out->share[i];
    }

    return fanout_split_done(out);
}


/* a share as "25%" or "0.5%", in hundredths of 1%; -1 otherwise */

static int64_t
fanout_ramp_share(const char *p, size_t len)
{
    size_t   i, decimals;
    int64_t  n;
    int      dot;

    if (len < 2 || p[len - 1] != '%') {
        return -1;
    }

    len--;
    n = 0;
    dot = 0;
    decimals = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '.' && !dot && i > 0) {
            dot = 1;
            continue;
        }

        if (p[i] < '0' || p[i] > '9' || (dot && ++decimals > 2)
            || n > 100000)
        {
            return -1;
        }

        n = n * 10 + (p[i] - '0');
    }

    if (i == 0 || p[len - 1] == '.') {
        return -1;
    }

    while (decimals++ < 2) {
        n *= 10;
    }

    return n;
}


int
fanout_ramp_parse_steps(fanout_ramp_t *ramp, const char *p, size_t len)
{
    size_t   i, start;
    int64_t  share;

    ramp->nsteps = 0;
    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && p[i] != ',') {
            continue;
        }

        share = fanout_ramp_share(p + start, i - start);

        if (share <= 0 || share > FANOUT_SPLIT_WHOLE
            || ramp->nsteps == FANOUT_RAMP_MAX_STEPS
            || (ramp->nsteps
                && (uint32_t) share <= ramp->step[ramp->nsteps - 1]))
        {
            return -1;
        }

        ramp->step[ramp->nsteps++] = (uint32_t) share;
        start = i + 1;
    }

    return ramp->step[ramp->nsteps - 1] == FANOUT_SPLIT_WHOLE ? 0 : -1;
}


/* "Nms" on one of bounds: its N, or 0 */

static uint32_t
fanout_ramp_bound(const char *p, size_t n, const uintptr_t *bounds,
    size_t nbounds)
{
    size_t    k;
    uint64_t  ms;

    if (n < 3 || memcmp(p + n - 2, "ms", 2) != 0) {
        return 0;
    }

    ms = 0;

    for (k = 0; k < n - 2; k++) {
        if (p[k] < '0' || p[k] > '9' || ms > 1000000) {
            return 0;
        }

        ms = ms * 10 + (uint64_t) (p[k] - '0');
    }

    /* counted by the histogram: on one of its bounds */
    for (k = 0; k < nbounds; k++) {
        if (bounds[k] == ms) {
            return (uint32_t) ms;
        }
    }

    return 0;
}


int
fanout_ramp_parse_rollback(fanout_ramp_t *ramp, const char *p, size_t len,
    const uintptr_t *bounds, size_t nbounds)
{
    size_t   i, start, n;
    int64_t  share;

    ramp->has_error = 0;
    ramp->max_p99 = 0;
    ramp->max_ttft = 0;
    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && p[i] != ',') {
            continue;
        }

        n = i - start;

        if (n > 11 && memcmp(p + start, "error_rate>", 11) == 0
            && !ramp->has_error)
        {
            share = fanout_ramp_share(p + start + 11, n - 11);

            if (share < 0 || share > FANOUT_SPLIT_WHOLE) {
                return -1;
            }

            ramp->max_error = (uint32_t) share;
            ramp->has_error = 1;

        } else if (n > 4 && memcmp(p + start, "p99>", 4) == 0
                   && ramp->max_p99 == 0)
        {
            ramp->max_p99 = fanout_ramp_bound(p + start + 4, n - 4, bounds,
                                              nbounds);
            if (ramp->max_p99 == 0) {
                return -1;
            }

        } else if (n > 9 && memcmp(p + start, "ttft_p99>", 9) == 0
                   && ramp->max_ttft == 0)
        {
            ramp->max_ttft = fanout_ramp_bound(p + start + 9, n - 9, bounds,
                                               nbounds);
            if (ramp->max_ttft == 0) {
                return -1;
            }

        } else {
            return -1;
        }

        start = i + 1;
    }

    return 0;
}


fanout_ramp_verdict_e
fanout_ramp_decide(const fanout_ramp_t *ramp, uint64_t elapsed,
    const fanout_ramp_counts_t *c)
{
    if (c->requests < ramp->min_requests || c->requests == 0) {
        /* too few answers to judge: no rollback, and no step up either */
        return FANOUT_RAMP_HOLD;
    }

    if (ramp->has_error
        && c->errors * FANOUT_SPLIT_WHOLE > ramp->max_error * c->requests)
    {
        return FANOUT_RAMP_ROLLBACK_ERRORS;
    }

    /* p99 over the bound: more than 1% of the requests slower than it */
    if (ramp->max_p99 && c->slow * 100 > c->requests) {
        return FANOUT_RAMP_ROLLBACK_P99;
    }

    /* the same for the time to the first answer bytes */
    if (ramp->max_ttft && c->slow_first * 100 > c->requests) {
        return FANOUT_RAMP_ROLLBACK_TTFT;
    }

    return elapsed >= ramp->every ? FANOUT_RAMP_ADVANCE : FANOUT_RAMP_HOLD;
}
