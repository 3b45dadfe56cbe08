/*
 * The client's request: its body, the headers the targets get.
 */

#ifndef _NGX_HTTP_FANOUT_REQUEST_H_INCLUDED_
#define _NGX_HTTP_FANOUT_REQUEST_H_INCLUDED_


#include "ngx_http_fanout.h"


off_t ngx_http_fanout_body_size(ngx_http_request_t *r);
ngx_int_t ngx_http_fanout_body_copy(ngx_http_request_t *r, u_char *dst,
    size_t *len);
ngx_http_request_body_t *ngx_http_fanout_body_of(ngx_pool_t *pool,
    u_char *data, size_t len);
ngx_int_t ngx_http_fanout_body_memory(ngx_http_request_t *r,
    ngx_str_t *body);
ngx_list_t *ngx_http_fanout_headers(ngx_http_request_t *r);
ngx_http_request_t *ngx_http_fanout_detach(ngx_http_request_t *r,
    ngx_list_t *headers, const char *action, ngx_uint_t body);
void ngx_http_fanout_detached_free(ngx_http_request_t *fake);


#endif /* _NGX_HTTP_FANOUT_REQUEST_H_INCLUDED_ */
