/*
 * The zone's counters described once: one table per group of nodes
 * (locations, targets, limits, variants, shadows, batches, Redis) gives
 * each counter its JSON name and object, its Prometheus family and label,
 * and its help.  The status's JSON and Prometheus printers, the
 * dashboard's field list (?format=fields) and the status's size bound are
 * loops over these tables.
 */

#ifndef _NGX_HTTP_FANOUT_COUNTERS_H_INCLUDED_
#define _NGX_HTTP_FANOUT_COUNTERS_H_INCLUDED_


#include "ngx_http_fanout.h"


#define NGX_HTTP_FANOUT_COUNTER_ONE        0   /* one counter */
#define NGX_HTTP_FANOUT_COUNTER_KINDS      1   /* one per fanout_kind_e */
#define NGX_HTTP_FANOUT_COUNTER_HISTOGRAM  2   /* n buckets, non-cumulative */


typedef struct {
    const char           *name;     /* its JSON member */
    const char           *object;   /* the JSON object it is in, NULL: the
                                       node's own */
    const char           *metric;   /* its Prometheus family */
    const char           *label;    /* the label telling it from the
                                       family's others, NULL: none */
    const char           *value;    /* that label's value, NULL: name */
    const char           *help;     /* the family's, on its first counter */
    const char           *type;     /* the family's: counter, gauge... */
    ngx_uint_t            counter;  /* its (first) index in the node */
    ngx_uint_t            shape;    /* NGX_HTTP_FANOUT_COUNTER_* */
    ngx_uint_t            n;        /* a histogram's buckets */
    const char  *const   *bounds;   /* their names in JSON */
    const char  *const   *le;       /* and in Prometheus */
    ngx_uint_t            sum;      /* the counter holding its sum */
    ngx_uint_t            ms;       /* the sum is ms, shown as seconds */
} ngx_http_fanout_counter_t;


/* the groups, and the node label Prometheus tells their nodes by */
typedef enum {
    NGX_HTTP_FANOUT_GROUP_LOCATION = 0,
    NGX_HTTP_FANOUT_GROUP_LIMIT,            /* = NGX_HTTP_FANOUT_STATS_LIMIT */
    NGX_HTTP_FANOUT_GROUP_VARIANT,
    NGX_HTTP_FANOUT_GROUP_SHADOW,
    NGX_HTTP_FANOUT_GROUP_BATCH,
    NGX_HTTP_FANOUT_GROUP_TARGET,
    NGX_HTTP_FANOUT_GROUP_REDIS,
    NGX_HTTP_FANOUT_NGROUPS
} ngx_http_fanout_group_e;


typedef struct {
    const char                       *name;     /* in ?format=fields */
    const char                       *label;    /* a node's, NULL: none */
    const ngx_http_fanout_counter_t  *counters;
    ngx_uint_t                        n;
} ngx_http_fanout_counter_group_t;


extern const ngx_http_fanout_counter_group_t
    ngx_http_fanout_counter_groups[NGX_HTTP_FANOUT_NGROUPS];


/*
 * Where a group's JSON splits around members that are not counters: the
 * first counter of the location's "limit" object, of the shadow's
 * "vs_primary" object.
 */
#define NGX_HTTP_FANOUT_LOC_SPLIT_LIMIT   NGX_HTTP_FANOUT_LOC_LIMITED
#define NGX_HTTP_FANOUT_SHA_SPLIT_PAIRS   NGX_HTTP_FANOUT_SHA_PAIRS


u_char *ngx_http_fanout_counters_json(u_char *p, ngx_uint_t group,
    ngx_uint_t from, ngx_uint_t to, ngx_http_fanout_stats_t *st,
    ngx_uint_t comma, ngx_uint_t open);
u_char *ngx_http_fanout_counters_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf, ngx_uint_t group);
ngx_uint_t ngx_http_fanout_counters_lines(ngx_uint_t group);
ngx_int_t ngx_http_fanout_counters_fields(ngx_pool_t *pool, ngx_str_t *out);


#endif /* _NGX_HTTP_FANOUT_COUNTERS_H_INCLUDED_ */
