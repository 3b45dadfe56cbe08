/*
 * fanout_api: the runtime API's handler and directive.
 */

#ifndef _NGX_HTTP_FANOUT_API_H_INCLUDED_
#define _NGX_HTTP_FANOUT_API_H_INCLUDED_


#include "ngx_http_fanout.h"


char *ngx_http_fanout_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_api_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_FANOUT_API_H_INCLUDED_ */
