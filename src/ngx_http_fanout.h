/*
 * ngx_http_fanout_module: one request, concurrent subrequests to several
 * model targets, one merged JSON answer.  The types the glue files share,
 * and only types: each subsystem's functions are in its own header, and
 * its state behind a pointer whose type its header completes.
 */

#ifndef _NGX_HTTP_FANOUT_H_INCLUDED_
#define _NGX_HTTP_FANOUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "fanout_call.h"
#include "fanout_breaker.h"
#include "fanout_batch.h"
#include "fanout_microbatch.h"
#include "fanout_trace.h"
#include "fanout_split.h"


#define NGX_HTTP_FANOUT_VERSION        "0.3.0"
#define NGX_HTTP_FANOUT_VERSION_NUM    3000   /* 0.3.0, as nginx_version */

#define NGX_HTTP_FANOUT_WEIGHT_ONE     1000     /* weight=1, fixed point */
#define NGX_HTTP_FANOUT_MAX_TARGETS    32
#define NGX_HTTP_FANOUT_MAX_ATTEMPTS   10     /* fanout_retry attempts= */
#define NGX_HTTP_FANOUT_WINDOW_SLOT    5000   /* after=pN: 5 to 10 s */
#define NGX_HTTP_FANOUT_HEDGE_SAMPLES  20     /* before pN is trusted */

/* work on more bytes than this takes a millisecond or more: after it,
 * nginx's clock is updated so that the timers that follow are right */
#define NGX_HTTP_FANOUT_LONG_WORK      (256 * 1024)

#define NGX_HTTP_FANOUT_STATUS_JSON        1
#define NGX_HTTP_FANOUT_STATUS_PROMETHEUS  2
#define NGX_HTTP_FANOUT_STATUS_HTML        3


typedef struct ngx_http_fanout_stats_s  ngx_http_fanout_stats_t;
typedef struct ngx_http_fanout_shctx_s  ngx_http_fanout_shctx_t;
typedef struct ngx_http_fanout_cache_conf_s  ngx_http_fanout_cache_conf_t;
typedef struct ngx_http_fanout_redis_op_s  ngx_http_fanout_redis_op_t;
typedef struct ngx_http_fanout_redis_conf_s  ngx_http_fanout_redis_conf_t;
typedef struct ngx_http_fanout_split_conf_s  ngx_http_fanout_split_conf_t;
typedef struct ngx_http_fanout_shadow_s  ngx_http_fanout_shadow_t;
typedef struct ngx_http_fanout_l1_s  ngx_http_fanout_l1_t;
typedef struct ngx_http_fanout_call_log_s  ngx_http_fanout_call_log_t;
typedef struct ngx_http_fanout_health_conf_s  ngx_http_fanout_health_conf_t;
typedef struct ngx_http_fanout_ctx_s  ngx_http_fanout_ctx_t;
typedef struct ngx_http_fanout_call_s  ngx_http_fanout_call_t;
typedef struct ngx_http_fanout_attempt_s  ngx_http_fanout_attempt_t;
typedef struct ngx_http_fanout_batch_s  ngx_http_fanout_batch_t;
typedef struct ngx_http_fanout_batch_conf_s  ngx_http_fanout_batch_conf_t;
typedef struct ngx_http_fanout_retry_conf_s  ngx_http_fanout_retry_conf_t;
typedef struct ngx_http_fanout_hedge_conf_s  ngx_http_fanout_hedge_conf_t;
typedef struct ngx_http_fanout_deadline_conf_s
    ngx_http_fanout_deadline_conf_t;
typedef struct ngx_http_fanout_trace_ctx_s  ngx_http_fanout_trace_ctx_t;
typedef struct ngx_http_fanout_limit_ctx_s  ngx_http_fanout_limit_ctx_t;
typedef struct ngx_http_fanout_cache_ctx_s  ngx_http_fanout_cache_ctx_t;
typedef struct ngx_http_fanout_rt_change_s  ngx_http_fanout_rt_change_t;


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   uri;
    ngx_str_t                   args;
    ngx_uint_t                  weight;        /* thousandths */
    ngx_msec_t                  timeout;       /* NGX_CONF_UNSET_MSEC: none */
    ngx_uint_t                  stats;         /* index in the location's */
    ngx_uint_t                  max_inflight;  /* 0: no cap; auto: at most */
    ngx_uint_t                  min_inflight;  /* auto: at least */
    ngx_uint_t                  inflight_auto; /* max_inflight=auto */
    ngx_uint_t                  queue;         /* queue=: calls over the
                                                  cap that may wait */
    ngx_msec_t                  queue_timeout; /* unset: the deadline */
    ngx_http_complex_value_t   *priority;      /* priority=: lower first */
    ngx_http_complex_value_t   *fair;          /* fair=: turns by its value */
    ngx_str_t                   variant_name;  /* variant= */
    ngx_int_t                   variant;       /* its index; -1: all */
    ngx_str_t                   fallback;      /* fallback=, its URI */
    ngx_str_t                   fallback_args;
    ngx_str_t                   breaker_key;   /* scope=cluster, in Redis */
    ngx_str_t                   breaker_name;  /* breaker_key=, or empty */
    ngx_uint_t                  breaker_peer;  /* scope=cluster: its index */
    ngx_uint_t                  batch;         /* batch=: inputs a call */
    ngx_msec_t                  batch_wait;
    ngx_uint_t                  batch_format;  /* fanout_mb_format_e */
    ngx_uint_t                  batch_stats;   /* its batches' counters */
    void                       *batcher;       /* this worker's batches */
    ngx_uint_t                  no_breaker;    /* breaker=off */
    ngx_array_t                *sets;          /* set=: its body's members
                                                  (call/body.h), or NULL */
} ngx_http_fanout_target_t;


typedef struct {
    ngx_array_t                *targets;       /* ngx_http_fanout_target_t */
    ngx_uint_t                  merge;         /* fanout_merge_mode_e */
    ngx_str_t                   field;
    ngx_flag_t                  merge_v2;      /* format=v2 */
    ngx_int_t                   precision;     /* mean: FANOUT_PRECISION_* or
                                                  digits */
    ngx_str_t                   merge_model;   /* its model_name */
    ngx_str_t                   merge_output;  /* its output's name */
    ngx_uint_t                  quorum;
    ngx_msec_t                  timeout;
    ngx_uint_t                  stats;         /* index in fmcf->locations */
    ngx_uint_t                  stages;        /* the stages it runs: bits */

    /* where directives were given, for errors found at merge time */
    u_char                     *quorum_file;
    ngx_uint_t                  quorum_line;
    ngx_str_t                   location;

    ngx_uint_t                  status_format; /* fanout_status */
    ngx_http_fanout_health_conf_t  *health;    /* fanout_health */
    ngx_uint_t                  api;           /* fanout_api: 1 read, 2 write */
    ngx_uint_t                  needs_redis;   /* a limit that fails closed */
    ngx_uint_t                  bodies;        /* a target has set= */

    ngx_http_fanout_cache_conf_t  *cache;      /* NULL: off */
    ngx_http_fanout_l1_t       *cache_l1;      /* its l1= zone, or NULL */
    ngx_str_t                   server_id;     /* its server block's, hex */
    ngx_array_t                *cache_bypass;  /* predicates */
    ngx_array_t                *cache_purge;   /* predicates */
    ngx_array_t                *limits;        /* ngx_http_fanout_limit_t */
    fanout_breaker_conf_t      *breaker;       /* NULL: none */
    ngx_http_fanout_retry_conf_t  *retry;      /* NULL: off */
    ngx_http_fanout_hedge_conf_t  *hedge;      /* NULL: off */
    ngx_http_fanout_deadline_conf_t  *deadline;  /* fanout_deadline_header:
                                                  NULL off */
    ngx_http_fanout_split_conf_t  *split;      /* NULL: none */
    ngx_http_fanout_batch_conf_t  *batch;      /* NULL: off */
    ngx_array_t                *shadows;       /* fanout_shadow */
    u_char                     *shadow_file;   /* the first one's */
    ngx_uint_t                  shadow_line;

    ngx_http_fanout_call_log_t *call_log;      /* NULL: off */
    ngx_flag_t                  trace;         /* fanout_trace */
    ngx_uint_t                  request_id;    /* fanout_request_id */
} ngx_http_fanout_loc_conf_t;


/* fanout_request_id */
#define NGX_HTTP_FANOUT_RID_OFF    1
#define NGX_HTTP_FANOUT_RID_ON     2
#define NGX_HTTP_FANOUT_RID_TRUST  3


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_array_t                 locations;     /* ngx_http_fanout_stats_loc_t */

    u_char                     *target_file;   /* first fanout_target */
    ngx_uint_t                  target_line;
    u_char                     *status_file;   /* first fanout_status */
    ngx_uint_t                  status_line;
    u_char                     *api_file;      /* first fanout_api */
    ngx_uint_t                  api_line;
    u_char                     *cache_file;    /* first fanout_cache */
    ngx_uint_t                  cache_line;
    u_char                     *cluster_file;  /* first scope=cluster */
    ngx_uint_t                  cluster_line;
    u_char                     *sample_file;   /* first sample=redis */
    ngx_uint_t                  sample_line;

    ngx_http_fanout_redis_conf_t  *redis;      /* fanout_redis */
    ngx_array_t                *breakers;      /* scope=cluster ones */
    ngx_http_fanout_stats_t    *redis_stats;

    ngx_int_t                   request_id;    /* $request_id's index, in
                                                  this configuration */

    ngx_str_t                   instance;      /* fanout_instance */
    ngx_array_t                *healths;       /* fanout_health's confs */
    ngx_msec_t                  drain_on_quit; /* fanout_drain_on_quit */
    ngx_uint_t                  heartbeat;     /* local_share: counted */
    time_t                      loaded;        /* this configuration's */
    ngx_array_t                *zone_inits;    /* subsystems' setups in the
                                                  zone: ..._zone_init_pt */
    ngx_http_fanout_shctx_t    *sh;            /* the zone, once made */
    ngx_slab_pool_t            *shpool;
} ngx_http_fanout_main_conf_t;


/* the request's stages, in the order they run (ngx_http_fanout_pipeline.c) */
typedef enum {
    NGX_HTTP_FANOUT_STAGE_VARIANT = 0,   /* fanout_split */
    NGX_HTTP_FANOUT_STAGE_LIMIT,         /* fanout_limit */
    NGX_HTTP_FANOUT_STAGE_BODY,          /* the client's body */
    NGX_HTTP_FANOUT_STAGE_BATCH,         /* fanout_batch: items, bodies */
    NGX_HTTP_FANOUT_STAGE_TARGETS,       /* the calls planned, not made */
    NGX_HTTP_FANOUT_STAGE_CACHE,         /* fanout_cache: lookup, waiting */
    NGX_HTTP_FANOUT_STAGE_TOKENS,        /* fanout_limit tokens=: reserved */
    NGX_HTTP_FANOUT_STAGE_SHADOWS,       /* fanout_shadow: started */
    NGX_HTTP_FANOUT_STAGE_CALLS,         /* the targets, to the deadline */
    NGX_HTTP_FANOUT_STAGE_ANSWER,        /* merged, or the winner, sent */
    NGX_HTTP_FANOUT_STAGE_LOG,           /* counted: every request, once */
    NGX_HTTP_FANOUT_STAGE_STORE,         /* fanout_cache: stored, handed */
    NGX_HTTP_FANOUT_STAGE_COMPARE,       /* fanout_shadow: compared */
    NGX_HTTP_FANOUT_NSTAGES
} ngx_http_fanout_stage_e;


typedef ngx_int_t (*ngx_http_fanout_stage_pt)(ngx_http_fanout_ctx_t *ctx);


/*
 * A subsystem's headers on every answer of the module (X-Fanout-Cache,
 * RateLimit-*): it adds its writer, a node in its own request state, to
 * the request's list when it makes that state, and response.c runs the
 * list, in that order, knowing none.
 */
typedef struct ngx_http_fanout_headers_s  ngx_http_fanout_headers_t;

struct ngx_http_fanout_headers_s {
    ngx_int_t                 (*write)(ngx_http_request_t *r, void *data);
    void                       *data;
    ngx_http_fanout_headers_t  *next;
};


struct ngx_http_fanout_ctx_s {
    ngx_http_request_t         *request;
    ngx_http_fanout_loc_conf_t *conf;
    ngx_http_fanout_call_t      *subs;
    ngx_uint_t                  nsubs;
    ngx_uint_t                  pending;
    ngx_http_fanout_call_t      *winner;        /* merge first */
    ngx_uint_t                  next_call;     /* the next to start */
    ngx_http_fanout_batch_t    *batch;         /* fanout_batch; or NULL */
    ngx_http_fanout_trace_ctx_t *trace;        /* fanout_trace, the id */

    ngx_uint_t                  status;        /* of the merged answer */
    ngx_uint_t                  ok;
    ngx_uint_t                  failed;
    ngx_uint_t                  fallbacks;     /* answers from fallback= */
    ngx_int_t                   variant;       /* fanout_split's; -1: none */
    ngx_list_t                 *headers;       /* the targets get these */
    ngx_msec_t                  start;
    ngx_msec_t                  latency;
    ngx_event_t                 deadline;

    ngx_buf_t                  *error_page;    /* JSON for nginx's own */

    ngx_http_fanout_shadow_t  **shadows;       /* waiting for the answer */
    ngx_uint_t                  nshadows;

    ngx_http_fanout_limit_ctx_t *limit;        /* fanout_limit's, once
                                                  checked; or NULL */
    ngx_http_fanout_headers_t  *headers_out;   /* the subsystems' headers */

    ngx_http_fanout_cache_ctx_t *cache;        /* fanout_cache's, from its
                                                  stage on; or NULL */

    /* the pipeline */
    ngx_int_t                   stage;
    ngx_int_t                   rc;            /* the answer's, once sent */
    ngx_int_t                   resume_rc;


    /* what the client got, for the shadows to compare with */
    struct {
        ngx_uint_t              status;
        u_char                 *body;
        size_t                  len;
        unsigned                sent:1;
    }                           answer;

    unsigned                    started:1;     /* the body is read */
    unsigned                    calls:1;       /* the targets are called */
    unsigned                    deadline_passed:1;
    unsigned                    finished:1;    /* the answer is decided */
    unsigned                    running:1;     /* in the pipeline's driver */
    unsigned                    resumed:1;     /* while it was running */
};


#endif /* _NGX_HTTP_FANOUT_H_INCLUDED_ */
