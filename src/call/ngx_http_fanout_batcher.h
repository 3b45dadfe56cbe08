/*
 * Micro-batching (fanout_target batch=): callers' inputs joined into
 * one model call per group, its answer split back.
 */

#ifndef _NGX_HTTP_FANOUT_BATCHER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_BATCHER_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_batcher_join(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a);
ngx_int_t ngx_http_fanout_batcher_init(ngx_conf_t *cf,
    ngx_http_fanout_target_t *t);


#endif /* _NGX_HTTP_FANOUT_BATCHER_H_INCLUDED_ */
