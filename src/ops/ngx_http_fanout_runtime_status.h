/*
 * The runtime state as JSON and Prometheus (ngx_http_fanout_runtime_status.c).
 */

#ifndef _NGX_HTTP_FANOUT_RUNTIME_STATUS_H_INCLUDED_
#define _NGX_HTTP_FANOUT_RUNTIME_STATUS_H_INCLUDED_


#include "ngx_http_fanout.h"


size_t ngx_http_fanout_runtime_json_size(ngx_http_fanout_main_conf_t *fmcf);
u_char *ngx_http_fanout_runtime_json(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf);
u_char *ngx_http_fanout_runtime_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf);


#endif /* _NGX_HTTP_FANOUT_RUNTIME_STATUS_H_INCLUDED_ */
