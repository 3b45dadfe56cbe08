/*
 * hiredis's async context on nginx's event loop, and its TLS handshake.
 */

#ifndef _NGX_HTTP_FANOUT_REDIS_ADAPTER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_REDIS_ADAPTER_H_INCLUDED_


#include "ngx_http_fanout.h"

#include <hiredis/async.h>


ngx_int_t ngx_http_fanout_redis_attach(redisAsyncContext *ac, void *data,
    ngx_log_t *log);
ngx_int_t ngx_http_fanout_redis_tls_start(redisAsyncContext *ac, void *ssl);


#endif /* _NGX_HTTP_FANOUT_REDIS_ADAPTER_H_INCLUDED_ */
