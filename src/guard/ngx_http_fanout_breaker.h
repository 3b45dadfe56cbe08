/*
 * fanout_breaker: circuit breakers per target, local or the fleet's.
 */

#ifndef _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_breaker_retry(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
ngx_int_t ngx_http_fanout_breaker_register(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_int_t ngx_http_fanout_breaker_init_process(ngx_cycle_t *cycle);
void ngx_http_fanout_breaker_allow(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t from, ngx_uint_t to);
void ngx_http_fanout_breaker_record(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
void ngx_http_fanout_breaker_record_all(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_ */
