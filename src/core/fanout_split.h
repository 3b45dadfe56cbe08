/*
 * Sticky weighted splits, as nginx's split_clients does them: MurmurHash2
 * of the key, compared with cumulative shares of 2^32 - 1 in the order the
 * variants are listed.  Pure logic, unit-tested in t/unit.
 */

#ifndef _FANOUT_SPLIT_H_INCLUDED_
#define _FANOUT_SPLIT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define FANOUT_SPLIT_MAX_VARIANTS  16
#define FANOUT_SPLIT_WHOLE         10000   /* 100.00% */


typedef struct {
    size_t      n;
    uint32_t    share[FANOUT_SPLIT_MAX_VARIANTS];  /* hundredths of 1% */
    uint32_t    bound[FANOUT_SPLIT_MAX_VARIANTS];  /* cumulative, of 2^32 */
    uint8_t     order[FANOUT_SPLIT_MAX_VARIANTS];  /* slice i's variant */
    int         rest;          /* the "*" variant's index, or -1 */
} fanout_split_t;


/*
 * A guarded ramp: the candidate's share goes up step by step, every
 * `every` ms, while its requests' error rate, p99 and p99 time to their
 * first answer bytes stay in bounds.
 */

#define FANOUT_RAMP_MAX_STEPS     16
#define FANOUT_RAMP_MIN_REQUESTS  20   /* min_requests= by default */

typedef struct {
    uint32_t    step[FANOUT_RAMP_MAX_STEPS];  /* hundredths of 1%, rising */
    size_t      nsteps;
    uint64_t    every;             /* ms */
    uint32_t    max_error;         /* hundredths of 1%; with has_error */
    uint32_t    max_p99;           /* ms, 0: no latency bound */
    uint32_t    max_ttft;          /* ms, 0: no first-bytes bound */
    uint64_t    min_requests;      /* before a step is judged */
    unsigned    has_error:1;
} fanout_ramp_t;


typedef struct {
    uint64_t    requests;          /* the candidate's, in this step */
    uint64_t    errors;            /* answered 5xx */
    uint64_t    slow;              /* slower than max_p99 */
    uint64_t    slow_first;        /* first bytes later than max_ttft */
} fanout_ramp_counts_t;


typedef enum {
    FANOUT_RAMP_HOLD = 0,
    FANOUT_RAMP_ADVANCE,
    FANOUT_RAMP_ROLLBACK_ERRORS,
    FANOUT_RAMP_ROLLBACK_P99,
    FANOUT_RAMP_ROLLBACK_TTFT
} fanout_ramp_verdict_e;


/* the same function as nginx's ngx_murmur_hash2() */
uint32_t fanout_murmur2(const unsigned char *data, size_t len);

void fanout_split_init(fanout_split_t *s);

/*
 * Adds a variant with share hundredths of 1% (1000 is 10%), or the rest
 * ("*") when rest is set.  -1 when the shares pass 100% or there are too
 * many variants, or anything after "*".
 */
int fanout_split_add(fanout_split_t *s, uint32_t share, int rest);

/* the bounds, once all variants are added: -1 if over 100% */
int fanout_split_done(fanout_split_t *s);

/* the variant of a hash, or -1 when none covers it (shares under 100%) */
int fanout_split_pick(const fanout_split_t *s, uint32_t hash);

/*
 * A split of the same variants with new shares (hundredths of 1%, by
 * variant, summing to 100%), laid out in the configuration's order.
 */
int fanout_split_set(const fanout_split_t *conf, const uint32_t *share,
    fanout_split_t *out);

/*
 * The split while a ramp gives the candidate `share`: its slice comes
 * first, so that it only grows (a key in it stays in it), and the others
 * share the rest in their configured proportions, in their order.
 */
int fanout_split_ramp(const fanout_split_t *conf, size_t candidate,
    uint32_t share, fanout_split_t *out);

/* "5%,25%,50%,100%": -1 unless 1 to 16 shares, rising, over 0, to 100% */
int fanout_ramp_parse_steps(fanout_ramp_t *ramp, const char *p, size_t len);

/*
 * "error_rate>2%,p99>500ms,ttft_p99>250ms", each at most once, in any
 * order: -1 on anything else; a p99 or ttft_p99 bound must be one of
 * *bounds (the latency histogram's, which the time to first bytes shares,
 * ms: nginx's ngx_msec_t is a uintptr_t)
 */
int fanout_ramp_parse_rollback(fanout_ramp_t *ramp, const char *p,
    size_t len, const uintptr_t *bounds, size_t nbounds);

/* a step `elapsed` ms old with these counts: hold, go on or roll back */
fanout_ramp_verdict_e fanout_ramp_decide(const fanout_ramp_t *ramp,
    uint64_t elapsed, const fanout_ramp_counts_t *c);


#endif /* _FANOUT_SPLIT_H_INCLUDED_ */
