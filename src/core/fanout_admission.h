/*
 * Admission control for a target: a concurrency limit learned from the
 * model's latency, and the bounded queue of calls that wait for a slot.
 * Pure logic: no nginx headers, unit-tested in t/unit and fuzzed; the glue
 * keeps both in the fanout_zone, one per target, under the zone's lock.
 *
 * The limit (max_inflight=auto) is a gradient controller after Envoy's
 * adaptive_concurrency filter: every window (window_samples calls and at
 * least window_ms), the ratio of the model's latency unloaded (min_rtt,
 * plus a buffer) to the window's mean latency is the gradient, in [0.5,
 * 2]; the new limit is the old one times the gradient plus a headroom of
 * its square root, so that it keeps probing for more.  At equilibrium a
 * model of C slots gets about 1.25 C + sqrt(limit) calls: its slots full
 * and a short queue inside it.  min_rtt is measured by a probe: for
 * probe_samples calls (5) the limit is min=, so that the model does not
 * queue; a probe runs first, then every probe_ms (30 s; jittered, so
 * that instances and targets do not probe together), and at once when
 * the limit sat at min= for three windows (the model slowed down: min_rtt
 * is stale).  A window in which the model answered 429 or 503 takes a tenth
 * off the limit (AIMD's decrease).  Gradient2's long average was tried
 * first and dropped: under a steady overload the average catches up with
 * the queued latency, the gradient stays 1, and the limit grows without
 * bound (t/unit/admission_test.c has the simulation).
 *
 * The queue (queue=N) holds up to N calls over the limit, in an array of
 * entries (more than N: a granted or shed entry is its owner's until it
 * takes the answer):
 * a freed slot goes to the waiting entry of the lowest priority value,
 * then of the earliest fairness tag (start-time fair queuing: each key's
 * entries are a tag apart, and a key that was not waiting starts at the
 * tag last served, so keys take turns whatever their numbers), then of the
 * earliest arrival.  Every operation is one pass over the N entries.
 */

#ifndef _FANOUT_ADMISSION_H_INCLUDED_
#define _FANOUT_ADMISSION_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* --- the limit learned from latency */

typedef struct {
    uint32_t    min_limit;          /* min=, at least 1; a probe's limit */
    uint32_t    max_limit;          /* max= */
    uint32_t    initial;            /* the first limit */
    uint32_t    window_samples;     /* a window ends after as many calls */
    uint64_t    window_ms;          /* and at least this long */
    uint64_t    probe_ms;           /* min_rtt measured again this often */
    uint32_t    probe_samples;      /* calls at min= a probe takes */
    uint32_t    buffer_pct;         /* 25: latency may grow by a quarter */
} fanout_adaptive_conf_t;


typedef struct {
    double      limit;              /* the estimate, fractional */
    double      saved;              /* the limit before a probe */
    double      min_rtt_us;         /* 0: not measured yet */
    double      short_rtt_us;       /* the last window's mean, for status */
    double      gradient;           /* the last window's, for status */
    uint64_t    window_start_ms;
    uint64_t    window_sum_us;
    uint64_t    next_probe_ms;
    uint32_t    window_n;
    uint32_t    window_max_inflight;
    uint32_t    window_overloaded;  /* 429/503 answers in the window */
    uint32_t    probing;            /* a probe is under way */
    uint32_t    at_floor;           /* windows in a row at min= */
    uint32_t    seed;               /* the jitter's; the glue's to set */
    uint32_t    updates;            /* windows judged */
    uint32_t    probes;
} fanout_adaptive_t;


/* defaults where a field is 0; -1 when min > max */
int fanout_adaptive_conf(fanout_adaptive_conf_t *c);

void fanout_adaptive_init(const fanout_adaptive_conf_t *c,
    fanout_adaptive_t *a);

/*
 * A call ended: its latency, the calls in flight when it started (itself
 * included), whether the model said it was overloaded (429, 503).
 * Returns 1 when a window ended and the limit was judged again.
 */
int fanout_adaptive_sample(const fanout_adaptive_conf_t *c,
    fanout_adaptive_t *a, uint64_t now_ms, uint64_t rtt_us,
    uint32_t inflight, int overloaded);

/* the limit now, a whole number within min and max (min during a probe) */
uint32_t fanout_adaptive_limit(const fanout_adaptive_conf_t *c,
    const fanout_adaptive_t *a);


/* --- the queue of calls waiting for a slot */

typedef enum {
    FANOUT_QUEUE_FREE = 0,
    FANOUT_QUEUE_WAITING,
    FANOUT_QUEUE_GRANTED,           /* a slot is its: the owner goes */
    FANOUT_QUEUE_SHED               /* out, for reason: the owner answers */
} fanout_queue_state_e;


typedef enum {
    FANOUT_QUEUE_OK = 0,
    FANOUT_QUEUE_FULL,              /* no room, none of a lower priority */
    FANOUT_QUEUE_TIMEOUT,           /* queue_timeout= passed */
    FANOUT_QUEUE_DEADLINE,          /* the request's deadline would pass */
    FANOUT_QUEUE_EVICTED            /* a call of a higher priority came */
} fanout_queue_reason_e;


typedef struct {
    uint32_t    state;              /* fanout_queue_state_e */
    uint32_t    reason;             /* fanout_queue_reason_e, when shed */
    uint32_t    priority;           /* lower first */
    uint32_t    key;                /* fair=: the tenant's hash */
    uint32_t    owner;              /* the glue's: who waits */
    uint32_t    expire_reason;      /* what expire_ms is */
    uint64_t    tag;                /* fairness: start-time tag */
    uint64_t    seq;                /* arrival order */
    uint64_t    since_ms;
    uint64_t    expire_ms;
} fanout_queue_entry_t;


typedef struct {
    uint32_t    size;               /* queue=: entries that may wait */
    uint32_t    slots;              /* entries in all: waiting ones, and
                                       granted or shed ones not yet given
                                       back by their owners */
    uint32_t    waiting;
    uint64_t    seq;
    uint64_t    vtime;              /* the tag last served */
} fanout_queue_t;


void fanout_queue_init(fanout_queue_t *q, fanout_queue_entry_t *e,
    uint32_t size, uint32_t slots);

/*
 * The queue's pace: how often a waiting call is granted a slot while calls
 * wait (an average of the gaps between grants, alpha 1/16, in 1/1024 ms),
 * the throughput the model really gives.  A busy period starts afresh:
 * the first grant after the queue ran empty sets no gap.
 */
typedef struct {
    uint64_t    last_ms;            /* the last grant; 0: none in this run */
    uint64_t    gap;                /* ms * 1024; 0: not known yet */
    uint64_t    busy_ms;            /* the queue not empty since */
    uint64_t    standing_ms;        /* CoDel's state last renewed; 0: off */
    uint64_t    shed_ms;            /* a call last shed */
    uint64_t    interval_ms;        /* CoDel's interval, as last asked */
} fanout_pace_t;

/* a grant at now_ms; empty: the queue has no call waiting after it */
void fanout_pace_grant(fanout_pace_t *p, uint64_t now_ms, int empty);

/* the wait of a call with ahead calls before it, ms; 0: not known */
uint64_t fanout_pace_wait(const fanout_pace_t *p, uint32_t ahead);

/*
 * CoDel's rule for a queue (Nichols and Jacobson; Facebook's "Fail at
 * Scale"; fq_codel's flows): a queue that has not been empty for a whole
 * interval (the queue_timeout=), and has shed calls meanwhile, holds no
 * burst but a standing overload: waiting in it only adds latency to what
 * the model serves anyway.  In that state each flow (a fair= key at a
 * priority) keeps one call waiting, the next grant's, and the others are
 * shed at arrival, in microseconds rather than after a wait: the model
 * stays fed, the grants still go round the keys and by priority.  The
 * state lasts while calls are shed (fanout_pace_shed()) and ends an
 * interval after the last shed: a queue that keeps up again takes bursts.
 * A slow model's queue that sheds nothing is not standing: its calls are
 * all served.  waiting: the calls in the queue.  Returns 1 in that state.
 */
int fanout_pace_standing(fanout_pace_t *p, uint32_t waiting,
    uint64_t now_ms, uint64_t interval_ms);

/* a call shed at now_ms (at arrival, the queue full, or its time up) */
void fanout_pace_shed(fanout_pace_t *p, uint64_t now_ms);

/* 1: a call of this key at this or a better priority waits (O(slots)) */
int fanout_queue_has_key(const fanout_queue_t *q,
    const fanout_queue_entry_t *e, uint32_t priority, uint32_t key);

/*
 * How many waiting entries a call of this priority and key would find
 * served before it (priority first, then the start-time tag it would get,
 * then arrival): its place, were it pushed now.  One pass over the slots.
 */
uint32_t fanout_queue_position(const fanout_queue_t *q,
    const fanout_queue_entry_t *e, uint32_t priority, uint32_t key);

/*
 * A call over the limit asks to wait until expire_ms (its queue_timeout
 * or, if sooner, its deadline less a typical call: expire_reason says
 * which).  Its entry's index, or -1 (FANOUT_QUEUE_FULL); *evicted is the
 * index of an entry shed to make room for it (FANOUT_QUEUE_EVICTED, the
 * newest of the lowest priority, if lower than this one's), or -1.
 */
int fanout_queue_push(fanout_queue_t *q, fanout_queue_entry_t *e,
    uint32_t priority, uint32_t key, uint32_t owner, uint64_t now_ms,
    uint64_t expire_ms, fanout_queue_reason_e expire_reason, int *evicted);

/* a slot is free: the entry it goes to, now GRANTED, or -1 (none waits) */
int fanout_queue_grant(fanout_queue_t *q, fanout_queue_entry_t *e);

/* waiting entries whose time is up are SHED, for their expire_reason;
 * how many */
uint32_t fanout_queue_expire(fanout_queue_t *q, fanout_queue_entry_t *e,
    uint64_t now_ms);

/* the owner is done with its entry (granted, shed, or it left): freed */
void fanout_queue_release(fanout_queue_t *q, fanout_queue_entry_t *e,
    int i);

/*
 * Retry-After for a call refused: the time the queue needs to drain at
 * the limit, given a typical call (p50), in whole seconds, at least 1.
 */
uint32_t fanout_queue_retry_after(uint32_t waiting, uint32_t limit,
    uint64_t p50_ms);

const char *fanout_queue_reason_name(fanout_queue_reason_e reason);


#endif /* _FANOUT_ADMISSION_H_INCLUDED_ */
