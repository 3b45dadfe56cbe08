/*
 * fanout_cache_purge: keys and L1 entries deleted.
 */

#ifndef _NGX_HTTP_FANOUT_PURGE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_PURGE_H_INCLUDED_


#include "ngx_http_fanout.h"


ngx_int_t ngx_http_fanout_purge(ngx_http_fanout_ctx_t *ctx, ngx_str_t *keys,
    ngx_str_t *l1keys, ngx_uint_t n, ngx_http_fanout_l1_t *l1);


#endif /* _NGX_HTTP_FANOUT_PURGE_H_INCLUDED_ */
