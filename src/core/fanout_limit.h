/*
 * Rate limits: GCRA (the generic cell rate algorithm), a token bucket kept
 * as one number per key, the "theoretical arrival time".  Pure logic: no
 * nginx headers, unit-tested in t/unit; the shared-memory store and the
 * fanout_limit directive build on it.
 */

#ifndef _FANOUT_LIMIT_H_INCLUDED_
#define _FANOUT_LIMIT_H_INCLUDED_


#include <stdint.h>


typedef struct {
    uint64_t    interval_us;   /* one request's worth: 1 s / rate */
    uint64_t    capacity;      /* requests a full bucket admits at once */
    uint64_t    delay;         /* requests past it that wait their turn */
} fanout_limit_conf_t;


typedef struct {
    unsigned    allowed:1;
    uint64_t    remaining;     /* requests still admitted right now */
    uint64_t    retry_after_us; /* when rejected: until one is admitted */
    uint64_t    reset_us;      /* until the bucket is full again */
    uint64_t    delay_us;      /* admitted past the burst: wait this long */
} fanout_limit_result_t;


/*
 * rate: requests per period_us (1 s for r/s, 60 s for r/m); burst: the
 * bucket's capacity, at least 1.  -1 when the rate cannot be expressed.
 * delay (set after, default 0): how many requests past a full burst are
 * admitted to wait for their token rather than rejected.
 */
int fanout_limit_conf(fanout_limit_conf_t *c, uint64_t rate,
    uint64_t period_us, uint64_t burst);

/*
 * Takes cost requests' worth from the bucket whose state is *tat (0 for
 * a new key) at now_us; *tat changes only when they are admitted.  A
 * request admitted within delay has res->delay_us > 0: its token is taken
 * now, and it conforms (as if it had come) that much later.
 */
void fanout_limit_take(const fanout_limit_conf_t *c, uint64_t *tat,
    uint64_t now_us, uint64_t cost, fanout_limit_result_t *res);


/*
 * Settles what was taken on a guess (a token budget's estimate) with what
 * was used: delta > 0 is charged on top, even past the burst (a debt that
 * later requests wait out), delta < 0 is given back, down to a full
 * bucket at most.
 */
void fanout_limit_settle(const fanout_limit_conf_t *c, uint64_t *tat,
    uint64_t now_us, int64_t delta);


/*
 * One instance's share of a fleet limit, for n instances: 1/n of the rate
 * and of the burst (at least one request). n of 0 or 1: the whole limit.
 */
void fanout_limit_share(const fanout_limit_conf_t *c, uint64_t n,
    fanout_limit_conf_t *out);


#endif /* _FANOUT_LIMIT_H_INCLUDED_ */
