/*
 * The Redis cache of fan-out answers: keys, lookups before a fan-out and
 * stores after the answer has gone out.
 */

#ifndef _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_


#include "ngx_http_fanout_module.h"
#include "fanout_cache_key.h"


#define NGX_HTTP_FANOUT_CACHE_MAX_BODY  (8 * 1024 * 1024)


typedef enum {
    NGX_HTTP_FANOUT_CACHE_NONE = 0,
    NGX_HTTP_FANOUT_CACHE_HIT,
    NGX_HTTP_FANOUT_CACHE_MISS,
    NGX_HTTP_FANOUT_CACHE_BYPASS,
    NGX_HTTP_FANOUT_CACHE_ERROR
} ngx_http_fanout_cache_status_e;


struct ngx_http_fanout_cache_conf_s {
    time_t                      ttl;
    ngx_http_complex_value_t   *key;
    ngx_http_complex_value_t   *vary;
    fanout_field_t             *ignore;
    ngx_uint_t                  nignore;
    size_t                      max_size;
};


char *ngx_http_fanout_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * NGX_OK: a lookup is under way and ends in ngx_http_fanout_begin() or an
 * answer; NGX_DECLINED: fan out now (bypass, or Redis unavailable).
 */
ngx_int_t ngx_http_fanout_cache_lookup(ngx_http_fanout_ctx_t *ctx);

/* after the answer: stores it when it is worth it */
void ngx_http_fanout_cache_store(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target, u_char *body,
    size_t len);

extern ngx_str_t  ngx_http_fanout_cache_statuses[];


#endif /* _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_ */
