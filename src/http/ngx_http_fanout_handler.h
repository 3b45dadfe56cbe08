/*
 * The content handler: a request's context, its cleanup, its end.
 */

#ifndef _NGX_HTTP_FANOUT_HANDLER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_HANDLER_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_fanout_body_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_log_stage(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_HANDLER_H_INCLUDED_ */
