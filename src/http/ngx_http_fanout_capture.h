/*
 * Attempts: one subrequest each, its answer captured in memory (or
 * streamed), how it ended.
 */

#ifndef _NGX_HTTP_FANOUT_CAPTURE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CAPTURE_H_INCLUDED_


#include "ngx_http_fanout.h"


/* a stream's tail kept for its usage: OpenAI's last event is ~200 bytes */
#define NGX_HTTP_FANOUT_STREAM_TAIL  2048


typedef void (*ngx_http_fanout_attempt_pt)(ngx_http_fanout_attempt_t *a);


/* one subrequest of a call or of a shadow (ngx_http_fanout_capture.c) */
struct ngx_http_fanout_attempt_s {
    void                       *owner;         /* its call, or its shadow */
    ngx_http_fanout_attempt_pt  ended;         /* the owner's: it ended */
    ngx_http_fanout_attempt_pt  stopped;       /* the owner's: the capture
                                                  gave up (posted) */
    ngx_str_t                  *name;          /* for the error log */
    const char                 *what;          /* "target", "shadow" */
    ngx_http_fanout_attempt_t  *next;          /* the call's next one */
    ngx_int_t                 (*streamed)(ngx_http_fanout_attempt_t *a);
                                               /* the owner's, at a stream's
                                                  first bytes: NGX_OK to
                                                  forward it to sink */
    ngx_http_request_t         *sink;
    off_t                       sent;          /* bytes forwarded */
    void                      (*chunk)(ngx_http_fanout_attempt_t *a,
                                       ngx_msec_t gap);
                                               /* the owner's, or NULL: a
                                                  stream's events came, gap
                                                  ms after the last ones */
    ngx_msec_t                  event;         /* a stream's last events */
    u_char                     *tail;          /* a stream's last bytes (its
                                                  usage is in its last
                                                  event), or NULL */
    size_t                      tail_len;
    ngx_chain_t                *free;          /* a stream's buffers the */
    ngx_chain_t                *busy;          /* client took, and those it
                                                  has not yet */
    ngx_chain_t                *busy_last;     /* busy's last, when busy */

    /* micro-batched (batch=): no subrequest of its own, a place in one */
    void                      (*leave)(ngx_http_fanout_attempt_t *a);
    void                       *batched;

    ngx_http_request_t         *sr;            /* NULL once it has ended */
    ngx_http_post_subrequest_t  ps;
    u_char                      span[FANOUT_SPAN_ID_LEN];  /* its own, in
                                                  its traceparent */
    ngx_str_t                  *uri;           /* what it called */
    const char                 *cause;         /* an upstream_error's or a
                                                  timeout's, or NULL */
    ngx_event_t                *stop;          /* posted: cut it off */
    ngx_msec_t                  start;
    ngx_msec_t                  last_read;     /* the answer's latest bytes */
    ngx_msec_t                  first;         /* its first, ms after start */
    uint64_t                    tokens_in;     /* its usage, when it said */
    uint64_t                    tokens_out;
    ngx_msec_t                  latency;
    ngx_msec_int_t              retry_after;   /* of a 429/503, or -1 */

    /* the answer, as captured */
    int                         status;
    ngx_str_t                   content_type;
    u_char                     *buf;
    size_t                      len;
    size_t                      cap;
    size_t                      limit;         /* the in-memory limit */

    /* the upstream module's finalizer, wrapped to learn how it ended */
    void                      (*upstream_finalize)(ngx_http_request_t *r,
                                                   ngx_int_t rc);
    ngx_int_t                   upstream_rc;

    /* once ended: what the capture saw, and the outcome it makes */
    fanout_capture_t            capture;
    fanout_kind_e               kind;
    int                         result;        /* the status for kind */

    unsigned                    header:1;      /* an answer began */
    unsigned                    got_first:1;   /* first is set */
    unsigned                    usage:1;       /* tokens_* are set */
    unsigned                    newline:1;     /* a stream's last byte was
                                                  a line's end */
    unsigned                    complete:1;    /* to its last byte */
    unsigned                    done:1;        /* ended, or cut off */
    unsigned                    too_large:1;
    unsigned                    broken:1;      /* capture failed */
    unsigned                    live:1;        /* its call waits for it */
    unsigned                    hedge:1;       /* a fanout_hedge backup */
    unsigned                    stream:1;      /* a 2xx that is not JSON may
                                                  race by its first bytes */
    unsigned                    streaming:1;   /* forwarded as it comes */
    unsigned                    follower:1;    /* batch=: its batch's outcome
                                                  is another call's for the
                                                  breaker */
    unsigned                    retried:1;     /* batch=: retried as a batch */
    unsigned                    split:1;       /* batch=: its batch refused an
                                                  input: to be sent alone */
};


ngx_int_t ngx_http_fanout_capture_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanout_attempt_start(ngx_http_request_t *r,
    ngx_http_fanout_attempt_t *a, ngx_str_t *uri, ngx_str_t *args);
void ngx_http_fanout_attempt_cut(ngx_http_fanout_attempt_t *a);
void ngx_http_fanout_attempt_forget(ngx_http_fanout_attempt_t *a);
void ngx_http_fanout_attempt_answered(ngx_http_fanout_attempt_t *a,
    fanout_kind_e kind, int result, int status, ngx_str_t *type,
    u_char *buf, size_t len);


#endif /* _NGX_HTTP_FANOUT_CAPTURE_H_INCLUDED_ */
