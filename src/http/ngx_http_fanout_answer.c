/*
 * The answer stage: the targets have answered, failed or missed the
 * deadline, or "first" has a winner.  Whatever still runs is cut off, the
 * answers are merged (src/core/fanout_merge.c) or the winner's is sent as it
 * came, and what the cache may keep is left for the store stage.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_admission.h"
#include "ngx_http_fanout_answer.h"
#include "ngx_http_fanout_cache.h"
#include "ngx_http_fanout_conf.h"
#include "ngx_http_fanout_call.h"
#include "ngx_http_fanout_pipeline.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_trace.h"
#include "ngx_http_fanout_batch.h"


static ngx_int_t ngx_http_fanout_answer_merged(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_answer_retry(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_answer_batch(ngx_http_fanout_ctx_t *ctx);
static void ngx_http_fanout_merge_conf(ngx_http_fanout_ctx_t *ctx,
    fanout_merge_conf_t *mc, ngx_uint_t id);
static fanout_part_t *ngx_http_fanout_parts(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_answer_failed(ngx_http_fanout_ctx_t *ctx,
    const char *what);
static void ngx_http_fanout_counted(ngx_http_fanout_ctx_t *ctx);
static ngx_int_t ngx_http_fanout_answer_first(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub);


ngx_int_t
ngx_http_fanout_answer_stage(ngx_http_fanout_ctx_t *ctx)
{
    /* whatever still runs missed the deadline, or lost the race */
    ngx_http_fanout_cancel(ctx);

    if (ctx->winner && ctx->winner->streaming) {
        /* sent as it came: whole, or broken (the connection is closed) */
        ctx->status = (ctx->winner->part.kind == FANOUT_OK)
                      ? NGX_HTTP_OK : NGX_HTTP_BAD_GATEWAY;
        ngx_http_fanout_counted(ctx);
        ctx->rc = (ctx->winner->part.kind == FANOUT_OK) ? NGX_OK : NGX_ERROR;

        return NGX_DECLINED;
    }

    if (ctx->batch) {
        ctx->rc = ngx_http_fanout_answer_batch(ctx);
        return NGX_DECLINED;
    }

    ctx->rc = ctx->winner ? ngx_http_fanout_answer_first(ctx, ctx->winner)
                          : ngx_http_fanout_answer_merged(ctx);

    return NGX_DECLINED;
}


/*
 * The log stage, now rather than after the send: once the client has the
 * answer, its next request (maybe in another worker) must find the
 * breakers and counters that this one left.  The log stage then has
 * nothing left to do.
 */

static void
ngx_http_fanout_counted(ngx_http_fanout_ctx_t *ctx)
{
    (void) ngx_http_fanout_stages[NGX_HTTP_FANOUT_STAGE_LOG](ctx);
}


static void
ngx_http_fanout_keep(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *target, u_char *body, size_t len)
{
    if (ctx->cache == NULL) {
        /* no fanout_cache to store it */
        return;
    }

    ctx->cache->keep.status = status;
    ctx->cache->keep.type = *type;

    if (target) {
        ctx->cache->keep.target = *target;

    } else {
        ngx_str_null(&ctx->cache->keep.target);
    }

    ctx->cache->keep.body = body;
    ctx->cache->keep.len = len;
    ctx->cache->keep.ready = 1;
}


/* the calls' outcomes, side by side, as the pure merges take them */

static fanout_part_t *
ngx_http_fanout_parts(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t      i;
    fanout_part_t  *parts;

    parts = ngx_palloc(ctx->request->pool,
                       ctx->nsubs * sizeof(fanout_part_t));
    if (parts == NULL) {
        return NULL;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        parts[i] = ctx->subs[i].part;
    }

    return parts;
}


static ngx_int_t
ngx_http_fanout_answer_failed(ngx_http_fanout_ctx_t *ctx, const char *what)
{
    ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;

    ngx_http_fanout_counted(ctx);

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "fanout: could not build %s", what);

    return ngx_http_fanout_send_error(ctx->request,
                                      NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "the answer could not be "
                                      "built");
}


/*
 * The merge's configuration; format=v2 echoes the request's "id" (a
 * string at the top of its body), but not in a batch's items.
 */

static void
ngx_http_fanout_merge_conf(ngx_http_fanout_ctx_t *ctx,
    fanout_merge_conf_t *mc, ngx_uint_t id)
{
    unsigned             matches;
    ngx_str_t            body;
    fanout_span_t        v;
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_memzero(mc, sizeof(fanout_merge_conf_t));

    mc->mode = (fanout_merge_mode_e) ctx->conf->merge;
    mc->field = (const char *) ctx->conf->field.data;
    mc->field_len = ctx->conf->field.len;
    mc->quorum = (unsigned) ctx->conf->quorum;
    mc->cache_meta = (ctx->cache && ctx->cache->target_keys != NULL);
    mc->precision = (int) ctx->conf->precision;

    if (ctx->trace && ctx->trace->traced) {
        mc->trace_id = ctx->trace->ids.trace_id;
        mc->trace_id_len = FANOUT_TRACE_ID_LEN;
    }

    if (ctx->trace) {
        mc->request_id = (const char *) ctx->trace->request_id.data;
        mc->request_id_len = ctx->trace->request_id.len;
    }

    if (!ctx->conf->merge_v2) {
        return;
    }

    mc->v2 = 1;
    mc->model = (const char *) ctx->conf->merge_model.data;
    mc->model_len = ctx->conf->merge_model.len;
    mc->output = (const char *) ctx->conf->merge_output.data;
    mc->output_len = ctx->conf->merge_output.len;

    if (!id || ngx_http_fanout_body_memory(r, &body) != NGX_OK) {
        return;
    }

    if (fanout_json_find((const char *) body.data, body.len, "id", 2, &v,
                         &matches)
        == 0
        && v.p && v.p[0] == '"' && matches == 1)
    {
        mc->id = v.p;
        mc->id_len = v.len;
    }
}


/*
 * A 200 that lacks some answers says so in a header as well as in its
 * errors: "X-Fanout-Degraded: resnet,clip", the targets that failed (not
 * those cut off after a winner), so that a proxy or a client can tell
 * without reading the body.
 */

static ngx_int_t
ngx_http_fanout_degraded(ngx_http_fanout_ctx_t *ctx)
{
    u_char                  *p;
    size_t                   len;
    ngx_uint_t               i;
    ngx_table_elt_t         *h;
    ngx_http_fanout_call_t  *sub;

    len = 0;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->part.kind != FANOUT_OK && !sub->cancelled) {
            len += sub->target->name.len + 1;
        }
    }

    if (len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&ctx->request->headers_out.headers);
    p = ngx_pnalloc(ctx->request->pool, len);

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "X-Fanout-Degraded");
    h->value.data = p;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->part.kind != FANOUT_OK && !sub->cancelled) {
            if (p != h->value.data) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, sub->target->name.data, sub->target->name.len);
        }
    }

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/*
 * Every call failed as overloaded (max_inflight=, its queue): Retry-After,
 * the longest the targets' queues say they need to drain.
 */

static ngx_int_t
ngx_http_fanout_answer_retry(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t               i, secs, s;
    ngx_table_elt_t         *h;
    ngx_http_fanout_call_t  *sub;

    secs = 0;

    for (i = 0; i < ctx->nsubs; i++) {
        sub = &ctx->subs[i];

        if (sub->part.kind == FANOUT_OVERLOADED) {
            s = ngx_http_fanout_admission_retry_after(sub->target, sub->st);
            secs = ngx_max(secs, s);
        }
    }

    h = ngx_list_push(&ctx->request->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");

    h->value.data = ngx_pnalloc(ctx->request->pool, NGX_INT_T_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%ui", ngx_max(secs, 1))
                   - h->value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_answer_merged(ngx_http_fanout_ctx_t *ctx)
{
    ngx_int_t             rc;
    ngx_uint_t            i;
    fanout_out_t          out;
    fanout_part_t        *parts;
    fanout_merged_t       merged;
    ngx_http_request_t   *r;
    fanout_merge_conf_t   mc;
    void                (*write)(const fanout_merge_conf_t *conf,
                                 const fanout_part_t *parts, size_t n,
                                 const fanout_merged_t *m, fanout_out_t *o);

    r = ctx->request;

    parts = ngx_http_fanout_parts(ctx);
    if (parts == NULL) {
        goto failed;
    }

    ngx_http_fanout_merge_conf(ctx, &mc, 1);

    if (fanout_merge_prepare(&mc, parts, ctx->nsubs, &merged) != 0) {
        goto failed;
    }

    /* mean and vote may have turned answers into bad_field */
    for (i = 0; i < ctx->nsubs; i++) {
        ctx->subs[i].part.kind = parts[i].kind;
    }

    write = mc.v2 ? fanout_merge_write_v2 : fanout_merge_write;

    /* one pass to size the answer, one to write it */
    out.buf = NULL;
    out.len = 0;
    write(&mc, parts, ctx->nsubs, &merged, &out);

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
    write(&mc, parts, ctx->nsubs, &merged, &out);

    ctx->status = (ngx_uint_t) merged.status;
    fanout_merged_free(&merged);

    if (ctx->status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_fanout_answer_retry(ctx) != NGX_OK)
    {
        goto failed;
    }

    ngx_http_fanout_counted(ctx);

    if (ctx->status != NGX_HTTP_OK
        && ngx_http_fanout_cache_serve_stale(ctx, &rc) == NGX_OK)
    {
        /* not stored, but whoever waits on this fan-out is let go */
        ngx_http_fanout_keep(ctx, ctx->status, &ngx_http_fanout_json_type,
                             NULL, NULL, 0);
        return rc;
    }

    ngx_http_fanout_keep(ctx, ctx->status, &ngx_http_fanout_json_type, NULL,
                         (u_char *) out.buf, out.len);

    if (ctx->status == NGX_HTTP_OK
        && ngx_http_fanout_degraded(ctx) != NGX_OK)
    {
        goto failed;
    }

    return ngx_http_fanout_send(r, ctx->status, &ngx_http_fanout_json_type,
                                (u_char *) out.buf, out.len);

failed:

    return ngx_http_fanout_answer_failed(ctx, "the merged answer");
}


/*
 * fanout_batch: each item's calls merged as a request's are, joined in
 * the items' order (src/core/fanout_batch.c).  Only the per-call entries are
 * stored (the store stage), never the joined answer.
 */

static ngx_int_t
ngx_http_fanout_answer_batch(ngx_http_fanout_ctx_t *ctx)
{
    ngx_uint_t              i;
    fanout_out_t            out;
    fanout_part_t          *parts;
    ngx_table_elt_t        *h;
    ngx_http_request_t     *r;
    fanout_merge_conf_t     mc;
    fanout_batch_answer_t   ba;

    r = ctx->request;

    parts = ngx_http_fanout_parts(ctx);
    ba.merged = ngx_palloc(r->pool,
                           ctx->batch->ncalls * sizeof(fanout_merged_t));

    if (parts == NULL || ba.merged == NULL) {
        goto failed;
    }

    ngx_http_fanout_merge_conf(ctx, &mc, 0);

    ba.conf = &mc;
    ba.parts = parts;
    ba.ncalls = ctx->batch->ncalls;
    ba.ntargets = ctx->batch->ntargets;
    ba.nitems = ctx->batch->split.nitems;
    ba.chunk = ctx->conf->batch->chunk;

    if (fanout_batch_prepare(&ba) != 0) {
        goto failed;
    }

    for (i = 0; i < ctx->nsubs; i++) {
        ctx->subs[i].part.kind = parts[i].kind;
    }

    out.buf = NULL;
    out.len = 0;
    fanout_batch_write(&ba, &out);

    out.buf = ngx_pnalloc(r->pool, out.len);
    if (out.buf == NULL) {
        fanout_batch_free(&ba);
        goto failed;
    }

    out.len = 0;
    fanout_batch_write(&ba, &out);

    if (out.len > NGX_HTTP_FANOUT_LONG_WORK) {
        ngx_time_update();
    }

    ctx->status = (ngx_uint_t) ba.status;

    if (ba.ok < ba.ncalls) {
        /* a 200 with failed items says so, as a degraded answer does */
        h = ngx_list_push(&r->headers_out.headers);
        if (h) {
            h->hash = 1;
            ngx_str_set(&h->key, "X-Fanout-Batch-Failed");
            h->value.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
            if (h->value.data == NULL) {
                h->hash = 0;

            } else {
                h->value.len = ngx_sprintf(h->value.data, "%uz",
                                           ba.ncalls - ba.ok)
                               - h->value.data;
            }
        }
    }

    fanout_batch_free(&ba);

    ngx_http_fanout_counted(ctx);

    /* the store stage keeps each call's answer, not this one */
    ngx_http_fanout_keep(ctx, ctx->status, &ngx_http_fanout_json_type, NULL,
                         NULL, 0);

    return ngx_http_fanout_send(r, ctx->status, &ngx_http_fanout_json_type,
                                (u_char *) out.buf, out.len);

failed:

    return ngx_http_fanout_answer_failed(ctx, "the batch's answer");
}


static ngx_int_t
ngx_http_fanout_answer_first(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_call_t *sub)
{
    ngx_str_t        *type;
    ngx_table_elt_t  *h;

    ctx->status = NGX_HTTP_OK;

    ngx_http_fanout_counted(ctx);

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

    ngx_http_fanout_keep(ctx, sub->part.status, type, &sub->target->name,
                         (u_char *) sub->part.body, sub->part.body_len);

    return ngx_http_fanout_send_as_is(ctx, sub->part.status, type,
                                      &sub->target->name,
                                      (u_char *) sub->part.body,
                                      sub->part.body_len);
}


/* the directives of the merge this stage makes */

/* format=v2: KServe v2 in and out */

static char *
ngx_http_fanout_merge_format(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    if (v->len != 2 || ngx_strncmp(v->data, "v2", 2) != 0) {
        return "use \"v2\" (KServe v2)";
    }

    flcf->merge_v2 = 1;

    return NGX_CONF_OK;
}


/* mean's precision=N|fp32|fp64: the mean's significant digits */

static char *
ngx_http_fanout_merge_precision(ngx_conf_t *cf, ngx_str_t *v, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_int_t  n;

    if (v->len == 4 && ngx_strncmp(v->data, "fp32", 4) == 0) {
        flcf->precision = FANOUT_PRECISION_FP32;
        return NGX_CONF_OK;
    }

    if (v->len == 4 && ngx_strncmp(v->data, "fp64", 4) == 0) {
        flcf->precision = FANOUT_PRECISION_FP64;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(v->data, v->len);

    if (n < 1 || n > 17) {
        return "significant digits from 1 to 17, fp32 or fp64";
    }

    flcf->precision = n;

    return NGX_CONF_OK;
}


static const ngx_http_fanout_param_t  ngx_http_fanout_mean_params[] = {

    ngx_http_fanout_param_custom("format", ngx_http_fanout_merge_format),
    ngx_http_fanout_param("model", STRING, ngx_http_fanout_loc_conf_t,
                          merge_model, 1, 0, NULL),
    ngx_http_fanout_param("output", STRING, ngx_http_fanout_loc_conf_t,
                          merge_output, 1, 0, NULL),
    ngx_http_fanout_param_custom("precision",
                                 ngx_http_fanout_merge_precision),
    ngx_http_fanout_param_null
};


/* vote's: mean's but precision= */

static const ngx_http_fanout_param_t  ngx_http_fanout_vote_params[] = {

    ngx_http_fanout_param_custom("format", ngx_http_fanout_merge_format),
    ngx_http_fanout_param("model", STRING, ngx_http_fanout_loc_conf_t,
                          merge_model, 1, 0, NULL),
    ngx_http_fanout_param("output", STRING, ngx_http_fanout_loc_conf_t,
                          merge_output, 1, 0, NULL),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_merge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    size_t       name_len;
    ngx_str_t   *value;
    const char  *name;

    if (flcf->merge != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "all") == 0) {
        flcf->merge = FANOUT_MERGE_ALL;

    } else if (ngx_strcmp(value[1].data, "first") == 0) {
        flcf->merge = FANOUT_MERGE_FIRST;

    } else if (ngx_strcmp(value[1].data, "mean") == 0) {
        flcf->merge = FANOUT_MERGE_MEAN;

    } else if (ngx_strcmp(value[1].data, "vote") == 0) {
        flcf->merge = FANOUT_MERGE_VOTE;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown merge mode \"%V\": use \"all\", "
                           "\"first\", \"mean FIELD\" or \"vote FIELD\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (flcf->merge == FANOUT_MERGE_MEAN || flcf->merge == FANOUT_MERGE_VOTE) {

        if (cf->args->nelts < 3
            || ngx_strncmp(value[2].data, "format=", 7) == 0
            || ngx_strncmp(value[2].data, "model=", 6) == 0
            || ngx_strncmp(value[2].data, "output=", 7) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "merge mode \"%V\" needs a FIELD, a dot path "
                               "such as \"output.scores\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_fanout_conf_params(cf, 3,
                                        flcf->merge == FANOUT_MERGE_MEAN
                                        ? ngx_http_fanout_mean_params
                                        : ngx_http_fanout_vote_params,
                                        flcf)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        if ((flcf->merge_model.len || flcf->merge_output.len)
            && !flcf->merge_v2)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"model=\" and \"output=\" go with "
                               "\"format=v2\"");
            return NGX_CONF_ERROR;
        }

        if (fanout_json_path_check((char *) value[2].data, value[2].len) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid FIELD \"%V\": use a dot path such as "
                               "\"output.scores\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        flcf->field = value[2];

        if (flcf->merge_v2 && flcf->merge_output.len == 0) {
            fanout_merge_output_name((const char *) value[2].data,
                                     value[2].len, &name, &name_len);
            flcf->merge_output.data = (u_char *) name;
            flcf->merge_output.len = name_len;
        }

    } else if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "merge mode \"%V\" takes no FIELD", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_fanout_quorum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    char  *rv;

    rv = ngx_conf_set_num_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* checked against the number of targets when the location is merged */

    flcf->quorum_file = cf->conf_file->file.name.data;
    flcf->quorum_line = cf->conf_file->line;

    return NGX_CONF_OK;
}
