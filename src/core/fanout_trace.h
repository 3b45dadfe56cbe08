/*
 * Trace context (W3C Trace Context, traceparent version 00) and request
 * ids: parsing what a client sent, making new ids.  Pure logic: no nginx
 * headers, unit-tested (t/unit/trace_test.c) and fuzzed.
 */

#ifndef _FANOUT_TRACE_H_INCLUDED_
#define _FANOUT_TRACE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define FANOUT_TRACE_ID_LEN      32    /* hex digits */
#define FANOUT_SPAN_ID_LEN       16
#define FANOUT_TRACEPARENT_LEN   55    /* "00-" id "-" span "-" flags */
#define FANOUT_REQUEST_ID_MAX    128


typedef struct {
    char                trace_id[FANOUT_TRACE_ID_LEN];
    char                parent_id[FANOUT_SPAN_ID_LEN];
    char                flags[2];
} fanout_trace_t;


/* xoshiro256**, seeded once per process from real entropy */
typedef struct {
    uint64_t            s[4];
} fanout_rng_t;


/*
 * A client's traceparent: 0 and *t when it is valid (version 00, or a
 * later one read as 00 per the spec; lowercase hex; ids not all zeros),
 * -1 when it is not, and the trace restarts.
 */
int fanout_traceparent_parse(const char *s, size_t len, fanout_trace_t *t);

/* "00-TRACE-SPAN-FLAGS" into out (FANOUT_TRACEPARENT_LEN bytes) */
void fanout_traceparent_write(const fanout_trace_t *t, const char *span,
    char *out);

/* a request id a client may choose: 1 to 128 of [A-Za-z0-9._:/+=@-] */
int fanout_request_id_valid(const char *s, size_t len);

void fanout_rng_seed(fanout_rng_t *g, const unsigned char seed[32]);
uint64_t fanout_rng_next(fanout_rng_t *g);

/* n random lowercase hex digits (n a multiple of 16), never all zeros */
void fanout_rng_hex(fanout_rng_t *g, char *out, size_t n);


#endif /* _FANOUT_TRACE_H_INCLUDED_ */
