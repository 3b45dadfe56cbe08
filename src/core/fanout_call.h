/*
 * A target call's outcome, and what it leads to: from what the capture of
 * an attempt saw to its kind (timeout, http_5xx, bad_json, ...), whether
 * the kind is the model's fault (its breaker counts it), whether another
 * model may answer in its place (fallback=), and whether another try may
 * (fanout_retry on=).  Pure logic: no nginx headers, unit-tested in
 * t/unit/call_test.c.
 */

#ifndef _FANOUT_CALL_H_INCLUDED_
#define _FANOUT_CALL_H_INCLUDED_


#include <stdint.h>

#include "fanout_merge.h"


/* what the capture of one call saw, when the call ended */
typedef struct {
    int              rc;           /* the subrequest's: 0, or a status */
    int              status;       /* the answer's, when header is set */
    unsigned         header:1;     /* an answer's header came */
    unsigned         complete:1;   /* and its whole body, to the last byte */
    unsigned         too_large:1;  /* over the capture's limit */
    unsigned         broken:1;     /* the capture itself failed */
    unsigned         read_timeout:1;  /* it stopped for proxy_read_timeout */
} fanout_capture_t;


/*
 * The outcome of a call from what its capture saw.  FANOUT_OK means "a
 * whole answer with a final status": fanout_part_parse() then judges its
 * status and body.  A body cut short is never judged: it is a timeout
 * when the upstream's read timed out, an upstream_error otherwise; so is
 * an answer that is not HTTP (status 0, HTTP/0.9), 1xx or outside 100-599.
 */
fanout_kind_e fanout_capture_kind(const fanout_capture_t *c, int *status);


/* the model's fault: its breaker counts it (not a 4xx, nor a call that
 * was never made: circuit_open, overloaded) */
int fanout_kind_failure(fanout_kind_e kind);

/* fallback=: a failure another model may answer better; a 4xx is the
 * client's, and another model would answer alike */
int fanout_kind_falls_back(fanout_kind_e kind);


/* fanout_retry on=: what is tried again */
#define FANOUT_RETRY_ERROR     0x01        /* upstream_error */
#define FANOUT_RETRY_TIMEOUT   0x02
#define FANOUT_RETRY_5XX       0x04
#define FANOUT_RETRY_429       0x08
#define FANOUT_RETRY_BAD_JSON  0x10

/* may an attempt that ended so be tried again, for on= */
int fanout_kind_retries(fanout_kind_e kind, int status, unsigned on);

/*
 * Full jitter: the wait before retry k (0 for the first retry) is uniform
 * in [0, min(max, base * 2^k)]; rnd is a random 32-bit number.
 */
uint64_t fanout_backoff(uint64_t base_ms, uint64_t max_ms, unsigned k,
    uint32_t rnd);

/*
 * A Retry-After value (RFC 9110: delay-seconds, or an HTTP-date the
 * caller has turned into seconds from now): its milliseconds, or -1 when
 * it is not a number of seconds.
 */
int64_t fanout_retry_after(const char *p, size_t len);


/*
 * The budget of extra attempts (retries and hedges) to one target, over a
 * sliding window of FANOUT_BUDGET_SLOTS seconds, shared by every worker
 * (it lives in the zone, under its lock): extra attempts may add at most
 * ratio (in hundredths of a percent) of the calls made in the window,
 * plus min_per_s for each second of it, as Linkerd's and Envoy's retry
 * budgets and the Gateway API's GEP-3388 do (20%, 10 s, 3/s).
 */

#define FANOUT_BUDGET_SLOTS  10

typedef struct {
    uint64_t    second;                     /* of the newest slot */
    uint32_t    calls[FANOUT_BUDGET_SLOTS];
    uint32_t    extra[FANOUT_BUDGET_SLOTS];
} fanout_budget_t;

/* a target's call (its first attempt) */
void fanout_budget_call(fanout_budget_t *b, uint64_t now_ms);

/* 1: an extra attempt may go, and is counted; 0: the budget is spent */
int fanout_budget_take(fanout_budget_t *b, uint64_t now_ms, uint32_t ratio,
    uint32_t min_per_s);


/*
 * Recent latencies of a target, for fanout_hedge after=pN: a histogram of
 * log-scale buckets (each 25% wider than the one before, from 1 ms to
 * 12 minutes), over a window of two slots: the current one and the
 * one before it, so that it always holds between one and two slots' worth
 * of answers.  A quantile is the upper bound of its bucket: at most 25%
 * over the true value, never under it.  Adding and reading are linear in
 * FANOUT_WINDOW_BUCKETS, under the zone's lock.
 */

#define FANOUT_WINDOW_BUCKETS  64

typedef struct {
    uint64_t    slot;                       /* now / slot_ms, the newest */
    uint32_t    n[2];
    uint32_t    counts[2][FANOUT_WINDOW_BUCKETS];
} fanout_window_t;

/* the upper bound, in ms, of the bucket of a latency */
uint64_t fanout_window_bound(size_t bucket);
size_t fanout_window_bucket(uint64_t ms);

void fanout_window_add(fanout_window_t *w, uint64_t now_ms,
    uint64_t slot_ms, uint64_t ms);

/* the per_mille-th quantile (950: p95) and the samples it comes from */
uint64_t fanout_window_quantile(fanout_window_t *w, uint64_t now_ms,
    uint64_t slot_ms, unsigned per_mille, uint32_t *samples);


/*
 * Recent quantiles for the status page (p50, p90, p99, p99.9 of the last
 * minute): a ring of FANOUT_QRING_SLOTS slots of FANOUT_QRING_SLOT_MS,
 * each a histogram over the window's first FANOUT_QRING_BUCKETS buckets
 * (the last holds everything over 39.5 s, and reads as 49.4 s).  The counters live in the
 * zone and are added to with atomics by the glue; a slot is reused when
 * its stamp (its slot number) is older than the window.  A quantile is
 * the upper bound of its bucket: never under the true value, at most 25%
 * over it (or "over 39.5 s"); the window holds between 50 and 60 s.
 */

#define FANOUT_QRING_SLOTS     6
#define FANOUT_QRING_SLOT_MS   10000
#define FANOUT_QRING_BUCKETS   48

size_t fanout_qring_bucket(uint64_t ms);

/*
 * The per_mille[i]-th quantiles into out[i] (in ms; 0 without samples)
 * from the slots whose stamp is within the window ending at now_slot
 * (now_ms / FANOUT_QRING_SLOT_MS); *samples is how many they hold.
 */
void fanout_qring_quantiles(const uint64_t *stamps, const uint64_t *counts,
    uint64_t now_slot, const unsigned *per_mille, size_t nq, uint64_t *out,
    uint64_t *samples);


#endif /* _FANOUT_CALL_H_INCLUDED_ */
