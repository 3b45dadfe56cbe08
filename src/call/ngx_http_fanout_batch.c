/*
 * The batch stage (fanout_batch): the client's body holds an array at
 * FIELD; each item (or each chunk of items) becomes a body of its own,
 * the client's body with the array replaced, which every target of the
 * request is called with.  The bodies are chains of buffers into the one
 * copy of the client's body in memory: a batch of N items costs N small
 * chains, not N copies.  The calls stage calls them (up to concurrency=
 * at once); the answer stage joins their answers in the items' order.
 * The rules (the split, the pieces, the answer) are pure: fanout_batch.c.
 */

#include "ngx_http_fanout.h"
#include "ngx_http_fanout_batch.h"
#include "ngx_http_fanout_limit.h"
#include "ngx_http_fanout_request.h"
#include "ngx_http_fanout_response.h"
#include "ngx_http_fanout_conf.h"


static ngx_int_t ngx_http_fanout_batch_bodies(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_batch_t *b);
static ngx_int_t ngx_http_fanout_batch_refuse(ngx_http_fanout_ctx_t *ctx,
    ngx_uint_t status, const char *error, fanout_batch_rc_e rc);


ngx_int_t
ngx_http_fanout_batch_stage(ngx_http_fanout_ctx_t *ctx)
{
    fanout_span_t                 *items;
    fanout_batch_rc_e              brc;
    ngx_http_request_t            *r;
    ngx_http_fanout_batch_t       *b;
    ngx_http_fanout_batch_conf_t  *bc;

    r = ctx->request;
    bc = ctx->conf->batch;

    b = ngx_pcalloc(r->pool, sizeof(ngx_http_fanout_batch_t));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_fanout_body_memory(r, &b->body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one more than allowed is enough to tell the client */
    items = ngx_palloc(r->pool, (bc->max_items + 1) * sizeof(fanout_span_t));
    if (items == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    brc = fanout_batch_split((const char *) b->body.data, b->body.len,
                             (const char *) bc->field.data, bc->field.len,
                             bc->max_items, items, &b->split);

    if (b->body.len > NGX_HTTP_FANOUT_LONG_WORK) {
        /* the timers that follow measure from now */
        ngx_time_update();
    }

    if (brc == FANOUT_BATCH_TOO_MANY) {
        return ngx_http_fanout_batch_refuse(ctx,
                                            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                            "batch_too_large", brc);
    }

    if (brc != FANOUT_BATCH_OK) {
        return ngx_http_fanout_batch_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                            "bad_batch", brc);
    }

    b->ncalls = fanout_batch_calls(&b->split, bc->chunk);

    if (ngx_http_fanout_batch_bodies(ctx, b) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fanout batch: %uz items, %ui calls per target, "
                   "%uz bytes", b->split.nitems, b->ncalls, b->body.len);

    ctx->batch = b;

    if (ctx->conf->limits) {
        /* fanout_limit: a batch weighs as many requests as it makes calls */
        return ngx_http_fanout_limit_check(ctx, b->ncalls);
    }

    return NGX_DECLINED;
}


/*
 * Each call's body, as buffers into the client's body (a call's buffers
 * are shared by its targets: the upstream modules copy a body's buffer
 * headers before they send it, as they do with the client's own body).
 */

static ngx_int_t
ngx_http_fanout_batch_bodies(ngx_http_fanout_ctx_t *ctx,
    ngx_http_fanout_batch_t *b)
{
    size_t               total, n, i;
    ngx_buf_t           *bufs, *buf = NULL;
    ngx_uint_t           k, chunk;
    ngx_chain_t         *cl, **last;
    fanout_span_t        piece[FANOUT_BATCH_PIECES];
    ngx_http_request_t  *r;

    r = ctx->request;
    chunk = ctx->conf->batch->chunk;

    b->bodies = ngx_pcalloc(r->pool,
                            b->ncalls * sizeof(ngx_http_request_body_t));
    b->lengths = ngx_palloc(r->pool, b->ncalls * sizeof(off_t));

    /* the most pieces a call has: shared ones and its own */
    bufs = ngx_pcalloc(r->pool,
                       b->ncalls * FANOUT_BATCH_PIECES * sizeof(ngx_buf_t));
    cl = ngx_palloc(r->pool,
                    b->ncalls * FANOUT_BATCH_PIECES * sizeof(ngx_chain_t));

    if (b->bodies == NULL || b->lengths == NULL || bufs == NULL
        || cl == NULL)
    {
        return NGX_ERROR;
    }

    for (k = 0; k < b->ncalls; k++) {
        n = fanout_batch_pieces((const char *) b->body.data, b->body.len,
                                &b->split, chunk, k, piece, &total);

        last = &b->bodies[k].bufs;
        buf = NULL;

        for (i = 0; i < n; i++) {
            if (piece[i].len == 0) {
                continue;
            }

            buf = &bufs[k * FANOUT_BATCH_PIECES + i];

            /* read only: nothing of ours is written through these */
            buf->pos = (u_char *) piece[i].p;
            buf->last = buf->pos + piece[i].len;
            buf->start = buf->pos;
            buf->end = buf->last;
            buf->memory = 1;

            cl->buf = buf;
            *last = cl;
            last = &cl->next;
            cl++;
        }

        *last = NULL;

        if (buf) {
            /* the last buffer of a body, as nginx marks a body it read */
            buf->last_buf = 1;
        }

        b->lengths[k] = (off_t) total;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanout_batch_refuse(ngx_http_fanout_ctx_t *ctx, ngx_uint_t status,
    const char *error, fanout_batch_rc_e rc)
{
    u_char                        *msg, *p;
    ngx_http_request_t            *r;
    ngx_http_fanout_batch_conf_t  *bc;

    r = ctx->request;
    bc = ctx->conf->batch;

    msg = ngx_pnalloc(r->pool, 160 + bc->field.len);
    if (msg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == FANOUT_BATCH_TOO_MANY) {
        p = ngx_sprintf(msg, "the batch at \\\"%V\\\" has more than "
                        "max_items=%ui items", &bc->field, bc->max_items);

    } else {
        p = ngx_sprintf(msg, "%s (fanout_batch \\\"%V\\\")",
                        fanout_batch_error(rc), &bc->field);
    }

    *p = '\0';

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fanout batch refused with %ui: %s", status,
                  fanout_batch_error(rc));

    return ngx_http_fanout_send_error(r, status, error, (char *) msg);
}


/*
 * fanout_batch FIELD [max_items=N] [chunk=N] [concurrency=N];
 * fanout_batch off;
 */

static const ngx_http_fanout_param_t  ngx_http_fanout_batch_params[] = {

    ngx_http_fanout_param("max_items", COUNT, ngx_http_fanout_batch_conf_t,
                          max_items, 1, FANOUT_BATCH_MAX_ITEMS, NULL),
    ngx_http_fanout_param("chunk", COUNT, ngx_http_fanout_batch_conf_t,
                          chunk, 1, FANOUT_BATCH_MAX_ITEMS, NULL),
    ngx_http_fanout_param("concurrency", COUNT, ngx_http_fanout_batch_conf_t,
                          concurrency, 1, FANOUT_BATCH_MAX_CALLS, NULL),
    ngx_http_fanout_param_null
};


char *
ngx_http_fanout_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanout_loc_conf_t *flcf = conf;

    ngx_str_t                     *value;
    ngx_http_fanout_batch_conf_t  *bc;

    if (flcf->batch != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        flcf->batch = NULL;
        return NGX_CONF_OK;
    }

    /* a dot path; the client is told it in JSON: no quote, no backslash */
    if (fanout_json_path_check((char *) value[1].data, value[1].len) != 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '"')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '\\'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid FIELD \"%V\": use a dot path such as "
                           "\"instances\" or \"inputs.0.data\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    bc = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanout_batch_conf_t));
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    bc->field = value[1];
    bc->max_items = 256;
    bc->file = cf->conf_file->file.name.data;
    bc->line = cf->conf_file->line;

    if (ngx_http_fanout_conf_params(cf, 2, ngx_http_fanout_batch_params, bc)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    flcf->batch = bc;

    return NGX_CONF_OK;
}
