/*
 * fanout_status: counters as JSON, Prometheus and the dashboard.
 */

#ifndef _NGX_HTTP_FANOUT_STATUS_H_INCLUDED_
#define _NGX_HTTP_FANOUT_STATUS_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_status_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_fanout_status_format(ngx_str_t *name);
char *ngx_http_fanout_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_STATUS_H_INCLUDED_ */
