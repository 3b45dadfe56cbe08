/*
 * Cache keys (ngx_http_fanout_cache_key.c).
 */

#ifndef _NGX_HTTP_FANOUT_CACHE_KEY_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CACHE_KEY_H_INCLUDED_


#include "ngx_http_fanout.h"


/* the client's body in one piece, from memory or its temp file */
ngx_int_t ngx_http_fanout_cache_body(ngx_http_request_t *r, ngx_str_t *body);

/*
 * The request's key material (ctx->cache->material): NGX_OK, NGX_DECLINED
 * (not cacheable: a bypass) or NGX_ERROR.
 */
ngx_int_t ngx_http_fanout_cache_key(ngx_http_fanout_ctx_t *ctx);

/* the keys in Redis from the material: the entry's, or each target's */
ngx_int_t ngx_http_fanout_cache_named(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_CACHE_KEY_H_INCLUDED_ */
