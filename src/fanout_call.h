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


#endif /* _FANOUT_CALL_H_INCLUDED_ */
