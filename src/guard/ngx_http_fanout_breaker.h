/*
 * fanout_breaker: circuit breakers per target, local or the fleet's.
 */

#ifndef _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_
#define _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_


#include "ngx_http_fanout.h"


/* what a call the breaker allowed came to */
typedef enum {
    NGX_HTTP_FANOUT_BREAKER_NONE = 0,      /* no call, or not the model's */
    NGX_HTTP_FANOUT_BREAKER_SUCCESS,
    NGX_HTTP_FANOUT_BREAKER_FAILURE
} ngx_http_fanout_breaker_outcome_e;


char *ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_breaker_register(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_int_t ngx_http_fanout_breaker_init_process(ngx_cycle_t *cycle);

/*
 * A breaker is asked and told by its node (a target's, or breaker_key='s),
 * under the zone's lock that the caller holds around a run of them; what
 * changed is logged and told the fleet after the lock.
 */
ngx_uint_t ngx_http_fanout_breaker_allow(fanout_breaker_conf_t *conf,
    ngx_http_fanout_stats_t *node);
fanout_breaker_change_e ngx_http_fanout_breaker_record(
    fanout_breaker_conf_t *conf, ngx_http_fanout_stats_t *node,
    ngx_uint_t verdict, ngx_http_fanout_breaker_outcome_e outcome,
    uint32_t *old);
void ngx_http_fanout_breaker_changed(ngx_log_t *log,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *t,
    ngx_http_fanout_stats_t *node, uint32_t old,
    fanout_breaker_change_e change);


#endif /* _NGX_HTTP_FANOUT_BREAKER_H_INCLUDED_ */
