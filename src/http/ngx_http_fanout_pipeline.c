/*
 * The request's pipeline: its stages run in order from one driver, as
 * nginx runs the phases of a request (ngx_http_core_run_phases).  The
 * stages are registered by the module at configuration (module.c), so
 * this file knows none of them, and none of them calls back into a file
 * that called it: a stage that waits (Redis, the body, the targets)
 * returns NGX_AGAIN, and whatever it waited for resumes the driver here.
 *
 * A stage returns
 *   NGX_DECLINED  done: on to the next stage;
 *   NGX_AGAIN     waiting: ngx_http_fanout_resume() (or _next()) goes on,
 *                 with NGX_AGAIN to run the same stage again (the targets'
 *                 stage, each time one of them ends), NGX_DECLINED to go
 *                 on, or the result of an answer it sent;
 *   anything else the request is answered or refused: its rc (an HTTP
 *                 status makes nginx's error page, made JSON).
 * Whatever ends the pipeline, the log stage counts the request once.  A
 * location runs only the stages of what it uses (its conf's bits, set at
 * merge time), as nginx's phase engine only holds the handlers modules
 * registered.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_module.h"
#include "ngx_http_fanout_pipeline.h"


ngx_http_fanout_stage_pt  ngx_http_fanout_stages[NGX_HTTP_FANOUT_NSTAGES];


static ngx_int_t
ngx_http_fanout_run(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->running = 1;

    for ( ;; ) {

        if (rc == NGX_DECLINED) {
            if (++ctx->stage == NGX_HTTP_FANOUT_NSTAGES) {
                rc = ctx->rc;
                break;
            }

            if (!(ctx->conf->stages & (1 << ctx->stage))) {
                /* the location does not use it */
                continue;
            }

        } else if (rc != NGX_AGAIN) {

            if (ctx->stage < NGX_HTTP_FANOUT_STAGE_LOG) {
                /* ended early: no fan-out answer to store or compare */
                ctx->rc = rc;
                ctx->stage = NGX_HTTP_FANOUT_STAGE_LOG;
                (void) ngx_http_fanout_stages[ctx->stage](ctx);
                ctx->stage = NGX_HTTP_FANOUT_NSTAGES;
            }

            break;
        }

        ctx->resumed = 0;

        rc = ngx_http_fanout_stages[ctx->stage](ctx);

        if (rc != NGX_AGAIN) {
            continue;
        }

        if (ctx->resumed) {
            /* what it waited for came while it started: go on at once */
            rc = ctx->resume_rc;
            continue;
        }

        /* the reference nginx drops when given NGX_DONE */
        r->main->count++;
        ctx->running = 0;

        return NGX_DONE;
    }

    ctx->running = 0;

    return rc;
}


ngx_int_t
ngx_http_fanout_pipeline(ngx_http_fanout_ctx_t *ctx)
{
    ctx->stage = -1;

    return ngx_http_fanout_run(ctx, NGX_DECLINED);
}


/*
 * A waiting stage answered the request itself (a cache hit, a limit's 429,
 * a purge): rc is what the send returned.  NGX_AGAIN there means the
 * answer is still being written to a slow client, not "run the stage
 * again": the pipeline ends, and nginx writes the rest.
 */

void
ngx_http_fanout_resume_answered(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_fanout_resume(ctx, (rc == NGX_AGAIN) ? NGX_OK : rc);
}


/* from the request's own events (its body read, its write handler) */

void
ngx_http_fanout_next(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc)
{
    if (ctx->running) {
        ctx->resumed = 1;
        ctx->resume_rc = rc;
        return;
    }

    if (ctx->stage >= NGX_HTTP_FANOUT_NSTAGES) {
        return;
    }

    ngx_http_finalize_request(ctx->request, ngx_http_fanout_run(ctx, rc));
}


/* from other events: a Redis reply, a timer, another request */

void
ngx_http_fanout_resume(ngx_http_fanout_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t  *c;

    if (ctx->running) {
        ctx->resumed = 1;
        ctx->resume_rc = rc;
        return;
    }

    c = ctx->request->connection;

    ngx_http_set_log_request(c->log, ctx->request);

    ngx_http_fanout_next(ctx, rc);

    ngx_http_run_posted_requests(c);
}


/*
 * The main request's write handler while its targets run: each target
 * that ends posts the request, and its stage looks again.
 */

void
ngx_http_fanout_wake(ngx_http_request_t *r)
{
    ngx_http_fanout_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanout_module);

    if (ctx == NULL || ctx->finished
        || ctx->stage != NGX_HTTP_FANOUT_STAGE_CALLS)
    {
        return;
    }

    ngx_http_fanout_next(ctx, NGX_AGAIN);
}
