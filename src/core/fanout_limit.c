/*
 * GCRA: a request of cost n is admitted when the bucket, drained at one
 * request per interval, can hold n more requests' worth:
 *
 *     new_tat = max(tat, now) + n * interval
 *     admit  if new_tat - now <= capacity * interval
 *
 * and with delay d, also if new_tat - now <= (capacity + d) * interval,
 * after a wait of new_tat - now - capacity * interval: the time at which
 * it would have been admitted (limit_req's delayed requests).
 *
 * Exact at any rate: no timer and no refill step per key, only this one
 * number, so 1,000 r/s admits 1,000 r/s.
 */

#include "fanout_limit.h"


int
fanout_limit_conf(fanout_limit_conf_t *c, uint64_t rate, uint64_t period_us,
    uint64_t burst)
{
    if (rate == 0 || period_us == 0 || period_us / rate == 0) {
        return -1;
    }

    c->interval_us = period_us / rate;
    c->capacity = burst ? burst : 1;
    c->delay = 0;

    return 0;
}


void
fanout_limit_take(const fanout_limit_conf_t *c, uint64_t *tat,
    uint64_t now_us, uint64_t cost, fanout_limit_result_t *res)
{
    uint64_t  base, new_tat, limit, used;

    limit = c->capacity * c->interval_us;
    base = (*tat > now_us) ? *tat : now_us;
    new_tat = base + cost * c->interval_us;
    res->delay_us = 0;

    if (new_tat - now_us <= limit + c->delay * c->interval_us) {
        *tat = new_tat;
        res->allowed = 1;
        used = new_tat - now_us;

        if (used > limit) {
            res->delay_us = used - limit;
        }

    } else {
        res->allowed = 0;
        used = base - now_us;
    }

    res->remaining = (limit - (used < limit ? used : limit)) / c->interval_us;
    res->reset_us = used;
    res->retry_after_us = res->allowed ? 0
                          : (base + cost * c->interval_us - now_us) - limit
                            - c->delay * c->interval_us;
}


void
fanout_limit_settle(const fanout_limit_conf_t *c, uint64_t *tat,
    uint64_t now_us, int64_t delta)
{
    uint64_t  base, back, most;

    base = (*tat > now_us) ? *tat : now_us;

    /* no product overflows: a debt of at most 2^62 us, ages anyway */
    most = ((uint64_t) 1 << 62) / c->interval_us;

    if (delta >= 0) {
        *tat = base + ((uint64_t) delta < most ? (uint64_t) delta : most)
                      * c->interval_us;
        return;
    }

    back = (uint64_t) (-(delta + 1)) + 1;
    back = (back < most ? back : most) * c->interval_us;

    *tat = (base - now_us > back) ? base - back : now_us;
}


void
fanout_limit_share(const fanout_limit_conf_t *c, uint64_t n,
    fanout_limit_conf_t *out)
{
    *out = *c;

    if (n <= 1) {
        return;
    }

    out->interval_us = c->interval_us * n;
    out->capacity = (c->capacity + n - 1) / n;
    out->delay = (c->delay + n - 1) / n;
}
