/*
 * The Redis cache of fan-out answers: the cache and store stages, the
 * lookups (the L1, then Redis; level=target's MGET), stores, stale
 * answers, echo= and X-Fanout-Cache.  Keys are ngx_http_fanout_cache_key.c,
 * entries ngx_http_fanout_cache_entry.c, coalescing
 * ngx_http_fanout_coalesce.c, the directive ngx_http_fanout_cache_conf.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_purge.h"
#include "ngx_http_fanout_cache_entry.h"
#include "ngx_http_fanout_cache_key.h"
#include "ngx_http_fanout_coalesce.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "fanout_json.h"


static void ngx_http_fanout_cache_store_targets(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_cache_give_up(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_cache_count(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t counter);
static ngx_int_t ngx_http_fanout_cache_watch(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_cache_hit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_cached_t *e, ngx_uint_t status, ngx_uint_t counter);


ngx_str_t  ngx_http_fanout_cache_statuses[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("STALE"),
    ngx_string("COALESCED")
};


static void
ngx_http_fanout_cache_count(ngx_http_fanout_ctx_t *ctx, ngx_uint_t counter)
{
    ngx_http_fanout_stats_count(
        ngx_http_fanout_stats_location(ctx->request, ctx->conf), counter);
}


static void
ngx_http_fanout_cache_give_up(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->key.len) {
        ngx_http_fanout_coalesce_add(ctx);
    }

    /* a miss: on to the fan-out */
    ngx_http_fanout_resume(ctx, NGX_DECLINED);
}


/*
 * What a SET leaves to do once Redis has applied it, past the request: the
 * L1 keeps its copy only now, so that it is never ahead of Redis; and a
 * leader's lock goes only now, or a waiter could find neither.
 */

typedef struct {
    ngx_http_fanout_l1_t       *l1;        /* NULL: no copy */
    ngx_http_fanout_stats_t    *stats;     /* the location's */
    ngx_msec_int_t              fresh_until;
    ngx_uint_t                  flags;     /* the L1's */
    ngx_str_t                   key;
    ngx_str_t                   value;
    ngx_str_t                   lock;      /* empty: not a leader's */
} ngx_http_fanout_cache_kept_t;


static void
ngx_http_fanout_cache_stored(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_cache_kept_t *kept = data;

    if (kept->l1 && reply && reply->type == REDIS_REPLY_STATUS
        && ngx_http_fanout_l1_put(kept->l1, &kept->key, kept->value.data,
                                  kept->value.len,
                                  ngx_http_fanout_cache_now(),
                                  kept->fresh_until, kept->flags)
           == NGX_OK)
    {
        ngx_http_fanout_stats_count(kept->stats,
                                    NGX_HTTP_FANOUT_LOC_CACHE_L1_STORED);
    }

    if (kept->lock.len) {
        ngx_http_fanout_coalesce_del(&kept->lock, ngx_cycle->log);
    }

    ngx_free(kept);
}


/*
 * echo=: an answer from the cache carries another request's identity (the
 * id KServe v2 and OpenAI echo).  Each such field becomes the current
 * request's: the value at the same path in its body, or else at the top
 * level under the path's last name (results.m.id takes the request's id),
 * or else its $request_id.
 */

static void
ngx_http_fanout_cache_echo(ngx_http_fanout_ctx_t *ctx, ngx_str_t *answer)
{
    u_char                        *out, *last;
    size_t                         len, n;
    ngx_str_t                      body;
    ngx_uint_t                     i;
    fanout_field_t                 f;
    fanout_span_t                  vals[FANOUT_CACHE_MAX_ECHO];
    fanout_span_t                  at[FANOUT_CACHE_MAX_ECHO];
    ngx_http_request_t            *r;
    ngx_http_variable_value_t     *id;
    ngx_http_fanout_cache_conf_t  *cc;

    cc = ctx->conf->cache;
    r = ctx->request;

    if (cc->necho == 0 || answer->len == 0) {
        return;
    }

    /* the answer's fields first: most answers have none to replace */
    if (fanout_cache_echo_find((const char *) answer->data, answer->len,
                               cc->echo, cc->necho, at)
        <= 0)
    {
        return;
    }

    if (ngx_http_fanout_cache_body(r, &body) != NGX_OK) {
        ngx_str_null(&body);
    }

    /* $request_id only when a field needs it: making one costs more than
     * the rest of a hit */
    id = NULL;

    len = answer->len;

    for (i = 0; i < cc->necho; i++) {
        vals[i].p = NULL;

        if (at[i].p == NULL) {
            continue;
        }

        if (body.len) {
            /* the same path in the request, or its last segment on top */
            f = cc->echo[i];

            last = ngx_strlchr((u_char *) f.path, (u_char *) f.path + f.len,
                               '.');

            if (fanout_json_scan((const char *) body.data, body.len, f.path,
                                 f.len, &vals[i])
                    == 0
                && vals[i].p == NULL && last)
            {
                while (last) {
                    f.len -= (const char *) last + 1 - f.path;
                    f.path = (const char *) last + 1;
                    last = ngx_strlchr((u_char *) f.path,
                                       (u_char *) f.path + f.len, '.');
                }

                (void) fanout_json_scan((const char *) body.data, body.len,
                                        f.path, f.len, &vals[i]);
            }
        }

        if (vals[i].p == NULL) {
            if (id == NULL) {
                id = ngx_http_get_indexed_variable(r, ngx_http_fanout_rid(r));
            }

            if (id == NULL || id->not_found) {
                vals[i].p = "null";
                vals[i].len = 4;

            } else {
                /* $request_id is hex: a JSON string as it is */
                out = ngx_pnalloc(r->pool, id->len + 2);
                if (out == NULL) {
                    return;
                }

                out[0] = '"';
                ngx_memcpy(out + 1, id->data, id->len);
                out[id->len + 1] = '"';

                vals[i].p = (const char *) out;
                vals[i].len = id->len + 2;
            }
        }

        len += vals[i].len;
    }

    out = ngx_pnalloc(r->pool, len);
    if (out == NULL) {
        return;
    }

    n = fanout_cache_echo_write((const char *) answer->data, answer->len, at,
                                vals, cc->necho, (char *) out);

    answer->data = out;
    answer->len = n;
}


/*
 * What the L1 keeps with an entry: whether its answer has echo= fields, so
 * that an L1 hit on an answer without them (most) skips their search.
 */

#define NGX_HTTP_FANOUT_L1_ECHO  1

static ngx_uint_t
ngx_http_fanout_cache_l1_flags(ngx_http_fanout_cache_conf_t *cc, u_char *body,
    size_t len)
{
    fanout_span_t  at[FANOUT_CACHE_MAX_ECHO];

    if (cc->necho == 0 || len == 0
        || fanout_cache_echo_find((const char *) body, len, cc->echo,
                                  cc->necho, at)
           <= 0)
    {
        return 0;
    }

    return NGX_HTTP_FANOUT_L1_ECHO;
}


static void
ngx_http_fanout_cache_l1_put(ngx_http_fanout_ctx_t *ctx, ngx_str_t *key,
    u_char *value, size_t len, ngx_http_fanout_cached_t *e)
{
    ngx_http_fanout_l1_t  *l1;

    l1 = ctx->conf->cache_l1;

    if (l1 && ngx_http_fanout_l1_put(l1, key, value, len,
                                     ngx_http_fanout_cache_now(),
                                     e->fresh_until,
                                     ngx_http_fanout_cache_l1_flags(
                                         ctx->conf->cache, e->body.data,
                                         e->body.len))
              == NGX_OK)
    {
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_L1_STORED);
    }
}


/* a fresh entry of the L1 (NGX_OK, in *entry), or NGX_DECLINED */

static ngx_int_t
ngx_http_fanout_cache_l1_get(ngx_http_fanout_ctx_t *ctx, ngx_str_t *key,
    ngx_http_fanout_cached_t **entry)
{
    ngx_str_t              value;
    ngx_uint_t             flags;
    ngx_http_fanout_l1_t  *l1;

    l1 = ctx->conf->cache_l1;

    if (l1 == NULL
        || ngx_http_fanout_l1_get(l1, key, ngx_http_fanout_cache_now(),
                                  ctx->request->pool, &value, &flags)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* never stale: its expiry is at most its freshness */
    if (ngx_http_fanout_cache_read(ctx, value.data, value.len, entry)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    (*entry)->plain = !(flags & NGX_HTTP_FANOUT_L1_ECHO);

    ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_L1_HIT);

    return NGX_OK;
}


static void
ngx_http_fanout_cache_hit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_cached_t *e, ngx_uint_t status, ngx_uint_t counter)
{
    ctx->cache->status = status;
    ngx_http_fanout_cache_count(ctx, counter);

    if (!e->plain) {
        ngx_http_fanout_cache_echo(ctx, &e->body);
    }

    ngx_http_fanout_resume_answered(ctx,
        ngx_http_fanout_send_as_is(ctx, e->status, &e->type, &e->target,
                                   e->body.data, e->body.len));
}


/*
 * The lookup's reply: a GET's, or with coalescing the script's
 * {1, entry} fresh, {2, stale-or-""} elected, {3, stale-or-""} wait.
 */

static void
ngx_http_fanout_cache_got(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_ctx_t *ctx = data;

    redisReply                *v;
    ngx_uint_t                 verdict;
    ngx_connection_t          *c;
    ngx_http_fanout_cached_t  *e;

    c = ctx->request->connection;

    ctx->cache->op = NULL;

    ngx_http_set_log_request(c->log, ctx->request);

    if (reply == NULL
        || (reply->type == REDIS_REPLY_ARRAY
            && (reply->elements != 2
                || reply->element[0]->type != REDIS_REPLY_INTEGER)))
    {
        /* Redis failed: fail open, the error is counted and logged */
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        ngx_http_fanout_cache_give_up(ctx);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        verdict = (ngx_uint_t) reply->element[0]->integer;
        v = reply->element[1];

    } else {
        verdict = 2;
        v = reply;
    }

    e = NULL;

    if (v->type == REDIS_REPLY_STRING && v->len
        && ngx_http_fanout_cache_entry(ctx, v->str, v->len, &e) == NGX_OK)
    {
        /* it is in Redis: the L1 may keep it */
        ngx_http_fanout_cache_l1_put(ctx, &ctx->cache->material,
                                     (u_char *) v->str, v->len, e);

        ngx_http_fanout_cache_hit(ctx, e, NGX_HTTP_FANOUT_CACHE_HIT,
                                  NGX_HTTP_FANOUT_LOC_CACHE_HIT);
        return;
    }

    ctx->cache->status = NGX_HTTP_FANOUT_CACHE_MISS;
    ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_MISS);

    if (verdict == 3) {
        /* a leader in this worker: wait on it, not on Redis; in another
         * worker or instance: poll for its answer */
        if (ngx_http_fanout_coalesce_join(ctx) != NGX_OK) {
            ngx_http_fanout_coalesce_wait(ctx);
        }

        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        ngx_http_fanout_coalesce_lead(ctx);
    }

    ngx_http_fanout_cache_give_up(ctx);
}


/* "Cache-Control: no-cache" or "Pragma: no-cache" from the client */

static ngx_uint_t
ngx_http_fanout_cache_no_cache(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (!((h[i].key.len == sizeof("Cache-Control") - 1
               && ngx_strncasecmp(h[i].key.data, (u_char *) "Cache-Control",
                                  sizeof("Cache-Control") - 1) == 0)
              || (h[i].key.len == sizeof("Pragma") - 1
                  && ngx_strncasecmp(h[i].key.data, (u_char *) "Pragma",
                                     sizeof("Pragma") - 1) == 0)))
        {
            continue;
        }

        if (ngx_strlcasestrn(h[i].value.data,
                             h[i].value.data + h[i].value.len,
                             (u_char *) "no-cache", sizeof("no-cache") - 2)
            != NULL)
        {
            return 1;
        }
    }
}


/* level=target: a target's entry, as if its answer had just come */

static void
ngx_http_fanout_cache_target_hit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_cached_t *e)
{
    if (!e->plain) {
        ngx_http_fanout_cache_echo(ctx, &e->body);
    }

    sub->done = 1;
    sub->part.cached = 1;
    sub->part.status = (int) e->status;
    sub->part.body = (const char *) e->body.data;
    sub->part.body_len = e->body.len;
    sub->content_type = e->type;

    fanout_part_parse(&sub->part, (const char *) ctx->conf->field.data,
                      ctx->conf->field.len);

    if (sub->part.kind == FANOUT_OK && !ctx->batch
        && ctx->conf->merge == FANOUT_MERGE_FIRST && ctx->winner == NULL)
    {
        ctx->winner = sub;
    }
}


/* every target cached, or a cached "first" winner: nothing is called */

static void
ngx_http_fanout_cache_targets_found(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t hits)
{
    if (hits == ctx->nsubs || ctx->winner) {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_HIT;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_HIT);

    } else {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_MISS;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_MISS);
    }
}


/* level=target: the MGET of the entries the L1 did not have */

static void
ngx_http_fanout_cache_got_targets(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_uint_t                 i, j, hits;
    redisReply                *v;
    ngx_connection_t          *c;
    ngx_http_fanout_call_t    *sub;
    ngx_http_fanout_cached_t  *e;

    c = ctx->request->connection;

    ctx->cache->op = NULL;

    ngx_http_set_log_request(c->log, ctx->request);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != ctx->cache->asked)
    {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        ngx_http_fanout_cache_give_up(ctx);
        return;
    }

    hits = ctx->nsubs - ctx->cache->asked;
    j = 0;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->part.cached) {
            /* the L1 had it: not asked */
            continue;
        }

        v = reply->element[j++];

        if (v->type != REDIS_REPLY_STRING
            || ngx_http_fanout_cache_entry(ctx, v->str, v->len, &e) != NGX_OK)
        {
            continue;
        }

        ngx_http_fanout_cache_l1_put(ctx, &ctx->cache->target_keys[i],
                                     (u_char *) v->str, v->len, e);

        ngx_http_fanout_cache_target_hit(ctx, sub, e);
        hits++;
    }

    ngx_http_fanout_cache_targets_found(ctx, hits);

    /* only the targets that missed are called */
    ngx_http_fanout_cache_give_up(ctx);
}


/*
 * KEYS: the entry and its lock; ARGV: the lock's lifetime (ms) and now
 * (ms).  A fresh entry is returned; otherwise the caller is elected to fan
 * out when it takes the lock (or when Redis refuses the lock, at
 * maxmemory), or told to wait.  A stale entry comes along.
 */

static const char  ngx_http_fanout_cache_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
    "  local t = tonumber(string.match(v, '^FO1 %d+ (%d+)')) "
    "  if t and t >= tonumber(ARGV[2]) then return {1, v} end "
    "end "
    "if redis.pcall('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then "
    "  return {2, v or ''} "
    "end "
    "return {3, v or ''}";


static ngx_int_t
ngx_http_fanout_cache_lookup_targets(ngx_http_fanout_ctx_t *ctx)
{
    size_t                     *len;
    ngx_uint_t                  i, n;
    const char                **argv;
    ngx_http_fanout_cached_t   *e;

    argv = ngx_palloc(ctx->request->pool, (ctx->nsubs + 1) * sizeof(char *));
    len = ngx_palloc(ctx->request->pool, (ctx->nsubs + 1) * sizeof(size_t));

    if (argv == NULL || len == NULL
        || ngx_http_fanout_cache_watch(ctx) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    argv[0] = "MGET";
    len[0] = 4;
    n = 0;

    for (i = 0; i < ctx->nsubs; i++) {
        if (ngx_http_fanout_cache_l1_get(ctx, &ctx->cache->target_keys[i], &e)
            == NGX_OK)
        {
            ngx_http_fanout_cache_target_hit(ctx, &ctx->subs[i], e);
            continue;
        }

        n++;
        argv[n] = (const char *) ctx->cache->target_keys[i].data;
        len[n] = ctx->cache->target_keys[i].len;
    }

    ctx->cache->asked = n;

    if (n == 0 || ctx->winner) {
        /* the L1 had them all, or a winner: Redis is not asked */
        ngx_http_fanout_cache_targets_found(ctx, ctx->nsubs - n);
        ngx_http_fanout_cache_give_up(ctx);
        return NGX_OK;
    }

    /* the others in one round trip */
    ctx->cache->op = ngx_http_fanout_redis_command(
                        ctx->request->connection->log, (int) n + 1, argv, len,
                        ngx_http_fanout_cache_got_targets, ctx);

    if (ctx->cache->op == NULL) {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_cache_lookup(ngx_http_fanout_ctx_t *ctx)
{
    int                        n;
    ngx_http_fanout_cached_t  *e;
    u_char               ms[NGX_INT_T_LEN], now[NGX_INT64_LEN];
    size_t               len[7];
    ngx_int_t            rc;
    ngx_str_t           *lock;
    const char          *argv[7];
    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->cache->purging = (ngx_http_test_predicates(r, ctx->conf->cache_purge)
                    == NGX_DECLINED);

    rc = ngx_http_fanout_cache_key(ctx);

    /* fanout_cache_purge: this request's entries go, nothing is called */
    if (ctx->cache->purging) {

        if (rc == NGX_OK
            && (ngx_http_fanout_cache_named(ctx) != NGX_OK
                || ngx_http_fanout_cache_watch(ctx) != NGX_OK))
        {
            rc = NGX_ERROR;
        }

        if (rc != NGX_OK) {
            /* too large to have been cached, or no memory */
            ngx_http_fanout_resume_answered(ctx, (rc == NGX_DECLINED)
                ? ngx_http_fanout_send_error(r, NGX_HTTP_NOT_FOUND,
                                             "not_found",
                                             "this request is never cached")
                : NGX_HTTP_INTERNAL_SERVER_ERROR);
            return NGX_OK;
        }

        if (ctx->conf->cache->per_target || ctx->batch) {
            return ngx_http_fanout_purge(ctx, ctx->cache->target_keys,
                                         ctx->cache->target_keys, ctx->nsubs,
                                         ctx->conf->cache_l1);
        }

        return ngx_http_fanout_purge(ctx, &ctx->cache->key,
                                     &ctx->cache->material, 1,
                                     ctx->conf->cache_l1);
    }

    if (rc == NGX_DECLINED) {
        /* a body too large to be a key: not cached at all */
        ngx_str_null(&ctx->cache->key);
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_BYPASS;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_BYPASS);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        ngx_str_null(&ctx->cache->key);
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        return NGX_DECLINED;
    }

    /* like proxy_cache_bypass, and a client's "Cache-Control: no-cache" */
    if (ngx_http_test_predicates(r, ctx->conf->cache_bypass) == NGX_DECLINED
        || ngx_http_fanout_cache_no_cache(r))
    {
        if (ngx_http_fanout_cache_named(ctx) != NGX_OK) {
            ngx_str_null(&ctx->cache->key);
        }

        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_BYPASS;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_BYPASS);
        return NGX_DECLINED;
    }

    if (ctx->conf->cache->per_target || ctx->batch) {
        return ngx_http_fanout_cache_lookup_targets(ctx);
    }

    if (ngx_http_fanout_cache_l1_get(ctx, &ctx->cache->material, &e)
        == NGX_OK)
    {
        /* this instance's memory answers: Redis is not asked */
        ngx_http_fanout_cache_hit(ctx, e, NGX_HTTP_FANOUT_CACHE_HIT,
                                  NGX_HTTP_FANOUT_LOC_CACHE_HIT);
        return NGX_OK;
    }

    if (ngx_http_fanout_cache_named(ctx) != NGX_OK
        || ngx_http_fanout_cache_watch(ctx) != NGX_OK)
    {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        return NGX_DECLINED;
    }

    if (ctx->conf->cache->coalesce
        && ngx_http_fanout_coalesce_join(ctx) == NGX_OK)
    {
        /* the same request is being answered in this worker: wait */
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_MISS;
        return NGX_OK;
    }

    if (ctx->conf->cache->coalesce) {
        lock = ngx_http_fanout_coalesce_lock_key(ctx);
        if (lock == NULL) {
            return NGX_DECLINED;
        }

        /* the lookup and the election in one atomic step */
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = ngx_http_fanout_cache_script;
        len[1] = sizeof(ngx_http_fanout_cache_script) - 1;
        argv[2] = "2";
        len[2] = 1;
        argv[3] = (const char *) ctx->cache->key.data;
        len[3] = ctx->cache->key.len;
        argv[4] = (const char *) lock->data;
        len[4] = lock->len;
        argv[5] = (const char *) ms;
        len[5] = ngx_sprintf(ms, "%M", (ngx_msec_t) NGX_HTTP_FANOUT_CACHE_LEASE)
                 - ms;
        argv[6] = (const char *) now;
        len[6] = ngx_sprintf(now, "%M",
                             (ngx_msec_t) ngx_http_fanout_cache_now())
                 - now;
        n = 7;

    } else {
        argv[0] = "GET";
        len[0] = 3;
        argv[1] = (const char *) ctx->cache->key.data;
        len[1] = ctx->cache->key.len;
        n = 2;
    }

    ctx->cache->op = ngx_http_fanout_redis_command(r->connection->log, n, argv,
                                                  len,
                                                  ngx_http_fanout_cache_got,
                                                  ctx);
    if (ctx->cache->op == NULL) {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* SET key "FO1 STATUS FRESH-UNTIL\nTYPE\nTARGET\n" + body EX ttl+stale */

static ngx_int_t
ngx_http_fanout_cache_set(ngx_http_fanout_ctx_t *ctx, ngx_str_t *key,
    ngx_str_t *l1key, ngx_uint_t status, ngx_str_t *type, ngx_str_t *target,
    u_char *body, size_t len, ngx_str_t *lock)
{
    u_char                        *p, *value, ttl[NGX_TIME_T_LEN];
    size_t                         size, argvlen[5];
    ngx_msec_int_t                 fresh_until;
    const char                    *argv[5];
    ngx_http_fanout_cache_kept_t  *kept;
    ngx_http_fanout_cache_conf_t  *cc;

    cc = ctx->conf->cache;

    size = sizeof("FO1 000 \n\n\n") - 1 + NGX_INT64_LEN + type->len
           + target->len + len;

    if (size > cc->max_size) {
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_SKIPPED);
        return NGX_DECLINED;
    }

    kept = NULL;

    if (ctx->conf->cache_l1 || lock) {
        /* the value is built where the L1's copy waits for the reply */
        kept = ngx_alloc(sizeof(ngx_http_fanout_cache_kept_t) + l1key->len
                         + size + (lock ? lock->len : 0),
                         ctx->request->connection->log);
        if (kept == NULL) {
            return NGX_ERROR;
        }

        kept->l1 = ctx->conf->cache_l1;
        kept->stats = ngx_http_fanout_stats_location(ctx->request, ctx->conf);
        kept->key.data = (u_char *) (kept + 1);
        kept->key.len = l1key->len;
        value = ngx_cpymem(kept->key.data, l1key->data, l1key->len);
        kept->lock.len = 0;

        if (lock) {
            kept->lock.data = value;
            kept->lock.len = lock->len;
            value = ngx_cpymem(value, lock->data, lock->len);
        }

    } else {
        value = ngx_pnalloc(ctx->request->pool, size);
        if (value == NULL) {
            return NGX_ERROR;
        }
    }

    fresh_until = ngx_http_fanout_cache_now() + cc->ttl * 1000;

    p = ngx_sprintf(value, "FO1 %03ui %M\n%V\n%V\n", status,
                    (ngx_msec_t) fresh_until, type, target);

    if (len) {
        p = ngx_cpymem(p, body, len);
    }

    if (kept) {
        kept->value.data = value;
        kept->value.len = p - value;
        kept->fresh_until = fresh_until;
        kept->flags = kept->l1 ? ngx_http_fanout_cache_l1_flags(cc, body, len)
                               : 0;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;
    argv[2] = (const char *) value;
    argvlen[2] = p - value;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = (const char *) ttl;

    /* kept stale= longer than it is fresh */
    argvlen[4] = ngx_sprintf(ttl, "%T", cc->ttl + cc->stale) - ttl;

    if (ngx_http_fanout_redis_command(ctx->request->connection->log, 5, argv,
                                      argvlen,
                                      kept ? ngx_http_fanout_cache_stored
                                           : NULL,
                                      kept)
        == NULL)
    {
        /* its handler was not called: nothing waits for it */
        ngx_free(kept);
        return NGX_ERROR;
    }

    ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_STORED);

    return NGX_OK;
}


/* level=target: each target that answered well, and was called, is kept */

static void
ngx_http_fanout_cache_store_targets(ngx_http_fanout_ctx_t *ctx)
{
    ngx_str_t               none;
    ngx_uint_t              i;
    ngx_http_fanout_call_t  *sub;

    ngx_str_null(&none);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        /* a fallback's answer is not the target's */
        if (sub->part.cached || sub->part.kind != FANOUT_OK || sub->cancelled
            || sub->fallback || sub->part.body == NULL)
        {
            continue;
        }

        (void) ngx_http_fanout_cache_set(ctx, &ctx->cache->target_keys[i],
                                         &ctx->cache->target_keys[i],
                                         (ngx_uint_t) sub->part.status,
                                         &sub->content_type, &none,
                                         (u_char *) sub->part.body,
                                         sub->part.body_len, NULL);
    }
}


void
ngx_http_fanout_cache_store(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *target, u_char *body, size_t len)
{
    ngx_str_t                     *lock;
    ngx_http_fanout_cache_conf_t  *cc;

    cc = ctx->conf->cache;

    if (cc == NULL || ctx->cache->key.len == 0
        || ctx->cache->status == NGX_HTTP_FANOUT_CACHE_HIT)
    {
        return;
    }

    if (cc->per_target || ctx->batch) {
        ngx_http_fanout_cache_store_targets(ctx);
        return;
    }

    /* only complete answers: not a failure, not a degraded one */
    if (status != NGX_HTTP_OK || ctx->failed || ctx->fallbacks) {
        ngx_http_fanout_coalesce_unlock(ctx);
        return;
    }

    /* a leader lets the waiters go once the SET has been applied */
    lock = ctx->cache->lock_leader ? ngx_http_fanout_coalesce_lock_key(ctx) : NULL;

    /* after the answer went out */
    if (ngx_http_fanout_cache_set(ctx, &ctx->cache->key, &ctx->cache->material,
                                  status, type, target, body, len, lock)
            == NGX_OK
        && lock)
    {
        ctx->cache->lock_leader = 0;
    }

    ngx_http_fanout_coalesce_unlock(ctx);
}


ngx_int_t
ngx_http_fanout_cache_serve_stale(ngx_http_fanout_ctx_t *ctx, ngx_int_t *rc)
{
    ngx_http_fanout_cached_t  *e;

    if (ctx->cache == NULL) {
        /* ended before the cache stage */
        return NGX_DECLINED;
    }

    e = ctx->cache->stale;

    if (e == NULL
        || e->fresh_until + ctx->conf->cache->stale * 1000
           < ngx_http_fanout_cache_now())
    {
        return NGX_DECLINED;
    }

    ctx->cache->status = NGX_HTTP_FANOUT_CACHE_STALE;
    ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_STALE);

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "fanout: the fan-out failed, serving the stale entry "
                  "\"%V\"", &ctx->cache->key);

    if (!e->plain) {
        ngx_http_fanout_cache_echo(ctx, &e->body);
    }

    *rc = ngx_http_fanout_send_as_is(ctx, e->status, &e->type, &e->target,
                                     e->body.data, e->body.len);

    return NGX_OK;
}


/* before the fan-out: NGX_AGAIN while Redis (or a leader) is waited for */

/* X-Fanout-Cache, on every answer once the cache has looked */

static ngx_int_t
ngx_http_fanout_cache_header(ngx_http_request_t *r, void *data)
{
    ngx_http_fanout_cache_ctx_t *cc = data;

    ngx_table_elt_t  *h;

    if (cc->status == NGX_HTTP_FANOUT_CACHE_NONE) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Fanout-Cache");
    h->value = ngx_http_fanout_cache_statuses[cc->status];

    return NGX_OK;
}


/*
 * The request ends (answered, or its client gone): what the cache has
 * pending goes: a Redis reply is dropped, the lock given back, waiters
 * let go (a leader's fan out themselves).
 */

static void
ngx_http_fanout_cache_cleanup(void *data)
{
    ngx_http_fanout_ctx_t *ctx = data;

    if (ctx->cache->op) {
        ngx_http_fanout_redis_cancel(ctx->cache->op);
        ctx->cache->op = NULL;
    }

    if (ctx->cache->wait.timer_set) {
        ngx_del_timer(&ctx->cache->wait);
    }

    ngx_http_fanout_coalesce_unlock(ctx);
    ngx_http_fanout_coalesce_leave(ctx);
}


/*
 * Before the cache starts work that can outlive the request (a Redis
 * reply, coalescing), its cleanup; once, and never on an L1 hit, which has
 * none.
 */

static ngx_int_t
ngx_http_fanout_cache_watch(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_cleanup_t  *cln;

    if (ctx->cache->watched) {
        return NGX_OK;
    }

    /* run before the handler's (the last added first) */
    cln = ngx_http_cleanup_add(ctx->request, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_fanout_cache_cleanup;
    cln->data = ctx;
    ctx->cache->watched = 1;

    return NGX_OK;
}


/*
 * Coalescing's wait is over (ngx_http_fanout_coalesce.c resumed the
 * stage): the answer it found, or a miss to fan out for.
 */

static ngx_int_t
ngx_http_fanout_cache_coalesced(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_fanout_cache_ctx_t  *cc;

    cc = ctx->cache;
    cc->coalesce_ended = 0;

    if (cc->coalesced) {
        ngx_http_fanout_cache_hit(ctx, cc->coalesced,
                                  NGX_HTTP_FANOUT_CACHE_COALESCED,
                                  NGX_HTTP_FANOUT_LOC_CACHE_COALESCED);
        return NGX_AGAIN;
    }

    if (cc->coalesce_miss) {
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_MISS);
    }

    ngx_http_fanout_cache_give_up(ctx);

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_fanout_cache_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_fanout_cache_ctx_t  *cc;

    if (ctx->conf->cache == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->cache && ctx->cache->coalesce_ended) {
        return ngx_http_fanout_cache_coalesced(ctx);
    }

    cc = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_fanout_cache_ctx_t));
    if (cc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cc->ctx = ctx;
    ctx->cache = cc;

    cc->header.write = ngx_http_fanout_cache_header;
    cc->header.data = cc;
    ngx_http_fanout_headers_add(ctx, &cc->header);

    return (ngx_http_fanout_cache_lookup(ctx) == NGX_OK) ? NGX_AGAIN
                                                         : NGX_DECLINED;
}


/* after the answer is out: stored, and handed to who waits on it */

ngx_int_t
ngx_http_fanout_store_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_fanout_cache_keep_t  *keep;

    if (!ctx->cache->keep.ready) {
        return NGX_DECLINED;
    }

    keep = &ctx->cache->keep;

    ngx_http_fanout_cache_store(ctx, keep->status, &keep->type, &keep->target,
                                keep->body, keep->len);
    ngx_http_fanout_coalesce_hand_over(ctx, keep->status, &keep->type,
                                       &keep->target, keep->body, keep->len);

    return NGX_DECLINED;
}
