/*
 * Target calls: one background subrequest per target, a capture filter that
 * keeps each answer in memory under the target location's
 * subrequest_output_buffer_size, per-target timeouts, and the cut-off of
 * calls whose answer is no longer wanted.
 */

#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_cache.h"


static ngx_int_t ngx_http_fanout_sub_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_fanout_deadline_handler(ngx_event_t *ev);
static void ngx_http_fanout_fallbacks(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_sub_timeout(ngx_event_t *ev);
static void ngx_http_fanout_sub_stop(ngx_event_t *ev);
static void ngx_http_fanout_cut(ngx_http_fanout_sub_t *sub);
static void ngx_http_fanout_call(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub, ngx_str_t *uri, ngx_str_t *args);
static void ngx_http_fanout_fallback(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub);
static void ngx_http_fanout_upstream_finalize(ngx_http_request_t *r,
    ngx_int_t rc);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_fanout_subs_init(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_fanout_sub_t     *sub;
    ngx_http_fanout_target_t  *targets;

    if (ctx->subs) {
        return NGX_OK;
    }

    targets = ctx->conf->targets->elts;

    ctx->subs = ngx_pcalloc(ctx->request->pool, ctx->conf->targets->nelts
                                                * sizeof(ngx_http_fanout_sub_t));
    if (ctx->subs == NULL) {
        return NGX_ERROR;
    }

    /* the targets of this request: untagged ones, and its variant's */

    for (i = 0; i < ctx->conf->targets->nelts; i++) {
        if (!ngx_http_fanout_split_runs(ctx, &targets[i])) {
            continue;
        }

        sub = &ctx->subs[ctx->nsubs++];

        sub->ctx = ctx;
        sub->target = &targets[i];
        sub->st = ngx_http_fanout_stats_target(ctx->request, ctx->conf,
                                               &targets[i]);
        sub->part.name = (const char *) targets[i].name.data;
        sub->part.weight = (double) targets[i].weight
                           / NGX_HTTP_FANOUT_WEIGHT_ONE;
        sub->ps.handler = ngx_http_fanout_sub_done;
        sub->ps.data = sub;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_start(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_request_t        *r;
    ngx_http_fanout_sub_t     *sub;
    ngx_http_fanout_stats_t   *st;
    ngx_http_fanout_target_t  *t;

    r = ctx->request;

    if (ngx_http_fanout_subs_init(ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->headers == NULL) {
        ctx->headers = ngx_http_fanout_headers(r);
        if (ctx->headers == NULL) {
            return NGX_ERROR;
        }
    }

    /* open circuits: those targets are not called at all */
    ngx_http_fanout_breaker_allow(ctx);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->done || ctx->winner) {
            /* answered from the per-target cache, or "first" has won */
            if (sub->part.kind == FANOUT_CIRCUIT_OPEN) {
                ngx_http_fanout_fallback(ctx, sub);
            }

            continue;
        }

        t = sub->target;

        if (t->max_inflight) {
            st = sub->st;

            /* a slot across all workers, given back in sub_account() */
            if (ngx_atomic_fetch_add(&st->inflight, 1)
                >= (ngx_atomic_uint_t) t->max_inflight)
            {
                (void) ngx_atomic_fetch_add(&st->inflight, -1);

                sub->done = 1;
                sub->part.kind = FANOUT_OVERLOADED;
                sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;

                ngx_http_fanout_fallback(ctx, sub);
                continue;
            }

            sub->inflight = 1;
        }

        ngx_http_fanout_call(ctx, sub, &t->uri, &t->args);
    }

    return NGX_OK;
}


/*
 * The targets' stage: called once to start them and the deadline, then
 * again each time one of them ends (the main request is posted) or the
 * deadline passes, until the answer can be decided.
 */

ngx_int_t
ngx_http_fanout_calls_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (!ctx->calls) {
        ctx->calls = 1;

        r->write_event_handler = ngx_http_fanout_wake;

        if (ngx_http_fanout_start(ctx) != NGX_OK) {
            ngx_http_fanout_cancel(ctx);
            ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return ngx_http_fanout_send_error(r,
                                              NGX_HTTP_INTERNAL_SERVER_ERROR,
                                              "internal", "the fan-out could "
                                              "not be started");
        }

        ctx->deadline.handler = ngx_http_fanout_deadline_handler;
        ctx->deadline.data = ctx;
        ctx->deadline.log = r->connection->log;

        ngx_add_timer(&ctx->deadline, ctx->conf->timeout);
    }

    if (ctx->winner || ctx->deadline_passed) {
        return NGX_DECLINED;
    }

    ngx_http_fanout_fallbacks(ctx);

    /* nothing (more) to wait for: all answered, cached or not started */
    return (ctx->pending == 0) ? NGX_DECLINED : NGX_AGAIN;
}


static void
ngx_http_fanout_deadline_handler(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "fanout deadline");

    ctx->deadline_passed = 1;

    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


/* one background subrequest: the target's URI, or its fallback's */

static void
ngx_http_fanout_call(ngx_http_fanout_ctx_t *ctx, ngx_http_fanout_sub_t *sub,
    ngx_str_t *uri, ngx_str_t *args)
{
    ngx_msec_t           timeout;
    ngx_http_request_t  *r, *sr;

    r = ctx->request;

    sub->start = ngx_current_msec;

    ctx->pending++;

    if (ngx_http_subrequest(r, uri, args->len ? args : &r->args, &sr,
                            &sub->ps, NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout target \"%V\": subrequest to \"%V\" failed",
                      &sub->target->name, uri);

        sub->done = 1;
        sub->part.kind = FANOUT_UPSTREAM_ERROR;
        sub->part.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        ctx->pending--;
        return;
    }

    sub->sr = sr;

    /*
     * The client's method, body and headers, as the client sent them;
     * HEAD becomes GET, as with proxy_cache_convert_head, since an
     * answer without a body cannot be merged.
     */

    if (r->method != NGX_HTTP_HEAD) {
        sr->method = r->method;
        sr->method_name = r->method_name;
    }

    sr->headers_in.headers = *ctx->headers;
#if (NGX_HTTP_GZIP || NGX_HTTP_HEADERS)
    sr->headers_in.accept_encoding = NULL;
#endif

    timeout = sub->target->timeout;

    if (timeout != NGX_CONF_UNSET_MSEC && timeout < ctx->conf->timeout) {
        sub->timer.handler = ngx_http_fanout_sub_timeout;
        sub->timer.data = sub;
        sub->timer.log = r->connection->log;

        ngx_add_timer(&sub->timer, timeout);
    }
}


/*
 * fallback=: the target is open, overloaded or failed, so its fallback is
 * called in its place.  The target's own outcome is accounted first (its
 * breaker learns of the failure); the fallback's answer then appears under
 * the target's name, marked in meta.
 */

static void
ngx_http_fanout_fallback(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub)
{
    fanout_part_t              part;
    ngx_http_fanout_target_t  *t;

    t = sub->target;

    if (t->fallback.len == 0 || sub->fallback || ctx->finished
        || ctx->winner)
    {
        return;
    }

    if (!fanout_kind_falls_back(sub->part.kind)) {
        /* a 4xx is the client's: another model would say the same */
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "fanout target \"%V\" %s: calling its fallback",
                   &t->name, fanout_kind_name(sub->part.kind));

    ngx_http_fanout_sub_account(ctx, sub);

    ngx_http_fanout_stats_count(
        sub->st,
        NGX_HTTP_FANOUT_TGT_FALLBACK);

    part = sub->part;

    ngx_memzero(&sub->part, sizeof(fanout_part_t));
    sub->part.name = part.name;
    sub->part.weight = part.weight;
    sub->part.fallback = 1;

    sub->len = 0;
    sub->header = 0;
    sub->done = 0;
    sub->too_large = 0;
    sub->broken = 0;
    sub->accounted = 0;
    sub->fallback = 1;

    /* the fallback's outcome is not the target's: its breaker skips it */
    sub->verdict = FANOUT_BREAKER_REJECT;

    ngx_http_fanout_call(ctx, sub, &t->fallback, &t->fallback_args);
}


/* from the targets' stage: targets that failed meanwhile */

static void
ngx_http_fanout_fallbacks(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_http_fanout_sub_t  *sub;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->done && !sub->fallback && sub->part.kind != FANOUT_OK
            && !sub->part.cached)
        {
            ngx_http_fanout_fallback(ctx, sub);
        }
    }
}


/* the post_subrequest handler: may run more than once for one call */

static ngx_int_t
ngx_http_fanout_sub_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_fanout_sub_t *sub = data;

    fanout_capture_t        cap;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = sub->ctx;

    if (sub->done || rc == NGX_AGAIN || sr != sub->sr) {
        /*
         * Never NGX_ERROR here: it would terminate the client's request.
         * A call replaced by its fallback may still end here: ignored.
         */
        return NGX_OK;
    }

    sub->done = 1;
    sub->sr = NULL;
    sub->part.latency_ms = ngx_current_msec - sub->start;

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    if (sub->stop.posted) {
        ngx_delete_posted_event(&sub->stop);
    }

    ngx_http_fanout_sub_capture(sub, sr, rc, &cap);

    sub->part.kind = fanout_capture_kind(&cap, &sub->part.status);

    if (sub->part.kind == FANOUT_OK) {
        /* a whole answer: validated in one pass, which finds the FIELD */
        sub->part.body = (const char *) sub->buf;
        sub->part.body_len = sub->len;

        fanout_part_parse(&sub->part, (const char *) ctx->conf->field.data,
                          ctx->conf->field.len);

    } else if (sub->header && !cap.complete && !sub->too_large
               && !sub->broken)
    {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "fanout target \"%V\" answered %uz bytes and no more%s:"
                      " the answer is not used", &sub->target->name,
                      sub->len, cap.read_timeout ? " (read timed out)" : "");

    } else if (sub->header && sub->part.kind == FANOUT_UPSTREAM_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "fanout target \"%V\" answered with status %d, "
                      "not a final HTTP answer", &sub->target->name,
                      cap.status);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "fanout target \"%V\" done: %s, rc:%i",
                   &sub->target->name, fanout_kind_name(sub->part.kind), rc);

    ctx->pending--;

    if (ctx->finished) {
        return NGX_OK;
    }

    if (sub->part.kind == FANOUT_OK
        && ctx->conf->merge == FANOUT_MERGE_FIRST
        && ctx->winner == NULL)
    {
        ctx->winner = sub;
    }

    /*
     * Only post the parent: running posted requests from here would run
     * them inside this subrequest's finalization.
     */

    if (ctx->winner || ctx->pending == 0
        || (sub->target->fallback.len && !sub->fallback
            && sub->part.kind != FANOUT_OK))
    {
        /* the parent decides, or calls the fallback */
        if (ngx_http_post_request(ctx->request, NULL) != NGX_OK) {
            return NGX_OK;
        }
    }

    return NGX_OK;
}


/* ends one call from an event handler of ours: a timer or a posted event */

static void
ngx_http_fanout_sub_end(ngx_http_fanout_sub_t *sub, fanout_kind_e kind,
    int status)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = sub->ctx;
    r = ctx->request;
    c = r->connection;

    if (sub->done || ctx->finished) {
        return;
    }

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "fanout target \"%V\" ended: %s",
                   &sub->target->name, fanout_kind_name(kind));

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    sub->done = 1;
    sub->part.kind = kind;
    sub->part.status = status;
    sub->part.latency_ms = ngx_current_msec - sub->start;
    ctx->pending--;

    ngx_http_fanout_cut(sub);

    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


static void
ngx_http_fanout_sub_timeout(ngx_event_t *ev)
{
    ngx_http_fanout_sub_end(ev->data, FANOUT_TIMEOUT,
                            NGX_HTTP_GATEWAY_TIME_OUT);
}


static void
ngx_http_fanout_sub_stop(ngx_event_t *ev)
{
    ngx_http_fanout_sub_t *sub = ev->data;

    ngx_http_fanout_sub_end(sub,
                            sub->too_large ? FANOUT_TOO_LARGE
                                           : FANOUT_UPSTREAM_ERROR,
                            sub->part.status);
}


/*
 * The answer is decided: calls still running either missed the deadline
 * or lost the race of "first"; end them so that they do not hold the
 * client's connection.
 */

void
ngx_http_fanout_cancel(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_http_fanout_sub_t  *sub;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->timer.timer_set) {
            ngx_del_timer(&sub->timer);
        }

        if (sub->stop.posted) {
            ngx_delete_posted_event(&sub->stop);
        }

        if (!sub->done) {
            sub->done = 1;
            sub->part.latency_ms = ngx_current_msec - sub->start;

            if (ctx->winner) {
                sub->cancelled = 1;

            } else {
                sub->part.kind = FANOUT_TIMEOUT;
                sub->part.status = NGX_HTTP_GATEWAY_TIME_OUT;
            }
        }

        ngx_http_fanout_cut(sub);
    }

    ctx->pending = 0;
}


static void
ngx_http_fanout_cut(ngx_http_fanout_sub_t *sub)
{
    ngx_http_request_t   *sr;
    ngx_http_upstream_t  *u;

    sr = sub->sr;

    if (sr == NULL || sr->done) {
        return;
    }

    u = sr->upstream;

    if (u == NULL || u->cleanup == NULL) {
        /*
         * Not (or no more) an upstream call, e.g. a location that is still
         * in its access phase: it runs to its end, and its answer is
         * ignored.
         */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "fanout target \"%V\" cannot be cut off",
                       &sub->target->name);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "fanout target \"%V\" cut off", &sub->target->name);

    sub->sr = NULL;

    /*
     * The upstream's own cleanup handler, which nginx runs when a client
     * aborts: it closes the upstream connection and finalizes the
     * subrequest with NGX_DONE, which releases its reference to the main
     * request without calling ngx_http_fanout_sub_done().
     */

    sr->write_event_handler = ngx_http_request_empty_handler;

    (*u->cleanup)(sr);
}


void
ngx_http_fanout_sub_account(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub)
{
    ngx_http_fanout_stats_t  *st;

    if (sub->accounted) {
        return;
    }

    sub->accounted = 1;

    if (ctx->conf->breaker && !sub->recorded) {
        /* usually recorded already, with the others, under one lock */
        ngx_http_fanout_breaker_record(ctx, sub);
    }

    st = sub->st;

    if (sub->fallback) {
        /* the target's own call was accounted before the fallback's */
        if (sub->part.kind == FANOUT_OK && !sub->cancelled) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_FALLBACK_OK);
        }

        return;
    }

    /* every path ends here once: answer, timeout, cut-off, client abort */
    if (sub->inflight) {
        sub->inflight = 0;
        (void) ngx_atomic_fetch_add(&st->inflight, -1);
    }

    if (sub->part.cached) {
        /* answered by the per-target cache: no call was made */
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CACHE_HIT);
        return;
    }

    if (ctx->conf->cache && ctx->conf->cache->per_target
        && ctx->target_keys)
    {
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CACHE_MISS);
    }

    ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_REQUESTS);

    if (sub->cancelled) {
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CANCELLED);
        return;
    }

    ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_KIND + sub->part.kind);
    ngx_http_fanout_stats_latency(st, sub->part.latency_ms);
}


/* capture filters: the answers of our subrequests never reach the client */

static ngx_http_fanout_sub_t *
ngx_http_fanout_capturing(ngx_http_request_t *r)
{
    /* post_subrequest survives internal redirects, unlike module ctx */

    if (r == r->main || r->post_subrequest == NULL) {
        return NULL;
    }

    if (r->post_subrequest->handler != ngx_http_fanout_sub_done
        && r->post_subrequest->handler != ngx_http_fanout_shadow_done)
    {
        return NULL;
    }

    /* a shadow's data begins with its ngx_http_fanout_sub_t */
    return r->post_subrequest->data;
}


/*
 * The capture gives up on an answer.  A body filter must not return
 * NGX_ERROR for this: ngx_http_output_filter() would then mark the client's
 * connection as broken.  The rest of the answer is swallowed and the call
 * is cut off from a posted event, outside the upstream's own handlers.
 */

static void
ngx_http_fanout_give_up(ngx_http_request_t *r, ngx_http_fanout_sub_t *sub)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (sub->too_large) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout %s \"%V\" answered more than %uz bytes; "
                      "raise \"subrequest_output_buffer_size\" in location "
                      "\"%V\"", sub->shadow ? "shadow" : "target",
                      &sub->target->name, sub->limit, &clcf->name);
    }

    if (!sub->stop.posted) {
        if (!sub->shadow) {
            /* a shadow's is ngx_http_fanout_shadow_stop(), set beforehand */
            sub->stop.handler = ngx_http_fanout_sub_stop;
            sub->stop.data = sub;
            sub->stop.log = r->connection->log;
        }

        ngx_post_event(&sub->stop, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_http_fanout_header_filter(ngx_http_request_t *r)
{
    ngx_http_fanout_sub_t       *sub;
    ngx_http_core_loc_conf_t    *clcf;

    sub = ngx_http_fanout_capturing(r);

    if (sub == NULL) {
        return ngx_http_next_header_filter(r);
    }

    r->header_sent = 1;

    if (sub->done || sub->sr != r) {
        return NGX_OK;
    }

    sub->header = 1;
    sub->last_read = ngx_current_msec;
    sub->part.status = (int) r->headers_out.status;
    sub->content_type = r->headers_out.content_type;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    sub->limit = clcf->subrequest_output_buffer_size;

    if (r->headers_out.content_length_n > (off_t) sub->limit) {
        sub->too_large = 1;
        ngx_http_fanout_give_up(r, sub);
        return NGX_OK;
    }

    /*
     * A buffering upstream holds a background subrequest's answer until
     * its end, spilling to temp files: take it as it comes instead, as
     * "X-Accel-Buffering: no" does, unless the location caches it.
     */

    if (r->upstream && !r->upstream->cacheable && !r->upstream->store) {
        r->upstream->buffering = 0;
    }

    if (r->upstream && r->upstream->finalize_request
        && r->upstream->finalize_request != ngx_http_fanout_upstream_finalize)
    {
        sub->upstream_finalize = r->upstream->finalize_request;
        r->upstream->finalize_request = ngx_http_fanout_upstream_finalize;
    }

    return NGX_OK;
}


/*
 * How the upstream ended the call: nginx finalizes a subrequest whose
 * header is out with 0 whatever happened, so a read timeout after part of
 * the body would look like any other cut.  The upstream modules' own
 * finalizers (proxy, fastcgi, grpc...) only log; they still run.
 */

static void
ngx_http_fanout_upstream_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_fanout_sub_t  *sub;

    sub = ngx_http_fanout_capturing(r);

    if (sub == NULL || sub->upstream_finalize == NULL) {
        return;
    }

    if (sub->sr == r) {
        sub->upstream_rc = rc;
    }

    sub->upstream_finalize(r, rc);
}


static ngx_int_t
ngx_http_fanout_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                   size;
    u_char                 *p;
    size_t                  cap;
    ssize_t                 n;
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_http_fanout_sub_t  *sub;

    sub = ngx_http_fanout_capturing(r);

    if (sub == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (sub->sr == r && !sub->done) {
            /* only the end of the answer says it is whole */
            if (b->last_buf || b->last_in_chain) {
                sub->complete = 1;
            }

            if (size) {
                /* not the flush that ends a broken answer */
                sub->last_read = ngx_current_msec;
            }
        }

        if (size == 0 || sub->done || sub->sr != r || sub->too_large
            || sub->broken)
        {
            /* consumed: let the upstream reuse its buffers */
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if ((off_t) (sub->limit - sub->len) < size) {
            sub->too_large = 1;
            ngx_http_fanout_give_up(r, sub);
            b->pos = b->last;
            b->file_pos = b->file_last;
            continue;
        }

        if (sub->len + size > sub->cap) {
            cap = ngx_max(sub->cap * 2, 4096);

            if (r->headers_out.content_length_n > 0) {
                cap = ngx_max(cap, (size_t) r->headers_out.content_length_n);
            }

            cap = ngx_max(cap, sub->len + (size_t) size);
            cap = ngx_min(cap, sub->limit);

            p = ngx_pnalloc(r->pool, cap);
            if (p == NULL) {
                sub->broken = 1;
                ngx_http_fanout_give_up(r, sub);
                b->pos = b->last;
                b->file_pos = b->file_last;
                continue;
            }

            if (sub->len) {
                ngx_memcpy(p, sub->buf, sub->len);
            }

            if (sub->buf) {
                ngx_pfree(r->pool, sub->buf);
            }

            sub->buf = p;
            sub->cap = cap;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(sub->buf + sub->len, b->pos, (size_t) size);
            b->pos = b->last;

        } else {
            /* the upstream spilled to a temp file */
            n = ngx_read_file(b->file, sub->buf + sub->len, (size_t) size,
                              b->file_pos);

            if (n != (ssize_t) size) {
                sub->broken = 1;
                ngx_http_fanout_give_up(r, sub);
                b->file_pos = b->file_last;
                continue;
            }

            b->file_pos = b->file_last;
        }

        sub->len += (size_t) size;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_fanout_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_fanout_body_filter;

    return NGX_OK;
}
