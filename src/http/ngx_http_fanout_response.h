/*
 * Answers to the client: JSON, errors, streams, and nginx's own
 * error pages as JSON.
 */

#ifndef _NGX_HTTP_FANOUT_RESPONSE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_RESPONSE_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_send_as_is(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target, u_char *body,
    size_t len);
ngx_int_t ngx_http_fanout_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *message);
ngx_int_t ngx_http_fanout_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_http_fanout_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_http_fanout_stream_header(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target);
ngx_int_t ngx_http_fanout_response_init(ngx_conf_t *cf);
extern ngx_str_t  ngx_http_fanout_json_type;

void ngx_http_fanout_headers_add(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_headers_t *hw);


#endif /* _NGX_HTTP_FANOUT_RESPONSE_H_INCLUDED_ */
