/*
 * The content handler of fan-out locations: the request's state (its
 * ctx), the stages of the request itself (its body, its counters), and
 * what a request that ends early leaves to clean.  The stages run from
 * the pipeline (ngx_http_fanout_pipeline.c); DESIGN.md has the sequence.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_handler.h"
#include "ngx_http_fanout_limit.h"
#include "ngx_http_fanout_health.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_shadow.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"


static void ngx_http_fanout_body_handler(ngx_http_request_t *r);
static void ngx_http_fanout_finish(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status);
static void ngx_http_fanout_cleanup(void *data);


ngx_int_t
ngx_http_fanout_handler(ngx_http_request_t *r)
{
    ngx_http_cleanup_t          *cln;
    ngx_http_fanout_ctx_t       *ctx;
    ngx_http_fanout_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fanout_module);

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanout location \"%V\" cannot serve a subrequest",
                      &flcf->location);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fanout_stats_count(ngx_http_fanout_stats_location(r, flcf),
                                NGX_HTTP_FANOUT_LOC_REQUESTS);

    /* draining: answer, then let the client reconnect elsewhere */
    if (ngx_http_fanout_draining(ngx_http_get_module_main_conf(r,
                                     ngx_http_fanout_module)))
    {
        r->keepalive = 0;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = flcf;
    ctx->variant = -1;
    ctx->start = ngx_current_msec;    /* again once the body is read */

    ngx_http_set_ctx(r, ctx, ngx_http_fanout_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fanout_cleanup;
    cln->data = ctx;

    if ((flcf->trace || flcf->request_id != NGX_HTTP_FANOUT_RID_OFF)
        && ngx_http_fanout_trace_start(ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanout_pipeline(ctx);
}


/* after the limits (a rejected request reads no body), before the cache */

ngx_int_t
ngx_http_fanout_body_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    /* every target sends the same body, from memory or the temp file */
    r->preserve_body = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_fanout_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* nginx's own error page, made JSON by the response filter */
        return rc;
    }

    /*
     * The body handler goes on, maybe already done.  The reference nginx
     * took for the body is the pipeline's to hold while it waits.
     */
    r->main->count--;

    return NGX_AGAIN;
}


static void
ngx_http_fanout_body_handler(ngx_http_request_t *r)
{
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx == NULL || ctx->started) {
        return;
    }

    ctx->started = 1;
    ctx->start = ngx_current_msec;

    /* notice a client that goes away while Redis or the targets work */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_fanout_next(ctx, NGX_DECLINED);
}


/*
 * Every request is counted once, by how it ended: the fan-out's status
 * (also when a stale entry answered in its place), or the status it was
 * answered or refused with early (a cache hit, a limit, a bad body).
 */

ngx_int_t
ngx_http_fanout_log_stage(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t  status;

    if (ctx->finished) {
        return NGX_DECLINED;
    }

    status = ctx->status;

    if (status == 0) {
        status = (ctx->rc >= NGX_HTTP_SPECIAL_RESPONSE)
                 ? (ngx_uint_t) ctx->rc
                 : ctx->request->headers_out.status;
    }

    ngx_http_fanout_finish(ctx, status);

    return NGX_DECLINED;
}


static void
ngx_http_fanout_finish(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status)
{
    ngx_msec_t                   first, t;
    ngx_uint_t                   i, counter, got;
    ngx_http_fanout_call_t      *sub;
    ngx_http_fanout_stats_t     *st;
    ngx_http_fanout_attempt_t   *a;

    ctx->finished = 1;
    ctx->latency = ngx_current_msec - ctx->start;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_fanout_calls_tell(ctx);

    /* token budgets: settled before the answer goes out */
    ngx_http_fanout_limit_settle_now(ctx);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->part.kind == FANOUT_OK) {
            ctx->ok++;

        } else if (!sub->cancelled) {
            ctx->failed++;
        }

        if (sub->fallback) {
            ctx->fallbacks++;
        }

        ngx_http_fanout_sub_account(ctx, sub);
    }

    st = ngx_http_fanout_stats_location(ctx->request, ctx->conf);

    switch (status) {
    case NGX_HTTP_OK:
        counter = NGX_HTTP_FANOUT_LOC_200;
        break;
    case NGX_HTTP_BAD_GATEWAY:
        counter = NGX_HTTP_FANOUT_LOC_502;
        break;
    case NGX_HTTP_GATEWAY_TIME_OUT:
        counter = NGX_HTTP_FANOUT_LOC_504;
        break;
    default:
        counter = NGX_HTTP_FANOUT_LOC_REJECTED;
    }

    ngx_http_fanout_stats_count(st, counter);
    ngx_http_fanout_stats_latency(st, ctx->latency);

    /* the same, per fanout_split variant, with its targets' outcomes */
    st = ngx_http_fanout_split_stats(ctx);

    if (st == NULL) {
        return;
    }

    switch (status) {
    case NGX_HTTP_OK:
        counter = NGX_HTTP_FANOUT_VAR_200;
        break;
    case NGX_HTTP_BAD_GATEWAY:
        counter = NGX_HTTP_FANOUT_VAR_502;
        break;
    case NGX_HTTP_GATEWAY_TIME_OUT:
        counter = NGX_HTTP_FANOUT_VAR_504;
        break;
    default:
        counter = NGX_HTTP_FANOUT_VAR_OTHER;
    }

    ngx_http_fanout_stats_count(st, counter);
    ngx_http_fanout_stats_latency(st, ctx->latency);

    /*
     * The request's first answer bytes: the earliest of any of its calls'
     * attempts answering 2xx (a stream's first event, a JSON answer's
     * first bytes; an error's body is no token), for the variant's
     * first_chunk_ms and a ramp's ttft_p99.  None when no model was
     * called (a cache hit) or none answered 2xx.
     */
    first = 0;
    got = 0;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (!sub->cancelled && !sub->part.cached) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_VAR_KIND
                                            + sub->part.kind);
        }

        for (a = &sub->first; a; a = a->next) {
            if (!a->got_first || a->status < 200 || a->status > 299) {
                continue;
            }

            t = (a->start >= ctx->start ? a->start - ctx->start : 0)
                + a->first;

            if (!got || t < first) {
                first = t;
                got = 1;
            }
        }
    }

    if (got) {
        ngx_http_fanout_stats_histogram(st, NGX_HTTP_FANOUT_VAR_FIRST_MS,
                                        NGX_HTTP_FANOUT_VAR_FIRST,
                                        ngx_http_fanout_buckets,
                                        NGX_HTTP_FANOUT_NBUCKETS, first);
    }
}


static void
ngx_http_fanout_cleanup(void *data)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_uint_t                  i;
    ngx_http_fanout_call_t     *sub;
    ngx_http_fanout_stats_t    *st;
    ngx_http_fanout_attempt_t  *a;

    if (ctx->nshadows) {
        /* gone before its answer: the shadows have nothing to compare */
        ngx_http_fanout_shadow_answer(ctx, 0, NULL, 0);
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        ngx_http_fanout_call_stop_timers(sub);

        for (a = &sub->first; a; a = a->next) {
            ngx_http_fanout_attempt_forget(a);
        }
    }

    if (!ctx->finished) {
        /*
         * The client went away: mid fan-out (nginx ends the subrequests
         * itself), or before it, while its body was uploading or Redis
         * was asked.  Every request the status counts ends in one outcome.
         */
        for (i = 0; i < ctx->nsubs; i++) {
            sub = &ctx->subs[i];

            if (!sub->done) {
                sub->cancelled = 1;
            }
        }

        ctx->finished = 1;
        ctx->latency = ngx_current_msec - ctx->start;

        ngx_http_fanout_stats_count(
            ngx_http_fanout_stats_location(ctx->request, ctx->conf),
            NGX_HTTP_FANOUT_LOC_ABORTED);

        st = ngx_http_fanout_split_stats(ctx);

        if (st) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_VAR_OTHER);
        }

        for (i = 0; i < ctx->nsubs; i++) {
            ngx_http_fanout_sub_account(ctx, &ctx->subs[i]);
        }
    }
}
