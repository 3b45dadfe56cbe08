/*
 * The Redis client's errors counted and logged (ngx_http_fanout_redis_log.c).
 */

#ifndef _NGX_HTTP_FANOUT_REDIS_LOG_H_INCLUDED_
#define _NGX_HTTP_FANOUT_REDIS_LOG_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_redis.h"


void ngx_http_fanout_redis_log_init(ngx_http_fanout_redis_conf_t *rcf,
    ngx_http_fanout_stats_t *stats);
void ngx_http_fanout_redis_log_master(u_char *host, in_port_t port);
void ngx_http_fanout_redis_log_next(void);
void ngx_http_fanout_redis_fail(ngx_log_t *log,
    ngx_http_fanout_redis_error_e err, const char *why, const char *detail);
void ngx_http_fanout_redis_count(ngx_uint_t counter, ngx_atomic_int_t n);


#endif /* _NGX_HTTP_FANOUT_REDIS_LOG_H_INCLUDED_ */
