/*
 * The Redis cache of fan-out answers.
 *
 * Keys: "fanout:LOCATION:SHA256" over the location's targets (names and
 * URIs), the vary value (the Authorization header by default), and either
 * key= or the method, URI and canonical body.  Values: a small header
 * ("FO1", status, Content-Type, X-Fanout-Target) and the answer.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_l1.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_purge.h"
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
static ngx_int_t ngx_http_fanout_cache_entry(ngx_http_fanout_ctx_t *ctx,
    const char *str, size_t len, ngx_http_fanout_cached_t **entry);
static ngx_int_t ngx_http_fanout_cache_read(ngx_http_fanout_ctx_t *ctx,
    u_char *copy, size_t len, ngx_http_fanout_cached_t **entry);
static void ngx_http_fanout_cache_hit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_cached_t *e, ngx_uint_t status, ngx_uint_t counter);
static void ngx_http_fanout_cache_poll(ngx_event_t *ev);
static void ngx_http_fanout_cache_renew(ngx_event_t *ev);


/*
 * The fan-outs in flight in this worker, by cache key: a request finding
 * one attaches to it without asking Redis, and is woken with its answer.
 */

#define NGX_HTTP_FANOUT_INFLIGHT  256

static ngx_queue_t  ngx_http_fanout_inflight[NGX_HTTP_FANOUT_INFLIGHT];


static ngx_queue_t *
ngx_http_fanout_inflight_bucket(ngx_str_t *key)
{
    ngx_queue_t  *q;

    q = &ngx_http_fanout_inflight[ngx_crc32_short(key->data, key->len)
                                  % NGX_HTTP_FANOUT_INFLIGHT];

    if (q->prev == NULL) {
        ngx_queue_init(q);
    }

    return q;
}


static ngx_http_fanout_ctx_t *
ngx_http_fanout_inflight_find(ngx_str_t *key)
{
    ngx_queue_t            *b, *q;
    ngx_http_fanout_ctx_t  *leader;

    b = ngx_http_fanout_inflight_bucket(key);

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

static void
ngx_http_fanout_inflight_add(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->local_leader || !ctx->conf->cache->coalesce
        || ctx->conf->cache->per_target || ctx->batch
        || ngx_http_fanout_inflight_find(&ctx->cache->key))
    {
        return;
    }

    ngx_queue_insert_tail(ngx_http_fanout_inflight_bucket(&ctx->cache->key),
                          &ctx->cache->inflight);
    ngx_queue_init(&ctx->cache->waiters);
    ctx->cache->local_leader = 1;
}


static void
ngx_http_fanout_cache_woken(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_fanout_cached_t  *e;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    e = ctx->cache->shared;

    if (e == NULL) {
        /* the leader had nothing to share: fan out */
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_MISS);
        ngx_http_fanout_cache_give_up(ctx);
        return;
    }

    ngx_http_fanout_cache_hit(ctx, e, NGX_HTTP_FANOUT_CACHE_COALESCED,
                              NGX_HTTP_FANOUT_LOC_CACHE_COALESCED);
}


void
ngx_http_fanout_cache_hand_over(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
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
        w->cache->wait.handler = ngx_http_fanout_cache_woken;
        w->cache->wait.data = w;
        w->cache->wait.log = w->request->connection->log;

        ngx_post_event(&w->cache->wait, &ngx_posted_events);
    }
}


void
ngx_http_fanout_cache_leave(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->leader) {
        ngx_queue_remove(&ctx->cache->waiting);
        ctx->cache->leader = NULL;
    }

    if (ctx->cache->wait.posted) {
        ngx_delete_posted_event(&ctx->cache->wait);
    }

    /* a leader that goes away lets its waiters fan out themselves */
    ngx_http_fanout_cache_hand_over(ctx, 0, NULL, NULL, NULL, 0);
}


/* wall-clock milliseconds: entries are shared by nginx instances */

static ngx_msec_int_t
ngx_http_fanout_cache_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (ngx_msec_int_t) tp->sec * 1000 + tp->msec;
}


ngx_str_t  ngx_http_fanout_cache_statuses[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("STALE"),
    ngx_string("COALESCED")
};


static ngx_http_complex_value_t *
ngx_http_fanout_cache_value(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    return (ngx_http_compile_complex_value(&ccv) == NGX_OK) ? cv : NULL;
}


/* "a,b.c": dot paths, at most max of them */

static ngx_int_t
ngx_http_fanout_cache_paths(ngx_conf_t *cf, ngx_str_t *list, ngx_uint_t max,
    fanout_field_t **paths, ngx_uint_t *n)
{
    u_char          *p, *end, *comma;
    ngx_uint_t       k;
    fanout_field_t  *f;

    p = list->data;
    end = list->data + list->len;

    k = 1;
    for (comma = p; comma < end; comma++) {
        k += (*comma == ',');
    }

    if (k > max) {
        return NGX_ERROR;
    }

    *paths = ngx_palloc(cf->pool, k * sizeof(fanout_field_t));
    if (*paths == NULL) {
        return NGX_ERROR;
    }

    *n = 0;

    while (p <= end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        f = &(*paths)[(*n)++];
        f->path = (const char *) p;
        f->len = comma - p;

        /* dot paths: the canonical form walks them, without selectors */
        if (fanout_json_path_check(f->path, f->len) != 0
            || ngx_strlchr((u_char *) f->path, (u_char *) f->path + f->len,
                           '[')
               != NULL)
        {
            return NGX_ERROR;
        }

        p = comma + 1;
    }

    return NGX_OK;
}


char *
ngx_http_fanout_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ssize_t                        size;
    ngx_str_t                     *value, s, vary, echo;
    ngx_uint_t                     i, n;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_cache_conf_t  *cc;

    if (flcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->cache = NULL;
        return NGX_CONF_OK;
    }

    cc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_cache_conf_t));
    if (cc == NULL) {
        return NGX_CONF_ERROR;
    }

    cc->max_size = 1024 * 1024;
    cc->coalesce = 1;
    cc->l1_ttl = NGX_CONF_UNSET_MSEC;
    ngx_str_set(&vary, "$http_authorization");
    ngx_str_set(&echo, "id");

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;
            cc->ttl = ngx_parse_time(&s, 1);

            if (cc->ttl == (time_t) NGX_ERROR || cc->ttl == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "level=response") == 0
            || ngx_strcmp(value[i].data, "level=target") == 0)
        {
            cc->per_target = (value[i].data[6] == 't');
            continue;
        }

        if (ngx_strcmp(value[i].data, "coalesce=on") == 0
            || ngx_strcmp(value[i].data, "coalesce=off") == 0)
        {
            cc->coalesce = (value[i].data[10] == 'n');
            continue;
        }

        if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            cc->stale = ngx_parse_time(&s, 1);

            if (cc->stale == (time_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "l1=", 3) == 0) {
            s.data = value[i].data + 3;
            s.len = value[i].len - 3;
            size = ngx_parse_size(&s);

            /* a zone that holds a few entries at least */
            if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": l1= is a size of %uzk "
                                   "or more, as in \"l1=16m\"", &value[i],
                                   (8 * ngx_pagesize) >> 10);
                return NGX_CONF_ERROR;
            }

            cc->l1_size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "l1_ttl=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;
            cc->l1_ttl = ngx_parse_time(&s, 0);

            if (cc->l1_ttl == (ngx_msec_t) NGX_ERROR || cc->l1_ttl == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;
            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                goto invalid;
            }

            cc->max_size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0
            || ngx_strncmp(value[i].data, "vary=", 5) == 0)
        {
            n = (value[i].data[0] == 'k') ? 4 : 5;
            s.data = value[i].data + n;
            s.len = value[i].len - n;

            if (n == 5) {
                vary = s;
                continue;
            }

            cc->key = s.len ? ngx_http_fanout_cache_value(cf, &s) : NULL;
            if (cc->key == NULL) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ignore=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (ngx_http_fanout_cache_paths(cf, &s, FANOUT_CACHE_MAX_IGNORE,
                                            &cc->ignore,
                                            &cc->nignore)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "echo=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            echo = s;
            continue;
        }

        goto invalid;
    }

    if (cc->ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_cache\" needs ttl=, as in "
                           "\"fanout_cache ttl=60s;\", or \"off\"");
        return NGX_CONF_ERROR;
    }

    if (cc->l1_ttl != NGX_CONF_UNSET_MSEC && cc->l1_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"l1_ttl=\" needs \"l1=SIZE\"");
        return NGX_CONF_ERROR;
    }

    /* the L1 is never fresher than Redis: at most ttl=, 5s by default */
    if (cc->l1_ttl == NGX_CONF_UNSET_MSEC) {
        cc->l1_ttl = 5000;
    }

    cc->l1_ttl = ngx_min(cc->l1_ttl, (ngx_msec_t) cc->ttl * 1000);

    /* the fields of an answer that are the request's own (KServe's id) */
    if (echo.len && ngx_strcmp(echo.data, "off") != 0) {
        if (ngx_http_fanout_cache_paths(cf, &echo, FANOUT_CACHE_MAX_ECHO,
                                        &cc->echo, &cc->necho)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid echo=\"%V\": at most %d dot paths, "
                               "comma-separated, or \"off\"", &echo,
                               FANOUT_CACHE_MAX_ECHO);
            return NGX_CONF_ERROR;
        }
    }

    /* vary: an empty value is allowed, and means no variation */
    if (vary.len) {
        cc->vary = ngx_http_fanout_cache_value(cf, &vary);
        if (cc->vary == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);

    if (fmcf->cache_file == NULL) {
        fmcf->cache_file = cf->conf_file->file.name.data;
        fmcf->cache_line = cf->conf_file->line;
    }

    flcf->cache = cc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_fanout_cache_merge(ngx_conf_t *cf, ngx_http_fanout_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_stats_loc_t   *loc;
    ngx_http_fanout_cache_conf_t  *cc;

    cc = conf->cache;

    if (cc == NULL || cc->l1_size == 0 || conf->targets == NULL) {
        return NGX_OK;
    }

    /* a location's own, an inherited fanout_cache's too */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    conf->cache_l1 = ngx_http_fanout_l1_add(cf, &conf->server_id, &clcf->name,
                                            cc->l1_size, cc->max_size,
                                            cc->l1_ttl);
    if (conf->cache_l1 == NULL) {
        return NGX_ERROR;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanout_module);
    loc = fmcf->locations.elts;
    ngx_http_fanout_l1_link(&loc[conf->stats].l1, conf->cache_l1);

    return NGX_OK;
}


static void
ngx_http_fanout_cache_count(ngx_http_fanout_ctx_t *ctx, ngx_uint_t counter)
{
    ngx_http_fanout_stats_count(
        ngx_http_fanout_stats_location(ctx->request, ctx->conf), counter);
}


/* the client's body in one piece, from memory or its temp file */

static ngx_int_t
ngx_http_fanout_cache_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_str_null(body);

    if (ngx_http_fanout_body_size(r) > NGX_HTTP_FANOUT_CACHE_MAX_BODY) {
        return NGX_DECLINED;
    }

    /* read only: the key's canonical form and echo= copy what they keep */
    return ngx_http_fanout_body_memory(r, body);
}


/* a target purged by fanout_api: its entries before are unseen */

static u_char *
ngx_http_fanout_cache_purged(u_char *p, ngx_http_fanout_stats_t *st)
{
    return st->rt.purged ? ngx_sprintf(p, "#%uA", st->rt.purged) : p;
}


/* "fanout:LOCATION[:TARGET]:DIGEST", readable in redis-cli --scan */

static ngx_int_t
ngx_http_fanout_cache_name(ngx_http_fanout_ctx_t *ctx, ngx_str_t *target,
    u_char *material, size_t len, ngx_str_t *key)
{
    u_char      *p;
    char         digest[FANOUT_SHA256_HEX_LEN + 1];
    ngx_uint_t   i;

    fanout_sha256_hex(material, len, digest);

    key->data = ngx_pnalloc(ctx->request->pool,
                            sizeof("fanout:::") + ctx->conf->location.len
                            + (target ? target->len : 0)
                            + FANOUT_SHA256_HEX_LEN);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, "fanout:", sizeof("fanout:") - 1);

    for (i = 0; i < ctx->conf->location.len; i++) {
        *p++ = (ctx->conf->location.data[i] > ' '
                && ctx->conf->location.data[i] < 0x7f)
               ? ctx->conf->location.data[i] : '_';
    }

    *p++ = ':';

    if (target) {
        p = ngx_cpymem(p, target->data, target->len);
        *p++ = ':';
    }

    p = ngx_cpymem(p, digest, FANOUT_SHA256_HEX_LEN);
    key->len = p - key->data;

    return NGX_OK;
}


/*
 * fanout_batch: the client's body with its batch array as null, so that
 * what is around the items (parameters, a model name) is in every key.
 */

/*
 * level=response: the Redis key from the key's material, once.  The L1
 * keys its entries by the material itself (a few hundred bytes, compared
 * whole): an L1 hit needs no digest of it.
 */

static ngx_int_t
ngx_http_fanout_cache_named(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->key.len || ctx->cache->material.len == 0) {
        return NGX_OK;
    }

    return ngx_http_fanout_cache_name(ctx, NULL, ctx->cache->material.data,
                                      ctx->cache->material.len,
                                      &ctx->cache->key);
}


static ngx_int_t
ngx_http_fanout_cache_rest(ngx_http_fanout_ctx_t *ctx, ngx_str_t *rest)
{
    u_char                   *p;
    size_t                    before, after;
    ngx_http_fanout_batch_t  *b;

    b = ctx->batch;

    before = (u_char *) b->split.array.p - b->body.data;
    after = b->body.len - before - b->split.array.len;

    if (b->body.len > NGX_HTTP_FANOUT_CACHE_MAX_BODY) {
        return NGX_DECLINED;
    }

    rest->data = ngx_pnalloc(ctx->request->pool, before + 4 + after);
    if (rest->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(rest->data, b->body.data, before);
    p = ngx_cpymem(p, "null", 4);
    p = ngx_cpymem(p, b->split.array.p + b->split.array.len, after);

    rest->len = p - rest->data;

    return NGX_OK;
}


/*
 * fanout_batch: a key per call and target, over the request's identity
 * (id, with the digest of the body around the batch), the call's items
 * (their canonical digest) and the target.  Each item's text is digested
 * once: linear in the body.
 */

static ngx_int_t
ngx_http_fanout_cache_batch_keys(ngx_http_fanout_ctx_t *ctx, u_char *id,
    size_t id_len)
{
    int                        rc;
    char                       item_digest[FANOUT_SHA256_HEX_LEN + 1];
    u_char                    *start, *p, *scratch;
    size_t                     len, n, max, total;
    ngx_uint_t                 i, k, nt;
    fanout_span_t              piece[FANOUT_BATCH_PIECES];
    ngx_http_request_t        *r;
    ngx_http_fanout_batch_t   *b;
    ngx_http_fanout_target_t  *t;

    r = ctx->request;
    b = ctx->batch;
    nt = b->ntargets;

    len = 0;

    for (i = 0; i < nt; i++) {
        t = ctx->subs[i].target;
        len = ngx_max(len, t->name.len + t->uri.len + t->args.len + 4
                           + NGX_ATOMIC_T_LEN);
    }

    start = ngx_pnalloc(r->pool, id_len + sizeof("\nitems=")
                                 + FANOUT_SHA256_HEX_LEN + len);
    ctx->cache->target_keys = ngx_palloc(r->pool, ctx->nsubs * sizeof(ngx_str_t));

    if (start == NULL || ctx->cache->target_keys == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(start, id, id_len);

    /* the largest call's items (bracketed for a chunk): one scratch */
    max = 0;

    for (k = 0; k < b->ncalls; k++) {
        n = fanout_batch_pieces((const char *) b->body.data, b->body.len,
                                &b->split, ctx->conf->batch->chunk, k, piece,
                                &total);
        max = ngx_max(max, total - piece[0].len - piece[n - 1].len);
    }

    scratch = ngx_pnalloc(r->pool, max);
    if (scratch == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < b->ncalls; k++) {
        n = fanout_batch_pieces((const char *) b->body.data, b->body.len,
                                &b->split, ctx->conf->batch->chunk, k, piece,
                                &total);

        /* the pieces but the body around them: the item, or [ slice ] */
        p = scratch;

        for (i = 1; i < n - 1; i++) {
            p = ngx_cpymem(p, piece[i].p, piece[i].len);
        }

        rc = fanout_cache_body_digest((const char *) scratch, p - scratch,
                                      NULL, 0, item_digest);
        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

        for (i = 0; i < nt; i++) {
            t = ctx->subs[k * nt + i].target;

            p = ngx_sprintf(start + id_len, "\nitems=%s\n%V=%V?%V",
                            item_digest, &t->name, &t->uri, &t->args);
            p = ngx_http_fanout_cache_purged(p, ctx->subs[k * nt + i].st);

            if (ngx_http_fanout_cache_name(ctx, &t->name, start, p - start,
                                           &ctx->cache->target_keys[k * nt + i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (b->body.len > NGX_HTTP_FANOUT_LONG_WORK) {
        ngx_time_update();
    }

    /* the location's name stands for the whole, for logs */
    ctx->cache->key = ctx->cache->target_keys[0];

    return NGX_OK;
}


/* s, then sep; an empty s may have no data at all (memcpy's NULL) */

static ngx_inline u_char *
ngx_http_fanout_cache_put(u_char *p, ngx_str_t *s, u_char sep)
{
    if (s->len) {
        p = ngx_cpymem(p, s->data, s->len);
    }

    *p++ = sep;

    return p;
}


/*
 * The keys stand for the targets (names and URIs), the vary value, and
 * key= or the method, URI and canonical body; the raw body is never in
 * them.  level=target: one key per target over that target alone, so that
 * changing one target misses only that target.
 */

static ngx_int_t
ngx_http_fanout_cache_key(ngx_http_fanout_ctx_t *ctx)
{
    u_char                        *p, *start;
    char                           body_digest[FANOUT_SHA256_HEX_LEN + 1];
    size_t                         len, id_len;
    ngx_int_t                      rc;
    ngx_str_t                      body, key, vary, id, none, *variant;
    ngx_str_t                     *method;
    ngx_atomic_uint_t              purged;
    static ngx_str_t               get = ngx_string("GET");
    static ngx_str_t               post = ngx_string("POST");
    ngx_uint_t                     i;
    ngx_http_request_t            *r;
    ngx_http_fanout_target_t      *t;
    ngx_http_fanout_cache_conf_t  *cc;

    r = ctx->request;
    ngx_str_null(&none);
    cc = ctx->conf->cache;

    /* a purge stands for the POST of its body, or the GET of its URI */
    method = &r->method_name;

    if (ctx->cache->purging) {
        method = (ngx_http_fanout_body_size(r) > 0) ? &post : &get;
    }

    ngx_str_null(&key);
    ngx_str_null(&vary);

    if (cc->vary && ngx_http_complex_value(r, cc->vary, &vary) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cc->key) {
        if (ngx_http_complex_value(r, cc->key, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        body_digest[0] = '\0';

    } else if (ctx->batch) {
        /* the body around the batch: the items are keyed one by one */
        rc = ngx_http_fanout_cache_rest(ctx, &body);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = fanout_cache_body_digest((const char *) body.data, body.len,
                                      cc->ignore, cc->nignore, body_digest);

        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

    } else {
        rc = ngx_http_fanout_cache_body(r, &body);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = fanout_cache_body_digest((const char *) body.data, body.len,
                                      cc->ignore, cc->nignore, body_digest);

        if (rc == FANOUT_KEY_NOMEM) {
            return NGX_ERROR;
        }

        if (rc == FANOUT_KEY_AMBIGUOUS) {
            /* its bytes are its key: no other body shares it */
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "fanout cache: the body has a duplicate key, "
                          "keyed by its bytes");
            ngx_http_fanout_cache_count(ctx,
                                        NGX_HTTP_FANOUT_LOC_CACHE_AMBIGUOUS);
        }

        if (body.len > NGX_HTTP_FANOUT_LONG_WORK) {
            /* the Redis timers that follow measure from now */
            ngx_time_update();
        }
    }

    /* the request's identity, then what it is asked of (its calls, as the
     * targets' stage planned them) */

    variant = ngx_http_fanout_split_name(ctx);
    if (variant == NULL) {
        variant = &none;
    }

    id_len = sizeof("fanout-key-v2\n\n\n\n") + ctx->conf->server_id.len
             + r->headers_in.server.len + vary.len + key.len
             + sizeof("POST") + r->method_name.len + r->uri.len
             + r->args.len
             + sizeof(body_digest) + 4 + sizeof("\nvariant=") + variant->len
             + sizeof("\npurged=") + NGX_ATOMIC_T_LEN;
    len = id_len;

    for (i = 0; i < ctx->nsubs; i++) {
        t = ctx->subs[i].target;
        len += t->name.len + t->uri.len + t->args.len + 4 + NGX_ATOMIC_T_LEN;
    }

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    /*
     * Who answers (the server block, and the Host it may pass on) first.
     * Copied, not printed: ngx_sprintf() would cost more than the L1 hit
     * it serves.
     */
    p = ngx_cpymem(start, "fanout-key-v2\n", sizeof("fanout-key-v2\n") - 1);
    p = ngx_http_fanout_cache_put(p, &ctx->conf->server_id, '\n');
    p = ngx_http_fanout_cache_put(p, &r->headers_in.server, '\n');
    p = ngx_http_fanout_cache_put(p, &vary, '\n');

    if (cc->key) {
        p = ngx_http_fanout_cache_put(p, &key, '\0') - 1;

    } else {
        p = ngx_http_fanout_cache_put(p, method, ' ');
        p = ngx_http_fanout_cache_put(p, &r->uri, '?');
        p = ngx_http_fanout_cache_put(p, &r->args, ' ');
        p = ngx_cpymem(p, body_digest, ngx_strlen(body_digest));
    }

    if (variant->len) {
        /* a variant's answer is its own: a different ensemble, maybe */
        p = ngx_cpymem(p, "\nvariant=", sizeof("\nvariant=") - 1);
        p = ngx_cpymem(p, variant->data, variant->len);
    }

    purged = ngx_http_fanout_stats_location(r, ctx->conf)->rt.purged;

    if (purged) {
        /* fanout_api purged the location: the entries before are unseen */
        p = ngx_sprintf(p, "\npurged=%uA", purged);
    }

    id.data = start;
    id.len = p - start;

    if (ctx->batch) {
        return ngx_http_fanout_cache_batch_keys(ctx, start, p - start);
    }

    if (!cc->per_target) {
        for (i = 0; i < ctx->nsubs; i++) {
            t = ctx->subs[i].target;
            *p++ = '\n';
            p = ngx_http_fanout_cache_put(p, &t->name, '=');
            p = ngx_http_fanout_cache_put(p, &t->uri, '?');
            p = ngx_http_fanout_cache_put(p, &t->args, '\0') - 1;
            p = ngx_http_fanout_cache_purged(p, ctx->subs[i].st);
        }

        /* named when Redis needs it: an L1 hit goes by the material */
        ctx->cache->material.data = start;
        ctx->cache->material.len = p - start;

        return NGX_OK;
    }

    ctx->cache->target_keys = ngx_palloc(r->pool, ctx->nsubs * sizeof(ngx_str_t));
    if (ctx->cache->target_keys == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        t = ctx->subs[i].target;
        p = ngx_sprintf(start + id.len, "\n%V=%V?%V", &t->name, &t->uri,
                        &t->args);
        p = ngx_http_fanout_cache_purged(p, ctx->subs[i].st);

        if (ngx_http_fanout_cache_name(ctx, &t->name, start, p - start,
                                       &ctx->cache->target_keys[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* the location's name stands for the whole, for logs */
    ctx->cache->key = ctx->cache->target_keys[0];

    return NGX_OK;
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


/*
 * Coalescing: on a miss, one request (in any worker of any instance) takes
 * a short lock and fans out; the others poll for its answer and get it as
 * COALESCED, or fan out themselves when the lock goes without an answer or
 * after the wait.  The lock is a lease its leader renews (see renew).
 */

#define NGX_HTTP_FANOUT_CACHE_POLL  15


static ngx_str_t *
ngx_http_fanout_cache_lock_key(ngx_http_fanout_ctx_t *ctx)
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
ngx_http_fanout_cache_give_up(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->cache->key.len) {
        ngx_http_fanout_inflight_add(ctx);
    }

    /* a miss: on to the fan-out */
    ngx_http_fanout_resume(ctx, NGX_DECLINED);
}


static void
ngx_http_fanout_cache_polled(void *data, redisReply *reply,
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
        ngx_http_fanout_cache_give_up(ctx);
        return;
    }

    if (reply->element[0]->type == REDIS_REPLY_STRING
        && ngx_http_fanout_cache_entry(ctx, reply->element[0]->str,
                                       reply->element[0]->len, &e)
           == NGX_OK)
    {
        ngx_http_fanout_cache_hit(ctx, e, NGX_HTTP_FANOUT_CACHE_COALESCED,
                                  NGX_HTTP_FANOUT_LOC_CACHE_COALESCED);
        return;
    }

    /* no answer yet: wait while the lock stands, up to the deadline */
    if (reply->element[1]->type == REDIS_REPLY_STRING
        && ctx->cache->waited < ctx->conf->timeout)
    {
        ngx_add_timer(&ctx->cache->wait, NGX_HTTP_FANOUT_CACHE_POLL);
        ctx->cache->waited += NGX_HTTP_FANOUT_CACHE_POLL;
        return;
    }

    /* the leader ended without an answer to share */
    ngx_http_fanout_cache_give_up(ctx);
}


static void
ngx_http_fanout_cache_poll(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    size_t                  len[3];
    ngx_str_t              *lock;
    const char             *argv[3];
    ngx_http_fanout_ctx_t  *leader;

    /*
     * The leader may be in this worker after all: its election reply can
     * come on another pooled connection after the "wait" did.
     */

    leader = ngx_http_fanout_inflight_find(&ctx->cache->key);

    if (leader) {
        ngx_queue_insert_tail(&leader->cache->waiters, &ctx->cache->waiting);
        ctx->cache->leader = leader;
        return;
    }

    lock = ngx_http_fanout_cache_lock_key(ctx);
    if (lock == NULL) {
        ngx_http_fanout_cache_give_up(ctx);
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
                        ngx_http_fanout_cache_polled, ctx);

    if (ctx->cache->op == NULL) {
        ngx_http_fanout_cache_give_up(ctx);
    }
}


/* the leader is done: whoever waits looks again at once */

static void
ngx_http_fanout_cache_del(ngx_str_t *lock, ngx_log_t *log)
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
ngx_http_fanout_cache_unlock(ngx_http_fanout_ctx_t *ctx)
{
    ngx_str_t  *lock;

    if (ctx->cache->renew.timer_set) {
        ngx_del_timer(&ctx->cache->renew);
    }

    if (!ctx->cache->lock_leader) {
        return;
    }

    ctx->cache->lock_leader = 0;

    lock = ngx_http_fanout_cache_lock_key(ctx);
    if (lock) {
        ngx_http_fanout_cache_del(lock, ctx->request->connection->log);
    }
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
        ngx_http_fanout_cache_del(&kept->lock, ngx_cycle->log);
    }

    ngx_free(kept);
}


/* an entry from Redis: fresh (NGX_OK), stale (kept) or unreadable */

static ngx_int_t
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

static ngx_int_t
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


static void
ngx_http_fanout_cache_wait(ngx_http_fanout_ctx_t *ctx)
{
    ctx->cache->wait.handler = ngx_http_fanout_cache_poll;
    ctx->cache->wait.data = ctx;
    ctx->cache->wait.log = ctx->request->connection->log;

    ngx_add_timer(&ctx->cache->wait, NGX_HTTP_FANOUT_CACHE_POLL);
    ctx->cache->waited = NGX_HTTP_FANOUT_CACHE_POLL;
}


/*
 * The coalescing lock is a lease of NGX_HTTP_FANOUT_CACHE_LEASE: the
 * leader renews it every third of that while it fans out, so that when the
 * leader dies (kill -9, an OOM, a lost DEL) the lock is gone within a lease
 * and its waiters fan out themselves, instead of waiting fanout_timeout.
 */

static void
ngx_http_fanout_cache_renew(ngx_event_t *ev)
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
    ngx_http_fanout_ctx_t     *leader;
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
        leader = ngx_http_fanout_inflight_find(&ctx->cache->key);

        if (leader) {
            /* it is in this worker: wait on it, not on Redis */
            ngx_queue_insert_tail(&leader->cache->waiters, &ctx->cache->waiting);
            ctx->cache->leader = leader;
            return;
        }

        /* in another worker or instance: poll for its answer */
        ngx_http_fanout_cache_wait(ctx);
        return;
    }

    ctx->cache->lock_leader = (reply->type == REDIS_REPLY_ARRAY);

    if (ctx->cache->lock_leader) {
        /* the lock is a lease, renewed while this request lives */
        ctx->cache->renew.handler = ngx_http_fanout_cache_renew;
        ctx->cache->renew.data = ctx;
        ctx->cache->renew.log = c->log;
        ctx->cache->renew.cancelable = 1;
        ngx_add_timer(&ctx->cache->renew, NGX_HTTP_FANOUT_CACHE_LEASE / 3);
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

    if (argv == NULL || len == NULL) {
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
    ngx_http_fanout_ctx_t     *leader;
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

        if (rc == NGX_OK && ngx_http_fanout_cache_named(ctx) != NGX_OK) {
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

    if (ngx_http_fanout_cache_named(ctx) != NGX_OK) {
        ctx->cache->status = NGX_HTTP_FANOUT_CACHE_ERROR;
        ngx_http_fanout_cache_count(ctx, NGX_HTTP_FANOUT_LOC_CACHE_ERROR);
        return NGX_DECLINED;
    }

    if (ctx->conf->cache->coalesce) {
        leader = ngx_http_fanout_inflight_find(&ctx->cache->key);

        if (leader) {
            /* the same request is being answered in this worker: wait */
            ngx_queue_insert_tail(&leader->cache->waiters, &ctx->cache->waiting);
            ctx->cache->leader = leader;
            ctx->cache->status = NGX_HTTP_FANOUT_CACHE_MISS;
            return NGX_OK;
        }
    }

    if (ctx->conf->cache->coalesce) {
        lock = ngx_http_fanout_cache_lock_key(ctx);
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
        ngx_http_fanout_cache_unlock(ctx);
        return;
    }

    /* a leader lets the waiters go once the SET has been applied */
    lock = ctx->cache->lock_leader ? ngx_http_fanout_cache_lock_key(ctx) : NULL;

    /* after the answer went out */
    if (ngx_http_fanout_cache_set(ctx, &ctx->cache->key, &ctx->cache->material,
                                  status, type, target, body, len, lock)
            == NGX_OK
        && lock)
    {
        ctx->cache->lock_leader = 0;
    }

    ngx_http_fanout_cache_unlock(ctx);
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

    ngx_http_fanout_cache_unlock(ctx);
    ngx_http_fanout_cache_leave(ctx);
}


ngx_int_t
ngx_http_fanout_cache_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_cleanup_t           *cln;
    ngx_http_fanout_cache_ctx_t  *cc;

    if (ctx->conf->cache == NULL) {
        return NGX_DECLINED;
    }

    cc = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_fanout_cache_ctx_t));
    if (cc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* its own cleanup, run before the handler's (the last added first) */
    cln = ngx_http_cleanup_add(ctx->request, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cc->ctx = ctx;
    ctx->cache = cc;

    cln->handler = ngx_http_fanout_cache_cleanup;
    cln->data = ctx;

    if (ngx_http_fanout_headers_add(ctx, ngx_http_fanout_cache_header, cc)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return (ngx_http_fanout_cache_lookup(ctx) == NGX_OK) ? NGX_AGAIN
                                                         : NGX_DECLINED;
}


/* after the answer is out: stored, and handed to who waits on it */

ngx_int_t
ngx_http_fanout_store_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (!ctx->cache->keep.ready) {
        return NGX_DECLINED;
    }

    ngx_http_fanout_cache_store(ctx, ctx->cache->keep.status, &ctx->cache->keep.type,
                                &ctx->cache->keep.target, ctx->cache->keep.body,
                                ctx->cache->keep.len);
    ngx_http_fanout_cache_hand_over(ctx, ctx->cache->keep.status, &ctx->cache->keep.type,
                                    &ctx->cache->keep.target, ctx->cache->keep.body,
                                    ctx->cache->keep.len);

    return NGX_DECLINED;
}
