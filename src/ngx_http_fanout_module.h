/*
 * ngx_http_fanout_module: one request, concurrent subrequests to several
 * model targets, one merged JSON answer.  Types shared by the glue files.
 */

#ifndef _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_


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


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   uri;
    ngx_str_t                   args;
    ngx_uint_t                  weight;        /* thousandths */
    ngx_msec_t                  timeout;       /* NGX_CONF_UNSET_MSEC: none */
    ngx_uint_t                  stats;         /* index in the location's */
    ngx_uint_t                  max_inflight;  /* 0: no cap */
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
    unsigned                    no_breaker:1;  /* breaker=off */
} ngx_http_fanout_target_t;


/* fanout_retry: a failed attempt of a call is tried again */
typedef struct {
    ngx_uint_t                  attempts;      /* in all, the first one too */
    ngx_uint_t                  on;            /* FANOUT_RETRY_* */
    ngx_msec_t                  backoff;
    ngx_msec_t                  max_backoff;
    ngx_uint_t                  budget;        /* hundredths of a percent */
    ngx_uint_t                  min_per_s;     /* min_retries=N/s */
} ngx_http_fanout_retry_conf_t;


/* fanout_hedge: a backup attempt when the first is late */
typedef struct {
    ngx_msec_t                  after;         /* after=TIME */
    ngx_uint_t                  per_mille;     /* after=pN: N * 10; 0: TIME */
    ngx_msec_t                  min;
    ngx_msec_t                  max;
    ngx_uint_t                  budget;        /* hundredths of a percent */
    ngx_uint_t                  max_hedges;
    ngx_str_t                   to;            /* to=URI, or empty */
    ngx_str_t                   to_args;
} ngx_http_fanout_hedge_conf_t;


/* fanout_batch: the client's batch, a call per item (or chunk) */
typedef struct {
    ngx_str_t                   field;         /* where the array is */
    ngx_uint_t                  max_items;
    ngx_uint_t                  chunk;         /* 0: an item a call */
    ngx_uint_t                  concurrency;   /* calls at once; 0: all */
    u_char                     *file;          /* where it was given */
    ngx_uint_t                  line;
} ngx_http_fanout_batch_conf_t;


/* a request's batch (ngx_http_fanout_batch.c), read by the calls */
typedef struct {
    ngx_str_t                   body;          /* the client's, in memory */
    fanout_batch_t              split;         /* its array and items */
    ngx_uint_t                  ncalls;        /* per target */
    ngx_uint_t                  ntargets;      /* per call */
    ngx_http_request_body_t    *bodies;        /* ncalls: what each sends */
    off_t                      *lengths;
} ngx_http_fanout_batch_t;


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

    ngx_http_fanout_cache_conf_t  *cache;      /* NULL: off */
    ngx_http_fanout_l1_t       *cache_l1;      /* its l1= zone, or NULL */
    ngx_str_t                   server_id;     /* its server block's, hex */
    ngx_array_t                *cache_bypass;  /* predicates */
    ngx_array_t                *cache_purge;   /* predicates */
    ngx_array_t                *limits;        /* ngx_http_fanout_limit_t */
    fanout_breaker_conf_t      *breaker;       /* NULL: none */
    ngx_http_fanout_retry_conf_t  *retry;      /* NULL: off */
    ngx_http_fanout_hedge_conf_t  *hedge;      /* NULL: off */
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


/* a request's trace and request id (ngx_http_fanout_trace.c) */
typedef struct {
    fanout_trace_t              ids;           /* trace id, the calls'
                                                  parent span, flags */
    ngx_str_t                   request_id;    /* empty: not sent */
    ngx_list_t                  rid_list;      /* X-Request-ID, then the
                                                  client's headers */
    ngx_table_elt_t             rid_elt;
    unsigned                    traced:1;
    unsigned                    fresh:1;       /* a new trace, ours */
} ngx_http_fanout_trace_ctx_t;


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
    ngx_http_fanout_shctx_t    *sh;            /* the zone, once made */
    ngx_slab_pool_t            *shpool;
} ngx_http_fanout_main_conf_t;


typedef struct ngx_http_fanout_ctx_s  ngx_http_fanout_ctx_t;


/* the request's stages, in the order they run (ngx_http_fanout_pipeline.c) */
typedef enum {
    NGX_HTTP_FANOUT_STAGE_VARIANT = 0,   /* fanout_split */
    NGX_HTTP_FANOUT_STAGE_LIMIT,         /* fanout_limit */
    NGX_HTTP_FANOUT_STAGE_BODY,          /* the client's body */
    NGX_HTTP_FANOUT_STAGE_BATCH,         /* fanout_batch: items, bodies */
    NGX_HTTP_FANOUT_STAGE_CACHE,         /* fanout_cache: lookup, waiting */
    NGX_HTTP_FANOUT_STAGE_SHADOWS,       /* fanout_shadow: started */
    NGX_HTTP_FANOUT_STAGE_CALLS,         /* the targets, to the deadline */
    NGX_HTTP_FANOUT_STAGE_ANSWER,        /* merged, or the winner, sent */
    NGX_HTTP_FANOUT_STAGE_LOG,           /* counted: every request, once */
    NGX_HTTP_FANOUT_STAGE_STORE,         /* fanout_cache: stored, handed */
    NGX_HTTP_FANOUT_STAGE_COMPARE,       /* fanout_shadow: compared */
    NGX_HTTP_FANOUT_NSTAGES
} ngx_http_fanout_stage_e;


typedef ngx_int_t (*ngx_http_fanout_stage_pt)(ngx_http_fanout_ctx_t *ctx);


typedef struct ngx_http_fanout_attempt_s  ngx_http_fanout_attempt_t;

typedef void (*ngx_http_fanout_attempt_pt)(ngx_http_fanout_attempt_t *a);


/* one subrequest of a call or of a shadow (ngx_http_fanout_capture.c) */
struct ngx_http_fanout_attempt_s {
    void                       *owner;         /* its call, or its shadow */
    ngx_http_fanout_attempt_pt  ended;         /* the owner's: it ended */
    ngx_http_fanout_attempt_pt  stopped;       /* the owner's: the capture
                                                  gave up (posted) */
    ngx_str_t                  *name;          /* for the error log */
    const char                 *what;          /* "target", "shadow" */
    ngx_http_fanout_attempt_t  *next;          /* the call's next one */
    ngx_int_t                 (*streamed)(ngx_http_fanout_attempt_t *a);
                                               /* the owner's, at a stream's
                                                  first bytes: NGX_OK to
                                                  forward it to sink */
    ngx_http_request_t         *sink;
    off_t                       sent;          /* bytes forwarded */

    /* micro-batched (batch=): no subrequest of its own, a place in one */
    void                      (*leave)(ngx_http_fanout_attempt_t *a);
    void                       *batched;

    ngx_http_request_t         *sr;            /* NULL once it has ended */
    ngx_http_post_subrequest_t  ps;
    u_char                      span[FANOUT_SPAN_ID_LEN];  /* its own, in
                                                  its traceparent */
    ngx_str_t                  *uri;           /* what it called */
    const char                 *cause;         /* an upstream_error's or a
                                                  timeout's, or NULL */
    ngx_event_t                *stop;          /* posted: cut it off */
    ngx_msec_t                  start;
    ngx_msec_t                  last_read;     /* the answer's latest bytes */
    ngx_msec_t                  latency;
    ngx_msec_int_t              retry_after;   /* of a 429/503, or -1 */

    /* the answer, as captured */
    int                         status;
    ngx_str_t                   content_type;
    u_char                     *buf;
    size_t                      len;
    size_t                      cap;
    size_t                      limit;         /* the in-memory limit */

    /* the upstream module's finalizer, wrapped to learn how it ended */
    void                      (*upstream_finalize)(ngx_http_request_t *r,
                                                   ngx_int_t rc);
    ngx_int_t                   upstream_rc;

    /* once ended: what the capture saw, and the outcome it makes */
    fanout_capture_t            capture;
    fanout_kind_e               kind;
    int                         result;        /* the status for kind */

    unsigned                    header:1;      /* an answer began */
    unsigned                    complete:1;    /* to its last byte */
    unsigned                    done:1;        /* ended, or cut off */
    unsigned                    too_large:1;
    unsigned                    broken:1;      /* capture failed */
    unsigned                    live:1;        /* its call waits for it */
    unsigned                    hedge:1;       /* a fanout_hedge backup */
    unsigned                    stream:1;      /* a 2xx that is not JSON may
                                                  race by its first bytes */
    unsigned                    streaming:1;   /* forwarded as it comes */
    unsigned                    follower:1;    /* batch=: its batch's outcome
                                                  is another call's for the
                                                  breaker */
    unsigned                    retried:1;     /* batch=: retried as a batch */
    unsigned                    split:1;       /* batch=: its batch refused an
                                                  input: to be sent alone */
};


/* a target call: its attempts (the target, its fallback) and outcome */
typedef struct {
    ngx_http_fanout_ctx_t      *ctx;
    ngx_http_fanout_target_t   *target;
    ngx_http_fanout_stats_t    *st;            /* the target's counters */
    ngx_http_fanout_stats_t    *bst;           /* its breaker's node */
    ngx_http_fanout_attempt_t   first;         /* the target's own */
    ngx_http_fanout_attempt_t  *attempt;       /* the latest, or NULL */
    ngx_http_fanout_attempt_t  *last;          /* of the list from first */
    ngx_uint_t                  nattempts;     /* tries: first, retries */
    ngx_uint_t                  nhedges;
    ngx_uint_t                  running;       /* live attempts */
    ngx_event_t                *timer;         /* the target's timeout= */
    ngx_event_t                *later;         /* a retry's backoff, or a
                                                  hedge's delay: never both */
    ngx_msec_t                  hedge_after;

    ngx_str_t                   content_type;  /* of the answer it took */
    fanout_part_t               part;          /* status, body, outcome */
    uint32_t                    breaker_old;   /* record_all: the state its
                                                  outcome changed */

    unsigned                    done:1;        /* the outcome is known */
    unsigned                    cancelled:1;   /* cut off, not needed */
    unsigned                    verdict:2;     /* the breaker's */
    unsigned                    inflight:1;    /* holds a max_inflight slot */
    unsigned                    fallback:1;    /* its answer is the fallback's */
    unsigned                    hedged:1;      /* its answer is a hedge's */
    unsigned                    streaming:1;   /* "first": it streams */
    unsigned                    recorded:1;    /* its breaker has the outcome */
    unsigned                    accounted:1;   /* counted in the zone */
    unsigned                    alone:1;       /* batch=: never batched */
    unsigned                    breaker_change:2;  /* record_all's
                                                  fanout_breaker_change_e */
} ngx_http_fanout_call_t;


struct ngx_http_fanout_ctx_s {
    ngx_http_request_t         *request;
    ngx_http_fanout_loc_conf_t *conf;
    ngx_http_fanout_call_t      *subs;
    ngx_uint_t                  nsubs;
    ngx_uint_t                  pending;
    ngx_http_fanout_call_t      *winner;        /* merge first */
    ngx_uint_t                  next_call;     /* the next to start */
    ngx_http_fanout_batch_t    *batch;         /* fanout_batch; or NULL */
    ngx_http_fanout_trace_ctx_t trace;         /* fanout_trace, the id */

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

    /* fanout_limit: what the RateLimit-* headers say */
    ngx_str_t                   limit_limit;   /* its quota, as text */
    ngx_str_t                   limit_policy;  /* RateLimit-Policy */
    ngx_uint_t                  limit_remaining;
    ngx_uint_t                  limit_reset;   /* seconds */
    ngx_uint_t                  limit_weight;  /* a batch's calls; 0: 1 */
    unsigned                    limited:1;
    void                       *limit_run;     /* the check under way */
    ngx_http_fanout_redis_op_t *limit_op;      /* scope=cluster */

    ngx_uint_t                  cache_status;
    ngx_str_t                   cache_key;
    ngx_str_t                   cache_material;  /* level=response: what
                                                    cache_key digests, the
                                                    L1's key */
    ngx_str_t                   lock_key;      /* coalescing, made once */
    ngx_http_fanout_redis_op_t *cache_op;
    void                       *stale;         /* an expired entry */
    ngx_str_t                  *target_keys;   /* level=target */

    /* coalescing in this worker: leaders are in a table, waiters in theirs */
    ngx_queue_t                 inflight;      /* in the worker's table */
    ngx_queue_t                 waiters;       /* a leader's */
    ngx_queue_t                 waiting;       /* a waiter's link */
    ngx_http_fanout_ctx_t      *leader;        /* a waiter's */
    void                       *shared;        /* the answer handed over */
    ngx_event_t                 cache_wait;    /* coalescing: next poll */
    ngx_event_t                 cache_renew;   /* a leader's lock lease */
    ngx_msec_t                  cache_waited;
    ngx_uint_t                  cache_asked;   /* level=target: in Redis */
    ngx_uint_t                  purged_l1;     /* fanout_cache_purge */
    unsigned                    cache_leader:1;
    unsigned                    purging:1;     /* fanout_cache_purge */
    unsigned                    local_leader:1;

    /* the pipeline */
    ngx_int_t                   stage;
    ngx_int_t                   rc;            /* the answer's, once sent */
    ngx_int_t                   resume_rc;

    /* what the fan-out's answer leaves for the cache (STORE stage) */
    struct {
        ngx_uint_t              status;
        ngx_str_t               type;
        ngx_str_t               target;
        u_char                 *body;          /* NULL: a failure */
        size_t                  len;
        unsigned                ready:1;
    }                           keep;

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


/* a call's timers: its timeout=, its retry backoff or hedge delay */
static ngx_inline void
ngx_http_fanout_call_stop_timers(ngx_http_fanout_call_t *sub)
{
    if (sub->timer && sub->timer->timer_set) {
        ngx_del_timer(sub->timer);
    }

    if (sub->later && sub->later->timer_set) {
        ngx_del_timer(sub->later);
    }
}


/*
 * Was the call made, or did it end (a breaker's refusal, a timeout)?  Not
 * when the cache answered the request (level=response), a purge, or a
 * client gone before the fan-out: such a call tells no counter and no
 * breaker anything.
 */
#define ngx_http_fanout_call_made(sub)                                        \
    ((sub)->attempt != NULL || (sub)->done)


/* $request_id's index: kept in the configuration, as a reload renumbers */
#define ngx_http_fanout_rid(r)                                                \
    ((ngx_uint_t) ((ngx_http_fanout_main_conf_t *)                            \
        ngx_http_get_module_main_conf(r, ngx_http_fanout_module))->request_id)


ngx_int_t ngx_http_fanout_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_fanout_subs_init(ngx_http_fanout_ctx_t *ctx);
extern ngx_http_fanout_stage_pt  ngx_http_fanout_stages[NGX_HTTP_FANOUT_NSTAGES];

ngx_int_t ngx_http_fanout_pipeline(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_next(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc);
void ngx_http_fanout_resume(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc);

/* the stages, registered by ngx_http_fanout_module.c */
ngx_int_t ngx_http_fanout_split_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_limit_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_body_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_batch_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_cache_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_shadow_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_calls_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_answer_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_log_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_store_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_compare_stage(ngx_http_fanout_ctx_t *ctx);

ngx_int_t ngx_http_fanout_start(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_send_as_is(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target, u_char *body,
    size_t len);
void ngx_http_fanout_cancel(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_sub_account(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
void ngx_http_fanout_wake(ngx_http_request_t *r);
void ngx_http_fanout_split_uri(ngx_str_t *value, ngx_str_t *uri,
    ngx_str_t *args);
ngx_int_t ngx_http_fanout_capture_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanout_attempt_start(ngx_http_request_t *r,
    ngx_http_fanout_attempt_t *a, ngx_str_t *uri, ngx_str_t *args);
void ngx_http_fanout_attempt_cut(ngx_http_fanout_attempt_t *a);
void ngx_http_fanout_attempt_forget(ngx_http_fanout_attempt_t *a);
void ngx_http_fanout_attempt_answered(ngx_http_fanout_attempt_t *a,
    fanout_kind_e kind, int result, int status, ngx_str_t *type,
    u_char *buf, size_t len);
char *ngx_http_fanout_call_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_fanout_call_log_attempt(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a,
    const char *outcome);
ngx_int_t ngx_http_fanout_trace_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_trace_start(ngx_http_fanout_ctx_t *ctx);
ngx_list_t *ngx_http_fanout_trace_headers(ngx_http_fanout_ctx_t *ctx,
    ngx_list_t *shared, u_char *span);
ngx_int_t ngx_http_fanout_purge(ngx_http_fanout_ctx_t *ctx, ngx_str_t *keys,
    ngx_str_t *l1keys, ngx_uint_t n, ngx_http_fanout_l1_t *l1);
ngx_int_t ngx_http_fanout_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *message);
off_t ngx_http_fanout_body_size(ngx_http_request_t *r);
ngx_int_t ngx_http_fanout_body_copy(ngx_http_request_t *r, u_char *dst,
    size_t *len);
ngx_int_t ngx_http_fanout_body_memory(ngx_http_request_t *r,
    ngx_str_t *body);
ngx_int_t ngx_http_fanout_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_http_fanout_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_http_fanout_stream_header(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target);
ngx_int_t ngx_http_fanout_response_init(ngx_conf_t *cf);
ngx_list_t *ngx_http_fanout_headers(ngx_http_request_t *r);
ngx_int_t ngx_http_fanout_batcher_join(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a);
ngx_int_t ngx_http_fanout_batcher_init(ngx_conf_t *cf,
    ngx_http_fanout_target_t *t);
ngx_http_request_t *ngx_http_fanout_detach(ngx_http_request_t *r,
    ngx_list_t *headers, const char *action, ngx_uint_t body);
void ngx_http_fanout_detached_free(ngx_http_request_t *fake);

extern ngx_str_t  ngx_http_fanout_json_type;

ngx_int_t ngx_http_fanout_add_variables(ngx_conf_t *cf);

char *ngx_http_fanout_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_target(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_api_handler(ngx_http_request_t *r);


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

typedef struct {
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
} ngx_http_fanout_rt_change_t;

/* written for the fleet: its version, or -1 when Redis did not take it */
typedef void (*ngx_http_fanout_rt_done_pt)(void *data, ngx_int_t version);

ngx_int_t ngx_http_fanout_runtime_change(ngx_http_fanout_main_conf_t *fmcf,
    ngx_log_t *log, ngx_http_fanout_rt_change_t *ch,
    ngx_http_fanout_rt_done_pt handler, void *data, void **pending);
void ngx_http_fanout_runtime_forget(void *pending);
size_t ngx_http_fanout_runtime_json_size(ngx_http_fanout_main_conf_t *fmcf);
u_char *ngx_http_fanout_runtime_json(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf);
u_char *ngx_http_fanout_runtime_prometheus(u_char *p,
    ngx_http_fanout_main_conf_t *fmcf);
ngx_int_t ngx_http_fanout_runtime_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_health_init_conf(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf);
ngx_int_t ngx_http_fanout_health_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_health_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_fanout_draining(ngx_http_fanout_main_conf_t *fmcf);
char *ngx_http_fanout_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_hedge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_fanout_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_breaker_retry(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
ngx_int_t ngx_http_fanout_breaker_register(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_int_t ngx_http_fanout_breaker_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanout_limit_init_process(ngx_cycle_t *cycle);
void ngx_http_fanout_breaker_allow(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t from, ngx_uint_t to);
void ngx_http_fanout_breaker_record(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
void ngx_http_fanout_breaker_record_all(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_limit_check(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_limit_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
char *ngx_http_fanout_split(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_split_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_int_t ngx_http_fanout_split_choose(ngx_http_fanout_ctx_t *ctx);
ngx_str_t *ngx_http_fanout_split_name(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_split_key(ngx_http_fanout_ctx_t *ctx,
    ngx_str_t *key);
ngx_uint_t ngx_http_fanout_split_runs(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_target_t *t);
ngx_http_fanout_stats_t *ngx_http_fanout_split_stats(
    ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_valid_name(ngx_str_t *name);
char *ngx_http_fanout_shadow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_fanout_shadow_merge(ngx_conf_t *cf,
    ngx_http_fanout_loc_conf_t *flcf);
void ngx_http_fanout_shadow_start(ngx_http_fanout_ctx_t *ctx);
void ngx_http_fanout_shadow_answer(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, u_char *body, size_t len);


extern ngx_module_t  ngx_http_fanout_module;


#endif /* _NGX_HTTP_FANOUT_MODULE_H_INCLUDED_ */
