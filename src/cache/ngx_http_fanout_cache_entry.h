/*
 * Cache entries: their format and clock (ngx_http_fanout_cache_entry.c).
 */

#ifndef _NGX_HTTP_FANOUT_CACHE_ENTRY_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CACHE_ENTRY_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_cache.h"


/* wall-clock milliseconds */
ngx_msec_int_t ngx_http_fanout_cache_now(void);

/* an entry from Redis, copied: fresh (NGX_OK), stale (kept), unreadable */
ngx_int_t ngx_http_fanout_cache_entry(ngx_http_fanout_ctx_t *ctx,
    const char *str, size_t len, ngx_http_fanout_cached_t **entry);

/* an entry already in the request's pool (the L1's copy) */
ngx_int_t ngx_http_fanout_cache_read(ngx_http_fanout_ctx_t *ctx, u_char *copy,
    size_t len, ngx_http_fanout_cached_t **entry);


#endif /* _NGX_HTTP_FANOUT_CACHE_ENTRY_H_INCLUDED_ */
