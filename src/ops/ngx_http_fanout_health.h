/*
 * fanout_health: readiness and liveness for load balancers.
 */

#ifndef _NGX_HTTP_FANOUT_HEALTH_H_INCLUDED_
#define _NGX_HTTP_FANOUT_HEALTH_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_health_init_conf(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf);
ngx_int_t ngx_http_fanout_health_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_health_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_fanout_draining(ngx_http_fanout_main_conf_t *fmcf);


#endif /* _NGX_HTTP_FANOUT_HEALTH_H_INCLUDED_ */
