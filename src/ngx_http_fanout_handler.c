/*
 * The request state machine: read the body, fan out, wait for the answers
 * or the deadline, merge, answer, and cut off whatever is still running.
 */

#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_redis.h"
#include "ngx_http_fanout_cache.h"


static ngx_int_t ngx_http_fanout_read_body(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_body_handler(ngx_http_request_t *r);
static void ngx_http_fanout_deadline_handler(ngx_event_t *ev);
static void ngx_http_fanout_respond(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_respond_first(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub);
static void ngx_http_fanout_finish(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status);
static void ngx_http_fanout_cleanup(void *data);
static void ngx_http_fanout_answered(ngx_http_fanout_ctx_t *ctx);




ngx_int_t
ngx_http_fanout_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
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

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = flcf;
    ctx->variant = -1;
    ctx->start = ngx_current_msec;    /* again once the body is read */

    ngx_http_set_ctx(r, ctx, ngx_http_fanout_module);

    /* the variant first: X-Fanout-Variant goes with every answer */
    if (flcf->split && ngx_http_fanout_split_choose(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fanout_cleanup;
    cln->data = ctx;

    /* rate limits first: a rejected request reads no body */
    if (flcf->limits) {
        rc = ngx_http_fanout_limit_check(ctx);

        if (rc == NGX_AGAIN) {
            /* Redis answers for a cluster limit: limit_resume() goes on */
            r->main->count++;
            return NGX_DONE;
        }

        if (rc != NGX_DECLINED) {
            ctx->finished = 1;
            return rc;
        }
    }

    return ngx_http_fanout_read_body(ctx);
}


static ngx_int_t
ngx_http_fanout_read_body(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    /* every target sends the same body, from memory or the temp file */
    r->preserve_body = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_fanout_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* nginx's own error page, made JSON by the header filter */
        ctx->finished = 1;
        return rc;
    }

    return NGX_DONE;
}


/*
 * Redis answered a cluster limit: carry on as the content phase would
 * have with the handler's result (the handler's extra reference to the
 * request is what keeps it until now).
 */

void
ngx_http_fanout_limit_resume(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    if (rc == NGX_DECLINED) {
        rc = ngx_http_fanout_read_body(ctx);

    } else {
        ctx->finished = 1;
    }

    ngx_http_finalize_request(r, rc);

    ngx_http_run_posted_requests(c);
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

    if (ctx->conf->cache && ngx_http_fanout_cache_lookup(ctx) == NGX_OK) {
        /* the reply answers, or calls ngx_http_fanout_begin() */
        return;
    }

    ngx_http_fanout_begin(ctx);
}


void
ngx_http_fanout_begin(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    r->write_event_handler = ngx_http_fanout_wake;

    if (ngx_http_fanout_start(ctx) != NGX_OK) {
        ngx_http_fanout_cancel(ctx);
        ngx_http_fanout_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        rc = ngx_http_fanout_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal", "the fan-out could not "
                                        "be started");
        ngx_http_fanout_answered(ctx);
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->deadline.handler = ngx_http_fanout_deadline_handler;
    ctx->deadline.data = ctx;
    ctx->deadline.log = r->connection->log;

    ngx_add_timer(&ctx->deadline, ctx->conf->timeout);
}


/* runs as the main request's write handler, posted by each finished target */

void
ngx_http_fanout_wake(ngx_http_request_t *r)
{
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx == NULL || ctx->finished) {
        return;
    }

    if (ctx->winner) {
        ngx_http_fanout_respond_first(ctx, ctx->winner);
        return;
    }

    ngx_http_fanout_fallbacks(ctx);

    if (ctx->pending == 0) {
        ngx_http_fanout_respond(ctx);
    }
}


static void
ngx_http_fanout_deadline_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "fanout deadline");

    ngx_http_fanout_respond(ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_fanout_respond(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t             rc;
    ngx_str_t             type, target;
    ngx_uint_t            i;
    fanout_out_t          out;
    fanout_part_t        *parts;
    fanout_merged_t       merged;
    ngx_http_request_t   *r;
    fanout_merge_conf_t   mc;

    r = ctx->request;

    /* whatever is still running missed the deadline */
    ngx_http_fanout_cancel(ctx);

    parts = ngx_palloc(r->pool, ctx->nsubs * sizeof(fanout_part_t));
    if (parts == NULL) {
        goto failed;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        parts[i] = ctx->subs[i].part;
    }

    mc.mode = (fanout_merge_mode_e) ctx->conf->merge;
    mc.field = (const char *) ctx->conf->field.data;
    mc.field_len = ctx->conf->field.len;
    mc.quorum = (unsigned) ctx->conf->quorum;
    mc.cache_meta = (ctx->target_keys != NULL);

    if (fanout_merge_prepare(&mc, parts, ctx->nsubs, &merged) != 0) {
        goto failed;
    }

    /* mean and vote may have turned answers into bad_field */
    for (i = 0; i < ctx->nsubs; i++) {
        ctx->subs[i].part.kind = parts[i].kind;
    }

    /* one pass to size the answer, one to write it */
    out.buf = NULL;
    out.len = 0;
    fanout_merge_write(&mc, parts, ctx->nsubs, &merged, &out);

    if (out.len > NGX_HTTP_FANOUT_LONG_WORK) {
        /* a mean over megabytes takes milliseconds: timers measure from now */
        ngx_time_update();
    }

    out.buf = ngx_pnalloc(r->pool, out.len);
    if (out.buf == NULL) {
        fanout_merged_free(&merged);
        goto failed;
    }

    out.len = 0;
    fanout_merge_write(&mc, parts, ctx->nsubs, &merged, &out);

    ctx->status = (ngx_uint_t) merged.status;
    fanout_merged_free(&merged);

    ngx_http_fanout_finish(ctx, ctx->status);

    type = ngx_http_fanout_json_type;

    if (ctx->status != NGX_HTTP_OK
        && ngx_http_fanout_cache_serve_stale(ctx, &rc) == NGX_OK)
    {
        /* not stored, but whoever waits on this fan-out is let go */
        ngx_str_null(&target);
        ngx_http_fanout_cache_store(ctx, ctx->status, &type, &target, NULL,
                                    0);
        ngx_http_fanout_cache_hand_over(ctx, ctx->status, &type, &target,
                                        NULL, 0);
        ngx_http_fanout_answered(ctx);
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = ngx_http_fanout_send(r, ctx->status, &type, (u_char *) out.buf,
                              out.len);

    /* the answer is out, so the store never delays it; finalizing may free
     * the request, so it comes last */
    ngx_str_null(&target);
    ngx_http_fanout_cache_store(ctx, ctx->status, &type, &target,
                                (u_char *) out.buf, out.len);
    ngx_http_fanout_cache_hand_over(ctx, ctx->status, &type, &target,
                                    (u_char *) out.buf, out.len);
    ngx_http_fanout_answered(ctx);

    ngx_http_finalize_request(r, rc);
    return;

failed:

    ngx_http_fanout_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "fanout: could not build the merged answer");

    rc = ngx_http_fanout_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "internal", "the answer could not be "
                                    "built");
    ngx_http_fanout_answered(ctx);
    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_fanout_respond_first(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_sub_t *sub)
{
    ngx_int_t         rc;
    ngx_str_t        *type;
    ngx_table_elt_t  *h;

    /* the race is won: the other targets are not needed any more */
    ngx_http_fanout_cancel(ctx);
    ngx_http_fanout_finish(ctx, NGX_HTTP_OK);

    type = sub->content_type.len ? &sub->content_type
                                 : &ngx_http_fanout_json_type;

    if (sub->fallback) {
        /* the body is the fallback's, as is: the header says so */
        h = ngx_list_push(&ctx->request->headers_out.headers);
        if (h) {
            h->hash = 1;
            ngx_str_set(&h->key, "X-Fanout-Fallback");
            ngx_str_set(&h->value, "true");
        }
    }

    rc = ngx_http_fanout_send_as_is(ctx, sub->part.status, type,
                                    &sub->target->name,
                                    (u_char *) sub->part.body,
                                    sub->part.body_len);

    ngx_http_fanout_cache_store(ctx, sub->part.status, type,
                                &sub->target->name, (u_char *) sub->part.body,
                                sub->part.body_len);
    ngx_http_fanout_cache_hand_over(ctx, sub->part.status, type,
                                    &sub->target->name,
                                    (u_char *) sub->part.body,
                                    sub->part.body_len);
    ngx_http_fanout_answered(ctx);

    ngx_http_finalize_request(ctx->request, rc);
}


/* after the answer: the shadows compare theirs with what the client got */

static void
ngx_http_fanout_answered(ngx_http_fanout_ctx_t *ctx)
{
    if (ctx->nshadows && ctx->answer.sent) {
        ngx_http_fanout_shadow_answer(ctx, ctx->answer.status,
                                      ctx->answer.body, ctx->answer.len);
    }
}


/* bookkeeping once the answer is decided */

static void
ngx_http_fanout_finish(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status)
{
    ngx_uint_t                i, counter;
    ngx_http_fanout_sub_t    *sub;
    ngx_http_fanout_stats_t  *st;

    ctx->finished = 1;
    ctx->latency = ngx_current_msec - ctx->start;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (ctx->conf->breaker) {
        ngx_http_fanout_breaker_record_all(ctx);
    }

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

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (!sub->cancelled && !sub->part.cached) {
            ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_VAR_KIND
                                            + sub->part.kind);
        }
    }
}


static void
ngx_http_fanout_cleanup(void *data)
{
    ngx_http_fanout_ctx_t *ctx = data;

    ngx_uint_t                i;
    ngx_http_fanout_sub_t    *sub;
    ngx_http_fanout_stats_t  *st;

    if (ctx->nshadows) {
        /* gone before its answer: the shadows have nothing to compare */
        ngx_http_fanout_shadow_answer(ctx, 0, NULL, 0);
    }

    if (ctx->limit_op) {
        ngx_http_fanout_redis_cancel(ctx->limit_op);
        ctx->limit_op = NULL;
    }

    if (ctx->cache_op) {
        /* the request ends before Redis answers: the reply is dropped */
        ngx_http_fanout_redis_cancel(ctx->cache_op);
        ctx->cache_op = NULL;
    }

    if (ctx->cache_wait.timer_set) {
        ngx_del_timer(&ctx->cache_wait);
    }

    ngx_http_fanout_cache_unlock(ctx);
    ngx_http_fanout_cache_leave(ctx);

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->timer.timer_set) {
            ngx_del_timer(&sub->timer);
        }

        if (sub->stop.posted) {
            ngx_delete_posted_event(&sub->stop);
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
