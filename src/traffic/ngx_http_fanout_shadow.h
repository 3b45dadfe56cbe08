/*
 * fanout_shadow: copies of requests to shadow targets, compared.
 */

#ifndef _NGX_HTTP_FANOUT_SHADOW_H_INCLUDED_
#define _NGX_HTTP_FANOUT_SHADOW_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_shadow_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_compare_stage(ngx_http_fanout_ctx_t *ctx);
char *ngx_http_fanout_shadow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_shadow_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
void ngx_http_fanout_shadow_start(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_shadow_answer(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, u_char *body, size_t len);


#endif /* _NGX_HTTP_FANOUT_SHADOW_H_INCLUDED_ */
