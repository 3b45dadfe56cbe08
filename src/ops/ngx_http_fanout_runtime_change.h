/*
 * fanout_api's changes to the runtime state (ngx_http_fanout_runtime_change.c).
 */

#ifndef _NGX_HTTP_FANOUT_RUNTIME_CHANGE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_RUNTIME_CHANGE_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_runtime.h"


ngx_int_t ngx_http_fanout_runtime_change(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_rt_change_t *ch,
    ngx_http_fanout_rt_done_pt handler, void *data, void **pending);


#endif /* _NGX_HTTP_FANOUT_RUNTIME_CHANGE_H_INCLUDED_ */
