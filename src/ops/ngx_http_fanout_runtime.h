/*
 * Runtime traffic control (fanout_api changes, ramps) and its fleet
 * state in Redis.
 */

#ifndef _NGX_HTTP_FANOUT_RUNTIME_H_INCLUDED_
#define _NGX_HTTP_FANOUT_RUNTIME_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "ngx_http_fanout_stats.h"


/* a runtime change (ngx_http_fanout_runtime.c), as fanout_api read it */
#define NGX_HTTP_FANOUT_RT_WEIGHTS   1   /* names, shares */
#define NGX_HTTP_FANOUT_RT_CONFIG    2   /* the split's weights as configured */
#define NGX_HTTP_FANOUT_RT_PERCENT   3   /* name (a shadow), value */
#define NGX_HTTP_FANOUT_RT_BREAKER   4   /* name (a target), value 0 auto,
                                            1 open, 2 closed */
#define NGX_HTTP_FANOUT_RT_TARGET    5   /* name, value 1 enabled */
#define NGX_HTTP_FANOUT_RT_ROLLBACK  6   /* the ramp, to 0% now */
#define NGX_HTTP_FANOUT_RT_RESTART   7   /* the ramp, from its first step */
#define NGX_HTTP_FANOUT_RT_PURGE     8   /* the cache: the location's, or
                                            name's (a target's) */
#define NGX_HTTP_FANOUT_RT_RAMP_SET  9   /* steps, every, rollback,
                                            candidate, value: min_requests */
#define NGX_HTTP_FANOUT_RT_RAMP_OFF  10  /* fanout_api's ramp off */

#define NGX_HTTP_FANOUT_RT_AS_CONFIGURED  ((ngx_uint_t) -1)
#define NGX_HTTP_FANOUT_RT_FIELD     512   /* a Redis field's bytes, most */

struct ngx_http_fanout_rt_change_s {
    ngx_uint_t                  what;
    ngx_str_t                   location;
    ngx_str_t                   name;
    ngx_uint_t                  value;
    ngx_uint_t                  nshares;
    ngx_str_t                   names[FANOUT_SPLIT_MAX_VARIANTS];
    uint32_t                    shares[FANOUT_SPLIT_MAX_VARIANTS];
                                             /* hundredths of 1% */
    uint32_t                    order[FANOUT_SPLIT_MAX_VARIANTS];
                                             /* the same, by variant */
    ngx_str_t                   steps;       /* a ramp's, as in ramp= */
    ngx_str_t                   rollback;
    ngx_str_t                   candidate;
    ngx_msec_t                  every;
    ngx_uint_t                  status;      /* refused: why */
    const char                 *error;
    const char                 *message;
    unsigned                    stranded:1;  /* name: the variant a change
                                                would leave without targets */
};

/* written for the fleet: its version, or -1 when Redis did not take it */
typedef void (*ngx_http_fanout_rt_done_pt)(void *data, ngx_int_t version);


void ngx_http_fanout_runtime_forget(void *pending);
ngx_int_t ngx_http_fanout_runtime_init_process(ngx_cycle_t *cycle);

/* the state's pieces the API's changes and the displays use */
size_t ngx_http_fanout_rt_field(u_char *buf, const char *kind, ngx_str_t *name,
    ngx_str_t *location);
ngx_int_t ngx_http_fanout_rt_index(ngx_array_t *a, u_char *name, size_t len,
    ngx_uint_t skip);
uint64_t ngx_http_fanout_rt_wall(void);
void ngx_http_fanout_rt_split_write(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, fanout_split_t *split,
    ngx_uint_t weights);
size_t ngx_http_fanout_rt_ramp_value(u_char *buf, ngx_uint_t state,
    ngx_uint_t step, uint64_t at, ngx_uint_t why);
void ngx_http_fanout_rt_ramp_take(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, ngx_uint_t state, ngx_uint_t step,
    uint64_t at, ngx_uint_t why, const char *from);
void ngx_http_fanout_rt_ramp_install(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc, fanout_ramp_t *ramp,
    ngx_uint_t candidate);
u_char *ngx_http_fanout_rt_weights_value(u_char *p,
    ngx_http_fanout_stats_loc_t *loc, fanout_split_t *split);
size_t ngx_http_fanout_rt_ramp_conf_value(u_char *buf, fanout_ramp_t *ramp,
    ngx_uint_t candidate, ngx_str_t *steps, ngx_str_t *rollback);
const char *ngx_http_fanout_rt_ramp_conf(ngx_str_t *steps, uint64_t every,
    uint64_t min, ngx_str_t *rollback, fanout_ramp_t *ramp);
ngx_http_fanout_stats_loc_t *ngx_http_fanout_rt_location(
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *name);
void ngx_http_fanout_rt_counts(ngx_http_fanout_stats_loc_t *loc,
    fanout_ramp_counts_t *c);
void ngx_http_fanout_rt_ramp_sync(ngx_http_fanout_main_conf_t *fmcf,
    ngx_http_fanout_stats_loc_t *loc);
ngx_int_t ngx_http_fanout_rt_write(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, u_char *field, size_t flen, u_char *value, size_t vlen,
    ngx_http_fanout_rt_done_pt handler, void *data, void **pending);
const char *ngx_http_fanout_rt_ramp_name(ngx_uint_t state);


#endif /* _NGX_HTTP_FANOUT_RUNTIME_H_INCLUDED_ */
