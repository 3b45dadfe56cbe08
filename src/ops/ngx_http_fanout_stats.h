/*
 * Counters kept in the fanout_zone shared memory, summed over all workers
 * with atomic adds; nodes are keyed by location and target so that they
 * survive a reload.
 */

#ifndef _NGX_HTTP_FANOUT_STATS_H_INCLUDED_
#define _NGX_HTTP_FANOUT_STATS_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "fanout_breaker.h"
#include "fanout_call.h"
#include "fanout_split.h"


/* latency histogram bounds, ms; one more bucket counts the rest (+Inf) */
#define NGX_HTTP_FANOUT_NBUCKETS  12


typedef enum {
    NGX_HTTP_FANOUT_LOC_REQUESTS = 0,
    NGX_HTTP_FANOUT_LOC_200,
    NGX_HTTP_FANOUT_LOC_502,
    NGX_HTTP_FANOUT_LOC_504,
    NGX_HTTP_FANOUT_LOC_REJECTED,      /* 4xx for bad input, 500 */
    NGX_HTTP_FANOUT_LOC_ABORTED,       /* the client went away */
    NGX_HTTP_FANOUT_LOC_CACHE_HIT,
    NGX_HTTP_FANOUT_LOC_CACHE_MISS,
    NGX_HTTP_FANOUT_LOC_CACHE_BYPASS,
    NGX_HTTP_FANOUT_LOC_CACHE_ERROR,
    NGX_HTTP_FANOUT_LOC_CACHE_STORED,
    NGX_HTTP_FANOUT_LOC_CACHE_SKIPPED, /* over max_size */
    NGX_HTTP_FANOUT_LOC_CACHE_STALE,
    NGX_HTTP_FANOUT_LOC_CACHE_COALESCED,
    NGX_HTTP_FANOUT_LOC_CACHE_AMBIGUOUS, /* duplicate keys: raw-hashed */
    NGX_HTTP_FANOUT_LOC_CACHE_L1_HIT,  /* hits the L1 answered alone */
    NGX_HTTP_FANOUT_LOC_CACHE_L1_STORED,
    NGX_HTTP_FANOUT_LOC_CACHE_PURGED,  /* fanout_cache_purge: keys gone */
    NGX_HTTP_FANOUT_LOC_LIMITED,       /* rejected by fanout_limit */
    NGX_HTTP_FANOUT_LOC_DRY_RUN,       /* would have been */
    NGX_HTTP_FANOUT_LOC_EVICTED,       /* limiter keys evicted, zone full */
    NGX_HTTP_FANOUT_LOC_DELAYED,       /* fanout_limit delay=: waited */
    NGX_HTTP_FANOUT_LOC_NCOUNTERS
} ngx_http_fanout_loc_counter_e;


/* queue=: waits, ms: 1, 5, 10, 25, 50, 100, 250, 500, 1000, more */
#define NGX_HTTP_FANOUT_TGT_NWAITS  10

/* the time to an answer's first bytes, ms: 5, 10, 25, 50, 100, 250, 500,
 * 1000, 2500, 5000, 10000, more: the latency histogram's buckets */
#define NGX_HTTP_FANOUT_TGT_NFIRSTS  12

/* a stream's gaps between events, ms: 1, 2, 5, 10, 25, 50, 100, 250,
 * 500, 1000, more */
#define NGX_HTTP_FANOUT_TGT_NGAPS    11

typedef enum {
    NGX_HTTP_FANOUT_TGT_REQUESTS = 0,
    /* then one per fanout_kind_e: ok, timeout, http_4xx, ... */
    NGX_HTTP_FANOUT_TGT_KIND,
    NGX_HTTP_FANOUT_TGT_CANCELLED = NGX_HTTP_FANOUT_TGT_KIND + FANOUT_NKINDS,
    NGX_HTTP_FANOUT_TGT_CACHE_HIT,     /* level=target: not called */
    NGX_HTTP_FANOUT_TGT_CACHE_MISS,
    NGX_HTTP_FANOUT_TGT_FALLBACK,      /* fallback= called instead */
    NGX_HTTP_FANOUT_TGT_FALLBACK_OK,   /* and it answered */
    NGX_HTTP_FANOUT_TGT_RETRIES,       /* fanout_retry: attempts again */
    NGX_HTTP_FANOUT_TGT_RETRIES_WON,   /* calls a retry answered */
    NGX_HTTP_FANOUT_TGT_RETRY_DENIED,  /* retries the budget refused */
    NGX_HTTP_FANOUT_TGT_HEDGES,        /* fanout_hedge: backups sent */
    NGX_HTTP_FANOUT_TGT_HEDGES_WON,    /* calls a backup answered */
    NGX_HTTP_FANOUT_TGT_HEDGE_DENIED,  /* backups the budget refused */
    NGX_HTTP_FANOUT_TGT_QUEUED,        /* queue=: calls that waited */
    NGX_HTTP_FANOUT_TGT_SHED_FULL,     /* refused: the queue full; then */
    NGX_HTTP_FANOUT_TGT_SHED_TIMEOUT,  /* shed as fanout_queue_reason_e */
    NGX_HTTP_FANOUT_TGT_SHED_DEADLINE, /* orders them */
    NGX_HTTP_FANOUT_TGT_SHED_EVICTED,
    NGX_HTTP_FANOUT_TGT_LIMIT,         /* max_inflight=auto: gauges, */
    NGX_HTTP_FANOUT_TGT_MIN_RTT,       /* set when a window ends */
    NGX_HTTP_FANOUT_TGT_GRADIENT,      /* hundredths */
    NGX_HTTP_FANOUT_TGT_PROBES,
    NGX_HTTP_FANOUT_TGT_TOO_LATE,      /* retries, hedges not made: less
                                          time left than the p50 */
    NGX_HTTP_FANOUT_TGT_QUEUE_LENGTH,  /* queue=: calls waiting, a gauge */
    NGX_HTTP_FANOUT_TGT_TOKENS_IN,     /* usage: prompt, input tokens */
    NGX_HTTP_FANOUT_TGT_TOKENS_OUT,    /* completion, output tokens */
    NGX_HTTP_FANOUT_TGT_FIRST_MS,      /* times to first bytes, summed */
    NGX_HTTP_FANOUT_TGT_FIRST,         /* by bucket */
    NGX_HTTP_FANOUT_TGT_GAP_MS = NGX_HTTP_FANOUT_TGT_FIRST
                                 + NGX_HTTP_FANOUT_TGT_NFIRSTS,
                                       /* a stream's gaps, summed */
    NGX_HTTP_FANOUT_TGT_GAP,           /* by bucket */
    NGX_HTTP_FANOUT_TGT_WAIT_MS = NGX_HTTP_FANOUT_TGT_GAP
                                  + NGX_HTTP_FANOUT_TGT_NGAPS,
                                       /* queue=: waits, summed */
    NGX_HTTP_FANOUT_TGT_WAIT,          /* the waits, by bucket */
    NGX_HTTP_FANOUT_TGT_NCOUNTERS = NGX_HTTP_FANOUT_TGT_WAIT
                                    + NGX_HTTP_FANOUT_TGT_NWAITS
} ngx_http_fanout_tgt_counter_e;


/* a fanout_limit's, in a location */
typedef enum {
    NGX_HTTP_FANOUT_LIM_ADMITTED = 0,
    NGX_HTTP_FANOUT_LIM_REJECTED,
    NGX_HTTP_FANOUT_LIM_DRY_RUN,        /* would have been rejected */
    NGX_HTTP_FANOUT_LIM_REDIS_ERRORS,   /* scope=cluster: on_redis_error */
    NGX_HTTP_FANOUT_LIM_UNAVAILABLE,    /* on_redis_error=closed: 503 */
    NGX_HTTP_FANOUT_LIM_DELAYED,        /* delay=: admitted to wait */
    NGX_HTTP_FANOUT_LIM_TOKENS_RESERVED, /* tokens=: at the check */
    NGX_HTTP_FANOUT_LIM_TOKENS_USED,    /* tokens=: settled, what was used */
    NGX_HTTP_FANOUT_LIM_NCOUNTERS
} ngx_http_fanout_lim_counter_e;


/* a fanout_split variant's, in a location */
typedef enum {
    NGX_HTTP_FANOUT_VAR_REQUESTS = 0,
    NGX_HTTP_FANOUT_VAR_200,
    NGX_HTTP_FANOUT_VAR_502,
    NGX_HTTP_FANOUT_VAR_504,
    NGX_HTTP_FANOUT_VAR_OTHER,          /* refused, or the client went away */
    /* then one per fanout_kind_e: its targets' outcomes */
    NGX_HTTP_FANOUT_VAR_KIND,
    NGX_HTTP_FANOUT_VAR_FIRST_MS = NGX_HTTP_FANOUT_VAR_KIND + FANOUT_NKINDS,
                                        /* a request's first answer bytes,
                                           summed, ms */
    NGX_HTTP_FANOUT_VAR_FIRST,          /* by bucket */
    NGX_HTTP_FANOUT_VAR_NCOUNTERS = NGX_HTTP_FANOUT_VAR_FIRST
                                    + NGX_HTTP_FANOUT_TGT_NFIRSTS
} ngx_http_fanout_var_counter_e;


/* a fanout_shadow's, in a location */
typedef enum {
    NGX_HTTP_FANOUT_SHA_SENT = 0,
    NGX_HTTP_FANOUT_SHA_AGREE,
    NGX_HTTP_FANOUT_SHA_DISAGREE,
    NGX_HTTP_FANOUT_SHA_ERROR,          /* failed, timed out, not JSON */
    NGX_HTTP_FANOUT_SHA_SHED,           /* max_inflight: not sent */
    NGX_HTTP_FANOUT_SHA_SKIPPED,        /* the client's answer failed */
    NGX_HTTP_FANOUT_SHA_ARGMAX_AGREE,   /* numeric arrays, same argmax */
    NGX_HTTP_FANOUT_SHA_ARGMAX_DISAGREE,
    NGX_HTTP_FANOUT_SHA_SAMPLED,        /* sample=redis: XADD sent */
    NGX_HTTP_FANOUT_SHA_SAMPLE_ERRORS,  /* Redis could not take it */
    NGX_HTTP_FANOUT_SHA_PAIRS,          /* both answered: latencies below */
    NGX_HTTP_FANOUT_SHA_SHADOW_MS,      /* sums over the pairs */
    NGX_HTTP_FANOUT_SHA_PRIMARY_MS,
    NGX_HTTP_FANOUT_SHA_SLOWER,         /* the shadow took longer */
    NGX_HTTP_FANOUT_SHA_NCOUNTERS
} ngx_http_fanout_sha_counter_e;


/* a batch=: target's micro-batches, in a location */
#define NGX_HTTP_FANOUT_BAT_NSIZES  12      /* inputs: 1, 2, 4 ... 1024, more */
#define NGX_HTTP_FANOUT_BAT_NWAITS  7       /* ms: 0, 1, 2, 5, 10, 25, more */

typedef enum {
    NGX_HTTP_FANOUT_BAT_BATCHES = 0,    /* upstream calls with their inputs */
    NGX_HTTP_FANOUT_BAT_INPUTS,         /* the inputs in them */
    NGX_HTTP_FANOUT_BAT_CALLERS,        /* the calls in them */
    NGX_HTTP_FANOUT_BAT_ERRORS,         /* batches that failed their calls */
    NGX_HTTP_FANOUT_BAT_ALONE,          /* calls not batchable: sent alone */
    NGX_HTTP_FANOUT_BAT_WAIT_MS,        /* the calls' waits, summed */
    NGX_HTTP_FANOUT_BAT_SIZE,           /* inputs per batch, by bucket */
    NGX_HTTP_FANOUT_BAT_WAIT = NGX_HTTP_FANOUT_BAT_SIZE
                               + NGX_HTTP_FANOUT_BAT_NSIZES,
    NGX_HTTP_FANOUT_BAT_NCOUNTERS = NGX_HTTP_FANOUT_BAT_WAIT
                                    + NGX_HTTP_FANOUT_BAT_NWAITS
} ngx_http_fanout_bat_counter_e;


/* the location's other counter nodes */
#define NGX_HTTP_FANOUT_STATS_LIMIT    1
#define NGX_HTTP_FANOUT_STATS_VARIANT  2
#define NGX_HTTP_FANOUT_STATS_SHADOW   3
#define NGX_HTTP_FANOUT_STATS_BATCH    4
/* a breaker_key= breaker's node: "\5NAME", under no location */


/* enough for every group: the build fails when one has more */
#define NGX_HTTP_FANOUT_NCOUNTERS  80

#define ngx_http_fanout_counters_fit(n)                                       \
    typedef char ngx_http_fanout_fits_##n[                                    \
        (NGX_HTTP_FANOUT_##n##_NCOUNTERS <= NGX_HTTP_FANOUT_NCOUNTERS) ? 1 : -1]

ngx_http_fanout_counters_fit(LOC);

/* times to first bytes take the latency histogram's buckets */
typedef char ngx_http_fanout_firsts_are_buckets[
    (NGX_HTTP_FANOUT_TGT_NFIRSTS == NGX_HTTP_FANOUT_NBUCKETS) ? 1 : -1];
ngx_http_fanout_counters_fit(TGT);
ngx_http_fanout_counters_fit(LIM);
ngx_http_fanout_counters_fit(VAR);
ngx_http_fanout_counters_fit(SHA);
ngx_http_fanout_counters_fit(BAT);


/*
 * Runtime state of a node (ngx_http_fanout_runtime.c): what fanout_api,
 * the fleet and ramps changed, kept in the zone for all workers and across
 * reloads.  A location's split is read without the lock, by its sequence
 * number (odd while it changes, as a seqlock); the rest are single words.
 */
typedef struct {
    ngx_atomic_t                seq;
    ngx_atomic_t                active;    /* split below in use */
    fanout_split_t              split;
    uint32_t                    base;      /* the config's it was made for */
    uint32_t                    ramp_fp;   /* the ramp state's */
    ngx_uint_t                  ramp_state;  /* NGX_HTTP_FANOUT_RAMP_* */
    ngx_uint_t                  ramp_step;
    ngx_uint_t                  ramp_why;  /* fanout_ramp_verdict_e */
    uint64_t                    ramp_at;   /* the step's start, wall ms */
    fanout_ramp_counts_t        ramp_seen; /* the counters last taken */
    fanout_ramp_counts_t        ramp_counts;   /* the step's, fleet-wide */
    ngx_atomic_t                forced;    /* a breaker: 1 open, 2 closed */
    ngx_atomic_t                disabled;  /* a target taken out */
    ngx_atomic_t                percent;   /* a shadow's + 1; 0: its own */
    ngx_atomic_t                weights;   /* a split's: runtime weights */
    ngx_atomic_t                purged;    /* fanout_api's last purge, ms */
    ngx_atomic_t                api_ramp_on;   /* fanout_api set a ramp: */
    fanout_ramp_t               api_ramp;      /* under the zone's lock */
    ngx_uint_t                  api_candidate;
    uint32_t                    api_ramp_fp;
    uint32_t                    api_base;  /* the split it was set for */
} ngx_http_fanout_runtime_t;


#define NGX_HTTP_FANOUT_RAMP_NONE         0    /* not begun here yet */
#define NGX_HTTP_FANOUT_RAMP_RAMPING      1
#define NGX_HTTP_FANOUT_RAMP_DONE         2    /* at 100% */
#define NGX_HTTP_FANOUT_RAMP_ROLLED_BACK  3    /* at 0%, ramp_why says why */


struct ngx_http_fanout_stats_s {
    ngx_http_fanout_stats_t    *next;
    ngx_http_fanout_runtime_t   rt;
    fanout_breaker_t            breaker;   /* a target's, under the lock */
    fanout_budget_t             budget;    /* its retries and hedges' */
    fanout_window_t             window;    /* its recent latencies */
    ngx_atomic_t                hedge_delay;  /* the latest, in ms */
    ngx_atomic_t                inflight;  /* a target's calls under way */
    void                       *queue;     /* queue=: its waiting calls */
    ngx_atomic_t                counters[NGX_HTTP_FANOUT_NCOUNTERS];
    ngx_atomic_t                latency_sum;
    ngx_atomic_t                latency_count;
    ngx_atomic_t                buckets[NGX_HTTP_FANOUT_NBUCKETS];
    ngx_atomic_t                qstamp[FANOUT_QRING_SLOTS];  /* the last */
    ngx_atomic_t                qcounts[FANOUT_QRING_SLOTS]    /* minute */
                                       [FANOUT_QRING_BUCKETS];
    size_t                      len;
    u_char                      key[1];
};


/* the zone: counters, and the limiter's keys in a tree with an LRU queue */
#define NGX_HTTP_FANOUT_RESTORED_LEN  48

struct ngx_http_fanout_shctx_s {
    ngx_http_fanout_stats_t    *head;
    ngx_rbtree_t                limits;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_msec_t                  breakers_synced;  /* scope=cluster */
    time_t                      started;   /* the zone made: nginx started */
    ngx_atomic_t                generation;   /* reloads that kept it */
    ngx_atomic_t                drain;        /* fanout_api: drained */
    ngx_atomic_t                api_version;  /* fanout_api: changes */
    ngx_msec_t                  quit_drain_until;  /* fanout_drain_on_quit */
    ngx_atomic_t                fleet_instances;   /* local_share: heard */
    ngx_msec_t                  heartbeat_at;      /* its last, any worker */
    ngx_msec_t                  runtime_synced;    /* runtime state polled */
    ngx_atomic_t                runtime_version;   /* the fleet's, applied */
    ngx_uint_t                  runtime_restored_len;
    u_char                      runtime_restored[NGX_HTTP_FANOUT_RESTORED_LEN];
                                                   /* the last restore's tag,
                                                      "VERSION:NONCE" */
    ngx_atomic_t                runtime_generation;  /* by which config */
};


typedef struct {
    ngx_str_t                   name;
    ngx_http_fanout_stats_t    *node;
    ngx_uint_t                  max_inflight;  /* a target's cap, 0: none */
    ngx_uint_t                  queue;     /* queue=: its size, 0: none */
    ngx_uint_t                  inflight_auto;  /* max_inflight=auto */
    ngx_uint_t                  min_inflight;   /* its MIN */
    ngx_str_t                   bkey;      /* breaker_key=: "\5NAME" */
    ngx_http_fanout_stats_t    *bnode;     /* its breaker: node or shared */
    ngx_int_t                   variant;   /* a target's variant= index in
                                              the split, -1: untagged */
} ngx_http_fanout_stats_target_t;


typedef struct {
    ngx_str_t                   name;
    ngx_http_fanout_stats_t    *node;
    ngx_array_t                 targets;   /* ngx_http_fanout_stats_target_t */
    ngx_array_t                 limits;    /* ngx_http_fanout_stats_target_t */
    ngx_array_t                 variants;  /* ngx_http_fanout_stats_target_t */
    ngx_array_t                 shadows;   /* ngx_http_fanout_stats_target_t */
    ngx_array_t                 batches;   /* ngx_http_fanout_stats_target_t */
    ngx_http_fanout_l1_t       *l1;        /* fanout_cache l1=, or NULL */
    fanout_split_t             *split;     /* fanout_split, or NULL */
    fanout_ramp_t              *ramp;      /* its ramp=, or NULL */
    ngx_uint_t                  candidate; /* the variant it ramps */
    uint32_t                    split_fp;  /* names and shares, hashed */
    uint32_t                    ramp_fp;   /* and the ramp's shape */
    fanout_ramp_t              *conf_ramp; /* the configuration's ramp=, */
    ngx_uint_t                  conf_candidate;    /* when fanout_api's */
    uint32_t                    conf_ramp_fp;      /* ramp is off */
    fanout_ramp_t               api_ramp;  /* fanout_api's, copied here */
    ngx_uint_t                  quorum;    /* the largest of its configs' */
    ngx_uint_t                  needs_redis;  /* cannot serve without it */
    ngx_uint_t                  breaker;   /* a fanout_breaker in one */
    ngx_uint_t                  cache;     /* a fanout_cache in one */
} ngx_http_fanout_stats_loc_t;


/* a location's limits, variants, shadows or micro-batched targets */
static ngx_inline ngx_array_t *
ngx_http_fanout_stats_extras(ngx_http_fanout_stats_loc_t *loc,
    ngx_uint_t kind)
{
    switch (kind) {
    case NGX_HTTP_FANOUT_STATS_LIMIT:
        return &loc->limits;
    case NGX_HTTP_FANOUT_STATS_VARIANT:
        return &loc->variants;
    case NGX_HTTP_FANOUT_STATS_BATCH:
        return &loc->batches;
    default:
        return &loc->shadows;
    }
}


/* a limit's, variant's, shadow's or batch's name: after its \1 ... \4 */
static ngx_inline ngx_str_t *
ngx_http_fanout_stats_extra_name(ngx_str_t *out,
    ngx_http_fanout_stats_target_t *t)
{
    out->data = t->name.data + 1;
    out->len = t->name.len - 1;

    return out;
}


/*
 * A subsystem's own setup in the zone (its nodes, its structures), run
 * when the zone is made or kept by a reload, under the zone's lock, after
 * the counters' nodes: registered at configuration, once per function, so
 * that the zone knows no subsystem's state.  NGX_ERROR: the zone is full.
 */
typedef ngx_int_t (*ngx_http_fanout_zone_init_pt)(
    ngx_http_fanout_main_conf_t *fmcf, ngx_slab_pool_t *shpool,
    ngx_http_fanout_shctx_t *sh);

ngx_int_t ngx_http_fanout_stats_zone_init(ngx_conf_t *cf,
    ngx_http_fanout_zone_init_pt init);
ngx_http_fanout_stats_t *ngx_http_fanout_stats_node(ngx_slab_pool_t *shpool,
    ngx_http_fanout_shctx_t *sh, ngx_str_t *location, ngx_str_t *target);

ngx_int_t ngx_http_fanout_stats_register(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *location, ngx_str_t *target,
    ngx_uint_t *loc_index, ngx_uint_t *target_index);
ngx_int_t ngx_http_fanout_stats_register_extra(ngx_conf_t *cf,
    ngx_http_fanout_main_conf_t *fmcf, ngx_str_t *location, ngx_str_t *name,
    ngx_uint_t kind, ngx_uint_t *loc_index, ngx_uint_t *index);
ngx_http_fanout_stats_t *ngx_http_fanout_stats_extra(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_uint_t kind, ngx_uint_t index);
ngx_int_t ngx_http_fanout_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_http_fanout_stats_t *ngx_http_fanout_stats_location(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf);
ngx_http_fanout_stats_t *ngx_http_fanout_stats_breaker(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *target);
ngx_http_fanout_stats_t *ngx_http_fanout_stats_target(ngx_http_request_t *r,
    ngx_http_fanout_loc_conf_t *flcf, ngx_http_fanout_target_t *target);

void ngx_http_fanout_stats_count(ngx_http_fanout_stats_t *st,
    ngx_uint_t counter);
void ngx_http_fanout_stats_latency(ngx_http_fanout_stats_t *st,
    ngx_msec_t ms);
void ngx_http_fanout_stats_histogram(ngx_http_fanout_stats_t *st,
    ngx_uint_t sum, ngx_uint_t first, const ngx_msec_t *bounds, ngx_uint_t n,
    ngx_msec_t ms);

u_char *ngx_http_fanout_stats_json_histogram(u_char *p,
    ngx_http_fanout_stats_t *st);
u_char *ngx_http_fanout_escape_json(u_char *p, ngx_str_t *s);
u_char *ngx_http_fanout_escape_label(u_char *p, ngx_str_t *s);
u_char *ngx_http_fanout_prom_labels(u_char *p, ngx_str_t *loc, ngx_str_t *tgt);
u_char *ngx_http_fanout_stats_prom_histogram(u_char *p, const char *metric,
    ngx_str_t *loc, ngx_str_t *tgt, ngx_http_fanout_stats_t *st);


extern ngx_msec_t  ngx_http_fanout_buckets[NGX_HTTP_FANOUT_NBUCKETS - 1];
char *ngx_http_fanout_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_FANOUT_STATS_H_INCLUDED_ */
