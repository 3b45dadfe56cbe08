/*
 * The pipeline: the request's stages run in order by one driver;
 * asynchronous stages resume through it.
 */

#ifndef _NGX_HTTP_FANOUT_PIPELINE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_PIPELINE_H_INCLUDED_


#include "ngx_http_fanout.h"


extern ngx_http_fanout_stage_pt  ngx_http_fanout_stages[NGX_HTTP_FANOUT_NSTAGES];
ngx_int_t ngx_http_fanout_pipeline(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_next(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc);
void ngx_http_fanout_resume(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc);
void ngx_http_fanout_resume_answered(ngx_http_fanout_ctx_t *ctx,
    ngx_int_t rc);
void ngx_http_fanout_wake(ngx_http_request_t *r);


#endif /* _NGX_HTTP_FANOUT_PIPELINE_H_INCLUDED_ */
