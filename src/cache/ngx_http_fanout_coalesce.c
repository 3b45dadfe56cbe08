/*
 * Cache coalescing: one answer computed for many identical requests.
 *
 * In this worker, fan-outs in flight are in a table by cache key: a
 * request finding one waits on it (its leader) and is handed a copy of
 * the answer.  Across workers and instances, one request takes a short
 * lock in Redis and fans out; the others poll for its answer and get it
 * as COALESCED, or fan out themselves when the lock goes without an
 * answer or after the wait.  The lock is a lease its leader renews.
 *
 * A wait ends by resuming the cache stage (ngx_http_fanout_coalesce_end):
 * the stage, run again, serves what was found or fans out.  This file
 * never calls into the cache.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_entry.h"
#include "ngx_http_fanout_coalesce.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_redis.h"


static void ngx_http_fanout_coalesce_poll(ngx_event_t *ev);
static void ngx_http_fanout_coalesce_renew(ngx_event_t *ev);


/*
 * The wait is over: an entry found (e), or none (miss: the leader had
 * nothing, counted as a miss); the cache stage runs again and decides.
 */

static void
ngx_http_fanout_coalesce_end(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_cached_t *e, ngx_uint_t miss)
{
    ctx->cache->coalesced = e;
    ctx->cache->coalesce_miss = miss;
    ctx->cache->coalesce_ended = 1;

    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


/* a leader in this worker for the request's key: wait on it */

ngx_int_t
ngx_http_fanout_coalesce_join(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_fanout_ctx_t  *leader;

    leader = ngx_http_fanout_coalesce_leader(&ctx->cache->key);

    if (leader == NULL) {
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&leader->cache->waiters, &ctx->cache->waiting);
    ctx->cache->leader = leader;

    return NGX_OK;
}


/* the Redis lock is this request's: a lease, renewed while it lives */

void
ngx_http_fanout_coalesce_lead(ngx_http_fanout_ctx_t *ctx)
{
    ctx->cache->lock_leader = 1;
    ctx->cache->renew.handler = ngx_http_fanout_coalesce_renew;
    ctx->cache->renew.data = ctx;
    ctx->cache->renew.log = ctx->request->connection->log;
    ctx->cache->renew.cancelable = 1;
    ngx_add_timer(&ctx->cache->renew, NGX_HTTP_FANOUT_CACHE_LEASE / 3);
}


/*
 * The fan-outs in flight in this worker, by cache key: a request finding
 * one attaches to it without asking Redis, and is woken with its answer.
 */

#define NGX_HTTP_FANOUT_COALESCE_TABLE  256

static ngx_queue_t  ngx_http_fanout_coalesce_table[NGX_HTTP_FANOUT_COALESCE_TABLE];


static ngx_queue_t *
ngx_http_fanout_coalesce_bucket(ngx_str_t *key)
{
    ngx_queue_t  *q;

    q = &ngx_http_fanout_coalesce_table[ngx_crc32_short(key->data, key->len)
                                  % NGX_HTTP_FANOUT_COALESCE_TABLE];

    if (q->prev == NULL) {
        ngx_queue_init(q);
    }

    return q;
}


ngx_http_fanout_ctx_t *
ngx_http_fanout_coalesce_leader(ngx_str_t *key)
{
    ngx_queue_t            *b, *q;
    ngx_http_fanout_ctx_t  *leader;

    b = ngx_http_fanout_coalesce_bucket(key);

    for (q = ngx_queue_head(b); q != ngx_queue_sentinel(b);
         q = ngx_queue_next(q))
    {
        leader = (ngx_queue_data(q, ngx_http_fanout_cache_ctx_t, inflight))->ctx;

        if (leader->cache->key.len == key->len
            && ngx_memcmp(leader->cache->key.data, key->data, key->len) == 0)
        {
            return leader;
        }
    }

    return NULL;
}


/* the request fans out for its key: others in this worker may wait on it */

void
ngx_http_fanout_coalesce_add(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->local_leader || !ctx->conf->cache->coalesce
        || ctx->conf->cache->per_target || ctx->batch
        || ngx_http_fanout_coalesce_leader(&ctx->cache->key))
    {
        return;
    }

    ngx_queue_insert_tail(ngx_http_fanout_coalesce_bucket(&ctx->cache->key),
                          &ctx->cache->inflight);
    ngx_queue_init(&ctx->cache->waiters);
    ctx->cache->local_leader = 1;
}


static void
ngx_http_fanout_coalesce_woken(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    /* the leader had nothing to share (NULL): a miss, fan out */
    ngx_http_fanout_coalesce_end(ctx, ctx->cache->shared,
                                 ctx->cache->shared == NULL);
}


void
ngx_http_fanout_coalesce_hand_over(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *target, u_char *body, size_t len)
{
    u_char                    *p;
    ngx_queue_t               *q;
    ngx_http_fanout_ctx_t     *w;
    ngx_http_fanout_cached_t  *e;

    if (!ctx->cache->local_leader) {
        return;
    }

    ctx->cache->local_leader = 0;
    ngx_queue_remove(&ctx->cache->inflight);

    while (!ngx_queue_empty(&ctx->cache->waiters)) {
        q = ngx_queue_head(&ctx->cache->waiters);
        ngx_queue_remove(q);

        w = (ngx_queue_data(q, ngx_http_fanout_cache_ctx_t, waiting))->ctx;
        w->cache->leader = NULL;
        w->cache->shared = NULL;

        /* what would be stored is shared; a copy, as the leader may go */
        if (body && status == NGX_HTTP_OK && !ctx->failed && !ctx->fallbacks) {
            e = ngx_palloc(w->request->pool, sizeof(ngx_http_fanout_cached_t));
            p = ngx_pnalloc(w->request->pool,
                            type->len + target->len + len + 1);

            if (e && p) {
                /* memcpy() from NULL is undefined even for 0 bytes */
                e->status = status;
                e->fresh_until = 0;
                e->type.data = p;
                e->type.len = type->len;

                if (type->len) {
                    p = ngx_cpymem(p, type->data, type->len);
                }

                e->target.data = p;
                e->target.len = target->len;

                if (target->len) {
                    p = ngx_cpymem(p, target->data, target->len);
                }

                e->body.data = p;
                e->body.len = len;

                if (len) {
                    ngx_memcpy(p, body, len);
                }

                w->cache->shared = e;
            }
        }

        /* each waiter goes on in its own event, not inside this one */
        w->cache->wait.handler = ngx_http_fanout_coalesce_woken;
        w->cache->wait.data = w;
        w->cache->wait.log = w->request->connection->log;

        ngx_post_event(&w->cache->wait, &ngx_posted_events);
    }
}


void
ngx_http_fanout_coalesce_leave(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->leader) {
        ngx_queue_remove(&ctx->cache->waiting);
        ctx->cache->leader = NULL;
    }

    if (ctx->cache->wait.posted) {
        ngx_delete_posted_event(&ctx->cache->wait);
    }

    /* a leader that goes away lets its waiters fan out themselves */
    ngx_http_fanout_coalesce_hand_over(ctx, 0, NULL, NULL, NULL, 0);
}


/*
 * Coalescing: on a miss, one request (in any worker of any instance) takes
 * a short lock and fans out; the others poll for its answer and get it as
 * COALESCED, or fan out themselves when the lock goes without an answer or
 * after the wait.  The lock is a lease its leader renews (see renew).
 */

#define NGX_HTTP_FANOUT_COALESCE_POLL  15


ngx_str_t *
ngx_http_fanout_coalesce_lock_key(ngx_http_fanout_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t  *k;

    k = &ctx->cache->lock_key;

    if (k->len) {
        return k;
    }

    /* "fanout:lock:LOCATION:SHA256" */
    k->data = ngx_pnalloc(ctx->request->pool,
                          ctx->cache->key.len + sizeof("lock:") - 1);
    if (k->data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(k->data, "fanout:lock:", sizeof("fanout:lock:") - 1);
    p = ngx_cpymem(p, ctx->cache->key.data + sizeof("fanout:") - 1,
                   ctx->cache->key.len - (sizeof("fanout:") - 1));

    k->len = p - k->data;

    return k;
}


static void
ngx_http_fanout_coalesce_polled(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_connection_t          *c;
    ngx_http_fanout_cached_t  *e;

    c = ctx->request->connection;

    ctx->cache->op = NULL;

    ngx_http_set_log_request(c->log, ctx->request);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        ngx_http_fanout_coalesce_end(ctx, NULL, 0);
        return;
    }

    if (reply->element[0]->type == REDIS_REPLY_STRING
        && ngx_http_fanout_cache_entry(ctx, reply->element[0]->str,
                                       reply->element[0]->len, &e)
           == NGX_OK)
    {
        ngx_http_fanout_coalesce_end(ctx, e, 0);
        return;
    }

    /* no answer yet: wait while the lock stands, up to the deadline */
    if (reply->element[1]->type == REDIS_REPLY_STRING
        && ctx->cache->waited < ctx->conf->timeout)
    {
        ngx_add_timer(&ctx->cache->wait, NGX_HTTP_FANOUT_COALESCE_POLL);
        ctx->cache->waited += NGX_HTTP_FANOUT_COALESCE_POLL;
        return;
    }

    /* the leader ended without an answer to share */
    ngx_http_fanout_coalesce_end(ctx, NULL, 0);
}


static void
ngx_http_fanout_coalesce_poll(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    size_t       len[3];
    ngx_str_t   *lock;
    const char  *argv[3];

    /*
     * The leader may be in this worker after all: its election reply can
     * come on another pooled connection after the "wait" did.
     */

    if (ngx_http_fanout_coalesce_join(ctx) == NGX_OK) {
        return;
    }

    lock = ngx_http_fanout_coalesce_lock_key(ctx);
    if (lock == NULL) {
        ngx_http_fanout_coalesce_end(ctx, NULL, 0);
        return;
    }

    argv[0] = "MGET";
    len[0] = 4;
    argv[1] = (const char *) ctx->cache->key.data;
    len[1] = ctx->cache->key.len;
    argv[2] = (const char *) lock->data;
    len[2] = lock->len;

    ctx->cache->op = ngx_http_fanout_redis_command(
                        ctx->request->connection->log, 3, argv, len,
                        ngx_http_fanout_coalesce_polled, ctx);

    if (ctx->cache->op == NULL) {
        ngx_http_fanout_coalesce_end(ctx, NULL, 0);
    }
}


/* the leader is done: whoever waits looks again at once */

void
ngx_http_fanout_coalesce_del(ngx_str_t *lock, ngx_log_t *log)
{
    size_t       len[2];
    const char  *argv[2];

    argv[0] = "DEL";
    len[0] = 3;
    argv[1] = (const char *) lock->data;
    len[1] = lock->len;

    (void) ngx_http_fanout_redis_command(log, 2, argv, len, NULL, NULL);
}


void
ngx_http_fanout_coalesce_unlock(ngx_http_fanout_ctx_t *ctx)
{
    ngx_str_t  *lock;

    if (ctx->cache->renew.timer_set) {
        ngx_del_timer(&ctx->cache->renew);
    }

    if (!ctx->cache->lock_leader) {
        return;
    }

    ctx->cache->lock_leader = 0;

    lock = ngx_http_fanout_coalesce_lock_key(ctx);
    if (lock) {
        ngx_http_fanout_coalesce_del(lock, ctx->request->connection->log);
    }
}


void
ngx_http_fanout_coalesce_wait(ngx_http_fanout_ctx_t *ctx)
{
    ctx->cache->wait.handler = ngx_http_fanout_coalesce_poll;
    ctx->cache->wait.data = ctx;
    ctx->cache->wait.log = ctx->request->connection->log;

    ngx_add_timer(&ctx->cache->wait, NGX_HTTP_FANOUT_COALESCE_POLL);
    ctx->cache->waited = NGX_HTTP_FANOUT_COALESCE_POLL;
}


/*
 * The coalescing lock is a lease of NGX_HTTP_FANOUT_CACHE_LEASE: the
 * leader renews it every third of that while it fans out, so that when the
 * leader dies (kill -9, an OOM, a lost DEL) the lock is gone within a lease
 * and its waiters fan out themselves, instead of waiting fanout_timeout.
 */

static void
ngx_http_fanout_coalesce_renew(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    u_char       ms[NGX_INT_T_LEN];
    size_t       len[3];
    ngx_str_t   *lock;
    const char  *argv[3];

    if (!ctx->cache->lock_leader || ctx->cache->lock_key.len == 0) {
        return;
    }

    lock = &ctx->cache->lock_key;

    argv[0] = "PEXPIRE";
    len[0] = sizeof("PEXPIRE") - 1;
    argv[1] = (const char *) lock->data;
    len[1] = lock->len;
    argv[2] = (const char *) ms;
    len[2] = ngx_sprintf(ms, "%M", (ngx_msec_t) NGX_HTTP_FANOUT_CACHE_LEASE)
             - ms;

    (void) ngx_http_fanout_redis_command(ev->log, 3, argv, len, NULL, NULL);

    ngx_add_timer(ev, NGX_HTTP_FANOUT_CACHE_LEASE / 3);
}
