/*
 * fanout_cache l1=: a first-level cache of Redis's entries in shared
 * memory (ngx_http_fanout_l1.c).
 */

#ifndef _NGX_HTTP_FANOUT_L1_H_INCLUDED_
#define _NGX_HTTP_FANOUT_L1_H_INCLUDED_


#include "ngx_http_fanout.h"


typedef struct {
    size_t                      size;
    ngx_msec_t                  ttl;
    ngx_uint_t                  entries;
    ngx_uint_t                  bytes;
    ngx_uint_t                  evicted;
    ngx_uint_t                  expired;
} ngx_http_fanout_l1_usage_t;


/* at configuration: the zone of a location's fanout_cache */
ngx_http_fanout_l1_t *ngx_http_fanout_l1_add(ngx_conf_t *cf,
    ngx_str_t *server_id, ngx_str_t *location, size_t size, size_t max_size,
    ngx_msec_t ttl);

/*
 * NGX_OK: the value, copied into pool, and the flags it was put with;
 * NGX_DECLINED: none, or expired
 */
ngx_int_t ngx_http_fanout_l1_get(ngx_http_fanout_l1_t *l1, ngx_str_t *key,
    ngx_msec_int_t now, ngx_pool_t *pool, ngx_str_t *value,
    ngx_uint_t *flags);

/* kept until min(now + l1_ttl, fresh_until); NGX_DECLINED: too large */
ngx_int_t ngx_http_fanout_l1_put(ngx_http_fanout_l1_t *l1, ngx_str_t *key,
    u_char *value, size_t len, ngx_msec_int_t now,
    ngx_msec_int_t fresh_until, ngx_uint_t flags);

/* NGX_OK: it was there */
ngx_int_t ngx_http_fanout_l1_delete(ngx_http_fanout_l1_t *l1,
    ngx_str_t *key);

void ngx_http_fanout_l1_link(ngx_http_fanout_l1_t **head,
    ngx_http_fanout_l1_t *l1);
void ngx_http_fanout_l1_usage(ngx_http_fanout_l1_t *l1,
    ngx_http_fanout_l1_usage_t *u);


#endif /* _NGX_HTTP_FANOUT_L1_H_INCLUDED_ */
