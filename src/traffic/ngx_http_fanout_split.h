/*
 * fanout_split: variants, sticky splits and guarded ramps.
 */

#ifndef _NGX_HTTP_FANOUT_SPLIT_H_INCLUDED_
#define _NGX_HTTP_FANOUT_SPLIT_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_split_stage(ngx_http_fanout_ctx_t *ctx);
char *ngx_http_fanout_split(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_split_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_int_t ngx_http_fanout_split_choose(ngx_http_fanout_ctx_t *ctx);
ngx_str_t *ngx_http_fanout_split_name(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_split_key(ngx_http_fanout_ctx_t *ctx,
    ngx_str_t *key);
ngx_uint_t ngx_http_fanout_split_runs(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_target_t *t);
ngx_http_fanout_stats_t *ngx_http_fanout_split_stats(
    ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_SPLIT_H_INCLUDED_ */
