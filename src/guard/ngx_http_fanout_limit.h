/*
 * fanout_limit: rate limits and token budgets, local or the fleet's.
 */

#ifndef _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_
#define _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_


#include "ngx_http_fanout.h"


#define NGX_HTTP_FANOUT_MAX_LIMITS  8   /* fanout_limit in one location */

/* a request's limits: what the RateLimit-* headers say, the check */
struct ngx_http_fanout_limit_ctx_s {
    ngx_str_t                   limit;         /* the tightest's quota, as
                                                  written */
    ngx_str_t                   policy;        /* RateLimit-Policy */
    ngx_uint_t                  remaining;
    ngx_uint_t                  reset;         /* seconds */
    ngx_uint_t                  weight;        /* a batch's calls */
    void                       *run;           /* the check under way */
    ngx_http_fanout_redis_op_t *op;            /* scope=cluster, in Redis */
    ngx_http_fanout_headers_t   header;        /* RateLimit-*'s writer */
    ngx_event_t                 delay;         /* delay=: the wait */
    ngx_http_fanout_ctx_t      *ctx;           /* tokens=: for the settle */
    uint64_t                    cost[NGX_HTTP_FANOUT_MAX_LIMITS];
                                               /* tokens=: each budget's
                                                  reservation */
    uint64_t                   *estimates;     /* tokens=: each call's */
    uint64_t                   *bounds;        /* tokens=: each call's most
                                                  believed */
    void                       *reserved;      /* tokens=: the check that
                                                  reserved, to settle */
    unsigned                    limited:1;     /* the headers are sent */
    unsigned                    reading:1;     /* delayed: test_reading */
    unsigned                    tokens:1;      /* the check: tokens= ones */
};


ngx_int_t ngx_http_fanout_limit_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_limit_tokens_stage(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_limit_settle_now(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_limit_draw(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
char *ngx_http_fanout_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_limit_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_limit_check(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t weight);
ngx_int_t ngx_http_fanout_limit_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);


#endif /* _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_ */
