/*
 * fanout_limit: rate and concurrency limits, local or the fleet's.
 */

#ifndef _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_
#define _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_limit_stage(ngx_http_fanout_ctx_t *ctx);
char *ngx_http_fanout_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_limit_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_limit_check(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_limit_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);


#endif /* _NGX_HTTP_FANOUT_LIMIT_H_INCLUDED_ */
