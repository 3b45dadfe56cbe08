/*
 * The Redis cache of fan-out answers: keys, lookups before a fan-out and
 * stores after the answer has gone out.
 */

#ifndef _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_
#define _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_


#include "ngx_http_fanout.h"
#include "fanout_cache_key.h"
#include "ngx_http_fanout_l1.h"


#define NGX_HTTP_FANOUT_CACHE_MAX_BODY  (8 * 1024 * 1024)

/* the coalescing lock's lease, renewed by its leader every third of it */
#define NGX_HTTP_FANOUT_CACHE_LEASE  1000


typedef enum {
    NGX_HTTP_FANOUT_CACHE_NONE = 0,
    NGX_HTTP_FANOUT_CACHE_HIT,
    NGX_HTTP_FANOUT_CACHE_MISS,
    NGX_HTTP_FANOUT_CACHE_BYPASS,
    NGX_HTTP_FANOUT_CACHE_ERROR,
    NGX_HTTP_FANOUT_CACHE_STALE,
    NGX_HTTP_FANOUT_CACHE_COALESCED
} ngx_http_fanout_cache_status_e;


/* a stored answer */
typedef struct {
    ngx_uint_t                  status;
    ngx_msec_int_t              fresh_until;   /* epoch milliseconds */
    ngx_str_t                   type;
    ngx_str_t                   target;
    ngx_str_t                   body;
    ngx_uint_t                  plain;         /* no echo= field in it */
} ngx_http_fanout_cached_t;


struct ngx_http_fanout_cache_conf_s {
    time_t                      ttl;
    time_t                      stale;
    ngx_http_complex_value_t   *key;
    ngx_http_complex_value_t   *vary;
    fanout_field_t             *ignore;
    ngx_uint_t                  nignore;
    fanout_field_t             *echo;          /* echo=: id by default */
    ngx_uint_t                  necho;
    size_t                      max_size;
    ngx_flag_t                  coalesce;
    ngx_flag_t                  per_target;    /* level=target */
    size_t                      l1_size;       /* l1=; 0: none */
    ngx_msec_t                  l1_ttl;
};


/* what a fan-out's answer leaves for the store stage to keep */
typedef struct {
    ngx_uint_t                  status;
    ngx_str_t                   type;
    ngx_str_t                   target;
    u_char                     *body;          /* NULL: a failure */
    size_t                      len;
    unsigned                    ready:1;
} ngx_http_fanout_cache_keep_t;


/*
 * A request's cache state (ngx_http_fanout_cache.c, purge.c), made by the
 * cache stage; the request's ctx points to it, as r->cache in nginx.
 */
struct ngx_http_fanout_cache_ctx_s {
    ngx_http_fanout_ctx_t      *ctx;           /* the request's */
    ngx_uint_t                  status;        /* ngx_http_fanout_cache_status_e */
    ngx_str_t                   key;
    ngx_str_t                   material;      /* level=response: what key
                                                  digests, the L1's key */
    ngx_str_t                   lock_key;      /* coalescing, made once */
    ngx_http_fanout_redis_op_t *op;            /* a lookup, store or purge */
    ngx_http_fanout_headers_t   header;        /* X-Fanout-Cache's writer */
    void                       *stale;         /* an expired entry */
    ngx_str_t                  *target_keys;   /* level=target */

    /* coalescing in this worker: leaders are in a table, waiters in theirs */
    ngx_queue_t                 inflight;      /* in the worker's table */
    ngx_queue_t                 waiters;       /* a leader's */
    ngx_queue_t                 waiting;       /* a waiter's link */
    ngx_http_fanout_ctx_t      *leader;        /* a waiter's */
    void                       *shared;        /* the answer handed over */
    void                       *coalesced;     /* the wait's: an entry */
    ngx_event_t                 wait;          /* coalescing: next poll */
    ngx_event_t                 renew;         /* a leader's lock lease */
    ngx_msec_t                  waited;
    ngx_uint_t                  asked;         /* level=target: in Redis */
    ngx_uint_t                  purged_l1;     /* fanout_cache_purge */

    /* what the fan-out's answer leaves to store (the store stage) */
    ngx_http_fanout_cache_keep_t  keep;

    unsigned                    lock_leader:1; /* holds the Redis lock */
    unsigned                    purging:1;     /* fanout_cache_purge */
    unsigned                    local_leader:1;
    unsigned                    coalesce_ended:1;  /* the wait is over */
    unsigned                    coalesce_miss:1;   /* the leader had none */
    unsigned                    watched:1;     /* its cleanup registered */
};



/*
 * NGX_OK: a lookup is under way and resumes the pipeline, to fan out or
 * with the answer it sent; NGX_DECLINED: fan out now (bypass, or Redis
 * unavailable).
 */
ngx_int_t ngx_http_fanout_cache_lookup(ngx_http_fanout_ctx_t *ctx);

/*
 * A failed fan-out with a stale entry at hand: answers with the entry
 * (NGX_OK and *rc set) or NGX_DECLINED.
 */
ngx_int_t ngx_http_fanout_cache_serve_stale(ngx_http_fanout_ctx_t *ctx,
    ngx_int_t *rc);

/* after the answer: stores it when it is worth it */
void ngx_http_fanout_cache_store(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *target, u_char *body,
    size_t len);

extern ngx_str_t  ngx_http_fanout_cache_statuses[];


ngx_int_t ngx_http_fanout_cache_stage(ngx_http_fanout_ctx_t *ctx);
ngx_int_t ngx_http_fanout_store_stage(ngx_http_fanout_ctx_t *ctx);


#endif /* _NGX_HTTP_FANOUT_CACHE_H_INCLUDED_ */
