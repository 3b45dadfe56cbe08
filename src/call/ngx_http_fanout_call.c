/*
 * The calls stage: one call per target of the request's variant, each
 * owning its attempts (the target's own, then its fallback), under the
 * target's timeout= and the fan-out's deadline; its outcome is taken from
 * the attempt that decided it.  Attempts and their capture are in
 * ngx_http_fanout_capture.c; the rules in src/core/fanout_call.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_admission.h"
#include "ngx_http_fanout_batcher.h"
#include "ngx_http_fanout_breaker.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_calllog.h"
#include "ngx_http_fanout_capture.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_split.h"
#include "ngx_http_fanout_stats.h"
#include "ngx_http_fanout_trace.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_body.h"
#include "ngx_http_fanout_limit.h"
#include "fanout_tokens.h"


/*
 * Was the call made, or did it end (a breaker's refusal, a timeout)?  Not
 * when the cache answered the request (level=response), a purge, or a
 * client gone before the fan-out: such a call tells no counter and no
 * breaker anything.
 */
#define ngx_http_fanout_call_made(sub)                                        \
    ((sub)->attempt != NULL || (sub)->done)


static void ngx_http_fanout_call_ended(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_call_chunk(ngx_http_fanout_attempt_t *a,
    ngx_msec_t gap);
static void ngx_http_fanout_call_stopped(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_attempt_init(ngx_http_fanout_call_t *sub,
    ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_deadline_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_fanout_call_retry(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_call_again(ngx_event_t *ev);
static ngx_int_t ngx_http_fanout_call_later(ngx_http_fanout_call_t *sub,
    ngx_event_handler_pt handler);
static void ngx_http_fanout_sub_end(ngx_http_fanout_call_t *sub,
    fanout_kind_e kind, int status);
static void ngx_http_fanout_fallbacks(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_sub_timeout(ngx_event_t *ev);
static ngx_msec_t ngx_http_fanout_call_left(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static ngx_uint_t ngx_http_fanout_call_too_late(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_msec_t wait, ngx_msec_t *p50);
static ngx_list_t *ngx_http_fanout_call_deadline(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_list_t *headers);
static ngx_int_t ngx_http_fanout_call(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a, ngx_str_t *uri,
    ngx_str_t *args);
static void ngx_http_fanout_call_cut(ngx_http_fanout_call_t *sub,
    const char *why);
static void ngx_http_fanout_call_over(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_call_end(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_hedge_arm(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_call_hedge(ngx_event_t *ev);
static ngx_int_t ngx_http_fanout_call_streamed(ngx_http_fanout_attempt_t *a);
static void ngx_http_fanout_cut_others(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *winner);
static void ngx_http_fanout_fallback(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_start_calls(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_subs_init(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_call_go(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static ngx_int_t ngx_http_fanout_call_admit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_call_admitted(void *data,
    fanout_queue_reason_e reason);
static void ngx_http_fanout_calls_ask(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t from, ngx_uint_t to);
static ngx_int_t ngx_http_fanout_call_ask_again(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_call_tell(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);
static void ngx_http_fanout_item_won(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);




/*
 * The targets' stage, before the cache: the request's calls planned (its
 * variant's targets, those fanout_api has not taken out, for each item of
 * a batch), none made; the cache marks the ones it answers.
 */

ngx_int_t
ngx_http_fanout_targets_stage(ngx_http_fanout_ctx_t *ctx)
{
    if (ngx_http_fanout_subs_init(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->conf->bodies) {
        /* set=: each call's own body, before the cache keys it */
        return ngx_http_fanout_body_make(ctx);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_fanout_subs_init(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                 i, k, n, ncalls;
    ngx_http_fanout_call_t     *sub;
    ngx_http_fanout_stats_t   *st;
    ngx_http_fanout_target_t  *targets;

    if (ctx->subs) {
        return NGX_OK;
    }

    targets = ctx->conf->targets->elts;

    /* fanout_batch: every target for each item, the item's calls together */
    ncalls = ctx->batch ? ctx->batch->ncalls : 1;

    ctx->subs = ngx_pcalloc(ctx->request->pool,
                            ncalls * ctx->conf->targets->nelts
                            * sizeof(ngx_http_fanout_call_t));
    if (ctx->subs == NULL) {
        return NGX_ERROR;
    }

    /* the targets of this request: untagged ones, and its variant's */

    for (i = 0; i < ctx->conf->targets->nelts; i++) {
        if (!ngx_http_fanout_split_runs(ctx, &targets[i])) {
            continue;
        }

        st = ngx_http_fanout_stats_target(ctx->request, ctx->conf,
                                          &targets[i]);

        if (st->rt.disabled) {
            /* taken out by fanout_api: as if not configured */
            continue;
        }

        sub = &ctx->subs[ctx->nsubs++];

        sub->ctx = ctx;
        sub->target = &targets[i];
        sub->st = st;
        sub->bst = ngx_http_fanout_stats_breaker(ctx->request, ctx->conf,
                                                 &targets[i]);
        sub->part.name = (const char *) targets[i].name.data;
        sub->part.weight = (double) targets[i].weight
                           / NGX_HTTP_FANOUT_WEIGHT_ONE;
    }

    n = ctx->nsubs;

    if (ctx->batch) {
        ctx->batch->ntargets = n;

        for (k = 1; k < ncalls; k++) {
            ngx_memcpy(&ctx->subs[k * n], ctx->subs,
                       n * sizeof(ngx_http_fanout_call_t));
        }

        ctx->nsubs = ncalls * n;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        ngx_http_fanout_attempt_init(&ctx->subs[i], &ctx->subs[i].first);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanout_start(ngx_http_fanout_ctx_t *ctx)
{
    ngx_http_request_t  *r;

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

    ngx_http_fanout_start_calls(ctx);

    return NGX_OK;
}


/* the target's call made: its first attempt, a hedge armed */

static ngx_int_t
ngx_http_fanout_call_go(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    sub->nattempts = 1;

    if (ngx_http_fanout_call(ctx, sub, &sub->first, &sub->target->uri,
                             &sub->target->args)
        != NGX_OK)
    {
        sub->done = 1;
        sub->part.kind = FANOUT_UPSTREAM_ERROR;
        sub->part.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    if (ctx->conf->hedge && sub->verdict != FANOUT_BREAKER_PROBE) {
        /* a half-open breaker's probe is never doubled */
        ngx_http_fanout_hedge_arm(ctx, sub);
    }

    return NGX_OK;
}


/*
 * max_inflight=: a slot now (NGX_OK), a wait in the target's queue
 * (NGX_AGAIN: call_admitted() hears how it ended) or none (NGX_DECLINED).
 */

static ngx_int_t
ngx_http_fanout_call_admit(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_int_t                        n;
    ngx_str_t                        v;
    ngx_msec_t                       elapsed;
    ngx_http_fanout_target_t        *t;
    fanout_queue_reason_e            reason;
    ngx_http_fanout_admission_ask_t  ask;

    t = sub->target;

    ask.target = t;
    ask.st = sub->st;
    ask.priority = 0;
    ask.key = 0;
    ask.handler = ngx_http_fanout_call_admitted;
    ask.data = sub;

    elapsed = ngx_current_msec - ctx->start;
    ask.left = (ctx->conf->timeout > elapsed) ? ctx->conf->timeout - elapsed
                                              : 0;

    /* priority=: a number, lower first; anything else after every number */
    if (t->priority) {
        if (ngx_http_complex_value(ctx->request, t->priority, &v) != NGX_OK) {
            return NGX_ERROR;
        }

        n = ngx_atoi(v.data, v.len);
        ask.priority = (n == NGX_ERROR || n > NGX_MAX_INT32_VALUE)
                       ? NGX_MAX_UINT32_VALUE : (ngx_uint_t) n;
    }

    /* fair=: callers of one value take turns with those of another */
    if (t->fair) {
        if (ngx_http_complex_value(ctx->request, t->fair, &v) != NGX_OK) {
            return NGX_ERROR;
        }

        ask.key = ngx_crc32_short(v.data, v.len);
    }

    return ngx_http_fanout_admission_ask(ctx->request, &ask, &sub->wait,
                                         &reason);
}


/* a wait in the queue is over: the call goes, or is shed as overloaded */

static void
ngx_http_fanout_call_admitted(void *data, fanout_queue_reason_e reason)
{
    ngx_http_fanout_call_t *sub = data;

    ngx_connection_t       *c;
    ngx_http_fanout_ctx_t  *ctx;

    ctx = sub->ctx;
    c = ctx->request->connection;
    sub->wait = NULL;

    if (sub->done || ctx->finished) {
        if (reason == FANOUT_QUEUE_OK) {
            ngx_http_fanout_admission_release(sub->target, sub->st);
        }

        return;
    }

    ngx_http_set_log_request(c->log, ctx->request);

    if (reason == FANOUT_QUEUE_OK) {
        sub->inflight = 1;

        if (ngx_http_fanout_call_go(ctx, sub) == NGX_OK) {
            /* the subrequest was posted: it runs now */
            ngx_http_run_posted_requests(c);
            return;
        }

    } else {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "fanout target \"%V\" overloaded: shed from its queue "
                      "(%s)", &sub->target->name,
                      fanout_queue_reason_name(reason));

        sub->done = 1;
        sub->part.kind = FANOUT_OVERLOADED;
        sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ctx->pending--;
    ngx_http_fanout_fallback(ctx, sub);

    /* the pipeline looks again, and runs what was posted */
    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


/*
 * Starts the calls not yet started: all of them, or with fanout_batch
 * concurrency= as many as keep that many running, in the items' order;
 * the calls stage starts more as they end.
 */

static void
ngx_http_fanout_start_calls(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i, from, to, room, limit;
    ngx_http_fanout_main_conf_t  *fmcf;
    ngx_http_fanout_call_t       *sub;

    limit = ctx->batch ? ctx->conf->batch->concurrency : 0;

    while (ctx->next_call < ctx->nsubs
           && (limit == 0 || ctx->pending < limit))
    {
        from = ctx->next_call;
        to = ctx->nsubs;

        if (limit) {
            /* the next calls that will run: cached ones take no room */
            room = limit - ctx->pending;

            for (to = from; to < ctx->nsubs && room; to++) {
                if (!ctx->subs[to].done) {
                    room--;
                }
            }
        }

        ctx->next_call = to;

        /* open circuits: those targets are not called at all */
        ngx_http_fanout_calls_ask(ctx, from, to);

        for (i = from; i < to; i++) {
            sub = &ctx->subs[i];

            if (ctx->batch && ctx->conf->merge == FANOUT_MERGE_FIRST
                && !sub->done)
            {
                /* a batch's "first": its item may have its answer */
                ngx_http_fanout_item_won(ctx, sub);
            }

            if (sub->done || ctx->winner) {
                /* answered from the per-target cache, or "first" has won */
                if (sub->part.kind == FANOUT_CIRCUIT_OPEN) {
                    ngx_http_fanout_fallback(ctx, sub);
                }

                continue;
            }

            if (sub->target->max_inflight) {
                /* a slot across all workers, given back in call_over() or
                 * sub_account(); with queue=, maybe after a wait */
                rc = ngx_http_fanout_call_admit(ctx, sub);

                if (rc == NGX_AGAIN) {
                    /* it waits: the calls stage waits for it too */
                    ctx->pending++;
                    continue;
                }

                if (rc != NGX_OK) {
                    sub->done = 1;
                    sub->part.kind = FANOUT_OVERLOADED;
                    sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;

                    ngx_http_fanout_fallback(ctx, sub);
                    continue;
                }

                sub->inflight = 1;
            }

            if (ngx_http_fanout_call_go(ctx, sub) == NGX_OK) {
                ctx->pending++;
            }
        }

        if (ctx->conf->retry || ctx->conf->hedge) {
            /* the calls made, which the budget of extra attempts shares */
            fmcf = ngx_http_get_module_main_conf(ctx->request,
                                                 ngx_http_fanout_module);

            ngx_shmtx_lock(&fmcf->shpool->mutex);

            for (i = from; i < to; i++) {
                if (ctx->subs[i].attempt == &ctx->subs[i].first
                    && ctx->subs[i].first.live)
                {
                    fanout_budget_call(&ctx->subs[i].st->budget,
                                       ngx_current_msec);
                }
            }

            ngx_shmtx_unlock(&fmcf->shpool->mutex);
        }
    }
}


/*
 * A batch's "first": once a call of an item has a good answer (or had it
 * from the cache), the item's other calls are not needed: those running
 * are cut off, those not started never are.  sub is one of the item's.
 */

static void
ngx_http_fanout_item_won(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_uint_t               i, first, n;
    ngx_http_fanout_call_t  *other, *winner;

    n = ctx->batch->ntargets;
    first = (sub - ctx->subs) / n * n;
    winner = NULL;

    for (i = first; i < first + n; i++) {
        other = &ctx->subs[i];

        if (other->done && !other->cancelled
            && other->part.kind == FANOUT_OK)
        {
            winner = other;
            break;
        }
    }

    if (winner == NULL) {
        return;
    }

    for (i = first; i < first + n; i++) {
        other = &ctx->subs[i];

        if (other == winner || other->done) {
            continue;
        }

        if (other->attempt) {
            /* started: it holds a place among the pending ones */
            ctx->pending--;
        }

        ngx_http_fanout_call_stop_timers(other);

        other->done = 1;
        other->cancelled = 1;
        other->part.latency_ms = other->attempt
                                 ? ngx_current_msec - other->attempt->start
                                 : 0;

        ngx_http_fanout_call_cut(other, "cancelled");
    }
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

        /* before the calls start: each attempt is told the time it has */
        ctx->deadline.handler = ngx_http_fanout_deadline_handler;
        ctx->deadline.data = ctx;
        ctx->deadline.log = r->connection->log;

        ngx_add_timer(&ctx->deadline, ctx->conf->timeout);

        if (ngx_http_fanout_start(ctx) != NGX_OK) {
            ngx_http_fanout_cancel(ctx);
            ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return ngx_http_fanout_send_error(r,
                                              NGX_HTTP_INTERNAL_SERVER_ERROR,
                                              "internal", "the fan-out could "
                                              "not be started");
        }
    }

    if (ctx->winner && ctx->winner->streaming) {
        /* the winner streams to its end (or breaks): the others stop now */
        ngx_http_fanout_cut_others(ctx, ctx->winner);
        return ctx->winner->done ? NGX_DECLINED : NGX_AGAIN;
    }

    if (ctx->winner || ctx->deadline_passed) {
        return NGX_DECLINED;
    }

    ngx_http_fanout_fallbacks(ctx);

    if (ctx->next_call < ctx->nsubs) {
        /* fanout_batch concurrency=: calls ended, others take their place */
        ngx_http_fanout_start_calls(ctx);
    }

    /* nothing (more) to wait for: all answered, cached or not started */
    return (ctx->pending == 0 && ctx->next_call == ctx->nsubs)
           ? NGX_DECLINED : NGX_AGAIN;
}


static void
ngx_http_fanout_deadline_handler(ngx_event_t *ev)
{
    ngx_http_fanout_ctx_t *ctx = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "fanout deadline");

    ctx->deadline_passed = 1;

    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


/* an attempt of a call: the owner's callbacks */

static void
ngx_http_fanout_attempt_init(ngx_http_fanout_call_t *sub,
    ngx_http_fanout_attempt_t *a)
{
    a->owner = sub;
    a->ended = ngx_http_fanout_call_ended;
    a->stopped = ngx_http_fanout_call_stopped;
    a->chunk = ngx_http_fanout_call_chunk;
    a->name = &sub->target->name;
    a->what = "target";

    if (sub->ctx->conf->merge == FANOUT_MERGE_FIRST && !sub->ctx->batch) {
        /* "first": an answer that is not JSON wins by its first bytes */
        a->stream = 1;
        a->streamed = ngx_http_fanout_call_streamed;
        a->sink = sub->ctx->request;
    }
}


/*
 * A stream's first bytes ("first", a 2xx that is not JSON): the race is
 * won, if nobody won it before.  The fan-out's deadline and the target's
 * timeout= bounded the time to them; proxy_read_timeout bounds the rest.
 * The header goes out now; the other calls are cut off by the calls
 * stage, not from inside this filter.
 */

static ngx_int_t
ngx_http_fanout_call_streamed(ngx_http_fanout_attempt_t *a)
{
    ngx_int_t                rc;
    ngx_table_elt_t         *h;
    ngx_http_fanout_ctx_t   *ctx;
    ngx_http_fanout_call_t  *sub;

    sub = a->owner;
    ctx = sub->ctx;

    if (ctx->winner || ctx->finished || sub->done || !a->live) {
        return NGX_DECLINED;
    }

    ctx->winner = sub;
    sub->streaming = 1;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_fanout_call_stop_timers(sub);

    if (sub->fallback) {
        h = ngx_list_push(&ctx->request->headers_out.headers);
        if (h) {
            h->hash = 1;
            ngx_str_set(&h->key, "X-Fanout-Fallback");
            ngx_str_set(&h->value, "true");
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "fanout target \"%V\" streams", &sub->target->name);

    rc = ngx_http_fanout_stream_header(ctx, (ngx_uint_t) a->status,
                                       &a->content_type, &sub->target->name);

    (void) ngx_http_post_request(ctx->request, NULL);

    return (rc == NGX_ERROR || rc > NGX_OK) ? NGX_DECLINED : NGX_OK;
}


/* a stream won: every other call, and the winner's other attempts, end */

static void
ngx_http_fanout_cut_others(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *winner)
{
    ngx_uint_t                  i;
    ngx_http_fanout_call_t     *sub;
    ngx_http_fanout_attempt_t  *a;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub == winner) {
            for (a = &sub->first; a; a = a->next) {
                if (a->live && !a->streaming) {
                    if (ctx->conf->call_log) {
                        a->latency = ngx_current_msec - a->start;
                        ngx_http_fanout_call_log_attempt(ctx, sub, a,
                                                         "cancelled");
                    }

                    a->live = 0;
                    sub->running--;
                    ngx_http_fanout_attempt_cut(a);
                }
            }

            continue;
        }

        if (!sub->done) {
            ctx->pending--;
        }

        ngx_http_fanout_call_end(ctx, sub);
    }
}


/* one attempt of a call: the target's URI, or its fallback's */

/*
 * fanout_deadline_header: the attempt's own part before the others (as
 * its traceparent is), the time its call has left when it starts, in ms
 * or as gRPC's "NNNm"; NULL: no memory.
 */

static ngx_list_t *
ngx_http_fanout_call_deadline(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_list_t *headers)
{
    u_char                           *p;
    ngx_msec_t                        left;
    ngx_list_t                       *list;
    ngx_table_elt_t                  *h;
    ngx_http_fanout_deadline_conf_t  *dc;

    dc = ctx->conf->deadline;

    list = ngx_palloc(ctx->request->pool, sizeof(ngx_list_t)
                                          + sizeof(ngx_table_elt_t)
                                          + NGX_INT_T_LEN + 1);
    if (list == NULL) {
        return NULL;
    }

    h = (ngx_table_elt_t *) (list + 1);
    p = (u_char *) (h + 1);

    left = ngx_http_fanout_call_left(ctx, sub);

    if (dc->grpc) {
        /* gRPC's TimeoutValue: at most 8 digits */
        left = ngx_min(left, 99999999);
    }

    h->hash = dc->hash;
    h->key = dc->name;
    h->lowcase_key = dc->lowcase;
    h->value.data = p;
    h->value.len = ngx_sprintf(p, dc->grpc ? "%Mm" : "%M", left) - p;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    *list = *headers;
    list->part.elts = h;
    list->part.nelts = 1;
    list->part.next = &headers->part;
    list->nalloc = 1;

    return list;
}


static ngx_int_t
ngx_http_fanout_call(ngx_http_fanout_ctx_t *ctx, ngx_http_fanout_call_t *sub,
    ngx_http_fanout_attempt_t *a, ngx_str_t *uri, ngx_str_t *args)
{
    ngx_uint_t           k;
    ngx_list_t          *headers;
    ngx_msec_t           timeout;
    ngx_http_request_t  *r, *sr;

    r = ctx->request;
    a->uri = uri;

    if (sub->target->batch && !sub->alone && uri == &sub->target->uri
        && ngx_http_fanout_batcher_join(ctx, sub, a) == NGX_OK)
    {
        /* batch=: no subrequest of its own, a place in a batch */
        sr = NULL;

    } else if (ngx_http_fanout_attempt_start(r, a, uri, args) != NGX_OK) {
        return NGX_ERROR;

    } else {
        sr = a->sr;
    }

    a->live = 1;
    sub->running++;
    sub->attempt = a;

    if (a != &sub->first) {
        /* after the first, even one never started (an open breaker) */
        (sub->last ? sub->last : &sub->first)->next = a;
    }

    sub->last = a;

    /*
     * The client's method, body and headers, as the client sent them;
     * HEAD becomes GET, as with proxy_cache_convert_head, since an
     * answer without a body cannot be merged.
     */

    if (sr && r->method != NGX_HTTP_HEAD) {
        sr->method = r->method;
        sr->method_name = r->method_name;
    }

    if (sr) {
        /* the client's headers, with this attempt's own traceparent */
        headers = ngx_http_fanout_trace_headers(ctx, ctx->headers, a->span);
        if (headers == NULL) {
            return NGX_ERROR;
        }

        if (ctx->conf->deadline) {
            headers = ngx_http_fanout_call_deadline(ctx, sub, headers);
            if (headers == NULL) {
                return NGX_ERROR;
            }
        }

        sr->headers_in.headers = *headers;
#if (NGX_HTTP_GZIP || NGX_HTTP_HEADERS)
        sr->headers_in.accept_encoding = NULL;
#endif
    }

    if (sr && ctx->batch) {
        /* fanout_batch: the body of the call's item, as its length says */
        k = (sub - ctx->subs) / ctx->batch->ntargets;
        sr->request_body = &ctx->batch->bodies[k];
        sr->headers_in.content_length_n = ctx->batch->lengths[k];
        sr->headers_in.chunked = 0;

        /* $content_length (fastcgi_param CONTENT_LENGTH) reads the
         * header first: the item's length, not the client's */
        sr->headers_in.content_length = NULL;
    }

    if (sr && sub->request_body) {
        /* set=: the call's own body, the same for all its attempts */
        sr->request_body = sub->request_body;
        sr->headers_in.content_length_n = (off_t) sub->body->len;
        sr->headers_in.chunked = 0;
        sr->headers_in.content_length = NULL;
    }

    timeout = sub->target->timeout;

    if (timeout != NGX_CONF_UNSET_MSEC && timeout < ctx->conf->timeout
        && (sub->timer == NULL || !sub->timer->timer_set))
    {
        /* one timeout= for all the attempts of the call, made when used */
        if (sub->timer == NULL) {
            sub->timer = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
            if (sub->timer == NULL) {
                return NGX_ERROR;
            }
        }

        sub->timer->handler = ngx_http_fanout_sub_timeout;
        sub->timer->data = sub;
        sub->timer->log = r->connection->log;

        ngx_add_timer(sub->timer, timeout);
    }

    return NGX_OK;
}


/*
 * fallback=: the target is open, overloaded or failed, so its fallback is
 * called in its place.  The target's own outcome is accounted first (its
 * breaker learns of the failure); the fallback's answer then appears under
 * the target's name, marked in meta.
 */

static void
ngx_http_fanout_fallback(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    fanout_part_t               part;
    ngx_http_fanout_target_t   *t;
    ngx_http_fanout_attempt_t  *a;

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

    /* an attempt of its own, to another URI */
    a = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_fanout_attempt_t));
    if (a == NULL) {
        return;
    }

    ngx_http_fanout_attempt_init(sub, a);

    part = sub->part;

    ngx_memzero(&sub->part, sizeof(fanout_part_t));
    sub->part.name = part.name;
    sub->part.weight = part.weight;
    sub->part.fallback = 1;
    ngx_str_null(&sub->content_type);

    sub->done = 0;
    sub->accounted = 0;
    sub->fallback = 1;

    /* the fallback's outcome is not the target's: its breaker skips it */
    sub->verdict = FANOUT_BREAKER_REJECT;

    if (ngx_http_fanout_call(ctx, sub, a, &t->fallback, &t->fallback_args)
        != NGX_OK)
    {
        sub->done = 1;
        sub->part.kind = FANOUT_UPSTREAM_ERROR;
        sub->part.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    ctx->pending++;
}


/* from the targets' stage: targets that failed meanwhile */

static void
ngx_http_fanout_fallbacks(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_http_fanout_call_t  *sub;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->done && !sub->fallback && sub->part.kind != FANOUT_OK
            && !sub->part.cached)
        {
            ngx_http_fanout_fallback(ctx, sub);
        }
    }
}


/* an attempt ended (ngx_http_fanout_capture.c): its outcome is the call's */

/*
 * The time to first chunk and between a stream's chunks, by bucket (the
 * bounds in ms; the last bucket the rest), and the tokens an answer says
 * it used: for every attempt that came back, models and streams alike.
 */

static const ngx_msec_t  ngx_http_fanout_call_gaps[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000
};


static void
ngx_http_fanout_call_chunk(ngx_http_fanout_attempt_t *a, ngx_msec_t gap)
{
    ngx_http_fanout_call_t  *sub = a->owner;

    ngx_http_fanout_stats_histogram(sub->st, NGX_HTTP_FANOUT_TGT_GAP_MS,
                                    NGX_HTTP_FANOUT_TGT_GAP,
                                    ngx_http_fanout_call_gaps,
                                    NGX_HTTP_FANOUT_TGT_NGAPS, gap);
}


static void
ngx_http_fanout_call_measure(ngx_http_fanout_call_t *sub,
    ngx_http_fanout_attempt_t *a)
{
    fanout_usage_t  u;

    if (a->got_first) {
        ngx_http_fanout_stats_histogram(sub->st, NGX_HTTP_FANOUT_TGT_FIRST_MS,
                                        NGX_HTTP_FANOUT_TGT_FIRST,
                                        ngx_http_fanout_buckets,
                                        NGX_HTTP_FANOUT_NBUCKETS, a->first);
    }

    if (a->result < 200 || a->result > 299) {
        return;
    }

    if (a->streaming) {
        if (a->tail == NULL) {
            return;
        }

        fanout_tokens_usage((const char *) a->tail, a->tail_len, &u);

    } else if (a->buf && a->len
               && fanout_tokens_maybe_usage((const char *) a->buf, a->len))
    {
        /* answers without usage (most models') cost a memchr() or two */
        fanout_tokens_usage((const char *) a->buf, a->len, &u);

    } else {
        return;
    }

    if (u.found) {
        a->usage = 1;
        a->tokens_in = u.input;
        a->tokens_out = u.output;

        (void) ngx_atomic_fetch_add(
                   &sub->st->counters[NGX_HTTP_FANOUT_TGT_TOKENS_IN], u.input);
        (void) ngx_atomic_fetch_add(
                   &sub->st->counters[NGX_HTTP_FANOUT_TGT_TOKENS_OUT],
                   u.output);
    }
}


static void
ngx_http_fanout_call_ended(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_ctx_t        *ctx;
    ngx_http_fanout_call_t       *sub;
    ngx_http_fanout_attempt_t    *na;
    ngx_http_fanout_main_conf_t  *fmcf;

    sub = a->owner;
    ctx = sub->ctx;

    if (!a->live) {
        /* cut off, or its call ended without it: ignored */
        return;
    }

    a->live = 0;
    sub->running--;

    ngx_http_fanout_call_measure(sub, a);

    if (sub->done) {
        return;
    }

    if (ctx->conf->call_log && a->split) {
        ngx_http_fanout_call_log_attempt(ctx, sub, a, "split");
    }

    if (a->split) {
        /*
         * batch=: its batch was refused for an input (a 400 or 422), and
         * the model must not fail every caller for one: the call goes
         * again alone, not as a retry, so the refusal is its input's own.
         */
        sub->alone = 1;

        na = ngx_pcalloc(ctx->request->pool,
                         sizeof(ngx_http_fanout_attempt_t));

        if (na) {
            ngx_http_fanout_attempt_init(sub, na);

            if (ngx_http_fanout_call(ctx, sub, na, &sub->target->uri,
                                     &sub->target->args)
                == NGX_OK)
            {
                return;
            }
        }
    }

    if (sub->target->inflight_auto) {
        /* max_inflight=auto learns from every attempt that came back */
        ngx_http_fanout_admission_sample(sub->target, sub->st, a->latency,
                                         a->result);
    }

    if (ctx->conf->hedge || ctx->conf->retry || sub->target->queue) {
        /* after=pN, a queue's deadline and a retry's time left learn from
         * every attempt that came back */
        fmcf = ngx_http_get_module_main_conf(ctx->request,
                                             ngx_http_fanout_module);

        ngx_shmtx_lock(&fmcf->shpool->mutex);
        fanout_window_add(&sub->st->window, ngx_current_msec,
                          NGX_HTTP_FANOUT_WINDOW_SLOT, a->latency);
        ngx_shmtx_unlock(&fmcf->shpool->mutex);
    }

    /* judged in place: the call has no outcome yet */
    sub->part.kind = a->kind;
    sub->part.status = a->result;

    if (a->follower && sub->verdict == FANOUT_BREAKER_PASS) {
        /* batch=: a batch is one call for the breaker, its first caller's */
        sub->recorded = 1;
    }

    if (a->streaming) {
        /* forwarded, not kept: whole or broken, as the capture saw it */
        if (sub->part.kind != FANOUT_OK) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          "fanout target \"%V\": its stream broke after %O "
                          "bytes (%s): the client's connection is closed",
                          &sub->target->name, a->sent,
                          fanout_kind_name(sub->part.kind));
        }

    } else if (sub->part.kind == FANOUT_OK) {
        /* a whole answer: validated in one pass, which finds the FIELD */
        sub->part.body = (const char *) a->buf;
        sub->part.body_len = a->len;

        fanout_part_parse(&sub->part, (const char *) ctx->conf->field.data,
                          ctx->conf->field.len);
    }

    if (ctx->conf->call_log) {
        /* judged: its status and body as the call sees them */
        ngx_http_fanout_call_log_attempt(ctx, sub, a,
                                         fanout_kind_name(sub->part.kind));
    }

    if (sub->part.kind != FANOUT_OK && sub->running && !a->streaming) {
        /* only a good answer wins: another attempt may still give one */
        sub->part.body = NULL;
        sub->part.body_len = 0;
        sub->part.field.p = NULL;
        sub->part.field.len = 0;
        sub->part.detail = NULL;
        return;
    }

    sub->done = 1;
    sub->part.attempts = (unsigned) sub->nattempts;
    sub->content_type = a->content_type;

    /* a call took all its attempts; a fallback is timed alone */
    sub->part.latency_ms = sub->fallback ? a->latency
                                         : ngx_current_msec - sub->first.start;

    if (sub->later && sub->later->timer_set) {
        ngx_del_timer(sub->later);
    }

    if (sub->part.kind == FANOUT_OK) {
        if (a->hedge) {
            sub->hedged = 1;
            sub->part.hedged = 1;
            ngx_http_fanout_stats_count(sub->st,
                                        NGX_HTTP_FANOUT_TGT_HEDGES_WON);
        }

        /* the race is won: the other attempts are cut off at once */
        ngx_http_fanout_call_cut(sub, "cancelled");
    }

    if (ctx->conf->retry && !a->retried
        && ngx_http_fanout_call_retry(ctx, sub, a) == NGX_OK)
    {
        /* tried again after its backoff: the call goes on */
        return;
    }

    if (sub->timer && sub->timer->timer_set) {
        ngx_del_timer(sub->timer);
    }

    if (sub->part.kind == FANOUT_OK && sub->nattempts > 1 && !sub->fallback) {
        ngx_http_fanout_stats_count(sub->st, NGX_HTTP_FANOUT_TGT_RETRIES_WON);
    }

    ngx_http_fanout_call_over(ctx, sub);

    ctx->pending--;

    if (ctx->finished) {
        return;
    }

    if (sub->part.kind == FANOUT_OK
        && ctx->conf->merge == FANOUT_MERGE_FIRST)
    {
        if (ctx->batch) {
            /* the item has its answer: its other calls end */
            ngx_http_fanout_item_won(ctx, sub);

        } else if (ctx->winner == NULL) {
            ctx->winner = sub;
        }
    }

    /*
     * Only post the parent: running posted requests from here would run
     * them inside this subrequest's finalization.
     */

    if (ctx->winner || ctx->pending == 0
        || ctx->next_call < ctx->nsubs
        || (sub->target->fallback.len && !sub->fallback
            && sub->part.kind != FANOUT_OK))
    {
        /* the parent decides, or calls the fallback */
        (void) ngx_http_post_request(ctx->request, NULL);
    }
}


/*
 * A call has its outcome: its max_inflight slot is given back now, not
 * when the request ends, and in a batch the calls after it find what it
 * taught the breaker.
 */

static void
ngx_http_fanout_call_over(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    if (sub->inflight) {
        sub->inflight = 0;
        ngx_http_fanout_admission_release(sub->target, sub->st);
    }

    if (ctx->batch && ctx->conf->breaker) {
        ngx_http_fanout_call_tell(ctx, sub);
    }
}


/* the call's live attempts, but the one that answered, are cut off */

static void
ngx_http_fanout_call_cut(ngx_http_fanout_call_t *sub, const char *why)
{
    ngx_http_fanout_attempt_t  *a;

    for (a = &sub->first; a; a = a->next) {
        if (a->live) {
            if (sub->ctx->conf->call_log) {
                /* cut off: its end is the call's, not its own */
                a->latency = ngx_current_msec - a->start;
                ngx_http_fanout_call_log_attempt(sub->ctx, sub, a, why);
            }

            a->live = 0;
            sub->running--;
            ngx_http_fanout_attempt_cut(a);
        }
    }
}


/*
 * fanout_hedge: when the first attempt has not answered after a delay (a
 * fixed time, or the target's recent pN clamped to [min, max]; max until
 * 20 answers are known), a backup attempt goes to the same URI or to=,
 * within the budget of extra attempts the target shares with retries.
 */

static void
ngx_http_fanout_hedge_arm(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    uint32_t                       n;
    uint64_t                       q;
    ngx_msec_t                     delay;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_hedge_conf_t  *hc;

    hc = ctx->conf->hedge;
    delay = hc->after;

    if (hc->per_mille) {
        fmcf = ngx_http_get_module_main_conf(ctx->request,
                                             ngx_http_fanout_module);

        ngx_shmtx_lock(&fmcf->shpool->mutex);
        q = fanout_window_quantile(&sub->st->window, ngx_current_msec,
                                   NGX_HTTP_FANOUT_WINDOW_SLOT,
                                   (unsigned) hc->per_mille, &n);
        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        delay = (n < NGX_HTTP_FANOUT_HEDGE_SAMPLES) ? hc->max
                : ngx_min(ngx_max((ngx_msec_t) q, hc->min), hc->max);

        sub->st->hedge_delay = delay;
    }

    sub->hedge_after = delay;

    if (ngx_http_fanout_call_later(sub, ngx_http_fanout_call_hedge) != NGX_OK)
    {
        return;
    }

    ngx_add_timer(sub->later, delay);
}


static void
ngx_http_fanout_call_hedge(ngx_event_t *ev)
{
    ngx_http_fanout_call_t *sub = ev->data;

    ngx_str_t                     *uri, *args;
    ngx_msec_t                     p50;
    ngx_connection_t              *c;
    ngx_http_fanout_ctx_t         *ctx;
    ngx_http_fanout_attempt_t     *a;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_hedge_conf_t  *hc;

    ctx = sub->ctx;
    hc = ctx->conf->hedge;
    c = ctx->request->connection;

    if (sub->done || sub->fallback || ctx->finished || ctx->winner
        || sub->nhedges >= hc->max_hedges)
    {
        return;
    }

    ngx_http_set_log_request(c->log, ctx->request);

    if (ngx_http_fanout_call_too_late(ctx, sub, 0, &p50)) {
        /* it would be cut at the deadline: the first attempt goes on */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "fanout target \"%V\": not hedged, less left than "
                       "its p50 of %M ms", &sub->target->name, p50);
        ngx_http_fanout_stats_count(sub->st, NGX_HTTP_FANOUT_TGT_TOO_LATE);
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    if (!fanout_budget_take(&sub->st->budget, ngx_current_msec,
                            (uint32_t) hc->budget, 0))
    {
        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        /* during an outage, no request becomes two */
        ngx_http_fanout_stats_count(sub->st,
                                    NGX_HTTP_FANOUT_TGT_HEDGE_DENIED);
        return;
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    a = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_fanout_attempt_t));
    if (a == NULL) {
        return;
    }

    ngx_http_fanout_attempt_init(sub, a);
    a->hedge = 1;

    uri = hc->to.len ? &hc->to : &sub->target->uri;
    args = hc->to.len ? &hc->to_args : &sub->target->args;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "fanout target \"%V\": no answer after %M ms, hedged",
                   &sub->target->name, sub->hedge_after);

    if (ngx_http_fanout_call(ctx, sub, a, uri, args) != NGX_OK) {
        return;
    }

    sub->nhedges++;
    ngx_http_fanout_stats_count(sub->st, NGX_HTTP_FANOUT_TGT_HEDGES);

    /* fanout_limit tokens=: a hedge draws its call's reservation again */
    ngx_http_fanout_limit_draw(ctx, sub);

    if (sub->nhedges < hc->max_hedges) {
        ngx_add_timer(sub->later, sub->hedge_after);
    }

    /* the subrequest was posted: it runs now, not at the next event */
    ngx_http_run_posted_requests(c);
}


/* the time the call has left: the fan-out's deadline, its own timeout= */

static ngx_msec_t
ngx_http_fanout_call_left(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_msec_t  left;

    left = ctx->deadline.timer_set
           ? (ngx_msec_t) ctx->deadline.timer.key - ngx_current_msec : 0;

    if (sub->timer && sub->timer->timer_set) {
        if ((ngx_msec_t) sub->timer->timer.key - ngx_current_msec < left) {
            left = (ngx_msec_t) sub->timer->timer.key - ngx_current_msec;
        }

    } else if (sub->target->timeout != NGX_CONF_UNSET_MSEC
               && sub->target->timeout < left)
    {
        /* its first attempt: timeout= starts with it */
        left = sub->target->timeout;
    }

    return left;
}


/*
 * A retry or a hedge that would start after wait ms with less time left
 * than a typical call of the target takes (its recent p50) is not made:
 * it would most likely be cut at the deadline, and only load the model.
 * Without enough samples, no p50: it is made.
 */

static ngx_uint_t
ngx_http_fanout_call_too_late(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_msec_t wait, ngx_msec_t *p50)
{
    uint32_t                      n;
    ngx_msec_t                    left;
    ngx_http_fanout_main_conf_t  *fmcf;

    left = ngx_http_fanout_call_left(ctx, sub);

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);
    *p50 = (ngx_msec_t) fanout_window_quantile(&sub->st->window,
                                               ngx_current_msec,
                                               NGX_HTTP_FANOUT_WINDOW_SLOT,
                                               500, &n);
    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    if (n < NGX_HTTP_FANOUT_HEDGE_SAMPLES) {
        return 0;
    }

    return wait + *p50 > left;
}


/*
 * fanout_retry: a failed attempt is tried again, to the same URI, after a
 * full-jitter backoff or the Retry-After of a 429/503, when on= names its
 * failure, attempts= allows it, the wait ends before the target's
 * timeout= and the deadline, the breaker is not open, and the target's
 * budget has room.  NGX_OK: a retry is due.
 */

static ngx_int_t
ngx_http_fanout_call_retry(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, ngx_http_fanout_attempt_t *a)
{
    ngx_msec_t                     delay, left, p50;
    ngx_http_fanout_main_conf_t   *fmcf;
    ngx_http_fanout_retry_conf_t  *rc;

    rc = ctx->conf->retry;

    if (sub->fallback || sub->streaming || ctx->finished || ctx->winner
        || sub->nattempts >= rc->attempts
        || !fanout_kind_retries(sub->part.kind, sub->part.status, rc->on))
    {
        return NGX_DECLINED;
    }

    if (a->retry_after >= 0) {
        delay = (ngx_msec_t) a->retry_after;

    } else {
        delay = (ngx_msec_t) fanout_backoff(rc->backoff, rc->max_backoff,
                                            (unsigned) sub->nattempts - 1,
                                            ((uint32_t) ngx_random() << 1)
                                            ^ (uint32_t) ngx_random());
    }

    /* never past the deadline, nor the target's own timeout= */
    left = ngx_http_fanout_call_left(ctx, sub);

    if (delay >= left) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fanout target \"%V\" %s: not retried, %s of %M ms "
                      "would pass the deadline", &sub->target->name,
                      fanout_kind_name(sub->part.kind),
                      a->retry_after >= 0 ? "its Retry-After" : "a backoff",
                      delay);
        return NGX_DECLINED;
    }

    if (ngx_http_fanout_call_too_late(ctx, sub, delay, &p50)) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fanout target \"%V\" %s: not retried, %M ms would be "
                      "left, less than its p50 of %M ms", &sub->target->name,
                      fanout_kind_name(sub->part.kind), left - delay, p50);
        ngx_http_fanout_stats_count(sub->st, NGX_HTTP_FANOUT_TGT_TOO_LATE);
        return NGX_DECLINED;
    }

    /* each attempt counts for the breaker; an open one stops retries */
    if (ctx->conf->breaker
        && ngx_http_fanout_call_ask_again(ctx, sub) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* the budget, shared by the workers, keeps an outage from doubling */
    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    if (!fanout_budget_take(&sub->st->budget, ngx_current_msec,
                            (uint32_t) rc->budget, (uint32_t) rc->min_per_s))
    {
        ngx_shmtx_unlock(&fmcf->shpool->mutex);

        ngx_http_fanout_stats_count(sub->st,
                                    NGX_HTTP_FANOUT_TGT_RETRY_DENIED);
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fanout target \"%V\" %s: not retried, its retry "
                      "budget is spent", &sub->target->name,
                      fanout_kind_name(sub->part.kind));
        return NGX_DECLINED;
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_stats_count(sub->st, NGX_HTTP_FANOUT_TGT_RETRIES);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "fanout target \"%V\" %s: retry in %M ms",
                   &sub->target->name, fanout_kind_name(sub->part.kind),
                   delay);

    sub->done = 0;

    if (ngx_http_fanout_call_later(sub, ngx_http_fanout_call_again) != NGX_OK) {
        sub->done = 1;
        return NGX_DECLINED;
    }

    ngx_add_timer(sub->later, delay ? delay : 1);

    return NGX_OK;
}


/* the call's timer for a retry's backoff or a hedge's delay, made once */

static ngx_int_t
ngx_http_fanout_call_later(ngx_http_fanout_call_t *sub,
    ngx_event_handler_pt handler)
{
    if (sub->later == NULL) {
        sub->later = ngx_pcalloc(sub->ctx->request->pool,
                                 sizeof(ngx_event_t));
        if (sub->later == NULL) {
            return NGX_ERROR;
        }

        sub->later->data = sub;
        sub->later->log = sub->ctx->request->connection->log;
    }

    sub->later->handler = handler;

    return NGX_OK;
}


/* the backoff is over: the next attempt */

static void
ngx_http_fanout_call_again(ngx_event_t *ev)
{
    ngx_http_fanout_call_t     *sub = ev->data;

    ngx_connection_t           *c;
    ngx_http_fanout_ctx_t      *ctx;
    ngx_http_fanout_attempt_t  *a;

    ctx = sub->ctx;
    c = ctx->request->connection;

    if (sub->done || ctx->finished) {
        return;
    }

    ngx_http_set_log_request(c->log, ctx->request);

    a = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_fanout_attempt_t));
    if (a == NULL) {
        ngx_http_fanout_sub_end(sub, FANOUT_UPSTREAM_ERROR,
                                NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_fanout_attempt_init(sub, a);

    sub->nattempts++;
    sub->part.body = NULL;
    sub->part.body_len = 0;
    sub->part.field.p = NULL;
    sub->part.field.len = 0;
    sub->part.detail = NULL;

    if (ngx_http_fanout_call(ctx, sub, a, &sub->target->uri,
                             &sub->target->args)
        != NGX_OK)
    {
        /* it could not even start: the call ends */
        sub->done = 1;
        sub->part.kind = FANOUT_UPSTREAM_ERROR;
        sub->part.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        ctx->pending--;
        ngx_http_fanout_resume(ctx, NGX_AGAIN);
        return;
    }

    /* fanout_limit tokens=: a retry draws its call's reservation again */
    ngx_http_fanout_limit_draw(ctx, sub);

    /* the subrequest was posted: it runs now, not at the next event */
    ngx_http_run_posted_requests(c);
}


/* ends one call from an event handler of ours: a timer or a posted event */

static void
ngx_http_fanout_sub_end(ngx_http_fanout_call_t *sub, fanout_kind_e kind,
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

    ngx_http_fanout_call_stop_timers(sub);

    sub->done = 1;
    sub->part.kind = kind;
    sub->part.status = status;
    sub->part.latency_ms = sub->attempt
                                 ? ngx_current_msec - sub->attempt->start : 0;
    ctx->pending--;

    ngx_http_fanout_call_cut(sub, fanout_kind_name(kind));

    ngx_http_fanout_call_over(ctx, sub);

    ngx_http_fanout_resume(ctx, NGX_AGAIN);
}


static void
ngx_http_fanout_sub_timeout(ngx_event_t *ev)
{
    ngx_http_fanout_call_t  *sub = ev->data;

    if (sub->target->inflight_auto && sub->attempt && !sub->done) {
        /* a model too slow to answer: as overloaded as one that says so */
        ngx_http_fanout_admission_sample(sub->target, sub->st,
                                         ngx_current_msec
                                         - sub->attempt->start,
                                         NGX_HTTP_GATEWAY_TIME_OUT);
    }

    ngx_http_fanout_sub_end(sub, FANOUT_TIMEOUT, NGX_HTTP_GATEWAY_TIME_OUT);
}


/* the capture gave up on the answer (too large, out of memory) */

static void
ngx_http_fanout_call_stopped(ngx_http_fanout_attempt_t *a)
{
    ngx_http_fanout_call_t  *sub;

    sub = a->owner;

    if (!a->live) {
        return;
    }

    if (sub->ctx->conf->call_log) {
        a->latency = ngx_current_msec - a->start;
        ngx_http_fanout_call_log_attempt(sub->ctx, sub, a,
            fanout_kind_name(a->too_large ? FANOUT_TOO_LARGE
                                          : FANOUT_UPSTREAM_ERROR));
    }

    a->live = 0;
    sub->running--;
    ngx_http_fanout_attempt_cut(a);

    if (sub->done || sub->running) {
        /* another attempt of the call may still answer */
        return;
    }

    ngx_http_fanout_sub_end(sub, a->too_large ? FANOUT_TOO_LARGE
                                              : FANOUT_UPSTREAM_ERROR,
                            a->too_large ? a->status
                                         : NGX_HTTP_BAD_GATEWAY);
}


/*
 * The answer is decided: calls still running either missed the deadline
 * or lost the race of "first"; end them so that they do not hold the
 * client's connection.
 */

void
ngx_http_fanout_cancel(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->nsubs; i++) {
        ngx_http_fanout_call_end(ctx, &ctx->subs[i]);
    }

    ctx->pending = 0;
}


/* a call no longer waited for: cancelled if another won, else too late */

static void
ngx_http_fanout_call_end(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_http_fanout_call_stop_timers(sub);

    if (sub->wait) {
        /* it waited for a slot: its place goes */
        ngx_http_fanout_admission_leave(sub->wait);
        sub->wait = NULL;
    }

    if (!sub->done) {
        sub->done = 1;
        sub->part.latency_ms = sub->attempt
                               ? ngx_current_msec - sub->attempt->start : 0;

        if (ctx->winner) {
            sub->cancelled = 1;

        } else {
            sub->part.kind = FANOUT_TIMEOUT;
            sub->part.status = NGX_HTTP_GATEWAY_TIME_OUT;
        }
    }

    /* the deadline, or a winner elsewhere */
    ngx_http_fanout_call_cut(sub, ctx->winner ? "cancelled" : "timeout");
}


void
ngx_http_fanout_sub_account(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_http_fanout_stats_t  *st;

    if (sub->accounted) {
        return;
    }

    sub->accounted = 1;

    if (!ngx_http_fanout_call_made(sub) && !sub->part.cached) {
        return;
    }

    if (ctx->conf->breaker && !sub->recorded) {
        /* usually told already, with the others, under one lock */
        ngx_http_fanout_call_tell(ctx, sub);
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
        ngx_http_fanout_admission_release(sub->target, st);
    }

    if (sub->part.cached) {
        /* answered by the per-target cache: no call was made */
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CACHE_HIT);
        return;
    }

    if (ctx->cache && ctx->cache->target_keys) {
        /* level=target, or a batch: each call was looked up */
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CACHE_MISS);
    }

    if (sub->cancelled && sub->attempt == NULL) {
        /* a batch's "first": never called, its item had its answer */
        return;
    }

    ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_REQUESTS);

    if (sub->cancelled) {
        ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_CANCELLED);
        return;
    }

    ngx_http_fanout_stats_count(st, NGX_HTTP_FANOUT_TGT_KIND + sub->part.kind);
    ngx_http_fanout_stats_latency(st, sub->part.latency_ms);
}


/*
 * The breaker, asked and told by node: the calls ask their targets'
 * breakers before they start, under one lock for all of them, and tell
 * them how each ended (each attempt, when a retry follows); the breaker
 * knows nodes and verdicts, not calls.
 */

#define ngx_http_fanout_call_breaker_on(ctx, sub)                            \
    ((ctx)->conf->breaker && !(sub)->target->no_breaker)


static void
ngx_http_fanout_calls_ask(ngx_http_fanout_ctx_t *ctx, ngx_uint_t from,
    ngx_uint_t to)
{
    ngx_uint_t                    i;
    ngx_http_fanout_call_t       *sub;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (ctx->conf->breaker == NULL) {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    for (i = from; i < to; i++) {
        sub = &ctx->subs[i];

        if (sub->done || !ngx_http_fanout_call_breaker_on(ctx, sub)) {
            continue;
        }

        sub->verdict = ngx_http_fanout_breaker_allow(ctx->conf->breaker,
                                                     sub->bst);

        if (sub->verdict == FANOUT_BREAKER_REJECT) {
            sub->done = 1;
            sub->part.kind = FANOUT_CIRCUIT_OPEN;
            sub->part.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);
}


/* whether the breaker waits to hear of this call: one made (an attempt
 * started) or ended (a timeout), not one the cache answered nor one a
 * client left before, nor one it refused or heard of */

static ngx_uint_t
ngx_http_fanout_call_untold(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    return ngx_http_fanout_call_breaker_on(ctx, sub) && !sub->part.cached
           && !sub->recorded && sub->verdict != FANOUT_BREAKER_REJECT
           && (sub->attempt != NULL || sub->done);
}


/* the call's outcome told its breaker, the zone's lock held */

static fanout_breaker_change_e
ngx_http_fanout_call_told(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub, uint32_t *old)
{
    ngx_http_fanout_breaker_outcome_e  outcome;

    sub->recorded = 1;

    /* no call was made, or its end is not the model's: a turn back; else
     * the model's fault only: not 4xx, not a call cut off or abandoned */
    if (sub->cancelled || !sub->done || sub->part.kind == FANOUT_OVERLOADED) {
        outcome = NGX_HTTP_FANOUT_BREAKER_NONE;

    } else if (fanout_kind_failure(sub->part.kind)) {
        outcome = NGX_HTTP_FANOUT_BREAKER_FAILURE;

    } else {
        outcome = NGX_HTTP_FANOUT_BREAKER_SUCCESS;
    }

    return ngx_http_fanout_breaker_record(ctx->conf->breaker, sub->bst,
                                          sub->verdict, outcome, old);
}


/* one call's outcome (a target replaced by its fallback, an abort) */

static void
ngx_http_fanout_call_tell(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    uint32_t                      old;
    fanout_breaker_change_e       change;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!ngx_http_fanout_call_untold(ctx, sub)) {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);
    change = ngx_http_fanout_call_told(ctx, sub, &old);
    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_breaker_changed(ctx->request->connection->log, ctx->conf,
                                    sub->target, sub->bst, old, change);
}


/*
 * fanout_retry: the failed attempt of a call that would be tried again is
 * told now, each attempt counting, and the next one asks the breaker
 * again: NGX_DECLINED when it opened meanwhile (no retry: the failure
 * stands, and goes to fallback= if there is one).
 */

static ngx_int_t
ngx_http_fanout_call_ask_again(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    uint32_t                      old;
    fanout_breaker_change_e       change;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (!ngx_http_fanout_call_breaker_on(ctx, sub) || sub->part.cached) {
        return NGX_OK;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    change = FANOUT_BREAKER_SAME;
    old = 0;

    if (!sub->recorded && sub->verdict != FANOUT_BREAKER_REJECT) {
        change = ngx_http_fanout_call_told(ctx, sub, &old);
    }

    sub->verdict = ngx_http_fanout_breaker_allow(ctx->conf->breaker,
                                                 sub->bst);

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    ngx_http_fanout_breaker_changed(ctx->request->connection->log, ctx->conf,
                                    sub->target, sub->bst, old, change);

    if (sub->verdict == FANOUT_BREAKER_REJECT) {
        /* nothing more to tell of this call */
        sub->recorded = 1;
        return NGX_DECLINED;
    }

    sub->recorded = 0;

    return NGX_OK;
}


/*
 * Once the answer is decided: every call's outcome under one lock; what
 * each changed is kept in the call itself, as a request may make up to
 * FANOUT_BATCH_MAX_CALLS of them (items x targets).
 */

void
ngx_http_fanout_calls_tell(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_http_fanout_call_t       *sub;
    ngx_http_fanout_main_conf_t  *fmcf;

    if (ctx->conf->breaker == NULL) {
        return;
    }

    fmcf = ngx_http_get_module_main_conf(ctx->request, ngx_http_fanout_module);

    ngx_shmtx_lock(&fmcf->shpool->mutex);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];
        sub->breaker_change = FANOUT_BREAKER_SAME;

        if (ngx_http_fanout_call_untold(ctx, sub)) {
            sub->breaker_change = ngx_http_fanout_call_told(ctx, sub,
                                                            &sub->breaker_old);
        }
    }

    ngx_shmtx_unlock(&fmcf->shpool->mutex);

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->breaker_change != FANOUT_BREAKER_SAME) {
            ngx_http_fanout_breaker_changed(ctx->request->connection->log,
                                            ctx->conf, sub->target, sub->bst,
                                            sub->breaker_old,
                                            sub->breaker_change);
        }
    }
}


/* on=error,timeout,5xx,429,bad_json: what a retry is made on */

static char *
ngx_http_fanout_retry_on(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_retry_conf_t *rc = conf;

    u_char     *p, *last;
    ngx_str_t   w;
    ngx_uint_t  k;

    static const struct {
        ngx_str_t   word;
        ngx_uint_t  bit;
    } on[] = {
        { ngx_string("error"), FANOUT_RETRY_ERROR },
        { ngx_string("timeout"), FANOUT_RETRY_TIMEOUT },
        { ngx_string("5xx"), FANOUT_RETRY_5XX },
        { ngx_string("429"), FANOUT_RETRY_429 },
        { ngx_string("bad_json"), FANOUT_RETRY_BAD_JSON }
    };

    rc->on = 0;
    p = v->data;
    last = v->data + v->len;

    while (p < last) {
        w.data = p;

        while (p < last && *p != ',') {
            p++;
        }

        w.len = p - w.data;
        p++;

        for (k = 0; k < sizeof(on) / sizeof(on[0]); k++) {
            if (w.len == on[k].word.len
                && ngx_strncmp(w.data, on[k].word.data, w.len) == 0)
            {
                rc->on |= on[k].bit;
                break;
            }
        }

        if (k == sizeof(on) / sizeof(on[0])) {
            break;
        }
    }

    if (p < last || rc->on == 0 || (v->len && v->data[v->len - 1] == ',')) {
        return "use error, timeout, 5xx, 429 or bad_json, separated by "
               "commas";
    }

    return NGX_CONF_OK;
}


/* min_retries=N/s: retries a second allowed whatever the budget */

static char *
ngx_http_fanout_retry_min(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_retry_conf_t *rc = conf;

    ngx_int_t  n;

    n = NGX_ERROR;

    if (v->len > 2 && ngx_strncmp(v->data + v->len - 2, "/s", 2) == 0) {
        n = ngx_atoi(v->data, v->len - 2);
    }

    if (n == NGX_ERROR || n > 100000) {
        return "retries a second, as \"min_retries=3/s\"";
    }

    rc->min_per_s = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


static const ngx_http_fanout_param_t  ngx_http_fanout_retry_params[] = {

    ngx_http_fanout_param("attempts", COUNT, ngx_http_fanout_retry_conf_t,
                          attempts, 2, NGX_HTTP_FANOUT_MAX_ATTEMPTS, NULL),
    ngx_http_fanout_param_custom("on", ngx_http_fanout_retry_on),
    ngx_http_fanout_param("backoff", MSEC, ngx_http_fanout_retry_conf_t,
                          backoff, 0, 60000, NULL),
    ngx_http_fanout_param("max_backoff", MSEC, ngx_http_fanout_retry_conf_t,
                          max_backoff, 0, 60000, NULL),
    ngx_http_fanout_param("budget", SHARE, ngx_http_fanout_retry_conf_t,
                          budget, 0, 10000, NULL),
    ngx_http_fanout_param_custom("min_retries", ngx_http_fanout_retry_min),
    ngx_http_fanout_param_null
};


/* after=TIME or after=pN: when a hedge is sent */

static char *
ngx_http_fanout_hedge_after(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_hedge_conf_t *hc = conf;

    ngx_int_t  n;

    if (v->len > 1 && v->data[0] == 'p') {
        /* p95, p99.9: a per-mille of the target's recent calls */
        n = ngx_atofp(v->data + 1, v->len - 1, 1);

        if (n == NGX_ERROR || n < 1 || n > 999) {
            return "a percentile from p0.1 to p99.9";
        }

        hc->per_mille = (ngx_uint_t) n;
        return NGX_CONF_OK;
    }

    n = ngx_parse_time(v, 0);

    if (n == NGX_ERROR || n == 0 || n > 60000) {
        return "a time from 1ms to 60s, or a percentile (\"after=p95\")";
    }

    hc->after = (ngx_msec_t) n;

    return NGX_CONF_OK;
}


static const ngx_http_fanout_param_t  ngx_http_fanout_hedge_params[] = {

    ngx_http_fanout_param_custom("after", ngx_http_fanout_hedge_after),
    ngx_http_fanout_param("min", MSEC, ngx_http_fanout_hedge_conf_t, min,
                          1, 60000, NULL),
    ngx_http_fanout_param("max", MSEC, ngx_http_fanout_hedge_conf_t, max,
                          1, 60000, NULL),
    ngx_http_fanout_param("budget", SHARE, ngx_http_fanout_hedge_conf_t,
                          budget, 0, 10000, NULL),
    ngx_http_fanout_param("max_hedges", COUNT, ngx_http_fanout_hedge_conf_t,
                          max_hedges, 1, NGX_HTTP_FANOUT_MAX_ATTEMPTS - 1,
                          NULL),
    ngx_http_fanout_param("to", URI, ngx_http_fanout_hedge_conf_t, to,
                          0, 0, NULL),
    ngx_http_fanout_param_null
};


/*
 * fanout_retry [attempts=N] [on=error,timeout,5xx,429,bad_json]
 *              [backoff=TIME] [max_backoff=TIME] [budget=P%]
 *              [min_retries=N/s];
 * fanout_retry off;
 */

char *
ngx_http_fanout_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                     *value;
    ngx_http_fanout_retry_conf_t  *rc;

    if (flcf->retry != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->retry = NULL;
        return NGX_CONF_OK;
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_retry_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->attempts = 2;
    rc->on = FANOUT_RETRY_ERROR | FANOUT_RETRY_TIMEOUT | FANOUT_RETRY_5XX
             | FANOUT_RETRY_429;
    rc->backoff = 25;
    rc->max_backoff = 250;
    rc->budget = 2000;
    rc->min_per_s = 3;

    if (ngx_http_fanout_conf_params(cf, 1, ngx_http_fanout_retry_params, rc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (rc->backoff > rc->max_backoff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"backoff=\" is more than \"max_backoff=\"");
        return NGX_CONF_ERROR;
    }

    flcf->retry = rc;

    return NGX_CONF_OK;
}


/*
 * fanout_hedge after=TIME|pN [min=TIME] [max=TIME] [budget=P%]
 *              [max_hedges=N] [to=URI];
 * fanout_hedge off;
 */

/* fanout_deadline_header off | NAME */

char *
ngx_http_fanout_deadline_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    u_char                           *p;
    ngx_str_t                        *value;
    ngx_http_fanout_deadline_conf_t  *dc;

    if (flcf->deadline != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        flcf->deadline = NULL;
        return NGX_CONF_OK;
    }

    /* a header's name: a token (RFC 9110), no ':' nor space */
    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || ngx_strchr("!#$%&'*+-.^_`|~", *p)))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    dc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_deadline_conf_t));
    if (dc == NULL) {
        return NGX_CONF_ERROR;
    }

    dc->lowcase = ngx_pnalloc(cf->pool, value[1].len);
    if (dc->lowcase == NULL) {
        return NGX_CONF_ERROR;
    }

    dc->name = value[1];
    dc->hash = ngx_hash_strlow(dc->lowcase, value[1].data, value[1].len);
    dc->grpc = (value[1].len == sizeof("grpc-timeout") - 1
                && ngx_strncmp(dc->lowcase, "grpc-timeout", value[1].len)
                   == 0);

    flcf->deadline = dc;

    return NGX_CONF_OK;
}


char *
ngx_http_fanout_hedge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                     *value, s;
    ngx_http_fanout_hedge_conf_t  *hc;

    if (flcf->hedge != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->hedge = NULL;
        return NGX_CONF_OK;
    }

    hc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_hedge_conf_t));
    if (hc == NULL) {
        return NGX_CONF_ERROR;
    }

    hc->min = 10;
    hc->max = 2000;
    hc->budget = 500;
    hc->max_hedges = 1;

    if (ngx_http_fanout_conf_params(cf, 1, ngx_http_fanout_hedge_params, hc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (hc->to.len) {
        s = hc->to;
        ngx_http_fanout_split_uri(&s, &hc->to, &hc->to_args);
    }

    if (hc->after == 0 && hc->per_mille == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanout_hedge\" needs \"after=\"");
        return NGX_CONF_ERROR;
    }

    if (hc->min > hc->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"min=\" is more than \"max=\"");
        return NGX_CONF_ERROR;
    }

    flcf->hedge = hc;

    return NGX_CONF_OK;
}
