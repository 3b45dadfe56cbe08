/*
 * A cache entry as Redis and the L1 keep it:
 * "FO1 STATUS FRESH-UNTIL-MS\nCONTENT-TYPE\nTARGET\nBODY", read into the
 * request's pool as fresh, stale (kept for stale=) or unreadable.  The
 * clock is the wall clock's: entries are shared by nginx instances.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_cache_entry.h"


static ngx_int_t ngx_http_fanout_cache_parse(u_char *p, size_t len,
    ngx_http_fanout_cached_t *e);


/* wall-clock milliseconds: entries are shared by nginx instances */

ngx_msec_int_t
ngx_http_fanout_cache_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (ngx_msec_int_t) tp->sec * 1000 + tp->msec;
}


/* "FO1 STATUS FRESH-UNTIL-MS\nCONTENT-TYPE\nTARGET\nBODY" */

static ngx_int_t
ngx_http_fanout_cache_parse(u_char *p, size_t len,
    ngx_http_fanout_cached_t *e)
{
    u_char     *end, *sp, *nl;
    ngx_int_t   n;
    off_t       t;

    end = p + len;

    if (len < 8 || ngx_strncmp(p, "FO1 ", 4) != 0) {
        return NGX_ERROR;
    }

    p += 4;

    sp = ngx_strlchr(p, end, ' ');
    nl = ngx_strlchr(p, end, '\n');
    if (sp == NULL || nl == NULL || sp > nl) {
        return NGX_ERROR;
    }

    n = ngx_atoi(p, sp - p);
    t = ngx_atoof(sp + 1, nl - sp - 1);

    if (n < 200 || n > 599 || t == NGX_ERROR) {
        return NGX_ERROR;
    }

    e->status = (ngx_uint_t) n;
    e->fresh_until = (ngx_msec_int_t) t;
    e->plain = 0;

    p = nl + 1;
    nl = ngx_strlchr(p, end, '\n');
    if (nl == NULL) {
        return NGX_ERROR;
    }

    e->type.data = p;
    e->type.len = nl - p;

    p = nl + 1;
    nl = ngx_strlchr(p, end, '\n');
    if (nl == NULL) {
        return NGX_ERROR;
    }

    e->target.data = p;
    e->target.len = nl - p;

    e->body.data = nl + 1;
    e->body.len = end - (nl + 1);

    return NGX_OK;
}


/* an entry from Redis: fresh (NGX_OK), stale (kept) or unreadable */

ngx_int_t
ngx_http_fanout_cache_entry(ngx_http_fanout_ctx_t *ctx, const char *str,
    size_t len, ngx_http_fanout_cached_t **entry)
{
    u_char  *copy;

    /* the reply is hiredis's: keep a copy in the request's pool */
    copy = ngx_pnalloc(ctx->request->pool, len);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, str, len);

    return ngx_http_fanout_cache_read(ctx, copy, len, entry);
}


/* an entry in the request's pool, from Redis or the L1 */

ngx_int_t
ngx_http_fanout_cache_read(ngx_http_fanout_ctx_t *ctx, u_char *copy,
    size_t len, ngx_http_fanout_cached_t **entry)
{
    ngx_http_fanout_cached_t  *e;

    e = ngx_palloc(ctx->request->pool, sizeof(ngx_http_fanout_cached_t));
    if (e == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_fanout_cache_parse(copy, len, e) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "fanout cache entry \"%V\" is unreadable, ignored",
                      &ctx->cache->key);
        return NGX_ERROR;
    }

    *entry = e;

    if (e->fresh_until >= ngx_http_fanout_cache_now()) {
        return NGX_OK;
    }

    /* expired but within stale=: a fallback if the fan-out fails (a whole
     * answer only: a target's entry is not one) */
    if (!ctx->conf->cache->per_target && ctx->batch == NULL) {
        ctx->cache->stale = e;
    }

    return NGX_DECLINED;
}
