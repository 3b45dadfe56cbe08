/*
 * The calls stage: a call per target (and item), its attempts, retries,
 * hedges and fallbacks, to the deadline.
 */

#ifndef _NGX_HTTP_FANOUT_CALL_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CALL_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_capture.h"


/* fanout_retry: a failed attempt of a call is tried again */
struct ngx_http_fanout_retry_conf_s {
    ngx_uint_t                  attempts;      /* in all, the first one too */
    ngx_uint_t                  on;            /* FANOUT_RETRY_* */
    ngx_msec_t                  backoff;
    ngx_msec_t                  max_backoff;
    ngx_uint_t                  budget;        /* hundredths of a percent */
    ngx_uint_t                  min_per_s;     /* min_retries=N/s */
};


/* fanout_hedge: a backup attempt when the first is late */
struct ngx_http_fanout_hedge_conf_s {
    ngx_msec_t                  after;         /* after=TIME */
    ngx_uint_t                  per_mille;     /* after=pN: N * 10; 0: TIME */
    ngx_msec_t                  min;
    ngx_msec_t                  max;
    ngx_uint_t                  budget;        /* hundredths of a percent */
    ngx_uint_t                  max_hedges;
    ngx_str_t                   to;            /* to=URI, or empty */
    ngx_str_t                   to_args;
};


/* fanout_deadline_header: the header that tells a model its time left */
struct ngx_http_fanout_deadline_conf_s {
    ngx_str_t                   name;
    u_char                     *lowcase;
    ngx_uint_t                  hash;
    ngx_uint_t                  grpc;          /* grpc-timeout: "NNNm" */
};


/* a target call: its attempts (the target, its fallback) and outcome */
struct ngx_http_fanout_call_s {
    ngx_http_fanout_ctx_t      *ctx;
    ngx_http_fanout_target_t   *target;
    ngx_http_fanout_stats_t    *st;            /* the target's counters */
    ngx_http_fanout_stats_t    *bst;           /* its breaker's node */
    ngx_http_fanout_attempt_t   first;         /* the target's own */
    ngx_http_fanout_attempt_t  *attempt;       /* the latest, or NULL */
    ngx_http_fanout_attempt_t  *last;          /* of the list from first */
    ngx_uint_t                  nattempts;     /* tries: first, retries */
    ngx_uint_t                  nhedges;
    ngx_uint_t                  running;       /* live attempts */
    ngx_event_t                *timer;         /* the target's timeout= */
    ngx_event_t                *later;         /* a retry's backoff, or a
                                                  hedge's delay: never both */
    ngx_msec_t                  hedge_after;
    void                       *wait;          /* queue=: its place */

    ngx_str_t                   content_type;  /* of the answer it took */
    ngx_str_t                  *body;          /* set=: its own body, made
                                                  by the targets stage */
    ngx_http_request_body_t    *request_body;  /* that body, as it is sent */
    fanout_part_t               part;          /* status, body, outcome */
    uint32_t                    breaker_old;   /* record_all: the state its
                                                  outcome changed */

    unsigned                    done:1;        /* the outcome is known */
    unsigned                    cancelled:1;   /* cut off, not needed */
    unsigned                    verdict:2;     /* the breaker's */
    unsigned                    inflight:1;    /* holds a max_inflight slot */
    unsigned                    fallback:1;    /* its answer is the fallback's */
    unsigned                    hedged:1;      /* its answer is a hedge's */
    unsigned                    streaming:1;   /* "first": it streams */
    unsigned                    recorded:1;    /* its breaker has the outcome */
    unsigned                    accounted:1;   /* counted in the zone */
    unsigned                    alone:1;       /* batch=: never batched */
    unsigned                    breaker_change:2;  /* record_all's
                                                  fanout_breaker_change_e */
};


/* a call's timers: its timeout=, its retry backoff or hedge delay */
static ngx_inline void
ngx_http_fanout_call_stop_timers(ngx_http_fanout_call_t *sub)
{
    if (sub->timer && sub->timer->timer_set) {
        ngx_del_timer(sub->timer);
    }

    if (sub->later && sub->later->timer_set) {
        ngx_del_timer(sub->later);
    }
}


ngx_int_t ngx_http_fanout_targets_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_calls_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_start(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_cancel(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_calls_tell(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_sub_account(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
char *ngx_http_fanout_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_hedge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_deadline_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_FANOUT_CALL_H_INCLUDED_ */
