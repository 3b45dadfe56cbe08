/*
 * fanout_redis sentinel=: the master's address from the Sentinels
 * (ngx_http_fanout_redis_sentinel.c).
 */

#ifndef _NGX_HTTP_FANOUT_REDIS_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_FANOUT_REDIS_SENTINEL_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_redis.h"


/* the master moved (or was found): the client's connections go there */
typedef void (*ngx_http_fanout_sentinel_moved_pt)(void);


ngx_int_t ngx_http_fanout_sentinel_init(ngx_cycle_t *cycle,
    ngx_http_fanout_redis_conf_t *rcf, ngx_http_fanout_sentinel_moved_pt moved);
in_port_t ngx_http_fanout_sentinel_where(u_char **host);
void ngx_http_fanout_sentinel_again(void);
void ngx_http_fanout_sentinel_exit(void);


#endif /* _NGX_HTTP_FANOUT_REDIS_SENTINEL_H_INCLUDED_ */
