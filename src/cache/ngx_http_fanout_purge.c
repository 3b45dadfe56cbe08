/*
 * fanout_cache_purge: a request the predicates pick (like nginx's
 * proxy_cache_purge) removes the entries its twin request would be
 * answered from: the Redis keys, and this instance's L1 copies.  Other
 * instances' L1 copies live on for at most their l1_ttl.
 *
 * The answer: 200 {"purged":N,"l1":M} with N Redis keys and M L1 entries
 * removed, 404 when there were none, 503 when Redis could not be asked
 * (the L1's are gone all the same, and the purge may be sent again).
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_purge.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_cache.h"


static ngx_int_t
ngx_http_fanout_purge_answer(ngx_http_fanout_ctx_t *ctx, ngx_int_t redis,
    ngx_uint_t l1)
{
    u_char               *body, *p;
    ngx_http_request_t   *r;

    r = ctx->request;

    if (redis < 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanout cache: the purge of \"%V\" did not reach "
                      "Redis (%ui L1 entries removed)", &ctx->cache->key, l1);

        return ngx_http_fanout_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "redis_unavailable",
                                          "the purge did not reach Redis; "
                                          "send it again");
    }

    ngx_http_fanout_stats_count(
        ngx_http_fanout_stats_location(r, ctx->conf),
        NGX_HTTP_FANOUT_LOC_CACHE_PURGED);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "fanout cache: purged \"%V\": %i in Redis, %ui in the L1",
                  &ctx->cache->key, redis, l1);

    if (redis == 0 && l1 == 0) {
        return ngx_http_fanout_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "nothing is cached for this "
                                          "request");
    }

    body = ngx_pnalloc(r->pool, sizeof("{\"purged\":,\"l1\":}")
                                + 2 * NGX_INT_T_LEN);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"purged\":%i,\"l1\":%ui}", redis, l1);

    return ngx_http_fanout_send_json(r, NGX_HTTP_OK, body, p - body);
}


static void
ngx_http_fanout_purged(void *data, redisReply *reply,
    ngx_http_fanout_redis_error_e error)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_int_t  n;

    ctx->cache->op = NULL;

    ngx_http_set_log_request(ctx->request->connection->log, ctx->request);

    n = (reply && reply->type == REDIS_REPLY_INTEGER)
        ? (ngx_int_t) reply->integer : -1;

    ngx_http_fanout_resume_answered(ctx,
        ngx_http_fanout_purge_answer(ctx, n, ctx->cache->purged_l1));
}


/*
 * Always NGX_OK: the answer resumes the pipeline (at once when Redis
 * cannot be asked).
 */

ngx_int_t
ngx_http_fanout_purge(ngx_http_fanout_ctx_t *ctx, ngx_str_t *keys,
    ngx_str_t *l1keys, ngx_uint_t n, ngx_http_fanout_l1_t *l1)
{
    size_t       *len;
    ngx_uint_t    i;
    const char  **argv;

    ctx->cache->purged_l1 = 0;

    for (i = 0; l1 && i < n; i++) {
        if (ngx_http_fanout_l1_delete(l1, &l1keys[i]) == NGX_OK) {
            ctx->cache->purged_l1++;
        }
    }

    argv = ngx_palloc(ctx->request->pool, (n + 1) * sizeof(char *));
    len = ngx_palloc(ctx->request->pool, (n + 1) * sizeof(size_t));

    if (argv == NULL || len == NULL) {
        ngx_http_fanout_resume(ctx, NGX_ERROR);
        return NGX_OK;
    }

    argv[0] = "DEL";
    len[0] = 3;

    for (i = 0; i < n; i++) {
        argv[i + 1] = (const char *) keys[i].data;
        len[i + 1] = keys[i].len;
    }

    ctx->cache->op = ngx_http_fanout_redis_command(
                        ctx->request->connection->log, (int) n + 1, argv, len,
                        ngx_http_fanout_purged, ctx);

    if (ctx->cache->op == NULL) {
        ngx_http_fanout_resume_answered(ctx,
            ngx_http_fanout_purge_answer(ctx, -1, ctx->cache->purged_l1));
    }

    return NGX_OK;
}
