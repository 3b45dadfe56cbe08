/*
 * Circuit breakers: closed, open and half-open, per target.  Pure logic on
 * a plain struct that the glue keeps in shared memory and changes under
 * the zone's lock; unit-tested in t/unit.
 */

#ifndef _FANOUT_BREAKER_H_INCLUDED_
#define _FANOUT_BREAKER_H_INCLUDED_


#include <stdint.h>


#define FANOUT_BREAKER_SLOTS  10          /* the window, in tenths */


typedef enum {
    FANOUT_BREAKER_CLOSED = 0,
    FANOUT_BREAKER_OPEN,
    FANOUT_BREAKER_HALF_OPEN
} fanout_breaker_state_e;


/* what a call may do */
typedef enum {
    FANOUT_BREAKER_PASS = 0,              /* closed: call */
    FANOUT_BREAKER_PROBE,                 /* half-open: call, as a probe */
    FANOUT_BREAKER_REJECT                 /* open, or no probe left */
} fanout_breaker_verdict_e;


/* what an outcome did, for the log */
typedef enum {
    FANOUT_BREAKER_SAME = 0,
    FANOUT_BREAKER_OPENED,                /* closed -> open */
    FANOUT_BREAKER_REOPENED,              /* half-open -> open, longer */
    FANOUT_BREAKER_CLOSED_AGAIN           /* half-open -> closed */
} fanout_breaker_change_e;


typedef struct {
    uint32_t    failures;                 /* consecutive; 0: not used */
    uint32_t    error_rate;               /* percent; 0: not used */
    uint32_t    min_requests;
    uint64_t    window_ms;
    uint64_t    cooldown_ms;
    uint64_t    max_cooldown_ms;
    uint32_t    half_open;                /* probes at a time */
    uint32_t    cluster;                  /* scope=cluster: the glue's */
} fanout_breaker_conf_t;


typedef struct {
    uint32_t    state;
    uint32_t    consecutive;
    uint64_t    cooldown_ms;              /* the current one */
    uint64_t    retry_at_ms;              /* open: when probes may start */
    uint32_t    probes;                   /* half-open: probes out */
    uint32_t    remote;                   /* opened by another instance */

    /* the sliding window: requests and failures per tenth */
    uint64_t    slot_start_ms;
    uint64_t    window_ms;                /* the conf's, for status */
    uint32_t    slot;
    uint32_t    requests[FANOUT_BREAKER_SLOTS];
    uint32_t    errors[FANOUT_BREAKER_SLOTS];
} fanout_breaker_t;


/* a fresh breaker is all zeros: closed */

fanout_breaker_verdict_e fanout_breaker_allow(const fanout_breaker_conf_t *c,
    fanout_breaker_t *b, uint64_t now_ms);

/*
 * The outcome of a call that allow() let through: failure counts timeouts,
 * connect errors, 5xx, bad_json and too_large, never 4xx or client aborts.
 */
fanout_breaker_change_e fanout_breaker_record(const fanout_breaker_conf_t *c,
    fanout_breaker_t *b, uint64_t now_ms, fanout_breaker_verdict_e verdict,
    int failure);

/* a probe that ends without an outcome (client abort) returns its token */
void fanout_breaker_release(fanout_breaker_t *b,
    fanout_breaker_verdict_e verdict);

/* the error rate over the window, percent, and its request count */
uint32_t fanout_breaker_rate(const fanout_breaker_conf_t *c,
    fanout_breaker_t *b, uint64_t now_ms, uint32_t *requests);

/*
 * scope=cluster: another instance has the circuit open for remaining_ms
 * more (with its cooldown): open it here too, until then, unless this
 * instance's own calls say otherwise (fanout_breaker_own_success()).
 */
/*
 * This instance's own evidence: closed, its latest call a success, and
 * more successes than failures in its window.
 */
int fanout_breaker_own_success(const fanout_breaker_conf_t *c,
    fanout_breaker_t *b, uint64_t now_ms);

fanout_breaker_change_e fanout_breaker_learn(const fanout_breaker_conf_t *c,
    fanout_breaker_t *b, uint64_t now_ms, uint64_t remaining_ms,
    uint64_t cooldown_ms);

/*
 * scope=cluster: a good probe on another instance closed the circuit
 * age_ms ago. A breaker here that opened before that, learned or its own,
 * open or half-open, closes too: one probe speaks for the fleet. One that
 * opened since (the model failed again here) stays as it is.
 */
fanout_breaker_change_e fanout_breaker_closed_elsewhere(fanout_breaker_t *b,
    uint64_t now_ms, uint64_t age_ms);

/*
 * scope=cluster: this instance opened the circuit, and the fleet had it
 * open already, remaining_ms more with cooldown_ms: the fleet's schedule
 * wins, so that every instance probes at the same moment. 1 when it
 * changed anything.
 */
int fanout_breaker_adopt(fanout_breaker_t *b, uint64_t now_ms,
    uint64_t remaining_ms, uint64_t cooldown_ms);

/*
 * The circuit is open nowhere else any more.  One learned from another
 * instance, with more than margin_ms of its cooldown left, was closed
 * there by a good probe: close it here too.  Near its end it is left to
 * go half-open and probe on its own.
 */
fanout_breaker_change_e fanout_breaker_forget(fanout_breaker_t *b,
    uint64_t now_ms, uint64_t margin_ms);

/* the same as fanout_breaker_rate(), without changing b: for status */
uint32_t fanout_breaker_peek(const fanout_breaker_t *b, uint64_t now_ms,
    uint32_t *requests);

const char *fanout_breaker_state_name(uint32_t state);


#endif /* _FANOUT_BREAKER_H_INCLUDED_ */
